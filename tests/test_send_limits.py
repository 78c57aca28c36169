"""
MaxOutboundConnections and MaxPerDomainOutboundConnections held over every
process of a transport server (L{exmta.send.limits.OutboundCounts} in the
region of L{exmta.sharedcounts.SharedCounts}): the slot arithmetic on two
rows of one region in one process, two connection pools on a fake clock,
and two real child processes, each with its own L{SmtpDelivery}, sending
to one SMTP peer on loopback that counts the connections open at once.
"""

import json
import os
import subprocess
import sys
import textwrap
import zlib
from types import SimpleNamespace

from twisted.internet import defer, protocol, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

import exmta
from exmta.receive.limits import ConnectionCounts
from exmta.send.limits import PER_HOP, TOTAL, OutboundCounts, slotOf
from exmta.send.pool import POLL_INTERVAL, ConnectionPool
from exmta.sharedcounts import SLOTS, SharedCounts
from tests.test_send_parts import FakeClient
from tests.test_send_support import Peer, listen

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(exmta.__file__)))


def sharedPair(testCase, rows=2):
    """
    @return: the owner's region and a worker's (row 1), closed when the
        test ends.
    """
    owner = SharedCounts.create(rows)
    testCase.addCleanup(owner.close)
    worker = SharedCounts.attach(os.dup(owner.fileno()), 1)
    testCase.addCleanup(worker.close)
    return owner, worker


def collidingHops():
    """
    @return: two next hop keys whose slots are the same.
    """
    seen = {}
    for number in range(SLOTS + 1):
        hop = f"contoso{number}.com"
        slot = slotOf(hop)
        if slot in seen:
            return seen[slot], hop
        seen[slot] = hop


