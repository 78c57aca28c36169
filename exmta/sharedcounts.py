"""
The connection counts of one transport server, shared by every process
that opens or accepts its connections (the main process and its workers):
one memory region (a memfd mapped shared, inherited by the workers), laid
out in rows, one row per process.  A process writes only its own row and
reads them all; the sessions or connections of a process that died stay
counted in its row until the owner clears it (L{SharedCounts.clearRow}).

Each row holds the tables of both directions, each of L{SLOTS} counters
addressed by a CRC-32 of a key (crc32, not hash(): every process must find
the same slot, and hash() of a string differs from process to process):

  - L{INBOUND_CONNECTOR}, L{INBOUND_SOURCE}: open sessions per receive
    connector and per connector and client address, for
    MaxInboundConnection and MaxInboundConnectionPerSource
    (L{exmta.receive.limits.ConnectionCounts});
  - L{OUTBOUND_HOP}, L{OUTBOUND_WAITING_HOP}: connections open or being
    opened per next hop, for MaxPerDomainOutboundConnections, and whether
    the process has sends waiting for that next hop because other
    processes hold its connections;
  - L{OUTBOUND_TOTAL}, L{OUTBOUND_WAITING_TOTAL} (one counter each):
    connections open or being opened to every next hop, for
    MaxOutboundConnections, and next hops waiting for room under it
    (L{exmta.send.limits.OutboundCounts}).

Two keys whose slots are the same share a count, so a limit can only bite
earlier than it should, never later.

The region belongs to no stage: receive and send both count in it, and
neither loads the other to do so.
"""

import contextlib
import fcntl
import mmap
import os
import weakref

SLOTS = 65536

INBOUND_CONNECTOR = 0
INBOUND_SOURCE = SLOTS
OUTBOUND_HOP = 2 * SLOTS
OUTBOUND_WAITING_HOP = 3 * SLOTS
OUTBOUND_TOTAL = 4 * SLOTS
OUTBOUND_WAITING_TOTAL = 4 * SLOTS + 1

# A counter is a C int, so a process's store of one is a single aligned
# write that another process reads whole.
_COUNTER = "i"
_COUNTER_BYTES = 4
ROW_COUNTERS = 4 * SLOTS + 2
ROW_BYTES = ROW_COUNTERS * _COUNTER_BYTES


class SharedCounts:
    """
    The counts of one transport server as one process sees them: the whole
    shared region to read, one row of it to write.

    Made by L{create} in the process that owns the region (row 0), and by
    L{attach} in each worker, with the row the owner gave it.  The object
    owns its descriptor: L{close} closes it, and so does collecting the
    object.

    @ivar rows: how many rows the region has: processes that may count in it.
    @ivar row: the row this process writes.
    """

    def __init__(self, descriptor, rows, row):
        self._descriptor = descriptor
        self._closeDescriptor = weakref.finalize(self, os.close, descriptor)
        self._map = mmap.mmap(descriptor, rows * ROW_BYTES, mmap.MAP_SHARED)
        self._counters = memoryview(self._map).cast(_COUNTER)
        self.rows = rows
        self.row = row
        self._own = row * ROW_COUNTERS

    @classmethod
    def create(cls, rows):
        """
        Make a region of C{rows} rows, all zero, and write row 0 of it.
        """
        if rows < 1:
            raise ValueError(f"a region needs at least one row, not {rows}")
        descriptor = os.memfd_create("exmta-connections")
        try:
            os.ftruncate(descriptor, rows * ROW_BYTES)
        except BaseException:
            os.close(descriptor)
            raise
        return cls(descriptor, rows, 0)

    @classmethod
    def attach(cls, fileno, row):
        """
        Write row C{row} of the region the owner's L{fileno} is (inherited),
        taking that descriptor over.

        @raise ValueError: C{row} is the owner's or past the region's rows,
            or the descriptor is no region of whole rows.
        """
        size = os.fstat(fileno).st_size
        rows, remainder = divmod(size, ROW_BYTES)
        if remainder or not rows:
            raise ValueError(f"descriptor {fileno} is no connection count region ({size} bytes)")
        if not 1 <= row < rows:
            raise ValueError(f"row {row} is not a worker's row of a region of {rows} rows")
        return cls(fileno, rows, row)

    def fileno(self):
        """
        @return: the region's descriptor, for a worker to L{attach} to.
        """
        return self._descriptor

    def total(self, position):
        """
        @return: the counter at C{position} of a row, added up over every
            row.
        """
        return sum(self._counters[position::ROW_COUNTERS])

    def column(self, position):
        """
        @return: the counter at C{position} of each row, in row order.
        """
        return self._counters[position::ROW_COUNTERS].tolist()

    def own(self, position):
        """
        @return: this process's counter at C{position}.
        """
        return self._counters[self._own + position]

    def add(self, position, amount):
        """
        Add C{amount} to this process's counter at C{position}.
        """
        self._counters[self._own + position] += amount

    @contextlib.contextmanager
    def exclusive(self):
        """
        Hold the region's lock (a POSIX record lock on the memfd) while the
        block runs: no other process holding it reads or counts meanwhile,
        so a count checked and then taken under it cannot pass a limit.
        The kernel drops the lock of a process that dies, and its taking
        and dropping order this process's reads and writes with theirs.
        """
        fcntl.lockf(self._descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._descriptor, fcntl.LOCK_UN)

    def clearRow(self, row):
        """
        Zero the row of a process that died: its sessions and connections
        died with it.  Only once it is dead: a live process would go on
        writing it.
        """
        if row == self.row or not 0 <= row < self.rows:
            raise ValueError(f"row {row} is not another process's row of {self.rows} rows")
        start = row * ROW_COUNTERS
        self._counters[start : start + ROW_COUNTERS] = memoryview(bytes(ROW_BYTES)).cast(_COUNTER)

    def close(self):
        self._counters.release()
        self._map.close()
        self._closeDescriptor()
