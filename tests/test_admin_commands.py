"""
Tests for L{exmta.admin.commands}: the admin commands against a queue
manager with queued, retrying, suspended and in-flight messages.
"""

import base64
import json
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from exmta.admin.commands import AdminCommands
from exmta.admin.protocol import AdminError
from exmta.errors import ConfigError
from exmta.interfaces import IRemoteDelivery
from exmta.queue.administration import REMOVED_BY_ADMINISTRATOR
from tests.test_manager import MESSAGE, REFUSED, Call, ManagerTestCase


@implementer(IRemoteDelivery)
class HeldRemoteDelivery:
    """
    A send side whose sends wait until the test answers them.
    """

    def __init__(self):
        self.calls = []
        self.pending = []
        self.outcomes = {}

    def close(self):
        return succeed(None)

    def send(self, nextHop, queued, recipients, message):
        self.calls.append(Call(nextHop, queued.queueId, queued.mailFrom, tuple(recipients), message))
        held = Deferred()
        self.pending.append((held, tuple(recipients)))
        return held

    async def called(self, count=1):
        """
        Wait until C{count} sends have started.
        """
        for _ in range(1000):
            if len(self.calls) >= count:
                return
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(f"{count} sends expected, {len(self.calls)} made")

    def answer(self, outcome=None):
        held, recipients = self.pending.pop(0)
        held.callback({address: outcome for address in recipients})


class CommandTestCase(ManagerTestCase):
    def setUp(self):
        super().setUp()
        self.remote.outcomes = {
            "carol@example.org": REFUSED,
            "dave@example.net": REFUSED,
            "erin@tailspin.com": REFUSED,
        }

    def start(self, **kwargs):
        manager = super().start(**kwargs)
        self.admin = AdminCommands(manager)
        if isinstance(self.remote, HeldRemoteDelivery):
            remote = self.remote
            self.addCleanup(lambda: [remote.answer() for _ in list(remote.pending)])
        return manager

    async def call(self, command, **arguments):
        return await self.admin.run(command, arguments)

    async def refused(self, command, kind, **arguments):
        try:
            result = await self.admin.run(command, arguments)
        except AdminError as error:
            self.assertEqual(error.kind, kind, error.message)
            return error.message
        self.fail(f"{command} {arguments} answered {result!r}")

    def document(self, queueId):
        with open(os.path.join(self.queuePath, "messages", queueId + ".json")) as handle:
            return json.load(handle)


class QueueViewTests(CommandTestCase):
    async def test_retryingQueue(self):
        """
        A next hop that refused the connection shows as a delivery queue in
        Retry status, with its next retry time, last error and messages.
        """
        self.start()
        await self.submit("carol@example.org")
        await self.submit("dave@example.net", sender="bob@fabrikam.com")
        rows = await self.call("getQueue")
        self.assertEqual(
            [(r["Identity"], r["DeliveryType"], r["Status"], r["MessageCount"]) for r in rows],
            [
                ("HubA\\Submission", "Undefined", "Ready", 0),
                ("HubA\\ToInternet", "SmartHostConnectorDelivery", "Retry", 2),
            ],
        )
        internet = rows[1]
        self.assertEqual(internet["NextRetryTime"], "2026-01-01T00:05:00Z")
        self.assertEqual(internet["LastError"], "421 4.4.1 Connection refused")
        self.assertEqual(internet["NextHopDomain"], "ToInternet")
        self.assertEqual(internet["NextHopConnector"], "ToInternet")
        self.assertEqual(await self.call("getQueue", identity="ToInternet"), [internet])
        self.assertEqual(await self.call("getQueue", identity="huba\\toInternet"), [internet])

    async def test_dnsQueue(self):
        """
        An MX next hop's queue is named connector:domain, its NextHopDomain
        the domain.
        """
        self.start()
        await self.submit("erin@tailspin.com")
        [row] = await self.call("getQueue", filter="DeliveryType -eq 'DnsConnectorDelivery'")
        self.assertEqual(row["Identity"], "HubA\\ByMX:tailspin.com")
        self.assertEqual(row["NextHopDomain"], "tailspin.com")
        self.assertEqual(row["NextHopConnector"], "ByMX")

    async def test_activeQueue(self):
        """
        While a send to a next hop is in progress its queue is Active and
        the message too; then the queue is empty.
        """
        self.remote = HeldRemoteDelivery()
        self.start()
        queueId = await self.spool.enqueue(*self.envelopeOf("carol@example.org"))
        await self.remote.called()
        row = (await self.call("getQueue", identity="ToInternet"))[0]
        self.assertEqual((row["Status"], row["MessageCount"]), ("Active", 1))
        [message] = await self.call("getMessage")
        self.assertEqual(message["Identity"], f"HubA\\ToInternet\\{queueId}")
        self.assertEqual(message["Status"], "Active")
        self.remote.answer()
        await self.queue.whenIdle()
        self.assertEqual(
            await self.refused("getQueue", "NotFound", identity="ToInternet"),
            "The queue HubA\\ToInternet was not found",
        )

    def envelopeOf(self, *recipients):
        from tests.test_queue import SESSION, envelope

        return envelope(*recipients, sender="alice@fabrikam.com"), SESSION, MESSAGE

    async def test_waitingForSendSide(self):
        """
        Remote recipients of a manager without a send side are in the
        Unreachable queue.
        """
        self.start(route=None, remoteDelivery=None)
        queueId = await self.submit("carol@example.org")
        rows = await self.call("getQueue")
        self.assertEqual(
            [(r["Identity"], r["DeliveryType"], r["MessageCount"]) for r in rows],
            [("HubA\\Submission", "Undefined", 0), ("HubA\\Unreachable", "Unreachable", 1)],
        )
        [message] = await self.call("getMessage", queue="Unreachable")
        self.assertEqual(message["Identity"], f"HubA\\Unreachable\\{queueId}")

    async def test_badFilter(self):
        self.start()
        message = await self.refused("getQueue", "InvalidArgument", filter="Colour -eq 'red'")
        self.assertIn("Colour is not a property", message)
        await self.refused("getQueue", "InvalidArgument", filter="Status -eq")
        await self.refused("getQueue", "InvalidArgument", identity="HubB\\ToInternet")


