"""
Tests for L{exmta.admin.parts}: the admin endpoint of a server whose
queue is in parts.  Three real queue managers, each over a spool of its
own; the main process's answers its commands in this process, the two
others on real admin sockets (L{exmta.admin.server.AdminService}) as
receive workers' parts do.  Then the Shell's cmdlets through the admin
client against the fan-out served on the server's admin socket.
"""

import io
import os
import socket
import time
import urllib.request

from twisted.internet import reactor, threads
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from exmta.admin import parts
from exmta.admin.commands import AdminCommands
from exmta.admin.parts import PartsCommands
from exmta.admin.protocol import AdminError, adminSocketPath
from exmta.admin.server import AdminService
from exmta.config import parseOrganization
from exmta.deliver import MaildirDeliveryAgent
from exmta.metrics.registry import ServerMetrics
from exmta.metrics.web import monitoringResource
from exmta.queue import views
from exmta.queue.manager import QueueManager
from exmta.queue.spool import Spool
from exmta.routing import Resolver
from exmta.service import _refreshMetrics
from exmta.shell.host import Host
from exmta.shell.runtime import Session, ShellError, loadCmdlets
from tests.test_manager import (
    ORGANIZATION,
    REFUSED,
    ROUTES,
    START,
    FakeRemoteDelivery,
    FakeTrackingLog,
)
from tests.test_queue import SESSION, envelope, temporaryFolder

PARTS = 3


def message(number):
    return (
        f"Message-ID: <m{number}@fabrikam.com>\r\nSubject: report {number}\r\n\r\n".encode()
        + b"x" * (number * 37 % 500)
        + b"\r\n"
    )


class Part:
    """
    One part of the queue: a spool, its queue manager and its commands.
    """

    def __init__(self, case, folder, number):
        self.path = os.path.join(folder, f"part{number}")
        self.spool = Spool.open(self.path, reactor, case.clock)
        case.addCleanup(self.spool.close)
        self.remote = FakeRemoteDelivery()
        self.remote.outcomes = {
            "carol@example.org": REFUSED, "dave@example.net": REFUSED, "erin@tailspin.com": REFUSED,
        }
        self.manager = QueueManager(
            self.spool,
            Resolver(case.organization),
            MaildirDeliveryAgent(os.path.join(folder, "mailboxes"), reactor),
            case.clock,
            server=case.organization.transportServers["HubA"],
            postmaster=case.organization.postmasterAddressOf("HubA"),
            route=lambda address: ROUTES.get(address.domain),
            remoteDelivery=self.remote,
            trackingLog=FakeTrackingLog(),
        )
        self.manager.startService()
        case.addCleanup(lambda: self.manager.running and self.manager.stopService())
        self.commands = AdminCommands(self.manager)

    def serve(self, case):
        """
        Serve the part's commands on C{admin.sock} in its folder.

        @return: the socket's path.
        """
        service = AdminService(
            os.path.join(self.path, "admin.sock"), self.commands, reactor
        )
        service.startService()
        case.addCleanup(lambda: service.running and service.stopService())
        self.service = service
        return service.path

    async def submit(self, *recipients, sender="alice@fabrikam.com", number=0):
        queueId = await self.spool.enqueue(envelope(*recipients, sender=sender), SESSION, message(number))
        await self.manager.whenIdle()
        return queueId

    def suspended(self):
        return {m.queueId for m in self.spool.messages() if m.suspended}


