"""
Routing agents in the queue manager (L{exmta.interfaces.IRoutingAgent}):
the events in Priority order, each verdict at each event, failing and slow
agents, recipient changes at OnResolvedMessage (recorded before delivery
and kept across a restart), per-attempt changes at OnRoutedMessage, and
the delivery notifications.
"""

import json
import os

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, fail

from exmta.agents import AGENT_FAILURE, AgentPipeline, ConfiguredAgent, Verdict
from exmta.envelope import Reply
from exmta.queue.spool import DELIVERED, FAILED, READY
from exmta.queue.manager import UNABLE_TO_ROUTE
from exmta.queue.notifications import MESSAGE_EXPIRED
from exmta.queue.routingagents import RECIPIENT_DELETED
from tests.test_queue import SESSION, envelope
from tests.test_manager import (
    MAILBOX_FULL,
    MESSAGE,
    NO_SUCH_USER,
    ROUTES,
    SMART_HOST,
    START,
    ManagerTestCase,
)

REFUSED_BY_AGENT = Reply(550, "5.7.1", "Refused by policy")
LATER = Reply(451, "4.7.1", "Not now")
BY_MX = ROUTES["tailspin.com"]
AGENT_FAILURE_TEXT = str(AGENT_FAILURE)


class Agent:
    """
    A routing agent answering each event it is given an answer for (a
    verdict, or a callable from the event to one), noting every event.
    """

    def __init__(self, seen, label, **answers):
        self.seen = seen
        self.label = label
        for event, answer in answers.items():
            setattr(self, event, self._handler(answer))

    def _handler(self, answer):
        def handle(event):
            self.seen.append((self.label, event))
            return answer(event) if callable(answer) else answer

        return handle


class RoutingAgentTestCase(ManagerTestCase):
    def setUp(self):
        super().setUp()
        self.seen = []

    def pipeline(self, *agents):
        """
        @param agents: (name, agent[, ConfiguredAgent keyword arguments])
            tuples, in Priority order.
        """
        configured = []
        for priority, (name, agent, *options) in enumerate(agents, 1):
            settings = dict(timeout=30, failOpen=False)
            settings.update(*options)
            configured.append(ConfiguredAgent(name, priority, agent=agent, **settings))
        return AgentPipeline(configured, self.clock)

    def startWith(self, *agents, **kwargs):
        return self.start(agents=self.pipeline(*agents), **kwargs)

    def events(self, name=None, queueId=None):
        return [
            (label, e) for label, e in self.seen
            if (name is None or e.name == name) and (queueId is None or e.queued.queueId == queueId)
        ]

    def onDisk(self, queueId):
        with open(os.path.join(self.queuePath, "messages", queueId + ".json"), "rb") as handle:
            return json.loads(handle.read())


