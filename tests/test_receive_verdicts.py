"""
Receive agents, event by event: each verdict at each SMTP event and what the
client hears, the session and transaction state a refusal leaves, what the
queue gets, one session's slow agent not holding another session, and the
log line naming the agent and the event when an agent fails.

In memory (L{exmta.testing.connect} sessions on a L{MemoryReactorClock},
a L{ControlledQueue} whose commits the tests complete by hand), and the
isolation once more through twistd over loopback sockets.
"""

import base64
import os

import pytest
from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from exmta.agents import EVENTS, Verdict, loadAgents
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.envelope import Address, Reply
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect

from tests.test_agents import Factory, Recorder, agentSection
from tests.test_protocol import ORG, ControlledQueue, PasswordChecker

EHLO = b"EHLO c\r\n"
HELO = b"HELO c\r\n"
AUTH = b"AUTH PLAIN " + base64.b64encode(b"\0kim@fabrikam.com\0right") + b"\r\n"
MAIL = b"MAIL FROM:<a@example.com>\r\n"
RCPT = b"RCPT TO:<kim@fabrikam.com>\r\n"
DATA = b"DATA\r\n"
MESSAGE = b"Subject: matrix\r\n\r\nbody\r\n.\r\n"
NOOP = b"NOOP\r\n"
KIM = Address("kim", "fabrikam.com")

GREETING = "220 huba.fabrikam.com exmta ESMTP service ready at "
HELLO = "huba.fabrikam.com Hello [127.0.0.9]"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
START_INPUT = "354 Start mail input; end with <CRLF>.<CRLF>"
AUTHENTICATED = "235 2.7.0 Authentication successful"
QUEUED = "250 2.6.0 <Q1@huba.fabrikam.com> Queued mail for delivery"
NEED_MAIL = "503 5.5.1 Need MAIL command"
AGENT_FAILURE = "451 4.7.0 Temporary agent failure"

# What the client has sent when each event's command arrives.
BEFORE = {
    "OnConnect": b"",
    "OnHelo": b"",
    "OnEhlo": b"",
    "OnAuth": EHLO,
    "OnMailCommand": EHLO,
    "OnRcptCommand": EHLO + MAIL,
    "OnDataCommand": EHLO + MAIL + RCPT,
    "OnEndOfHeaders": EHLO + MAIL + RCPT + DATA,
    "OnEndOfData": EHLO + MAIL + RCPT + DATA,
    "OnDisconnect": EHLO + MAIL,
}

# The command that raises each event (OnConnect and OnDisconnect have none).
COMMAND = {
    "OnHelo": HELO,
    "OnEhlo": EHLO,
    "OnAuth": AUTH,
    "OnMailCommand": MAIL,
    "OnRcptCommand": RCPT,
    "OnDataCommand": DATA,
    "OnEndOfHeaders": MESSAGE,
    "OnEndOfData": MESSAGE,
}

VERDICTS = ("continue", "accept", "reject", "temporaryReject", "disconnect")


def verdictAt(kind, event):
    """
    The verdict of C{kind} an agent gives at C{event}, its reply naming the
    event so the test sees that very reply reach the client.
    """
    return {
        "continue": Verdict.continue_(),
        "accept": Verdict.accept(),
        "reject": Verdict.reject(Reply(554, "5.7.1", f"No at {event}")),
        "temporaryReject": Verdict.temporaryReject(Reply(452, "4.7.1", f"Later at {event}")),
        "disconnect": Verdict.disconnect(Reply(421, "4.7.0", f"Bye at {event}")),
    }[kind]


class LogCapture:
    """
    The twisted.logger events emitted while it is attached.
    """

    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def errors(self):
        return [
            e for e in self.events
            if "log_failure" in e or e.get("log_level") in (LogLevel.error, LogLevel.critical)
        ]


@pytest.fixture
def logged():
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    yield capture
    globalLogPublisher.removeObserver(capture)


