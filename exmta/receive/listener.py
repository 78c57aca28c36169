"""
The listening sockets of one transport server and the per-connection
choices made before the first reply: which connector, and whether its
connection limits let the client in.
"""

import itertools
import os

from twisted.application import service
from twisted.internet.defer import gatherResults
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from exmta.auth.throttle import LogonThrottle
from exmta.cleanup.cleanup import Cleanup
from exmta.monitor.levels import BackPressure
from exmta.receive.limits import LocalConnectionCounts, MessageRates
from exmta.receive.protocol import ReceiveProtocol
from exmta.receive.configuration import ReceiveConfiguration
from exmta.receive.selection import listeningAddresses

# Connections the kernel may hold for us before accept: Twisted's default of
# 50 overflows when a hundred clients connect at once, and each dropped SYN
# costs its client a one-second retransmission.  The kernel caps it at
# net.core.somaxconn.
LISTEN_BACKLOG = 4096


class _SessionFactory:
    """
    The factory as one session sees it: the L{ReceiveConfiguration} of the
    moment it connected and its cleanup stage, and the factory's shared
    parts (queue, reactor, connection counts, logs) for the rest.
    """

    def __init__(self, factory, configuration, cleanup):
        self._factory = factory
        self._configuration = configuration
        self.cleanup = cleanup
        self.organization = configuration.organization
        self.server = configuration.server
        self.connectors = configuration.connectors
        self.resolver = configuration.resolver
        self.agents = configuration.agents

    def portalFor(self, connector):
        return self._configuration.portals[connector.identity]

    def tlsContextFor(self, connector):
        return self._configuration.tlsOptions

    def __getattr__(self, name):
        return getattr(self._factory, name)


class ReceiveFactory(ServerFactory):
    """
    Shared by every socket of a transport server: sessions are handed to
    connectors by their local and peer addresses, not by socket.

    @ivar configuration: the L{ReceiveConfiguration} new sessions start
        under; C{organization}, C{server}, C{connectors} and C{resolver}
        are its.
    @ivar queue: the L{exmta.interfaces.IMessageSubmission} accepted mail
        goes to.
    @ivar cleanup: the L{exmta.interfaces.ICleanup} new sessions hand their
        messages to, made for the configuration.
    @ivar tracking: the L{exmta.interfaces.IMessageTrackingLog} that hears
        of each accepted message, or L{None}.
    @ivar connectionCounts: where the connectors' connection limits are
        counted: a L{exmta.receive.limits.ConnectionCounts} shared with the
        server's receive workers, or this process's own exact
        L{exmta.receive.limits.LocalConnectionCounts}.
    @ivar logonThrottle: the L{exmta.auth.throttle.LogonThrottle} counting
        this process's failed logons, kept across reloads.
    @ivar messageRates: the L{exmta.receive.limits.MessageRates} of the
        connectors' MessageRateLimit, kept across reloads.
    @ivar backPressure: the L{exmta.interfaces.IBackPressure} asked at
        each MAIL FROM.
    @ivar observer: the L{exmta.interfaces.IReceiveObserver} told of each
        reply, or L{None}.
    @ivar shadowDiscards: the L{exmta.queue.shadow.DiscardNotifications}
        of the server's queue (a worker process's
        L{exmta.worker.WorkerDiscards}), which XSHADOW and
        XQDISCARD use; L{None} offers no XSHADOW.
    """

    protocol = ReceiveProtocol
    noisy = False

    def __init__(
        self, organization, server, portals, queue, resolver, tlsOptions, reactor,
        protocolLog=None, tracking=None, agents=None, connections=None,
        backPressure=None, observer=None,
    ):
        self.configuration = ReceiveConfiguration(
            organization, server, portals, resolver, tlsOptions, agents
        )
        self.queue = queue
        self.reactor = reactor
        self.connectionCounts = LocalConnectionCounts() if connections is None else connections
        self.logonThrottle = LogonThrottle(reactor)
        self.messageRates = MessageRates(reactor)
        self.backPressure = BackPressure(None) if backPressure is None else backPressure
        self.observer = observer
        self._protocolLog = protocolLog
        self.tracking = tracking
        self.shadowDiscards = None
        self._sessions = itertools.count(1)
        self.cleanup = self._cleanupFor(self.configuration)

    organization = property(lambda self: self.configuration.organization)
    server = property(lambda self: self.configuration.server)
    connectors = property(lambda self: self.configuration.connectors)
    resolver = property(lambda self: self.configuration.resolver)
    agents = property(lambda self: self.configuration.agents)

    def reconfigure(self, configuration):
        """
        Start new sessions under C{configuration}, a
        L{ReceiveConfiguration}; sessions in progress keep theirs.
        """
        self.configuration = configuration
        self.cleanup = self._cleanupFor(configuration)

    def _cleanupFor(self, configuration):
        return Cleanup(
            configuration.organization, self.queue, self.reactor, configuration.agents,
            self.tracking,
        )

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.factory = _SessionFactory(self, self.configuration, self.cleanup)
        return protocol

    def protocolSession(self, connector, local, peer):
        """
        @return: a L{exmta.protocollog.ProtocolSession} for a connection on a
            connector whose ProtocolLoggingLevel is Verbose, else L{None}.
        """
        if self._protocolLog is None or getattr(connector, "protocolLoggingLevel", "None") != "Verbose":
            return None
        return self._protocolLog.session(
            connector.identity,
            # The process id tells apart the sessions of receive workers.
            f"{self.reactor.seconds():.0f}-{os.getpid()}-{next(self._sessions)}",
            f"{local.host}:{local.port}",
            f"{peer.host}:{peer.port}",
        )

    def select(self, localHost, localPort, peerHost):
        return self.configuration.select(localHost, localPort, peerHost)

    def portalFor(self, connector):
        return self.configuration.portals[connector.identity]

    def tlsContextFor(self, connector):
        return self.configuration.tlsOptions

    def admit(self, connector, peerHost):
        """
        Count a new session against the connector's MaxInboundConnection and
        MaxInboundConnectionPerSource, over every process of the server.

        @return: L{None} if admitted (L{release} must follow), else the
            reply to close with.
        """
        return self.connectionCounts.admit(connector, peerHost)

    def release(self, connector, peerHost):
        self.connectionCounts.release(connector, peerHost)