class PartsTestCase(TestCase):
    def setUp(self):
        self.folder = temporaryFolder(self)
        self.config = os.path.join(self.folder, "org.ini")
        with open(self.config, "w") as handle:
            handle.write(ORGANIZATION)
        self.organization = parseOrganization(ORGANIZATION, self.config)
        self.clock = Clock()
        self.clock.advance(START)
        self.parts = [Part(self, self.folder, number) for number in range(PARTS)]
        # The main process's part answers in this process; the others on
        # their sockets.
        self.sockets = [part.serve(self) for part in self.parts[1:]]
        self.admin = PartsCommands(
            self.parts[0].commands, lambda: self.sockets, reactor, timeout=5, clock=self.clock
        )

    async def call(self, command, **arguments):
        return await self.admin.run(command, arguments)

    async def refused(self, command, kind, **arguments):
        try:
            result = await self.admin.run(command, arguments)
        except AdminError as error:
            self.assertEqual(error.kind, kind, error.message)
            return error.message
        self.fail(f"{command} {arguments} answered {result!r}")

    async def fill(self, count):
        """
        Queue C{count} messages, one a second, spread over the parts: to
        ToInternet (retrying), some also to ByMX:tailspin.com.

        @return: the queue ids, by part.
        """
        queued = [[] for _ in self.parts]
        for number in range(count):
            recipients = ["carol@example.org"]
            if number % 4 == 0:
                recipients.append("erin@tailspin.com")
            owner = number * 7 % PARTS
            queued[owner].append(
                await self.parts[owner].submit(
                    *recipients, sender=f"sender{number % 5}@fabrikam.com", number=number
                )
            )
            self.clock.advance(1)
        return queued

    async def union(self, sortOrder=None, filter=None):
        """
        @return: Get-Message's rows of one process holding every part's
            messages: the parts' rows by queue and arrival, then sorted.
        """
        rows = []
        for part in self.parts:
            rows.extend(await part.commands.run("getMessage", {}))
        views.sortRows(rows, [("Queue", False), ("DateReceived", False)])
        if filter is not None:
            rows = [r for r in rows if r["Size"] > 300]
        views.sortRows(rows, views.sortKeys(sortOrder, views.MESSAGE_PROPERTIES))
        return rows


def ids(rows):
    return [row["InternalMessageId"] for row in rows]


class GetQueueTests(PartsTestCase):
    async def test_sums(self):
        """
        A queue in several parts is one row: MessageCount summed, the
        earliest NextRetryTime, a LastError; Submission is always there.
        """
        queued = await self.fill(9)
        mine = [await part.commands.run("getQueue", {}) for part in self.parts]
        rows = await self.call("getQueue")
        self.assertEqual(
            [(r["Identity"], r["MessageCount"], r["Status"]) for r in rows],
            [
                ("HubA\\Submission", 0, "Ready"),
                ("HubA\\ByMX:tailspin.com", 3, "Retry"),
                ("HubA\\ToInternet", 9, "Retry"),
            ],
        )
        retryTimes = [row["NextRetryTime"] for rows in mine for row in rows if row["Status"] == "Retry"]
        self.assertEqual(rows[2]["NextRetryTime"], min(r for r in retryTimes if "ToInternet"))
        self.assertIn("Connection refused", rows[2]["LastError"])
        self.assertEqual(sum(len(ids) for ids in queued), 9)
        [row] = await self.call("getQueue", identity="toInternet")
        self.assertEqual(row["MessageCount"], 9)
        [row] = await self.call("getQueue", filter="MessageCount -gt 5")
        self.assertEqual(row["Identity"], "HubA\\ToInternet")
        await self.refused("getQueue", "NotFound", identity="HubA\\Nowhere")
        await self.refused("getMessage", "NotFound", queue="Shadow\\1")
        await self.refused("getQueue", "InvalidArgument", identity="HubB\\ToInternet")
        await self.refused("getQueue", "InvalidArgument", filter="Colour -eq 'red'")


class ShadowQueueTests(PartsTestCase):
    async def test_numberedOverTheParts(self):
        """
        Each part numbers the Shadow Redundancy queues of the servers it
        kept shadows for; the union numbers them again.
        """
        self.parts[0].manager.shadows.servers.add("HubC")
        self.parts[2].manager.shadows.servers.update({"HubB", "HubC"})
        rows = await self.call("getQueue", filter="DeliveryType -eq 'ShadowRedundancy'")
        self.assertEqual(
            [(r["Identity"], r["NextHopDomain"]) for r in rows],
            [("HubA\\Shadow\\1", "HubB"), ("HubA\\Shadow\\2", "HubC")],
        )
        # Empty, as in one process.
        await self.refused("getMessage", "NotFound", queue="HubA\\Shadow\\2")
        await self.refused("getMessage", "NotFound", queue="HubA\\Shadow\\3")