class Server:
    """
    A receive factory with the given agents, a fake clock and a queue the
    test commits by hand; its connector offers BasicAuth with one account
    (kim@fabrikam.com, password "right").
    """

    def __init__(self, agents, clock=None):
        """
        @param agents: (name, priority, agent[, section text]) tuples.
        """
        self.clock = clock or MemoryReactorClock()
        self.queue = ControlledQueue()
        text = ORG + "".join(agentSection(a[0], a[1], a[3] if len(a) > 3 else "") for a in agents)
        organization = parseOrganization(text, "/o/org.ini")
        connector = organization.receiveConnectors[0]
        portal = Portal(
            ConnectorRealm(organization, connector), [AllowAnonymousAccess(), PasswordChecker()]
        )
        self.pipeline = loadAgents(organization, self.clock, [Factory(a[0], a[2]) for a in agents])
        self.factory = ReceiveFactory(
            organization, organization.transportServers["HubA"], {connector.identity: portal},
            self.queue, Resolver(organization), None, self.clock, agents=self.pipeline,
        )

    def connect(self, peer=("127.0.0.9", 40000)):
        """
        @return: a L{Client} and the replies to the connection (the greeting
            or an agent's refusal).
        """
        client = Client(*connect(self.factory, peer=peer))
        return client, client.transport.takeReplies()

    def commit(self, queueId="Q1"):
        """
        Finish the oldest pending enqueue as if the spool had fsynced it.

        @return: the (envelope, message) it queued.
        """
        envelope, message, committed = self.queue.pending.pop(0)
        committed.callback(queueId)
        return envelope, message


class Client:
    def __init__(self, protocol, transport):
        self.protocol = protocol
        self.transport = transport

    def say(self, data):
        self.protocol.dataReceived(data)
        return self.transport.takeReplies()

    @property
    def closed(self):
        return self.transport.disconnecting


def gate(calls, event, answer):
    """
    An agent answering C{answer} (a verdict or a callable) the first time
    C{event} comes, and CONTINUE after that, so a retried command shows
    what the refusal left behind.
    """
    answers = [answer]

    def answerOnce(e):
        if not answers:
            return Verdict.continue_()
        first = answers.pop(0)
        return first(e) if callable(first) else first

    return Recorder(calls, "gate", **{event: answerOnce})


def later(calls):
    """
    An agent after the gate that says CONTINUE at every receive event.
    """
    return Recorder(calls, "later", **{event: Verdict.continue_() for event in EVENTS})


def callsAt(calls, event):
    return [label for label, name in calls if name == event]


def open_(server, event):
    """
    Connect and send what comes before C{event}'s command.

    @return: the L{Client} and the replies to the connection.
    """
    client, greeting = server.connect()
    if event != "OnConnect":
        assert greeting[0].startswith(GREETING), greeting
        client.say(BEFORE[event])
    return client, greeting


def raiseEvent(client, event, greeting, clock=None, delay=0):
    """
    Raise C{event} in a session L{open_} brought to it.

    @param delay: seconds to advance C{clock} by after the command, for
        agents that answer later; nothing may be sent before.
    @return: the replies to the event's command.
    """
    if event == "OnConnect":
        replies = greeting
    elif event == "OnDisconnect":
        client.protocol.connectionLost(Failure(ConnectionError("client went away")))
        replies = client.transport.takeReplies()
    else:
        replies = client.say(COMMAND[event])
    if delay:
        assert replies == []
        clock.advance(delay)
        replies = client.transport.takeReplies()
    return replies


def assertProceeded(server, client, event, replies):
    """
    The event's command got its normal reply and the session moved on.
    """
    protocol = client.protocol
    assert not client.closed
    if event == "OnConnect":
        assert len(replies) == 1 and replies[0].startswith(GREETING), replies
        assert client.say(EHLO)[0] == "250-" + HELLO
    elif event == "OnHelo":
        assert replies == ["250 " + HELLO]
        assert protocol.session.helo == "c" and not protocol.session.esmtp
    elif event == "OnEhlo":
        assert replies[0] == "250-" + HELLO and "250-AUTH PLAIN LOGIN" in replies, replies
        assert protocol.session.helo == "c" and protocol.session.esmtp
    elif event == "OnAuth":
        assert replies == [AUTHENTICATED]
        assert protocol.session.authenticated
        assert protocol.session.principal.name == "kim@fabrikam.com"
    elif event == "OnMailCommand":
        assert replies == [SENDER_OK]
        assert str(protocol.envelope.mailFrom) == "a@example.com"
    elif event == "OnRcptCommand":
        assert replies == [RECIPIENT_OK]
        assert protocol.envelope.recipients == (KIM,)
    elif event == "OnDataCommand":
        assert replies == [START_INPUT]
        assert client.say(MESSAGE) == []
        assert len(server.queue.pending) == 1
    else:
        # The reply waits for the queue's commit; the message is queued once.
        assert replies == []
        assert len(server.queue.pending) == 1
        envelope, message = server.commit()
        assert client.transport.takeReplies() == [QUEUED]
        assert envelope.recipients == (KIM,)
        assert message.endswith(b"Subject: matrix\r\n\r\nbody\r\n")
        assert server.queue.pending == []
        assert protocol.envelope is None


