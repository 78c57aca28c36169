"""
The queue manager: takes each queued message, settles what it can, and
leaves the rest queued with the time it is to be tried again.

A pass over a message
=====================
If the message is older than MessageExpirationTimeout, every recipient
still C{Ready} fails with C{550 4.4.7 QUEUE.Expired; message expired} and
nothing is tried.  Otherwise each C{Ready} recipient whose C{nextRetryTime}
has come is resolved (L{exmta.interfaces.IRecipientResolver}):

  - local ones go to the delivery agent, in one call per message;
  - those no longer known (a mailbox was removed while it waited) fail
    with C{550 5.1.1};
  - remote ones are routed (the C{route} function: an address to an
    L{exmta.envelope.NextHop}, or L{None} for "no send connector", which
    fails them with C{550 5.4.4 Unable to route}); those of the message
    that share a next hop (L{NextHop.key}) go in one
    L{exmta.interfaces.IRemoteDelivery.send} call, one SMTP transaction.
    A manager made without a send side leaves them C{Ready}, C{lastError}
    "Waiting for a send connector", until they expire.

Each outcome settles a recipient: delivered (C{Delivered}); a permanent
failure (C{Failed}, reported to the sender); a transient one (still
C{Ready}, C{attempts} one more and C{nextRetryTime} set by
L{exmta.queue.retry}).  Then, if DelayNotificationTimeout has passed,
recipients are still C{Ready} and the sender has not been told, the sender
is told once (a delay notification) and C{delayNotified} is set.  No
notification is ever made about a message from C{<>}.

Order of durable steps
======================
Delivery is at least once, and no recipient and no notification is ever
lost, whenever the process dies (kill -9 included):

  0. Recipients that routing agents changed at OnResolvedMessage are
     recorded, with C{categorized}, before any delivery (see Routing
     agents below); a crash before that record makes the next pass ask
     the agents again about the recipients as they were received.
  1. The delivery (a Maildir file, a remote 250) happens first; a crash
     before step 3 leaves the recipient C{Ready} as it was, so the next
     pass delivers again: a duplicate, never a loss.
  2. Notifications are enqueued, durably (the spool fsyncs them), before
     the states that call for them are recorded.  A crash between the two
     makes the next pass settle the same recipients again and notify
     again: a duplicate, never a missing notification.
  3. The new states are recorded (L{exmta.interfaces.IMessageQueue.update}),
     which removes the message once no recipient is C{Ready}; only then
     is the next attempt scheduled.

Routing agents
==============
With an agent pipeline (L{exmta.agents}) whose routing agents handle them,
the manager asks, about every message (its own notifications included):

  - OnSubmittedMessage, then OnResolvedMessage (about the recipients
    accepted-domain resolution knows; unknown ones fail as above), once per
    message, in its first pass, before anything is delivered.  A REJECT
    fails the recipients concerned with its reply (tracking source
    C{AGENT}; the sender is told), a TEMPORARY_REJECT or a FailClosed
    failure defers them with its reply; both events are asked again at the
    next attempt.  Once both answered without refusing, C{categorized} is
    set on the message, so they are not asked again, unless the process
    died before that was recorded.
  - An OnResolvedMessage verdict's C{recipients} replace recipients in the
    message: new addresses are added (C{Ready}), addresses already among
    its recipients are not added twice (compared without case), and a
    recipient mapped to none is removed from the message: it is neither
    delivered nor reported to the sender.  Tracking says C{EXPAND} (one
    address became several), C{REDIRECT} (another one) or C{FAIL} with
    C{550 4.3.2 QUEUE.TransportAgent} (deleted), each with source C{AGENT}.
    The new recipients and C{categorized} are recorded together
    (L{exmta.interfaces.IMessageQueue.update}) before any delivery, so a
    crash can neither lose nor expand them twice.
  - OnRoutedMessage before each remote send (per next hop, with the bytes
    read for that send, their lines already fitted to SMTP's limit by
    L{exmta.message.linelimit}, so that a signing agent signs what is sent) and
    before local delivery (C{nextHop} L{None}, the bytes as stored):
    its C{message} is what is sent or delivered this time (the queued
    copy does not change), its C{nextHop} (remote only) where it goes; a
    refusal fails or defers those recipients, with source C{AGENT}.
  - OnDelivered, OnDeferred and OnFailed once the outcomes are recorded,
    one event per next hop and reply; the pass does not wait for them.

Scheduling
==========
At most L{MAX_PASSES} passes run at once; messages due beyond that wait
their turn in arrival order, so a restart with a long queue holds a queue
id per message, not a suspended pass.  A message with nothing due gets no
pass, only its timer.

A next hop none of whose hosts would take a session is in retry
(L{exmta.queue.hops}, Exchange's queue C{Retry} status) until its failed
recipients' retry time.  Messages whose due recipients all wait for it
(those deferred for it before, and those just routed to it) are parked
until one attempt says whether it is back: nothing is written for them
meanwhile.  Recipients routed to it with others that go elsewhere are
deferred without an attempt (C{lastError} the next hop's,
C{nextRetryTime} the end of its retry).

After each pass the manager sets one timer (C{reactor.callLater}) for the
message, at its earliest C{nextRetryTime}, delay notification or expiry
(L{exmta.queue.retry.RetrySchedule.wakeTime}).  Passes run for every
message queued at start, so a restart resumes the schedule from the times
on disk, and for each message the spool commits.  A pass that fails as a
whole (the spool could not write, say) leaves the message as it was and
is repeated after MessageRetryInterval.

Collaborators
=============
The manager schedules and works passes (each pass's recipients are
settled through its L{exmta.queue.passes.Pass}); what else the queue does
is the work of four collaborators it holds, each behind an interface of
L{exmta.interfaces}:

  - C{hops}, L{exmta.queue.hops.NextHops} (C{INextHops}): what is known
    of each next hop: suspension, sends in flight, retry.
  - C{notifications}, L{exmta.queue.notifications.SenderNotifications}
    (C{ISenderNotifications}): expiry, non-delivery reports and delay
    notifications.
  - C{routingEvents}, L{exmta.queue.routingagents.RoutingEvents}
    (C{IRoutingEvents}): the events of routing agents.
  - C{administration}, L{exmta.queue.administration.QueueAdministration}
    (C{IQueueAdministration}): what the admin endpoint asks for, never at
    the same time as a pass over the same message (L{QueueManager.exclusively}).
  - C{shadows}, L{exmta.queue.shadow.ShadowRedundancy}
    (C{IShadowRedundancy}): the shadows kept of
    messages handed to another server of the organization, their
    discard and resubmission.

Message tracking
================
The manager writes C{SUBMIT} when the spool commits a message (source
C{SMTP}, or C{DSN} for its own notifications), C{DELIVER} (source
C{STOREDRIVER}) and C{SEND} (source C{SMTP}, with C{connectorId} and
C{nextHop}) for the recipients a stage took, C{DEFER} and C{FAIL} for each
recipient that failed (with C{recipientStatus}; source C{ROUTING} for
unknown, unroutable and expired ones, C{ADMIN} for those an administrator
removed, C{AGENT} for those a routing agent refused), C{EXPAND} and
C{REDIRECT} (source C{AGENT}, C{relatedRecipientAddress} the recipient
replaced) for the changes of routing agents, and C{DSN} for each
notification (its own queue id, C{reference} the original's Message-ID).
"""


