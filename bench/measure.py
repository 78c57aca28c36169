"""
What the benchmark reads from /proc, and the arithmetic of its tables.
"""

import os
import statistics

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as handle:
        # The command name may hold spaces and parentheses: split after it.
        return handle.read().rsplit(")", 1)[1].split()


def processCpu(pid, children=False):
    """
    CPU seconds (user + system, all threads) a process has used; with
    C{children}, plus those of its children it has reaped (cutime, cstime),
    so that the CPU of short-lived children is not lost between samples.
    0 if the process is gone.
    """
    try:
        fields = _stat(pid)
    except (OSError, IndexError):
        return 0.0
    # fields[0] is the state (field 3 of proc(5)); utime is field 14.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def processRss(pid):
    """
    Resident set size of a process, in bytes (0 if it is gone).
    """
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid):
    """
    Every live process below C{pid}, children first.
    """
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            parents.setdefault(int(_stat(name)[1]), []).append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(0), [])
        found.extend(children)
        frontier.extend(children)
    return found


def percentile(values, fraction):
    """
    The nearest-rank percentile of C{values} (fraction 0.99 for p99).
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def summary(values):
    """
    @return: (median, min, max) of C{values}, NaNs if there are none.
    """
    values = [value for value in values if value == value]
    if not values:
        nan = float("nan")
        return nan, nan, nan
    return statistics.median(values), min(values), max(values)


def fmt(value, digits=0):
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"


def listenOverflows():
    """
    The kernel's count of connections dropped because a listen queue was
    full (TcpExt ListenOverflows), machine-wide.
    """
    try:
        with open("/proc/net/netstat") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:]))
            return int(fields.get("ListenOverflows", 0))
    return 0


def machineBusy():
    """
    CPU seconds the whole machine has spent busy (all cores), from /proc/stat.
    """
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + (fields[7] if len(fields) > 7 else 0)
    return busy / TICKS


class Interval:
    """
    What happened on the machine between L{start} and L{stop}: the CPU of
    processes other than the server measured, this benchmark process and
    its children (the load generator), as a share of all cores; and the
    listen-queue overflows.
    """

    def __init__(self, server):
        import resource
        import time

        self._resource = resource
        self._time = time
        self.server = server
        self.started = time.monotonic()
        self.busy = machineBusy()
        self.own = self._own()
        self.serverCpu = server.cpuSeconds()
        self.overflows = listenOverflows()

    def _own(self):
        usage = [self._resource.getrusage(who) for who in
                 (self._resource.RUSAGE_SELF, self._resource.RUSAGE_CHILDREN)]
        return sum(u.ru_utime + u.ru_stime for u in usage)

    def stop(self):
        """
        @return: (server CPU seconds, others' share of all cores in %,
            listen overflows).
        """
        elapsed = self._time.monotonic() - self.started
        serverCpu = self.server.cpuSeconds() - self.serverCpu
        busy = machineBusy() - self.busy
        own = self._own() - self.own
        others = max(0.0, busy - serverCpu - own)
        share = 100 * others / max(elapsed * (os.cpu_count() or 1), 1e-9)
        return serverCpu, share, listenOverflows() - self.overflows
