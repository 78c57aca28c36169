"""
One pass over a queued message (L{exmta.queue.manager}): its recipients as
they are being settled, what the sender is to be told, and what routing
agents are to hear of.  The manager and its collaborators settle
recipients through it; the manager records the result.
"""

from dataclasses import replace

from exmta.envelope import Relayed
from exmta.errors import PermanentFailure, SMTPFailure, TransientFailure
from exmta.message.dsnparams import notifies
from exmta.message.header import headerSection, originalHeader
from exmta.queue import dsn
from exmta.queue.spool import DELIVERED, FAILED


def replyText(outcome):
    """
    @return: the reply of a failure as a recipient's C{lastError} shows it.
    """
    return str(outcome.reply) if isinstance(outcome, SMTPFailure) else repr(outcome)


class Pass:
    """
    @ivar queued: the L{exmta.envelope.QueuedMessage} as the pass found it.
    @ivar recipients: its recipients, as settled so far.
    @ivar schedule: the L{exmta.queue.retry.RetrySchedule} of the pass.
    @ivar headers: the message's header section, once read.
    @ivar reports: L{dsn.RecipientReport}s of the recipients settled so
        far that their sender is to hear of (RFC 3461 NOTIFY): failed ones,
        and delivered or relayed ones when it asked.
    @ivar outcomes: when routing agents are to hear of them, the outcomes
        so far: (event name, next hop, reply, address) tuples.
    """

    def __init__(self, queued, schedule, clock, tracking, log, notifying=False):
        """
        @param clock: an L{twisted.internet.interfaces.IReactorTime}.
        @param tracking: the L{exmta.interfaces.IMessageTrackingLog}.
        @param log: the queue manager's L{twisted.logger.Logger}.
        @param notifying: whether routing agents are to hear of outcomes.
        """
        self.queued = queued
        self.schedule = schedule
        self.recipients = list(queued.recipients)
        self.delayNotified = queued.delayNotified
        self.categorized = queued.categorized
        self.headers = None
        self.messageId = None
        self.reports = []
        self.notifying = notifying
        self.outcomes = []
        self._clock = clock
        self._tracking = tracking
        self._log = log

    def read(self, message):
        if self.headers is None:
            self.headers = headerSection(message)
            self.messageId = originalHeader(self.headers, "Message-ID")
        return message

    def result(self):
        return replace(
            self.queued,
            recipients=tuple(self.recipients),
            delayNotified=self.delayNotified,
            categorized=self.categorized,
        )

    def note(self, event, nextHop, reply, address):
        if self.notifying:
            self.outcomes.append((event, nextHop, reply, address))

    def settle(self, index, outcome, source, nextHop=None):
        """
        Record what a delivery stage said for one recipient: L{None} for
        delivered (to a local mailbox when C{nextHop} is L{None}, else to a
        next hop that took over its notifications), L{Relayed}, or an
        L{SMTPFailure}.
        """
        recipient = self.recipients[index]
        hop = recipient.nextHop if nextHop is None else nextHop.key
        if outcome is None or isinstance(outcome, Relayed):
            self.recipients[index] = replace(
                recipient, status=DELIVERED, lastError=None, nextRetryTime=None, nextHop=hop
            )
            self.note("OnDelivered", nextHop, None, recipient.address)
            if (nextHop is None or outcome is not None) and notifies(recipient.notify, "SUCCESS"):
                self.reports.append(
                    dsn.RecipientReport(
                        recipient.address,
                        dsn.DELIVERED if outcome is None else dsn.RELAYED,
                        "2.0.0",
                        remoteMta=None if outcome is None else outcome.remoteMta,
                        lastAttemptTime=self._clock.seconds(),
                        orcpt=recipient.orcpt,
                    )
                )
        elif isinstance(outcome, PermanentFailure):
            self.fail(
                index, replyText(outcome), source, nextHop,
                remoteMta=getattr(outcome, "remoteMta", None),
                attemptTime=self._clock.seconds(),
            )
        else:
            if not isinstance(outcome, TransientFailure):
                outcome = TransientFailure.of(451, "4.3.0", replyText(outcome))
            self.defer(index, outcome, source, nextHop)

    def fail(self, index, reply, source, nextHop=None, remoteMta=None, attemptTime=None):
        recipient = self.recipients[index]
        queueId = self.queued.queueId
        self._log.warn(
            "failed {queueId} to {recipient}: {reply}",
            queueId=queueId, recipient=recipient.address, reply=reply,
        )
        self.recipients[index] = replace(
            recipient,
            status=FAILED,
            lastError=reply,
            nextRetryTime=None,
            nextHop=recipient.nextHop if nextHop is None else nextHop.key,
        )
        if notifies(recipient.notify, "FAILURE"):
            self.reports.append(
                dsn.RecipientReport(
                    recipient.address, dsn.FAILED, dsn.statusOf(reply, "5.0.0"),
                    diagnostic=reply, remoteMta=remoteMta, lastAttemptTime=attemptTime,
                    orcpt=recipient.orcpt,
                )
            )
        self.note("OnFailed", nextHop, reply, recipient.address)
        self._tracking.track(
            "FAIL", self.queued, source=source, recipients=[recipient.address],
            recipientStatus=reply, messageId=self.messageId,
            connectorId=nextHop and nextHop.connector, nextHop=nextHop and nextHop.key,
        )

    def defer(self, index, failure, source, nextHop=None):
        recipient = self.recipients[index]
        attempts = recipient.attempts + 1
        interval = self.schedule.retryInterval(failure, attempts)
        reply = replyText(failure)
        self._log.warn(
            "deferred {queueId} to {recipient}: {reply}; retrying in {interval} s",
            queueId=self.queued.queueId, recipient=recipient.address, reply=reply,
            interval=interval,
        )
        self.recipients[index] = replace(
            recipient,
            lastError=reply,
            attempts=attempts,
            nextRetryTime=self._clock.seconds() + interval,
            nextHop=recipient.nextHop if nextHop is None else nextHop.key,
        )
        self.note("OnDeferred", nextHop, reply, recipient.address)
        self._tracking.track(
            "DEFER", self.queued, source=source, recipients=[recipient.address],
            recipientStatus=reply, messageId=self.messageId,
            connectorId=nextHop and nextHop.connector, nextHop=nextHop and nextHop.key,
        )