class MessageViewTests(CommandTestCase):
    async def test_fields(self):
        self.start()
        queueId = await self.submit("carol@example.org", "dave@example.net")
        [row] = await self.call("getMessage")
        self.assertEqual(
            row,
            {
                "Identity": f"HubA\\ToInternet\\{queueId}",
                "Subject": "Quarterly report",
                "InternetMessageId": "<m1@fabrikam.com>",
                "FromAddress": "alice@fabrikam.com",
                "Status": "Retry",
                "Size": len(MESSAGE),
                "MessageSourceName": "Default HubA",
                "SourceIP": "192.0.2.7",
                "DateReceived": "2026-01-01T00:00:00Z",
                "ExpirationTime": "2026-01-03T00:00:00Z",
                "LastError": "421 4.4.1 Connection refused",
                "RetryCount": 1,
                "Recipients": ["carol@example.org", "dave@example.net"],
                "Queue": "HubA\\ToInternet",
                "InternalMessageId": queueId,
            },
        )

    async def test_oneRowPerQueue(self):
        """
        A message whose recipients wait in two queues shows in each, with
        the recipients of that queue.
        """
        self.start()
        queueId = await self.submit("carol@example.org", "erin@tailspin.com")
        rows = await self.call("getMessage", identity=queueId)
        self.assertEqual(
            [(r["Queue"], r["Recipients"]) for r in rows],
            [
                ("HubA\\ByMX:tailspin.com", ["erin@tailspin.com"]),
                ("HubA\\ToInternet", ["carol@example.org"]),
            ],
        )

    async def test_identityForms(self):
        self.start()
        queueId = await self.submit("carol@example.org")
        for identity in (
            queueId,
            queueId.lower(),
            f"HubA\\{queueId}",
            f"ToInternet\\{queueId}",
            f"HubA\\ToInternet\\{queueId}",
        ):
            [row] = await self.call("getMessage", identity=identity)
            self.assertEqual(row["InternalMessageId"], queueId, identity)
        await self.refused("getMessage", "NotFound", identity=f"HubA\\Submission\\{queueId}")
        await self.refused("getMessage", "NotFound", identity="0" * 24)
        await self.refused("getMessage", "InvalidArgument", identity="HubA\\ToInternet\\42")

    async def test_filters(self):
        self.start()
        first = await self.submit("carol@example.org")
        second = await self.submit("dave@example.net", sender="bob@fabrikam.com")

        async def ids(text):
            return [row["InternalMessageId"] for row in await self.call("getMessage", filter=text)]

        self.assertEqual(await ids('{FromAddress -eq "BOB@fabrikam.com"}'), [second])
        self.assertEqual(await ids("FromAddress -like '*@fabrikam.com'"), [first, second])
        self.assertEqual(await ids("Recipients -eq 'carol@example.org'"), [first])
        self.assertEqual(await ids("Recipients -notcontains 'carol@example.org'"), [second])
        self.assertEqual(await ids("Subject -like 'quarterly*'"), [first, second])
        self.assertEqual(await ids("Status -eq 'Retry' -and Size -gt 1KB"), [])
        self.assertEqual(await ids("Status -eq 'Retry' -and Size -lt 1KB"), [first, second])
        self.assertEqual(await ids("DateReceived -ge '2026-01-01T00:00:00Z'"), [first, second])
        self.assertEqual(await ids("DateReceived -lt '2026-01-01T00:00:00Z'"), [])
        self.assertEqual(await ids("LastError -like '*refused*' -and -not (FromAddress -eq 'bob@fabrikam.com')"), [first])
        await self.refused(
            "getMessage", "InvalidArgument", identity=first, filter="Status -eq 'Retry'"
        )
        await self.refused("getMessage", "InvalidArgument", queue="ToInternet", identity=first)


