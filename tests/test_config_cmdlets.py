"""
Tests for the configuration cmdlets (L{exmta.shell.config_cmdlets},
L{exmta.shell.connector_cmdlets}, L{exmta.shell.recipient_cmdlets}),
called as the Shell calls them: New- then Get- shows the same values, Set-
changes only what it names, Remove- removes only its section, secrets stay
out of org.ini, and errors name the problem.  A few go through the Shell's
runtime in-process, for what the language hands the cmdlets (sizes such as
10MB, hashtables, pipelines).
"""

import os
import stat
import subprocess
import sys

import pytest

from exmta.auth.accounts import AccountStore
from exmta.auth.credentials import CredentialStore
from exmta.config import loadOrganization
from exmta.shell import config_cmdlets  # noqa: F401 (registers the cmdlets)
from exmta.shell.cmdlet import CMDLETS, CmdletError, Context, PSCredential, SecureString
from exmta.shell.host import MemoryHost
from exmta.shell.runtime import Session, loadCmdlets

loadCmdlets()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASE = """\
# The organization the cmdlet tests start from.
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Administrator]
PrimarySmtpAddress = administrator@fabrikam.com

# Exchange's default connector.
[ReceiveConnector Default HubA]
Bindings = 0.0.0.0:25
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
PermissionGroups = ExchangeUsers, ExchangeServers
"""

PASSWORD = "Gw-Pa55word!"


class Shell:
    """
    Calls cmdlets on one org.ini as the runtime does: the registered
    function, a L{Context}, the parameters as keyword arguments.
    """

    def __init__(self, folder, text=BASE):
        self.folder = folder
        self.path = os.path.join(folder, "org.ini")
        with open(self.path, "w") as handle:
            handle.write(text)
        self.host = MemoryHost()

    def __call__(self, name, WhatIf=False, **parameters):
        context = Context(self.path, host=self.host, whatIf=WhatIf)
        result = CMDLETS[name.lower()].function(context, **parameters)
        if result is None:
            return []
        if isinstance(result, (list, tuple)):
            return list(result)
        return [result]

    def one(self, name, **parameters):
        (result,) = self(name, **parameters)
        return result

    def text(self):
        with open(self.path, "rb") as handle:
            return handle.read().decode()

    def organization(self):
        return loadOrganization(self.path)

    def line(self, statement):
        """
        Run C{statement} through the Shell's runtime.

        @return: whether it succeeded.
        """
        return Session(self.path, host=self.host).run(statement)

    @property
    def credentials(self):
        return CredentialStore(os.path.join(self.folder, "credentials"))

    @property
    def accounts(self):
        return AccountStore(os.path.join(self.folder, "accounts"))


@pytest.fixture
def shell(tmp_path):
    return Shell(str(tmp_path))


def changed(before, after):
    """
    @return: (removed lines, added lines) between two texts.
    """
    old, new = before.splitlines(), after.splitlines()
    return [line for line in old if line not in new], [line for line in new if line not in old]


def refused(shell, name, match, **parameters):
    """
    C{name} fails with a L{CmdletError} matching C{match}, and org.ini and
    the secret stores are as they were.
    """
    before = shell.text()
    stores = set(os.listdir(shell.folder)) - {"org.ini.lock"}
    with pytest.raises(CmdletError, match=match) as caught:
        shell(name, **parameters)
    assert shell.text() == before
    assert set(os.listdir(shell.folder)) - {"org.ini.lock"} == stores
    return str(caught.value)


# Send connectors

SEND = dict(
    Name="ToContoso",
    Usage="Partner",
    AddressSpaces=("contoso.com;10", "SMTP:*.contoso.net"),
    SmartHosts=("[192.168.1.10]:2525", "smtp.contoso.com"),
    DNSRoutingEnabled=False,
    SmartHostAuthMechanism="ExternalAuthoritative",
    SourceTransportServers="HubA",
    Port=587,
    Fqdn="out.fabrikam.com",
    RequireTLS=True,
    TlsAuthLevel="DomainValidation",
    TlsDomain="smtp.contoso.com",
    IgnoreSTARTTLS=False,
    MaxMessageSize=20 * 1024**2,
    ConnectionInactivityTimeOut="00:05:00",
    UseExternalDNSServersEnabled=True,
    ProtocolLoggingLevel="Verbose",
    Enabled=False,
    Comment="To the partner",
)

SEND_SHOWN = dict(
    Identity="ToContoso",
    Name="ToContoso",
    Usage="Partner",
    AddressSpaces=("SMTP:contoso.com;10", "SMTP:*.contoso.net;1"),
    SmartHosts=("192.168.1.10:2525", "smtp.contoso.com"),
    DNSRoutingEnabled=False,
    SmartHostAuthMechanism="ExternalAuthoritative",
    AuthenticationCredential=None,
    SourceTransportServers=("HubA",),
    Port=587,
    Fqdn="out.fabrikam.com",
    RequireTLS=True,
    TlsAuthLevel="DomainValidation",
    TlsDomain="smtp.contoso.com",
    IgnoreSTARTTLS=False,
    MaxMessageSize="20 MB (20,971,520 bytes)",
    ConnectionInactivityTimeOut="00:05:00",
    UseExternalDNSServersEnabled=True,
    ProtocolLoggingLevel="Verbose",
    Enabled=False,
    Comment="To the partner",
    ForceHELO=False,
    SourceIPAddress="0.0.0.0",
    ErrorPolicies="Default",
    LinkedReceiveConnector=None,
    IsScopedConnector=False,
)


def test_newSendConnectorThenGetShowsTheSameValues(shell):
    created = shell.one("New-SendConnector", **SEND)
    assert vars(created) == SEND_SHOWN
    assert vars(shell.one("Get-SendConnector", Identity="tocontoso")) == SEND_SHOWN
    # The section holds exactly what was given, in org.ini's syntax.
    assert shell.text() == BASE + (
        "\n[SendConnector ToContoso]\nUsage = Partner\n"
        "AddressSpaces = contoso.com;10, SMTP:*.contoso.net\n"
        "SmartHosts = [192.168.1.10]:2525, smtp.contoso.com\nDNSRoutingEnabled = $false\n"
        "SmartHostAuthMechanism = ExternalAuthoritative\nSourceTransportServers = HubA\n"
        "Port = 587\nFqdn = out.fabrikam.com\nRequireTLS = $true\nTlsAuthLevel = DomainValidation\n"
        "TlsDomain = smtp.contoso.com\nIgnoreSTARTTLS = $false\nMaxMessageSize = 20MB\n"
        "ConnectionInactivityTimeOut = 00:05:00\nUseExternalDNSServersEnabled = $true\n"
        "ProtocolLoggingLevel = Verbose\nEnabled = $false\nComment = To the partner\n"
    )


