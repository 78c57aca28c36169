"""
Outbound TLS and authentication over real loopback sockets and real TLS
handshakes (certificates from trustme): STARTTLS policy, TlsAuthLevel, and
SmartHostAuthMechanism against a scriptable peer and against exmta's own
receive side as a gateway that requires Basic auth over TLS.
"""

import trustme
from twisted.internet import defer
from twisted.internet.ssl import Certificate

from exmta.envelope import NextHop
from exmta.errors import ConnectionFailure
from tests.test_send import MESSAGE, DeliveryTestCase
from exmta.config.values import SmartHost
from tests.test_send_support import (
    Accounts,
    Certificates,
    Credentials,
    Peer,
    Queued,
    exmtaPeer,
    listen,
    sendConnector,
)

HOP = NextHop("SmartHostConnectorDelivery", "ToInternetGateway")
GATEWAY = "smtpgateway1.contoso.com"
BASIC_AUTH = frozenset({"BasicAuth"})
BASIC_AUTH_REQUIRE_TLS = frozenset({"BasicAuth", "BasicAuthRequireTLS"})

GATEWAY_ORG = """
[TransportServer Gateway]
Fqdn = smtpgateway1.contoso.com

[AcceptedDomain contoso.com]

[Mailbox Hub]
PrimarySmtpAddress = hub@contoso.com

[ReceiveConnector FromHubs Gateway]
Usage = Custom
Bindings = 0.0.0.0:25
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
PermissionGroups = ExchangeUsers
AuthTarpitInterval = 00:00:00
"""


def inTLS(peer, verb, session=0):
    """
    @return: for each command C{verb} of a session, whether it came inside TLS.
    """
    return [tls for tls, line in peer.sessions[session].commands if line.split(b" ")[0].upper() == verb]


class TLSTestCase(DeliveryTestCase):
    def setUp(self):
        self.certificates = Certificates()

    def gateway(self, peer, connector=None, **kw):
        """
        C{peer} as smtpgateway1.contoso.com (127.0.0.2), and a delivery
        trusting the test CA whose one smart host it is.
        """
        port = listen(self, peer, host="127.0.0.2")
        kw.setdefault("trustRoot", self.certificates.trustRoot)
        delivery = self.delivery(
            sendConnector(smartHosts=(SmartHost(GATEWAY, port),), **(connector or {})), **kw
        )
        return delivery

    def tlsPeer(self, *names, **settings):
        return Peer(tls=self.certificates.serverOptions(*(names or (GATEWAY,))), **settings)