import socket
import sys
from dataclasses import replace

from twisted.application import service
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredSemaphore,
    TimeoutError as DeferredTimeoutError,
    gatherResults,
    inlineCallbacks,
    maybeDeferred,
    succeed,
)

from exmta import serverlog
from exmta.agents import DELIVERY_EVENTS
from exmta.envelope import Address, Relayed
from exmta.errors import TransientFailure
from exmta.message.dsnparams import notifies
from exmta.message.linelimit import fitLineLimit
from exmta.queue.administration import QueueAdministration
from exmta.queue.hops import NextHops
from exmta.queue.notifications import DSN, ROUTING, SenderNotifications
from exmta.queue.passes import Pass
from exmta.queue.retry import RetrySchedule
from exmta.queue.routingagents import AGENT, RoutingEvents, refusal
from exmta.queue.shadow import ShadowRedundancy
from exmta.queue.spool import READY
from exmta.queue.views import WAITING_FOR_SEND_CONNECTOR
from exmta.routing import LOCAL, UNKNOWN
from exmta.tracking import NoTrackingLog

RECIPIENT_NOT_FOUND = "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
UNABLE_TO_ROUTE = "550 5.4.4 Unable to route"

# Tracking log sources.
SMTP = "SMTP"
STOREDRIVER = "STOREDRIVER"

