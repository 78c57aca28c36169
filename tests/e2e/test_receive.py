"""
The receive side over real loopback sockets against C{twistd exmta}: the
reference document's three receive set-ups, relay refusal, STARTTLS
injection, smuggling and limits.
"""

import itertools
import re
import smtplib
import ssl
import subprocess
import warnings

import pytest

from tests.e2e.conftest import GATEWAY_PASSWORD, RunningOrganization
from tests.e2e.harness import RawClient, maildirMessages, queuedMessages


@pytest.fixture(scope="module", params=[0, 2], ids=["one process", "two receive workers"])
def organization(tmp_path_factory, request):
    """
    Every test of this module runs against a server that receives in its
    own process, and again against one whose sessions run in receive
    workers (C{--workers 2}): relay rights, AUTH, STARTTLS, smuggling and
    limits must hold the same in both.
    """
    running = RunningOrganization(str(tmp_path_factory.mktemp("org")), workers=request.param)
    yield running
    running.server.stop()

MESSAGE = b"From: a@contoso.com\r\nSubject: test\r\n\r\nHello.\r\n"


def tlsContext():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def queueIdOf(reply):
    match = re.search(r"<([0-9A-F]+)@", reply)
    assert match, reply
    return match.group(1)


# The Internet connector allows two connections per source address, and a
# closed connection is counted until the server has seen it close: each
# client of it comes from an address of its own unless a test says.
_INTERNET_SOURCES = (f"127.0.3.{n}" for n in itertools.cycle(range(1, 255)))


def client(organization, port="default", source=None):
    host = {"default": "127.0.0.1", "relay": "127.0.0.4", "internet": "127.0.0.3"}[port]
    if port == "internet" and source is None:
        source = next(_INTERNET_SOURCES)
    raw = RawClient(host, organization.ports[port], source=source)
    code, lines = raw.reply()
    assert code == 220, lines
    return raw


def ehlo(raw):
    code, lines = raw.command("EHLO client.contoso.com")
    assert code == 250, lines
    return [line[4:] for line in lines]


def sendMessage(raw, sender, recipients, body=MESSAGE):
    assert raw.command(f"MAIL FROM:<{sender}>")[0] == 250
    for recipient in recipients:
        code, lines = raw.command(f"RCPT TO:<{recipient}>")
        assert code == 250, lines
    assert raw.command("DATA")[0] == 354
    raw.send(body + b".\r\n")
    return raw.reply()


# Basic authentication over TLS on the default connector


def test_defaultConnectorOffersAuthOnlyAfterStartTLS(organization):
    raw = client(organization)
    extensions = ehlo(raw)
    assert "STARTTLS" in extensions
    assert not any(e.startswith("AUTH") for e in extensions)
    assert "PIPELINING" in extensions and "8BITMIME" in extensions
    assert "ENHANCEDSTATUSCODES" in extensions and "SIZE 10485760" in extensions
    code, lines = raw.command("AUTH PLAIN " + _plain("smtpgateway@fabrikam.com", GATEWAY_PASSWORD))
    assert code == 538 and lines[0].startswith("538 5.7.11"), lines
    assert raw.command("STARTTLS")[0] == 220
    raw.startTLS()
    extensions = ehlo(raw)
    assert "AUTH PLAIN LOGIN" in extensions and "STARTTLS" not in extensions
    raw.close()


def test_anonymousOnDefaultConnectorCannotSubmit(organization):
    raw = client(organization)
    ehlo(raw)
    code, lines = raw.command("MAIL FROM:<someone@contoso.com>")
    assert (code, lines[0][4:9]) == (530, "5.7.1"), lines
    raw.close()


