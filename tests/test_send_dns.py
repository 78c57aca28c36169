"""
DnsConnectorDelivery through a real DNS server: twisted.names serving a
zone on 127.0.0.1 over UDP (tests/e2e/dns.py), MX hosts on 127.0.0.2 and
127.0.0.3; and SmtpRelayWithinAdSite to another transport server.
"""

from twisted.internet import defer, reactor
from twisted.names import client

from exmta.config import model
from exmta.envelope import NextHop, Reply
from exmta.errors import ConnectionFailure, PermanentFailure
from exmta.send import SmtpDelivery
from tests.e2e.dns import serve
from tests.test_send import MESSAGE, DeliveryTestCase
from tests.test_send_support import (
    Credentials,
    Peer,
    Queued,
    ZoneResolver,
    listen,
    listenAll,
    sendConnector,
    transportServer,
)

ZONE = {
    "contoso.test": {"MX": [[20, "mx2.contoso.test"], [10, "mx1.contoso.test"]]},
    "mx1.contoso.test": {"A": ["127.0.0.2"]},
    "mx2.contoso.test": {"A": ["127.0.0.3"]},
    "down.test": {"MX": [[10, "mx.down.test"], [20, "mx2.contoso.test"]]},
    "mx.down.test": {"A": ["127.0.0.4"]},
    "implicit.test": {"A": ["127.0.0.3"]},
    "nomail.test": {"MX": [[0, "."]]},
    "onlytext.test": {"TXT": ["v=spf1 -all"]},
    "dangling.test": {"MX": [[10, "missing.dangling.test"]]},
}


class _RecordingReactor:
    """
    The reactor, keeping the ports the DNS server opens so the test can
    close them.
    """

    def __init__(self):
        self.ports = []

    def listenUDP(self, *args, **kw):
        self.ports.append(reactor.listenUDP(*args, **kw))
        return self.ports[-1]

    def listenTCP(self, *args, **kw):
        self.ports.append(reactor.listenTCP(*args, **kw))
        return self.ports[-1]


