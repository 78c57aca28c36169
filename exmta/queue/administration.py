"""
What an administrator can do to a running queue (the admin endpoint's
commands, L{exmta.admin.commands}, call these): L{QueueAdministration},
the collaborator of L{exmta.queue.manager.QueueManager} that is not the
work of passes (L{exmta.interfaces.IQueueAdministration}).

No action ever overlaps a pass over the same message: an action waits for
the pass in progress (the message shows C{PendingSuspend} or
C{PendingRemove} meanwhile), then runs in its place
(L{exmta.queue.manager.QueueManager.exclusively}).

  - L{suspendMessage} / L{resumeMessage}: a suspended message (durable: the
    spool's C{suspended}) is left alone, no attempt, no expiry, no delay
    notification, until it is resumed; then it is worked on at once
    (recipients still wait for their C{nextRetryTime}).
  - L{removeMessage}: its C{Ready} recipients (those in some queues, or
    all) fail with C{550 4.3.2 QUEUE.Admin; message deleted by
    administrative action} (tracking C{FAIL}, source C{ADMIN}), with a
    notification to the sender or silently.
  - L{suspendQueue} / L{resumeQueue}: recipients routed to a suspended next
    hop stay C{Ready} and are not sent (sends in flight finish); their
    message still expires and its sender still hears of the delay.  Queue
    suspension lives in memory (L{exmta.queue.hops}): a restart resumes
    every queue.
  - L{retryQueue}: the recipients in a queue are tried now, a next hop in
    retry included; with C{resubmit} they are routed again first.
"""

from dataclasses import replace

from twisted.internet.defer import inlineCallbacks, succeed
from zope.interface import implementer

from exmta.interfaces import IQueueAdministration
from exmta.queue.passes import replyText
from exmta.queue.spool import READY
from exmta.queue.views import PENDING_REMOVE, PENDING_SUSPEND, QueueState, queueOf, sameQueue

REMOVED_BY_ADMINISTRATOR = "550 4.3.2 QUEUE.Admin; message deleted by administrative action"

# The tracking log source of an administrator's actions.
ADMIN = "ADMIN"


