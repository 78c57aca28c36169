"""
The pure parts of the receive side: connector selection and listening
sockets.
"""

import pytest

from exmta.config import parseOrganization
from exmta.receive.selection import listeningAddresses, selectConnector


# Connector selection

ORG = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[ReceiveConnector Default HubA]
Bindings = 0.0.0.0:25
RemoteIPRanges = 0.0.0.0-255.255.255.255
PermissionGroups = ExchangeUsers

[ReceiveConnector Gateway]
Usage = Internal
Bindings = 0.0.0.0:25
RemoteIPRanges = 192.168.1.0/24
AuthMechanism = ExternalAuthoritative

[ReceiveConnector Gateway One]
Usage = Internal
Bindings = 0.0.0.0:25
RemoteIPRanges = 192.168.1.10
AuthMechanism = ExternalAuthoritative

[ReceiveConnector Relay]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 10.2.3.4:25
RemoteIPRanges = 192.168.5.77

[ReceiveConnector Six]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = [::1]:25
RemoteIPRanges = ::1

[ReceiveConnector Off]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 10.9.9.9:25
RemoteIPRanges = 0.0.0.0-255.255.255.255
Enabled = $false
"""


@pytest.fixture
def connectors(tmp_path):
    return parseOrganization(ORG, str(tmp_path / "org.ini")).receiveConnectors


@pytest.mark.parametrize(
    "local, port, peer, expected",
    [
        ("10.0.0.1", 25, "8.8.8.8", "Default HubA"),
        ("10.0.0.1", 25, "192.168.1.99", "Gateway"),
        ("10.0.0.1", 25, "192.168.1.10", "Gateway One"),
        ("10.2.3.4", 25, "192.168.5.77", "Relay"),
        ("10.2.3.4", 25, "192.168.5.78", "Default HubA"),
        ("10.0.0.1", 26, "8.8.8.8", None),
        ("::1", 25, "::1", "Six"),
        ("::1", 25, "::2", None),
        ("10.9.9.9", 25, "8.8.8.8", "Default HubA"),
        ("::ffff:10.0.0.1", 25, "::ffff:8.8.8.8", "Default HubA"),
    ],
)
def test_selectConnector(connectors, local, port, peer, expected):
    chosen = selectConnector(connectors, local, port, peer)
    assert (chosen.name if chosen else None) == expected


def test_listeningAddressesFoldSpecificIntoWildcard(connectors):
    assert [str(b) for b in listeningAddresses(connectors)] == ["0.0.0.0:25", "[::1]:25"]
