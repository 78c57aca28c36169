"""
Back pressure over real sockets, with a really full filesystem: each test
mounts a small tmpfs for the server's queue (CI runs as root), fills it,
and checks what SMTP clients hear, and that every message acknowledged
before, during and after is delivered exactly as sent.
"""

import base64
import os
import smtplib
import subprocess
import time

import pytest

from tests.e2e.test_admin import shell
from tests.e2e.sink import SmtpSink
from tests.e2e.test_metrics import checkHealth
from tests.e2e.harness import (
    REPLY_TIMEOUT,
    STARTUP_TIMEOUT,
    RawClient,
    ServerProcess,
    freePort,
    maildirMessages,
    writeOrganization,
)

PASSWORD = "Kim-Pa55"

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = queuefs/queue
MailboxDatabasePath = var/mailboxes
MessageTrackingLogPath = var/tracking
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = BasicAuth
PermissionGroups = AnonymousUsers, ExchangeUsers
MaxMessageSize = 1MB
AuthTarpitInterval = 00:00:00

[EdgeTransport HubA]
ResourceMonitoringInterval = 00:00:01
TarpitStartDelay = 00:00:00
TarpitDelayStep = 00:00:00
MaxTarpitDelay = 00:00:00
{pressure}

[Monitoring HubA]
Binding = 127.0.0.1:{metrics}
"""

DISK = """
PercentageDatabaseDiskSpaceUsedHighThreshold = 90
PercentageDatabaseDiskSpaceUsedMediumThreshold = 70
PercentageDatabaseDiskSpaceUsedNormalThreshold = 50
"""

# Any process is above 0.001 % of the machine's memory: Medium from the start.
MEMORY = """
PercentagePrivateBytesHighThreshold = 99
PercentagePrivateBytesMediumThreshold = 0.001
PercentagePrivateBytesNormalThreshold = 0.001
PrivateBytesHistoryDepth = 1
"""

NO_MONITORING = "EnableResourceMonitoring = $false\n"


@pytest.fixture
def queueFilesystem(tmp_path):
    """
    A 16 MB tmpfs at tmp_path/queuefs, unmounted after the test.
    """
    folder = tmp_path / "queuefs"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the queue (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _used(folder):
    stat = os.statvfs(folder)
    return stat.f_blocks * stat.f_frsize, (stat.f_blocks - stat.f_bavail) * stat.f_frsize


def _fill(folder, share, name="filler"):
    """
    Write a file into C{folder} so that its filesystem is C{share} used.
    """
    size, used = _used(folder)
    with open(folder / name, "ab") as handle:
        handle.write(b"\0" * max(0, int(size * share) - used))


def _fillAllBut(folder, free):
    size, used = _used(folder)
    with open(folder / "filler", "ab") as handle:
        handle.write(b"\0" * (size - used - free))


class Hub:
    def __init__(self, folder, pressure, workers=0):
        self.folder = folder
        self.port = freePort()
        self.config = writeOrganization(
            str(folder),
            ORGANIZATION.format(port=self.port, pressure=pressure, metrics=freePort()),
            accounts=[("kim@fabrikam.com", PASSWORD)],
        )
        self.server = ServerProcess(self.config, sockets=1, workers=workers)
        self.sent = {}

    def client(self, authenticated):
        client = RawClient("127.0.0.1", self.port)
        assert client.reply()[0] == 220
        assert client.command("EHLO client.example.com")[0] == 250
        if authenticated:
            token = base64.b64encode(f"\0kim@fabrikam.com\0{PASSWORD}".encode()).decode()
            assert client.command(f"AUTH PLAIN {token}")[0] == 235
        return client

    def mailFrom(self, authenticated):
        client = self.client(authenticated)
        try:
            return client.command("MAIL FROM:<kim@fabrikam.com>")
        finally:
            client.close()

    def send(self, subject, authenticated, size=0):
        body = f"Subject: {subject}\r\nFrom: kim@fabrikam.com\r\n\r\nbody {subject}\r\n" + (
            "x" * 998 + "\r\n"
        ) * (size // 1000)
        with smtplib.SMTP("127.0.0.1", self.port, timeout=REPLY_TIMEOUT) as client:
            if authenticated:
                client.login("kim@fabrikam.com", PASSWORD)
            client.sendmail("kim@fabrikam.com", ["kim@fabrikam.com"], body)
        self.sent[subject] = body.encode()

    def awaitDelivered(self):
        """
        Wait until every message acknowledged is in the mailbox, then check
        that each is there once, as sent.
        """
        mailbox = os.path.join(self.folder, "var", "mailboxes", "kim@fabrikam.com")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(maildirMessages(mailbox)) < len(self.sent):
            assert time.monotonic() < deadline, self.server.drain()
            self.server.drain()
            time.sleep(0.05)
        delivered = {}
        for message in maildirMessages(mailbox):
            subject = message.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
            assert subject not in delivered, f"{subject} delivered twice"
            # The stored message is the one sent behind this hop's headers.
            assert message.endswith(self.sent[subject]), subject
            delivered[subject] = message
        assert set(delivered) == set(self.sent)


@pytest.mark.parametrize("workers", [0, 2])
def test_aFillingQueueDiskRefusesAnonymousThenEveryoneAndRecovers(tmp_path, queueFilesystem, workers):
    hub = Hub(tmp_path, DISK, workers)
    try:
        hub.send("before", authenticated=False)
        _fill(queueFilesystem, 0.8)
        hub.server.waitFor("resource pressure increased from Normal to Medium (event 15004)")
        assert hub.mailFrom(authenticated=False) == (452, ["452 4.3.1 Insufficient system resources"])
        hub.send("during medium", authenticated=True)
        _fill(queueFilesystem, 0.95)
        hub.server.waitFor("resource pressure increased from Medium to High (event 15004)")
        for authenticated in (False, True):
            assert hub.mailFrom(authenticated) == (452, ["452 4.3.1 Insufficient system resources"])
        health = checkHealth(hub.config)
        assert health.returncode == 1, health.stdout
        assert "HubA is not ready (backPressureLevel: High" in health.stderr
        os.unlink(queueFilesystem / "filler")
        hub.server.waitFor("resource pressure decreased from High to Normal (event 15005)")
        hub.send("after, anonymous", authenticated=False)
        hub.send("after, authenticated", authenticated=True)
        hub.awaitDelivered()
        assert checkHealth(hub.config).returncode == 0
        log = hub.server.drain()
        assert f"DatabaseUsedSpace[{queueFilesystem / 'queue'}] = " in log
    finally:
        hub.server.stop()


def test_aLowMemoryThresholdRefusesAnonymousMail(tmp_path):
    hub = Hub(tmp_path, MEMORY)
    try:
        hub.server.waitFor("resource pressure increased from Normal to Medium (event 15004)")
        assert "PrivateBytes = " in hub.server.drain()
        assert hub.mailFrom(authenticated=False) == (452, ["452 4.3.1 Insufficient system resources"])
        hub.send("authenticated", authenticated=True)
        hub.awaitDelivered()
        shown = shell(
            hub.config,
            "Get-ExchangeDiagnosticInfo -Process EdgeTransport -Component ResourceThrottling"
            " | Format-Table Resource,Level,BackPressureLevel -AutoSize",
        ).stdout
        assert [line.split()[-2:] for line in shown.splitlines() if "PrivateBytes" in line] == [
            ["Medium", "Medium"]
        ]
        refused = shell(hub.config, "Get-ExchangeDiagnosticInfo -Component Nothing", check=False)
        assert refused.returncode != 0 and "ResourceThrottling" in refused.stdout + refused.stderr
    finally:
        hub.server.stop()


@pytest.mark.parametrize("workers", [0, 2])
def test_noRoomForTheMessageIs452AndLeavesNoFile(tmp_path, queueFilesystem, workers):
    hub = Hub(tmp_path, NO_MONITORING, workers)
    try:
        hub.send("acknowledged before", authenticated=False)
        hub.awaitDelivered()
        _fillAllBut(queueFilesystem, 200 * 1024)
        client = hub.client(authenticated=False)
        assert client.command("MAIL FROM:<kim@fabrikam.com>")[0] == 250
        assert client.command("RCPT TO:<kim@fabrikam.com>")[0] == 250
        assert client.command("DATA")[0] == 354
        client.send(b"Subject: too big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 500 + b".\r\n")
        assert client.reply() == (452, ["452 4.3.1 Insufficient system resources"])
        assert client.command("QUIT")[0] == 221
        client.close()
        queue = queueFilesystem / "queue"
        assert os.listdir(queue / "tmp") == []
        assert os.listdir(queue / "messages") == []
        # A worker's log line reaches the main process's log a moment later.
        hub.server.waitFor("cannot queue a message on Default HubA: No space left on device")
        os.unlink(queueFilesystem / "filler")
        hub.send("after", authenticated=False, size=500 * 1000)
        hub.awaitDelivered()
    finally:
        hub.server.stop()



SEND_CONNECTOR = """
[SendConnector ToContoso]
AddressSpaces = contoso.com
SmartHosts = 127.0.0.1
Port = {sink}
DNSRoutingEnabled = $false
"""


def _fillUp(folder):
    with open(folder / "filler", "ab") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def test_theQueueManagerRecoversWhenSpaceReturns(tmp_path, queueFilesystem):
    """
    A message waiting for its next hop is rewritten after each attempt:
    with the disk full the rewrite fails and the pass is tried again
    later; once space is back the message is sent, once.
    """
    sink = SmtpSink(refuse={"x@contoso.com": "451 4.2.0 Try later"})
    hub = Hub(tmp_path, NO_MONITORING + SEND_CONNECTOR.format(sink=sink.port))
    try:
        with smtplib.SMTP("127.0.0.1", hub.port, timeout=REPLY_TIMEOUT) as client:
            client.login("kim@fabrikam.com", PASSWORD)
            client.sendmail("kim@fabrikam.com", ["x@contoso.com"], "Subject: waiting\r\n\r\nwaiting\r\n")
        hub.server.waitFor("deferred ")
        _fillUp(queueFilesystem)
        # The pass whose rewrite failed, and why.
        hub.server.waitFor("processing ")
        hub.server.waitFor("No space left on device")
        os.unlink(queueFilesystem / "filler")
        del sink.refuse["x@contoso.com"]
        hub.server.waitFor("sent ")
        delivered = [m for s in sink.sessions for m in s.messages if m.recipients == ["x@contoso.com"]]
        assert len(delivered) == 1 and delivered[0].data.endswith(b"waiting\r\n")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while os.listdir(queueFilesystem / "queue" / "messages"):
            assert time.monotonic() < deadline, hub.server.drain()
            time.sleep(0.05)
    finally:
        hub.server.stop()
        sink.stop()
