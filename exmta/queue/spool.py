"""
The durable queue: accepted messages on disk, in a documented format.

On-disk format, version 3
=========================

This layout is a contract: the management shell and the send side read it,
and tools may too.  The queue folder is the TransportServer's
C{QueueDatabasePath}; folders are created with mode 0700, files 0600::

    lock                       held (flock) by the one process using the queue
    instance                   this queue's instance: 32 hex digits made when
                               the folder is first opened, so that another
                               server can tell a queue lost and begun again
                               (L{exmta.queue.shadow})
    shadow/<server>.discard    discard notifications for the TransportServer
                               <server>, one of its queue ids a line
                               (L{exmta.queue.shadow})
    admin.sock                 the admin endpoint's socket while the server
                               runs (L{exmta.admin}); not the spool's
    tmp/                       files being written; emptied at every open
    messages/<queueId>.eml     the message exactly as received: CRLF line
                               ends, headers included
    messages/<queueId>.json    its envelope and recipient states
    parts/<NN>/                a spool part: the queue of one worker process
                               (C{--workers}; L{exmta.worker}), NN its part
                               number in two upper-case hex digits (01 to
                               FF); it holds its own C{lock}, C{tmp/} and
                               C{messages/} as above, and the worker's
                               C{admin.sock}

A queue id is 24 upper-case hex digits that sort by arrival
(L{exmta.envelope.newQueueId}); its last two are the number of the part
that accepted the message (00 for the queue folder itself, the main
process's), so queue ids are unique across the parts of a server.  A
message stays in its part while the worker runs; once that worker's
process has ended, the main process adopts the part (L{Spool.adoptPart}):
the message keeps its queue id, but now lives in the queue folder's own
C{messages/}.  So a queue id names the part a message was accepted in,
and it is there or, adopted, in part 00.  The C{.json} is one UTF-8 JSON
object::

    {
      "version": 3,                           or 2; see below
      "queueId": "00061A2B3C4D5EA1B2C3D4E5",
      "mailFrom": "alice@contoso.com",        "" for the null path <>
      "arrivalTime": 1717171717.25,           seconds since the epoch
      "size": 1234,                           bytes in the .eml
      "body": "7BIT",                         ESMTP BODY: 7BIT or 8BITMIME
      "delayNotified": false,                 a delay DSN has been sent
      "suspended": true,                      Suspend-Message; only written when true
      "categorized": true,                    routing agents' message events ran;
                                              only written when true
      "ret": "HDRS",                          RFC 3461 RET (FULL or HDRS); only
                                              written when the client gave it
      "envid": "QQ314159",                    RFC 3461 ENVID, xtext decoded; only
                                              written when the client gave it
      "smtputf8": true,                       received with SMTPUTF8 (RFC 6531):
                                              addresses may be UTF-8; only
                                              written when true
      "receivedFrom": {
        "connector": "Default HubA", "server": "HubA",
        "peerHost": "192.0.2.7", "peerPort": 50123,
        "helo": "client.contoso.com",         or null
        "principal": "NT AUTHORITY\\\\ANONYMOUS LOGON",   or null
        "tlsVersion": "TLSv1.3",              or null
        "shadowServer": "HubA",               only when the client keeps a
        "shadowId": "00061A2B3C4D5EA1B2C3D4E6" shadow (XSHADOW=)
      },
      "recipients": [
        {"address": "bob@fabrikam.com", "status": "Ready", "lastError": null,
         "attempts": 0, "nextRetryTime": null, "nextHop": null,
         "notify": "SUCCESS,FAILURE",         RFC 3461 NOTIFY: NEVER, or SUCCESS,
                                              FAILURE and DELAY in that order; only
                                              written when the client gave it
         "orcpt": "rfc822;bob@fabrikam.com",  RFC 3461 ORCPT, addr-type;address with
                                              the address xtext decoded; only
                                              written when the client gave it
         "shadowInstance": "0f1e...",         for a Shadow recipient, the instance
                                              of nextHop's queue it was handed to
                                              (32 hex digits); only written then
        }
      ]
    }

Version 3 is version 2 with the four RFC 3461 keys (C{ret}, C{envid},
C{notify}, C{orcpt}) and C{smtputf8}.  A message is written as version 3
only when it holds one of them, so an exmta that reads only versions 1
and 2 leaves alone just the messages whose sender asked for something it
would not honour, and delivers all others.

A message the server made itself (a delivery status notification) has
C{"connector": ""}, empty C{peerHost} and C{peerPort} 0 in C{receivedFrom}.

A recipient's C{status} is C{Ready} (still to be delivered; C{lastError}
says why it is waiting, if it is), C{Delivered} or C{Failed} (C{lastError}
holds the reply), or C{Shadow}: handed to the TransportServer C{nextHop}
of the organization, which took it under shadow redundancy; the message
stays here, a shadow, until that server reports it delivered
(L{exmta.queue.shadow}); C{shadowInstance} is that server's queue instance
it went to, so that a restart still tells when that server lost its queue.
C{Shadow}, C{shadowInstance} and C{shadowServer}/C{shadowId} were added to
version 2 without a new version number: a reader that predates them takes
a C{Shadow} recipient for one settled, as it was before, and ignores
C{shadowInstance}; a C{Shadow} recipient without it (written before it
was) is taken as handed to the instance the server next answers with.  C{attempts} counts the delivery attempts that failed
transiently; C{nextRetryTime} (seconds since the epoch, or null for "as
soon as possible") is when a C{Ready} recipient is next tried; C{nextHop}
is the key of the next hop it was last routed to
(L{exmta.envelope.NextHop.key}: the send connector's name, C{connector:domain}
for MX delivery, or a transport server's name), null if none yet.

A C{suspended} message stays queued, untouched, until it is resumed
(Suspend-Message and Resume-Message; see L{exmta.admin}): no delivery
attempt, no expiry, no delay notification.  The key was added to version
2 without a new version number, so a reader that predates it delivers
suspended messages.

Readers ignore keys they do not know.  Version 1 (exmta before the send
side) lacks C{delayNotified} and the last three recipient keys; it is read
with their defaults (false, 0, null, null) and written back as version 2 at
its next update.  A message of any other C{version} is left alone.

Writing
-------
Enqueueing writes the C{.eml} and the C{.json} into C{tmp/} and makes them
durable, renames the C{.eml} into C{messages/} and then the C{.json}; then
fsyncs C{messages/}.  Only then does C{enqueue}'s Deferred fire, and only
then does the client hear 250.  An update writes a new C{.json} the same
way and renames it over the old one.  Writes are group-committed: one
thread (L{exmta.durable.GroupCommitter}) takes every enqueue and update
waiting when it is free, makes all their files durable with one C{syncfs}
(Linux; elsewhere an fsync per file), and once they are renamed fsyncs
C{messages/} once before any of their Deferreds fires.

A part's messages are written by its worker exactly so, in the part's
folders, with the part's own group commits.

Adopting a part (done by the main process once nothing else has it open:
it takes the part's C{lock}) renames each message of the part's
C{messages/} into the queue folder's, C{.eml} first, fsyncs the queue
folder's C{messages/} and then removes the part's folder, C{tmp/} and
all.  At every open of the queue folder, every part left (the server was
stopped, or crashed) is adopted before the queue folder's own
C{messages/} is read; a part's C{.json} whose C{.eml} is already in the
queue folder's C{messages/} is a crash during an adoption, and is moved
too.  The parts layout was added to version 3 without a new version
number: the C{.json} documents did not change, and an exmta that
predates parts leaves the messages of a part where they are.

A message with no C{Ready} or C{Shadow} recipient left is removed: C{.json} first, then
C{.eml}, with no fsync, in the reactor's thread pool (the removals asked
for in one reactor turn, or while others run, in one call).  A crash may bring a removed message back; it is
then delivered again to the recipients whose C{Delivered} or C{Failed}
state was not yet written (a duplicate, never a loss).

The C{.json} is the commit point: a message is queued when C{messages/}
holds both of its files.  So at open, after a crash, an C{.eml} without its
C{.json} is an enqueue (or a removal) that did not finish and is deleted;
so is a C{.json} without its C{.eml}, which only a crash before the final
directory fsync, or during a removal, can leave.  A C{.json} that cannot be
read, or whose C{size} is not its C{.eml}'s, is logged and left where it
is, unqueued.
"""

