"""
What the queue manager tells senders: recipients failed for good (a
non-delivery report) or still waiting after DelayNotificationTimeout (a
delay notification), as RFC 3464 reports (L{exmta.queue.dsn}) enqueued
through the same spool as any message; and the expiry that fails
recipients for good.  L{SenderNotifications} does it for
L{exmta.queue.manager.QueueManager} (L{exmta.interfaces.ISenderNotifications}).
"""

from dataclasses import replace

from twisted.internet.defer import inlineCallbacks
from zope.interface import implementer

from exmta.interfaces import ISenderNotifications
from exmta.message.dsnparams import notifies
from exmta.queue import dsn
from exmta.queue.spool import FAILED, READY

MESSAGE_EXPIRED = "550 4.4.7 QUEUE.Expired; message expired"

# Tracking log sources.
ROUTING = "ROUTING"
DSN = "DSN"


@implementer(ISenderNotifications)
class SenderNotifications:
    """
    @ivar reportingMta: the Fqdn notifications name as their Reporting-MTA.
    @ivar postmaster: the address they come from.
    """

    def __init__(self, spool, clock, tracking, log, serverName, reportingMta, postmaster):
        """
        @param spool: the L{exmta.interfaces.IMessageQueue} notifications
            are enqueued in, and messages read from.
        @param clock: an L{twisted.internet.interfaces.IReactorTime}.
        @param tracking: the L{exmta.interfaces.IMessageTrackingLog}.
        @param log: the queue manager's L{twisted.logger.Logger}.
        @param serverName: the TransportServer's name.
        """
        self._spool = spool
        self._clock = clock
        self._tracking = tracking
        self._log = log
        self._serverName = serverName
        self.reportingMta = reportingMta
        self.postmaster = postmaster

    def expire(self, work):
        """
        Fail every recipient of the pass C{work} still C{Ready}: its message
        expired.
        """
        for index, recipient in enumerate(work.recipients):
            if recipient.status != READY:
                continue
            self._log.warn(
                "failed {queueId} to {recipient}: {reply}",
                queueId=work.queued.queueId, recipient=recipient.address, reply=MESSAGE_EXPIRED,
            )
            work.recipients[index] = replace(
                recipient, status=FAILED, lastError=MESSAGE_EXPIRED, nextRetryTime=None
            )
            lastError = recipient.lastError if dsn.isReply(recipient.lastError) else None
            if notifies(recipient.notify, "FAILURE"):
                work.reports.append(
                    dsn.RecipientReport(
                        recipient.address, dsn.FAILED, "4.4.7", diagnostic=lastError,
                        orcpt=recipient.orcpt,
                    )
                )
            work.note("OnFailed", None, MESSAGE_EXPIRED, recipient.address)
            self._tracking.track(
                "FAIL", work.queued, source=ROUTING, recipients=[recipient.address],
                recipientStatus=MESSAGE_EXPIRED,
            )

    def delayReport(self, recipient):
        """
        @return: the L{dsn.RecipientReport} saying that C{recipient} is
            still waiting.
        """
        lastError = recipient.lastError if dsn.isReply(recipient.lastError) else None
        status = dsn.statusOf(lastError, "4.4.7")
        return dsn.RecipientReport(
            recipient.address,
            dsn.DELAYED,
            status if status.startswith("4.") else "4.4.7",
            diagnostic=lastError,
            orcpt=recipient.orcpt,
        )

    @inlineCallbacks
    def notify(self, work, reports):
        """
        Enqueue a notification to the sender of the pass C{work}'s message,
        durably.

        @param reports: the L{dsn.RecipientReport}s it carries.
        """
        queued = work.queued
        if dsn.returnsWhole(queued, reports):
            original = work.read((yield self._spool.messageBytes(queued.queueId)))
        else:
            if work.headers is None:
                work.read((yield self._spool.messageBytes(queued.queueId)))
            original = work.headers
        now = self._clock.seconds()
        message, messageId, body = dsn.notification(
            queued, original, reports, self.reportingMta, self.postmaster, now,
            willRetryUntil=work.schedule.expiresAt(queued),
        )
        queueId = yield self._spool.enqueue(
            dsn.envelopeFor(queued, body), dsn.localSubmission(self._serverName), message
        )
        related = [report.address for report in reports]
        self._log.info(
            "notified the sender of {queueId} ({action}: {recipients}) in {dsnQueueId}",
            queueId=queued.queueId, action=reports[0].action,
            recipients=", ".join(related), dsnQueueId=queueId,
        )
        self._tracking.track(
            "DSN", source=DSN, internalMessageId=queueId, messageId=messageId, sender="",
            recipients=[queued.mailFrom], totalBytes=len(message), reference=work.messageId,
            relatedRecipientAddress=related, sourceContext=reports[0].action,
        )
