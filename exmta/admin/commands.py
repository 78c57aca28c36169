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
            predicate = parseQuery(filter, fields, views.DATE_PROPERTIES)
            return [row for row in rows if predicate(row)]
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
            rows = self._filtered(rows, filter, views.QUEUE_PROPERTIES)
        return rows

    async def _messageRows(self):
        """
        @return: every Get-Message row, with the messages' subjects.
        """
        state = self.manager.administration.state()
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
            return self._filtered(rows, filter, views.MESSAGE_PROPERTIES)
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
            self._filtered([], filter, views.MESSAGE_PROPERTIES)
        rows = await self._messageRows()
        if identity is not None:
            return self._identified(identity, rows)
        return self._filtered(rows, filter, views.MESSAGE_PROPERTIES)

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
        tried = self.manager.administration.retryQueue(name, resubmit=bool(resubmit))
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
        self.manager.administration.suspendQueue(name)
        log.info("queue {queue} suspended by an administrator", queue=row["Identity"])
        return self._queueRow(identity)

    def resumeQueue(self, identity):
        row = self._queueRow(identity)
        if row["Status"] != views.SUSPENDED:
            raise AdminError(f"The queue {row['Identity']} is not suspended", "InvalidState")
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
        internalMessageId=None, eventId=None, limit=None,
    ):
        if self._searchTracking is None:
            raise AdminError("this server does not search its tracking log", "InvalidState")
        return self._searchTracking(
            start=start, end=end, sender=sender, recipients=recipients, messageId=messageId,
            internalMessageId=internalMessageId, eventId=eventId, limit=limit,
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
