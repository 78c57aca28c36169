"""
The admin endpoint of a server whose receive workers each own a part of
its queue (C{twistd exmta --workers N}): the commands of
L{exmta.admin.commands}, answered for the main process's own queue and
every live part's.  Each part serves the same commands on its own admin
socket (C{admin.sock} in its folder); this module asks it there with the
admin protocol (L{exmta.admin.protocol}), so clients still see one server:
the same commands, arguments and answers.

How each command is answered
============================
  - C{getQueue}: every part's rows, the rows of one queue made one by
    L{views.mergeQueueRows}: C{MessageCount} summed, C{Status} the first
    in one process's precedence (C{Suspended}, C{Active}, C{Retry},
    C{Ready}) among the parts', C{NextRetryTime} the earliest of the
    parts in C{Retry}, C{LastError} that of the part whose status
    counted.
  - C{getMessage}: each part is asked for its first C{bookmark + size}
    rows in the order asked, and the parts' rows are merged in that order
    (then by queue and arrival), so that a page is the page of the
    union.  A C{bookmarkObject} is looked for in growing prefixes.
    C{TotalCount} is the parts' sum.
  - C{suspendMessage}, C{resumeMessage}, C{removeMessage},
    C{exportMessage}: asked of every part with the same identity or
    filter.  A part that does not hold a message answers C{NotFound} and
    does nothing, so only its owner acts, whatever queue ids look like;
    the answer is the parts' answers put together, or C{NotFound} when
    every part said so.
  - C{retryQueue}, C{suspendQueue}, C{resumeQueue}: checked on the
    queue's combined row, as one process checks its own, then asked of
    every part; C{suspendQueue} with C{evenIfEmpty}, so that a part with
    no message there yet holds those it receives later.  A part's refusal
    other than C{NotFound} or C{InvalidState} (its own status differs) is
    logged.
  - C{reload}, C{getDiagnosticInfo}, C{getMessageTrackingLog}: the main
    process's alone; the configuration, the resource monitor and the
    tracking log are the server's, not a part's.

Shadow Redundancy queues (C{Shadow\\N}) are numbered by each part among
the servers it keeps shadows for; here they are numbered again over the
union, in names and identities both ways.

A part whose socket is gone or refuses, that does not answer within
C{timeout} or fails inside, is left out of the answer (and logged): its
rows are missing, the answer is otherwise whole.
"""

import calendar
import contextlib
import heapq
import itertools
import re
import time

