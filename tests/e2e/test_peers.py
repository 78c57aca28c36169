"""
Self-tests of the peers the end-to-end tests send to: a private Postfix
instance (tests/e2e/postfix.py) and the test DNS server (tests/e2e/dns.py).
If these fail, the send tests' failures say nothing about exmta.
"""

import smtplib
import socket
import ssl
import struct

import pytest
import trustme
from twisted.names import dns

from tests.e2e.dns import DNSServer
from tests.e2e.postfix import PostfixPeer, writeCertificate

PASSWORD = "Peer-Pa55word"

ZONE = {
    "smtpgateway1.contoso.com": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
    "contoso.com": {"MX": [[20, "mx2.contoso.com"], [10, "mx1.contoso.com"]]},
    "mx1.contoso.com": {"A": ["127.0.0.2"]},
    "mx2.contoso.com": {"A": ["127.0.0.1"]},
    "nomail.example": {"MX": [[0, "."]]},
    "amx.example": {"A": ["127.0.0.3"]},
}


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def postfix(ca, tmp_path_factory):
    peer = PostfixPeer(tls=writeCertificate(ca, str(tmp_path_factory.mktemp("pki")),
                                            "smtpgateway1.contoso.com"))
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def saslPostfix(ca, tmp_path_factory):
    peer = PostfixPeer(
        tls=writeCertificate(ca, str(tmp_path_factory.mktemp("pki")), "smtpgateway2.contoso.com"),
        sasl={"gateway@contoso.com": PASSWORD},
    )
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    server = DNSServer(str(tmp_path_factory.mktemp("dns")), ZONE)
    yield server
    server.stop()


def verifyingContext(ca):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.check_hostname = False  # smtplib checks the name it dialled: 127.0.0.1
    return context


# Postfix


def test_postfixDeliversEachRecipientToTheMaildir(postfix):
    with smtplib.SMTP(postfix.host, postfix.port, timeout=30) as smtp:
        refused = smtp.sendmail(
            "sender@fabrikam.com", ["One@contoso.com", "two@example.org"],
            b"Subject: peer self-test\r\n\r\nHello.\r\n",
        )
    assert refused == {}
    [message] = postfix.waitForMessages("one@contoso.com")
    assert message.startswith(b"Return-Path: <sender@fabrikam.com>\n")
    assert b"Subject: peer self-test" in message and message.endswith(b"Hello.\n")
    postfix.waitForMessages("two@example.org")
    assert postfix.recipients()["two@example.org"] == 1


def test_postfixOffersSTARTTLSWithTheGivenCertificate(postfix, ca):
    with smtplib.SMTP(postfix.host, postfix.port, timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        smtp.starttls(context=verifyingContext(ca))
        names = [value for field in smtp.sock.getpeercert()["subjectAltName"] for value in field[1:]]
        assert "smtpgateway1.contoso.com" in names


def test_postfixWithoutTLSOffersNoSTARTTLS():
    peer = PostfixPeer()
    peer.start()
    try:
        with smtplib.SMTP(peer.host, peer.port, timeout=30) as smtp:
            smtp.ehlo()
            assert not smtp.has_extn("starttls")
    finally:
        peer.stop()


def test_postfixSaslOffersAuthOnlyInsideTLS(saslPostfix, ca):
    with smtplib.SMTP(saslPostfix.host, saslPostfix.port, timeout=30) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        smtp.starttls(context=verifyingContext(ca))
        smtp.ehlo()
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        assert smtp.mail("sender@fabrikam.com")[0] == 250
        code, _ = smtp.rcpt("someone@contoso.com")
        assert code == 554  # relay access denied: no AUTH yet
        smtp.rset()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("gateway@contoso.com", "wrong")


def test_postfixSaslAcceptsTheAccountAndSaysESMTPSA(saslPostfix, ca):
    with smtplib.SMTP(saslPostfix.host, saslPostfix.port, timeout=30) as smtp:
        smtp.starttls(context=verifyingContext(ca))
        smtp.login("gateway@contoso.com", PASSWORD)
        smtp.sendmail("sender@fabrikam.com", ["someone@contoso.com"], b"Subject: sasl\r\n\r\nx\r\n")
    [message] = saslPostfix.waitForMessages("someone@contoso.com")
    assert b"with ESMTPSA" in message and b"(Authenticated sender: gateway@contoso.com)" in message


def test_postfixSaslWithoutTLSOffersAuthInTheClear():
    peer = PostfixPeer(sasl={"gateway@contoso.com": PASSWORD})
    peer.start()
    try:
        with smtplib.SMTP(peer.host, peer.port, timeout=30) as smtp:
            smtp.ehlo()
            assert not smtp.has_extn("starttls") and smtp.has_extn("auth")
            smtp.login("gateway@contoso.com", PASSWORD)
    finally:
        peer.stop()


def test_postfixStopsAndCleansUp():
    peer = PostfixPeer()
    peer.start()
    peer.stop()
    with pytest.raises(OSError):
        socket.create_connection((peer.host, peer.port), timeout=5).close()


# DNS


def query(server, name, kind, tcp=False):
    """
    Ask the test DNS server one question, with twisted.names' codec over a
    plain socket (no reactor in the test process).
    """
    request = dns.Message(id=4321, recDes=1)
    request.queries = [dns.Query(name, kind, dns.IN)]
    data = request.toStr()
    if tcp:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stream:
            stream.sendall(struct.pack("!H", len(data)) + data)
            reply = b""
            while len(reply) < 2 or len(reply) < 2 + struct.unpack("!H", reply[:2])[0]:
                chunk = stream.recv(65536)
                assert chunk, "closed mid-answer"
                reply += chunk
            reply = reply[2:]
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
            datagram.settimeout(10)
            datagram.sendto(data, ("127.0.0.1", server.port))
            reply = datagram.recv(65536)
    answer = dns.Message()
    answer.fromStr(reply)
    assert answer.id == 4321
    return answer


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dnsAnswersMXWithAddressesOfTheExchanges(names, tcp):
    answer = query(names, "contoso.com", dns.MX, tcp)
    assert answer.rCode == dns.OK
    assert sorted((r.payload.preference, r.payload.name.name) for r in answer.answers) == [
        (10, b"mx1.contoso.com"), (20, b"mx2.contoso.com")]
    assert {(r.name.name, r.payload.dottedQuad()) for r in answer.additional} == {
        (b"mx1.contoso.com", "127.0.0.2"), (b"mx2.contoso.com", "127.0.0.1")}
    assert "contoso.com MX" in names.queries()


def test_dnsAnswersAAndAAAA(names):
    [a] = query(names, "smtpgateway1.contoso.com", dns.A).answers
    assert a.payload.dottedQuad() == "127.0.0.1"
    [aaaa] = query(names, "SMTPGateway1.Contoso.com", dns.AAAA, tcp=True).answers
    assert socket.inet_ntop(socket.AF_INET6, aaaa.payload.address) == "::1"


def test_dnsNullMX(names):
    [mx] = query(names, "nomail.example", dns.MX).answers
    assert (mx.payload.preference, mx.payload.name.name) == (0, b"")


def test_dnsNameWithoutMXIsNoDataAndUnknownNameIsNXDomain(names):
    nodata = query(names, "amx.example", dns.MX)
    assert (nodata.rCode, nodata.answers) == (dns.OK, [])
    assert query(names, "nothere.contoso.com", dns.A).rCode == dns.ENAME
