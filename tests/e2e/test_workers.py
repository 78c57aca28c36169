"""
C{twistd exmta --workers N}: worker processes on the main process's
listening sockets, over real sockets and real processes (their spool
parts: test_parts.py).
"""

import csv
import json
import os
import re
import signal
import smtplib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.harness import (
    REPLY_TIMEOUT,
    STARTUP_TIMEOUT,
    ServerProcess,
    alive,
    awaitEnded,
    freePort,
    maildirMessages,
    writeOrganization,
)

ORGANIZATION = r"""
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageTrackingLogPath = var/tracking
ReceiveProtocolLogPath = var/protocol

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Anonymous HubA]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8
MaxInboundConnectionPerSource = {perSource}
ProtocolLoggingLevel = Verbose
"""

NEW_MAILBOX_AND_CONNECTOR = """
[Mailbox David Pelton]
PrimarySmtpAddress = david@fabrikam.com

[ReceiveConnector Second HubA]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.2:{port}
RemoteIPRanges = 127.0.0.0/8
"""


OPEN_RELAY_AND_A_MISTAKE = r"""
[ADPermission]
Identity = Anonymous HubA
User = NT AUTHORITY\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

[ReceiveConnector Mistake]
NoSuchKey = 1
"""


class Workers:
    """
    An organization served by C{twistd exmta --workers 2}.
    """

    def __init__(self, folder, perSource=100):
        self.folder = folder
        self.port = freePort()
        self.config = writeOrganization(
            folder, ORGANIZATION.format(port=self.port, perSource=perSource)
        )
        self.server = ServerProcess(self.config, sockets=1, workers=2)

    def mailbox(self, address="kim@fabrikam.com"):
        return os.path.join(self.folder, "var", "mailboxes", address)

    def workerPids(self):
        """
        @return: the pids of the running workers, from their start lines in
            the log, alive now.
        """
        return {pid for pid in self.server.workerPids() if alive(pid)}

    def send(self, subject, recipient="kim@fabrikam.com", source="127.0.0.1", to=None):
        host, port = to or ("127.0.0.1", self.port)
        with smtplib.SMTP(host, port, timeout=REPLY_TIMEOUT, source_address=(source, 0)) as client:
            client.sendmail(
                "sender@example.com",
                [recipient],
                f"Subject: {subject}\r\nFrom: sender@example.com\r\n\r\nbody {subject}\r\n",
            )


def _sendAll(workers, subjects, clients=10, **keywords):
    """
    Send a message per subject on C{clients} connections at a time, reading
    the server's log meanwhile (a full pipe would stop the server).
    """
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(workers.send, s, **keywords) for s in subjects]
        while not all(f.done() for f in futures):
            workers.server.drain()
            time.sleep(0.05)
        for future in futures:
            future.result()


