"""
The receive protocol in memory: timeouts and tarpits on a fake clock, the
order of replies around a slow queue, and errors that must not lose mail.
"""

import base64
import errno

from twisted.cred.checkers import AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.interfaces import IMessageQueue
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect

ORG = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:25
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = BasicAuth
PermissionGroups = ExchangeUsers, AnonymousUsers
AuthTarpitInterval = 00:00:05
MaxLogonFailures = 3
MaxProtocolErrors = 3
# Refusals come at once here; tests/test_receive_extensions.py tarpits.
TarpitInterval = 00:00:00
"""


@implementer(IMessageQueue)
class ControlledQueue:
    """
    A queue whose commits the test completes (or fails) by hand.
    """

    def __init__(self):
        self.pending = []
        self.onEnqueued = []
        self.onAdopted = []

    def enqueue(self, envelope, session, message):
        d = defer.Deferred()
        self.pending.append((envelope, message, d))
        return d

    def messages(self):
        return []

    def messageBytes(self, queueId):
        raise KeyError(queueId)

    def update(self, queued):
        return defer.succeed(None)


@implementer(ICredentialsChecker)
class PasswordChecker:
    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials):
        if credentials.username == b"kim@fabrikam.com" and credentials.password == b"right":
            return defer.succeed("kim@fabrikam.com")
        return defer.fail(UnauthorizedLogin())


class ProtocolTests(SynchronousTestCase):
    def setUp(self):
        self.organization = parseOrganization(ORG, "/nonexistent/org.ini")
        self.connector = self.organization.receiveConnectors[0]
        self.clock = MemoryReactorClock()
        self.queue = ControlledQueue()
        verifyObject(IMessageQueue, self.queue)
        portal = Portal(
            ConnectorRealm(self.organization, self.connector),
            [AllowAnonymousAccess(), PasswordChecker()],
        )
        server = self.organization.transportServers["HubA"]
        self.tracked = []
        tracking = type("Tracking", (), {"track": lambda _, *a, **k: self.tracked.append((a, k))})()
        self.factory = ReceiveFactory(
            self.organization, server, {self.connector.identity: portal}, self.queue,
            Resolver(self.organization), None, self.clock, tracking=tracking,
        )

    def session(self, peer="127.0.0.9"):
        protocol, transport = connect(self.factory, peer=(peer, 40000))
        greeting = transport.takeReplies()
        self.assertTrue(greeting[0].startswith("220 huba.fabrikam.com"), greeting)
        return protocol, transport

    def say(self, protocol, transport, data):
        protocol.dataReceived(data)
        return transport.takeReplies()

    def test_inactivityTimeout(self):
        protocol, transport = self.session()
        self.clock.advance(299)
        self.assertFalse(transport.disconnecting)
        self.say(protocol, transport, b"NOOP\r\n")
        self.clock.advance(299)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(transport.takeReplies(), ["451 4.7.0 Timeout waiting for client input"])
        self.assertTrue(transport.disconnecting)

    def test_connectionTimeoutBoundsBusySessions(self):
        protocol, transport = self.session()
        for _ in range(2):
            self.clock.advance(200)
            self.assertEqual(self.say(protocol, transport, b"NOOP\r\n"), ["250 2.0.0 OK"])
        self.clock.advance(200)
        self.assertEqual(transport.takeReplies(), ["421 4.4.1 Connection timed out; session too long"])
        self.assertTrue(transport.disconnecting)

    def test_failedLoginIsTarpittedAndLimited(self):
        protocol, transport = self.session()
        self.say(protocol, transport, b"EHLO c\r\n")
        wrong = base64.b64encode(b"\0kim@fabrikam.com\0wrong")
        for attempt in range(3):
            self.assertEqual(self.say(protocol, transport, b"AUTH PLAIN " + wrong + b"\r\n"), [])
            self.clock.advance(4.9)
            self.assertEqual(transport.takeReplies(), [])
            self.clock.advance(0.1)
            replies = transport.takeReplies()
            self.assertEqual(replies[0], "535 5.7.3 Authentication unsuccessful")
        self.assertEqual(replies[1:], ["421 4.7.0 Too many errors on this connection, closing transmission channel"])
        self.assertTrue(transport.disconnecting)

    def test_goodLoginAfterAFailure(self):
        protocol, transport = self.session()
        self.say(protocol, transport, b"EHLO c\r\n")
        self.say(protocol, transport, b"AUTH LOGIN\r\n")
        self.say(protocol, transport, base64.b64encode(b"kim@fabrikam.com") + b"\r\n")
        self.say(protocol, transport, base64.b64encode(b"nope") + b"\r\n")
        self.clock.advance(5)
        self.assertEqual(transport.takeReplies(), ["535 5.7.3 Authentication unsuccessful"])
        right = base64.b64encode(b"\0kim@fabrikam.com\0right")
        self.assertEqual(self.say(protocol, transport, b"AUTH PLAIN " + right + b"\r\n"),
                         ["235 2.7.0 Authentication successful"])
        self.assertEqual(protocol.session.principal.name, "kim@fabrikam.com")

    def test_tooManyProtocolErrorsEndTheSession(self):
        protocol, transport = self.session()
        replies = self.say(protocol, transport, b"BOGUS\r\nBOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n")
        self.assertEqual(replies[-1], "421 4.7.0 Too many errors on this connection, closing transmission channel")
        self.assertEqual(len(replies), 5)
        self.assertTrue(transport.disconnecting)

    def test_overlongLineIsAnsweredOnceWhateverTheReads(self):
        """
        An overlong command line gets one 500 however it is cut between
        reads; what follows it up to its CRLF is dropped as it comes, and
        a CR at the end of a read may still begin the CRLF.
        """
        protocol, transport = self.session()
        replies = []
        for piece in [b"NOOP <", b"a" * 300, b"a" * 300, b"a" * 5000, b"a" * 70000, b"\r"]:
            replies += self.say(protocol, transport, piece)
            self.assertLess(len(protocol._buffer), 600)
        replies += self.say(protocol, transport, b"\nNOOP\r\n")
        self.assertEqual(replies, ["500 5.5.2 Line too long", "250 2.0.0 OK"])

    def test_lineAtTheLimitWithItsCRLFSplit(self):
        protocol, transport = self.session()
        self.assertEqual(self.say(protocol, transport, b"NOOP " + b"x" * 507 + b"\r"), [])
        self.assertEqual(self.say(protocol, transport, b"\n"), ["250 2.0.0 OK"])

    def test_overlongLinesCountAsProtocolErrors(self):
        protocol, transport = self.session()
        replies = self.say(protocol, transport, (b"x" * 600 + b"\r\n") * 3 + b"y" * 600)
        self.assertEqual(replies, ["500 5.5.2 Line too long"] * 4 + [
            "421 4.7.0 Too many errors on this connection, closing transmission channel"])
        self.assertTrue(transport.disconnecting)

    def test_overlongSASLResponseEndsTheExchange(self):
        protocol, transport = self.session()
        self.say(protocol, transport, b"EHLO c\r\n")
        for mechanism in (b"LOGIN", b"PLAIN"):
            self.assertEqual(self.say(protocol, transport, b"AUTH " + mechanism + b"\r\n")[0][:3], "334")
            self.assertEqual(self.say(protocol, transport, b"A" * 12289 + b"\r\nNOOP\r\n"), [
                "500 5.5.6 Authentication Exchange line is too long", "250 2.0.0 OK"])
        self.assertEqual(self.say(protocol, transport, b"AUTH PLAIN\r\n" + b"A" * 13000), [
            "334 ", "500 5.5.6 Authentication Exchange line is too long"])
        self.assertEqual(self.say(protocol, transport, b"A\r\nQUIT\r\n"),
                         ["221 2.0.0 Service closing transmission channel"])

    def test_helloWithControlCharactersIsRefused(self):
        protocol, transport = self.session()
        for command in (b"EHLO a\x00b (spoofed.example)", b"HELO a\x1bb", b"EHLO a\x7f"):
            self.assertEqual(self.say(protocol, transport, command + b"\r\n"),
                             ["501 5.5.4 Invalid domain name"])
        self.assertIsNone(protocol.session.helo)

    def test_oversizedHeaderIsRefusedAndTheSessionStays(self):
        protocol, transport = self.session()
        self.say(protocol, transport, b"EHLO c\r\nMAIL FROM:<a@contoso.com>\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n")
        header = b"X-Filler: " + b"z" * 70 * 1024 + b"\r\n"
        replies = self.say(protocol, transport, header + b"\r\nbody\r\n.\r\nNOOP\r\n")
        self.assertEqual(replies, ["552 5.3.4 Header size exceeds fixed maximum size", "250 2.0.0 OK"])
        self.assertFalse(transport.disconnecting)
        self.assertIsNone(protocol.envelope)
        self.assertEqual(self.queue.pending, [])

    def test_noReplyBeforeTheQueueCommitsAndRepliesStayInOrder(self):
        protocol, transport = self.session()
        self.say(protocol, transport, b"EHLO c\r\nMAIL FROM:<a@contoso.com>\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n")
        replies = self.say(
            protocol, transport,
            b"Message-ID: <m1@contoso.com>\r\nSubject: x\r\n\r\n..dot\r\n.\r\nNOOP\r\nRSET\r\n",
        )
        self.assertEqual(replies, [])
        self.assertEqual(self.tracked, [])
        envelope, message, committed = self.queue.pending[0]
        self.assertEqual([str(r) for r in envelope.recipients], ["kim@fabrikam.com"])
        self.assertTrue(message.endswith(b"Subject: x\r\n\r\n.dot\r\n"))
        self.assertIn(b"X-MS-Exchange-Organization-AuthAs: Anonymous\r\n", message)
        committed.callback("0123ABCD")
        self.assertEqual(transport.takeReplies(), [
            "250 2.6.0 <0123ABCD@huba.fabrikam.com> Queued mail for delivery",
            "250 2.0.0 OK",
            "250 2.0.0 Resetting",
        ])
        [(arguments, fields)] = self.tracked
        self.assertEqual(arguments, ("RECEIVE",))
        self.assertEqual(fields["internalMessageId"], "0123ABCD")
        self.assertEqual(fields["messageId"], "<m1@contoso.com>")
        self.assertEqual(fields["recipients"], ["kim@fabrikam.com"])
        self.assertEqual(fields["connectorId"], "HubA\\Default HubA")
        self.assertEqual(fields["clientIp"], "127.0.0.9")

    def test_queueFailureIsATemporaryError(self):
        """
        A full disk is answered 452 4.3.1 and a failing one 451 4.3.0, as
        the server's state (an error line, no traceback); any other error
        of the queue is 451 4.3.0 and logged as a bug.
        """
        for error, answer, bugs in [
            (OSError(errno.ENOSPC, "No space left on device"),
             "452 4.3.1 Insufficient system resources", 0),
            (OSError(errno.EIO, "Input/output error"),
             "451 4.3.0 Error in processing; try again later", 0),
            (OSError(errno.EACCES, "Permission denied"),
             "451 4.3.0 Error in processing; try again later", 1),
        ]:
            protocol, transport = self.session()
            self.say(protocol, transport, b"EHLO c\r\nMAIL FROM:<a@contoso.com>\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n")
            self.say(protocol, transport, b"x\r\n.\r\n")
            self.queue.pending.pop()[2].errback(error)
            self.assertEqual(transport.takeReplies(), [answer])
            self.assertEqual(len(self.flushLoggedErrors(OSError)), bugs)
            self.assertEqual(self.say(protocol, transport, b"NOOP\r\n"), ["250 2.0.0 OK"])

    def test_emptyMessageAndDotOnlyLines(self):
        protocol, transport = self.session()
        self.say(protocol, transport, b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n")
        self.say(protocol, transport, b".\r\n")
        message = self.queue.pending[0][1]
        self.assertTrue(message.endswith(b"X-MS-Exchange-Organization-AuthSource: huba.fabrikam.com\r\n"))

    def test_noConnectorForThePeer(self):
        protocol, transport = connect(self.factory, peer=("10.0.0.1", 40000))
        self.assertEqual(transport.takeReplies(), ["421 4.3.2 Service not available, closing transmission channel"])
        self.assertTrue(transport.disconnecting)

    def test_transactionCommandsNeedTheirPredecessors(self):
        protocol, transport = self.session()
        self.assertEqual(self.say(protocol, transport, b"MAIL FROM:<a@contoso.com>\r\n"), ["503 5.5.1 Send hello first"])
        self.say(protocol, transport, b"HELO c\r\n")
        self.assertEqual(self.say(protocol, transport, b"DATA\r\n"), ["503 5.5.1 Need MAIL command"])
        self.assertEqual(self.say(protocol, transport, b"MAIL FROM:<a@contoso.com> SIZE=1\r\n"),
                         ["555 5.5.4 MAIL parameters need EHLO"])


class ProtocolLogTests(SynchronousTestCase):
    def test_verboseConnectorsLogTheDialogueWithoutSecrets(self):
        import os
        import tempfile

        from exmta.protocollog import ProtocolLog

        organization = parseOrganization(ORG + "ProtocolLoggingLevel = Verbose\n", "/nonexistent/org.ini")
        connector = organization.receiveConnectors[0]
        clock = MemoryReactorClock()
        folder = tempfile.mkdtemp()
        portal = Portal(ConnectorRealm(organization, connector), [AllowAnonymousAccess(), PasswordChecker()])
        factory = ReceiveFactory(
            organization, organization.transportServers["HubA"], {connector.identity: portal},
            ControlledQueue(), Resolver(organization), None, clock,
            protocolLog=ProtocolLog(folder, "RECV", clock),
        )
        protocol, transport = connect(factory)
        secret = base64.b64encode(b"\0kim@fabrikam.com\0right")
        protocol.dataReceived(b"EHLO c\r\nAUTH LOGIN\r\n" + base64.b64encode(b"kim@fabrikam.com") + b"\r\n")
        protocol.dataReceived(base64.b64encode(b"right") + b"\r\nAUTH PLAIN " + secret + b"\r\nQUIT\r\n")
        protocol.connectionLost(None)
        [name] = os.listdir(folder)
        self.assertEqual(name, "RECV19700101.LOG")
        with open(os.path.join(folder, name)) as handle:
            text = handle.read()
        self.assertTrue(text.startswith("#Fields: date-time,connector-id,session-id,"))
        self.assertIn(",HubA\\Default HubA,", text)
        self.assertIn(",127.0.0.1:25,127.0.0.9:40000,+,", text)
        self.assertIn(",<,EHLO c,", text)
        self.assertIn(",<,AUTH LOGIN,response redacted", text)
        self.assertIn(",<,AUTH PLAIN,response redacted", text)
        self.assertIn(",>,250-SIZE 10485760,", text)
        self.assertIn(",<,<redacted>,", text)
        self.assertIn(",>,235 2.7.0 Authentication successful,", text)
        self.assertNotIn(secret.decode(), text)
        self.assertNotIn(base64.b64encode(b"kim@fabrikam.com").decode(), text)
        self.assertNotIn(base64.b64encode(b"right").decode(), text)
        self.assertIn(",-,", text)

    def test_theLineAfterAnyAuthCommandIsRedacted(self):
        """
        Whatever became of an AUTH command (refused, unknown mechanism, or
        a line too long), the next line may be the credentials of a client
        that did not wait for the answer: it is not written.
        """
        import os
        import tempfile

        from exmta.protocollog import ProtocolLog

        organization = parseOrganization(ORG + "ProtocolLoggingLevel = Verbose\n", "/nonexistent/org.ini")
        connector = organization.receiveConnectors[0]
        clock = MemoryReactorClock()
        folder = tempfile.mkdtemp()
        portal = Portal(ConnectorRealm(organization, connector), [AllowAnonymousAccess(), PasswordChecker()])
        factory = ReceiveFactory(
            organization, organization.transportServers["HubA"], {connector.identity: portal},
            ControlledQueue(), Resolver(organization), None, clock,
            protocolLog=ProtocolLog(folder, "RECV", clock),
        )
        secrets = [base64.b64encode(b"\0kim@fabrikam.com\0secret%d" % n) for n in range(3)]
        sessions = [
            b"AUTH PLAIN\r\n" + secrets[0] + b"\r\nNOOP\r\n",
            b"EHLO c\r\nAUTH CRAM-MD5\r\n" + secrets[1] + b"\r\nNOOP\r\n",
            b"EHLO c\r\nAUTH PLAIN " + b"A" * 13000 + b"\r\n" + secrets[2] + b"\r\nNOOP\r\n",
        ]
        for data in sessions:
            protocol, transport = connect(factory)
            protocol.dataReceived(data)
            self.assertEqual(transport.takeReplies()[-1], "250 2.0.0 OK")
            protocol.connectionLost(None)
        [name] = os.listdir(folder)
        with open(os.path.join(folder, name)) as handle:
            text = handle.read()
        for secret in secrets:
            self.assertNotIn(secret.decode(), text)
        self.assertEqual(text.count(",<,<redacted>,"), 3)
        self.assertEqual(text.count(",<,NOOP,"), 3)
