"""
Send and receive connectors and the permissions on receive connectors:
New-/Get-/Set-/Remove-SendConnector, New-/Get-/Set-/Remove-ReceiveConnector,
Add-/Get-/Remove-ADPermission, with Exchange 2010's parameters and
creation rules (L{exmta.shell.configedit} says how they edit org.ini).

Secrets never go into org.ini: C{-AuthenticationCredential $mycred} stores
the user name and password in the credential store next to org.ini (under
the connector's name), and org.ini only names that entry.
"""

import re
from dataclasses import dataclass

from exmta.auth.credentials import CredentialStore, checkUsername
from exmta.auth.permissions import canonicalRight
from exmta.config.editor import formatValue
from exmta.config.model import Organization
from exmta.config.organization import (
    RECEIVE_CONNECTOR_KEYS,
    SEND_CONNECTOR_KEYS,
    SEND_USAGES,
    SMART_HOST_AUTH_MECHANISMS,
    USAGES,
)
from exmta.config.storage import storageFor
from exmta.config.values import boolean, credentialName, formatTimespan
from exmta.shell.connectorparameters import TEMPLATE_INSTANCE
from exmta.errors import ConfigError
from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet, identityOf, revealPassword
from exmta.shell.configedit import (
    apply,
    comments,
    countShown,
    flagsShown,
    hashtableOf,
    items,
    load,
    matching,
    nameOf,
    notFound,
    parameters,
    setKeys,
    sizeShown,
    usageOf,
    usageParameters,
    valueText,
)


# Send connectors.


@dataclass(frozen=True)
class SendConnectorView:
    DefaultDisplayPropertySet = ("Identity", "AddressSpaces", "Enabled")

    Identity: str
    Name: str
    Usage: str
    AddressSpaces: tuple
    SmartHosts: tuple
    DNSRoutingEnabled: bool
    SmartHostAuthMechanism: str
    AuthenticationCredential: str | None
    SourceTransportServers: tuple
    Port: int
    Fqdn: str | None
    RequireTLS: bool
    TlsAuthLevel: str | None
    TlsDomain: str | None
    IgnoreSTARTTLS: bool
    MaxMessageSize: str
    ConnectionInactivityTimeOut: str
    UseExternalDNSServersEnabled: bool
    ProtocolLoggingLevel: str
    Enabled: bool
    Comment: str | None
    ForceHELO: bool = False
    SourceIPAddress: str = "0.0.0.0"
    ErrorPolicies: str = "Default"
    LinkedReceiveConnector: str | None = None
    IsScopedConnector: bool = False


_ERROR_POLICY_ORDER = ("DowngradeDnsFailures", "DowngradeCustomFailures", "UpgradeCustomFailures")


def _sendConnectorView(connector, notes):
    return SendConnectorView(
        Identity=connector.name,
        Name=connector.name,
        Usage=connector.usage,
        AddressSpaces=tuple(str(space) for space in connector.addressSpaces),
        SmartHosts=tuple(str(host) for host in connector.smartHosts),
        DNSRoutingEnabled=connector.dnsRoutingEnabled,
        SmartHostAuthMechanism=flagsShown(connector.smartHostAuthMechanism, SMART_HOST_AUTH_MECHANISMS),
        AuthenticationCredential=connector.authenticationCredential,
        SourceTransportServers=connector.sourceTransportServers,
        Port=connector.port,
        Fqdn=connector.fqdn,
        RequireTLS=connector.requireTLS,
        TlsAuthLevel=connector.tlsAuthLevel,
        TlsDomain=connector.tlsDomain,
        IgnoreSTARTTLS=connector.ignoreSTARTTLS,
        MaxMessageSize=sizeShown(connector.maxMessageSize),
        ConnectionInactivityTimeOut=formatTimespan(connector.connectionInactivityTimeout),
        UseExternalDNSServersEnabled=connector.useExternalDNSServersEnabled,
        ProtocolLoggingLevel=connector.protocolLoggingLevel,
        Enabled=connector.enabled,
        Comment=notes.get(("sendconnector", connector.name.lower())),
        ForceHELO=connector.forceHELO,
        SourceIPAddress=connector.sourceIPAddress,
        ErrorPolicies=(
            flagsShown(connector.errorPolicies, _ERROR_POLICY_ORDER) if connector.errorPolicies
            else "Default"
        ),
        LinkedReceiveConnector=connector.linkedReceiveConnector,
        IsScopedConnector=connector.isScopedConnector,
    )