def test_gatewayAccountAuthenticatesOverTLSAndDelivers(organization):
    with smtplib.SMTP("127.0.0.1", organization.ports["default"], timeout=30) as smtp:
        smtp.starttls(context=tlsContext())
        smtp.login("smtpgateway@fabrikam.com", GATEWAY_PASSWORD)
        code, text = smtp.docmd("MAIL FROM:<sender@contoso.com>")
        assert code == 250
        assert smtp.docmd("RCPT TO:<administrator@fabrikam.com>")[0] == 250
        code, text = smtp.data(MESSAGE)
        assert code == 250, text
    queueId = queueIdOf(text.decode())
    organization.server.waitFor(f"delivered {queueId}")
    delivered = [m for m in maildirMessages(organization.mailbox("administrator@fabrikam.com"))
                 if b"Subject: test" in m]
    assert delivered
    stored = delivered[-1]
    assert b"with ESMTPSA (version=TLSv1.3" in stored
    assert b"X-MS-Exchange-Organization-AuthAs: Internal" in stored
    assert stored.endswith(b"\r\n\r\nHello.\r\n")


def test_authenticatedUserMayRelayAndItStaysQueued(organization):
    with smtplib.SMTP("127.0.0.1", organization.ports["default"], timeout=30) as smtp:
        smtp.starttls(context=tlsContext())
        smtp.login("smtpgateway@fabrikam.com", GATEWAY_PASSWORD)
        assert smtp.mail("sender@contoso.com")[0] == 250
        assert smtp.rcpt("someone@contoso.com")[0] == 250
        code, text = smtp.data(MESSAGE)
        assert code == 250, text
    queueId = queueIdOf(text.decode())
    organization.server.waitFor(f"recorded {queueId}")
    recipient = queuedMessages(organization.queueFolder)[queueId]["recipients"][0]
    assert recipient["address"] == "someone@contoso.com"
    assert recipient["status"] == "Ready" and recipient["nextHop"] == "ToInternetGateway"
    assert "4.4." in recipient["lastError"] and recipient["attempts"] == 1


def test_wrongPasswordThenTooManyFailuresEndsSession(organization):
    raw = client(organization)
    ehlo(raw)
    raw.command("STARTTLS")
    raw.startTLS()
    ehlo(raw)
    code, lines = raw.command("AUTH PLAIN " + _plain("smtpgateway@fabrikam.com", "wrong"))
    assert lines[0].startswith("535 5.7.3"), lines
    code, lines = raw.command("AUTH LOGIN")
    assert code == 334
    code, lines = raw.command(_b64("smtpgateway@fabrikam.com"))
    assert code == 334
    code, lines = raw.command(_b64("still wrong"))
    assert lines[0].startswith("535 5.7.3"), lines
    code, lines = raw.reply()
    assert code == 421, lines
    assert raw.closedByPeer()


def test_authProtocolErrors(organization):
    raw = client(organization)
    ehlo(raw)
    raw.command("STARTTLS")
    raw.startTLS()
    ehlo(raw)
    assert raw.command("AUTH CRAM-MD5")[1][0].startswith("504 5.7.4")
    assert raw.command("AUTH PLAIN")[0] == 334
    assert raw.command("*")[1][0].startswith("501")
    assert raw.command("AUTH PLAIN")[0] == 334
    assert raw.command("not base64!")[1][0].startswith("501")
    code, lines = raw.command("AUTH PLAIN " + _plain("kim@fabrikam.com", "Kim-Pa55"))
    assert code == 235, lines
    assert raw.command("AUTH PLAIN " + _plain("kim@fabrikam.com", "Kim-Pa55"))[0] == 503
    raw.close()


def test_authenticatedUserCannotSendAsAnotherMailbox(organization):
    with smtplib.SMTP("127.0.0.1", organization.ports["default"], timeout=30) as smtp:
        smtp.starttls(context=tlsContext())
        smtp.login("kim@fabrikam.com", "Kim-Pa55")
        code, text = smtp.docmd("MAIL FROM:<administrator@fabrikam.com>")
        assert (code, text[:5]) == (550, b"5.7.1")
        smtp.docmd("RSET")
        assert smtp.docmd("MAIL FROM:<kim@fabrikam.com>")[0] == 250
        assert smtp.docmd("RCPT TO:<administrator@fabrikam.com>")[0] == 250
        assert smtp.docmd("DATA")[0] == 354
        smtp.send(b"From: The Boss <administrator@fabrikam.com>\r\nSubject: spoof\r\n\r\nx\r\n.\r\n")
        code, text = smtp.getreply()
        assert (code, text[:5]) == (550, b"5.7.1")
        assert smtp.docmd("MAIL FROM:<kim@fabrikam.com>")[0] == 250
        assert smtp.docmd("RCPT TO:<administrator@fabrikam.com>")[0] == 250
        code, text = smtp.data(b"From: Kim <kim@fabrikam.com>\r\nSubject: own\r\n\r\nx\r\n")
        assert code == 250, text


