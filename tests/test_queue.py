"""
Tests for L{exmta.queue}: the spool's durability contract and the queue
manager.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from exmta import durable
from exmta.config import parseOrganization
from exmta.deliver import MaildirDeliveryAgent
from exmta.envelope import Address, Envelope, QueuedRecipient, Session
from exmta.errors import ConfigError, TransientFailure
from exmta.interfaces import IDeliveryAgent, IMessageQueue
from exmta.queue.manager import QueueManager
from exmta.queue.spool import DELIVERED, FAILED, READY, Spool
from exmta.queue.spool import partPath
from exmta.queue.manager import RECIPIENT_NOT_FOUND, WAITING_FOR_SEND_CONNECTOR
from exmta.routing import Resolver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MESSAGE = b"Received: from client\r\nSubject: test\r\n\r\nHello\r\n.. dot\r\n"


@dataclass(frozen=True)
class Principal:
    name: str


SESSION = Session(
    connector="Default HubA",
    server="HubA",
    localHost="127.0.0.1",
    localPort=2525,
    peerHost="192.0.2.7",
    peerPort=50123,
    helo="client.contoso.com",
    tlsVersion="TLSv1.3",
    principal=Principal("NT AUTHORITY\\ANONYMOUS LOGON"),
)


def envelope(*recipients, sender="alice@contoso.com", body="7BIT"):
    def address(text):
        localPart, _, domain = text.rpartition("@")
        return Address(localPart, domain)

    return Envelope(address(sender), tuple(address(r) for r in recipients), body)


def temporaryFolder(case):
    path = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, path)
    return path


def files(path):
    return sorted(os.listdir(path))


class SpoolTests(TestCase):
    def setUp(self):
        self.path = os.path.join(temporaryFolder(self), "queue")
        self.spool = Spool.open(self.path, reactor)
        self.spools = [self.spool]
        self.addCleanup(lambda: [s.close() for s in self.spools])
        self.messages = os.path.join(self.path, "messages")

    def reopen(self):
        """
        Open the queue again, as the next start would.
        """
        self.spools.remove(self.spool)
        self.spool.close()
        self.spool = Spool.open(self.path, reactor)
        self.spools.append(self.spool)
        return self.spool

    def journal(self, hasSyncfs=True):
        """
        Record the file operations that make the spool durable, in order:
        files created and written (C{written}, at their close), syncfs,
        fsyncs, renames and unlinks.

        @param hasSyncfs: whether the system has syncfs; without it the spool
            fsyncs each file.
        """
        journal = []
        names = {}
        created = set()
        realOpen, realClose, realFsync = os.open, os.close, os.fsync
        realRename, realUnlink = os.rename, os.unlink
        realSyncfs = durable._syncfs

        def open_(path, flags, *args, **kwargs):
            descriptor = realOpen(path, flags, *args, **kwargs)
            names[descriptor] = os.path.relpath(path, self.path)
            if flags & os.O_CREAT:
                created.add(descriptor)
            return descriptor

        def close(descriptor):
            realClose(descriptor)
            if descriptor in created:
                created.discard(descriptor)
                journal.append(("written", names[descriptor]))

        def fsync(descriptor):
            realFsync(descriptor)
            journal.append(("fsync", names[descriptor]))

        def syncfs(descriptor):
            result = realSyncfs(descriptor)
            journal.append(("syncfs",))
            return result

        def rename(source, destination):
            realRename(source, destination)
            journal.append(
                ("rename", os.path.relpath(source, self.path), os.path.relpath(destination, self.path))
            )

        def unlink(path, **keywords):
            realUnlink(path, **keywords)
            journal.append(("unlink", os.path.relpath(path, self.path)))

        self.patch(os, "open", open_)
        self.patch(os, "close", close)
        self.patch(os, "fsync", fsync)
        self.patch(os, "rename", rename)
        self.patch(os, "unlink", unlink)
        self.patch(durable, "_syncfs", syncfs if hasSyncfs and realSyncfs else None)
        return journal

    def test_interface(self):
        self.assertTrue(verifyObject(IMessageQueue, self.spool))

    def test_folders(self):
        """
        Opening creates the queue's folders, private to the server.
        """
        self.assertEqual(files(self.path), ["instance", "lock", "messages", "tmp"])
        for folder in (self.path, self.messages, os.path.join(self.path, "tmp")):
            self.assertEqual(stat.S_IMODE(os.stat(folder).st_mode) & 0o077, 0)

    async def test_enqueue(self):
        """
        Once enqueue fires, the message is in messages/ byte for byte with
        its envelope beside it, and tmp/ is empty.
        """
        queueId = await self.spool.enqueue(
            envelope("bob@fabrikam.com", "carol@example.org", body="8BITMIME"), SESSION, MESSAGE
        )
        self.assertEqual(files(self.messages), [queueId + ".eml", queueId + ".json"])
        self.assertEqual(files(os.path.join(self.path, "tmp")), [])
        with open(os.path.join(self.messages, queueId + ".eml"), "rb") as handle:
            self.assertEqual(handle.read(), MESSAGE)
        for name in files(self.messages):
            mode = os.stat(os.path.join(self.messages, name)).st_mode
            self.assertEqual(stat.S_IMODE(mode) & 0o077, 0)
        with open(os.path.join(self.messages, queueId + ".json"), "rb") as handle:
            document = json.loads(handle.read())
        arrivalTime = document.pop("arrivalTime")
        self.assertIsInstance(arrivalTime, float)
        self.assertEqual(
            document,
            {
                "version": 2,
                "queueId": queueId,
                "mailFrom": "alice@contoso.com",
                "size": len(MESSAGE),
                "body": "8BITMIME",
                "delayNotified": False,
                "receivedFrom": {
                    "connector": "Default HubA",
                    "server": "HubA",
                    "peerHost": "192.0.2.7",
                    "peerPort": 50123,
                    "helo": "client.contoso.com",
                    "principal": "NT AUTHORITY\\ANONYMOUS LOGON",
                    "tlsVersion": "TLSv1.3",
                },
                "recipients": [
                    {"address": "bob@fabrikam.com", "status": "Ready", "lastError": None,
                     "attempts": 0, "nextRetryTime": None, "nextHop": None},
                    {"address": "carol@example.org", "status": "Ready", "lastError": None,
                     "attempts": 0, "nextRetryTime": None, "nextHop": None},
                ],
            },
        )
        (queued,) = self.spool.messages()
        self.assertEqual(queued.queueId, queueId)
        self.assertEqual(queued.arrivalTime, arrivalTime)
        self.assertEqual(await self.spool.messageBytes(queueId), MESSAGE)

    async def test_deliveryStatusNotificationParameters(self):
        """
        RFC 3461's RET, ENVID, NOTIFY and ORCPT are kept (version 3); a
        message without them stays version 2, which older readers take.
        """
        given = replace(
            envelope("bob@fabrikam.com", "carol@example.org"),
            ret="HDRS", envid="QQ+314", smtputf8=True,
            recipientDsn={"bob@fabrikam.com": ("SUCCESS,FAILURE", "rfc822;Bob@Fabrikam.com")},
        )
        queueId = await self.spool.enqueue(given, SESSION, MESSAGE)
        with open(os.path.join(self.messages, queueId + ".json"), "rb") as handle:
            document = json.loads(handle.read())
        self.assertEqual(document["version"], 3)
        self.assertEqual((document["ret"], document["envid"], document["smtputf8"]),
                         ("HDRS", "QQ+314", True))
        self.assertEqual(
            [(r.get("notify"), r.get("orcpt")) for r in document["recipients"]],
            [("SUCCESS,FAILURE", "rfc822;Bob@Fabrikam.com"), (None, None)],
        )
        (queued,) = self.reopen().messages()
        self.assertEqual((queued.ret, queued.envid, queued.smtputf8), ("HDRS", "QQ+314", True))
        self.assertEqual(
            [(r.notify, r.orcpt) for r in queued.recipients],
            [("SUCCESS,FAILURE", "rfc822;Bob@Fabrikam.com"), (None, None)],
        )

    async def test_nullSenderAndNoPrincipal(self):
        session = replace(SESSION, principal=None, helo=None, tlsVersion=None)
        queueId = await self.spool.enqueue(
            envelope("bob@fabrikam.com", sender="@"), session, MESSAGE
        )
        (queued,) = self.reopen().messages()
        self.assertEqual(queued.queueId, queueId)
        self.assertEqual(queued.mailFrom, "")
        self.assertEqual(queued.receivedFrom["principal"], None)

    async def test_commitOrder(self):
        """
        The message and its envelope are written and made durable (one
        syncfs) before they are renamed in, the message first; the
        directory is fsynced last; only then does enqueue fire.
        """
        journal = self.journal()
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        journal.append("fired")
        tmp = os.path.join("tmp", queueId)
        final = os.path.join("messages", queueId)
        self.assertEqual(
            journal,
            [
                ("written", tmp + ".eml"),
                ("written", tmp + ".json"),
                ("syncfs",),
                ("rename", tmp + ".eml", final + ".eml"),
                ("rename", tmp + ".json", final + ".json"),
                ("fsync", "messages"),
                "fired",
            ],
        )

    async def test_commitOrderWithoutSyncfs(self):
        """
        Where there is no syncfs, each file the batch wrote is fsynced.
        """
        journal = self.journal(hasSyncfs=False)
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        journal.append("fired")
        tmp = os.path.join("tmp", queueId)
        final = os.path.join("messages", queueId)
        self.assertEqual(
            journal,
            [
                ("written", tmp + ".eml"),
                ("written", tmp + ".json"),
                ("fsync", tmp + ".eml"),
                ("fsync", tmp + ".json"),
                ("rename", tmp + ".eml", final + ".eml"),
                ("rename", tmp + ".json", final + ".json"),
                ("fsync", "messages"),
                "fired",
            ],
        )

    async def test_groupCommit(self):
        """
        Messages enqueued while the writer is busy share one syncfs and one
        directory fsync, and each enqueue still fires only after its own
        files were made durable, renamed in, and the directory fsynced.
        """
        journal = self.journal()
        recordingSyncfs = durable._syncfs
        busy, release = threading.Event(), threading.Event()

        def slowFirstSync(descriptor):
            if not busy.is_set():
                busy.set()
                release.wait()
            return recordingSyncfs(descriptor)

        self.patch(durable, "_syncfs", slowFirstSync)
        enqueues = [self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)]
        busy.wait()
        enqueues += [
            self.spool.enqueue(envelope(f"r{n}@fabrikam.com"), SESSION, MESSAGE) for n in range(19)
        ]

        def fired(queueId):
            journal.append(("fired", queueId))
            return queueId

        for enqueued in enqueues:
            enqueued.addCallback(fired)
        release.set()
        queueIds = [await enqueued for enqueued in enqueues]

        syncs = [n for n, entry in enumerate(journal) if entry == ("syncfs",)]
        folderSyncs = [n for n, entry in enumerate(journal) if entry == ("fsync", "messages")]
        self.assertEqual((len(syncs), len(folderSyncs)), (2, 2))
        for queueId in queueIds:
            tmp, final = os.path.join("tmp", queueId), os.path.join("messages", queueId)
            written = max(journal.index(("written", tmp + ".eml")),
                          journal.index(("written", tmp + ".json")))
            renamed = journal.index(("rename", tmp + ".json", final + ".json"))
            fired = journal.index(("fired", queueId))
            self.assertLess(journal.index(("rename", tmp + ".eml", final + ".eml")), renamed)
            self.assertTrue(any(written < n < renamed for n in syncs), queueId)
            self.assertTrue(any(renamed < n < fired for n in folderSyncs), queueId)
        self.assertEqual(len(self.reopen().messages()), 20)

    def test_closeFinishesWhatWasAsked(self):
        """
        Closing the spool (a clean stop) finishes the writes in flight
        before it returns: their enqueues have fired and the messages
        are there at the next open.
        """
        outcomes = []
        for n in range(3):
            self.spool.enqueue(envelope(f"r{n}@fabrikam.com"), SESSION, MESSAGE).addBoth(
                outcomes.append
            )
        self.spools.remove(self.spool)
        self.spool.close()
        self.assertEqual(len(outcomes), 3)
        self.assertEqual(
            sorted(outcomes), [name[:-4] for name in files(self.messages) if name.endswith(".eml")]
        )
        self.spool = Spool.open(self.path, reactor)
        self.spools.append(self.spool)
        self.assertEqual(len(self.spool.messages()), 3)

    async def test_updateOrder(self):
        """
        An update is a new envelope, made durable, renamed over the old one, then
        a directory fsync; a removal unlinks the envelope (the commit point)
        before the message, and needs no fsync: a crash that undoes it
        brings the message back, to be delivered again, never lost.
        """
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com", "carol@fabrikam.com"), SESSION, MESSAGE)
        (queued,) = self.spool.messages()
        journal = self.journal()
        bob, carol = queued.recipients
        await self.spool.update(replace(queued, recipients=(replace(bob, status=DELIVERED), carol)))
        journal.append("updated")
        await self.spool.update(
            replace(queued, recipients=(replace(bob, status=DELIVERED), replace(carol, status=FAILED)))
        )
        journal.append("removed")
        (writtenTemporary, synced, renamed, fsyncFolder, updated, *removal) = journal
        self.assertEqual(writtenTemporary[0], "written")
        self.assertTrue(writtenTemporary[1].startswith(os.path.join("tmp", queueId)))
        self.assertEqual(synced, ("syncfs",))
        self.assertEqual(renamed, ("rename", writtenTemporary[1], os.path.join("messages", queueId + ".json")))
        self.assertEqual((fsyncFolder, updated), (("fsync", "messages"), "updated"))
        self.assertEqual(
            removal,
            [
                ("unlink", os.path.join("messages", queueId + ".json")),
                ("unlink", os.path.join("messages", queueId + ".eml")),
                "removed",
            ],
        )

    async def test_recentMessagesAreNotReadBack(self):
        """
        The first delivery attempt of a message just enqueued gets its
        bytes without reading the file; older ones are read.
        """
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        journal = self.journal()
        self.assertEqual(await self.spool.messageBytes(queueId), MESSAGE)
        self.assertEqual(journal, [])
        self.assertEqual(await self.reopen().messageBytes(queueId), MESSAGE)

    async def test_failedFolderSyncLeavesNothing(self):
        """
        If the directory cannot be fsynced, the enqueues of that batch fail
        (their clients hear 451) and leave no files.
        """
        realFsync = os.fsync

        def fsync(descriptor):
            if os.path.samestat(os.fstat(descriptor), os.stat(self.messages)):
                raise OSError(5, "Input/output error")
            realFsync(descriptor)

        self.patch(os, "fsync", fsync)
        with self.assertRaises(OSError):
            await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        self.assertEqual(files(self.messages), [])
        self.assertEqual(files(os.path.join(self.path, "tmp")), [])
        self.assertEqual(self.spool.messages(), [])

    async def test_failedCommitLeavesNothing(self):
        """
        If the envelope cannot be committed, enqueue fails and neither file
        is left where a later open could take it for a message.
        """
        realRename = os.rename

        def rename(source, destination):
            if destination.endswith(".json"):
                raise OSError(28, "No space left on device")
            realRename(source, destination)

        self.patch(os, "rename", rename)
        with self.assertRaises(OSError):
            await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        self.assertEqual(files(self.messages), [])
        self.assertEqual(files(os.path.join(self.path, "tmp")), [])
        self.assertEqual(self.spool.messages(), [])

    async def test_recovery(self):
        """
        At open, committed messages are found again; an .eml without its
        .json, a .json without its .eml and anything in tmp/ are what a crash
        mid-commit leaves, and are deleted.
        """
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        (before,) = self.spool.messages()
        with open(os.path.join(self.messages, "0000000000000000000000AA.eml"), "wb") as handle:
            handle.write(b"Subject: half")
        shutil.copy(
            os.path.join(self.messages, queueId + ".json"),
            os.path.join(self.messages, "0000000000000000000000BB.json"),
        )
        with open(os.path.join(self.path, "tmp", "0000000000000000000000CC.eml"), "wb") as handle:
            handle.write(b"Subject: being written")
        self.reopen()
        self.assertEqual(self.spool.messages(), [before])
        self.assertEqual(files(self.messages), [queueId + ".eml", queueId + ".json"])
        self.assertEqual(files(os.path.join(self.path, "tmp")), [])

    async def test_reopenedMessagesShareStrings(self):
        """
        A long queue read at open keeps one copy of the strings its
        messages have in common.
        """
        for _ in range(2):
            await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        first, second = self.reopen().messages()
        self.assertEqual(first.receivedFrom, second.receivedFrom)
        for key in ("connector", "server", "peerHost", "principal"):
            self.assertIs(first.receivedFrom[key], second.receivedFrom[key])
        self.assertIs(first.mailFrom, second.mailFrom)
        self.assertIs(first.recipients[0].status, second.recipients[0].status)

    async def test_mismatchLeftAlone(self):
        """
        A message whose .eml is not the size its .json records, or whose
        .json cannot be read, is not queued but not destroyed either.
        """
        first = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        second = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        with open(os.path.join(self.messages, first + ".eml"), "ab") as handle:
            handle.write(b"more")
        with open(os.path.join(self.messages, second + ".json"), "wb") as handle:
            handle.write(b"{not json")
        self.reopen()
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(len(files(self.messages)), 4)

    async def test_oldestFirst(self):
        queueIds = []
        for _ in range(3):
            queueIds.append(await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE))
        self.assertEqual([m.queueId for m in self.spool.messages()], queueIds)
        self.assertEqual([m.queueId for m in self.reopen().messages()], queueIds)

    async def test_update(self):
        """
        An update is durable; once no recipient is Ready the message leaves
        the queue, on disk too.
        """
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com", "carol@example.org"), SESSION, MESSAGE)
        (queued,) = self.spool.messages()
        bob, carol = queued.recipients
        waiting = replace(carol, lastError=WAITING_FOR_SEND_CONNECTOR)
        queued = replace(queued, recipients=(replace(bob, status=DELIVERED), waiting))
        await self.spool.update(queued)
        self.assertEqual(self.spool.messages(), [queued])
        self.assertEqual(self.reopen().messages(), [queued])
        await self.spool.update(replace(queued, recipients=(queued.recipients[0], replace(waiting, status=FAILED))))
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(files(self.messages), [])
        self.assertEqual(self.reopen().messages(), [])
        with self.assertRaises(KeyError):
            await self.spool.messageBytes(queueId)

    async def test_retryState(self):
        """
        A recipient's attempts, next retry time and next hop, and whether
        the sender was told of a delay, survive a restart.
        """
        await self.spool.enqueue(envelope("bob@fabrikam.com", "carol@example.org"), SESSION, MESSAGE)
        (queued,) = self.spool.messages()
        bob, carol = queued.recipients
        queued = replace(
            queued,
            delayNotified=True,
            recipients=(
                replace(bob, status=DELIVERED),
                replace(carol, lastError="451 4.4.0 Try later", attempts=3,
                        nextRetryTime=1717171777.5, nextHop="ToInternet"),
            ),
        )
        await self.spool.update(queued)
        self.assertEqual(self.reopen().messages(), [queued])
        self.assertEqual(self.spool.message(queued.queueId), queued)
        self.assertIsNone(self.spool.message("0" * 24))

    async def test_readsVersion1(self):
        """
        An envelope written in version 1, before the send side, is read
        with the new fields' defaults, and rewritten as version 2.
        """
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        path = os.path.join(self.messages, queueId + ".json")
        with open(path, "rb") as handle:
            document = json.loads(handle.read())
        document["version"] = 1
        del document["delayNotified"]
        for recipient in document["recipients"]:
            for key in ("attempts", "nextRetryTime", "nextHop"):
                del recipient[key]
        with open(path, "w") as handle:
            json.dump(document, handle)
        (queued,) = self.reopen().messages()
        self.assertEqual(queued.recipients, (QueuedRecipient("bob@fabrikam.com"),))
        self.assertFalse(queued.delayNotified)
        await self.spool.update(replace(queued, recipients=(QueuedRecipient("bob@fabrikam.com", attempts=1),)))
        with open(path, "rb") as handle:
            self.assertEqual(json.loads(handle.read())["version"], 2)

    async def test_unknownVersionLeftAlone(self):
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        path = os.path.join(self.messages, queueId + ".json")
        with open(path, "rb") as handle:
            document = json.loads(handle.read())
        document["version"] = 4
        with open(path, "w") as handle:
            json.dump(document, handle)
        self.assertEqual(self.reopen().messages(), [])
        self.assertEqual(files(self.messages), [queueId + ".eml", queueId + ".json"])

    async def test_arrivalTimeFromClock(self):
        """
        Arrival times come from the clock the spool is given.
        """
        clock = Clock()
        clock.advance(1234.5)
        self.spools.remove(self.spool)
        self.spool.close()
        self.spool = Spool.open(self.path, reactor, clock)
        self.spools.append(self.spool)
        await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        (queued,) = self.spool.messages()
        self.assertEqual(queued.arrivalTime, 1234.5)

    async def test_updatesInOrder(self):
        """
        Updates asked for together are written in order: the last one asked
        for is what stays, and a message removed stays removed.
        """
        await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        (queued,) = self.spool.messages()
        states = [
            replace(queued, recipients=(QueuedRecipient("bob@fabrikam.com", READY, f"try {n}"),))
            for n in range(10)
        ]
        writes = [self.spool.update(state) for state in states]
        for write in writes:
            await write
        self.assertEqual(self.spool.messages(), [states[-1]])
        self.assertEqual(self.reopen().messages(), [states[-1]])

        (queued,) = self.spool.messages()
        done = replace(queued, recipients=(QueuedRecipient("bob@fabrikam.com", DELIVERED),))
        removal = self.spool.update(done)
        late = self.spool.update(states[0])
        await removal
        with self.assertRaises(KeyError):
            await late
        self.assertEqual(files(self.messages), [])

    async def test_removalWaitsForTheUpdateInFlight(self):
        """
        A removal asked for while an update of the same message is still
        being written happens after it: the update's envelope cannot come
        back once the message is gone.
        """
        await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        (queued,) = self.spool.messages()
        waiting = replace(queued, recipients=(QueuedRecipient("bob@fabrikam.com", READY, "later"),))
        done = replace(queued, recipients=(QueuedRecipient("bob@fabrikam.com", DELIVERED),))
        update = self.spool.update(waiting)
        removal = self.spool.update(done)
        await update
        await removal
        self.assertEqual(files(self.messages), [])
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(self.reopen().messages(), [])

    async def test_removalsOfOneTurnShareAThreadCall(self):
        """
        The removals asked for in one reactor turn are made by one call in
        the reactor's thread pool, not one each; a message whose files are
        already gone fails alone.
        """
        for n in range(5):
            await self.spool.enqueue(envelope(f"r{n}@fabrikam.com"), SESSION, MESSAGE)
        queued = self.spool.messages()
        os.unlink(os.path.join(self.messages, queued[2].queueId + ".json"))
        pool = reactor.getThreadPool()
        calls = []
        real = pool.callInThreadWithCallback

        def counted(*arguments, **keywords):
            calls.append(arguments)
            return real(*arguments, **keywords)

        self.patch(pool, "callInThreadWithCallback", counted)
        removals = [
            self.spool.update(replace(q, recipients=(replace(q.recipients[0], status=DELIVERED),)))
            for q in queued
        ]
        outcomes = await DeferredList(removals, consumeErrors=True)
        self.assertEqual(len(calls), 1)
        self.assertEqual([ok for ok, _ in outcomes], [True, True, False, True, True])
        outcomes[2][1].trap(FileNotFoundError)
        self.assertEqual(files(self.messages), [queued[2].queueId + ".eml"])
        self.assertEqual(self.spool.messages(), [queued[2]])

    async def test_updateUnknown(self):
        await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        (queued,) = self.spool.messages()
        with self.assertRaises(KeyError):
            await self.spool.update(replace(queued, queueId="0" * 24))

    async def test_onEnqueued(self):
        """
        Observers hear of each committed message before enqueue fires; one
        that raises is logged and changes nothing for the client.
        """
        heard = []

        def broken(queued):
            raise RuntimeError("observer bug")

        self.spool.onEnqueued.extend([broken, heard.append])
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        self.assertEqual(heard, self.spool.messages())
        self.assertEqual(heard[0].queueId, queueId)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def openPart(self, part):
        spool = Spool.open(partPath(self.path, part), reactor, part=part)
        self.spools.append(spool)
        return spool

    def closePart(self, spool):
        self.spools.remove(spool)
        spool.close()

    async def test_aPartQueuesInItsOwnFolders(self):
        """
        A part's spool (a worker process's) commits into its own folder
        under C{parts/}, and its queue ids end with its number: unique
        across the server's parts.
        """
        part = self.openPart(0x2A)
        queueId = await part.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        self.assertTrue(queueId.endswith("2A"), queueId)
        self.assertEqual(len(queueId), 24)
        own = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        self.assertTrue(own.endswith("00"), own)
        folder = os.path.join(self.path, "parts", "2A")
        self.assertEqual(
            files(os.path.join(folder, "messages")), [queueId + ".eml", queueId + ".json"]
        )
        self.assertEqual(files(self.messages), [own + ".eml", own + ".json"])
        self.assertIsNone(part.instance)
        self.assertNotIn("instance", files(folder))

    async def test_adoptPart(self):
        """
        A part whose process has ended is adopted: its messages move into
        the queue folder's C{messages/}, durably, keep their queue ids and
        are announced to C{onAdopted} (not C{onEnqueued}: they were
        queued before); its folder, C{tmp/} and all, is removed.
        """
        part = self.openPart(3)
        queueId = await part.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        (queued,) = part.messages()
        with open(os.path.join(part.path, "tmp", "stale.json"), "w") as handle:
            handle.write("{")
        self.closePart(part)
        adopted, enqueued = [], []
        self.spool.onAdopted.append(adopted.append)
        self.spool.onEnqueued.append(enqueued.append)
        journal = self.journal()
        self.assertEqual(self.spool.adoptPart(3), 1)
        self.assertEqual(adopted, [queued])
        self.assertEqual(enqueued, [])
        self.assertEqual(self.spool.messages(), [queued])
        self.assertEqual(await self.spool.messageBytes(queueId), MESSAGE)
        source = os.path.join("parts", "03", "messages", queueId)
        target = os.path.join("messages", queueId)
        self.assertEqual(
            [entry for entry in journal if entry[0] in ("rename", "fsync")],
            [
                ("rename", source + ".eml", target + ".eml"),
                ("rename", source + ".json", target + ".json"),
                ("fsync", "messages"),
            ],
        )
        self.assertEqual(files(os.path.join(self.path, "parts")), [])
        self.assertEqual(self.spool.adoptPart(3), 0)
        self.assertEqual(self.reopen().messages(), [queued])

    async def test_aPartInUseIsNotAdopted(self):
        """
        A part a process still has open is not adopted: nothing moves.
        """
        part = self.openPart(4)
        await part.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        with self.assertRaises(ConfigError):
            self.spool.adoptPart(4)
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(len(files(os.path.join(part.path, "messages"))), 2)

    async def test_openAdoptsThePartsLeft(self):
        """
        Opening the queue folder adopts every part left (the server
        stopped, or crashed) before reading its own messages: a message
        whose adoption a crash interrupted (its C{.eml} moved, its
        C{.json} not) is finished, a part's unfinished enqueue is removed.
        """
        first = self.openPart(1)
        second = self.openPart(2)
        one = await first.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        two = await second.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        half = await second.enqueue(envelope("carol@fabrikam.com"), SESSION, MESSAGE)
        expected = sorted(first.messages() + second.messages(), key=lambda m: m.queueId)
        self.closePart(first)
        self.closePart(second)
        os.rename(
            os.path.join(second.path, "messages", half + ".eml"),
            os.path.join(self.messages, half + ".eml"),
        )
        with open(os.path.join(second.path, "messages", "0" * 22 + "02.eml"), "wb") as handle:
            handle.write(MESSAGE)
        self.assertEqual(
            sorted(self.reopen().messages(), key=lambda m: m.queueId), expected
        )
        self.assertEqual(
            files(self.messages),
            sorted(f"{i}.{kind}" for i in (one, two, half) for kind in ("eml", "json")),
        )
        self.assertEqual(files(os.path.join(self.path, "parts")), [])

    def test_locked(self):
        """
        Only one spool at a time may have a queue folder open.
        """
        with self.assertRaises(ConfigError) as caught:
            Spool.open(self.path, reactor)
        self.assertIn("QueueDatabasePath", str(caught.exception))
        self.reopen()


CRASH_SCRIPT = """
import os, sys
from twisted.internet import reactor
from exmta.envelope import Address, Envelope, Session
from exmta.queue.spool import Spool

