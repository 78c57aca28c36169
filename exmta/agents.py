"""
Transport agents: third-party code called at each SMTP event of a receive
connector (L{exmta.interfaces.IReceiveAgent}) and as the queue manager
works each message (L{exmta.interfaces.IRoutingAgent}).

An agent plugin is an L{exmta.interfaces.IAgentFactory} in the
L{exmta.plugins} dropin package (or any installed package's
C{exmta/plugins/} folder).  org.ini enables it with a section named after it:

    [TransportAgent SenderBlockList]
    # Lower runs first; unique.
    Priority = 10
    Enabled = $true
    # Per event.
    Timeout = 00:00:30
    # Or FailOpen.
    FailurePolicy = FailClosed
    # 0 (the default): never.
    DisableAfterFailures = 5
    # The agent's own keys.
    BlockedSenders = a@x.com, *@spam.example

The agent object the factory makes is called at the events whose methods it
has, receive events and routing events alike, in Priority order.

Verdicts
========
An agent answers each event with a L{Verdict}, or a Deferred firing with
one.  Verdicts are a closed set:

  - C{Verdict.continue_()}: no objection; the next agent is asked.
  - C{Verdict.accept()}: no objection, and the agents after it are not asked
    for this event (exmta's own checks still apply).
  - C{Verdict.reject(reply)}: the command fails with this 5xx reply; at a
    routing event, the recipients concerned fail with it and the sender gets
    a non-delivery report.
  - C{Verdict.temporaryReject(reply)}: the command fails with this 4xx
    reply; at a routing event, the recipients concerned are deferred with it
    and retried on the queue's schedule.
  - C{Verdict.disconnect(reply)}: the reply is sent and the connection
    closed.  Receive events only.

C{continue_} and C{accept} may carry changes, each allowed at some events
only (anywhere else the verdict counts as an agent failure):

  - C{message=} new bytes: at OnEndOfData (the queue stores them) and at
    OnRoutedMessage (sent or delivered in this attempt only; the queued copy
    stays as it was).
  - C{recipients=}: at OnRcptCommand, a tuple of
    L{exmta.envelope.Address}es that replace the command's recipient (an
    empty tuple drops it silently; the client still hears 250); at
    OnResolvedMessage, a dict from a recipient address (str, one of
    C{event.recipients}) to the tuple of addresses (str) it becomes: an
    empty tuple drops it, one other address redirects it, several expand
    it; recipients not named stay as they are.
  - C{nextHop=} another L{exmta.envelope.NextHop}: at OnRoutedMessage of a
    remote delivery only.

The agents after one that changed something see the change (C{event.message},
C{event.recipients}, C{event.nextHop}); the verdict the caller acts on
carries the sum of the changes.  Addresses that become the same address
(compared without regard to case) collapse into one.

At OnDelivered, OnDeferred and OnFailed the answer is ignored: they are
notifications, made after the outcome is recorded.

Failures: FailurePolicy and DisableAfterFailures
================================================
An agent fails an event when it raises, answers with something that is not
a verdict or with a verdict the event does not allow, or does not answer
within its Timeout.  Each failure is logged with the agent's name and the
event, and then:

  - C{FailurePolicy = FailClosed} (the default): the event fails as if the
    agent had said C{temporaryReject} with 451 4.7.0 Temporary agent
    failure.  At a receive event the client hears that reply and nothing was
    accepted, so no mail is lost; at a routing event the recipients
    concerned are deferred and retried later.
  - C{FailurePolicy = FailOpen}: the agent counts as having said
    C{continue_()} with no change.

At the notification events a failure is only logged, whatever the policy.

C{DisableAfterFailures = N} (N > 0): after N failures in a row of one agent,
at any events, an error naming the agent is logged and the agent is no
longer called at all until exmta starts again or reloads org.ini.  An
event it handles successfully sets its count back to zero.
"""

from dataclasses import dataclass, replace

from twisted.internet import defer
from twisted.logger import Logger

from exmta.envelope import Address, NextHop, Reply
# Re-exported: plugins import it from here, as docs/writing-an-agent.rst once showed.
from exmta.errors import SettingError
from exmta.interfaces import IAgentFactory, IReceiveAgent, IRoutingAgent
from exmta.pluginkinds import TRANSPORT_AGENT, byName
from exmta.message.address import AddressError, parseMailbox