def test_swaksAuthenticatesOverTLS(organization):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{organization.ports['default']}",
         "--from", "sender@contoso.com", "--to", "kim@fabrikam.com",
         "--tls", "--auth", "LOGIN", "--auth-user", "smtpgateway@fabrikam.com",
         "--auth-password", GATEWAY_PASSWORD, "--header", "Subject: via swaks"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.6.0" in result.stdout
    queueId = queueIdOf(result.stdout.split("250 2.6.0")[1])
    organization.server.waitFor(f"delivered {queueId}")
    assert any(b"Subject: via swaks" in m for m in maildirMessages(organization.mailbox("kim@fabrikam.com")))


def test_swaksWithoutTLSCannotAuthenticate(organization):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{organization.ports['default']}",
         "--from", "sender@contoso.com", "--to", "kim@fabrikam.com",
         "--auth", "PLAIN", "--auth-user", "smtpgateway@fabrikam.com",
         "--auth-password", GATEWAY_PASSWORD],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "250 2.6.0" not in result.stdout


# The externally secured gateway


def test_externallySecuredGatewayRelaysWithoutAuth(organization):
    raw = client(organization, source="127.0.0.10")
    ehlo(raw)
    code, lines = sendMessage(raw, "news@contoso.com", ["someone@contoso.com", "kim@fabrikam.com"])
    assert code == 250, lines
    raw.close()
    queueId = queueIdOf(lines[0])
    organization.server.waitFor(f"recorded {queueId}")
    # One queue item for the transaction, not one per recipient.
    queued = queuedMessages(organization.queueFolder)[queueId]
    assert {r["address"]: r["status"] for r in queued["recipients"]} == {
        "someone@contoso.com": "Ready", "kim@fabrikam.com": "Delivered"}


def test_otherSourcesGetTheDefaultConnector(organization):
    raw = client(organization, source="127.0.0.11")
    ehlo(raw)
    assert raw.command("MAIL FROM:<news@contoso.com>")[0] == 530
    raw.close()


def test_externallySecuredKeepsOrganizationHeaders(organization):
    raw = client(organization, source="127.0.0.10")
    ehlo(raw)
    body = b"X-MS-Exchange-Organization-SCL: -1\r\nX-MS-Exchange-Organization-AuthAs: Anonymous\r\nSubject: org\r\n\r\nx\r\n"
    code, lines = sendMessage(raw, "a@contoso.com", ["administrator@fabrikam.com"], body)
    assert code == 250
    organization.server.waitFor(f"delivered {queueIdOf(lines[0])}")
    stored = [m for m in maildirMessages(organization.mailbox("administrator@fabrikam.com")) if b"Subject: org" in m][-1]
    assert b"X-MS-Exchange-Organization-SCL: -1" in stored
    assert stored.count(b"X-MS-Exchange-Organization-AuthAs") == 1
    assert b"X-MS-Exchange-Organization-AuthAs: Internal" in stored


# The anonymous relay


def test_anonymousRelayFromTheGatewayAddress(organization):
    raw = client(organization, "relay", source="127.0.5.77")
    ehlo(raw)
    code, lines = sendMessage(raw, "a@contoso.com", ["b@contoso.com"])
    assert code == 250, lines
    raw.close()


def test_anonymousRelayRefusesOtherAddresses(organization):
    raw = RawClient("127.0.0.4", organization.ports["relay"], source="127.0.5.78")
    code, lines = raw.reply()
    assert (code, lines[0][4:9]) == (421, "4.3.2"), lines
    assert raw.closedByPeer()


# No open relay on the Internet connector


