"""
Tests for the send side of org.ini: C{[SendConnector]} sections with
Exchange 2010's New-SendConnector defaults and rules
(L{exmta.config.sendconnectors}), the TransportServer's retry, log and DNS
settings, and the receive connectors' ProtocolLoggingLevel.
"""

import os

import pytest

from exmta.config import parseOrganization
from exmta.config.model import Origin
from exmta.config.values import AddressSpace, SmartHost
from exmta.errors import ConfigError
from tests.test_config import SERVER, assertError, organization

MB, GB = 1024**2, 1024**3

TWO_SERVERS = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[TransportServer HubB]
Fqdn = hubb.fabrikam.com

[AcceptedDomain fabrikam.com]
"""


def sendConnector(org, name):
    (found,) = [c for c in org.sendConnectors if c.name == name]
    return found


# Defaults and the reference's three set-ups


def test_exchange2010Defaults(tmp_path):
    org = organization(tmp_path, "[SendConnector Internet]\nAddressSpaces = *\n")
    c = sendConnector(org, "Internet")
    assert c.usage == "Custom"
    assert c.addressSpaces == (AddressSpace("SMTP", "*", 1, "*"),)
    assert c.smartHosts == ()
    assert c.dnsRoutingEnabled is True
    assert c.smartHostAuthMechanism == {"None"}
    assert c.authenticationCredential is None
    assert c.sourceTransportServers == ("HubA",)
    assert c.port == 25
    assert c.fqdn is None
    assert (c.requireTLS, c.tlsAuthLevel, c.tlsDomain, c.ignoreSTARTTLS) == (False, None, None, False)
    assert c.maxMessageSize == 10 * MB
    assert c.connectionInactivityTimeout == 600
    assert c.useExternalDNSServersEnabled is False
    assert c.protocolLoggingLevel == "None"
    assert c.enabled is True
    assert c.origin.section == "SendConnector Internet"
    assert org.sendConnector("internet") is c
    assert org.sendConnector("Other") is None


REFERENCE = {
    # New-SendConnector -Name "ToInternetGateway" -AddressSpaces "*" -SmartHosts
    # "smtpgateway1.contoso.com" -SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS
    # -AuthenticationCredential $mycred -SourceTransportServers "HubA" -DNSRoutingEnabled $false
    "BasicAuth": (
        "SmartHostAuthMechanism = BasicAuth,BasicAuthRequireTLS\nAuthenticationCredential = ToInternetGateway\n",
        "Custom",
        {"BasicAuth", "BasicAuthRequireTLS"},
        "ToInternetGateway",
    ),
    # ... -Usage Internal ... -SmartHostAuthMechanism ExternalAuthoritative ...
    "ExternalAuthoritative": (
        "Usage = Internal\nSmartHostAuthMechanism = ExternalAuthoritative\n",
        "Internal",
        {"ExternalAuthoritative"},
        None,
    ),
    # ... -Usage Internet ... -SmartHostAuthMechanism None ...
    "None": ("Usage = Internet\nSmartHostAuthMechanism = None\n", "Internet", {"None"}, None),
}


@pytest.mark.parametrize("setup", sorted(REFERENCE))
def test_referenceSetUps(tmp_path, setup):
    lines, usage, auth, credential = REFERENCE[setup]
    org = organization(
        tmp_path,
        "[SendConnector ToInternetGateway]\n"
        'AddressSpaces = "*"\n'
        'SmartHosts = "smtpgateway1.contoso.com"\n'
        'SourceTransportServers = "HubA"\n'
        "DNSRoutingEnabled = $false\n" + lines,
    )
    (c,) = org.sendConnectors
    assert c.usage == usage
    assert [str(s) for s in c.addressSpaces] == ["SMTP:*;1"]
    assert c.smartHosts == (SmartHost("smtpgateway1.contoso.com"),)
    assert c.smartHostAuthMechanism == auth
    assert c.authenticationCredential == credential
    assert c.sourceTransportServers == ("HubA",)
    assert c.dnsRoutingEnabled is False


def test_everyKeyIsRead(tmp_path):
    org = organization(
        tmp_path,
        """
        [SendConnector Partners]
        Usage = partner
        AddressSpaces = contoso.com;10, SMTP:*.contoso.com;20, X400:c=US;a=;p=Contoso;5
        SmartHosts = [192.168.1.10]:2526, smtpgateway2.contoso.com, ::1
        DNSRoutingEnabled = $false
        SmartHostAuthMechanism = ExchangeServer
        Port = 587
        Fqdn = Relay.Fabrikam.com
        RequireTLS = $true
        TlsAuthLevel = domainvalidation
        TlsDomain = *.contoso.com
        IgnoreSTARTTLS = $false
        MaxMessageSize = unlimited
        ConnectionInactivityTimeout = 1.00:00:00
        UseExternalDNSServersEnabled = $true
        ProtocolLoggingLevel = verbose
        Enabled = $false
        Comment = to our partner
        """,
    )
    c = sendConnector(org, "Partners")
    assert c.usage == "Partner"
    assert [str(s) for s in c.addressSpaces] == [
        "SMTP:contoso.com;10",
        "SMTP:*.contoso.com;20",
        "X400:c=US;a=;p=Contoso;5",
    ]
    assert c.smartHosts == (
        SmartHost("192.168.1.10", 2526),
        SmartHost("smtpgateway2.contoso.com"),
        SmartHost("::1"),
    )
    assert c.smartHostAuthMechanism == {"ExchangeServer"}
    assert c.port == 587
    assert c.fqdn == "Relay.Fabrikam.com"
    assert (c.requireTLS, c.tlsAuthLevel, c.tlsDomain) == (True, "DomainValidation", "*.contoso.com")
    assert c.maxMessageSize is None
    assert c.connectionInactivityTimeout == 86400
    assert c.useExternalDNSServersEnabled is True
    assert c.protocolLoggingLevel == "Verbose"
    assert c.enabled is False
    # Every key's line is remembered, for errors found after loading.
    text = (tmp_path / "org.ini").read_text()
    assert c.origin.lineOf("TlsDomain") == c.origin.lineOf("tlsdomain") == next(
        n for n, line in enumerate(text.splitlines(), 1) if line.startswith("TlsDomain")
    )
    assert c.origin.lineOf("AuthenticationCredential") == c.origin.line


def test_dnsRoutedConnector(tmp_path):
    org = organization(
        tmp_path,
        "[SendConnector Internet]\nUsage = Internet\nAddressSpaces = *;2\nDNSRoutingEnabled = $true\n",
    )
    c = sendConnector(org, "Internet")
    assert (c.dnsRoutingEnabled, c.smartHosts, c.addressSpaces[0].cost) == (True, (), 2)


@pytest.mark.parametrize(
    "level, lines",
    [
        ("EncryptionOnly", ""),
        ("CertificateValidation", ""),
        ("DomainValidation", ""),
        ("DomainValidation", "TlsDomain = smtpgateway1.contoso.com\n"),
    ],
)
def test_tlsAuthLevels(tmp_path, level, lines):
    org = organization(
        tmp_path,
        "[SendConnector C]\nAddressSpaces = *\nRequireTLS = $true\n"
        f"TlsAuthLevel = {level}\n{lines}",
    )
    assert sendConnector(org, "C").tlsAuthLevel == level


# The rules, each error pointing at its key

SMART = "[SendConnector C]\nAddressSpaces = *\nSmartHosts = smtpgateway1.contoso.com\nDNSRoutingEnabled = $false\n"
DNS = "[SendConnector C]\nAddressSpaces = *\n"


@pytest.mark.parametrize(
    "body, needle, key, message",
    [
        # AddressSpaces
        ("[SendConnector C]\nPort = 25\n", "[SendConnector C]", "AddressSpaces", "is required in a SendConnector section"),
        ("[SendConnector C]\nAddressSpaces = ,\n", "AddressSpaces", "AddressSpaces", "AddressSpaces is empty"),
        ("[SendConnector C]\nAddressSpaces = *contoso.com\n", "AddressSpaces", "AddressSpaces", "not *contoso.com"),
        ("[SendConnector C]\nAddressSpaces = contoso.com;0\n", "AddressSpaces", "AddressSpaces", "cost 0 is out of range; it must be 1 to 100"),
        ("[SendConnector C]\nAddressSpaces = contoso.com;101\n", "AddressSpaces", "AddressSpaces", "it must be 1 to 100"),
        ("[SendConnector C]\nAddressSpaces = --\n", "AddressSpaces", "AddressSpaces", "Edge Transport servers only"),
        ("[SendConnector C]\nAddressSpaces = contoso.com, SMTP:Contoso.com;5\n", "AddressSpaces", "AddressSpaces", "'SMTP:Contoso.com;5' repeats the address space 'contoso.com'"),
        (DNS.replace("*", "X400:c=US;a=;p=Contoso"), "AddressSpaces", "AddressSpaces", "the X400 address space 'X400:c=US;a=;p=Contoso' can only be routed through SmartHosts"),
        # SmartHosts and DNSRoutingEnabled
        ("[SendConnector C]\nAddressSpaces = *\nSmartHosts = smtpgateway1.contoso.com\n", "SmartHosts", "SmartHosts", "DNSRoutingEnabled must be $false when SmartHosts is set"),
        ("[SendConnector C]\nAddressSpaces = *\nSmartHosts = gw\nDNSRoutingEnabled = $true\n", "DNSRoutingEnabled", "DNSRoutingEnabled", "DNSRoutingEnabled must be $false when SmartHosts is set"),
        ("[SendConnector C]\nAddressSpaces = *\nDNSRoutingEnabled = $false\n", "DNSRoutingEnabled", "DNSRoutingEnabled", "SmartHosts is required when DNSRoutingEnabled is $false"),
        ("[SendConnector C]\nAddressSpaces = *\nSmartHosts =\nDNSRoutingEnabled = $false\n", "SmartHosts", "SmartHosts", "SmartHosts is required when DNSRoutingEnabled is $false"),
        (SMART.replace("smtpgateway1.contoso.com", "gw:99999"), "SmartHosts", "SmartHosts", "port 99999 is out of range"),
        (SMART.replace("smtpgateway1.contoso.com", "[gw]"), "SmartHosts", "SmartHosts", "only an IP address goes in brackets"),
        # SmartHostAuthMechanism
        (SMART + "SmartHostAuthMechanism = None, BasicAuth\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "None must stand alone"),
        (SMART + "SmartHostAuthMechanism = ,\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "SmartHostAuthMechanism is empty; use None"),
        (SMART + "SmartHostAuthMechanism = Tls\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "'Tls' is not one of: None, BasicAuth"),
        (SMART + "SmartHostAuthMechanism = BasicAuthRequireTLS\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "BasicAuthRequireTLS requires BasicAuth as well"),
        (SMART + "SmartHostAuthMechanism = BasicAuth, ExternalAuthoritative\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "mutually exclusive"),
        (SMART + "SmartHostAuthMechanism = ExchangeServer, ExternalAuthoritative\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "mutually exclusive"),
        (DNS + "SmartHostAuthMechanism = ExternalAuthoritative\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "ExternalAuthoritative is valid only with SmartHosts"),
        (DNS + "SmartHostAuthMechanism = BasicAuth\nAuthenticationCredential = gw\n", "SmartHostAuthMechanism", "SmartHostAuthMechanism", "BasicAuth is valid only with SmartHosts"),
        # AuthenticationCredential
        (SMART + "SmartHostAuthMechanism = BasicAuth\n", "[SendConnector C]", "AuthenticationCredential", "is required with SmartHostAuthMechanism BasicAuth"),
        (SMART + "SmartHostAuthMechanism = BasicAuth, BasicAuthRequireTLS\n", "[SendConnector C]", "AuthenticationCredential", "exmta credential set"),
        (SMART + "AuthenticationCredential = gw\n", "AuthenticationCredential", "AuthenticationCredential", "is used only with SmartHostAuthMechanism BasicAuth"),
        (SMART + "SmartHostAuthMechanism = ExternalAuthoritative\nAuthenticationCredential = gw\n", "AuthenticationCredential", "AuthenticationCredential", "is used only with SmartHostAuthMechanism BasicAuth"),
        (SMART + "SmartHostAuthMechanism = BasicAuth\nAuthenticationCredential = user:Pa55word\n", "AuthenticationCredential", "AuthenticationCredential", "is not a credential name"),
        # TLS
        (DNS + "RequireTLS = $true\nIgnoreSTARTTLS = $true\n", "IgnoreSTARTTLS", "IgnoreSTARTTLS", "must be $false when RequireTLS is $true"),
        (DNS + "TlsAuthLevel = CertificateValidation\n", "TlsAuthLevel", "TlsAuthLevel", "can be set only when RequireTLS is $true"),
        (DNS + "RequireTLS = $false\nTlsAuthLevel = EncryptionOnly\n", "TlsAuthLevel", "TlsAuthLevel", "can be set only when RequireTLS is $true"),
        (DNS + "IgnoreSTARTTLS = $true\nTlsAuthLevel = EncryptionOnly\n", "TlsAuthLevel", "TlsAuthLevel", "can be set only when RequireTLS is $true"),
        (DNS + "RequireTLS = $true\nTlsAuthLevel = Strict\n", "TlsAuthLevel", "TlsAuthLevel", "'Strict' is not one of: EncryptionOnly, CertificateValidation, DomainValidation"),
        (DNS + "RequireTLS = $true\nTlsAuthLevel = CertificateValidation\nTlsDomain = contoso.com\n", "TlsDomain", "TlsDomain", "is used only with TlsAuthLevel DomainValidation"),
        (DNS + "TlsDomain = contoso.com\n", "TlsDomain", "TlsDomain", "is used only with TlsAuthLevel DomainValidation"),
        (DNS + "RequireTLS = $true\nTlsAuthLevel = DomainValidation\nTlsDomain = *contoso.com\n", "TlsDomain", "TlsDomain", "is not a valid host name"),
        # Plain values
        (DNS + "Usage = Client\n", "Usage", "Usage", "'Client' is not one of: Custom, Internal, Internet, Partner"),
        (DNS + "Port = 0\n", "Port", "Port", "it must be 1 to 65535"),
        (DNS + "Port = 65536\n", "Port", "Port", "it must be 1 to 65535"),
        (DNS + "Fqdn = not a host\n", "Fqdn = not", "Fqdn", "is not a valid host name"),
        (DNS + "MaxMessageSize = 3GB\n", "MaxMessageSize", "MaxMessageSize", "out of range"),
        (DNS + "ConnectionInactivityTimeOut = 00:00:00\n", "ConnectionInactivityTimeOut", "ConnectionInactivityTimeOut", "it must be 00:00:01 to 1.00:00:00"),
        (DNS + "ConnectionInactivityTimeOut = 1.00:00:01\n", "ConnectionInactivityTimeOut", "ConnectionInactivityTimeOut", "it must be 00:00:01 to 1.00:00:00"),
        (DNS + "ProtocolLoggingLevel = Low\n", "ProtocolLoggingLevel", "ProtocolLoggingLevel", "'Low' is not one of: None, Verbose"),
        (DNS + "Enabled = maybe\n", "Enabled", "Enabled", "use $true or $false"),
        (DNS + "UseExternalDNSServersEnabled = 2\n", "UseExternalDNSServersEnabled", "UseExternalDNSServersEnabled", "use $true or $false"),
        (DNS + "Bindings = 127.0.0.1:25\n", "Bindings", "Bindings", "unknown key for a SendConnector; known keys are: Usage, AddressSpaces"),
        (DNS + "ForceHELO = $true\nRequireTLS = $true\n", "ForceHELO", "ForceHELO", "cannot be used with RequireTLS"),
        (DNS + "ErrorPolicies = Default, DowngradeDnsFailures\n", "ErrorPolicies", "ErrorPolicies", "Default must stand alone"),
        (DNS + "ErrorPolicies = DowngradeCustomFailures, UpgradeCustomFailures\n", "ErrorPolicies", "ErrorPolicies", "opposites"),
        (DNS + "ErrorPolicies = Sometimes\n", "ErrorPolicies", "ErrorPolicies", "'Sometimes' is not one of"),
        (DNS + "SourceIPAddress = 127.0.0.300\n", "SourceIPAddress", "SourceIPAddress", "is not an IP address"),
        (DNS + "DomainSecureEnabled = $true\n", "DomainSecureEnabled", "DomainSecureEnabled", "not supported on exmta: mutual TLS"),
        (DNS + "IsCoexistenceConnector = $true\n", "IsCoexistenceConnector", "IsCoexistenceConnector", "not supported on exmta"),
        ("[SendConnector C]\nPort = 25\n", "[SendConnector C]", "AddressSpaces", "required in a SendConnector section, unless LinkedReceiveConnector"),
        (SMART.replace("AddressSpaces = *\n", "") + "LinkedReceiveConnector = Nowhere\n", "LinkedReceiveConnector", "LinkedReceiveConnector", "no ReceiveConnector is named 'Nowhere'"),
        # SourceTransportServers
        (DNS + "SourceTransportServers = HubB\n", "SourceTransportServers", "SourceTransportServers", "no [TransportServer HubB] is defined; defined: HubA"),
        (DNS + "SourceTransportServers = HubA, huba\n", "SourceTransportServers", "SourceTransportServers", "HubA is listed twice"),
        (DNS + "SourceTransportServers = ,\n", "SourceTransportServers", "SourceTransportServers", "SourceTransportServers is empty"),
    ],
)
def test_sendConnectorRules(tmp_path, body, needle, key, message):
    assertError(tmp_path, body, needle, "SendConnector C", key, message)


def test_basicAuthAloneIsValid(tmp_path):
    org = organization(tmp_path, SMART + "SmartHostAuthMechanism = basicauth\nAuthenticationCredential = gw\n")
    assert sendConnector(org, "C").smartHostAuthMechanism == {"BasicAuth"}


def test_ignoreSTARTTLSWithoutRequireTLS(tmp_path):
    org = organization(tmp_path, DNS + "IgnoreSTARTTLS = $true\n")
    assert sendConnector(org, "C").ignoreSTARTTLS is True


def test_duplicateSendConnectorNames(tmp_path):
    assertError(
        tmp_path,
        DNS + "\n" + DNS.replace("[SendConnector C]", "[SendConnector c]"),
        "[SendConnector c]",
        "SendConnector c",
        None,
        "a second SendConnector named 'c' (the first is on line 6); names must be unique in the organization",
    )


def test_sendConnectorNeedsAName(tmp_path):
    assertError(tmp_path, "[SendConnector]\nAddressSpaces = *\n", "[SendConnector]", "SendConnector", None, "a SendConnector section needs a name")


# SourceTransportServers with several servers


def test_sourceTransportServersRequiredWithSeveralServers(tmp_path):
    assertError(
        tmp_path,
        DNS,
        "[SendConnector C]",
        "SendConnector C",
        "SourceTransportServers",
        "SourceTransportServers is required when org.ini defines several TransportServers",
        head=TWO_SERVERS,
    )


def test_sourceTransportServersRequiredWithoutServers(tmp_path):
    assertError(
        tmp_path,
        DNS,
        "[SendConnector C]",
        "SendConnector C",
        "SourceTransportServers",
        "SourceTransportServers is required when org.ini defines no [TransportServer]",
        head="",
    )


def test_sourceTransportServersInTheirCanonicalSpelling(tmp_path):
    org = organization(tmp_path, DNS + "SourceTransportServers = hubb, 'HUBA'\n", head=TWO_SERVERS)
    assert sendConnector(org, "C").sourceTransportServers == ("HubB", "HubA")


# The TransportServer's send-side settings


def test_transportServerDefaults(tmp_path):
    org = organization(tmp_path, "")
    server = org.transportServers["HubA"]
    assert server.messageExpirationTimeout == 2 * 86400
    assert server.delayNotificationTimeout == 4 * 3600
    assert server.messageRetryInterval == 60
    assert server.transientFailureRetryCount == 6
    assert server.transientFailureRetryInterval == 300
    assert server.outboundConnectionFailureRetryInterval == 600
    assert (server.maxOutboundConnections, server.maxPerDomainOutboundConnections) == (1000, 20)
    assert server.messageTrackingLogEnabled is True
    assert server.messageTrackingLogPath == str(tmp_path / "var" / "HubA" / "MessageTracking")
    assert server.sendProtocolLogPath == str(tmp_path / "var" / "HubA" / "ProtocolLog" / "SmtpSend")
    assert server.receiveProtocolLogPath == str(tmp_path / "var" / "HubA" / "ProtocolLog" / "SmtpReceive")
    assert server.externalPostmasterAddress is None
    assert server.internalDNSServers == server.externalDNSServers == ()
    assert org.postmasterAddressOf("HubA") == "postmaster@fabrikam.com"


def test_transportServerKeysAreRead(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "org.ini"
    path.write_text(
        """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
