"""
What each admin command does (L{exmta.admin.protocol} lists them), on
one transport server's queue manager: the rows of L{exmta.queue.views},
and the actions of its administration (L{exmta.interfaces.IQueueAdministration}).
"""

import base64
import inspect

from twisted.internet.defer import gatherResults, maybeDeferred, succeed
from twisted.logger import Logger

from exmta.admin.protocol import AdminError
from exmta.errors import ConfigError
from exmta.opath import FilterError, parseQuery
from exmta.queue import views

log = Logger(namespace="exmta.admin")


def runHandler(handler, commands, command, arguments):
    """
    Run one command's handler on a commands object, its arguments checked
    against the handler's signature first.

    @return: a Deferred firing with the result.
    @raise AdminError: the arguments do not fit the command.
    """
    try:
        inspect.signature(handler).bind(commands, **arguments)
    except TypeError as error:
        raise AdminError(f"{command}: {error}", "BadRequest") from None
    return maybeDeferred(handler, commands, **arguments)


def identityOrFilter(identity, filter):
    """
    @raise AdminError: unless a message action names its messages one way.
    """
    if identity is not None and filter is not None:
        raise AdminError("Identity and Filter cannot be used together")
    if identity is None and filter is None:
        raise AdminError("Give an Identity or a Filter")


def checkMessagePage(identity, queue, filter, resultSize, bookmarkIndex, bookmarkObject, sortOrder):
    """
    Check C{getMessage}'s arguments that need no queue.

    @return: the C{sortOrder}'s L{views.sortKeys}.
    @raise AdminError: for arguments that cannot go together or a bad value.
    """
    if sum(value is not None for value in (identity, queue, filter)) > 1:
        raise AdminError("Identity, Queue and Filter cannot be used together")
    if bookmarkIndex is not None and bookmarkObject is not None:
        raise AdminError("BookmarkIndex and BookmarkObject cannot be used together")
    for name, value, least in (("resultSize", resultSize, 0), ("bookmarkIndex", bookmarkIndex, 1)):
        if value is not None and (type(value) is not int or value < least):
            raise AdminError(f"{name} is a whole number of at least {least}")
    try:
        return views.sortKeys(sortOrder, views.MESSAGE_PROPERTIES)
    except views.SortOrderError as error:
        raise AdminError(str(error)) from None


def filtered(rows, filter, fields):
    """
    @return: the C{rows} an OPATH C{filter} over C{fields} selects.
    @raise AdminError: for a filter that cannot be read or applied.
    """
    try:
        predicate = parseQuery(filter, fields, views.DATE_PROPERTIES)
        return [row for row in rows if predicate(row)]
    except FilterError as error:
        raise AdminError(str(error)) from None


def checkRetry(row, resubmit):
    """
    @raise AdminError: unless Retry-Queue may try the queue of C{row}.
    """
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


def checkSuspend(row):
    """
    @raise AdminError: unless Suspend-Queue may suspend the queue of C{row}.
    """
    if row["DeliveryType"] not in (
        "SmartHostConnectorDelivery", "DnsConnectorDelivery", "SmtpRelayWithinAdSite"
    ):
        raise AdminError(
            f"The queue {row['Identity']} is not a delivery queue to a next hop; "
            "exmta suspends only those",
            "InvalidState",
        )


def checkResume(row):
    """
    @raise AdminError: unless Resume-Queue may resume the queue of C{row}.
    """
    if row["Status"] != views.SUSPENDED:
        raise AdminError(f"The queue {row['Identity']} is not suspended", "InvalidState")


