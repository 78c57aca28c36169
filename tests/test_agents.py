"""
Transport agents: discovery, [TransportAgent] sections, verdicts at SMTP
events, Priority order, and isolation from failing or slow agents.
"""

import dataclasses

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from exmta.agents import (
    ACCEPT,
    AGENT_FAILURE,
    REJECT,
    TEMPORARY_REJECT,
    AgentEvent,
    AgentPipeline,
    ConfiguredAgent,
    RoutingEvent,
    Verdict,
    agentFactories,
    loadAgents,
)
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.envelope import Address, NextHop, QueuedMessage, QueuedRecipient, Reply
from exmta.errors import ConfigError
from exmta.interfaces import IAgentFactory
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect

from tests.test_protocol import ORG, ControlledQueue


@implementer(IAgentFactory)
class Factory:
    """
    A plugin whose agents are given by the test.
    """

    def __init__(self, name, agent):
        self.name = name
        self.agent = agent
        self.settings = None

    def makeAgent(self, settings, organization, reactor):
        if "Bad" in settings:
            raise ValueError("Bad is bad")
        self.settings = settings
        return self.agent


class Recorder:
    def __init__(self, calls, label, **answers):
        self.calls = calls
        self.label = label
        for event, answer in answers.items():
            setattr(self, event, self._make(event, answer))

    def _make(self, event, answer):
        def handler(e):
            self.calls.append((self.label, e.name))
            return answer(e) if callable(answer) else answer

        return handler


def agentSection(name, priority, extra=""):
    return f"\n[TransportAgent {name}]\nPriority = {priority}\n{extra}\n"


class ConfigTests(SynchronousTestCase):
    def test_builtinPluginFound(self):
        factories = agentFactories()
        self.assertIn("senderblocklist", factories)
        verifyObject(IAgentFactory, factories["senderblocklist"])

    def test_sectionsInPriorityOrder(self):
        org = parseOrganization(
            ORG + agentSection("B", 20, "Color = red") + agentSection("A", 5, "FailurePolicy = FailOpen\nTimeout = 00:01:00"),
            "/o/org.ini",
        )
        self.assertEqual([a.name for a in org.transportAgents], ["A", "B"])
        a, b = org.transportAgents
        self.assertEqual((a.failurePolicy, a.timeout, b.timeout), ("FailOpen", 60, 30))
        self.assertEqual(b.settings, (("Color", "red"),))

    def test_duplicatePriority(self):
        text = ORG + agentSection("A", 5) + agentSection("B", 5)
        with self.assertRaises(ConfigError) as caught:
            parseOrganization(text, "/o/org.ini")
        self.assertEqual(caught.exception.key, "Priority")
        self.assertEqual(caught.exception.section, "TransportAgent B")
        self.assertIn("unique", str(caught.exception))

    def test_unknownAgent(self):
        text = ORG + agentSection("Nope", 1)
        org = parseOrganization(text, "/o/org.ini")
        with self.assertRaises(ConfigError) as caught:
            loadAgents(org, MemoryReactorClock(), [Factory("A", object())])
        self.assertEqual(caught.exception.line, text.splitlines().index("[TransportAgent Nope]") + 1)

    def test_badKey(self):
        text = ORG + agentSection("A", 1, "Bad = 1")
        with self.assertRaises(ConfigError) as caught:
            loadAgents(parseOrganization(text, "/o/org.ini"), None, [Factory("A", object())])
        self.assertIn("Bad is bad", str(caught.exception))

    def test_builtinBadKeyNamesLine(self):
        text = ORG + agentSection("SenderBlockList", 1, "Blocked = x@y.com")
        with self.assertRaises(ConfigError) as caught:
            loadAgents(parseOrganization(text, "/o/org.ini"), None)
        self.assertEqual(caught.exception.key, "Blocked")
        self.assertEqual(caught.exception.line, text.splitlines().index("Blocked = x@y.com") + 1)

    def test_verdictsChecked(self):
        with self.assertRaises(ValueError):
            Verdict.reject(Reply(451, "4.7.1", "no"))
        with self.assertRaises(ValueError):
            Verdict("MAYBE")