import fcntl
import itertools
import json
import os
import re
import shutil
import time
from collections import OrderedDict
from functools import partial

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from exmta.durable import (
    GroupCommitter,
    makeFolders,
    replaceFile,
    syncFolder,
    unlinkQuietly,
)
from exmta.envelope import QueuedMessage, QueuedRecipient, newQueueId
from exmta.errors import ConfigError
from exmta.interfaces import IMessageQueue
from exmta.message.header import headerSection

FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
# What a message without RFC 3461 keys is written as (see above).
PLAIN_VERSION = 2

READY = "Ready"
DELIVERED = "Delivered"
FAILED = "Failed"
SHADOW = "Shadow"
# The states that keep a message in the spool.
_KEPT = (READY, SHADOW)

# The bytes of recently enqueued messages are kept, up to this many, so
# their first delivery attempt does not read back what was just written.
RECENT_MESSAGE_BYTES = 32 * 1024 * 1024

_EML, _JSON = 1, 2
# The folder holding the spool parts, in the queue folder.
PARTS = "parts"
# Part numbers: 0 is the queue folder itself; workers' parts 1 to 255.
LAST_PART = 0xFF
# A worker's admin socket, in its part (the admin endpoint's, not the
# spool's; named here with the layout it is part of).
ADMIN_SOCKET = "admin.sock"
# How long an open waits for a part still locked (a worker of a process
# that died, itself ending) before leaving it for a later open.
PART_LOCK_WAIT = 15.0
_PART_NAME = re.compile(r"[0-9A-F]{2}")
_READ_SIZE = 1 << 16

