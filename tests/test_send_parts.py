"""
The send side's parts in memory: reply parsing and data encoding
(Hypothesis), the client's state machine on a string transport, the
connection pool on a fake clock, failed-host memory and TLS policy.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from exmta.config.values import SmartHost
from exmta.envelope import Reply
from exmta.errors import ConnectionFailure, PermanentFailure
from exmta.send.client import (
    DeliveryClient,
    HostFailure,
    StaleConnection,
    Transaction,
    encodeData,
)
from exmta.send.replies import parseReply
from exmta.send.delivery import _summary, authenticationOf
from exmta.send.hosts import FailedHosts, Target, smartHostParts
from exmta.send.pool import ConnectionPool
from exmta.send.tls import TlsPolicy
from exmta.testing import SMTPTransport
from tests.test_send_support import sendConnector

TARGET = Target("smtpgateway1.contoso.com", "127.0.0.2", 25)

replyText = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40
).filter(lambda t: t == t.strip() and not t[0].isdigit())


class ParseReplyTests(SynchronousTestCase):
    @given(
        code=st.one_of(st.integers(200, 299), st.integers(400, 599)),
        detail=st.tuples(st.integers(0, 999), st.integers(0, 999)),
        lines=st.lists(replyText, min_size=1, max_size=4),
        withStatus=st.booleans(),
    )
    def test_roundTrip(self, code, detail, lines, withStatus):
        status = f"{code // 100}.{detail[0]}.{detail[1]}" if withStatus else ""
        reply = Reply(code, status, lines[0] if len(lines) == 1 else tuple(lines))
        wire = reply.toBytes().decode().rstrip("\r\n").split("\r\n")
        # SMTPClient.lineReceived hands on the text after the code, lines joined by \n.
        self.assertEqual(parseReply(code, "\n".join(line[4:] for line in wire).encode()), reply)

    def test_statusOfAnotherClassIsText(self):
        self.assertEqual(parseReply(550, b"2.1.5 odd"), Reply(550, "", "2.1.5 odd"))

    def test_emptyText(self):
        self.assertEqual(parseReply(250, b""), Reply(250, "", ""))


class EncodeDataTests(SynchronousTestCase):
    @given(st.lists(st.sampled_from([b".", b"..", b"x", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b" "]), max_size=30))
    def test_transparency(self, parts):
        message = b"".join(parts)
        encoded = encodeData(message)
        if message:
            self.assertTrue(encoded.endswith(b"\r\n"))
        # The terminator cannot occur inside, and unstuffing gives it back.
        self.assertNotIn(b"\r\n.\r\n", b"\r\n" + encoded)
        restored = (b"\r\n" + encoded).replace(b"\r\n..", b"\r\n.")[2:]
        expected = message if not message or message.endswith(b"\r\n") else message + b"\r\n"
        self.assertEqual(restored, expected)

    def test_nothingButDotsAndCRLFChanges(self):
        self.assertEqual(encodeData(b"a\r\n.b\nc\r\n"), b"a\r\n..b\nc\r\n")


class FakeOwner:
    def __init__(self):
        self.releasedClients = []
        self.lostClients = []

    def released(self, client):
        self.releasedClients.append(client)

    def lost(self, client):
        self.lostClients.append(client)


class ClientTestCase(SynchronousTestCase):
    def connect(self, authentication=None, credentials=None, requireTLS=False, context=None, log=None):
        self.clock = task.Clock()
        client = DeliveryClient(
            TARGET, "huba.fabrikam.com", context, requireTLS, authentication, credentials, 600,
            self.clock, protocolLog=log,
        )
        transport = SMTPTransport(local=("127.0.0.1", 40000), peer=("127.0.0.2", 25))
        client.makeConnection(transport)
        self.ready = []
        client.ready.addBoth(self.ready.append)
        return client, transport

    def say(self, client, transport, *lines):
        for line in lines:
            client.dataReceived(line + b"\r\n")
            # FileSender is a pull producer: pull the data through.
            while transport.producer is not None:
                transport.producer.resumeProducing()
        return transport.takeReplies()

    def readyClient(self, **kw):
        client, transport = self.connect(**kw)
        self.assertEqual(self.say(client, transport, b"220 hello"), ["EHLO huba.fabrikam.com"])
        self.say(client, transport, b"250-peer", b"250-SIZE 1000", b"250 8BITMIME")
        self.assertEqual(self.ready, [client])
        client.owner = FakeOwner()
        return client, transport

    def send(self, client, transport, recipients=("kim@contoso.com",), message=b"hi\r\n"):
        outcomes = []
        client.transact(Transaction("Q1", "a@fabrikam.com", tuple(recipients), message)).addBoth(outcomes.append)
        return outcomes


class ClientTests(ClientTestCase):
    def test_transactionAndReset(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport, ["kim@contoso.com", "bad@contoso.com"])
        self.assertEqual(transport.takeReplies(), ["MAIL FROM:<a@fabrikam.com> SIZE=4"])
        self.assertEqual(self.say(client, transport, b"250 ok"), ["RCPT TO:<kim@contoso.com>"])
        self.assertEqual(self.say(client, transport, b"250 ok"), ["RCPT TO:<bad@contoso.com>"])
        self.assertEqual(self.say(client, transport, b"550 5.1.1 unknown"), ["DATA"])
        self.assertEqual(self.say(client, transport, b"354 go"), ["hi", "."])
        self.assertEqual(self.say(client, transport, b"250 2.6.0 queued"), ["RSET"])
        # The outcome waits for RSET, so the connection is back in the pool
        # before the next message is sent.
        self.assertEqual(outcomes, [])
        self.say(client, transport, b"250 reset")
        self.assertEqual(client.owner.releasedClients, [client])
        [result] = outcomes
        self.assertIsNone(result["kim@contoso.com"])
        self.assertIsInstance(result["bad@contoso.com"], PermanentFailure)
        self.assertTrue(client.idle)

    def test_resetRefusedKeepsTheOutcome(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport)
        self.say(client, transport, b"250 ok", b"250 ok", b"354 go")
        self.say(client, transport, b"250 queued")
        self.assertEqual(self.say(client, transport, b"500 what"), ["QUIT"])
        self.assertEqual(outcomes, [{"kim@contoso.com": None}])

    def test_serverClosingAnIdleConnection(self):
        client, transport = self.readyClient()
        self.say(client, transport, b"421 4.4.2 timeout")
        self.assertTrue(transport.disconnecting)
        client.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(client.owner, None)

    def test_staleReusedConnection(self):
        client, transport = self.readyClient()
        self.send(client, transport)
        self.say(client, transport, b"250 ok", b"250 ok", b"354 go", b"250 queued", b"250 reset")
        outcomes = self.send(client, transport)
        client.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(outcomes), 1)
        self.assertIsInstance(outcomes[0].value, StaleConnection)

    def test_connectionLostDuringDataFailsTheTransaction(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport)
        self.say(client, transport, b"250 ok", b"250 ok", b"354 go")
        client.connectionLost(Failure(ConnectionDone()))
        [result] = outcomes
        self.assertIsInstance(result["kim@contoso.com"], ConnectionFailure)

    def test_heloRefusedDoesNotLoop(self):
        client, transport = self.connect()
        self.say(client, transport, b"220 hello")
        self.assertEqual(self.say(client, transport, b"500 no EHLO"), ["HELO huba.fabrikam.com"])
        self.assertEqual(self.say(client, transport, b"501 no HELO either"), ["QUIT"])
        self.assertIsInstance(self.ready[0].value, HostFailure)

    def test_greetingRefused(self):
        client, transport = self.connect()
        self.assertEqual(self.say(client, transport, b"554 5.7.1 go away"), ["QUIT"])
        failure = self.ready[0].value
        self.assertIsInstance(failure, HostFailure)
        self.assertIn("554 5.7.1 go away", str(failure.reply))

    def test_timeout(self):
        client, transport = self.connect()
        self.clock.advance(600)
        self.assertIsInstance(self.ready[0].value, HostFailure)
        self.assertEqual(self.ready[0].value.reply.status, "4.4.2")

    def test_protocolLogRedactsLogin(self):
        events = []

        class Session:
            def event(self, kind, data="", context="", redact=False):
                events.append((kind, "<redacted>" if redact else data, context))

        client, transport = self.connect(
            authentication="BasicAuth", credentials=("hub@contoso.com", "Pa55"), log=lambda l, r: Session()
        )
        self.say(client, transport, b"220 hello", b"250-peer", b"250 AUTH LOGIN")
        self.say(client, transport, b"334 VXNlcm5hbWU6", b"334 UGFzc3dvcmQ6", b"235 ok")
        self.assertEqual(self.ready, [client])
        sent = [data for kind, data, _ in events if kind == ">"]
        self.assertEqual(sent, [b"EHLO huba.fabrikam.com", b"AUTH LOGIN", "<redacted>", "<redacted>"])
        self.assertEqual(events[0], ("+", "", str(TARGET)))


class PipeliningTests(ClientTestCase):
    """
    With PIPELINING (RFC 2920), MAIL, the RCPTs and DATA go in one write
    and their replies are read in order before anything else is sent.
    """

    def readyClient(self, **kw):
        client, transport = self.connect(**kw)
        self.say(client, transport, b"220 hello")
        self.say(client, transport, b"250-peer", b"250-SIZE 1000", b"250 PIPELINING")
        self.assertEqual(self.ready, [client])
        client.owner = FakeOwner()
        return client, transport

    def test_transactionAndReset(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport, ["kim@contoso.com", "bad@contoso.com"])
        self.assertEqual(
            transport.takeReplies(),
            ["MAIL FROM:<a@fabrikam.com> SIZE=4", "RCPT TO:<kim@contoso.com>",
             "RCPT TO:<bad@contoso.com>", "DATA"],
        )
        self.assertEqual(self.say(client, transport, b"250 ok", b"250 ok", b"550 5.1.1 unknown"), [])
        self.assertEqual(self.say(client, transport, b"354 go"), ["hi", "."])
        self.assertEqual(self.say(client, transport, b"250 2.6.0 queued"), ["RSET"])
        self.say(client, transport, b"250 reset")
        [result] = outcomes
        self.assertIsNone(result["kim@contoso.com"])
        self.assertEqual(result["bad@contoso.com"].reply.status, "5.1.1")
        self.assertEqual(client.owner.releasedClients, [client])
        # The next message is pipelined too.
        self.send(client, transport, ["lee@contoso.com"])
        self.assertEqual(len(transport.takeReplies()), 3)

    def test_senderRefused(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport, ["kim@contoso.com", "lee@contoso.com"])
        transport.takeReplies()
        # RSET waits for the replies to the RCPTs and DATA already sent.
        self.assertEqual(self.say(client, transport, b"550 5.7.1 not you", b"503 5.5.1 no sender"), [])
        self.assertEqual(self.say(client, transport, b"503 5.5.1 no sender"), [])
        self.assertEqual(self.say(client, transport, b"503 5.5.1 no sender"), ["RSET"])
        self.say(client, transport, b"250 reset")
        [result] = outcomes
        for address in ("kim@contoso.com", "lee@contoso.com"):
            self.assertIsInstance(result[address], PermanentFailure)
            self.assertEqual(result[address].reply.status, "5.7.1")

    def test_everyRecipientRefused(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport, ["kim@contoso.com"])
        transport.takeReplies()
        self.assertEqual(
            self.say(client, transport, b"250 ok", b"450 4.2.1 busy", b"554 5.5.1 no valid recipients"),
            ["RSET"],
        )
        self.say(client, transport, b"250 reset")
        [result] = outcomes
        self.assertEqual(result["kim@contoso.com"].reply.status, "4.2.1")

    def test_dataRefused(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport, ["kim@contoso.com"])
        transport.takeReplies()
        self.assertEqual(self.say(client, transport, b"250 ok", b"250 ok", b"451 4.3.0 later"), ["RSET"])
        self.say(client, transport, b"250 reset")
        [result] = outcomes
        self.assertIsInstance(result["kim@contoso.com"], ConnectionFailure)
        self.assertEqual(result["kim@contoso.com"].reply.status, "4.3.0")

    def test_dataAcceptedWithoutRecipients(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport, ["kim@contoso.com"])
        transport.takeReplies()
        self.say(client, transport, b"250 ok", b"550 5.1.1 unknown", b"354 go")
        [result] = outcomes
        self.assertEqual(result["kim@contoso.com"].reply.status, "5.1.1")
        self.assertTrue(transport.disconnected)

    def test_resetRefusedKeepsTheOutcome(self):
        client, transport = self.readyClient()
        outcomes = self.send(client, transport)
        transport.takeReplies()
        self.say(client, transport, b"250 ok", b"250 ok", b"354 go")
        self.say(client, transport, b"250 queued")
        self.assertEqual(self.say(client, transport, b"500 what"), ["QUIT"])
        self.assertEqual(outcomes, [{"kim@contoso.com": None}])


class FakeClient:
    def __init__(self, name):
        self.name = name
        self.idle = True
        self.owner = None
        self.quits = 0

    def quit(self):
        self.quits += 1
        self.idle = False


class PoolTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.opened = []

    def opener(self, name):
        def connection():
            d = defer.Deferred()
            self.opened.append((name, d))
            return d

        return connection

    def take(self, pool, key):
        taken = []
        pool.acquire(key, self.opener(key)).addBoth(taken.append)
        return taken

    def test_capPerNextHopAndReuse(self):
        pool = ConnectionPool(self.clock, maxConnections=None, maxPerHop=1)
        first, second = self.take(pool, "a"), self.take(pool, "a")
        self.assertEqual(len(self.opened), 1)
        client = FakeClient("a")
        self.opened[0][1].callback(client)
        self.assertEqual(first, [client])
        self.assertEqual(second, [])
        pool.released(client)
        self.assertEqual(second, [client])
        self.assertEqual(len(self.opened), 1)

    def test_idleConnectionsExpire(self):
        pool = ConnectionPool(self.clock, idleTimeout=30)
        taken = self.take(pool, "a")
        self.opened[0][1].callback(FakeClient("a"))
        client = taken[0]
        pool.released(client)
        self.clock.advance(29.9)
        self.assertEqual(client.quits, 0)
        self.clock.advance(0.1)
        self.assertEqual(client.quits, 1)
        pool.lost(client)
        self.assertEqual(pool.total, 0)

    def test_totalCapEvictsIdleConnectionsOfOtherHops(self):
        pool = ConnectionPool(self.clock, maxConnections=1, maxPerHop=5)
        taken = self.take(pool, "a")
        self.opened[0][1].callback(FakeClient("a"))
        pool.released(taken[0])
        waiting = self.take(pool, "b")
        self.assertEqual(taken[0].quits, 1)
        self.assertEqual(len(self.opened), 1)
        pool.lost(taken[0])
        self.assertEqual(len(self.opened), 2)
        self.opened[1][1].callback(FakeClient("b"))
        self.assertEqual(waiting[0].name, "b")

    def test_unreachableNextHopFailsItsWaiters(self):
        pool = ConnectionPool(self.clock, maxPerHop=1)
        first, second, other = self.take(pool, "a"), self.take(pool, "a"), self.take(pool, "b")
        failure = ConnectionFailure(Reply(451, "4.4.1", "down"))
        self.opened[0][1].errback(failure)
        self.assertIs(first[0].value, failure)
        self.assertIs(second[0].value, failure)
        self.assertEqual(other, [])
        self.assertEqual([name for name, _ in self.opened], ["a", "b"])

    def test_closingServerConnectionsAreNotHandedOut(self):
        pool = ConnectionPool(self.clock)
        taken = self.take(pool, "a")
        self.opened[0][1].callback(FakeClient("a"))
        pool.released(taken[0])
        taken[0].idle = False  # the server said 421 and is hanging up
        again = self.take(pool, "a")
        self.assertEqual(again, [])
        self.assertEqual(len(self.opened), 2)

    def test_close(self):
        pool = ConnectionPool(self.clock, maxPerHop=1)
        taken = self.take(pool, "a")
        waiting = self.take(pool, "a")
        self.opened[0][1].callback(FakeClient("a"))
        pool.close()
        self.assertIsInstance(waiting[0].value, ConnectionFailure)
        pool.released(taken[0])
        self.assertEqual(taken[0].quits, 1)
        self.assertIsInstance(self.take(pool, "a")[0].value, ConnectionFailure)


class PoolWaitingTests(SynchronousTestCase):
    """
    Long waiting lines: order, caps across next hops, and no recursion when
    each taker hands its connection straight back.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.opened = []

    def opener(self, key):
        def connection():
            d = defer.Deferred()
            self.opened.append((key, d))
            return d

        return connection

    def test_manyWaitersAreServedInOrderOnTwoConnections(self):
        pool = ConnectionPool(self.clock, maxPerHop=2)
        served = []
        for number in range(2000):
            pool.acquire("a", self.opener("a")).addCallback(lambda client, n=number: served.append((n, client)))
        self.assertEqual(len(self.opened), 2)
        self.assertEqual(pool.waiting("a"), 1998)
        clients = [FakeClient("a1"), FakeClient("a2")]
        for (_, opening), client in zip(self.opened, clients):
            opening.callback(client)
        done = 0
        while done < len(served):
            _, client = served[done]
            done += 1
            pool.released(client)
        self.assertEqual([number for number, _ in served], list(range(2000)))
        self.assertEqual(len(self.opened), 2)
        self.assertEqual(pool.waiting("a"), 0)
        self.assertEqual(pool.total, 2)

    def test_takersThatReleaseAtOnceDoNotRecurse(self):
        # A transaction refused before it starts (a message over the
        # peer's SIZE) releases the connection inside the callback.
        pool = ConnectionPool(self.clock, maxPerHop=1)
        served = []

        def takeAndRelease(client):
            served.append(client)
            pool.released(client)

        for _ in range(5000):
            pool.acquire("a", self.opener("a")).addCallback(takeAndRelease)
        self.opened[0][1].callback(FakeClient("a"))
        self.assertEqual(len(served), 5000)
        self.assertEqual(pool.waiting("a"), 0)

    def test_nextHopsStuckOnTheTotalCapGoInTurn(self):
        pool = ConnectionPool(self.clock, maxConnections=1, maxPerHop=5)
        first = []
        pool.acquire("a", self.opener("a")).addCallback(first.append)
        self.opened[0][1].callback(FakeClient("a"))
        later = {key: [] for key in "bcd"}
        for key in "bcd":
            pool.acquire(key, self.opener(key)).addCallback(later[key].append)
        self.assertEqual(len(self.opened), 1)
        order = []
        client = first[0]
        for _ in "bcd":
            pool.released(client)
            self.assertEqual(client.quits, 1)  # closed to make room
            pool.lost(client)
            key, opening = self.opened[-1]
            order.append(key)
            client = FakeClient(key)
            opening.callback(client)
            self.assertEqual(later[key], [client])
        self.assertEqual(order, ["b", "c", "d"])
        self.assertEqual(pool.total, 1)

    def test_unreachableNextHopDoesNotHoldOthers(self):
        pool = ConnectionPool(self.clock, maxConnections=2, maxPerHop=1)
        down = [pool.acquire("down", self.opener("down")) for _ in range(100)]
        failures = []
        for waiting in down:
            waiting.addErrback(failures.append)
        up = []
        pool.acquire("up", self.opener("up")).addCallback(up.append)
        self.assertEqual([key for key, _ in self.opened], ["down", "up"])
        self.opened[0][1].errback(ConnectionFailure(Reply(451, "4.4.1", "down")))
        self.assertEqual(len(failures), 100)
        self.opened[1][1].callback(FakeClient("up"))
        self.assertEqual(len(up), 1)
        self.assertEqual(pool.total, 1)


