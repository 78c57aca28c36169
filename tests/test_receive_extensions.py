"""
The ESMTP extensions of a receive connector in memory: each switch shows
or hides its EHLO keyword, and what a hidden keyword announces is refused;
RFC 3461's parameters reach the queue.
"""

import pytest
from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet.testing import MemoryReactorClock

from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.errors import ConfigError
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect
from tests.test_protocol import ORG, ControlledQueue

def makeFactory(settings="", clock=None, base=ORG):
    organization = parseOrganization(base + settings, "/nonexistent/org.ini")
    connector = organization.receiveConnectors[0]
    portal = Portal(ConnectorRealm(organization, connector), [AllowAnonymousAccess()])
    return ReceiveFactory(
        organization, organization.transportServers["HubA"], {connector.identity: portal},
        ControlledQueue(), Resolver(organization), None, clock or MemoryReactorClock(),
    )


DEFAULT_KEYWORDS = [
    "SIZE 10485760", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN",
    "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8",
]


class Session:
    def __init__(self, settings="", factory=None, peer="127.0.0.9"):
        self.factory = factory or makeFactory(settings)
        self.clock = self.factory.reactor
        self.queue = self.factory.queue
        self.protocol, self.transport = connect(self.factory, peer=(peer, 40000))
        self.greeting = self.transport.takeReplies()

    def say(self, *lines):
        self.protocol.dataReceived(b"".join(line + b"\r\n" for line in lines))
        return self.transport.takeReplies()

    def keywords(self):
        return [line[4:] for line in self.say(b"EHLO client.contoso.com")[1:]]


def test_defaultKeywordsInExchangesOrder():
    assert Session().keywords() == DEFAULT_KEYWORDS


@pytest.mark.parametrize("key, keyword", [
    ("DeliveryStatusNotificationEnabled", "DSN"),
    ("PipeliningEnabled", "PIPELINING"),
    ("EnhancedStatusCodesEnabled", "ENHANCEDSTATUSCODES"),
    ("EightBitMimeEnabled", "8BITMIME"),
    ("BinaryMimeEnabled", "BINARYMIME"),
])
def test_eachSwitchHidesItsKeyword(key, keyword):
    keywords = Session(f"{key} = $false\n").keywords()
    assert keyword not in keywords
    assert keywords == [k for k in DEFAULT_KEYWORDS if k != keyword]


def test_chunkingOffTakesBinaryMimeWithIt():
    keywords = Session("ChunkingEnabled = $false\n").keywords()
    assert "CHUNKING" not in keywords and "BINARYMIME" not in keywords


def test_binaryMimeNeedsChunking():
    with pytest.raises(ConfigError) as raised:
        parseOrganization(ORG + "ChunkingEnabled = $false\nBinaryMimeEnabled = $true\n", "/x/org.ini")
    assert "BinaryMimeEnabled" in str(raised.value) and "CHUNKING" in str(raised.value)


def test_dsnParametersReachTheQueue():
    session = Session()
    session.keywords()
    replies = session.say(
        b"MAIL FROM:<max@contoso.com> RET=HDRS ENVID=QQ+2B314159",
        b"RCPT TO:<kim@fabrikam.com> NOTIFY=success,failure ORCPT=rfc822;Kim+2BAkers@fabrikam.com",
        b"RCPT TO:<postmaster@fabrikam.com> NOTIFY=NEVER",
        b"DATA",
        b"Subject: hi\r\n\r\nHello.\r\n.",
    )
    assert replies == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK",
                       "354 Start mail input; end with <CRLF>.<CRLF>"]
    [(envelope, _, _)] = session.queue.pending
    assert (envelope.ret, envelope.envid) == ("HDRS", "QQ+314159")
    assert envelope.recipientDsn == {
        "kim@fabrikam.com": ("SUCCESS,FAILURE", "rfc822;Kim+Akers@fabrikam.com"),
        "postmaster@fabrikam.com": ("NEVER", None),
    }


