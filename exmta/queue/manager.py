"""
The queue manager: takes each queued message, settles what it can, and
leaves the rest queued, visibly.

A pass over a message resolves each C{Ready} recipient:

  - local ones go to the delivery agent, in one call per message, and end
    C{Delivered}, C{Failed} (a permanent failure) or stay C{Ready} with the
    reply as C{lastError} (a transient one: the message's local delivery is
    retried every C{messageRetryInterval} seconds);
  - those no longer known (a mailbox was removed while it waited) end
    C{Failed} with 550 5.1.1;
  - remote ones stay C{Ready}, C{lastError} "Waiting for a send
    connector", until the send side takes them.

The new states go to the spool, which removes the message once nothing is
C{Ready}.  Passes run for every message queued at start and then for each
one the spool commits.  Delivery is at least once: a crash (or a failed
spool write) between a delivery and its record means the next pass
delivers again, which is a duplicate, never a loss.  Failed recipients are
recorded but no delivery status notification is sent yet.
"""

from dataclasses import replace

from twisted.application import service
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredSemaphore,
    inlineCallbacks,
    succeed,
)
from twisted.logger import Logger

from exmta.envelope import Address
from exmta.errors import PermanentFailure, SMTPFailure, TransientFailure
from exmta.queue.spool import DELIVERED, FAILED, READY
from exmta.routing import LOCAL, UNKNOWN

RECIPIENT_NOT_FOUND = "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
WAITING_FOR_SEND_CONNECTOR = "Waiting for a send connector"

# A delivery agent (a plugin, perhaps) that leaves a recipient out of its
# answer has not delivered to it.
_NO_OUTCOME = TransientFailure.of(451, "4.3.0", "The delivery agent reported no outcome")


def _address(text):
    localPart, _, domain = text.rpartition("@")
    return Address(localPart, domain)