_encodeDocument = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encodeQueued(queued):
    """
    @return: the C{.json} document of a L{QueuedMessage}, as bytes.
    """
    dsn = queued.ret is not None or queued.envid is not None or queued.smtputf8
    recipients = []
    for r in queued.recipients:
        recipient = {
            "address": r.address,
            "status": r.status,
            "lastError": r.lastError,
            "attempts": r.attempts,
            "nextRetryTime": r.nextRetryTime,
            "nextHop": r.nextHop,
        }
        if r.notify is not None:
            recipient["notify"] = r.notify
            dsn = True
        if r.orcpt is not None:
            recipient["orcpt"] = r.orcpt
            dsn = True
        if r.shadowInstance is not None:
            recipient["shadowInstance"] = r.shadowInstance
        recipients.append(recipient)
    document = {
        "version": FORMAT_VERSION if dsn else PLAIN_VERSION,
        "queueId": queued.queueId,
        "mailFrom": queued.mailFrom,
        "arrivalTime": queued.arrivalTime,
        "size": queued.size,
        "body": queued.body,
        "delayNotified": queued.delayNotified,
        "receivedFrom": queued.receivedFrom,
        "recipients": recipients,
    }
    if queued.suspended:
        document["suspended"] = True
    if queued.categorized:
        document["categorized"] = True
    if queued.ret is not None:
        document["ret"] = queued.ret
    if queued.envid is not None:
        document["envid"] = queued.envid
    if queued.smtputf8:
        document["smtputf8"] = True
    return _encodeDocument(document).encode("utf-8")


