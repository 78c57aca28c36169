"""
Transport agents: third-party code called at each SMTP event of a receive
connector (L{exmta.interfaces.IReceiveAgent}).

An agent plugin is an L{exmta.interfaces.IAgentFactory} in the
L{exmta.plugins} dropin package (or any installed package's
C{exmta/plugins/} folder).  org.ini enables it with a section named after it:

    [TransportAgent SenderBlockList]
    Priority = 10              ; lower runs first; unique
    Enabled = $true
    Timeout = 00:00:30         ; per event
    FailurePolicy = FailClosed ; or FailOpen
    BlockedSenders = a@x.com, *@spam.example   ; the agent's own keys

An agent answers each event with a L{Verdict}, or a Deferred firing with
one.  Verdicts are a closed set:

  - C{Verdict.continue_()}: no objection; the next agent is asked.
  - C{Verdict.accept()}: no objection, and the agents after it are not asked
    for this event (exmta's own checks still apply).
  - C{Verdict.reject(reply)}: the command fails with this 5xx reply.
  - C{Verdict.temporaryReject(reply)}: the command fails with this 4xx reply.
  - C{Verdict.disconnect(reply)}: the reply is sent and the connection closed.

At OnEndOfData, C{continue_} and C{accept} may carry C{message=} new bytes:
the agents after it see them and the queue stores them.

Isolation: an agent that raises, answers with something that is not a
verdict, or does not answer within its Timeout is logged with its name;
under FailClosed the command fails with 451 4.7.0 (nothing was accepted, so
no mail is lost), under FailOpen the agent counts as having said CONTINUE.
"""

from dataclasses import dataclass, replace

from twisted.internet import defer
from twisted.logger import Logger

from exmta.envelope import Reply
from exmta.interfaces import IAgentFactory, IReceiveAgent

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

CONTINUE, ACCEPT, REJECT, TEMPORARY_REJECT, DISCONNECT = (
    "CONTINUE",
    "ACCEPT",
    "REJECT",
    "TEMPORARY_REJECT",
    "DISCONNECT",
)

AGENT_FAILURE = Reply(451, "4.7.0", "Temporary agent failure")
DEFAULT_REJECT = Reply(550, "5.7.1", "Rejected by transport agent")
DEFAULT_TEMPORARY_REJECT = Reply(451, "4.7.1", "Temporarily rejected by transport agent")
DEFAULT_DISCONNECT = Reply(421, "4.7.0", "Closing transmission channel")


class SettingError(ValueError):
    """
    Raised by L{IAgentFactory.makeAgent} for a bad key, so the configuration
    error points at that key's line.
    """

    def __init__(self, key, message):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Verdict:
    """
    An agent's answer to one event.  Make one with the constructors.

    @ivar kind: one of C{CONTINUE}, C{ACCEPT}, C{REJECT}, C{TEMPORARY_REJECT},
        C{DISCONNECT}.
    @ivar reply: the L{Reply} for the refusing kinds.
    @ivar message: new message bytes (OnEndOfData only), or L{None}.
    """

    kind: str
    reply: Reply | None = None
    message: bytes | None = None

    def __post_init__(self):
        if self.kind not in (CONTINUE, ACCEPT, REJECT, TEMPORARY_REJECT, DISCONNECT):
            raise ValueError(f"unknown verdict kind {self.kind!r}")
        if self.kind in (CONTINUE, ACCEPT):
            if self.reply is not None:
                raise ValueError(f"a {self.kind} verdict has no reply")
        else:
            if self.message is not None:
                raise ValueError(f"a {self.kind} verdict has no message")
            if not isinstance(self.reply, Reply):
                raise ValueError(f"a {self.kind} verdict needs a Reply")
            first = {REJECT: 5, TEMPORARY_REJECT: 4, DISCONNECT: None}[self.kind]
            if first is not None and self.reply.code // 100 != first:
                raise ValueError(f"a {self.kind} verdict needs a {first}xx reply")
        if self.message is not None and not isinstance(self.message, bytes):
            raise ValueError("a verdict's message must be bytes")

    @classmethod
    def continue_(cls, message=None):
        return cls(CONTINUE, message=message)

    @classmethod
    def accept(cls, message=None):
        return cls(ACCEPT, message=message)

    @classmethod
    def reject(cls, reply=DEFAULT_REJECT):
        return cls(REJECT, reply)

    @classmethod
    def temporaryReject(cls, reply=DEFAULT_TEMPORARY_REJECT):
        return cls(TEMPORARY_REJECT, reply)

    @classmethod
    def disconnect(cls, reply=DEFAULT_DISCONNECT):
        return cls(DISCONNECT, reply)


