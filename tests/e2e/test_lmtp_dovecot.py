"""
The Lmtp delivery agent against a real, private Dovecot
(L{tests.e2e.dovecot}), in a real C{twistd exmta}: mail taken over SMTP
appears in the user's Dovecot Maildir, exactly; a recipient Dovecot does
not know fails with Dovecot's 550 and the sender gets a non-delivery
report; a recipient whose mailbox is full is refused by Dovecot after
DATA (552 5.2.2) while the other recipient of the message is delivered;
with Dovecot down the recipient is deferred, and delivered once
Dovecot runs and the queue is retried (Retry-Queue).

The submission connector checks passwords with the PasswdFile checker
against Dovecot's own passwd-file: one password for SMTP and the store.
"""

import os
import smtplib
import subprocess
import sys
import time

import pytest

from tests.e2e.dovecot import DovecotPeer
from tests.e2e.harness import REPOSITORY, ServerProcess, freePort, writeOrganization

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
DeliveryAgent = Lmtp

[DeliveryAgent Lmtp]
{where}

[AcceptedDomain fabrikam.com]

[Mailbox Alice Smith]
PrimarySmtpAddress = alice@fabrikam.com
EmailAddresses = smtp:a.smith@fabrikam.com

# A mailbox exmta knows and Dovecot does not.
[Mailbox Bob]
PrimarySmtpAddress = bob@fabrikam.com

# A mailbox whose Dovecot quota (1 KB) a large message exceeds.
[Mailbox Carol]
PrimarySmtpAddress = carol@fabrikam.com

[ReceiveConnector Client HubA]
Usage = Client
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.1
AuthMechanism = Tls, BasicAuth
AuthTarpitInterval = 00:00:00
CredentialCheckers = PasswdFile

