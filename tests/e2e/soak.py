"""
The crash soak of issue 11: mail is received and relayed to a smart host on
loopback while the server is killed with SIGKILL and started again on the
same queue, cycle after cycle; at the end the smart host's record is
compared with what the clients heard 250 for.

  - L{Sink}: the smart host, an SMTP server (asyncio, in a thread of this
    process, which nobody kills) that keeps in memory how many times each
    message arrived and whether it arrived whole.
  - L{Load}: client threads (smtplib) sending messages that carry a unique
    C{X-Soak-Id}, ten to a session, noting which heard 250 at the end of
    data.
  - L{soak}: one run, with or without receive workers; it returns a
    L{Report}, the accounting.

Used by campaigns/crashsoak.py (20 kills about 20 s apart, in both modes)
and tests/e2e/test_crash_soak.py (3 kills, each after a number of messages
acknowledged).
"""

import asyncio
import concurrent.futures
import hashlib
import itertools
import os
import re
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.e2e.harness import (
    REPLY_TIMEOUT,
    STARTUP_TIMEOUT,
    ServerProcess,
    awaitEnded,
    freePort,
    writeOrganization,
)

# The server relays everything it accepts on AnonymousRelay to the sink.
# A relay cut by a kill is tried again as soon as the server is back; the
# short retry intervals only matter should the sink answer slowly.
ORGANIZATION = r"""
[TransportServer Soak]
Fqdn = soak.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageTrackingLogPath = var/tracking
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01
OutboundConnectionFailureRetryInterval = 00:00:01

[AcceptedDomain fabrikam.com]

[ReceiveConnector AnonymousRelay]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8
MaxInboundConnectionPerSource = unlimited

[ADPermission]
Identity = AnonymousRelay
User = NT AUTHORITY\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

[SendConnector ToSink]
AddressSpaces = *
SmartHosts = 127.0.0.1
Port = {sink}
DNSRoutingEnabled = $false
"""

# A remote sender: a notification about a soak message would be relayed
# to the sink too, where it shows as a delivery without an id.
SENDER = "soak@contoso.com"
RECIPIENT = "sink@contoso.com"
# Messages per client session: sessions end and start all the time, and a
# kill finds some between messages and some inside one.
SESSION_MESSAGES = 10
POLL = 0.05
MARKER = re.compile(rb"^X-Soak-Id: (\S+)\r$", re.M)


def bodyFor(ident):
    """
    The body of message C{ident}, about 800 octets that the sink can check
    without having been told what was sent.
    """
    digest = hashlib.sha256(ident.encode("ascii")).hexdigest()
    return b"".join(f"{line:02d} {digest}\r\n".encode("ascii") for line in range(12))


def messageFor(ident):
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: soak {ident}\r\n"
        f"Message-ID: <{ident}@soak.contoso.com>\r\nX-Soak-Id: {ident}\r\n\r\n"
    )
    return head.encode("ascii") + bodyFor(ident)


class Sink:
    """
    A smart host that takes every message (ESMTP without extensions to
    speak of: 250 to everything but DATA and QUIT) and counts it, under
    its C{X-Soak-Id}, when the end of data has arrived and before its 250
    is sent.  A message whose connection ends before its end of data was
    never delivered and is not counted.

    @ivar deliveries: {id: times delivered}; id L{None} for messages
        without one (notifications).
    @ivar damaged: the ids of deliveries whose body is not the one sent.
    @ivar cut: transactions whose connection ended inside their data.
    """

    def __init__(self):
        self.deliveries = Counter()
        self.damaged = set()
        self.cut = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        listening = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(listening,), daemon=True)
        self._thread.start()
        self.port = listening.result(STARTUP_TIMEOUT)

    def record(self):
        """
        @return: a copy of (deliveries, damaged, cut) as they are now.
        """
        with self._lock:
            return Counter(self.deliveries), set(self.damaged), self.cut

    def stop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STARTUP_TIMEOUT)

    def _run(self, listening):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0)
        )
        listening.set_result(server.sockets[0].getsockname()[1])
        self._loop.run_forever()
        server.close()
        sessions = asyncio.all_tasks(self._loop)
        for session in sessions:
            session.cancel()
        self._loop.run_until_complete(asyncio.gather(*sessions, return_exceptions=True))
        self._loop.close()

    async def _session(self, reader, writer):
        try:
            writer.write(b"220 sink.contoso.com ESMTP\r\n")
            while True:
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink.contoso.com\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 Go ahead\r\n")
                    message = await self._data(reader)
                    if message is None:
                        with self._lock:
                            self.cut += 1
                        return
                    self._record(message)
                    writer.write(b"250 2.0.0 Kept\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _data(reader):
        """
        @return: the message, unstuffed, or L{None} if the connection ended
            before its end.
        """
        lines = []
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                return None
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)

    def _record(self, message):
        header, _, body = message.partition(b"\r\n\r\n")
        found = MARKER.search(header + b"\r\n")
        ident = found.group(1).decode("ascii", "replace") if found else None
        with self._lock:
            self.deliveries[ident] += 1
            if ident is not None and body != bodyFor(ident):
                self.damaged.add(ident)


