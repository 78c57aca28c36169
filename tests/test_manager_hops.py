"""
The queue manager with a long queue and a next hop that is down: one
attempt per next hop decides for every message waiting for it (Exchange's
queue Retry status), at most MAX_PASSES passes run at once, and stopping
stops the sends waiting on a host.
"""

from twisted.internet.defer import Deferred, gatherResults, succeed
from zope.interface import implementer

from exmta.interfaces import IRemoteDelivery
from exmta.queue import manager
from exmta.queue.spool import READY
from exmta.queue.views import messageRows, queueRows
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


class HopsTestCase(ManagerTestCase):
    def envelopeOf(self, address):
        return envelope(address, sender="alice@fabrikam.com"), SESSION, b"Subject: hi\r\n\r\nhi\r\n"

    async def reachSmartHost(self, remote):
        """
        Let the smart host answer a first message, so that sends to it no
        longer wait for a probe's answer.
        """
        await self.spool.enqueue(*self.envelopeOf("first@example.org"))
        await remote.whenCalled(1)
        remote.answer()
        await self.queue.whenIdle()
        remote.calls.clear()


class NextHopRetryTests(HopsTestCase):
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
        are parked behind it, without an attempt, a write or a tracking
        event of their own; Get-Queue shows them in its queue, in Retry
        with its last error.
        """
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(20)}
        self.start()
        updates = []
        update = self.spool.update
        self.spool.update = lambda queued: (updates.append(queued.queueId), update(queued))[1]
        first, *others = await self.submitMany(20)
        self.assertEqual(len(self.remote.calls), 1)
        self.assertDeferred([first])
        self.assertEqual(updates, [first])
        self.assertEqual(len(self.tracking.of("DEFER")), 1)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 19)
        for queueId in others:
            [recipient] = self.queued(queueId).recipients
            self.assertEqual((recipient.attempts, recipient.lastError), (0, None))
        [row] = [
            row for row in queueRows(self.queue.administration.state())
            if row["Identity"] == "HubA\\ToInternet"
        ]
        self.assertEqual(
            (row["Status"], row["MessageCount"], row["LastError"]),
            ("Retry", 20, "421 4.4.1 Connection refused"),
        )
        rows = messageRows(self.queue.administration.state())
        self.assertEqual({row["Queue"] for row in rows}, {"HubA\\ToInternet"})
        self.assertEqual({row["Status"] for row in rows}, {"Retry"})
        self.assertEqual({row["LastError"] for row in rows}, {"421 4.4.1 Connection refused"})

    async def test_parkedMessagesGoWhenTheNextHopIsBack(self):
        """
        Messages parked on arrival go when the retry time comes and the
        probe finds the next hop back; Retry-Queue releases them at once.
        """
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(30)}
        self.start()
        await self.submitMany(10)
        self.remote.outcomes = {}
        self.remote.calls.clear()
        await self.advance(RETRY)
        self.assertEqual(len(self.remote.calls), 10)
        self.assertEqual(self.spool.messages(), [])
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(30)}
        await self.submitMany(10)
        self.remote.outcomes = {}
        self.remote.calls.clear()
        self.assertEqual(self.queue.administration.retryQueue("ToInternet"), 10)
        await self.queue.whenIdle()
        self.assertEqual(len(self.remote.calls), 10)
        self.assertEqual(self.spool.messages(), [])

    async def test_aMessageArrivingDuringTheProbeWaitsForIt(self):
        """
        While the probe is under way, a message for its next hop waits for
        its answer rather than trying too.
        """
        self.remote.outcomes = {f"r{number}@example.org": REFUSED for number in range(3)}
        self.start()
        await self.submitMany(2)
        remote = HeldRemoteDelivery()
        self.queue.remoteDelivery = remote
        self.clock.advance(RETRY)
        await remote.whenCalled(1)
        late = await self.spool.enqueue(*self.envelopeOf("r2@example.org"))
        self.assertEqual(len(remote.calls), 1)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 2)
        remote.answer()
        await remote.whenCalled(3)
        remote.answer()
        await self.queue.whenIdle()
        self.assertEqual(len(remote.calls), 3)
        self.assertIsNone(self.queued(late))

    async def test_aBurstToANextHopNotKnownToAnswerMakesOneAttempt(self):
        """
        Messages that come together for a next hop that has not answered
        yet wait for the first one's attempt: refused, they stay parked
        until the retry time, without an attempt of their own.
        """
        remote = HeldRemoteDelivery()
        self.start(remoteDelivery=remote)
        await gatherResults([
            self.spool.enqueue(*self.envelopeOf(f"r{number}@example.org")) for number in range(10)
        ])
        self.assertEqual(len(remote.calls), 1)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 9)
        remote.answer(REFUSED)
        await self.queue.whenIdle()
        self.assertEqual(len(remote.calls), 1)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 9)
        self.clock.advance(RETRY)
        await remote.whenCalled(2)
        remote.answer()
        await remote.whenCalled(11)
        remote.answer()
        await self.queue.whenIdle()
        self.assertEqual(self.spool.messages(), [])

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
        # The 29 messages parked on arrival are due: one of them probes.
        self.assertEqual(len(self.remote.calls), 1)
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), 28)
        self.remote.calls.clear()
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


class PassLimitTests(HopsTestCase):
    async def test_passesBeyondTheLimitWaitTheirTurn(self):
        self.patch(manager, "MAX_PASSES", 3)
        remote = HeldRemoteDelivery()
        self.start(remoteDelivery=remote)
        await self.reachSmartHost(remote)
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

    async def test_manyWaitingTheirTurnParkWithoutRecursion(self):
        """
        Messages waiting their turn that are parked as soon as their pass
        starts (their next hop went in retry meanwhile) are all parked, and
        all go once it is back: each pass that ends at once does not start
        the next one from inside itself.
        """
        self.patch(manager, "MAX_PASSES", 3)
        remote = HeldRemoteDelivery()
        self.start(remoteDelivery=remote)
        await self.reachSmartHost(remote)
        count = 3000
        await gatherResults([
            self.spool.enqueue(*self.envelopeOf(f"r{number}@example.org")) for number in range(count)
        ])
        await remote.whenCalled(3)
        self.assertEqual(len(remote.calls), 3)
        self.assertEqual(len(self.queue._due), count - 3)
        remote.answer(REFUSED)
        await self.queue.whenIdle()
        self.assertEqual(self.queue.hops.parked(SMART_HOST.key), count - 3)
        self.assertEqual(self.queue._due, {})
        remote.calls.clear()
        self.clock.advance(RETRY)
        await remote.whenCalled(1)
        # The others go through a send side that answers at once.
        self.queue.remoteDelivery = self.remote
        remote.answer()
        await self.queue.whenIdle()
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(len(self.remote.calls), count - 1)

    async def test_processedWaitsForAMessageWaitingItsTurn(self):
        self.patch(manager, "MAX_PASSES", 1)
        remote = HeldRemoteDelivery()
        self.start(remoteDelivery=remote)
        await self.reachSmartHost(remote)
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