def decodeQueued(document, shared=None):
    """
    @param document: a C{.json} document, parsed.
    @return: its L{QueuedMessage}.
    @raise ValueError: a version this exmta cannot read.
    @param shared: a dict used to share equal strings between the messages
        read together (the same connector, server, sender, status, error
        text...), which keeps a long queue small in memory.
    """
    if document.get("version") not in READABLE_VERSIONS:
        raise ValueError(
            f"format version {document.get('version')!r}, not one of {READABLE_VERSIONS}"
        )
    share = (lambda value, _: value) if shared is None else shared.setdefault
    receivedFrom = document.get("receivedFrom", {})
    return QueuedMessage(
        queueId=document["queueId"],
        mailFrom=share(document["mailFrom"], document["mailFrom"]),
        recipients=tuple(
            QueuedRecipient(
                r["address"],
                share(r["status"], r["status"]),
                r.get("lastError"),
                attempts=r.get("attempts", 0),
                nextRetryTime=r.get("nextRetryTime"),
                nextHop=r.get("nextHop"),
                notify=r.get("notify"),
                orcpt=r.get("orcpt"),
                shadowInstance=r.get("shadowInstance"),
            )
            for r in document["recipients"]
        ),
        arrivalTime=document["arrivalTime"],
        size=document["size"],
        receivedFrom={
            share(key, key): share(value, value) if type(value) is str else value
            for key, value in receivedFrom.items()
        },
        body=document.get("body", "7BIT"),
        delayNotified=document.get("delayNotified", False),
        suspended=document.get("suspended", False),
        categorized=document.get("categorized", False),
        ret=document.get("ret"),
        envid=document.get("envid"),
        smtputf8=document.get("smtputf8", False),
    )


def _readFile(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(descriptor, _READ_SIZE)]
        # A regular file's read comes back short only at its end.
        while len(chunks[-1]) == _READ_SIZE:
            chunks.append(os.read(descriptor, _READ_SIZE))
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _receivedFrom(session, envelope):
    origin = {
        "connector": session.connector,
        "server": session.server,
        "peerHost": session.peerHost,
        "peerPort": session.peerPort,
        "helo": session.helo,
        "principal": getattr(session.principal, "name", None),
        "tlsVersion": session.tlsVersion,
    }
    if envelope.shadow is not None:
        origin["shadowServer"], origin["shadowId"] = envelope.shadow
    return origin


def _lock(path, wait=0.0):
    """
    Take the queue folder's lock, so a second process (a second
    TransportServer given the same folder, or a second start) cannot
    empty C{tmp/} under the first one's feet.

    @param wait: seconds to wait for a lock held by another process.
    @return: the descriptor holding the lock.
    """
    descriptor = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return descriptor
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            os.close(descriptor)
            raise ConfigError(
                "is in use by another exmta process; each TransportServer needs "
                "its own QueueDatabasePath",
                path,
            ) from None


def partPath(path, part):
    """
    @return: the folder of spool part C{part} (1 to L{LAST_PART}) of the
        queue folder C{path}.
    """
    return os.path.join(path, PARTS, f"{part:02X}")


def queueInstance(path):
    """
    @return: the queue's instance (see the module docstring), made and
        synced the first time.
    """
    name = os.path.join(path, "instance")
    try:
        with open(name, encoding="ascii") as handle:
            instance = handle.read().strip()
        if re.fullmatch(r"[0-9a-f]{32}", instance):
            return instance
    except FileNotFoundError:
        pass
    instance = os.urandom(16).hex()
    replaceFile(name, instance.encode("ascii") + b"\n")
    return instance


def newQueuedMessage(envelope, session, message, clock, part=0):
    """
    @param part: the number of the spool part it is queued in.
    @return: the L{QueuedMessage} of a message just accepted: a new queue
        id, every recipient C{Ready}.
    """
    requested = envelope.recipientDsn
    recipients = []
    for r in envelope.recipients:
        address = str(r)
        notify, orcpt = requested.get(address, (None, None))
        recipients.append(QueuedRecipient(address, notify=notify, orcpt=orcpt))
    return QueuedMessage(
        queueId=newQueueId(part=part),
        mailFrom=str(envelope.mailFrom),
        recipients=tuple(recipients),
        arrivalTime=clock.seconds(),
        size=len(message),
        receivedFrom=_receivedFrom(session, envelope),
        body=envelope.body,
        ret=envelope.ret,
        envid=envelope.envid,
        smtputf8=envelope.smtputf8,
    )