@dataclass(frozen=True)
class AgentEvent:
    """
    What an agent is told at one event.

    @ivar name: the event, e.g. C{OnRcptCommand}.
    @ivar session: the L{exmta.envelope.Session} (per connection).
    @ivar envelope: the L{exmta.envelope.Envelope} of the transaction, or
        L{None} outside one.
    @ivar address: the sender (OnMailCommand) or recipient (OnRcptCommand)
        L{exmta.envelope.Address}.
    @ivar header: the header bytes (OnEndOfHeaders).
    @ivar message: the message bytes as they will be queued (OnEndOfData).
    """

    name: str
    session: object
    envelope: object = None
    address: object = None
    header: bytes | None = None
    message: bytes | None = None


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


class AgentPipeline:
    """
    The enabled agents of an organization in Priority order, run at each
    event by the receive protocol.
    """

    log = Logger()

    def __init__(self, agents, reactor):
        self.agents = tuple(sorted(agents, key=lambda a: a.priority))
        self.reactor = reactor
        self._handlers = {}
        for event in EVENTS:
            handlers = tuple(
                (configured, getattr(configured.agent, event))
                for configured in self.agents
                if callable(getattr(configured.agent, event, None))
            )
            if handlers:
                self._handlers[event] = handlers

    def wants(self, event):
        """
        @return: whether any agent handles C{event}.
        """
        return event in self._handlers

    def run(self, event):
        """
        Ask the agents handling C{event.name} in Priority order.

        @param event: an L{AgentEvent}.
        @return: a Deferred firing with the deciding L{Verdict}: the first
            refusal, else an ACCEPT or CONTINUE whose C{message} is the
            message as the agents left it (OnEndOfData), or L{None}.  It
            never errbacks.
        """
        handlers = self._handlers.get(event.name, ())

        def step(index, event, changed):
            if index == len(handlers):
                return defer.succeed(Verdict.continue_(changed))
            configured, method = handlers[index]
            answer = defer.maybeDeferred(method, event)
            answer.addTimeout(configured.timeout, self.reactor)
            answer.addCallback(self._check, event)
            answer.addErrback(self._failed, configured, event)

            def decide(verdict):
                message = verdict.message if verdict.message is not None else changed
                if verdict.kind == CONTINUE:
                    following = event if message is None else replace(event, message=message)
                    return step(index + 1, following, message)
                if verdict.kind == ACCEPT:
                    return Verdict.accept(message)
                return verdict

            return answer.addCallback(decide)

        return step(0, event, None)

    def _check(self, verdict, event):
        if not isinstance(verdict, Verdict):
            raise TypeError(f"answered {verdict!r}, not a Verdict")
        if verdict.message is not None and event.name != "OnEndOfData":
            raise TypeError(f"changed the message at {event.name}; only OnEndOfData may")
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
        if configured.failOpen:
            return Verdict.continue_()
        return Verdict.temporaryReject(AGENT_FAILURE)


def agentFactories():
    """
    @return: a dict of every L{IAgentFactory} plugin by lower-case name.
    """
    from twisted.plugin import getPlugins

    import exmta.plugins

    return {factory.name.lower(): factory for factory in getPlugins(IAgentFactory, exmta.plugins)}


def loadAgents(organization, reactor, factories=None):
    """
    Make the enabled agents of C{organization}'s [TransportAgent] sections.

    @param factories: the L{IAgentFactory}s to choose from; by default the
        plugins in L{exmta.plugins}.
    @return: an L{AgentPipeline}, or L{None} if no agent is enabled.
    @raise exmta.errors.ConfigError: an agent has no plugin, or its factory
        refused its settings.
    """
    if factories is None:
        byName = agentFactories()
    else:
        byName = {factory.name.lower(): factory for factory in factories}
    agents = []
    for section in organization.transportAgents:
        factory = byName.get(section.name.lower())
        if factory is None:
            raise section.origin.error(
                f"no transport agent plugin is named {section.name!r}; installed: "
                + (", ".join(sorted(f.name for f in byName.values())) or "none")
            )
        if not section.enabled:
            continue
        try:
            agent = factory.makeAgent(dict(section.settings), organization, reactor)
        except SettingError as error:
            raise section.origin.error(str(error), error.key) from None
        except ValueError as error:
            raise section.origin.error(str(error)) from None
        agents.append(
            ConfiguredAgent(
                section.name,
                section.priority,
                section.timeout,
                section.failurePolicy == "FailOpen",
                agent,
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
    "REJECT",
    "SettingError",
    "TEMPORARY_REJECT",
    "Verdict",
    "loadAgents",
]