class Load:
    """
    C{clients} threads, each sending messages on sessions of
    L{SESSION_MESSAGES} for as long as it runs.  A client whose session
    is cut waits for L{serverUp} before it connects again.

    @ivar acknowledged: the ids whose end of data was answered 250.
    @ivar sent: ids whose transaction was begun.
    @ivar refusals: {reply code: count} of replies other than 250 to
        MAIL, RCPT or the end of data.
    @ivar cut: sessions ended by the server's going away.
    """

    def __init__(self, port, clients):
        self.port = port
        self.serverUp = threading.Event()
        self.acknowledged = set()
        self.sent = 0
        self.refusals = Counter()
        self.cut = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(number,), daemon=True)
            for number in range(clients)
        ]

    def start(self):
        self.serverUp.set()
        for thread in self._threads:
            thread.start()

    def stop(self):
        self._stopping.set()
        self.serverUp.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(REPLY_TIMEOUT * 2)

    def acknowledgedCount(self):
        with self._changed:
            return len(self.acknowledged)

    def awaitAcknowledged(self, count, timeout):
        """
        Wait up to C{timeout} seconds for C{count} acknowledgements in all.
        """
        with self._changed:
            self._changed.wait_for(lambda: len(self.acknowledged) >= count, timeout)

    def _client(self, number):
        serials = itertools.count()
        while not self._stopping.is_set():
            self.serverUp.wait()
            try:
                with smtplib.SMTP("127.0.0.1", self.port, "client.contoso.com",
                                  timeout=REPLY_TIMEOUT) as smtp:
                    smtp.ehlo()
                    for _ in range(SESSION_MESSAGES):
                        if self._stopping.is_set():
                            break
                        self._send(smtp, f"{number}.{next(serials)}")
            except (smtplib.SMTPException, OSError):
                with self._changed:
                    self.cut += 1

    def _send(self, smtp, ident):
        with self._changed:
            self.sent += 1
        code, _ = smtp.mail(SENDER)
        if code == 250:
            code, _ = smtp.rcpt(RECIPIENT)
        if code == 250:
            code, _ = smtp.data(messageFor(ident))
        with self._changed:
            if code == 250:
                self.acknowledged.add(ident)
                self._changed.notify_all()
            else:
                self.refusals[code] += 1
        if code != 250:
            smtp.rset()


@dataclass
class Cycle:
    """
    One server's life, from listening to its kill.
    """

    seconds: float
    acknowledged: int
    queuedAtKill: int


@dataclass
class Report:
    """
    What a soak found.  L{lost} and L{damaged} must be empty.
    """

    workers: int
    seconds: float
    sent: int
    acknowledged: set
    deliveries: Counter
    damaged: set
    relaysCut: int
    stillQueued: int
    drainSeconds: float
    refusals: Counter
    cut: int
    tracebacks: int
    cycles: list = field(default_factory=list)

    @property
    def lost(self):
        """
        Acknowledged, and never delivered.
        """
        return {ident for ident in self.acknowledged if not self.deliveries[ident]}

    @property
    def duplicates(self):
        """
        {id: times delivered} of the messages delivered more than once.
        """
        return {i: n for i, n in self.deliveries.items() if i is not None and n > 1}

    @property
    def unacknowledgedDelivered(self):
        """
        Delivered though their client never heard 250: the server died
        between the commit and the reply.  Expected.
        """
        return {i for i in self.deliveries if i is not None and i not in self.acknowledged}

    @property
    def passed(self):
        return not self.lost and not self.damaged

    def lines(self):
        duplicates = self.duplicates
        copies = sum(n - 1 for n in duplicates.values())
        return [
            f"mode: {f'--workers {self.workers}' if self.workers else 'one process'}, "
            f"{len(self.cycles)} kills in {self.seconds:.0f} s",
            f"sent (transactions begun):          {self.sent}",
            f"acknowledged (250 at end of data):  {len(self.acknowledged)}",
            f"delivered to the sink (distinct):   {sum(1 for i in self.deliveries if i is not None)}",
            f"lost (acknowledged, not delivered): {len(self.lost)}",
            f"damaged (body not as sent):         {len(self.damaged)}",
            f"duplicates:                         {len(duplicates)} messages, {copies} extra copies",
            f"delivered, not acknowledged:        {len(self.unacknowledgedDelivered)}",
            f"deliveries without an id:           {self.deliveries[None]}",
            f"still queued at the end:            {self.stillQueued} "
            f"(after {self.drainSeconds:.1f} s of draining)",
            f"client sessions cut:                {self.cut}",
            f"relays cut inside their data:       {self.relaysCut}",
            f"refusals by reply code:             {dict(sorted(self.refusals.items())) or 'none'}",
            f"tracebacks in the server logs:      {self.tracebacks}",
            "per cycle (seconds up, acknowledged, queued at the kill): "
            + ", ".join(f"{c.seconds:.1f}/{c.acknowledged}/{c.queuedAtKill}" for c in self.cycles),
        ]


