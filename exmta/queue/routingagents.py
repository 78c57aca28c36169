"""
The queue manager's side of routing agents (L{exmta.interfaces.IRoutingAgent}):
the once-per-message events, the recipient changes they make, the event
before each delivery, and the delivery notifications.
L{RoutingEvents} raises them for L{exmta.queue.manager.QueueManager}
(L{exmta.interfaces.IRoutingEvents}); what the manager promises about them
is in L{exmta.queue.manager}'s docstring.
"""

from twisted.internet.defer import inlineCallbacks, succeed
from zope.interface import implementer

from exmta.agents import RECIPIENT_DELETED, REJECT, TEMPORARY_REJECT, RoutingEvent
from exmta.envelope import QueuedRecipient
from exmta.errors import PermanentFailure, TransientFailure
from exmta.interfaces import IRoutingEvents

# The tracking log source of what routing agents decided.
AGENT = "AGENT"


def refusal(verdict):
    """
    @return: the outcome a routing agent's refusing verdict gives the
        recipients concerned, or L{None} if it did not refuse.
    """
    if verdict.kind == REJECT:
        return PermanentFailure(verdict.reply)
    if verdict.kind == TEMPORARY_REJECT:
        return TransientFailure(verdict.reply)
    return None


@implementer(IRoutingEvents)
class RoutingEvents:
    """
    @ivar agents: the L{exmta.agents.AgentPipeline} whose routing agents
        are called, or L{None}.
    """

    def __init__(self, agents, spool, tracking, log, isKnown):
        """
        @param spool: the L{exmta.interfaces.IMessageQueue} messages are
            read from.
        @param tracking: the L{exmta.interfaces.IMessageTrackingLog}.
        @param log: the queue manager's L{twisted.logger.Logger}.
        @param isKnown: whether accepted-domain resolution knows an address
            (a callable from an address as text).
        """
        self.agents = agents
        self._spool = spool
        self._tracking = tracking
        self._log = log
        self._isKnown = isKnown

    def wants(self, event):
        return self.agents is not None and self.agents.wants(event)

    @inlineCallbacks
    def categorize(self, work, now):
        """
        Ask the routing agents at OnSubmittedMessage, then at
        OnResolvedMessage about the recipients accepted-domain resolution
        knows, and apply their verdicts to the pass C{work}.  Once both
        have answered without refusing, the message is categorized.

        @return: a Deferred firing with whether the agents changed the
            recipients (the change must be recorded before any delivery).
        """
        queued = work.queued
        due = [i for i, r in enumerate(work.recipients) if work.schedule.isDue(r, now)]
        if not due:
            return False
        message = work.read((yield self._spool.messageBytes(queued.queueId)))
        if self.wants("OnSubmittedMessage"):
            verdict = yield self.agents.run(
                RoutingEvent(
                    "OnSubmittedMessage", queued,
                    tuple(work.recipients[i].address for i in due), message=message,
                )
            )
            if self._refused(work, due, verdict):
                return False
        resolved = [i for i in due if self._isKnown(work.recipients[i].address)]
        changes = None
        if resolved and self.wants("OnResolvedMessage"):
            verdict = yield self.agents.run(
                RoutingEvent(
                    "OnResolvedMessage", queued,
                    tuple(work.recipients[i].address for i in resolved), message=message,
                )
            )
            if self._refused(work, resolved, verdict):
                return False
            changes = verdict.recipients
        work.categorized = True
        if changes:
            self._reroute(work, changes)
            return True
        return False

    def routed(self, queued, addresses, message, nextHop=None):
        """
        Ask the routing agents at OnRoutedMessage before a delivery.

        @param addresses: the recipients delivered to.
        @param nextHop: the L{exmta.envelope.NextHop} of a remote delivery,
            L{None} for a local one.
        @return: a Deferred firing with the agents' verdict, or L{None}
            when none handles the event.
        """
        if not self.wants("OnRoutedMessage"):
            return succeed(None)
        return self.agents.run(
            RoutingEvent(
                "OnRoutedMessage", queued, tuple(addresses), message=message, nextHop=nextHop,
            )
        )

    def _refused(self, work, indices, verdict):
        """
        Fail or defer the recipients at C{indices} if C{verdict} refused.

        @return: whether it did.
        """
        outcome = refusal(verdict)
        if outcome is None:
            return False
        for index in indices:
            work.settle(index, outcome, AGENT)
        return True

    def _reroute(self, work, changes):
        """
        Apply an OnResolvedMessage verdict's recipients: each address in
        C{changes} is replaced by the addresses it maps to, in its place;
        addresses already among the message's recipients (compared without
        case) are not added again.
        """
        queued = work.queued
        changed = {address.casefold() for address in changes}
        taken = {
            r.address.casefold() for r in work.recipients if r.address.casefold() not in changed
        }
        recipients = []
        for recipient in work.recipients:
            becomes = changes.get(recipient.address)
            if becomes is None:
                recipients.append(recipient)
                continue
            for address in becomes:
                if address.casefold() in taken:
                    continue
                taken.add(address.casefold())
                same = address.casefold() == recipient.address.casefold()
                recipients.append(recipient if same else QueuedRecipient(address))
            self._trackReroute(work, recipient.address, becomes)
        work.recipients = recipients
        self._log.info(
            "transport agents changed the recipients of {queueId}: {changes}",
            queueId=queued.queueId,
            changes="; ".join(f"{a} -> {', '.join(b) or '(deleted)'}" for a, b in changes.items()),
        )

    def _trackReroute(self, work, address, becomes):
        if not becomes:
            self._tracking.track(
                "FAIL", work.queued, source=AGENT, recipients=[address],
                recipientStatus=RECIPIENT_DELETED, messageId=work.messageId,
            )
        elif len(becomes) > 1:
            self._tracking.track(
                "EXPAND", work.queued, source=AGENT, recipients=list(becomes),
                relatedRecipientAddress=[address], messageId=work.messageId,
            )
        elif becomes[0].casefold() != address.casefold():
            self._tracking.track(
                "REDIRECT", work.queued, source=AGENT, recipients=list(becomes),
                relatedRecipientAddress=[address], messageId=work.messageId,
            )

    def announce(self, work, queued):
        """
        Tell the routing agents of the outcomes of the pass C{work}, now
        recorded as C{queued}: one event per next hop and reply; their
        answers are not waited for.
        """
        groups = {}
        for event, nextHop, reply, address in work.outcomes:
            groups.setdefault((event, nextHop, reply), []).append(address)
        work.outcomes = []
        for (event, nextHop, reply), addresses in groups.items():
            if self.wants(event):
                self.agents.run(
                    RoutingEvent(event, queued, tuple(addresses), nextHop=nextHop, reply=reply)
                )