@pytest.mark.parametrize(
    "recipient, expected",
    [
        ("<someone@contoso.com>", "550 5.7.1"),
        ("<someone%contoso.com@fabrikam.com>", "550 5.1.1"),
        ("<@fabrikam.com:someone@contoso.com>", "550 5.7.1"),
        ('<"someone@contoso.com"@fabrikam.com>', "550 5.1.1"),
        ("<someone@contoso.com@fabrikam.com>", "501 5.1.3"),
        ("<contoso.com!someone@fabrikam.com>", "550 5.1.1"),
        ("<nobody@fabrikam.com>", "550 5.1.1"),
        # DSN parameters are accepted, and open no relay.
        ("<someone@contoso.com> NOTIFY=NEVER", "550 5.7.1"),
    ],
)
def test_anonymousCannotRelay(organization, recipient, expected):
    raw = client(organization, "internet")
    ehlo(raw)
    assert raw.command("MAIL FROM:<a@contoso.com>")[0] == 250
    code, lines = raw.command(f"RCPT TO:{recipient}")
    assert lines[0].startswith(expected), lines
    raw.close()


def test_anonymousMayMailLocalMailboxesAndPostmaster(organization):
    raw = client(organization, "internet")
    ehlo(raw)
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com", "postmaster@fabrikam.com"])
    assert code == 250, lines
    assert raw.command("MAIL FROM:<>")[0] == 250
    assert raw.command("RCPT TO:<Postmaster>")[0] == 250
    raw.close()


def test_anonymousCannotSpoofAnAuthoritativeSenderWithoutTheRight(organization):
    # AnonymousUsers hold Accept-Authoritative-Domain-Sender in Exchange 2010,
    # so anonymous senders in fabrikam.com are accepted; authenticated users
    # are held to their own addresses (see the default connector test).
    raw = client(organization, "internet")
    ehlo(raw)
    assert raw.command("MAIL FROM:<administrator@fabrikam.com>")[0] == 250
    raw.close()


# STARTTLS command injection


def test_plaintextPipelinedAfterStartTLSIsDiscarded(organization):
    raw = client(organization)
    ehlo(raw)
    raw.send(b"STARTTLS\r\nMAIL FROM:<injected@contoso.com>\r\nRCPT TO:<kim@fabrikam.com>\r\n")
    code, lines = raw.reply()
    assert code == 220, lines
    assert raw.buffered() == b""
    raw.startTLS()
    code, lines = raw.command("RCPT TO:<kim@fabrikam.com>")
    assert code == 503, lines  # no EHLO, no MAIL: the injected commands never ran
    extensions = ehlo(raw)
    assert "AUTH PLAIN LOGIN" in extensions
    code, lines = raw.command("RCPT TO:<kim@fabrikam.com>")
    assert lines[0].startswith("503 5.5.1"), lines
    raw.close()


# SMTP smuggling and line handling