def queuedCount(queueFolder):
    """
    @return: how many messages the queue folder and its workers' spool
        parts (C{--workers}) hold.
    """
    folders = [os.path.join(queueFolder, "messages")]
    parts = os.path.join(queueFolder, "parts")
    if os.path.isdir(parts):
        folders += [os.path.join(parts, name, "messages") for name in os.listdir(parts)]
    count = 0
    for folder in folders:
        try:
            count += sum(name.endswith(".json") for name in os.listdir(folder))
        except FileNotFoundError:
            continue  # a part adopted since the listing
    return count


def soak(folder, workers=0, cycles=20, interval=20.0, acknowledgedPerCycle=1, clients=4,
         drainTimeout=600, progress=lambda text: None):
    """
    Run a server (C{--workers} C{workers}) in C{folder} under load, kill it
    C{cycles} times and start it again on the same queue; each life lasts
    at least C{interval} seconds and until C{acknowledgedPerCycle} more
    messages were acknowledged.  Then stop the load, let the queue drain
    (up to C{drainTimeout} seconds) and count.  The server's output is
    kept in C{server-N.log} files in C{folder}.

    @param progress: called with a line of text after each kill.
    @return: a L{Report}.
    """
    sink = Sink()
    port = freePort()
    config = writeOrganization(folder, ORGANIZATION.format(port=port, sink=sink.port))
    queueFolder = os.path.join(folder, "var", "queue")
    load = Load(port, clients)
    logs = _Logs(folder)
    done = []
    began = time.monotonic()
    server = None
    try:
        server = ServerProcess(config, sockets=1, workers=workers)
        load.start()
        for number in range(cycles):
            started = time.monotonic()
            before = load.acknowledgedCount()
            _live(server, load, started + interval, before + acknowledgedPerCycle)
            pids = server.workerPids()
            queued = queuedCount(queueFolder)
            load.serverUp.clear()
            server.kill()
            done.append(Cycle(time.monotonic() - started, load.acknowledgedCount() - before, queued))
            logs.keep(server.output)
            server = None
            awaitEnded(pids)
            progress(f"kill {number + 1}/{cycles}: {done[-1].acknowledged} acknowledged, "
                     f"{queued} queued")
            server = ServerProcess(config, sockets=1, workers=workers)
            load.serverUp.set()
        load.stop()
        draining = time.monotonic()
        _drain(server, queueFolder, drainTimeout)
        drainSeconds = time.monotonic() - draining
        server.stop()
        logs.keep(server.output)
        server = None
    finally:
        load.stop()
        if server is not None:
            server.stop()
            logs.keep(server.output)
        sink.stop()
    deliveries, damaged, relaysCut = sink.record()
    return Report(
        workers=workers,
        seconds=time.monotonic() - began,
        sent=load.sent,
        acknowledged=set(load.acknowledged),
        deliveries=deliveries,
        damaged=damaged,
        relaysCut=relaysCut,
        stillQueued=queuedCount(queueFolder),
        drainSeconds=drainSeconds,
        refusals=load.refusals,
        cut=load.cut,
        tracebacks=logs.tracebacks,
        cycles=done,
    )


class _Logs:
    """
    Writes each server's output to C{server-N.log} once it has ended
    (holding them all in memory would take hundreds of megabytes in a
    long run), counting tracebacks.
    """

    def __init__(self, folder):
        self.folder = folder
        self.written = 0
        self.tracebacks = 0

    def keep(self, output):
        with open(os.path.join(self.folder, f"server-{self.written}.log"), "w") as handle:
            handle.write("\n".join(output))
        self.written += 1
        self.tracebacks += sum("Traceback" in line for line in output)


def _live(server, load, until, acknowledged):
    """
    Let the server live until the time C{until} and C{acknowledged}
    acknowledgements in all, reading its output meanwhile (a full pipe
    would stop it).
    """
    stalled = time.monotonic() + STARTUP_TIMEOUT
    while True:
        server.drain()
        if server.process.poll() is not None:
            raise AssertionError("the server ended by itself:\n" + "\n".join(server.output[-50:]))
        now = time.monotonic()
        if load.acknowledgedCount() < acknowledged:
            if now > stalled:
                raise AssertionError("no message acknowledged for a while:\n"
                                     + "\n".join(server.output[-50:]))
            load.awaitAcknowledged(acknowledged, POLL)
        elif now < until:
            time.sleep(min(POLL, until - now))
        else:
            return


def _drain(server, queueFolder, timeout):
    """
    Wait until the queue is empty, or C{timeout} seconds; what is left is
    reported.
    """
    deadline = time.monotonic() + timeout
    while queuedCount(queueFolder) and time.monotonic() < deadline:
        server.drain()
        time.sleep(POLL)
