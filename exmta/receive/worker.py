"""
A receive worker: a process that accepts mail on the listening sockets of
its main process (C{twistd exmta --workers N}), so that SMTP sessions run
on more than one core.

The main process (L{exmta.receive.workerpool}) binds the sockets and
starts the workers with them; the kernel hands each new connection to
whichever worker accepts it first.  A worker runs the receive side
(connector choice, permissions, transport agents' receive events,
message checks), writes each accepted message's files into the queue
folder's C{tmp/} and asks the main process to commit them: they join its
group commit (L{exmta.queue.spool.Spool.commitWritten}), so the server
makes one stream of syncs however many workers it has, and the worker's
client hears 250 only once the main process says the message is durable
and queued.  The queue manager, the send side, local delivery and the
admin endpoint stay in the main process: a worker builds the receive
side alone (L{exmta.receive.configuration}) and never loads the send side.

Started by the main process, never by hand::

    python -c "from exmta.receive.worker import main; main()" --config ORG \\
        --config-text FD --server NAME --connections FD --row N --listen FD ...

Its link to the main process:

  - file descriptor 3 carries lines to it: C{R} once the worker accepts
    on its sockets; C{C} and the C{.json} document of a message whose
    files are written, to commit; C{M} and the metrics counted since the
    last (L{exmta.metrics.observers.CountRelay}), when the server serves
    metrics; C{L} and a log event
    (L{twisted.logger.eventAsJSON}), which the main process writes to its
    own log; C{D} and a TransportServer's name, an XQDISCARD
    (L{exmta.queue.shadow}) asking for its discard notifications;
  - standard input carries lines from it: C{K} or C{F} and a queue id,
    the message is queued or could not be (451 to the client); C{D} and
    the discard notifications taken, space separated, the answers to the
    C{D} asked, in order; C{drain},
    stop accepting and end once the sessions have (a reload); C{stop},
    stop accepting and end once the commits asked for are answered (the
    server stops); C{pressure} and a back pressure level, the server's
    level from now on (L{exmta.monitor}); its end (the main process died)
    stops the worker at once, as SIGTERM does.

The worker runs on the org.ini text its main process runs under, handed
over in an in-memory file (C{--config-text}), not on the file on disk,
which may hold edits the main process has not applied or has refused.
The files org.ini names (TLS certificate and key, accounts, passwd-files)
are read when the worker starts.

Sessions of a worker stopped at once that had not heard 250 are cut, and
their clients send again; files it left in C{tmp/} are removed at the
queue's next open.
"""

import argparse
import os
import signal
import socket
import sys
import weakref
from collections import deque

from twisted.internet import stdio
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ReactorNotRunning
from twisted.internet.task import LoopingCall
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
from exmta.auth.credentials import CredentialStore, checkCredentials
from exmta.config import storageFor
from exmta.config.servers import chooseServer
from exmta.config.monitoring import resourceMonitoringOf
from exmta.errors import ConfigError
from exmta.interfaces import IMessageSubmission
from exmta.metrics.observers import CountRelay, ReceiveObserver
from exmta.monitor.levels import LEVELS, BackPressure
from exmta.protocollog import ProtocolLog
from exmta.queue.spool import encodeQueued, newQueuedMessage, queueInstance, writeUnsynced
from exmta.receive.configuration import configureReceive
from exmta.receive.limits import ConnectionCounts
from exmta.receive.listener import ReceiveFactory
from exmta.tracking import MessageTrackingLog

# How often a draining worker looks whether its last session has ended.
DRAIN_CHECK_INTERVAL = 1.0


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
        order, _, queueId = line.strip().partition(b" ")
        if order == b"drain":
            self.worker.drain()
        elif order == b"stop":
            self.worker.stopAfterCommits()
        elif order in (b"K", b"F"):
            self.worker.submission.answered(order, queueId.decode("ascii", "replace"))
        elif order == b"D":
            self.worker.discards.answered(queueId.decode("ascii", "replace").split())
        elif order == b"pressure":
            level = queueId.decode("ascii", "replace")
            if level in LEVELS:
                self.worker.backPressure.level = level

    def connectionLost(self, reason):
        if self.worker is not None:
            self.worker.submission.abandon()
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


class QueueCommitRefused(Exception):
    """
    The main process could not commit a message the worker wrote.
    """


@implementer(IMessageSubmission)
class WorkerSubmission:
    """
    Writes a message's files into the queue folder's C{tmp/}, unsynced,
    and asks the main process to commit them
    (L{exmta.queue.spool.Spool.commitWritten}): the whole server's new
    messages share its group commits.  The Deferred fires when the main
    process answers that the message is durable and queued.
    """

    # Called once every commit asked for is answered (set by a stop).
    onIdle = None

    def __init__(self, queuePath, link, clock):
        self.queuePath = queuePath
        self.link = link
        self.clock = clock
        self._waiting = {}

    def enqueue(self, envelope, session, message):
        if not self.link.up:
            return fail(QueueCommitRefused("the main process is gone"))
        queued = newQueuedMessage(envelope, session, message, self.clock)
        try:
            writeUnsynced(self.queuePath, queued, message)
        except OSError:
            return fail()
        committed = self._waiting[queued.queueId] = Deferred()
        self.link.send(b"C", encodeQueued(queued))
        return committed

    def answered(self, answer, queueId):
        waiting = self._waiting.pop(queueId, None)
        if waiting is None:
            return
        if answer == b"K":
            waiting.callback(queueId)
        else:
            waiting.errback(QueueCommitRefused(f"the main process could not queue {queueId}"))
        if not self._waiting and self.onIdle is not None:
            self.onIdle()

    @property
    def waiting(self):
        """
        Whether a commit asked for is still unanswered.
        """
        return bool(self._waiting)

    def abandon(self):
        """
        The main process is gone: no commit asked for will be answered.
        """
        waiting, self._waiting = self._waiting, {}
        for queueId, committed in waiting.items():
            committed.errback(QueueCommitRefused(f"the main process is gone; {queueId} not queued"))


