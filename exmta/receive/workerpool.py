"""
The main process's side of worker processes (C{twistd exmta --workers
N}): starting them on the listening sockets, relaying their logs, counts
and discard notifications, adopting the spool part of each one that ends
(L{exmta.queue.spool.Spool.adoptPart}), starting again one that died, and
replacing them all when the configuration is reloaded.  The worker's
side, and what the two say to each other, is L{exmta.worker}: each worker
is a whole MTA for the messages it accepts, queued in its own spool part
and sent by its own queue manager.

The main process binds the sockets, and stops accepting on them once a
worker is ready (L{exmta.receive.listener.ReceiveService.accepting}): it
keeps the queue folder's own messages (DSNs it made, parts adopted), the
admin endpoint and the resource monitor; the workers run the sessions
and the sends of what they accepted.  Measured (bench/RESULTS.rst), that
split is what makes workers pay: a main process that accepted too spent
its one thread on both.  Should no worker be ready (all died, or a
reload's new ones are still starting), the main process accepts again
meanwhile.

A worker's part is numbered by its row in the connection counts, so a
part is never used by two live workers; the part of a worker that ended
is adopted before its row is given to another, and when the server stops
the parts stay on disk and the next start adopts them.

Why inherited sockets and not C{SO_REUSEPORT}: with one socket shared by
every worker, the kernel gives a connection to whichever worker accepts
first, so a busy worker takes fewer; C{SO_REUSEPORT}
deals connections out by a hash, whatever each worker's load, loses
those waiting on the socket of a worker that dies, and lets any process
of the same user bind the port too.
"""

import json
import os
import signal
import site
import sys

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, eventFromJSON, globalLogPublisher

import exmta
from exmta import serverlog
from exmta.errors import ConfigError
from exmta.queue.spool import ADMIN_SOCKET, partPath

# A worker told to stop at once (its standard input closed) that has not
# ended after this long is killed.
STOP_GRACE = 10.0
# A worker that ends within this long of its start is started again only
# after a pause, doubled each time up to the longest.
SHORT_LIFE = 10.0
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 60.0

_CHANNEL = 3
# The most discard notifications one answer to a worker's XQDISCARD holds:
# the line must fit the worker's LineOnlyReceiver.MAX_LENGTH (16384).
WORKER_DISCARDS = 500
# The most workers: each has up to three rows (its own, a reload's new
# generation's, a draining one's), and a row is a spool part, 1 to 255.
MAX_WORKERS = 85


class _WorkerProcess(ProcessProtocol):
    """
    One worker, as its main process sees it.
    """

    log = Logger()

    def __init__(self, pool, number, row):
        self.pool = pool
        self.number = number
        self.row = row
        self.ready = False
        self.draining = False
        self.ended = Deferred()
        self.startedAt = pool.reactor.seconds()
        self._pending = {}

    def childDataReceived(self, descriptor, data):
        lines = (self._pending.pop(descriptor, b"") + data).split(b"\n")
        if lines[-1]:
            self._pending[descriptor] = lines[-1]
        for line in lines[:-1]:
            if descriptor == _CHANNEL:
                self._told(line)
            elif line.strip():
                self.log.warn(
                    "worker {number} wrote: {line}",
                    number=self.number,
                    line=line.decode("utf-8", "replace"),
                )

    def _told(self, line):
        kind, _, text = line.partition(b" ")
        try:
            if kind == b"S":
                self._discardDue(text.decode("ascii"))
            elif kind == b"D":
                self._discards(text.decode("ascii"))
            elif kind == b"R":
                self.ready = True
                self.pool._acceptWhileNoWorkerIs()
            elif kind == b"M":
                if self.pool.countsReceived is not None:
                    self.pool.countsReceived(json.loads(text))
            elif kind == b"L":
                event = eventFromJSON(text.decode("utf-8"))
                level = event.get("log_level")
                event["log_system"] = "{}#{} worker {}".format(
                    event.get("log_namespace", "-"), getattr(level, "name", "-"), self.number
                )
                globalLogPublisher(event)
        except Exception:
            self.log.failure(
                "cannot understand worker {number}: {line!r}", number=self.number, line=line[:200]
            )

    def _discardDue(self, text):
        """
        The worker's queue made a discard notification for a shadow
        server: the main process holds them all (L{exmta.queue.shadow}).
        """
        server, _, shadowId = text.partition(" ")
        discards = self.pool.receive.factory.shadowDiscards
        if discards is not None:
            discards.add(server, shadowId)

    def _discards(self, server):
        """
        Answer a worker's XQDISCARD with the discard notifications due to
        C{server}: as many as its line may hold.
        """
        discards = self.pool.receive.factory.shadowDiscards
        taken = [] if discards is None else discards.take(server, WORKER_DISCARDS)
        self.transport.write(b" ".join([b"D", *(i.encode("ascii") for i in taken)]) + b"\n")

    def processEnded(self, reason):
        self.pool._ended(self, reason)
        self.ended.callback(None)

    def signal(self, name):
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass


class WorkerPool(service.Service):
    """
    Worker processes sharing the listening sockets of a
    L{exmta.receive.listener.ReceiveService}, each with its spool part.

    @ivar workers: the running L{_WorkerProcess}es, draining ones included.
    @ivar countsReceived: called with the counts each C{M} line of a worker
        carries (L{exmta.metrics.observers.CountRelay}), or L{None}.
    """

    countsReceived = None

    log = Logger()

    def __init__(self, count, receive, spool, connections, organization, serverName, reactor):
        """
        @param count: how many workers.
        @param receive: the L{exmta.receive.listener.ReceiveService} whose
            sockets they accept on.
        @param spool: the L{exmta.queue.spool.Spool} of the queue folder,
            which adopts their parts.
        @param connections: the L{exmta.receive.limits.ConnectionCounts}
            they share; row 0 is the main process's.
        @param organization: the L{exmta.config.model.Organization} this
            process runs under; workers run on its org.ini text (not on the
            file, which may have changed since).
        @param serverName: the TransportServer they are part of.
        """
        self.count = count
        self.receive = receive
        self.spool = spool
        self.connections = connections
        self.serverName = serverName
        self.reactor = reactor
        self.workers = []
        self._numbers = iter(range(1, sys.maxsize))
        self._pause = FIRST_PAUSE
        self._restarts = []
        self._snapshot = None
        self._takeSnapshot(organization)
        self._pressure = None

    def partAdminSockets(self):
        """
        @return: the paths of the admin sockets of the live workers' spool
            parts (those that have said they are ready, draining ones
            included): each serves the admin protocol over its part.
        """
        return [
            os.path.join(partPath(self.spool.path, w.row), ADMIN_SOCKET)
            for w in self.workers
            if w.ready
        ]

    def setBackPressure(self, level):
        """
        Tell every worker, and those started from now on, the server's
        back pressure level (L{exmta.monitor}).
        """
        self._pressure = level
        for worker in self.workers:
            worker.transport.write(b"pressure " + level.encode("ascii") + b"\n")

    def _takeSnapshot(self, organization):
        """
        Keep the org.ini text of C{organization} in an in-memory file the
        workers started from now on read.
        """
        descriptor = os.memfd_create("exmta-org.ini")
        text = organization.text.encode("utf-8")
        view = memoryview(text)
        while view:
            view = view[os.write(descriptor, view) :]
        if self._snapshot is not None:
            os.close(self._snapshot[1])
        self._snapshot = (organization.path, descriptor)

    def startService(self):
        super().startService()
        for _ in range(self.count):
            self._start()

    def replace(self, organization):
        """
        Start new workers, on C{organization} (what this process now runs
        under) and the sockets listening now, and drain the old ones.
        """
        self._takeSnapshot(organization)
        for restart in self._restarts:
            if restart.active():
                restart.cancel()
        self._restarts = []
        old = [w for w in self.workers if not w.draining]
        for worker in old:
            worker.draining = True
        self._acceptWhileNoWorkerIs()
        for _ in range(self.count):
            self._start()
        for worker in old:
            self.log.info("draining worker {number}", number=worker.number)
            worker.transport.write(b"drain\n")

    def stopService(self):
        super().stopService()
        for restart in self._restarts:
            if restart.active():
                restart.cancel()
        self._restarts = []
        if not self.workers:
            self._closeSnapshot()
            return None
        # "stop": no new sessions, and the messages waiting for their
        # commit still get it and their 250, as in one process.
        for worker in self.workers:
            worker.transport.write(b"stop\n")
        kill = self.reactor.callLater(STOP_GRACE, self._kill)
        ended = DeferredList([w.ended for w in self.workers])
        ended.addBoth(lambda result: kill.active() and kill.cancel())
        ended.addBoth(lambda result: self._closeSnapshot())
        return ended

    def _closeSnapshot(self):
        if self._snapshot is not None:
            os.close(self._snapshot[1])
            self._snapshot = None

    def _acceptWhileNoWorkerIs(self):
        self.receive.accepting = not any(w.ready and not w.draining for w in self.workers)

    def _kill(self):
        for worker in self.workers:
            self.log.warn("worker {number} did not stop; killing it", number=worker.number)
            worker.signal("KILL")

    def _freeRow(self):
        taken = {w.row for w in self.workers}
        for row in range(1, self.connections.rows):
            if row not in taken:
                return row
        return None

    def _start(self):
        row = self._freeRow()
        if row is None:
            # Reloads came faster than draining workers ended: end the
            # oldest now; its replacement starts when it has.
            oldest = next(w for w in self.workers if w.draining)
            oldest.transport.write(b"stop\n")
            oldest.ended.addCallback(lambda _: self.running and self._start())
            return
        number = next(self._numbers)
        worker = _WorkerProcess(self, number, row)
        childFDs = {0: "w", 1: "r", 2: "r", _CHANNEL: "r"}
        path, snapshot = self._snapshot
        arguments = [
            # Not "-m": as __main__ the module's classes would log under
            # that name.
            sys.executable, "-c", "import sys; from exmta.worker import main; sys.exit(main())",
            "--config", path,
            "--server", self.serverName,
            "--row", str(row),
            "--log-level", serverlog.level(),
        ]
        descriptor = _CHANNEL + 1
        childFDs[descriptor] = self.connections.fileno()
        arguments += ["--connections", str(descriptor)]
        descriptor += 1
        childFDs[descriptor] = snapshot
        arguments += ["--config-text", str(descriptor)]
        for port in self.receive.ports:
            descriptor += 1
            childFDs[descriptor] = port.fileno()
            arguments += ["--listen", str(descriptor)]
        environment = dict(os.environ)
        # The workers run the exmta this process runs: from a checkout
        # (twistd puts the current folder on the path), the checkout comes
        # first; an installed exmta is found where the interpreter looks.
        home = os.path.dirname(os.path.dirname(os.path.abspath(exmta.__file__)))
        if home not in site.getsitepackages():
            environment["PYTHONPATH"] = os.pathsep.join(
                [home] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
            )
        self.reactor.spawnProcess(
            worker, sys.executable, arguments, env=environment, childFDs=childFDs
        )
        self.workers.append(worker)
        if self._pressure is not None:
            worker.transport.write(b"pressure " + self._pressure.encode("ascii") + b"\n")
        self.log.info(
            "started receive worker {number} (pid {pid})",
            number=number,
            pid=worker.transport.pid,
        )

    def _ended(self, worker, reason):
        self.workers.remove(worker)
        if self.running:
            self._acceptWhileNoWorkerIs()
            # Nothing has the part open any more: its messages are the
            # main process's now.  When the server stops, the next start
            # adopts the parts.
            self._adopt(worker)
        # Its sessions ended with it.
        self.connections.clearRow(worker.row)
        status = reason.value
        how = (
            f"signal {signal.Signals(status.signal).name}"
            if getattr(status, "signal", None)
            else f"exit status {getattr(status, 'exitCode', '?')}"
        )
        if not self.running or worker.draining:
            log = self.log.info if status.exitCode == 0 else self.log.error
            log("receive worker {number} ended ({how})", number=worker.number, how=how)
            return
        lived = self.reactor.seconds() - worker.startedAt
        if lived >= SHORT_LIFE:
            self._pause = FIRST_PAUSE
            pause = 0
        else:
            pause, self._pause = self._pause, min(self._pause * 2, LONGEST_PAUSE)
        self.log.error(
            "receive worker {number} ended ({how}) after {lived:.1f} s; "
            "starting another in {pause:.0f} s",
            number=worker.number,
            how=how,
            lived=lived,
            pause=pause,
        )
        self._restarts = [r for r in self._restarts if r.active()]
        self._restarts.append(self.reactor.callLater(pause, self._startAgain))

    def _adopt(self, worker):
        try:
            self.spool.adoptPart(worker.row)
        except (ConfigError, OSError):
            self.log.failure(
                "cannot adopt the spool part of worker {number}; the next start will",
                number=worker.number,
            )

    def _startAgain(self):
        if self.running and sum(not w.draining for w in self.workers) < self.count:
            self._start()
