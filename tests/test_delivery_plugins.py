"""
Delivery agent plugins: Maildir and Lmtp found as plugins and made from
org.ini, their configuration errors naming the line, and the LMTP client:
its exact bytes on the wire, per-recipient replies after DATA, and every
way a session can fail, against a scripted server on a real socket and
in memory.
"""

import os
import re
import shutil
import tempfile

import pytest
from hypothesis import given, strategies as st
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from exmta.config import parseOrganization
from exmta.deliver import MaildirDeliveryAgent, deliveryAgentFactories, loadDeliveryAgent
from exmta.deliver.lmtp import LmtpClient, LmtpDeliveryAgent, lmtpData
from exmta.envelope import QueuedMessage, QueuedRecipient
from exmta.errors import ConfigError, ConnectionFailure, PermanentFailure, TransientFailure
from exmta.interfaces import IDeliveryAgent, IDeliveryAgentFactory

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
"""


def organization(extra="", folder="/etc/exmta"):
    return parseOrganization(ORGANIZATION + extra, os.path.join(folder, "org.ini"))


def agentOf(extra, folder="/etc/exmta"):
    loaded = organization(extra, folder)
    return loadDeliveryAgent(loaded, loaded.transportServers["HubA"], reactor)


def configError(extra):
    with pytest.raises(ConfigError) as raised:
        agentOf(extra)
    return raised.value


def lineOf(extra, needle):
    for number, line in enumerate((ORGANIZATION + extra).splitlines(), 1):
        if needle in line:
            return number
    raise LookupError(needle)


def queued(sender, *recipients, body="7BIT"):
    return QueuedMessage(
        queueId="q1",
        mailFrom=sender,
        recipients=tuple(QueuedRecipient(address) for address in recipients),
        arrivalTime=0.0,
        size=0,
        body=body,
    )


def temporaryFolder(case):
    folder = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, folder)
    return folder


# Plugins and configuration


def test_builtInDeliveryAgentsArePlugins():
    factories = deliveryAgentFactories()
    assert {"maildir", "lmtp"} <= set(factories)
    for name in ("maildir", "lmtp"):
        assert verifyObject(IDeliveryAgentFactory, factories[name])
        assert factories[name].name.lower() == name


def test_maildirIsTheDefault():
    agent = agentOf("")
    assert isinstance(agent, MaildirDeliveryAgent)
    assert verifyObject(IDeliveryAgent, agent)
    assert agent.root == "/etc/exmta/var/HubA/mailboxes"


def test_lmtpOverTcp():
    agent = agentOf("DeliveryAgent = lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1\nConnectionInactivityTimeout = 00:01:00\n")
    assert isinstance(agent, LmtpDeliveryAgent)
    assert verifyObject(IDeliveryAgent, agent)
    assert (agent.where, agent.timeout, agent.clientName) == ("127.0.0.1:24", 60, "huba.fabrikam.com")


def test_lmtpOverAUnixSocketRelativeToOrgIni():
    agent = agentOf("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nSocket = run/lmtp\n")
    assert agent.where == "/etc/exmta/run/lmtp"


@pytest.mark.parametrize(
    "extra, needle, key",
    [
        ("DeliveryAgent = Mbox\n", "DeliveryAgent", "DeliveryAgent"),
        ("DeliveryAgent = Lmtp\n", "DeliveryAgent", "DeliveryAgent"),
        ("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1\nPort = 24\n", "Port", "Port"),
        ("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1:99999\n", "Host", "Host"),
        ("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1\nSocket = /run/lmtp\n", "Socket", "Socket"),
        ("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nComment = none yet\n", "[DeliveryAgent Lmtp]", None),
        ("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nSocket = /run/lmtp\nConnectionTimeout = soon\n",
         "ConnectionTimeout", "ConnectionTimeout"),
        # A section no server uses is checked all the same.
        ("\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1\nTimeout = 5\n", "Timeout", "Timeout"),
        ("\n[DeliveryAgent Maildir]\nPath = /var/mail\n", "Path", "Path"),
        ("\n[DeliveryAgent Mbox]\n", "[DeliveryAgent Mbox]", None),
    ],
)
def test_configurationErrorsNameTheLine(extra, needle, key):
    error = configError(extra)
    assert error.path == "/etc/exmta/org.ini"
    assert (error.line, error.key) == (lineOf(extra, needle), key)


def test_unknownAgentListsTheInstalledOnes():
    message = str(configError("DeliveryAgent = Mbox\n"))
    assert "no delivery agent plugin is named 'Mbox'" in message
    assert "Lmtp" in message and "Maildir" in message


def test_lmtpWithoutItsSectionSaysWhatItNeeds():
    message = str(configError("DeliveryAgent = Lmtp\n"))
    assert "Host" in message and "[DeliveryAgent Lmtp]" in message


def test_deliveryAgentNameSyntax():
    with pytest.raises(ConfigError, match="not a plugin name") as raised:
        organization("DeliveryAgent = Lm tp\n")
    assert raised.value.key == "DeliveryAgent"


# The DATA payload


@pytest.mark.parametrize(
    "message, data",
    [
        (b"", b""),
        (b"Subject: a\r\n\r\nbody\r\n", b"Subject: a\r\n\r\nbody\r\n"),
        (b"Subject: a\r\n\r\nno final line end", b"Subject: a\r\n\r\nno final line end\r\n"),
        (b".starts with a dot\r\n", b"..starts with a dot\r\n"),
        (b"a\r\n.\r\nb\r\n..\r\n", b"a\r\n..\r\nb\r\n...\r\n"),
        (b"bare\nline feeds\n.\nand\rcarriage returns\r", b"bare\r\nline feeds\r\n..\r\nand\r\ncarriage returns\r\n"),
        (b"a\r\r\nb\r\n", b"a\r\n\r\nb\r\n"),
    ],
)
def test_lmtpData(message, data):
    assert lmtpData(message) == data


@given(st.lists(st.binary().filter(lambda line: b"\r" not in line and b"\n" not in line), max_size=20))
def test_lmtpDataUnstuffsToTheLines(lines):
    """
    A reader of the payload (RFC 5321 4.5.2) gets back exactly the lines,
    and never meets the end of data early.
    """
    message = b"".join(line + b"\r\n" for line in lines)
    data = lmtpData(message)
    assert b"\r\n.\r\n" not in b"\r\n" + data
    read = [line[1:] if line.startswith(b".") else line for line in data.split(b"\r\n")[:-1]]
    assert read == lines


@given(st.binary(max_size=200))
def test_lmtpDataHasOnlyCrlfLineEnds(message):
    """
    Whatever the stored bytes, no bare CR or LF reaches the server, where
    it could be read as a line end (and a dot after it as the end of data).
    """
    data = lmtpData(message)
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in data.split(b"\r\n"))


# The client, in memory


class ClientTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()

    def connect(self, users=("kim@fabrikam.com", "lee@fabrikam.com"), sender="max@contoso.com", body="7BIT",
                message=b"Subject: x\r\n\r\n.\r\n"):
        data = lmtpData(message)
        client = LmtpClient("huba.fabrikam.com", sender, users, data, body, 30, "127.0.0.1:24")
        client.callLater = self.clock.callLater
        transport = StringTransport()
        client.makeConnection(transport)
        self.outcomes = []
        client.outcomes.addCallback(self.outcomes.append)
        return client, transport

    def serve(self, client, transport, *replies):
        """
        Answer with C{replies} in turn; lost connections end the session.

        @return: the lines the client wrote.
        """
        for reply in replies:
            client.dataReceived(reply)
        if transport.disconnecting:
            client.connectionLost(None)
        return transport.value().split(b"\r\n")

    def test_aWholeTransaction(self):
        client, transport = self.connect(body="8BITMIME")
        written = self.serve(
            client,
            transport,
            b"220 mail.fabrikam.com Dovecot ready.\r\n",
            b"250-mail.fabrikam.com\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n",
            b"250 2.1.0 OK\r\n",
            b"250 2.1.5 OK\r\n",
            b"550 5.1.1 <lee@fabrikam.com> User doesn't exist: lee@fabrikam.com\r\n",
            b"354 OK\r\n",
            b"250 2.0.0 <kim@fabrikam.com> Saved\r\n",
            b"221 2.0.0 Bye\r\n",
        )
        assert written == [
            b"LHLO huba.fabrikam.com",
            b"MAIL FROM:<max@contoso.com> BODY=8BITMIME",
            b"RCPT TO:<kim@fabrikam.com>",
            b"RCPT TO:<lee@fabrikam.com>",
            b"DATA",
            b"Subject: x",
            b"",
            b"..",
            b".",
            b"QUIT",
            b"",
        ]
        (outcomes,) = self.outcomes
        assert outcomes["kim@fabrikam.com"] is None
        refusal = outcomes["lee@fabrikam.com"]
        assert isinstance(refusal, PermanentFailure)
        assert (refusal.reply.code, refusal.reply.status) == (550, "5.1.1")
        assert refusal.remoteMta == "mail.fabrikam.com"

    def test_eightBitContentIsDeclaredWhateverItsClientDeclared(self):
        """
        A message with an octet above 127 received without BODY=8BITMIME
        (clients often leave it out) is declared 8BITMIME to an LMTP server
        that offers it, as the send side does; 7-bit content is not.
        """
        for message, expected in [
            ("Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode("utf-8"),
             b"MAIL FROM:<max@contoso.com> BODY=8BITMIME"),
            (b"Subject: x\r\n\r\nplain\r\n", b"MAIL FROM:<max@contoso.com>"),
        ]:
            client, transport = self.connect(users=("kim@fabrikam.com",), message=message)
            written = self.serve(
                client, transport, b"220 mail ready\r\n", b"250-mail\r\n250 8BITMIME\r\n"
            )
            assert written[1] == expected

    def test_utf8AddressesGoWithSmtpUtf8(self):
        """
        A UTF-8 recipient (RFC 6531) makes MAIL carry SMTPUTF8 when the
        LMTP server offers it; ASCII ones do not.
        """
        for users, expected in [
            (("j\u00f6rg@fabrikam.com",), b"MAIL FROM:<max@contoso.com> SMTPUTF8"),
            (("kim@fabrikam.com",), b"MAIL FROM:<max@contoso.com>"),
        ]:
            client, transport = self.connect(users=users)
            written = self.serve(
                client, transport, b"220 mail ready\r\n", b"250-mail\r\n250 SMTPUTF8\r\n"
            )
            assert written[1] == expected

    def test_perRecipientRepliesAfterData(self):
        client, transport = self.connect()
        written = self.serve(
            client,
            transport,
            b"220 mail ready\r\n",
            b"250 mail\r\n",
            b"250 2.1.0 OK\r\n",
            b"250 2.1.5 OK\r\n",
            b"250 2.1.5 OK\r\n",
            b"354 OK\r\n",
            b"452 4.2.2 <kim@fabrikam.com> Mailbox is full\r\n",
            b"250 2.0.0 <lee@fabrikam.com> Saved\r\n",
            b"221 2.0.0 Bye\r\n",
        )
        assert b"MAIL FROM:<max@contoso.com>" in written  # no BODY= for 7BIT
        (outcomes,) = self.outcomes
        assert isinstance(outcomes["kim@fabrikam.com"], TransientFailure)
        assert not isinstance(outcomes["kim@fabrikam.com"], ConnectionFailure)
        assert outcomes["kim@fabrikam.com"].reply.text == "<kim@fabrikam.com> Mailbox is full"
        assert outcomes["lee@fabrikam.com"] is None

    def test_nullSenderAndNo8bitmimeOffered(self):
        client, transport = self.connect(sender="", body="8BITMIME")
        written = self.serve(client, transport, b"220 mail\r\n", b"250 mail\r\n")
        assert written[1] == b"MAIL FROM:<>"

    def test_noRecipientAcceptedSendsNoData(self):
        client, transport = self.connect()
        written = self.serve(
            client, transport, b"220 mail\r\n", b"250 mail\r\n", b"250 OK\r\n",
            b"550 5.1.1 no\r\n", b"451 4.3.0 later\r\n", b"221 Bye\r\n",
        )
        assert b"DATA" not in written and written[-2] == b"QUIT"
        (outcomes,) = self.outcomes
        assert isinstance(outcomes["kim@fabrikam.com"], PermanentFailure)
        assert isinstance(outcomes["lee@fabrikam.com"], TransientFailure)

    def test_mailRefused(self):
        for reply, kind in ((b"550 5.7.1 sender refused\r\n", PermanentFailure), (b"451 4.3.0 later\r\n", TransientFailure)):
            client, transport = self.connect()
            written = self.serve(client, transport, b"220 mail\r\n", b"250 mail\r\n", reply, b"221 Bye\r\n")
            assert not any(line.startswith(b"RCPT") for line in written)
            (outcomes,) = self.outcomes
            assert all(isinstance(outcome, kind) for outcome in outcomes.values())

    def test_dataRefused(self):
        client, transport = self.connect(users=("kim@fabrikam.com",))
        self.serve(
            client, transport, b"220 mail\r\n", b"250 mail\r\n", b"250 OK\r\n", b"250 OK\r\n",
            b"554 5.6.0 no thanks\r\n", b"221 Bye\r\n",
        )
        (outcomes,) = self.outcomes
        assert outcomes["kim@fabrikam.com"].reply.status == "5.6.0"
        assert isinstance(outcomes["kim@fabrikam.com"], PermanentFailure)

    def test_sessionRefusedIsAConnectionFailure(self):
        """
        A refused greeting or LHLO says nothing of the recipients: retry.
        """
        for replies in ((b"554 5.3.2 not now\r\n",), (b"220 mail\r\n", b"500 5.5.1 what?\r\n")):
            client, transport = self.connect()
            self.serve(client, transport, *replies, b"221 Bye\r\n")
            (outcomes,) = self.outcomes
            assert all(isinstance(outcome, ConnectionFailure) for outcome in outcomes.values())

    def test_lostAfterDataLeavesTheUnansweredToRetry(self):
        client, transport = self.connect()
        self.serve(
            client, transport, b"220 mail\r\n", b"250 mail\r\n", b"250 OK\r\n", b"250 OK\r\n",
            b"250 OK\r\n", b"354 go\r\n", b"250 2.0.0 saved\r\n",
        )
        client.connectionLost(None)
        (outcomes,) = self.outcomes
        assert outcomes["kim@fabrikam.com"] is None
        lost = outcomes["lee@fabrikam.com"]
        assert isinstance(lost, ConnectionFailure)
        assert (lost.reply.code, lost.reply.status) == (451, "4.4.2")
        assert "lost the connection to the LMTP server 127.0.0.1:24" in str(lost)

    def test_aSilentServerTimesOut(self):
        client, transport = self.connect()
        client.dataReceived(b"220 mail\r\n")
        self.clock.advance(29)
        assert not transport.disconnecting
        client.dataReceived(b"250 mail\r\n")
        self.clock.advance(30)
        assert transport.disconnecting
        client.connectionLost(None)
        (outcomes,) = self.outcomes
        assert all(isinstance(outcome, ConnectionFailure) for outcome in outcomes.values())
        assert "timed out waiting for the LMTP server" in str(outcomes["kim@fabrikam.com"])

    def test_aMalformedReplyEndsTheSession(self):
        client, transport = self.connect()
        client.dataReceived(b"220 mail\r\nhello there\r\n")
        assert transport.disconnecting
        client.connectionLost(None)
        (outcomes,) = self.outcomes
        assert "malformed reply" in str(outcomes["kim@fabrikam.com"])


# The agent, against a scripted server on a real socket


class ScriptedLmtp(LineReceiver):
    """
    An LMTP server that accepts the users it knows and records what it got.
    """

    def connectionMade(self):
        self.factory.sessions.append(self)
        self.commands, self.data, self.recipients = [], None, []
        self.sendLine(b"220 lmtp.fabrikam.com ready")

    def lineReceived(self, line):
        if self.data is not None:
            if line == b".":
                for user in self.recipients:
                    self.sendLine(b"250 2.0.0 <%s> Saved" % user)
                self.factory.messages.append(self.data)
                self.data = None
                return
            self.data.append(line)
            return
        self.commands.append(line)
        verb = line.split(b" ")[0].upper()
        if verb == b"LHLO":
            self.sendLine(b"250-lmtp.fabrikam.com\r\n250 8BITMIME")
        elif verb == b"MAIL":
            self.sendLine(b"250 2.1.0 OK")
        elif verb == b"RCPT":
            user = re.search(rb"<(.*)>", line).group(1)
            if user in self.factory.users:
                self.recipients.append(user)
                self.sendLine(b"250 2.1.5 OK")
            else:
                self.sendLine(b"550 5.1.1 <%s> User doesn't exist" % user)
        elif verb == b"DATA":
            self.data = []
            self.sendLine(b"354 OK")
        elif verb == b"QUIT":
            self.sendLine(b"221 2.0.0 Bye")
            self.transport.loseConnection()


class AgentTests(TestCase):
    def listen(self, endpoint):
        factory = Factory.forProtocol(ScriptedLmtp)
        factory.sessions, factory.messages, factory.users = [], [], {b"kim@fabrikam.com"}
        self.server = factory
        listening = endpoint.listen(factory)

        def listened(port):
            self.addCleanup(port.stopListening)
            return port

        return listening.addCallback(listened)

    @defer.inlineCallbacks
    def test_oneTransactionPerMessageOverTcp(self):
        from twisted.internet.endpoints import TCP4ServerEndpoint

        port = yield self.listen(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))
        agent = agentOf(
            f"DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1:{port.getHost().port}\n"
        )
        message = b"Subject: dots\r\n\r\n.\r\n..two\r\nend"
        outcomes = yield agent.deliver(
            queued("max@contoso.com", "kim@fabrikam.com", "Kim.Akers@fabrikam.com", "nobody@fabrikam.com"),
            # Two addresses of one mailbox: its primary address is the user.
            {
                "kim@fabrikam.com": "kim@fabrikam.com",
                "Kim.Akers@fabrikam.com": "kim@fabrikam.com",
                "nobody@fabrikam.com": "nobody@fabrikam.com",
            },
            message,
        )
        assert outcomes["kim@fabrikam.com"] is None
        assert outcomes["Kim.Akers@fabrikam.com"] is None
        assert isinstance(outcomes["nobody@fabrikam.com"], PermanentFailure)
        (session,) = self.server.sessions
        assert session.commands == [
            b"LHLO huba.fabrikam.com",
            b"MAIL FROM:<max@contoso.com>",
            b"RCPT TO:<kim@fabrikam.com>",
            b"RCPT TO:<nobody@fabrikam.com>",
            b"DATA",
            b"QUIT",
        ]
        assert self.server.messages == [[b"Subject: dots", b"", b"..", b"...two", b"end"]]

    @defer.inlineCallbacks
    def test_overAUnixSocket(self):
        from twisted.internet.endpoints import UNIXServerEndpoint

        folder = temporaryFolder(self)
        yield self.listen(UNIXServerEndpoint(reactor, os.path.join(folder, "lmtp")))
        agent = agentOf("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nSocket = lmtp\n", folder=os.path.abspath(folder))
        outcomes = yield agent.deliver(queued("", "kim@fabrikam.com"), {"kim@fabrikam.com": "kim@fabrikam.com"}, b"x\r\n")
        assert outcomes == {"kim@fabrikam.com": None}
        assert self.server.sessions[0].commands[1] == b"MAIL FROM:<>"

    @defer.inlineCallbacks
    def test_noServerIsAConnectionFailure(self):
        from tests.e2e.harness import freePort

        agent = agentOf(f"DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1:{freePort()}\n")
        outcomes = yield agent.deliver(
            queued("max@contoso.com", "kim@fabrikam.com"), {"kim@fabrikam.com": "kim@fabrikam.com"}, b"x\r\n"
        )
        failure = outcomes["kim@fabrikam.com"]
        assert isinstance(failure, ConnectionFailure)
        assert (failure.reply.code, failure.reply.status) == (451, "4.4.1")
        assert "cannot reach the LMTP server 127.0.0.1:" in str(failure)


# Reloads


class ReloadTests(TestCase):
    """
    A reload makes the delivery agent org.ini names now, checked as a start
    is: a refused one keeps the running agent.
    """

    def setUp(self):
        from exmta.service import makeService

        self.folder = temporaryFolder(self)
        self.config = os.path.join(self.folder, "org.ini")
        self.write("")
        self.service = makeService(self.config, reactor=reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.manager = self.service.getServiceNamed("queue")

    def write(self, extra):
        with open(self.config, "w") as handle:
            handle.write(ORGANIZATION + extra)

    def test_aNewDeliveryAgent(self):
        self.assertIsInstance(self.manager.deliveryAgent, MaildirDeliveryAgent)
        self.write("DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1:2424\n")
        self.service.reload()
        self.assertIsInstance(self.manager.deliveryAgent, LmtpDeliveryAgent)
        self.assertEqual(self.manager.deliveryAgent.where, "127.0.0.1:2424")

    def test_aRefusedDeliveryAgentKeepsTheRunningOne(self):
        running = self.manager.deliveryAgent
        extra = "DeliveryAgent = Lmtp\n\n[DeliveryAgent Lmtp]\nHost = 127.0.0.1:2424\nPort = 24\n"
        self.write(extra)
        with self.assertRaises(ConfigError) as raised:
            self.service.reload()
        self.assertEqual((raised.exception.line, raised.exception.key), (lineOf(extra, "Port"), "Port"))
        self.assertIs(self.manager.deliveryAgent, running)


# The Shell


def test_setTransportServerDeliveryAgent(tmp_path):
    from exmta.shell import config_cmdlets  # noqa: F401 (registers the cmdlets)
    from exmta.shell.cmdlet import CMDLETS, CmdletError, Context
    from exmta.shell.host import MemoryHost

    path = str(tmp_path / "org.ini")
    with open(path, "w") as handle:
        handle.write(ORGANIZATION)

    def run(name, **parameters):
        return CMDLETS[name.lower()].function(Context(path, host=MemoryHost()), **parameters)

    (shown,) = run("Get-TransportServer")
    assert shown.DeliveryAgent == "Maildir"
    # Lmtp needs its section first: refused, as a server would refuse it.
    with pytest.raises(CmdletError, match=r"Lmtp needs one of Host .*\(the change was refused"):
        run("Set-TransportServer", Identity="HubA", DeliveryAgent="Lmtp")
    assert open(path).read() == ORGANIZATION
    with open(path, "a") as handle:
        handle.write("\n[DeliveryAgent Lmtp]\nSocket = /run/dovecot/lmtp\n")
    run("Set-TransportServer", Identity="HubA", DeliveryAgent="Lmtp")
    (shown,) = run("Get-TransportServer")
    assert shown.DeliveryAgent == "Lmtp"


def test_testConfigChecksTheDeliveryAgent(tmp_path):
    from exmta.shell import config_cmdlets  # noqa: F401 (registers the cmdlets)
    from exmta.shell.cmdlet import CMDLETS, CmdletError, Context
    from exmta.shell.host import MemoryHost

    path = str(tmp_path / "org.ini")
    with open(path, "w") as handle:
        handle.write(ORGANIZATION + "DeliveryAgent = Mbox\n")
    with pytest.raises(CmdletError, match=r"org.ini:3: \[TransportServer HubA\] DeliveryAgent: no delivery agent plugin"):
        CMDLETS["test-config"].function(Context(path, host=MemoryHost()))
