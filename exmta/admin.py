"""
The admin endpoint of a running transport server: what the Shell's queue
cmdlets (Get-Queue, Suspend-Message, ...) and configuration reloads talk
to.

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
and reached through C{/proc/self/fd} on Linux.

Protocol
========
UTF-8 lines, LF-terminated, each one JSON object; the client sends
requests, the server answers each with one line, in order::

    > {"command": "getQueue", "arguments": {"identity": "HubA\\\\ToInternet"}}
    < {"ok": true, "result": [{"Identity": "HubA\\\\ToInternet", ...}]}
    > {"command": "exportMessage", "arguments": {"identity": "00061A2B3C4D5EA1B2C3D4E5"}}
    < {"ok": false, "error": {"kind": "InvalidState", "message": "..."}}

C{arguments} may be left out.  Error kinds: C{BadRequest} (not JSON, an
unknown command or argument), C{NotFound} (no such queue or message),
C{InvalidArgument} (a bad identity or filter), C{InvalidState} (the queue
or message is not in a state that allows it), C{ConfigError} (a reload
refused: the message is the ConfigError's text), C{Internal}.  A
connection may carry any number of requests; lines are at most 1 MiB.

Commands (identities and rows: L{exmta.queue.views}):

  - C{getQueue} C{{identity?, filter?}}: the Get-Queue rows.
  - C{getMessage} C{{identity? | queue? | filter?}} (at most one): the
    Get-Message rows, one per message and queue; C{Subject} and
    C{InternetMessageId} come from the first 64 KiB of each message.
  - C{retryQueue} C{{identity, resubmit?}}: try the queue's recipients now
    (it must be in C{Retry} status unless C{resubmit}, which routes them
    again first); result C{{Identity, MessageCount}}.
  - C{suspendQueue} / C{resumeQueue} C{{identity}}: stop or restart sending
    to a next hop (sends in flight finish); result: the queue's row.
    Queue suspension is kept in memory: a restart resumes every queue.
  - C{suspendMessage} / C{resumeMessage} C{{identity? | filter?}}: durable
    (the spool's C{suspended}); result: C{[{Identity, Status}]}, the
    status C{PendingSuspend} (C{PendingResume}) when a delivery of the
    message is in progress (the action follows when it ends).
  - C{removeMessage} C{{identity? | filter?, withNDR? = true}}: fail the
    message's recipients (those of the queue an identity or filter row
    names) with C{550 4.3.2 QUEUE.Admin; message deleted by administrative
    action}, with a notification to the sender unless C{withNDR} is false;
    result: C{[{Identity, Status}]} (C{Removed} or C{PendingRemove}).
  - C{exportMessage} C{{identity}}: C{{Identity, Size, Data}}, C{Data} the
    message's .eml bytes in base64.  As in Exchange, the message must be
    suspended first.
  - C{reload}: read org.ini again (see
    L{exmta.service.TransportServerService.reload}); result
    C{{Path, RestartRequired}}.
"""

import base64
import contextlib
import inspect
import json
import os
import socket
import stat
import struct

from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from exmta.errors import ConfigError
from exmta.queue import views

SOCKET_NAME = "admin.sock"
MAX_LINE = 1024 * 1024
# The longest path a sockaddr_un takes, with room for the NUL.
_MAX_SOCKET_PATH = 107

log = Logger(namespace="exmta.admin")


def adminSocketPath(transportServer):
    """
    @param transportServer: an L{exmta.config.model.TransportServer}.
    @return: the path of its admin socket.
    """
    return os.path.join(transportServer.queueDatabasePath, SOCKET_NAME)


class AdminError(Exception):
    """
    A request refused; C{kind} classifies it (see the module docstring).
    """

    def __init__(self, message, kind="InvalidArgument"):
        super().__init__(message)
        self.message = message
        self.kind = kind


class AdminUnavailable(Exception):
    """
    The client cannot reach the admin endpoint; the message says why.
    """


# Commands


def _identityOrFilter(identity, filter):
    if identity is not None and filter is not None:
        raise AdminError("Identity and Filter cannot be used together")
    if identity is None and filter is None:
        raise AdminError("Give an Identity or a Filter")


