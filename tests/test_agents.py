"""
Transport agents: discovery, [TransportAgent] sections, verdicts at SMTP
events, Priority order, and isolation from failing or slow agents.
"""

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from exmta.agents import Verdict, agentFactories, loadAgents
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.envelope import Reply
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
        self.assertEqual(replies[-1], "250 AUTH PLAIN LOGIN")
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
