"""
Every parameter of Exchange 2010 SP3's New-/Set-ReceiveConnector and
New-/Set-SendConnector, with Exchange's default, next to what exmta does
with it: the table of docs/connector-parameters.rst
(C{python docs/generate_parameters.py} writes it from L{rows}, and
tests/test_connector_parameters.py checks that the page is current, that
each cmdlet takes every parameter named here and no other, and that each
is validated).

Exchange's parameter lists and defaults are the specification, written
down here; everything else comes from the code: exmta's default from the
org.ini schema (L{exmta.config.organization}), what is not supported and
why from L{exmta.config.receiveoptions.UNSUPPORTED_RECEIVE_PARAMETERS} and
L{exmta.config.sendconnectors.UNSUPPORTED_SEND_PARAMETERS}.
"""

from exmta.config.editor import formatValue
from exmta.config.organization import RECEIVE_CONNECTOR_KEYS, SEND_CONNECTOR_KEYS
from exmta.config.receiveoptions import UNSUPPORTED_RECEIVE_PARAMETERS
from exmta.config.sendconnectors import UNSUPPORTED_SEND_PARAMETERS
from exmta.config.values import formatTimespan
from exmta.shell.configedit import kindOf, sizeText

# Parameters the cmdlets take that are no org.ini key, and why exmta has
# nothing behind them.
TEMPLATE_INSTANCE = (
    "the Exchange Management Console hands its wizard's object in it; exmta has no "
    "console wizard, give the parameters themselves"
)
CONFIRMATION = "accepted and ignored: exmta never asks for confirmation"

USAGE = "by Usage"

# (parameter, Exchange 2010 default) in the order of Microsoft's reference.
RECEIVE_COMMON = (
    ("AuthMechanism", USAGE),
    ("AuthTarpitInterval", "00:00:05"),
    ("Banner", "$null"),
    ("BinaryMimeEnabled", "$true"),
    ("Bindings", USAGE),
    ("ChunkingEnabled", "$true"),
    ("Comment", "$null"),
    ("Confirm", "—"),
    ("ConnectionInactivityTimeout", "00:05:00"),
    ("ConnectionTimeout", "00:10:00"),
    ("DefaultDomain", "$null"),
    ("DeliveryStatusNotificationEnabled", "$true"),
    ("DomainController", "$null"),
    ("DomainSecureEnabled", "$false"),
    ("EightBitMimeEnabled", "$true"),
    ("EnableAuthGSSAPI", "$false"),
    ("Enabled", "$true"),
    ("EnhancedStatusCodesEnabled", "$true"),
    ("ExtendedProtectionPolicy", "None"),
    ("ExtendedProtectionSPNList", "$null"),
    ("ExtendedProtectionTlsTerminatedAtProxyScenario", "$false"),
    ("Fqdn", "the server's FQDN"),
    ("LongAddressesEnabled", "$false"),
    ("MaxAcknowledgementDelay", "00:00:30"),
    ("MaxHeaderSize", "64KB"),
    ("MaxHopCount", "30"),
    ("MaxInboundConnection", "5000"),
    ("MaxInboundConnectionPercentagePerSource", "2"),
    ("MaxInboundConnectionPerSource", "20"),
    ("MaxLocalHopCount", "8"),
    ("MaxLogonFailures", "3"),
    ("MaxMessageSize", "10MB"),
    ("MaxProtocolErrors", "5"),
    ("MaxRecipientsPerMessage", "200"),
    ("MessageRateLimit", "unlimited"),
    ("MessageRateSource", "IPAddress"),
    ("OrarEnabled", "$false"),
    ("PermissionGroups", USAGE),
    ("PipeliningEnabled", "$true"),
    ("ProtocolLoggingLevel", "None"),
    ("RemoteIPRanges", USAGE),
    ("RequireEHLODomain", "$false"),
    ("RequireTLS", "$false"),
    ("SizeEnabled", "Enabled"),
    ("SuppressXAnonymousTls", "$false"),
    ("TarpitInterval", "00:00:05"),
    ("WhatIf", "—"),
)

NEW_RECEIVE = (
    ("Name", "required"),
    ("Server", "the local server"),
    ("Usage", "—"),
    ("Client", "—"),
    ("Custom", "—"),
    ("Internal", "—"),
    ("Internet", "—"),
    ("Partner", "—"),
    ("TemplateInstance", "$null"),
) + RECEIVE_COMMON

SET_RECEIVE = (("Identity", "required"), ("Name", "—")) + RECEIVE_COMMON