EVENTS = (
    "OnConnect",
    "OnHelo",
    "OnEhlo",
    "OnAuth",
    "OnMailCommand",
    "OnRcptCommand",
    "OnDataCommand",
    "OnEndOfHeaders",
    "OnEndOfData",
    "OnDisconnect",
)

ROUTING_EVENTS = (
    "OnSubmittedMessage",
    "OnResolvedMessage",
    "OnRoutedMessage",
)

DELIVERY_EVENTS = (
    "OnDelivered",
    "OnDeferred",
    "OnFailed",
)

ALL_EVENTS = EVENTS + ROUTING_EVENTS + DELIVERY_EVENTS

# Events that only inform: every agent is told, whatever the others answer,
# and answers and failures change nothing.
_NOTICE_EVENTS = frozenset(DELIVERY_EVENTS + ("OnDisconnect",))

CONTINUE, ACCEPT, REJECT, TEMPORARY_REJECT, DISCONNECT = (
    "CONTINUE",
    "ACCEPT",
    "REJECT",
    "TEMPORARY_REJECT",
    "DISCONNECT",
)

AGENT_FAILURE = Reply(451, "4.7.0", "Temporary agent failure")
# The tracking log's recipientStatus for a recipient an agent removed.
RECIPIENT_DELETED = "550 4.3.2 QUEUE.TransportAgent; recipient deleted by a transport agent"
DEFAULT_REJECT = Reply(550, "5.7.1", "Rejected by transport agent")
DEFAULT_TEMPORARY_REJECT = Reply(451, "4.7.1", "Temporarily rejected by transport agent")
DEFAULT_DISCONNECT = Reply(421, "4.7.0", "Closing transmission channel")

# Where each change a verdict may carry is allowed.
_MESSAGE_EVENTS = ("OnEndOfData", "OnRoutedMessage")
_RECIPIENTS_EVENTS = ("OnRcptCommand", "OnResolvedMessage")


@dataclass(frozen=True)
class Verdict:
    """
    An agent's answer to one event.  Make one with the constructors.

    @ivar kind: one of C{CONTINUE}, C{ACCEPT}, C{REJECT}, C{TEMPORARY_REJECT},
        C{DISCONNECT}.
    @ivar reply: the L{Reply} for the refusing kinds.
    @ivar message: new message bytes (OnEndOfData, OnRoutedMessage), or
        L{None}.
    @ivar recipients: new recipients (OnRcptCommand: a tuple of
        L{exmta.envelope.Address}; OnResolvedMessage: a dict of address str
        to a tuple of address str), or L{None}.
    @ivar nextHop: another L{exmta.envelope.NextHop} (OnRoutedMessage), or
        L{None}.
    """

    kind: str
    reply: Reply | None = None
    message: bytes | None = None
    recipients: tuple | dict | None = None
    nextHop: NextHop | None = None

    def __post_init__(self):
        if self.kind not in (CONTINUE, ACCEPT, REJECT, TEMPORARY_REJECT, DISCONNECT):
            raise ValueError(f"unknown verdict kind {self.kind!r}")
        if self.kind in (CONTINUE, ACCEPT):
            if self.reply is not None:
                raise ValueError(f"a {self.kind} verdict has no reply")
        else:
            for change in ("message", "recipients", "nextHop"):
                if getattr(self, change) is not None:
                    raise ValueError(f"a {self.kind} verdict has no {change}")
            if not isinstance(self.reply, Reply):
                raise ValueError(f"a {self.kind} verdict needs a Reply")
            first = {REJECT: 5, TEMPORARY_REJECT: 4, DISCONNECT: None}[self.kind]
            if first is not None and self.reply.code // 100 != first:
                raise ValueError(f"a {self.kind} verdict needs a {first}xx reply")
        if self.message is not None and not isinstance(self.message, bytes):
            raise ValueError("a verdict's message must be bytes")
        if self.recipients is not None and not isinstance(self.recipients, (tuple, dict)):
            raise ValueError("a verdict's recipients must be a tuple or a dict")
        if self.nextHop is not None and not isinstance(self.nextHop, NextHop):
            raise ValueError("a verdict's nextHop must be a NextHop")

    @classmethod
    def continue_(cls, message=None, recipients=None, nextHop=None):
        return cls(CONTINUE, message=message, recipients=recipients, nextHop=nextHop)

    @classmethod
    def accept(cls, message=None, recipients=None, nextHop=None):
        return cls(ACCEPT, message=message, recipients=recipients, nextHop=nextHop)

    @classmethod
    def reject(cls, reply=DEFAULT_REJECT):
        return cls(REJECT, reply)

    @classmethod
    def temporaryReject(cls, reply=DEFAULT_TEMPORARY_REJECT):
        return cls(TEMPORARY_REJECT, reply)

    @classmethod
    def disconnect(cls, reply=DEFAULT_DISCONNECT):
        return cls(DISCONNECT, reply)

    def changes(self):
        """
        @return: a dict of the changes this verdict carries, by name.
        """
        return {
            name: value
            for name, value in (
                ("message", self.message),
                ("recipients", self.recipients),
                ("nextHop", self.nextHop),
            )
            if value is not None
        }


