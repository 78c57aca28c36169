"""
The organization as typed, frozen values.  Attribute names are Exchange's
parameter names with a lower-case first letter.
"""

import os
from dataclasses import dataclass, field

from exmta.errors import ConfigError


@dataclass(frozen=True)
class Origin:
    """
    Where a value came from, for messages that point back into org.ini.
    """

    path: str
    line: int
    section: str
    keys: tuple[tuple[str, int], ...] = ()

    def lineOf(self, key):
        """
        @return: the line that sets C{key} (matched case-insensitively) in
            this section, or the section's own line when it is not set.
        """
        lowered = key.lower()
        for name, line in self.keys:
            if name.lower() == lowered:
                return line
        return self.line

    def error(self, message, key=None):
        """
        @return: a L{ConfigError} pointing at C{key} in this section (or at
            the section header), for checks made after loading, such as
            whether a send connector's AuthenticationCredential exists.
        """
        line = self.lineOf(key) if key is not None else self.line
        return ConfigError(message, self.path, line, self.section, key)

    def refused(self, error):
        """
        @param error: the L{ValueError} a plugin raised over this section's
            settings; an L{exmta.errors.SettingError} names the key.
        @return: a L{ConfigError} pointing at that key, else at the section.
        """
        return self.error(str(error), getattr(error, "key", None))


@dataclass(frozen=True)
class TransportServer:
    """
    One transport server and its Set-TransportServer settings.  Times are
    seconds; Exchange 2010's defaults apply where org.ini is silent.
    """

    name: str
    fqdn: str
    queueDatabasePath: str
    mailboxDatabasePath: str
    tlsCertificatePath: str | None
    tlsPrivateKeyPath: str | None
    origin: Origin
    messageExpirationTimeout: int = 2 * 86400
    delayNotificationTimeout: int = 4 * 3600
    messageRetryInterval: int = 60
    transientFailureRetryCount: int = 6
    transientFailureRetryInterval: int = 5 * 60
    outboundConnectionFailureRetryInterval: int = 10 * 60
    maxOutboundConnections: int | None = 1000
    maxPerDomainOutboundConnections: int | None = 20
    messageTrackingLogEnabled: bool = True
    messageTrackingLogPath: str = ""
    sendProtocolLogPath: str = ""
    receiveProtocolLogPath: str = ""
    externalPostmasterAddress: str | None = None
    internalDNSServers: tuple = ()
    externalDNSServers: tuple = ()
    deliveryAgent: str = "Maildir"
    tlsCertificateAuthorityPath: str | None = None
    adminBindings: tuple = ()
    # The authorities partners' certificates must chain to (Domain
    # Security); L{None} for the system's trusted roots.
    domainSecureCertificateAuthorityPath: str | None = None


@dataclass(frozen=True)
class EcpVirtualDirectory:
    """
    The web console of one TransportServer (L{exmta.config.ecp}).
    """

    server: str
    internalUrl: str
    host: str
    port: int
    organizationManagement: tuple[str, ...]
    viewOnlyOrganizationManagement: tuple[str, ...]
    origin: Origin


@dataclass(frozen=True)
class SendConnector:
    """
    A New-SendConnector: which recipient domains it serves (AddressSpaces)
    and how it reaches them (SmartHosts, or MX records when
    DNSRoutingEnabled).
    """

    name: str
    usage: str
    addressSpaces: tuple  # of exmta.config.values.AddressSpace
    smartHosts: tuple  # of exmta.config.values.SmartHost
    smartHostAuthMechanism: frozenset[str]
    authenticationCredential: str | None
    sourceTransportServers: tuple[str, ...]
    dnsRoutingEnabled: bool
    port: int
    fqdn: str | None
    requireTLS: bool
    tlsAuthLevel: str | None
    tlsDomain: str | None
    ignoreSTARTTLS: bool
    maxMessageSize: int | None
    connectionInactivityTimeout: int
    useExternalDNSServersEnabled: bool
    protocolLoggingLevel: str
    enabled: bool
    origin: Origin
    forceHELO: bool = False
    sourceIPAddress: str = "0.0.0.0"
    # Of DowngradeDnsFailures, DowngradeCustomFailures, UpgradeCustomFailures;
    # empty is Default.
    errorPolicies: frozenset = frozenset()
    # The identity (Server\\Name) of the receive connector whose mail all
    # goes through this one.
    linkedReceiveConnector: str | None = None
    isScopedConnector: bool = False
    domainSecureEnabled: bool = False


@dataclass(frozen=True)
class AcceptedDomain:
    name: str
    domainName: str
    domainType: str
    origin: Origin

    def matches(self, domain):
        domain = domain.lower()
        if self.domainName.startswith("*."):
            base = self.domainName[2:]
            return domain == base or domain.endswith("." + base)
        return domain == self.domainName


@dataclass(frozen=True)
class Mailbox:
    name: str
    primarySmtpAddress: str
    emailAddresses: frozenset[str]
    userPrincipalName: str
    origin: Origin

    @property
    def folder(self):
        return self.primarySmtpAddress