class STARTTLSTests(TLSTestCase):
    @defer.inlineCallbacks
    def test_opportunistic(self):
        peer = self.tlsPeer("somewhere.else.example")
        # Opportunistic TLS checks nothing: an untrusted CA will do.
        delivery = self.gateway(peer, trustRoot=Certificate.loadPEM(trustme.CA().cert_pem.bytes()))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(peer.verbs()[:3], ["EHLO", "STARTTLS", "EHLO"])
        self.assertEqual(inTLS(peer, b"MAIL"), [True])
        self.assertEqual(peer.messages[0].content, MESSAGE)

    @defer.inlineCallbacks
    def test_refusedSTARTTLSFallsBackToTheClear(self):
        peer = self.tlsPeer(starttlsReply=b"454 4.7.0 TLS not available due to temporary reason")
        delivery = self.gateway(peer)
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(peer.verbs()[:3], ["EHLO", "STARTTLS", "MAIL"])
        self.assertEqual(inTLS(peer, b"MAIL"), [False])

    @defer.inlineCallbacks
    def test_refusedSTARTTLSUnderRequireTLS(self):
        peer = self.tlsPeer(starttlsReply=b"454 4.7.0 TLS not available due to temporary reason")
        delivery = self.gateway(peer, {"requireTLS": True})
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        failure = outcomes["kim@fabrikam.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertTrue(failure.reply.status.startswith("4.7."), failure.reply)
        self.assertIn("454 4.7.0", str(failure.reply))
        self.assertNotIn("MAIL", peer.verbs())

    @defer.inlineCallbacks
    def test_requireTLSWithoutSTARTTLS(self):
        peer = Peer()
        delivery = self.gateway(peer, {"requireTLS": True})
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com", "lee@fabrikam.com"], MESSAGE)
        failure = outcomes["kim@fabrikam.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertEqual(failure.reply.status, "4.7.3")
        self.assertIn("STARTTLS is required", str(failure.reply))
        self.assertIs(outcomes["lee@fabrikam.com"], failure)
        yield peer.closed()
        self.assertEqual(peer.verbs(), ["EHLO", "QUIT"])
        self.assertEqual(peer.messages, [])

    @defer.inlineCallbacks
    def test_ignoreSTARTTLS(self):
        peer = self.tlsPeer()
        delivery = self.gateway(peer, {"ignoreSTARTTLS": True})
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertNotIn("STARTTLS", peer.verbs())


class TlsAuthLevelTests(TLSTestCase):
    def required(self, level, **changes):
        return dict(requireTLS=True, tlsAuthLevel=level, **changes)

    @defer.inlineCallbacks
    def assertRefusedInTLS(self, peer, delivery):
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        failure = outcomes["kim@fabrikam.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertEqual(failure.reply.status, "4.7.5", failure.reply)
        self.assertIn("TLS negotiation", str(failure.reply))
        self.assertEqual(peer.verbs(), ["EHLO", "STARTTLS"])
        self.assertEqual(peer.messages, [])

    @defer.inlineCallbacks
    def test_domainValidationRefusesAnotherName(self):
        peer = self.tlsPeer("smtpgateway9.contoso.com")
        delivery = self.gateway(peer, self.required("DomainValidation"))
        yield self.assertRefusedInTLS(peer, delivery)

    @defer.inlineCallbacks
    def test_domainValidationAcceptsTheSmartHostName(self):
        peer = self.tlsPeer(GATEWAY)
        delivery = self.gateway(peer, self.required("DomainValidation"))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(inTLS(peer, b"MAIL"), [True])

    @defer.inlineCallbacks
    def test_domainValidationChecksTlsDomain(self):
        peer = self.tlsPeer("relay.contoso.com")
        delivery = self.gateway(peer, self.required("DomainValidation", tlsDomain="relay.contoso.com"))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})

    @defer.inlineCallbacks
    def test_domainValidationRefusesAnUntrustedChain(self):
        peer = self.tlsPeer(GATEWAY)
        untrusted = Certificate.loadPEM(trustme.CA().cert_pem.bytes())
        delivery = self.gateway(peer, self.required("DomainValidation"), trustRoot=untrusted)
        yield self.assertRefusedInTLS(peer, delivery)

    @defer.inlineCallbacks
    def test_certificateValidationWithATrustedCA(self):
        # The chain is checked, the name is not.
        peer = self.tlsPeer("some.other.name.example")
        delivery = self.gateway(peer, self.required("CertificateValidation"))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(inTLS(peer, b"MAIL"), [True])

    @defer.inlineCallbacks
    def test_certificateValidationRefusesAnUntrustedChain(self):
        peer = self.tlsPeer(GATEWAY)
        untrusted = Certificate.loadPEM(trustme.CA().cert_pem.bytes())
        delivery = self.gateway(peer, self.required("CertificateValidation"), trustRoot=untrusted)
        yield self.assertRefusedInTLS(peer, delivery)

    @defer.inlineCallbacks
    def test_encryptionOnly(self):
        peer = self.tlsPeer("some.other.name.example")
        untrusted = Certificate.loadPEM(trustme.CA().cert_pem.bytes())
        delivery = self.gateway(peer, self.required("EncryptionOnly"), trustRoot=untrusted)
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})

    @defer.inlineCallbacks
    def test_failedValidationMovesToTheNextSmartHost(self):
        wrong, right = self.tlsPeer("wrong.example"), self.tlsPeer("smtpgateway2.contoso.com")
        wrongPort = listen(self, wrong, host="127.0.0.2")
        rightPort = listen(self, right, host="127.0.0.3")
        delivery = self.delivery(
            sendConnector(
                smartHosts=(SmartHost(GATEWAY, wrongPort), SmartHost("smtpgateway2.contoso.com", rightPort)),
                **self.required("DomainValidation"),
            ),
            trustRoot=self.certificates.trustRoot,
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(wrong.messages, [])
        self.assertEqual(len(right.messages), 1)


class AuthenticationTests(TLSTestCase):
    def credentials(self, password="Gateway-Pa55"):
        return Credentials(ToInternetGateway=("hub@contoso.com", password))

    def basicAuth(self, mechanism=BASIC_AUTH, **changes):
        return dict(smartHostAuthMechanism=mechanism, authenticationCredential="ToInternetGateway", **changes)

    @defer.inlineCallbacks
    def test_basicAuthOverTLSReachesTheGatewayAccount(self):
        peer, queue = exmtaPeer(
            GATEWAY_ORG,
            "Gateway",
            tlsOptions=self.certificates.serverOptions(GATEWAY),
            accounts=Accounts(**{"hub@contoso.com": "Gateway-Pa55"}),
        )
        delivery = self.gateway(
            peer, self.basicAuth(BASIC_AUTH_REQUIRE_TLS), credentials=self.credentials()
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        [(envelope, session, message)] = queue.received
        self.assertTrue(session.authenticated)
        self.assertEqual(session.principal.name, "hub@contoso.com")
        self.assertIsNotNone(session.tlsVersion)
        self.assertIn(session.tlsVersion, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual([str(r) for r in envelope.recipients], ["kim@fabrikam.com"])
        self.assertTrue(message.endswith(MESSAGE))
        auth = [tls for tls, line in peer.commands if line.upper().startswith(b"AUTH")]
        self.assertEqual(len(auth), 1)
        self.assertTrue(all(auth))
        yield delivery.close()

    @defer.inlineCallbacks
    def test_basicAuthRequireTLSWithoutSTARTTLS(self):
        peer = Peer(accounts={"hub@contoso.com": "Gateway-Pa55"})
        delivery = self.gateway(
            peer, self.basicAuth(BASIC_AUTH_REQUIRE_TLS), credentials=self.credentials()
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        failure = outcomes["kim@fabrikam.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertTrue(failure.reply.status.startswith("4.7."))
        self.assertIn("BasicAuthRequireTLS", str(failure.reply))
        yield peer.closed()
        self.assertEqual(peer.verbs(), ["EHLO", "QUIT"])

    @defer.inlineCallbacks
    def test_basicAuthRequireTLSTriesTheNextSmartHost(self):
        clear = Peer(accounts={"hub@contoso.com": "Gateway-Pa55"})
        secure = self.tlsPeer("smtpgateway2.contoso.com", accounts={"hub@contoso.com": "Gateway-Pa55"})
        clearPort = listen(self, clear, host="127.0.0.2")
        securePort = listen(self, secure, host="127.0.0.3")
        delivery = self.delivery(
            sendConnector(
                smartHosts=(SmartHost(GATEWAY, clearPort), SmartHost("smtpgateway2.contoso.com", securePort)),
                **self.basicAuth(BASIC_AUTH_REQUIRE_TLS),
            ),
            credentials=self.credentials(),
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(secure.sessions[0].authenticated, "hub@contoso.com")
        self.assertEqual(inTLS(secure, b"AUTH"), [True])
        self.assertNotIn("AUTH", clear.verbs())

    @defer.inlineCallbacks
    def test_basicAuthInTheClearWhenAllowed(self):
        peer = Peer(accounts={"hub@contoso.com": "Gateway-Pa55"})
        delivery = self.gateway(peer, self.basicAuth(), credentials=self.credentials())
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(peer.sessions[0].authenticated, "hub@contoso.com")
        self.assertEqual(peer.verbs()[:3], ["EHLO", "AUTH", "MAIL"])

    @defer.inlineCallbacks
    def test_loginWhenPlainIsNotOffered(self):
        peer = self.tlsPeer(accounts={"hub@contoso.com": "Gateway-Pa55"}, authMechanisms=b"LOGIN")
        delivery = self.gateway(peer, self.basicAuth(BASIC_AUTH_REQUIRE_TLS), credentials=self.credentials())
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@fabrikam.com": None})
        self.assertEqual(peer.sessions[0].authenticated, "hub@contoso.com")
        self.assertIn(b"AUTH LOGIN", [line for _, line in peer.sessions[0].commands])

    @defer.inlineCallbacks
    def test_wrongPasswordIsAConnectionFailure(self):
        peer = self.tlsPeer(accounts={"hub@contoso.com": "Gateway-Pa55"})
        delivery = self.gateway(peer, self.basicAuth(), credentials=self.credentials("wrong"))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        failure = outcomes["kim@fabrikam.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertEqual(failure.reply.code, 454)
        self.assertIn("535 5.7.3 Authentication unsuccessful", str(failure.reply))
        self.assertNotIn("wrong", str(failure.reply))
        yield peer.closed()
        # One attempt, not Twisted's two.
        self.assertEqual(peer.verbs(), ["EHLO", "STARTTLS", "EHLO", "AUTH", "QUIT"])

    @defer.inlineCallbacks
    def test_wrongPasswordAgainstExmta(self):
        peer, queue = exmtaPeer(
            GATEWAY_ORG,
            "Gateway",
            tlsOptions=self.certificates.serverOptions(GATEWAY),
            accounts=Accounts(**{"hub@contoso.com": "Gateway-Pa55"}),
        )
        delivery = self.gateway(
            peer, self.basicAuth(BASIC_AUTH_REQUIRE_TLS), credentials=self.credentials("wrong")
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertIsInstance(outcomes["kim@fabrikam.com"], ConnectionFailure)
        self.assertIn("5.7.3", str(outcomes["kim@fabrikam.com"].reply))
        self.assertEqual(queue.received, [])

    @defer.inlineCallbacks
    def test_noMechanismOffered(self):
        peer = Peer()
        delivery = self.gateway(peer, self.basicAuth(), credentials=self.credentials())
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        self.assertIsInstance(outcomes["kim@fabrikam.com"], ConnectionFailure)
        self.assertNotIn("MAIL", peer.verbs())

    @defer.inlineCallbacks
    def test_missingCredential(self):
        peer = Peer(accounts={"hub@contoso.com": "Gateway-Pa55"})
        delivery = self.gateway(peer, self.basicAuth(), credentials=Credentials())
        outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
        failure = outcomes["kim@fabrikam.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertIn("AuthenticationCredential", str(failure.reply))
        self.assertEqual(peer.sessions, [])

    @defer.inlineCallbacks
    def test_noAuthWithoutBasicAuth(self):
        for mechanism in (frozenset({"None"}), frozenset({"ExternalAuthoritative"})):
            peer = self.tlsPeer(accounts={"hub@contoso.com": "Gateway-Pa55"})
            credentials = self.credentials()
            delivery = self.gateway(
                peer, self.basicAuth(mechanism), credentials=credentials
            )
            outcomes = yield delivery.send(HOP, Queued(), ["kim@fabrikam.com"], MESSAGE)
            self.assertEqual(outcomes, {"kim@fabrikam.com": None})
            self.assertNotIn("AUTH", peer.verbs())
            self.assertEqual(credentials.asked, [])
