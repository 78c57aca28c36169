"""
Open SMTP connections by next hop: reuse and caps.

A send asks the pool for a connection to its next hop.  An idle one is
reused (after the RSET that ended its last transaction); otherwise a new
one is opened if the caps allow: MaxPerDomainOutboundConnections per next
hop, MaxOutboundConnections in all (L{None} is unlimited).  Otherwise the
send waits; waiting sends are served in the order they asked, each as soon
as its next hop has an idle connection or room for a new one.  When the
total cap is what stops a send, an idle connection to another next hop is
closed to make room.  Idle connections are closed after L{IDLE_TIMEOUT}.

Waiting sends are kept in one first-in first-out line per next hop, and
next hops that wait for room under the total cap in one more line, so that
each acquire, release and loss costs the same however many sends wait.

With receive workers each process of the server sends, and the caps hold
for the whole server: the pool is given the server's
L{exmta.send.limits.OutboundCounts} and counts each connection there too.
A process learns of a connection another process closed by looking again
every L{POLL_INTERVAL} seconds while it has sends held by the counts (a
timer, only while some wait).  While it keeps idle connections it looks as
often for other processes' waiting sends: an idle connection they could
use is closed rather than kept.  While others wait, a process keeps at
most its share of a cap (L{exmta.send.limits}): a connection that finished
a transaction goes to this process's next send for its next hop only
within that share, and is closed otherwise.
"""

from collections import Counter, OrderedDict, deque

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from exmta.envelope import Reply
from exmta.errors import ConnectionFailure, SMTPFailure
from exmta.send.limits import TOTAL

log = Logger(namespace="exmta.send")

IDLE_TIMEOUT = 30

# Seconds between looks at the counts of other processes while they hold a
# send of this one, or while this one keeps idle connections.
POLL_INTERVAL = 0.2

SHUTTING_DOWN = Reply(451, "4.3.2", "The send side is shutting down")


class _Waiter:
    __slots__ = ("key", "opener", "deferred")

    def __init__(self, key, opener):
        self.key = key
        self.opener = opener
        self.deferred = Deferred()


