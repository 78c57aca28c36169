"""
Next hops in retry: Exchange's queue C{Retry} status.

When a send to a next hop fails as a whole (no host would take a session),
every other message waiting for that next hop would fail the same way.
Rather than each of them trying in turn (and waiting on a silent host),
the queue manager marks the next hop as retrying until the time its failed
recipients are to be tried again, and messages whose due recipients all
wait for it are I{parked}: they get no pass until one attempt, the
I{probe}, says whether the next hop is back.

  - The first message due again for a next hop it was deferred for is
    the probe; the others are parked behind it.  So a restart with a long
    queue makes one attempt per next hop, not one per message.
  - When a next hop's retry time comes, the first message parked for it
    is the probe.
  - A probe that reaches the next hop (any reply but a failure to connect)
    releases every message parked for it at once; one that fails puts the
    next hop back in retry; one whose pass did not try the next hop after
    all hands the probe to the next parked message.

Nothing here is written to disk: after a restart every next hop is
unknown again.
"""

from exmta.errors import ConnectionFailure
from exmta.queue.views import sameQueue


class NextHopRetry:
    """
    @ivar retrying: next hop key to (the time it may be tried again, the
        L{exmta.errors.ConnectionFailure} its last attempt ended with).
    """

    def __init__(self, clock, release):
        """
        @param clock: an L{twisted.internet.interfaces.IReactorTime}.
        @param release: called with the queue id of a parked message that
            is to be worked on now; returns whether a pass over it started
            (or is waiting for room to start).
        """
        self._clock = clock
        self._release = release
        self.retrying = {}
        self._timers = {}
        self._probes = {}
        self._probeHops = {}
        self._parked = {}

    def retryTime(self, key):
        """
        @return: (when C{key} may be tried again, the failure that put it in
            retry), or L{None} if it is not retrying.
        """
        return self.retrying.get(key)

    def parked(self, key):
        """
        @return: how many messages are parked behind C{key}.
        """
        return len(self._parked.get(key, ()))

    def hold(self, key, queueId):
        """
        Decide whether a message whose due recipients were all deferred
        for C{key} may have a pass now: as the probe if the next hop has
        none, else not.

        @return: L{True} if the message is parked, to be released later.
        """
        retry = self.retrying.get(key)
        if retry is not None and retry[0] <= self._clock.seconds():
            self._endRetry(key)
            retry = None
        if retry is not None or self._probes.get(key, queueId) != queueId:
            self._parked.setdefault(key, {})[queueId] = None
            if retry is not None:
                self._wakeAt(key, retry[0])
            return True
        if key not in self._probes:
            self._probes[key] = queueId
            self._probeHops[queueId] = key
        return False

    def reached(self, key):
        """
        A send to C{key} got an answer: release what was parked for it.
        """
        self._endRetry(key)
        queueId = self._probes.pop(key, None)
        self._probeHops.pop(queueId, None)
        parked = self._parked.pop(key, None)
        for queueId in parked or ():
            self._release(queueId)

    def unreachable(self, key, until, failure):
        """
        A send to C{key} failed as a whole: nothing goes to it until
        C{until} but the probe then.
        """
        self._endRetry(key)
        queueId = self._probes.pop(key, None)
        self._probeHops.pop(queueId, None)
        self.retrying[key] = (until, failure)
        if self._parked.get(key):
            self._wakeAt(key, until)

    def passEnded(self, queueId):
        """
        The pass over C{queueId} ended; if it was a probe that did not
        decide, the next parked message is the probe.
        """
        key = self._probeHops.pop(queueId, None)
        if key is not None and self._probes.get(key) == queueId:
            del self._probes[key]
            if key not in self.retrying:
                self._promote(key)

    def forget(self, key):
        """
        Take C{key} out of retry (Retry-Queue): its parked messages are no
        longer held.

        @return: the queue ids that were parked for it.
        """
        self._endRetry(key)
        queueId = self._probes.pop(key, None)
        self._probeHops.pop(queueId, None)
        return list(self._parked.pop(key, ()))

    def stop(self):
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self.retrying.clear()
        self._probes.clear()
        self._probeHops.clear()
        self._parked.clear()

    def _endRetry(self, key):
        self.retrying.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _wakeAt(self, key, until):
        # Only parked messages need waking: the others have their own
        # timers, which the retry time was taken from.
        if key not in self._timers:
            delay = max(0, until - self._clock.seconds())
            self._timers[key] = self._clock.callLater(delay, self._retryDue, key)

    def _retryDue(self, key):
        self._timers.pop(key, None)
        self.retrying.pop(key, None)
        self._promote(key)

    def _promote(self, key):
        # Parked messages that no longer need a pass (removed, suspended,
        # not due) are passed over until one does.
        parked = self._parked.get(key)
        while parked and key not in self._probes and key not in self.retrying:
            queueId = next(iter(parked))
            del parked[queueId]
            self._probes[key] = queueId
            self._probeHops[queueId] = key
            if not self._release(queueId) and self._probes.get(key) == queueId:
                del self._probes[key]
                del self._probeHops[queueId]
        if not parked:
            self._parked.pop(key, None)