class WorkerDiscards:
    """
    A receive worker's view of the discard notifications of shadow
    redundancy (L{exmta.queue.shadow}): the queue's instance, read from its
    folder, and XQDISCARD, which asks the main process, their holder.

    Notifications the main process took for a worker that ends before it
    reads the answer are lost: their shadows on the shadow server wait for
    ShadowMessageAutoDiscardInterval, and no message is lost.
    """

    def __init__(self, queuePath, link):
        self.instance = queueInstance(queuePath)
        self.link = link
        self._asked = deque()

    def take(self, server):
        """
        @return: a Deferred firing with the queue ids taken for C{server}.
        """
        if not self.link.up:
            return fail(QueueCommitRefused("the main process is gone"))
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
            waiting.errback(QueueCommitRefused("the main process is gone"))


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
    The receive side of one transport server, on sockets it was given.
    """

    log = Logger()

    def __init__(self, organization, serverName, listening, connections, link, reactor):
        """
        @param listening: the descriptors of the listening sockets.
        @param connections: the server's shared L{ConnectionCounts}.
        @param link: the L{MainProcessLink}, connected.
        @raise ConfigError: as the main process would at its start.
        """
        self.reactor = reactor
        transportServer = chooseServer(organization, serverName)
        # Checked as a starting server checks it, so that a worker started
        # again on an unsafe store refuses and the main process takes its
        # sockets back; nothing of it is kept.
        checkCredentials(organization, CredentialStore.open(organization.credentialStorePath))
        configuration = configureReceive(organization, transportServer, reactor)
        server = configuration.server
        self.link = link
        # The main process's resource monitor sets the level.
        self.backPressure = BackPressure(resourceMonitoringOf(organization, server.name))
        # The server's metrics count what its workers answer too.
        self.counts = (
            CountRelay(lambda data: link.send(b"M", data), reactor)
            if server.name in organization.monitorings
            else None
        )
        self.submission = WorkerSubmission(server.queueDatabasePath, link, reactor)
        self.tracking = (
            MessageTrackingLog(server.messageTrackingLogPath, reactor)
            if server.messageTrackingLogEnabled
            else None
        )
        self.factory = WorkerReceiveFactory(
            organization,
            server,
            configuration.portals,
            self.submission,
            configuration.resolver,
            configuration.tlsOptions,
            reactor,
            protocolLog=ProtocolLog(server.receiveProtocolLogPath, "RECV", reactor),
            tracking=self.tracking,
            agents=configuration.agents,
            connections=connections,
            backPressure=self.backPressure,
            observer=None if self.counts is None else ReceiveObserver(self.counts.count),
        )
        self.discards = self.factory.shadowDiscards = WorkerDiscards(
            server.queueDatabasePath, link
        )
        self._listening = listening
        self.ports = []
        self._stopping = False
        self._drainCheck = None

    def start(self):
        self.link.worker = self
        for descriptor in self._listening:
            probe = socket.socket(fileno=descriptor)
            family = probe.family
            probe.detach()
            self.ports.append(self.reactor.adoptStreamPort(descriptor, family, self.factory))
            # adoptStreamPort took a copy.
            os.close(descriptor)
        self.link.send(b"R", b"")
        self.log.info(
            "receive worker accepting on {addresses}",
            addresses=", ".join(f"{p.getHost().host}:{p.getHost().port}" for p in self.ports),
        )
        self.reactor.addSystemEventTrigger("before", "shutdown", self._stopListening)
        self.reactor.addSystemEventTrigger("after", "shutdown", self._close)

    def stopAfterCommits(self):
        """
        Stop accepting, and end as soon as the main process has answered
        every commit asked for (those clients hear their 250); the other
        sessions are cut, as a single process's are when it stops.
        """
        self._stopListening()
        if self.submission.waiting:
            self.submission.onIdle = self.stopNow
        else:
            self.stopNow()

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
            if self.counts is not None:
                self.counts.flush()
            try:
                self.reactor.stop()
            except ReactorNotRunning:
                pass  # SIGTERM came first

    def _stopListening(self):
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()

    def _close(self):
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
    parser = argparse.ArgumentParser(prog="exmta receive worker")
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
            arguments.listen,
            ConnectionCounts.attach(arguments.connections, arguments.row),
            link,
            reactor,
        )
    except ConfigError as error:
        sys.stderr.write(f"exmta worker: {error}\n")
        return 1
    worker.start()
    reactor.run()
    return 0
