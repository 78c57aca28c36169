"""
Tests for L{exmta.auth.permissions}: the rights Exchange 2010's permission
groups grant its server principals, written out as Exchange's table lists
them, so that a table derived from another cannot drift from it.
"""

from types import SimpleNamespace

from exmta.auth import permissions

EVERY_RIGHT = {
    "ms-Exch-SMTP-Submit",
    "ms-Exch-SMTP-Accept-Any-Recipient",
    "ms-Exch-SMTP-Accept-Any-Sender",
    "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender",
    "ms-Exch-SMTP-Accept-Authentication-Flag",
    "ms-Exch-Bypass-Anti-Spam",
    "ms-Exch-Bypass-Message-Size-Limit",
    "ms-Exch-Accept-Headers-Routing",
    "ms-Exch-Accept-Headers-Organization",
    "ms-Exch-Accept-Headers-Forest",
    "ms-Exch-SMTP-Accept-Exch50",
    "ms-Exch-SMTP-Accept-XShadow",
}


def rightsOn(groups, identity):
    connector = SimpleNamespace(permissionGroups=frozenset(groups), permissions=())
    return permissions.rightsOf(connector, {identity})


def test_extendedRightsAreExchangesTwelve():
    assert len(permissions.EXTENDED_RIGHTS) == 12
    assert set(permissions.EXTENDED_RIGHTS) == EVERY_RIGHT


def test_exchangeServersGroup():
    for server in (permissions.HUB_TRANSPORT_SERVERS, permissions.EDGE_TRANSPORT_SERVERS):
        assert rightsOn({"ExchangeServers"}, server) == EVERY_RIGHT
    assert rightsOn({"ExchangeServers"}, permissions.EXTERNALLY_SECURED_SERVERS) == EVERY_RIGHT - {
        "ms-Exch-Accept-Headers-Forest",
        "ms-Exch-SMTP-Accept-XShadow",
    }


def test_exchangeLegacyServersGroup():
    assert rightsOn({"ExchangeLegacyServers"}, permissions.LEGACY_INTEROP) == EVERY_RIGHT - {
        "ms-Exch-SMTP-Accept-XShadow"
    }


def test_canonicalRight():
    assert permissions.canonicalRight(" MS-EXCH-SMTP-ACCEPT-XSHADOW ") == "ms-Exch-SMTP-Accept-XShadow"
    assert permissions.canonicalRight("ms-Exch-SMTP-Accept-Everything") is None