@dataclass(frozen=True)
class AgentEvent:
    """
    What a receive agent is told at one event.

    @ivar name: the event, e.g. C{OnRcptCommand}.
    @ivar session: the L{exmta.envelope.Session} (per connection).
    @ivar envelope: the L{exmta.envelope.Envelope} of the transaction, or
        L{None} outside one.
    @ivar address: the sender (OnMailCommand) or recipient (OnRcptCommand)
        L{exmta.envelope.Address}.
    @ivar header: the header bytes (OnEndOfHeaders).
    @ivar message: the message bytes as they will be queued (OnEndOfData).
    @ivar recipients: at OnRcptCommand, the L{exmta.envelope.Address}es the
        command's recipient has become so far (C{(address,)} for the first
        agent; what earlier agents' C{recipients=} made of it for the
        others).
    """

    name: str
    session: object
    envelope: object = None
    address: object = None
    header: bytes | None = None
    message: bytes | None = None
    recipients: tuple = ()


@dataclass(frozen=True)
class RoutingEvent:
    """
    What a routing agent is told at one event.

    @ivar name: the event, e.g. C{OnRoutedMessage}.
    @ivar queued: the L{exmta.envelope.QueuedMessage}.
    @ivar recipients: the addresses (str) the event concerns.
    @ivar message: the message bytes (OnSubmittedMessage, OnResolvedMessage,
        OnRoutedMessage).
    @ivar nextHop: the L{exmta.envelope.NextHop}, or L{None} for local
        delivery (OnRoutedMessage and the delivery events).
    @ivar reply: the reply (str) the recipients failed with (OnDeferred,
        OnFailed).
    """

    name: str
    queued: object
    recipients: tuple[str, ...]
    message: bytes | None = None
    nextHop: NextHop | None = None
    reply: str | None = None


@dataclass(frozen=True)
class ConfiguredAgent:
    """
    An agent made from its [TransportAgent] section.
    """

    name: str
    priority: int
    timeout: float
    failOpen: bool
    agent: object
    disableAfterFailures: int = 0


def _key(address):
    return str(address).casefold()


def _unique(addresses):
    """
    @return: C{addresses} without the repeats (compared without case),
        first ones kept, in order.
    """
    seen = set()
    kept = []
    for address in addresses:
        if _key(address) not in seen:
            seen.add(_key(address))
            kept.append(address)
    return tuple(kept)


def _mailbox(text):
    if not isinstance(text, str):
        raise TypeError(f"{text!r} is not an address string")
    try:
        return str(parseMailbox(text))
    except AddressError:
        raise TypeError(f"{text!r} is not an address") from None


@dataclass
class _Changes:
    """
    What the agents asked so far at one event, summed.

    @ivar expansion: at OnResolvedMessage, each of the event's first
        recipients mapped to the addresses it has become.
    """

    message: bytes | None = None
    recipients: tuple | None = None
    nextHop: NextHop | None = None
    expansion: dict | None = None

    def verdict(self, kind):
        recipients = self.recipients
        if self.expansion is not None and recipients is not None:
            recipients = {
                original: now for original, now in self.expansion.items() if now != (original,)
            }
        return Verdict(kind, message=self.message, recipients=recipients, nextHop=self.nextHop)