class MXTests(DeliveryTestCase):
    def setUp(self):
        recording = _RecordingReactor()
        self.dnsPort = serve(ZONE, recording)
        self.addCleanup(
            lambda: defer.gatherResults(
                [defer.maybeDeferred(port.stopListening) for port in recording.ports]
            )
        )
        self.mx1, self.mx2 = Peer(), Peer()
        self.port = listenAll(self, [self.mx1, self.mx2], ["127.0.0.2", "127.0.0.3"])
        self.connector = sendConnector(name="Internet", dnsRoutingEnabled=True, port=self.port)
        resolver = client.Resolver(servers=[("127.0.0.1", self.dnsPort)], reactor=reactor)
        self.mxDelivery = self.delivery(self.connector, resolver=resolver)

    def send(self, domain, delivery=None):
        hop = NextHop("DnsConnectorDelivery", "Internet", domain=domain)
        return (delivery or self.mxDelivery).send(hop, Queued(), [f"kim@{domain}"], MESSAGE)

    @defer.inlineCallbacks
    def test_preferenceOrder(self):
        outcomes = yield self.send("contoso.test")
        self.assertEqual(outcomes, {"kim@contoso.test": None})
        self.assertEqual((len(self.mx1.messages), len(self.mx2.messages)), (1, 0))

    @defer.inlineCallbacks
    def test_nextPreferenceWhenTheFirstIsDown(self):
        outcomes = yield self.send("down.test")
        self.assertEqual(outcomes, {"kim@down.test": None})
        self.assertEqual(len(self.mx2.messages), 1)

    @defer.inlineCallbacks
    def test_noMXMeansTheDomainItself(self):
        outcomes = yield self.send("implicit.test")
        self.assertEqual(outcomes, {"kim@implicit.test": None})
        self.assertEqual(len(self.mx2.messages), 1)

    @defer.inlineCallbacks
    def test_nullMX(self):
        outcomes = yield self.send("nomail.test")
        failure = outcomes["kim@nomail.test"]
        self.assertIsInstance(failure, PermanentFailure)
        self.assertEqual(failure.reply, Reply(556, "5.1.10", "Recipient address has null MX"))
        self.assertEqual((self.mx1.sessions, self.mx2.sessions), ([], []))

    @defer.inlineCallbacks
    def test_nonexistentDomain(self):
        outcomes = yield self.send("nowhere.test")
        failure = outcomes["kim@nowhere.test"]
        self.assertIsInstance(failure, PermanentFailure)
        self.assertEqual((failure.reply.code, failure.reply.status), (550, "5.4.4"))

    @defer.inlineCallbacks
    def test_domainWithoutMXOrAddress(self):
        outcomes = yield self.send("onlytext.test")
        self.assertIsInstance(outcomes["kim@onlytext.test"], PermanentFailure)

    @defer.inlineCallbacks
    def test_mxHostWithoutAddressIsRetried(self):
        outcomes = yield self.send("dangling.test")
        failure = outcomes["kim@dangling.test"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertIn("missing.dangling.test", str(failure.reply))

    @defer.inlineCallbacks
    def test_connectionsAreReusedPerDomain(self):
        yield self.send("contoso.test")
        yield self.send("contoso.test")
        yield self.send("implicit.test")
        self.assertEqual(len(self.mx1.sessions), 1)
        self.assertEqual(len(self.mx1.messages), 2)
        self.assertEqual(len(self.mx2.sessions), 1)

    @defer.inlineCallbacks
    def test_internalDNSServers(self):
        # Without an injected resolver, the server's InternalDNSServers answer.
        delivery = self.delivery(
            self.connector,
            server=transportServer(internalDNSServers=(("127.0.0.1", self.dnsPort),)),
            resolver=None,
        )
        outcomes = yield self.send("contoso.test", delivery)
        self.assertEqual(outcomes, {"kim@contoso.test": None})
        self.assertEqual(len(self.mx1.messages), 1)


class RelayTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_forwardingToASourceServer(self):
        peer = Peer(tls=None)
        port = listen(self, peer, host="127.0.0.5")
        hubB = transportServer(name="HubB", fqdn="hubb.fabrikam.com")
        receive = model.ReceiveConnector(
            **{
                **_receiveDefaults(),
                "name": "Default",
                "server": "HubB",
                "bindings": (_Binding("127.0.0.5", port),),
            }
        )
        connector = sendConnector(
            sourceTransportServers=("HubB",),
            smartHostAuthMechanism=frozenset({"BasicAuth"}),
            authenticationCredential="Gateway",
            requireTLS=True,
        )
        hubA = transportServer()
        org = model.Organization(
            path="/nonexistent/org.ini",
            transportServers={"HubA": hubA, "HubB": hubB},
            receiveConnectors=(receive,),
            sendConnectors=(connector,),
        )
        credentials = Credentials(Gateway=("x", "y"))
        delivery = SmtpDelivery(org, hubA, credentials, reactor, resolver=ZoneResolver({}))
        self.addCleanup(delivery.close)
        hop = NextHop("SmtpRelayWithinAdSite", "ToInternetGateway", server="HubB")
        outcomes = yield delivery.send(hop, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@contoso.com": None})
        # Our own name, no AUTH (the smart host's credential is HubB's business),
        # and TLS only if offered.
        self.assertEqual(peer.sessions[0].commands[0][1], b"EHLO huba.fabrikam.com")
        self.assertNotIn("AUTH", peer.verbs())
        self.assertEqual(credentials.asked, [])


class _Binding:
    def __init__(self, host, port):
        self.host, self.port = host, port

    @property
    def isWildcard(self):
        return False


def _receiveDefaults():
    return dict(
        usage="Internal",
        remoteIPRanges=(),
        authMechanism=frozenset({"Tls", "ExchangeServer"}),
        permissionGroups=frozenset({"ExchangeServers"}),
        fqdn="hubb.fabrikam.com",
        banner=None,
        maxMessageSize=10 * 1024 * 1024,
        maxRecipientsPerMessage=200,
        maxHeaderSize=65536,
        maxHopCount=30,
        connectionTimeout=600,
        connectionInactivityTimeout=300,
        maxInboundConnection=5000,
        maxInboundConnectionPerSource=20,
        maxLogonFailures=3,
        maxProtocolErrors=5,
        authTarpitInterval=5,
        requireTLS=False,
        bareLinefeedRejectionEnabled=True,
        enabled=True,
        origin=model.Origin("/nonexistent/org.ini", 1, "ReceiveConnector Default HubB"),
    )
