"""
Receive agents changing a RCPT's recipient at OnRcptCommand: the
replacement goes into the envelope, the client hears the usual 250 for the
address it sent.  In memory, then over a real socket against twistd.
"""

import os
import re

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from exmta.agents import Verdict, loadAgents
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.envelope import Address
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect
from tests.test_agents import Factory, Recorder, agentSection
from tests.test_manager import FakeTrackingLog
from tests.test_protocol import ORG, ControlledQueue

KIM = Address("kim", "fabrikam.com")
LEE = Address("lee", "fabrikam.com")
ARCHIVE = Address("archive", "fabrikam.com")


class RcptRecipientTests(SynchronousTestCase):
    def setUp(self):
        self.calls = []
        self.clock = MemoryReactorClock()
        self.queue = ControlledQueue()
        self.tracking = FakeTrackingLog()

    def run_session(self, answer, commands, limit=None):
        """
        @return: the protocol, its transport and the replies to
            C{commands}, sent after EHLO and MAIL with an agent answering
            OnRcptCommand with C{answer}, on a connector with
            MaxRecipientsPerMessage C{limit} (Exchange's default if None).
        """
        text = (
            ORG + (f"MaxRecipientsPerMessage = {limit}\n" if limit else "")
            + "\n[Mailbox Lee]\nPrimarySmtpAddress = lee@fabrikam.com\n"
            + "\n[Mailbox Archive]\nPrimarySmtpAddress = archive@fabrikam.com\n"
            + agentSection("A", 1)
        )
        organization = parseOrganization(text, "/o/org.ini")
        connector = organization.receiveConnectors[0]
        portal = Portal(ConnectorRealm(organization, connector), [AllowAnonymousAccess()])
        agent = Recorder(self.calls, "a", OnRcptCommand=answer)
        factory = ReceiveFactory(
            organization, organization.transportServers["HubA"], {connector.identity: portal},
            self.queue, Resolver(organization), None, self.clock,
            agents=loadAgents(organization, self.clock, [Factory("A", agent)]),
            tracking=self.tracking,
        )
        protocol, transport = connect(factory)
        transport.takeReplies()
        protocol.dataReceived(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\n")
        transport.takeReplies()
        return protocol, transport, self.say(protocol, transport, commands)

    def say(self, protocol, transport, data):
        protocol.dataReceived(data)
        return transport.takeReplies()

    def test_eventNamesTheRecipient(self):
        seen = []
        self.run_session(lambda e: seen.append(e.recipients) or Verdict.continue_(),
                         b"RCPT TO:<kim@fabrikam.com>\r\n")
        self.assertEqual(seen, [(KIM,)])

    def test_replaced(self):
        protocol, _, replies = self.run_session(
            Verdict.continue_(recipients=(LEE, ARCHIVE)), b"RCPT TO:<kim@fabrikam.com>\r\n"
        )
        self.assertEqual(replies, ["250 2.1.5 Recipient OK"])
        self.assertEqual(protocol.envelope.recipients, (LEE, ARCHIVE))

    def test_duplicatesCollapse(self):
        protocol, _, replies = self.run_session(
            lambda e: Verdict.accept(recipients=(ARCHIVE, e.address)),
            b"RCPT TO:<kim@fabrikam.com>\r\nRCPT TO:<Archive@fabrikam.com>\r\n",
        )
        self.assertEqual(replies, ["250 2.1.5 Recipient OK"] * 2)
        self.assertEqual(protocol.envelope.recipients, (ARCHIVE, KIM))

    def test_droppedSilentlyAndTheMessageStillTaken(self):
        """
        An empty tuple drops the recipient; the client hears 250 and may go
        on to DATA; a message left with no recipient is taken (250) and
        not queued.
        """
        protocol, transport, replies = self.run_session(
            Verdict.continue_(recipients=()), b"RCPT TO:<kim@fabrikam.com>\r\nDATA\r\n"
        )
        self.assertEqual(replies, ["250 2.1.5 Recipient OK", "354 Start mail input; end with <CRLF>.<CRLF>"])
        self.assertEqual(protocol.envelope.recipients, ())
        replies = self.say(protocol, transport, b"Subject: s\r\n\r\nx\r\n.\r\n")
        self.assertEqual(replies, ["250 2.6.0 Queued mail for delivery"])
        self.assertEqual(self.queue.pending, [])

    def test_replacementsCountAgainstTheLimit(self):
        protocol, _, replies = self.run_session(
            lambda e: Verdict.continue_(recipients=(e.address, ARCHIVE)),
            b"RCPT TO:<kim@fabrikam.com>\r\nRCPT TO:<lee@fabrikam.com>\r\n",
        )
        self.assertEqual(replies, ["250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK"])
        self.assertEqual(protocol.envelope.recipients, (KIM, ARCHIVE, LEE))

    def test_replacementsOverTheLimitRefused(self):
        """
        A RCPT whose replacements would pass MaxRecipientsPerMessage is
        refused whole, as a RCPT over the limit is.
        """
        protocol, _, replies = self.run_session(
            lambda e: Verdict.continue_(recipients=(e.address, ARCHIVE, LEE)),
            b"RCPT TO:<kim@fabrikam.com>\r\nRCPT TO:<lee@fabrikam.com>\r\n",
            limit=2,
        )
        self.assertEqual(replies, ["452 4.5.3 Too many recipients", "250 2.1.5 Recipient OK"])
        self.assertEqual(protocol.envelope.recipients, (LEE, ARCHIVE))

    def test_replacementOutsideTheOrganizationRefused(self):
        """
        An anonymous session may not relay, so an agent may not make it: a
        replacement outside the accepted domains gets the refusal the
        client's own address would.
        """
        protocol, _, replies = self.run_session(
            Verdict.continue_(recipients=(LEE, Address("victim", "example.net"))),
            b"RCPT TO:<kim@fabrikam.com>\r\n",
        )
        self.assertEqual(replies, ["550 5.7.1 Unable to relay"])
        self.assertEqual(protocol.envelope.recipients, ())

    def test_unknownLocalReplacementRefused(self):
        protocol, _, replies = self.run_session(
            Verdict.continue_(recipients=(Address("ghost", "fabrikam.com"),)),
            b"RCPT TO:<kim@fabrikam.com>\r\n",
        )
        self.assertEqual(replies, ["550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"])
        self.assertEqual(protocol.envelope.recipients, ())

    def test_replacementsTracked(self):
        """
        The tracking log shows what the agents did to each RCPT: REDIRECT,
        EXPAND or FAIL (deleted), with source AGENT; an unchanged recipient
        leaves no event.
        """
        answers = {
            "kim": Verdict.continue_(recipients=(LEE,)),
            "lee": Verdict.continue_(recipients=(KIM, ARCHIVE)),
            "archive": Verdict.continue_(recipients=()),
        }
        self.run_session(
            lambda e: answers.get(e.address.localPart, Verdict.continue_()),
            b"RCPT TO:<kim@fabrikam.com>\r\nRCPT TO:<lee@fabrikam.com>\r\n"
            b"RCPT TO:<archive@fabrikam.com>\r\n",
        )
        events = [
            (kind, fields["source"], fields["recipients"],
             fields.get("relatedRecipientAddress"), fields.get("recipientStatus"))
            for kind, _, fields in self.tracking.events
        ]
        self.assertEqual(events, [
            ("REDIRECT", "AGENT", ["lee@fabrikam.com"], ["kim@fabrikam.com"], None),
            ("EXPAND", "AGENT", ["kim@fabrikam.com", "archive@fabrikam.com"],
             ["lee@fabrikam.com"], None),
            ("FAIL", "AGENT", ["archive@fabrikam.com"], None,
             "550 4.3.2 QUEUE.TransportAgent; recipient deleted by a transport agent"),
        ])


# Over a real socket: an agent plugin installed beside exmta, in a folder
# on twistd's path holding exmta/plugins/ (as an installed package would).

PLUGIN = '''
from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.agents import Verdict
from exmta.envelope import Address
from exmta.interfaces import IAgentFactory, IReceiveAgent


@implementer(IReceiveAgent)
class Agent:
    def OnRcptCommand(self, event):
        if event.address.localPart == "team":
            return Verdict.continue_(recipients=(Address("kim", "fabrikam.com"),
                                                 Address("archive", "fabrikam.com")))
        if event.address.localPart == "void":
            return Verdict.continue_(recipients=())
        return Verdict.continue_()


@implementer(IPlugin, IAgentFactory)
class RcptRewrite:
    name = "RcptRewriteTest"

    def makeAgent(self, settings, organization, reactor):
        return Agent()


rcptRewrite = RcptRewrite()
'''

SERVER = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[Mailbox Archive]
PrimarySmtpAddress = archive@fabrikam.com

[Mailbox Team]
PrimarySmtpAddress = team@fabrikam.com

[Mailbox Void]
PrimarySmtpAddress = void@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}

