"""
Tests for the transport agent cmdlets (L{exmta.shell.agent_cmdlets}), run
through the Shell's runtime as an administrator types them: Install then
Get shows the agent disabled, Enable and Disable flip it, Set -Priority
reorders keeping priorities unique, Uninstall removes only its section,
-WhatIf changes nothing, and refusals leave org.ini as it was.
"""

import os

import pytest
from zope.interface import implementer
from twisted.plugin import IPlugin

from exmta import agents as agentsModule
from exmta.config import loadOrganization
from exmta.errors import SettingError
from exmta.interfaces import IAgentFactory
from exmta.shell.cmdlet import CMDLETS, Context
from exmta.shell.host import MemoryHost
from exmta.shell.runtime import Session, loadCmdlets

loadCmdlets()

ORG = """\
# An organization without agents.
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[ReceiveConnector Default HubA]
Bindings = 0.0.0.0:25
RemoteIPRanges = 0.0.0.0-255.255.255.255
"""


@implementer(IPlugin, IAgentFactory)
class Plugin:
    """
    A stand-in plugin; refuses every key but Color.
    """

    def __init__(self, name):
        self.name = name

    def makeAgent(self, settings, organization, reactor):
        for key in settings:
            if key.lower() != "color":
                raise SettingError(key, "unknown key")
        return object()


@pytest.fixture
def plugins(monkeypatch):
    """
    The installed plugins: SenderBlockList (the real one) and three test
    ones.
    """
    real = agentsModule.agentFactories()
    installed = dict(real)
    for name in ("Alpha", "Beta", "Gamma"):
        installed[name.lower()] = Plugin(name)
    monkeypatch.setattr(agentsModule, "agentFactories", lambda: dict(installed))
    from exmta.shell import agent_cmdlets

    monkeypatch.setattr(agent_cmdlets, "agentFactories", lambda: dict(installed))
    return installed


class Shell:
    def __init__(self, folder, text=ORG):
        self.path = os.path.join(folder, "org.ini")
        with open(self.path, "w") as handle:
            handle.write(text)
        self.host = MemoryHost()

    def line(self, statement):
        self.host.output.clear()
        self.host.errors.clear()
        return Session(self.path, host=self.host).run(statement)

    def ok(self, statement):
        assert self.line(statement), self.host.errors
        return "\n".join(self.host.output)

    def call(self, name, **parameters):
        context = Context(self.path, host=self.host)
        return CMDLETS[name.lower()].function(context, **parameters)

    def text(self):
        with open(self.path) as handle:
            return handle.read()

    def agents(self):
        return [(a.name, a.enabled, a.priority) for a in loadOrganization(self.path).transportAgents]


@pytest.fixture
def shell(tmp_path, plugins):
    return Shell(str(tmp_path))


def test_installAddsDisabledAgentWithNextPriority(shell):
    shell.ok("Install-TransportAgent -Name SenderBlockList")
    assert shell.agents() == [("SenderBlockList", False, 1)]
    assert "[TransportAgent SenderBlockList]\nEnabled = $false\nPriority = 1\n" in shell.text()
    shell.ok("Install-TransportAgent Alpha")
    assert shell.agents() == [("SenderBlockList", False, 1), ("Alpha", False, 2)]
    shown = shell.ok("Get-TransportAgent")
    lines = [line.split() for line in shown.splitlines() if line.strip()]
    assert lines[0] == ["Identity", "Enabled", "Priority"]
    assert lines[2:] == [["SenderBlockList", "False", "1"], ["Alpha", "False", "2"]]


def test_installTakesThePluginsSpelling(shell):
    shell.ok("Install-TransportAgent -Name senderblocklist")
    assert shell.agents() == [("SenderBlockList", False, 1)]


def test_installIgnoresExchangeParametersWithWarning(shell):
    shell.ok(
        'Install-TransportAgent -Name Alpha -TransportAgentFactory "Contoso.AlphaFactory"'
        ' -AssemblyPath "C:\\Agents\\Alpha.dll"'
    )
    assert shell.agents() == [("Alpha", False, 1)]
    warnings = [e for e in shell.host.errors if e.startswith("WARNING:")]
    assert len(warnings) == 2 and "-TransportAgentFactory is ignored" in warnings[0]