class OutboundCountsTests(SynchronousTestCase):
    """
    Two processes' counts on one region, in one process.
    """

    def setUp(self):
        owner, worker = sharedPair(self)
        self.owner = OutboundCounts(owner, 5, 3)
        self.worker = OutboundCounts(worker, 5, 3)
        self.region = owner

    def test_perHopCapCountsEveryRow(self):
        self.assertIsNone(self.owner.take("contoso.com"))
        self.assertIsNone(self.owner.take("contoso.com"))
        self.assertIsNone(self.worker.take("contoso.com"))
        self.assertEqual(self.worker.take("contoso.com"), PER_HOP)
        self.assertEqual(self.owner.take("contoso.com"), PER_HOP)
        self.assertEqual(self.owner.connections("contoso.com"), 3)
        self.owner.give("contoso.com")
        self.assertIsNone(self.worker.take("contoso.com"))
        self.assertEqual(self.worker.connections("contoso.com"), 3)

    def test_totalCapCountsEveryRow(self):
        for hop in ("a.com", "b.com", "c.com"):
            self.assertIsNone(self.owner.take(hop))
        for hop in ("d.com", "e.com"):
            self.assertIsNone(self.worker.take(hop))
        self.assertEqual(self.worker.connections(), 5)
        self.assertEqual(self.worker.take("f.com"), TOTAL)
        self.assertEqual(self.owner.take("f.com"), TOTAL)
        self.worker.give("d.com")
        self.assertIsNone(self.owner.take("f.com"))
        self.assertEqual(self.worker.take("d.com"), TOTAL)

    def test_refusedTakeCountsNothing(self):
        for _ in range(3):
            self.owner.take("contoso.com")
        self.assertEqual(self.worker.take("contoso.com"), PER_HOP)
        self.assertEqual((self.owner.connections("contoso.com"), self.owner.connections()), (3, 3))

    def test_unlimited(self):
        owner = OutboundCounts(self.region, None, None)
        for _ in range(500):
            self.assertIsNone(owner.take("contoso.com"))
        self.assertEqual(owner.connections(), 500)

    def test_hopsSharingASlotShareACount(self):
        """
        Two next hops whose slots are the same are capped as one: the cap
        bites earlier, never later.
        """
        first, second = collidingHops()
        self.assertEqual(slotOf(first), zlib.crc32(first.encode()) % SLOTS)
        for _ in range(2):
            self.assertIsNone(self.owner.take(first))
        self.assertIsNone(self.worker.take(second))
        self.assertEqual(self.worker.take(second), PER_HOP)
        self.assertIsNone(self.worker.take("fabrikam.com"))

    def test_clearRowFreesADeadProcessesConnections(self):
        for _ in range(3):
            self.worker.take("contoso.com")
        self.worker.wait("contoso.com", PER_HOP)
        self.assertEqual(self.owner.take("contoso.com"), PER_HOP)
        self.assertTrue(self.owner.shouldClose("contoso.com", False))
        self.region.clearRow(1)
        self.assertIsNone(self.owner.take("contoso.com"))
        self.assertEqual(self.owner.connections(), 1)
        self.assertFalse(self.owner.shouldClose("contoso.com", False))

    def test_shouldCloseForOthersWaiting(self):
        """
        A process without sends of its own for a next hop gives its
        connections up to the sends other processes have waiting for that
        next hop or for room under the total cap, not to its own.
        """
        self.owner.wait("contoso.com", PER_HOP)
        self.assertFalse(self.owner.shouldClose("contoso.com", False))
        self.assertTrue(self.worker.shouldClose("contoso.com", False))
        self.assertFalse(self.worker.shouldClose("fabrikam.com", False))
        self.owner.wait("contoso.com", TOTAL)
        self.assertTrue(self.worker.shouldClose("fabrikam.com", False))
        self.owner.stopWaiting("contoso.com", TOTAL)
        self.owner.stopWaiting("contoso.com", PER_HOP)
        self.assertFalse(self.worker.shouldClose("contoso.com", False))

    def test_noTakingPastTheShareWhileOthersWait(self):
        """
        While another process waits, a process opens connections only up
        to its share of the cap (3 between two processes: 2, rounded up so
        that none is left unused).
        """
        for _ in range(2):
            self.assertIsNone(self.owner.take("contoso.com"))
        self.worker.wait("contoso.com", PER_HOP)
        self.assertEqual(self.owner.take("contoso.com"), PER_HOP)
        self.assertIsNone(self.worker.take("contoso.com"))
        self.worker.stopWaiting("contoso.com", PER_HOP)
        self.owner.give("contoso.com")
        self.assertIsNone(self.owner.take("contoso.com"))

    def test_shouldCloseOverTheShare(self):
        """
        A process with sends of its own waiting keeps a connection that
        finished for them while it has no more than its share.
        """
        for _ in range(3):
            self.owner.take("contoso.com")
        self.assertFalse(self.owner.shouldClose("contoso.com", True))
        self.worker.wait("contoso.com", PER_HOP)
        self.assertTrue(self.owner.shouldClose("contoso.com", True))
        self.owner.give("contoso.com")
        self.assertFalse(self.owner.shouldClose("contoso.com", True))
        self.assertTrue(self.owner.shouldClose("contoso.com", False))

    def test_totalShare(self):
        for hop in ("a.com", "b.com", "c.com", "d.com"):
            self.owner.take(hop)
        self.worker.wait("e.com", TOTAL)
        self.assertTrue(self.owner.shouldClose("a.com", True))
        self.owner.give("a.com")
        self.assertFalse(self.owner.shouldClose("b.com", True))
        self.assertEqual(self.owner.take("a.com"), TOTAL)
        self.assertIsNone(self.worker.take("e.com"))

    def test_inboundAndOutboundCountsApart(self):
        """
        The receive side's counts and the send side's share a region and
        a row, in tables of their own.
        """
        inbound = ConnectionCounts.attach(os.dup(self.region.fileno()), 1)
        self.addCleanup(inbound.close)
        connector = SimpleNamespace(
            identity="contoso.com", maxInboundConnection=1, maxInboundConnectionPerSource=None,
            maxInboundConnectionPercentagePerSource=100,
        )
        self.assertIsNone(inbound.admit(connector, "127.0.0.7"))
        self.assertEqual(self.owner.connections(), 0)
        for _ in range(3):
            self.assertIsNone(self.worker.take("contoso.com"))
        self.assertIsNotNone(inbound.admit(connector, "127.0.0.8"))
        inbound.release(connector, "127.0.0.7")
        self.assertIsNone(inbound.admit(connector, "127.0.0.8"))
        self.assertEqual(self.owner.connections("contoso.com"), 3)


# A sending process's stand-in: attaches to the region on the descriptor it
# inherited, counts connections to the next hops given, says so, and holds
# them until it is killed.
HOLDER = textwrap.dedent(
    """
    import sys
    from exmta.send.limits import OutboundCounts
    from exmta.sharedcounts import SharedCounts

    descriptor, row, *hops = sys.argv[1:]
    counts = OutboundCounts(SharedCounts.attach(int(descriptor), int(row)), None, None)
    for hop in hops:
        assert counts.take(hop) is None
    print("taken", len(hops), flush=True)
    sys.stdin.readline()
    """
)


