"""
What C{twistd exmta} sends, as next hops see it: 8-bit content and lines
over RFC 5321's 1,000 octets.

  - 8-bit content goes with C{BODY=8BITMIME} even when its client did not
    declare it (a real Postfix, checked in the send protocol log); a next
    hop without 8BITMIME gets no such message, and the sender gets a
    report saying why (554 5.6.3).
  - Long lines: to a next hop that enforces the limit (tests/e2e/sink.py)
    and to one that does not (Postfix), every part still reads the same; a
    message signed before it reached exmta goes unchanged (the strict next
    hop refuses it, and the sender hears why); exmta's own DkimSigner signs
    what is sent, so its signature verifies at the strict next hop.

Messages with long lines are put straight into the stopped hub's queue
folder (L{queueDirectly}), so these tests depend on the send side only.
"""

import email
import glob
import os
import re
from email.policy import compat32

import pytest

from exmta.message.linelimit import LINE_LIMIT
from tests.e2e.postfix import PostfixPeer
from tests.e2e.sending import (
    SENDER,
    TIMEOUT,
    actionsOf,
    queueDirectly,
    reportsIn,
    sendConnector,
    unfolded,
    waitUntil,
)
from tests.e2e.sink import SmtpSink
from tests.e2e.test_builtin_agents import makeKey, writeKey
from tests.e2e.test_send import fabrikam, names  # noqa: F401 (fixtures)

GREETING = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 caf\u00e9\r\n"

HTML = b'<p><a href="https://contoso.com/offer?' + b"q=1&amp;" * 400 + b'">Offer</a></p>'
LONG_LINES = (
    b"From: Kim Akers <kim@fabrikam.com>\r\n"
    b"To: " + b", ".join(b"<reader%d@contoso.com>" % n for n in range(120)) + b"\r\n"
    b"Subject: long lines\r\n"
    b"Message-ID: <long-lines@fabrikam.com>\r\n"
    b"Date: Mon, 07 Dec 2026 09:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="alt"\r\n'
    b"\r\n"
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe offer, in short.\r\n"
    b"--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + HTML + b"\r\n--alt--\r\n"
)
SIGNED = b"DKIM-Signature: v=1; a=rsa-sha256; d=contoso.com; s=s1; bh=x; b=y\r\n" + LONG_LINES

DKIM_SIGNER = """
[TransportAgent DkimSigner]
Priority = 1
DomainName = fabrikam.com
Selector = s2026
PrivateKeyPath = keys/fabrikam.com.key
"""


@pytest.fixture(scope="module")
def postfix():
    """
    A Postfix smart host without STARTTLS; it takes lines of any length.
    """
    peer = PostfixPeer(hostname="longlines.contoso.test")
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def sink():
    made = []

    def make(**settings):
        made.append(SmtpSink(**settings))
        return made[-1]

    yield make
    for each in made:
        each.stop()


def connectorTo(port, **keys):
    return sendConnector("Outbound", AddressSpaces="*", SmartHosts="127.0.0.1", Port=port,
                         DNSRoutingEnabled="$false", **keys)


def sentCommands(org):
    """
    @return: the lines the hub sent, from its send protocol log.
    """
    sent = []
    for path in sorted(glob.glob(os.path.join(org.folder, "log", "HubA", "send", "*.LOG"))):
        with open(path, errors="replace") as handle:
            sent += [line for line in handle if ",>," in line]
    return sent


def parts(message):
    """
    @return: (content type, decoded payload) of every leaf part, and the
        unfolded To field.
    """
    parsed = email.message_from_bytes(message.replace(b"\r\n", b"\n"), policy=compat32)
    leaves = [(p.get_content_type(), p.get_payload(decode=True).replace(b"\r\n", b"\n"))
              for p in parsed.walk() if not p.is_multipart()]
    return leaves, re.sub(r"\s+", " ", parsed["To"])


# 8-bit content


def test_eightBitContentIsDeclaredWhateverItsClientSaid(fabrikam, postfix):  # noqa: F811
    """
    smtplib submits 8-bit text without BODY=8BITMIME; Postfix offers
    8BITMIME, and the hub declares it.
    """
    org = fabrikam(connectorTo(postfix.port, ProtocolLoggingLevel="Verbose"))
    hub = org.start()
    queueId = org.submit(["eightbit@contoso.com"], "undeclared eight bit", body=GREETING)
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [message] = postfix.waitForMessages("eightbit@contoso.com")
    assert GREETING.replace("\r\n", "\n").encode() in message
    [mail] = [line for line in sentCommands(org) if "MAIL FROM:" in line]
    assert re.search(r"MAIL FROM:<kim@fabrikam.com> SIZE=\d+ BODY=8BITMIME", mail), mail


