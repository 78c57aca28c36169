"""
Stopping the send side while sends wait on a smart host that accepts TCP
connections and never answers, or are in the middle of a transaction: the
sends end at once (or after the grace), with a transient failure, so their
recipients stay queued.
"""

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.trial.unittest import TestCase

from exmta.config.values import SmartHost
from exmta.envelope import NextHop
from exmta.errors import ConnectionFailure
from exmta.send import SmtpDelivery
from exmta.send.delivery import STOP_GRACE
from exmta.send.pool import SHUTTING_DOWN
from tests.test_send_support import (
    Credentials,
    Peer,
    Queued,
    ZoneResolver,
    listen,
    organization,
    sendConnector,
    transportServer,
)

MESSAGE = b"Subject: hello\r\n\r\nHello.\r\n"
HOP = NextHop("SmartHostConnectorDelivery", "ToInternetGateway")


class _Silent(Protocol):
    def connectionMade(self):
        self.factory.accepted.append(self)
        waiters, self.factory.waiters = self.factory.waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def connectionLost(self, reason):
        self.factory.accepted.remove(self)
        if not self.factory.accepted:
            waiters, self.factory.closedWaiters = self.factory.closedWaiters, []
            for waiter in waiters:
                waiter.callback(None)


class SilentHost(ServerFactory):
    """
    Accepts connections and never says a word.
    """

    protocol = _Silent

    def __init__(self):
        self.accepted = []
        self.waiters = []
        self.closedWaiters = []

    def whenAccepted(self):
        waiter = defer.Deferred()
        if self.accepted:
            waiter.callback(None)
        else:
            self.waiters.append(waiter)
        return waiter

    def closed(self):
        """
        @return: a Deferred firing once no connection is open.
        """
        if not self.accepted:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self.closedWaiters.append(waiter)
        return waiter


class StopTests(TestCase):
    def delivery(self, port, clock=None, **server):
        org = organization(
            sendConnector(smartHosts=(SmartHost("127.0.0.1", port),)),
            server=transportServer(**server),
        )
        return SmtpDelivery(
            org, next(iter(org.transportServers.values())), Credentials(), reactor,
            resolver=ZoneResolver({}), clock=clock,
        )

    def assertShuttingDown(self, outcomes, recipients):
        self.assertEqual(sorted(outcomes), sorted(recipients))
        for outcome in outcomes.values():
            self.assertIsInstance(outcome, ConnectionFailure)
            self.assertEqual(outcome.reply, SHUTTING_DOWN)

    @defer.inlineCallbacks
    def test_sendsWaitingForAGreetingEndAtOnce(self):
        silent = SilentHost()
        port = listen(self, silent)
        delivery = self.delivery(port, maxPerDomainOutboundConnections=2)
        sends = [
            delivery.send(HOP, Queued(queueId=str(n)), [f"r{n}@contoso.com"], MESSAGE)
            for n in range(10)
        ]
        yield silent.whenAccepted()
        yield delivery.close()
        results = yield defer.gatherResults(sends)
        for number, outcomes in enumerate(results):
            self.assertShuttingDown(outcomes, [f"r{number}@contoso.com"])
        yield silent.closed()
        # Nothing is sent after the stop.
        late = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertShuttingDown(late, ["kim@contoso.com"])

    @defer.inlineCallbacks
    def test_transactionUnderWayHasAGrace(self):
        clock = task.Clock()
        peer = Peer(holdFinal=True)
        delivery = self.delivery(listen(self, peer), clock=clock)
        finishing = delivery.send(HOP, Queued(queueId="1"), ["kim@contoso.com"], MESSAGE)
        yield peer.whenHeld(1)
        closed = delivery.close()
        self.assertFalse(finishing.called)
        peer.release()
        self.assertEqual((yield finishing), {"kim@contoso.com": None})
        yield closed
        self.assertEqual(peer.verbs()[-1], "QUIT")

    @defer.inlineCallbacks
    def test_transactionPastTheGraceIsDropped(self):
        clock = task.Clock()
        peer = Peer(holdFinal=True)
        delivery = self.delivery(listen(self, peer), clock=clock)
        stuck = delivery.send(HOP, Queued(queueId="1"), ["kim@contoso.com"], MESSAGE)
        yield peer.whenHeld(1)
        closed = delivery.close()
        clock.advance(STOP_GRACE)
        self.assertShuttingDown((yield stuck), ["kim@contoso.com"])
        yield closed
        yield peer.closed()
        peer.held = []

    @defer.inlineCallbacks
    def test_closingTwiceWaitsForTheFirstClose(self):
        clock = task.Clock()
        peer = Peer(holdFinal=True)
        delivery = self.delivery(listen(self, peer), clock=clock)
        stuck = delivery.send(HOP, Queued(queueId="1"), ["kim@contoso.com"], MESSAGE)
        yield peer.whenHeld(1)
        first, second = delivery.close(), delivery.close()
        self.assertFalse(second.called)
        clock.advance(STOP_GRACE)
        yield defer.gatherResults([first, second, stuck])
        self.assertIsNone((yield delivery.close()))
        yield peer.closed()
        peer.held = []
