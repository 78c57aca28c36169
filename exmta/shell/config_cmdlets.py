"""
The configuration cmdlets of the exmta Shell.  This module registers
New-/Get-/Set-/Remove-AcceptedDomain, Get-/Set-TransportServer and
Test-Config, and imports the modules with the rest: connectors and their
permissions (L{exmta.shell.connector_cmdlets}), mailboxes and accounts
(L{exmta.shell.recipient_cmdlets}), the organization's TransportConfig and
Get-ExchangeServer (L{exmta.shell.organization_cmdlets}), the organization's
certificates (L{exmta.shell.certificate_cmdlets}).  How they edit org.ini:
L{exmta.shell.configedit}.
"""

from dataclasses import dataclass

from exmta.auth.accounts import AccountStore
from exmta.auth.credentials import CredentialStore, checkCredentials
from exmta.config import loadOrganization
from exmta.config.organization import ACCEPTED_DOMAIN_KEYS, TRANSPORT_SERVER_KEYS
from exmta.config.values import formatTimespan
from exmta.errors import ConfigError
from exmta.shell import (  # noqa: F401 (they register cmdlets)
    certificate_cmdlets,
    connector_cmdlets,
    organization_cmdlets,
    recipient_cmdlets,
)
from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet, identityOf
from exmta.shell.configedit import (
    apply,
    countShown,
    load,
    matching,
    nameOf,
    notFound,
    parameters,
    setKeys,
    valueText,
)


# Accepted domains.


@dataclass(frozen=True)
class AcceptedDomainView:
    DefaultDisplayPropertySet = ("Name", "DomainName", "DomainType", "Default")

    Identity: str
    Name: str
    DomainName: str
    DomainType: str
    Default: bool


def _acceptedDomainViews(organization):
    authoritative = [a for a in organization.acceptedDomains if a.domainType == "Authoritative"]
    return [
        AcceptedDomainView(a.name, a.name, a.domainName, a.domainType, bool(authoritative) and a is authoritative[0])
        for a in organization.acceptedDomains
    ]


def _domainSpan(document, identity, path):
    wanted = identityOf(identity).strip().lower()
    for span in document.sections("AcceptedDomain"):
        if wanted in (span.name.lower(), (span.get("DomainName") or "").lower()):
            return span
    raise notFound(identityOf(identity), path)


@cmdlet(
    "New-AcceptedDomain",
    Parameter("Name", mandatory=True, position=0),
    Parameter("DomainName", mandatory=True),
    Parameter("DomainType"),
    supportsWhatIf=True,
)
def newAcceptedDomain(context, Name, DomainName, DomainType=None):
    name = nameOf(Name, "accepted domain")
    domain = identityOf(DomainName).strip()

    def change(document):
        if document.section("AcceptedDomain", name) is not None:
            raise CmdletError(f"An accepted domain named '{name}' already exists.")
        values = {"DomainName": None if domain.lower() == name.lower() else domain, "DomainType": DomainType}
        entries = [(key, valueText(ACCEPTED_DOMAIN_KEYS, key, value)) for key, value in values.items()]
        document.addSection("AcceptedDomain", name, entries)
        return None

    organization = apply(context, "New-AcceptedDomain", name, change)
    if organization is not None:
        return [v for v in _acceptedDomainViews(organization) if v.Name.lower() == name.lower()]


@cmdlet("Get-AcceptedDomain", Parameter("Identity", position=0, pipeline=True))
def getAcceptedDomain(context, Identity=None):
    views = _acceptedDomainViews(load(context))
    if Identity is not None:
        views = matching(views, Identity, "Name", "DomainName")
        if not views:
            raise notFound(identityOf(Identity), context.configPath)
    return views


@cmdlet(
    "Set-AcceptedDomain",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("Name"),
    Parameter("DomainType"),
    Parameter("MakeDefault"),
    supportsWhatIf=True,
)
def setAcceptedDomain(context, Identity, Name=None, MakeDefault=False, **given):
    identity = identityOf(Identity)
    if not isinstance(MakeDefault, bool):
        raise CmdletError(f"-MakeDefault takes $true or $false, not {MakeDefault!r}")

    def change(document):
        span = _domainSpan(document, identity, context.configPath)
        name = span.name
        if Name is not None:
            newName = nameOf(Name, "accepted domain")
            other = document.section("AcceptedDomain", newName)
            if other is not None and other.header != span.header:
                raise CmdletError(f"An accepted domain named '{newName}' already exists.")
            if span.get("DomainName") is None:
                # The old name was the domain: keep it as DomainName.
                document.set(span, "DomainName", span.name)
                span = document.section("AcceptedDomain", name)
            document.rename(span, newName)
            name = newName
        setKeys(document, "AcceptedDomain", name, ACCEPTED_DOMAIN_KEYS, given)
        if MakeDefault:
            _makeDefault(document, name)
        return None

    apply(context, "Set-AcceptedDomain", identity, change)


def _makeDefault(document, name):
    """
    Make the accepted domain C{name} the default: the default is the first
    Authoritative domain of org.ini, so its section moves before the
    others.
    """
    span = document.section("AcceptedDomain", name)
    if (span.get("DomainType") or "Authoritative").lower() != "authoritative":
        raise CmdletError(
            f"The accepted domain '{name}' can't be the default: only an Authoritative domain can be."
        )
    document.moveBefore(span, document.sections("AcceptedDomain")[0])


@cmdlet(
    "Remove-AcceptedDomain",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)
def removeAcceptedDomain(context, Identity):
    identity = identityOf(Identity)

    def change(document):
        document.removeSection(_domainSpan(document, identity, context.configPath))
        return None

    apply(context, "Remove-AcceptedDomain", identity, change)


