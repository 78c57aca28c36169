"""
Tests for L{exmta.pluginkinds}: every kind of plugin is found among the
installed ones by name, without regard to case, and a missing plugin or
refused settings become a L{ConfigError} at the right line, the same for
every kind.  Each kind's own loading is tested with its plugins
(tests/test_agents.py, test_checker_plugins.py, test_delivery_plugins.py).
"""

from dataclasses import dataclass

import pytest

from exmta.config.model import Origin
from exmta.errors import ConfigError, SettingError
from exmta.interfaces import IAgentFactory, ICheckerFactory, IDeliveryAgentFactory
from exmta.pluginkinds import CREDENTIAL_CHECKER, DELIVERY_AGENT, TRANSPORT_AGENT, byName

NAMING = Origin("/etc/exmta/org.ini", 3, "TransportServer HubA", (("DeliveryAgent", 5),))
SETTINGS = Origin("/etc/exmta/org.ini", 10, "DeliveryAgent Mbox", (("Path", 11), ("Mode", 12)))


@dataclass(frozen=True)
class Section:
    origin: Origin
    settings: tuple


class Factory:
    """
    A plugin factory of every kind that refuses what C{refusal} says.
    """

    def __init__(self, name, refusal=None):
        self.name = name
        self.refusal = refusal
        self.made = []

    def makeDeliveryAgent(self, settings, *arguments):
        if self.refusal is not None:
            raise self.refusal
        self.made.append((settings, arguments))
        return "made"


def test_installedPluginsOfEachKind():
    assert TRANSPORT_AGENT.interface is IAgentFactory
    assert CREDENTIAL_CHECKER.interface is ICheckerFactory
    assert DELIVERY_AGENT.interface is IDeliveryAgentFactory
    assert {"senderblocklist", "dkimsigner"} <= set(TRANSPORT_AGENT.installed())
    assert {"accounts", "passwdfile"} <= set(CREDENTIAL_CHECKER.installed())
    delivery = DELIVERY_AGENT.installed()
    assert {"maildir", "lmtp"} <= set(delivery)
    assert delivery["maildir"].name == "Maildir"


def test_findIgnoresCase():
    mbox = Factory("Mbox")
    assert DELIVERY_AGENT.find(byName([mbox]), "MBOX", NAMING, "DeliveryAgent") is mbox


@pytest.mark.parametrize(
    "installed, listed",
    [([Factory("Maildir"), Factory("Lmtp")], "Lmtp, Maildir"), ([], "none")],
)
def test_findNoneListsTheInstalled(installed, listed):
    with pytest.raises(ConfigError) as raised:
        DELIVERY_AGENT.find(byName(installed), "Mbox", NAMING, "DeliveryAgent")
    assert raised.value.message == f"no delivery agent plugin is named 'Mbox'; installed: {listed}"
    assert (raised.value.line, raised.value.key) == (5, "DeliveryAgent")


def test_makeHandsTheSectionsKeysAndArguments():
    mbox = Factory("Mbox")
    section = Section(SETTINGS, (("Path", "mail"),))
    assert DELIVERY_AGENT.make(mbox, section, NAMING, "DeliveryAgent", "server", "reactor") == "made"
    assert DELIVERY_AGENT.make(mbox, None, NAMING, "DeliveryAgent", "server", "reactor") == "made"
    assert mbox.made == [({"Path": "mail"}, ("server", "reactor")), ({}, ("server", "reactor"))]


@pytest.mark.parametrize(
    "refusal, line, key",
    [(SettingError("Mode", "bad mode"), 12, "Mode"), (ValueError("bad mode"), 10, None)],
)
def test_refusedSettingsPointIntoTheSection(refusal, line, key):
    section = Section(SETTINGS, (("Mode", "x"),))
    with pytest.raises(ConfigError) as raised:
        DELIVERY_AGENT.make(Factory("Mbox", refusal), section, NAMING, "DeliveryAgent")
    assert (raised.value.message, raised.value.section) == ("bad mode", "DeliveryAgent Mbox")
    assert (raised.value.line, raised.value.key) == (line, key)


def test_refusedWithoutASectionSaysWhichToWrite():
    with pytest.raises(ConfigError) as raised:
        DELIVERY_AGENT.make(Factory("Mbox", ValueError("Path is missing")), None, NAMING, "DeliveryAgent")
    assert raised.value.message == "Path is missing; give it in a [DeliveryAgent Mbox] section"
    assert (raised.value.line, raised.value.key) == (5, "DeliveryAgent")