class LongPathTests(PartsTestCase):
    async def test_longSocketPath(self):
        """
        A part whose socket's path is longer than a UNIX socket address
        allows is reached through its folder's descriptor.
        """
        folder = os.path.join(self.folder, "q" * 60, "r" * 60)
        far = Part(self, folder, 3)
        self.sockets.append(far.serve(self))
        self.assertGreater(len(self.sockets[-1]), 108)
        await far.submit("carol@example.org")
        [row] = await self.call("getQueue", identity="ToInternet")
        self.assertEqual(row["MessageCount"], 1)


class MergeQueueRowsTests(SynchronousTestCase):
    def row(self, name, status, count, retry=None, error=None, type="SmartHostConnectorDelivery", hop=None):
        return {
            "Identity": f"HubA\\{name}", "DeliveryType": type, "Status": status,
            "MessageCount": count, "NextHopDomain": hop or name, "NextHopConnector": None,
            "NextRetryTime": retry, "LastError": error,
        }

    def test_status(self):
        """
        The status is one process's precedence over the parts' statuses;
        NextRetryTime only for a queue in Retry, the earliest.
        """
        merged = views.mergeQueueRows(
            [
                [self.row("Submission", "Ready", 0), self.row("Q", "Retry", 2, "2026-01-01T00:10:00Z", "421 a")],
                [self.row("Submission", "Active", 1), self.row("Q", "Retry", 1, "2026-01-01T00:05:00Z", "421 b")],
                [self.row("Submission", "Ready", 0), self.row("Q", "Ready", 4), self.row("R", "Ready", 1)],
            ]
        )
        self.assertEqual(
            [(r["Identity"], r["Status"], r["MessageCount"], r["NextRetryTime"]) for r in merged],
            [
                ("HubA\\Submission", "Active", 1, None),
                ("HubA\\Q", "Retry", 7, "2026-01-01T00:05:00Z"),
                ("HubA\\R", "Ready", 1, None),
            ],
        )
        self.assertIn(merged[1]["LastError"], ("421 a", "421 b"))
        [row] = views.mergeQueueRows(
            [[self.row("Q", "Suspended", 0)], [self.row("Q", "Active", 3, error="421 c")]]
        )
        self.assertEqual((row["Status"], row["MessageCount"], row["LastError"]), ("Suspended", 3, "421 c"))

    def test_shadowQueues(self):
        """
        Shadow Redundancy queues, numbered by each part among its own
        servers, are numbered again over the union, rows and identities.
        """
        shadow = "ShadowRedundancy"
        answers = [
            (None, [self.row("Shadow\\1", "Ready", 1, type=shadow, hop="HubC")]),
            ("b", [self.row("Shadow\\1", "Ready", 2, type=shadow, hop="HubB"),
                   self.row("Shadow\\2", "Ready", 3, type=shadow, hop="HubC")]),
        ]
        shadows = parts._Shadows(answers)
        merged = views.mergeQueueRows([shadows.rows(part, rows) for part, rows in answers])
        self.assertEqual(
            [(r["Identity"], r["NextHopDomain"], r["MessageCount"]) for r in merged],
            [("HubA\\Shadow\\1", "HubB", 2), ("HubA\\Shadow\\2", "HubC", 4)],
        )
        queueId = "0" * 24
        self.assertEqual(shadows.toUnion(None, f"HubA\\Shadow\\1\\{queueId}"), f"HubA\\Shadow\\2\\{queueId}")
        self.assertEqual(shadows.toPart(None, f"HubA\\Shadow\\2\\{queueId}"), f"HubA\\Shadow\\1\\{queueId}")
        self.assertIsNone(shadows.toPart(None, "shadow\\1"))
        self.assertEqual(shadows.toPart("b", "shadow\\1"), "Shadow\\1")
        self.assertEqual(shadows.toPart("b", "HubA\\ToInternet"), "HubA\\ToInternet")


