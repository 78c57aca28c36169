"""
A receive worker: a process that accepts mail on the listening sockets of
its main process (C{twistd exmta --workers N}), so that SMTP sessions run
on more than one core.

The main process (L{exmta.receive.workerpool}) binds the sockets and
starts the workers with them; the kernel hands each new connection to
whichever process accepts it first.  A worker runs the receive side only
(connector choice, permissions, transport agents' receive events,
message checks) and writes each accepted message into the main process's
queue folder with its own L{exmta.queue.spool.SpoolWriter}, durably
before its 250, exactly as the main process would.  The queue manager,
the send side, local delivery and the admin endpoint stay in the main
process, which adopts what the workers wrote.

Started by the main process, never by hand::

    python -c "from exmta.receive.worker import main; main()" --config ORG --server NAME \\
        --connections FD --row N --listen FD ...

Its link to the main process:

  - file descriptor 3 carries lines to it: C{R} once the worker accepts
    on its sockets; C{Q} and the C{.json} document of a message just made
    durable (sent before the client's 250); C{L} and a log event
    (L{twisted.logger.eventAsJSON}), which the main process writes to its
    own log;
  - on standard input, the line C{drain} asks it to stop accepting and to
    end once its sessions have; the end of standard input (the main
    process stopped or died) stops it at once, as SIGTERM does.

A worker stopped at once finishes the queue writes it started; sessions
that had not heard 250 are cut, and their clients send again.
"""

import argparse
import os
import signal
import socket
import sys
import weakref

from twisted.internet import stdio
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

from exmta.config import loadOrganization
from exmta.errors import ConfigError
from exmta.interfaces import IMessageSubmission
from exmta.protocollog import ProtocolLog
from exmta.queue.spool import SpoolWriter, encodeQueued
from exmta.receive.limits import ConnectionCounts
from exmta.receive.listener import ReceiveFactory
from exmta.service import configure
from exmta.tracking import MessageTrackingLog

# How often a draining worker looks whether its last session has ended.
DRAIN_CHECK_INTERVAL = 1.0


class MainProcessLink(LineOnlyReceiver):
    """
    Standard input (orders from the main process) and descriptor 3 (what
    the worker tells it).
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 24

    worker = None

    def lineReceived(self, line):
        if line.strip() == b"drain" and self.worker is not None:
            self.worker.drain()

    def connectionLost(self, reason):
        if self.worker is not None:
            self.worker.stopNow()

    @property
    def up(self):
        return self.transport is not None and not self.transport.disconnected

    def send(self, kind, text):
        if self.up:
            self.transport.write(kind + b" " + text.encode("utf-8", "backslashreplace") + b"\n")


@implementer(IMessageSubmission)
class WorkerSubmission:
    """
    Writes a message into the queue folder, then tells the main process,
    whose queue adopts it (L{exmta.queue.spool.Spool.adopt}).  Should the
    worker die between the two, the main process finds the message when it
    sees the worker end (L{exmta.queue.spool.Spool.adoptWritten}).
    """

    def __init__(self, writer, link):
        self.writer = writer
        self.link = link

    def enqueue(self, envelope, session, message):
        return self.writer.write(envelope, session, message).addCallback(self._written)

    def _written(self, queued):
        self.link.send(b"Q", encodeQueued(queued).decode("utf-8"))
        return queued.queueId


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
        configuration = configure(organization, serverName, reactor)
        server = configuration.transportServer
        self.writer = SpoolWriter(server.queueDatabasePath, reactor)
        self.link = link
        self.tracking = (
            MessageTrackingLog(server.messageTrackingLogPath, reactor)
            if server.messageTrackingLogEnabled
            else None
        )
        self.factory = WorkerReceiveFactory(
            organization,
            server,
            configuration.portals,
            WorkerSubmission(self.writer, self.link),
            configuration.recipients,
            configuration.tlsOptions,
            reactor,
            protocolLog=ProtocolLog(server.receiveProtocolLogPath, "RECV", reactor),
            tracking=self.tracking,
            agents=configuration.agents,
            connections=connections,
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
        self.link.send(b"R", "")
        self.log.info(
            "receive worker accepting on {addresses}",
            addresses=", ".join(f"{p.getHost().host}:{p.getHost().port}" for p in self.ports),
        )
        self.reactor.addSystemEventTrigger("before", "shutdown", self._stopListening)
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

    def _stopListening(self):
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()

    def _close(self):
        # Blocks until the queue writes asked for are durable.
        self.writer.close()
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
            self.link.send(b"L", eventAsJSON(event))
        else:
            sys.stderr.write(formatEventAsClassicLogText(event))


def main(argv=None, reactor=None):
    parser = argparse.ArgumentParser(prog="exmta receive worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--row", type=int, required=True)
    parser.add_argument("--listen", type=int, action="append", default=[])
    arguments = parser.parse_args(argv)
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
                _LinkObserver(link), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)]
            )
        ],
        redirectStandardIO=False,
    )
    try:
        worker = Worker(
            loadOrganization(arguments.config),
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