class QueueManager(service.Service):
    """
    @ivar messageRetryInterval: seconds between local delivery attempts of
        a message whose last one failed transiently (Exchange's
        C{MessageRetryInterval}).
    @ivar maxConcurrentMailboxDeliveries: how many messages may be in local
        delivery at once, which bounds the message bytes held in memory
        when a restart finds a long queue (Exchange's
        C{MaxConcurrentMailboxDeliveries}).
    """

    name = "queue"
    log = Logger()

    def __init__(
        self,
        spool,
        resolver,
        deliveryAgent,
        reactor,
        messageRetryInterval=60,
        maxConcurrentMailboxDeliveries=20,
    ):
        """
        @param spool: the L{exmta.queue.spool.Spool}, or any
            L{exmta.interfaces.IMessageQueue} with an C{onEnqueued} list.
        @param resolver: an L{exmta.interfaces.IRecipientResolver}.
        @param deliveryAgent: an L{exmta.interfaces.IDeliveryAgent}.
        @param reactor: an L{twisted.internet.interfaces.IReactorTime}.
        """
        self.spool = spool
        self.resolver = resolver
        self.deliveryAgent = deliveryAgent
        self.reactor = reactor
        self.messageRetryInterval = messageRetryInterval
        self._deliveries = DeferredSemaphore(maxConcurrentMailboxDeliveries)
        self._passes = {}
        self._waiters = {}
        self._retries = {}

    def startService(self):
        super().startService()
        self.spool.onEnqueued.append(self._process)
        for queued in self.spool.messages():
            self._process(queued)

    def stopService(self):
        """
        Stop taking messages and cancel pending retries.

        @return: a Deferred that fires when the passes running have ended.
        """
        super().stopService()
        self.spool.onEnqueued.remove(self._process)
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        return DeferredList(list(self._passes.values()))

    def processed(self, queueId):
        """
        Wait for the pass over a message, if one is running.

        @return: a Deferred firing when no pass over C{queueId} is running
            (at once if none is), with the message as the spool then holds
            it, or L{None} if it is no longer queued.
        """
        if queueId not in self._passes:
            return succeed(self._current(queueId))
        waiter = Deferred()
        self._waiters.setdefault(queueId, []).append(waiter)
        return waiter

    def _current(self, queueId):
        for queued in self.spool.messages():
            if queued.queueId == queueId:
                return queued
        return None

    def _process(self, queued):
        queueId = queued.queueId
        if queueId in self._passes:
            return
        self._retries.pop(queueId, None)
        running = self._passes[queueId] = self._pass(queued)
        running.addErrback(self._passFailed, queued)
        running.addCallback(self._passed, queueId)

    def _passFailed(self, reason, queued):
        # Whatever broke (most likely the spool could not write), the
        # message is still queued as it was: try it again later.
        self.log.failure("processing {queueId} failed", reason, queueId=queued.queueId)
        return queued, True

    def _passed(self, outcome, queueId):
        queued, retry = outcome
        del self._passes[queueId]
        if retry and self.running:
            self._retries[queueId] = self.reactor.callLater(
                self.messageRetryInterval, self._process, queued
            )
        for waiter in self._waiters.pop(queueId, ()):
            waiter.callback(self._current(queueId))

    @inlineCallbacks
    def _pass(self, queued):
        """
        @return: a Deferred firing with the message's new state and whether
            its local delivery needs another try.
        """
        recipients = list(queued.recipients)
        local = {}
        for index, recipient in enumerate(recipients):
            if recipient.status != READY:
                continue
            resolution = self.resolver.resolve(_address(recipient.address))
            if resolution.kind == LOCAL:
                local[recipient.address] = resolution.folder
            elif resolution.kind == UNKNOWN:
                self.log.warn(
                    "failed {queueId} to {recipient}: {reply}",
                    queueId=queued.queueId,
                    recipient=recipient.address,
                    reply=RECIPIENT_NOT_FOUND,
                )
                recipients[index] = replace(
                    recipient, status=FAILED, lastError=RECIPIENT_NOT_FOUND
                )
            elif recipient.lastError != WAITING_FOR_SEND_CONNECTOR:
                self.log.info(
                    "deferred {queueId} to {recipient}: {lastError}",
                    queueId=queued.queueId,
                    recipient=recipient.address,
                    lastError=WAITING_FOR_SEND_CONNECTOR,
                )
                recipients[index] = replace(recipient, lastError=WAITING_FOR_SEND_CONNECTOR)

        retry = False
        if local:
            outcomes = yield self._deliverLocal(queued, local)
            for index, recipient in enumerate(recipients):
                if recipient.status == READY and recipient.address in local:
                    recipients[index] = self._settle(
                        queued.queueId, recipient, outcomes.get(recipient.address, _NO_OUTCOME)
                    )
                    retry = retry or recipients[index].status == READY

        if tuple(recipients) != queued.recipients:
            queued = replace(queued, recipients=tuple(recipients))
            yield self.spool.update(queued)
            self.log.info(
                "recorded {queueId}: {waiting} of {total} recipients waiting",
                queueId=queued.queueId,
                waiting=sum(r.status == READY for r in recipients),
                total=len(recipients),
            )
        return queued, retry

    def _deliverLocal(self, queued, mailboxes):
        def deliver():
            reading = self.spool.messageBytes(queued.queueId)
            return reading.addCallback(
                lambda message: self.deliveryAgent.deliver(queued, mailboxes, message)
            )

        def failed(reason):
            self.log.failure(
                "{agent} delivery of {queueId} failed", reason,
                agent=self.deliveryAgent.name, queueId=queued.queueId,
            )
            failure = TransientFailure.of(
                451, "4.3.0", f"{self.deliveryAgent.name} delivery failed: {reason.getErrorMessage()}"
            )
            return dict.fromkeys(mailboxes, failure)

        return self._deliveries.run(deliver).addErrback(failed)

    def _settle(self, queueId, recipient, outcome):
        """
        @param outcome: what the delivery agent said for this recipient:
            L{None} for delivered, or an L{SMTPFailure}.
        """
        fields = dict(
            queueId=queueId, recipient=recipient.address, agent=self.deliveryAgent.name
        )
        if outcome is None:
            self.log.info("delivered {queueId} to {recipient} by {agent}", **fields)
            return replace(recipient, status=DELIVERED, lastError=None)
        reply = str(outcome.reply) if isinstance(outcome, SMTPFailure) else repr(outcome)
        if isinstance(outcome, PermanentFailure):
            self.log.warn("failed {queueId} to {recipient}: {reply}", reply=reply, **fields)
            return replace(recipient, status=FAILED, lastError=reply)
        self.log.warn(
            "deferred {queueId} to {recipient}: {reply}; retrying in {interval} s",
            reply=reply, interval=self.messageRetryInterval, **fields,
        )
        return replace(recipient, lastError=reply)
