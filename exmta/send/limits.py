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

A process whose send is held by the counts marks so in its row (per next
hop, or for room under the total cap).  While another process's send is
marked waiting, a process keeps no more than its share of a cap: the cap
divided among the processes that have connections under it or wait for
one, rounded up.  It opens no connection past its share, and closes a
connection that finished a transaction when it has more than its share,
or when it has no send of its own waiting for it; so a process with a
long queue for a next hop cannot keep its connections from the others for
as long as the queue lasts (L{exmta.send.pool.ConnectionPool}).
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

    def _caps(self, hop):
        """
        @return: (cap, its name, where its connections are counted, where
            its waiting sends are marked), per next hop then total, for the
            caps that are set.
        """
        slot = slotOf(hop)
        caps = []
        if self.maxPerHop is not None:
            caps.append((self.maxPerHop, PER_HOP, OUTBOUND_HOP + slot, OUTBOUND_WAITING_HOP + slot))
        if self.maxConnections is not None:
            caps.append((self.maxConnections, TOTAL, OUTBOUND_TOTAL, OUTBOUND_WAITING_TOTAL))
        return caps

    def _othersWait(self, waiting):
        return self._region.total(waiting) > self._region.own(waiting)

    def _share(self, cap, counted, waiting):
        """
        @return: this process's share of C{cap}: divided among the
            processes that have connections under it or sends waiting for
            one, this one included, rounded up so that the shares leave
            none of the cap unused.
        """
        region = self._region
        wanting = sum(
            1 for row, (count, wait) in enumerate(zip(region.column(counted), region.column(waiting)))
            if count or wait or row == region.row
        )
        return -(-cap // wanting)

    def take(self, hop):
        """
        Count a new connection to C{hop} if no cap stops it and, while
        other processes wait, it is within this process's share.

        @return: L{None} if counted (L{give} must follow), else L{PER_HOP}
            or L{TOTAL}: the cap that stops it.
        """
        region = self._region
        caps = self._caps(hop)
        with region.exclusive():
            for cap, name, counted, waiting in caps:
                if region.total(counted) >= cap:
                    return name
                if self._othersWait(waiting) and region.own(counted) >= self._share(cap, counted, waiting):
                    return name
            region.add(OUTBOUND_HOP + slotOf(hop), 1)
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

    def shouldClose(self, hop, wanted):
        """
        @param wanted: whether this process has sends waiting for C{hop}.
        @return: whether this process should close a connection to C{hop}
            that finished a transaction or is idle, for another process's
            waiting send: one is waiting under a cap the connection counts
            against, and this process either has no send for it or has more
            than its share of that cap.
        """
        region = self._region
        for cap, _, counted, waiting in self._caps(hop):
            if self._othersWait(waiting) and (
                not wanted or region.own(counted) > self._share(cap, counted, waiting)
            ):
                return True
        return False