def _awaitDelivered(workers, mailbox, subjects):
    """
    Wait until a message of each subject is in C{mailbox}: counting files
    would do, but a worker killed between its commit and its answer may
    leave a duplicate, which could make up the count before the last one.
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not set(subjects) <= _subjects(maildirMessages(mailbox)):
        missing = set(subjects) - _subjects(maildirMessages(mailbox))
        assert time.monotonic() < deadline, f"{len(missing)} of {len(set(subjects))} not delivered"
        workers.server.drain()
        time.sleep(0.05)
    return maildirMessages(mailbox)


def _subjects(messages):
    return {m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in messages}


@pytest.fixture
def workers(tmp_path):
    running = Workers(str(tmp_path))
    yield running
    running.server.stop()


def test_workersAcceptAndDeliverTheirMail(workers):
    """
    Mail sent on many connections is accepted by the workers, each message
    is delivered by the queue of the worker that accepted it, and the
    tracking log holds one whole RECEIVE line per message, written by
    several processes into one file.
    """
    assert len(workers.workerPids()) == 2
    subjects = [f"message {n}" for n in range(300)]
    _sendAll(workers, subjects)
    assert _subjects(_awaitDelivered(workers, workers.mailbox(), subjects)) == set(subjects)
    log = workers.server.drain()
    byWorkers = [l for l in log.splitlines() if " accepted " in l and " worker " in l.split("]")[0]]
    assert byWorkers, log
    delivered = [l for l in log.splitlines() if re.search(r"\] delivered \w{24} to ", l)]
    assert len(delivered) == len(subjects)
    assert all(" worker " in l.split("]")[0] for l in delivered), delivered
    received = []
    tracking = os.path.join(workers.folder, "var", "tracking")
    for name in os.listdir(tracking):
        with open(os.path.join(tracking, name), encoding="utf-8") as handle:
            for line in handle:
                event = json.loads(line)
                if event["eventId"] == "RECEIVE":
                    received.append(event)
    assert len(received) == len(subjects)
    sessions = {}
    headers = 0
    protocol = os.path.join(workers.folder, "var", "protocol")
    for name in os.listdir(protocol):
        with open(os.path.join(protocol, name), encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                if row[0].startswith("#Fields"):
                    headers += 1
                    continue
                sessions.setdefault(row[2], set()).add(row[5])
    assert headers == 1
    assert len(sessions) == len(subjects)
    assert all(len(remotes) == 1 for remotes in sessions.values())


def test_aKilledWorkerIsReplacedAndNoAcceptedMessageIsLost(workers):
    """
    kill -9 of a worker while clients send: every message that heard 250
    is delivered (what the dead worker wrote is adopted), and another
    worker takes its place.
    """
    acknowledged = []
    stop = threading.Event()

    def client(number):
        sent = 0
        while not stop.is_set():
            subject = f"client {number} message {sent}"
            sent += 1
            try:
                workers.send(subject)
            except (smtplib.SMTPException, OSError):
                continue
            acknowledged.append(subject)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    try:
        victim = min(workers.workerPids())
        while len(acknowledged) < 50:
            workers.server.drain()
            time.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        workers.server.waitFor("started receive worker", count=3)
        workers.server.waitFor("receive worker accepting on", count=3)
        while len(acknowledged) < 150:
            workers.server.drain()
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert "ended (signal SIGKILL)" in workers.server.drain()
    delivered = _subjects(_awaitDelivered(workers, workers.mailbox(), acknowledged))
    assert set(acknowledged) <= delivered
    assert len(workers.workerPids()) == 2


def test_theMainProcessAcceptsWhileNoWorkerCan(workers):
    """
    Once its workers are ready the main process leaves the sockets to
    them; should they all die and fail to start again (here the send
    connectors' credentials file was made readable by others meanwhile,
    which a starting server refuses), it accepts mail itself.
    """
    _sendAll(workers, ["before"])
    log = workers.server.drain()
    assert " worker " in [l for l in log.splitlines() if " accepted " in l][0].split("]")[0]
    credentials = os.path.join(workers.folder, "credentials")
    with open(credentials, "w") as handle:
        handle.write("")
    os.chmod(credentials, 0o644)
    for pid in workers.workerPids():
        os.kill(pid, signal.SIGKILL)
    workers.server.waitFor("ended (exit status 1)")
    _sendAll(workers, ["while broken"])
    accepted = [l for l in workers.server.drain().splitlines() if " accepted " in l]
    assert len(accepted) == 2
    assert " worker " not in accepted[1].split("]")[0], accepted
    delivered = _awaitDelivered(workers, workers.mailbox(), ["before", "while broken"])
    assert _subjects(delivered) == {"before", "while broken"}


def test_aRestartedWorkerRunsWhatTheMainProcessRuns(workers):
    """
    A worker started again after a crash runs on the org.ini text its main
    process checked and runs under, not on the file as it is now: an edit
    granting anonymous relay that a reload refused (its other half is
    invalid) does not open the server through the new worker.
    """
    with open(workers.config, "a") as handle:
        handle.write(OPEN_RELAY_AND_A_MISTAKE)
    workers.server.process.send_signal(signal.SIGHUP)
    workers.server.waitFor("reload refused")
    for pid in workers.workerPids():
        os.kill(pid, signal.SIGKILL)
    workers.server.waitFor("receive worker accepting on", count=4)
    for _ in range(6):
        with smtplib.SMTP("127.0.0.1", workers.port, timeout=REPLY_TIMEOUT) as client:
            client.ehlo("client.example")
            assert client.mail("sender@example.com")[0] == 250
            assert client.rcpt("someone@example.org")[0] == 550


def test_aReloadStartsWorkersUnderTheNewConfiguration(workers):
    """
    SIGHUP: the main process reloads org.ini and replaces its workers, so a
    mailbox added to org.ini is known to every process at once, and the
    new workers accept on the socket of a connector added with it.
    """
    old = workers.workerPids()
    second = freePort("127.0.0.2")
    with open(workers.config, "a") as handle:
        handle.write(NEW_MAILBOX_AND_CONNECTOR.format(port=second))
    workers.server.process.send_signal(signal.SIGHUP)
    workers.server.waitFor("receive worker accepting on", count=4)
    awaitEnded(old)
    subjects = [f"for david {n}" for n in range(30)]
    _sendAll(workers, subjects, clients=6, recipient="david@fabrikam.com")
    _sendAll(workers, ["on the second"], to=("127.0.0.2", second))
    delivered = _awaitDelivered(workers, workers.mailbox("david@fabrikam.com"), subjects)
    assert _subjects(delivered) == set(subjects)
    accepted = [l for l in workers.server.drain().splitlines() if "on Second HubA" in l]
    assert len(accepted) == 1 and " worker " in accepted[0].split("]")[0], accepted


def test_connectionLimitsHoldForTheWholeServer(tmp_path):
    """
    MaxInboundConnectionPerSource counts the sessions of every process: of
    nine connections from one address, opened one after the other, three
    are admitted, whichever process accepted them.
    """
    running = Workers(str(tmp_path), perSource=3)
    clients = []
    try:
        banners = []
        for _ in range(9):
            client = socket.create_connection(("127.0.0.1", running.port), REPLY_TIMEOUT)
            clients.append(client)
            banners.append(client.recv(512)[:3])
        assert banners.count(b"220") == 3, banners
        assert banners.count(b"421") == 6, banners
    finally:
        for client in clients:
            client.close()
        running.server.stop()


def test_theMainProcessKilledTakesItsWorkersWithIt(tmp_path):
    """
    Workers end when the main process dies, so a restart finds the port
    free and the queue folder its own.
    """
    running = Workers(str(tmp_path))
    pids = running.workerPids()
    assert len(pids) == 2
    running.server.kill()
    awaitEnded(pids)


def test_aStopEndsEveryProcess(workers):
    pids = workers.workerPids()
    assert len(pids) == 2
    workers.server.process.send_signal(signal.SIGTERM)
    # twistd ends by the signal that stopped it.
    assert workers.server.process.wait(STARTUP_TIMEOUT) == -signal.SIGTERM
    assert "ended (exit status 0)" in workers.server.drain()
    awaitEnded(pids)