_SEND_SPECIAL = ("Usage", "AuthenticationCredential")

# Exchange's -Force suppresses confirmation prompts; exmta never asks.
FORCE = Parameter("Force", kind="switch")
TEMPLATE = Parameter("TemplateInstance")


def _refuseTemplate(given):
    """
    Take -Force and -TemplateInstance out of the parameters given: the
    first means nothing here, the second is refused.
    """
    given.pop("Force", None)
    if given.pop("TemplateInstance", None) is not None:
        raise CmdletError(f"-TemplateInstance: not supported on exmta: {TEMPLATE_INSTANCE}")


def _credentialNameOf(connector):
    """
    @return: the credential store name for C{connector}'s credential: its
        name, with what a credential name cannot hold turned into C{-}.
    """
    name = re.sub(r"[^A-Za-z0-9._@+-]", "-", connector).lstrip("._@+-")
    return credentialName(name[:128] or "SendConnector")


def _credential(context, connector, value, current):
    """
    Work out what C{-AuthenticationCredential value} writes.

    @param current: the connector's AuthenticationCredential now, if any.
    @return: C{(name for org.ini, effect storing the secret or None)}.
    """
    if isinstance(value, str):
        # exmta's own form: the name of a credential already in the store
        # (made with 'exmta credential set').
        try:
            name = credentialName(value)
        except ValueError as error:
            raise CmdletError(f"-AuthenticationCredential: {error}") from None
        folder = storageFor(context.configPath).folder
        store = CredentialStore(Organization(path=context.configPath, folder=folder).credentialStorePath)
        try:
            present = name in store
        except ConfigError as error:
            raise CmdletError(str(error)) from None
        if not present:
            raise CmdletError(
                f"-AuthenticationCredential: there is no credential named {name!r} in "
                f"{store.path}; pass a credential from Get-Credential instead"
            )
        return name, None
    username = getattr(value, "UserName", None)
    if not isinstance(username, str):
        raise CmdletError(
            "-AuthenticationCredential takes a credential, e.g. $mycred = Get-Credential, "
            f"not {type(value).__name__}"
        )
    password = revealPassword(getattr(value, "Password", None))
    try:
        checkUsername(username)
    except ValueError as error:
        raise CmdletError(f"-AuthenticationCredential: {error}") from None
    if not password:
        raise CmdletError("-AuthenticationCredential: the password is empty")
    name = current or _credentialNameOf(connector)

    def store(organization):
        CredentialStore(organization.credentialStorePath).set(name, username, password)

    return name, store


def _sendSpan(document, identity, path):
    """
    @return: the section of the send connector C{identity} names.
    @raise CmdletError: there is none.
    """
    span = document.section("SendConnector", identityOf(identity).strip())
    if span is None:
        raise notFound(identityOf(identity), path)
    return span


@cmdlet(
    "New-SendConnector",
    Parameter("Name", mandatory=True, position=0),
    *usageParameters(SEND_USAGES),
    Parameter("AuthenticationCredential"),
    *parameters(SEND_CONNECTOR_KEYS, _SEND_SPECIAL),
    FORCE,
    TEMPLATE,
    supportsWhatIf=True,
)
def newSendConnector(context, Name, **given):
    _refuseTemplate(given)
    name = nameOf(Name, "send connector")
    usage = usageOf(given, SEND_USAGES)
    credential = given.pop("AuthenticationCredential", None)

    def change(document):
        if document.section("SendConnector", name) is not None:
            raise CmdletError(f"A Send connector named '{name}' already exists in {context.configPath}.")
        effect = None
        values = dict(given, Usage=usage)
        if credential is not None:
            values["AuthenticationCredential"], effect = _credential(context, name, credential, None)
        entries = [
            (key, valueText(SEND_CONNECTOR_KEYS, key, values[key]))
            for key in SEND_CONNECTOR_KEYS
            if values.get(key) is not None
        ]
        document.addSection("SendConnector", name, entries)
        return effect

    organization = apply(context, "New-SendConnector", name, change)
    if organization is not None:
        return _sendConnectorView(organization.sendConnector(name), comments(organization))


