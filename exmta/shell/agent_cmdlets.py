"""
The transport agent cmdlets of the exmta Shell, as Exchange names them:
Get-TransportAgent, Install-/Uninstall-TransportAgent,
Enable-/Disable-TransportAgent and Set-TransportAgent.

An agent is a C{[TransportAgent Name]} section of org.ini (L{exmta.agents});
its name is that of an L{exmta.interfaces.IAgentFactory} plugin installed in
L{exmta.plugins}.  Priorities stay unique: Install-TransportAgent takes the
next free one, and Set-TransportAgent -Priority moves the agents in its way
down one, as Exchange does.  The writing cmdlets edit org.ini through
L{exmta.shell.configedit.apply}, so they validate the whole new org.ini
and take -WhatIf.
"""

from dataclasses import dataclass

from twisted.internet import reactor

from exmta.agents import agentFactories
from exmta.config.organization import TRANSPORT_AGENT_KEYS
from exmta.shell.cmdlet import CmdletError, Parameter, cmdlet, identityOf
from exmta.shell.configedit import apply, load, matching, nameOf, notFound, parameters, setKeys

_OWN_KEYS = frozenset(key.lower() for key in TRANSPORT_AGENT_KEYS)


@dataclass(frozen=True)
class TransportAgentView:
    DefaultDisplayPropertySet = ("Identity", "Enabled", "Priority")

    Identity: str
    Enabled: bool
    Priority: int
    Timeout: float
    FailurePolicy: str
    DisableAfterFailures: int


def _views(organization, name=None):
    views = [
        TransportAgentView(
            a.name, a.enabled, a.priority, a.timeout, a.failurePolicy, a.disableAfterFailures
        )
        for a in organization.transportAgents
    ]
    if name is not None:
        views = [v for v in views if v.Identity.lower() == name.lower()]
    return views


def _agentSpan(document, identity, path):
    span = document.section("TransportAgent", identity)
    if span is None:
        raise notFound(identity, path)
    return span


def _priorities(document, path):
    """
    @return: {lower-case name: (name, priority)} of the agents in
        C{document}.
    """
    found = {}
    for span in document.sections("TransportAgent"):
        text = span.get("Priority")
        try:
            priority = int(str(text).strip())
        except (TypeError, ValueError):
            raise CmdletError(
                f"[TransportAgent {span.name}] Priority: {text!r} is not a number; fix {path} first"
            ) from None
        found[span.name.lower()] = (span.name, priority)
    return found


def _factory(name):
    """
    @return: the installed L{IAgentFactory} plugin named C{name}.
    @raise CmdletError: there is none.
    """
    factories = agentFactories()
    factory = factories.get(name.lower())
    if factory is None:
        raise CmdletError(
            f"No transport agent plugin named '{name}' is installed in exmta.plugins; installed: "
            + (", ".join(sorted(f.name for f in factories.values())) or "none")
        )
    return factory


@cmdlet("Get-TransportAgent", Parameter("Identity", position=0, pipeline=True))
def getTransportAgent(context, Identity=None):
    """
    The agents of org.ini in Priority order; with -Verbose, also the
    plugins installed but not in org.ini.
    """
    organization = load(context)
    views = matching(_views(organization), Identity, "Identity")
    if Identity is not None and not views and not any(c in identityOf(Identity) for c in "*?"):
        raise notFound(identityOf(Identity), context.configPath)
    if context.verbose:
        configured = {a.name.lower() for a in organization.transportAgents}
        available = sorted(f.name for key, f in agentFactories().items() if key not in configured)
        if available:
            context.writeVerbose(
                "Plugins not installed (Install-TransportAgent -Name ...): " + ", ".join(available)
            )
    return views