@dataclass(frozen=True)
class Permission:
    """
    One Add-ADPermission entry on a receive connector.
    """

    identity: str
    user: str
    extendedRights: frozenset[str]
    deny: bool
    origin: Origin


@dataclass(frozen=True)
class ReceiveConnector:
    name: str
    server: str
    usage: str
    bindings: tuple
    remoteIPRanges: tuple
    authMechanism: frozenset[str]
    permissionGroups: frozenset[str]
    fqdn: str
    banner: str | None
    maxMessageSize: int
    maxRecipientsPerMessage: int
    maxHeaderSize: int
    maxHopCount: int
    connectionTimeout: int
    connectionInactivityTimeout: int
    maxInboundConnection: int | None
    maxInboundConnectionPerSource: int | None
    maxLogonFailures: int
    maxProtocolErrors: int | None
    authTarpitInterval: int
    requireTLS: bool
    bareLinefeedRejectionEnabled: bool
    enabled: bool
    origin: Origin
    permissions: tuple[Permission, ...] = ()
    protocolLoggingLevel: str = "None"
    credentialCheckers: tuple[str, ...] = ()
    # The ESMTP extensions (L{exmta.config.receiveoptions}).
    deliveryStatusNotificationEnabled: bool = True
    chunkingEnabled: bool = True
    binaryMimeEnabled: bool = True
    eightBitMimeEnabled: bool = True
    pipeliningEnabled: bool = True
    enhancedStatusCodesEnabled: bool = True
    sizeEnabled: str = "Enabled"
    longAddressesEnabled: bool = False
    suppressXAnonymousTls: bool = False
    # Session rules.
    tarpitInterval: int = 5
    messageRateLimit: int | None = None
    messageRateSource: str = "IPAddress"
    requireEHLODomain: bool = False
    defaultDomain: str | None = None
    maxLocalHopCount: int = 8
    maxInboundConnectionPercentagePerSource: int = 2
    domainSecureEnabled: bool = False

    @property
    def identity(self):
        return f"{self.server}\\{self.name}"


@dataclass(frozen=True)
class TransportAgent:
    """
    A [TransportAgent Name] section: Exchange's Install-TransportAgent and
    Set-TransportAgent.  C{name} is the agent factory plugin's name
    (L{exmta.interfaces.IAgentFactory}); whether such a plugin exists is
    checked when the agents are made (L{exmta.agents.loadAgents}), not here.

    @ivar priority: lower runs first; unique in the organization.
    @ivar timeout: seconds an agent has to answer one event.
    @ivar failurePolicy: C{FailClosed} (a failing agent makes the command
        fail with 451 4.7.0) or C{FailOpen} (it is skipped).
    @ivar disableAfterFailures: after this many failures in a row the agent
        is no longer called until the next start or reload; 0: never.
    @ivar settings: the section's other keys, as C{((key, value), ...)} in
        file order, handed to the factory's C{makeAgent}.
    """

    name: str
    priority: int
    enabled: bool = True
    timeout: int = 30
    failurePolicy: str = "FailClosed"
    disableAfterFailures: int = 0
    settings: tuple[tuple[str, str], ...] = ()
    origin: Origin | None = None


@dataclass(frozen=True)
class PluginSettings:
    """
    A C{[CredentialChecker Name]} or C{[DeliveryAgent Name]} section: the
    keys, as written, that exmta hands to the plugin called C{name}
    (L{exmta.interfaces.ICheckerFactory},
    L{exmta.interfaces.IDeliveryAgentFactory}), which checks them.

    @ivar settings: C{((key, value), ...)} in file order, Comment left out.
    """

    name: str
    settings: tuple[tuple[str, str], ...] = ()
    origin: Origin | None = None


# Exchange 2010's GenerateCopyOfDSNFor: the NDRs the postmaster gets a copy of.
DEFAULT_DSN_COPIES = ("5.4.8", "5.4.6", "5.4.4", "5.2.4", "5.2.0", "5.1.4")