class OrderTests(RoutingAgentTestCase):
    async def test_eventsInPriorityOrder(self):
        """
        Each routing event asks the agents in Priority order, and the events
        come in the order a message meets them.
        """
        answers = dict(
            OnSubmittedMessage=Verdict.continue_(),
            OnResolvedMessage=Verdict.continue_(),
            OnRoutedMessage=Verdict.continue_(),
            OnDelivered=None,
        )
        self.startWith(
            ("First", Agent(self.seen, "first", **answers)),
            ("Second", Agent(self.seen, "second", **answers)),
        )
        queueId = await self.submit("carol@example.org")
        self.assertEqual(
            [(label, e.name) for label, e in self.seen],
            [
                ("first", "OnSubmittedMessage"), ("second", "OnSubmittedMessage"),
                ("first", "OnResolvedMessage"), ("second", "OnResolvedMessage"),
                ("first", "OnRoutedMessage"), ("second", "OnRoutedMessage"),
                ("first", "OnDelivered"), ("second", "OnDelivered"),
            ],
        )
        submitted = self.seen[0][1]
        self.assertEqual(submitted.queued.queueId, queueId)
        self.assertEqual(submitted.recipients, ("carol@example.org",))
        self.assertEqual(submitted.message, MESSAGE)
        routed = self.seen[4][1]
        self.assertEqual((routed.nextHop, routed.message), (SMART_HOST, MESSAGE))

    async def test_acceptSkipsLaterAgents(self):
        self.startWith(
            ("First", Agent(self.seen, "first", OnRoutedMessage=Verdict.accept())),
            ("Second", Agent(self.seen, "second", OnRoutedMessage=Verdict.reject())),
        )
        await self.submit("carol@example.org")
        self.assertEqual([label for label, _ in self.seen], ["first"])
        self.assertEqual(len(self.remote.calls), 1)

    async def test_messageEventsOnce(self):
        """
        OnSubmittedMessage and OnResolvedMessage are asked once per
        message, not at its retries nor after a restart; that they ran is
        on disk.
        """
        agent = Agent(
            self.seen, "a",
            OnSubmittedMessage=Verdict.continue_(),
            OnResolvedMessage=Verdict.continue_(),
            OnRoutedMessage=Verdict.continue_(),
        )
        self.remote.outcomes = {"carol@example.org": MAILBOX_FULL}
        self.startWith(("A", agent))
        queueId = await self.submit("carol@example.org")
        self.assertTrue(self.onDisk(queueId)["categorized"])
        await self.advance(60)
        await self.restart(agents=self.pipeline(("A", agent)))
        await self.advance(60)
        names = [e.name for _, e in self.seen]
        self.assertEqual(names.count("OnSubmittedMessage"), 1)
        self.assertEqual(names.count("OnResolvedMessage"), 1)
        self.assertEqual(names.count("OnRoutedMessage"), 3)
        self.assertEqual(len(self.remote.calls), 3)

    async def test_withoutAgentsNothingChanges(self):
        """
        A manager without routing agents writes no categorized flag.
        """
        self.remote.outcomes = {"carol@example.org": MAILBOX_FULL}
        self.start(agents=self.pipeline(("Receive", Agent(self.seen, "r", OnMailCommand=Verdict.continue_()))))
        queueId = await self.submit("carol@example.org")
        self.assertNotIn("categorized", self.onDisk(queueId))
        self.assertEqual(self.seen, [])


