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
"""

from collections import Counter, deque

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from exmta.envelope import Reply
from exmta.errors import ConnectionFailure, SMTPFailure

log = Logger(namespace="exmta.send")

IDLE_TIMEOUT = 30

SHUTTING_DOWN = Reply(451, "4.3.2", "The send side is shutting down")


class _Waiter:
    def __init__(self, key, opener):
        self.key = key
        self.opener = opener
        self.deferred = Deferred()


class ConnectionPool:
    """
    @ivar closed: set by L{close}; no connection is opened or kept after.
    """

    def __init__(self, clock, maxConnections=None, maxPerHop=None, idleTimeout=IDLE_TIMEOUT):
        self._clock = clock
        self._max = maxConnections
        self._maxPerHop = maxPerHop
        self._idleTimeout = idleTimeout
        self._count = Counter()
        self._idle = {}
        self._timers = {}
        self._keys = {}
        self._evicting = set()
        self._waiting = deque()
        self._dispatching = False
        self._again = False
        self.closed = False

    @property
    def total(self):
        return sum(self._count.values())

    def connections(self, key):
        """
        @return: how many connections to C{key} are open or being opened.
        """
        return self._count[key]

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
        self._waiting.append(waiter)
        self._dispatch()
        return waiter.deferred

    def _dispatch(self):
        # Handing out a connection runs the taker's code, which may come
        # back here (a transaction refused at once releases the client).
        if self._dispatching:
            self._again = True
            return
        self._dispatching = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._serveWaiters()
        finally:
            self._dispatching = False

    def _serveWaiters(self):
        for waiter in list(self._waiting):
            if waiter not in self._waiting:
                continue
            key = waiter.key
            client = self._takeIdle(key)
            if client is not None:
                self._waiting.remove(waiter)
                waiter.deferred.callback(client)
                continue
            if self._maxPerHop is not None and self._count[key] >= self._maxPerHop:
                continue
            if self._max is not None and self.total >= self._max:
                self._evictIdle()
                continue
            self._waiting.remove(waiter)
            self._count[key] += 1
            self._open(waiter)

    def _takeIdle(self, key):
        """
        @return: the most recently used idle connection to C{key}, or
            L{None}.  Connections the server has started to close are
            dropped on the way.
        """
        while self._idle.get(key):
            client = self._idle[key].pop()
            if not self._idle[key]:
                del self._idle[key]
            timer = self._timers.pop(client, None)
            if timer is not None and timer.active():
                timer.cancel()
            if client.idle:
                return client
        return None

    def _evictIdle(self):
        if self._evicting:
            return
        oldest = None
        for key, clients in self._idle.items():
            for client in clients:
                if oldest is None or self._timers[client].getTime() < self._timers[oldest].getTime():
                    oldest = client
        if oldest is not None:
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
            self._count[key] -= 1
            if not self._count[key]:
                del self._count[key]
            waiter.deferred.errback(failure)
            if failure.check(SMTPFailure) and not self._count[key]:
                # Nothing reaches this next hop now: the sends waiting for
                # it hear so at once, instead of each trying every host.
                for other in list(self._waiting):
                    if other.key == key:
                        self._waiting.remove(other)
                        other.deferred.errback(failure.value)
            self._dispatch()

        waiter.opener().addCallbacks(opened, failed)

    def released(self, client):
        """
        C{client} finished a transaction and is idle again.
        """
        key = self._keys.get(client)
        if key is None:
            client.quit()
            return
        if self.closed:
            client.quit()
            return
        self._idle.setdefault(key, []).append(client)
        self._timers[client] = self._clock.callLater(self._idleTimeout, self._expire, client)
        self._dispatch()

    def _expire(self, client):
        self._timers.pop(client, None)
        self._dropIdle(client)
        client.quit()

    def _dropIdle(self, client):
        key = self._keys.get(client)
        clients = self._idle.get(key, [])
        if client in clients:
            clients.remove(client)
        if not clients:
            self._idle.pop(key, None)
        timer = self._timers.pop(client, None)
        if timer is not None and timer.active():
            timer.cancel()

    def lost(self, client):
        """
        C{client}'s connection is gone.
        """
        key = self._keys.pop(client, None)
        self._evicting.discard(client)
        if key is None:
            return
        clients = self._idle.get(key, [])
        if client in clients:
            clients.remove(client)
            if not clients:
                self._idle.pop(key, None)
        timer = self._timers.pop(client, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._count[key] -= 1
        if not self._count[key]:
            del self._count[key]
        self._dispatch()

    def close(self):
        """
        Refuse new work, fail the waiting sends and QUIT idle connections;
        busy ones QUIT when their transaction ends.
        """
        self.closed = True
        waiting, self._waiting = self._waiting, deque()
        for waiter in waiting:
            waiter.deferred.errback(ConnectionFailure(SHUTTING_DOWN))
        for clients in list(self._idle.values()):
            for client in list(clients):
                self._dropIdle(client)
                client.quit()
