"""
Tests for L{exmta.deliver.maildir}.
"""

import os
import shutil
import stat
import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from exmta.deliver import MaildirDeliveryAgent
from exmta.envelope import QueuedMessage, QueuedRecipient
from exmta.errors import PermanentFailure, TransientFailure
from exmta.interfaces import IDeliveryAgent

MESSAGE = b"Subject: hello\r\n\r\nbinary \x00\xff and a . line\r\n.\r\n"


def queued(sender, *recipients):
    return QueuedMessage(
        queueId="00061A2B3C4D5EA1B2C3D4E5",
        mailFrom=sender,
        recipients=tuple(QueuedRecipient(r) for r in recipients),
        arrivalTime=0.0,
        size=len(MESSAGE),
    )


def temporaryFolder(case):
    path = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, path)
    return path


def newFiles(maildir):
    folder = os.path.join(maildir, "new")
    return {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}


class UniqueNameTests(SynchronousTestCase):
    def test_interface(self):
        agent = MaildirDeliveryAgent(temporaryFolder(self), reactor)
        self.assertTrue(verifyObject(IDeliveryAgent, agent))
        self.assertEqual(agent.name, "Maildir")

    def test_unique(self):
        """
        Names follow the Maildir spec (time, microseconds, pid, delivery
        count, host) and never repeat, even within one microsecond.
        """
        agent = MaildirDeliveryAgent(temporaryFolder(self), reactor, hostname="hub/a:1")
        names = [agent._uniqueName() for _ in range(1000)]
        self.assertEqual(len(set(names)), 1000)
        seconds, rest, host = names[0].split(".", 2)
        self.assertTrue(seconds.isdigit())
        self.assertRegex(rest, rf"^M\d+P{os.getpid()}Q\d+$")
        self.assertEqual(host, "hub\\057a\\0721")


class DeliveryTests(TestCase):
    def setUp(self):
        self.root = temporaryFolder(self)
        self.agent = MaildirDeliveryAgent(os.path.join(self.root, "mailboxes"), reactor)

    async def test_deliver(self):
        """
        A copy lands in new/ with Return-Path and Delivered-To before the
        exact message bytes; the Maildir is created private.
        """
        message = queued("alice@contoso.com", "bob@fabrikam.com")
        results = await self.agent.deliver(message, {"bob@fabrikam.com": "bob@fabrikam.com"}, MESSAGE)
        self.assertEqual(results, {"bob@fabrikam.com": None})
        maildir = os.path.join(self.root, "mailboxes", "bob@fabrikam.com")
        for sub in ("cur", "new", "tmp"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(maildir, sub)).st_mode) & 0o077, 0)
        self.assertEqual(os.listdir(os.path.join(maildir, "tmp")), [])
        self.assertEqual(
            list(newFiles(maildir).values()),
            [
                b"Return-Path: <alice@contoso.com>\r\nDelivered-To: bob@fabrikam.com\r\n"
                + MESSAGE
            ],
        )

    async def test_nullSender(self):
        message = queued("", "bob@fabrikam.com")
        await self.agent.deliver(message, {"bob@fabrikam.com": "bob@fabrikam.com"}, MESSAGE)
        maildir = os.path.join(self.root, "mailboxes", "bob@fabrikam.com")
        (content,) = newFiles(maildir).values()
        self.assertTrue(content.startswith(b"Return-Path: <>\r\nDelivered-To: bob@fabrikam.com\r\n"))

    async def test_oneCopyPerDistinctAddress(self):
        """
        Two addresses of one mailbox each get their own copy in its folder;
        one address spelt twice gets one.
        """
        message = queued("alice@contoso.com", "bob@fabrikam.com", "robert@fabrikam.com", "BOB@fabrikam.com")
        folder = "bob@fabrikam.com"
        results = await self.agent.deliver(
            message,
            {"bob@fabrikam.com": folder, "robert@fabrikam.com": folder, "BOB@fabrikam.com": folder},
            MESSAGE,
        )
        self.assertEqual(
            results,
            {"bob@fabrikam.com": None, "robert@fabrikam.com": None, "BOB@fabrikam.com": None},
        )
        copies = newFiles(os.path.join(self.root, "mailboxes", folder))
        self.assertEqual(len(copies), 2)
        deliveredTo = sorted(content.split(b"\r\n")[1] for content in copies.values())
        self.assertEqual(
            deliveredTo, [b"Delivered-To: bob@fabrikam.com", b"Delivered-To: robert@fabrikam.com"]
        )
        for content in copies.values():
            self.assertTrue(content.endswith(b"\r\n" + MESSAGE))

    async def test_severalFolders(self):
        message = queued("alice@contoso.com", "bob@fabrikam.com", "carol@fabrikam.com")
        results = await self.agent.deliver(
            message,
            {"bob@fabrikam.com": "bob@fabrikam.com", "carol@fabrikam.com": "carol@fabrikam.com"},
            MESSAGE,
        )
        self.assertEqual(results, {"bob@fabrikam.com": None, "carol@fabrikam.com": None})
        for folder in ("bob@fabrikam.com", "carol@fabrikam.com"):
            self.assertEqual(len(newFiles(os.path.join(self.root, "mailboxes", folder))), 1)

    async def test_diskErrorIsTransient(self):
        """
        A folder that cannot be made is a transient failure for its
        recipients only.
        """
        root = os.path.join(self.root, "mailboxes")
        os.makedirs(root)
        with open(os.path.join(root, "carol@fabrikam.com"), "wb"):
            pass
        message = queued("alice@contoso.com", "bob@fabrikam.com", "carol@fabrikam.com")
        results = await self.agent.deliver(
            message,
            {"bob@fabrikam.com": "bob@fabrikam.com", "carol@fabrikam.com": "carol@fabrikam.com"},
            MESSAGE,
        )
        self.assertIsNone(results["bob@fabrikam.com"])
        failure = results["carol@fabrikam.com"]
        self.assertIsInstance(failure, TransientFailure)
        self.assertEqual((failure.reply.code, failure.reply.status), (451, "4.3.0"))

    async def test_unusableFolderName(self):
        """
        A folder name that would leave the root is refused, not written.
        """
        message = queued("alice@contoso.com", "x@fabrikam.com")
        results = await self.agent.deliver(message, {"x@fabrikam.com": "../escape"}, MESSAGE)
        self.assertIsInstance(results["x@fabrikam.com"], PermanentFailure)
        self.assertFalse(os.path.exists(os.path.join(self.root, "escape")))
