"""
L{SmtpDelivery}: the L{IRemoteDelivery} of a transport server.

For each send it works out the next hop's settings from its send connector,
takes a connection from the L{ConnectionPool} (an idle one to the same next
hop, or a new one), and runs one SMTP transaction on it.  A new connection
tries the next hop's hosts in order until one greets, passes the TLS and
authentication policy, and is ready:

  - C{SmartHostConnectorDelivery}: the connector's SmartHosts as listed,
    each on its own port or the connector's Port;
  - C{DnsConnectorDelivery}: the MX hosts of the recipient domain by
    preference (the domain itself if it has no MX; a null MX fails the
    recipients with 556 5.1.10), on the connector's Port;
  - C{SmtpRelayWithinAdSite}: the transport server that is a source server
    of the connector (L{exmta.routing.connectors.forwardingTarget}), with
    opportunistic TLS and no AUTH.  With ShadowRedundancyEnabled, MAIL
    carries C{XSHADOW=<this server>:<queue id>} when the peer offers
    XSHADOW, and the outcomes come back as L{ShadowedOutcomes}: this
    server keeps a shadow (L{exmta.queue.shadow}), and polls the peer for
    discard notifications with L{SmtpDelivery.discardNotifications}.

Each name's A then AAAA addresses are tried in order; hosts that failed in
the last ten minutes go last.  When every host fails, the recipients get a
L{ConnectionFailure} saying why the first one did.

Send protocol log: for a connector whose ProtocolLoggingLevel is Verbose,
every line sent and received is appended to C{SEND<yyyymmdd>.LOG} (one file
a day, UTC) in the TransportServer's SendProtocolLogPath, in Exchange's CSV
columns (L{exmta.protocollog}): date-time, connector-id (the send
connector's name), session-id, sequence-number, local-endpoint,
remote-endpoint, event (C{+} connect, C{-} disconnect, C{>} sent, C{<}
received, C{*} information: the TLS version and cipher, the size of the
message data), data, context.  AUTH is written as C{AUTH PLAIN} or C{AUTH
LOGIN} with C{initial response redacted}, SASL responses as
C{<redacted>}; message data is never written.  Without a
SendProtocolLogPath nothing is logged.
"""

from dataclasses import dataclass

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.logger import Logger
from zope.interface import implementer

from exmta.auth.domainsecure import isDomainSecured, loadPartnerIdentity
from exmta.envelope import NextHop, Reply, ShadowedOutcomes
from exmta.errors import ConfigError, ConnectionFailure, PermanentFailure, SMTPFailure
from exmta.interfaces import IRemoteDelivery
from exmta.protocollog import ProtocolLog
from exmta.routing.connectors import forwardingTarget
from exmta.send import hosts
from exmta.send.client import DeliveryClient, HostFailure, StaleConnection, Transaction
from exmta.send.replies import connectionFailure, withErrorPolicies
from exmta.send.limits import OutboundCounts
from exmta.send.pool import IDLE_TIMEOUT, SHUTTING_DOWN, ConnectionPool
from exmta.send.tls import DOMAIN_VALIDATION, TlsPolicy

log = Logger(namespace="exmta.send")

SMART_HOST = "SmartHostConnectorDelivery"
DNS = "DnsConnectorDelivery"
RELAY = "SmtpRelayWithinAdSite"

# The longest wait for a TCP connection (the connector's
# ConnectionInactivityTimeOut applies if shorter).
CONNECT_TIMEOUT = 60

TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")

# How long a stop lets transactions already under way finish before their
# connections are dropped (their recipients stay queued).
STOP_GRACE = 2


_MAX_SETTINGS = 10_000


@dataclass(frozen=True)
class HopSettings:
    """
    How to reach one next hop, from its send connector.

    @ivar authentication: L{None}, C{BasicAuth} or C{BasicAuthRequireTLS}.
    """

    key: str
    connector: object
    deliveryType: str
    domain: str | None
    server: str | None
    ehloName: str
    port: int
    timeout: float
    tls: TlsPolicy
    authentication: str | None
    credentialName: str | None
    maxMessageSize: int | None
    protocolLogging: bool
    forceHelo: bool = False
    sourceAddress: str | None = None
    errorPolicies: frozenset = frozenset()


def _hopOf(key):
    """
    @return: the next hop's key in a key of the pool, which carries the
        configuration's generation too (a number of this process only).
    """
    return key[1]