def assertRefusedAndUnchanged(server, client, event, replies, reply, before):
    """
    The client got C{reply} instead of the command's reply, the session and
    transaction are as they were before the command, and the command, sent
    again (the agent now says CONTINUE), proceeds.

    @param before: (session, envelope) before the command.
    """
    protocol = client.protocol
    assert replies == [reply]
    assert not client.closed
    assert server.queue.pending == []
    if event in ("OnEndOfHeaders", "OnEndOfData"):
        # A refused message ends the transaction (RFC 5321 4.1.1.4): the
        # client starts again with MAIL.
        assert protocol.envelope is None
        assert client.say(RCPT) == [NEED_MAIL]
        assert client.say(MAIL + RCPT + DATA + MESSAGE) == [SENDER_OK, RECIPIENT_OK, START_INPUT]
        assert len(server.queue.pending) == 1
        server.commit()
        assert client.transport.takeReplies() == [QUEUED]
        return
    assert (protocol.session, protocol.envelope) == before
    if event in ("OnHelo", "OnEhlo"):
        assert protocol.session.helo is None
        assert client.say(MAIL) == ["503 5.5.1 Send hello first"]
    elif event == "OnAuth":
        assert not protocol.session.authenticated
    elif event == "OnMailCommand":
        assert protocol.envelope is None
        assert client.say(RCPT) == [NEED_MAIL]
    elif event == "OnRcptCommand":
        assert protocol.envelope.recipients == ()
        assert client.say(DATA) == ["503 5.5.2 Need RCPT command"]
    elif event == "OnDataCommand":
        # Still reading commands, not message text.
        assert client.say(NOOP) == ["250 2.0.0 OK"]
        assert protocol.envelope.recipients == (KIM,)
    retried = client.say(COMMAND[event])
    assertProceeded(server, client, event, retried)


@pytest.mark.parametrize("answered", ["at once", "by a Deferred"])
@pytest.mark.parametrize("kind", VERDICTS)
@pytest.mark.parametrize("event", EVENTS)
def test_verdictAtEvent(event, kind, answered, logged):
    """
    The gate agent's verdict at C{event}, given at once or by a Deferred
    that fires a second later, and what the client hears, what state it
    leaves and what the queue gets; the agent after the gate is asked only
    after CONTINUE.
    """
    calls = []
    verdict = verdictAt(kind, event)
    clock = MemoryReactorClock()
    answer, delay = verdict, 0
    if answered == "by a Deferred":
        answer, delay = (lambda e: task.deferLater(clock, 1, lambda: verdict)), 1
    server = Server([("Gate", 1, gate(calls, event, answer)), ("Later", 2, later(calls))], clock)
    client, greeting = open_(server, event)
    before = (client.protocol.session, client.protocol.envelope)
    replies = raiseEvent(client, event, greeting, clock, delay)
    assert callsAt(calls, event)[:1] == ["gate"]

    if event == "OnDisconnect":
        # A notification: whatever the verdict, nothing is written.
        assert replies == []
        assert client.transport.value() == b""
        assert server.queue.pending == []
        if kind == "continue":
            assert callsAt(calls, event) == ["gate", "later"]
    elif kind in ("continue", "accept"):
        expectedAfterGate = ["later"] if kind == "continue" else []
        assert callsAt(calls, event) == ["gate"] + expectedAfterGate
        assertProceeded(server, client, event, replies)
    else:
        assert callsAt(calls, event) == ["gate"]
        assert server.queue.pending == []
        if kind == "disconnect" or event == "OnConnect":
            # The reply, then the connection is closed; input after it is
            # not read.
            assert replies == [str(verdict.reply)]
            assert client.closed
            assert client.say(NOOP) == []
            assert server.queue.pending == []
        else:
            assertRefusedAndUnchanged(server, client, event, replies, str(verdict.reply), before)
    assert logged.errors() == []


@pytest.mark.parametrize("event", [e for e in EVENTS if e not in ("OnConnect", "OnDisconnect")])
def test_disconnectDropsPipelinedCommands(event, logged):
    """
    After a DISCONNECT verdict the commands the client pipelined behind the
    refused one are not run: the verdict's reply is the last thing sent.
    """
    calls = []
    verdict = verdictAt("disconnect", event)
    server = Server([("Gate", 1, gate(calls, event, verdict))])
    client, _ = server.connect()
    script = EHLO + AUTH + MAIL + RCPT + DATA + MESSAGE
    if event == "OnHelo":
        script = HELO + MAIL + RCPT + DATA + MESSAGE
    replies = client.say(script + MAIL + RCPT + DATA + MESSAGE + NOOP)
    assert replies[-1] == str(verdict.reply)
    assert client.closed
    assert server.queue.pending == []
    assert callsAt(calls, event) == ["gate"]
    assert logged.errors() == []


