"""
The listening sockets of one transport server and the per-connection
choices made before the first reply: which connector, and whether its
connection limits let the client in.
"""

import itertools
from collections import Counter

from twisted.application import service
from twisted.internet.defer import gatherResults
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from exmta.envelope import Reply
from exmta.receive.protocol import ReceiveProtocol
from exmta.receive.selection import listeningAddresses, selectConnector

TOO_MANY_CONNECTIONS = Reply(
    421,
    "4.3.2",
    "The maximum number of concurrent connections has exceeded a limit, "
    "closing transmission channel",
)


class ReceiveFactory(ServerFactory):
    """
    Shared by every socket of a transport server: sessions are handed to
    connectors by their local and peer addresses, not by socket.

    @ivar organization: the L{exmta.config.model.Organization}.
    @ivar queue: the L{exmta.interfaces.IMessageQueue} accepted mail goes to.
    @ivar resolver: the L{exmta.interfaces.IRecipientResolver} RCPT asks.
    @ivar tracking: the L{exmta.interfaces.IMessageTrackingLog} that hears
        of each accepted message, or L{None}.
    """

    protocol = ReceiveProtocol
    noisy = False

    def __init__(
        self, organization, server, portals, queue, resolver, tlsOptions, reactor,
        protocolLog=None, tracking=None,
    ):
        self.organization = organization
        self.server = server
        self.connectors = organization.connectorsOf(server.name)
        self._portals = portals
        self.queue = queue
        self.resolver = resolver
        self._tlsOptions = tlsOptions
        self.reactor = reactor
        self._connections = Counter()
        self._connectionsBySource = Counter()
        self._protocolLog = protocolLog
        self.tracking = tracking
        self._sessions = itertools.count(1)

    def protocolSession(self, connector, local, peer):
        """
        @return: a L{exmta.protocollog.ProtocolSession} for a connection on a
            connector whose ProtocolLoggingLevel is Verbose, else L{None}.
        """
        if self._protocolLog is None or getattr(connector, "protocolLoggingLevel", "None") != "Verbose":
            return None
        return self._protocolLog.session(
            connector.identity,
            f"{self.reactor.seconds():.0f}-{next(self._sessions)}",
            f"{local.host}:{local.port}",
            f"{peer.host}:{peer.port}",
        )

    def select(self, localHost, localPort, peerHost):
        return selectConnector(self.connectors, localHost, localPort, peerHost)

    def portalFor(self, connector):
        return self._portals[connector.identity]

    def tlsContextFor(self, connector):
        return self._tlsOptions

    def admit(self, connector, peerHost):
        """
        Count a new session against the connector's MaxInboundConnection and
        MaxInboundConnectionPerSource.

        @return: L{None} if admitted (L{release} must follow), else the
            reply to close with.
        """
        source = (connector.identity, peerHost)
        total = connector.maxInboundConnection
        perSource = connector.maxInboundConnectionPerSource
        if total is not None and self._connections[connector.identity] >= total:
            return TOO_MANY_CONNECTIONS
        if perSource is not None and self._connectionsBySource[source] >= perSource:
            return TOO_MANY_CONNECTIONS
        self._connections[connector.identity] += 1
        self._connectionsBySource[source] += 1
        return None

    def release(self, connector, peerHost):
        source = (connector.identity, peerHost)
        self._connections[connector.identity] -= 1
        self._connectionsBySource[source] -= 1
        if not self._connectionsBySource[source]:
            del self._connectionsBySource[source]


class ReceiveService(service.Service):
    """
    Listens on every binding of the server's receive connectors.  Sockets
    are opened in L{privilegedStartService} so that twistd can bind ports
    below 1024 before it drops privileges, and so a busy port stops the
    start instead of leaving a server that silently does not listen.

    @ivar ports: the listening ports, once started.
    """

    log = Logger()

    def __init__(self, factory, reactor):
        self.factory = factory
        self.reactor = reactor
        self.ports = []
        self._bound = False

    def privilegedStartService(self):
        super().privilegedStartService()
        self._bound = True
        try:
            for binding in listeningAddresses(self.factory.connectors):
                port = self.reactor.listenTCP(
                    binding.port, self.factory, interface=binding.host
                )
                self.ports.append(port)
                self.log.info(
                    "listening on {binding} for {server}",
                    binding=str(binding),
                    server=self.factory.server.name,
                )
        except BaseException:
            for port in self.ports:
                port.stopListening()
            self.ports = []
            self._bound = False
            raise

    def startService(self):
        if not self._bound:
            self.privilegedStartService()
        super().startService()

    def stopService(self):
        super().stopService()
        ports, self.ports = self.ports, []
        self._bound = False
        return gatherResults([port.stopListening() for port in ports])
