"""
When a queued recipient is tried again, when a message expires, and when
its sender hears that it is late: Exchange 2010's retry policy as pure
functions of a message and the time.  No reactor, no I/O.

The schedule, with the TransportServer's settings (Exchange's defaults in
brackets):

  - A recipient the next hop (or the mailbox) refused with a 4xx for that
    recipient (L{exmta.errors.TransientFailure}) is tried again after
    C{MessageRetryInterval} [1 min].
  - A recipient whose attempt failed as a whole
    (L{exmta.errors.ConnectionFailure}: no connection, a 4xx greeting, a
    4xx to DATA) is tried again after C{TransientFailureRetryInterval}
    [5 min] while it has failed at most C{TransientFailureRetryCount} [6]
    times, and after C{OutboundConnectionFailureRetryInterval} [10 min]
    from then on.  C{attempts} counts every transient failure of the
    recipient, of either kind, so with the defaults a next hop that stays
    down is tried at 5, 10, 15, 20, 25 and 30 minutes, then every 10
    minutes.  (Exchange counts per delivery queue; a per-recipient count
    survives restarts and routing changes, and the two agree while a next
    hop is simply down.)
  - C{MessageExpirationTimeout} [2 days] after the message arrived, every
    recipient still C{Ready} fails with C{4.4.7}.
  - C{DelayNotificationTimeout} [4 hours] after it arrived, a sender whose
    message still has C{Ready} recipients is told so, once.
"""

from dataclasses import dataclass

from exmta.errors import ConnectionFailure, TransientFailure
from exmta.queue.spool import READY


@dataclass(frozen=True)
class RetrySchedule:
    """
    The queue settings of Set-TransportServer, in seconds.
    """

    messageExpirationTimeout: float = 2 * 86400
    delayNotificationTimeout: float = 4 * 3600
    messageRetryInterval: float = 60
    transientFailureRetryCount: int = 6
    transientFailureRetryInterval: float = 5 * 60
    outboundConnectionFailureRetryInterval: float = 10 * 60

    @classmethod
    def of(cls, server):
        """
        @param server: an L{exmta.config.model.TransportServer}.
        """
        return cls(
            messageExpirationTimeout=server.messageExpirationTimeout,
            delayNotificationTimeout=server.delayNotificationTimeout,
            messageRetryInterval=server.messageRetryInterval,
            transientFailureRetryCount=server.transientFailureRetryCount,
            transientFailureRetryInterval=server.transientFailureRetryInterval,
            outboundConnectionFailureRetryInterval=server.outboundConnectionFailureRetryInterval,
        )

    def retryInterval(self, failure, attempts):
        """
        @param failure: the L{TransientFailure} the last attempt ended with.
        @param attempts: the recipient's failed attempts, that one included.
        @return: seconds until the recipient is tried again.
        """
        if isinstance(failure, ConnectionFailure):
            if attempts <= self.transientFailureRetryCount:
                return self.transientFailureRetryInterval
            return self.outboundConnectionFailureRetryInterval
        if isinstance(failure, TransientFailure):
            return self.messageRetryInterval
        raise TypeError(f"{failure!r} is not a transient failure")

    def expiresAt(self, queued):
        return queued.arrivalTime + self.messageExpirationTimeout

    def delayNoticeAt(self, queued):
        """
        @return: when the sender of C{queued} is due a delay notification,
            or L{None} if it never is: one was sent, or the sender is the
            null path C{<>}, to which no notification ever goes.
        """
        if queued.delayNotified or not queued.mailFrom:
            return None
        return queued.arrivalTime + self.delayNotificationTimeout

    def noticeTime(self, queued):
        """
        @return: when C{queued} expires or its sender is due a delay
            notification, whichever comes first.
        """
        notice = self.delayNoticeAt(queued)
        expiry = self.expiresAt(queued)
        return expiry if notice is None else min(notice, expiry)

    def needsPass(self, queued, now):
        """
        @return: whether anything of C{queued} is due at C{now}: a
            recipient, its expiry or its delay notification.
        """
        if now >= self.noticeTime(queued):
            return True
        return any(self.isDue(r, now) for r in queued.recipients)

    def isDue(self, recipient, now):
        return recipient.status == READY and (
            recipient.nextRetryTime is None or recipient.nextRetryTime <= now
        )

    def wakeTime(self, queued):
        """
        @return: when C{queued} next needs attention: its earliest retry, the
            delay notification, or its expiry; L{None} once nothing is
            C{Ready}.  A C{Ready} recipient without a retry time (one
            waiting for something other than time, such as a send side)
            adds nothing but expiry.
        """
        ready = [r for r in queued.recipients if r.status == READY]
        if not ready:
            return None
        times = [r.nextRetryTime for r in ready if r.nextRetryTime is not None]
        times.append(self.expiresAt(queued))
        notice = self.delayNoticeAt(queued)
        if notice is not None:
            times.append(notice)
        return min(times)
