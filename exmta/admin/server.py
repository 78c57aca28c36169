"""
The admin endpoint's socket, served by a running transport server.

Who can reach it
================
A UNIX stream socket, C{admin.sock} in the server's queue folder
(QueueDatabasePath, itself mode 0700), bound under umask 077 and then set
to mode 0600, owned by the user the server runs as; the server checks
both after binding and refuses to run with anything looser.  On Linux it
also checks each client's credentials (SO_PEERCRED): only that user and
root are served.  A socket file left by a server that died is removed at
start: the queue folder's lock (L{exmta.queue.spool}) proves that no other
server uses it.  A path longer than a UNIX socket address allows is bound
through C{/proc/self/fd} on Linux (L{exmta.admin.protocol.reachable}).

Each connection's requests (L{exmta.admin.protocol}) are answered in
order by L{exmta.admin.commands.AdminCommands}.
"""

import contextlib
import os
import socket
import stat
import struct

from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from exmta.admin.protocol import (
    MAX_LINE,
    AdminError,
    decodeRequest,
    errorLine,
    reachable,
    resultLine,
)
from exmta.errors import ConfigError

log = Logger(namespace="exmta.admin")


def _peerUid(transport):
    """
    @return: the uid of the process at the other end of a UNIX socket, or
        L{None} where the platform does not say.
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        credentials = transport.getHandle().getsockopt(
            socket.SOL_SOCKET, option, struct.calcsize("3i")
        )
    except (OSError, AttributeError):
        return None
    _, uid, _ = struct.unpack("3i", credentials)
    return uid


class AdminProtocol(LineOnlyReceiver):
    """
    One connection to the admin endpoint: requests answered in order.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def connectionMade(self):
        self._last = succeed(None)
        self._authorized = False
        uid = _peerUid(self.transport)
        if uid is not None and uid not in (0, os.geteuid()):
            log.warn("refused an admin connection from uid {uid}", uid=uid)
            self.sendLine(errorLine("BadRequest", "permission denied"))
            self.transport.loseConnection()

    def lineReceived(self, line):
        if self.transport.disconnecting:
            return
        authorize = self.factory.authorize
        if authorize is not None and not self._authorized:
            peer = authorize(self.transport)
            if peer is None:
                log.warn("refused an admin connection over TLS: no server's certificate")
                self.sendLine(errorLine("BadRequest", "permission denied"))
                self.transport.loseConnection()
                return
            self._authorized = True
            log.info("admin connection from TransportServer {server}", server=peer)
        self._last.addCallback(lambda _: self._answer(line))
        self._last.addErrback(
            lambda failure: log.failure("cannot answer an admin request", failure)
        )

    def lineLengthExceeded(self, line):
        self.sendLine(errorLine("BadRequest", "request line too long"))
        self.transport.loseConnection()

    def _answer(self, line):
        try:
            command, arguments = decodeRequest(line)
            running = self.factory.commands.run(command, arguments)
        except AdminError as error:
            running = Deferred()
            running.errback(error)
        running.addCallbacks(resultLine, self._failed)
        return running.addCallback(self.sendLine)

    def _failed(self, failure):
        if failure.check(AdminError):
            return errorLine(failure.value.kind, failure.value.message)
        if failure.check(KeyError):
            return errorLine("NotFound", f"not queued: {failure.value}")
        log.failure("admin request failed", failure)
        return errorLine("Internal", failure.getErrorMessage())


class AdminFactory(Factory):
    protocol = AdminProtocol

    def __init__(self, commands, authorize=None):
        """
        @param authorize: for TCP: called with a connection's transport
            (its TLS handshake done), returns the name of the server its
            certificate proves, or L{None} to refuse it.
        """
        self.commands = commands
        self.authorize = authorize


def _removeStale(path):
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError("exists and is not a socket; remove it", path)
    os.unlink(path)


def _check(path):
    """
    @raise ConfigError: unless C{path} is a socket of mode 0600 owned by us.
    """
    info = os.lstat(path)
    problems = []
    if not stat.S_ISSOCK(info.st_mode):
        problems.append("is not a socket")
    if stat.S_IMODE(info.st_mode) != 0o600:
        problems.append(f"has mode {stat.S_IMODE(info.st_mode):04o}, not 0600")
    if info.st_uid != os.geteuid():
        problems.append(f"belongs to uid {info.st_uid}, not {os.geteuid()}")
    if problems:
        raise ConfigError("admin socket " + " and ".join(problems), path)


class AdminService(service.Service):
    """
    Listens on the admin socket while running.  The socket is bound in
    L{startService}, after twistd has given up root, so that it belongs to
    the user the server runs as.

    @ivar path: the socket's path.
    """

    name = "admin"

    def __init__(self, path, commands, reactor):
        self.path = os.path.abspath(path)
        self.commands = commands
        self.reactor = reactor
        self.port = None
        self._scope = None

    def startService(self):
        """
        @raise ConfigError: the socket cannot be made, or not safely.
        """
        scope = contextlib.ExitStack()
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            _removeStale(self.path)
            address = scope.enter_context(reachable(self.path))
            previous = os.umask(0o077)
            try:
                port = self.reactor.listenUNIX(address, AdminFactory(self.commands), mode=0o600)
            finally:
                os.umask(previous)
        except ConfigError:
            scope.close()
            raise
        except Exception as error:
            scope.close()
            raise ConfigError(f"cannot open the admin socket: {error}", self.path) from None
        try:
            _check(self.path)
        except BaseException:
            maybeDeferred(port.stopListening).addBoth(lambda _: scope.close())
            raise
        self.port, self._scope = port, scope
        super().startService()
        log.info("admin endpoint on {path}", path=self.path)

    def stopService(self):
        super().stopService()
        port, scope, self.port, self._scope = self.port, self._scope, None, None
        if port is None:
            return None
        # Twisted removes the socket file; the folder descriptor a long
        # path needs must stay open until it has.
        return maybeDeferred(port.stopListening).addBoth(lambda result: scope.close())


class AdminTLSService(service.Service):
    """
    Listens on the TransportServer's AdminBindings with mutual TLS, for the
    Shells of the organization's other servers (C{Get-Queue -Server}):
    the TLS context requires a client certificate from the organization's
    authority, and C{authorize} says which server it names.
    """

    name = "admin-tls"

    def __init__(self, bindings, commands, contextFactory, authorize, reactor):
        self.bindings = bindings
        self.commands = commands
        self.contextFactory = contextFactory
        self.authorize = authorize
        self.reactor = reactor
        self.ports = []

    def startService(self):
        """
        @raise ConfigError: a binding cannot be listened on.
        """
        factory = AdminFactory(self.commands, self.authorize)
        for binding in self.bindings:
            try:
                self.ports.append(
                    self.reactor.listenSSL(
                        binding.port, factory, self.contextFactory, interface=binding.host
                    )
                )
            except CannotListenError as error:
                self.stopService()
                raise ConfigError(
                    f"cannot listen on {binding} for the admin endpoint: {error.socketError}"
                ) from None
            log.info("admin endpoint on {binding} (mutual TLS)", binding=str(binding))
        super().startService()

    def stopService(self):
        super().stopService()
        ports, self.ports = self.ports, []
        return gatherResults([maybeDeferred(port.stopListening) for port in ports])
