"""
Tests for L{exmta.queue.dsn}: RFC 3464 delivery status notifications,
read back with the email package.
"""

import email
import email.policy
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exmta.envelope import Address, QueuedMessage, QueuedRecipient
from exmta.queue import dsn

ARRIVAL = 1767225600.0  # Thu, 01 Jan 2026 00:00:00 GMT

ORIGINAL = (
    b"Received: from client.contoso.com\r\n"
    b"Message-ID: <m1@contoso.com>\r\n"
    b"Subject: Quarterly\r\n report\r\n"
    b"From: alice@contoso.com\r\n"
    b"\r\n"
    b"Body, which a notification never carries.\r\n"
)


def queued(sender="alice@contoso.com"):
    return QueuedMessage(
        queueId="0" * 24,
        mailFrom=sender,
        recipients=(QueuedRecipient("bob@example.org"),),
        arrivalTime=ARRIVAL,
        size=len(ORIGINAL),
    )


def build(reports, message=ORIGINAL, sender="alice@contoso.com", **kwargs):
    return dsn.notification(
        queued(sender), message, reports, "huba.fabrikam.com", "postmaster@fabrikam.com",
        ARRIVAL + 3600, **kwargs,
    )


def parse(data):
    message = email.message_from_bytes(data, policy=email.policy.default)
    human, status, headers = message.iter_parts()
    perMessage, *perRecipient = status.get_payload()
    return message, human, perMessage, perRecipient, headers


FAILED = dsn.RecipientReport(
    "bob@example.org", dsn.FAILED, "5.1.1",
    diagnostic="550 5.1.1 No such user", remoteMta="mx.example.org",
    lastAttemptTime=ARRIVAL + 60,
)
DELAYED = dsn.RecipientReport("carol@example.org", dsn.DELAYED, "4.4.1", diagnostic="421 4.4.1 Refused")


def test_failureReport():
    data, messageId, body = build([FAILED])
    message, human, perMessage, (bob,), headers = parse(data)
    assert body == "7BIT"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers",
    ]
    assert message["From"] == "postmaster@fabrikam.com"
    assert message["To"] == "alice@contoso.com"
    assert message["Subject"] == "Undeliverable: Quarterly report"
    assert message["Message-ID"] == messageId
    assert messageId.endswith("@huba.fabrikam.com>")
    assert message["In-Reply-To"] == message["References"] == "<m1@contoso.com>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert b"\r\nDate: Thu, 01 Jan 2026 01:00:00 GMT\r\n" in data
    assert dict(perMessage) == {
        "Reporting-MTA": "dns; huba.fabrikam.com",
        "Arrival-Date": "Thu, 01 Jan 2026 00:00:00 GMT",
    }
    assert dict(bob) == {
        "Final-Recipient": "rfc822; bob@example.org",
        "Action": "failed",
        "Status": "5.1.1",
        "Remote-MTA": "dns; mx.example.org",
        "Diagnostic-Code": "smtp; 550 5.1.1 No such user",
        "Last-Attempt-Date": "Thu, 01 Jan 2026 00:01:00 GMT",
    }
    assert headers.get_payload(decode=True) == ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n"
    text = human.get_content()
    assert "bob@example.org" in text and "550 5.1.1 No such user" in text
    assert "Body, which" not in data.decode()


def test_delayReport():
    data, _, _ = build([DELAYED], willRetryUntil=ARRIVAL + 2 * 86400)
    message, human, perMessage, (carol,), headers = parse(data)
    assert message["Subject"] == "Delivery delayed: Quarterly report"
    assert carol["Action"] == "delayed"
    assert carol["Status"] == "4.4.1"
    assert carol["Will-Retry-Until"] == "Sat, 03 Jan 2026 00:00:00 GMT"
    assert "Remote-MTA" not in carol
    assert "Sat, 03 Jan 2026" in human.get_content()


def test_severalRecipients():
    data, _, _ = build([FAILED, dsn.RecipientReport("x@nowhere.test", dsn.FAILED, "5.4.4")])
    _, _, _, recipients, _ = parse(data)
    assert [r["Final-Recipient"] for r in recipients] == [
        "rfc822; bob@example.org", "rfc822; x@nowhere.test",
    ]
    assert "Diagnostic-Code" not in recipients[1]