from twisted.internet.defer import (
    Deferred,
    FirstError,
    fail,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from exmta.admin.commands import (
    checkMessagePage,
    checkResume,
    checkRetry,
    checkSuspend,
    filtered,
    identityOrFilter,
    runHandler,
)
from exmta.admin.protocol import AdminError, decodeAnswer, encodeRequest, reachable
from exmta.queue import views

log = Logger(namespace="exmta.admin")

# How many rows each part is first asked for while a bookmarkObject is
# looked for; the prefix grows fourfold until it holds it.
BOOKMARK_PREFIX = 1000

# A Shadow Redundancy queue's name inside an identity.
_SHADOW = re.compile(r"(?i)(?<![^\\])shadow\\\d+(?![^\\])")

# The order of Get-Message's rows without -SortOrder, and the tie-break
# with one.
_QUEUE_ORDER = [("Queue", False), ("DateReceived", False)]


class _Answer(Protocol):
    """
    One request on a connection of its own, and its answer's line.

    @ivar answer: a Deferred firing with the answer's line; cancelling it
        drops the connection.
    """

    def __init__(self, request):
        self.request = request
        self.answer = Deferred(lambda _: self.transport.abortConnection())
        self._chunks = []

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        # Answers are not bounded (a part's rows): look for the end in
        # each chunk only.
        newline = data.find(b"\n")
        if newline < 0:
            self._chunks.append(data)
            return
        self._chunks.append(data[:newline])
        self.transport.loseConnection()
        if not self.answer.called:
            self.answer.callback(b"".join(self._chunks))

    def connectionLost(self, reason):
        if not self.answer.called:
            self.answer.errback(reason)


def askPart(path, command, arguments, reactor, timeout):
    """
    Ask the admin endpoint at C{path} one request.

    @return: a Deferred firing with the result, failing with the
        L{AdminError} the part refused it with, or with why it could not be
        asked (a connection error, C{TimeoutError} after C{timeout}
        seconds, a C{ValueError} for an answer that is not JSON).
    """
    scope = contextlib.ExitStack()
    try:
        address = scope.enter_context(reachable(path))
    except OSError:
        return fail()
    protocol = _Answer(encodeRequest(command, arguments))
    asking = connectProtocol(UNIXClientEndpoint(reactor, address, timeout=timeout), protocol)

    def connected(result):
        # The folder's descriptor a long path needs is held until then.
        scope.close()
        return result

    asking.addBoth(connected)
    asking.addCallback(lambda _: protocol.answer)
    asking.addTimeout(timeout, reactor)
    return asking.addCallback(lambda line: decodeAnswer(line.decode("utf-8")))


class _Unanswered:
    """
    What a part that could not be asked answered.
    """


_UNANSWERED = _Unanswered()


class _RowKey:
    """
    A row's place in a Get-Message order: C{keys} are L{views.sortKeys};
    an empty value comes after every other whatever the direction.
    """

    __slots__ = ("values", "keys")

    def __init__(self, row, keys):
        self.keys = keys
        self.values = [views.sortValue(row.get(name)) for name, _ in keys]

    def __lt__(self, other):
        for (_, descending), mine, theirs in zip(self.keys, self.values, other.values):
            if mine == theirs:
                continue
            if mine is None or theirs is None:
                return theirs is None
            return mine > theirs if descending else mine < theirs
        return False


def _mergeKeys(order):
    """
    @param order: L{views.sortKeys}.
    @return: the keys the parts' rows are merged by: those of C{order},
        then queue and arrival as one process breaks ties.
    """
    if [name for name, _ in order] == ["DateReceived"]:
        return order
    return order + _QUEUE_ORDER


def _queueName(identity):
    """
    @return: the queue name of a C{Server\\Queue} identity.
    """
    return identity.split("\\", 1)[1]


class _Shadows:
    """
    The Shadow Redundancy queues of the parts, numbered over the union.
    """

    def __init__(self, answers):
        """
        @param answers: C{[(part, its Get-Queue rows)]}.
        """
        self._servers = {}
        for part, rows in answers:
            # {name, without case: (name, server)}
            self._servers[part] = {
                _queueName(row["Identity"]).lower(): (_queueName(row["Identity"]), row["NextHopDomain"])
                for row in rows if row["DeliveryType"] == views.SHADOW_REDUNDANCY
            }
        servers = {
            server.lower() for names in self._servers.values() for _, server in names.values()
        }
        self._names = {
            server: f"Shadow\\{number}" for number, server in enumerate(sorted(servers), 1)
        }

    def toUnion(self, part, text):
        """
        @return: C{text} (a queue's or a message's identity) with the name
            of C{part}'s Shadow queue it holds as the union names it.
        """
        servers = self._servers.get(part, {})

        def rename(match):
            _, server = servers.get(match.group(0).lower(), (None, None))
            return match.group(0) if server is None else self._names[server.lower()]

        return _SHADOW.sub(rename, text)

    def toPart(self, part, text):
        """
        @return: C{text} with the union's name of a Shadow queue as
            C{part} names it, or L{None} when C{part} has no such queue.
        """
        match = _SHADOW.search(text)
        if match is None:
            return text
        wanted = match.group(0).lower()
        for name, server in self._servers.get(part, {}).values():
            if self._names[server.lower()].lower() == wanted:
                return text[: match.start()] + name + text[match.end():]
        return None

    def rows(self, part, rows):
        """
        @return: copies of C{rows} (queue or message rows, or action
            results) with the union's Shadow queue names.
        """
        renamed = []
        for row in rows:
            row = dict(row)
            for field in ("Identity", "Queue"):
                if isinstance(row.get(field), str):
                    row[field] = self.toUnion(part, row[field])
            renamed.append(row)
        return renamed


class PartsCommands:
    """
    The commands of the endpoint of a server with parts: the same
    C{run(command, arguments)} as L{exmta.admin.commands.AdminCommands},
    answered for the main process and every live part.

    @ivar local: the main process's L{exmta.admin.commands.AdminCommands}.
    @ivar parts: called with no arguments, returns the paths of the live
        parts' admin sockets.
    @ivar timeout: seconds a part has to answer.
    """

    def __init__(self, local, parts, reactor, timeout=30, clock=None):
        """
        @param clock: what the age of the oldest message is counted on;
            the reactor by default.
        """
        self.local = local
        self.parts = parts
        self.reactor = reactor
        self.timeout = timeout
        self.clock = clock or reactor

    def run(self, command, arguments):
        """
        @return: a Deferred firing with the result, or failing with an
            L{AdminError}.
        @raise AdminError: for an unknown command or arguments.
        """
        handler = _COMMANDS.get(command)
        if handler is None:
            # The server's own commands, and the refusal of unknown ones.
            return self.local.run(command, arguments)
        return runHandler(handler, self, command, arguments)

    @property
    def server(self):
        return self.local.server

    # Asking

    async def _ask(self, parts, command, arguments, shadows=None):
        """
        Ask the main process (the part L{None}) and C{parts}.

        @param arguments: the same for each part; with C{shadows}, its
            C{identity}, C{queue} and C{bookmarkObject} are renamed for
            each part, which is not asked (and answers C{NotFound}) when it
            has no such queue.
        @return: C{[(part, result or the L{AdminError} it refused with)]},
            without the parts that did not answer.
        """
        asked, calls = [], []
        for part in [None, *parts]:
            given = arguments if shadows is None else _forPart(shadows, part, arguments)
            asked.append(part)
            if given is None:
                calls.append(succeed(AdminError("No such Shadow Redundancy queue", "NotFound")))
            else:
                calls.append(self._askOne(part, command, given))
        try:
            answers = await gatherResults(calls, consumeErrors=True)
        except FirstError as error:
            error.subFailure.raiseException()
        return [(part, answer) for part, answer in zip(asked, answers) if answer is not _UNANSWERED]

    def _askOne(self, part, command, arguments):
        if part is None:
            return maybeDeferred(self.local.run, command, arguments).addErrback(_refusal)

        def unanswered(failure):
            if failure.check(AdminError) and failure.value.kind != "Internal":
                return failure.value
            log.warn(
                "the queue part at {path} did not answer {command}: {why}",
                path=part, command=command, why=failure.getErrorMessage(),
            )
            return _UNANSWERED

        return askPart(part, command, arguments, self.reactor, self.timeout).addErrback(unanswered)

    async def _shadows(self, parts):
        """
        @return: the parts' L{_Shadows}, from their Get-Queue rows.
        """
        return _Shadows(_results(await self._ask(parts, "getQueue", {})))

    async def _maybeShadows(self, parts, *texts):
        """
        @return: the parts' L{_Shadows} if one of C{texts} names a Shadow
            queue, else L{None}.
        """
        if any(text is not None and _SHADOW.search(str(text)) for text in texts):
            return await self._shadows(parts)
        return None

    # Queues

    async def _queues(self, parts):
        answers = _results(await self._ask(parts, "getQueue", {}))
        shadows = _Shadows(answers)
        return views.mergeQueueRows([shadows.rows(part, rows) for part, rows in answers]), shadows

    def _queueRow(self, identity, rows):
        try:
            name = views.queueName(identity, self.server)
        except views.IdentityError as error:
            raise AdminError(str(error)) from None
        for row in rows:
            if views.sameQueue(_queueName(row["Identity"]), name):
                return row
        raise AdminError(f"The queue {self.server}\\{name} was not found", "NotFound")

    async def getQueue(self, identity=None, filter=None):
        rows, _ = await self._queues(self._parts())
        if identity is not None:
            rows = [self._queueRow(identity, rows)]
        if filter is not None:
            rows = filtered(rows, filter, views.QUEUE_PROPERTIES)
        return rows

    async def retryQueue(self, identity, resubmit=False):
        parts = self._parts()
        rows, shadows = await self._queues(parts)
        row = self._queueRow(identity, rows)
        checkRetry(row, resubmit)
        answers = _logged(
            await self._ask(
                parts, "retryQueue", {"identity": row["Identity"], "resubmit": resubmit}, shadows
            ),
            "retryQueue",
        )
        tried = sum(answer["MessageCount"] for _, answer in answers if not isinstance(answer, AdminError))
        return {"Identity": row["Identity"], "MessageCount": tried}

    async def suspendQueue(self, identity):
        parts = self._parts()
        rows, shadows = await self._queues(parts)
        row = self._queueRow(identity, rows)
        checkSuspend(row)
        _logged(
            await self._ask(
                parts, "suspendQueue", {"identity": row["Identity"], "evenIfEmpty": True}, shadows
            ),
            "suspendQueue",
        )
        log.info("queue {queue} suspended by an administrator", queue=row["Identity"])
        return self._queueRow(identity, (await self._queues(parts))[0])

    async def resumeQueue(self, identity):
        parts = self._parts()
        rows, shadows = await self._queues(parts)
        row = self._queueRow(identity, rows)
        checkResume(row)
        _logged(
            await self._ask(parts, "resumeQueue", {"identity": row["Identity"]}, shadows),
            "resumeQueue",
        )
        log.info("queue {queue} resumed by an administrator", queue=row["Identity"])
        return self._queueRow(identity, (await self._queues(parts))[0])

    async def queueSummary(self):
        """
        What the Prometheus queue gauges show of a queue in parts
        (L{exmta.metrics.registry.ServerMetrics.refreshQueues}).

        @return: C{(rows, age)}: Get-Queue's rows, and the seconds since
            the oldest message arrived (to the second; 0 without any).
        """
        parts = self._parts()
        rows, _ = await self._queues(parts)
        oldest = _results(
            await self._ask(parts, "getMessage", {"sortOrder": ["DateReceived"], "resultSize": 1})
        )
        arrivals = [
            calendar.timegm(time.strptime(page[0]["DateReceived"], "%Y-%m-%dT%H:%M:%SZ"))
            for _, page in oldest if page
        ]
        return rows, max(0, self.clock.seconds() - min(arrivals)) if arrivals else 0

    # Messages

    async def getMessage(
        self, identity=None, queue=None, filter=None, resultSize=None, bookmarkIndex=None,
        bookmarkObject=None, includeBookmark=True, sortOrder=None, returnPageInfo=False,
    ):
        order = checkMessagePage(
            identity, queue, filter, resultSize, bookmarkIndex, bookmarkObject, sortOrder
        )
        parts = self._parts()
        shadows = await self._maybeShadows(parts, identity, queue, bookmarkObject)
        asked = {
            "identity": identity, "queue": queue, "filter": filter, "sortOrder": sortOrder,
            "returnPageInfo": True,
        }
        if bookmarkObject is None:
            start = views.pageStart(bookmarkIndex, None, includeBookmark)
            limit = None if resultSize is None else start + resultSize
            rows, total = await self._prefix(parts, asked, limit, order, shadows)
        else:
            try:
                wanted = views.messageIdentity(bookmarkObject, self.server)
            except views.IdentityError as error:
                raise AdminError(str(error)) from None
            limit = None if resultSize is None else BOOKMARK_PREFIX
            while True:
                rows, total = await self._prefix(parts, asked, limit, order, shadows)
                position = _position(wanted, rows)
                whole = len(rows) == total
                if position is None and whole:
                    raise AdminError(
                        f"The bookmark {bookmarkObject} is not among the messages", "NotFound"
                    )
                if position is not None:
                    start = position if includeBookmark else position + 1
                    if whole or start + resultSize <= len(rows):
                        break
                    limit = start + resultSize
                else:
                    limit *= 4
        page = rows[start:] if resultSize is None else rows[start:start + resultSize]
        if returnPageInfo:
            return {"TotalCount": total, "BookmarkIndex": start + 1, "Messages": page}
        return page

    async def _prefix(self, parts, asked, limit, order, shadows):
        """
        @param limit: how many rows, or L{None} for all.
        @return: (the first C{limit} rows of the union in C{order}, how
            many rows the union has).
        """
        answers = await self._ask(parts, "getMessage", dict(asked, resultSize=limit), shadows)
        pages = _results(answers, allowed=("NotFound",))
        if shadows is None and any(
            _SHADOW.search(row["Queue"]) for _, page in pages for row in page["Messages"]
        ):
            shadows = await self._shadows(parts)
        keys = _mergeKeys(order)
        merged = heapq.merge(
            *[
                page["Messages"] if shadows is None else shadows.rows(part, page["Messages"])
                for part, page in pages
            ],
            key=lambda row: _RowKey(row, keys),
        )
        # The first `limit` rows of the merged prefixes are the union's:
        # no part has more than `limit` among them.
        rows = list(merged if limit is None else itertools.islice(merged, limit))
        return rows, sum(page["TotalCount"] for _, page in pages)

    async def _act(self, command, arguments, identity):
        """
        Ask every part to act on the messages an identity or a filter
        names.

        @return: C{([(part, its result)], their L{_Shadows})} of the parts
            that hold some.
        @raise AdminError: C{NotFound} when none does.
        """
        parts = self._parts()
        shadows = await self._maybeShadows(parts, identity)
        answers = _results(await self._ask(parts, command, arguments, shadows), allowed=("NotFound",))
        return answers, shadows or _Shadows([])

    async def _messageAction(self, command, identity, filter, **arguments):
        identityOrFilter(identity, filter)
        answers, shadows = await self._act(
            command, dict(arguments, identity=identity, filter=filter), identity
        )
        return [row for part, rows in answers for row in shadows.rows(part, rows)]

    def suspendMessage(self, identity=None, filter=None):
        return self._messageAction("suspendMessage", identity, filter)

    def resumeMessage(self, identity=None, filter=None):
        return self._messageAction("resumeMessage", identity, filter)

    def removeMessage(self, identity=None, filter=None, withNDR=True):
        return self._messageAction("removeMessage", identity, filter, withNDR=withNDR)

    async def exportMessage(self, identity):
        answers, shadows = await self._act("exportMessage", {"identity": identity}, identity)
        [(part, result), *_] = answers
        return shadows.rows(part, [result])[0]

    def _parts(self):
        return list(self.parts())


def _refusal(failure):
    failure.trap(AdminError)
    return failure.value


def _results(answers, allowed=()):
    """
    @param answers: L{PartsCommands._ask}'s.
    @param allowed: kinds of refusal that leave a part out of the result
        rather than refuse the request; when every part refused so, the
        first refusal is the answer.
    @return: C{[(part, result)]} of the parts that did not refuse.
    @raise AdminError: a part's refusal of another kind.
    """
    results, refusals = [], []
    for part, answer in answers:
        if isinstance(answer, AdminError):
            if answer.kind not in allowed:
                raise answer
            refusals.append(answer)
        else:
            results.append((part, answer))
    if not results and refusals:
        raise refusals[0]
    return results


def _logged(answers, command):
    """
    Log the refusals of a queue action that a part's own state does not
    explain.

    @return: C{answers}.
    """
    for part, answer in answers:
        if isinstance(answer, AdminError) and answer.kind not in ("NotFound", "InvalidState"):
            log.warn(
                "the queue part at {path} refused {command}: {why}",
                path=part or "of the main process", command=command, why=answer.message,
            )
    return answers


def _forPart(shadows, part, arguments):
    """
    @return: C{arguments} as C{part} names their Shadow queues, or L{None}
        when it has none of them.
    """
    given = dict(arguments)
    for name in ("identity", "queue", "bookmarkObject"):
        if isinstance(given.get(name), str):
            given[name] = shadows.toPart(part, given[name])
            if given[name] is None:
                return None
    return given


def _position(wanted, rows):
    """
    @param wanted: L{views.messageIdentity}'s C{(queue or None, queue id)}.
    @return: the 0-based position of that message among C{rows}, or
        L{None}.
    """
    queue, queueId = wanted
    for position, row in enumerate(rows):
        if row["InternalMessageId"] == queueId and (
            queue is None or views.sameQueue(_queueName(row["Queue"]), queue)
        ):
            return position
    return None


_COMMANDS = {
    name: getattr(PartsCommands, name)
    for name in (
        "getQueue", "getMessage", "retryQueue", "suspendQueue", "resumeQueue",
        "suspendMessage", "resumeMessage", "removeMessage", "exportMessage",
    )
}