class DeadProcessTests(SynchronousTestCase):
    """
    A real process that dies holding connections leaves them counted in
    its row until the owner clears it, as the worker pool does when it
    sees a worker end.
    """

    def test_killedProcessesRowIsCleared(self):
        region = SharedCounts.create(3)
        self.addCleanup(region.close)
        owner = OutboundCounts(region, 1000, 3)
        descriptor = region.fileno()
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(descriptor), "2", *["contoso.com"] * 3],
            pass_fds=(descriptor,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=REPOSITORY),
        )
        for stream in (child.stdin, child.stdout, child.stderr):
            self.addCleanup(stream.close)
        line = child.stdout.readline()
        self.assertEqual(line, b"taken 3\n", child.stderr.read() if not line else line)
        self.assertEqual(owner.take("contoso.com"), PER_HOP)
        child.kill()
        child.wait()
        self.assertEqual(owner.take("contoso.com"), PER_HOP)
        region.clearRow(2)
        self.assertEqual([owner.take("contoso.com") for _ in range(4)], [None, None, None, PER_HOP])


class SharedPoolTests(SynchronousTestCase):
    """
    Two L{ConnectionPool}s, as in two processes, on one region and one
    fake clock.
    """

    def setUp(self):
        self.clock = task.Clock()
        owner, worker = sharedPair(self)
        self.pools = [
            ConnectionPool(self.clock, 4, 2, shared=OutboundCounts(owner, 4, 2)),
            ConnectionPool(self.clock, 4, 2, shared=OutboundCounts(worker, 4, 2)),
        ]
        for pool in self.pools:
            self.addCleanup(pool.close)
        self.counts = OutboundCounts(owner, 4, 2)
        self.opened = []

    def take(self, pool, key):
        taken = []

        def opener():
            d = defer.Deferred()
            self.opened.append((pool, key, d))
            return d

        pool.acquire(key, opener).addBoth(taken.append)
        return taken

    def open(self, index):
        pool, key, d = self.opened[index]
        client = FakeClient(key)
        d.callback(client)
        return client

    def test_perHopCapOverPools(self):
        first, second = self.pools
        a = [self.take(first, "a"), self.take(first, "a")]
        b = [self.take(second, "a"), self.take(second, "a")]
        self.assertEqual([pool for pool, _, _ in self.opened], [first, first])
        clients = [self.open(0), self.open(1)]
        self.assertEqual([taken[0] for taken in a], clients)
        self.assertEqual(b, [[], []])
        # The first pool's connection is gone: the second hears of it at
        # its next look.
        first.lost(clients[0])
        self.assertEqual(len(self.opened), 2)
        self.clock.advance(POLL_INTERVAL)
        self.assertEqual([pool for pool, _, _ in self.opened[2:]], [second])
        self.assertEqual(self.open(2), b[0][0])
        self.assertEqual(self.counts.connections("a"), 2)

    def test_releasedConnectionClosedForAnotherProcess(self):
        """
        A pool with no send waiting for a connection it gets back closes
        it when another pool's send waits for that next hop, rather than
        keeping it idle.
        """
        first, second = self.pools
        taken = [self.take(first, "a"), self.take(first, "a")]
        clients = [self.open(0), self.open(1)]
        waiting = self.take(second, "a")
        first.released(clients[0])
        self.assertEqual(clients[0].quits, 1)
        first.lost(clients[0])
        self.clock.advance(POLL_INTERVAL)
        self.assertEqual(self.open(2), waiting[0])
        # Nobody waits for the other: kept idle.
        first.released(taken[1][0])
        self.assertEqual(clients[1].quits, 0)

    def test_idleConnectionClosedWhenAnotherProcessWaits(self):
        first, second = self.pools
        taken = [self.take(first, "a"), self.take(first, "a")]
        clients = [self.open(0), self.open(1)]
        for client in clients:
            first.released(client)
        self.assertEqual([c.quits for c in clients], [0, 0])
        waiting = self.take(second, "a")
        self.clock.advance(POLL_INTERVAL)
        self.assertEqual([c.quits for c in clients], [1, 1])
        first.lost(clients[0])
        self.clock.advance(POLL_INTERVAL)
        self.assertEqual(self.open(2), waiting[0])
        self.assertEqual(taken[0], [clients[0]])

    def test_longQueueSharesTheCap(self):
        """
        A pool whose own sends keep its connections busy gives one up to
        another pool's waiting send, down to its share, and then reuses
        the rest for its own.
        """
        first, second = self.pools
        taken = [self.take(first, "a") for _ in range(4)]
        clients = [self.open(0), self.open(1)]
        waiting = self.take(second, "a")
        first.released(clients[0])
        self.assertEqual(clients[0].quits, 1)
        first.lost(clients[0])
        self.assertEqual(len(self.opened), 2)
        self.clock.advance(POLL_INTERVAL)
        self.assertEqual([pool for pool, _, _ in self.opened[2:]], [second])
        self.assertEqual(self.open(2), waiting[0])
        first.released(clients[1])
        self.assertEqual(clients[1].quits, 0)
        self.assertEqual(taken[2], [clients[1]])
        self.assertEqual(taken[3], [])

    def test_totalCapOverPools(self):
        first, second = self.pools
        for key in ("a", "a", "b", "b"):
            self.take(first, key)
        clients = [self.open(n) for n in range(4)]
        waiting = self.take(second, "c")
        self.assertEqual(len(self.opened), 4)
        first.lost(clients[2])
        self.clock.advance(POLL_INTERVAL)
        self.assertEqual(self.open(4), waiting[0])
        self.assertEqual(self.counts.connections(), 4)

    def test_totalCapEvictsOwnIdleConnection(self):
        """
        Held by the total of every process, a pool closes one of its own
        idle connections to another next hop to make room.
        """
        first, second = self.pools
        for key in ("a", "a"):
            self.take(second, key)
        self.take(first, "b")
        self.take(first, "b")
        clients = [self.open(n) for n in range(4)]
        first.released(clients[2])
        waiting = self.take(first, "c")
        self.assertEqual(clients[2].quits, 1)
        first.lost(clients[2])
        self.assertEqual(self.open(4), waiting[0])

    def test_noPollingWithoutWaitingOrIdle(self):
        first, _ = self.pools
        taken = self.take(first, "a")
        client = self.open(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        first.released(taken[0])
        first.lost(client)
        self.clock.advance(POLL_INTERVAL)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeStopsWaitingAndLooking(self):
        first, second = self.pools
        for _ in range(2):
            self.take(first, "a")
        waiting = self.take(second, "a")
        self.assertTrue(self.counts.shouldClose("a", False))
        second.close()
        self.assertEqual(len(waiting), 1)
        self.assertFalse(self.counts.shouldClose("a", False))
        self.assertEqual(
            [call for call in self.clock.getDelayedCalls() if call.active()], []
        )


# A sending process of a transport server: attaches to the region on the
# descriptor it inherited, asks its one SmtpDelivery to send its messages
# to the peer's port all at once and says so, then says how many got
# through, and ends.
SENDER = textwrap.dedent(
    """
    import json, sys
    from twisted.internet import defer, task
    from exmta.config.values import SmartHost
    from exmta.envelope import NextHop
    from exmta.send import SmtpDelivery
    from exmta.sharedcounts import SharedCounts
    from tests.test_send_support import (
        Credentials, Queued, ZoneResolver, organization, sendConnector, transportServer,
    )

    descriptor, row, port, perHop, total, messages, hops = sys.argv[1:]
    hops = hops.split(",")
    connections = SharedCounts.attach(int(descriptor), int(row))
    connectors = [
        sendConnector(name=name, smartHosts=(SmartHost("127.0.0.1", int(port)),))
        for name in ("ToA", "ToB")
    ]
    server = transportServer(
        maxPerDomainOutboundConnections=int(perHop), maxOutboundConnections=int(total)
    )

    async def main(reactor):
        delivery = SmtpDelivery(
            organization(*connectors, server=server), server, Credentials(), reactor,
            resolver=ZoneResolver({}), connections=connections,
        )
        sends = [
            delivery.send(
                NextHop("SmartHostConnectorDelivery", hops[n % len(hops)]),
                Queued(queueId=f"{row}-{n}"), [f"r{row}-{n}@contoso.com"], b"Subject: x\\r\\n\\r\\nx\\r\\n",
            )
            for n in range(int(messages))
        ]
        print("asked", flush=True)
        results = await defer.gatherResults(sends)
        await delivery.close()
        sent = sum(all(outcome is None for outcome in result.values()) for result in results)
        print(json.dumps({"sent": sent}), flush=True)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
    """
)


class _Sender(protocol.ProcessProtocol):
    """
    A L{SENDER} process.

    @ivar asked: fires once it has asked for its sends.
    @ivar ended: fires with how many of its messages got through.
    """

    def __init__(self, testCase):
        self.testCase = testCase
        self.output = b""
        self.errors = b""
        self.asked = defer.Deferred()
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data
        if not self.asked.called and b"asked\n" in self.output:
            self.asked.callback(None)

    def errReceived(self, data):
        self.errors += data

    def processEnded(self, reason):
        self.testCase.assertEqual(reason.value.exitCode, 0, self.errors.decode())
        self.ended.callback(json.loads(self.output.splitlines()[-1])["sent"])


class TwoProcessesTests(TestCase):
    """
    Two real processes of one server, each with its own SmtpDelivery on
    its row of one region, send to one peer on loopback: the peer never
    has more connections open at once than the server's caps, every
    message gets through, and a process with a long queue does not keep
    the connections from the other.
    """

    MESSAGES = 40

    def setUp(self):
        self.region = SharedCounts.create(3)
        self.addCleanup(self.region.close)
        # The peer holds each message's final reply until the next tick,
        # so that the senders want many connections at once.
        self.peer = Peer(holdFinal=True)
        self.port = listen(self, self.peer)
        self.releasing = task.LoopingCall(self.peer.release)
        self.addCleanup(lambda: self.releasing.running and self.releasing.stop())

    def start(self, row, perHop, total, hops, messages=MESSAGES):
        """
        Start a sending process on C{row}, sending C{messages} to C{hops}
        (send connector names) in turn.

        @return: its L{_Sender}.
        """
        sender = _Sender(self)
        descriptor = self.region.fileno()
        reactor.spawnProcess(
            sender,
            sys.executable,
            [
                sys.executable, "-c", SENDER,
                str(descriptor), str(row), str(self.port),
                str(perHop), str(total), str(messages), ",".join(hops),
            ],
            env=dict(os.environ, PYTHONPATH=REPOSITORY),
            childFDs={0: "w", 1: "r", 2: "r", descriptor: descriptor},
        )
        return sender

    @defer.inlineCallbacks
    def send(self, perHop, total, hops):
        """
        Run two sending processes to the end.

        @return: how many messages each got through.
        """
        self.releasing.start(0.02, now=False)
        senders = [self.start(row, perHop, total, hops) for row in (1, 2)]
        sent = yield defer.gatherResults([sender.ended for sender in senders])
        self.assertEqual(len(self.peer.messages), sum(sent))
        # Every connection closed was given back.
        self.assertEqual(OutboundCounts(self.region, None, None).connections(), 0)
        return sent

    @defer.inlineCallbacks
    def test_perDomainCapHoldsOverProcesses(self):
        sent = yield self.send(perHop=3, total=1000, hops=["ToA"])
        self.assertEqual(sent, [self.MESSAGES] * 2)
        self.assertEqual(self.peer.maxOpen, 3)

    @defer.inlineCallbacks
    def test_totalCapHoldsOverProcesses(self):
        sent = yield self.send(perHop=2, total=3, hops=["ToA", "ToB"])
        self.assertEqual(sent, [self.MESSAGES] * 2)
        self.assertEqual(self.peer.maxOpen, 3)

    @defer.inlineCallbacks
    def test_longQueueSharesTheNextHop(self):
        """
        A process with a long queue for a next hop holds all its
        connections when a second process's sends for it come; the second
        gets its share, and its few messages are through long before the
        first's many.
        """
        first = self.start(1, 3, 1000, ["ToA"], messages=120)
        yield self.peer.whenHeld(3)
        second = self.start(2, 3, 1000, ["ToA"], messages=10)
        yield second.asked
        ended = []
        first.ended.addCallback(lambda sent: ended.append(("first", sent)))
        second.ended.addCallback(lambda sent: ended.append(("second", sent)))
        self.releasing.start(0.02)
        yield defer.gatherResults([first.ended, second.ended])
        self.assertEqual(ended, [("second", 10), ("first", 120)])
        self.assertEqual(self.peer.maxOpen, 3)
        firstOfSecond = next(
            n for n, m in enumerate(self.peer.arrivals) if m.recipients[0].startswith("r2-")
        )
        # At the second's first look (POLL_INTERVAL: ten ticks of the peer,
        # two or three messages each), not after the first's 120.
        self.assertLess(firstOfSecond, 40)
