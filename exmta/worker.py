"""
A worker process of a transport server (C{twistd exmta --workers N}): a
whole MTA for the messages it accepts, so that sessions, commits and sends
run on more than one core.

The main process (L{exmta.receive.workerpool}) binds the listening sockets
and starts the workers with them; the kernel hands each new connection to
whichever worker accepts it first.  A worker runs the receive side
(connector choice, permissions, transport agents' receive events, message
checks) and queues what it accepts in its own spool part
(C{parts/<NN>/} of the queue folder, L{exmta.queue.spool}) with its own
group commits: its client hears 250 once the message is durable there.
Its own queue manager (L{exmta.queueside}) routes, sends and delivers
those messages, writes their DSNs and tracks them in the server's tracking
log, and its own admin endpoint (the protocol of L{exmta.admin}, on
C{admin.sock} in its part) shows and acts on them.  The main process
never sees them, unless the worker ends first: once its process has
ended, the main process adopts its part and delivers the rest
(L{exmta.queue.spool.Spool.adoptPart}).

Started by the main process, never by hand::

    python -c "from exmta.worker import main; main()" --config ORG \\
        --config-text FD --server NAME --connections FD --row N --listen FD ...

C{--row} is its row in the server's connection counts
(L{exmta.receive.limits}) and its part's number.

Its link to the main process:

  - file descriptor 3 carries lines to it: C{R} once the worker accepts
    on its sockets; C{M} and the metrics counted since the last
    (L{exmta.metrics.observers.CountRelay}), when the server serves
    metrics; C{L} and a log event (L{twisted.logger.eventAsJSON}), which
    the main process writes to its own log; C{D} and a TransportServer's
    name, an XQDISCARD (L{exmta.queue.shadow}) asking for its discard
    notifications; C{S}, a TransportServer's name and one of its queue
    ids, a discard notification due to it (the main process holds the
    server's notifications);
  - standard input carries lines from it: C{D} and the discard
    notifications taken, space separated, the answers to the C{D} asked,
    in order; C{drain}, stop accepting and end once the sessions have (a
    reload); C{stop}, stop accepting and end (the server stops);
    C{pressure} and a back pressure level, the server's level from now on
    (L{exmta.monitor}); its end (the main process died) stops the worker,
    as SIGTERM does.

A worker that ends stops accepting, lets the commits it began finish (those
clients hear 250), stops its queue manager (sends in progress end, their
recipients stay queued) and cuts the other sessions, whose clients send
again.

The worker runs on the org.ini text its main process runs under, handed
over in an in-memory file (C{--config-text}), not on the file on disk,
which may hold edits the main process has not applied or has refused.
The files org.ini names (TLS certificate and key, accounts, passwd-files)
are read when the worker starts.
"""

import argparse
import os
import signal
import socket
import sys
import weakref
from collections import deque

from twisted.internet import stdio
from twisted.internet.defer import Deferred, DeferredList, fail, inlineCallbacks, maybeDeferred
from twisted.internet.error import ReactorNotRunning
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    eventAsJSON,
    formatEventAsClassicLogText,
    globalLogBeginner,
)
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

from exmta import serverlog
from exmta.admin.commands import AdminCommands
from exmta.admin.server import AdminService
from exmta.config import storageFor
from exmta.config.monitoring import resourceMonitoringOf
from exmta.errors import ConfigError
from exmta.interfaces import IMessageSubmission
from exmta.metrics.observers import CountRelay, ReceiveObserver
from exmta.monitor.levels import LEVELS, BackPressure
from exmta.protocollog import ProtocolLog
from exmta.queue.shadow import discardDue
from exmta.queue.spool import Spool, partPath, queueInstance
from exmta.queueside import buildQueueSide, configure
from exmta.receive.limits import ConnectionCounts
from exmta.receive.listener import ReceiveFactory
from exmta.tracking import MessageTrackingLog, searchTrackingLog

# How often a draining worker looks whether its last session has ended.
DRAIN_CHECK_INTERVAL = 1.0
# The name of a worker's admin socket, in its part.
ADMIN_SOCKET = "admin.sock"


class MainProcessLink(LineOnlyReceiver):
    """
    Standard input (orders from the main process) and descriptor 3 (what
    the worker tells it).
    """

    delimiter = b"\n"
    worker = None

    def lineReceived(self, line):
        if self.worker is None:
            return
        order, _, rest = line.strip().partition(b" ")
        if order == b"drain":
            self.worker.drain()
        elif order == b"stop":
            self.worker.stopNow()
        elif order == b"D":
            self.worker.discards.answered(rest.decode("ascii", "replace").split())
        elif order == b"pressure":
            level = rest.decode("ascii", "replace")
            if level in LEVELS:
                self.worker.backPressure.level = level

    def connectionLost(self, reason):
        if self.worker is not None:
            self.worker.discards.abandon()
            self.worker.stopNow()

    @property
    def up(self):
        return self.transport is not None and not self.transport.disconnected

    def send(self, kind, data):
        """
        Tell the main process one line: C{kind} and C{data} (bytes without
        a line end).
        """
        if self.up:
            self.transport.write(kind + b" " + data + b"\n")


