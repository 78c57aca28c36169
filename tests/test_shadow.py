"""
Shadow redundancy's pieces (L{exmta.queue.shadow}): the spool keeps
shadows across a restart, the primary server's discard notifications, and
the receive protocol's XSHADOW and XQDISCARD, offered only to Exchange
servers.  The conversation between two servers is
tests/e2e/test_shadow_redundancy.py.
"""

import json
import os
from dataclasses import replace

from twisted.cred.checkers import AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import IAnonymous
from twisted.cred.portal import Portal
from twisted.internet import defer, reactor
from twisted.internet.defer import fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from exmta.auth import permissions
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.config.model import TransportConfig
from exmta.envelope import NextHop, QueuedMessage, QueuedRecipient, ShadowedOutcomes
from exmta.errors import ConnectionFailure
from exmta.interfaces import IRemoteDelivery, IShadowRedundancy
from exmta.queue.shadow import DiscardNotifications
from exmta.queue.spool import DELIVERED, SHADOW, Spool
from exmta.queue.views import messageIdentity, queueName, queueRows
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect
from exmta.worker import WorkerDiscards
from tests.test_manager import FakeRemoteDelivery, ManagerTestCase
from tests.test_protocol import ControlledQueue
from tests.test_queue import MESSAGE, SESSION, envelope, temporaryFolder

SHADOW_ID = "00061A2B3C4D5EA1B2C3D4E5"

ORG = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[TransportServer HubB]
Fqdn = hubb.fabrikam.com

[AcceptedDomain fabrikam.com]

[AcceptedDomain contoso.com]
DomainType = InternalRelay