[TransportAgent RcptRewriteTest]
Priority = 1
"""


def test_recipientsReplacedOverASocket(tmp_path, monkeypatch):
    """
    Through twistd: RCPT TO:<team@> is queued for kim@ and archive@ (the
    replacements), RCPT TO:<void@> is dropped, and the client hears 250
    for each address it sent.
    """
    import smtplib

    from tests.e2e import harness

    plugins = tmp_path / "site" / "exmta" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "rcpt_rewrite_test.py").write_text(PLUGIN)
    monkeypatch.setattr(harness, "REPOSITORY", harness.REPOSITORY + os.pathsep + str(tmp_path / "site"))
    port = harness.freePort()
    config = harness.writeOrganization(
        str(tmp_path), SERVER.format(port=port)
    )
    server = harness.ServerProcess(config, sockets=1)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("client.contoso.com")
            assert client.mail("someone@contoso.com")[0] == 250
            assert client.rcpt("team@fabrikam.com") == (250, b"2.1.5 Recipient OK")
            assert client.rcpt("void@fabrikam.com") == (250, b"2.1.5 Recipient OK")
            code, text = client.data(b"Subject: team\r\n\r\nHello.\r\n")
            assert code == 250, text
        queueId = re.search(rb"<([0-9A-F]+)@", text).group(1).decode()
        server.waitFor(f"accepted {queueId}")
        line = next(line for line in server.output if f"accepted {queueId}" in line)
        assert "kim@fabrikam.com" in line and "archive@fabrikam.com" in line, line
        assert "team@" not in line and "void@" not in line, line
        for mailbox in ("kim@fabrikam.com", "archive@fabrikam.com"):
            server.waitFor(f"delivered {queueId} to {mailbox}")
        mailboxes = tmp_path / "var" / "mailboxes"
        assert sorted(os.listdir(mailboxes)) == ["archive@fabrikam.com", "kim@fabrikam.com"]
    finally:
        server.stop()