class SpoolWriter:
    """
    Makes new messages durable in a queue folder, in group commits.

    @ivar committer: the L{GroupCommitter} making its files durable; the
        L{Spool} sends its updates through it too.
    """

    def __init__(self, path, reactor, clock=None, part=0):
        self.path = os.path.abspath(path)
        self.clock = reactor if clock is None else clock
        self.part = part
        self.tmp = os.path.join(self.path, "tmp")
        self.messages = os.path.join(self.path, "messages")
        self.committer = GroupCommitter(reactor, self.messages)

    def write(self, envelope, session, message):
        """
        Write a message and its envelope, as L{IMessageQueue.enqueue} does.

        @return: a Deferred firing with the message's L{QueuedMessage} once
            both files are durable in C{messages/}.
        """
        queued = newQueuedMessage(envelope, session, message, self.clock, self.part)
        committed = self.committer.submit(
            partial(self._write, queued, message),
            publish=partial(self._publish, queued.queueId),
            undo=partial(self._uncommit, queued.queueId),
        )
        return committed.addCallback(lambda _: queued)

    def _write(self, queued, message, batch):
        temporary = os.path.join(self.tmp, queued.queueId)
        try:
            batch.writeFile(temporary + ".eml", message)
            batch.writeFile(temporary + ".json", encodeQueued(queued))
        except BaseException:
            unlinkQuietly(temporary + ".eml")
            unlinkQuietly(temporary + ".json")
            raise

    def _publish(self, queueId):
        base = os.path.join(self.messages, queueId)
        temporary = os.path.join(self.tmp, queueId)
        try:
            os.rename(temporary + ".eml", base + ".eml")
            os.rename(temporary + ".json", base + ".json")
        except BaseException:
            self._uncommit(queueId)
            raise

    def _uncommit(self, queueId):
        # The client will hear 451 and send again: leave nothing that a
        # later open could take for this message.
        base = os.path.join(self.messages, queueId)
        temporary = os.path.join(self.tmp, queueId)
        for path in (base + ".json", base + ".eml", temporary + ".json", temporary + ".eml"):
            unlinkQuietly(path)

    def close(self):
        """
        Finish the writes asked for.  Blocks until they are done.
        """
        self.committer.stop()


