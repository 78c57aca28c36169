"""
What the queue manager knows of each next hop (L{exmta.envelope.NextHop.key}),
in memory: whether an administrator suspended it, the sends in flight to
it, its DeliveryType, and whether it is in retry (Exchange's queue C{Retry}
status).  L{NextHops} holds it for L{exmta.queue.manager.QueueManager}
(L{exmta.interfaces.INextHops}).

Retry
=====
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
  - A message that arrives while its next hop is in retry, or while the
    probe is under way, is parked too once routed (L{mayTry}): nothing
    is written, logged or tracked for it, and it shows in the next hop's
    queue, in C{Retry} with the next hop's last error.  So a next hop that
    refuses connections costs one attempt and one warning per retry
    interval, not one per message received.
  - A next hop not known to answer (none has since the start, or it
    failed since) is probed by the first message routed to it, the
    others waiting for that answer; so neither a burst of messages nor a
    restart makes an attempt per message to a next hop that is down.
  - When a next hop's retry time comes, the first message parked for it
    is the probe.
  - A probe that reaches the next hop (any reply but a failure to connect)
    releases every message parked for it at once; one that fails puts the
    next hop back in retry; one whose pass did not try the next hop after
    all hands the probe to the next parked message.

Nothing here is written to disk: after a restart every next hop is
unknown again, and every queue resumed.
"""

from zope.interface import implementer

from exmta.errors import ConnectionFailure
from exmta.interfaces import INextHops
from exmta.queue.views import sameQueue