def test_defaultReplies():
    """
    The replies of verdicts made without one.
    """
    for verdict, expected in [
        (Verdict.reject(), "550 5.7.1 Rejected by transport agent"),
        (Verdict.temporaryReject(), "451 4.7.1 Temporarily rejected by transport agent"),
        (Verdict.disconnect(), "421 4.7.0 Closing transmission channel"),
    ]:
        server = Server([("Gate", 1, gate([], "OnMailCommand", verdict))])
        client, _ = open_(server, "OnMailCommand")
        assert client.say(MAIL) == [expected]


# Isolation

SLOW_PEER = ("127.0.0.9", 40001)
OTHER_PEER = ("127.0.0.9", 40002)
TRANSACTION = EHLO + AUTH + MAIL + RCPT + DATA + MESSAGE + b"QUIT\r\n"


@pytest.mark.parametrize("event", [e for e in EVENTS if e not in ("OnHelo", "OnDisconnect")])
def test_slowAgentHoldsOnlyItsSession(event, logged):
    """
    An agent whose answer for one session has not come (a Deferred not yet
    fired, its Timeout far off) holds that session alone: a second session
    on the same factory runs a whole pipelined transaction meanwhile, and
    the first finishes hers, replies in order, once the answer comes.
    """
    pending = defer.Deferred()

    def answer(e):
        if e.session.peerPort == SLOW_PEER[1]:
            return pending
        return Verdict.continue_()

    server = Server([("Slow", 1, Recorder([], "slow", **{event: answer}))])
    slow, slowReplies = server.connect(SLOW_PEER)
    slowReplies += slow.say(TRANSACTION)
    assert slowReplies == expectedBefore(event)

    other, otherReplies = server.connect(OTHER_PEER)
    otherReplies += other.say(TRANSACTION)
    assert len(server.queue.pending) == 1
    server.commit("Q2")
    otherReplies += other.transport.takeReplies()
    assert otherReplies[-2:] == [QUEUED.replace("Q1", "Q2"), "221 2.0.0 Service closing transmission channel"]
    assert other.closed
    assert slow.transport.takeReplies() == []
    assert not slow.closed

    pending.callback(Verdict.continue_())
    slowReplies += slow.transport.takeReplies()
    server.commit("Q1")
    slowReplies += slow.transport.takeReplies()
    assert slowReplies == [line.replace("Q2", "Q1") for line in otherReplies]
    assert server.clock.seconds() == 0
    assert logged.errors() == []


def expectedBefore(event):
    """
    The replies a session running L{TRANSACTION} has had when its agent
    is asked at C{event}: those of an agentless session sent the commands
    before C{event}'s.
    """
    if event == "OnConnect":
        return []
    sent = {
        "OnEhlo": b"",
        "OnAuth": EHLO,
        "OnMailCommand": EHLO + AUTH,
        "OnRcptCommand": EHLO + AUTH + MAIL,
        "OnDataCommand": EHLO + AUTH + MAIL + RCPT,
        "OnEndOfHeaders": EHLO + AUTH + MAIL + RCPT + DATA,
        "OnEndOfData": EHLO + AUTH + MAIL + RCPT + DATA,
    }[event]
    client, replies = Server([]).connect(SLOW_PEER)
    return replies + client.say(sent)


HOLDING_PLUGIN = '''
from twisted.internet import defer
from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.agents import Verdict
from exmta.interfaces import IAgentFactory, IReceiveAgent


@implementer(IReceiveAgent)
class Holding:
    """
    Holds MAIL FROM:<slow@...> until some session disconnects.
    """

    def __init__(self):
        self.held = []

    def OnMailCommand(self, event):
        if event.address.localPart != "slow":
            return Verdict.continue_()
        held = defer.Deferred()
        self.held.append(held)
        return held

    def OnDisconnect(self, event):
        while self.held:
            self.held.pop().callback(Verdict.continue_())
        return Verdict.continue_()


@implementer(IPlugin, IAgentFactory)
class HoldingFactory:
    name = "HoldingTest"

    def makeAgent(self, settings, organization, reactor):
        return Holding()


holding = HoldingFactory()
'''

HOLDING_SERVER = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}