class HostTests(SynchronousTestCase):
    def test_failedHostsGoLastForAWhile(self):
        clock = task.Clock()
        failed = FailedHosts(clock, memory=600)
        one, two, three = (Target(f"h{n}", f"127.0.0.{n}", 25) for n in (1, 2, 3))
        failed.mark(one)
        self.assertEqual(failed.order([one, two, three]), [two, three, one])
        clock.advance(600)
        self.assertEqual(failed.order([one, two, three]), [one, two, three])
        failed.mark(two)
        failed.clear(two)
        self.assertEqual(failed.order([one, two, three]), [one, two, three])

    def test_smartHostParts(self):
        self.assertEqual(smartHostParts(SmartHost("gw.contoso.com"), 25), ("gw.contoso.com", 25, False))
        self.assertEqual(smartHostParts(SmartHost("10.0.0.1", 587), 25), ("10.0.0.1", 587, True))
        self.assertEqual(smartHostParts("[::1]:2525", 25), ("::1", 2525, True))
        self.assertEqual(smartHostParts("gw.contoso.com:26", 25), ("gw.contoso.com", 26, False))

    def test_summary(self):
        class Settings:
            key = "ToInternetGateway"

        reply = _summary(
            Settings,
            [("a[1.2.3.4]:25", Reply(451, "4.7.3", "STARTTLS is required")),
             ("b[1.2.3.5]:25", Reply(451, "4.4.1", "Unable to connect"))],
        )
        self.assertEqual((reply.code, reply.status), (451, "4.7.3"))
        self.assertIn("a[1.2.3.4]:25", reply.text)
        self.assertIn("Unable to connect", reply.text)


class PolicyTests(SynchronousTestCase):
    def test_authenticationOf(self):
        self.assertIsNone(authenticationOf(sendConnector()))
        self.assertEqual(
            authenticationOf(sendConnector(smartHostAuthMechanism=frozenset({"BasicAuth"}))), "BasicAuth"
        )
        self.assertEqual(
            authenticationOf(
                sendConnector(smartHostAuthMechanism=frozenset({"BasicAuth", "BasicAuthRequireTLS"}))
            ),
            "BasicAuthRequireTLS",
        )
        self.assertIsNone(authenticationOf(sendConnector(smartHostAuthMechanism=frozenset({"ExternalAuthoritative"}))))

    def test_levels(self):
        self.assertEqual(TlsPolicy(tlsAuthLevel="DomainValidation").level, "EncryptionOnly")
        self.assertEqual(TlsPolicy(requireTLS=True, tlsAuthLevel="DomainValidation").level, "DomainValidation")
        self.assertIsNone(TlsPolicy(ignoreSTARTTLS=True).contextFor("gw.contoso.com"))
        self.assertIsNotNone(TlsPolicy().contextFor("gw.contoso.com"))