@pytest.mark.parametrize("command, reply", [
    (b"RCPT TO:<kim@fabrikam.com> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Invalid NOTIFY parameter"),
    (b"RCPT TO:<kim@fabrikam.com> NOTIFY=SOMETIMES", "501 5.5.4 Invalid NOTIFY parameter"),
    (b"RCPT TO:<kim@fabrikam.com> ORCPT=kim@fabrikam.com", "501 5.5.4 Invalid ORCPT parameter"),
    (b"RCPT TO:<kim@fabrikam.com> ORCPT=rfc822;kim+zz@x", "501 5.5.4 Invalid ORCPT parameter"),
    (b"RCPT TO:<kim@fabrikam.com> X-ORAR=1", "555 5.5.4 Unsupported parameter X-ORAR"),
])
def test_invalidRecipientParameters(command, reply):
    session = Session()
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com>", command) == ["250 2.1.0 Sender OK", reply]


@pytest.mark.parametrize("parameters, reply", [
    (b"RET=ALL", "501 5.5.4 Invalid RET parameter"),
    (b"ENVID=" + b"x" * 101, "501 5.5.4 Invalid ENVID parameter"),
    (b"ENVID=a+zz", "501 5.5.4 Invalid ENVID parameter"),
    (b"BODY=BINARY", "501 5.5.4 Invalid BODY parameter"),
])
def test_invalidMailParameters(parameters, reply):
    session = Session()
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com> " + parameters) == [reply]


def test_dsnOffRefusesItsParameters():
    session = Session("DeliveryStatusNotificationEnabled = $false\n")
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com> RET=FULL") == [
        "555 5.5.4 Unsupported parameter RET"]
    assert session.say(b"MAIL FROM:<max@contoso.com> ENVID=1") == [
        "555 5.5.4 Unsupported parameter ENVID"]
    assert session.say(b"MAIL FROM:<max@contoso.com>", b"RCPT TO:<kim@fabrikam.com> NOTIFY=NEVER") == [
        "250 2.1.0 Sender OK", "555 5.5.4 Unsupported parameter NOTIFY"]


def test_eightBitMimeOffRefusesTheBody():
    session = Session("EightBitMimeEnabled = $false\n")
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com> BODY=8BITMIME") == [
        "555 5.5.4 Unsupported parameter BODY=8BITMIME"]


def test_binaryMimeNeedsBdat():
    session = Session()
    session.keywords()
    replies = session.say(b"MAIL FROM:<max@contoso.com> BODY=BINARYMIME",
                          b"RCPT TO:<kim@fabrikam.com>", b"DATA")
    assert replies[-1] == "503 5.5.1 BODY=BINARYMIME requires BDAT"


def test_enhancedStatusCodesOff():
    session = Session("EnhancedStatusCodesEnabled = $false\n")
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com>", b"RCPT TO:<nobody@fabrikam.com>", b"VRFY x") == [
        "250 Sender OK", "550 RESOLVER.ADR.RecipNotFound; not found",
        "252 Cannot VRFY user, but will accept message and attempt delivery"]


def test_sizeDisabled():
    session = Session("SizeEnabled = Disabled\n")
    assert not any(k.startswith("SIZE") for k in session.keywords())
    assert session.say(b"MAIL FROM:<max@contoso.com> SIZE=100") == ["555 5.5.4 Unsupported parameter SIZE"]


def test_sizeEnabledWithoutValue():
    session = Session("SizeEnabled = EnabledWithoutValue\n")
    assert session.keywords()[0] == "SIZE"
    assert session.say(b"MAIL FROM:<max@contoso.com> SIZE=20000000") == [
        "552 5.3.4 Message size exceeds fixed maximum message size"]
    assert session.say(b"MAIL FROM:<max@contoso.com> SIZE=100") == ["250 2.1.0 Sender OK"]