# Passes running at once; each holds its message's bytes while it sends.
MAX_PASSES = 1000

# A delivery agent or send side that leaves a recipient out of its answer
# has not delivered to it.
_NO_OUTCOME = TransientFailure.of(451, "4.3.0", "The delivery stage reported no outcome")

# How long a delivery agent has for one message before its recipients are
# deferred: a plugin that never answers must not hold a delivery slot, and
# with enough of them all local delivery, for ever.
LOCAL_DELIVERY_TIMEOUT = 10 * 60


def _address(text):
    localPart, _, domain = text.rpartition("@")
    return Address(localPart, domain)


class QueueManager(service.Service):
    """
    Works the queue of one transport server.

    @ivar schedule: the L{RetrySchedule}, from the TransportServer's settings.
    @ivar hops: the L{exmta.interfaces.INextHops}.
    @ivar notifications: the L{exmta.interfaces.ISenderNotifications}.
    @ivar routingEvents: the L{exmta.interfaces.IRoutingEvents}.
    @ivar administration: the L{exmta.interfaces.IQueueAdministration}.
    @ivar shadows: the L{exmta.interfaces.IShadowRedundancy}.
    """

    name = "queue"
    log = serverlog.logger()

    def __init__(
        self,
        spool,
        resolver,
        deliveryAgent,
        reactor,
        *,
        server=None,
        postmaster=None,
        route=None,
        remoteDelivery=None,
        trackingLog=None,
        agents=None,
        linkedRoute=None,
        maxConcurrentMailboxDeliveries=20,
        localDeliveryTimeout=LOCAL_DELIVERY_TIMEOUT,
        transportConfig=None,
    ):
        """
        @param spool: the L{exmta.queue.spool.Spool}, or any
            L{exmta.interfaces.IMessageQueue} with an C{onEnqueued} list.
        @param resolver: an L{exmta.interfaces.IRecipientResolver}.
        @param deliveryAgent: an L{exmta.interfaces.IDeliveryAgent}.
        @param reactor: an L{twisted.internet.interfaces.IReactorTime}: the
            clock every retry time is read from and every timer set on.
        @param server: the L{exmta.config.model.TransportServer}, whose
            retry and expiry settings, Fqdn (the notifications'
            Reporting-MTA), name and MaxOutboundConnections apply;
            Exchange's defaults and this host's name if L{None}.
        @param postmaster: the address notifications come from
            (L{exmta.config.model.Organization.postmasterAddressOf});
            C{postmaster@<Fqdn>} if L{None}.
        @param route: a callable from an L{Address} to the
            L{exmta.envelope.NextHop} of a remote recipient, or L{None} when
            no send connector serves it.
        @param remoteDelivery: the L{exmta.interfaces.IRemoteDelivery};
            given with C{route} or not at all (then remote recipients wait).
        @param trackingLog: an L{exmta.interfaces.IMessageTrackingLog}.
        @param agents: the L{exmta.agents.AgentPipeline} whose routing
            agents are called as messages are worked, or L{None}.
        @param linkedRoute: a callable from a L{QueuedMessage} to the
            L{exmta.envelope.NextHop} every recipient of it goes to, local
            ones included (the send connector whose LinkedReceiveConnector
            received it), or to L{None}; used only with C{route}.
        @param maxConcurrentMailboxDeliveries: how many messages may be in
            local delivery at once, which bounds the message bytes held in
            memory when a restart finds a long queue.  Remote sends are
            bounded likewise by MaxOutboundConnections (this process's
            sends under way; the send side caps the connections, over
            every process of the server).
        @param localDeliveryTimeout: seconds the delivery agent has for one
            message; then its recipients are deferred (451 4.3.0) and
            retried, and the delivery, if it still happens, makes a
            duplicate, never a loss.
        @param transportConfig: the L{exmta.config.model.TransportConfig}
            whose shadow redundancy settings apply; L{None} keeps no
            heartbeat (a manager without a send side keeps no shadows).
        """
        if (route is None) != (remoteDelivery is None):
            raise ValueError("route and remoteDelivery go together")
        self.spool = spool
        self.resolver = resolver
        self.deliveryAgent = deliveryAgent
        self.reactor = reactor
        self.route = route
        self.linkedRoute = linkedRoute
        self.remoteDelivery = remoteDelivery
        self.tracking = NoTrackingLog() if trackingLog is None else trackingLog
        if server is None:
            self.schedule = RetrySchedule()
            reportingMta = socket.getfqdn()
            self.serverName = ""
            maxSends = None
        else:
            self.schedule = RetrySchedule.of(server)
            reportingMta = server.fqdn
            self.serverName = server.name
            maxSends = server.maxOutboundConnections
        self._deliveries = DeferredSemaphore(maxConcurrentMailboxDeliveries)
        self._localDeliveryTimeout = localDeliveryTimeout
        self._sends = DeferredSemaphore(sys.maxsize if maxSends is None else maxSends)
        self._passes = {}
        self._waiters = {}
        self._timers = {}
        self._due = {}
        self._startingDue = False
        self.hops = NextHops(reactor, self._release)
        self.notifications = SenderNotifications(
            spool, reactor, self.tracking, self.log, self.serverName,
            reportingMta, postmaster or f"postmaster@{reportingMta}",
        )
        self.routingEvents = RoutingEvents(agents, spool, self.tracking, self.log, self._isKnown)
        self.administration = QueueAdministration(self)
        self.shadows = ShadowRedundancy(
            self,
            getattr(remoteDelivery, "discardNotifications", None),
            transportConfig,
        )

    def startService(self):
        super().startService()
        self.spool.onEnqueued.append(self._enqueued)
        self.spool.onAdopted.append(self._adopted)
        for queued in self.spool.messages():
            self.process(queued)
        self.shadows.start()

    def stopService(self):
        """
        Stop taking messages, cancel the timers and stop the send side, so
        that sends waiting on a host end now (their recipients stay
        queued, deferred).

        @return: a Deferred that fires when the passes running have ended.
        """
        super().stopService()
        self.spool.onEnqueued.remove(self._enqueued)
        self.spool.onAdopted.remove(self._adopted)
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self._due.clear()
        self.hops.stop()
        self.shadows.stop()
        # Sends waiting on a silent next hop would hold the stop; close is
        # safe to call again when the service's owner releases the sends.
        if self.remoteDelivery is not None:
            self.remoteDelivery.close()
        return DeferredList(list(self._passes.values()))

    def processed(self, queueId):
        """
        Wait for the pass over a message, if one is running.

        @return: a Deferred firing when no pass over C{queueId} is running
            (at once if none is), with the message as the spool then holds
            it, or L{None} if it is no longer queued.
        """
        if queueId not in self._passes and queueId not in self._due:
            return succeed(self.current(queueId))
        waiter = Deferred()
        self._waiters.setdefault(queueId, []).append(waiter)
        return waiter

    @inlineCallbacks
    def whenIdle(self):
        """
        Wait until no pass is running, including those over the
        notifications passes made.
        """
        while self._passes:
            yield DeferredList(list(self._passes.values()))

    def reconfigure(
        self, resolver, route=None, *, server=None, postmaster=None, agents=None, linkedRoute=None
    ):
        """
        Work from now on with a new configuration's resolver and routes
        (passes in progress finish with the old ones).  C{route} must be
        given if and only if the manager has a send side; C{server} brings
        its retry settings and Fqdn; C{agents} the new agent pipeline.
        """
        if (route is None) != (self.remoteDelivery is None):
            raise ValueError("route and remoteDelivery go together")
        self.resolver = resolver
        self.route = route
        self.linkedRoute = linkedRoute
        self.routingEvents.agents = agents
        if server is not None:
            self.schedule = RetrySchedule.of(server)
            self.notifications.reportingMta = server.fqdn
        self.notifications.postmaster = (
            postmaster or f"postmaster@{self.notifications.reportingMta}"
        )

    # What the collaborators ask of the passes.

    def newPass(self, queued, notifying=False):
        """
        @return: a L{Pass} over C{queued}, on the current schedule.
        """
        return Pass(queued, self.schedule, self.reactor, self.tracking, self.log, notifying)

    def current(self, queueId):
        """
        @return: the message C{queueId} as the spool holds it, or L{None}.
        """
        message = getattr(self.spool, "message", None)
        if message is not None:
            return message(queueId)
        for queued in self.spool.messages():
            if queued.queueId == queueId:
                return queued
        return None

    def isWorking(self, queueId):
        """
        @return: whether a pass over (or an action on) C{queueId} runs.
        """
        return queueId in self._passes

    def working(self):
        """
        @return: the queue ids of the messages being worked on.
        """
        return frozenset(self._passes)

    def submissionBacklog(self):
        """
        @return: how many messages wait for a pass or are in one: the
            submission queue back pressure watches.
        """
        return len(self._passes) + len(self._due)

    def process(self, queued):
        """
        Work on C{queued} now if anything of it is due, else set its timer.
        A suspended message, or one a pass is working on, is left alone.
        """
        queueId = queued.queueId
        if queueId in self._passes or queued.suspended:
            return
        self._cancelTimer(queueId)
        now = self.reactor.seconds()
        if not self.schedule.needsPass(queued, now):
            self._schedule(queued, self._wakeTime(queued))
            return
        key = self.hops.waitsOnlyFor(queued, now, self.schedule)
        if key is not None and self.hops.hold(key, queueId):
            # Parked behind its next hop; its expiry and delay notice
            # still wake it.
            self._schedule(queued, self.schedule.noticeTime(queued))
            return
        if len(self._passes) >= MAX_PASSES:
            self._due[queueId] = None
            return
        running = self._passes[queueId] = self._pass(queued)
        running.addCallback(lambda queued: (queued, self._wakeTime(queued)))
        running.addErrback(self._passFailed, queued)
        running.addCallback(self._passed, queueId)

    @inlineCallbacks
    def exclusively(self, queueId, action):
        """
        Run C{action} (the message as queued to a Deferred of its new
        state) once no pass over the message is running, in the place of
        a pass, then schedule the message again.

        @raise KeyError: the message is not queued.
        """
        while queueId in self._passes:
            yield self.processed(queueId)
        queued = self.current(queueId)
        if queued is None:
            raise KeyError(queueId)
        self._cancelTimer(queueId)
        running = self._passes[queueId] = Deferred()
        try:
            result = yield action(queued)
        finally:
            del self._passes[queueId]
            current = self.current(queueId)
            if current is not None:
                self._schedule(current, self._wakeTime(current))
            for waiter in self._waiters.pop(queueId, ()):
                waiter.callback(current)
            running.callback(None)
        return result

    def rescheduleFor(self, key):
        """
        Set again the timers of the messages with a recipient routed to the
        next hop C{key}, whose wake times changed (it was suspended).
        """
        for queueId in list(self._timers):
            queued = self.current(queueId)
            if queued is not None and any(r.nextHop == key for r in queued.recipients):
                self._cancelTimer(queueId)
                self._schedule(queued, self._wakeTime(queued))

    # Scheduling.

    def _isKnown(self, address):
        return self.resolver.resolve(_address(address)).kind != UNKNOWN

    def _enqueued(self, queued):
        source = SMTP if queued.receivedFrom.get("connector") else DSN
        self.tracking.track("SUBMIT", queued, source=source)
        self.process(queued)

    def _adopted(self, queued):
        # Tracked when its part's process queued it; its shadows were kept
        # by that process's manager, and are this one's now.
        self.shadows.index(queued)
        self.process(queued)

    def _release(self, queueId):
        """
        Work on a message a next hop held (L{NextHops}).

        @return: whether a pass over it is running or waiting for room.
        """
        queued = self.current(queueId)
        if queued is not None and self.running:
            self.process(queued)
        return queueId in self._passes or queueId in self._due

    def _startDue(self):
        # A pass may end before process returns (a message parked behind
        # its next hop does), and its end comes back here: the loop
        # running already starts the next ones, where recursing would go
        # as deep as the messages waiting their turn.
        if self._startingDue:
            return
        self._startingDue = True
        try:
            while self._due and len(self._passes) < MAX_PASSES and self.running:
                queueId = next(iter(self._due))
                del self._due[queueId]
                queued = self.current(queueId)
                if queued is not None:
                    self.process(queued)
                else:
                    self.hops.passEnded(queueId)
        finally:
            self._startingDue = False

    def _cancelTimer(self, queueId):
        timer = self._timers.pop(queueId, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _wakeTime(self, queued):
        """
        L{RetrySchedule.wakeTime}, for what the manager may work on: nothing
        of a suspended message; of recipients held in a suspended queue,
        only the expiry and delay notification of their message.
        """
        if queued.suspended:
            return None
        held = [
            r for r in queued.recipients
            if r.status == READY and self.hops.isSuspended(r.nextHop)
        ]
        if not held:
            return self.schedule.wakeTime(queued)
        others = replace(
            queued,
            recipients=tuple(
                r for r in queued.recipients
                if not (r.status == READY and self.hops.isSuspended(r.nextHop))
            ),
        )
        times = [
            self.schedule.wakeTime(others),
            self.schedule.expiresAt(queued),
            self.schedule.delayNoticeAt(queued),
        ]
        return min(t for t in times if t is not None)

    def _passFailed(self, reason, queued):
        # Whatever broke (most likely the spool could not write), the
        # message is still queued as it was: try it again later.
        self.log.failure("processing {queueId} failed", reason, queueId=queued.queueId)
        return queued, self.reactor.seconds() + self.schedule.messageRetryInterval

    def _passed(self, outcome, queueId):
        queued, wake = outcome
        del self._passes[queueId]
        self._schedule(queued, wake)
        for waiter in self._waiters.pop(queueId, ()):
            waiter.callback(self.current(queueId))
        self.hops.passEnded(queueId)
        self._startDue()

    def _schedule(self, queued, wake):
        if wake is not None and self.running:
            delay = max(0, wake - self.reactor.seconds())
            self._timers[queued.queueId] = self.reactor.callLater(delay, self.process, queued)

    # A pass.

    @inlineCallbacks
    def _pass(self, queued):
        """
        @return: a Deferred firing with the message's new state, once that
            is recorded.
        """
        events = self.routingEvents
        work = self.newPass(queued, notifying=any(map(events.wants, DELIVERY_EVENTS)))
        now = self.reactor.seconds()
        if now >= work.schedule.expiresAt(queued):
            self.notifications.expire(work)
        else:
            if not queued.categorized and (
                events.wants("OnSubmittedMessage") or events.wants("OnResolvedMessage")
            ):
                if (yield events.categorize(work, now)):
                    # New recipients are recorded before anything is
                    # delivered, so a crash neither loses nor re-expands them.
                    queued = work.queued = work.result()
                    yield self.spool.update(queued)
            local, remote = self._categorize(work, now)
            if not local and len(remote) == 1 and self._parks(work, next(iter(remote)), now):
                return queued
            attempts = []
            if local:
                attempts.append(self._deliverLocal(work, local))
            for nextHop, addresses in remote.values():
                attempts.append(self._send(work, nextHop, addresses))
            yield gatherResults(attempts, consumeErrors=True)

        if work.reports and queued.mailFrom:
            yield self.notifications.notify(work, work.reports)
        notice = work.schedule.delayNoticeAt(queued)
        if notice is not None and self.reactor.seconds() >= notice:
            late = [r for r in work.recipients if r.status == READY]
            if late:
                told = [r for r in late if notifies(r.notify, "DELAY")]
                if told and queued.mailFrom:
                    yield self.notifications.notify(
                        work, [self.notifications.delayReport(r) for r in told]
                    )
                work.delayNotified = True

        result = work.result()
        if result != queued:
            yield self.spool.update(result)
            self.shadows.recorded(result)
            waiting = sum(r.status == READY for r in result.recipients)
            if waiting:
                # A message settled for good has had a line per recipient.
                self.log.info(
                    "recorded {queueId}: {waiting} of {total} recipients waiting",
                    queueId=queued.queueId,
                    waiting=waiting,
                    total=len(result.recipients),
                )
        events.announce(work, result)
        return result

    def _parks(self, work, key, now):
        """
        Park a message whose due recipients all go to next hop C{key}, when
        that one is in retry or being probed (L{NextHops.mayTry}), if the
        pass has nothing else to do: it is left as queued, without a write,
        a warning or a tracking event of its own.

        @return: whether it was parked.
        """
        queued = work.queued
        if now >= work.schedule.noticeTime(queued) or work.recipients != list(queued.recipients):
            return False
        return not self.hops.mayTry(key, queued.queueId)

    def _categorize(self, work, now):
        """
        Resolve and route the recipients due now; fail those that cannot be.

        @return: (the local ones: address to (folder, indices); the remote
            ones: next hop key to (next hop, address to indices)).
        """
        local = {}
        remote = {}
        linked = None
        if self.route is not None and self.linkedRoute is not None:
            linked = self.linkedRoute(work.queued)
        for index, recipient in enumerate(work.recipients):
            if not work.schedule.isDue(recipient, now):
                continue
            if linked is not None:
                self._routeRemote(work, index, linked, remote)
                continue
            address = _address(recipient.address)
            resolution = self.resolver.resolve(address)
            if resolution.kind == LOCAL:
                local.setdefault(recipient.address, (resolution.folder, []))[1].append(index)
            elif resolution.kind == UNKNOWN:
                work.fail(index, RECIPIENT_NOT_FOUND, ROUTING)
            elif self.route is None:
                if recipient.lastError != WAITING_FOR_SEND_CONNECTOR:
                    self.log.info(
                        "deferred {queueId} to {recipient}: {lastError}",
                        queueId=work.queued.queueId,
                        recipient=recipient.address,
                        lastError=WAITING_FOR_SEND_CONNECTOR,
                    )
                    work.recipients[index] = replace(
                        recipient, lastError=WAITING_FOR_SEND_CONNECTOR
                    )
            else:
                nextHop = self.route(address)
                if nextHop is None:
                    work.fail(index, UNABLE_TO_ROUTE, ROUTING)
                    continue
                self._routeRemote(work, index, nextHop, remote)
        return local, remote

    def _routeRemote(self, work, index, nextHop, remote):
        recipient = work.recipients[index]
        self.hops.noteRouted(nextHop)
        if self.hops.isSuspended(nextHop.key):
            # Held in its suspended queue, shown there.
            if recipient.nextHop != nextHop.key:
                work.recipients[index] = replace(recipient, nextHop=nextHop.key)
        else:
            addresses = remote.setdefault(nextHop.key, (nextHop, {}))[1]
            addresses.setdefault(recipient.address, []).append(index)

    def _deliverLocal(self, work, local):
        queued = work.queued
        mailboxes = {address: folder for address, (folder, _) in local.items()}

        @inlineCallbacks
        def deliver():
            message = work.read((yield self.spool.messageBytes(queued.queueId)))
            verdict = yield self.routingEvents.routed(queued, mailboxes, message)
            if verdict is not None:
                outcome = refusal(verdict)
                if outcome is not None:
                    return dict.fromkeys(mailboxes, outcome), AGENT
                if verdict.message is not None:
                    message = verdict.message
            delivering = maybeDeferred(self.deliveryAgent.deliver, queued, mailboxes, message)
            delivering.addTimeout(self._localDeliveryTimeout, self.reactor)
            outcomes = yield delivering
            return outcomes, STOREDRIVER

        def failed(reason):
            if reason.check(DeferredTimeoutError):
                problem = f"no answer within {self._localDeliveryTimeout} s"
                self.log.error(
                    "{agent} delivery of {queueId} failed: {problem}",
                    agent=self.deliveryAgent.name, queueId=queued.queueId, problem=problem,
                )
            else:
                problem = reason.getErrorMessage()
                self.log.failure(
                    "{agent} delivery of {queueId} failed", reason,
                    agent=self.deliveryAgent.name, queueId=queued.queueId,
                )
            failure = TransientFailure.of(
                451, "4.3.0", f"{self.deliveryAgent.name} delivery failed: {problem}"
            )
            return dict.fromkeys(mailboxes, failure), STOREDRIVER

        def settle(result):
            outcomes, source = result
            delivered = []
            for address, (_, indices) in local.items():
                outcome = outcomes.get(address, _NO_OUTCOME)
                for index in indices:
                    work.settle(index, outcome, source)
                if outcome is None:
                    delivered.append(address)
                    self.log.info(
                        "delivered {queueId} to {recipient} by {agent}",
                        queueId=queued.queueId, recipient=address, agent=self.deliveryAgent.name,
                    )
            if delivered:
                self.tracking.track(
                    "DELIVER", queued, source=STOREDRIVER, recipients=delivered,
                    messageId=work.messageId,
                )

        return self._deliveries.run(deliver).addErrback(failed).addCallback(settle)

    def _send(self, work, nextHop, addresses):
        queued = work.queued
        # The next hop the message goes to: an OnRoutedMessage agent may
        # choose another.
        going = [nextHop]

        @inlineCallbacks
        def send():
            self.hops.sending(nextHop, queued.queueId, addresses)
            try:
                message = work.read((yield self.spool.messageBytes(queued.queueId)))
                if queued.body != "BINARYMIME":
                    # Binary content (RFC 3030) has no lines to fit.
                    message = fitLineLimit(message)
                verdict = yield self.routingEvents.routed(queued, addresses, message, nextHop)
                if verdict is not None:
                    outcome = refusal(verdict)
                    if outcome is not None:
                        return dict.fromkeys(addresses, outcome), AGENT
                    if verdict.message is not None:
                        message = verdict.message
                    if verdict.nextHop is not None and verdict.nextHop != nextHop:
                        self.hops.sent(nextHop, queued.queueId)
                        going[0] = verdict.nextHop
                        self.hops.noteRouted(verdict.nextHop)
                        self.hops.sending(verdict.nextHop, queued.queueId, addresses)
                outcomes = yield self.remoteDelivery.send(going[0], queued, list(addresses), message)
                return outcomes, SMTP
            finally:
                self.hops.sent(going[0], queued.queueId)

        def failed(reason):
            self.log.failure(
                "sending {queueId} to {nextHop} failed", reason,
                queueId=queued.queueId, nextHop=going[0].key,
            )
            failure = TransientFailure.of(
                451, "4.4.0", f"Sending to {going[0].key} failed: {reason.getErrorMessage()}"
            )
            return dict.fromkeys(addresses, failure), SMTP

        def settle(result):
            outcomes, source = result
            hop = going[0]
            if source == SMTP and self.running:
                attempts = max(work.recipients[i].attempts for i in next(iter(addresses.values())))
                self.hops.judge(
                    hop, [outcomes.get(address) for address in addresses], attempts, work.schedule
                )
            sent = []
            for address, indices in addresses.items():
                outcome = outcomes.get(address, _NO_OUTCOME)
                for index in indices:
                    work.settle(index, outcome, source, hop)
                if outcome is None or isinstance(outcome, Relayed):
                    sent.append(address)
                    # The tracking log's SEND is the record (exmta.serverlog).
                    self.log.debug(
                        "sent {queueId} to {recipient} through {nextHop}",
                        queueId=queued.queueId, recipient=address, nextHop=hop.key,
                    )
            if sent:
                self.tracking.track(
                    "SEND", queued, source=SMTP, recipients=sent, messageId=work.messageId,
                    connectorId=hop.connector, nextHop=hop.key,
                )
            self.shadows.handedOff(work, outcomes, hop, addresses)

        retry = self.hops.retryTime(nextHop.key)
        if retry is not None and retry[0] > self.reactor.seconds():
            self._hold(work, nextHop, addresses, retry[1])
            return succeed(None)
        return self._sends.run(send).addErrback(failed).addCallback(settle)

    def _hold(self, work, nextHop, addresses, failure):
        """
        Defer recipients routed to a next hop in retry as its last attempt
        was, without an attempt of their own.
        """
        for indices in addresses.values():
            for index in indices:
                work.defer(index, failure, SMTP, nextHop)
