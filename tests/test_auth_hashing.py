"""
Password hashes and the verification pool (L{exmta.auth.hashing}): the
pool's bound is observed with counters in real threads, held by events,
never with timing.
"""

import threading

import argon2
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from exmta.auth import hashing
from exmta.auth.hashing import VerificationDropped, VerificationPool, VerifierBusy


class HashTests(SynchronousTestCase):
    def test_newHashesHaveTheServerParameters(self):
        parameters = argon2.extract_parameters(hashing.hashPassword("Kim-Pa55"))
        self.assertEqual(
            (parameters.type, parameters.memory_cost, parameters.time_cost, parameters.parallelism),
            (argon2.Type.ID, 19456, 2, 1),
        )

    def test_hashesWithOtherParametersStillVerify(self):
        old = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=4).hash("Kim-Pa55")
        self.assertTrue(hashing.verifyPassword(old, "Kim-Pa55"))
        self.assertFalse(hashing.verifyPassword(old, "kim-pa55"))

    def test_noAccountNeverMatches(self):
        self.assertFalse(hashing.verifyPassword(None, ""))


class Gate:
    """
    A blocking check: records how many run at once, and returns only when
    the test opens the gate.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.opened = threading.Event()
        self.running = 0
        self.most = 0
        self.calls = []
        self.twoRunning = defer.Deferred()

    def check(self, name):
        with self._lock:
            self.calls.append(name)
            self.running += 1
            self.most = max(self.most, self.running)
            if self.most == 2 and len(self.calls) == 2:
                reactor.callFromThread(self.twoRunning.callback, None)
        self.opened.wait(30)
        with self._lock:
            self.running -= 1
        return name


class PoolTests(TestCase):
    def setUp(self):
        self.pool = VerificationPool(reactor, threads=2, waiting=3)
        self.addCleanup(self.pool.stop)
        self.gate = Gate()
        self.addCleanup(self.gate.opened.set)

    @defer.inlineCallbacks
    def test_boundedThreadsAndLine(self):
        """
        Two checks run at once, three wait, and a sixth is refused at once.
        """
        checks = [self.pool.run(self.gate.check, number) for number in range(5)]
        self.assertEqual((self.pool.running, self.pool.waiting), (2, 3))
        busy = self.pool.run(self.gate.check, 5)
        self.failureResultOf(busy, VerifierBusy)
        yield self.gate.twoRunning
        self.assertEqual(sorted(self.gate.calls), [0, 1])
        self.gate.opened.set()
        results = yield defer.gatherResults(checks)
        self.assertEqual(results, [0, 1, 2, 3, 4])
        self.assertEqual(self.gate.most, 2)
        self.assertEqual((self.pool.running, self.pool.waiting), (0, 0))

    @defer.inlineCallbacks
    def test_aCancelledWaitingCheckNeverRuns(self):
        checks = [self.pool.run(self.gate.check, number) for number in range(4)]
        checks[2].cancel()
        self.failureResultOf(checks[2], VerificationDropped)
        self.assertEqual(self.pool.waiting, 1)
        self.gate.opened.set()
        yield defer.gatherResults([checks[0], checks[1], checks[3]])
        self.assertEqual(sorted(self.gate.calls), [0, 1, 3])

    @defer.inlineCallbacks
    def test_aCancelledRunningCheckFreesItsThreadWhenDone(self):
        """
        A check cancelled while it runs fails with CancelledError at once
        (not L{VerificationDropped}: it was checked), and its thread takes
        the next check once it ends.
        """
        checks = [self.pool.run(self.gate.check, number) for number in range(3)]
        checks[0].cancel()
        failure = self.failureResultOf(checks[0], defer.CancelledError)
        self.assertFalse(failure.check(VerificationDropped))
        self.assertEqual((self.pool.running, self.pool.waiting), (2, 1))
        self.gate.opened.set()
        results = yield defer.gatherResults(checks[1:])
        self.assertEqual(results, [1, 2])
        self.assertEqual(self.pool.running, 0)

    @defer.inlineCallbacks
    def test_errorsReachTheCaller(self):
        def broken():
            raise OSError("the accounts file is gone")

        with self.assertRaises(OSError):
            yield self.pool.run(broken)
        self.assertEqual(self.pool.running, 0)


class SharedPoolTests(SynchronousTestCase):
    def test_onePoolPerReactor(self):
        self.assertIs(hashing.verificationPool(reactor), hashing.verificationPool(reactor))
