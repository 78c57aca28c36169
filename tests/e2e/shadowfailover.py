"""
The shadow redundancy failover of issue 16, shared by the suite
(tests/e2e/test_shadow_redundancy.py) and campaigns/shadowfailover.py:
HubA forwards mail for contoso.com to HubB (certificate authenticated),
HubB relays it to a sink; HubB dies with its disk half way.
"""

import shutil
import smtplib
import time

from exmta.shell.runtime import Session, loadCmdlets
from tests.e2e.harness import ServerProcess, freePort, writeOrganization
from tests.e2e.sink import SmtpSink

TIMEOUT = 60

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



def failover(organization, messages):
    """
    Send C{messages} messages to HubA.  The sink defers the odd ones of the
    first half, so HubB holds them when, once it has deferred them all, it
    is killed (SIGKILL) and its disk discarded.  Then the second half is
    sent; once HubA says its heartbeat to HubB failed
    ShadowHeartbeatRetryCount times (it resubmits), a new HubB is started,
    and every message must reach the sink.

    @return: {message number: how many times the sink got it}.
    """
    half = messages // 2
    organization.sink.refuse["held@contoso.com"] = "451 4.2.0 Try later"
    organization.send(
        range(half), lambda number: "held@contoso.com" if number % 2 else "kim@contoso.com"
    )
    organization.hubB.waitFor("451 4.2.0 Try later", count=half // 2, timeout=TIMEOUT)
    organization.hubB.kill()
    shutil.rmtree(organization.folder / "var" / "HubB")
    del organization.sink.refuse["held@contoso.com"]
    organization.send(range(half, messages))
    organization.hubA.waitFor("did not answer the shadow heartbeat 3 times", timeout=TIMEOUT)
    organization.hubB = organization.startHubB()
    organization.awaitAll(messages)
    return organization.received()