@pytest.mark.parametrize(
    "terminator",
    [b"\r\n.\n", b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r"],
)
def test_bareLineEndsNeitherEndDataNorSmuggle(organization, terminator):
    raw = client(organization, "internet")
    ehlo(raw)
    assert raw.command("MAIL FROM:<a@contoso.com>")[0] == 250
    assert raw.command("RCPT TO:<kim@fabrikam.com>")[0] == 250
    assert raw.command("DATA")[0] == 354
    smuggled = (
        b"Subject: first\r\n\r\nbody" + terminator
        + b"MAIL FROM:<ceo@fabrikam.com>\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n"
        + b"Subject: smuggled\r\n\r\nevil\r\n.\r\n"
    )
    raw.send(smuggled)
    code, lines = raw.reply()
    assert lines[0].startswith("550 5.6.11"), lines
    assert raw.command("NOOP")[0] == 250  # nothing else was queued as commands
    raw.close()


def test_overlongCommandLineIsRefusedAndNotExecuted(organization):
    raw = client(organization, "internet")
    ehlo(raw)
    # Over the 512 octets of RFC 5321 and the 100 RFC 3461 adds for DSN.
    raw.send(b"MAIL FROM:<" + b"a" * 700 + b"@contoso.com>\r\nNOOP\r\n")
    code, lines = raw.reply()
    assert lines[0].startswith("500 5.5.2"), lines
    assert raw.reply()[0] == 250
    assert raw.command("RCPT TO:<kim@fabrikam.com>")[0] == 503
    raw.close()


def test_overlongCommandLineGetsOneReplyHoweverItArrives(organization):
    """
    A 200,000-octet command line, which reaches the server in many reads,
    is answered once; the rest of it up to its CRLF is thrown away and the
    session goes on.
    """
    raw = client(organization, "internet")
    ehlo(raw)
    raw.send(b"MAIL FROM:<" + b"a" * 100_000)
    raw.send(b"b" * 100_000)
    code, lines = raw.reply()
    assert lines == ["500 5.5.2 Line too long"], lines
    raw.send(b"c" * 1000 + b"\r")
    raw.send(b"\nNOOP\r\n")
    assert raw.reply()[1] == ["250 2.0.0 OK"]
    assert raw.command("RSET")[1] == ["250 2.0.0 Resetting"]
    raw.close()


def test_overlongLineEndsTheAuthExchange(organization):
    """
    A SASL response line longer than AUTH allows fails the AUTH command
    (RFC 4954 section 6), however it arrives: what follows is a command
    again, not the next SASL step.
    """
    raw = client(organization)
    ehlo(raw)
    raw.command("STARTTLS")
    raw.startTLS()
    ehlo(raw)
    assert raw.command("AUTH LOGIN")[0] == 334
    raw.send(b"A" * 12289 + b"\r\n")
    assert raw.reply()[1] == ["500 5.5.6 Authentication Exchange line is too long"]
    assert raw.command("NOOP")[1] == ["250 2.0.0 OK"]
    assert raw.command("AUTH PLAIN")[0] == 334
    raw.send(b"A" * 13000)
    assert raw.reply()[1] == ["500 5.5.6 Authentication Exchange line is too long"]
    raw.send(b"A" * 13000 + b"\r\n")
    code, lines = raw.command("QUIT")
    assert lines == ["221 2.0.0 Service closing transmission channel"], lines
    raw.close()


def test_lineAfterAuthIsNeverLoggedInClear(organization):
    """
    A client that sends its credentials after an AUTH the server refused
    (here 538, before TLS) does not get them into the protocol log.
    """
    raw = client(organization)
    ehlo(raw)
    assert raw.command("AUTH PLAIN")[1][0].startswith("538 5.7.11")
    credentials = _plain("smtpgateway@fabrikam.com", GATEWAY_PASSWORD)
    assert raw.command(credentials)[0] == 500
    assert raw.command("AUTH LOGIN " + _b64("smtpgateway@fabrikam.com"))[0] == 538
    assert raw.command(_b64(GATEWAY_PASSWORD))[0] == 500
    assert raw.command("NOOP")[0] == 250
    raw.close()
    log = organization.receiveProtocolLog()
    assert ",<,AUTH PLAIN,response redacted" in log
    assert credentials not in log and _b64(GATEWAY_PASSWORD) not in log
    assert _b64("smtpgateway@fabrikam.com") not in log


def test_longTextLinesAreDeliveredByteExact(organization):
    """
    Lines longer than RFC 5321's 1,000 octets (unwrapped HTML, long
    base64, long unfolded headers) are taken and stored as they came, as
    Exchange and Postfix take them; dot-stuffing is undone even at their
    start.
    """
    raw = client(organization, "internet")
    ehlo(raw)
    body = (b"X-Long-Header: " + b"h" * 5000 + b"\r\nSubject: long lines\r\n\r\n"
            + b"<p>" + b"x" * 20_000 + b"</p>\r\n" + b"." * 3 + b"y" * 1500 + b"\r\n"
            + b"z" * 999 + b"\r\n" + b"w" * 998 + b"\r\n")
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], stuffed)
    assert code == 250, lines
    assert raw.command("NOOP")[0] == 250
    raw.close()
    organization.server.waitFor(f"delivered {queueIdOf(lines[0])}")
    assert [m for m in maildirMessages(organization.mailbox("kim@fabrikam.com"))
            if m.endswith(body)]