class GetMessageTests(PartsTestCase):
    async def page(self, **arguments):
        return await self.call("getMessage", returnPageInfo=True, **arguments)

    async def test_pagesMakeTheUnion(self):
        """
        Pages over the parts, in the default order and sorted, are the
        pages of one process holding every message.
        """
        await self.fill(40)
        everything = await self.union()
        self.assertEqual(len(everything), 50)
        self.assertEqual(await self.call("getMessage"), everything)
        for sortOrder in (None, ["-Size", "+FromAddress"], ["-DateReceived"], ["Subject"]):
            expected = await self.union(sortOrder)
            seen, index = [], 1
            while True:
                page = await self.page(resultSize=7, bookmarkIndex=index, sortOrder=sortOrder)
                self.assertEqual((page["TotalCount"], page["BookmarkIndex"]), (50, index))
                if not page["Messages"]:
                    break
                seen.extend(page["Messages"])
                index += 7
            self.assertEqual(ids(seen), ids(expected), sortOrder)
        page = await self.page(filter="Size -gt 300", resultSize=4, bookmarkIndex=3, sortOrder=["FromAddress"])
        expected = await self.union(["FromAddress"], filter="Size -gt 300")
        self.assertEqual(page["TotalCount"], len(expected))
        self.assertEqual(ids(page["Messages"]), ids(expected[2:6]))

    async def test_bookmarkObject(self):
        """
        A page after a bookmark is found in growing prefixes of the parts'
        rows.
        """
        self.patch(parts, "BOOKMARK_PREFIX", 2)
        await self.fill(30)
        everything = await self.union(["-Size"])
        bookmark = everything[25]["Identity"]
        page = await self.page(
            resultSize=5, bookmarkObject=bookmark, includeBookmark=False, sortOrder=["-Size"]
        )
        self.assertEqual(page["BookmarkIndex"], 27)
        self.assertEqual(ids(page["Messages"]), ids(everything[26:31]))
        rows = await self.call("getMessage", bookmarkObject=bookmark, sortOrder=["-Size"])
        self.assertEqual(ids(rows), ids(everything[25:]))
        await self.refused("getMessage", "NotFound", bookmarkObject="0" * 24, resultSize=3)
        await self.refused("getMessage", "InvalidArgument", bookmarkIndex=1, bookmarkObject=bookmark)

    async def test_queueAndIdentity(self):
        queued = await self.fill(12)
        rows = await self.call("getMessage", queue="HubA\\ByMX:tailspin.com")
        self.assertEqual(len(rows), 3)
        self.assertEqual({r["Queue"] for r in rows}, {"HubA\\ByMX:tailspin.com"})
        owned = queued[2][0]
        rows = await self.call("getMessage", identity=owned)
        self.assertEqual([r["InternalMessageId"] for r in rows], [owned] * len(rows))
        await self.refused("getMessage", "NotFound", identity="1" * 24)
        await self.refused("getMessage", "NotFound", queue="Nowhere")
        await self.refused("getMessage", "InvalidArgument", identity=owned, queue="ToInternet")