class MainProcessGone(Exception):
    """
    The main process cannot answer: it has ended.
    """


@implementer(IMessageSubmission)
class PartSubmission:
    """
    The worker's sessions queue into its spool part; a stopping worker
    waits for the commits begun, so that those clients hear their 250.
    """

    def __init__(self, spool):
        self.spool = spool
        self._pending = set()

    def enqueue(self, envelope, session, message):
        waiter = Deferred()
        self._pending.add(waiter)

        def done(result):
            self._pending.discard(waiter)
            waiter.callback(None)
            return result

        return self.spool.enqueue(envelope, session, message).addBoth(done)

    def whenCommitted(self):
        """
        @return: a Deferred firing once the commits begun so far are done.
        """
        return DeferredList(list(self._pending))


class WorkerDiscards:
    """
    A worker's side of the discard notifications of shadow redundancy
    (L{exmta.queue.shadow}), which the main process holds for the whole
    server: the server's queue instance, read from the queue folder;
    XQDISCARD, which asks the main process; and the notifications the
    worker's own queue manager makes, which it tells the main process.

    Notifications lost with a worker or a main process that ends (taken
    for a worker that ends before reading the answer, told to a main
    process that is gone) leave their shadows on the shadow server until
    ShadowMessageAutoDiscardInterval: no message is lost.
    """

    def __init__(self, queuePath, link):
        self.instance = queueInstance(queuePath)
        self.link = link
        self._asked = deque()

    def recorded(self, queued):
        """
        The worker's queue recorded C{queued}: tell the main process a
        discard notification it makes, if any.
        """
        due = discardDue(queued)
        if due is not None:
            self.link.send(b"S", " ".join(due).encode("ascii"))

    def take(self, server):
        """
        @return: a Deferred firing with the queue ids taken for C{server}.
        """
        if not self.link.up:
            return fail(MainProcessGone("the main process is gone"))
        asked = Deferred()
        self._asked.append(asked)
        self.link.send(b"D", server.encode("ascii"))
        return asked

    def answered(self, queueIds):
        if self._asked:
            self._asked.popleft().callback(queueIds)

    def abandon(self):
        asked, self._asked = self._asked, deque()
        for waiting in asked:
            waiting.errback(MainProcessGone("the main process is gone"))


class WorkerReceiveFactory(ReceiveFactory):
    """
    A L{ReceiveFactory} that knows its open sessions, so a draining worker
    knows when to end.
    """

    def __init__(self, *arguments, **keywords):
        super().__init__(*arguments, **keywords)
        self.sessions = weakref.WeakSet()

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.sessions.add(protocol)
        return protocol

    def hasSessions(self):
        return any(
            p.transport is not None and p.transport.connected for p in list(self.sessions)
        )