def test_longHeaderLineWithinMaxHeaderSizeIsDelivered(organization):
    raw = client(organization, "relay", source="127.0.5.77")
    ehlo(raw)
    body = b"Subject: long header\r\nX-Unfolded: " + b"v" * 50_000 + b"\r\n\r\n" + b"q" * 300_000 + b"\r\n"
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], body)
    assert code == 250, lines
    raw.close()
    organization.server.waitFor(f"delivered {queueIdOf(lines[0])}")
    assert [m for m in maildirMessages(organization.mailbox("kim@fabrikam.com"))
            if m.endswith(body)]


def test_nulInMessageIsRefused(organization):
    """
    A NUL octet in the content is refused, as Postfix with its documented
    C{message_reject_characters = \\0}: a next hop that drops NULs would
    read C{CRLF NUL . CRLF} as the end of data.
    """
    raw = client(organization, "internet")
    ehlo(raw)
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"],
                              b"Subject: nul\r\n\r\nfirst\r\n\x00.\r\nMAIL FROM:<x@contoso.com>\r\n")
    assert lines == ["550 5.6.0 Message contains NUL characters"], lines
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], MESSAGE)
    assert code == 250, lines
    raw.close()


def test_pipelinedRepliesComeBackInOrder(organization):
    raw = client(organization, "internet")
    ehlo(raw)
    raw.send(
        b"MAIL FROM:<a@contoso.com>\r\nRCPT TO:<kim@fabrikam.com>\r\n"
        b"RCPT TO:<nobody@fabrikam.com>\r\nRCPT TO:<postmaster@fabrikam.com>\r\nDATA\r\n"
    )
    replies = [raw.reply()[1][0][:9] for _ in range(5)]
    assert replies == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354 Start"]
    raw.send(b"Subject: pipelined\r\n\r\nx\r\n.\r\nNOOP\r\n")
    assert raw.reply()[1][0].startswith("250 2.6.0")
    assert raw.reply()[0] == 250
    raw.close()


# Limits


def test_sizeDeclaredAtMailIsChecked(organization):
    raw = client(organization, "internet")
    extensions = ehlo(raw)
    assert "SIZE 65536" in extensions
    code, lines = raw.command("MAIL FROM:<a@contoso.com> SIZE=70000")
    assert lines[0].startswith("552 5.3.4"), lines
    assert raw.command("MAIL FROM:<a@contoso.com> SIZE=1000 BODY=8BITMIME")[0] == 250
    raw.close()


def test_sizeCountedDuringData(organization):
    raw = client(organization, "internet")
    ehlo(raw)
    body = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 70
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], body)
    assert lines[0].startswith("552 5.3.4"), lines
    assert raw.command("NOOP")[0] == 250
    raw.close()


def test_tooManyRecipients(organization):
    raw = client(organization, "internet")
    ehlo(raw)
    assert raw.command("MAIL FROM:<a@contoso.com>")[0] == 250
    for _ in range(3):
        assert raw.command("RCPT TO:<kim@fabrikam.com>")[0] == 250
    code, lines = raw.command("RCPT TO:<kim@fabrikam.com>")
    assert lines[0].startswith("452 4.5.3"), lines
    raw.close()


def test_connectionsPerSourceAreLimited(organization):
    first, second = (client(organization, "internet", source="127.0.0.98") for _ in range(2))
    third = RawClient("127.0.0.3", organization.ports["internet"], source="127.0.0.98")
    code, lines = third.reply()
    assert lines[0].startswith("421 4.3.2"), lines
    other = client(organization, "internet", source="127.0.0.99")
    for raw in (first, second, third, other):
        raw.close()


def test_oversizedHeaderIsRefusedAndTheSessionGoesOn(organization):
    """
    A header over MaxHeaderSize is refused once the data has ended, with
    Exchange's text, and the session stays as after any refused message.
    """
    raw = client(organization, "internet")
    ehlo(raw)
    body = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"z" * 100) for n in range(90)) + b"\r\nx\r\n"
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], body)
    assert lines == ["552 5.3.4 Header size exceeds fixed maximum size"], lines
    assert raw.command("NOOP")[0] == 250
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], MESSAGE)
    assert code == 250, lines
    raw.close()


