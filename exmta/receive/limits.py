"""
The open sessions of one transport server, counted for its receive
connectors' MaxInboundConnection and MaxInboundConnectionPerSource over
every process that accepts its connections (the main process and its
receive workers), without locks.

The counts live in the server's shared region
(L{exmta.sharedcounts.SharedCounts}: a row per process, each writing only
its own): two of its tables of L{SLOTS} counters, open sessions per
connector (the slot is the CRC-32 of the connector's identity) and per
connector and client address (the CRC-32 of the identity, a newline and
the address).  Two keys whose slots are the same share a count, so a limit
can only bite earlier than it should, never later: a source shares its
slot with one of N other open sources about N times in 65,536 (one in
twenty at 3,000), and is then refused only if the two together reach the
per-source limit.

A server without receive workers counts in L{LocalConnectionCounts}
instead: exact, in its own memory, no slots shared by chance.

Without a lock, processes that admit at the same instant can each see the
count at limit - 1 and each let a session in: with P processes, a limit can
be passed by at most P - 1 sessions.  Each process is single-threaded, so
an admit misses at most one admit in flight per other process.
"""

import zlib
from collections import Counter, deque

from exmta.envelope import Reply
from exmta.sharedcounts import INBOUND_CONNECTOR, INBOUND_SOURCE, SLOTS, SharedCounts

TOO_MANY_CONNECTIONS = Reply(
    421,
    "4.3.2",
    "The maximum number of concurrent connections has exceeded a limit, "
    "closing transmission channel",
)

RATE_EXCEEDED = Reply(
    421, "4.4.2", "Message submission rate for this client has exceeded the configured limit"
)


def _refusal(connector, sessions, sessionsFromSource):
    """
    @return: L{TOO_MANY_CONNECTIONS} if C{connector}'s MaxInboundConnection,
        MaxInboundConnectionPerSource (L{None}: unlimited) or
        MaxInboundConnectionPercentagePerSource (of the sessions
        MaxInboundConnection still allows) leaves no room beside the
        sessions open, else L{None}.
    """
    total = connector.maxInboundConnection
    perSource = connector.maxInboundConnectionPerSource
    open_ = sessions() if total is not None else 0
    if total is not None and open_ >= total:
        return TOO_MANY_CONNECTIONS
    if perSource is not None and sessionsFromSource() >= perSource:
        return TOO_MANY_CONNECTIONS
    if total is not None:
        # MaxInboundConnectionPercentagePerSource: a source may hold that
        # share of the slots other sources leave it, and always one.
        own = sessionsFromSource()
        share = (total - open_ + own) * connector.maxInboundConnectionPercentagePerSource // 100
        if own >= max(1, share):
            return TOO_MANY_CONNECTIONS
    return None


class LocalConnectionCounts:
    """
    The open sessions of a server whose sessions all run in this process,
    counted exactly: the L{ConnectionCounts} interface without sharing.
    """

    def __init__(self):
        self._byConnector = Counter()
        self._bySource = Counter()

    def admit(self, connector, peerHost):
        """
        See L{ConnectionCounts.admit}.
        """
        source = (connector.identity, peerHost)
        refusal = _refusal(
            connector, lambda: self._byConnector[connector.identity], lambda: self._bySource[source]
        )
        if refusal is None:
            self._byConnector[connector.identity] += 1
            self._bySource[source] += 1
        return refusal

    def release(self, connector, peerHost):
        """
        See L{ConnectionCounts.release}.
        """
        source = (connector.identity, peerHost)
        self._byConnector[connector.identity] -= 1
        self._bySource[source] -= 1
        if not self._bySource[source]:
            del self._bySource[source]

    def close(self):
        pass


def _positions(connector, peerHost):
    """
    @return: where in a row the counter of the connector's sessions is, and
        that of its sessions from C{peerHost}.  crc32 rather than hash():
        every process must find the same slot, and hash() of a string
        differs from process to process.
    """
    identity = zlib.crc32(connector.identity.encode("utf-8"))
    source = zlib.crc32(b"\n" + peerHost.encode("utf-8"), identity)
    return INBOUND_CONNECTOR + identity % SLOTS, INBOUND_SOURCE + source % SLOTS