class AdminCommands:
    """
    The commands of the endpoint, on one transport server.

    @ivar manager: the L{exmta.queue.manager.QueueManager}.
    """

    def __init__(self, manager, reload=None):
        """
        @param reload: called with no arguments for C{reload}; returns the
            result, or raises L{ConfigError}.
        """
        self.manager = manager
        self._reload = reload

    def run(self, command, arguments):
        """
        @return: a Deferred firing with the result, or failing with an
            L{AdminError}.
        @raise AdminError: for an unknown command or arguments.
        """
        handler = _COMMANDS.get(command)
        if handler is None:
            raise AdminError(
                f"unknown command {command!r}; the commands are " + ", ".join(sorted(_COMMANDS)),
                "BadRequest",
            )
        try:
            inspect.signature(handler).bind(self, **arguments)
        except TypeError as error:
            raise AdminError(f"{command}: {error}", "BadRequest") from None
        return maybeDeferred(handler, self, **arguments)

    @property
    def server(self):
        return self.manager.serverName

    def _filtered(self, rows, filter, fields):
        try:
            predicate = views.parseFilter(filter, fields)
            return [row for row in rows if predicate(row)]
        except views.FilterError as error:
            raise AdminError(str(error)) from None

    def _queueRow(self, identity, state=None):
        try:
            name = views.queueName(identity, self.server)
        except views.IdentityError as error:
            raise AdminError(str(error)) from None
        for row in views.queueRows(state or self.manager.state()):
            if views.sameQueue(_queueName(row["Identity"]), name):
                return row
        raise AdminError(f"The queue {self.server}\\{name} was not found", "NotFound")

    def getQueue(self, identity=None, filter=None):
        if identity is not None:
            rows = [self._queueRow(identity)]
        else:
            rows = views.queueRows(self.manager.state())
        if filter is not None:
            rows = self._filtered(rows, filter, _QUEUE_FIELDS)
        return rows

    async def _messageRows(self):
        """
        @return: every Get-Message row, with the messages' subjects.
        """
        state = self.manager.state()
        headers = await self.manager.spool.headerSections([m.queueId for m in state.messages])
        return views.messageRows(state, headers)

    async def getMessage(self, identity=None, queue=None, filter=None):
        if sum(value is not None for value in (identity, queue, filter)) > 1:
            raise AdminError("Identity, Queue and Filter cannot be used together")
        if queue is not None:
            name = self._queueRow(queue)["Identity"]
        rows = await self._messageRows()
        if identity is not None:
            return self._identified(identity, rows)
        if queue is not None:
            return [row for row in rows if views.sameQueue(row["Queue"], name)]
        if filter is not None:
            return self._filtered(rows, filter, _MESSAGE_FIELDS)
        return rows

    def _identified(self, identity, rows):
        try:
            queue, queueId = views.messageIdentity(identity, self.server)
        except views.IdentityError as error:
            raise AdminError(str(error)) from None
        found = [
            row for row in rows
            if row["InternalMessageId"] == queueId
            and (queue is None or views.sameQueue(_queueName(row["Queue"]), queue))
        ]
        if not found:
            raise AdminError(f"The message {identity} was not found", "NotFound")
        return found

    async def _targets(self, identity, filter):
        """
        @return: the rows of the messages an identity or a filter names.
        """
        _identityOrFilter(identity, filter)
        if identity is not None:
            try:
                views.messageIdentity(identity, self.server)
            except views.IdentityError as error:
                raise AdminError(str(error)) from None
        else:
            # A bad filter is refused before any file is read.
            self._filtered([], filter, _MESSAGE_FIELDS)
        rows = await self._messageRows()
        if identity is not None:
            return self._identified(identity, rows)
        return self._filtered(rows, filter, _MESSAGE_FIELDS)

    # Queues

    def retryQueue(self, identity, resubmit=False):
        row = self._queueRow(identity)
        name = _queueName(row["Identity"])
        if row["Status"] == views.SUSPENDED:
            raise AdminError(
                f"The queue {row['Identity']} is suspended; resume it (Resume-Queue) first",
                "InvalidState",
            )
        if not resubmit and row["Status"] != views.RETRY:
            raise AdminError(
                f"The queue {row['Identity']} is {row['Status']}, not in Retry status; "
                "use -Resubmit $true to route its messages again",
                "InvalidState",
            )
        tried = self.manager.retryQueue(name, resubmit=bool(resubmit))
        return {"Identity": row["Identity"], "MessageCount": tried}

    def suspendQueue(self, identity):
        row = self._queueRow(identity)
        name = _queueName(row["Identity"])
        if row["DeliveryType"] not in (
            "SmartHostConnectorDelivery", "DnsConnectorDelivery", "SmtpRelayWithinAdSite"
        ):
            raise AdminError(
                f"The queue {row['Identity']} is not a delivery queue to a next hop; "
                "exmta suspends only those",
                "InvalidState",
            )
        self.manager.suspendQueue(name)
        log.info("queue {queue} suspended by an administrator", queue=row["Identity"])
        return self._queueRow(identity)

    def resumeQueue(self, identity):
        row = self._queueRow(identity)
        if row["Status"] != views.SUSPENDED:
            raise AdminError(f"The queue {row['Identity']} is not suspended", "InvalidState")
        self.manager.resumeQueue(_queueName(row["Identity"]))
        log.info("queue {queue} resumed by an administrator", queue=row["Identity"])
        return self._queueRow(identity)

    # Messages

    def _act(self, rows, act, pending, done):
        """
        Run C{act(row)} for each row; wait for those that can finish now,
        answer C{pending} for those waiting for a delivery in progress.
        """
        results, waits = [], []
        for row in rows:
            busy = self.manager.isBusy(row["InternalMessageId"])
            action = act(row)
            if busy:
                action.addErrback(
                    lambda failure, row=row: log.failure(
                        "{action} of {identity} failed", failure,
                        action=pending, identity=row["Identity"],
                    )
                )
                results.append({"Identity": row["Identity"], "Status": pending})
            else:
                entry = {"Identity": row["Identity"], "Status": done}
                results.append(entry)
                waits.append(action)
        if not waits:
            return succeed(results)
        return gatherResults(waits, consumeErrors=True).addCallback(lambda _: results)

    def _perMessage(self, rows):
        seen, unique = set(), []
        for row in rows:
            if row["InternalMessageId"] not in seen:
                seen.add(row["InternalMessageId"])
                unique.append(row)
        return unique

    async def suspendMessage(self, identity=None, filter=None):
        rows = self._perMessage(await self._targets(identity, filter))
        log.info("{count} message(s) suspended by an administrator", count=len(rows))
        return await self._act(
            rows,
            lambda row: self.manager.suspendMessage(row["InternalMessageId"]),
            views.PENDING_SUSPEND,
            views.SUSPENDED,
        )

    async def resumeMessage(self, identity=None, filter=None):
        rows = self._perMessage(await self._targets(identity, filter))
        log.info("{count} message(s) resumed by an administrator", count=len(rows))
        return await self._act(
            rows,
            lambda row: self.manager.resumeMessage(row["InternalMessageId"]),
            "PendingResume",
            views.READY_STATUS,
        )

    async def removeMessage(self, identity=None, filter=None, withNDR=True):
        rows = await self._targets(identity, filter)
        everywhere = False
        if identity is not None:
            everywhere = views.messageIdentity(identity, self.server)[0] is None
        queues = {}
        for row in rows:
            queues.setdefault(row["InternalMessageId"], set()).add(_queueName(row["Queue"]))
        return await self._act(
            self._perMessage(rows),
            lambda row: self.manager.removeMessage(
                row["InternalMessageId"],
                withNDR=bool(withNDR),
                queues=None if everywhere else queues[row["InternalMessageId"]],
            ),
            views.PENDING_REMOVE,
            "Removed",
        )

    async def exportMessage(self, identity):
        [row, *_] = await self._targets(identity, None)
        queueId = row["InternalMessageId"]
        queued = self.manager.spool.message(queueId)
        if queued is None or not queued.suspended:
            raise AdminError(
                f"The message {row['Identity']} must be suspended (Suspend-Message) "
                "before it can be exported",
                "InvalidState",
            )
        data = await self.manager.spool.messageBytes(queueId)
        return {
            "Identity": row["Identity"],
            "Size": len(data),
            "Data": base64.b64encode(data).decode("ascii"),
        }

    # Configuration

    def reload(self):
        if self._reload is None:
            raise AdminError("this server cannot reload its configuration", "InvalidState")
        try:
            return self._reload()
        except ConfigError as error:
            raise AdminError(str(error), "ConfigError") from None


