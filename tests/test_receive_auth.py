"""
AUTH in the receive protocol, in memory on a fake clock: failed logons
counted across sessions per client address, checks dropped or counted when
the client hangs up, a busy verification pool, and user names kept out of
the log unless they are accounts.
"""

import base64

from twisted.cred.checkers import AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from exmta.auth import throttle
from exmta.auth.checkers import WrongPassword
from exmta.auth.hashing import VerificationDropped, VerifierBusy
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect

ORG = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com
UserPrincipalName = kim@fabrikam.com

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:25
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = BasicAuth
PermissionGroups = ExchangeUsers
AuthTarpitInterval = 00:00:05
MaxLogonFailures = 3
"""

TARPIT = 5
ATTACKER, OTHER = "127.0.0.9", "127.0.0.8"


def plain(user, password):
    return b"AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0" + password) + b"\r\n"


RIGHT = plain(b"kim@fabrikam.com", b"Kim-Pa55")
WRONG = plain(b"kim@fabrikam.com", b"guess")


@implementer(ICredentialsChecker)
class ControlledChecker:
    """
    Knows kim@fabrikam.com; each check waits until the test answers it.
    A check is "started" (as if a thread of the pool had taken it) or
    waiting: cancelled while waiting it is dropped, as the pool drops it.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self):
        self.checks = []
        self.startChecks = True

    def requestAvatarId(self, credentials):
        check = {"credentials": credentials, "started": self.startChecks}

        def cancel(deferred):
            if not check["started"]:
                deferred.errback(VerificationDropped())

        check["deferred"] = defer.Deferred(cancel)
        self.checks.append(check)
        return check["deferred"]

    def answerAll(self):
        checks, self.checks = self.checks, []
        for check in checks:
            if check["deferred"].called:
                continue  # cancelled
            credentials = check["credentials"]
            if credentials.username != b"kim@fabrikam.com":
                check["deferred"].errback(UnauthorizedLogin())
            elif credentials.password != b"Kim-Pa55":
                check["deferred"].errback(WrongPassword())
            else:
                check["deferred"].callback("kim@fabrikam.com")


class AuthTests(SynchronousTestCase):
    def setUp(self):
        organization = parseOrganization(ORG, "/nonexistent/org.ini")
        connector = organization.receiveConnectors[0]
        self.clock = MemoryReactorClock()
        self.checker = ControlledChecker()
        portal = Portal(
            ConnectorRealm(organization, connector), [AllowAnonymousAccess(), self.checker]
        )
        self.factory = ReceiveFactory(
            organization, organization.transportServers["HubA"], {connector.identity: portal},
            None, Resolver(organization), None, self.clock,
        )
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def session(self, peer):
        protocol, transport = connect(self.factory, peer=(peer, 40000))
        protocol.dataReceived(b"EHLO c\r\n")
        transport.takeReplies()
        return protocol, transport

    def logIn(self, peer, command):
        """
        @return: the replies to C{command} in a new session from C{peer},
            checks answered and the tarpit waited out.
        """
        protocol, transport = self.session(peer)
        protocol.dataReceived(command)
        self.checker.answerAll()
        self.clock.advance(TARPIT)
        return transport.takeReplies()

    def failFrom(self, peer, count):
        """
        Fail C{count} logons from C{peer}, each in a session of its own,
        all at the same time (so that none has drained when the last ends).
        """
        sessions = [self.session(peer) for _ in range(count)]
        for protocol, _ in sessions:
            protocol.dataReceived(WRONG)
        self.checker.answerAll()
        self.clock.advance(TARPIT)
        for _, transport in sessions:
            self.assertEqual(transport.takeReplies(), ["535 5.7.3 Authentication unsuccessful"])

    def hangUpWhileChecking(self, peer, command):
        protocol, transport = self.session(peer)
        protocol.dataReceived(command)
        protocol.connectionLost(Failure(ConnectionError("gone")))
        self.checker.answerAll()
        self.assertEqual(transport.takeReplies(), [])

    def test_failuresOfManySessionsRefuseTheirSource(self):
        self.failFrom(ATTACKER, throttle.SOURCE_LIMIT)
        [refusal] = self.logIn(ATTACKER, RIGHT)
        self.assertTrue(refusal.startswith("454 4.7.0 "), refusal)
        self.assertEqual(self.checker.checks, [])
        self.assertEqual(self.logIn(OTHER, RIGHT), ["235 2.7.0 Authentication successful"])

    def test_refusalsAreTarpittedAndCountTowardsMaxLogonFailures(self):
        self.failFrom(ATTACKER, throttle.SOURCE_LIMIT)
        protocol, transport = self.session(ATTACKER)
        for _ in range(2):
            protocol.dataReceived(RIGHT)
            self.clock.advance(TARPIT - 0.1)
            self.assertEqual(transport.takeReplies(), [])
            self.clock.advance(0.1)
            self.assertEqual(transport.takeReplies()[0][:3], "454")
        protocol.dataReceived(RIGHT)
        self.clock.advance(TARPIT)
        replies = transport.takeReplies()
        self.assertEqual([line[:9] for line in replies], ["454 4.7.0", "421 4.7.0"])
        self.assertTrue(transport.disconnecting)

    def test_hangingUpWhileTheCheckRunsCountsIt(self):
        for _ in range(throttle.SOURCE_LIMIT):
            self.hangUpWhileChecking(ATTACKER, RIGHT)
        [refusal] = self.logIn(ATTACKER, RIGHT)
        self.assertTrue(refusal.startswith("454 4.7.0 "), refusal)

    def test_hangingUpBeforeTheCheckStartsDropsIt(self):
        self.checker.startChecks = False
        for _ in range(3 * throttle.SOURCE_LIMIT):
            self.hangUpWhileChecking(ATTACKER, WRONG)
        self.assertEqual(self.logIn(ATTACKER, RIGHT), ["235 2.7.0 Authentication successful"])

    def test_hangingUpDuringTheTarpitChangesNothing(self):
        protocol, transport = self.session(ATTACKER)
        protocol.dataReceived(WRONG)
        self.checker.answerAll()
        protocol.connectionLost(Failure(ConnectionError("gone")))
        self.clock.advance(TARPIT)
        self.assertEqual(transport.takeReplies(), [])
        self.failFrom(ATTACKER, throttle.SOURCE_LIMIT - 1)
        self.assertEqual(self.logIn(ATTACKER, RIGHT)[0][:3], "454")

    def test_aBusyPoolIsATemporaryFailureAtOnce(self):
        self.checker.requestAvatarId = lambda credentials: defer.fail(VerifierBusy())
        protocol, transport = self.session(OTHER)
        protocol.dataReceived(RIGHT)
        self.assertEqual(
            transport.takeReplies(),
            ["454 4.7.0 Temporary authentication failure: server busy, try again later"],
        )

    def failureLog(self):
        return [
            (event["user"], event["failures"])
            for event in self.events
            if event.get("log_format", "").startswith("failed login")
        ]

    def test_onlyAccountsAreNamedInTheLog(self):
        self.logIn(OTHER, WRONG)
        self.logIn(OTHER, plain(b"Secret-Pa55word", b"Secret-Pa55word"))
        self.assertEqual(
            self.failureLog(),
            [("kim@fabrikam.com", 1), ("a name not known as an account", 1)],
        )
        self.assertNotIn("Secret-Pa55word", repr(self.events))