class ActionTests(PartsTestCase):
    async def test_messageActionsReachTheOwner(self):
        queued = await self.fill(6)
        owned = queued[1][0]
        result = await self.call("suspendMessage", identity=owned)
        self.assertEqual(result, [{"Identity": f"HubA\\ToInternet\\{owned}", "Status": "Suspended"}])
        self.assertEqual([part.suspended() for part in self.parts], [set(), {owned}, set()])
        exported = await self.call("exportMessage", identity=owned)
        self.assertEqual(exported["Identity"], f"HubA\\ToInternet\\{owned}")
        await self.refused("exportMessage", "InvalidState", identity=queued[2][0])
        result = await self.call("resumeMessage", identity=owned)
        self.assertEqual([part.suspended() for part in self.parts], [set(), set(), set()])
        await self.refused("suspendMessage", "NotFound", identity="1" * 24)
        # A filter matching messages of two parts.
        senders = {"sender0@fabrikam.com", "sender3@fabrikam.com"}
        result = await self.call(
            "suspendMessage",
            filter="FromAddress -eq 'sender0@fabrikam.com' -or FromAddress -eq 'sender3@fabrikam.com'",
        )
        self.assertEqual(len(result), 3)
        self.assertEqual([len(part.suspended()) for part in self.parts], [2, 0, 1])
        self.assertEqual(
            {m.mailFrom for part in self.parts for m in part.spool.messages() if m.suspended},
            senders,
        )
        removed = await self.call("removeMessage", identity=owned, withNDR=False)
        self.assertEqual(removed, [{"Identity": f"HubA\\ToInternet\\{owned}", "Status": "Removed"}])
        self.assertIsNone(self.parts[1].spool.message(owned))
        self.assertEqual(sum(len(part.spool.messages()) for part in self.parts), 5)

    async def test_queueActionsReachEveryPart(self):
        """
        Suspend-Queue holds the queue in every part, those where it is
        empty too; Resume-Queue and Retry-Queue reach every part.
        """
        first = await self.parts[0].submit("carol@example.org")
        await self.parts[2].submit("dave@example.net")
        row = await self.call("suspendQueue", identity="ToInternet")
        self.assertEqual((row["Status"], row["MessageCount"]), ("Suspended", 2))
        self.assertEqual([part.manager.hops.suspended for part in self.parts], [{"ToInternet"}] * 3)
        held = await self.parts[1].submit("carol@example.org")
        self.assertEqual(self.parts[1].remote.calls, [])
        [row] = await self.call("getQueue", identity="ToInternet")
        self.assertEqual((row["Status"], row["MessageCount"]), ("Suspended", 3))
        await self.refused("retryQueue", "InvalidState", identity="ToInternet")
        row = await self.call("resumeQueue", identity="ToInternet")
        self.assertEqual(row["Status"], "Retry")
        self.assertEqual([part.manager.hops.suspended for part in self.parts], [set()] * 3)
        self.assertEqual([c.queueId for c in self.parts[1].remote.calls], [held])
        for part in self.parts:
            await part.manager.whenIdle()
            part.remote.outcomes = {}
        result = await self.call("retryQueue", identity="ToInternet")
        self.assertEqual(result, {"Identity": "HubA\\ToInternet", "MessageCount": 3})
        for part in self.parts:
            await part.manager.whenIdle()
        self.assertEqual(sum(len(part.spool.messages()) for part in self.parts), 0)
        self.assertEqual(self.parts[0].remote.calls[-1].queueId, first)
        await self.refused("suspendQueue", "InvalidState", identity="Submission")
        await self.refused("resumeQueue", "NotFound", identity="ToInternet")

    async def test_serverCommandsAreTheMainProcesss(self):
        message = await self.refused("reload", "InvalidState")
        self.assertIn("cannot reload", message)
        await self.refused("dropTables", "BadRequest")
        with self.assertRaises(AdminError) as caught:
            self.admin.run("getQueue", {"colour": "red"})
        self.assertEqual(caught.exception.kind, "BadRequest")


class SilentPartTests(PartsTestCase):
    async def test_partsThatDoNotAnswer(self):
        """
        A part whose socket is gone, one whose socket refuses connections
        (its process died) and one that never answers are left out: the
        others' answer comes after the timeout.
        """
        queued = await self.fill(6)
        silent = os.path.join(self.folder, "silent.sock")
        port = reactor.listenUNIX(silent, Factory.forProtocol(Protocol))
        self.addCleanup(port.stopListening)
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(dead.close)
        dead.bind(os.path.join(self.folder, "dead.sock"))
        self.sockets += [os.path.join(self.folder, "gone", "admin.sock"), dead.getsockname(), silent]
        self.admin.timeout = 0.5
        began = time.monotonic()
        [row] = await self.call("getQueue", identity="ToInternet")
        took = time.monotonic() - began
        self.assertEqual(row["MessageCount"], 6)
        self.assertTrue(0.5 <= took < 3, took)
        page = await self.call("getMessage", returnPageInfo=True, resultSize=2)
        self.assertEqual(page["TotalCount"], 8)
        # Without the silent one, at once.
        self.sockets.remove(silent)
        began = time.monotonic()
        rows = await self.call("getMessage")
        self.assertLess(time.monotonic() - began, 0.5)
        self.assertEqual(len(rows), 8)
        # A part that stops: its rows are missing, its messages unreached.
        await self.parts[2].service.stopService()
        rows = await self.call("getMessage")
        self.assertEqual(set(ids(rows)), set(queued[0] + queued[1]))
        await self.refused("suspendMessage", "NotFound", identity=queued[2][0])