def test_orcptMakesTheLineLonger():
    """
    RFC 3461 section 5: an RCPT line may be 500 octets longer for ORCPT.
    """
    session = Session()
    session.keywords()
    orcpt = b"rfc822;" + b"k" * 60 + b"@" + b"a" * 60 + b"." + b"b" * 300 + b".com"
    assert session.say(b"MAIL FROM:<max@contoso.com>", b"RCPT TO:<kim@fabrikam.com> ORCPT=" + orcpt) == [
        "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"]


# BDAT (RFC 3030)


def bdatSession(settings=""):
    session = Session(settings)
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com>", b"RCPT TO:<kim@fabrikam.com>") == [
        "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"]
    return session


def test_bdatChunksMakeTheMessage():
    session = bdatSession()
    first = b"Subject: chunked\r\n\r\n.Hello\r\n"
    second = b"..world\r\n"
    session.protocol.dataReceived(b"BDAT %d\r\n" % len(first) + first[:5])
    assert session.transport.takeReplies() == []
    session.protocol.dataReceived(first[5:] + b"BDAT %d LAST\r\n" % len(second) + second)
    assert session.transport.takeReplies() == ["250 2.0.0 %d octets received" % len(first)]
    [(envelope, message, committed)] = session.queue.pending
    # Octets as sent: no dot-stuffing to undo.
    assert message.endswith(first + second)
    committed.callback("QUEUEID")
    assert session.transport.takeReplies()[0].startswith("250 ")


def test_bdatRefusedStillReadsItsOctets():
    """
    Without MAIL the chunk is refused, but its octets are read, never taken
    for commands.
    """
    session = Session()
    session.keywords()
    assert session.say(b"BDAT 6 LAST\r\nQUIT\r\nNOOP") == ["503 5.5.1 Need MAIL command", "250 2.0.0 OK"]
    session.say(b"MAIL FROM:<max@contoso.com>")
    assert session.say(b"BDAT 6\r\nRSET\r\nNOOP") == ["503 5.5.2 Need RCPT command", "250 2.0.0 OK"]


def test_bdatOverTheSizeLimit():
    session = bdatSession("MaxMessageSize = 64KB\n")
    session.protocol.dataReceived(b"BDAT 40000\r\n" + b"x" * 40000)
    assert session.transport.takeReplies() == ["250 2.0.0 40000 octets received"]
    session.protocol.dataReceived(b"BDAT 40000 LAST\r\n" + b"x" * 40000 + b"NOOP\r\n")
    assert session.transport.takeReplies() == [
        "552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 OK"]
    assert session.queue.pending == []
    # The transaction is over: a chunk now is refused.
    session.protocol.dataReceived(b"BDAT 1 LAST\r\nx")
    assert session.transport.takeReplies() == ["503 5.5.1 Need MAIL command"]


def test_bdatSmugglingRulesAsForData():
    session = bdatSession()
    content = b"Subject: x\r\n\r\nHello\n.\nMAIL FROM:<evil@contoso.com>\r\n"
    session.protocol.dataReceived(b"BDAT %d LAST\r\n" % len(content) + content)
    assert session.transport.takeReplies() == [
        "550 5.6.11 Bare line feeds or carriage returns are not allowed; use CRLF"]
    assert session.queue.pending == []


def test_binaryMimeKeepsItsOctets():
    session = Session()
    session.keywords()
    session.say(b"MAIL FROM:<max@contoso.com> BODY=BINARYMIME", b"RCPT TO:<kim@fabrikam.com>")
    content = b"Subject: x\r\n\r\n\x00\x01\n\r\xff"
    session.protocol.dataReceived(b"BDAT %d LAST\r\n" % len(content) + content)
    [(envelope, message, _)] = session.queue.pending
    assert envelope.body == "BINARYMIME" and message.endswith(b"\x00\x01\n\r\xff")


def test_dataAfterBdatRefused():
    session = bdatSession()
    assert session.say(b"BDAT 3\r\nabcDATA") == [
        "250 2.0.0 3 octets received", "503 5.5.1 DATA cannot follow BDAT in a transaction"]


