"""
Shadow redundancy between the transport servers of one organization, as
Exchange 2010 does it: a server that hands a message to another server of
the organization keeps a shadow copy until that server says the message
was delivered, or relayed out of its care.

The conversation
================
Two servers of the organization talk over their usual forwarding session
(L{exmta.send}: TLS with the organization's certificates, Exchange Server
authentication).  Call the sender the shadow server (HubA) and the
receiver the primary server (HubB).

  1. HubB's EHLO offers C{XSHADOW <instance>} to a session whose principal
     has C{ms-Exch-SMTP-Accept-XShadow} (an Exchange server, logged in by
     certificate), when ShadowRedundancyEnabled.  C{<instance>} is HubB's
     queue instance (L{exmta.queue.spool}): it changes when HubB's queue is
     lost and begun again.
  2. HubA sends C{MAIL FROM:<...> XSHADOW=HubA:<queue id>}, its own name and
     its queue id of the message.  HubB keeps both with the message
     (C{shadowServer} and C{shadowId} in its C{receivedFrom}).
  3. After HubB's 250, HubA records the recipients C{Shadow} instead of
     C{Delivered}, each with the instance HubB offered
     (C{shadowInstance}): the message stays in HubA's spool, where it was
     all along, in the Shadow Redundancy queue C{HubA\\Shadow\\N} of
     Get-Queue.  A crash before that record sends the message again (a
     duplicate, never a loss); a restart keeps the shadows and the
     instance each was handed to, so a HubB that lost its queue while
     HubA was down is still found out.
  4. Once HubB's queue has recorded the message with no recipient left to
     deliver (delivered, failed with a report, or handed on under a shadow
     of its own), HubB appends a discard notification for HubA: the file
     C{shadow/HubA.discard} in its queue folder, one queue id a line.
  5. Every ShadowHeartbeatTimeoutInterval, HubA polls each server it holds
     shadows for: a session as in 1, then C{XQDISCARD HubA}.  HubB answers
     the ids of the notifications due to HubA, a line each
     (C{250-2.0.0 <queue id>}), ending with C{250 2.0.0 <n> discard
     notifications}, and forgets them.  HubA then records those shadows
     C{Delivered}, and the spool removes them.  A session that was not
     offered XSHADOW gets C{503 5.7.1} to XQDISCARD.  A worker process
     (C{--workers}) asks its main process, which holds the notifications
     of the whole server, and tells it those its own queue makes
     (L{exmta.worker.WorkerDiscards}); an adopted part's shadows are the
     main process's from then on.

The poll is the heartbeat.  After ShadowHeartbeatRetryCount polls in a row
fail (no answer, no XSHADOW), or when the answer's instance is not the one
a shadow was handed to (HubB lost its queue and came back), HubA
resubmits the shadows: their recipients are C{Ready} again and go the way
routing sends them (to HubB again once it answers).  Tracking says
C{RESUBMIT}.  Mail is delivered at least once: a message HubB delivered
just before it died is delivered again.

A shadow older than ShadowMessageAutoDiscardInterval (counted from the
message's arrival) is discarded without a notification.

Discard notifications are appended without fsync: one lost in a crash
leaves its shadow until it is auto-discarded, never a message undelivered.

Not done: Exchange's delayed acknowledgement for clients that cannot keep
a shadow (MaxAcknowledgementDelay) and its shadow promotion; the setting is
read and shown, and a message from such a client is acknowledged as soon
as it is queued, as before.
"""

import os
import re
from dataclasses import replace

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from exmta.envelope import ShadowedOutcomes
from exmta.interfaces import IShadowRedundancy
from exmta.queue.spool import DELIVERED, READY, SHADOW

log = Logger(namespace="exmta.queue.shadow")

# Track source of a resubmitted shadow.
SHADOW_REDUNDANCY = "SHADOWREDUNDANCY"

# The most notifications one XQDISCARD answers; the rest wait for the next.
MAX_DISCARDS = 5000

# What a TransportServer's name must look like to name a discard file.
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


# A queue id, as XSHADOW= gives it (L{exmta.envelope.newQueueId}).
_QUEUE_ID = re.compile(r"[0-9A-F]{24}")


def isServerName(name):
    """
    @return: whether C{name} can be a shadow server's name on disk.
    """
    return bool(_SERVER_NAME.fullmatch(name))


def discardDue(queued):
    """
    @param queued: a message as its queue recorded it.
    @return: C{(shadow server, its queue id)} when C{queued} came with
        XSHADOW and has no recipient left to deliver (its shadow server may
        discard it), else L{None}.
    """
    server = queued.receivedFrom.get("shadowServer")
    shadowId = queued.receivedFrom.get("shadowId")
    if not server or not isServerName(server) or not shadowId:
        return None
    if any(r.status == READY for r in queued.recipients):
        return None
    return server, shadowId