def test_getValuesFeedBackIntoSet(shell):
    """
    What Get- shows reads back as the same value (sizes, address spaces).
    """
    shell("New-SendConnector", **SEND)
    before = shell.one("Get-SendConnector", Identity="ToContoso")
    shell("Set-SendConnector", Identity=before, AddressSpaces=before.AddressSpaces,
          MaxMessageSize=before.MaxMessageSize, SmartHosts=before.SmartHosts)
    assert shell.one("Get-SendConnector", Identity="ToContoso") == before


def test_newSendConnectorStoresTheCredentialOutsideOrgIni(shell):
    credential = PSCredential("smtpgateway@contoso.com", SecureString(PASSWORD))
    created = shell.one(
        "New-SendConnector", Name="ToInternetGateway", AddressSpaces=("*",),
        SmartHosts=("smtpgateway1.contoso.com",), SmartHostAuthMechanism=("BasicAuth", "BasicAuthRequireTLS"),
        AuthenticationCredential=credential, SourceTransportServers=("HubA",), DNSRoutingEnabled=False,
    )
    assert created.AuthenticationCredential == "ToInternetGateway"
    assert PASSWORD not in repr(created)
    assert "AuthenticationCredential = ToInternetGateway\n" in shell.text()
    assert PASSWORD not in shell.text()
    assert tuple(shell.credentials.get("ToInternetGateway")) == ("smtpgateway@contoso.com", PASSWORD)
    assert stat.S_IMODE(os.stat(shell.credentials.path).st_mode) == 0o600
    assert shell.one("Test-Config").Credentials == 1


def test_credentialNamesFollowConnectorNames(shell):
    shell("New-SendConnector", Name="To Internet Gateway", AddressSpaces="*", SmartHosts="gw.contoso.com",
          DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth",
          AuthenticationCredential=PSCredential("u", "p"))
    assert "AuthenticationCredential = To-Internet-Gateway\n" in shell.text()
    assert shell.credentials.get("To-Internet-Gateway") == ("u", "p")


