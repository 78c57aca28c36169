"""
Shadow redundancy between two real servers (L{exmta.queue.shadow}): HubA
forwards mail for contoso.com to HubB (certificate authenticated), HubB
relays it to a sink.  HubA keeps a shadow of each message until HubB's
discard notification; when HubB dies with its disk, HubA resubmits after
the heartbeat timeout and no message is lost.

The 1,000 message run of the issue is C{bench/shadow_failover.py}; the
suite sends L{MESSAGES}.
"""

import os
import shutil
import smtplib
import sys
import time

import pytest

from exmta.shell.runtime import Session, loadCmdlets
from tests.e2e.harness import ServerProcess, freePort, writeOrganization
from tests.e2e.sink import SmtpSink

TIMEOUT = 60
MESSAGES = 200

ORGANIZATION = """\
[TransportConfig]
ShadowHeartbeatTimeoutInterval = 00:00:01
ShadowHeartbeatRetryCount = 3

[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/HubA/queue
MailboxDatabasePath = var/HubA/mailboxes
MessageTrackingLogPath = var/HubA/tracking
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01
TransientFailureRetryCount = 2
OutboundConnectionFailureRetryInterval = 00:00:01

[TransportServer HubB]
Fqdn = hubb.fabrikam.com
QueueDatabasePath = var/HubB/queue
MailboxDatabasePath = var/HubB/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[AcceptedDomain contoso.com]
DomainType = InternalRelay

[ReceiveConnector Default HubA]
Server = HubA
Usage = Custom
Bindings = 127.0.0.1:{a}
RemoteIPRanges = 127.0.0.1
PermissionGroups = AnonymousUsers

[ReceiveConnector Servers HubB]
Server = HubB
Usage = Custom
Bindings = 127.0.0.1:{b}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, ExchangeServer
PermissionGroups = ExchangeServers

[SendConnector ToContoso]
AddressSpaces = contoso.com
SourceTransportServers = HubB
DNSRoutingEnabled = $false
SmartHosts = 127.0.0.1
Port = {sink}
"""


class Organization:
    """
    HubA and HubB with certificates from the organization, and the sink.
    """

    def __init__(self, folder):
        loadCmdlets()
        self.folder = folder
        self.sink = SmtpSink()
        self.ports = {"a": freePort(), "b": freePort(), "sink": self.sink.port}
        self.config = writeOrganization(str(folder), ORGANIZATION.format(**self.ports))
        self.session = Session(self.config)
        for name in ("HubA", "HubB"):
            self.session.invoke(f"New-ExchangeCertificate -Server {name}")
        self.hubA = ServerProcess(self.config, sockets=1, server="HubA")
        self.hubB = self.startHubB()

    def startHubB(self):
        return ServerProcess(self.config, sockets=1, server="HubB")

    def stop(self):
        for server in (self.hubA, self.hubB):
            server.stop()
        self.sink.stop()

    def drain(self):
        # Their logs fill the pipe otherwise, and a server writing to a
        # full pipe stops.
        for server in (self.hubA, self.hubB):
            if server.process.poll() is None:
                server.drain()

    def send(self, numbers, recipient=lambda number: "kim@contoso.com"):
        with smtplib.SMTP("127.0.0.1", self.ports["a"], timeout=TIMEOUT) as client:
            for number in numbers:
                client.sendmail(
                    "sender@example.net", [recipient(number)],
                    f"From: sender@example.net\r\nSubject: shadow {number}\r\n\r\nHi\r\n",
                )
                self.drain()

    def received(self):
        """
        @return: {message number: how many times the sink got it}.
        """
        counts = {}
        for message in self.sink.messages:
            for line in message.data.split(b"\r\n"):
                if line.startswith(b"Subject: shadow "):
                    number = int(line.split()[-1])
                    counts[number] = counts.get(number, 0) + 1
        return counts

    def awaitAll(self, count):
        deadline = time.monotonic() + TIMEOUT * 4
        while len(self.received()) < count:
            self.drain()
            assert time.monotonic() < deadline, (
                f"{count - len(self.received())} messages did not reach the sink"
            )
            time.sleep(0.1)

    def shadowQueue(self):
        rows = self.session.invoke("Get-Queue -Server HubA")
        return [row for row in rows if row.DeliveryType == "ShadowRedundancy"]


@pytest.fixture
def organization(tmp_path):
    made = Organization(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_shadowsDiscardedAfterDelivery(organization):
    """
    With HubB healthy, HubA keeps shadows of what it forwards and discards
    them once HubB has relayed them: Get-Queue shows HubA's Shadow
    Redundancy queue for HubB, and it ends empty, as does HubA's spool.
    """
    organization.send(range(20))
    organization.awaitAll(20)
    deadline = time.monotonic() + TIMEOUT
    while True:
        organization.drain()
        shadows = organization.shadowQueue()
        if shadows and shadows[0].MessageCount == 0:
            break
        assert time.monotonic() < deadline, shadows
        time.sleep(0.1)
    assert [(row.Identity, row.NextHopDomain) for row in shadows] == [("HubA\\Shadow\\1", "HubB")]
    assert os.listdir(organization.folder / "var" / "HubA" / "queue" / "messages") == []
    assert organization.received() == dict.fromkeys(range(20), 1)


def test_hubBLostResubmitted(organization):
    """
    HubA relays L{MESSAGES} messages through HubB; half way, while HubB
    holds the messages the sink deferred (the odd ones so far), HubB is killed (SIGKILL) and its disk
    discarded.  After the heartbeat timeout HubA resubmits its shadows, and
    once a new HubB runs every message reaches the sink at least once.
    Without the shadows, the messages HubB held would be lost.
    """
    half = MESSAGES // 2
    # The sink defers the odd messages, so HubB holds those when it dies.
    organization.sink.refuse["held@contoso.com"] = "451 4.2.0 Try later"
    organization.send(
        range(half), lambda number: "held@contoso.com" if number % 2 else "kim@contoso.com"
    )
    organization.hubB.waitFor("451 4.2.0 Try later", count=half // 2, timeout=TIMEOUT)
    organization.hubB.kill()
    shutil.rmtree(organization.folder / "var" / "HubB")
    del organization.sink.refuse["held@contoso.com"]
    organization.send(range(half, MESSAGES))
    organization.hubA.waitFor("did not answer the shadow heartbeat 3 times", timeout=TIMEOUT)
    organization.hubB = organization.startHubB()
    organization.awaitAll(MESSAGES)
    counts = organization.received()
    duplicates = sum(count - 1 for count in counts.values())
    sys.stdout.write(
        f"\nshadow failover: {MESSAGES} sent, {len(counts)} reached the sink, "
        f"{duplicates} duplicates\n"
    )
    assert sorted(counts) == list(range(MESSAGES))
