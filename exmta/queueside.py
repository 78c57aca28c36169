"""
The queue side of one transport server: its queue manager over a spool,
with the send side, local delivery, routing agents' events, DSNs and
message tracking.  The main process builds one over the queue folder
(L{exmta.service.makeService}), and each worker process one over its
spool part (L{exmta.worker}): every process is a whole MTA for the
messages it accepts.
"""

from dataclasses import dataclass, field

from exmta.auth.certificates import loadIdentity
from exmta.auth.credentials import CredentialStore, checkCredentials
from exmta.config.servers import chooseServer
from exmta.deliver import loadDeliveryAgent
from exmta.metrics.observers import TrackingObserver
from exmta.queue.manager import QueueManager
from exmta.receive.configuration import ReceiveConfiguration, configureReceive
from exmta.routing import linkedNextHop, nextHopFor
from exmta.send import SmtpDelivery


_MAX_ROUTES = 10_000


@dataclass(frozen=True)
class Configuration:
    """
    What a transport server takes from org.ini, checked: made at start and
    at each reload by L{configure}.

    @ivar receive: the L{ReceiveConfiguration} of its receive side.
    """

    receive: ReceiveConfiguration
    credentials: object
    deliveryAgent: object
    # Certificate, key and authority for Exchange Server authentication.
    identity: object = None
    # Next hops by recipient domain: routing depends only on the
    # organization, fixed for this configuration (a reload makes a new one).
    # Emptied when full, so that clients naming ever new domains cannot grow it.
    _routes: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    organization = property(lambda self: self.receive.organization)
    transportServer = property(lambda self: self.receive.server)
    connectors = property(lambda self: self.receive.connectors)
    tlsOptions = property(lambda self: self.receive.tlsOptions)
    recipients = property(lambda self: self.receive.resolver)
    portals = property(lambda self: self.receive.portals)
    agents = property(lambda self: self.receive.agents)

    @property
    def postmaster(self):
        return self.organization.postmasterAddressOf(self.transportServer.name)

    def linkedRoute(self, queued):
        """
        L{linkedNextHop} of a queued message; L{None} at once when no send
        connector has a LinkedReceiveConnector.
        """
        if not any(c.linkedReceiveConnector for c in self.organization.sendConnectors):
            return None
        return linkedNextHop(self.organization, self.transportServer.name, queued.receivedFrom)

    def route(self, address):
        domain = address.domain
        try:
            return self._routes[domain]
        except KeyError:
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()
            nextHop = self._routes[domain] = nextHopFor(
                self.organization, self.transportServer.name, domain
            )
            return nextHop


def configure(organization, serverName, reactor):
    """
    @param serverName: see L{chooseServer}.
    @raise ConfigError: naming the file, line, section and key at fault.
    """
    transportServer = chooseServer(organization, serverName)
    credentials = CredentialStore.open(organization.credentialStorePath)
    checkCredentials(organization, credentials)
    return Configuration(
        receive=configureReceive(organization, transportServer, reactor),
        credentials=credentials,
        deliveryAgent=loadDeliveryAgent(organization, transportServer, reactor),
        identity=loadIdentity(transportServer),
    )



def buildQueueSide(
    configuration, spool, reactor, *, resolver=None, tracking=None, metrics=None, connections=None
):
    """
    The queue manager of C{spool} and its send side, wired as
    C{configuration} says.

    @param configuration: the L{Configuration} it runs under.
    @param spool: the L{exmta.queue.spool.Spool} it works.
    @param resolver: see L{exmta.service.makeService}.
    @param tracking: the L{exmta.tracking.MessageTrackingLog}, or L{None}.
    @param metrics: where the queue's tracking events are counted: an
        object with C{count} and C{observeDelay}
        (L{exmta.metrics.observers.TrackingObserver}), or L{None}.
    @param connections: the server's shared counts, in which the send
        side holds the outbound connection caps for all its processes
        (L{exmta.send.limits}), or L{None} for a server of one process.
    @return: the L{QueueManager}, not started; its C{remoteDelivery} is
        the L{SmtpDelivery}, whose C{close} its owner calls last.
    """
    transportServer = configuration.transportServer
    remoteDelivery = SmtpDelivery(
        configuration.organization, transportServer, configuration.credentials, reactor,
        resolver=resolver, identity=configuration.identity, connections=connections,
    )
    queueTracking = tracking
    if metrics is not None:
        # The queue's events counted as they are tracked; `manager` is
        # read when an event comes, once it exists.
        queueTracking = TrackingObserver(
            tracking, metrics.count, metrics.observeDelay,
            lambda: manager.deliveryAgent.name, reactor,
        )
    manager = QueueManager(
        spool,
        configuration.recipients,
        configuration.deliveryAgent,
        reactor,
        server=transportServer,
        postmaster=configuration.postmaster,
        route=configuration.route,
        remoteDelivery=remoteDelivery,
        trackingLog=queueTracking,
        agents=configuration.agents,
        linkedRoute=configuration.linkedRoute,
        transportConfig=configuration.organization.transportConfig,
    )
    return manager