@implementer(IQueueAdministration)
class QueueAdministration:
    """
    Acts through the manager it belongs to: its spool, next hops
    (L{exmta.interfaces.INextHops}) and notifications
    (L{exmta.interfaces.ISenderNotifications}), and its passes
    (C{process}, C{exclusively}, C{isWorking}, C{rescheduleFor}).
    """

    def __init__(self, manager):
        """
        @param manager: the L{exmta.queue.manager.QueueManager}.
        """
        self._manager = manager
        self._pending = {}

    def state(self):
        """
        @return: a L{QueueState}: what Get-Queue and Get-Message show.
        """
        manager = self._manager
        return QueueState(
            server=manager.serverName,
            now=manager.reactor.seconds(),
            messages=tuple(manager.spool.messages()),
            suspendedQueues=frozenset(manager.hops.suspended),
            inFlight=manager.hops.inFlight(),
            activeMessages=manager.working(),
            pending=dict(self._pending),
            deliveryTypes=manager.hops.deliveryTypes(),
            messageExpirationTimeout=manager.schedule.messageExpirationTimeout,
            parked=manager.hops.parkedMessages(),
            retrying={
                key: (until, replyText(failure))
                for key, (until, failure) in manager.hops.retrying().items()
            },
            shadowServers=frozenset(manager.shadows.servers),
        )

    def isBusy(self, queueId):
        """
        Whether a pass over (or an action on) C{queueId} is in progress, so
        that an action asked for now waits for it.
        """
        return self._manager.isWorking(queueId)

    def suspendMessage(self, queueId):
        """
        Suspend a message, durably, once any pass over it has ended.

        @return: a Deferred firing with the message as now queued.
        @raise KeyError: (in the Deferred) it is not queued.
        """

        def suspend(queued):
            if queued.suspended:
                return succeed(queued)
            suspended = replace(queued, suspended=True)
            return self._manager.spool.update(suspended).addCallback(lambda _: suspended)

        return self._pendingAction(queueId, PENDING_SUSPEND, suspend)

    def resumeMessage(self, queueId):
        """
        Resume a suspended message; it is worked on at once.

        @return: a Deferred firing with the message as now queued.
        @raise KeyError: (in the Deferred) it is not queued.
        """

        def resume(queued):
            if not queued.suspended:
                return succeed(queued)
            resumed = replace(queued, suspended=False)
            return self._manager.spool.update(resumed).addCallback(lambda _: resumed)

        def process(queued):
            if queued is not None:
                self._manager.process(queued)
            return queued

        return self._manager.exclusively(queueId, resume).addCallback(process)

    def removeMessage(self, queueId, withNDR=True, queues=None):
        """
        Fail the message's C{Ready} recipients (those in C{queues}, queue
        names, or all) as removed by an administrator, telling the sender
        if C{withNDR}.  A message with no C{Ready} recipient left leaves
        the spool.

        @return: a Deferred firing with the message as now queued, or
            L{None} once it is gone.
        @raise KeyError: (in the Deferred) it is not queued, or has no
            recipient in C{queues}.
        """
        manager = self._manager

        @inlineCallbacks
        def remove(queued):
            work = manager.newPass(queued)
            parkedBehind = manager.hops.parkedMessages().get(queueId)
            for index, recipient in enumerate(queued.recipients):
                if recipient.status == READY and (
                    queues is None
                    or any(sameQueue(queueOf(recipient, parkedBehind), q) for q in queues)
                ):
                    work.fail(index, REMOVED_BY_ADMINISTRATOR, ADMIN)
            if not work.reports:
                raise KeyError(f"{queueId} has no recipient in {', '.join(queues)}")
            if withNDR and queued.mailFrom:
                yield manager.notifications.notify(work, work.reports)
            result = work.result()
            yield manager.spool.update(result)
            manager.log.info(
                "{queueId} removed by an administrator ({count} recipients, {ndr})",
                queueId=queueId, count=len(work.reports),
                ndr="with a notification" if withNDR and queued.mailFrom else "silently",
            )
            return manager.current(queueId)

        return self._pendingAction(queueId, PENDING_REMOVE, remove)

    def suspendQueue(self, name):
        """
        Stop sending to the next hop C{name} (L{exmta.envelope.NextHop.key});
        sends in progress finish.  Kept in memory only.
        """
        self._manager.hops.suspend(name)
        # Wake times change: recipients held there no longer count.
        self._manager.rescheduleFor(name)

    def resumeQueue(self, name):
        """
        Send to the next hop C{name} again: its recipients that are due go
        at once.
        """
        self._manager.hops.resume(name)
        for queued in self._manager.spool.messages():
            if any(r.status == READY and r.nextHop == name for r in queued.recipients):
                self._manager.process(queued)

    def retryQueue(self, name, resubmit=False):
        """
        Try the recipients in queue C{name} now, whatever their retry time
        or their next hop's; with C{resubmit}, route them again first
        (Retry-Queue -Resubmit).  Messages suspended or being worked on
        are left alone.

        @return: how many messages were tried.
        """
        manager = self._manager
        parked = dict.fromkeys(manager.hops.retryNow(name), name)
        tried = 0
        for queued in manager.spool.messages():
            if queued.suspended or manager.isWorking(queued.queueId):
                continue
            recipients = []
            inQueue = False
            for recipient in queued.recipients:
                if recipient.status == READY and sameQueue(
                    queueOf(recipient, parked.get(queued.queueId)), name
                ):
                    inQueue = True
                    recipient = replace(recipient, nextRetryTime=None)
                    if resubmit:
                        recipient = replace(recipient, nextHop=None)
                recipients.append(recipient)
            if inQueue:
                tried += 1
                manager.process(replace(queued, recipients=tuple(recipients)))
        return tried

    def _pendingAction(self, queueId, pending, action):
        """
        Run C{action} in the place of a pass, the message showing
        C{pending} while it waits for a pass in progress.
        """
        if self._manager.isWorking(queueId):
            self._pending[queueId] = pending

        def act(queued):
            return action(queued).addBoth(self._ended, queueId)

        return self._manager.exclusively(queueId, act).addErrback(self._ended, queueId)

    def _ended(self, result, queueId):
        self._pending.pop(queueId, None)
        return result