class SuspendMessageTests(CommandTestCase):
    async def test_suspendIsDurable(self):
        """
        A suspended message is recorded as such in the spool, is not tried
        at its retry time nor after a restart, and does not expire.
        """
        self.start()
        queueId = await self.submit("carol@example.org")
        [result] = await self.call("suspendMessage", identity=queueId)
        self.assertEqual(result, {"Identity": f"HubA\\ToInternet\\{queueId}", "Status": "Suspended"})
        self.assertTrue(self.document(queueId)["suspended"])
        [row] = await self.call("getMessage")
        self.assertEqual(row["Status"], "Suspended")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        await self.restart()
        await self.advance(3 * 86400)
        self.assertEqual(len(self.remote.calls), 1)
        self.assertTrue(self.queued(queueId).suspended)
        [row] = await self.call("getMessage")
        self.assertEqual(row["Status"], "Suspended")

    async def test_resume(self):
        """
        A resumed message waits for its retry time as before, then is sent;
        the spool no longer says suspended.
        """
        self.start()
        queueId = await self.submit("carol@example.org")
        await self.call("suspendMessage", identity=queueId)
        await self.call("resumeMessage", identity=f"HubA\\ToInternet\\{queueId}")
        self.assertNotIn("suspended", self.document(queueId))
        [row] = await self.call("getMessage")
        self.assertEqual(row["Status"], "Retry")
        self.remote.outcomes = {}
        await self.advance(300)
        self.assertEqual(len(self.remote.calls), 2)
        self.assertIsNone(self.queued(queueId))

    async def test_resumeExpired(self):
        """
        A message resumed after its expiration time expires at once.
        """
        self.start()
        queueId = await self.submit("carol@example.org")
        await self.call("suspendMessage", identity=queueId)
        await self.advance(3 * 86400)
        await self.call("resumeMessage", identity=queueId)
        await self.queue.whenIdle()
        self.assertIsNone(self.queued(queueId))
        [report] = self.reports()
        self.assertIn("4.4.7", str(report[2][0]))

    async def test_pendingSuspend(self):
        """
        Suspending a message being sent answers PendingSuspend at once; the
        send finishes and the message is suspended after.
        """
        self.remote = HeldRemoteDelivery()
        self.start()
        queueId = await self.spool.enqueue(*QueueViewTests.envelopeOf(self, "carol@example.org"))
        await self.remote.called()
        [result] = await self.call("suspendMessage", identity=queueId)
        self.assertEqual(result["Status"], "PendingSuspend")
        [row] = await self.call("getMessage")
        self.assertEqual(row["Status"], "PendingSuspend")
        self.remote.answer(REFUSED)
        await self.queue.whenIdle()
        [row] = await self.call("getMessage")
        self.assertEqual(row["Status"], "Suspended")
        self.assertEqual(self.queued(queueId).recipients[0].attempts, 1)
        self.assertTrue(self.document(queueId)["suspended"])

    async def test_byFilter(self):
        self.start()
        first = await self.submit("carol@example.org")
        second = await self.submit("dave@example.net", sender="bob@fabrikam.com")
        results = await self.call("suspendMessage", filter="FromAddress -eq 'bob@fabrikam.com'")
        self.assertEqual([r["Identity"] for r in results], [f"HubA\\ToInternet\\{second}"])
        self.assertFalse(self.queued(first).suspended)
        self.assertTrue(self.queued(second).suspended)
        await self.refused("suspendMessage", "InvalidArgument")
        await self.refused("suspendMessage", "InvalidArgument", identity=first, filter="Size -gt 0")