class DiscardNotifications:
    """
    The primary server's side: the discard notifications due to each
    shadow server, in C{shadow/<server>.discard} of the queue folder.

    @ivar instance: the queue's instance, offered with XSHADOW.
    """

    def __init__(self, path, instance):
        """
        Read the notifications left from before.  Blocks: call it at start.

        @param path: the queue folder.
        """
        self.instance = instance
        self._folder = os.path.join(path, "shadow")
        os.makedirs(self._folder, mode=0o700, exist_ok=True)
        self._pending = {}
        for name in os.listdir(self._folder):
            server, dot, kind = name.rpartition(".")
            if dot and kind == "discard" and isServerName(server):
                with open(os.path.join(self._folder, name), encoding="ascii") as handle:
                    ids = [line.strip() for line in handle if line.strip()]
                if ids:
                    self._pending[server] = ids

    def _file(self, server):
        return os.path.join(self._folder, server + ".discard")

    def recorded(self, queued):
        """
        Note a message the queue recorded: if it came with XSHADOW and has
        no recipient left to deliver, its shadow server may discard it.
        """
        due = discardDue(queued)
        if due is not None:
            self.add(*due)

    def add(self, server, shadowId):
        """
        Note a discard notification due to C{server} for its queue id
        C{shadowId} (L{discardDue}); one a worker process's queue made is
        data from another process: what could not be a server's name or a
        queue id is left out.
        """
        if not isServerName(server) or not _QUEUE_ID.fullmatch(shadowId):
            return
        self._pending.setdefault(server, []).append(shadowId)
        with open(self._file(server), "a", encoding="ascii") as handle:
            handle.write(shadowId + "\n")

    def take(self, server, limit=MAX_DISCARDS):
        """
        The notifications due to C{server}, at most C{limit}; they are
        forgotten (XQDISCARD).

        @return: a list of the shadow server's queue ids.
        """
        pending = self._pending.get(server, [])
        taken, rest = pending[:limit], pending[limit:]
        if rest:
            self._pending[server] = rest
            temporary = self._file(server) + ".new"
            with open(temporary, "w", encoding="ascii") as handle:
                handle.writelines(queueId + "\n" for queueId in rest)
            os.replace(temporary, self._file(server))
        elif taken:
            del self._pending[server]
            os.unlink(self._file(server))
        return taken