@cmdlet(
    "Get-SendConnector",
    Parameter("Identity", position=0, pipeline=True),
    supportsWhatIf=False,
)
def getSendConnector(context, Identity=None):
    organization = load(context)
    found = matching(organization.sendConnectors, Identity, "name")
    if Identity is not None and not found:
        raise notFound(identityOf(Identity), context.configPath)
    notes = comments(organization)
    return [_sendConnectorView(c, notes) for c in found]


@cmdlet(
    "Set-SendConnector",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("Name"),
    Parameter("AuthenticationCredential"),
    *parameters(SEND_CONNECTOR_KEYS, _SEND_SPECIAL),
    FORCE,
    supportsWhatIf=True,
)
def setSendConnector(context, Identity, **given):
    _refuseTemplate(given)
    identity = identityOf(Identity)
    rename = given.pop("Name", None)
    credential = given.pop("AuthenticationCredential", ...)
    mechanism = hashtableOf(given.get("SmartHostAuthMechanism", ...))

    def change(document):
        span = _sendSpan(document, identity, context.configPath)
        name, current = span.name, span.get("AuthenticationCredential")
        values, effect, orphan = dict(given), None, None
        if credential is None:
            values["AuthenticationCredential"], orphan = None, current
        elif credential is not ...:
            values["AuthenticationCredential"], effect = _credential(context, name, credential, current)
        elif mechanism is not ... and not isinstance(mechanism, dict) and "basicauth" not in _lowered(mechanism):
            # Exchange keeps a credential that no longer applies; org.ini
            # may not name one then, so the key goes (the secret stays in
            # the store, for a later -AuthenticationCredential NAME).
            values["AuthenticationCredential"] = None
        if rename is not None:
            newName = nameOf(rename, "send connector")
            other = document.section("SendConnector", newName)
            if other is not None and other.header != span.header:
                raise CmdletError(f"A Send connector named '{newName}' already exists.")
            document.rename(span, newName)
            name = newName
        setKeys(document, "SendConnector", name, SEND_CONNECTOR_KEYS, values)
        return _forgetCredentials([orphan]) if orphan else effect

    apply(context, "Set-SendConnector", identity, change)


def _lowered(value):
    return [item.lower() for item in items(value)] if value is not None else []


def _forgetCredentials(names):
    """
    @return: an effect removing the credentials C{names} from the store
        when no send connector of the new organization names them any more.
    """

    def forget(organization):
        used = {c.authenticationCredential.lower() for c in organization.sendConnectors if c.authenticationCredential}
        store = CredentialStore(organization.credentialStorePath)
        for name in names:
            if name.lower() not in used and name in store:
                store.remove(name)

    return forget


@cmdlet(
    "Remove-SendConnector",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)
def removeSendConnector(context, Identity):
    identity = identityOf(Identity)

    def change(document):
        span = _sendSpan(document, identity, context.configPath)
        credential = span.get("AuthenticationCredential")
        document.removeSection(span)
        return _forgetCredentials([credential]) if credential else None

    apply(context, "Remove-SendConnector", identity, change)


# Receive connectors.


@dataclass(frozen=True)
class ReceiveConnectorView:
    DefaultDisplayPropertySet = ("Identity", "Bindings", "Enabled")

    Identity: str
    Name: str
    Server: str
    Usage: str
    Bindings: tuple
    RemoteIPRanges: tuple
    AuthMechanism: str
    PermissionGroups: str
    Fqdn: str
    Banner: str | None
    MaxMessageSize: str
    MaxRecipientsPerMessage: int
    MaxHeaderSize: str
    MaxHopCount: int
    ConnectionTimeout: str
    ConnectionInactivityTimeout: str
    MaxInboundConnection: object
    MaxInboundConnectionPerSource: object
    MaxLogonFailures: int
    MaxProtocolErrors: object
    AuthTarpitInterval: str
    RequireTLS: bool
    BareLinefeedRejectionEnabled: bool
    ProtocolLoggingLevel: str
    Enabled: bool
    Comment: str | None
    CredentialCheckers: tuple | None
    DeliveryStatusNotificationEnabled: bool = True
    ChunkingEnabled: bool = True
    BinaryMimeEnabled: bool = True
    EightBitMimeEnabled: bool = True
    PipeliningEnabled: bool = True
    EnhancedStatusCodesEnabled: bool = True
    SizeEnabled: str = "Enabled"
    LongAddressesEnabled: bool = False
    SuppressXAnonymousTls: bool = False
    TarpitInterval: str = "00:00:05"
    MessageRateLimit: object = "unlimited"
    MessageRateSource: str = "IPAddress"
    RequireEHLODomain: bool = False
    DefaultDomain: str | None = None
    MaxLocalHopCount: int = 8
    MaxInboundConnectionPercentagePerSource: int = 2