class AgentPipeline:
    """
    The enabled agents of an organization in Priority order, run at each
    receive event by the receive protocol and at each routing event by the
    queue manager.

    @ivar disabled: the names of the agents DisableAfterFailures stopped.
    """

    log = Logger()

    def __init__(self, agents, reactor):
        self.agents = tuple(sorted(agents, key=lambda a: a.priority))
        self.reactor = reactor
        self.disabled = set()
        self._failures = {}
        self._handlers = {}
        for event in ALL_EVENTS:
            handlers = tuple(
                (configured, getattr(configured.agent, event))
                for configured in self.agents
                if callable(getattr(configured.agent, event, None))
            )
            if handlers:
                self._handlers[event] = handlers

    def wants(self, event):
        """
        @return: whether any agent still called handles C{event}.
        """
        return any(
            configured.name not in self.disabled
            for configured, _ in self._handlers.get(event, ())
        )

    def run(self, event):
        """
        Ask the agents handling C{event.name} in Priority order.

        @param event: an L{AgentEvent} or a L{RoutingEvent}.
        @return: a Deferred firing with the deciding L{Verdict}: the first
            refusal, else an ACCEPT or CONTINUE carrying every change the
            agents made (see the module docstring).  At the notification
            events it fires with C{Verdict.continue_()} once every agent
            has answered or failed.  It never errbacks.
        """
        handlers = self._handlers.get(event.name, ())
        changes = _Changes()
        if event.name == "OnResolvedMessage":
            changes.expansion = {address: (address,) for address in event.recipients}

        def step(index, event):
            while index < len(handlers) and handlers[index][0].name in self.disabled:
                index += 1
            if index == len(handlers):
                return defer.succeed(changes.verdict(CONTINUE))
            configured, method = handlers[index]
            answer = defer.maybeDeferred(method, event)
            answer.addTimeout(configured.timeout, self.reactor)
            answer.addCallback(self._check, event)
            answer.addCallbacks(
                self._succeeded, self._failed,
                callbackArgs=(configured,), errbackArgs=(configured, event),
            )

            def decide(verdict):
                if verdict.kind not in (CONTINUE, ACCEPT):
                    return verdict
                following = self._apply(verdict, event, changes)
                if verdict.kind == ACCEPT:
                    return changes.verdict(ACCEPT)
                return step(index + 1, following)

            return answer.addCallback(decide)

        return step(0, event)

    def _check(self, verdict, event):
        """
        @return: C{verdict}, its recipients in a canonical form.
        @raise TypeError: C{verdict} is not one C{event} allows.
        """
        name = event.name
        if name in _NOTICE_EVENTS:
            return Verdict.continue_()
        if not isinstance(verdict, Verdict):
            raise TypeError(f"answered {verdict!r}, not a Verdict")
        if verdict.kind == DISCONNECT and name in ROUTING_EVENTS:
            raise TypeError(f"answered DISCONNECT at {name}, a routing event")
        if verdict.message is not None and name not in _MESSAGE_EVENTS:
            raise TypeError(f"changed the message at {name}; only {' and '.join(_MESSAGE_EVENTS)} may")
        if verdict.nextHop is not None and (name != "OnRoutedMessage" or event.nextHop is None):
            raise TypeError(f"changed the next hop at {name}; only OnRoutedMessage of a remote delivery may")
        if verdict.recipients is None:
            return verdict
        if name == "OnRcptCommand":
            return replace(verdict, recipients=self._rcptRecipients(verdict.recipients))
        if name == "OnResolvedMessage":
            return replace(verdict, recipients=self._resolvedRecipients(verdict.recipients, event))
        raise TypeError(f"changed the recipients at {name}; only {' and '.join(_RECIPIENTS_EVENTS)} may")

    def _rcptRecipients(self, recipients):
        if not isinstance(recipients, tuple):
            raise TypeError(f"recipients at OnRcptCommand must be a tuple of Address, not {recipients!r}")
        for address in recipients:
            if not isinstance(address, Address):
                raise TypeError(f"{address!r} is not an Address")
            _mailbox(str(address))
        return _unique(recipients)

    def _resolvedRecipients(self, recipients, event):
        """
        @return: C{recipients} keyed by the case-folded address, each value
            a tuple of distinct addresses.
        """
        if not isinstance(recipients, dict):
            raise TypeError(f"recipients at OnResolvedMessage must be a dict, not {recipients!r}")
        known = {_key(address) for address in event.recipients}
        canonical = {}
        for original, becomes in recipients.items():
            if not isinstance(original, str) or _key(original) not in known:
                raise TypeError(f"{original!r} is not one of the event's recipients")
            if not isinstance(becomes, (tuple, list)):
                raise TypeError(f"{original} becomes {becomes!r}, not a tuple of addresses")
            canonical[_key(original)] = _unique(_mailbox(address) for address in becomes)
        return canonical

    def _apply(self, verdict, event, changes):
        """
        Add C{verdict}'s changes to C{changes}.

        @return: the event the next agent is told.
        """
        if verdict.message is not None:
            changes.message = verdict.message
            event = replace(event, message=verdict.message)
        if verdict.nextHop is not None:
            changes.nextHop = verdict.nextHop
            event = replace(event, nextHop=verdict.nextHop)
        if verdict.recipients is None:
            return event
        if changes.expansion is None:
            changes.recipients = verdict.recipients
        else:
            changes.expansion = {
                original: _unique(
                    address
                    for current in now
                    for address in verdict.recipients.get(_key(current), (current,))
                )
                for original, now in changes.expansion.items()
            }
            changes.recipients = _unique(
                address for now in changes.expansion.values() for address in now
            )
        return replace(event, recipients=changes.recipients)

    def _succeeded(self, verdict, configured):
        self._failures.pop(configured.name, None)
        return verdict

    def _failed(self, failure, configured, event):
        policy = "FailOpen" if configured.failOpen else "FailClosed"
        self.log.failure(
            "transport agent {agent} failed at {event} ({policy})",
            failure,
            agent=configured.name,
            event=event.name,
            policy=policy,
        )
        failures = self._failures[configured.name] = self._failures.get(configured.name, 0) + 1
        limit = configured.disableAfterFailures
        if limit and failures >= limit and configured.name not in self.disabled:
            self.disabled.add(configured.name)
            self.log.error(
                "transport agent {agent} disabled after {failures} failures in a row "
                "(DisableAfterFailures); it is called again after a restart or reload",
                agent=configured.name,
                failures=failures,
            )
        if configured.failOpen or event.name in _NOTICE_EVENTS:
            return Verdict.continue_()
        return Verdict.temporaryReject(AGENT_FAILURE)