class MessageEventVerdictTests(RoutingAgentTestCase):
    async def check_reject(self, event):
        """
        A REJECT at C{event} fails every recipient with its reply; the
        sender is told.  (Notifications go through the agents too: this one
        lets the manager's own, from <>, pass.)
        """

        def refuse(event):
            return Verdict.reject(REFUSED_BY_AGENT) if event.queued.mailFrom else Verdict.continue_()

        self.startWith(("A", Agent(self.seen, "a", **{event: refuse})))
        queueId = await self.submit("carol@example.org", "bob@fabrikam.com")
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(self.remote.calls, [])
        self.assertEqual(self.mailbox("bob@fabrikam.com"), [])
        ((_, _, reports, _),) = self.reports()
        self.assertEqual(
            sorted((r["Final-Recipient"], r["Status"], r["Diagnostic-Code"]) for r in reports),
            [
                ("rfc822; bob@fabrikam.com", "5.7.1", "smtp; 550 5.7.1 Refused by policy"),
                ("rfc822; carol@example.org", "5.7.1", "smtp; 550 5.7.1 Refused by policy"),
            ],
        )
        fails = self.tracking.of("FAIL")
        self.assertEqual({f["source"] for _, f in fails}, {"AGENT"})
        self.assertEqual(sorted(f["recipients"][0] for _, f in fails), ["bob@fabrikam.com", "carol@example.org"])

    async def test_rejectAtSubmitted(self):
        await self.check_reject("OnSubmittedMessage")

    async def test_rejectAtResolved(self):
        await self.check_reject("OnResolvedMessage")

    async def check_deferred(self, event, answers, reply, **options):
        """
        With C{answers} (verdicts, or exceptions to raise) at C{event}, the
        message's recipients wait MessageRetryInterval with C{reply}; the
        agents are asked again then.
        """

        def answer(event):
            given = answers.pop(0)
            if isinstance(given, Exception):
                raise given
            return given

        self.startWith(("A", Agent(self.seen, "a", **{event: answer}), options))
        queueId = await self.submit("carol@example.org", "bob@fabrikam.com")
        for address in ("carol@example.org", "bob@fabrikam.com"):
            recipient = self.recipient(queueId, address)
            self.assertEqual(
                (recipient.status, recipient.lastError, recipient.attempts, recipient.nextRetryTime),
                (READY, reply, 1, START + 60),
            )
        self.assertEqual(self.remote.calls, [])
        self.assertNotIn("categorized", self.onDisk(queueId))
        self.assertEqual({f["source"] for _, f in self.tracking.of("DEFER")}, {"AGENT"})
        await self.advance(60)
        self.assertEqual(len(self.events(event)), 2)
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(len(self.mailbox("bob@fabrikam.com")), 1)
        self.assertEqual(self.remote.calls[0].recipients, ("carol@example.org",))

    async def test_temporaryRejectAtSubmitted(self):
        await self.check_deferred(
            "OnSubmittedMessage", [Verdict.temporaryReject(LATER), Verdict.continue_()], str(LATER)
        )

    async def test_temporaryRejectAtResolved(self):
        await self.check_deferred(
            "OnResolvedMessage", [Verdict.temporaryReject(LATER), Verdict.continue_()], str(LATER)
        )

    async def test_exceptionFailClosedDefers(self):
        await self.check_deferred(
            "OnSubmittedMessage", [RuntimeError("agent bug"), Verdict.continue_()], AGENT_FAILURE_TEXT
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_notAVerdictFailClosedDefers(self):
        await self.check_deferred(
            "OnResolvedMessage", ["250 OK", Verdict.continue_()], AGENT_FAILURE_TEXT
        )
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    async def test_disconnectIsAFailure(self):
        await self.check_deferred(
            "OnResolvedMessage", [Verdict.disconnect(), Verdict.continue_()], AGENT_FAILURE_TEXT
        )
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    async def test_exceptionFailOpenContinues(self):
        def broken(event):
            raise RuntimeError("agent bug")

        self.startWith(("A", Agent(self.seen, "a", OnSubmittedMessage=broken), dict(failOpen=True)))
        queueId = await self.submit("carol@example.org")
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(len(self.remote.calls), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_timeoutDefers(self):
        """
        An agent that does not answer in its Timeout holds the message that
        long, then (FailClosed) defers it.
        """
        called = Deferred()

        def hang(event):
            # The test goes on once the agent has returned.
            reactor.callLater(0, called.callback, event)
            return Deferred()

        self.startWith(("Slow", Agent(self.seen, "slow", OnResolvedMessage=hang), dict(timeout=10)))
        queueId = await self.spool.enqueue(
            envelope("carol@example.org", sender="alice@fabrikam.com"), SESSION, MESSAGE
        )
        await called
        self.clock.advance(9)
        self.assertIn(queueId, self.queue._passes)
        await self.advance(1)
        carol = self.recipient(queueId, "carol@example.org")
        self.assertEqual((carol.lastError, carol.nextRetryTime), (AGENT_FAILURE_TEXT, START + 70))
        self.assertEqual(self.remote.calls, [])
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError)), 1)