class ShellTests(PartsTestCase):
    """
    The Shell's queue cmdlets, through the admin client, against the
    fan-out on the server's admin socket.
    """

    def setUp(self):
        super().setUp()
        loadCmdlets()
        server = AdminService(
            adminSocketPath(self.organization.transportServers["HubA"]), self.admin, reactor
        )
        server.startService()
        self.addCleanup(server.stopService)
        self.session = Session(self.config, host=Host(io.StringIO(), io.StringIO(), io.StringIO()))

    def shell(self, text):
        return threads.deferToThread(self.session.invoke, text)

    async def test_queuesAndMessages(self):
        queued = await self.fill(9)
        queues = await self.shell("Get-Queue")
        self.assertEqual(
            [(q.Identity, q.MessageCount) for q in queues],
            [("HubA\\Submission", 0), ("HubA\\ByMX:tailspin.com", 3), ("HubA\\ToInternet", 9)],
        )
        info, *messages = await self.shell(
            "Get-Message -Queue HubA\\ToInternet -ResultSize 3 -BookmarkIndex 2 "
            "-ReturnPageInfo $true -SortOrder +FromAddress,-Size"
        )
        self.assertEqual((info.TotalCount, info.BookmarkIndex), (9, 2))
        expected = [
            r for r in await self.union(["+FromAddress", "-Size"]) if r["Queue"] == "HubA\\ToInternet"
        ]
        self.assertEqual([m.Identity for m in messages], [r["Identity"] for r in expected[1:4]])
        await self.shell(
            'Get-Message -Queue HubA\\ToInternet | Where-Object {$_.FromAddress -eq "sender1@fabrikam.com"} '
            "| Suspend-Message"
        )
        suspended = {m.InternalMessageId for m in await self.shell('Get-Message -Filter {Status -eq "Suspended"}')}
        self.assertEqual(suspended, set().union(*(part.suspended() for part in self.parts)))
        self.assertEqual(
            {part.spool.message(q).mailFrom for part in self.parts for q in part.suspended()},
            {"sender1@fabrikam.com"},
        )
        self.assertEqual(len(suspended), 2)
        await self.shell("Suspend-Queue HubA\\ToInternet")
        self.assertEqual([part.manager.hops.suspended for part in self.parts], [{"ToInternet"}] * 3)
        with self.assertRaises(ShellError) as caught:
            await self.shell("Retry-Queue HubA\\ToInternet")
        self.assertIn("resume it", str(caught.exception))
        self.assertEqual(sum(len(ids) for ids in queued), 9)


class MetricsTests(PartsTestCase):
    async def test_queueGauges(self):
        """
        A scrape of /metrics asks the parts: the queue gauges are the
        whole server's.
        """
        await self.fill(5)
        self.clock.advance(60)
        metrics = ServerMetrics("HubA")
        refresh = _refreshMetrics(metrics, self.parts[0].manager, None, self.admin)
        port = reactor.listenTCP(
            0, Site(monitoringResource(metrics, refresh, lambda: (True, {}))), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/metrics"

        def scrape():
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.read().decode()

        text = await threads.deferToThread(scrape)
        self.assertIn(
            'exmta_queue_messages{delivery_type="SmartHostConnectorDelivery",queue="ToInternet",'
            'status="Retry"} 5.0',
            text,
        )
        self.assertIn('queue="ByMX:tailspin.com",status="Retry"} 2.0', text)
        self.assertIn("exmta_queue_oldest_message_age_seconds 65.0", text)