def test_authenticationCredentialMayNameAStoredCredential(shell):
    shell.credentials.set("Shared", "hub@contoso.com", PASSWORD)
    shell("New-SendConnector", Name="A", AddressSpaces="*", SmartHosts="gw.contoso.com",
          DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth", AuthenticationCredential="Shared")
    assert shell.organization().sendConnector("A").authenticationCredential == "Shared"
    message = refused(shell, "New-SendConnector", "no credential named 'Missing'", Name="B", AddressSpaces="*",
                      SmartHosts="gw.contoso.com", DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth",
                      AuthenticationCredential="Missing")
    assert "Get-Credential" in message


def test_basicAuthWithoutACredentialIsRefused(shell):
    message = refused(shell, "New-SendConnector", "AuthenticationCredential", Name="A", AddressSpaces="*",
                      SmartHosts="gw.contoso.com", DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth")
    assert message.startswith("[SendConnector A] AuthenticationCredential: is required with SmartHostAuthMechanism BasicAuth")
    assert "unchanged" in message


def test_invalidCredentialIsRefusedBeforeAnythingIsStored(shell):
    refused(shell, "New-SendConnector", "not a user name", Name="A", AddressSpaces="*", SmartHosts="gw.contoso.com",
            DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth",
            AuthenticationCredential=PSCredential(" spaced", "p"))
    refused(shell, "New-SendConnector", "takes a credential", Name="A", AddressSpaces="*", SmartHosts="gw.contoso.com",
            DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth", AuthenticationCredential=42)


@pytest.mark.parametrize(
    "parameters, match",
    [
        (dict(SmartHosts="gw.contoso.com"), r"SmartHosts: DNSRoutingEnabled must be \$false when SmartHosts is set"),
        (dict(Port=70000, DNSRoutingEnabled=True), "Port: 70000 is out of range; it must be 1 to 65535"),
        (dict(AddressSpaces="*contoso.com"), "AddressSpaces: .*a wildcard must be"),
        (dict(SourceTransportServers="HubZ"), r"SourceTransportServers: no \[TransportServer HubZ\] is defined"),
        (dict(Usage="Sideways"), "-Usage: 'Sideways' is not one of: Custom, Internal, Internet, Partner"),
        (dict(Usage="Internal", Internet=True), "Parameter set cannot be resolved"),
        (dict(Enabled=3), r"-Enabled takes \$true or \$false"),
        (dict(Comment="two\nlines"), "line break"),
    ],
)
def test_newSendConnectorErrorsNameTheProblem(shell, parameters, match):
    refused(shell, "New-SendConnector", match, **dict(dict(Name="X", AddressSpaces="*"), **parameters))


def test_newSendConnectorTwiceIsRefused(shell):
    shell("New-SendConnector", Name="X", AddressSpaces="*")
    refused(shell, "New-SendConnector", "A Send connector named 'x' already exists", Name="x", AddressSpaces="*")


def test_usageSwitch(shell):
    assert shell.one("New-SendConnector", Name="X", AddressSpaces="*", Internet=True).Usage == "Internet"


def test_setSendConnectorChangesOnlyWhatItNames(shell):
    shell("New-SendConnector", **SEND)
    before, text = shell.one("Get-SendConnector", Identity="ToContoso"), shell.text()
    assert shell("Set-SendConnector", Identity="ToContoso", Port=2525) == []
    assert changed(text, shell.text()) == (["Port = 587"], ["Port = 2525"])
    after = shell.one("Get-SendConnector", Identity="ToContoso")
    assert vars(after) == dict(vars(before), Port=2525)


def test_setSendConnectorNullRestoresTheDefault(shell):
    shell("New-SendConnector", **SEND)
    shell("Set-SendConnector", Identity="ToContoso", MaxMessageSize=None, Comment=None)
    shown = shell.one("Get-SendConnector", Identity="ToContoso")
    assert (shown.MaxMessageSize, shown.Comment) == ("10 MB (10,485,760 bytes)", None)
    assert "MaxMessageSize" not in shell.text()


def test_setSendConnectorAddsToAMultiValuedParameter(shell):
    shell("New-SendConnector", **SEND)
    shell("Set-SendConnector", Identity="ToContoso", AddressSpaces={"Add": "tailspintoys.com", "Remove": "contoso.com;10"})
    assert "AddressSpaces = SMTP:*.contoso.net, tailspintoys.com\n" in shell.text()


def test_setSendConnectorRename(shell):
    shell("New-SendConnector", **SEND)
    shell("Set-SendConnector", Identity="ToContoso", Name="ToPartner")
    assert [c.name for c in shell.organization().sendConnectors] == ["ToPartner"]
    assert "[SendConnector ToPartner]\nUsage = Partner\n" in shell.text()
    refused(shell, "Set-SendConnector", "couldn't be found", Identity="ToContoso", Port=25)


def test_setSendConnectorNewCredential(shell):
    shell("New-SendConnector", Name="Gw", AddressSpaces="*", SmartHosts="gw.contoso.com", DNSRoutingEnabled=False,
          SmartHostAuthMechanism="BasicAuth", AuthenticationCredential=PSCredential("old", "old-password"))
    text = shell.text()
    shell("Set-SendConnector", Identity="Gw", AuthenticationCredential=PSCredential("new", "new-password"))
    assert shell.text() == text
    assert shell.credentials.get("Gw") == ("new", "new-password")


def test_droppingBasicAuthDropsTheCredentialKey(shell):
    shell("New-SendConnector", Name="Gw", AddressSpaces="*", SmartHosts="gw.contoso.com", DNSRoutingEnabled=False,
          SmartHostAuthMechanism="BasicAuth", AuthenticationCredential=PSCredential("u", "p"))
    shell("Set-SendConnector", Identity="Gw", SmartHostAuthMechanism="None")
    assert "AuthenticationCredential" not in shell.text()
    # The secret stays for a later -AuthenticationCredential Gw ...
    assert "Gw" in shell.credentials
    shell("Set-SendConnector", Identity="Gw", SmartHostAuthMechanism="BasicAuth", AuthenticationCredential="Gw")
    # ... and goes when the credential is cleared.
    shell("Set-SendConnector", Identity="Gw", SmartHostAuthMechanism=None, AuthenticationCredential=None)
    assert "Gw" not in shell.credentials


def test_removeSendConnectorRemovesOnlyItsSectionAndCredential(shell):
    shell("New-SendConnector", Name="Other", AddressSpaces="contoso.com")
    text = shell.text()
    shell("New-SendConnector", Name="Gw", AddressSpaces="*", SmartHosts="gw.contoso.com", DNSRoutingEnabled=False,
          SmartHostAuthMechanism="BasicAuth", AuthenticationCredential=PSCredential("u", "p"))
    shell("Remove-SendConnector", Identity="gw")
    assert shell.text() == text
    assert shell.credentials.names() == []
    refused(shell, "Remove-SendConnector", "object 'Gw' couldn't be found in", Identity="Gw")


def test_sharedCredentialStaysWhileAConnectorUsesIt(shell):
    shell.credentials.set("Shared", "u", "p")
    for name in ("A", "B"):
        shell("New-SendConnector", Name=name, AddressSpaces=f"{name}.example", SmartHosts="gw.contoso.com",
              DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth", AuthenticationCredential="Shared")
    shell("Remove-SendConnector", Identity="A")
    assert "Shared" in shell.credentials
    shell("Remove-SendConnector", Identity="B")
    assert "Shared" not in shell.credentials


def test_whatIfPrintsTheDiffAndChangesNothing(shell):
    text = shell.text()
    result = shell("New-SendConnector", WhatIf=True, Name="Gw", AddressSpaces="*", SmartHosts="gw.contoso.com",
                   DNSRoutingEnabled=False, SmartHostAuthMechanism="BasicAuth",
                   AuthenticationCredential=PSCredential("u", "p"))
    assert result == []
    assert shell.text() == text
    assert not os.path.exists(shell.credentials.path)
    what, diff = shell.host.output
    assert what == 'What if: Performing the operation "New-SendConnector" on target "Gw".'
    assert diff.startswith(f"--- {shell.path}\n+++ {shell.path}\n@@ ")
    assert "\n+[SendConnector Gw]\n+AddressSpaces = *\n" in diff
    # An invalid change is refused under -WhatIf too.
    refused(shell, "New-SendConnector", "DNSRoutingEnabled", WhatIf=True, Name="Gw", AddressSpaces="*",
            SmartHosts="gw.contoso.com")


def test_getSendConnectorWildcardsAndUnknown(shell):
    for name in ("ToA", "ToB", "Other"):
        shell("New-SendConnector", Name=name, AddressSpaces=f"{name}.example")
    assert [c.Name for c in shell("Get-SendConnector", Identity="to*")] == ["ToA", "ToB"]
    assert len(shell("Get-SendConnector")) == 3
    with pytest.raises(CmdletError, match="object 'Nope' couldn't be found"):
        shell("Get-SendConnector", Identity="Nope")


# Receive connectors

RECEIVE = dict(
    Name="Partners",
    Server="huba",
    Usage="Partner",
    Bindings=("127.0.0.1:2526", "[::1]:2526"),
    RemoteIPRanges=("192.168.0.0/24", "10.0.0.1-10.0.0.9"),
    AuthMechanism=("Tls", "BasicAuth"),
    PermissionGroups="Partners",
    Fqdn="mx.fabrikam.com",
    Banner="220 mx.fabrikam.com ready",
    MaxMessageSize=25 * 1024**2,
    MaxRecipientsPerMessage=50,
    MaxHeaderSize=32 * 1024,
    MaxHopCount=20,
    ConnectionTimeout="00:20:00",
    ConnectionInactivityTimeout="00:01:00",
    MaxInboundConnection="unlimited",
    MaxInboundConnectionPerSource=5,
    MaxLogonFailures=0,
    MaxProtocolErrors=2,
    AuthTarpitInterval="00:00:01",
    RequireTLS=True,
    BareLinefeedRejectionEnabled=False,
    ProtocolLoggingLevel="Verbose",
    Enabled=True,
    Comment="Partner mail",
)

RECEIVE_SHOWN = dict(
    Identity="HubA\\Partners",
    Name="Partners",
    Server="HubA",
    Usage="Partner",
    Bindings=("127.0.0.1:2526", "[::1]:2526"),
    RemoteIPRanges=("192.168.0.0/24", "10.0.0.1-10.0.0.9"),
    AuthMechanism="Tls, BasicAuth",
    PermissionGroups="Partners",
    Fqdn="mx.fabrikam.com",
    Banner="220 mx.fabrikam.com ready",
    MaxMessageSize="25 MB (26,214,400 bytes)",
    MaxRecipientsPerMessage=50,
    MaxHeaderSize="32 KB (32,768 bytes)",
    MaxHopCount=20,
    ConnectionTimeout="00:20:00",
    ConnectionInactivityTimeout="00:01:00",
    MaxInboundConnection="unlimited",
    MaxInboundConnectionPerSource=5,
    MaxLogonFailures=0,
    MaxProtocolErrors=2,
    AuthTarpitInterval="00:00:01",
    RequireTLS=True,
    BareLinefeedRejectionEnabled=False,
    ProtocolLoggingLevel="Verbose",
    Enabled=True,
    Comment="Partner mail",
    CredentialCheckers=("Accounts",),
    DeliveryStatusNotificationEnabled=True,
    ChunkingEnabled=True,
    BinaryMimeEnabled=True,
    EightBitMimeEnabled=True,
    PipeliningEnabled=True,
    EnhancedStatusCodesEnabled=True,
    SizeEnabled="Enabled",
    LongAddressesEnabled=False,
    SuppressXAnonymousTls=False,
    TarpitInterval="00:00:05",
    MessageRateLimit="unlimited",
    MessageRateSource="IPAddress",
    RequireEHLODomain=False,
    DefaultDomain=None,
    MaxLocalHopCount=8,
    MaxInboundConnectionPercentagePerSource=2,
)


def test_newReceiveConnectorThenGetShowsTheSameValues(shell):
    assert vars(shell.one("New-ReceiveConnector", **RECEIVE)) == RECEIVE_SHOWN
    assert vars(shell.one("Get-ReceiveConnector", Identity="HubA\\partners")) == RECEIVE_SHOWN
    assert vars(shell.one("Get-ReceiveConnector", Identity="Partners")) == RECEIVE_SHOWN
    assert "\n[ReceiveConnector Partners]\nServer = HubA\nUsage = Partner\n" in shell.text()


def test_internalUsageListensOnTheDefaultBinding(shell):
    """
    The reference's Externally Secured connector: no -Bindings, so
    Exchange's 0.0.0.0:25, shared with the default connector and told apart
    by RemoteIPRanges; Internal presets the permission groups.
    """
    shown = shell.one("New-ReceiveConnector", Name="FromInternetGateway", Server="HubA", Usage="Internal",
                      RemoteIPRanges="192.168.1.10", AuthMechanism="ExternalAuthoritative")
    assert (shown.Bindings, shown.RemoteIPRanges) == (("0.0.0.0:25",), ("192.168.1.10",))
    assert (shown.AuthMechanism, shown.PermissionGroups) == ("ExternalAuthoritative", "ExchangeServers, ExchangeLegacyServers")
    assert shell.text().endswith(
        "\n[ReceiveConnector FromInternetGateway]\nServer = HubA\nUsage = Internal\n"
        "RemoteIPRanges = 192.168.1.10\nAuthMechanism = ExternalAuthoritative\n"
    )


@pytest.mark.parametrize(
    "parameters, match",
    [
        (dict(Usage="Internal", Bindings="127.0.0.1:25", RemoteIPRanges="10.0.0.1"),
         "-Bindings can't be used with the Internal usage, which listens on 0.0.0.0:25"),
        (dict(Client=True, Bindings="127.0.0.1:587", RemoteIPRanges="10.0.0.1"),
         "-Bindings can't be used with the Client usage, which listens on 0.0.0.0:587"),
        (dict(Usage="Internet", Bindings="127.0.0.1:25", RemoteIPRanges="10.0.0.1"),
         "-RemoteIPRanges can't be used with the Internet usage"),
        (dict(Usage="Custom", RemoteIPRanges="10.0.0.1"), "-Bindings is required with the Custom usage"),
        (dict(Partner=True, Bindings="127.0.0.1:25"), "-RemoteIPRanges is required with the Partner usage"),
        (dict(Internal=True), "-RemoteIPRanges is required with the Internal usage"),
        (dict(Bindings="127.0.0.1:25", RemoteIPRanges="10.0.0.1"), "give -Usage"),
        (dict(Custom=True, Internet=True, Bindings="127.0.0.1:25"), "Parameter set cannot be resolved"),
        (dict(Name="HubA\\X", Custom=True, Bindings="127.0.0.1:25", RemoteIPRanges="1.2.3.4"), "cannot hold"),
        (dict(Name="Default HubA", Custom=True, Bindings="127.0.0.1:25", RemoteIPRanges="1.2.3.4"),
         "A Receive connector named 'Default HubA' already exists on server HubA"),
        (dict(Custom=True, Bindings="127.0.0.1:25", RemoteIPRanges="1.2.3.4", Server="HubZ"),
         r"\[ReceiveConnector X\] Server: no \[TransportServer HubZ\] is defined"),
        (dict(Internal=True, RemoteIPRanges="0.0.0.0-255.255.255.255"),
         "0.0.0.0-255.255.255.255 on 0.0.0.0:25 is already the range of ReceiveConnector 'Default HubA'"),
        (dict(Custom=True, Bindings="127.0.0.1:25", RemoteIPRanges="1.2.3.4", AuthMechanism="None,Tls"),
         "AuthMechanism: None must stand alone"),
        (dict(Custom=True, Bindings="127.0.0.1:25", RemoteIPRanges="1.2.3.4", Banner="hello"),
         "Banner: a Banner must start with 220"),
        (dict(Custom=True, Bindings="127.0.0.1:99999", RemoteIPRanges="1.2.3.4"), "Bindings: port 99999 is out of range"),
    ],
)
def test_newReceiveConnectorErrorsNameTheProblem(shell, parameters, match):
    refused(shell, "New-ReceiveConnector", match, **dict(dict(Name="X"), **parameters))


def test_setReceiveConnectorChangesOnlyWhatItNames(shell):
    shell("New-ReceiveConnector", **RECEIVE)
    before, text = shell.one("Get-ReceiveConnector", Identity="Partners"), shell.text()
    shell("Set-ReceiveConnector", Identity=before, Bindings="127.0.0.1:2600", MaxHopCount=25)
    assert changed(text, shell.text()) == (
        ["Bindings = 127.0.0.1:2526, [::1]:2526", "MaxHopCount = 20"],
        ["Bindings = 127.0.0.1:2600", "MaxHopCount = 25"],
    )
    after = shell.one("Get-ReceiveConnector", Identity="Partners")
    assert vars(after) == dict(vars(before), Bindings=("127.0.0.1:2600",), MaxHopCount=25)


def test_setReceiveConnectorRefusesWhatTheServerWould(shell):
    message = refused(shell, "Set-ReceiveConnector", "BasicAuthRequireTLS requires BasicAuth and Tls",
                      Identity="Default HubA", AuthMechanism="BasicAuthRequireTLS")
    assert message.startswith("[ReceiveConnector Default HubA] AuthMechanism: ")
    refused(shell, "Set-ReceiveConnector", "ConnectionInactivityTimeout .* must be less than ConnectionTimeout",
            Identity="Default HubA", ConnectionInactivityTimeout="00:20:00")
    refused(shell, "Set-ReceiveConnector", "not a time span", Identity="Default HubA", ConnectionTimeout=600)


def test_renameReceiveConnectorFollowsItsPermissions(shell):
    shell("New-ReceiveConnector", Name="Relay", Custom=True, PermissionGroups="AnonymousUsers",
          Bindings="10.2.3.4:25", RemoteIPRanges="192.168.5.77")
    shell("Add-ADPermission", Identity="Relay", User="NT AUTHORITY\\ANONYMOUS LOGON",
          ExtendedRights="Ms-Exch-SMTP-Accept-Any-Recipient")
    shell("Set-ReceiveConnector", Identity="HubA\\Relay", Name="AnonymousRelay")
    (connector,) = [c for c in shell.organization().receiveConnectors if c.name == "AnonymousRelay"]
    assert [p.user for p in connector.permissions] == ["NT AUTHORITY\\ANONYMOUS LOGON"]
    assert "Identity = HubA\\AnonymousRelay\n" in shell.text()


def test_removeReceiveConnectorTakesItsPermissionsAlong(shell):
    shell("New-ReceiveConnector", Name="Keep", Custom=True, PermissionGroups="AnonymousUsers",
          Bindings="10.2.3.5:25", RemoteIPRanges="192.168.5.78")
    shell("Add-ADPermission", Identity="Keep", User="NT AUTHORITY\\ANONYMOUS LOGON",
          ExtendedRights="ms-Exch-SMTP-Accept-Any-Recipient")
    text = shell.text()
    shell("New-ReceiveConnector", Name="Relay", Custom=True, PermissionGroups="AnonymousUsers",
          Bindings="10.2.3.4:25", RemoteIPRanges="192.168.5.77")
    for right in ("Ms-Exch-SMTP-Accept-Any-Recipient", "ms-Exch-Bypass-Anti-Spam"):
        shell("Add-ADPermission", Identity="Relay", User="NT AUTHORITY\\ANONYMOUS LOGON", ExtendedRights=right)
    shell("Remove-ReceiveConnector", Identity="HubA\\Relay")
    assert shell.text() == text


TWO_SERVERS = BASE.replace("Bindings = 0.0.0.0:25\n", "Server = HubA\nBindings = 0.0.0.0:25\n") + """
[TransportServer HubB]
Fqdn = hubb.fabrikam.com

[ReceiveConnector Relay]
Server = HubA
Bindings = 10.2.3.4:25
RemoteIPRanges = 192.168.5.77

[ReceiveConnector Relay]
Server = HubB
Bindings = 10.2.3.5:25
RemoteIPRanges = 192.168.5.77
"""


def test_serverNameTellsConnectorsApart(tmp_path):
    shell = Shell(str(tmp_path), TWO_SERVERS)
    assert [c.Identity for c in shell("Get-ReceiveConnector", Identity="Relay")] == ["HubA\\Relay", "HubB\\Relay"]
    assert [c.Identity for c in shell("Get-ReceiveConnector", Server="HubB")] == ["HubB\\Relay"]
    message = refused(shell, "Set-ReceiveConnector", "names a Receive connector on several servers",
                      Identity="Relay", Enabled=False)
    assert "HubA\\Relay, HubB\\Relay" in message
    shell("Set-ReceiveConnector", Identity="HubB\\Relay", Enabled=False)
    assert [c.enabled for c in shell.organization().receiveConnectors if c.name == "Relay"] == [True, False]
    shell("Add-ADPermission", Identity="HubB\\Relay", User="NT AUTHORITY\\ANONYMOUS LOGON",
          ExtendedRights="ms-Exch-SMTP-Submit")
    shell("Remove-ReceiveConnector", Identity="HubA\\Relay")
    assert [c.identity for c in shell.organization().receiveConnectors if c.name == "Relay"] == ["HubB\\Relay"]
    assert "Identity = HubB\\Relay\n" in shell.text()
    with pytest.raises(CmdletError, match="couldn't be found"):
        shell("Get-ReceiveConnector", Identity="HubC\\Relay")


# Permissions


def relay(shell):
    return shell.one("New-ReceiveConnector", Name="FromInternetGateway", Server="HubA", Usage="Custom",
                     PermissionGroups="AnonymousUsers", Bindings="10.2.3.4:25", RemoteIPRanges="192.168.5.77")


def test_addADPermissionOnAPipedConnector(shell):
    connector = relay(shell)
    (added,) = shell("Add-ADPermission", Identity=connector, User="NT AUTHORITY\\ANONYMOUS LOGON",
                     ExtendedRights="Ms-Exch-SMTP-Accept-Any-Recipient")
    assert vars(added) == dict(Identity="HubA\\FromInternetGateway", User="NT AUTHORITY\\ANONYMOUS LOGON", Deny=False,
                               IsInherited=False, AccessRights="ExtendedRight",
                               ExtendedRights=("ms-Exch-SMTP-Accept-Any-Recipient",))
    assert shell.text().endswith(
        "\n[ADPermission]\nIdentity = HubA\\FromInternetGateway\nUser = NT AUTHORITY\\ANONYMOUS LOGON\n"
        "ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient\n"
    )
    assert shell("Get-ADPermission", Identity="FromInternetGateway") == [added]
    (connector,) = [c for c in shell.organization().receiveConnectors if c.name == "FromInternetGateway"]
    from exmta.auth.permissions import ACCEPT_ANY_RECIPIENT, ANONYMOUS, rightsOf

    assert ACCEPT_ANY_RECIPIENT in rightsOf(connector, {ANONYMOUS})


def test_denyAndRemoveADPermission(shell):
    relay(shell)
    text = shell.text()
    shell("Add-ADPermission", Identity="FromInternetGateway", User="kim@fabrikam.com", AccessRights="ExtendedRight",
          ExtendedRights=("ms-Exch-SMTP-Submit", "ms-Exch-SMTP-Accept-Any-Sender"), Deny=True)
    assert "AccessRights = ExtendedRight\nDeny = $true\n" in shell.text()
    (entry,) = shell("Get-ADPermission", Identity="FromInternetGateway", User="KIM@fabrikam.com")
    assert entry.Deny and entry.ExtendedRights == ("ms-Exch-SMTP-Accept-Any-Sender", "ms-Exch-SMTP-Submit")
    refused(shell, "Remove-ADPermission", "'kim@fabrikam.com' has no entry", Identity="FromInternetGateway",
            User="kim@fabrikam.com", ExtendedRights="ms-Exch-SMTP-Submit")
    shell("Remove-ADPermission", Identity="FromInternetGateway", User="kim@fabrikam.com",
          ExtendedRights="MS-EXCH-SMTP-SUBMIT", Deny=True)
    assert "ExtendedRights = ms-Exch-SMTP-Accept-Any-Sender\n" in shell.text()
    shell("Remove-ADPermission", Identity="FromInternetGateway", User="kim@fabrikam.com", Deny=True)
    assert shell.text() == text


@pytest.mark.parametrize(
    "parameters, match",
    [
        (dict(ExtendedRights="ms-Exch-Teleport"), "ExtendedRights: 'ms-Exch-Teleport' is not an extended right exmta knows"),
        (dict(AccessRights="GenericAll"), "-AccessRights: exmta grants only extended rights"),
        (dict(), "-ExtendedRights is required"),
        (dict(Identity="Nowhere", ExtendedRights="ms-Exch-SMTP-Submit"), "object 'Nowhere' couldn't be found"),
    ],
)
def test_addADPermissionErrors(shell, parameters, match):
    relay(shell)
    refused(shell, "Add-ADPermission", match, **dict(dict(Identity="FromInternetGateway", User="x@y.z"), **parameters))


# Accepted domains


def test_acceptedDomains(shell):
    shown = shell.one("New-AcceptedDomain", Name="Contoso", DomainName="contoso.com", DomainType="InternalRelay")
    assert vars(shown) == dict(Identity="Contoso", Name="Contoso", DomainName="contoso.com",
                               DomainType="InternalRelay", Default=False)
    assert shell.one("Get-AcceptedDomain", Identity="contoso.com") == shown
    assert [d.Default for d in shell("Get-AcceptedDomain")] == [True, False]
    shell.one("New-AcceptedDomain", Name="*.tailspintoys.com", DomainName="*.tailspintoys.com")
    assert "\n[AcceptedDomain *.tailspintoys.com]\n" in shell.text()
    text = shell.text()
    shell("Set-AcceptedDomain", Identity="Contoso", DomainType="ExternalRelay")
    assert changed(text, shell.text()) == (["DomainType = InternalRelay"], ["DomainType = ExternalRelay"])
    shell("Remove-AcceptedDomain", Identity="contoso.com")
    shell("Remove-AcceptedDomain", Identity="*.tailspintoys.com")
    assert shell.text() == BASE


def test_renameAnAcceptedDomainNamedAfterItsDomain(shell):
    shell("Set-AcceptedDomain", Identity="fabrikam.com", Name="Fabrikam")
    assert [(d.Name, d.DomainName) for d in shell("Get-AcceptedDomain")] == [("Fabrikam", "fabrikam.com")]


def test_makeDefaultMovesTheDomainFirst(shell):
    shell("New-AcceptedDomain", Name="Contoso", DomainName="contoso.com")
    shell("New-AcceptedDomain", Name="Relay", DomainName="relay.example", DomainType="InternalRelay")
    shell("Set-AcceptedDomain", Identity="contoso.com", MakeDefault=True)
    assert [(d.Name, d.Default) for d in shell("Get-AcceptedDomain")] == [
        ("Contoso", True), ("fabrikam.com", False), ("Relay", False)]
    assert shell.text().index("[AcceptedDomain Contoso]") < shell.text().index("[AcceptedDomain fabrikam.com]")
    refused(shell, "Set-AcceptedDomain", "only an Authoritative domain can be", Identity="Relay",
            MakeDefault=True)
    refused(shell, "Set-AcceptedDomain", "-MakeDefault takes", Identity="Relay", MakeDefault="yes")
    shell("Set-AcceptedDomain", Identity="Relay", DomainType="Authoritative", MakeDefault=True)
    assert [d.Name for d in shell("Get-AcceptedDomain") if d.Default] == ["Relay"]


def test_acceptedDomainErrors(shell):
    refused(shell, "New-AcceptedDomain", "DomainName: 'not a domain' is not a valid host name",
            Name="X", DomainName="not a domain")
    refused(shell, "New-AcceptedDomain", "fabrikam.com is already an accepted domain", Name="Again", DomainName="fabrikam.com")
    refused(shell, "New-AcceptedDomain", "DomainType: 'Sometimes' is not one of", Name="X", DomainName="x.com",
            DomainType="Sometimes")
    refused(shell, "Remove-AcceptedDomain", "administrator@fabrikam.com is not in an Authoritative or InternalRelay",
            Identity="fabrikam.com")


# Transport servers


def test_getAndSetTransportServer(shell):
    server = shell.one("Get-TransportServer", Identity="HubA")
    assert (server.Name, server.MessageRetryInterval, server.MaxOutboundConnections, server.InternalDNSServers) == (
        "HubA", "00:01:00", 1000, ())
    text = shell.text()
    shell("Set-TransportServer", Identity=server, MessageRetryInterval="00:00:30",
          InternalDNSServers=("127.0.0.1:5353", "192.168.1.53"), MaxOutboundConnections="unlimited")
    assert changed(text, shell.text())[0] == []
    server = shell.one("Get-TransportServer")
    assert (server.MessageRetryInterval, server.MaxOutboundConnections, server.InternalDNSServers) == (
        "00:00:30", "unlimited", ("127.0.0.1:5353", "192.168.1.53"))
    refused(shell, "Set-TransportServer", "MaxPerDomainOutboundConnections .* must not exceed",
            Identity="HubA", MaxOutboundConnections=10)
    refused(shell, "Set-TransportServer", "couldn't be found", Identity="HubZ", MessageRetryInterval="00:00:30")


# Mailboxes and accounts


def test_newMailboxThenGetMailbox(shell):
    text = shell.text()
    shown = shell.one("New-Mailbox", Name="Kim Akers", UserPrincipalName="kim@fabrikam.com",
                      Password=SecureString(PASSWORD), PrimarySmtpAddress="kim.akers@fabrikam.com")
    assert vars(shown) == dict(Identity="Kim Akers", Name="Kim Akers", Alias="kim.akers",
                               PrimarySmtpAddress="kim.akers@fabrikam.com",
                               EmailAddresses=("SMTP:kim.akers@fabrikam.com",), UserPrincipalName="kim@fabrikam.com")
    assert shell.one("Get-Mailbox", Identity="kim@fabrikam.com") == shown
    assert shell.one("Get-Mailbox", Identity="SMTP:Kim.Akers@fabrikam.com") == shown
    assert changed(text, shell.text()) == ([], ["[Mailbox Kim Akers]", "PrimarySmtpAddress = kim.akers@fabrikam.com",
                                                "UserPrincipalName = kim@fabrikam.com"])
    assert PASSWORD not in shell.text()
    assert shell.accounts.verify("kim@fabrikam.com", PASSWORD)


def test_newMailboxByAlias(shell):
    shown = shell.one("New-Mailbox", Name="Dan", Alias="dan")
    assert (shown.PrimarySmtpAddress, shown.UserPrincipalName) == ("dan@fabrikam.com", "dan@fabrikam.com")
    assert not os.path.exists(shell.accounts.path)


def test_setMailboxAddresses(shell):
    shell("New-Mailbox", Name="Kim", PrimarySmtpAddress="kim@fabrikam.com", Password="p")
    shell("Set-Mailbox", Identity="Kim", EmailAddresses={"Add": ("smtp:k@fabrikam.com", "kimmy@fabrikam.com")})
    assert shell.one("Get-Mailbox", Identity="Kim").EmailAddresses == (
        "SMTP:kim@fabrikam.com", "smtp:k@fabrikam.com", "smtp:kimmy@fabrikam.com")
    # A new primary address keeps the old one, and the logon name.
    shell("Set-Mailbox", Identity="k@fabrikam.com", PrimarySmtpAddress="kim.akers@fabrikam.com")
    shown = shell.one("Get-Mailbox", Identity="Kim")
    assert shown.EmailAddresses == ("SMTP:kim.akers@fabrikam.com", "smtp:k@fabrikam.com",
                                    "smtp:kim@fabrikam.com", "smtp:kimmy@fabrikam.com")
    assert shown.UserPrincipalName == "kim@fabrikam.com"
    assert shell.accounts.verify("kim@fabrikam.com", "p")
    # Exchange's whole-list form: SMTP: marks the primary address.
    shell("Set-Mailbox", Identity="Kim", EmailAddresses=("smtp:kim.akers@fabrikam.com", "SMTP:kim@fabrikam.com"))
    shown = shell.one("Get-Mailbox", Identity="Kim")
    assert shown.EmailAddresses == ("SMTP:kim@fabrikam.com", "smtp:kim.akers@fabrikam.com")
    refused(shell, "Set-Mailbox", "kim@contoso.com is not in an Authoritative or InternalRelay accepted domain",
            Identity="Kim", EmailAddresses={"Add": "kim@contoso.com"})
    refused(shell, "Set-Mailbox", "already belongs to the mailbox", Identity="Kim",
            EmailAddresses={"Add": "administrator@fabrikam.com"})


def test_setMailboxPasswordAndLogonName(shell):
    shell("New-Mailbox", Name="Kim", UserPrincipalName="kim@fabrikam.com", Password="old")
    text = shell.text()
    shell("Set-Mailbox", Identity="Kim", Password="new")
    assert shell.text() == text
    assert shell.accounts.verify("kim@fabrikam.com", "new")
    refused(shell, "Set-Mailbox", "give -Password as well", Identity="Kim", UserPrincipalName="kim.akers@fabrikam.com")
    shell("Set-Mailbox", Identity="Kim", UserPrincipalName="kim.akers@fabrikam.com", Password="newer")
    assert shell.accounts.names() == ["kim.akers@fabrikam.com"]
    assert shell.accounts.verify("kim.akers@fabrikam.com", "newer")


def test_removeMailboxRemovesItsSectionAndAccount(shell):
    shell("New-User", Name="Gateway", UserPrincipalName="smtpgateway@fabrikam.com", Password=PASSWORD)
    shell("New-Mailbox", Name="Kim", UserPrincipalName="kim@fabrikam.com", Password="p")
    shell("Remove-Mailbox", Identity="kim@fabrikam.com")
    assert shell.text() == BASE
    assert shell.accounts.names() == ["smtpgateway@fabrikam.com"]


def test_newUserMakesOnlyTheAccount(shell):
    user = shell.one("New-User", Name="smtpgateway", UserPrincipalName="SMTPGateway@fabrikam.com",
                     Password=SecureString(PASSWORD))
    assert (user.Name, user.UserPrincipalName) == ("smtpgateway", "smtpgateway@fabrikam.com")
    assert shell.text() == BASE
    assert shell.accounts.verify("smtpgateway@fabrikam.com", PASSWORD)
    assert stat.S_IMODE(os.stat(shell.accounts.path).st_mode) == 0o600
    assert [u.UserPrincipalName for u in shell("Get-User")] == ["smtpgateway@fabrikam.com"]
    with pytest.raises(CmdletError, match="already in use"):
        shell("New-User", Name="again", UserPrincipalName="smtpgateway@fabrikam.com", Password="x")
    with pytest.raises(CmdletError, match="not a user principal name"):
        shell("New-User", Name="bad", UserPrincipalName="NT AUTHORITY\\SYSTEM", Password="x")
    with pytest.raises(CmdletError, match="the password is empty"):
        shell("New-User", Name="empty", UserPrincipalName="e@fabrikam.com", Password="")
    shell("Remove-User", Identity="smtpgateway@fabrikam.com")
    assert shell.accounts.names() == []


def test_newMailboxErrors(shell):
    refused(shell, "New-Mailbox", "contoso.com.* accepted domain", Name="X", PrimarySmtpAddress="x@contoso.com", Password="p")
    refused(shell, "New-Mailbox", "needs an address", Name="X")
    refused(shell, "New-Mailbox", "A mailbox named 'Administrator' already exists", Name="Administrator",
            PrimarySmtpAddress="a2@fabrikam.com")


# Test-Config


def test_testConfigChecksLikeCheckConfig(shell):
    result = shell.one("Test-Config")
    assert (result.Result, result.ReceiveConnectors, result.Mailboxes) == ("OK", 1, 1)
    with open(shell.path, "a") as handle:
        handle.write("\n[SendConnector Gw]\nAddressSpaces = *\nSmartHosts = gw\nDNSRoutingEnabled = $false\n"
                     "SmartHostAuthMechanism = BasicAuth\nAuthenticationCredential = Gw\n")
    with pytest.raises(CmdletError, match="no credential named 'Gw'"):
        shell("Test-Config")


# Through the Shell's language, in-process


def test_sizesHashtablesAndPipelinesFromTheLanguage(shell):
    assert shell.line('New-SendConnector "Out" -AddressSpaces "contoso.com;5","*" -MaxMessageSize 15MB')
    assert "AddressSpaces = contoso.com;5, *\n" in shell.text()
    assert "MaxMessageSize = 15MB\n" in shell.text()
    assert shell.line('Set-SendConnector Out -AddressSpaces @{Remove="*"} -Enabled:$false')
    assert "AddressSpaces = contoso.com;5\n" in shell.text()
    assert shell.line('Get-ReceiveConnector | Set-ReceiveConnector -MaxHopCount 12')
    assert "MaxHopCount = 12\n" in shell.text()
    assert shell.line('Get-ReceiveConnector "Default HubA" | Add-ADPermission -User "kim@fabrikam.com" '
                      '-ExtendedRights ms-Exch-SMTP-Accept-Any-Sender')
    assert shell.line('Get-ADPermission "Default HubA" | Remove-ADPermission')
    assert "[ADPermission]" not in shell.text()
    assert shell.line('Set-Mailbox Administrator -EmailAddresses @{Add="admin@fabrikam.com"}')
    assert "EmailAddresses = admin@fabrikam.com\n" in shell.text()


def test_languageErrorsAreReported(shell):
    text = shell.text()
    assert not shell.line('Set-ReceiveConnector "Default HubA" -Bindings 127.0.0.1:99999')
    assert "port 99999 is out of range" in "\n".join(shell.host.errors)
    assert shell.text() == text


def test_credentialFromGetCredential(shell):
    shell.host.lines = ["smtpgateway@contoso.com", PASSWORD]
    assert shell.line('$mycred = Get-Credential; New-SendConnector -Name "Gw" -AddressSpaces "*" '
                      '-SmartHosts "gw.contoso.com" -SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS '
                      '-AuthenticationCredential $mycred -DNSRoutingEnabled $false')
    assert shell.credentials.get("Gw") == ("smtpgateway@contoso.com", PASSWORD)
    assert shell.line("Get-SendConnector | Format-List")
    assert PASSWORD not in "\n".join(shell.host.output)


# Several Shells at once


def test_shellsEditingAtOnceLoseNothing(shell):
    """
    Four C{exmta shell} processes add accepted domains and receive
    connectors at the same time: every one is in org.ini afterwards, and
    org.ini is valid.
    """
    def statements(number):
        for index in range(4):
            domain = f"s{number}n{index}.example"
            yield f"New-AcceptedDomain -Name {domain} -DomainName {domain} -DomainType ExternalRelay"
            yield (f'New-ReceiveConnector "R{number}{index}" -Custom -Bindings 127.0.{number}.{index + 1}:2525 '
                   f"-RemoteIPRanges 10.0.{number}.{index}")

    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "exmta.cli", "shell", "-c", shell.path, "-Command", "\n".join(statements(number))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
        for number in range(4)
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, out + err
    organization = shell.organization()
    assert {a.domainName for a in organization.acceptedDomains} == {"fabrikam.com"} | {
        f"s{number}n{index}.example" for number in range(4) for index in range(4)}
    assert len(organization.receiveConnectors) == 1 + 16
    # What was there is still there, comments included, in its order.
    remaining = iter(shell.text().splitlines())
    assert all(line in remaining for line in BASE.splitlines())


# The shipped organization


def test_cmdletsOnTheShippedOrganization(tmp_path):
    with open(os.path.join(ROOT, "etc", "org.ini")) as handle:
        shipped = handle.read()
    shell = Shell(str(tmp_path), shipped)
    assert [c.Identity for c in shell("Get-ReceiveConnector")] == [
        "HubA\\Default HubA", "HubA\\FromInternetGateway", "HubA\\AnonymousRelay"]
    (permission,) = shell("Get-ADPermission", Identity="AnonymousRelay")
    assert permission.ExtendedRights == ("ms-Exch-SMTP-Accept-Any-Recipient",)
    shell("Set-ReceiveConnector", Identity="AnonymousRelay", Bindings="127.0.0.4:2626")
    assert changed(shipped, shell.text()) == (["Bindings = 127.0.0.4:2525"], ["Bindings = 127.0.0.4:2626"])
    # The connector goes with its [ADPermission] and nothing else.
    before = shell.text()
    shell("Remove-ReceiveConnector", Identity="AnonymousRelay")
    start, end = before.index("[ReceiveConnector AnonymousRelay]"), before.index("[SendConnector ToInternetGateway]")
    assert "[ADPermission]" in before[start:end]
    assert shell.text() == before[:start] + before[end:]
    assert shell.one("Test-Config").ReceiveConnectors == 2