@implementer(IShadowRedundancy)
class ShadowRedundancy:
    """
    The shadow server's side, a collaborator of the queue manager: which
    of its messages are shadows on which primary server, the heartbeat
    that polls each primary for discard notifications, and resubmission.

    @ivar servers: the primary servers shadows have been kept for since
        start: Get-Queue shows a Shadow Redundancy queue for each.
    """

    def __init__(self, manager, poll, settings):
        """
        @param manager: the L{exmta.queue.manager.QueueManager}.
        @param poll: a callable from a server name to a Deferred firing
            with (its instance, [queue ids to discard]), or failing when the
            server cannot be polled; L{None} for a manager without a send
            side (it keeps no shadows).
        @param settings: the L{exmta.config.model.TransportConfig}, or
            L{None} for no heartbeat.
        """
        self._manager = manager
        self._poll = poll
        self.settings = settings
        # server -> {queue id: the primary's instance it went to, or None
        # for a shadow recorded without one (by an exmta before
        # shadowInstance): the next answer's instance is taken as it.
        self._shadows = {}
        self._failures = {}
        self.servers = set()
        self._heartbeat = None
        # The primary server's side, when this server takes XSHADOW.
        self.discards = None

    def start(self):
        """
        Find the shadows the spool holds, and start the heartbeat.
        """
        for queued in self._manager.spool.messages():
            self.index(queued)
        self._startHeartbeat()

    def stop(self):
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self._heartbeat = None

    def reconfigure(self, settings):
        """
        Work with a new TransportConfig: a new heartbeat interval applies
        from the next beat.
        """
        old, self.settings = self.settings, settings
        changed = old is None or (
            settings.shadowHeartbeatTimeoutInterval != old.shadowHeartbeatTimeoutInterval
        )
        if changed and self._manager.running:
            self.stop()
            self._startHeartbeat()

    def _startHeartbeat(self):
        if self._poll is None or self.settings is None:
            return
        self._heartbeat = LoopingCall(self.beat)
        self._heartbeat.clock = self._manager.reactor
        self._heartbeat.start(self.settings.shadowHeartbeatTimeoutInterval, now=False)

    # What the manager tells.

    def handedOff(self, work, outcomes, hop, addresses):
        """
        A send settled: if the next hop took the message under shadow
        redundancy, record the recipients it took C{Shadow}, not
        C{Delivered}, with the instance of its queue they went to.

        @param work: the L{exmta.queue.passes.Pass}.
        @param outcomes: what the send side answered.
        @param hop: the L{exmta.envelope.NextHop} sent to.
        @param addresses: address to the recipients' indices in C{work}.
        """
        if not isinstance(outcomes, ShadowedOutcomes):
            return
        for address, indices in addresses.items():
            if outcomes.get(address, False) is not None:
                continue
            for index in indices:
                recipient = work.recipients[index]
                if recipient.status == DELIVERED:
                    work.recipients[index] = replace(
                        recipient, status=SHADOW, shadowInstance=outcomes.instance
                    )

    def recorded(self, queued):
        """
        The manager recorded C{queued}: index its shadows, and note it for
        its own shadow server.
        """
        if self.discards is not None:
            self.discards.recorded(queued)
        self.index(queued)

    def index(self, queued):
        """
        Know the shadows C{queued} holds.
        """
        for recipient in queued.recipients:
            if recipient.status == SHADOW:
                server = recipient.nextHop
                self.servers.add(server)
                shadows = self._shadows.setdefault(server, {})
                shadows[queued.queueId] = recipient.shadowInstance or shadows.get(queued.queueId)

    # The heartbeat.

    @inlineCallbacks
    def beat(self):
        """
        Poll every primary server shadows are kept for; discard, resubmit.
        """
        self._autoDiscard()
        for server in sorted(self._shadows):
            if self._shadows.get(server):
                try:
                    yield self._beatOne(server)
                except Exception:
                    # A failed beat must not stop the heartbeat (LoopingCall
                    # stops on a failure).
                    log.failure("shadow heartbeat to {server} failed", server=server)

    @inlineCallbacks
    def _beatOne(self, server):
        try:
            instance, discarded = yield self._poll(server)
        except Exception as error:
            failures = self._failures[server] = self._failures.get(server, 0) + 1
            limit = self.settings.shadowHeartbeatRetryCount
            log.warn(
                "shadow heartbeat to {server} failed ({failures} of {limit}): {error}",
                server=server, failures=failures, limit=limit, error=str(error),
            )
            if failures >= limit:
                self._failures[server] = 0
                yield self._resubmit(
                    server, list(self._shadows.get(server, {})),
                    f"{server} did not answer the shadow heartbeat {failures} times",
                )
            return
        self._failures[server] = 0
        shadows = self._shadows.get(server, {})
        for queueId in discarded:
            if queueId in shadows:
                yield self._discard(server, queueId, "discard notification")
        lost = [
            queueId for queueId, handed in shadows.items()
            if handed is not None and handed != instance
        ]
        for queueId, handed in list(shadows.items()):
            if handed is None:
                shadows[queueId] = instance
        if lost:
            yield self._resubmit(server, lost, f"{server} lost its queue (a new instance)")

    def _autoDiscard(self):
        limit = self.settings.shadowMessageAutoDiscardInterval
        now = self._manager.reactor.seconds()
        for server, shadows in list(self._shadows.items()):
            for queueId in list(shadows):
                queued = self._manager.current(queueId)
                if queued is None or queued.arrivalTime + limit <= now:
                    self._discard(server, queueId, "ShadowMessageAutoDiscardInterval")

    def _forget(self, server, queueId):
        shadows = self._shadows.get(server, {})
        shadows.pop(queueId, None)

    def _discard(self, server, queueId, why):
        def discard(queued):
            recipients = tuple(
                replace(r, status=DELIVERED, shadowInstance=None)
                if r.status == SHADOW and r.nextHop == server else r
                for r in queued.recipients
            )
            return self._manager.spool.update(replace(queued, recipients=recipients))

        self._forget(server, queueId)
        log.debug("discarded the shadow of {queueId} on {server}: {why}",
                  queueId=queueId, server=server, why=why)
        return self._exclusively(queueId, discard)

    @inlineCallbacks
    def _resubmit(self, server, queueIds, why):
        log.warn("resubmitting {count} shadow messages of {server}: {why}",
                 count=len(queueIds), server=server, why=why)
        now = self._manager.reactor.seconds()
        manager = self._manager

        def resubmit(queued):
            recipients = tuple(
                replace(r, status=READY, lastError=f"Resubmitted by shadow redundancy: {why}",
                        nextRetryTime=now, shadowInstance=None)
                if r.status == SHADOW and r.nextHop == server else r
                for r in queued.recipients
            )
            updated = replace(queued, recipients=recipients)
            resubmitted = [r.address for r in queued.recipients
                           if r.status == SHADOW and r.nextHop == server]
            manager.tracking.track(
                "RESUBMIT", updated, source=SHADOW_REDUNDANCY, recipients=resubmitted,
            )
            return manager.spool.update(updated)

        for queueId in queueIds:
            self._forget(server, queueId)
            yield self._exclusively(queueId, resubmit)

    def _exclusively(self, queueId, action):
        done = self._manager.exclusively(queueId, action)
        done.addErrback(self._failed, queueId)
        return done

    def _failed(self, failure, queueId):
        if failure.check(KeyError):
            return None
        log.failure("shadow redundancy could not update {queueId}", failure, queueId=queueId)
        return None