class ConnectionCounts(SharedCounts):
    """
    The inbound connection counts of one transport server as one process
    sees them: the whole shared region to read, one row of it to write
    (made by L{SharedCounts.create} in the main process, row 0, and by
    L{SharedCounts.attach} in each worker).
    """

    def admit(self, connector, peerHost):
        """
        Count a new session from C{peerHost} against C{connector}'s
        MaxInboundConnection and MaxInboundConnectionPerSource (L{None}:
        unlimited), over every row.

        @return: L{None} if admitted (L{release} must follow), else the
            reply to close with.
        """
        byConnector, bySource = _positions(connector, peerHost)
        refusal = _refusal(
            connector, lambda: self.total(byConnector), lambda: self.total(bySource)
        )
        if refusal is None:
            self.add(byConnector, 1)
            self.add(bySource, 1)
        return refusal

    def release(self, connector, peerHost):
        """
        Uncount a session L{admit} admitted in this process.
        """
        byConnector, bySource = _positions(connector, peerHost)
        self.add(byConnector, -1)
        self.add(bySource, -1)


# Replies counted by MaxProtocolErrors, and AUTH's (AuthTarpitInterval).
_NOT_TARPITTED = {500, 501, 502, 503, 504, 555, 530, 531, 532, 533, 534, 535}


def tarpitDelay(connector, session, response):
    """
    How long C{response} waits before it is sent (TarpitInterval): a
    refusal of mail (5xx: RCPT's 550 5.1.1, relay refusals, refused
    messages) to an anonymous session, so that a directory harvest or a
    spammer's retries go slowly.  Protocol errors have MaxProtocolErrors,
    failed logons AuthTarpitInterval; authenticated sessions are never
    tarpitted.

    @return: seconds, 0 for at once.
    """
    if connector is None or session is None or not 500 <= response.code < 600:
        return 0
    if response.code in _NOT_TARPITTED or session.authenticated:
        return 0
    if getattr(session.principal, "authAs", "Anonymous") != "Anonymous":
        return 0
    return connector.tarpitInterval


class MessageRates:
    """
    A receive connector's MessageRateLimit: at most that many messages a
    minute (MAIL commands) from one source, which MessageRateSource says is
    the client's address (C{IPAddress}), its account (C{User}: sessions
    that logged on; anonymous ones are not counted), both (C{All}), or
    nothing (C{None}).  Counted in this process: with receive workers, each
    counts its own sessions.
    """

    WINDOW = 60
    # Sources kept before those with no message in the last minute are
    # dropped: a flood of new addresses cannot grow this without bound.
    _PRUNE_AT = 10_000

    def __init__(self, clock):
        self._clock = clock
        self._times = {}

    def admit(self, connector, peerHost, principal):
        """
        Count one message from the session's sources.

        @return: L{None}, or L{RATE_EXCEEDED} when a source has had
            MessageRateLimit messages in the last minute (not counted then).
        """
        limit, source = connector.messageRateLimit, connector.messageRateSource
        if limit is None or source == "None":
            return None
        keys = []
        if source in ("IPAddress", "All"):
            keys.append((connector.identity, "ip", peerHost))
        if source in ("User", "All") and getattr(principal, "authAs", "Anonymous") != "Anonymous":
            keys.append((connector.identity, "user", principal.name))
        now = self._clock.seconds()
        counted = []
        for key in keys:
            times = self._times.get(key)
            if times is None:
                times = self._times[key] = deque()
            while times and times[0] <= now - self.WINDOW:
                times.popleft()
            if len(times) >= limit:
                return RATE_EXCEEDED
            counted.append(times)
        for times in counted:
            times.append(now)
        if len(self._times) > self._PRUNE_AT:
            self._times = {
                key: times for key, times in self._times.items()
                if times and times[-1] > now - self.WINDOW
            }
        return None
