"""
C{twistd exmta --workers N}: every worker process a whole MTA for the
messages it accepts (its own spool part and queue manager), and the parts
of workers that end adopted by the main process; over real processes,
real sockets and a real next hop (L{tests.e2e.sink.SmtpSink}).
"""

import glob
import json
import os
import re
import signal
import smtplib
import time

import pytest

from tests.e2e.harness import (
    REPLY_TIMEOUT,
    STARTUP_TIMEOUT,
    ServerProcess,
    alive,
    awaitEnded,
    freePort,
    writeOrganization,
)
from tests.e2e.sink import SmtpSink

ORGANIZATION = r"""
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageTrackingLogPath = var/tracking
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01
OutboundConnectionFailureRetryInterval = 00:00:01

[AcceptedDomain fabrikam.com]

[ReceiveConnector Anonymous HubA]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8

[ADPermission]
Identity = Anonymous HubA
User = NT AUTHORITY\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

[SendConnector ToContoso]
AddressSpaces = contoso.com
SmartHosts = 127.0.0.1
Port = {sink}
DNSRoutingEnabled = $false
"""

# A queue id's last two hex digits name its spool part; 00 is the main
# process's.
QUEUE_ID = re.compile(r"[0-9A-F]{22}([0-9A-F]{2})")


class Hub:
    """
    HubA with two workers, relaying contoso.com to C{sink}.
    """

    def __init__(self, folder, sink):
        self.folder = folder
        self.port = freePort()
        self.config = writeOrganization(folder, ORGANIZATION.format(port=self.port, sink=sink.port))
        self.queue = os.path.join(folder, "var", "queue")
        self.start()

    def start(self):
        self.server = ServerProcess(self.config, sockets=1, workers=2)

    def send(self, subjects):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=REPLY_TIMEOUT) as client:
            for subject in subjects:
                client.sendmail(
                    "sender@fabrikam.com",
                    ["x@contoso.com"],
                    f"Subject: {subject}\r\nFrom: sender@fabrikam.com\r\n\r\nbody {subject}\r\n",
                )

    def queued(self):
        """
        @return: the queue ids in the queue folder's messages/ and in each
            part's, by folder (relative to the queue folder).
        """
        found = {}
        for path in glob.glob(os.path.join(self.queue, "**", "messages", "*.json"), recursive=True):
            folder = os.path.relpath(os.path.dirname(os.path.dirname(path)), self.queue)
            found.setdefault(folder, []).append(os.path.basename(path)[:-5])
        return found

    def workerOfPart(self):
        """
        @return: {part folder: worker pid} of the workers running.
        """
        log = self.server.drain().splitlines()
        pids = {}
        for line in log:
            started = re.search(r"started receive worker (\d+) \(pid (\d+)\)", line)
            if started:
                pids[started[1]] = int(started[2])
        parts = {}
        for line in log:
            queueing = re.search(r"worker (\d+)\] receive worker accepting on .* queueing in (\S+)", line)
            if queueing and alive(pids[queueing[1]]):
                parts[os.path.relpath(queueing[2], self.queue)] = pids[queueing[1]]
        return parts

    def sendEvents(self):
        events = []
        tracking = os.path.join(self.folder, "var", "tracking")
        for name in os.listdir(tracking):
            with open(os.path.join(tracking, name), encoding="utf-8") as handle:
                events += [e for e in map(json.loads, handle) if e["eventId"] == "SEND"]
        return events


def _subjects(sink):
    return [
        re.search(rb"^Subject: (.*)\r$", m.data, re.MULTILINE)[1].decode() for m in sink.messages
    ]