def agentFactories():
    """
    @return: a dict of every L{IAgentFactory} plugin by lower-case name.
    """
    return TRANSPORT_AGENT.installed()


def loadAgents(organization, reactor, factories=None):
    """
    Make the enabled agents of C{organization}'s [TransportAgent] sections.

    @param factories: the L{IAgentFactory}s to choose from; by default the
        plugins in L{exmta.plugins}.
    @return: an L{AgentPipeline}, or L{None} if no agent is enabled.
    @raise exmta.errors.ConfigError: an agent has no plugin, or its factory
        refused its settings.
    """
    factories = agentFactories() if factories is None else byName(factories)
    agents = []
    for section in organization.transportAgents:
        factory = TRANSPORT_AGENT.find(factories, section.name, section.origin)
        if not section.enabled:
            continue
        agent = TRANSPORT_AGENT.make(factory, section, section.origin, None, organization, reactor)
        agents.append(
            ConfiguredAgent(
                section.name,
                section.priority,
                section.timeout,
                section.failurePolicy == "FailOpen",
                agent,
                section.disableAfterFailures,
            )
        )
    if not agents:
        return None
    return AgentPipeline(agents, reactor)


__all__ = [
    "ACCEPT",
    "AGENT_FAILURE",
    "AgentEvent",
    "AgentPipeline",
    "CONTINUE",
    "DISCONNECT",
    "IAgentFactory",
    "IReceiveAgent",
    "IRoutingAgent",
    "REJECT",
    "RoutingEvent",
    "SettingError",
    "TEMPORARY_REJECT",
    "Verdict",
    "loadAgents",
]