_MESSAGE_FIELDS = (
    "Identity", "Subject", "InternetMessageId", "FromAddress", "Status", "Size", "MessageSourceName", "SourceIP",
    "DateReceived", "ExpirationTime", "LastError", "RetryCount", "Recipients", "Queue",
    "InternalMessageId",
)
_QUEUE_FIELDS = (
    "Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain",
    "NextHopConnector", "NextRetryTime", "LastError",
)


def _queueName(identity):
    """
    @return: the queue name of a C{Server\\Queue} identity.
    """
    return identity.split("\\", 1)[1]


_COMMANDS = {
    name: getattr(AdminCommands, name)
    for name in (
        "getQueue", "getMessage", "retryQueue", "suspendQueue", "resumeQueue",
        "suspendMessage", "resumeMessage", "removeMessage", "exportMessage", "reload",
    )
}


# The server side


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
        uid = _peerUid(self.transport)
        if uid is not None and uid not in (0, os.geteuid()):
            log.warn("refused an admin connection from uid {uid}", uid=uid)
            self._send({"ok": False, "error": {"kind": "BadRequest", "message": "permission denied"}})
            self.transport.loseConnection()

    def lineReceived(self, line):
        if self.transport.disconnecting:
            return
        self._last.addCallback(lambda _: self._answer(line))
        self._last.addErrback(
            lambda failure: log.failure("cannot answer an admin request", failure)
        )

    def lineLengthExceeded(self, line):
        self._send(
            {"ok": False, "error": {"kind": "BadRequest", "message": "request line too long"}}
        )
        self.transport.loseConnection()

    def _answer(self, line):
        try:
            request = json.loads(line.decode("utf-8"))
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise AdminError('a request is a JSON object with a "command"', "BadRequest")
            arguments = request.get("arguments") or {}
            if not isinstance(arguments, dict):
                raise AdminError('"arguments" is a JSON object', "BadRequest")
            running = self.factory.commands.run(request["command"], arguments)
        except (ValueError, UnicodeDecodeError) as error:
            running = Deferred()
            running.errback(AdminError(f"not a JSON request: {error}", "BadRequest"))
        except AdminError as error:
            running = Deferred()
            running.errback(error)
        running.addCallbacks(lambda result: {"ok": True, "result": result}, self._failed)
        return running.addCallback(self._send)

    def _failed(self, failure):
        if failure.check(AdminError):
            error = failure.value
            return {"ok": False, "error": {"kind": error.kind, "message": error.message}}
        if failure.check(KeyError):
            return {
                "ok": False,
                "error": {"kind": "NotFound", "message": f"not queued: {failure.value}"},
            }
        log.failure("admin request failed", failure)
        return {
            "ok": False,
            "error": {"kind": "Internal", "message": failure.getErrorMessage()},
        }

    def _send(self, response):
        self.sendLine(json.dumps(response, default=str).encode("ascii"))