@pytest.mark.parametrize("argument", [b"", b"x", b"-1", b"10 FIRST", b"1" * 19])
def test_bdatSyntax(argument):
    session = bdatSession()
    assert session.say(b"BDAT " + argument) == ["501 5.5.4 Syntax: BDAT chunk-size [LAST]"]


def test_chunkingOffRefusesBdat():
    session = bdatSession("ChunkingEnabled = $false\n")
    assert session.say(b"BDAT 3 LAST") == ["500 5.5.1 Unrecognized command"]


# Session rules


def test_tarpitDelaysRefusalsToAnonymousSessions():
    session = Session(factory=makeFactory(base=ORG.replace("TarpitInterval = 00:00:00", "")))
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com>", b"RCPT TO:<nobody@fabrikam.com>", b"NOOP") == [
        "250 2.1.0 Sender OK"]
    session.clock.advance(4.9)
    assert session.transport.takeReplies() == []
    session.clock.advance(0.1)
    assert session.transport.takeReplies() == ["550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
                                               "250 2.0.0 OK"]
    # Protocol errors are not tarpitted (MaxProtocolErrors limits them).
    assert session.say(b"BOGUS") == ["500 5.5.1 Unrecognized command"]


def test_messageRateLimitPerAddress():
    factory = makeFactory("MessageRateLimit = 2\n")
    for _ in range(2):
        session = Session(factory=factory)
        session.keywords()
        assert session.say(b"MAIL FROM:<max@contoso.com>", b"RSET") == [
            "250 2.1.0 Sender OK", "250 2.0.0 Resetting"]
    session = Session(factory=factory)
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com>") == [
        "421 4.4.2 Message submission rate for this client has exceeded the configured limit"]
    assert session.transport.disconnecting
    other = Session(factory=factory, peer="127.0.0.10")
    other.keywords()
    assert other.say(b"MAIL FROM:<max@contoso.com>") == ["250 2.1.0 Sender OK"]
    factory.reactor.advance(60)
    session = Session(factory=factory)
    session.keywords()
    assert session.say(b"MAIL FROM:<max@contoso.com>") == ["250 2.1.0 Sender OK"]


def test_messageRateSourceUserLeavesAnonymousAlone():
    factory = makeFactory("MessageRateLimit = 1\nMessageRateSource = User\n")
    session = Session(factory=factory)
    session.keywords()
    assert session.say(b"MAIL FROM:<a@contoso.com>", b"RSET", b"MAIL FROM:<a@contoso.com>") == [
        "250 2.1.0 Sender OK", "250 2.0.0 Resetting", "250 2.1.0 Sender OK"]


@pytest.mark.parametrize("name, accepted", [
    (b"client.contoso.com", True), (b"[192.0.2.1]", True), (b"[IPv6:2001:db8::1]", True),
    (b"my laptop", False), (b"-bad-.example", False), (b"[300.1]", False),
])
def test_requireEhloDomain(name, accepted):
    session = Session("RequireEHLODomain = $true\n")
    replies = session.say(b"EHLO " + name)
    assert replies[0].startswith("250") == accepted, replies
    if not accepted:
        assert replies == ["501 5.5.4 Invalid domain name"]
    assert Session().say(b"HELO " + name)[0].startswith("250")


def test_defaultDomain():
    session = Session("DefaultDomain = fabrikam.com\n")
    session.keywords()
    assert session.say(b"MAIL FROM:<max>", b"RCPT TO:<kim>", b"DATA",
                       b"Subject: x\r\n\r\nx\r\n.") == [
        "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 Start mail input; end with <CRLF>.<CRLF>"]
    [(envelope, _, _)] = session.queue.pending
    assert (str(envelope.mailFrom), [str(r) for r in envelope.recipients]) == (
        "max@fabrikam.com", ["kim@fabrikam.com"])
    assert Session().say(b"EHLO c", b"MAIL FROM:<max>")[-1] == "501 5.1.7 Invalid address"