class AdminCommands:
    """
    The commands of the endpoint, on one transport server.

    @ivar manager: the L{exmta.queue.manager.QueueManager}.
    """

    def __init__(self, manager, reload=None, resourceThrottling=None, searchTracking=None):
        """
        @param reload: called with no arguments for C{reload}; returns the
            result, or raises L{ConfigError}.
        @param resourceThrottling: called with no arguments for
            C{getDiagnosticInfo} of the C{ResourceThrottling} component:
            the resource monitor's state (L{exmta.monitor.service}).
        @param searchTracking: called with C{getMessageTrackingLog}'s
            arguments; returns a Deferred firing with the server's
            tracking events (L{exmta.tracking.searchTrackingLog}).
        """
        self.manager = manager
        self._reload = reload
        self._headers = {}
        self._resourceThrottling = resourceThrottling
        self._searchTracking = searchTracking

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
        return runHandler(handler, self, command, arguments)

    @property
    def server(self):
        return self.manager.serverName

    def _predicate(self, filter, fields):
        try:
            return parseQuery(filter, fields, views.DATE_PROPERTIES)
        except FilterError as error:
            raise AdminError(str(error)) from None

    def _queueRow(self, identity, state=None):
        try:
            name = views.queueName(identity, self.server)
        except views.IdentityError as error:
            raise AdminError(str(error)) from None
        for row in views.queueRows(state or self.manager.administration.state()):
            if views.sameQueue(_queueName(row["Identity"]), name):
                return row
        raise AdminError(f"The queue {self.server}\\{name} was not found", "NotFound")

    def getQueue(self, identity=None, filter=None):
        if identity is not None:
            rows = [self._queueRow(identity)]
        else:
            rows = views.queueRows(self.manager.administration.state())
        if filter is not None:
            rows = filtered(rows, filter, views.QUEUE_PROPERTIES)
        return rows

    async def _headerFields(self, state, queueIds):
        """
        @return: {queue id: L{views.headerFields}} of C{queueIds}, read
            from the messages' files once and then remembered while they
            are queued (a page reads only its own; a filter on Subject,
            the whole queue's once).
        """
        cache = self._headers
        missing = [queueId for queueId in queueIds if queueId not in cache]
        if missing:
            sections = await self.manager.spool.headerSections(missing)
            for queueId, section in sections.items():
                cache[queueId] = views.headerFields(section)
        if len(cache) > 2 * len(state.messages) + 1000:
            queued = {m.queueId for m in state.messages}
            for queueId in [q for q in cache if q not in queued]:
                del cache[queueId]
        return {queueId: cache.get(queueId) for queueId in queueIds}

    async def _messageRows(self):
        """
        @return: every Get-Message row, with the messages' subjects.
        """
        state = self.manager.administration.state()
        entries = views.messageEntries(state)
        fields = await self._headerFields(state, [e[1].queueId for e in entries])
        return [views.messageRow(state, e, fields[e[1].queueId]) for e in entries]

    async def getMessage(
        self, identity=None, queue=None, filter=None, resultSize=None, bookmarkIndex=None,
        bookmarkObject=None, includeBookmark=True, sortOrder=None, returnPageInfo=False,
    ):
        order = checkMessagePage(identity, queue, filter, resultSize, bookmarkIndex, bookmarkObject, sortOrder)
        predicate = None if filter is None else self._predicate(filter, views.MESSAGE_PROPERTIES)
        state = self.manager.administration.state()
        entries = views.messageEntries(state)
        if queue is not None:
            name = self._queueName(queue, state, entries)
            entries = [e for e in entries if views.sameQueue(e[0], name)]
        byArrival = [name for name, _ in order] == ["DateReceived"]
        if identity is None and predicate is None and (byArrival or not order):
            # Rows are made for the page only.
            if byArrival:
                entries.sort(key=lambda e: (e[1].arrivalTime, e[1].queueId), reverse=order[0][1])
            start = views.pageStart(
                bookmarkIndex,
                self._position(bookmarkObject, [(e[0], e[1].queueId) for e in entries]),
                includeBookmark,
            )
            chosen = entries[start:] if resultSize is None else entries[start:start + resultSize]
            fields = await self._headerFields(state, [e[1].queueId for e in chosen])
            page = [views.messageRow(state, e, fields[e[1].queueId]) for e in chosen]
            total = len(entries)
        else:
            page, start, total = await self._sortedPage(
                state, entries, identity, predicate, filter, order, resultSize,
                bookmarkIndex, bookmarkObject, includeBookmark,
            )
        if returnPageInfo:
            return {"TotalCount": total, "BookmarkIndex": start + 1, "Messages": page}
        return page

    async def _sortedPage(
        self, state, entries, identity, predicate, filter, order, resultSize,
        bookmarkIndex, bookmarkObject, includeBookmark,
    ):
        """
        A page of rows filtered or sorted: every row is made, with the
        subjects only if the filter or the order uses them.
        """
        headers = any(name in ("Subject", "InternetMessageId") for name, _ in order)
        if filter is not None and not headers:
            try:
                parseQuery(filter, _WITHOUT_HEADERS, views.DATE_PROPERTIES)
            except FilterError:
                headers = True
        rows = [views.messageRow(state, e) for e in entries]
        if identity is not None:
            rows = self._identified(identity, rows)
        if headers:
            await self._withHeaderFields(state, rows)
        if predicate is not None:
            try:
                rows = [row for row in rows if predicate(row)]
            except FilterError as error:
                raise AdminError(str(error)) from None
        views.sortRows(rows, order)
        position = None
        if bookmarkObject is not None:
            position = self._position(
                bookmarkObject,
                [(_queueName(r["Queue"]), r["InternalMessageId"]) for r in rows],
            )
        start = views.pageStart(bookmarkIndex, position, includeBookmark)
        page = rows[start:] if resultSize is None else rows[start:start + resultSize]
        if not headers:
            await self._withHeaderFields(state, page)
        return page, start, len(rows)

    async def _withHeaderFields(self, state, rows):
        fields = await self._headerFields(state, [row["InternalMessageId"] for row in rows])
        for row in rows:
            row["Subject"], row["InternetMessageId"] = (
                fields[row["InternalMessageId"]] or (None, None)
            )

    def _position(self, bookmarkObject, messages):
        """
        @param messages: C{(queue name, queue id)} of each message, in order.
        @return: the 0-based position of the message C{bookmarkObject}
            names among C{messages}.
        """
        if bookmarkObject is None:
            return None
        try:
            queue, queueId = views.messageIdentity(bookmarkObject, self.server)
        except views.IdentityError as error:
            raise AdminError(str(error)) from None
        for position, (name, candidate) in enumerate(messages):
            if candidate == queueId and (queue is None or views.sameQueue(name, queue)):
                return position
        raise AdminError(f"The bookmark {bookmarkObject} is not among the messages", "NotFound")

    def _queueName(self, identity, state, entries):
        """
        @return: the name of the queue C{identity} names, refused if it has
            no messages and is not suspended.
        """
        try:
            name = views.queueName(identity, self.server)
        except views.IdentityError as error:
            raise AdminError(str(error)) from None
        known = {e[0] for e in entries} | set(state.suspendedQueues) | {views.SUBMISSION}
        for candidate in known:
            if views.sameQueue(candidate, name):
                return candidate
        raise AdminError(f"The queue {self.server}\\{name} was not found", "NotFound")

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
        identityOrFilter(identity, filter)
        if identity is not None:
            try:
                views.messageIdentity(identity, self.server)
            except views.IdentityError as error:
                raise AdminError(str(error)) from None
        else:
            # A bad filter is refused before any file is read.
            filtered([], filter, views.MESSAGE_PROPERTIES)
        rows = await self._messageRows()
        if identity is not None:
            return self._identified(identity, rows)
        return filtered(rows, filter, views.MESSAGE_PROPERTIES)

    # Queues

    def retryQueue(self, identity, resubmit=False):
        row = self._queueRow(identity)
        checkRetry(row, resubmit)
        tried = self.manager.administration.retryQueue(
            _queueName(row["Identity"]), resubmit=bool(resubmit)
        )
        return {"Identity": row["Identity"], "MessageCount": tried}

    def suspendQueue(self, identity, evenIfEmpty=False):
        try:
            row = self._queueRow(identity)
        except AdminError as error:
            # A part of a server with receive workers (L{exmta.admin.parts}):
            # the queue is another part's now, and may become this one's.
            if not (evenIfEmpty and error.kind == "NotFound"):
                raise
            self.manager.administration.suspendQueue(views.queueName(identity, self.server))
            return self._queueRow(identity)
        checkSuspend(row)
        self.manager.administration.suspendQueue(_queueName(row["Identity"]))
        log.info("queue {queue} suspended by an administrator", queue=row["Identity"])
        return self._queueRow(identity)

    def resumeQueue(self, identity):
        row = self._queueRow(identity)
        checkResume(row)
        self.manager.administration.resumeQueue(_queueName(row["Identity"]))
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
            busy = self.manager.administration.isBusy(row["InternalMessageId"])
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
            lambda row: self.manager.administration.suspendMessage(row["InternalMessageId"]),
            views.PENDING_SUSPEND,
            views.SUSPENDED,
        )

    async def resumeMessage(self, identity=None, filter=None):
        rows = self._perMessage(await self._targets(identity, filter))
        log.info("{count} message(s) resumed by an administrator", count=len(rows))
        return await self._act(
            rows,
            lambda row: self.manager.administration.resumeMessage(row["InternalMessageId"]),
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
            lambda row: self.manager.administration.removeMessage(
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

    # Diagnostics

    def getDiagnosticInfo(self, component):
        if component.lower() != "resourcethrottling" or self._resourceThrottling is None:
            raise AdminError(
                f"The component {component!r} was not found; the components are: "
                "ResourceThrottling",
                "NotFound",
            )
        return self._resourceThrottling()


    def getMessageTrackingLog(
        self, start=None, end=None, sender=None, recipients=None, messageId=None,
        internalMessageId=None, eventId=None, limit=None, messageSubject=None,
    ):
        if self._searchTracking is None:
            raise AdminError("this server does not search its tracking log", "InvalidState")
        return self._searchTracking(
            start=start, end=end, sender=sender, recipients=recipients, messageId=messageId,
            internalMessageId=internalMessageId, eventId=eventId, limit=limit,
            messageSubject=messageSubject,
        )


# What a -Filter may use without the messages' header sections being read.
_WITHOUT_HEADERS = tuple(
    name for name in views.MESSAGE_PROPERTIES if name not in ("Subject", "InternetMessageId")
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
        "getDiagnosticInfo", "getMessageTrackingLog",
    )
}