class ConnectionPool:
    """
    @ivar closed: set by L{close}; no connection is opened or kept after.
    @ivar total: connections open or being opened, to every next hop.
    """

    def __init__(
        self, clock, maxConnections=None, maxPerHop=None, idleTimeout=IDLE_TIMEOUT,
        shared=None, hopOf=lambda key: key,
    ):
        """
        @param shared: the server's L{exmta.send.limits.OutboundCounts},
            when other processes send for it too; L{None} when this pool's
            caps are the server's.
        @param hopOf: the next hop's name in a key, as every process of the
            server spells it (the name L{shared} counts under).
        """
        self._clock = clock
        self._shared = shared
        self._hopOf = hopOf
        # key -> the cap of L{shared} that holds its waiters, in the order
        # they got stuck.
        self._held = OrderedDict()
        self._poll = None
        self._max = maxConnections
        self._maxPerHop = maxPerHop
        self._idleTimeout = idleTimeout
        self._count = Counter()
        self.total = 0
        # key -> {client: None}, most recently used last.
        self._idle = {}
        # client -> its expiry timer, oldest idle first.
        self._timers = {}
        self._keys = {}
        self._evicting = set()
        # key -> deque of _Waiter, in the order they asked.
        self._waiting = {}
        # Next hops whose first waiter has room under its own cap but not
        # under the total cap, in the order they got stuck.
        self._needRoom = OrderedDict()
        self._dispatching = False
        self._dirty = OrderedDict()
        self.closed = False

    def connections(self, key):
        """
        @return: how many connections to C{key} are open or being opened.
        """
        return self._count[key]

    def waiting(self, key):
        """
        @return: how many sends wait for a connection to C{key}.
        """
        return len(self._waiting.get(key, ()))

    def acquire(self, key, opener):
        """
        @param key: the next hop's key.
        @param opener: called without arguments when a new connection may be
            opened; returns a L{Deferred} firing with a ready
            L{exmta.send.client.DeliveryClient}, or failing with an
            L{SMTPFailure} when the next hop cannot be reached.
        @return: a L{Deferred} firing with an idle client, which the caller
            must give a transaction at once, or failing with the
            L{SMTPFailure} that kept it from connecting.
        """
        waiter = _Waiter(key, opener)
        if self.closed:
            waiter.deferred.errback(ConnectionFailure(SHUTTING_DOWN))
            return waiter.deferred
        waiters = self._waiting.get(key)
        if waiters is None:
            waiters = self._waiting[key] = deque()
        waiters.append(waiter)
        if len(waiters) == 1:
            self._dispatch(key)
        return waiter.deferred

    def _dispatch(self, key):
        # Handing out a connection runs the taker's code, which may come
        # back here (a transaction refused at once releases the client):
        # the outer call serves what the inner ones marked.
        self._dirty[key] = None
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._dirty:
                key, _ = self._dirty.popitem(last=False)
                self._serve(key)
        finally:
            self._dispatching = False

    def _serve(self, key):
        """
        Give the sends waiting for C{key} what they can have now: idle
        connections, then new ones while the caps allow.
        """
        waiters = self._waiting.get(key)
        while waiters:
            client = self._takeIdle(key)
            if client is not None:
                waiters.popleft().deferred.callback(client)
                continue
            if self._maxPerHop is not None and self._count[key] >= self._maxPerHop:
                self._unhold(key)
                break
            if self._max is not None and self.total >= self._max:
                self._unhold(key)
                self._needRoom[key] = None
                self._evictIdle()
                break
            if self._shared is not None:
                cap = self._shared.take(self._hopOf(key))
                if cap is not None:
                    self._hold(key, cap)
                    if cap == TOTAL:
                        self._evictIdle()
                    break
                self._unhold(key)
            waiter = waiters.popleft()
            self._count[key] += 1
            self.total += 1
            self._open(waiter)
        if not waiters:
            self._waiting.pop(key, None)
            self._needRoom.pop(key, None)
            self._unhold(key)

    def _hold(self, key, cap):
        """
        C{key}'s first waiter is held by C{cap} of the shared counts: say
        so to the other processes, and look again soon.
        """
        held = self._held.get(key)
        if held == cap:
            return
        if held is not None:
            self._shared.stopWaiting(self._hopOf(key), held)
        self._held[key] = cap
        self._shared.wait(self._hopOf(key), cap)
        self._schedulePoll()

    def _unhold(self, key):
        cap = self._held.pop(key, None)
        if cap is not None:
            self._shared.stopWaiting(self._hopOf(key), cap)

    def _schedulePoll(self):
        if self._poll is None and not self.closed and (self._held or self._timers):
            self._poll = self._clock.callLater(POLL_INTERVAL, self._look)

    def _look(self):
        """
        Another process may have closed a connection, or wait for one this
        process keeps idle.
        """
        self._poll = None
        for key in list(self._held):
            self._dispatch(key)
        for client in list(self._timers):
            if self._shared.shouldClose(self._hopOf(self._keys[client]), False):
                self._dropIdle(client)
                client.quit()
        self._schedulePoll()

    def _roomMade(self, key):
        """
        A connection to C{key} is gone: its own waiters, then those of the
        next hops held by the total cap, may have it.
        """
        self._dispatch(key)
        while self._needRoom and (self._max is None or self.total < self._max):
            stuck, _ = self._needRoom.popitem(last=False)
            self._dispatch(stuck)
        for stuck in list(self._held):
            self._dispatch(stuck)

    def _takeIdle(self, key):
        """
        @return: the most recently used idle connection to C{key}, or
            L{None}.  Connections the server has started to close are
            dropped on the way.
        """
        clients = self._idle.get(key)
        while clients:
            client, _ = clients.popitem()
            if not clients:
                del self._idle[key]
            timer = self._timers.pop(client, None)
            if timer is not None and timer.active():
                timer.cancel()
            if client.idle:
                return client
            clients = self._idle.get(key)
        return None

    def _evictIdle(self):
        if self._evicting or not self._timers:
            return
        oldest = next(iter(self._timers))
        self._evicting.add(oldest)
        self._dropIdle(oldest)
        oldest.quit()

    def _open(self, waiter):
        key = waiter.key

        def opened(client):
            self._keys[client] = key
            client.owner = self
            if self.closed:
                waiter.deferred.errback(ConnectionFailure(SHUTTING_DOWN))
                client.quit()
                return
            waiter.deferred.callback(client)

        def failed(failure):
            self._forget(key)
            waiter.deferred.errback(failure)
            if failure.check(SMTPFailure) and not self._count[key]:
                # Nothing reaches this next hop now: the sends waiting for
                # it hear so at once, instead of each trying every host.
                self._needRoom.pop(key, None)
                for other in self._waiting.pop(key, ()):
                    other.deferred.errback(failure.value)
            self._roomMade(key)

        waiter.opener().addCallbacks(opened, failed)

    def _forget(self, key):
        self.total -= 1
        self._count[key] -= 1
        if not self._count[key]:
            del self._count[key]
        if self._shared is not None:
            self._shared.give(self._hopOf(key))

    def released(self, client):
        """
        C{client} finished a transaction and is idle again.
        """
        key = self._keys.get(client)
        if key is None or self.closed:
            client.quit()
            return
        if self._shared is not None and self._shared.shouldClose(
            self._hopOf(key), key in self._waiting
        ):
            # Another process's send may have the connection's place.
            client.quit()
            return
        self._idle.setdefault(key, {})[client] = None
        if key in self._waiting:
            # Straight to the next send for the same next hop, without an
            # idle timer.
            self._dispatch(key)
            return
        self._timers[client] = self._clock.callLater(self._idleTimeout, self._expire, client)
        if self._needRoom or TOTAL in self._held.values():
            self._evictIdle()
        if self._shared is not None:
            self._schedulePoll()

    def _expire(self, client):
        self._timers.pop(client, None)
        self._dropIdle(client)
        client.quit()

    def _dropIdle(self, client):
        key = self._keys.get(client)
        clients = self._idle.get(key)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self._idle[key]
        timer = self._timers.pop(client, None)
        if timer is not None and timer.active():
            timer.cancel()

    def lost(self, client):
        """
        C{client}'s connection is gone.
        """
        self._evicting.discard(client)
        if client not in self._keys:
            return
        self._dropIdle(client)
        key = self._keys.pop(client)
        self._forget(key)
        self._roomMade(key)

    def close(self):
        """
        Refuse new work, fail the waiting sends and QUIT idle connections;
        busy ones QUIT when their transaction ends.
        """
        self.closed = True
        waiting, self._waiting = self._waiting, {}
        self._needRoom.clear()
        for key in list(self._held):
            self._unhold(key)
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        for waiters in waiting.values():
            for waiter in waiters:
                waiter.deferred.errback(ConnectionFailure(SHUTTING_DOWN))
        for clients in list(self._idle.values()):
            for client in list(clients):
                self._dropIdle(client)
                client.quit()
