"""
Connection limits counted over every process of a transport server
(L{exmta.receive.limits.ConnectionCounts}): two rows of one region in one
process, a real child process that holds sessions and is killed, and a
real listening socket whose sessions are refused by another process's
count.
"""

import os
import subprocess
import sys
import textwrap
import zlib
from dataclasses import replace

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase

import exmta
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.receive.limits import (
    SLOTS,
    TOO_MANY_CONNECTIONS,
    ConnectionCounts,
    LocalConnectionCounts,
)
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect
from tests.e2e.harness import freePort
from tests.test_protocol import ORG, ControlledQueue

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(exmta.__file__)))

LIMITED = ORG + (
    "MaxInboundConnection = 3\nMaxInboundConnectionPerSource = 2\n"
    # The per-source limit alone; the share of free slots is tested in
    # tests/test_receive_extensions.py.
    "MaxInboundConnectionPercentagePerSource = 100\n"
)


def limitedConnector(text=LIMITED):
    return parseOrganization(text, "/nonexistent/org.ini").receiveConnectors[0]


def sharedPair(testCase, rows=2):
    """
    @return: the owner's counts and a worker's (row 1) on the same region,
        closed when the test ends.
    """
    owner = ConnectionCounts.create(rows)
    testCase.addCleanup(owner.close)
    worker = ConnectionCounts.attach(os.dup(owner.fileno()), 1)
    testCase.addCleanup(worker.close)
    return owner, worker


class SharedRowsTests(SynchronousTestCase):
    """
    Two processes' views of one region, in one process.
    """

    def setUp(self):
        self.connector = limitedConnector()
        self.owner, self.worker = sharedPair(self)

    def test_totalLimitCountsEveryRow(self):
        self.assertIsNone(self.owner.admit(self.connector, "127.0.0.7"))
        self.assertIsNone(self.owner.admit(self.connector, "127.0.0.8"))
        self.assertIsNone(self.worker.admit(self.connector, "127.0.0.9"))
        self.assertIs(self.worker.admit(self.connector, "127.0.0.10"), TOO_MANY_CONNECTIONS)
        self.assertIs(self.owner.admit(self.connector, "127.0.0.10"), TOO_MANY_CONNECTIONS)
        self.owner.release(self.connector, "127.0.0.7")
        self.assertIsNone(self.worker.admit(self.connector, "127.0.0.10"))

    def test_perSourceLimitCountsEveryRow(self):
        self.assertIsNone(self.owner.admit(self.connector, "127.0.0.7"))
        self.assertIsNone(self.worker.admit(self.connector, "127.0.0.7"))
        self.assertIs(self.owner.admit(self.connector, "127.0.0.7"), TOO_MANY_CONNECTIONS)
        self.assertIs(self.worker.admit(self.connector, "127.0.0.7"), TOO_MANY_CONNECTIONS)
        self.assertIsNone(self.worker.admit(self.connector, "127.0.0.8"))
        self.worker.release(self.connector, "127.0.0.7")
        self.assertIsNone(self.owner.admit(self.connector, "127.0.0.7"))

    def test_connectorsAreCountedApart(self):
        other = replace(self.connector, name="Other HubA")
        for peer in ("127.0.0.7", "127.0.0.7", "127.0.0.8"):
            self.assertIsNone(self.worker.admit(self.connector, peer))
        self.assertIs(self.owner.admit(self.connector, "127.0.0.9"), TOO_MANY_CONNECTIONS)
        self.assertIsNone(self.owner.admit(other, "127.0.0.7"))

    def test_unlimited(self):
        connector = limitedConnector(
            ORG + "MaxInboundConnection = unlimited\nMaxInboundConnectionPerSource = unlimited\n"
        )
        self.assertEqual((connector.maxInboundConnection, connector.maxInboundConnectionPerSource), (None, None))
        for _ in range(500):
            self.assertIsNone(self.owner.admit(connector, "127.0.0.7"))
            self.assertIsNone(self.worker.admit(connector, "127.0.0.7"))

    def test_clearRowFreesADeadProcessesSessions(self):
        for peer in ("127.0.0.7", "127.0.0.7", "127.0.0.8"):
            self.assertIsNone(self.worker.admit(self.connector, peer))
        self.assertIs(self.owner.admit(self.connector, "127.0.0.9"), TOO_MANY_CONNECTIONS)
        self.owner.clearRow(1)
        self.assertIsNone(self.owner.admit(self.connector, "127.0.0.7"))
        self.assertIsNone(self.owner.admit(self.connector, "127.0.0.7"))
        self.assertIsNone(self.owner.admit(self.connector, "127.0.0.8"))
        self.assertIs(self.owner.admit(self.connector, "127.0.0.9"), TOO_MANY_CONNECTIONS)

    def test_clearRowLeavesOtherRows(self):
        owner, worker = sharedPair(self, rows=3)
        third = ConnectionCounts.attach(os.dup(owner.fileno()), 2)
        self.addCleanup(third.close)
        self.assertIsNone(worker.admit(self.connector, "127.0.0.7"))
        self.assertIsNone(third.admit(self.connector, "127.0.0.7"))
        owner.clearRow(2)
        self.assertIsNone(owner.admit(self.connector, "127.0.0.7"))
        self.assertIs(owner.admit(self.connector, "127.0.0.7"), TOO_MANY_CONNECTIONS)

    def test_clearRowRefusesItsOwnRowAndRowsOutside(self):
        for row in (0, 2, -1):
            self.assertRaises(ValueError, self.owner.clearRow, row)

    def test_attachRefusesTheOwnersRowAndRowsOutside(self):
        for row in (0, 2, -1):
            descriptor = os.dup(self.owner.fileno())
            self.addCleanup(os.close, descriptor)
            self.assertRaises(ValueError, ConnectionCounts.attach, descriptor, row)

    def test_attachRefusesARegionOfAnotherSize(self):
        descriptor = os.memfd_create("not-connection-counts")
        self.addCleanup(os.close, descriptor)
        os.ftruncate(descriptor, 4096)
        self.assertRaises(ValueError, ConnectionCounts.attach, descriptor, 1)

    def test_rows(self):
        self.assertEqual((self.owner.rows, self.owner.row), (2, 0))
        self.assertEqual((self.worker.rows, self.worker.row), (2, 1))
        self.assertRaises(ValueError, ConnectionCounts.create, 0)

    def test_sourcesSharingASlotShareACount(self):
        """
        Two client addresses whose slots are the same are refused as one
        source: the limit bites earlier, never later.
        """
        identity = zlib.crc32(self.connector.identity.encode())
        seen = {}
        for n in range(65536):
            peer = f"127.0.{n >> 8}.{n & 255}"
            slot = zlib.crc32(b"\n" + peer.encode(), identity) % SLOTS
            if slot in seen:
                break
            seen[slot] = peer
        first, second = seen[slot], peer
        self.assertIsNone(self.owner.admit(self.connector, first))
        self.assertIsNone(self.worker.admit(self.connector, first))
        self.assertIs(self.owner.admit(self.connector, second), TOO_MANY_CONNECTIONS)

        # A server without workers counts exactly: the same two are apart.
        local = LocalConnectionCounts()
        self.assertIsNone(local.admit(self.connector, first))
        self.assertIsNone(local.admit(self.connector, first))
        self.assertIs(local.admit(self.connector, first), TOO_MANY_CONNECTIONS)
        self.assertIsNone(local.admit(self.connector, second))
        local.release(self.connector, first)
        self.assertIsNone(local.admit(self.connector, first))