class Worker:
    """
    One transport server's receive side and queue side, over a spool part
    and on sockets it was given.
    """

    log = Logger()

    def __init__(self, organization, serverName, part, listening, connections, link, reactor):
        """
        @param part: its spool part's number.
        @param listening: the descriptors of the listening sockets.
        @param connections: the server's shared L{ConnectionCounts}.
        @param link: the L{MainProcessLink}, connected.
        @raise ConfigError: as the main process would at its start, or its
            part is in use.
        """
        self.reactor = reactor
        configuration = configure(organization, serverName, reactor)
        server = configuration.transportServer
        self.link = link
        # The main process's resource monitor sets the level.
        self.backPressure = BackPressure(resourceMonitoringOf(organization, server.name))
        # The server's metrics count what its workers answer and send too.
        self.counts = (
            CountRelay(lambda data: link.send(b"M", data), reactor)
            if server.name in organization.monitorings
            else None
        )
        # Its own group commits, with a syncfs each: measured against an
        # fsync per file (bench/RESULTS.rst, fifth pass), two processes'
        # syncfs streams accepted faster.
        self.spool = Spool.open(partPath(server.queueDatabasePath, part), reactor, part=part)
        self.tracking = (
            MessageTrackingLog(server.messageTrackingLogPath, reactor)
            if server.messageTrackingLogEnabled
            else None
        )
        self.manager = buildQueueSide(
            configuration, self.spool, reactor, tracking=self.tracking, metrics=self.counts,
            connections=connections,
        )
        self.discards = self.manager.shadows.discards = WorkerDiscards(
            server.queueDatabasePath, link
        )
        self.submission = PartSubmission(self.spool)
        self.factory = WorkerReceiveFactory(
            organization,
            server,
            configuration.portals,
            self.submission,
            configuration.recipients,
            configuration.tlsOptions,
            reactor,
            protocolLog=ProtocolLog(server.receiveProtocolLogPath, "RECV", reactor),
            tracking=self.tracking,
            agents=configuration.agents,
            connections=connections,
            backPressure=self.backPressure,
            observer=None if self.counts is None else ReceiveObserver(self.counts.count),
        )
        self.factory.shadowDiscards = self.discards

        def searchTracking(**filters):
            return deferToThreadPool(
                reactor, reactor.getThreadPool(), searchTrackingLog,
                server.messageTrackingLogPath, **filters
            )

        # Reloads and the resource monitor are the main process's.
        self.admin = AdminService(
            os.path.join(self.spool.path, ADMIN_SOCKET),
            AdminCommands(self.manager, searchTracking=searchTracking),
            reactor,
        )
        self._listening = listening
        self.ports = []
        self._stopping = False
        self._drainCheck = None

    def start(self):
        """
        Start the queue side and the admin endpoint, then accept.

        @raise ConfigError: the admin socket cannot be made.
        """
        self.link.worker = self
        self.manager.startService()
        self.admin.startService()
        for descriptor in self._listening:
            probe = socket.socket(fileno=descriptor)
            family = probe.family
            probe.detach()
            self.ports.append(self.reactor.adoptStreamPort(descriptor, family, self.factory))
            # adoptStreamPort took a copy.
            os.close(descriptor)
        self.link.send(b"R", b"")
        self.log.info(
            "receive worker accepting on {addresses}, queueing in {part}",
            addresses=", ".join(f"{p.getHost().host}:{p.getHost().port}" for p in self.ports),
            part=self.spool.path,
        )
        self.reactor.addSystemEventTrigger("before", "shutdown", self._stop)
        self.reactor.addSystemEventTrigger("after", "shutdown", self._close)

    def drain(self):
        """
        Stop accepting; end once the last session has.
        """
        if self._drainCheck is not None or self._stopping:
            return
        self.log.info("draining: no longer accepting, ending after the open sessions")
        self._stopListening()
        self._drainCheck = LoopingCall(self._endIfIdle)
        self._drainCheck.clock = self.reactor
        self._drainCheck.start(DRAIN_CHECK_INTERVAL, now=True)

    def _endIfIdle(self):
        if not self.factory.hasSessions():
            self._drainCheck.stop()
            self.stopNow()

    def stopNow(self):
        if not self._stopping:
            self._stopping = True
            try:
                self.reactor.stop()
            except ReactorNotRunning:
                pass  # SIGTERM came first

    @inlineCallbacks
    def _stop(self):
        """
        Before the reactor stops (and cuts the sessions): no new sessions,
        the commits begun finish, the queue manager stops.
        """
        self._stopListening()
        yield self.submission.whenCommitted()
        yield maybeDeferred(self.admin.stopService)
        yield self.manager.stopService()
        if self.counts is not None:
            self.counts.flush()

    def _stopListening(self):
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()

    def _close(self):
        self.manager.remoteDelivery.close()
        self.spool.close()
        if self.tracking is not None:
            self.tracking.close()


class _LinkObserver:
    """
    Sends log events to the main process, and to standard error once the
    link is gone.
    """

    def __init__(self, link):
        self.link = link

    def __call__(self, event):
        if self.link.up:
            self.link.send(b"L", eventAsJSON(event).encode("utf-8", "backslashreplace"))
        else:
            sys.stderr.write(formatEventAsClassicLogText(event))


def _organization(path, descriptor):
    """
    The organization the main process runs under: its org.ini text, from
    the in-memory file it handed over, read as the file at C{path}.
    """
    size = os.fstat(descriptor).st_size
    # pread: the main process and the other workers share the offset.
    text = os.pread(descriptor, size, 0).decode("utf-8")
    os.close(descriptor)
    return storageFor(path).organization(text)


def main(argv=None, reactor=None):
    parser = argparse.ArgumentParser(prog="exmta worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--config-text", type=int, required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--row", type=int, required=True)
    parser.add_argument("--listen", type=int, action="append", default=[])
    parser.add_argument("--log-level", choices=serverlog.LEVELS, default="info")
    arguments = parser.parse_args(argv)
    serverlog.setLevel(arguments.log_level)
    if reactor is None:
        from twisted.internet import reactor
    # The main process reloads on SIGHUP and replaces its workers; a
    # terminal's hangup reaches the whole process group.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    link = MainProcessLink()
    stdio.StandardIO(link, stdin=0, stdout=3, reactor=reactor)
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                _LinkObserver(link),
                [LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(arguments.log_level))],
            )
        ],
        redirectStandardIO=False,
    )
    try:
        worker = Worker(
            _organization(arguments.config, arguments.config_text),
            arguments.server,
            arguments.row,
            arguments.listen,
            ConnectionCounts.attach(arguments.connections, arguments.row),
            link,
            reactor,
        )
        worker.start()
    except ConfigError as error:
        sys.stderr.write(f"exmta worker: {error}\n")
        return 1
    reactor.run()
    return 0
