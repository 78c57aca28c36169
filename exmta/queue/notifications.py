"""
What the queue manager tells senders: recipients failed for good (a
non-delivery report) or still waiting after DelayNotificationTimeout (a
delay notification), as RFC 3464 reports (L{exmta.queue.dsn}) enqueued
through the same spool as any message.  Part of
L{exmta.queue.manager.QueueManager}, whose attributes it uses.
"""

from dataclasses import replace

from twisted.internet.defer import inlineCallbacks

from exmta.queue import dsn
from exmta.queue.spool import FAILED, READY

MESSAGE_EXPIRED = "550 4.4.7 QUEUE.Expired; message expired"

# Tracking log sources.
ROUTING = "ROUTING"
DSN = "DSN"


class SenderNotifications:
    """
    Expiry and notifications, for L{exmta.queue.manager.QueueManager}.
    """

    def _expire(self, work):
        for index, recipient in enumerate(work.recipients):
            if recipient.status != READY:
                continue
            self.log.warn(
                "failed {queueId} to {recipient}: {reply}",
                queueId=work.queued.queueId, recipient=recipient.address, reply=MESSAGE_EXPIRED,
            )
            work.recipients[index] = replace(
                recipient, status=FAILED, lastError=MESSAGE_EXPIRED, nextRetryTime=None
            )
            lastError = recipient.lastError if dsn.isReply(recipient.lastError) else None
            work.reports.append(
                dsn.RecipientReport(recipient.address, dsn.FAILED, "4.4.7", diagnostic=lastError)
            )
            work.note("OnFailed", None, MESSAGE_EXPIRED, recipient.address)
            self.tracking.track(
                "FAIL", work.queued, source=ROUTING, recipients=[recipient.address],
                recipientStatus=MESSAGE_EXPIRED,
            )

    def _delayReport(self, recipient):
        lastError = recipient.lastError if dsn.isReply(recipient.lastError) else None
        status = dsn.statusOf(lastError, "4.4.7")
        return dsn.RecipientReport(
            recipient.address,
            dsn.DELAYED,
            status if status.startswith("4.") else "4.4.7",
            diagnostic=lastError,
        )

    @inlineCallbacks
    def _notify(self, work, reports):
        """
        Enqueue a notification to the sender, durably.
        """
        queued = work.queued
        if work.headers is None:
            work.read((yield self.spool.messageBytes(queued.queueId)))
        now = self.reactor.seconds()
        message, messageId, body = dsn.notification(
            queued, work.headers, reports, self.reportingMta, self.postmaster, now,
            willRetryUntil=self.schedule.expiresAt(queued),
        )
        queueId = yield self.spool.enqueue(
            dsn.envelopeFor(queued, body), dsn.localSubmission(self.serverName), message
        )
        related = [report.address for report in reports]
        self.log.info(
            "notified the sender of {queueId} ({action}: {recipients}) in {dsnQueueId}",
            queueId=queued.queueId, action=reports[0].action,
            recipients=", ".join(related), dsnQueueId=queueId,
        )
        self.tracking.track(
            "DSN", source=DSN, internalMessageId=queueId, messageId=messageId, sender="",
            recipients=[queued.mailFrom], totalBytes=len(message), reference=work.messageId,
            relatedRecipientAddress=related,
        )