@cmdlet(
    "Install-TransportAgent",
    Parameter("Name", mandatory=True, position=0),
    Parameter("TransportAgentFactory"),
    Parameter("AssemblyPath"),
    supportsWhatIf=True,
)
def installTransportAgent(context, Name, TransportAgentFactory=None, AssemblyPath=None):
    """
    Add C{[TransportAgent Name]}, disabled (as Exchange installs agents),
    with the next free Priority.
    """
    for parameter, value in (("TransportAgentFactory", TransportAgentFactory), ("AssemblyPath", AssemblyPath)):
        if value is not None:
            context.writeWarning(
                f"-{parameter} is ignored: exmta finds agents as twisted.plugin plugins in exmta.plugins by -Name."
            )
    name = _factory(nameOf(Name, "transport agent")).name

    def change(document):
        if document.section("TransportAgent", name) is not None:
            raise CmdletError(f"A transport agent named '{name}' is already installed.")
        taken = [priority for _, priority in _priorities(document, context.configPath).values()]
        priority = max(taken) + 1 if taken else 1
        document.addSection("TransportAgent", name, [("Enabled", False), ("Priority", priority)])
        return None

    organization = apply(context, "Install-TransportAgent", name, change)
    if organization is not None:
        return _views(organization, name)


@cmdlet(
    "Uninstall-TransportAgent",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)
def uninstallTransportAgent(context, Identity):
    identity = identityOf(Identity).strip()

    def change(document):
        document.removeSection(_agentSpan(document, identity, context.configPath))
        return None

    apply(context, "Uninstall-TransportAgent", identity, change)


def _enabling(action, enabled):
    def function(context, Identity):
        identity = identityOf(Identity).strip()

        def change(document):
            span = _agentSpan(document, identity, context.configPath)
            if enabled:
                # What the server does at start: the plugin must exist and
                # take the section's own keys.
                factory = _factory(span.name)
                settings = {key: value for key, value, *_ in span.keys if key.lower() not in _OWN_KEYS}
                try:
                    factory.makeAgent(settings, load(context), reactor)
                except ValueError as error:
                    where = f"{error.key}: " if getattr(error, "key", None) else ""
                    raise CmdletError(
                        f"[TransportAgent {span.name}] {where}{error} "
                        f"(the change was refused; {context.configPath} is unchanged)"
                    ) from None
            document.set(span, "Enabled", enabled)
            return None

        apply(context, action, identity, change)

    return function


enableTransportAgent = cmdlet(
    "Enable-TransportAgent",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)(_enabling("Enable-TransportAgent", True))

disableTransportAgent = cmdlet(
    "Disable-TransportAgent",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    supportsWhatIf=True,
)(_enabling("Disable-TransportAgent", False))


@cmdlet(
    "Set-TransportAgent",
    Parameter("Identity", mandatory=True, position=0, pipeline=True),
    Parameter("Priority"),
    *parameters(TRANSPORT_AGENT_KEYS, leaveOut=("Priority", "Enabled")),
    supportsWhatIf=True,
)
def setTransportAgent(context, Identity, Priority=None, **given):
    """
    -Priority N gives the agent priority N; the agents at N and after it
    that would collide move down one each, so priorities stay unique and
    the others keep their order.
    """
    identity = identityOf(Identity).strip()

    def change(document):
        span = _agentSpan(document, identity, context.configPath)
        name = span.name
        if Priority is not None:
            if isinstance(Priority, bool) or not isinstance(Priority, (int, str)):
                raise CmdletError(f"-Priority takes a number, not {Priority!r}")
            try:
                wanted = int(str(Priority).strip())
            except ValueError:
                raise CmdletError(f"-Priority takes a number, not {Priority!r}") from None
            others = sorted(
                (priority, other)
                for key, (other, priority) in _priorities(document, context.configPath).items()
                if key != name.lower()
            )
            following = wanted + 1
            for priority, other in others:
                if priority < wanted:
                    continue
                if priority < following:
                    document.set(document.section("TransportAgent", other), "Priority", following)
                    priority = following
                following = priority + 1
            document.set(document.section("TransportAgent", name), "Priority", wanted)
        if given:
            setKeys(document, "TransportAgent", name, TRANSPORT_AGENT_KEYS, given)
        return None

    apply(context, "Set-TransportAgent", identity, change)
