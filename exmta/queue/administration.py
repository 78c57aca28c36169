"""
What an administrator can do to a running queue (the admin endpoint,
L{exmta.admin}, calls these): the part of
L{exmta.queue.manager.QueueManager} that is not the work of passes.

No action ever overlaps a pass over the same message: an action waits for
the pass in progress (the message shows C{PendingSuspend} or
C{PendingRemove} meanwhile), then runs in its place.

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
    suspension lives in memory: a restart resumes every queue.
  - L{retryQueue}: the recipients in a queue are tried now; with
    C{resubmit} they are routed again first.
"""

from dataclasses import replace

from twisted.internet.defer import Deferred, inlineCallbacks, succeed

from exmta.queue.spool import READY
from exmta.queue.views import PENDING_REMOVE, PENDING_SUSPEND, QueueState, queueOf, sameQueue

REMOVED_BY_ADMINISTRATOR = "550 4.3.2 QUEUE.Admin; message deleted by administrative action"

# The tracking log source of an administrator's actions.
ADMIN = "ADMIN"


class QueueAdministration:
    """
    Mixed into L{exmta.queue.manager.QueueManager}; uses its passes,
    timers and notifications.
    """

    def state(self):
        """
        @return: a L{QueueState}: what Get-Queue and Get-Message show.
        """
        return QueueState(
            server=self.serverName,
            now=self.reactor.seconds(),
            messages=tuple(self.spool.messages()),
            suspendedQueues=frozenset(self._suspendedQueues),
            inFlight={key: dict(sending) for key, sending in self._inFlight.items()},
            activeMessages=frozenset(self._passes),
            pending=dict(self._pending),
            deliveryTypes=dict(self._deliveryTypes),
            messageExpirationTimeout=self.schedule.messageExpirationTimeout,
        )

    def isBusy(self, queueId):
        """
        Whether a pass over (or an action on) C{queueId} is in progress, so
        that an action asked for now waits for it.
        """
        return queueId in self._passes

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
            return self.spool.update(suspended).addCallback(lambda _: suspended)

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
            return self.spool.update(resumed).addCallback(lambda _: resumed)

        def process(queued):
            if queued is not None:
                self._process(queued)
            return queued

        return self._exclusively(queueId, resume).addCallback(process)

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

        @inlineCallbacks
        def remove(queued):
            work = self._newPass(queued)
            for index, recipient in enumerate(queued.recipients):
                if recipient.status == READY and (
                    queues is None or any(sameQueue(queueOf(recipient), q) for q in queues)
                ):
                    self._fail(work, index, REMOVED_BY_ADMINISTRATOR, ADMIN)
            if not work.reports:
                raise KeyError(f"{queueId} has no recipient in {', '.join(queues)}")
            if withNDR and queued.mailFrom:
                yield self._notify(work, work.reports)
            result = work.result()
            yield self.spool.update(result)
            self.log.info(
                "{queueId} removed by an administrator ({count} recipients, {ndr})",
                queueId=queueId, count=len(work.reports),
                ndr="with a notification" if withNDR and queued.mailFrom else "silently",
            )
            return self._current(queueId)

        return self._pendingAction(queueId, PENDING_REMOVE, remove)

    def suspendQueue(self, name):
        """
        Stop sending to the next hop C{name} (L{exmta.envelope.NextHop.key});
        sends in progress finish.  Kept in memory only.
        """
        self._suspendedQueues.add(name)
        for queueId, timer in list(self._timers.items()):
            # Wake times change: recipients held there no longer count.
            queued = self._current(queueId)
            if queued is not None and any(r.nextHop == name for r in queued.recipients):
                self._cancelTimer(queueId)
                self._schedule(queued, self._wakeTime(queued))

    def resumeQueue(self, name):
        """
        Send to the next hop C{name} again: its recipients that are due go
        at once.
        """
        self._suspendedQueues.discard(name)
        for queued in self.spool.messages():
            if any(r.status == READY and r.nextHop == name for r in queued.recipients):
                self._process(queued)

    def retryQueue(self, name, resubmit=False):
        """
        Try the recipients in queue C{name} now, whatever their retry time;
        with C{resubmit}, route them again first (Retry-Queue -Resubmit).
        Messages suspended or being worked on are left alone.

        @return: how many messages were tried.
        """
        tried = 0
        for queued in self.spool.messages():
            if queued.suspended or queued.queueId in self._passes:
                continue
            recipients = []
            inQueue = False
            for recipient in queued.recipients:
                if recipient.status == READY and sameQueue(queueOf(recipient), name):
                    inQueue = True
                    recipient = replace(recipient, nextRetryTime=None)
                    if resubmit:
                        recipient = replace(recipient, nextHop=None)
                recipients.append(recipient)
            if inQueue:
                tried += 1
                self._process(replace(queued, recipients=tuple(recipients)))
        return tried

    def _pendingAction(self, queueId, pending, action):
        """
        Run C{action} through L{_exclusively}, the message showing
        C{pending} while it waits for a pass in progress.
        """
        if queueId in self._passes:
            self._pending[queueId] = pending
        return self._exclusively(queueId, action)

    @inlineCallbacks
    def _exclusively(self, queueId, action):
        """
        Run C{action} (the message as queued to a Deferred of its new
        state) once no pass over the message is running, in the place of
        a pass, then schedule the message again.

        @raise KeyError: the message is not queued.
        """
        while queueId in self._passes:
            yield self.processed(queueId)
        queued = self._current(queueId)
        if queued is None:
            self._pending.pop(queueId, None)
            raise KeyError(queueId)
        self._cancelTimer(queueId)
        running = self._passes[queueId] = Deferred()
        try:
            result = yield action(queued)
        finally:
            del self._passes[queueId]
            self._pending.pop(queueId, None)
            current = self._current(queueId)
            if current is not None:
                self._schedule(current, self._wakeTime(current))
            for waiter in self._waiters.pop(queueId, ()):
                waiter.callback(current)
            running.callback(None)
        return result