class ReceiveService(service.Service):
    """
    Listens on every binding of the server's receive connectors.  Sockets
    are opened in L{privilegedStartService} so that twistd can bind ports
    below 1024 before it drops privileges, and so a busy port stops the
    start instead of leaving a server that silently does not listen.

    After a reload, L{listen} opens the sockets of new bindings and
    L{closeUnused} closes those no binding needs any more (connections
    already accepted on them go on).  A reload that needs a port below 1024
    after twistd dropped privileges fails (and is refused); so does one
    that turns a specific binding into a wildcard one on the same port.

    While the server has receive workers ready, this process only holds
    the sockets for them (L{accepting} false): they stay bound and
    listening, so the kernel queues connections, but this process does not
    accept them.

    @ivar ports: the listening ports, once started.
    """

    log = Logger()

    def __init__(self, factory, reactor):
        self.factory = factory
        self.reactor = reactor
        self._accepting = True
        self._ports = {}
        self._bound = False

    @property
    def accepting(self):
        """
        Whether this process accepts connections on its sockets.
        """
        return self._accepting

    @accepting.setter
    def accepting(self, accepting):
        if accepting != self._accepting:
            self._accepting = accepting
            for port in self._ports.values():
                if accepting:
                    port.startReading()
                else:
                    port.stopReading()

    @property
    def ports(self):
        return list(self._ports.values())

    def privilegedStartService(self):
        super().privilegedStartService()
        self.listen(self.factory.connectors)
        self._bound = True

    def listen(self, connectors):
        """
        Open a socket for each binding of C{connectors} that has none.

        @return: the bindings it opened.
        @raise twisted.internet.error.CannotListenError: having closed the
            sockets it opened.
        """
        opened = []
        try:
            for binding in listeningAddresses(connectors):
                if binding in self._ports:
                    continue
                port = self._ports[binding] = self.reactor.listenTCP(
                    binding.port, self.factory, backlog=LISTEN_BACKLOG, interface=binding.host
                )
                if not self.accepting:
                    port.stopReading()
                opened.append(binding)
                self.log.info(
                    "listening on {binding} for {server}",
                    binding=str(binding),
                    server=self.factory.server.name,
                )
        except BaseException:
            for binding in opened:
                self._ports.pop(binding).stopListening()
            raise
        return opened

    def closeUnused(self, connectors):
        """
        Close the sockets of bindings C{connectors} no longer have.

        @return: a Deferred firing when they are closed.
        """
        wanted = set(listeningAddresses(connectors))
        closing = []
        for binding in [b for b in self._ports if b not in wanted]:
            self.log.info("no longer listening on {binding}", binding=str(binding))
            closing.append(self._ports.pop(binding).stopListening())
        return gatherResults(closing)

    def startService(self):
        if not self._bound:
            self.privilegedStartService()
        super().startService()

    def stopService(self):
        super().stopService()
        ports, self._ports = list(self._ports.values()), {}
        self._bound = False
        return gatherResults([port.stopListening() for port in ports])