[ReceiveConnector Servers HubB]
Server = HubB
Bindings = 127.0.0.1:25
RemoteIPRanges = 127.0.0.0/8
PermissionGroups = ExchangeServers, AnonymousUsers
"""


class SpoolShadowTests(TestCase):
    def setUp(self):
        self.path = os.path.join(temporaryFolder(self), "queue")
        self.spool = Spool.open(self.path, reactor)
        self.addCleanup(lambda: self.spool.close())

    @defer.inlineCallbacks
    def test_shadowKeptAcrossRestart(self):
        """
        A message whose recipients are all C{Shadow} stays queued, also
        after a restart, with the instance each was handed to, until they
        are C{Delivered}; the queue's instance stays the same.  The
        recipient's C{shadowInstance} leaves the format's version 2.
        """
        queueId = yield self.spool.enqueue(envelope("kim@contoso.com"), SESSION, MESSAGE)
        queued = self.spool.message(queueId)
        handed = replace(
            queued.recipients[0], status=SHADOW, nextHop="HubB", shadowInstance="ab" * 16
        )
        shadow = replace(queued, recipients=(handed,))
        yield self.spool.update(shadow)
        with open(os.path.join(self.path, "messages", queueId + ".json"), "rb") as document:
            self.assertEqual(json.load(document)["version"], 2)
        instance = self.spool.instance
        self.spool.close()
        self.spool = Spool.open(self.path, reactor)
        self.assertEqual(self.spool.message(queueId), shadow)
        self.assertEqual(self.spool.instance, instance)
        delivered = replace(
            shadow, recipients=(replace(shadow.recipients[0], status=DELIVERED),)
        )
        yield self.spool.update(delivered)
        self.assertEqual(self.spool.messages(), [])

    @defer.inlineCallbacks
    def test_shadowServerRecorded(self):
        """
        XSHADOW's server and queue id are kept in C{receivedFrom}.
        """
        given = replace(envelope("kim@contoso.com"), shadow=("HubA", SHADOW_ID))
        queueId = yield self.spool.enqueue(given, SESSION, MESSAGE)
        self.spool.close()
        self.spool = Spool.open(self.path, reactor)
        received = self.spool.message(queueId).receivedFrom
        self.assertEqual((received["shadowServer"], received["shadowId"]), ("HubA", SHADOW_ID))


class DiscardNotificationTests(TestCase):
    @defer.inlineCallbacks
    def test_notifiedOnceSettled(self):
        """
        A message that came with XSHADOW gives its shadow server a discard
        notification once nothing of it is left to deliver, kept on disk
        until XQDISCARD takes it.
        """
        path = os.path.join(temporaryFolder(self), "queue")
        spool = Spool.open(path, reactor)
        self.addCleanup(spool.close)
        given = replace(envelope("kim@contoso.com"), shadow=("HubA", SHADOW_ID))
        queued = spool.message((yield spool.enqueue(given, SESSION, MESSAGE)))
        discards = DiscardNotifications(path, spool.instance)
        discards.recorded(queued)
        self.assertEqual(discards.take("HubA"), [])
        settled = replace(queued, recipients=(replace(queued.recipients[0], status=DELIVERED),))
        discards.recorded(settled)
        again = DiscardNotifications(path, spool.instance)
        self.assertEqual(again.take("HubA"), [SHADOW_ID])
        self.assertEqual(again.take("HubA"), [])
        self.assertEqual(DiscardNotifications(path, spool.instance).take("HubA"), [])


@implementer(ICredentialsChecker)
class AnonymousServer:
    """
    Logs every session in as an Exchange server, as a certificate would.
    """

    credentialInterfaces = (IAnonymous,)

    def requestAvatarId(self, credentials):
        return defer.succeed(permissions.HUB_TRANSPORT_SERVERS)


class ProtocolTests(SynchronousTestCase):
    def factory(self, checker):
        organization = parseOrganization(ORG, "/nonexistent/org.ini")
        connector = organization.receiveConnectors[0]
        portal = Portal(ConnectorRealm(organization, connector), [checker])
        self.queue = ControlledQueue()
        factory = ReceiveFactory(
            organization, organization.transportServers["HubB"], {connector.identity: portal},
            self.queue, Resolver(organization), None, MemoryReactorClock(),
        )
        path = temporaryFolder(self)
        factory.shadowDiscards = self.discards = DiscardNotifications(path, "ab" * 16)
        return factory

    def session(self, checker):
        protocol, transport = connect(self.factory(checker))
        transport.takeReplies()

        def say(data):
            protocol.dataReceived(data)
            return transport.takeReplies()

        return say

    def test_notOfferedToOthers(self):
        """
        A session that is not an Exchange server's is not offered XSHADOW,
        and may use neither the parameter nor XQDISCARD.
        """
        say = self.session(AllowAnonymousAccess())
        self.assertFalse(any("XSHADOW" in line for line in say(b"EHLO c\r\n")))
        self.assertEqual(
            say(b"XQDISCARD HubA\r\n"), ["503 5.7.1 XQDISCARD is not offered to this session"]
        )
        self.assertEqual(
            say(f"MAIL FROM:<a@contoso.com> XSHADOW=HubA:{SHADOW_ID}\r\n".encode()),
            ["555 5.5.4 Unsupported parameter XSHADOW"],
        )

    def test_exchangeServer(self):
        """
        An Exchange server's session is offered XSHADOW with the queue's
        instance; its XSHADOW= names the shadow, and XQDISCARD takes the
        discard notifications due to a server of the organization.
        """
        say = self.session(AnonymousServer())
        self.assertEqual(say(b"EHLO hubb.fabrikam.com\r\n")[-1], "250 XSHADOW " + "ab" * 16)
        self.assertEqual(
            say(b"MAIL FROM:<a@contoso.com> XSHADOW=HubA:bad\r\n"),
            ["501 5.5.4 Invalid XSHADOW parameter; XSHADOW=<server>:<queue id>"],
        )
        self.assertEqual(
            say(f"MAIL FROM:<a@contoso.com> XSHADOW=huba:{SHADOW_ID}\r\n".encode()),
            ["250 2.1.0 Sender OK"],
        )
        say(b"RCPT TO:<kim@contoso.com>\r\nDATA\r\n")
        say(b"Subject: x\r\n\r\nHi\r\n.\r\n")
        [(given, _, committed)] = self.queue.pending
        self.assertEqual(given.shadow, ("HubA", SHADOW_ID))
        committed.callback("00061A2B3C4D5EA1B2C3D4F1")
        self.assertEqual(say(b"XQDISCARD Nobody\r\n")[-1],
                         "501 5.5.4 Syntax: XQDISCARD <TransportServer of the organization>")
        self.discards.recorded(
            QueuedMessage(
                "00061A2B3C4D5EA1B2C3D4F0", "a@contoso.com",
                (QueuedRecipient("kim@contoso.com", DELIVERED),), 0.0, 10,
                {"shadowServer": "HubA", "shadowId": SHADOW_ID},
            )
        )
        self.assertEqual(
            say(b"XQDISCARD HubA\r\n"),
            [f"250-2.0.0 {SHADOW_ID}", "250 2.0.0 1 discard notifications"],
        )


    def test_discardsUnavailable(self):
        """
        An XQDISCARD whose notifications cannot be had (a receive worker's
        main process is gone) is answered 451, not dropped.
        """
        say = self.session(AnonymousServer())
        say(b"EHLO hubb.fabrikam.com\r\n")
        self.discards.take = lambda server: fail(OSError("gone"))
        self.assertEqual(
            say(b"XQDISCARD HubA\r\n"),
            ["451 4.3.2 Discard notifications are not available now"],
        )


class FakeLink:
    def __init__(self):
        self.up = True
        self.sent = []

    def send(self, kind, data):
        self.sent.append((kind, data))


class WorkerDiscardsTests(SynchronousTestCase):
    def test_askedOfTheMainProcess(self):
        """
        A receive worker offers its queue's instance, asks its main process
        for the notifications of each XQDISCARD and takes the answers in
        order; once the main process is gone, the questions fail.
        """
        path = temporaryFolder(self)
        with open(os.path.join(path, "instance"), "w") as handle:
            handle.write("ab" * 16 + "\n")
        link = FakeLink()
        discards = WorkerDiscards(path, link)
        self.assertEqual(discards.instance, "ab" * 16)
        first, second = discards.take("HubA"), discards.take("HubC")
        self.assertEqual(link.sent, [(b"D", b"HubA"), (b"D", b"HubC")])
        discards.answered([SHADOW_ID])
        discards.answered([])
        self.assertEqual(self.successResultOf(first), [SHADOW_ID])
        self.assertEqual(self.successResultOf(second), [])
        third = discards.take("HubA")
        discards.abandon()
        self.failureResultOf(third)
        link.up = False
        self.failureResultOf(discards.take("HubA"))

    def test_notificationsMadeAreToldToTheMainProcess(self):
        """
        A discard notification the worker's own queue makes (a message
        that came with XSHADOW has no recipient left to deliver) is told
        to the main process, which holds the server's notifications; a
        message still to deliver makes none.
        """
        path = temporaryFolder(self)
        link = FakeLink()
        discards = WorkerDiscards(path, link)
        origin = {"connector": "Default HubB", "shadowServer": "HubA", "shadowId": SHADOW_ID}
        waiting = QueuedMessage(
            queueId="0" * 24, mailFrom="", recipients=(QueuedRecipient("kim@fabrikam.com"),),
            arrivalTime=0.0, size=1, receivedFrom=origin,
        )
        discards.recorded(waiting)
        self.assertEqual(link.sent, [])
        discards.recorded(replace(
            waiting, recipients=(QueuedRecipient("kim@fabrikam.com", DELIVERED),)
        ))
        self.assertEqual(link.sent, [(b"S", b"HubA " + SHADOW_ID.encode("ascii"))])


RELAY = NextHop("SmtpRelayWithinAdSite", "ToContoso", server="HubB")
INSTANCE = "cd" * 16


@implementer(IRemoteDelivery)
class ShadowingRemoteDelivery(FakeRemoteDelivery):
    """
    A send side whose next hop takes every message under shadow redundancy,
    and whose heartbeat polls answer what the test says.
    """

    def __init__(self):
        super().__init__()
        self.instance = INSTANCE
        self.discarded = []
        self.polls = []
        self.down = False

    def send(self, nextHop, queued, recipients, message):
        outcomes = super().send(nextHop, queued, recipients, message).result
        return succeed(ShadowedOutcomes(outcomes, self.instance))

    def discardNotifications(self, server):
        self.polls.append(server)
        if self.down:
            return fail(ConnectionFailure.of(451, "4.4.1", "Connection refused"))
        discarded, self.discarded = self.discarded, []
        return succeed((self.instance, discarded))


class ShadowManagerTests(ManagerTestCase):
    """
    The queue manager keeps shadows, discards them on notice, and resubmits
    them when the heartbeat fails or the primary lost its queue.
    """

    def setUp(self):
        super().setUp()
        self.remote = ShadowingRemoteDelivery()
        self.routes["contoso.com"] = RELAY
        self.settings = TransportConfig(
            shadowHeartbeatTimeoutInterval=10, shadowHeartbeatRetryCount=3
        )

    def start(self, **kwargs):
        return super().start(transportConfig=self.settings, **kwargs)

    def statuses(self, queueId):
        queued = self.spool.message(queueId)
        return None if queued is None else [r.status for r in queued.recipients]

    async def test_keptUntilDiscarded(self):
        """
        A message the next hop took with XSHADOW stays queued, C{Shadow},
        in the Shadow Redundancy queue, also across a restart, until a
        heartbeat brings its discard notification.
        """
        verifyObject(IShadowRedundancy, self.start().shadows)
        queueId = await self.submit("kim@contoso.com")
        self.assertEqual(self.statuses(queueId), [SHADOW])
        await self.restart()
        [row] = [r for r in queueRows(self.queue.administration.state())
                 if r["DeliveryType"] == "ShadowRedundancy"]
        self.assertEqual((row["Identity"], row["NextHopDomain"], row["MessageCount"]),
                         ("HubA\\Shadow\\1", "HubB", 1))
        await self.advance(10)
        self.assertEqual(self.statuses(queueId), [SHADOW])
        self.remote.discarded = [queueId]
        await self.advance(10)
        self.assertIsNone(self.statuses(queueId))
        self.assertEqual(len(self.remote.calls), 1)

    async def test_resubmittedAfterHeartbeatTimeout(self):
        """
        After ShadowHeartbeatRetryCount failed polls in a row the shadow is
        resubmitted: sent again, tracked RESUBMIT.
        """
        self.start()
        queueId = await self.submit("kim@contoso.com")
        self.remote.down = True
        await self.advance(10)
        await self.advance(10)
        self.assertEqual(len(self.remote.calls), 1)
        await self.advance(10)
        # The resubmitted recipients are due at once.
        await self.advance(0)
        self.assertEqual(len(self.remote.calls), 2)
        self.assertEqual([queued for queued, _ in self.tracking.of("RESUBMIT")], [queueId])

    async def test_resubmittedWhenThePrimaryLostItsQueue(self):
        """
        A heartbeat answered by another instance of the primary's queue
        resubmits the shadows handed to the old one at once.
        """
        self.start()
        await self.submit("kim@contoso.com")
        self.remote.instance = "ef" * 16
        await self.advance(10)
        # The resubmitted recipients are due at once.
        await self.advance(0)
        self.assertEqual(len(self.remote.calls), 2)

    async def test_lostQueueFoundAfterRestart(self):
        """
        The instance a shadow was handed to is kept in the spool: when this
        server restarts and the primary meanwhile lost its queue, the first
        heartbeat's new instance still resubmits the shadow, and a
        resubmitted recipient keeps no instance.
        """
        self.start()
        queueId = await self.submit("kim@contoso.com")
        [recipient] = self.spool.message(queueId).recipients
        self.assertEqual((recipient.status, recipient.shadowInstance), (SHADOW, INSTANCE))
        await self.restart()
        self.remote.instance = "ef" * 16
        await self.advance(10)
        # The resubmitted recipients are due at once.
        await self.advance(0)
        self.assertEqual(len(self.remote.calls), 2)
        self.assertEqual([queued for queued, _ in self.tracking.of("RESUBMIT")], [queueId])
        [recipient] = self.spool.message(queueId).recipients
        self.assertEqual((recipient.status, recipient.shadowInstance), (SHADOW, "ef" * 16))

    async def test_notShadowedKeepsDelivered(self):
        """
        A next hop that did not take XSHADOW leaves nothing behind.
        """
        self.remote = FakeRemoteDelivery()
        self.start()
        queueId = await self.submit("kim@contoso.com")
        self.assertIsNone(self.statuses(queueId))


class IdentityTests(SynchronousTestCase):
    def test_shadowQueueIdentities(self):
        """
        A Shadow Redundancy queue's name has a backslash, and its identities
        are read whole.
        """
        self.assertEqual(queueName("HubA\\Shadow\\1", "HubA"), "Shadow\\1")
        self.assertEqual(queueName("shadow\\2", "HubA"), "Shadow\\2")
        self.assertEqual(
            messageIdentity(f"HubA\\Shadow\\1\\{SHADOW_ID}", "HubA"), ("Shadow\\1", SHADOW_ID)
        )