# Transport servers.


def _dnsShown(servers):
    shown = []
    for host, port in servers:
        if port != 53:
            host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        shown.append(host)
    return tuple(shown)


def _transportServerView(server):
    fields = {
        "Identity": server.name,
        "Name": server.name,
        "Fqdn": server.fqdn,
        "QueueDatabasePath": server.queueDatabasePath,
        "MailboxDatabasePath": server.mailboxDatabasePath,
        "TlsCertificatePath": server.tlsCertificatePath,
        "TlsPrivateKeyPath": server.tlsPrivateKeyPath,
        "TlsCertificateAuthorityPath": server.tlsCertificateAuthorityPath,
        "AdminBindings": tuple(str(b) for b in server.adminBindings),
        "MessageExpirationTimeout": formatTimespan(server.messageExpirationTimeout),
        "DelayNotificationTimeout": formatTimespan(server.delayNotificationTimeout),
        "MessageRetryInterval": formatTimespan(server.messageRetryInterval),
        "TransientFailureRetryCount": server.transientFailureRetryCount,
        "TransientFailureRetryInterval": formatTimespan(server.transientFailureRetryInterval),
        "OutboundConnectionFailureRetryInterval": formatTimespan(server.outboundConnectionFailureRetryInterval),
        "MaxOutboundConnections": countShown(server.maxOutboundConnections),
        "MaxPerDomainOutboundConnections": countShown(server.maxPerDomainOutboundConnections),
        "MessageTrackingLogEnabled": server.messageTrackingLogEnabled,
        "MessageTrackingLogPath": server.messageTrackingLogPath,
        "SendProtocolLogPath": server.sendProtocolLogPath,
        "ReceiveProtocolLogPath": server.receiveProtocolLogPath,
        "ExternalPostmasterAddress": server.externalPostmasterAddress,
        "InternalDNSServers": _dnsShown(server.internalDNSServers),
        "ExternalDNSServers": _dnsShown(server.externalDNSServers),
        "DeliveryAgent": server.deliveryAgent,
        "ServerRole": organization_cmdlets.SERVER_ROLE,
        "AdminDisplayVersion": organization_cmdlets.ADMIN_DISPLAY_VERSION,
    }
    return TransportServerView(**fields)


@dataclass(frozen=True)
class TransportServerView:
    DefaultDisplayPropertySet = ("Name", "Fqdn")

    Identity: str
    Name: str
    Fqdn: str
    QueueDatabasePath: str
    MailboxDatabasePath: str
    TlsCertificatePath: str | None
    TlsPrivateKeyPath: str | None
    TlsCertificateAuthorityPath: str | None
    AdminBindings: tuple
    MessageExpirationTimeout: str
    DelayNotificationTimeout: str
    MessageRetryInterval: str
    TransientFailureRetryCount: int
    TransientFailureRetryInterval: str
    OutboundConnectionFailureRetryInterval: str
    MaxOutboundConnections: object
    MaxPerDomainOutboundConnections: object
    MessageTrackingLogEnabled: bool
    MessageTrackingLogPath: str
    SendProtocolLogPath: str
    ReceiveProtocolLogPath: str
    ExternalPostmasterAddress: str | None
    InternalDNSServers: tuple
    ExternalDNSServers: tuple
    DeliveryAgent: str
    ServerRole: str
    AdminDisplayVersion: str


@cmdlet("Get-TransportServer", Parameter("Identity", position=0, pipeline=True))
def getTransportServer(context, Identity=None):
    servers = list(load(context).transportServers.values())
    found = matching(servers, Identity, "name")
    if Identity is not None and not found:
        raise notFound(identityOf(Identity), context.configPath)
    return [_transportServerView(s) for s in found]


@cmdlet(
    "Set-TransportServer",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    *parameters(TRANSPORT_SERVER_KEYS),
    supportsWhatIf=True,
)
def setTransportServer(context, Identity, **given):
    identity = identityOf(Identity).strip()

    def change(document):
        span = document.section("TransportServer", identity)
        if span is None:
            raise notFound(identity, context.configPath)
        setKeys(document, "TransportServer", span.name, TRANSPORT_SERVER_KEYS, given)
        return connector_cmdlets.refuseUnusablePlugins if "DeliveryAgent" in given else None

    apply(context, "Set-TransportServer", identity, change)


# Test-Config: what 'exmta check-config' checks.


@dataclass(frozen=True)
class ConfigTestResult:
    Identity: str
    Result: str
    TransportServers: int
    ReceiveConnectors: int
    SendConnectors: int
    AcceptedDomains: int
    Mailboxes: int
    Accounts: int
    Credentials: int


@cmdlet("Test-Config")
def testConfig(context):
    """
    Validate org.ini, the account store, the credential store and the
    plugins org.ini names as a server does before it starts (and as
    C{exmta check-config} does).
    """
    from twisted.internet import reactor

    from exmta.validation import checkPlugins

    try:
        organization = loadOrganization(context.configPath)
        accounts = AccountStore.open(organization.accountStorePath)
        credentials = CredentialStore.open(organization.credentialStorePath)
        checkCredentials(organization, credentials)
        checkPlugins(organization, reactor)
    except ConfigError as error:
        raise CmdletError(str(error)) from None
    return ConfigTestResult(
        Identity=organization.path,
        Result="OK",
        TransportServers=len(organization.transportServers),
        ReceiveConnectors=len(organization.receiveConnectors),
        SendConnectors=len(organization.sendConnectors),
        AcceptedDomains=len(organization.acceptedDomains),
        Mailboxes=len(organization.mailboxes),
        Accounts=len(accounts.names()),
        Credentials=len(credentials.names()),
    )