class RecipientChangeTests(RoutingAgentTestCase):
    CHANGES = {
        "team@example.org": ("bob@fabrikam.com", "Carol@example.org", "dave@example.net"),
        "old@example.net": ("erin@tailspin.com",),
        "gone@example.org": (),
    }

    def resolver(self, event):
        return Verdict.continue_(
            recipients={a: b for a, b in self.CHANGES.items() if a in event.recipients}
        )

    async def test_expandRedirectDrop(self):
        """
        An OnResolvedMessage verdict expands, redirects and drops
        recipients; repeats collapse; a dropped recipient is neither
        delivered nor reported; tracking says what became of each.
        """
        self.startWith(("Rewrite", Agent(self.seen, "r", OnResolvedMessage=self.resolver)))
        queueId = await self.submit(
            "carol@example.org", "team@example.org", "old@example.net", "gone@example.org"
        )
        self.assertEqual(
            sorted((c.nextHop.key, c.recipients) for c in self.remote.calls),
            [
                ("ByMX:tailspin.com", ("erin@tailspin.com",)),
                ("ToInternet", ("carol@example.org", "dave@example.net")),
            ],
        )
        self.assertEqual(len(self.mailbox("bob@fabrikam.com")), 1)
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(self.reports(), [])
        (expand,) = self.tracking.of("EXPAND")
        self.assertEqual(expand[1]["recipients"], ["bob@fabrikam.com", "Carol@example.org", "dave@example.net"])
        self.assertEqual((expand[1]["relatedRecipientAddress"], expand[1]["source"]), (["team@example.org"], "AGENT"))
        (redirect,) = self.tracking.of("REDIRECT")
        self.assertEqual(redirect[1]["recipients"], ["erin@tailspin.com"])
        self.assertEqual(redirect[1]["relatedRecipientAddress"], ["old@example.net"])
        (deleted,) = self.tracking.of("FAIL")
        self.assertEqual(deleted[1]["recipients"], ["gone@example.org"])
        self.assertEqual(deleted[1]["recipientStatus"], RECIPIENT_DELETED)

    async def test_changeRecordedBeforeDeliveryAndKept(self):
        """
        The new recipients are on disk before any delivery starts; after a
        restart they are retried and the agents are not asked again, so
        nothing is expanded twice.
        """
        onDiskAtSend = []
        send = self.remote.send

        def recordingSend(nextHop, queued, recipients, message):
            onDiskAtSend.append(self.onDisk(queued.queueId))
            return send(nextHop, queued, recipients, message)

        self.patch(self.remote, "send", recordingSend)
        self.remote.outcomes = {"Carol@example.org": MAILBOX_FULL, "dave@example.net": MAILBOX_FULL}
        self.startWith(("Rewrite", Agent(self.seen, "r", OnResolvedMessage=self.resolver)))
        queueId = await self.submit("team@example.org", "gone@example.org")
        (document,) = onDiskAtSend
        self.assertTrue(document["categorized"])
        self.assertEqual(
            [(r["address"], r["status"]) for r in document["recipients"]],
            [("bob@fabrikam.com", READY), ("Carol@example.org", READY), ("dave@example.net", READY)],
        )
        self.assertEqual(
            [(r.address, r.status) for r in self.queued(queueId).recipients],
            [("bob@fabrikam.com", DELIVERED), ("Carol@example.org", READY), ("dave@example.net", READY)],
        )

        await self.restart(agents=self.pipeline(("Rewrite", Agent(self.seen, "r", OnResolvedMessage=self.resolver))))
        self.remote.outcomes = {}
        await self.advance(60)
        self.assertEqual(len(self.events("OnResolvedMessage")), 1)
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(
            [c.recipients for c in self.remote.calls],
            [("Carol@example.org", "dave@example.net")] * 2,
        )
        self.assertEqual(len(self.mailbox("bob@fabrikam.com")), 1)

    async def test_crashBeforeRecordAsksAgain(self):
        """
        If the change could not be recorded (the process died, or the disk
        failed), nothing was delivered and the agents are asked again.
        """
        update = self.spool.update
        broken = [True]

        def failingUpdate(queued):
            if broken:
                broken.pop()
                return fail(OSError(28, "No space left on device"))
            return update(queued)

        self.patch(self.spool, "update", failingUpdate)
        self.startWith(("Rewrite", Agent(self.seen, "r", OnResolvedMessage=self.resolver)))
        queueId = await self.submit("team@example.org")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(self.remote.calls, [])
        self.assertEqual([r.address for r in self.queued(queueId).recipients], ["team@example.org"])
        await self.advance(60)
        self.assertEqual(len(self.events("OnResolvedMessage")), 2)
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(len(self.mailbox("bob@fabrikam.com")), 1)
        self.assertEqual([c.recipients for c in self.remote.calls], [("Carol@example.org", "dave@example.net")])

    async def test_unknownRecipientsNotAsked(self):
        """
        OnResolvedMessage is about the recipients resolution knows; an
        unknown local one fails as without agents.
        """
        self.startWith(("Rewrite", Agent(self.seen, "r", OnResolvedMessage=Verdict.continue_())))
        queueId = await self.submit("nobody@fabrikam.com", "carol@example.org")
        ((_, resolved),) = self.events("OnResolvedMessage", queueId)
        self.assertEqual(resolved.recipients, ("carol@example.org",))
        ((_, _, (nobody,), _),) = self.reports()
        self.assertEqual(nobody["Status"], "5.1.1")