[TransportAgent HoldingTest]
Priority = 1
Timeout = 00:05:00
"""


def test_slowAgentHoldsOnlyItsSessionOverSockets(tmp_path, monkeypatch):
    """
    Through twistd and loopback sockets: while an agent holds one session's
    MAIL FROM, another session runs a whole transaction; the held session
    hears nothing until the other one has gone (which releases it), then
    finishes its own.
    """
    import select
    import smtplib

    from tests.e2e import harness

    plugins = tmp_path / "site" / "exmta" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "holding_test.py").write_text(HOLDING_PLUGIN)
    monkeypatch.setattr(harness, "REPOSITORY", harness.REPOSITORY + os.pathsep + str(tmp_path / "site"))
    port = harness.freePort()
    config = harness.writeOrganization(str(tmp_path), HOLDING_SERVER.format(port=port))
    server = harness.ServerProcess(config, sockets=1)
    held = harness.RawClient("127.0.0.1", port)
    try:
        assert held.reply()[0] == 220
        assert held.command("EHLO held.contoso.com")[0] == 250
        held.send(b"MAIL FROM:<slow@contoso.com>\r\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=harness.REPLY_TIMEOUT) as other:
            other.ehlo("other.contoso.com")
            assert other.mail("other@contoso.com")[0] == 250
            assert other.rcpt("kim@fabrikam.com")[0] == 250
            code, text = other.data(b"Subject: meanwhile\r\n\r\nHello.\r\n")
            assert code == 250, text
            assert held.buffered() == b""
            assert select.select([held.sock], [], [], 0)[0] == []
        assert held.reply() == (250, ["250 2.1.0 Sender OK"])
        assert held.command("RCPT TO:<kim@fabrikam.com>") == (250, ["250 2.1.5 Recipient OK"])
        assert held.command("DATA")[0] == 354
        code, lines = held.command("Subject: held\r\n\r\nHello.\r\n.")
        assert code == 250, lines
        assert held.command("QUIT")[0] == 221
    finally:
        held.close()
        server.stop()


# Failures: what the client hears and what the log says

BROKEN_TIMEOUT = 10


def breaking(how):
    """
    An answer that fails: raises, or never comes (within the Timeout).
    """
    if how == "raises":
        return lambda e: 1 / 0
    return lambda e: defer.Deferred()


@pytest.mark.parametrize("how", ["raises", "times out"])
@pytest.mark.parametrize("policy", ["FailClosed", "FailOpen"])
@pytest.mark.parametrize("event", EVENTS)
def test_failureLoggedWithAgentAndEvent(event, policy, how, logged):
    """
    An agent failing at C{event} is logged once, naming the agent, the
    event and the policy; under FailClosed the client hears 451 4.7.0 and
    the command left nothing behind, under FailOpen the command proceeds
    as if the agent had said CONTINUE.
    """
    calls = []
    section = f"FailurePolicy = {policy}\nTimeout = 00:00:{BROKEN_TIMEOUT}"
    server = Server(
        [("Broken", 1, gate(calls, event, breaking(how)), section), ("Later", 2, later(calls))]
    )
    client, greeting = open_(server, event)
    before = (client.protocol.session, client.protocol.envelope)
    delay = BROKEN_TIMEOUT if how == "times out" else 0
    replies = raiseEvent(client, event, greeting, server.clock, delay)

    (failure,) = logged.errors()
    assert failure["agent"] == "Broken"
    assert failure["event"] == event
    assert failure["policy"] == policy
    expectedError = ZeroDivisionError if how == "raises" else defer.TimeoutError
    assert failure["log_failure"].check(expectedError)
    assert f"transport agent Broken failed at {event} ({policy})" == formatEvent(failure)
    del logged.events[:]

    if event == "OnDisconnect":
        assert replies == [] and client.transport.value() == b""
    elif policy == "FailOpen":
        assert callsAt(calls, event) == ["gate", "later"]
        assertProceeded(server, client, event, replies)
    elif event == "OnConnect":
        assert replies == [AGENT_FAILURE]
        assert client.closed
    else:
        assert callsAt(calls, event) == ["gate"]
        assertRefusedAndUnchanged(server, client, event, replies, AGENT_FAILURE, before)
    assert logged.errors() == []


@pytest.mark.parametrize("answer", ["reject", "temporaryReject", "disconnect", "raises"])
def test_everyAgentToldOfDisconnect(answer, logged):
    """
    OnDisconnect is a notification: an agent's answer there, refusal or
    failure, does not keep the agents after it from hearing of it (one
    that counts connections per peer would never count this one down).
    """
    calls = []
    first = breaking("raises") if answer == "raises" else verdictAt(answer, "OnDisconnect")
    server = Server([("Gate", 1, gate(calls, "OnDisconnect", first)), ("Later", 2, later(calls))])
    client, greeting = open_(server, "OnDisconnect")
    assert raiseEvent(client, "OnDisconnect", greeting) == []
    assert callsAt(calls, "OnDisconnect") == ["gate", "later"]