_AUTH_ORDER = ("None", "Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer", "ExternalAuthoritative")
_GROUP_ORDER = ("AnonymousUsers", "ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers", "Partners", "Custom")


def _receiveConnectorView(connector, notes):
    return ReceiveConnectorView(
        Identity=connector.identity,
        Name=connector.name,
        Server=connector.server,
        Usage=connector.usage,
        Bindings=tuple(str(b) for b in connector.bindings),
        RemoteIPRanges=tuple(str(r) for r in connector.remoteIPRanges),
        AuthMechanism=flagsShown(connector.authMechanism, _AUTH_ORDER),
        PermissionGroups=flagsShown(connector.permissionGroups, _GROUP_ORDER),
        Fqdn=connector.fqdn,
        Banner=connector.banner,
        MaxMessageSize=sizeShown(connector.maxMessageSize),
        MaxRecipientsPerMessage=connector.maxRecipientsPerMessage,
        MaxHeaderSize=sizeShown(connector.maxHeaderSize),
        MaxHopCount=connector.maxHopCount,
        ConnectionTimeout=formatTimespan(connector.connectionTimeout),
        ConnectionInactivityTimeout=formatTimespan(connector.connectionInactivityTimeout),
        MaxInboundConnection=countShown(connector.maxInboundConnection),
        MaxInboundConnectionPerSource=countShown(connector.maxInboundConnectionPerSource),
        MaxLogonFailures=connector.maxLogonFailures,
        MaxProtocolErrors=countShown(connector.maxProtocolErrors),
        AuthTarpitInterval=formatTimespan(connector.authTarpitInterval),
        RequireTLS=connector.requireTLS,
        BareLinefeedRejectionEnabled=connector.bareLinefeedRejectionEnabled,
        ProtocolLoggingLevel=connector.protocolLoggingLevel,
        Enabled=connector.enabled,
        Comment=notes.get(("receiveconnector", connector.name.lower())),
        # Without BasicAuth nothing asks checkers, and org.ini may not name any.
        CredentialCheckers=connector.credentialCheckers or None,
        DeliveryStatusNotificationEnabled=connector.deliveryStatusNotificationEnabled,
        ChunkingEnabled=connector.chunkingEnabled,
        BinaryMimeEnabled=connector.binaryMimeEnabled,
        EightBitMimeEnabled=connector.eightBitMimeEnabled,
        PipeliningEnabled=connector.pipeliningEnabled,
        EnhancedStatusCodesEnabled=connector.enhancedStatusCodesEnabled,
        SizeEnabled=connector.sizeEnabled,
        LongAddressesEnabled=connector.longAddressesEnabled,
        SuppressXAnonymousTls=connector.suppressXAnonymousTls,
        TarpitInterval=formatTimespan(connector.tarpitInterval),
        MessageRateLimit=countShown(connector.messageRateLimit),
        MessageRateSource=connector.messageRateSource,
        RequireEHLODomain=connector.requireEHLODomain,
        DefaultDomain=connector.defaultDomain,
        MaxLocalHopCount=connector.maxLocalHopCount,
        MaxInboundConnectionPercentagePerSource=connector.maxInboundConnectionPercentagePerSource,
    )