def authenticationOf(connector):
    """
    @return: L{None}, C{BasicAuth} or C{BasicAuthRequireTLS} for a send
        connector's SmartHostAuthMechanism.
    """
    mechanism = connector.smartHostAuthMechanism or ()
    if isinstance(mechanism, str):
        mechanism = {part.strip() for part in mechanism.split(",")}
    if "BasicAuthRequireTLS" in mechanism:
        return "BasicAuthRequireTLS"
    if "BasicAuth" in mechanism:
        return "BasicAuth"
    return None


@implementer(IRemoteDelivery)
class SmtpDelivery:
    """
    Delivers messages over SMTP for one transport server.
    """

    def __init__(
        self, organization, server, credentials, reactor, resolver=None, clock=None, *,
        trustRoot=None, idleTimeout=IDLE_TIMEOUT, failedHostMemory=hosts.FAILED_HOST_MEMORY,
        identity=None, connections=None,
    ):
        """
        @param organization: the L{exmta.config.model.Organization}.
        @param server: the local L{exmta.config.model.TransportServer}: its
            Fqdn, connection caps, DNS servers and SendProtocolLogPath.
        @param credentials: has C{get(name) -> (username, password)}, the
            AuthenticationCredentials of send connectors
            (L{exmta.auth.credentials.CredentialStore}).
        @param reactor: connects (IReactorTCP) and keeps time.
        @param resolver: a L{twisted.names} IResolver; by default one asking
            the server's InternalDNSServers (or ExternalDNSServers, for
            connectors with UseExternalDNSServersEnabled), else the
            system's resolvers.
        @param clock: an IReactorTime for timeouts and host memory; the
            reactor by default.
        @param trustRoot: the IOpenSSLTrustRoot certificates are checked
            against under CertificateValidation and DomainValidation; the
            platform's by default.
        @param idleTimeout: seconds an idle connection is kept for reuse.
        @param failedHostMemory: seconds a failed host is tried last.
        @param identity: this server's certificate, key and organization
            authority (an L{exmta.auth.certificates.ServerIdentity}), for
            Exchange Server authentication to the organization's other
            servers; L{None} when it has none.
        @param connections: the server's shared connection counts (an
            L{exmta.sharedcounts.SharedCounts}, this process's row of it)
            when other processes of the server send too: the
            TransportServer's MaxOutboundConnections and
            MaxPerDomainOutboundConnections then hold over all of them
            (L{exmta.send.limits}).  L{None}: this process's connections
            are all the server's.
        """
        self.organization = organization
        self.server = server
        self._credentials = credentials
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._resolver = resolver
        self._resolvers = {}
        self._trustRoot = trustRoot
        self._identity = identity
        self._failedHosts = hosts.FailedHosts(self._clock, failedHostMemory)
        shared = None
        if connections is not None:
            shared = OutboundCounts(
                connections, server.maxOutboundConnections, server.maxPerDomainOutboundConnections
            )
        self._pool = ConnectionPool(
            self._clock,
            server.maxOutboundConnections,
            server.maxPerDomainOutboundConnections,
            idleTimeout,
            shared=shared,
            hopOf=_hopOf,
        )
        self._live = set()
        self._connecting = set()
        self._closing = None
        self._protocolLog = None
        self._sessions = 0
        self._generation = 0
        self._settings = {}

    def reconfigure(self, organization, server, credentials=None, identity=None):
        """
        Send under a new configuration from now on.  Sends in progress
        finish under the old one; connections it opened are not reused
        (they close once idle).  The outbound connection caps and the
        SendProtocolLogPath stay as they were until a restart.

        @param identity: see L{__init__}.
        """
        self.organization = organization
        self.server = server
        self._identity = identity
        if credentials is not None:
            self._credentials = credentials
        self._generation += 1
        self._settings = {}

    # IRemoteDelivery

    def send(self, nextHop, queued, recipients, message):
        """
        See L{IRemoteDelivery.send}.
        """
        return Deferred.fromCoroutine(self._send(nextHop, queued, recipients, message))

    async def _send(self, nextHop, queued, recipients, message):
        recipients = tuple(dict.fromkeys(recipients))
        if not recipients:
            return {}
        try:
            settings = self.settingsFor(nextHop)
        except SMTPFailure as failure:
            return dict.fromkeys(recipients, failure)
        if settings.maxMessageSize is not None and len(message) > settings.maxMessageSize:
            failure = PermanentFailure(TOO_BIG)
            log.info(
                "{queueId} is {size} bytes, over the MaxMessageSize of send connector "
                "{connector} or the TransportConfig's MaxSendSize ({limit})",
                queueId=queued.queueId,
                size=len(message),
                connector=settings.connector.name,
                limit=settings.maxMessageSize,
            )
            return dict.fromkeys(recipients, failure)
        sender = queued.mailFrom or ""
        if sender == "<>":
            sender = ""
        shadow = None
        if (
            settings.deliveryType == RELAY
            and self.organization.transportConfig.shadowRedundancyEnabled
        ):
            shadow = f"{self.server.name}:{queued.queueId}"
        asked = {
            r.address: (r.notify, r.orcpt)
            for r in getattr(queued, "recipients", ())
            if r.address in recipients and (r.notify is not None or r.orcpt is not None)
        }
        transaction = Transaction(
            queued.queueId, sender, recipients, message, getattr(queued, "body", "7BIT") or "7BIT",
            ret=getattr(queued, "ret", None), envid=getattr(queued, "envid", None),
            recipientDsn=asked, smtputf8=getattr(queued, "smtputf8", False), shadow=shadow,
        )
        for _ in range(3):
            try:
                client = await self._pool.acquire(
                    (self._generation, settings.key), lambda: self._open(settings)
                )
            except SMTPFailure as failure:
                log.info(
                    "{queueId} not sent to {nextHop}: {reply}",
                    queueId=queued.queueId,
                    nextHop=settings.key,
                    reply=str(failure.reply),
                )
                return dict.fromkeys(recipients, withErrorPolicies(failure, settings.errorPolicies))
            try:
                instance = client.shadowInstance
                outcomes = await client.transact(transaction)
                outcomes = {
                    recipient: withErrorPolicies(outcome, settings.errorPolicies)
                    for recipient, outcome in outcomes.items()
                }
                if shadow is not None and instance is not None:
                    return ShadowedOutcomes(outcomes, instance)
                return outcomes
            except StaleConnection:
                log.info("reused connection to {target} was closed; trying a new one",
                         target=str(client.target))
        return dict.fromkeys(
            recipients,
            ConnectionFailure(Reply(451, "4.4.2", f"Connections to {settings.key} keep closing")),
        )

    def discardNotifications(self, serverName):
        """
        The shadow heartbeat (L{exmta.queue.shadow}): a session with the
        TransportServer C{serverName} as for forwarding, and C{XQDISCARD}.

        @return: a Deferred firing with (the instance it offered with
            XSHADOW, [queue ids whose shadows it says to discard]), or
            failing with L{SMTPFailure} when it cannot be polled.
        """
        return Deferred.fromCoroutine(self._discardNotifications(serverName))

    async def _discardNotifications(self, serverName):
        connector = next(
            (
                c for c in self.organization.sendConnectors
                if serverName.lower() in (s.lower() for s in c.sourceTransportServers)
            ),
            None,
        )
        if connector is None:
            raise ConnectionFailure(
                Reply(451, "4.4.0", f"No send connector has {serverName} as a source server")
            )
        settings = self.settingsFor(NextHop(RELAY, connector.name, server=serverName))
        client = await self._walk(settings)
        try:
            instance = client.shadowInstance
            if instance is None:
                raise ConnectionFailure(
                    Reply(451, "4.7.0", f"{serverName} does not offer XSHADOW to this server")
                )
            code, lines = await client.command(b"XQDISCARD " + self.server.name.encode("ascii"))
            if code != 250:
                raise ConnectionFailure(
                    Reply(451, "4.4.0", f"{serverName} refused XQDISCARD: {code} {lines[-1]!r}")
                )
            return instance, [
                line.decode("ascii", "replace").partition(" ")[2] for line in lines[:-1]
            ]
        finally:
            client.quit()

    def close(self):
        """
        Stop sending.  Sends that wait for a connection, or whose
        connection is still being opened (a host that does not answer),
        fail at once with a L{ConnectionFailure}, so their recipients stay
        queued; idle connections QUIT; transactions under way have
        L{STOP_GRACE} seconds to finish before their connections are
        dropped.

        Called again (the queue manager stops the sends, then the service
        releases what it shared), it only waits for the first call to end.

        @return: a L{Deferred} that fires once every connection is closed.
        """
        if self._closing is None:
            self._closing = self._close()
        done = Deferred()

        def fire(result):
            done.callback(None)
            return result

        self._closing.addBoth(fire)
        return done

    def _close(self):
        self._pool.close()
        for connecting in list(self._connecting):
            connecting.cancel()
        for client in list(self._live):
            if not client.ready.called:
                client.abort(SHUTTING_DOWN)
        waits = [client.whenLost for client in list(self._live)]
        done = DeferredList(waits) if waits else succeed(None)
        if waits:
            grace = self._clock.callLater(STOP_GRACE, self._dropAll)
            done.addBoth(lambda result: grace.cancel() if grace.active() else None)

        def closeLog(result):
            if self._protocolLog is not None:
                self._protocolLog.close()
            return None

        return done.addCallback(closeLog)

    def _dropAll(self):
        for client in list(self._live):
            client.abort(SHUTTING_DOWN)

    # Settings

    def settingsFor(self, nextHop):
        """
        @return: the L{HopSettings} of C{nextHop}, made once per
            configuration.
        @raise ConnectionFailure: when its send connector is not defined.
        """
        try:
            return self._settings[nextHop]
        except KeyError:
            # Next hops by DNS are one per domain: emptied when full, so
            # that ever new domains cannot grow it.
            if len(self._settings) >= _MAX_SETTINGS:
                self._settings.clear()
            settings = self._settings[nextHop] = self._makeSettings(nextHop)
            return settings

    def _makeSettings(self, nextHop):
        connector = self._connector(nextHop.connector)
        if connector is None:
            raise ConnectionFailure(
                Reply(451, "4.4.0", f"No send connector is named {nextHop.connector}")
            )
        deliveryType = nextHop.deliveryType
        tlsDomain = connector.tlsDomain
        if deliveryType == DNS and connector.tlsDomain is None:
            # Without TlsDomain, DomainValidation checks the recipient domain.
            tlsDomain = nextHop.domain
        tls = TlsPolicy(
            requireTLS=connector.requireTLS,
            ignoreSTARTTLS=connector.ignoreSTARTTLS,
            tlsAuthLevel=connector.tlsAuthLevel,
            tlsDomain=tlsDomain,
        )
        authentication = authenticationOf(connector) if deliveryType == SMART_HOST else None
        ehloName = connector.fqdn or self.server.fqdn
        port = connector.port
        forceHelo = getattr(connector, "forceHELO", False)
        source = getattr(connector, "sourceIPAddress", "0.0.0.0")
        sourceAddress = None if source in ("0.0.0.0", "::") else source
        if deliveryType == SMART_HOST and "ExchangeServer" in (connector.smartHostAuthMechanism or ()):
            # Exchange Server authentication: TLS with this server's
            # certificate, to a smart host the organization issued one.
            if self._identity is None:
                raise ConnectionFailure(
                    Reply(
                        454, "4.7.0",
                        f"Send connector {connector.name} uses SmartHostAuthMechanism "
                        f"ExchangeServer and TransportServer {self.server.name} has no "
                        "TlsCertificateAuthorityPath",
                    )
                )
            tls = TlsPolicy(requireTLS=True, identity=self._identity)
        if (
            deliveryType == DNS
            and connector.domainSecureEnabled
            and isDomainSecured(self.organization.transportConfig.tlsSendDomainSecureList, nextHop.domain)
        ):
            # Domain Security: TLS with a certificate for the partner's
            # domain, ours shown as client certificate; else no sending.
            tls = TlsPolicy(
                requireTLS=True,
                tlsAuthLevel=DOMAIN_VALIDATION,
                tlsDomain=nextHop.domain,
                partner=self._partnerIdentity(connector),
            )
        if deliveryType == RELAY:
            # Forwarding to another transport server of the organization,
            # with our own name, EHLO, any address and no AUTH: TLS with this server's
            # certificate when the organization issued it one (Exchange
            # Server authentication), else opportunistic TLS.
            tls = TlsPolicy(requireTLS=self._identity is not None, identity=self._identity)
            authentication = None
            ehloName = self.server.fqdn
            forceHelo, sourceAddress = False, None
        elif deliveryType not in (SMART_HOST, DNS):
            raise ConnectionFailure(
                Reply(451, "4.4.0", f"Unknown delivery type {deliveryType} for {nextHop.key}")
            )
        return HopSettings(
            key=nextHop.key,
            connector=connector,
            deliveryType=deliveryType,
            domain=nextHop.domain,
            server=nextHop.server,
            ehloName=ehloName,
            port=port,
            timeout=connector.connectionInactivityTimeout,
            tls=tls,
            authentication=authentication,
            credentialName=connector.authenticationCredential,
            maxMessageSize=self._sizeLimit(connector, deliveryType),
            protocolLogging=getattr(connector, "protocolLoggingLevel", "None") == "Verbose",
            forceHelo=forceHelo,
            sourceAddress=sourceAddress,
            errorPolicies=getattr(connector, "errorPolicies", frozenset()),
        )

    def _partnerIdentity(self, connector):
        """
        @return: the L{PartnerIdentity} Domain Security sends with.
        @raise ConnectionFailure: the server has no certificate of its own
            to show, or a file cannot be read.
        """
        server = self.server
        if server.tlsCertificatePath is None:
            raise ConnectionFailure(
                Reply(
                    454, "4.7.5",
                    f"Send connector {connector.name} has DomainSecureEnabled and TransportServer "
                    f"{server.name} has no TlsCertificatePath to present to the partner",
                )
            )
        try:
            return loadPartnerIdentity(server, server.tlsCertificatePath, server.tlsPrivateKeyPath)
        except ConfigError as error:
            raise ConnectionFailure(Reply(454, "4.7.5", f"Domain Security: {error}")) from None

    def _sizeLimit(self, connector, deliveryType):
        """
        The Send connector's MaxMessageSize, or the organization's
        MaxSendSize when smaller; mail between the organization's own
        transport servers has only the connector's.
        """
        limits = [connector.maxMessageSize]
        if deliveryType != RELAY:
            limits.append(self.organization.transportConfig.maxSendSize)
        limits = [limit for limit in limits if limit is not None]
        return min(limits) if limits else None

    def _connector(self, name):
        for connector in self.organization.sendConnectors:
            if connector.name == name:
                return connector
        for connector in self.organization.sendConnectors:
            if connector.name.lower() == (name or "").lower():
                return connector
        return None

    def resolverFor(self, connector):
        """
        @return: the IResolver for C{connector}'s lookups.
        """
        if self._resolver is not None:
            return self._resolver
        external = getattr(connector, "useExternalDNSServersEnabled", False)
        servers = self.server.externalDNSServers if external else self.server.internalDNSServers
        servers = tuple(_dnsServer(entry) for entry in servers or ())
        if servers not in self._resolvers:
            self._resolvers[servers] = _createResolver(servers, self._reactor)
        return self._resolvers[servers]

    # Connecting

    async def _targets(self, settings):
        resolver = self.resolverFor(settings.connector)
        if settings.deliveryType == SMART_HOST:
            if not settings.connector.smartHosts:
                raise ConnectionFailure(
                    Reply(451, "4.4.0", f"Send connector {settings.connector.name} has no SmartHosts")
                )
            return await hosts.smartHostTargets(resolver, settings.connector.smartHosts, settings.port)
        if settings.deliveryType == DNS:
            return await hosts.mailExchangerTargets(resolver, settings.domain, settings.port)
        try:
            host, port = forwardingTarget(self.organization, settings.server)
        except ValueError as error:
            raise ConnectionFailure(Reply(451, "4.4.0", str(error))) from None
        try:
            return await hosts.resolveHost(resolver, host, port), []
        except hosts.HostLookupFailed as failed:
            return [], [(host, failed.reply)]

    def _open(self, settings):
        return Deferred.fromCoroutine(self._walk(settings))

    async def _walk(self, settings):
        """
        Try the next hop's hosts until one is ready.

        @return: a ready L{DeliveryClient}.
        @raise SMTPFailure: when none is.
        """
        targets, failures = await self._targets(settings)
        failures = [(str(name), reply) for name, reply in failures]
        credentials = self._credentialsFor(settings) if settings.authentication else None
        for target in self._failedHosts.order(targets):
            if self._pool.closed:
                raise ConnectionFailure(SHUTTING_DOWN)
            try:
                client = await self._connect(target, settings, credentials)
            except HostFailure as failed:
                if self._pool.closed:
                    raise ConnectionFailure(SHUTTING_DOWN) from None
                log.warn(
                    "{target} failed for {nextHop}: {reply}",
                    target=str(target),
                    nextHop=settings.key,
                    reply=str(failed.reply),
                )
                self._failedHosts.mark(target)
                failures.append((str(target), failed.reply))
                continue
            self._failedHosts.clear(target)
            return client
        raise connectionFailure(_summary(settings, failures))

    def _credentialsFor(self, settings):
        name = settings.credentialName
        problem = None
        if not name:
            problem = "has no AuthenticationCredential"
        else:
            try:
                return self._credentials.get(name)
            except Exception as error:  # the store's own error; never a secret
                problem = f"cannot read its AuthenticationCredential {name} ({type(error).__name__})"
        log.error(
            "send connector {connector} {problem}",
            connector=settings.connector.name,
            problem=problem,
        )
        raise ConnectionFailure(
            Reply(454, "4.7.0", f"Send connector {settings.connector.name} {problem}")
        )

    async def _connect(self, target, settings, credentials):
        context = settings.tls.contextFor(target.name, self._trustRoot)
        client = DeliveryClient(
            target,
            settings.ehloName,
            context,
            settings.tls.requireTLS,
            settings.authentication,
            credentials,
            settings.timeout,
            self._clock,
            protocolLog=self._protocolLogFor(settings),
            forceHelo=settings.forceHelo,
        )
        endpointClass = TCP6ClientEndpoint if target.isIPv6 else TCP4ClientEndpoint
        bindAddress = None
        if settings.sourceAddress is not None:
            # SourceIPAddress: connections leave from it; one of the other
            # family cannot, and goes from any address.
            if (":" in settings.sourceAddress) == target.isIPv6:
                bindAddress = (settings.sourceAddress, 0)
        endpoint = endpointClass(
            self._reactor, target.address, target.port,
            timeout=min(CONNECT_TIMEOUT, settings.timeout or CONNECT_TIMEOUT),
            bindAddress=bindAddress,
        )
        log.debug("connecting to {target} for {nextHop}", target=str(target), nextHop=settings.key)
        connecting = connectProtocol(endpoint, client)
        self._connecting.add(connecting)
        try:
            await connecting
        except Exception as error:
            raise HostFailure(
                Reply(451, "4.4.1", f"Unable to connect to {target}: {_errorText(error)}")
            ) from None
        finally:
            self._connecting.discard(connecting)
        self._live.add(client)
        client.whenLost.addBoth(lambda _: self._live.discard(client))
        return await client.ready

    def _protocolLogFor(self, settings):
        if not settings.protocolLogging:
            return None
        folder = self.server.sendProtocolLogPath
        if not folder:
            return None
        if self._protocolLog is None:
            self._protocolLog = ProtocolLog(folder, "SEND", self._clock)

        def openSession(local, remote):
            self._sessions += 1
            return self._protocolLog.session(
                settings.connector.name,
                f"{self._clock.seconds():.0f}-{self._sessions}",
                f"{local.host}:{local.port}",
                f"{remote.host}:{remote.port}",
            )

        return openSession