def test_longAddresses():
    longLocal = b"IMCEAEX-_O=CONTOSO_OU=" + b"X" * 900
    plain = Session()
    plain.keywords()
    assert plain.say(b"MAIL FROM:<" + longLocal + b"@contoso.com>") == ["500 5.5.2 Line too long"]
    session = Session("LongAddressesEnabled = $true\n")
    assert session.keywords()[-1] == "XLONGADDR"
    assert session.say(b"MAIL FROM:<" + longLocal + b"@contoso.com>") == ["250 2.1.0 Sender OK"]


def test_maxLocalHopCount():
    session = Session("MaxLocalHopCount = 2\n")
    session.keywords()
    hop = b"Received: from a by huba.fabrikam.com with ESMTP; Mon, 7 Dec 2026 09:00:00 +0000\r\n"
    other = b"Received: from a by mx.contoso.com with ESMTP; Mon, 7 Dec 2026 09:00:00 +0000\r\n"
    replies = session.say(b"MAIL FROM:<max@contoso.com>", b"RCPT TO:<kim@fabrikam.com>", b"DATA",
                          hop + other * 5 + b"Subject: x\r\n\r\nx\r\n.")
    [(_, _, committed)] = session.queue.pending
    committed.callback("QUEUEID")
    session.transport.takeReplies()
    replies = session.say(b"MAIL FROM:<max@contoso.com>", b"RCPT TO:<kim@fabrikam.com>", b"DATA",
                          hop + other + hop + b"Subject: x\r\n\r\nx\r\n.")
    assert replies[-1] == "554 5.4.6 Hop count exceeded - possible mail loop"


def test_connectionShareOfAFreeSlots():
    """
    MaxInboundConnectionPercentagePerSource: a source may hold that share
    of the slots other sources leave it, and always one.
    """
    factory = makeFactory("MaxInboundConnection = 10\nMaxInboundConnectionPercentagePerSource = 20\n")
    first, second = Session(factory=factory), Session(factory=factory)
    assert first.greeting[0].startswith("220") and second.greeting[0].startswith("220")
    third = Session(factory=factory)
    assert third.greeting == [
        "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, "
        "closing transmission channel"]
    assert Session(factory=factory, peer="127.0.0.10").greeting[0].startswith("220")


# SMTPUTF8 (RFC 6531)


def test_smtpUtf8Addresses():
    session = Session()
    session.keywords()
    replies = session.say(
        "MAIL FROM:<Jörg@Bücher.de> SMTPUTF8".encode(),
        "RCPT TO:<postmaster@fabrikam.com>".encode(),
        b"DATA", "Subject: Grüße\r\n\r\nHallo\r\n.".encode())
    assert replies[:2] == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"]
    [(envelope, message, _)] = session.queue.pending
    assert envelope.smtputf8 and str(envelope.mailFrom) == "Jörg@xn--bcher-kva.de"
    assert b"with UTF8SMTP;" in message


def test_utf8AddressesNeedSmtpUtf8():
    session = Session()
    session.keywords()
    assert session.say("MAIL FROM:<Jörg@Bücher.de>".encode()) == [
        "553 5.6.7 Non-ASCII addresses need MAIL FROM with SMTPUTF8"]
    assert session.say(b"MAIL FROM:<max@contoso.com>", "RCPT TO:<jörg@fabrikam.com>".encode()) == [
        "250 2.1.0 Sender OK", "553 5.6.7 Non-ASCII addresses need MAIL FROM with SMTPUTF8"]
    assert session.say("NOOP jörg".encode()) == [
        "500 5.5.2 Syntax error: command contains non-ASCII octets"]
    assert session.say(b"RSET", b"MAIL FROM:<max@contoso.com> SMTPUTF8=yes") == [
        "250 2.0.0 Resetting", "501 5.5.4 Invalid SMTPUTF8 parameter"]