spool = Spool.open(sys.argv[1], reactor)
session = Session("Default HubA", "HubA", "127.0.0.1", 25, "192.0.2.7", 50123)
envelope = Envelope(Address("alice", "contoso.com"), (Address("bob", "fabrikam.com"),))
counter = iter(range(10**9))

def failed(reason):
    sys.stderr.write(reason.getTraceback())
    os._exit(1)

def enqueued(queueId, number):
    sys.stdout.write(f"{number} {queueId}\\n")
    sys.stdout.flush()
    enqueueNext()

def enqueueNext():
    number = next(counter)
    message = b"Subject: %d\\r\\n\\r\\n" % number + b"line %d\\r\\n" % number * 4000
    spool.enqueue(envelope, session, message).addCallback(enqueued, number).addErrback(failed)

for _ in range(8):
    enqueueNext()
reactor.run()
"""


def crashMessage(number):
    return b"Subject: %d\r\n\r\n" % number + b"line %d\r\n" % number * 4000


class CrashTests(SynchronousTestCase):
    def test_killed(self):
        """
        A process enqueueing eight messages at a time is killed with SIGKILL
        just after it has reported some queue ids.  Every reported id is
        whole in the next open, and nothing there is a partial message.
        """
        path = os.path.join(temporaryFolder(self), "queue")
        environment = dict(os.environ, PYTHONPATH=ROOT)
        reported = {}
        for stopAfter in (5, 40, 17):
            process = subprocess.Popen(
                [sys.executable, "-c", CRASH_SCRIPT, path],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment,
            )
            self.addCleanup(process.stderr.close)
            self.addCleanup(process.stdout.close)
            for _ in range(stopAfter):
                line = process.stdout.readline()
                if not line:
                    process.wait()
                    self.fail(process.stderr.read().decode())
                number, queueId = line.split()
                reported[queueId.decode()] = int(number)
            process.send_signal(signal.SIGKILL)
            process.wait()
            self.assertEqual(process.returncode, -signal.SIGKILL)

            spool = Spool.open(path, reactor)
            queued = {m.queueId: m for m in spool.messages()}
            spool.close()
            self.assertLessEqual(set(reported), set(queued))
            messages = os.path.join(path, "messages")
            for queueId, message in queued.items():
                with open(os.path.join(messages, queueId + ".eml"), "rb") as handle:
                    content = handle.read()
                number = int(content.split(b"\r\n", 1)[0].split()[1])
                self.assertEqual(content, crashMessage(number))
                self.assertEqual(reported.get(queueId, number), number)
                self.assertEqual(message.size, len(content))
                self.assertEqual(message.recipients, (QueuedRecipient("bob@fabrikam.com"),))
            self.assertEqual(
                files(messages), sorted(f"{q}{e}" for q in queued for e in (".eml", ".json"))
            )
            self.assertEqual(files(os.path.join(path, "tmp")), [])


ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Bob]
PrimarySmtpAddress = bob@fabrikam.com
EmailAddresses = robert@fabrikam.com
"""