@implementer(IMessageQueue)
class Spool:
    """
    The queue folder of one transport server, or one of its parts, with an
    in-memory index of what it holds.  Opening it recovers from a crash (see the module
    docstring); afterwards every blocking call runs in the reactor's thread
    pool, apart from the writes: their files are written on the reactor
    thread (small writes to the page cache), and one thread makes them
    durable in batches (group commit).

    @ivar onEnqueued: callables, each called with the
        L{exmta.envelope.QueuedMessage} of every newly committed message,
        just before C{enqueue}'s Deferred fires.  The queue manager is one.
    @ivar onAdopted: the same, for each message of an adopted part
        (L{adoptPart}).
    """

    log = Logger()

    def __init__(self, path, reactor, clock=None, part=0):
        """
        Open the queue at C{path}, creating it if need be; the queue folder
        (C{part} 0) first adopts the parts left in it.  Blocks: call it at
        startup, before the reactor runs.

        @param reactor: runs the blocking file work in its thread pool.
        @param clock: the L{twisted.internet.interfaces.IReactorTime} that
            stamps arrival times; C{reactor} by default.
        @param part: the part's number, 0 for the queue folder itself;
            C{path} is then L{partPath} of the queue folder.
        @raise ConfigError: another process has the queue open.
        """
        self.path = os.path.abspath(path)
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.part = part
        self.onEnqueued = []
        self.onAdopted = []
        self._writer = SpoolWriter(self.path, reactor, clock, part)
        self._tmp = self._writer.tmp
        self._messages = self._writer.messages
        self._names = itertools.count()
        self._removing = set()
        # Removals waiting for the thread pool (L{_removeSoon}).
        self._unlinking = []
        self._unlinkScheduled = False
        self._unlinkingNow = False
        self._rewriting = {}
        self._recent = OrderedDict()
        self._recentSize = 0
        self._committer = self._writer.committer
        makeFolders(self.path)
        self._lockDescriptor = _lock(self.path)
        # A part's worker offers its server's instance (the queue folder's).
        self.instance = queueInstance(self.path) if part == 0 else None
        self._index = self._recover()

    @classmethod
    def open(cls, path, reactor, clock=None, part=0):
        """
        The same as C{Spool(path, reactor, clock, part)}, named for what it
        does.
        """
        return cls(path, reactor, clock, part)

    def close(self):
        """
        Finish the writes asked for, and release the queue folder for
        another L{Spool}.  Blocks until the writes are done.
        """
        self._writer.close()
        os.close(self._lockDescriptor)

    def _recover(self):
        makeFolders(self._tmp)
        makeFolders(self._messages)
        for name in os.listdir(self._tmp):
            os.unlink(os.path.join(self._tmp, name))
        if self.part == 0:
            for folder in self._leftParts():
                try:
                    self._movePart(folder, wait=PART_LOCK_WAIT)
                except ConfigError as error:
                    self.log.error(
                        "cannot adopt the spool part {folder}: {error}; left for the next open",
                        folder=folder,
                        error=str(error),
                    )
        # One listing; each message's files found by name, its .json read
        # and its .eml's size taken: a long queue opens in seconds.
        present = {}
        for name in os.listdir(self._messages):
            if name.endswith(".json"):
                stem, found = name[:-5], _JSON
            elif name.endswith(".eml"):
                stem, found = name[:-4], _EML
            else:
                continue
            present[stem] = present.get(stem, 0) | found
        shared = {}
        loaded = []
        removed = False
        for stem in sorted(present):
            found = present[stem]
            if found == _JSON | _EML:
                queued = self._load(stem, shared)
                if queued is not None:
                    loaded.append(queued)
                continue
            name = stem + (".json" if found == _JSON else ".eml")
            self.log.warn(
                "removing {file}: a crash interrupted its message's enqueue or removal",
                file=os.path.join(self._messages, name),
            )
            os.unlink(os.path.join(self._messages, name))
            removed = True
        if removed:
            syncFolder(self._messages)
        # Queue ids sort by arrival, so this sort finds them nearly in order.
        loaded.sort(key=lambda m: (m.arrivalTime, m.queueId))
        return {m.queueId: m for m in loaded}

    def _leftParts(self):
        parts = os.path.join(self.path, PARTS)
        try:
            names = sorted(os.listdir(parts))
        except FileNotFoundError:
            return []
        return [os.path.join(parts, name) for name in names if _PART_NAME.fullmatch(name)]

    def _movePart(self, folder, wait=0.0):
        """
        Move the messages of the part at C{folder} into C{messages/}, make
        the renames durable and remove the part (see the module
        docstring).  Blocks.

        @param wait: seconds to wait for the part's lock.
        @return: the queue ids moved.
        @raise ConfigError: the part is in use.
        """
        descriptor = _lock(folder, wait)
        try:
            source = os.path.join(folder, "messages")
            present = {}
            for name in os.listdir(source) if os.path.isdir(source) else ():
                stem, dot, kind = name.rpartition(".")
                if dot and kind in ("json", "eml"):
                    present[stem] = present.get(stem, 0) | (_JSON if kind == "json" else _EML)
            moved = []
            for stem in sorted(present):
                base, target = os.path.join(source, stem), os.path.join(self._messages, stem)
                if present[stem] == _JSON | _EML:
                    os.rename(base + ".eml", target + ".eml")
                elif present[stem] != _JSON or not os.path.exists(target + ".eml"):
                    self.log.warn(
                        "removing {file}: a crash interrupted its message's enqueue or removal",
                        file=base + (".json" if present[stem] == _JSON else ".eml"),
                    )
                    continue
                os.rename(base + ".json", target + ".json")
                moved.append(stem)
            if moved:
                syncFolder(self._messages)
                self.log.info(
                    "adopted {count} messages of the spool part {folder}",
                    count=len(moved),
                    folder=folder,
                )
            shutil.rmtree(folder)
            return moved
        finally:
            os.close(descriptor)

    def adoptPart(self, part):
        """
        Adopt spool part C{part}, whose process has ended: its messages
        move into this queue folder (see the module docstring) and are
        announced to the C{onAdopted} observers.  Blocks, on the reactor thread: a
        part holds what one worker had not delivered yet.

        @return: how many messages were adopted.
        @raise ConfigError: the part is still in use.
        """
        folder = partPath(self.path, part)
        if not os.path.isdir(folder):
            return 0
        shared = {}
        adopted = 0
        for queueId in self._movePart(folder):
            queued = self._load(queueId, shared)
            if queued is not None:
                self._announce(queued, self.onAdopted)
                adopted += 1
        return adopted

    def _load(self, stem, shared):
        base = os.path.join(self._messages, stem)
        try:
            queued = decodeQueued(json.loads(_readFile(base + ".json")), shared)
            size = os.stat(base + ".eml").st_size
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            self.log.error(
                "cannot read {file} ({error}); left in place, not queued",
                file=base + ".json",
                error=str(error),
            )
            return None
        if queued.queueId != stem or size != queued.size:
            self.log.error(
                "{file} does not match its .json (queueId {queueId}, {size} bytes "
                "expected, {actual} found); left in place, not queued",
                file=base + ".eml",
                queueId=queued.queueId,
                size=queued.size,
                actual=size,
            )
            return None
        return queued

    def _inThread(self, function, *arguments):
        return deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), function, *arguments
        )

    def enqueue(self, envelope, session, message):
        """
        See L{IMessageQueue.enqueue}.
        """
        return self._writer.write(envelope, session, message).addCallback(
            self._committed, message
        )

    def _committed(self, queued, message):
        self._remember(queued.queueId, message)
        self._announce(queued)
        return queued.queueId

    def _announce(self, queued, observers=None):
        self._index[queued.queueId] = queued
        for observer in list(self.onEnqueued if observers is None else observers):
            try:
                observer(queued)
            except Exception:
                # The message is safe on disk; an observer's bug must not
                # turn its 250 into a 451 and a duplicate.
                self.log.failure(
                    "onEnqueued observer {observer!r} failed for {queueId}",
                    observer=observer,
                    queueId=queued.queueId,
                )

    def _remember(self, queueId, message):
        self._recent[queueId] = message
        self._recentSize += len(message)
        while self._recentSize > RECENT_MESSAGE_BYTES:
            _, oldest = self._recent.popitem(last=False)
            self._recentSize -= len(oldest)

    def _forget(self, queueId):
        message = self._recent.pop(queueId, None)
        if message is not None:
            self._recentSize -= len(message)

    def messages(self):
        """
        See L{IMessageQueue.messages}.
        """
        return sorted(self._index.values(), key=lambda m: (m.arrivalTime, m.queueId))

    def message(self, queueId):
        """
        @return: the L{exmta.envelope.QueuedMessage} queued as C{queueId},
            or L{None}.
        """
        return self._index.get(queueId)

    def messageBytes(self, queueId):
        """
        See L{IMessageQueue.messageBytes}.
        """
        if queueId not in self._index:
            return fail(KeyError(queueId))
        recent = self._recent.get(queueId)
        if recent is not None:
            # Not at once: a caller reached from an onEnqueued observer
            # would otherwise run ahead of the enqueue's own callbacks.
            return deferLater(self.reactor, 0, lambda: recent)
        return self._inThread(_readFile, os.path.join(self._messages, queueId + ".eml"))

    def headerSections(self, queueIds, limit=65536):
        """
        Read the header sections of messages, for Get-Message's Subject:
        at most C{limit} bytes of each message's start.

        @return: a Deferred firing with {queue id: header section bytes}
            (L{exmta.message.header.headerSection}); messages gone meanwhile
            are left out.
        """
        def read():
            sections = {}
            for queueId in queueIds:
                try:
                    with open(os.path.join(self._messages, queueId + ".eml"), "rb") as handle:
                        sections[queueId] = headerSection(handle.read(limit))
                except FileNotFoundError:
                    continue
            return sections

        return self._inThread(read)

    def update(self, queued):
        """
        See L{IMessageQueue.update}.  The new value replaces the old one
        whole.  Updates are written in the order they were asked for, so an
        older state can never overwrite a newer one, and a message being
        removed cannot be updated.

        @raise KeyError: (in the Deferred) the message is not queued.
        """
        queueId = queued.queueId
        if queueId not in self._index or queueId in self._removing:
            return fail(KeyError(queueId))
        if any(r.status in _KEPT for r in queued.recipients):
            temporary = os.path.join(self._tmp, f"{queueId}.{next(self._names)}.json")
            finished = self._rewriting[queueId] = Deferred()
            return (
                self._committer.submit(
                    partial(self._rewrite, queued, temporary),
                    publish=partial(self._replace, queueId, temporary),
                    undo=partial(unlinkQuietly, temporary),
                )
                .addCallback(self._updated, queued)
                .addBoth(self._rewritten, queueId, finished)
            )
        self._removing.add(queueId)
        # The unlinks need no sync, so they stay out of the group commit's
        # batches (and off the reactor thread), once the rewrites asked for
        # before are in place.
        rewriting = self._rewriting.get(queueId)
        if rewriting is None:
            removed = self._removeSoon(queueId)
        else:
            removed = rewriting.addCallback(lambda _: self._removeSoon(queueId))
        return removed.addBoth(self._removed, queueId)

    def _removeSoon(self, queueId):
        """
        Remove a message's files with the others asked for in the same
        reactor turn, or while the removals before are running: one hand-off
        to the thread pool for all of them, where one per message cost the
        reactor thread more than the unlinks (each hand-off wakes a thread,
        which then wants the GIL back).

        @return: a Deferred firing once its files are gone.
        """
        removed = Deferred()
        self._unlinking.append((queueId, removed))
        if not self._unlinkScheduled:
            self._unlinkScheduled = True
            self.reactor.callLater(0, self._unlinkWaiting)
        return removed

    def _unlinkWaiting(self):
        if self._unlinkingNow:
            # The thread is at work: the next call starts once it is done.
            return
        waiting, self._unlinking = self._unlinking, []
        self._unlinkScheduled = False
        if not waiting:
            return
        self._unlinkingNow = True
        self._inThread(_removeEach, self._messages, [queueId for queueId, _ in waiting]).addBoth(
            self._unlinked, waiting
        )

    def _unlinked(self, outcomes, waiting):
        self._unlinkingNow = False
        if isinstance(outcomes, Failure):
            outcomes = [outcomes] * len(waiting)
        for (_, removed), outcome in zip(waiting, outcomes):
            if outcome is None:
                removed.callback(None)
            else:
                removed.errback(outcome)
        if self._unlinking:
            self._unlinkWaiting()

    def _updated(self, _, queued):
        self._index[queued.queueId] = queued

    def _rewritten(self, result, queueId, finished):
        if self._rewriting.get(queueId) is finished:
            del self._rewriting[queueId]
        finished.callback(None)
        return result

    def _removed(self, result, queueId):
        self._removing.discard(queueId)
        if not isinstance(result, Failure):
            del self._index[queueId]
            self._forget(queueId)
        return result

    def _rewrite(self, queued, temporary, batch):
        try:
            batch.writeFile(temporary, encodeQueued(queued))
        except BaseException:
            unlinkQuietly(temporary)
            raise

    def _replace(self, queueId, temporary):
        try:
            os.rename(temporary, os.path.join(self._messages, queueId + ".json"))
        except BaseException:
            unlinkQuietly(temporary)
            raise


def _removeEach(folder, queueIds):
    """
    Remove messages' files from C{folder}: each one's C{.json} first (the
    commit point), then its C{.eml}.  Blocks.

    @return: for each message, L{None} or the L{Failure} of its removal.
    """
    outcomes = []
    for queueId in queueIds:
        base = os.path.join(folder, queueId)
        try:
            os.unlink(base + ".json")
            os.unlink(base + ".eml")
        except OSError:
            outcomes.append(Failure())
        else:
            outcomes.append(None)
    return outcomes