[CredentialChecker PasswdFile]
Path = {passwd}
"""

ALICE_PASSWORD = "Alice-Pa55"

# Lines a careless DATA encoding would break: a lone dot, leading dots, and
# a line that looks like the end of data after unstuffing.
BODY = b"Hello Alice.\r\n.\r\n..two dots\r\n.\r\n\r\nthe end\r\n"


class Running:
    """
    A private Dovecot and an exmta delivering to it over LMTP.
    """

    def __init__(self, folder, socket=False):
        self.dovecot = DovecotPeer(
            {"alice@fabrikam.com": ALICE_PASSWORD, "carol@fabrikam.com": "Carol-Pa55"},
            quotas={"carol@fabrikam.com": "1K"},
        )
        self.port = freePort()
        where = (
            f"Socket = {self.dovecot.socketPath}"
            if socket
            else f"Host = 127.0.0.1:{self.dovecot.port}\nConnectionTimeout = 00:00:05"
        )
        self.config = writeOrganization(
            folder, ORGANIZATION.format(where=where, port=self.port, passwd=self.dovecot.passwd)
        )
        self.server = None

    def start(self):
        self.server = ServerProcess(self.config, sockets=1)

    def stop(self):
        if self.server is not None:
            self.server.stop()
        self.dovecot.remove()

    def send(self, recipients, subject, body=BODY):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo("client.fabrikam.com")
            client.login("alice@fabrikam.com", ALICE_PASSWORD)
            message = (
                f"From: alice@fabrikam.com\r\nSubject: {subject}\r\n\r\n".encode() + body
            )
            assert client.sendmail("alice@fabrikam.com", recipients, message) == {}

    def shell(self, command):
        return subprocess.run(
            [sys.executable, "-m", "exmta.cli", "shell", "-c", self.config, "-Command", command],
            env=dict(os.environ, PYTHONPATH=REPOSITORY),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout


def withSubject(messages, subject):
    """
    @return: the C{messages} whose own header (not a report's copy of
        another's) has C{subject}.
    """
    wanted = f"\nSubject: {subject}\n".encode()
    return [m for m in messages if wanted in m.replace(b"\r\n", b"\n").partition(b"\n\n")[0] + b"\n"]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    running = Running(str(tmp_path_factory.mktemp("lmtp")))
    running.dovecot.start()
    running.start()
    yield running
    running.stop()


def test_deliveredIntoDovecotsMaildir(running):
    # Sent to an alias: Dovecot knows the mailbox by its primary address.
    running.send(["a.smith@fabrikam.com"], "over LMTP")
    (message,) = withSubject(running.dovecot.waitForMessages("alice@fabrikam.com"), "over LMTP")
    # Dovecot's Maildir files have LF line ends; the lines are exact.
    header, _, body = message.partition(b"\n\n")
    assert body == BODY.replace(b"\r\n", b"\n")
    assert b"by huba.fabrikam.com" in header  # exmta's Received header
    assert b"with LMTP" in header  # Dovecot's
    assert b"Delivered-To: alice@fabrikam.com" in header
    assert b"Return-Path: <alice@fabrikam.com>" in header
    assert not os.path.exists(os.path.join(os.path.dirname(running.config), "var", "mailboxes"))


def test_aUserDovecotDoesNotKnowGetsAnNdr(running):
    running.send(["bob@fabrikam.com", "alice@fabrikam.com"], "for Bob")
    running.server.waitFor("failed", count=1)
    messages = running.dovecot.waitForMessages("alice@fabrikam.com", count=3)
    assert len(withSubject(messages, "for Bob")) == 1
    (report,) = [m for m in messages if b"bob@fabrikam.com" in m and b"multipart/report" in m]
    assert b"5.1.1" in report
    assert b"Status: 5.1.1" in report
    assert running.dovecot.messages("bob@fabrikam.com") == []


def test_aFullMailboxFailsOnlyItsRecipient(running):
    """
    Dovecot answers each recipient after DATA: one transaction, two outcomes.
    """
    running.send(["carol@fabrikam.com", "alice@fabrikam.com"], "large", body=(b"y" * 76 + b"\r\n") * 40)
    running.server.waitFor("to carol@fabrikam.com: 552 5.2.2")

    def arrived():
        messages = running.dovecot.messages("alice@fabrikam.com")
        reports = [m for m in messages if b"Status: 5.2.2" in m and b"carol@fabrikam.com" in m]
        return withSubject(messages, "large"), reports

    deadline = time.monotonic() + 30
    while not all(arrived()):
        assert time.monotonic() < deadline, running.dovecot.log()
        time.sleep(0.02)
    assert running.dovecot.messages("carol@fabrikam.com") == []


def test_longLinesReachDovecotExactly(running):
    """
    Lines longer than RFC 5321's 1,000 octets, which exmta takes, are
    handed over LMTP and stored unchanged.
    """
    body = b"<html>" + b"x" * 30_000 + b"</html>\r\n.." + b"y" * 2000 + b"\r\nend\r\n"
    before = len(running.dovecot.messages("alice@fabrikam.com"))
    running.send(["alice@fabrikam.com"], "long lines", body=body)
    (message,) = withSubject(
        running.dovecot.waitForMessages("alice@fabrikam.com", count=before + 1), "long lines")
    assert message.partition(b"\n\n")[2] == body.replace(b"\r\n", b"\n")


def test_dovecotDownDefersUntilItRunsAndTheQueueIsRetried(tmp_path):
    running = Running(str(tmp_path), socket=True)
    try:
        running.start()
        running.send(["alice@fabrikam.com"], "while down")
        running.server.waitFor("deferred")
        assert "cannot reach the LMTP server" in running.server.drain()
        queues = running.shell("Get-Queue | Format-Table Identity,MessageCount,LastError -AutoSize")
        assert "4.4.1" in queues, queues
        identity = next(
            line.split()[0] for line in queues.splitlines() if "MailboxDelivery" in line
        )
        running.dovecot.start()
        running.shell(f"Retry-Queue -Identity {identity}")
        (message,) = running.dovecot.waitForMessages("alice@fabrikam.com")
        assert b"Subject: while down" in message
    finally:
        running.stop()
