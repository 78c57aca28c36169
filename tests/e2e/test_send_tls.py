"""
STARTTLS on the send side of C{twistd exmta} against next hops built on
Python's C{ssl} module (tests/e2e/sink.py): one that would select ALPN
C{smtp}, one without ALPN, and one that offers only CBC suites for TLS 1.2.
The connectors use opportunistic TLS (EncryptionOnly), so only the
protocols and cipher suites decide.
"""

import ssl

import pytest
import trustme

from tests.e2e.sending import TIMEOUT, deferrals, sendConnector
from tests.e2e.sink import SmtpSink
from tests.e2e.test_send import fabrikam, names  # noqa: F401 (fixtures)
from tests.e2e.test_tls import CBC_ONLY


@pytest.fixture(scope="module")
def certificate():
    return trustme.CA().issue_cert("sink.contoso.test")


def serverContext(certificate, alpn=None, ciphers=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    if alpn:
        context.set_alpn_protocols(alpn)
    if ciphers:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
    return context


@pytest.fixture
def sink():
    """
    Make (and finally stop) sinks: C{sink(**SmtpSink arguments)}.
    """
    made = []

    def make(**settings):
        made.append(SmtpSink(**settings))
        return made[-1]

    yield make
    for each in made:
        each.stop()


def toSink(fabrikam, peer):  # noqa: F811 (the fixture, passed on)
    org = fabrikam(
        sendConnector("ToSink", AddressSpaces="*", SmartHosts="127.0.0.1", Port=peer.port,
                      DNSRoutingEnabled="$false"),
    )
    return org, org.start()


@pytest.mark.parametrize("alpn", [["smtp"], None], ids=["peer selects ALPN", "peer ignores ALPN"])
def test_sendsOverTLSToPeersWithAndWithoutALPN(fabrikam, sink, certificate, alpn):  # noqa: F811
    """
    The client offers no ALPN, so a peer ready to select one selects none,
    and the handshake completes with either peer.
    """
    peer = sink(tls=serverContext(certificate, alpn=alpn))
    org, hub = toSink(fabrikam, peer)
    queueId = org.submit(["alpn@contoso.com"], "tls with alpn peer")
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [session] = [s for s in peer.sessions if s.messages]
    assert session.tlsVersion in ("TLSv1.2", "TLSv1.3"), session
    assert session.alpn is None, session
    assert b"tls with alpn peer" in session.messages[0].data


def test_refusesAPeerOfferingOnlyCBCSuites(fabrikam, sink, certificate):  # noqa: F811
    """
    TLS 1.2 with CBC suites only: the handshake fails, nothing is sent, the
    message waits (454 4.7.5).
    """
    peer = sink(tls=serverContext(certificate, ciphers=CBC_ONLY))
    org, hub = toSink(fabrikam, peer)
    queueId = org.submit(["cbc@contoso.com"], "tls with cbc peer")
    hub.waitFor(f"deferred {queueId}", timeout=TIMEOUT)
    reasons = deferrals(hub, queueId)
    assert reasons and all("4.7.5" in r and "TLS" in r for r in reasons), reasons
    assert peer.messages == []
    assert any(s.tlsError for s in peer.sessions), peer.sessions


def test_aeadPeerIsUsedWithTLS12(fabrikam, sink, certificate):  # noqa: F811
    """
    The same peer, with an AEAD suite among its CBC ones: it is used.
    """
    peer = sink(tls=serverContext(certificate, ciphers=CBC_ONLY + ":ECDHE-ECDSA-AES256-GCM-SHA384"))
    org, hub = toSink(fabrikam, peer)
    queueId = org.submit(["aead@contoso.com"], "tls with aead peer")
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [session] = [s for s in peer.sessions if s.messages]
    assert (session.tlsVersion, session.tlsCipher) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