class RoutedMessageTests(RoutingAgentTestCase):
    def stamp(self, event):
        return Verdict.continue_(message=b"X-Stamp: " + str(len(self.seen)).encode() + b"\r\n" + event.message)

    async def test_messageChangedForThisAttemptOnly(self):
        """
        The bytes an OnRoutedMessage agent makes are what the next hop or
        mailbox gets this time; the queued copy stays as it was, so the
        next attempt starts from it.
        """
        self.remote.outcomes = {"carol@example.org": MAILBOX_FULL}
        self.startWith(("Stamp", Agent(self.seen, "s", OnRoutedMessage=self.stamp)))
        queueId = await self.submit("carol@example.org", "bob@fabrikam.com")
        (first,) = self.remote.calls
        self.assertEqual(first.message.count(b"X-Stamp"), 1)
        self.assertTrue(first.message.endswith(MESSAGE))
        (delivered,) = self.mailbox("bob@fabrikam.com")
        self.assertIn(b"X-Stamp: ", delivered)
        self.assertEqual(await self.spool.messageBytes(queueId), MESSAGE)
        del self.remote.outcomes["carol@example.org"]
        await self.advance(60)
        second = self.remote.calls[1]
        self.assertEqual(second.message.count(b"X-Stamp"), 1)
        self.assertTrue(second.message.endswith(MESSAGE))
        local, remote = sorted(self.events("OnRoutedMessage")[:2], key=lambda s: s[1].nextHop is not None)
        self.assertEqual((local[1].nextHop, local[1].recipients), (None, ("bob@fabrikam.com",)))
        self.assertEqual((remote[1].nextHop, remote[1].recipients), (SMART_HOST, ("carol@example.org",)))

    async def test_nextHopOverride(self):
        self.startWith(("Reroute", Agent(self.seen, "r", OnRoutedMessage=Verdict.continue_(nextHop=BY_MX))))
        queueId = await self.submit("carol@example.org", "dave@example.net")
        (call,) = self.remote.calls
        self.assertEqual((call.nextHop, call.recipients), (BY_MX, ("carol@example.org", "dave@example.net")))
        (send,) = self.tracking.of("SEND")
        self.assertEqual((send[1]["nextHop"], send[1]["connectorId"]), (BY_MX.key, "ByMX"))
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(self.queue.hops.inFlight(), {})

    async def test_nextHopOverrideRecorded(self):
        self.remote.outcomes = {"carol@example.org": MAILBOX_FULL}
        self.startWith(("Reroute", Agent(self.seen, "r", OnRoutedMessage=Verdict.continue_(nextHop=BY_MX))))
        queueId = await self.submit("carol@example.org")
        self.assertEqual(self.recipient(queueId, "carol@example.org").nextHop, BY_MX.key)

    async def test_rejectRemoteTemporaryRejectLocal(self):
        def decide(event):
            if not event.queued.mailFrom:
                return Verdict.continue_()
            if event.nextHop is None:
                return Verdict.temporaryReject(LATER)
            return Verdict.reject(REFUSED_BY_AGENT)

        self.startWith(("Policy", Agent(self.seen, "p", OnRoutedMessage=decide)))
        queueId = await self.submit("carol@example.org", "bob@fabrikam.com")
        self.assertEqual(self.remote.calls, [])
        self.assertEqual(self.mailbox("bob@fabrikam.com"), [])
        carol = self.recipient(queueId, "carol@example.org")
        self.assertEqual((carol.status, carol.lastError, carol.nextHop), (FAILED, str(REFUSED_BY_AGENT), "ToInternet"))
        bob = self.recipient(queueId, "bob@fabrikam.com")
        self.assertEqual((bob.status, bob.lastError, bob.attempts), (READY, str(LATER), 1))
        ((_, _, (report,), _),) = self.reports()
        self.assertEqual(report["Final-Recipient"], "rfc822; carol@example.org")
        (failed,) = self.tracking.of("FAIL")
        self.assertEqual((failed[1]["source"], failed[1]["nextHop"]), ("AGENT", "ToInternet"))

    async def test_nextHopAtLocalDeliveryIsAFailure(self):
        self.startWith(("Reroute", Agent(self.seen, "r", OnRoutedMessage=Verdict.continue_(nextHop=BY_MX))))
        queueId = await self.submit("bob@fabrikam.com")
        bob = self.recipient(queueId, "bob@fabrikam.com")
        self.assertEqual((bob.status, bob.lastError), (READY, AGENT_FAILURE_TEXT))
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    async def test_disableAfterFailures(self):
        """
        A routing agent failing DisableAfterFailures times in a row is no
        longer called: the message goes on without it.
        """

        def broken(event):
            raise RuntimeError("agent bug")

        self.startWith(("Broken", Agent(self.seen, "b", OnRoutedMessage=broken), dict(disableAfterFailures=2)))
        queueId = await self.submit("carol@example.org")
        self.assertEqual(self.recipient(queueId, "carol@example.org").lastError, AGENT_FAILURE_TEXT)
        await self.advance(60)
        self.assertEqual(self.recipient(queueId, "carol@example.org").attempts, 2)
        self.assertEqual(self.remote.calls, [])
        await self.advance(60)
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(len(self.remote.calls), 1)
        self.assertEqual(len(self.events("OnRoutedMessage")), 2)
        self.assertEqual(self.queue.routingEvents.agents.disabled, {"Broken"})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class DeliveryEventTests(RoutingAgentTestCase):
    async def test_outcomes(self):
        """
        Once the outcomes are recorded, the agents hear of them: one event
        per next hop and reply, with the recipients concerned.
        """
        recorded = []

        def note(event):
            recorded.append((event.queued, self.queued(event.queued.queueId)))

        self.remote.outcomes = {"dave@example.net": NO_SUCH_USER, "erin@example.org": MAILBOX_FULL}
        self.startWith(
            ("Notes", Agent(self.seen, "n", OnDelivered=note, OnDeferred=note, OnFailed=note))
        )
        queueId = await self.submit(
            "carol@example.org", "dave@example.net", "erin@example.org", "bob@fabrikam.com",
            "frank@nowhere.test",
        )
        events = {
            (e.name, e.nextHop, e.reply): e.recipients
            for _, e in self.seen if e.queued.queueId == queueId
        }
        self.assertEqual(
            events,
            {
                ("OnFailed", None, UNABLE_TO_ROUTE): ("frank@nowhere.test",),
                ("OnDelivered", None, None): ("bob@fabrikam.com",),
                ("OnDelivered", SMART_HOST, None): ("carol@example.org",),
                ("OnFailed", SMART_HOST, "550 5.1.1 No such user here"): ("dave@example.net",),
                ("OnDeferred", SMART_HOST, "452 4.2.2 Mailbox full"): ("erin@example.org",),
            },
        )
        # Each was told after the outcomes were on record, and of them.
        ours = [(told, spooled) for told, spooled in recorded if told.queueId == queueId]
        self.assertEqual(len(ours), 5)
        for told, spooled in ours:
            self.assertEqual(told, spooled)
            self.assertEqual(self.recipient(queueId, "erin@example.org").attempts, 1)
        del self.remote.outcomes["erin@example.org"]
        before = len(self.seen)
        await self.advance(60)
        (last,) = [e for _, e in self.seen[before:] if e.queued.queueId == queueId]
        self.assertEqual((last.name, last.recipients), ("OnDelivered", ("erin@example.org",)))

    async def test_expiredReported(self):
        self.remote.outcomes = {"carol@example.org": MAILBOX_FULL}
        self.startWith(("Notes", Agent(self.seen, "n", OnFailed=None)))
        queueId = await self.submit("carol@example.org")
        self.clock.advance(self.server.messageExpirationTimeout)
        await self.advance(60)
        ((_, failed),) = [s for s in self.seen if s[1].queued.queueId == queueId]
        self.assertEqual((failed.recipients, failed.reply), (("carol@example.org",), MESSAGE_EXPIRED))

    async def test_notWaitedFor(self):
        """
        A slow notification agent does not hold the pass; its Timeout ends
        it, and a failure is only logged.
        """
        self.startWith(
            ("Slow", Agent(self.seen, "s", OnDelivered=lambda e: Deferred()), dict(timeout=10)),
            ("Broken", Agent(self.seen, "b", OnDelivered=lambda e: 1 / 0)),
        )
        queueId = await self.submit("carol@example.org")
        self.assertIsNone(self.queued(queueId))
        self.assertEqual([label for label, _ in self.seen], ["s"])
        self.clock.advance(10)
        self.assertEqual([label for label, _ in self.seen], ["s", "b"])
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError, ZeroDivisionError)), 2)