def test_lineEndsAndLengths():
    """
    Every line ends CRLF (the queue stores canonical CRLF), none is longer
    than RFC 5322 allows, and a multi-line reply is one field line.
    """
    report = dsn.RecipientReport(
        "bob@example.org", dsn.FAILED, "5.7.1", diagnostic="550-5.7.1 Denied\r\n550 5.7.1 Go away"
    )
    data, _, _ = build([report])
    assert data.count(b"\n") == data.count(b"\r\n")
    assert b"\r\r" not in data
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    _, _, _, (bob,), _ = parse(data)
    assert bob["Diagnostic-Code"] == "smtp; 550-5.7.1 Denied 550 5.7.1 Go away"


def test_longReplyFolded():
    """
    A long (many-line) reply is folded, not cut: it reads back whole.
    """
    lines = [f"550-5.7.1 Line {n} of a long policy explanation from the remote server" for n in range(40)]
    report = dsn.RecipientReport("bob@example.org", dsn.FAILED, "5.7.1", diagnostic="\r\n".join(lines))
    data, _, _ = build([report])
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    _, human, _, (bob,), _ = parse(data)
    assert bob["Diagnostic-Code"] == "smtp; " + " ".join(lines)
    assert "Line 39 of a long" in human.get_content()


def test_eightBitHeaders():
    """
    Raw 8-bit original headers are passed on byte for byte, marked 8bit,
    and the notification needs BODY=8BITMIME.
    """
    original = "Subject: Grüße\r\n\r\nx\r\n".encode("utf-8")
    data, _, body = build([FAILED], message=original)
    assert body == "8BITMIME"
    assert "Subject: Undeliverable: Grüße\r\n".encode("utf-8") in data
    assert "Content-Transfer-Encoding: 8bit\r\n\r\nSubject: Grüße\r\n".encode("utf-8") in data


def test_noSubject():
    data, _, _ = build([FAILED], message=b"From: a@b\r\n\r\nx\r\n")
    message = parse(data)[0]
    assert message["Subject"] == "Undeliverable"
    assert message["In-Reply-To"] is None


def test_neverToNullSender():
    with pytest.raises(ValueError):
        build([FAILED], sender="")


@pytest.mark.parametrize(
    "reply, status",
    [
        ("550 5.1.1 No such user", "5.1.1"),
        ("421-4.4.1 Refused\r\n421 4.4.1 Refused", "4.4.1"),
        ("554 Transaction failed", "5.0.0"),
        ("452 Too many", "4.0.0"),
        ("550 5.7.1", "5.7.1"),
        ("Waiting for a send connector", "x"),
        (None, "x"),
        ("", "x"),
    ],
)
def test_statusOf(reply, status):
    assert dsn.statusOf(reply, "x") == status
    assert dsn.isReply(reply) == (status != "x")


@given(st.text())
def test_statusOfAnyText(text):
    status = dsn.statusOf(text, "x")
    assert status == "x" or status[0] in "245"


def test_envelopeAndSession():
    envelope = dsn.envelopeFor(queued(), "8BITMIME")
    assert envelope.mailFrom == Address("", "")
    assert envelope.mailFrom.isNull
    assert envelope.recipients == (Address("alice", "contoso.com"),)
    assert envelope.body == "8BITMIME"
    session = dsn.localSubmission("HubA")
    assert (session.connector, session.server, session.peerHost) == ("", "HubA", "")


@given(
    subject=st.text(alphabet=string.ascii_letters + string.digits + " .,:;!?()[]'-", max_size=3000),
    locals_=st.lists(
        st.text(alphabet=string.ascii_lowercase + string.digits + ".-_+", min_size=1, max_size=30),
        min_size=1, max_size=5,
    ),
)
def test_roundTrip(subject, locals_):
    """
    Whatever the original's subject and however many recipients, the
    report reads back as what was reported.
    """
    reports = [
        dsn.RecipientReport(f"{local}@example.org", dsn.FAILED, "5.1.1", diagnostic="550 5.1.1 No")
        for local in locals_
    ]
    original = f"Subject: {subject}\r\n\r\nx\r\n".encode("ascii")
    data, _, _ = build(reports, message=original)
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    message, _, _, recipients, headers = parse(data)
    assert [r["Final-Recipient"] for r in recipients] == [f"rfc822; {r.address}" for r in reports]
    assert headers.get_payload(decode=True) == f"Subject: {subject}\r\n".encode("ascii")
    expected = " ".join(subject.split())
    if all(len(word) < 800 for word in expected.split()):
        assert message["Subject"] == ("Undeliverable: " + expected if expected else "Undeliverable")
