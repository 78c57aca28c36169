"""
The organization-wide cmdlets: Get-/Set-TransportConfig
(L{exmta.config.transportconfig}, the [TransportConfig] section of
org.ini) and Get-ExchangeServer, which lists the transport servers with
their role and version as Exchange 2010 SP3 shows its servers.
"""

from dataclasses import dataclass
from importlib import metadata

from exmta.config.transportconfig import TRANSPORT_CONFIG_KEYS
from exmta.config.values import formatTimespan
from exmta.shell.cmdlet import Parameter, cmdlet, identityOf
from exmta.shell.configedit import (
    apply,
    countShown,
    load,
    matching,
    notFound,
    parameters,
    setKeys,
    sizeShown,
)

# What Exchange 2010 SP3 shows of a Hub Transport server: scripts that
# pick their Exchange 2010 servers (AdminDisplayVersion -like "Version 14*")
# find exmta's.
SERVER_ROLE = "HubTransport"
ADMIN_DISPLAY_VERSION = "Version 14.3 (Build 123.4)"
SITE = "Default-First-Site-Name"


def exmtaVersion():
    try:
        return metadata.version("exmta")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "unknown"


# TransportConfig.


@dataclass(frozen=True)
class TransportConfigView:
    Identity: str
    MaxReceiveSize: str
    MaxSendSize: str
    MaxRecipientEnvelopeLimit: object
    TLSReceiveDomainSecureList: tuple
    TLSSendDomainSecureList: tuple
    ExternalPostmasterAddress: str | None
    GenerateCopyOfDSNFor: tuple
    ShadowRedundancyEnabled: bool
    ShadowHeartbeatTimeoutInterval: str
    ShadowHeartbeatRetryCount: int
    ShadowMessageAutoDiscardInterval: str
    MaxAcknowledgementDelay: str


@cmdlet("Get-TransportConfig", Parameter("Identity", position=0))
def getTransportConfig(context, Identity=None):
    """
    The organization-wide transport settings ([TransportConfig] in
    org.ini, Exchange 2010's defaults where it says nothing).
    """
    config = load(context).transportConfig
    return TransportConfigView(
        Identity="Transport Settings",
        MaxReceiveSize=sizeShown(config.maxReceiveSize),
        MaxSendSize=sizeShown(config.maxSendSize),
        MaxRecipientEnvelopeLimit=countShown(config.maxRecipientEnvelopeLimit),
        TLSReceiveDomainSecureList=config.tlsReceiveDomainSecureList,
        TLSSendDomainSecureList=config.tlsSendDomainSecureList,
        ExternalPostmasterAddress=config.externalPostmasterAddress,
        GenerateCopyOfDSNFor=config.generateCopyOfDSNFor,
        ShadowRedundancyEnabled=config.shadowRedundancyEnabled,
        ShadowHeartbeatTimeoutInterval=formatTimespan(config.shadowHeartbeatTimeoutInterval),
        ShadowHeartbeatRetryCount=config.shadowHeartbeatRetryCount,
        ShadowMessageAutoDiscardInterval=formatTimespan(config.shadowMessageAutoDiscardInterval),
        MaxAcknowledgementDelay=formatTimespan(config.maxAcknowledgementDelay),
    )


@cmdlet(
    "Set-TransportConfig",
    Parameter("Identity", position=0),
    *parameters(TRANSPORT_CONFIG_KEYS),
    supportsWhatIf=True,
)
def setTransportConfig(context, Identity=None, **given):
    """
    Change the organization-wide transport settings: C{Set-TransportConfig
    -MaxReceiveSize 25MB -MaxSendSize 25MB}; a list takes C{@{Add=...;
    Remove=...}} (C{-TLSSendDomainSecureList @{Add="contoso.com"}}).
    Every transport server applies them when it reads org.ini again
    (at start, or on SIGHUP).
    """

    def change(document):
        if not document.sections("TransportConfig"):
            document.addSection("TransportConfig", "")
        setKeys(document, "TransportConfig", "", TRANSPORT_CONFIG_KEYS, given)
        return None

    apply(context, "Set-TransportConfig", "Transport Settings", change)


# Exchange servers.


@dataclass(frozen=True)
class ExchangeServerView:
    DefaultDisplayPropertySet = ("Name", "Site", "ServerRole", "Edition", "AdminDisplayVersion")

    Identity: str
    Name: str
    Fqdn: str
    Site: str
    ServerRole: str
    Edition: str
    AdminDisplayVersion: str
    IsHubTransportServer: bool
    IsEdgeServer: bool
    IsMailboxServer: bool
    IsClientAccessServer: bool
    ExmtaVersion: str


@cmdlet("Get-ExchangeServer", Parameter("Identity", position=0, pipeline=True))
def getExchangeServer(context, Identity=None):
    """
    The transport servers of org.ini, as Exchange lists its servers: each
    a Hub Transport server of Exchange 2010 SP3 (ExmtaVersion says which
    exmta it is).
    """
    servers = list(load(context).transportServers.values())
    found = matching(servers, Identity, "name", "fqdn")
    if Identity is not None and not found:
        raise notFound(identityOf(Identity), context.configPath)
    return [
        ExchangeServerView(
            Identity=server.name, Name=server.name, Fqdn=server.fqdn, Site=SITE,
            ServerRole=SERVER_ROLE, Edition="Standard", AdminDisplayVersion=ADMIN_DISPLAY_VERSION,
            IsHubTransportServer=True, IsEdgeServer=False, IsMailboxServer=False,
            IsClientAccessServer=False, ExmtaVersion=exmtaVersion(),
        )
        for server in found
    ]