def protocolFactory(connector, connections=None, reactor=None, text=LIMITED):
    organization = parseOrganization(text, "/nonexistent/org.ini")
    portal = Portal(ConnectorRealm(organization, connector), [AllowAnonymousAccess()])
    return ReceiveFactory(
        organization, organization.transportServers["HubA"], {connector.identity: portal},
        ControlledQueue(), Resolver(organization), None, reactor, connections=connections,
    )


class ReceiveFactoryTests(SynchronousTestCase):
    """
    Sessions of L{ReceiveFactory} count in its L{ConnectionCounts}.
    """

    def setUp(self):
        self.connector = limitedConnector()
        self.clock = MemoryReactorClock()

    def test_ownCountsByDefault(self):
        factory = protocolFactory(self.connector, reactor=self.clock)
        self.assertIsInstance(factory.connectionCounts, LocalConnectionCounts)
        sessions = [connect(factory, peer=(f"127.0.0.{n}", 40000)) for n in (7, 8, 9)]
        for _, transport in sessions:
            self.assertTrue(transport.takeReplies()[0].startswith("220 "))
        protocol, transport = connect(factory, peer=("127.0.0.10", 40000))
        self.assertEqual(transport.takeReplies(), [TOO_MANY_CONNECTIONS.toBytes().decode().strip()])
        self.assertTrue(transport.disconnecting)
        sessions[0][0].connectionLost(None)
        protocol, transport = connect(factory, peer=("127.0.0.10", 40000))
        self.assertTrue(transport.takeReplies()[0].startswith("220 "))

    def test_sessionsOfAnotherRowCount(self):
        owner, worker = sharedPair(self)
        factory = protocolFactory(self.connector, owner, self.clock)
        self.assertIs(factory.connectionCounts, owner)
        for peer in ("127.0.0.7", "127.0.0.8", "127.0.0.9"):
            self.assertIsNone(worker.admit(self.connector, peer))
        protocol, transport = connect(factory, peer=("127.0.0.10", 40000))
        self.assertEqual(transport.takeReplies()[0][:9], "421 4.3.2")
        worker.release(self.connector, "127.0.0.8")
        protocol, transport = connect(factory, peer=("127.0.0.10", 40000))
        self.assertTrue(transport.takeReplies()[0].startswith("220 "))
        self.assertIs(worker.admit(self.connector, "127.0.0.8"), TOO_MANY_CONNECTIONS)