def test_installRefusesUnknownPluginAndDuplicates(shell):
    before = shell.text()
    assert not shell.line("Install-TransportAgent -Name Nope")
    assert "No transport agent plugin named 'Nope'" in "\n".join(shell.host.errors)
    assert "SenderBlockList" in "\n".join(shell.host.errors)
    assert shell.text() == before
    shell.ok("Install-TransportAgent Alpha")
    before = shell.text()
    assert not shell.line("Install-TransportAgent ALPHA")
    assert "already installed" in "\n".join(shell.host.errors)
    assert shell.text() == before


def test_enableAndDisable(shell):
    shell.ok("Install-TransportAgent Alpha")
    shell.ok("Enable-TransportAgent Alpha")
    assert shell.agents() == [("Alpha", True, 1)]
    shell.ok("Get-TransportAgent Alpha | Disable-TransportAgent")
    assert shell.agents() == [("Alpha", False, 1)]


def test_enableRefusesBadAgentKeys(shell):
    shell.ok("Install-TransportAgent SenderBlockList")
    with open(shell.path, "a") as handle:
        handle.write("BlockedSenders = not-an-address\n")
    before = shell.text()
    assert not shell.line("Enable-TransportAgent SenderBlockList")
    assert "BlockedSenders" in "\n".join(shell.host.errors)
    assert shell.text() == before


def test_whatIfChangesNothing(shell):
    shell.ok("Install-TransportAgent Alpha")
    before = shell.text()
    for statement in (
        "Install-TransportAgent Beta -WhatIf",
        "Enable-TransportAgent Alpha -WhatIf",
        "Set-TransportAgent Alpha -Priority 7 -WhatIf",
        "Uninstall-TransportAgent Alpha -WhatIf",
    ):
        output = shell.ok(statement)
        assert output.startswith("What if:"), statement
    assert shell.text() == before
    assert "+Enabled = $true" not in shell.ok("Install-TransportAgent Beta -WhatIf")
    assert "+[TransportAgent Beta]" in shell.ok("Install-TransportAgent Beta -WhatIf")


def test_setPriorityReorders(shell):
    for name in ("Alpha", "Beta", "Gamma"):
        shell.ok(f"Install-TransportAgent {name}")
    shell.ok("Set-TransportAgent Gamma -Priority 1")
    assert shell.agents() == [("Gamma", False, 1), ("Alpha", False, 2), ("Beta", False, 3)]
    shell.ok("Set-TransportAgent Gamma -Priority 3")
    assert shell.agents() == [("Alpha", False, 2), ("Gamma", False, 3), ("Beta", False, 4)]
    shown = shell.ok("Get-TransportAgent")
    names = [line.split()[0] for line in shown.splitlines()[2:] if line.strip()]
    assert names == ["Alpha", "Gamma", "Beta"]
    # Into a gap: nothing else moves.
    shell.ok("Set-TransportAgent Alpha -Priority 10")
    assert shell.agents() == [("Gamma", False, 3), ("Beta", False, 4), ("Alpha", False, 10)]


def test_setTimeoutAndFailurePolicy(shell):
    shell.ok("Install-TransportAgent Alpha")
    shell.ok("Set-TransportAgent Alpha -Timeout 00:00:05 -FailurePolicy FailOpen")
    (agent,) = loadOrganization(shell.path).transportAgents
    assert (agent.timeout, agent.failurePolicy) == (5, "FailOpen")
    before = shell.text()
    assert not shell.line("Set-TransportAgent Alpha -FailurePolicy Sometimes")
    assert "FailurePolicy" in "\n".join(shell.host.errors)
    assert shell.text() == before


def test_uninstallRemovesOnlyItsSection(shell):
    shell.ok("Install-TransportAgent Alpha")
    withAlpha = shell.text()
    shell.ok("Install-TransportAgent Beta")
    shell.ok("Uninstall-TransportAgent Beta")
    assert shell.text() == withAlpha
    shell.ok("Uninstall-TransportAgent Alpha")
    assert shell.text().rstrip("\n") == ORG.rstrip("\n")
    assert not shell.line("Uninstall-TransportAgent Alpha")
    assert "couldn't be found" in "\n".join(shell.host.errors)


def test_getVerboseNamesPluginsNotInstalled(shell):
    shell.ok("Install-TransportAgent Alpha")
    shell.ok("Get-TransportAgent -Verbose")
    (verbose,) = [e for e in shell.host.errors if e.startswith("VERBOSE:")]
    assert "Beta" in verbose and "SenderBlockList" in verbose and "Alpha" not in verbose


def test_getUnknownIdentityFails(shell):
    assert not shell.line("Get-TransportAgent Nope")
    assert shell.line("Get-TransportAgent A*")
