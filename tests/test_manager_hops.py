"""
The queue manager with a long queue and a next hop that is down: one
attempt per next hop decides for every message waiting for it (Exchange's
queue Retry status), at most MAX_PASSES passes run at once, and stopping
stops the sends waiting on a host.
"""

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from exmta.interfaces import IRemoteDelivery
from exmta.queue import manager
from exmta.queue.spool import READY
from tests.test_manager import REFUSED, SMART_HOST, Call, ManagerTestCase
from tests.test_queue import SESSION, envelope

# OutboundConnectionFailureRetryInterval after the first failure
# (TransientFailureRetryInterval, 5 minutes, by Exchange's defaults).
RETRY = 5 * 60


@implementer(IRemoteDelivery)
class HeldRemoteDelivery:
    """
    A send side whose sends wait until the test answers them, and which
    fails the waiting ones when closed, as SmtpDelivery does.
    """

    def __init__(self):
        self.calls = []
        self.waiting = []
        self.closed = False
        self._callWaiters = []

    def send(self, nextHop, queued, recipients, message):
        self.calls.append(Call(nextHop, queued.queueId, queued.mailFrom, tuple(recipients), message))
        answer = Deferred()
        self.waiting.append((answer, tuple(recipients)))
        for count, waiter in list(self._callWaiters):
            if len(self.calls) >= count:
                self._callWaiters.remove((count, waiter))
                waiter.callback(None)
        return answer

    def whenCalled(self, count):
        """
        @return: a Deferred firing once C{count} sends have been asked for.
        """
        waiter = Deferred()
        if len(self.calls) >= count:
            waiter.callback(None)
        else:
            self._callWaiters.append((count, waiter))
        return waiter

    def answer(self, outcome=None):
        waiting, self.waiting = self.waiting, []
        for answer, recipients in waiting:
            answer.callback(dict.fromkeys(recipients, outcome))

    def close(self):
        self.closed = True
        self.answer(REFUSED)
        return succeed(None)


class NextHopRetryTests(ManagerTestCase):
    async def submitMany(self, count):
        return [await self.submit(f"r{number}@example.org") for number in range(count)]

    def assertDeferred(self, queueIds):
        for queueId in queueIds:
            [recipient] = self.queued(queueId).recipients
            self.assertEqual(recipient.status, READY)
            self.assertEqual(recipient.attempts, 1)
            self.assertEqual(recipient.nextHop, SMART_HOST.key)
            self.assertIn("421 4.4.1 Connection refused", recipient.lastError)

    async def test_messagesForANextHopInRetryAreNotTried(self):
        """
        After a next hop refused a connection, the messages routed to it
        are deferred as that attempt was, without one of their own.
        """
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(20)}
        self.start()
        queueIds = await self.submitMany(20)
        self.assertEqual(len(self.remote.calls), 1)
        self.assertDeferred(queueIds)
        self.assertEqual(len(self.tracking.of("DEFER")), 20)

    async def test_oneAttemptDecidesForTheWholeQueue(self):
        """
        When the retry time comes, one message tries the next hop; the
        others wait for what it finds: still down, they wait again; back,
        they all go.
        """
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(50)}
        self.start()
        queueIds = await self.submitMany(50)
        self.remote.calls.clear()
        await self.advance(RETRY)
        self.assertEqual(len(self.remote.calls), 1)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 49)
        self.remote.outcomes = {}
        self.remote.calls.clear()
        await self.advance(RETRY)
        self.assertEqual(len(self.remote.calls), 50)
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(len(self.tracking.of("SEND")), 50)
        self.assertEqual(len(queueIds), 50)

    async def test_restartMakesOneAttemptPerNextHop(self):
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(30)}
        self.start()
        await self.submitMany(30)
        self.remote.calls.clear()
        await self.restart()
        self.assertEqual(self.remote.calls, [])
        # Everything is due: one message tries, the others are parked.
        await self.advance(RETRY)
        self.assertEqual(len(self.remote.calls), 1)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 29)
        self.remote.outcomes = {}
        await self.advance(RETRY * 2)
        self.assertEqual(self.spool.messages(), [])

    async def test_aRemovedMessageHandsTheAttemptOn(self):
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(3)}
        self.start()
        first, second, third = await self.submitMany(3)
        await self.advance(RETRY)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 2)
        await self.queue.administration.removeMessage(second, withNDR=False)
        self.remote.calls.clear()
        await self.advance(RETRY)
        self.assertEqual([call.queueId for call in self.remote.calls], [third])
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 1)

    async def test_retryQueueTriesAtOnce(self):
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(5)}
        self.start()
        await self.submitMany(5)
        self.remote.outcomes = {}
        self.remote.calls.clear()
        self.assertEqual(self.queue.administration.retryQueue("ToInternet"), 5)
        await self.queue.whenIdle()
        self.assertEqual(len(self.remote.calls), 5)
        self.assertEqual(self.spool.messages(), [])

    async def test_otherNextHopsAreNotHeld(self):
        self.remote.outcomes = {"r0@example.org": REFUSED}
        self.start()
        await self.submit("r0@example.org")
        queueId = await self.submit("erin@tailspin.com")
        self.assertEqual([call.queueId for call in self.remote.calls][-1], queueId)
        self.assertIsNone(self.queued(queueId))


class PassLimitTests(ManagerTestCase):
    async def test_passesBeyondTheLimitWaitTheirTurn(self):
        self.patch(manager, "MAX_PASSES", 3)
        remote = HeldRemoteDelivery()
        self.start(remoteDelivery=remote)
        queueIds = [
            await self.spool.enqueue(*self.envelopeOf(f"r{number}@example.org"))
            for number in range(10)
        ]
        self.assertEqual(list(self.queue._due), queueIds[3:])
        await remote.whenCalled(3)
        self.assertEqual([call.queueId for call in remote.calls], queueIds[:3])
        for count in (6, 9, 10):
            remote.answer()
            await remote.whenCalled(count)
        remote.answer()
        await self.queue.whenIdle()
        self.assertEqual([call.queueId for call in remote.calls], queueIds)
        self.assertEqual(self.spool.messages(), [])

    async def test_processedWaitsForAMessageWaitingItsTurn(self):
        self.patch(manager, "MAX_PASSES", 1)
        remote = HeldRemoteDelivery()
        self.start(remoteDelivery=remote)
        first = await self.spool.enqueue(*self.envelopeOf("r0@example.org"))
        second = await self.spool.enqueue(*self.envelopeOf("r1@example.org"))
        done = self.queue.processed(second)
        await remote.whenCalled(1)
        self.assertFalse(done.called)
        remote.answer()
        await remote.whenCalled(2)
        self.assertFalse(done.called)
        remote.answer()
        self.assertIsNone(await done)
        self.assertIsNone(self.queued(first))

    async def test_stopEndsSendsWaitingOnAHost(self):
        """
        Stopping stops the send side: sends waiting on a host end, and
        their recipients stay queued.
        """
        remote = HeldRemoteDelivery()
        self.start(remoteDelivery=remote)
        queueId = await self.spool.enqueue(*self.envelopeOf("r0@example.org"))
        await remote.whenCalled(1)
        await self.queue.stopService()
        self.assertTrue(remote.closed)
        [recipient] = self.queued(queueId).recipients
        self.assertEqual(recipient.status, READY)
        self.assertEqual(recipient.attempts, 1)

    def envelopeOf(self, address):
        return envelope(address, sender="alice@fabrikam.com"), SESSION, b"Subject: hi\r\n\r\nhi\r\n"