class RemoveMessageTests(CommandTestCase):
    async def test_withNDR(self):
        """
        Remove-Message tells the sender by default: each recipient fails
        with Exchange's QUEUE.Admin reply; the message leaves the spool.
        """
        self.start()
        queueId = await self.submit("carol@example.org", "dave@example.net")
        [result] = await self.call("removeMessage", identity=queueId)
        self.assertEqual(result["Status"], "Removed")
        await self.queue.whenIdle()
        self.assertIsNone(self.queued(queueId))
        self.assertFalse(os.path.exists(os.path.join(self.queuePath, "messages", queueId + ".eml")))
        [(message, _, perRecipient, _)] = self.reports()
        self.assertEqual(
            [(str(r["Final-Recipient"]), str(r["Action"]), str(r["Status"])) for r in perRecipient],
            [
                ("rfc822; carol@example.org", "failed", "4.3.2"),
                ("rfc822; dave@example.net", "failed", "4.3.2"),
            ],
        )
        self.assertEqual(
            " ".join(str(perRecipient[0]["Diagnostic-Code"]).split()),
            "smtp; " + REMOVED_BY_ADMINISTRATOR,
        )
        fails = self.tracking.of("FAIL")[-2:]
        self.assertEqual(
            [(q, f["source"], f["recipientStatus"]) for q, f in fails],
            [(queueId, "ADMIN", REMOVED_BY_ADMINISTRATOR)] * 2,
        )

    async def test_withoutNDR(self):
        self.start()
        queueId = await self.submit("carol@example.org")
        await self.call("removeMessage", identity=queueId, withNDR=False)
        await self.queue.whenIdle()
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(self.mailbox(), [])

    async def test_fromOneQueue(self):
        """
        An identity naming a queue removes the message from that queue
        only; its recipients in other queues stay.
        """
        self.start()
        queueId = await self.submit("carol@example.org", "erin@tailspin.com")
        await self.call(
            "removeMessage", identity=f"HubA\\ByMX:tailspin.com\\{queueId}", withNDR=False
        )
        [row] = await self.call("getMessage")
        self.assertEqual((row["Queue"], row["Recipients"]), ("HubA\\ToInternet", ["carol@example.org"]))
        self.assertEqual(
            [(r.address, r.status) for r in self.queued(queueId).recipients],
            [("carol@example.org", "Ready"), ("erin@tailspin.com", "Failed")],
        )

    async def test_suspendedMessage(self):
        self.start()
        queueId = await self.submit("carol@example.org")
        await self.call("suspendMessage", identity=queueId)
        await self.call("removeMessage", identity=queueId, withNDR=False)
        self.assertEqual(self.spool.messages(), [])

    async def test_pendingRemove(self):
        self.remote = HeldRemoteDelivery()
        self.start()
        queueId = await self.spool.enqueue(*QueueViewTests.envelopeOf(self, "carol@example.org"))
        await self.remote.called()
        [result] = await self.call("removeMessage", identity=queueId, withNDR=False)
        self.assertEqual(result["Status"], "PendingRemove")
        self.remote.answer(REFUSED)
        await self.queue.whenIdle()
        self.assertEqual(self.spool.messages(), [])

    async def test_nullSender(self):
        """
        No notification ever goes to <>.
        """
        self.start()
        await self.submit("carol@example.org", sender="")
        await self.call("removeMessage", filter="FromAddress -eq '<>'")
        await self.queue.whenIdle()
        self.assertEqual(self.spool.messages(), [])


class ExportMessageTests(CommandTestCase):
    async def test_mustBeSuspended(self):
        """
        As in Exchange, a message must be suspended before it is exported;
        then its bytes come back exactly.
        """
        self.start()
        queueId = await self.submit("carol@example.org")
        message = await self.refused("exportMessage", "InvalidState", identity=queueId)
        self.assertIn("must be suspended", message)
        await self.call("suspendMessage", identity=queueId)
        result = await self.call("exportMessage", identity=queueId)
        self.assertEqual(result["Identity"], f"HubA\\ToInternet\\{queueId}")
        self.assertEqual(result["Size"], len(MESSAGE))
        self.assertEqual(base64.b64decode(result["Data"]), MESSAGE)
        await self.refused("exportMessage", "NotFound", identity="1" * 24)