class AdminFactory(Factory):
    protocol = AdminProtocol
    noisy = False

    def __init__(self, commands):
        self.commands = commands


@contextlib.contextmanager
def _reachable(path):
    """
    Yield an address for C{path} that fits a UNIX socket address: the path
    itself, or (on Linux) C{/proc/self/fd/N/name} through a descriptor of
    its folder, open until the context ends.
    """
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        yield path
        return
    folder, name = os.path.split(path)
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise OSError(error.errno, f"{folder}: {error.strerror}") from None
    try:
        address = f"/proc/self/fd/{descriptor}/{name}"
        if not os.path.isdir(f"/proc/self/fd/{descriptor}") or len(address) > _MAX_SOCKET_PATH:
            raise OSError(f"{path} is too long for a UNIX socket address")
        yield address
    finally:
        os.close(descriptor)


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
            address = scope.enter_context(_reachable(self.path))
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


# The client side


class AdminClient:
    """
    A blocking client of the admin endpoint, for the Shell.
    """

    def __init__(self, path, timeout=120):
        self.path = path
        self.timeout = timeout

    def call(self, command, **arguments):
        """
        Send one request and wait for its answer.

        @return: the result.
        @raise AdminUnavailable: the server cannot be reached.
        @raise AdminError: the server refused the request.
        """
        request = {"command": command, "arguments": {k: v for k, v in arguments.items() if v is not None}}
        data = json.dumps(request).encode("utf-8") + b"\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(self.timeout)
            try:
                with _reachable(self.path) as address:
                    connection.connect(address)
            except (FileNotFoundError, ConnectionRefusedError):
                raise AdminUnavailable(
                    f"the server is not running (nothing answers at {self.path})"
                ) from None
            except PermissionError:
                raise AdminUnavailable(
                    f"permission denied on {self.path}: run the Shell as the user the "
                    "server runs as, or as root"
                ) from None
            except OSError as error:
                raise AdminUnavailable(f"cannot reach {self.path}: {error}") from None
            try:
                connection.sendall(data)
                response = _readLine(connection)
            except socket.timeout:
                raise AdminUnavailable(
                    f"the server at {self.path} did not answer within {self.timeout} s"
                ) from None
            except OSError as error:
                raise AdminUnavailable(f"the connection to {self.path} failed: {error}") from None
        try:
            answer = json.loads(response)
        except ValueError:
            raise AdminUnavailable(f"{self.path} answered with something other than JSON") from None
        if answer.get("ok"):
            return answer.get("result")
        error = answer.get("error") or {}
        raise AdminError(error.get("message", "refused"), error.get("kind", "Internal"))


def _readLine(connection):
    chunks = []
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            raise AdminUnavailable("the server closed the connection without answering")
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            return b"".join(chunks).decode("utf-8")
        chunks.append(chunk)