def _awaitAllSentOnce(hub, sink, subjects):
    """
    Wait until the sink has every message of C{subjects} and no queue holds
    a message any more; then each was sent exactly once.
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while set(_subjects(sink)) != set(subjects) or hub.queued():
        assert time.monotonic() < deadline, (sorted(_subjects(sink)), hub.queued())
        hub.server.drain()
        time.sleep(0.05)
    got = _subjects(sink)
    assert sorted(got) == sorted(subjects), [s for s in set(got) if got.count(s) > 1]


def _awaitQueued(hub, count):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while sum(map(len, hub.queued().values())) < count:
        assert time.monotonic() < deadline, hub.queued()
        hub.server.drain()
        time.sleep(0.05)


@pytest.fixture
def sink():
    running = SmtpSink()
    yield running
    running.stop()


@pytest.fixture
def tarpit():
    running = SmtpSink(silent=True)
    yield running
    running.stop()


def test_workersSendWhatTheyAccept(tmp_path, sink):
    """
    Messages the workers accept are queued in their own parts and sent by
    their own queue managers: every SEND is of a queue id of a worker's
    part, logged by a worker, and the main process's queue folder never
    held one.
    """
    hub = Hub(str(tmp_path), sink)
    try:
        subjects = [f"message {n}" for n in range(40)]
        for batch in range(0, 40, 5):
            hub.send(subjects[batch : batch + 5])
            assert "." not in hub.queued()
        _awaitAllSentOnce(hub, sink, subjects)
        events = hub.sendEvents()
        assert len(events) == 40
        parts = {QUEUE_ID.fullmatch(e["internalMessageId"])[1] for e in events}
        assert "00" not in parts, parts
        # The workers' log lines reach the main process's log over their
        # links, after the sink has the messages.  Not "... not sent to
        # ...": a send the loaded machine timed out.
        hub.server.waitFor("] sent ", count=40)
        sent = [l for l in hub.server.drain().splitlines() if re.search(r"\] sent \w{24} to ", l)]
        assert len(sent) == 40
        assert all(" worker " in line.split("]")[0] for line in sent), sent
    finally:
        hub.server.stop()


def test_aKilledWorkersPartIsAdoptedAndDeliveredOnce(tmp_path, tarpit):
    """
    kill -9 of a worker holding messages in its part behind a next hop
    that does not answer: the main process adopts the part (its folder
    goes), and once the next hop answers every accepted message is sent
    exactly once.
    """
    hub = Hub(str(tmp_path), tarpit)
    try:
        subjects = [f"message {n}" for n in range(30)]
        for batch in range(0, 30, 3):
            hub.send(subjects[batch : batch + 3])
        _awaitQueued(hub, 30)
        parts = hub.workerOfPart()
        queued = hub.queued()
        victim = next(part for part in parts if queued.get(part))
        os.kill(parts[victim], signal.SIGKILL)
        hub.server.waitFor(f"adopted {len(queued[victim])} messages of the spool part")
        # The part's folder went; the worker started in the dead one's
        # place makes its own anew.
        now = hub.queued()
        assert sorted(now["."]) == sorted(queued[victim])
        assert not now.get(victim), now
        tarpit.answer()
        _awaitAllSentOnce(hub, tarpit, subjects)
    finally:
        hub.server.stop()


def test_theNextStartAdoptsThePartsOfAKilledServer(tmp_path, tarpit):
    """
    kill -9 of the main process (its workers end with it) while its parts
    hold messages: the next start adopts every part before its workers
    start, and every message is sent exactly once.
    """
    hub = Hub(str(tmp_path), tarpit)
    subjects = [f"message {n}" for n in range(20)]
    try:
        for batch in range(0, 20, 2):
            hub.send(subjects[batch : batch + 2])
        _awaitQueued(hub, 20)
        pids = hub.server.workerPids()
        queued = hub.queued()
        assert "." not in queued, queued
        hub.server.kill()
        awaitEnded(pids)
        tarpit.answer()
        hub.start()
        assert "adopted" in hub.server.drain()
        _awaitAllSentOnce(hub, tarpit, subjects)
    finally:
        hub.server.stop()


def test_aReloadsOldWorkersPartsAreDelivered(tmp_path, tarpit):
    """
    A reload drains the old workers: once their sessions have ended they
    stop their queue managers and end, and their parts, still holding
    messages behind a silent next hop, are adopted and delivered once.
    """
    hub = Hub(str(tmp_path), tarpit)
    try:
        subjects = [f"message {n}" for n in range(20)]
        for batch in range(0, 20, 2):
            hub.send(subjects[batch : batch + 2])
        _awaitQueued(hub, 20)
        # The kernel may have handed every connection to one worker.
        holding = [part for part, queued in hub.queued().items() if part != "." and queued]
        old = hub.server.workerPids()
        hub.server.process.send_signal(signal.SIGHUP)
        hub.server.waitFor("receive worker accepting on", count=4)
        awaitEnded(old)
        hub.server.waitFor("adopted", count=len(holding))
        tarpit.answer()
        _awaitAllSentOnce(hub, tarpit, subjects)
    finally:
        hub.server.stop()


def test_aStopLeavesThePartsForTheNextStart(tmp_path, tarpit):
    """
    A server stopped with messages in its workers' parts leaves them on
    disk (the workers stop their queue managers, sends in progress end)
    and the next start delivers them.
    """
    hub = Hub(str(tmp_path), tarpit)
    subjects = [f"message {n}" for n in range(10)]
    try:
        hub.send(subjects)
        _awaitQueued(hub, 10)
        hub.server.stop()
        queued = hub.queued()
        assert "." not in queued and sum(map(len, queued.values())) == 10, queued
        tarpit.answer()
        hub.start()
        _awaitAllSentOnce(hub, tarpit, subjects)
    finally:
        hub.server.stop()


def test_everyWorkerServesTheAdminProtocolOverItsPart(tmp_path, tarpit):
    """
    Each worker serves the admin protocol on admin.sock in its part: its
    Get-Queue shows the messages it holds.  The main process's endpoint
    (what the Shell and the console ask) answers for every part: its
    Get-Queue sums them, its Get-Message lists the parts' messages, and an
    action on one message reaches the part that holds it.
    """
    from exmta.admin.client import AdminClient

    hub = Hub(str(tmp_path), tarpit)
    try:
        hub.send([f"message {n}" for n in range(6)])
        _awaitQueued(hub, 6)
        counts = 0
        for part in hub.workerOfPart():
            socket = os.path.join(hub.queue, part, "admin.sock")
            rows = AdminClient(socket).call("getQueue")
            counts += sum(row["MessageCount"] for row in rows)
        assert counts == 6
        main = AdminClient(os.path.join(hub.queue, "admin.sock"))
        queues = main.call("getQueue")
        assert sum(row["MessageCount"] for row in queues) == 6
        assert len({row["Identity"] for row in queues}) == len(queues)
        messages = main.call("getMessage")
        held = {}
        for part in hub.workerOfPart():
            socket = os.path.join(hub.queue, part, "admin.sock")
            for row in AdminClient(socket).call("getMessage"):
                held[row["Identity"]] = socket
        assert sorted(row["Identity"] for row in messages) == sorted(held)
        chosen = messages[0]["Identity"]
        main.call("suspendMessage", identity=chosen)
        [row] = AdminClient(held[chosen]).call("getMessage", identity=chosen)
        assert row["Status"] in ("Suspended", "PendingSuspend"), row
    finally:
        hub.server.stop()
