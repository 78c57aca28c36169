"""
MaxOutboundConnections and MaxPerDomainOutboundConnections held over every
process of a transport server that sends (L{OutboundCounts}), in the
server's shared region (L{exmta.sharedcounts.SharedCounts}).

Each process counts the connections it has open or is opening in its own
row: per next hop (the slot is the CRC-32 of the next hop's key) and in
all.  Two next hops whose slots are the same share a count, so a cap can
only bite earlier than it should, never later.  A connection is counted
under the region's lock, after the counts of every row were read under it:
however many processes open connections at the same instant, none passes
a cap (the inbound counts go without a lock and may be passed by a few;
a connection opened is rarer and dearer than a session accepted).

A process whose send is held by the counts of other processes marks so in
its row (per next hop, or for room under the total cap), so that the
others close the idle connections it could use instead of keeping them
for their own later sends (L{exmta.send.pool.ConnectionPool}).
"""

import zlib

from exmta.sharedcounts import (
    OUTBOUND_HOP,
    OUTBOUND_TOTAL,
    OUTBOUND_WAITING_HOP,
    OUTBOUND_WAITING_TOTAL,
    SLOTS,
)

# What stops a connection: the next hop's cap or the total.
PER_HOP = "MaxPerDomainOutboundConnections"
TOTAL = "MaxOutboundConnections"


def slotOf(hop):
    """
    @return: the slot of next hop C{hop} (its key, a string) in the tables
        of next hops; the same in every process.
    """
    return zlib.crc32(hop.encode("utf-8")) % SLOTS


class OutboundCounts:
    """
    The outbound connections of one transport server, counted over all its
    processes.

    @ivar maxConnections: MaxOutboundConnections (L{None}: unlimited).
    @ivar maxPerHop: MaxPerDomainOutboundConnections (L{None}: unlimited).
    """

    def __init__(self, region, maxConnections, maxPerHop):
        """
        @param region: the server's L{exmta.sharedcounts.SharedCounts}, this
            process's row of it.
        """
        self._region = region
        self.maxConnections = maxConnections
        self.maxPerHop = maxPerHop

    def take(self, hop):
        """
        Count a new connection to C{hop} if neither cap stops it.

        @return: L{None} if counted (L{give} must follow), else L{PER_HOP}
            or L{TOTAL}: the cap that stops it.
        """
        region = self._region
        position = OUTBOUND_HOP + slotOf(hop)
        with region.exclusive():
            if self.maxPerHop is not None and region.total(position) >= self.maxPerHop:
                return PER_HOP
            if self.maxConnections is not None and region.total(OUTBOUND_TOTAL) >= self.maxConnections:
                return TOTAL
            region.add(position, 1)
            region.add(OUTBOUND_TOTAL, 1)
        return None

    def give(self, hop):
        """
        Uncount a connection to C{hop} that L{take} counted in this process.
        """
        self._region.add(OUTBOUND_HOP + slotOf(hop), -1)
        self._region.add(OUTBOUND_TOTAL, -1)

    def connections(self, hop=None):
        """
        @return: the connections to C{hop} (to every next hop if L{None})
            of every process.
        """
        if hop is None:
            return self._region.total(OUTBOUND_TOTAL)
        return self._region.total(OUTBOUND_HOP + slotOf(hop))

    def _waitingPosition(self, hop, cap):
        return OUTBOUND_WAITING_TOTAL if cap == TOTAL else OUTBOUND_WAITING_HOP + slotOf(hop)

    def wait(self, hop, cap):
        """
        Mark that this process has sends for C{hop} that C{cap} holds.
        """
        self._region.add(self._waitingPosition(hop, cap), 1)

    def stopWaiting(self, hop, cap):
        """
        Undo a L{wait}.
        """
        self._region.add(self._waitingPosition(hop, cap), -1)

    def othersWaitFor(self, hop):
        """
        @return: whether another process has sends waiting that a
            connection of this one to C{hop}, closed, would let through:
            sends for the same next hop, or sends that wait for room under
            the total cap.
        """
        for position in (OUTBOUND_WAITING_HOP + slotOf(hop), OUTBOUND_WAITING_TOTAL):
            if self._region.total(position) > self._region.own(position):
                return True
        return False
