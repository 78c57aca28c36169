"""
The Prometheus endpoint of C{twistd exmta}, scraped over HTTP after a
scripted mix of mail (accepted, refused, authenticated, a failed AUTH,
a STARTTLS session, delivered, deferred, bounced), and with receive workers, whose counts add
up and survive a worker's restart; and the health endpoints with
C{exmta check-health}.
"""

import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import (
    REPLY_TIMEOUT,
    STARTUP_TIMEOUT,
    RawClient,
    ServerProcess,
    alive,
    freePort,
    maildirMessages,
    writeOrganization,
)
from tests.e2e.sink import SmtpSink

PASSWORD = "Kim-Pa55"

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageTrackingLogPath = var/tracking

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = Tls, BasicAuth
PermissionGroups = AnonymousUsers, ExchangeUsers
AuthTarpitInterval = 00:00:00

[SendConnector ToContoso]
AddressSpaces = contoso.com
SmartHosts = 127.0.0.1
Port = {sink}
DNSRoutingEnabled = $false

[Monitoring HubA]
Binding = 127.0.0.1:{metrics}
"""


class Hub:
    def __init__(self, folder, workers=0, sink=25):
        self.folder = folder
        self.port = freePort()
        self.metricsPort = freePort()
        self.config = writeOrganization(
            str(folder),
            ORGANIZATION.format(port=self.port, sink=sink, metrics=self.metricsPort),
            accounts=[("kim@fabrikam.com", PASSWORD)],
        )
        self.server = ServerProcess(self.config, sockets=1, workers=workers)
        self.server.waitFor("serving /metrics and /health on")

    def get(self, path):
        """
        @return: (status, body text) of GET C{path} on the monitoring
            endpoint.
        """
        url = f"http://127.0.0.1:{self.metricsPort}{path}"
        try:
            with urllib.request.urlopen(url, timeout=REPLY_TIMEOUT) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8")

    def scrape(self):
        """
        @return: {(sample name, ((label, value), ...)): value}.
        """
        status, text = self.get("/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def awaitScrape(self, expected):
        """
        Scrape until every C{(name, labels, value)} of C{expected} holds.
        """
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            samples = self.scrape()
            wrong = [
                (name, labels, value, samples.get(_key(name, **labels)))
                for name, labels, value in expected
                if samples.get(_key(name, **labels)) != value
            ]
            if not wrong:
                return samples
            assert time.monotonic() < deadline, f"{wrong}\n{self.server.drain()[-3000:]}"
            self.server.drain()
            time.sleep(0.05)

    def send(self, recipients, subject, login=False):
        body = f"Subject: {subject}\r\nFrom: kim@fabrikam.com\r\n\r\n{subject}\r\n"
        with smtplib.SMTP("127.0.0.1", self.port, timeout=REPLY_TIMEOUT) as client:
            if login:
                client.login("kim@fabrikam.com", PASSWORD)
            return client.sendmail("kim@fabrikam.com", recipients, body)


def _key(name, **labels):
    return (name, tuple(sorted(labels.items())))


CONNECTOR = {"connector": "Default HubA"}


def test_aScriptedMixIsCounted(tmp_path):
    sink = SmtpSink(refuse={
        "defer@contoso.com": "451 4.2.0 Mailbox busy, try later",
        "bounce@contoso.com": "550 5.1.1 No such user",
    })
    hub = Hub(tmp_path, sink=sink.port)
    try:
        for number in range(2):
            hub.send(["kim@fabrikam.com"], f"anonymous {number}")
        hub.send(["kim@fabrikam.com"], "authenticated", login=True)
        hub.send(
            ["ok@contoso.com", "defer@contoso.com", "bounce@contoso.com"], "remote", login=True
        )
        client = RawClient("127.0.0.1", hub.port)
        client.reply()
        client.command("EHLO client.example.com")
        assert client.command("AUTH PLAIN AGtpbUBmYWJyaWthbS5jb20Ad3Jvbmc=")[0] == 535
        client.command("MAIL FROM:<someone@example.com>")
        assert client.command("RCPT TO:<nobody@fabrikam.com>")[0] == 550
        assert client.command("RCPT TO:<somebody@contoso.com>")[0] == 550
        client.command("QUIT")
        client.close()
        client = RawClient("127.0.0.1", hub.port)
        client.reply()
        client.command("EHLO client.example.com")
        assert client.command("STARTTLS")[0] == 220
        client.startTLS()
        assert client.command("EHLO client.example.com")[0] == 250
        client.command("QUIT")
        client.close()

        samples = hub.awaitScrape([
            ("exmta_receive_sessions_total", CONNECTOR, 6),
            ("exmta_tls_sessions_total", {"direction": "receive", "version": "TLSv1.3"}, 1),
            ("exmta_receive_messages_total", dict(CONNECTOR, authentication="anonymous"), 2),
            ("exmta_receive_messages_total", dict(CONNECTOR, authentication="authenticated"), 2),
            ("exmta_receive_auth_total", dict(CONNECTOR, result="success"), 2),
            ("exmta_receive_auth_total", dict(CONNECTOR, result="failure"), 1),
            ("exmta_receive_replies_refused_total", dict(CONNECTOR, code="535", status="5.7.3"), 1),
            ("exmta_receive_replies_refused_total", dict(CONNECTOR, code="550", status="5.1.1"), 1),
            ("exmta_receive_replies_refused_total", dict(CONNECTOR, code="550", status="5.7.1"), 1),
            # Three messages and the bounce's DSN to kim.
            ("exmta_deliveries_total", {"via": "Maildir", "outcome": "sent"}, 4),
            ("exmta_deliveries_total", {"via": "ToContoso", "outcome": "sent"}, 1),
            ("exmta_deliveries_total", {"via": "ToContoso", "outcome": "deferred"}, 1),
            ("exmta_deliveries_total", {"via": "ToContoso", "outcome": "failed"}, 1),
            ("exmta_dsns_total", {"kind": "failed"}, 1),
            ("exmta_delivery_delay_seconds_count", {"outcome": "sent"}, 5),
            ("exmta_delivery_delay_seconds_count", {"outcome": "failed"}, 1),
            ("exmta_queue_messages", {"queue": "ToContoso", "delivery_type":
                                      "SmartHostConnectorDelivery", "status": "Retry"}, 1),
            ("exmta_back_pressure_level", {"resource": "Server"}, 0),
        ])
        assert len(maildirMessages(os.path.join(tmp_path, "var", "mailboxes", "kim@fabrikam.com"))) == 4
        assert samples[_key("exmta_queue_oldest_message_age_seconds")] >= 0
        assert samples[_key("process_resident_memory_bytes")] > 0
        assert samples[_key("process_open_fds")] > 0
        assert any(name == "exmta_build_info" for name, _ in samples)
        assert _key("exmta_back_pressure_resource_value", resource="PrivateBytes") in samples
    finally:
        hub.server.stop()
        sink.stop()


def checkHealth(config):
    return subprocess.run(
        [sys.executable, "-m", "exmta.cli", "check-health", "-c", config],
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
    )


def test_healthEndpointsAndCheckHealth(tmp_path):
    hub = Hub(tmp_path)
    try:
        assert hub.get("/health/live")[0] == 200
        status, body = hub.get("/health/ready")
        assert status == 200, body
        assert '"ready": true' in body and '"backPressureLevel": "Normal"' in body
        result = checkHealth(hub.config)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ready" in result.stdout
    finally:
        hub.server.stop()
    result = checkHealth(hub.config)
    assert result.returncode != 0
    assert "not ready" in result.stdout + result.stderr


@pytest.mark.parametrize("workers", [2])
def test_workersCountsAddUpAndSurviveARestart(tmp_path, workers):
    hub = Hub(tmp_path, workers=workers)
    try:
        for number in range(6):
            hub.send(["kim@fabrikam.com"], f"first {number}")
        hub.awaitScrape([
            ("exmta_receive_sessions_total", CONNECTOR, 6),
            ("exmta_receive_messages_total", dict(CONNECTOR, authentication="anonymous"), 6),
        ])
        victim = next(pid for pid in hub.server.workerPids() if alive(pid))
        os.kill(victim, signal.SIGKILL)
        hub.server.waitFor("started receive worker", count=workers + 1)
        hub.server.waitFor("receive worker accepting on", count=workers + 1)
        for number in range(4):
            hub.send(["kim@fabrikam.com"], f"second {number}")
        hub.awaitScrape([
            ("exmta_receive_sessions_total", CONNECTOR, 10),
            ("exmta_receive_messages_total", dict(CONNECTOR, authentication="anonymous"), 10),
            ("exmta_deliveries_total", {"via": "Maildir", "outcome": "sent"}, 10),
        ])
    finally:
        hub.server.stop()
