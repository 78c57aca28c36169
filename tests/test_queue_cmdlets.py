"""
Tests for L{exmta.shell.queue_cmdlets}: the queue cmdlets through the
Shell's runtime against a server running in this process (its send
connector points at a closed port, so messages retry), and
Get-MessageTrackingLog over tracking log files.
"""

import io
import os
import smtplib

from twisted.internet import reactor, threads
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from exmta.service import makeService
from exmta.shell.cmdlet import Context
from exmta.shell.queue_cmdlets import (
    ExportedMessage,
    MessageInfo,
    QueueInfo,
    getMessageTrackingLog,
)
from exmta.shell.host import Host
from exmta.shell.runtime import Session, ShellError, loadCmdlets
from exmta.tracking import MessageTrackingLog
from tests.e2e.harness import freePort, writeOrganization
from tests.test_queue import temporaryFolder
from tests.test_send_support import ZoneResolver

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
TransientFailureRetryInterval = 01:00:00

[AcceptedDomain fabrikam.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Relay]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.1

[ADPermission]
Identity = Relay
User = NT AUTHORITY\\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

# Nothing listens there: mail for other domains retries.
[SendConnector ToInternet]
AddressSpaces = *
SmartHosts = 127.0.0.1:{closed}
DNSRoutingEnabled = $false
"""

MESSAGE = b"Subject: quarterly\r\nMessage-ID: <q1@fabrikam.com>\r\n\r\nFigures.\r\n"


class ShellTestCase(TestCase):
    def setUp(self):
        loadCmdlets()
        self.folder = temporaryFolder(self)
        self.port = freePort()
        self.config = writeOrganization(
            self.folder, ORGANIZATION.format(port=self.port, closed=freePort())
        )
        self.server = makeService(self.config, "HubA", reactor=reactor, resolver=ZoneResolver({}))
        self.server.startService()
        self.addCleanup(lambda: self.server.running and self.server.stopService())
        self.queue = self.server.getServiceNamed("queue")
        self.output, self.errors = io.StringIO(), io.StringIO()
        self.session = Session(self.config, host=Host(io.StringIO(), self.output, self.errors))

    def shell(self, text):
        """
        Run a Shell line in a thread (the cmdlets block on the server,
        which runs in this reactor).

        @return: a Deferred firing with the objects it output.
        """
        return threads.deferToThread(self.session.invoke, text)

    async def failing(self, text):
        try:
            await self.shell(text)
        except ShellError as error:
            return str(error)
        self.fail(f"{text} succeeded")

    async def submit(self, sender, *recipients):
        def send():
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                client.sendmail(sender, list(recipients), MESSAGE)

        await threads.deferToThread(send)
        await self.settled()

    async def settled(self):
        """
        Wait until every message has been tried once, or parked behind a
        next hop in retry.
        """
        while True:
            await self.queue.whenIdle()
            messages = self.queue.spool.messages()
            parked = self.queue.hops.parkedMessages()
            if all(
                r.attempts or r.status != "Ready" or m.queueId in parked
                for m in messages for r in m.recipients
            ):
                return
            from twisted.internet.task import deferLater

            await deferLater(reactor, 0.02, lambda: None)


class GetQueueTests(ShellTestCase):
    async def test_retryingQueue(self):
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        queues = await self.shell("Get-Queue")
        self.assertEqual(
            [(q.Identity, q.DeliveryType, q.Status, q.MessageCount) for q in queues],
            [
                ("HubA\\Submission", "Undefined", "Ready", 0),
                ("HubA\\ToInternet", "SmartHostConnectorDelivery", "Retry", 1),
            ],
        )
        self.assertIsInstance(queues[1], QueueInfo)
        self.assertIn("Unable to connect", queues[1].LastError)
        self.assertIsNotNone(queues[1].NextRetryTime)
        [queue] = await self.shell('Get-Queue -Filter {Status -eq "Retry"}')
        self.assertEqual(queue.Identity, "HubA\\ToInternet")
        [queue] = await self.shell("Get-Queue HubA\\ToInternet -Server HubA")
        self.assertEqual(queue.MessageCount, 1)

    async def test_defaultTable(self):
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        await threads.deferToThread(self.session.run, "Get-Queue")
        header = self.output.getvalue().splitlines()[0].split()
        self.assertEqual(header, ["Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain"])

    async def test_unknownQueue(self):
        message = await self.failing("Get-Queue HubA\\Nowhere")
        self.assertIn("The queue HubA\\Nowhere was not found", message)

    async def test_notRunning(self):
        await self.server.stopService()
        message = await self.failing("Get-Queue")
        self.assertIn("Cannot reach TransportServer HubA: the server is not running", message)
        self.assertIn(f"twistd exmta -c {self.config} --server HubA", message)

    async def test_unknownServer(self):
        message = await self.failing("Get-Queue -Server HubZ")
        self.assertIn("no [TransportServer HubZ] is defined", message)


class MessageTests(ShellTestCase):
    async def test_getMessage(self):
        await self.submit("kim@fabrikam.com", "lee@contoso.com", "max@contoso.com")
        await self.submit("ann@fabrikam.com", "max@contoso.com")
        messages = await self.shell("Get-Message")
        self.assertEqual([m.FromAddress for m in messages], ["kim@fabrikam.com", "ann@fabrikam.com"])
        self.assertIsInstance(messages[0], MessageInfo)
        self.assertEqual(messages[0].Recipients, ("lee@contoso.com", "max@contoso.com"))
        self.assertEqual(messages[0].Status, "Retry")
        [ann] = await self.shell('Get-Message -Filter {FromAddress -eq "ann@fabrikam.com"}')
        self.assertEqual(ann.Identity, messages[1].Identity)
        [ann] = await self.shell("$who = 'ann@fabrikam.com'; Get-Message -Filter {FromAddress -eq $who}")
        self.assertEqual(ann.Identity, messages[1].Identity)
        self.assertEqual(len(await self.shell("Get-Message -Queue HubA\\ToInternet")), 2)
        [kim] = await self.shell(f"Get-Message {messages[0].Identity}")
        self.assertEqual(kim.FromAddress, "kim@fabrikam.com")
        message = await self.failing(f"Get-Message {kim.Identity} -Queue HubA\\ToInternet")
        self.assertIn("cannot be used together", message)
        self.assertEqual(len(await self.shell("Get-Message -ResultSize 1")), 1)
        self.assertIn("There are more results", self.errors.getvalue())

    async def test_suspendExportRemove(self):
        """
        The reference procedure: suspend, export to a .eml, remove silently.
        """
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        [message] = await self.shell("Get-Message -Queue HubA\\ToInternet")
        path = os.path.join(self.folder, "saved.eml")
        error = await self.failing(f"Export-Message {message.Identity} -Path {path}")
        self.assertIn("must be suspended", error)
        await self.shell(f"Suspend-Message -Identity {message.Identity}")
        [message] = await self.shell("Get-Message")
        self.assertEqual(message.Status, "Suspended")
        await self.shell(f"Export-Message -Identity {message.Identity} -Path {path}")
        with open(path, "rb") as handle:
            saved = handle.read()
        self.assertTrue(saved.endswith(MESSAGE))
        self.assertEqual(os.stat(path).st_mode & 0o077, 0)
        assembled = os.path.join(self.folder, "assembled.eml")
        await self.shell(f"Export-Message -Identity {message.Identity} | AssembleMessage -Path {assembled}")
        with open(assembled, "rb") as handle:
            self.assertEqual(handle.read(), saved)
        [exported] = await self.shell(f"Export-Message {message.Identity}")
        self.assertIsInstance(exported, ExportedMessage)
        self.assertEqual(exported.FileData, saved)
        await self.shell(f"Remove-Message -Identity {message.Identity} -WithNDR $false")
        self.assertEqual(await self.shell("Get-Message"), [])
        self.assertEqual(self.queue.spool.messages(), [])

    async def test_pipelines(self):
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        await self.submit("ann@fabrikam.com", "max@contoso.com")
        await self.shell("Get-Message -Queue HubA\\ToInternet | Suspend-Message")
        self.assertEqual({m.Status for m in await self.shell("Get-Message")}, {"Suspended"})
        await self.shell('Resume-Message -Filter {FromAddress -eq "ann@fabrikam.com"}')
        self.assertEqual(
            [(m.FromAddress, m.Status) for m in await self.shell("Get-Message")],
            [("kim@fabrikam.com", "Suspended"), ("ann@fabrikam.com", "Retry")],
        )
        await self.shell('Get-Message | Where-Object {$_.Status -eq "Suspended"} | Remove-Message -WithNDR $false')
        self.assertEqual([m.FromAddress for m in await self.shell("Get-Message")], ["ann@fabrikam.com"])

    async def test_removeWithNDR(self):
        """
        Remove-Message notifies the sender by default.
        """
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        await self.shell("Get-Message | Remove-Message")
        await self.settled()
        mailbox = os.path.join(self.folder, "var", "HubA", "mailboxes", "kim@fabrikam.com", "new")
        [name] = os.listdir(mailbox)
        with open(os.path.join(mailbox, name), "rb") as handle:
            self.assertIn(b"QUEUE.Admin; message deleted by", handle.read())

    async def test_whatIf(self):
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        [message] = await self.shell("Get-Message")
        await self.shell(f"Remove-Message {message.Identity} -WhatIf")
        self.assertIn('What if: Performing the operation "Remove-Message"', self.output.getvalue())
        self.assertEqual(len(await self.shell("Get-Message")), 1)

    async def test_withNDRMustBeBoolean(self):
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        [message] = await self.shell("Get-Message")
        error = await self.failing(f"Remove-Message {message.Identity} -WithNDR maybe")
        self.assertIn("WithNDR", error)


class QueueActionTests(ShellTestCase):
    async def test_suspendResumeRetry(self):
        await self.submit("kim@fabrikam.com", "lee@contoso.com")
        # The ToInternet queue exists once the message has been routed;
        # on a loaded machine Suspend-Queue could otherwise come first.
        await self.settled()
        await self.shell("Suspend-Queue -Identity HubA\\ToInternet")
        [queue] = await self.shell("Get-Queue HubA\\ToInternet")
        self.assertEqual(queue.Status, "Suspended")
        error = await self.failing("Retry-Queue HubA\\ToInternet")
        self.assertIn("resume it", error)
        await self.shell("Get-Queue -Filter {Status -eq 'Suspended'} | Resume-Queue")
        await self.settled()
        [queue] = await self.shell("Get-Queue HubA\\ToInternet")
        self.assertEqual(queue.Status, "Retry")
        [before] = self.queue.spool.messages()
        await self.shell("Retry-Queue -Identity HubA\\ToInternet")
        for _ in range(500):
            await self.queue.whenIdle()
            [after] = self.queue.spool.messages()
            if after.recipients[0].attempts > before.recipients[0].attempts:
                break
            from twisted.internet.task import deferLater

            await deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(after.recipients[0].attempts, before.recipients[0].attempts + 1)


class TrackingLogTests(TestCase):
    """
    Get-MessageTrackingLog reads the files, whether the server runs or not.
    """

    def setUp(self):
        folder = temporaryFolder(self)
        self.config = writeOrganization(
            folder,
            "[TransportServer HubA]\nFqdn = huba.fabrikam.com\nMessageTrackingLogPath = logA\n\n"
            "[TransportServer HubB]\nFqdn = hubb.fabrikam.com\nMessageTrackingLogPath = logB\n",
        )
        clock = Clock()
        log = MessageTrackingLog(os.path.join(folder, "logA"), clock)
        # 2026-01-01T00:00:00Z, then a day later: two files.
        clock.advance(1767225600)
        log.track("RECEIVE", source="SMTP", internalMessageId="A" * 24, messageId="<a1@fabrikam.com>",
                  sender="kim@fabrikam.com", recipients=["lee@contoso.com", "max@contoso.com"])
        clock.advance(60)
        log.track("DEFER", source="SMTP", internalMessageId="A" * 24, messageId="<a1@fabrikam.com>",
                  sender="kim@fabrikam.com", recipients=["lee@contoso.com"],
                  recipientStatus="451 4.4.1 Unable to connect")
        clock.advance(86400)
        log.track("SEND", source="SMTP", internalMessageId="A" * 24, messageId="<a1@fabrikam.com>",
                  sender="kim@fabrikam.com", recipients=["lee@contoso.com"], connectorId="ToInternet")
        log.track("RECEIVE", source="SMTP", internalMessageId="B" * 24, messageId="<b2@fabrikam.com>",
                  sender="ann@fabrikam.com", recipients=["kim@fabrikam.com"])
        log.close()
        with open(os.path.join(log.path, "MSGTRK20260102.log"), "a") as handle:
            handle.write('{"timestamp": "2026-01-02T00:01:00.000Z", "eventId": "DELI')  # cut short
        self.warnings = []
        self.context = Context(self.config, host=self)

    def writeWarning(self, message):
        self.warnings.append(message)

    def events(self, **parameters):
        parameters.setdefault("Server", "HubA")
        return [(e.EventId, e.InternalMessageId[0]) for e in getMessageTrackingLog(self.context, **parameters)]

    def test_all(self):
        self.assertEqual(
            self.events(), [("RECEIVE", "A"), ("DEFER", "A"), ("SEND", "A"), ("RECEIVE", "B")]
        )
        [event] = getMessageTrackingLog(self.context, EventId="defer", Server="HubA")
        self.assertEqual(event.RecipientStatus, "451 4.4.1 Unable to connect")
        self.assertEqual(event.Recipients, ("lee@contoso.com",))
        self.assertEqual(event.Timestamp.timestamp(), 1767225660)

    def test_filters(self):
        self.assertEqual(self.events(Sender="ANN@fabrikam.com"), [("RECEIVE", "B")])
        self.assertEqual(self.events(Recipients=("max@contoso.com", "nobody@x")), [("RECEIVE", "A")])
        self.assertEqual(self.events(MessageId="a1@fabrikam.com"), [("RECEIVE", "A"), ("DEFER", "A"), ("SEND", "A")])
        self.assertEqual(self.events(MessageId="<b2@fabrikam.com>"), [("RECEIVE", "B")])
        self.assertEqual(self.events(InternalMessageId="b" * 24), [("RECEIVE", "B")])
        self.assertEqual(self.events(EventId="SEND", Sender="kim@fabrikam.com"), [("SEND", "A")])

    def test_startAndEnd(self):
        self.assertEqual(self.events(Start="2026-01-01T00:01:00Z"), [("DEFER", "A"), ("SEND", "A"), ("RECEIVE", "B")])
        self.assertEqual(self.events(End="2026-01-01T00:01:00Z"), [("RECEIVE", "A")])
        self.assertEqual(
            self.events(Start="2026-01-01T00:00:30Z", End="2026-01-02T00:00:00Z"), [("DEFER", "A")]
        )
        with self.assertRaises(Exception) as caught:
            self.events(Start="yesterday-ish")
        self.assertIn("Start", str(caught.exception))

    def test_resultSize(self):
        self.assertEqual(self.events(ResultSize=2), [("RECEIVE", "A"), ("DEFER", "A")])
        self.assertEqual(len(self.warnings), 1)
        self.assertEqual(len(self.events(ResultSize="Unlimited")), 4)

    def test_otherServer(self):
        self.assertEqual(self.events(Server="HubB"), [])
        with self.assertRaises(Exception) as caught:
            getMessageTrackingLog(self.context)
        self.assertIn("choose one with -Server NAME", str(caught.exception))

    def test_throughTheShell(self):
        loadCmdlets()
        session = Session(self.config, host=Host(io.StringIO(), io.StringIO(), io.StringIO()))
        events = session.invoke("Get-MessageTrackingLog -Server HubA -Recipients lee@contoso.com -EventId SEND")
        self.assertEqual([(e.EventId, e.ConnectorId) for e in events], [("SEND", "ToInternet")])