@implementer(IDeliveryAgent)
class FlakyAgent:
    """
    A delivery agent that fails transiently until told otherwise.
    """

    name = "Flaky"

    def __init__(self):
        self.calls = []
        self.failing = True

    def deliver(self, queued, mailboxes, message):
        self.calls.append((queued.queueId, dict(mailboxes), message))
        failure = TransientFailure.of(452, "4.3.1", "Insufficient system resources")
        return succeed(dict.fromkeys(mailboxes, failure if self.failing else None))


class QueueManagerTests(TestCase):
    def setUp(self):
        folder = temporaryFolder(self)
        self.queuePath = os.path.join(folder, "queue")
        self.mailboxes = os.path.join(folder, "mailboxes")
        self.resolver = Resolver(parseOrganization(ORGANIZATION, os.path.join(folder, "org.ini")))
        self.clock = Clock()
        self.spool = Spool.open(self.queuePath, reactor, self.clock)
        self.addCleanup(lambda: self.spool.close())

    def manager(self, agent=None):
        if agent is None:
            agent = MaildirDeliveryAgent(self.mailboxes, reactor)
        manager = QueueManager(self.spool, self.resolver, agent, self.clock)
        manager.startService()
        self.addCleanup(lambda: manager.running and manager.stopService())
        return manager

    def delivered(self, folder="bob@fabrikam.com"):
        new = os.path.join(self.mailboxes, folder, "new")
        contents = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as handle:
                contents.append(handle.read())
        return contents

    async def test_local(self):
        """
        A message for a local mailbox ends in its Maildir and leaves the queue.
        """
        manager = self.manager()
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        self.assertIsNone(await manager.processed(queueId))
        self.assertEqual(
            self.delivered(),
            [b"Return-Path: <alice@contoso.com>\r\nDelivered-To: bob@fabrikam.com\r\n" + MESSAGE],
        )
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual(files(os.path.join(self.queuePath, "messages")), [])

    async def test_remote(self):
        """
        A remote recipient stays queued, saying why, on disk too.
        """
        manager = self.manager()
        queueId = await self.spool.enqueue(envelope("carol@example.org"), SESSION, MESSAGE)
        queued = await manager.processed(queueId)
        self.assertEqual(
            queued.recipients,
            (QueuedRecipient("carol@example.org", READY, WAITING_FOR_SEND_CONNECTOR),),
        )
        self.spool.close()
        self.spool = Spool.open(self.queuePath, reactor, self.clock)
        self.assertEqual(self.spool.messages(), [queued])

    async def test_mixed(self):
        """
        Of a message for a mailbox, an address no mailbox has any more, and
        a remote address, only the remote one stays Ready, and the sender
        is told of the one that failed.  Without a send side, nothing but
        the message's expiry (and the delay notice before it) is scheduled.
        """
        manager = self.manager()
        queueId = await self.spool.enqueue(
            envelope("robert@fabrikam.com", "gone@fabrikam.com", "carol@example.org"), SESSION, MESSAGE
        )
        queued = await manager.processed(queueId)
        self.assertEqual(
            queued.recipients,
            (
                QueuedRecipient("robert@fabrikam.com", DELIVERED),
                QueuedRecipient("gone@fabrikam.com", FAILED, RECIPIENT_NOT_FOUND),
                QueuedRecipient("carol@example.org", READY, WAITING_FOR_SEND_CONNECTOR),
            ),
        )
        self.assertEqual(len(self.delivered()), 1)
        await manager.whenIdle()
        (original, notification) = self.spool.messages()
        self.assertEqual(notification.mailFrom, "")
        self.assertEqual(
            notification.recipients,
            (QueuedRecipient("alice@contoso.com", READY, WAITING_FOR_SEND_CONNECTOR),),
        )
        self.assertEqual(
            sorted(call.getTime() for call in self.clock.getDelayedCalls()),
            [4 * 3600, 2 * 86400],
        )

    async def test_restart(self):
        """
        What was queued while no manager ran is delivered by the next one,
        on a new spool over the same folder.
        """
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        self.spool.close()
        self.spool = Spool.open(self.queuePath, reactor, self.clock)
        manager = self.manager()
        self.assertIsNone(await manager.processed(queueId))
        self.assertEqual(len(self.delivered()), 1)
        self.assertEqual(self.spool.messages(), [])

    async def test_transientRetried(self):
        """
        A transient failure leaves the recipient Ready with the reply; local
        delivery is tried again after MessageRetryInterval, and only then.
        """
        agent = FlakyAgent()
        manager = self.manager(agent)
        queueId = await self.spool.enqueue(
            envelope("bob@fabrikam.com", "carol@example.org"), SESSION, MESSAGE
        )
        queued = await manager.processed(queueId)
        self.assertEqual(
            queued.recipients,
            (
                QueuedRecipient(
                    "bob@fabrikam.com", READY, "452 4.3.1 Insufficient system resources",
                    attempts=1, nextRetryTime=60,
                ),
                QueuedRecipient("carol@example.org", READY, WAITING_FOR_SEND_CONNECTOR),
            ),
        )
        self.assertEqual(agent.calls, [(queueId, {"bob@fabrikam.com": "bob@fabrikam.com"}, MESSAGE)])

        self.clock.advance(59)
        await manager.processed(queueId)
        self.assertEqual(len(agent.calls), 1)
        self.clock.advance(1)
        await manager.processed(queueId)
        self.assertEqual(len(agent.calls), 2)

        agent.failing = False
        self.clock.advance(60)
        queued = await manager.processed(queueId)
        self.assertEqual(len(agent.calls), 3)
        self.assertEqual(
            queued.recipients,
            (
                QueuedRecipient("bob@fabrikam.com", DELIVERED, attempts=2),
                QueuedRecipient("carol@example.org", READY, WAITING_FOR_SEND_CONNECTOR),
            ),
        )
        self.assertEqual(
            [call.getTime() for call in self.clock.getDelayedCalls()], [4 * 3600]
        )

    async def test_stopCancelsRetries(self):
        manager = self.manager(FlakyAgent())
        queueId = await self.spool.enqueue(envelope("bob@fabrikam.com"), SESSION, MESSAGE)
        await manager.processed(queueId)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        await manager.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.spool.onEnqueued, [])