@dataclass(frozen=True)
class TransportConfig:
    """
    The organization-wide transport settings (Set-TransportConfig,
    [TransportConfig] in org.ini), as every transport server applies them:

      - C{maxReceiveSize}: a message larger is refused on receive (552
        5.3.4), whatever the Receive connector allows; C{None} is
        unlimited.
      - C{maxSendSize}: a message larger is refused on receive from an
        authenticated sender of the organization, and not sent through a
        Send connector (an NDR, 5.3.4).
      - C{maxRecipientEnvelopeLimit}: the most recipients a message may
        have on receive (452 4.5.3 for the next).
      - C{tlsReceiveDomainSecureList}, C{tlsSendDomainSecureList}: the
        domains of Domain Security (mutual TLS), for the connectors'
        DomainSecureEnabled.
      - C{externalPostmasterAddress}: where DSNs come from when the
        TransportServer names none.
      - C{generateCopyOfDSNFor}: the enhanced status codes of the NDRs the
        postmaster gets a copy of.
      - C{shadowRedundancyEnabled}, C{shadowHeartbeatTimeoutInterval},
        C{shadowHeartbeatRetryCount}, C{shadowMessageAutoDiscardInterval}
        (seconds): shadow redundancy between the organization's servers
        (L{exmta.queue.shadow}).
      - C{maxAcknowledgementDelay} (seconds): Exchange's delayed
        acknowledgement for clients that cannot keep a shadow; read and
        shown, not applied (L{exmta.queue.shadow} says why).
    """

    maxReceiveSize: int | None = 10 * 1024 * 1024
    maxSendSize: int | None = 10 * 1024 * 1024
    maxRecipientEnvelopeLimit: int | None = 5000
    tlsReceiveDomainSecureList: tuple = ()
    tlsSendDomainSecureList: tuple = ()
    externalPostmasterAddress: str | None = None
    generateCopyOfDSNFor: tuple = DEFAULT_DSN_COPIES
    shadowRedundancyEnabled: bool = True
    shadowHeartbeatTimeoutInterval: int = 15 * 60
    shadowHeartbeatRetryCount: int = 3
    shadowMessageAutoDiscardInterval: int = 2 * 86400
    maxAcknowledgementDelay: int = 30
    origin: Origin | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Organization:
    path: str
    transportServers: dict = field(default_factory=dict)
    acceptedDomains: tuple[AcceptedDomain, ...] = ()
    mailboxes: tuple[Mailbox, ...] = ()
    receiveConnectors: tuple[ReceiveConnector, ...] = ()
    sendConnectors: tuple[SendConnector, ...] = ()
    transportAgents: tuple[TransportAgent, ...] = ()
    credentialCheckers: tuple[PluginSettings, ...] = ()
    deliveryAgents: tuple[PluginSettings, ...] = ()
    ecpVirtualDirectories: dict = field(default_factory=dict)
    # {server: exmta.config.monitoring.ResourceMonitoring / Monitoring}
    edgeTransports: dict = field(default_factory=dict)
    monitorings: dict = field(default_factory=dict)
    transportConfig: TransportConfig = field(default_factory=TransportConfig)
    # The org.ini text this was read from: receive workers run on exactly
    # what their main process checked, not on the file as it is later.
    text: str = field(default="", repr=False, compare=False)
    # Where relative paths start and the secret stores live: org.ini's
    # folder, or for an organization on etcd the server's own folder.
    folder: str = ""

    def __post_init__(self):
        if not self.folder:
            object.__setattr__(self, "folder", os.path.dirname(os.path.abspath(self.path)))

    @property
    def accountStorePath(self):
        """
        The BasicAuth account store lives next to org.ini, never inside it.
        """
        return os.path.join(self.folder, "accounts")

    @property
    def credentialStorePath(self):
        """
        The send connectors' AuthenticationCredentials live next to org.ini
        too, readable only by their owner.
        """
        return os.path.join(self.folder, "credentials")

    def acceptedDomainFor(self, domain):
        """
        The accepted domain covering C{domain}: an exact name wins over a
        wildcard, a longer wildcard over a shorter one.
        """
        matching = [a for a in self.acceptedDomains if a.matches(domain)]
        return max(
            matching,
            key=lambda a: (not a.domainName.startswith("*."), len(a.domainName)),
            default=None,
        )

    def mailboxFor(self, address):
        lowered = address.lower()
        for mailbox in self.mailboxes:
            if lowered in mailbox.emailAddresses:
                return mailbox
        return None

    def connectorsOf(self, server):
        return tuple(c for c in self.receiveConnectors if c.server == server)

    def sendConnector(self, name):
        """
        @return: the L{SendConnector} named C{name} (case-insensitively), or
            L{None}.
        """
        lowered = name.lower()
        for connector in self.sendConnectors:
            if connector.name.lower() == lowered:
                return connector
        return None

    def credentialCheckerSettings(self, name):
        """
        @return: the L{PluginSettings} of C{[CredentialChecker name]}
            (matched case-insensitively), or L{None}.
        """
        return _named(self.credentialCheckers, name)

    def deliveryAgentSettings(self, name):
        """
        @return: the L{PluginSettings} of C{[DeliveryAgent name]}, or L{None}.
        """
        return _named(self.deliveryAgents, name)

    def postmasterAddressOf(self, server):
        """
        The address DSNs from C{server} (a TransportServer name) come from:
        its ExternalPostmasterAddress, else the TransportConfig's, else
        postmaster at the first Authoritative accepted domain (a wildcard
        domain's own name), else L{None} when there is none.
        """
        transportServer = self.transportServers.get(server)
        if transportServer is not None and transportServer.externalPostmasterAddress:
            return transportServer.externalPostmasterAddress
        if self.transportConfig.externalPostmasterAddress:
            return self.transportConfig.externalPostmasterAddress
        for accepted in self.acceptedDomains:
            if accepted.domainType == "Authoritative":
                return "postmaster@" + accepted.domainName.removeprefix("*.")
        return None


def _named(sections, name):
    lowered = name.lower()
    return next((section for section in sections if section.name.lower() == lowered), None)