def refuseUnusablePlugins(organization):
    """
    Refuse a change naming plugins that a server would refuse to start
    with: one that is not installed, or that refuses its section's keys.
    Called by L{apply} with the changed organization, before writing.
    """
    from twisted.internet import reactor

    from exmta.validation import checkPlugins

    try:
        checkPlugins(organization, reactor)
    except ConfigError as error:
        raise CmdletError(f"{error} (the change was refused; org.ini is unchanged)") from None


def serverOf(document, span):
    """
    @return: the TransportServer a receive connector section runs on: its
        Server key, else the only TransportServer of the file.
    """
    server = span.get("Server")
    if server:
        return server
    servers = document.sections("TransportServer")
    return servers[0].name if len(servers) == 1 else ""


def receiveSpans(document, identity):
    """
    @return: the receive connector sections that C{identity}, C{Name} or
        C{Server\\Name}, names.
    """
    server, _, name = identityOf(identity).strip().rpartition("\\")
    spans = [s for s in document.sections("ReceiveConnector") if s.name.lower() == name.strip().lower()]
    if server:
        spans = [s for s in spans if serverOf(document, s).lower() == server.strip().lower()]
    return spans


def receiveSpan(document, identity, path):
    """
    @return: the one receive connector section C{identity} names.
    @raise CmdletError: none, or several (on different servers).
    """
    spans = receiveSpans(document, identity)
    if not spans:
        raise notFound(identityOf(identity), path)
    if len(spans) > 1:
        raise CmdletError(
            f"'{identityOf(identity)}' names a Receive connector on several servers; write "
            "Server\\Name, e.g. " + ", ".join(f"{serverOf(document, s)}\\{s.name}" for s in spans)
        )
    return spans[0]


def _permissionsOf(document, span):
    """
    @return: the [ADPermission] sections whose Identity names the receive
        connector C{span}.
    """
    server = serverOf(document, span).lower()
    found = []
    for permission in document.sections("ADPermission"):
        target = (permission.get("Identity") or "").strip().lower()
        owner, _, name = target.rpartition("\\")
        if name.strip() == span.name.lower() and owner.strip() in ("", server):
            found.append(permission)
    return found


_RECEIVE_SPECIAL = ("Server", "Usage")

# Exchange's creation rules: a usage either fixes a binding/range (not
# allowed) or needs it given (required).
_FIXED_BINDINGS = {"Client": "0.0.0.0:587", "Internal": "0.0.0.0:25"}
_FIXED_RANGES = {"Internet": "0.0.0.0-255.255.255.255"}


@cmdlet(
    "New-ReceiveConnector",
    Parameter("Name", mandatory=True, position=0),
    Parameter("Server"),
    *usageParameters(USAGES),
    *parameters(RECEIVE_CONNECTOR_KEYS, _RECEIVE_SPECIAL),
    TEMPLATE,
    supportsWhatIf=True,
)
def newReceiveConnector(context, Name, Server=None, **given):
    _refuseTemplate(given)
    name = nameOf(Name, "receive connector")
    if "\\" in name:
        raise CmdletError(f"-Name: {name!r} cannot hold '\\'; give the server with -Server")
    usage = usageOf(given, USAGES)
    if usage is None:
        raise CmdletError(
            "Parameter set cannot be resolved: give -Usage (Client, Internal, Internet, "
            "Partner or Custom) or one of -Client, -Internal, -Internet, -Partner, -Custom"
        )
    given = {key: value for key, value in given.items() if value is not None}
    if "Bindings" in given and usage in _FIXED_BINDINGS:
        raise CmdletError(
            f"-Bindings can't be used with the {usage} usage, which listens on "
            f"{_FIXED_BINDINGS[usage]}; change it afterwards with Set-ReceiveConnector -Bindings"
        )
    if "Bindings" not in given and usage not in _FIXED_BINDINGS:
        raise CmdletError(f"-Bindings is required with the {usage} usage")
    if "RemoteIPRanges" in given and usage in _FIXED_RANGES:
        raise CmdletError(
            f"-RemoteIPRanges can't be used with the {usage} usage, which takes every "
            f"address ({_FIXED_RANGES[usage]}); change it afterwards with Set-ReceiveConnector"
        )
    if "RemoteIPRanges" not in given and usage not in _FIXED_RANGES:
        raise CmdletError(f"-RemoteIPRanges is required with the {usage} usage")

    def change(document):
        servers = document.sections("TransportServer")
        server = identityOf(Server).strip() if Server is not None else None
        if server is not None:
            server = next((s.name for s in servers if s.name.lower() == server.lower()), server)
        where = server or (servers[0].name if len(servers) == 1 else "")
        if receiveSpans(document, f"{where}\\{name}" if where else name):
            raise CmdletError(f"A Receive connector named '{name}' already exists on server {where}.")
        values = dict(given, Server=server, Usage=usage)
        entries = [
            (key, valueText(RECEIVE_CONNECTOR_KEYS, key, values[key]))
            for key in RECEIVE_CONNECTOR_KEYS
            if values.get(key) is not None
        ]
        document.addSection("ReceiveConnector", name, entries)
        return None

    organization = apply(context, "New-ReceiveConnector", name, change)
    if organization is not None:
        created = [c for c in organization.receiveConnectors if c.name.lower() == name.lower()]
        if Server is not None:
            created = [c for c in created if c.server.lower() == identityOf(Server).strip().lower()]
        return _receiveConnectorView(created[0], comments(organization))