# A worker's stand-in: attaches to the region on the descriptor it
# inherited, admits one session per address given, says so, and holds
# them until it is killed.
WORKER = textwrap.dedent(
    """
    import sys
    from types import SimpleNamespace
    from exmta.receive.limits import ConnectionCounts

    descriptor, row, identity, *peers = sys.argv[1:]
    counts = ConnectionCounts.attach(int(descriptor), int(row))
    connector = SimpleNamespace(
        identity=identity, maxInboundConnection=None, maxInboundConnectionPerSource=None
    )
    for peer in peers:
        assert counts.admit(connector, peer) is None
    print("admitted", len(peers), flush=True)
    sys.stdin.readline()
    """
)


def startWorker(testCase, counts, row, identity, peers):
    """
    Start a child process counting C{peers}' sessions in C{row} of
    C{counts}' region, and wait until it has.

    @return: the L{subprocess.Popen}; killed when the test ends.
    """
    descriptor = counts.fileno()
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(descriptor), str(row), identity, *peers],
        pass_fds=(descriptor,),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )

    def stop():
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout, child.stderr):
            stream.close()

    testCase.addCleanup(stop)
    line = child.stdout.readline()
    testCase.assertEqual(line, b"admitted %d\n" % len(peers), child.stderr.read() if not line else line)
    return child


class WorkerProcessTests(SynchronousTestCase):
    """
    A real child process counts in its row; once killed, its sessions stay
    counted until the owner clears its row.
    """

    def test_killedWorkersRowIsCleared(self):
        connector = limitedConnector()
        owner = ConnectionCounts.create(3)
        self.addCleanup(owner.close)
        child = startWorker(self, owner, 2, connector.identity, ["127.0.0.7", "127.0.0.7", "127.0.0.8"])
        self.assertIs(owner.admit(connector, "127.0.0.9"), TOO_MANY_CONNECTIONS)
        child.kill()
        child.wait()
        self.assertIs(owner.admit(connector, "127.0.0.9"), TOO_MANY_CONNECTIONS)
        owner.clearRow(2)
        self.assertIsNone(owner.admit(connector, "127.0.0.7"))
        self.assertIsNone(owner.admit(connector, "127.0.0.7"))
        self.assertIs(owner.admit(connector, "127.0.0.7"), TOO_MANY_CONNECTIONS)

    def test_twoWorkersAndTheOwner(self):
        connector = limitedConnector()
        owner = ConnectionCounts.create(3)
        self.addCleanup(owner.close)
        startWorker(self, owner, 1, connector.identity, ["127.0.0.7"])
        startWorker(self, owner, 2, connector.identity, ["127.0.0.7"])
        self.assertIs(owner.admit(connector, "127.0.0.7"), TOO_MANY_CONNECTIONS)
        self.assertIsNone(owner.admit(connector, "127.0.0.8"))
        self.assertIs(owner.admit(connector, "127.0.0.8"), TOO_MANY_CONNECTIONS)


class FirstLine(LineOnlyReceiver):
    """
    Says QUIT to the server's first line, and fires C{received} with that
    line once the server has hung up (so no session of the test outlives
    it).
    """

    def __init__(self):
        self.lines = []
        self.received = defer.Deferred()

    def lineReceived(self, line):
        self.lines.append(line)
        if len(self.lines) == 1:
            self.sendLine(b"QUIT")

    def connectionLost(self, reason):
        if self.lines:
            self.received.callback(self.lines[0])
        else:
            self.received.errback(reason)


class ListeningSocketTests(TestCase):
    """
    A real listening socket of this process refuses a client while a child
    process holds the connector's sessions, and greets it once the child
    is killed and its row cleared.
    """

    def greeting(self, port):
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        client = FirstLine()
        return connectProtocol(endpoint, client).addCallback(lambda _: client.received)

    @defer.inlineCallbacks
    def test_anotherProcessesSessionsRefuseThisSocketsClient(self):
        number = freePort()
        text = LIMITED.replace("Bindings = 127.0.0.1:25", f"Bindings = 127.0.0.1:{number}")
        connector = limitedConnector(text)
        owner = ConnectionCounts.create(2)
        self.addCleanup(owner.close)
        port = reactor.listenTCP(number, protocolFactory(connector, owner, reactor, text), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        child = startWorker(self, owner, 1, connector.identity, ["127.0.0.7", "127.0.0.8", "127.0.0.9"])

        refused = yield self.greeting(number)
        self.assertEqual(refused, TOO_MANY_CONNECTIONS.toBytes().rstrip(b"\r\n"))

        child.kill()
        child.wait()
        owner.clearRow(1)
        greeted = yield self.greeting(number)
        self.assertTrue(greeted.startswith(b"220 huba.fabrikam.com"), greeted)