def test_eightBitContentToANextHopWithout8BITMIMEIsReported(fabrikam, sink):  # noqa: F811
    """
    The next hop offers no 8BITMIME: the 8-bit message fails at once with
    554 5.6.3 and the sender gets a report; a 7-bit one goes.
    """
    peer = sink(eightBitMime=False)
    org = fabrikam(connectorTo(peer.port))
    hub = org.start()
    subject = "eight bit to a seven bit host"
    refused = org.submit(["old@contoso.com"], subject, body=GREETING)
    taken = org.submit(["old@contoso.com"], "seven bit to a seven bit host")
    hub.waitFor(f"failed {refused}", timeout=TIMEOUT)
    hub.waitFor(f"sent {taken}", timeout=TIMEOUT)
    [report] = waitUntil(lambda: reportsIn(org.mailbox(SENDER), subject), "a report", [hub])
    assert actionsOf(report) == [b"failed"]
    assert re.search(rb"^Status: *5\.6\.3", report, re.M)
    assert re.search(rb"^Diagnostic-Code: *smtp; *554 5\.6\.3 .*8BITMIME", unfolded(report), re.M)
    assert [m.data for m in peer.messages if b"seven bit to a seven bit host" in m.data]
    assert not [m for m in peer.messages if b"eight bit to a seven bit host" in m.data]


# Long lines


def test_longLinesFitForANextHopThatEnforcesTheLimit(fabrikam, sink):  # noqa: F811
    peer = sink(enforceLineLimit=True)
    org = fabrikam(connectorTo(peer.port))
    queueId = queueDirectly(org.queue(), ["strict@contoso.com"], LONG_LINES)
    hub = org.start()
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [arrived] = [m for m in peer.messages if not m.refused]
    assert max(map(len, arrived.data.split(b"\r\n"))) <= LINE_LIMIT
    assert parts(arrived.data) == parts(LONG_LINES)
    assert b"Content-Transfer-Encoding: quoted-printable" in arrived.data


def test_aSignedMessageGoesUnchangedAndTheStrictHopRefusesIt(fabrikam, sink):  # noqa: F811
    peer = sink(enforceLineLimit=True)
    org = fabrikam(connectorTo(peer.port))
    queueId = queueDirectly(org.queue(), ["strict@contoso.com"], SIGNED)
    hub = org.start()
    hub.waitFor(f"failed {queueId}", timeout=TIMEOUT)
    [refused] = peer.messages
    assert refused.refused and refused.data.endswith(SIGNED)
    [report] = waitUntil(lambda: reportsIn(org.mailbox(SENDER), "long lines"), "a report", [hub])
    assert re.search(rb"^Diagnostic-Code: *smtp; *500 5\.5\.2 Line too long", unfolded(report), re.M)


def test_longLinesToANextHopThatTakesThem(fabrikam, postfix):  # noqa: F811
    """
    Postfix takes long lines; the unsigned message still goes fitted (the
    sender cannot know), the signed one byte for byte.
    """
    org = fabrikam(connectorTo(postfix.port))
    fitted = queueDirectly(org.queue(), ["lax@contoso.com"], LONG_LINES)
    signed = queueDirectly(org.queue(), ["signed@contoso.com"], SIGNED)
    hub = org.start()
    hub.waitFor(f"sent {fitted}", timeout=TIMEOUT)
    hub.waitFor(f"sent {signed}", timeout=TIMEOUT)
    [message] = postfix.waitForMessages("lax@contoso.com")
    assert parts(message) == parts(LONG_LINES)
    assert max(map(len, message.split(b"\n"))) <= LINE_LIMIT
    [message] = postfix.waitForMessages("signed@contoso.com")
    # Postfix stores LF line ends, and adds its headers above.
    assert message.endswith(SIGNED.replace(b"\r\n", b"\n"))


def test_exmtasOwnSignatureCoversWhatIsSent(fabrikam, sink):  # noqa: F811
    """
    DkimSigner signs the fitted message: the strict next hop takes it, and
    the signature verifies there.
    """
    import dkim

    private, dnsfunc = makeKey()
    peer = sink(enforceLineLimit=True)
    org = fabrikam(connectorTo(peer.port) + DKIM_SIGNER)
    writeKey(org.folder, private)
    queueId = queueDirectly(org.queue(), ["signed@contoso.com"], LONG_LINES)
    hub = org.start()
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [arrived] = peer.messages
    assert not arrived.refused
    assert arrived.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(arrived.data, dnsfunc=dnsfunc)
    assert parts(arrived.data) == parts(LONG_LINES)