SEND_COMMON = (
    ("AddressSpaces", "required"),
    ("AuthenticationCredential", "$null"),
    ("Comment", "$null"),
    ("Confirm", "—"),
    ("ConnectionInactivityTimeOut", "00:10:00"),
    ("DNSRoutingEnabled", "$true"),
    ("DomainController", "$null"),
    ("DomainSecureEnabled", "$false"),
    ("Enabled", "$true"),
    ("ErrorPolicies", "Default"),
    ("Force", "—"),
    ("ForceHELO", "$false"),
    ("Fqdn", "$null"),
    ("IgnoreSTARTTLS", "$false"),
    ("IsCoexistenceConnector", "$false"),
    ("IsScopedConnector", "$false"),
    ("LinkedReceiveConnector", "$null"),
    ("MaxMessageSize", "10MB"),
    ("Port", "25"),
    ("ProtocolLoggingLevel", "None"),
    ("RequireTLS", "$false"),
    ("SmartHostAuthMechanism", "None"),
    ("SmartHosts", "$null"),
    ("SourceIPAddress", "0.0.0.0"),
    ("SourceTransportServers", "the local server"),
    ("TlsAuthLevel", "$null"),
    ("TlsDomain", "$null"),
    ("UseExternalDNSServersEnabled", "$false"),
    ("WhatIf", "—"),
)

NEW_SEND = (
    ("Name", "required"),
    ("Usage", "Custom"),
    ("Custom", "—"),
    ("Internal", "—"),
    ("Internet", "—"),
    ("Partner", "—"),
    ("TemplateInstance", "$null"),
) + SEND_COMMON

SET_SEND = (("Identity", "required"), ("Name", "—")) + SEND_COMMON

CMDLETS = {
    "New-ReceiveConnector": (NEW_RECEIVE, RECEIVE_CONNECTOR_KEYS, UNSUPPORTED_RECEIVE_PARAMETERS),
    "Set-ReceiveConnector": (SET_RECEIVE, RECEIVE_CONNECTOR_KEYS, UNSUPPORTED_RECEIVE_PARAMETERS),
    "New-SendConnector": (NEW_SEND, SEND_CONNECTOR_KEYS, UNSUPPORTED_SEND_PARAMETERS),
    "Set-SendConnector": (SET_SEND, SEND_CONNECTOR_KEYS, UNSUPPORTED_SEND_PARAMETERS),
}

# What exmta takes that Exchange 2010 does not: (parameter, why).
EXMTA_ONLY = {
    "BareLinefeedRejectionEnabled": "from later Exchange versions: refuse bare LF and CR (smuggling)",
    "CredentialCheckers": "exmta's BasicAuth checker plugins, in order",
    "Server": "the TransportServer a connector runs on, as org.ini names it",
    "Usage": "the usage a connector was made with, as org.ini records it",
}


# Exchange's defaults that are no value but a rule, which exmta's follow too.
_RULES = (USAGE, "the server's FQDN", "the local server", "required")
# Keys whose absence the code reads as a value (config/sendconnectors.py).
_UNSET_MEANS = {"ErrorPolicies": "Default", "SmartHostAuthMechanism": "None"}


# Supported parameters whose effect needs a word.
NOTES = {
    "SuppressXAnonymousTls": "exmta never offers X-ANONYMOUSTLS, so either value holds",
    "IsScopedConnector": "exmta's transport servers form one site: a scoped connector serves them all",
    "SizeEnabled": "Enabled, Disabled or EnabledWithoutValue",
    "ErrorPolicies": "custom failures are replies without an enhanced status code or with X.0.0",
}


def _exmtaDefault(schema, key, exchangeDefault=None):
    parser, default = schema[key]
    if default is None and exchangeDefault in _RULES:
        return exchangeDefault
    if default is None and key in _UNSET_MEANS:
        return _UNSET_MEANS[key]
    if default is None or default == ():
        return "$null" if kindOf(schema, key) != "number" else "unlimited"
    if not isinstance(default, (bool, int, str, tuple)):
        return "computed"
    kind = kindOf(schema, key)
    if kind == "size":
        return sizeText(default)
    if kind == "timespan":
        return formatTimespan(default)
    return formatValue(default)


def rows(cmdlet):
    """
    @param cmdlet: a key of L{CMDLETS}.
    @return: (parameter, Exchange's default, exmta's default, what exmta
        does) for each parameter of Exchange's cmdlet, then for each
        parameter exmta's cmdlet takes beyond it.
    """
    exchange, schema, unsupported = CMDLETS[cmdlet]
    found = []
    for name, exchangeDefault in exchange:
        found.append((name, exchangeDefault) + _exmta(name, exchangeDefault, schema, unsupported))
    named = {name for name, _ in exchange}
    for name in schema:
        if name not in named and not (cmdlet.startswith("Set-") and name in ("Server", "Usage")):
            found.append((name, "—", _exmtaDefault(schema, name), "supported, exmta only: " + EXMTA_ONLY[name]))
    return found


def _exmta(name, exchangeDefault, schema, unsupported):
    if name in unsupported:
        default, why = unsupported[name]
        return default, f"not supported on exmta: {why}; the default is accepted"
    if name == "TemplateInstance":
        return "—", f"not supported on exmta: {TEMPLATE_INSTANCE}"
    if name in ("Confirm", "Force"):
        return "—", CONFIRMATION
    status = f"supported: {NOTES[name]}" if name in NOTES else "supported"
    if name in schema:
        return _exmtaDefault(schema, name, exchangeDefault), status
    return "—", status