MessageExpirationTimeout = 90.00:00:00
DelayNotificationTimeout = 00:00:01
MessageRetryInterval = 1.00:00:00
TransientFailureRetryCount = 0
TransientFailureRetryInterval = 12:00:00
OutboundConnectionFailureRetryInterval = 20.00:00:00
MaxOutboundConnections = unlimited
MaxPerDomainOutboundConnections = Unlimited
MessageTrackingLogEnabled = $false
MessageTrackingLogPath = ../logs/tracking
SendProtocolLogPath = /var/log/exmta/send
ReceiveProtocolLogPath = logs/receive
ExternalPostmasterAddress = SMTP:Postmaster@Fabrikam.com
InternalDNSServers = 10.0.0.53, 127.0.0.1:5353
ExternalDNSServers = [2001:db8::53]:53, 198.51.100.53
""",
        encoding="utf-8",
    )
    org = parseOrganization(path.read_text(), str(path))
    server = org.transportServers["HubA"]
    assert server.messageExpirationTimeout == 90 * 86400
    assert server.delayNotificationTimeout == 1
    assert server.messageRetryInterval == 86400
    assert server.transientFailureRetryCount == 0
    assert server.transientFailureRetryInterval == 12 * 3600
    assert server.outboundConnectionFailureRetryInterval == 20 * 86400
    assert server.maxOutboundConnections is server.maxPerDomainOutboundConnections is None
    assert server.messageTrackingLogEnabled is False
    assert server.messageTrackingLogPath == str(tmp_path / "logs" / "tracking")
    assert server.sendProtocolLogPath == "/var/log/exmta/send"
    assert server.receiveProtocolLogPath == str(folder / "logs" / "receive")
    assert server.externalPostmasterAddress == "postmaster@fabrikam.com"
    assert server.internalDNSServers == (("10.0.0.53", 53), ("127.0.0.1", 5353))
    assert server.externalDNSServers == (("2001:db8::53", 53), ("198.51.100.53", 53))
    assert org.postmasterAddressOf("HubA") == "postmaster@fabrikam.com"


def test_transportServerNullPostmaster(tmp_path):
    org = organization(tmp_path, "", head=SERVER.replace("Fqdn", "ExternalPostmasterAddress = $null\nFqdn"))
    assert org.transportServers["HubA"].externalPostmasterAddress is None


SERVER_HEAD = "[TransportServer HubA]\nFqdn = huba.fabrikam.com\n"


@pytest.mark.parametrize(
    "line, key, message",
    [
        ("MessageExpirationTimeout = 00:00:04", "MessageExpirationTimeout", "it must be 00:00:05 to 90.00:00:00"),
        ("MessageExpirationTimeout = 90.00:00:01", "MessageExpirationTimeout", "it must be 00:00:05 to 90.00:00:00"),
        ("DelayNotificationTimeout = 30.00:00:01", "DelayNotificationTimeout", "it must be 00:00:01 to 30.00:00:00"),
        ("DelayNotificationTimeout = 00:00:00", "DelayNotificationTimeout", "it must be 00:00:01"),
        ("MessageRetryInterval = 1.00:00:01", "MessageRetryInterval", "it must be 00:00:01 to 1.00:00:00"),
        ("TransientFailureRetryCount = 16", "TransientFailureRetryCount", "it must be 0 to 15"),
        ("TransientFailureRetryCount = -1", "TransientFailureRetryCount", "it must be 0 to 15"),
        ("TransientFailureRetryInterval = 12:00:01", "TransientFailureRetryInterval", "it must be 00:00:01 to 12:00:00"),
        ("OutboundConnectionFailureRetryInterval = 20.00:00:01", "OutboundConnectionFailureRetryInterval", "it must be 00:00:01 to 20.00:00:00"),
        ("MaxOutboundConnections = 0", "MaxOutboundConnections", "0 is out of range"),
        ("MaxOutboundConnections = 10", "MaxOutboundConnections", "MaxPerDomainOutboundConnections (20) must not exceed MaxOutboundConnections (10)"),
        ("MaxPerDomainOutboundConnections = 1001", "MaxPerDomainOutboundConnections", "MaxPerDomainOutboundConnections (1001) must not exceed MaxOutboundConnections (1000)"),
        ("MaxPerDomainOutboundConnections = unlimited", "MaxPerDomainOutboundConnections", "(unlimited) must not exceed MaxOutboundConnections (1000)"),
        ("MaxPerDomainOutboundConnections = many", "MaxPerDomainOutboundConnections", "is not a whole number or 'unlimited'"),
        ("MessageTrackingLogEnabled = sometimes", "MessageTrackingLogEnabled", "use $true or $false"),
        ("ExternalPostmasterAddress = postmaster", "ExternalPostmasterAddress", "'postmaster' is not an e-mail address"),
        ("ExternalPostmasterAddress = postmaster@not a domain", "ExternalPostmasterAddress", "is not a valid host name"),
        ("InternalDNSServers = dns.fabrikam.com", "InternalDNSServers", "is not a DNS server's IP address"),
        ("ExternalDNSServers = 10.0.0.53:0", "ExternalDNSServers", "is not a DNS server's IP address"),
    ],
)
def test_transportServerRules(tmp_path, line, key, message):
    assertError(tmp_path, line + "\n", line, "TransportServer HubA", key, message, head=SERVER_HEAD)


def test_perDomainAboveTotalPointsAtTheKeyGiven(tmp_path):
    assertError(
        tmp_path,
        "MaxPerDomainOutboundConnections = 50\nMaxOutboundConnections = 40\n",
        "MaxPerDomainOutboundConnections",
        "TransportServer HubA",
        "MaxPerDomainOutboundConnections",
        "(50) must not exceed MaxOutboundConnections (40)",
        head=SERVER_HEAD,
    )


def test_postmasterAddressOf(tmp_path):
    head = "[TransportServer HubA]\nFqdn = huba.fabrikam.com\n"
    org = organization(
        tmp_path,
        "[AcceptedDomain contoso.com]\nDomainType = ExternalRelay\n[AcceptedDomain Fabrikam]\nDomainName = *.fabrikam.com\n",
        head=head,
    )
    assert org.postmasterAddressOf("HubA") == "postmaster@fabrikam.com"
    assert org.postmasterAddressOf("HubZ") == "postmaster@fabrikam.com"
    assert organization(tmp_path, "", head=head).postmasterAddressOf("HubA") is None


# Receive connectors' ProtocolLoggingLevel


def test_receiveConnectorProtocolLoggingLevel(tmp_path):
    body = "[ReceiveConnector C]\nBindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.1\n"
    (c,) = organization(tmp_path, body).receiveConnectors
    assert c.protocolLoggingLevel == "None"
    (c,) = organization(tmp_path, body + "ProtocolLoggingLevel = VERBOSE\n").receiveConnectors
    assert c.protocolLoggingLevel == "Verbose"
    assertError(
        tmp_path,
        body + "ProtocolLoggingLevel = All\n",
        "ProtocolLoggingLevel",
        "ReceiveConnector C",
        "ProtocolLoggingLevel",
        "'All' is not one of: None, Verbose",
    )


# Origin: pointing back into org.ini after loading


def test_originPointsAtKeys():
    origin = Origin("/etc/org.ini", 40, "SendConnector C", (("AddressSpaces", 41), ("AuthenticationCredential", 44)))
    assert origin.lineOf("authenticationcredential") == 44
    assert origin.lineOf("Port") == 40
    error = origin.error("no credential named 'gw'", "AuthenticationCredential")
    assert isinstance(error, ConfigError)
    assert str(error) == "/etc/org.ini:44: [SendConnector C] AuthenticationCredential: no credential named 'gw'"
    assert str(origin.error("broken")) == "/etc/org.ini:40: [SendConnector C]: broken"
    assert Origin("p", 1, "s").keys == ()


def test_sendConnectorsOfTheShippedFileAreWhereTheyAreWritten():
    shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "etc", "org.ini")
    with open(shipped, encoding="utf-8") as handle:
        text = handle.read()
    org = parseOrganization(text, shipped)
    (c,) = org.sendConnectors
    lines = text.splitlines()
    assert lines[c.origin.line - 1] == "[SendConnector ToInternetGateway]"
    assert lines[c.origin.lineOf("SmartHosts") - 1] == "SmartHosts = smtpgateway1.contoso.com"


LINKED_HEAD = SERVER + """
[ReceiveConnector From Appliance]
Bindings = 127.0.0.1:2525
RemoteIPRanges = 127.0.0.0/8
PermissionGroups = AnonymousUsers
"""
LINKED = ("[SendConnector Through Appliance]\nSmartHosts = 127.0.0.2\nDNSRoutingEnabled = $false\n"
          "MaxMessageSize = unlimited\nLinkedReceiveConnector = From Appliance\n")


def test_sendOptionDefaultsAndValues(tmp_path):
    c = sendConnector(organization(tmp_path, DNS), "C")
    assert (c.forceHELO, c.sourceIPAddress, c.errorPolicies, c.linkedReceiveConnector,
            c.isScopedConnector) == (False, "0.0.0.0", frozenset(), None, False)
    c = sendConnector(organization(tmp_path, DNS + "ForceHELO = $true\nSourceIPAddress = 127.0.0.5\n"
                                   "ErrorPolicies = DowngradeDnsFailures, UpgradeCustomFailures\n"
                                   "IsScopedConnector = $true\nDomainSecureEnabled = $false\n"), "C")
    assert (c.forceHELO, c.sourceIPAddress, c.errorPolicies, c.isScopedConnector) == (
        True, "127.0.0.5", {"DowngradeDnsFailures", "UpgradeCustomFailures"}, True)


def test_linkedReceiveConnector(tmp_path):
    org = organization(tmp_path, LINKED, head=LINKED_HEAD)
    c = sendConnector(org, "Through Appliance")
    assert c.linkedReceiveConnector == "HubA\\From Appliance"
    assert c.addressSpaces == ()


@pytest.mark.parametrize("change, message", [
    (("LinkedReceiveConnector", "AddressSpaces = *\nLinkedReceiveConnector"), "AddressSpaces must not be set"),
    (("MaxMessageSize = unlimited\n", ""), "MaxMessageSize must be unlimited"),
])
def test_linkedReceiveConnectorRules(tmp_path, change, message):
    assertError(tmp_path, LINKED.replace(*change), "LinkedReceiveConnector =", "SendConnector Through Appliance",
                "LinkedReceiveConnector", message, head=LINKED_HEAD)


def test_oneSendConnectorPerLinkedReceiveConnector(tmp_path):
    second = LINKED.replace("Through Appliance", "Second")
    assertError(tmp_path, LINKED + "\n" + second, "LinkedReceiveConnector =", "SendConnector Second",
                "LinkedReceiveConnector", "already linked", head=LINKED_HEAD, occurrence=2)
