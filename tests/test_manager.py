"""
Tests for L{exmta.queue.manager}: routing to next hops, outcomes, the retry
schedule, expiry and delay notifications, restarts, with a fake send side
and an injected clock.
"""

import email
import email.policy
import json
import os
from dataclasses import dataclass, replace

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from exmta.config import parseOrganization
from exmta.deliver import MaildirDeliveryAgent
from exmta.envelope import NextHop, QueuedRecipient
from exmta.errors import ConnectionFailure, PermanentFailure, TransientFailure
from exmta.interfaces import (
    IMessageTrackingLog,
    INextHops,
    IQueueAdministration,
    IRemoteDelivery,
    IRoutingEvents,
    ISenderNotifications,
)
from exmta.queue.manager import QueueManager
from exmta.queue.spool import DELIVERED, FAILED, READY, Spool
from exmta.queue.manager import (
    RECIPIENT_NOT_FOUND,
    UNABLE_TO_ROUTE,
)
from exmta.queue.notifications import MESSAGE_EXPIRED
from exmta.routing import Resolver
from tests.test_queue import SESSION, envelope, files, temporaryFolder

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Bob]
PrimarySmtpAddress = bob@fabrikam.com

[Mailbox Alice]
PrimarySmtpAddress = alice@fabrikam.com
"""

MESSAGE = (
    b"Received: from client\r\nMessage-ID: <m1@fabrikam.com>\r\nSubject: Quarterly report\r\n"
    b"\r\nHello\r\n"
)

# 2026-01-01T00:00:00Z: a realistic time for arrival and DSN dates.
START = 1767225600.0

SMART_HOST = NextHop("SmartHostConnectorDelivery", "ToInternet")
ROUTES = {
    "example.org": SMART_HOST,
    "example.net": SMART_HOST,
    "contoso.com": SMART_HOST,
    "tailspin.com": NextHop("DnsConnectorDelivery", "ByMX", domain="tailspin.com"),
}

REFUSED = ConnectionFailure.of(421, "4.4.1", "Connection refused")
MAILBOX_FULL = TransientFailure.of(452, "4.2.2", "Mailbox full")
NO_SUCH_USER = PermanentFailure.of(550, "5.1.1", "No such user here")


@dataclass(frozen=True)
class Call:
    nextHop: NextHop
    queueId: str
    mailFrom: str
    recipients: tuple
    message: bytes


@implementer(IRemoteDelivery)
class FakeRemoteDelivery:
    """
    A send side answering each recipient from C{outcomes} (delivered when
    not there), recording every call.
    """

    def __init__(self):
        self.calls = []
        self.outcomes = {}

    def close(self):
        return succeed(None)

    def send(self, nextHop, queued, recipients, message):
        self.calls.append(Call(nextHop, queued.queueId, queued.mailFrom, tuple(recipients), message))
        return succeed({address: self.outcomes.get(address) for address in recipients})


@implementer(IMessageTrackingLog)
class FakeTrackingLog:
    def __init__(self):
        self.events = []

    def track(self, eventId, queued=None, **fields):
        self.events.append((eventId, queued and queued.queueId, fields))

    def of(self, eventId):
        return [(queueId, fields) for (kind, queueId, fields) in self.events if kind == eventId]


def parseReport(data):
    """
    @return: (the notification, its per-message fields, its per-recipient
        field groups, its headers part), checking its MIME structure.
    """
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/report", message.get_content_type()
    assert message.get_param("report-type") == "delivery-status"
    human, status, headers = message.iter_parts()
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"
    perMessage, *perRecipient = status.get_payload()
    return message, perMessage, perRecipient, headers


class ManagerTestCase(TestCase):
    def setUp(self):
        folder = temporaryFolder(self)
        self.queuePath = os.path.join(folder, "queue")
        self.mailboxes = os.path.join(folder, "mailboxes")
        self.organization = parseOrganization(ORGANIZATION, os.path.join(folder, "org.ini"))
        self.server = self.organization.transportServers["HubA"]
        self.clock = Clock()
        self.clock.advance(START)
        self.remote = FakeRemoteDelivery()
        self.tracking = FakeTrackingLog()
        self.routes = dict(ROUTES)
        self.spool = Spool.open(self.queuePath, reactor, self.clock)
        self.addCleanup(lambda: self.spool.close())
        self.queue = None

    def route(self, address):
        return self.routes.get(address.domain)

    def start(self, **kwargs):
        arguments = dict(
            server=self.server,
            postmaster=self.organization.postmasterAddressOf("HubA"),
            route=self.route,
            remoteDelivery=self.remote,
            trackingLog=self.tracking,
        )
        arguments.update(kwargs)
        self.queue = QueueManager(
            self.spool,
            Resolver(self.organization),
            MaildirDeliveryAgent(self.mailboxes, reactor),
            self.clock,
            **arguments,
        )
        self.queue.startService()
        queue = self.queue
        self.addCleanup(lambda: queue.running and queue.stopService())
        return self.queue

    async def restart(self, **kwargs):
        """
        Stop the manager and the spool, and start both again over the same
        folder, as the next process would.
        """
        if self.queue.running:
            await self.queue.stopService()
        self.spool.close()
        self.spool = Spool.open(self.queuePath, reactor, self.clock)
        self.start(**kwargs)
        await self.queue.whenIdle()

    async def submit(self, *recipients, sender="alice@fabrikam.com", message=MESSAGE):
        queueId = await self.spool.enqueue(envelope(*recipients, sender=sender), SESSION, message)
        await self.queue.whenIdle()
        return queueId

    async def advance(self, seconds):
        self.clock.advance(seconds)
        await self.queue.whenIdle()

    def queued(self, queueId):
        for queued in self.spool.messages():
            if queued.queueId == queueId:
                return queued
        return None

    def recipient(self, queueId, address):
        for recipient in self.queued(queueId).recipients:
            if recipient.address == address:
                return recipient
        raise KeyError(address)

    def mailbox(self, folder="alice@fabrikam.com"):
        new = os.path.join(self.mailboxes, folder, "new")
        if not os.path.isdir(new):
            return []
        contents = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as handle:
                contents.append(handle.read())
        return contents

    def reports(self, folder="alice@fabrikam.com"):
        """
        @return: the notifications in a local sender's mailbox, parsed.
        """
        return [parseReport(data) for data in self.mailbox(folder)]


class HangingDeliveryAgent:
    """
    A delivery agent whose first delivery never answers; later ones
    deliver.
    """

    name = "Hanging"

    def __init__(self):
        self.calls = 0
        self.called = Deferred()

    def deliver(self, queued, mailboxes, message):
        self.calls += 1
        if self.calls == 1:
            self.called.callback(None)
            return Deferred()
        return succeed(dict.fromkeys(mailboxes))


class LocalDeliveryTimeoutTests(ManagerTestCase):
    async def test_silentDeliveryAgentDeferred(self):
        """
        A delivery agent that never answers holds its delivery slot only
        until the timeout: the recipient is deferred with 451 4.3.0 and
        delivered at the retry, through the one slot there is.
        """
        self.start(maxConcurrentMailboxDeliveries=1, localDeliveryTimeout=60)
        agent = self.queue.deliveryAgent = HangingDeliveryAgent()
        await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        await agent.called
        # Let the manager finish the call (and set its timeout) first.
        await deferLater(reactor, 0, lambda: None)
        await self.advance(60)
        (queued,) = self.spool.messages()
        (recipient,) = queued.recipients
        self.assertEqual(recipient.status, READY)
        self.assertEqual(
            recipient.lastError, "451 4.3.0 Hanging delivery failed: no answer within 60 s"
        )
        await self.advance(recipient.nextRetryTime - self.clock.seconds())
        self.assertEqual(agent.calls, 2)
        self.assertEqual(self.spool.messages(), [])


class NextHopTests(ManagerTestCase):
    async def test_sameNextHopOneTransaction(self):
        """
        Recipients of one message that go to the same next hop travel in
        one send call; each records the next hop it went to.
        """
        self.start()
        queueId = await self.submit("carol@example.org", "dave@example.net")
        (call,) = self.remote.calls
        self.assertEqual(call.nextHop, SMART_HOST)
        self.assertEqual(call.queueId, queueId)
        self.assertEqual(call.mailFrom, "alice@fabrikam.com")
        self.assertEqual(call.recipients, ("carol@example.org", "dave@example.net"))
        self.assertEqual(call.message, MESSAGE)
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(files(os.path.join(self.queuePath, "messages")), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_differentNextHops(self):
        """
        Recipients routed to different next hops travel in one call per
        next hop; local ones go to their mailboxes meanwhile.
        """
        self.start()
        await self.submit("carol@example.org", "erin@tailspin.com", "bob@fabrikam.com", "dave@example.net")
        calls = sorted(self.remote.calls, key=lambda c: c.nextHop.key)
        self.assertEqual(
            [(c.nextHop.key, c.recipients) for c in calls],
            [
                ("ByMX:tailspin.com", ("erin@tailspin.com",)),
                ("ToInternet", ("carol@example.org", "dave@example.net")),
            ],
        )
        self.assertEqual(len(self.mailbox("bob@fabrikam.com")), 1)
        self.assertEqual(self.spool.messages(), [])

    async def test_outcomesPerRecipient(self):
        """
        One transaction, three answers: the delivered recipient is done, the
        refused one fails and its sender is told, the one told to try later
        is tried again after MessageRetryInterval, alone.
        """
        self.remote.outcomes = {"dave@example.net": NO_SUCH_USER, "erin@example.org": MAILBOX_FULL}
        self.start()
        queueId = await self.submit("carol@example.org", "dave@example.net", "erin@example.org")
        self.assertEqual(
            self.queued(queueId).recipients,
            (
                QueuedRecipient("carol@example.org", DELIVERED, nextHop="ToInternet"),
                QueuedRecipient("dave@example.net", FAILED, "550 5.1.1 No such user here", nextHop="ToInternet"),
                QueuedRecipient(
                    "erin@example.org", READY, "452 4.2.2 Mailbox full",
                    attempts=1, nextRetryTime=START + 60, nextHop="ToInternet",
                ),
            ),
        )
        ((_, perMessage, (dave,), _),) = self.reports()
        self.assertEqual(dave["Final-Recipient"], "rfc822; dave@example.net")
        self.assertEqual(dave["Action"], "failed")
        self.assertEqual(dave["Status"], "5.1.1")
        self.assertEqual(dave["Diagnostic-Code"], "smtp; 550 5.1.1 No such user here")

        await self.advance(59)
        self.assertEqual(len(self.remote.calls), 1)
        del self.remote.outcomes["erin@example.org"]
        await self.advance(1)
        self.assertEqual(self.remote.calls[-1].recipients, ("erin@example.org",))
        self.assertEqual(self.spool.messages(), [])

    async def test_unroutable(self):
        """
        A remote recipient no send connector serves fails with 5.4.4, and
        the sender is told.
        """
        self.start()
        queueId = await self.submit("carol@nowhere.test", "dave@example.org")
        self.assertEqual([c.recipients for c in self.remote.calls], [("dave@example.org",)])
        self.assertIsNone(self.queued(queueId))
        ((message, _, (carol,), _),) = self.reports()
        self.assertEqual(carol["Final-Recipient"], "rfc822; carol@nowhere.test")
        self.assertEqual(carol["Status"], "5.4.4")
        self.assertEqual(carol["Diagnostic-Code"], "smtp; " + UNABLE_TO_ROUTE)
        self.assertEqual(message["Subject"], "Undeliverable: Quarterly report")
        (fail,) = self.tracking.of("FAIL")
        self.assertEqual(fail[1]["source"], "ROUTING")
        self.assertEqual(fail[1]["recipientStatus"], UNABLE_TO_ROUTE)

    async def test_unknownLocalRecipient(self):
        self.start()
        await self.submit("gone@fabrikam.com")
        ((_, _, (gone,), _),) = self.reports()
        self.assertEqual(gone["Status"], "5.1.1")
        self.assertEqual(gone["Diagnostic-Code"], "smtp; " + RECIPIENT_NOT_FOUND)

    async def test_remoteMta(self):
        """
        A failure that names the server that gave it puts it in the report.
        """
        refusal = PermanentFailure.of(550, "5.7.1", "Relaying denied")
        refusal.remoteMta = "mx1.example.org"
        self.remote.outcomes = {"carol@example.org": refusal}
        self.start()
        await self.submit("carol@example.org")
        ((_, _, (carol,), _),) = self.reports()
        self.assertEqual(carol["Remote-MTA"], "dns; mx1.example.org")

    async def test_sendErrback(self):
        """
        A send side that errbacks (against its contract) costs the
        recipients a transient failure, never the message.
        """

        def broken(*arguments):
            return fail(RuntimeError("bug"))

        self.patch(self.remote, "send", broken)
        self.start()
        queueId = await self.submit("carol@example.org")
        carol = self.recipient(queueId, "carol@example.org")
        self.assertEqual(carol.status, READY)
        self.assertTrue(carol.lastError.startswith("451 4.4.0 Sending to ToInternet failed"))
        self.assertEqual(carol.nextRetryTime, START + 60)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_missingOutcome(self):
        self.patch(self.remote, "send", lambda *arguments: succeed({}))
        self.start()
        queueId = await self.submit("carol@example.org")
        self.assertEqual(self.recipient(queueId, "carol@example.org").attempts, 1)

    def test_routeWithoutSendSide(self):
        with self.assertRaises(ValueError):
            QueueManager(self.spool, None, None, self.clock, route=self.route)

    def test_collaborators(self):
        """
        The manager holds its collaborators by their interfaces.
        """
        manager = self.start()
        self.assertTrue(verifyObject(INextHops, manager.hops))
        self.assertTrue(verifyObject(ISenderNotifications, manager.notifications))
        self.assertTrue(verifyObject(IRoutingEvents, manager.routingEvents))
        self.assertTrue(verifyObject(IQueueAdministration, manager.administration))


class RetryTests(ManagerTestCase):
    async def sendTimes(self, until):
        """
        Advance the clock second by second up to C{until} seconds from the
        start, noting when the send side is called.
        """
        times = []
        seen = len(self.remote.calls)
        while self.clock.seconds() < START + until:
            delayed = [c.getTime() for c in self.clock.getDelayedCalls()]
            await self.advance(min(delayed) - self.clock.seconds())
            if len(self.remote.calls) > seen:
                seen = len(self.remote.calls)
                times.append(self.clock.seconds() - START)
        return times

    async def test_connectionFailureSchedule(self):
        """
        A next hop that stays down is tried again TransientFailureRetryCount
        times after TransientFailureRetryInterval, then every
        OutboundConnectionFailureRetryInterval; every retry time is on disk
        before it is waited for.
        """
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        queueId = await self.submit("carol@example.org")
        carol = self.recipient(queueId, "carol@example.org")
        self.assertEqual((carol.attempts, carol.nextRetryTime), (1, START + 300))
        times = await self.sendTimes(3 * 3600)
        self.assertEqual(times[:8], [300, 600, 900, 1200, 1500, 1800, 2400, 3000])
        self.assertEqual(times[8:12], [3600, 4200, 4800, 5400])
        self.spool.close()
        self.spool = Spool.open(self.queuePath, reactor, self.clock)
        (queued,) = [m for m in self.spool.messages() if m.queueId == queueId]
        (carol,) = queued.recipients
        self.assertEqual(carol.attempts, len(times) + 1)
        self.assertEqual(carol.nextRetryTime, START + times[-1] + 600)
        self.assertEqual(carol.lastError, "421 4.4.1 Connection refused")

    async def test_settingsApply(self):
        """
        The TransportServer's own settings set the schedule; a
        TransientFailureRetryCount of 0 goes straight to the longer interval.
        """
        self.server = replace(
            self.server,
            transientFailureRetryCount=0,
            outboundConnectionFailureRetryInterval=120,
        )
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        await self.submit("carol@example.org")
        self.assertEqual(await self.sendTimes(600), [120, 240, 360, 480, 600])

    async def test_recipientTransientUsesMessageRetryInterval(self):
        """
        A 4xx for the recipient (not the connection) is retried every
        MessageRetryInterval, however often it comes.
        """
        self.remote.outcomes = {"carol@example.org": MAILBOX_FULL}
        self.start()
        queueId = await self.submit("carol@example.org")
        self.assertEqual(await self.sendTimes(600), [60 * n for n in range(1, 11)])
        self.assertEqual(self.recipient(queueId, "carol@example.org").attempts, 11)

    async def test_onlyDueRecipientsTried(self):
        """
        Recipients of one message keep their own retry times.
        """
        self.remote.outcomes = {"carol@example.org": MAILBOX_FULL, "dave@example.org": REFUSED}
        self.start()
        await self.submit("carol@example.org", "dave@example.org")
        await self.advance(60)
        self.assertEqual(self.remote.calls[-1].recipients, ("carol@example.org",))
        await self.advance(240)
        self.assertEqual(
            self.remote.calls[-1].recipients, ("carol@example.org", "dave@example.org")
        )

    async def test_restartResumesRetryTimes(self):
        """
        A restart neither forgets a retry time nor tries early.
        """
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        await self.submit("carol@example.org")
        self.clock.advance(100)
        await self.restart()
        self.assertEqual(len(self.remote.calls), 1)
        await self.advance(199)
        self.assertEqual(len(self.remote.calls), 1)
        await self.advance(1)
        self.assertEqual(len(self.remote.calls), 2)

    async def test_restartAfterRetryTime(self):
        """
        A retry time that passed while the server was down is tried at start.
        """
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        await self.submit("carol@example.org")
        await self.queue.stopService()
        self.clock.advance(1000)
        self.assertEqual(len(self.remote.calls), 1)
        del self.remote.outcomes["carol@example.org"]
        await self.restart()
        self.assertEqual(len(self.remote.calls), 2)
        self.assertEqual(self.spool.messages(), [])

    async def test_spoolWriteFailureRetried(self):
        """
        If the outcome cannot be recorded, the message stays as it was and
        the pass is repeated after MessageRetryInterval.
        """
        self.start()
        realUpdate = self.spool.update
        broken = [True]

        def update(queued):
            if broken:
                broken.pop()
                return fail(OSError(28, "No space left on device"))
            return realUpdate(queued)

        self.patch(self.spool, "update", update)
        queueId = await self.submit("carol@example.org")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(self.recipient(queueId, "carol@example.org").status, READY)
        await self.advance(60)
        self.assertEqual(len(self.remote.calls), 2)
        self.assertEqual(self.spool.messages(), [])

    async def test_stopCancelsTimers(self):
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        await self.submit("carol@example.org")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        await self.queue.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class NotificationTests(ManagerTestCase):
    async def test_expiry(self):
        """
        MessageExpirationTimeout after arrival, recipients still waiting
        fail with 4.4.7, the sender is told with the last reply, and the
        message leaves the queue.
        """
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        queueId = await self.submit("carol@example.org", "bob@fabrikam.com")
        calls = len(self.remote.calls)
        await self.advance(2 * 86400 - 1)
        self.assertIsNotNone(self.queued(queueId))
        self.remote.calls.clear()
        await self.advance(1)
        self.assertEqual(self.remote.calls, [])
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(self.spool.messages(), [])
        self.assertGreater(calls, 0)
        reports = self.reports()
        self.assertEqual(len(reports), 2)  # the delay notice, then this
        (delay, failure) = sorted(reports, key=lambda r: r[0]["Subject"].startswith("Undeliverable"))
        message, perMessage, (carol,), headers = failure
        self.assertEqual(carol["Action"], "failed")
        self.assertEqual(carol["Status"], "4.4.7")
        self.assertEqual(carol["Diagnostic-Code"], "smtp; 421 4.4.1 Connection refused")
        fails = self.tracking.of("FAIL")
        self.assertEqual(fails[-1][1]["recipientStatus"], MESSAGE_EXPIRED)

    async def test_expiryWithoutSendSide(self):
        """
        Without a send side, remote recipients wait until they expire.
        """
        self.start(route=None, remoteDelivery=None)
        queueId = await self.submit("carol@example.org")
        await self.advance(4 * 3600)
        await self.advance(2 * 86400 - 4 * 3600)
        self.assertIsNone(self.queued(queueId))
        subjects = sorted(r[0]["Subject"] for r in self.reports())
        self.assertEqual(
            subjects, ["Delivery delayed: Quarterly report", "Undeliverable: Quarterly report"]
        )

    async def test_delayNotifiedOnce(self):
        """
        DelayNotificationTimeout after arrival the sender of a message still
        waiting hears so once, with the recipients still waiting; that it
        did is on disk.
        """
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        queueId = await self.submit("carol@example.org", "dave@example.org")
        self.remote.outcomes["dave@example.org"] = None
        await self.advance(4 * 3600 - 1)
        self.assertEqual(self.mailbox(), [])
        self.assertEqual(self.recipient(queueId, "dave@example.org").status, DELIVERED)
        await self.advance(1)
        ((message, perMessage, (carol,), headers),) = self.reports()
        self.assertEqual(message["Subject"], "Delivery delayed: Quarterly report")
        self.assertEqual(carol["Final-Recipient"], "rfc822; carol@example.org")
        self.assertEqual(carol["Action"], "delayed")
        self.assertEqual(carol["Status"], "4.4.1")
        self.assertEqual(carol["Will-Retry-Until"], "Sat, 03 Jan 2026 00:00:00 GMT")
        self.assertTrue(self.queued(queueId).delayNotified)
        with open(os.path.join(self.queuePath, "messages", queueId + ".json")) as handle:
            self.assertIs(json.load(handle)["delayNotified"], True)
        await self.advance(3600)
        self.assertEqual(len(self.mailbox()), 1)
        self.assertEqual(len(self.tracking.of("DSN")), 1)

    async def test_delayNotifiedOnceAcrossRestart(self):
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        await self.submit("carol@example.org")
        await self.advance(4 * 3600)
        self.assertEqual(len(self.mailbox()), 1)
        await self.restart()
        await self.advance(6 * 3600)
        self.assertEqual(len(self.mailbox()), 1)

    async def test_delayWhileDown(self):
        """
        A delay notice that fell due while the server was down is sent at
        start, once.
        """
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        await self.submit("carol@example.org")
        await self.queue.stopService()
        self.clock.advance(5 * 3600)
        await self.restart()
        self.assertEqual(len(self.mailbox()), 1)
        await self.advance(600)
        self.assertEqual(len(self.mailbox()), 1)

    async def test_nullSenderNeverNotified(self):
        """
        No notification, failed or delayed, is ever made about a message
        from <>: a failed notification is dropped, not answered.
        """
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER, "dave@example.org": REFUSED}
        self.start()
        queueId = await self.submit("carol@example.org", "dave@example.org", "nobody@nowhere.test", sender="@")
        self.assertEqual(
            [r.status for r in self.queued(queueId).recipients], [FAILED, READY, FAILED]
        )
        await self.advance(2 * 86400)
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(self.tracking.of("DSN"), [])
        self.assertFalse(os.path.exists(self.mailboxes))

    async def test_notificationToRemoteSender(self):
        """
        A notification to a remote sender goes out through its next hop
        from <>; if that fails too, nothing more is sent.
        """
        self.remote.outcomes = {"dave@example.org": NO_SUCH_USER, "carol@contoso.com": NO_SUCH_USER}
        self.start()
        await self.submit("dave@example.org", sender="carol@contoso.com")
        first, notification = self.remote.calls
        self.assertEqual((notification.mailFrom, notification.recipients), ("", ("carol@contoso.com",)))
        message, perMessage, (dave,), headers = parseReport(notification.message)
        self.assertEqual(message["To"], "carol@contoso.com")
        self.assertEqual(dave["Final-Recipient"], "rfc822; dave@example.org")
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(len(self.tracking.of("DSN")), 1)

    async def test_localSenderMailbox(self):
        """
        A notification to a local sender lands in its Maildir from <>, from
        the organization's postmaster, with the original's headers.
        """
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER}
        self.start()
        await self.submit("carol@example.org")
        (stored,) = self.mailbox()
        self.assertTrue(stored.startswith(b"Return-Path: <>\r\nDelivered-To: alice@fabrikam.com\r\n"))
        message, perMessage, (carol,), headers = parseReport(stored)
        self.assertEqual(message["From"], "postmaster@fabrikam.com")
        self.assertEqual(message["To"], "alice@fabrikam.com")
        self.assertEqual(message["In-Reply-To"], "<m1@fabrikam.com>")
        self.assertEqual(message["Auto-Submitted"], "auto-replied")
        self.assertEqual(perMessage["Reporting-MTA"], "dns; huba.fabrikam.com")
        self.assertEqual(perMessage["Arrival-Date"], "Thu, 01 Jan 2026 00:00:00 GMT")
        self.assertEqual(headers.get_payload(decode=True), MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n")

    async def test_externalPostmasterAddress(self):
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER}
        self.start(postmaster="mailer-daemon@fabrikam.com")
        await self.submit("carol@example.org")
        ((message, _, _, _),) = self.reports()
        self.assertEqual(message["From"], "mailer-daemon@fabrikam.com")

    async def test_oneNotificationPerPass(self):
        """
        Recipients that fail together are reported together.
        """
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER}
        self.start()
        await self.submit("carol@example.org", "gone@fabrikam.com", "x@nowhere.test")
        ((_, _, recipients, _),) = self.reports()
        self.assertEqual(
            sorted(r["Final-Recipient"] for r in recipients),
            ["rfc822; carol@example.org", "rfc822; gone@fabrikam.com", "rfc822; x@nowhere.test"],
        )

    async def test_notificationDurableBeforeRecord(self):
        """
        The notification is enqueued, durably, before the failure that
        calls for it is recorded: a crash between the two repeats the
        notification rather than losing it.
        """
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER}
        journal = []
        realEnqueue, realUpdate = self.spool.enqueue, self.spool.update

        def enqueue(envelope, session, message):
            journal.append(("enqueue", str(envelope.mailFrom)))
            return realEnqueue(envelope, session, message).addCallback(
                lambda queueId: journal.append(("enqueued", queueId)) or queueId
            )

        def update(queued):
            journal.append(("update", queued.queueId))
            return realUpdate(queued)

        self.patch(self.spool, "enqueue", enqueue)
        self.patch(self.spool, "update", update)
        self.start()
        queueId = await self.submit("carol@example.org")
        self.assertEqual(journal[:2], [("enqueue", "alice@fabrikam.com"), ("enqueued", queueId)])
        self.assertEqual(
            journal[2:5],
            [("enqueue", ""), ("enqueued", journal[3][1]), ("update", queueId)],
        )
        self.assertNotEqual(journal[3][1], queueId)


class TrackingTests(ManagerTestCase):
    async def test_events(self):
        """
        The manager reports what happens to each message to the tracking
        log: SUBMIT, DELIVER, SEND, DEFER, FAIL, DSN.
        """
        self.remote.outcomes = {"dave@example.org": NO_SUCH_USER, "erin@tailspin.com": REFUSED}
        self.start()
        queueId = await self.submit(
            "bob@fabrikam.com", "carol@example.org", "dave@example.org", "erin@tailspin.com"
        )
        kinds = [kind for kind, _, _ in self.tracking.events]
        self.assertEqual(kinds[0], "SUBMIT")
        self.assertEqual(
            sorted(kinds), sorted(["SUBMIT", "DELIVER", "SEND", "FAIL", "DEFER", "DSN", "SUBMIT", "DELIVER"])
        )
        ((submitted, submit), notificationSubmit) = self.tracking.of("SUBMIT")
        self.assertEqual((submitted, submit), (queueId, {"source": "SMTP"}))
        self.assertEqual(notificationSubmit[1], {"source": "DSN"})
        deliver, notificationDeliver = self.tracking.of("DELIVER")
        self.assertEqual(
            deliver,
            (queueId, {"source": "STOREDRIVER", "recipients": ["bob@fabrikam.com"], "messageId": "<m1@fabrikam.com>"}),
        )
        self.assertEqual(
            self.tracking.of("SEND"),
            [(queueId, {
                "source": "SMTP", "recipients": ["carol@example.org"], "messageId": "<m1@fabrikam.com>",
                "connectorId": "ToInternet", "nextHop": "ToInternet",
            })],
        )
        self.assertEqual(
            self.tracking.of("FAIL"),
            [(queueId, {
                "source": "SMTP", "recipients": ["dave@example.org"], "messageId": "<m1@fabrikam.com>",
                "recipientStatus": "550 5.1.1 No such user here",
                "connectorId": "ToInternet", "nextHop": "ToInternet",
            })],
        )
        self.assertEqual(
            self.tracking.of("DEFER"),
            [(queueId, {
                "source": "SMTP", "recipients": ["erin@tailspin.com"], "messageId": "<m1@fabrikam.com>",
                "recipientStatus": "421 4.4.1 Connection refused",
                "connectorId": "ByMX", "nextHop": "ByMX:tailspin.com",
            })],
        )
        ((none, notification),) = self.tracking.of("DSN")
        self.assertIsNone(none)
        self.assertEqual(notification["source"], "DSN")
        self.assertEqual(notification["sender"], "")
        self.assertEqual(notification["recipients"], ["alice@fabrikam.com"])
        self.assertEqual(notification["reference"], "<m1@fabrikam.com>")
        self.assertEqual(notification["relatedRecipientAddress"], ["dave@example.org"])
        self.assertEqual(notificationSubmit[0], notification["internalMessageId"])
        self.assertTrue(notification["messageId"].endswith("@huba.fabrikam.com>"))

    def test_fakeIsATrackingLog(self):
        self.assertTrue(verifyObject(IMessageTrackingLog, self.tracking))
        self.assertTrue(verifyObject(IRemoteDelivery, self.remote))
