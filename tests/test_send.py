"""
SmtpDelivery over real loopback sockets against a scriptable SMTP peer:
per-recipient outcomes, the DATA payload on the wire, sizes, connection
reuse and caps, smart host failover, timeouts and the protocol log.
"""

import glob
import os
import tempfile

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from exmta.envelope import NextHop, Reply
from exmta.errors import ConnectionFailure, PermanentFailure, TransientFailure
from exmta.interfaces import IRemoteDelivery
from exmta.send import SmtpDelivery
from exmta.send.client import encodeData
from exmta.config.values import SmartHost
from tests.test_send_support import (
    Credentials,
    Peer,
    Queued,
    ZoneResolver,
    closedPort,
    listen,
    listenAll,
    organization,
    sendConnector,
    transportServer,
)

MESSAGE = b"From: a@fabrikam.com\r\nTo: kim@contoso.com\r\nSubject: hello\r\n\r\nHello.\r\n"
HOP = NextHop("SmartHostConnectorDelivery", "ToInternetGateway")
ZONE = {
    "smtpgateway1.contoso.com": {"A": ["127.0.0.2"]},
    "smtpgateway2.contoso.com": {"A": ["127.0.0.3"]},
    "dual.contoso.com": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
}


class DeliveryTestCase(TestCase):
    def delivery(self, *connectors, server=None, credentials=None, resolver="zone", **kw):
        """
        An SmtpDelivery for an organization of C{connectors}, resolving
        names from L{ZONE} unless given another resolver (L{None}: the
        server's DNS servers).
        """
        org = organization(*connectors, server=server)
        delivery = SmtpDelivery(
            org,
            next(iter(org.transportServers.values())),
            credentials or Credentials(),
            reactor,
            resolver=ZoneResolver(ZONE) if resolver == "zone" else resolver,
            **kw,
        )
        self.addCleanup(delivery.close)
        return delivery

    def peerDelivery(self, peer=None, connector=None, **kw):
        """
        A peer on 127.0.0.1 and a delivery whose one smart host it is.
        """
        peer = peer or Peer()
        port = listen(self, peer)
        connector = connector or {}
        delivery = self.delivery(
            sendConnector(smartHosts=(SmartHost("127.0.0.1", port),), **connector), **kw
        )
        return peer, delivery


class OutcomeTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_perRecipientOutcomes(self):
        replies = {
            "bad@contoso.com": b"550 5.1.1 User unknown",
            "later@contoso.com": b"451 4.2.0 Mailbox busy",
            "plain@contoso.com": b"553 no such user here",
        }
        peer, delivery = self.peerDelivery(
            Peer(rcptReply=lambda address: replies.get(address, b"250 2.1.5 OK"))
        )
        verifyObject(IRemoteDelivery, delivery)
        recipients = ["kim@contoso.com", "bad@contoso.com", "later@contoso.com", "plain@contoso.com"]
        outcomes = yield delivery.send(HOP, Queued(), recipients, MESSAGE)
        self.assertEqual(list(outcomes), recipients)
        self.assertIsNone(outcomes["kim@contoso.com"])
        bad = outcomes["bad@contoso.com"]
        self.assertIsInstance(bad, PermanentFailure)
        self.assertEqual(bad.reply, Reply(550, "5.1.1", "User unknown"))
        self.assertEqual(bad.remoteMta, "127.0.0.1")
        later = outcomes["later@contoso.com"]
        self.assertIsInstance(later, TransientFailure)
        self.assertNotIsInstance(later, ConnectionFailure)
        self.assertEqual(later.reply, Reply(451, "4.2.0", "Mailbox busy"))
        self.assertEqual(outcomes["plain@contoso.com"].reply, Reply(553, "", "no such user here"))
        [message] = peer.messages
        self.assertEqual(message.recipients, ["kim@contoso.com"])
        self.assertEqual(message.mailFrom, b"FROM:<a@fabrikam.com> SIZE=%d" % len(MESSAGE))
        self.assertEqual(message.content, MESSAGE)

    @defer.inlineCallbacks
    def test_pipelinedOutcomes(self):
        replies = {"bad@contoso.com": b"550 5.1.1 User unknown"}
        peer, delivery = self.peerDelivery(
            Peer(
                extensions=[b"SIZE 10485760", b"PIPELINING", b"ENHANCEDSTATUSCODES"],
                rcptReply=lambda address: replies.get(address, b"250 2.1.5 OK"),
            )
        )
        for number in range(3):
            outcomes = yield delivery.send(
                HOP, Queued(queueId=str(number)), ["kim@contoso.com", "bad@contoso.com"], MESSAGE
            )
            self.assertIsNone(outcomes["kim@contoso.com"])
            self.assertEqual(outcomes["bad@contoso.com"].reply.status, "5.1.1")
        self.assertEqual([m.content for m in peer.messages], [MESSAGE] * 3)
        self.assertEqual(len(peer.sessions), 1)

    @defer.inlineCallbacks
    def test_eightBitMimeWhenOffered(self):
        peer, delivery = self.peerDelivery()
        yield delivery.send(HOP, Queued(body="8BITMIME"), ["kim@contoso.com"], MESSAGE)
        self.assertTrue(peer.messages[0].mailFrom.endswith(b" BODY=8BITMIME"))
        plain, delivery = self.peerDelivery(Peer(extensions=[]))
        outcomes = yield delivery.send(HOP, Queued(body="8BITMIME"), ["kim@contoso.com"], MESSAGE)
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertEqual(plain.messages[0].mailFrom, b"FROM:<a@fabrikam.com>")

    @defer.inlineCallbacks
    def test_eightBitContentIsDeclaredWhateverItsClientSaid(self):
        """
        A message received without BODY=8BITMIME (clients often leave it
        out) but with 8-bit octets goes out with BODY=8BITMIME; to a peer
        without 8BITMIME it does not go at all (554 5.6.3).
        """
        eightBit = MESSAGE.replace(b"Hello.", "Gr\u00fc\u00dfe.".encode())
        peer, delivery = self.peerDelivery()
        outcomes = yield delivery.send(HOP, Queued(body="7BIT"), ["kim@contoso.com"], eightBit)
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertTrue(peer.messages[0].mailFrom.endswith(b" BODY=8BITMIME"))
        self.assertEqual(peer.messages[0].content, eightBit)

        plain, delivery = self.peerDelivery(Peer(extensions=[b"ENHANCEDSTATUSCODES"]))
        outcomes = yield delivery.send(HOP, Queued(body="7BIT"), ["kim@contoso.com"], eightBit)
        refusal = outcomes["kim@contoso.com"]
        self.assertIsInstance(refusal, PermanentFailure)
        self.assertEqual((refusal.reply.code, refusal.reply.status), (554, "5.6.3"))
        self.assertIn("8BITMIME", str(refusal.reply))
        self.assertEqual(refusal.remoteMta, "127.0.0.1")
        self.assertNotIn("MAIL", plain.verbs())
        # The connection stays usable for 7-bit mail.
        outcomes = yield delivery.send(HOP, Queued(body="7BIT"), ["kim@contoso.com"], MESSAGE)
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertEqual(len(plain.sessions), 1)

    @defer.inlineCallbacks
    def test_nullSender(self):
        peer, delivery = self.peerDelivery()
        yield delivery.send(HOP, Queued(mailFrom=""), ["kim@contoso.com"], MESSAGE)
        self.assertTrue(peer.messages[0].mailFrom.startswith(b"FROM:<> "))

    @defer.inlineCallbacks
    def test_permanentRefusalOfDataFailsTheTransaction(self):
        peer, delivery = self.peerDelivery(
            Peer(
                dataReply=b"554 5.6.0 Not now, not ever",
                rcptReply=lambda a: b"550 5.1.1 Unknown" if a.startswith("bad") else b"250 OK",
            )
        )
        outcomes = yield delivery.send(
            HOP, Queued(), ["kim@contoso.com", "lee@contoso.com", "bad@contoso.com"], MESSAGE
        )
        for address in ("kim@contoso.com", "lee@contoso.com"):
            self.assertIsInstance(outcomes[address], PermanentFailure)
            self.assertEqual(outcomes[address].reply, Reply(554, "5.6.0", "Not now, not ever"))
        self.assertEqual(outcomes["bad@contoso.com"].reply.status, "5.1.1")
        self.assertEqual(peer.messages, [])

    @defer.inlineCallbacks
    def test_permanentRefusalAfterTheData(self):
        peer, delivery = self.peerDelivery(Peer(finalReply=b"550 5.7.1 Rejected by content filter"))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com", "lee@contoso.com"], MESSAGE)
        self.assertEqual(
            {a: (type(o), o.reply) for a, o in outcomes.items()},
            dict.fromkeys(
                ["kim@contoso.com", "lee@contoso.com"],
                (PermanentFailure, Reply(550, "5.7.1", "Rejected by content filter")),
            ),
        )

    @defer.inlineCallbacks
    def test_temporaryRefusalOfDataIsAConnectionFailure(self):
        for settings in ({"dataReply": b"451 4.3.0 Try later"}, {"finalReply": b"452 4.3.1 Insufficient system resources"}):
            peer, delivery = self.peerDelivery(Peer(**settings))
            outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com", "lee@contoso.com"], MESSAGE)
            for outcome in outcomes.values():
                self.assertIsInstance(outcome, ConnectionFailure)
                self.assertEqual(outcome.reply.code // 100, 4)

    @defer.inlineCallbacks
    def test_refusedSender(self):
        peer, delivery = self.peerDelivery(Peer(mailReply=b"553 5.7.1 Sender denied"))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertIsInstance(outcomes["kim@contoso.com"], PermanentFailure)
        self.assertEqual(outcomes["kim@contoso.com"].reply, Reply(553, "5.7.1", "Sender denied"))
        peer, delivery = self.peerDelivery(Peer(mailReply=b"452 4.3.1 Out of memory"))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertIsInstance(outcomes["kim@contoso.com"], ConnectionFailure)

    @defer.inlineCallbacks
    def test_allRecipientsRefusedSendsNoData(self):
        peer, delivery = self.peerDelivery(Peer(rcptReply=lambda a: b"550 5.1.1 Unknown"))
        outcomes = yield delivery.send(HOP, Queued(), ["x@contoso.com", "y@contoso.com"], MESSAGE)
        self.assertEqual({o.reply.status for o in outcomes.values()}, {"5.1.1"})
        self.assertNotIn("DATA", peer.verbs())

    @defer.inlineCallbacks
    def test_multilineReplies(self):
        peer, delivery = self.peerDelivery(
            Peer(finalReply=b"550-5.7.1 First line\r\n550-5.7.1 second line\r\n550 5.7.1 last")
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(
            outcomes["kim@contoso.com"].reply,
            Reply(550, "5.7.1", ("First line", "second line", "last")),
        )

    @defer.inlineCallbacks
    def test_heloFallback(self):
        peer, delivery = self.peerDelivery(Peer(ehloReply=b"502 5.5.1 EHLO not implemented"))
        outcomes = yield delivery.send(HOP, Queued(body="8BITMIME"), ["kim@contoso.com"], MESSAGE)
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertEqual(peer.verbs()[:3], ["EHLO", "HELO", "MAIL"])
        self.assertEqual(peer.messages[0].mailFrom, b"FROM:<a@fabrikam.com>")

    @defer.inlineCallbacks
    def test_ehloName(self):
        peer, delivery = self.peerDelivery()
        yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(peer.sessions[0].commands[0][1], b"EHLO huba.fabrikam.com")
        peer, delivery = self.peerDelivery(connector={"fqdn": "mail.fabrikam.com"})
        yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(peer.sessions[0].commands[0][1], b"EHLO mail.fabrikam.com")

    @defer.inlineCallbacks
    def test_unknownConnector(self):
        delivery = self.delivery()
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertIsInstance(outcomes["kim@contoso.com"], ConnectionFailure)
        self.assertIn("ToInternetGateway", str(outcomes["kim@contoso.com"].reply))


class DataTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_dotStuffingAndCRLFPreservedByteForByte(self):
        message = (
            b".starts with a dot\r\n"
            b"Subject: dots\r\n\r\n"
            b".leading dot\r\n"
            b"..two dots\r\n"
            b".\r\n"
            b"a bare\nLF and a bare\rCR stay as they are\r\n"
            b"end.\r\n"
            b"\r\n"
            b"no final line end"
        )
        peer, delivery = self.peerDelivery()
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], message)
        self.assertIsNone(outcomes["kim@contoso.com"])
        [received] = peer.messages
        self.assertEqual(
            received.wire,
            b"..starts with a dot\r\n"
            b"Subject: dots\r\n\r\n"
            b"..leading dot\r\n"
            b"...two dots\r\n"
            b"..\r\n"
            b"a bare\nLF and a bare\rCR stay as they are\r\n"
            b"end.\r\n"
            b"\r\n"
            b"no final line end\r\n",
        )
        self.assertEqual(received.content, message + b"\r\n")
        self.assertNotIn(b"\r\r\n", received.wire)

    @defer.inlineCallbacks
    def test_largeMessageAcrossChunks(self):
        line = b"." + b"x" * 70 + b"\r\n"
        message = b"Subject: big\r\n\r\n" + line * 5000
        peer, delivery = self.peerDelivery()
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], message)
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertEqual(peer.messages[0].wire, encodeData(message))
        self.assertEqual(peer.messages[0].content, message)

    @defer.inlineCallbacks
    def test_emptyMessage(self):
        peer, delivery = self.peerDelivery()
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], b"")
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertEqual(peer.messages[0].wire, b"")


class SizeTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_connectorMaxMessageSize(self):
        peer, delivery = self.peerDelivery(connector={"maxMessageSize": len(MESSAGE) - 1})
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertIsInstance(outcomes["kim@contoso.com"], PermanentFailure)
        self.assertEqual(outcomes["kim@contoso.com"].reply.code, 552)
        self.assertEqual(outcomes["kim@contoso.com"].reply.status, "5.3.4")
        self.assertEqual(peer.sessions, [])

    @defer.inlineCallbacks
    def test_peerSize(self):
        peer, delivery = self.peerDelivery(Peer(extensions=[b"SIZE %d" % (len(MESSAGE) - 1)]))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertIsInstance(outcomes["kim@contoso.com"], PermanentFailure)
        self.assertEqual(outcomes["kim@contoso.com"].reply.status, "5.3.4")
        self.assertNotIn("MAIL", peer.verbs())
        # The connection stays usable for a message that fits.
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], b"small\r\n")
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertEqual(len(peer.sessions), 1)

    @defer.inlineCallbacks
    def test_aReconfiguredMaxMessageSize(self):
        """
        A next hop's settings are kept between sends, and made again under
        a new configuration.
        """
        peer, delivery = self.peerDelivery()
        self.assertIs(delivery.settingsFor(HOP), delivery.settingsFor(HOP))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertIsNone(outcomes["kim@contoso.com"])
        smaller = organization(
            sendConnector(
                smartHosts=delivery.settingsFor(HOP).connector.smartHosts,
                maxMessageSize=len(MESSAGE) - 1,
            )
        )
        delivery.reconfigure(smaller, next(iter(smaller.transportServers.values())))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes["kim@contoso.com"].reply.status, "5.3.4")
        self.assertEqual(len(peer.sessions), 1)


class ReuseTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_twoMessagesOneConnection(self):
        peer, delivery = self.peerDelivery()
        first = yield delivery.send(HOP, Queued(queueId="1"), ["kim@contoso.com"], MESSAGE)
        second = yield delivery.send(HOP, Queued(queueId="2"), ["lee@contoso.com"], MESSAGE + b"2\r\n")
        self.assertEqual((first, second), ({"kim@contoso.com": None}, {"lee@contoso.com": None}))
        self.assertEqual(len(peer.sessions), 1)
        self.assertEqual(
            peer.verbs(),
            ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA", "RSET"],
        )
        self.assertEqual([m.recipients for m in peer.messages], [["kim@contoso.com"], ["lee@contoso.com"]])

    @defer.inlineCallbacks
    def test_idleConnectionsCloseAfterAWhile(self):
        clock = task.Clock()
        peer, delivery = self.peerDelivery(clock=clock)
        yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        clock.advance(29)
        self.assertEqual(len(peer.connections), 1)
        clock.advance(1)
        yield peer.closed()
        self.assertEqual(peer.verbs()[-1], "QUIT")
        yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(len(peer.sessions), 2)

    @defer.inlineCallbacks
    def test_serverClosingAnIdleConnection(self):
        peer, delivery = self.peerDelivery()
        yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        [server] = peer.connections
        server.reply(b"421 4.4.2 Timeout waiting for client input")
        server.transport.loseConnection()
        yield peer.closed()
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertIsNone(outcomes["kim@contoso.com"])
        self.assertEqual(len(peer.sessions), 2)

    @defer.inlineCallbacks
    def test_perNextHopCap(self):
        peer, delivery = self.peerDelivery(
            Peer(holdFinal=True), server=transportServer(maxPerDomainOutboundConnections=2)
        )
        sends = [
            delivery.send(HOP, Queued(queueId=str(n)), [f"r{n}@contoso.com"], MESSAGE)
            for n in range(5)
        ]
        # Waiting sends go in the order they asked, two at a time.
        batches = []
        for size in (2, 2, 1):
            yield peer.whenHeld(size)
            self.assertEqual(len(peer.connections), 2)
            batches.append({m.recipients[0] for m in peer.arrivals[-size:]})
            peer.release()
        self.assertEqual(
            batches,
            [{"r0@contoso.com", "r1@contoso.com"}, {"r2@contoso.com", "r3@contoso.com"}, {"r4@contoso.com"}],
        )
        results = yield defer.gatherResults(sends)
        self.assertEqual(results, [{f"r{n}@contoso.com": None} for n in range(5)])
        self.assertEqual(len(peer.sessions), 2)
        self.assertEqual(peer.maxOpen, 2)

    @defer.inlineCallbacks
    def test_manySendsToOneNextHopShareItsConnections(self):
        """
        A burst of messages for one next hop goes over at most
        MaxPerDomainOutboundConnections connections, several messages
        each, one after the other with RSET between them.
        """
        peer, delivery = self.peerDelivery(server=transportServer(maxPerDomainOutboundConnections=4))
        results = yield defer.gatherResults([
            delivery.send(HOP, Queued(queueId=str(n)), [f"r{n}@contoso.com"], MESSAGE)
            for n in range(200)
        ])
        self.assertEqual(results, [{f"r{n}@contoso.com": None} for n in range(200)])
        self.assertLessEqual(len(peer.sessions), 4)
        self.assertEqual(sum(len(session.messages) for session in peer.sessions), 200)
        for number in range(len(peer.sessions)):
            verbs = peer.verbs(number)
            self.assertEqual(verbs.count("MAIL"), verbs.count("RSET"))
            self.assertGreater(verbs.count("MAIL"), 1)

    @defer.inlineCallbacks
    def test_totalCapClosesIdleConnectionsOfOtherNextHops(self):
        one, two = Peer(holdFinal=True), Peer()
        portOne, portTwo = listen(self, one), listen(self, two)
        delivery = self.delivery(
            sendConnector(name="One", smartHosts=(SmartHost("127.0.0.1", portOne),)),
            sendConnector(name="Two", smartHosts=(SmartHost("127.0.0.1", portTwo),)),
            server=transportServer(maxOutboundConnections=1),
        )
        hopOne = NextHop("SmartHostConnectorDelivery", "One")
        hopTwo = NextHop("SmartHostConnectorDelivery", "Two")
        first = delivery.send(hopOne, Queued(), ["kim@contoso.com"], MESSAGE)
        yield one.whenHeld(1)
        second = delivery.send(hopTwo, Queued(), ["lee@contoso.com"], MESSAGE)
        self.assertEqual(two.sessions, [])
        one.release()
        self.assertEqual((yield first), {"kim@contoso.com": None})
        self.assertEqual((yield second), {"lee@contoso.com": None})
        yield one.closed()
        self.assertEqual(one.verbs()[-1], "QUIT")
        self.assertEqual(two.maxOpen, 1)


class FailoverTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_firstSmartHostDown(self):
        peer = Peer()
        port = listen(self, peer, host="127.0.0.3")
        delivery = self.delivery(
            sendConnector(
                smartHosts=(
                    SmartHost("smtpgateway1.contoso.com", closedPort("127.0.0.2")),
                    SmartHost("smtpgateway2.contoso.com"),
                ),
                port=port,
            )
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@contoso.com": None})
        self.assertEqual(len(peer.messages), 1)

    @defer.inlineCallbacks
    def test_ipv6Literal(self):
        peer = Peer()
        port = listen(self, peer, host="::1")
        delivery = self.delivery(sendConnector(smartHosts=(SmartHost("::1", port),)))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@contoso.com": None})

    @defer.inlineCallbacks
    def test_aThenAAAA(self):
        # dual.contoso.com: nothing answers on its A address, its AAAA does.
        peer = Peer()
        port = listen(self, peer, host="::1")
        resolver = ZoneResolver(ZONE)
        delivery = self.delivery(
            sendConnector(smartHosts=(SmartHost("dual.contoso.com"),), port=port), resolver=resolver
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@contoso.com": None})
        self.assertEqual(resolver.queries, [("dual.contoso.com", "A"), ("dual.contoso.com", "AAAA")])

    @defer.inlineCallbacks
    def test_busyGreetingIsSkippedAndRemembered(self):
        busy, good = Peer(greeting=b"421 4.3.2 Too busy"), Peer()
        port = listenAll(self, [busy, good], ["127.0.0.2", "127.0.0.3"])
        clock = task.Clock()
        delivery = self.delivery(
            sendConnector(
                smartHosts=(SmartHost("smtpgateway1.contoso.com"), SmartHost("smtpgateway2.contoso.com")),
                port=port,
            ),
            clock=clock,
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@contoso.com": None})
        self.assertEqual((len(busy.sessions), len(good.sessions)), (1, 1))
        yield busy.closed()
        self.assertEqual(busy.verbs(), [])  # 421: the server hangs up itself
        # The idle connection closes; the next one goes to the good host
        # first, since the busy one failed a moment ago...
        clock.advance(30)
        yield good.closed()
        yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual((len(busy.sessions), len(good.sessions)), (1, 2))
        # ... but only for a while.
        clock.advance(600)
        yield good.closed()
        yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual((len(busy.sessions), len(good.sessions)), (2, 3))

    @defer.inlineCallbacks
    def test_everyHostDown(self):
        busy = Peer(greeting=b"554 5.3.2 No service here")
        port = listen(self, busy, host="127.0.0.3")
        delivery = self.delivery(
            sendConnector(
                smartHosts=(
                    SmartHost("smtpgateway1.contoso.com", closedPort("127.0.0.2")),
                    SmartHost("smtpgateway2.contoso.com", port),
                    SmartHost("nowhere.contoso.com"),
                )
            )
        )
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com", "lee@contoso.com"], MESSAGE)
        failure = outcomes["kim@contoso.com"]
        self.assertIs(outcomes["lee@contoso.com"], failure)
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertEqual(failure.reply.code // 100, 4)
        text = str(failure.reply)
        self.assertIn("smtpgateway1.contoso.com", text)
        self.assertIn("No service here", text)
        self.assertIn("nowhere.contoso.com", text)
        yield busy.closed()
        self.assertEqual(busy.verbs(), ["QUIT"])

    @defer.inlineCallbacks
    def test_waitingSendsShareAFailure(self):
        delivery = self.delivery(
            sendConnector(smartHosts=(SmartHost("127.0.0.2", closedPort("127.0.0.2")),)),
            server=transportServer(maxPerDomainOutboundConnections=1),
        )
        results = yield defer.gatherResults(
            [delivery.send(HOP, Queued(), [f"r{n}@contoso.com"], MESSAGE) for n in range(3)]
        )
        failures = {id(outcome) for result in results for outcome in result.values()}
        self.assertEqual(len(failures), 1)


class TimeoutTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_silentPeer(self):
        clock = task.Clock()
        peer, delivery = self.peerDelivery(
            Peer(holdFinal=True), connector={"connectionInactivityTimeout": 60}, clock=clock
        )
        sent = delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        yield peer.whenHeld(1)
        clock.advance(59)
        self.assertFalse(sent.called)
        clock.advance(1)
        outcomes = yield sent
        self.assertIsInstance(outcomes["kim@contoso.com"], ConnectionFailure)
        self.assertEqual(outcomes["kim@contoso.com"].reply.status, "4.4.2")
        peer.held = []


class ProtocolLogTests(DeliveryTestCase):
    @defer.inlineCallbacks
    def test_verboseLogRedactsAuthentication(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.remove(p) for p in glob.glob(os.path.join(folder, "*"))])
        for mechanism in (b"PLAIN", b"LOGIN"):
            peer, delivery = self.peerDelivery(
                Peer(accounts={"hub@contoso.com": "S3cret-pw"}, authMechanisms=mechanism),
                connector={
                    "protocolLoggingLevel": "Verbose",
                    "smartHostAuthMechanism": frozenset({"BasicAuth"}),
                    "authenticationCredential": "Gateway",
                },
                server=transportServer(sendProtocolLogPath=folder),
                credentials=Credentials(Gateway=("hub@contoso.com", "S3cret-pw")),
            )
            outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
            self.assertIsNone(outcomes["kim@contoso.com"])
            self.assertEqual(peer.sessions[0].authenticated, "hub@contoso.com")
            yield delivery.close()
        [path] = glob.glob(os.path.join(folder, "SEND*.LOG"))
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        self.assertIn("ToInternetGateway", text)
        self.assertIn(",>,AUTH PLAIN,", text)
        self.assertIn(",>,AUTH LOGIN,", text)
        self.assertIn("<redacted>", text)
        self.assertIn(",<,250 2.6.0 Queued mail for delivery,", text)
        self.assertNotIn("S3cret", text)
        for secret in (b"S3cret-pw", b"\0hub@contoso.com\0S3cret-pw", b"hub@contoso.com"):
            import base64

            self.assertNotIn(base64.b64encode(secret).decode(), text)