@cmdlet(
    "Get-ReceiveConnector",
    Parameter("Identity", position=0, pipeline=True),
    Parameter("Server"),
)
def getReceiveConnector(context, Identity=None, Server=None):
    organization = load(context)
    connectors = organization.receiveConnectors
    if Server is not None:
        connectors = matching(connectors, Server, "server")
    if Identity is not None:
        connectors = matching(connectors, Identity, "name", "identity")
        if not connectors:
            raise notFound(identityOf(Identity), context.configPath)
    notes = comments(organization)
    return [_receiveConnectorView(c, notes) for c in connectors]


@cmdlet(
    "Set-ReceiveConnector",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("Name"),
    *parameters(RECEIVE_CONNECTOR_KEYS, _RECEIVE_SPECIAL),
    supportsWhatIf=True,
)
def setReceiveConnector(context, Identity, Name=None, **given):
    identity = identityOf(Identity)

    def change(document):
        span = receiveSpan(document, identity, context.configPath)
        name, server = span.name, serverOf(document, span)
        if Name is not None:
            newName = nameOf(Name, "receive connector")
            if "\\" in newName:
                raise CmdletError(f"-Name: {newName!r} cannot hold '\\'")
            others = [s for s in receiveSpans(document, f"{server}\\{newName}") if s.header != span.header]
            if others:
                raise CmdletError(f"A Receive connector named '{newName}' already exists on server {server}.")
            permissions = [p.header for p in _permissionsOf(document, span)]
            document.rename(span, newName)
            for header in permissions:
                permission = next(p for p in document.sections("ADPermission") if p.header == header)
                document.set(permission, "Identity", f"{server}\\{newName}" if server else newName)
            name = newName
        for key, value in given.items():
            (span,) = receiveSpans(document, f"{server}\\{name}" if server else name)
            document.set(span, key, valueText(RECEIVE_CONNECTOR_KEYS, key, value, span.get(key)))
        return refuseUnusablePlugins if "CredentialCheckers" in given else None

    apply(context, "Set-ReceiveConnector", identity, change)


@cmdlet(
    "Remove-ReceiveConnector",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)
def removeReceiveConnector(context, Identity):
    identity = identityOf(Identity)

    def change(document):
        span = receiveSpan(document, identity, context.configPath)
        # Its ADPermission entries go with it, last first (indices shift).
        headers = [p.header for p in _permissionsOf(document, span)] + [span.header]
        for header in sorted(headers, reverse=True):
            document.removeSection(next(s for s in document.sections() if s.header == header))
        return None

    apply(context, "Remove-ReceiveConnector", identity, change)


# Permissions on receive connectors (Add-ADPermission).


@dataclass(frozen=True)
class ADPermissionView:
    DefaultDisplayPropertySet = ("Identity", "User", "Deny", "IsInherited")

    Identity: str
    User: str
    Deny: bool
    IsInherited: bool
    AccessRights: str
    ExtendedRights: tuple