class ProtocolTests(SynchronousTestCase):
    def setUp(self):
        self.calls = []
        self.clock = MemoryReactorClock()
        self.queue = ControlledQueue()

    def factory(self, agents, extra=None):
        """
        @param agents: (name, priority, agent[, section text]) tuples.
        """
        text = ORG + "".join(agentSection(a[0], a[1], a[3] if len(a) > 3 else "") for a in agents)
        organization = parseOrganization(text, "/o/org.ini")
        connector = organization.receiveConnectors[0]
        portal = Portal(ConnectorRealm(organization, connector), [AllowAnonymousAccess()])
        pipeline = loadAgents(organization, self.clock, [Factory(a[0], a[2]) for a in agents])
        return ReceiveFactory(
            organization, organization.transportServers["HubA"], {connector.identity: portal},
            self.queue, Resolver(organization), None, self.clock, agents=pipeline,
        )

    def session(self, factory):
        protocol, transport = connect(factory)
        return protocol, transport, transport.takeReplies()

    def say(self, protocol, transport, data):
        protocol.dataReceived(data)
        return transport.takeReplies()

    def transaction(self, protocol, transport):
        replies = self.say(protocol, transport, b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n")
        return replies[-3:]

    def test_noAgentsMeansNoPipeline(self):
        organization = parseOrganization(ORG + agentSection("A", 1, "Enabled = $false"), "/o/org.ini")
        self.assertIsNone(loadAgents(organization, self.clock, [Factory("A", None)]))

    def test_priorityOrderAndAccept(self):
        first = Recorder(self.calls, "first", OnMailCommand=Verdict.accept())
        second = Recorder(self.calls, "second", OnMailCommand=Verdict.reject(), OnRcptCommand=Verdict.continue_())
        protocol, transport, _ = self.session(self.factory([("Second", 2, second), ("First", 1, first)]))
        replies = self.transaction(protocol, transport)
        self.assertEqual(replies[0], "250 2.1.0 Sender OK")
        self.assertEqual(self.calls, [("first", "OnMailCommand"), ("second", "OnRcptCommand")])

    def test_rejectRecipient(self):
        agent = Recorder(self.calls, "a", OnRcptCommand=lambda e: Verdict.reject(Reply(550, "5.7.1", f"no {e.address}")))
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        replies = self.transaction(protocol, transport)
        self.assertEqual(replies, ["250 2.1.0 Sender OK", "550 5.7.1 no kim@fabrikam.com", "503 5.5.2 Need RCPT command"])
        self.assertEqual(protocol.envelope.recipients, ())

    def test_temporaryRejectEhlo(self):
        agent = Recorder(self.calls, "a", OnEhlo=Verdict.temporaryReject(Reply(450, "4.7.1", "later")))
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        self.assertEqual(self.say(protocol, transport, b"EHLO c\r\n"), ["450 4.7.1 later"])
        self.assertIsNone(protocol.session.helo)

    def test_disconnectAtData(self):
        agent = Recorder(self.calls, "a", OnDataCommand=Verdict.disconnect())
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        replies = self.transaction(protocol, transport)
        self.assertEqual(replies[-1], "421 4.7.0 Closing transmission channel")
        self.assertTrue(transport.disconnecting)

    def test_rejectAtConnectCloses(self):
        agent = Recorder(self.calls, "a", OnConnect=Verdict.reject(Reply(554, "5.7.1", "go away")))
        protocol, transport, greeting = self.session(self.factory([("A", 1, agent)]))
        self.assertEqual(greeting, ["554 5.7.1 go away"])
        self.assertTrue(transport.disconnecting)

    def test_deferredVerdictKeepsOrder(self):
        pending = defer.Deferred()
        agent = Recorder(self.calls, "a", OnMailCommand=pending)
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        replies = self.say(protocol, transport, b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<kim@fabrikam.com>\r\n")
        self.assertEqual(replies[-1], "250 SMTPUTF8")  # the end of the EHLO reply
        pending.callback(Verdict.continue_())
        self.assertEqual(transport.takeReplies(), ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"])

    def test_exceptionFailClosed(self):
        agent = Recorder(self.calls, "a", OnMailCommand=lambda e: 1 / 0)
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        replies = self.transaction(protocol, transport)
        self.assertEqual(replies[0], "451 4.7.0 Temporary agent failure")
        self.assertIsNone(protocol.envelope)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_exceptionFailOpen(self):
        agent = Recorder(self.calls, "a", OnMailCommand=lambda e: 1 / 0)
        protocol, transport, _ = self.session(self.factory([("A", 1, agent, "FailurePolicy = FailOpen")]))
        replies = self.transaction(protocol, transport)
        self.assertEqual(replies[0], "250 2.1.0 Sender OK")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_disableAfterFailures(self):
        """
        A receive agent that failed DisableAfterFailures times in a row is
        no longer asked: the next MAIL FROM is accepted without it.
        """
        agent = Recorder(self.calls, "a", OnMailCommand=lambda e: 1 / 0)
        protocol, transport, _ = self.session(self.factory([("A", 1, agent, "DisableAfterFailures = 2")]))
        self.say(protocol, transport, b"EHLO c\r\n")
        replies = self.say(protocol, transport, b"MAIL FROM:<a@example.com>\r\n" * 3)
        self.assertEqual(
            replies,
            ["451 4.7.0 Temporary agent failure", "451 4.7.0 Temporary agent failure", "250 2.1.0 Sender OK"],
        )
        self.assertEqual(len(self.calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_notAVerdictFails(self):
        agent = Recorder(self.calls, "a", OnMailCommand="250 OK")
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        self.assertEqual(self.transaction(protocol, transport)[0], "451 4.7.0 Temporary agent failure")
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_timeout(self):
        agent = Recorder(self.calls, "a", OnRcptCommand=lambda e: defer.Deferred())
        protocol, transport, _ = self.session(self.factory([("A", 1, agent, "Timeout = 00:00:10")]))
        replies = self.transaction(protocol, transport)
        self.assertEqual(replies[-1], "250 2.1.0 Sender OK")
        self.clock.advance(9)
        self.assertEqual(transport.takeReplies(), [])
        self.clock.advance(1)
        self.assertEqual(transport.takeReplies(), ["451 4.7.0 Temporary agent failure", "503 5.5.2 Need RCPT command"])
        self.flushLoggedErrors()

    def test_disabledAgentNotCalled(self):
        off = Recorder(self.calls, "off", OnMailCommand=Verdict.reject())
        protocol, transport, _ = self.session(self.factory([("Off", 1, off, "Enabled = $false")]))
        self.assertEqual(self.transaction(protocol, transport)[0], "250 2.1.0 Sender OK")
        self.assertEqual(self.calls, [])

    def test_endOfDataChangesMessage(self):
        def stamp(e):
            return Verdict.continue_(message=b"X-Stamp: " + e.name.encode() + b"\r\n" + e.message)

        headerSeen = []
        first = Recorder(self.calls, "first", OnEndOfData=stamp, OnEndOfHeaders=lambda e: headerSeen.append(e.header) or Verdict.continue_())
        second = Recorder(self.calls, "second", OnEndOfData=lambda e: Verdict.accept(message=b"Y: 1\r\n" + e.message))
        protocol, transport, _ = self.session(self.factory([("First", 1, first), ("Second", 2, second)]))
        self.transaction(protocol, transport)
        self.say(protocol, transport, b"Subject: hi\r\n\r\nbody\r\n.\r\n")
        [(envelope, message, d)] = self.queue.pending
        self.assertTrue(message.startswith(b"Y: 1\r\nX-Stamp: OnEndOfData\r\nReceived: "), message[:80])
        self.assertTrue(message.endswith(b"Subject: hi\r\n\r\nbody\r\n"))
        self.assertEqual(len(headerSeen), 1)
        self.assertTrue(headerSeen[0].startswith(b"Subject: hi\r\n"))

    def test_messageOutsideEndOfDataFails(self):
        agent = Recorder(self.calls, "a", OnMailCommand=Verdict.continue_(message=b"x"))
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        self.assertEqual(self.transaction(protocol, transport)[0], "451 4.7.0 Temporary agent failure")
        self.flushLoggedErrors(TypeError)

    def test_onDisconnect(self):
        agent = Recorder(self.calls, "a", OnDisconnect=Verdict.continue_())
        protocol, transport, _ = self.session(self.factory([("A", 1, agent)]))
        protocol.connectionLost(None)
        self.assertEqual(self.calls, [("a", "OnDisconnect")])

    def test_senderBlockList(self):
        factory = agentFactories()["senderblocklist"]
        text = ORG + agentSection("SenderBlockList", 1, "BlockedSenders = bad@x.com, *@spam.example")
        organization = parseOrganization(text, "/o/org.ini")
        pipeline = loadAgents(organization, self.clock, [factory])
        connector = organization.receiveConnectors[0]
        portal = Portal(ConnectorRealm(organization, connector), [AllowAnonymousAccess()])
        receive = ReceiveFactory(
            organization, organization.transportServers["HubA"], {connector.identity: portal},
            self.queue, Resolver(organization), None, self.clock, agents=pipeline,
        )
        protocol, transport, _ = self.session(receive)
        replies = self.say(
            protocol, transport,
            b"EHLO c\r\nMAIL FROM:<BAD@x.com>\r\nMAIL FROM:<a@SPAM.example>\r\nMAIL FROM:<>\r\n",
        )
        self.assertEqual(replies[-3:], ["550 5.7.1 Sender denied", "550 5.7.1 Sender denied", "250 2.1.0 Sender OK"])


def configured(name, priority, agent, failOpen=False, timeout=30, disableAfterFailures=0):
    return ConfiguredAgent(name, priority, timeout, failOpen, agent, disableAfterFailures)


QUEUED = QueuedMessage("Q1", "a@contoso.com", (QueuedRecipient("kim@fabrikam.com"),), 0.0, 10)
SMART_HOST = NextHop("SmartHostConnectorDelivery", "ToInternet")


def routing(name, recipients=("kim@fabrikam.com",), **fields):
    return RoutingEvent(name, QUEUED, tuple(recipients), **fields)


class PipelineTests(SynchronousTestCase):
    """
    L{AgentPipeline.run} on its own: how verdicts compose across agents and
    which changes each event allows.
    """

    def setUp(self):
        self.calls = []
        self.clock = MemoryReactorClock()

    def run_(self, event, *agents):
        pipeline = AgentPipeline(agents, self.clock)
        return self.successResultOf(pipeline.run(event))

    def rcpt(self, address=Address("kim", "fabrikam.com")):
        return AgentEvent("OnRcptCommand", session=None, address=address, recipients=(address,))

    def test_eventFields(self):
        """
        The fields other helpers and agent authors code against.
        """
        self.assertEqual(
            [f.name for f in dataclasses.fields(RoutingEvent)],
            ["name", "queued", "recipients", "message", "nextHop", "reply"],
        )
        self.assertEqual(AgentEvent("OnConnect", None).recipients, ())
        verdict = Verdict.continue_(message=b"x", recipients=(), nextHop=SMART_HOST)
        self.assertEqual((verdict.message, verdict.recipients, verdict.nextHop), (b"x", (), SMART_HOST))
        self.assertEqual(Verdict.accept(recipients={"a@b.c": ()}).recipients, {"a@b.c": ()})

    def test_verdictChangesChecked(self):
        with self.assertRaises(ValueError):
            Verdict(REJECT, Reply(550, "5.7.1", "no"), recipients=())
        with self.assertRaises(ValueError):
            Verdict(TEMPORARY_REJECT, Reply(451, "4.7.1", "no"), nextHop=SMART_HOST)
        with self.assertRaises(ValueError):
            Verdict.continue_(nextHop="ToInternet")
        with self.assertRaises(ValueError):
            Verdict.continue_(recipients=["kim@fabrikam.com"])

    def test_rcptRecipientsCompose(self):
        """
        At OnRcptCommand each agent sees the recipients earlier agents made
        of the command's one; the verdict carries the last, repeats
        collapsed.
        """
        seen = []
        kim, lee, max_ = Address("kim", "fabrikam.com"), Address("lee", "fabrikam.com"), Address("max", "fabrikam.com")

        def second(event):
            seen.append(event.recipients)
            return Verdict.continue_(recipients=event.recipients[1:] + (max_, Address("LEE", "fabrikam.com")))

        verdict = self.run_(
            self.rcpt(),
            configured("Second", 2, Recorder(self.calls, "2", OnRcptCommand=second)),
            configured("First", 1, Recorder(self.calls, "1", OnRcptCommand=Verdict.continue_(recipients=(kim, lee)))),
            configured("Third", 3, Recorder(self.calls, "3", OnRcptCommand=lambda e: seen.append(e.recipients) or Verdict.continue_())),
        )
        self.assertEqual(verdict, Verdict.continue_(recipients=(lee, max_)))
        self.assertEqual(seen, [(kim, lee), (lee, max_)])
        self.assertEqual([label for label, _ in self.calls], ["1", "2", "3"])

    def test_rcptRecipientDropped(self):
        verdict = self.run_(
            self.rcpt(),
            configured("A", 1, Recorder(self.calls, "a", OnRcptCommand=Verdict.accept(recipients=()))),
            configured("B", 2, Recorder(self.calls, "b", OnRcptCommand=Verdict.reject())),
        )
        self.assertEqual(verdict, Verdict.accept(recipients=()))
        self.assertEqual(self.calls, [("a", "OnRcptCommand")])

    def test_rcptRecipientsNotAddresses(self):
        for bad in (("lee@fabrikam.com",), (Address("", ""),)):
            verdict = self.run_(
                self.rcpt(), configured("A", 1, Recorder(self.calls, "a", OnRcptCommand=Verdict.continue_(recipients=bad)))
            )
            self.assertEqual(verdict, Verdict.temporaryReject(AGENT_FAILURE), bad)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 2)

    def test_resolvedRecipientsCompose(self):
        """
        At OnResolvedMessage the verdict maps each first recipient to what
        the agents together made of it; later agents see the result.
        """
        seen = []
        first = Recorder(
            self.calls, "1",
            OnResolvedMessage=Verdict.continue_(
                recipients={"list@fabrikam.com": ("kim@fabrikam.com", "lee@fabrikam.com"), "old@fabrikam.com": ("new@Fabrikam.COM",)}
            ),
        )

        def second(event):
            seen.append(event.recipients)
            return Verdict.accept(recipients={"LEE@fabrikam.com": (), "new@fabrikam.com": ["x@example.org"]})

        third = Recorder(self.calls, "3", OnResolvedMessage=Verdict.reject())
        event = routing("OnResolvedMessage", ("list@fabrikam.com", "old@fabrikam.com", "kim@fabrikam.com", "stay@fabrikam.com"), message=b"m")
        verdict = self.run_(
            event,
            configured("First", 1, first),
            configured("Second", 2, Recorder(self.calls, "2", OnResolvedMessage=second)),
            configured("Third", 3, third),
        )
        self.assertEqual(seen, [("kim@fabrikam.com", "lee@fabrikam.com", "new@fabrikam.com", "stay@fabrikam.com")])
        self.assertEqual(verdict.kind, ACCEPT)
        self.assertEqual(
            verdict.recipients,
            {"list@fabrikam.com": ("kim@fabrikam.com",), "old@fabrikam.com": ("x@example.org",)},
        )

    def test_resolvedRecipientsChecked(self):
        for bad in ({"other@fabrikam.com": ()}, {"kim@fabrikam.com": "lee@fabrikam.com"}, {"kim@fabrikam.com": ("not an address",)}, ("kim@fabrikam.com",)):
            agent = Recorder(self.calls, "a", OnResolvedMessage=Verdict.continue_(recipients=bad))
            verdict = self.run_(routing("OnResolvedMessage"), configured("A", 1, agent))
            self.assertEqual(verdict, Verdict.temporaryReject(AGENT_FAILURE), bad)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 4)

    def test_routedMessageAndNextHop(self):
        other = NextHop("DnsConnectorDelivery", "ByMX", domain="fabrikam.com")
        seen = []

        def second(event):
            seen.append((event.message, event.nextHop))
            return Verdict.continue_(message=b"B" + event.message)

        verdict = self.run_(
            routing("OnRoutedMessage", message=b"m", nextHop=SMART_HOST),
            configured("A", 1, Recorder(self.calls, "a", OnRoutedMessage=Verdict.continue_(message=b"A" + b"m", nextHop=other))),
            configured("B", 2, Recorder(self.calls, "b", OnRoutedMessage=second)),
        )
        self.assertEqual(seen, [(b"Am", other)])
        self.assertEqual(verdict, Verdict.continue_(message=b"BAm", nextHop=other))

    def test_changesOnlyWhereAllowed(self):
        """
        A change an event does not allow, or DISCONNECT at a routing event,
        is an agent failure.
        """
        cases = [
            (routing("OnRoutedMessage", message=b"m"), Verdict.continue_(nextHop=SMART_HOST)),
            (routing("OnSubmittedMessage", message=b"m"), Verdict.continue_(message=b"x")),
            (routing("OnSubmittedMessage", message=b"m"), Verdict.continue_(recipients={})),
            (routing("OnResolvedMessage", message=b"m"), Verdict.continue_(nextHop=SMART_HOST)),
            (routing("OnRoutedMessage", message=b"m", nextHop=SMART_HOST), Verdict.continue_(recipients={})),
            (routing("OnRoutedMessage", message=b"m", nextHop=SMART_HOST), Verdict.disconnect()),
            (AgentEvent("OnMailCommand", None), Verdict.continue_(recipients=())),
            (AgentEvent("OnEndOfData", None, message=b"m"), Verdict.continue_(nextHop=SMART_HOST)),
        ]
        for event, answer in cases:
            agent = Recorder(self.calls, "a", **{event.name: answer})
            self.assertEqual(
                self.run_(event, configured("A", 1, agent)), Verdict.temporaryReject(AGENT_FAILURE), (event.name, answer)
            )
            self.assertEqual(self.run_(event, configured("A", 1, agent, failOpen=True)), Verdict.continue_())
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 2 * len(cases))

    def test_routingTimeout(self):
        agent = Recorder(self.calls, "a", OnSubmittedMessage=lambda e: defer.Deferred())
        pipeline = AgentPipeline([configured("A", 1, agent, timeout=10)], self.clock)
        running = pipeline.run(routing("OnSubmittedMessage", message=b"m"))
        self.clock.advance(9)
        self.assertNoResult(running)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(running), Verdict.temporaryReject(AGENT_FAILURE))
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError)), 1)

    def test_deliveryEventsIgnoreAnswers(self):
        """
        At the notification events every agent is called in order whatever
        the others answered or raised, FailClosed or not.
        """
        agents = [
            configured("A", 1, Recorder(self.calls, "a", OnFailed=lambda e: 1 / 0)),
            configured("B", 2, Recorder(self.calls, "b", OnFailed="not a verdict")),
            configured("C", 3, Recorder(self.calls, "c", OnFailed=Verdict.reject())),
            configured("D", 4, Recorder(self.calls, "d", OnFailed=None)),
        ]
        event = routing("OnFailed", reply="550 5.1.1 no")
        self.assertEqual(self.run_(event, *agents), Verdict.continue_())
        self.assertEqual([label for label, _ in self.calls], ["a", "b", "c", "d"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_disableAfterFailures(self):
        """
        After DisableAfterFailures failures in a row an agent is no longer
        called, at any event; a success in between starts the count again.
        """
        answers = []
        agent = Recorder(self.calls, "a", OnRoutedMessage=lambda e: answers.pop(0), OnMailCommand=Verdict.continue_())
        other = Recorder(self.calls, "b", OnRoutedMessage=Verdict.continue_())
        pipeline = AgentPipeline(
            [configured("A", 1, agent, disableAfterFailures=2), configured("B", 2, other)], self.clock
        )
        event = routing("OnRoutedMessage", message=b"m")
        answers.extend(["bad", Verdict.continue_(), "bad", "bad"])
        results = [self.successResultOf(pipeline.run(event)) for _ in range(4)]
        failed = Verdict.temporaryReject(AGENT_FAILURE)
        self.assertEqual(results, [failed, Verdict.continue_(), failed, failed])
        self.assertEqual(pipeline.disabled, {"A"})
        self.assertTrue(pipeline.wants("OnRoutedMessage"))
        self.assertFalse(pipeline.wants("OnMailCommand"))
        del self.calls[:]
        self.assertEqual(self.successResultOf(pipeline.run(event)), Verdict.continue_())
        self.assertEqual(self.calls, [("b", "OnRoutedMessage")])
        self.flushLoggedErrors(TypeError)

    def test_timeoutsCountAsFailures(self):
        agent = Recorder(self.calls, "a", OnResolvedMessage=lambda e: defer.Deferred())
        pipeline = AgentPipeline([configured("Slow", 1, agent, timeout=5, disableAfterFailures=2)], self.clock)
        for _ in range(2):
            running = pipeline.run(routing("OnResolvedMessage"))
            self.clock.advance(5)
            self.assertEqual(self.successResultOf(running), Verdict.temporaryReject(AGENT_FAILURE))
        self.assertEqual(pipeline.disabled, {"Slow"})
        self.assertFalse(pipeline.wants("OnResolvedMessage"))
        self.assertEqual(self.successResultOf(pipeline.run(routing("OnResolvedMessage"))), Verdict.continue_())
        self.assertEqual(len(self.calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(defer.TimeoutError)), 2)

    def test_disableLogsAnError(self):
        logged = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        agent = Recorder(self.calls, "a", OnSubmittedMessage=lambda e: 1 / 0)
        pipeline = AgentPipeline([configured("Flaky", 1, agent, failOpen=True, disableAfterFailures=1)], self.clock)
        self.assertEqual(self.successResultOf(pipeline.run(routing("OnSubmittedMessage"))), Verdict.continue_())
        (error,) = [e for e in logged if e.get("log_level") == LogLevel.error]
        self.assertEqual(error["agent"], "Flaky")
        self.assertIn("disabled", formatEvent(error))
        self.flushLoggedErrors(ZeroDivisionError)