@pytest.mark.parametrize("command", [b"EHLO a\x00b (spoofed.example)", b"HELO a\x01b",
                                     b"EHLO a\tb", b"EHLO ab\x7f"])
def test_controlCharactersInHelloAreRefused(organization, command):
    raw = client(organization, "internet")
    raw.send(command + b"\r\n")
    assert raw.reply()[1] == ["501 5.5.4 Invalid domain name"]
    assert raw.command("MAIL FROM:<a@contoso.com>")[1][0].startswith("503 5.5.1")
    ehlo(raw)
    raw.close()


def test_tlsBelowVersion12IsRefused(organization):
    raw = client(organization)
    ehlo(raw)
    assert raw.command("STARTTLS")[0] == 220
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match="(?i)version|handshake|protocol"):
        context.wrap_socket(raw.sock, server_hostname="huba.fabrikam.com")
    raw.close()


def test_hopCountLoopIsRefused(organization):
    raw = client(organization, "internet")
    ehlo(raw)
    body = b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n" * 30 + b"Subject: loop\r\n\r\nx\r\n"
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], body)
    assert lines[0].startswith("554 5.4.6"), lines
    raw.close()


def test_anonymousCannotForgeAuthenticationOrReceivedHeaders(organization):
    raw = client(organization, "internet")
    ehlo(raw)
    body = (b"Received: from forged by huba.fabrikam.com; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"X-MS-Exchange-Organization-AuthAs: Internal\r\n"
            b"X-MS-Exchange-Organization-SCL: -1\r\nSubject: forged\r\n\r\nx\r\n")
    code, lines = sendMessage(raw, "a@contoso.com", ["kim@fabrikam.com"], body)
    assert code == 250
    organization.server.waitFor(f"delivered {queueIdOf(lines[0])}")
    stored = [m for m in maildirMessages(organization.mailbox("kim@fabrikam.com")) if b"Subject: forged" in m][-1]
    assert b"X-MS-Exchange-Organization-AuthAs: Anonymous" in stored
    assert b"AuthAs: Internal" not in stored
    assert b"SCL" not in stored
    # AnonymousUsers hold Accept-Headers-Routing, so the Received trail stays.
    assert b"from forged" in stored


def _b64(text):
    import base64

    return base64.b64encode(text.encode()).decode()


def _plain(user, password):
    import base64

    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_listenBacklogHoldsManyConnectingClients(organization):
    """
    A hundred clients connecting at once must not overflow the accept
    queue (Twisted's default backlog is 50): the kernel shows the backlog
    as a listening socket's Send-Q.
    """
    port = organization.ports["internet"]
    listing = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                             text=True, check=True).stdout.split()
    with open("/proc/sys/net/core/somaxconn") as handle:
        ceiling = int(handle.read())
    assert int(listing[2]) == min(4096, ceiling), listing


def test_largeMessageArrivesExactlyInOneWrite(organization):
    """
    A 300 KB message with stuffed dots and long (but legal) lines, sent in
    one write with the next command behind it, is queued byte for byte.
    """
    raw = client(organization, "relay", source="127.0.5.77")
    ehlo(raw)
    lines = [b"..dot %d" % n if n % 7 == 0 else b"%d " % n + b"q" * (n % 998) for n in range(600)]
    original = b"Subject: big\r\n\r\n" + b"".join(
        (line[1:] if line.startswith(b"..") else line) + b"\r\n" for line in lines)
    stuffed = b"Subject: big\r\n\r\n" + b"".join(line + b"\r\n" for line in lines)
    assert raw.command("MAIL FROM:<a@contoso.com>")[0] == 250
    assert raw.command("RCPT TO:<kim@fabrikam.com>")[0] == 250
    assert raw.command("DATA")[0] == 354
    raw.send(stuffed + b".\r\nNOOP\r\n")
    code, replyLines = raw.reply()
    assert code == 250, replyLines
    assert raw.reply()[0] == 250
    queueId = queueIdOf(replyLines[0])
    raw.close()
    organization.server.waitFor(f"delivered {queueId}")
    stored = [m for m in maildirMessages(organization.mailbox("kim@fabrikam.com"))
              if m.endswith(original)]
    assert len(stored) == 1
