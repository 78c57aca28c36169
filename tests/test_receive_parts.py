"""
The pure parts of the receive side: connector selection, listening
sockets and header handling.
"""

import pytest
from hypothesis import given, strategies as st

from exmta.auth import permissions
from exmta.config import parseOrganization
from exmta.envelope import Session
from exmta.receive import headers
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


# Headers


def session(**changes):
    values = dict(connector="Default HubA", server="HubA", localHost="127.0.0.1", localPort=25,
                  peerHost="127.0.0.9", peerPort=40000, helo="client.example", esmtp=True)
    values.update(changes)
    return Session(**values)


def test_receivedHeaderNamesTLSAndAuth():
    header = headers.receivedHeader(
        session(tlsVersion="TLSv1.3", tlsCipher="TLS_AES_256_GCM_SHA384", authenticated=True),
        "huba.fabrikam.com", 0,
    )
    assert header.startswith(b"Received: from client.example ([127.0.0.9]) by huba.fabrikam.com")
    assert b"with ESMTPSA (version=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384);" in header
    assert header.endswith(b"Thu, 01 Jan 1970 00:00:00 GMT\r\n")
    assert b"with ESMTP;" in headers.receivedHeader(session(), "h", 0)
    assert b"with SMTP;" in headers.receivedHeader(session(esmtp=False), "h", 0)


@given(st.text(max_size=40), st.text(max_size=20))
def test_receivedHeaderNeverCarriesAControlCharacter(helo, cipher):
    """
    Whatever a session value holds (HELO refuses control characters, and
    this is the second line of defence), the field is ASCII text with only
    its own CRLF and folding tab.
    """
    header = headers.receivedHeader(session(helo=helo, tlsVersion="TLSv1.3", tlsCipher=cipher),
                                    "huba.fabrikam.com", 0)
    first, second = header.split(b"\r\n\t")
    assert second.endswith(b"\r\n") and second.count(b"\r\n") == 1
    assert all(32 <= octet < 127 for octet in first + second[:-2])


def test_firewallFollowsRights():
    header = (b"Received: from a\r\n\tby b\r\nX-MS-Exchange-Organization-SCL: 1\r\n"
              b"X-MS-Exchange-Forest-Rules: 1\r\nx-ms-exchange-organization-authas: Internal\r\n"
              b"Subject: s\r\n")
    assert headers.firewall(header, frozenset()) == b"Subject: s\r\n"
    everything = frozenset({permissions.ACCEPT_HEADERS_ROUTING, permissions.ACCEPT_HEADERS_ORGANIZATION,
                            permissions.ACCEPT_HEADERS_FOREST})
    kept = headers.firewall(header, everything)
    assert b"Received: from a\r\n\tby b\r\n" in kept
    assert b"SCL" in kept and b"Forest" in kept
    assert b"authas" not in kept


def test_hopCount():
    assert headers.hopCount(b"Received: a\r\nreceived : b\r\nX-Received: c\r\n") == 2