@implementer(INextHops)
class NextHops:
    """
    @ivar suspended: the keys of the next hops an administrator suspended.
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
        # Next hop key to (the time it may be tried again, the
        # ConnectionFailure its last attempt ended with).
        self._retrying = {}
        self.suspended = set()
        self._inFlight = {}
        self._deliveryTypes = {}
        self._timers = {}
        self._probes = {}
        self._probeHops = {}
        self._parked = {}
        # Next hops that answered since the start and have not failed
        # since: messages for the others wait for a probe's answer.
        self._reached = set()

    # Suspension, sends in flight, delivery types

    def suspend(self, key):
        self.suspended.add(key)

    def resume(self, key):
        self.suspended.discard(key)

    def isSuspended(self, key):
        return key in self.suspended

    def sending(self, nextHop, queueId, addresses):
        """
        A send of C{queueId} to C{addresses} through C{nextHop} starts.
        """
        self._inFlight.setdefault(nextHop.key, {})[queueId] = frozenset(addresses)

    def sent(self, nextHop, queueId):
        """
        The send L{sending} announced has ended.
        """
        sending = self._inFlight[nextHop.key]
        del sending[queueId]
        if not sending:
            del self._inFlight[nextHop.key]

    def noteRouted(self, nextHop):
        """
        A recipient was routed to C{nextHop}: its DeliveryType is known.
        """
        self._deliveryTypes[nextHop.key] = nextHop.deliveryType

    def inFlight(self):
        """
        @return: a copy of the sends in flight: next hop key to {queue id:
            the addresses being sent}.
        """
        return {key: dict(sending) for key, sending in self._inFlight.items()}

    def deliveryTypes(self):
        """
        @return: a copy of next hop key to DeliveryType, where known.
        """
        return dict(self._deliveryTypes)

    # Retry

    def waitsOnlyFor(self, queued, now, schedule):
        """
        @param schedule: the L{exmta.queue.retry.RetrySchedule}.
        @return: the next hop every due recipient of C{queued} was
            deferred for, if there is one such next hop and only a send
            is due (no expiry, no delay notification); else L{None}.
        """
        if now >= schedule.noticeTime(queued):
            return None
        key = None
        for recipient in queued.recipients:
            if not schedule.isDue(recipient, now):
                continue
            hop = recipient.nextHop
            if hop is None or recipient.nextRetryTime is None or hop in self.suspended:
                return None
            if key is None:
                key = hop
            elif hop != key:
                return None
        return key

    def judge(self, nextHop, failures, attempts, schedule):
        """
        After a send: a next hop none of whose hosts took the session goes
        in retry until its recipients' retry time; any answer releases the
        messages parked for it.

        @param failures: what the send said of each recipient.
        @param attempts: the failed attempts of the first recipient sent,
            before this one.
        @param schedule: the L{exmta.queue.retry.RetrySchedule}.
        """
        if failures and all(isinstance(f, ConnectionFailure) for f in failures):
            interval = schedule.retryInterval(failures[0], attempts + 1)
            self._unreachable(nextHop.key, self._clock.seconds() + interval, failures[0])
        else:
            self._answered(nextHop.key)

    def retryNow(self, name):
        """
        Take the next hops of queue C{name} out of retry (Retry-Queue):
        their parked messages are no longer held.

        @return: the queue ids of the messages that were parked.
        """
        released = []
        for key in set(self._retrying) | set(self._probes) | set(self._parked):
            if sameQueue(key, name):
                self._endRetry(key)
                queueId = self._probes.pop(key, None)
                self._probeHops.pop(queueId, None)
                released += self._parked.pop(key, ())
        return released

    def retryTime(self, key):
        """
        @return: (when C{key} may be tried again, the failure that put it in
            retry), or L{None} if it is not retrying.
        """
        return self._retrying.get(key)

    def parked(self, key):
        """
        @return: how many messages are parked behind C{key}.
        """
        return len(self._parked.get(key, ()))

    def parkedMessages(self):
        """
        @return: queue id to the key of the next hop it is parked behind.
        """
        return {queueId: key for key, parked in self._parked.items() for queueId in parked}

    def retrying(self):
        """
        @return: a copy of key to (when it may be tried again, the failure
            that put it in retry), for the next hops in retry.
        """
        return dict(self._retrying)

    def mayTry(self, key, queueId):
        """
        Decide whether a message just routed to C{key} (all its due
        recipients, and nothing else to do) may try it now: not while the
        next hop is in retry or another message probes it; a message that
        comes when the retry time has passed is the probe.

        @return: L{False} if the message is parked, to be released later.
        """
        retry = self._retrying.get(key)
        if retry is not None and retry[0] <= self._clock.seconds():
            self._endRetry(key)
            retry = None
        if retry is None:
            probe = self._probes.get(key)
            if probe is None:
                if key not in self._reached:
                    self._probes[key] = queueId
                    self._probeHops[queueId] = key
                return True
            if probe == queueId:
                return True
        self._parked.setdefault(key, {})[queueId] = None
        if retry is not None:
            self._wakeAt(key, retry[0])
        return False

    def hold(self, key, queueId):
        """
        Decide whether a message whose due recipients were all deferred
        for C{key} may have a pass now: as the probe if the next hop has
        none, else not.

        @return: L{True} if the message is parked, to be released later.
        """
        retry = self._retrying.get(key)
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

    def passEnded(self, queueId):
        """
        The pass over C{queueId} ended; if it was a probe that did not
        decide, the next parked message is the probe.
        """
        key = self._probeHops.pop(queueId, None)
        if key is not None and self._probes.get(key) == queueId:
            del self._probes[key]
            if key not in self._retrying:
                self._promote(key)

    def stop(self):
        """
        Forget every retry and cancel its timers (the manager stops).
        """
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self._retrying.clear()
        self._probes.clear()
        self._probeHops.clear()
        self._parked.clear()

    def _answered(self, key):
        """
        A send to C{key} got an answer: release what was parked for it.
        """
        self._reached.add(key)
        self._endRetry(key)
        queueId = self._probes.pop(key, None)
        self._probeHops.pop(queueId, None)
        parked = self._parked.pop(key, None)
        for queueId in parked or ():
            self._release(queueId)

    def _unreachable(self, key, until, failure):
        """
        A send to C{key} failed as a whole: nothing goes to it until
        C{until} but the probe then.
        """
        self._reached.discard(key)
        self._endRetry(key)
        queueId = self._probes.pop(key, None)
        self._probeHops.pop(queueId, None)
        self._retrying[key] = (until, failure)
        if self._parked.get(key):
            self._wakeAt(key, until)

    def _endRetry(self, key):
        self._retrying.pop(key, None)
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
        self._retrying.pop(key, None)
        self._promote(key)

    def _promote(self, key):
        # Parked messages that no longer need a pass (removed, suspended,
        # not due) are passed over until one does.
        parked = self._parked.get(key)
        while parked and key not in self._probes and key not in self._retrying:
            queueId = next(iter(parked))
            del parked[queueId]
            self._probes[key] = queueId
            self._probeHops[queueId] = key
            if not self._release(queueId) and self._probes.get(key) == queueId:
                del self._probes[key]
                del self._probeHops[queueId]
        if not parked:
            self._parked.pop(key, None)