def _permissionViews(connector):
    return [
        ADPermissionView(
            Identity=connector.identity,
            User=permission.user,
            Deny=permission.deny,
            IsInherited=False,
            AccessRights="ExtendedRight",
            ExtendedRights=tuple(sorted(permission.extendedRights, key=str.lower)),
        )
        for permission in connector.permissions
    ]


def _rightsGiven(ExtendedRights, AccessRights, verb):
    if AccessRights is not None:
        rights = [str(r) for r in (AccessRights if isinstance(AccessRights, (tuple, list)) else (AccessRights,))]
        if any(r.strip().lower() != "extendedright" for r in rights):
            raise CmdletError(
                f"-AccessRights: exmta {verb} only extended rights on receive connectors: "
                "-AccessRights ExtendedRight -ExtendedRights <right>"
            )
    return [] if ExtendedRights is None else items(ExtendedRights)


@cmdlet(
    "Add-ADPermission",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("User", mandatory=True),
    Parameter("ExtendedRights", kind="list"),
    Parameter("AccessRights", kind="list"),
    Parameter("Deny", kind="switch"),
    supportsWhatIf=True,
)
def addADPermission(context, Identity, User, ExtendedRights=None, AccessRights=None, Deny=False):
    identity = identityOf(Identity)
    user = formatValue(identityOf(User))
    rights = _rightsGiven(ExtendedRights, AccessRights, "grants")
    if not rights:
        raise CmdletError("-ExtendedRights is required: the rights to grant, e.g. Ms-Exch-SMTP-Accept-Any-Recipient")
    target = []

    def change(document):
        span = receiveSpan(document, identity, context.configPath)
        server = serverOf(document, span)
        target.append(f"{server}\\{span.name}" if server else span.name)
        entries = [("Identity", target[0]), ("User", user), ("ExtendedRights", tuple(rights))]
        if AccessRights is not None:
            entries.append(("AccessRights", "ExtendedRight"))
        if Deny:
            entries.append(("Deny", True))
        document.addSection("ADPermission", "", entries)
        return None

    organization = apply(context, "Add-ADPermission", identity, change)
    if organization is not None:
        (connector,) = matching(organization.receiveConnectors, target[0], "identity")
        return _permissionViews(connector)[-1:]


@cmdlet(
    "Get-ADPermission",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("User"),
)
def getADPermission(context, Identity, User=None):
    organization = load(context)
    connectors = matching(organization.receiveConnectors, Identity, "name", "identity")
    if not connectors:
        raise notFound(identityOf(Identity), context.configPath)
    views = [view for connector in connectors for view in _permissionViews(connector)]
    if User is not None:
        views = matching(views, User, "User")
    return views


@cmdlet(
    "Remove-ADPermission",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("User", mandatory=True, pipeline=True),
    Parameter("ExtendedRights", kind="list", pipeline=True),
    Parameter("AccessRights", kind="list"),
    Parameter("Deny", kind="switch", pipeline=True),
    supportsWhatIf=True,
)
def removeADPermission(context, Identity, User, ExtendedRights=None, AccessRights=None, Deny=False):
    identity = identityOf(Identity)
    user = identityOf(User).strip().lower()
    rights = {(canonicalRight(r) or r).lower() for r in _rightsGiven(ExtendedRights, AccessRights, "removes")}

    def change(document):
        span = receiveSpan(document, identity, context.configPath)
        touched = False
        for permission in reversed(_permissionsOf(document, span)):
            deny = boolean(permission.get("Deny") or "$false")
            if (permission.get("User") or "").strip().lower() != user or deny != bool(Deny):
                continue
            held = items(permission.get("ExtendedRights") or "")
            kept = [r for r in held if (canonicalRight(r) or r).lower() not in rights] if rights else []
            if len(kept) == len(held):
                continue
            touched = True
            if kept:
                document.set(permission, "ExtendedRights", tuple(kept))
            else:
                document.removeSection(permission)
        if not touched:
            raise CmdletError(
                f"'{identityOf(User)}' has no {'deny ' if Deny else ''}entry"
                + (f" for {', '.join(sorted(rights))}" if rights else "")
                + f" on the Receive connector '{identity}'"
            )
        return None

    apply(context, "Remove-ADPermission", identity, change)