class VerdictMatrixTests(RoutingAgentTestCase):
    def outcomes(self, queueId):
        """
        @return: each recipient's (address, status, reply) as the tracking
            log tells it.
        """
        states = {}
        for event, fields in [(e, f) for e, q, f in self.tracking.events if q == queueId]:
            for address in fields.get("recipients", ()):
                if event in ("SEND", "DELIVER"):
                    states[address] = (DELIVERED, None)
                elif event == "FAIL":
                    states[address] = (FAILED, fields["recipientStatus"])
                elif event == "DEFER":
                    states[address] = (READY, fields["recipientStatus"])
        return {(address, *state) for address, state in states.items()}

    async def test_eachVerdictAtEachEvent(self):
        """
        What each verdict does to a remote and a local recipient at each
        routing event.
        """
        verdicts = {
            "continue": (Verdict.continue_(), DELIVERED, None),
            "accept": (Verdict.accept(), DELIVERED, None),
            "reject": (Verdict.reject(REFUSED_BY_AGENT), FAILED, str(REFUSED_BY_AGENT)),
            "temporaryReject": (Verdict.temporaryReject(LATER), READY, str(LATER)),
            "disconnect": (Verdict.disconnect(), READY, AGENT_FAILURE_TEXT),
        }
        self.start()
        seen = []
        for event in ("OnSubmittedMessage", "OnResolvedMessage", "OnRoutedMessage"):
            for name, (verdict, status, lastError) in verdicts.items():

                def answer(e, verdict=verdict):
                    # The manager's own notifications pass.
                    return verdict if e.queued.mailFrom else Verdict.continue_()

                self.queue.routingEvents.agents = self.pipeline(("A", Agent(seen, "a", **{event: answer})))
                queueId = await self.submit("carol@example.org", "bob@fabrikam.com")
                self.assertEqual(
                    self.outcomes(queueId),
                    {("carol@example.org", status, lastError), ("bob@fabrikam.com", status, lastError)},
                    (event, name),
                )
        # DISCONNECT is refused at each: once per message event, and at
        # OnRoutedMessage once for the remote and once for the local one.
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 4)