class NextHopScheduling:
    """
    The queue manager's side of L{NextHopRetry}: which messages wait only
    for a next hop, what a send says about its next hop, and Retry-Queue.
    Mixed into L{exmta.queue.manager.QueueManager}, whose C{_hops} it is.
    """

    def _needsPass(self, queued, now):
        """
        @return: whether anything of C{queued} is due at C{now}: a
            recipient, its expiry or its delay notification.
        """
        if now >= self.schedule.expiresAt(queued):
            return True
        notice = self.schedule.delayNoticeAt(queued)
        if notice is not None and now >= notice:
            return True
        return any(self.schedule.isDue(r, now) for r in queued.recipients)

    def _noticeTime(self, queued):
        """
        @return: when C{queued} expires or its sender is due a delay
            notification, whichever comes first.
        """
        notice = self.schedule.delayNoticeAt(queued)
        expiry = self.schedule.expiresAt(queued)
        return expiry if notice is None else min(notice, expiry)

    def _waitsOnlyFor(self, queued, now):
        """
        @return: the next hop every due recipient of C{queued} was
            deferred for, if there is one such next hop and only a send
            is due (no expiry, no delay notification); else L{None}.
        """
        if now >= self._noticeTime(queued):
            return None
        key = None
        for recipient in queued.recipients:
            if not self.schedule.isDue(recipient, now):
                continue
            hop = recipient.nextHop
            if hop is None or recipient.nextRetryTime is None or hop in self._suspendedQueues:
                return None
            if key is None:
                key = hop
            elif hop != key:
                return None
        return key

    def _release(self, queueId):
        """
        Work on a message a next hop held (L{NextHopRetry}).

        @return: whether a pass over it is running or waiting for room.
        """
        queued = self._current(queueId)
        if queued is not None and self.running:
            self._process(queued)
        return queueId in self._passes or queueId in self._due

    def _judgeHop(self, work, hop, addresses, outcomes):
        """
        After a send: a next hop none of whose hosts took the session goes
        in retry until its recipients' retry time; any answer releases the
        messages parked for it.
        """
        failures = [outcomes.get(address) for address in addresses]
        if failures and all(isinstance(f, ConnectionFailure) for f in failures):
            # Settled just after this: the retry time the recipients get.
            attempts = max(work.recipients[i].attempts for i in next(iter(addresses.values())))
            interval = self.schedule.retryInterval(failures[0], attempts + 1)
            self._hops.unreachable(hop.key, self.reactor.seconds() + interval, failures[0])
        else:
            self._hops.reached(hop.key)

    def retryQueue(self, name, resubmit=False):
        """
        See L{exmta.queue.administration.QueueAdministration.retryQueue}: a next hop in retry is tried
        again at once.
        """
        for key in list(self._hops.retrying):
            if sameQueue(key, name):
                self._hops.forget(key)
        return super().retryQueue(name, resubmit)