class QueueActionTests(CommandTestCase):
    async def test_suspendQueue(self):
        """
        Recipients routed to a suspended next hop are not sent, new ones
        included; resuming sends those that are due at once.
        """
        self.start()
        first = await self.submit("carol@example.org")
        row = await self.call("suspendQueue", identity="HubA\\ToInternet")
        self.assertEqual(row["Status"], "Suspended")
        second = await self.submit("dave@example.net")
        await self.advance(600)
        self.assertEqual([c.queueId for c in self.remote.calls], [first])
        rows = await self.call("getMessage", queue="ToInternet")
        self.assertEqual([r["InternalMessageId"] for r in rows], [first, second])
        self.remote.outcomes = {}
        row = await self.call("resumeQueue", identity="ToInternet")
        await self.queue.whenIdle()
        self.assertEqual(sorted(c.queueId for c in self.remote.calls[1:]), sorted([first, second]))
        self.assertEqual(self.spool.messages(), [])
        await self.refused("resumeQueue", "NotFound", identity="ToInternet")

    async def test_suspendEmptyQueue(self):
        """
        With evenIfEmpty (what the main process asks of the parts of a
        queue in parts), a queue without messages here is suspended too:
        what comes later waits.
        """
        self.start()
        await self.refused("suspendQueue", "NotFound", identity="ToInternet")
        row = await self.call("suspendQueue", identity="HubA\\ToInternet", evenIfEmpty=True)
        self.assertEqual((row["Identity"], row["Status"], row["MessageCount"]), ("HubA\\ToInternet", "Suspended", 0))
        await self.submit("carol@example.org")
        self.assertEqual(self.remote.calls, [])

    async def test_suspendedQueueStillExpires(self):
        self.start()
        queueId = await self.submit("carol@example.org")
        await self.call("suspendQueue", identity="ToInternet")
        await self.advance(2 * 86400)
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(len(self.remote.calls), 1)

    async def test_onlyNextHopQueues(self):
        self.start(route=None, remoteDelivery=None)
        await self.submit("carol@example.org")
        message = await self.refused("suspendQueue", "InvalidState", identity="Unreachable")
        self.assertIn("not a delivery queue to a next hop", message)
        await self.refused("suspendQueue", "NotFound", identity="Nowhere")

    async def test_retryQueue(self):
        """
        Retry-Queue tries a queue in Retry status now; a queue in another
        status needs -Resubmit.
        """
        self.start()
        await self.submit("carol@example.org")
        self.remote.outcomes = {}
        result = await self.call("retryQueue", identity="ToInternet")
        self.assertEqual(result, {"Identity": "HubA\\ToInternet", "MessageCount": 1})
        await self.queue.whenIdle()
        self.assertEqual(len(self.remote.calls), 2)
        self.assertEqual(self.spool.messages(), [])

    async def test_retryNeedsRetryStatus(self):
        self.remote = HeldRemoteDelivery()
        self.start()
        await self.spool.enqueue(*QueueViewTests.envelopeOf(self, "carol@example.org"))
        await self.remote.called()
        message = await self.refused("retryQueue", "InvalidState", identity="ToInternet")
        self.assertIn("is Active, not in Retry status", message)
        self.remote.answer()
        await self.queue.whenIdle()

    async def test_resubmit(self):
        """
        -Resubmit routes again: recipients waiting for a next hop that no
        longer serves them go where routing now says.
        """
        self.start()
        queueId = await self.submit("carol@example.org")
        self.routes["example.org"] = self.routes["tailspin.com"]
        self.remote.outcomes = {}
        await self.call("retryQueue", identity="ToInternet", resubmit=True)
        await self.queue.whenIdle()
        self.assertEqual(self.remote.calls[-1].nextHop.key, "ByMX:tailspin.com")
        self.assertIsNone(self.queued(queueId))


class ReloadCommandTests(TestCase):
    def test_refusedReload(self):
        def reload():
            raise ConfigError("bad value", "/etc/org.ini", 3, "TransportServer HubA", "Fqdn")

        admin = AdminCommands(manager=None, reload=reload)
        failure = self.failureResultOf(admin.run("reload", {}), AdminError)
        self.assertEqual(failure.value.kind, "ConfigError")
        self.assertEqual(failure.value.message, "/etc/org.ini:3: [TransportServer HubA] Fqdn: bad value")

    def test_unknownCommandAndArguments(self):
        admin = AdminCommands(manager=None)
        with self.assertRaises(AdminError) as caught:
            admin.run("dropTables", {})
        self.assertEqual(caught.exception.kind, "BadRequest")
        with self.assertRaises(AdminError) as caught:
            admin.run("getQueue", {"colour": "red"})
        self.assertEqual(caught.exception.kind, "BadRequest")
        self.assertIn("colour", caught.exception.message)