def _summary(settings, failures):
    """
    The reply for a next hop none of whose hosts would take the message:
    the first host's failure, and how many others failed too.
    """
    if not failures:
        return Reply(451, "4.4.0", f"No host to connect to for {settings.key}")
    name, first = failures[0]
    code = first.code if 400 <= first.code < 500 else 451
    status = first.status if first.status.startswith("4.") else "4.4.0"
    text = " ".join(first.lines())
    if name not in text:
        text = f"{name}: {text}"
    if len(failures) > 1:
        text += (
            f"; failover to {len(failures) - 1} alternate host(s) did not succeed ("
            + "; ".join(f"{other}: {' '.join(reply.lines())}" for other, reply in failures[1:])
            + ")"
        )
    return Reply(code, status, text)


def _errorText(error):
    text = str(error).strip()
    return text or type(error).__name__


def _dnsServer(entry):
    if isinstance(entry, tuple):
        return (str(entry[0]), int(entry[1]))
    text = str(entry).strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return (host, int(rest[1:]) if rest.startswith(":") else 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return (host, int(port))
    return (text, 53)


def _createResolver(servers, reactor):
    """
    twisted.names' resolver chain (the hosts file, then DNS) on C{reactor},
    asking C{servers} if given, else those of /etc/resolv.conf.  No cache:
    lookups happen only when a new connection is opened.
    """
    from twisted.names import client, hosts as hostsFile, resolve

    if servers:
        dnsResolver = client.Resolver(servers=list(servers), reactor=reactor)
    else:
        dnsResolver = client.Resolver(resolv="/etc/resolv.conf", reactor=reactor)
    return resolve.ResolverChain([hostsFile.Resolver(b"/etc/hosts"), dnsResolver])
