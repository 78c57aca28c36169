"""
Tests for L{exmta.config}: the org.ini syntax (L{exmta.config.ini}) and the
organization loader with Exchange 2010's defaults, Usage presets and
validation rules (L{exmta.config.organization}).
"""

import os
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exmta.auth import permissions
from exmta.config import ini, loadOrganization, parseOrganization
from exmta.config.organization import RECEIVE_CONNECTOR_KEYS, SECTION_KINDS
from exmta.errors import ConfigError

KB, MB = 1024, 1024**2

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "etc", "org.ini")

SERVER = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative
"""


def organization(tmp_path, body, head=SERVER):
    """
    Write C{head} and C{body} to C{tmp_path/org.ini} and load it.
    """
    path = tmp_path / "org.ini"
    path.write_text(head + textwrap.dedent(body), encoding="utf-8")
    return loadOrganization(str(path))


def lineOf(text, needle, occurrence=1):
    """
    The 1-based line number of the C{occurrence}th line containing C{needle}.
    """
    found = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return found[occurrence - 1]


def assertError(tmp_path, body, needle, section, key, message, head=SERVER, occurrence=1):
    """
    Loading C{head + body} fails with a L{ConfigError} on the line holding
    C{needle}, in C{[section]}, at C{key}, whose text matches C{message};
    str() of the error names all of them.
    """
    text = head + textwrap.dedent(body)
    with pytest.raises(ConfigError) as caught:
        organization(tmp_path, body, head)
    error = caught.value
    path = str(tmp_path / "org.ini")
    line = lineOf(text, needle, occurrence)
    assert (error.path, error.line, error.section, error.key) == (path, line, section, key)
    assert message in error.message
    shown = str(error)
    assert shown.startswith(f"{path}:{line}: ")
    if section is not None:
        assert f"[{section}]" in shown
    if key is not None:
        assert f"] {key}: " in shown or f":{line}: {key}: " in shown
    assert shown.endswith(error.message)
    return error


def connector(org, name):
    (found,) = [c for c in org.receiveConnectors if c.name == name]
    return found


# ini.parse: the syntax


def test_iniSections():
    text = textwrap.dedent(
        """\
        # A comment
        ; another comment

        [ReceiveConnector Default HubA]
        Bindings = 127.0.0.1:2525
          RemoteIPRanges=0.0.0.0-255.255.255.255
        [  AcceptedDomain   fabrikam.com  ]
        [ADPermission]
        User = NT AUTHORITY\\ANONYMOUS LOGON
        """
    )
    sections = ini.parse(text, "org.ini")
    assert [(s.kind, s.name, s.line, s.header) for s in sections] == [
        ("ReceiveConnector", "Default HubA", 4, "ReceiveConnector Default HubA"),
        ("AcceptedDomain", "fabrikam.com", 7, "AcceptedDomain fabrikam.com"),
        ("ADPermission", "", 8, "ADPermission"),
    ]
    assert sections[0].entries == (
        ini.Entry("Bindings", "127.0.0.1:2525", 5),
        ini.Entry("RemoteIPRanges", "0.0.0.0-255.255.255.255", 6),
    )
    assert sections[2].entries == (ini.Entry("User", "NT AUTHORITY\\ANONYMOUS LOGON", 9),)


def test_iniGetIsCaseInsensitive():
    (section,) = ini.parse("[X y]\nMaxMessageSize = 10MB\n", "org.ini")
    assert section.get("maxmessagesize") == ini.Entry("MaxMessageSize", "10MB", 2)
    assert section.get("MAXMESSAGESIZE").value == "10MB"
    assert section.get("Banner") is None


def test_iniNoTrailingComments():
    """
    A ; or # after a value is part of it ("contoso.com;10" is an address
    space with a cost).
    """
    (section,) = ini.parse("[X y]\nAddressSpaces = contoso.com;10\nBanner = 220 # hello\n", "p")
    assert section.get("AddressSpaces").value == "contoso.com;10"
    assert section.get("Banner").value == "220 # hello"


def test_iniValueMayContainEquals():
    (section,) = ini.parse("[X y]\nBanner = 220 a=b\nComment =\n", "p")
    assert section.get("Banner").value == "220 a=b"
    assert section.get("Comment").value == ""


def test_iniEmpty():
    assert ini.parse("", "p") == []
    assert ini.parse("\n# only comments\n\n", "p") == []


def test_iniDuplicateKeyNamesBothLines():
    text = "[ReceiveConnector Default HubA]\nFqdn = a.fabrikam.com\n\n# x\nFQDN = b.fabrikam.com\n"
    with pytest.raises(ConfigError) as caught:
        ini.parse(text, "/etc/exmta/org.ini")
    error = caught.value
    assert (error.path, error.line, error.section, error.key) == (
        "/etc/exmta/org.ini",
        5,
        "ReceiveConnector Default HubA",
        "FQDN",
    )
    assert str(error) == (
        "/etc/exmta/org.ini:5: [ReceiveConnector Default HubA] FQDN: "
        "set twice in this section (first on line 2)"
    )


def test_iniSameKeyInTwoSectionsIsFine():
    sections = ini.parse("[A a]\nFqdn = x\n[A b]\nFqdn = y\n", "p")
    assert [s.get("Fqdn").value for s in sections] == ["x", "y"]


def test_iniKeyBeforeAnySection():
    with pytest.raises(ConfigError) as caught:
        ini.parse("# header comment\nFqdn = huba.fabrikam.com\n[TransportServer HubA]\n", "org.ini")
    error = caught.value
    assert (error.line, error.section, error.key) == (2, None, "Fqdn")
    assert str(error) == "org.ini:2 Fqdn: key 'Fqdn' comes before any [Section] header"


@pytest.mark.parametrize(
    "text, line, section, message",
    [
        ("[X y]\nthis is not a key\n", 2, "X y", "expected 'Key = Value' or a [Section] header, found 'this is not a key'"),
        ("[X y]\nMax Size = 10MB\n", 2, "X y", "expected 'Key = Value'"),
        ("[X y]\n= 10MB\n", 2, "X y", "expected 'Key = Value'"),
        ("just words\n", 1, None, "expected 'Key = Value'"),
        ("[X y]\n[ReceiveConnector Default HubA\n", 2, None, "a section header must end with ']'"),
        ("[X y]\n[ReceiveConnector] # comment\n", 2, None, "a section header must end with ']'"),
        ("\n\n[]\n", 3, None, "empty section header"),
        ("[   ]\n", 1, None, "empty section header"),
    ],
)
def test_iniMalformedLines(text, line, section, message):
    with pytest.raises(ConfigError) as caught:
        ini.parse(text, "org.ini")
    error = caught.value
    assert (error.path, error.line, error.section, error.key) == ("org.ini", line, section, None)
    assert message in str(error)
    assert str(error).startswith(f"org.ini:{line}: ")
    if section:
        assert f"[{section}]" in str(error)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_iniLineNumbersAcrossNewlines(newline):
    text = newline.join(["# c", "[X y]", "A = 1", "bad"]) + newline
    with pytest.raises(ConfigError) as caught:
        ini.parse(text, "p")
    assert caught.value.line == 4


def test_iniLineNumbersIgnoreOtherLineBreaks():
    """
    A form feed or U+2028 inside a line does not end it, so line numbers
    agree with editors and with open().
    """
    text = "# page one\x0c page two\n[X y]\nBanner = 220 a\u2028b\nbad\n"
    with pytest.raises(ConfigError) as caught:
        ini.parse(text, "p")
    assert caught.value.line == 4
    (section,) = ini.parse(text.replace("bad\n", ""), "p")
    assert section.get("Banner").value == "220 a\u2028b"


@given(st.text())
def test_iniAnyTextParsesOrRaisesConfigError(text):
    try:
        sections = ini.parse(text, "org.ini")
    except ConfigError as error:
        assert error.path == "org.ini"
        assert isinstance(error.line, int) and error.line >= 1
        assert str(error).startswith(f"org.ini:{error.line}")
    else:
        for section in sections:
            assert section.kind and "]" != section.kind[-1:]


@given(st.lists(st.sampled_from(["[", "]", "=", "#", ";", " ", "\n", "\r", "a", "A", "\t", "x y", "[X y]", "K = v"]), max_size=40))
def test_iniAnyTokensParseOrRaiseConfigError(tokens):
    try:
        ini.parse("".join(tokens), "org.ini")
    except ConfigError as error:
        assert error.line is not None


_word = st.from_regex(r"\A[A-Za-z][A-Za-z0-9]{0,10}\Z")
_value = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20).map(str.strip)


@given(
    st.lists(
        st.tuples(_word, st.lists(_word, max_size=3), st.dictionaries(_word.map(str.lower), _value, max_size=5)),
        max_size=5,
    )
)
def test_iniRoundTrip(sections):
    """
    Sections and keys written out read back as they were, with their lines.
    """
    lines = []
    expected = []
    for kind, nameWords, entries in sections:
        lines.append(f"[{kind} {' '.join(nameWords)}]")
        start = len(lines)
        written = []
        for key, value in entries.items():
            lines.append(f"  {key} = {value}")
            written.append(ini.Entry(key, value, len(lines)))
        lines.append("# comment")
        expected.append(ini.Section(kind, " ".join(nameWords), start, tuple(written)))
    assert ini.parse("\n".join(lines), "p") == expected


# The organization: defaults


def test_exchange2010Defaults(tmp_path):
    org = organization(
        tmp_path,
        """
        [ReceiveConnector Default HubA]
        Bindings = 127.0.0.1:2525
        RemoteIPRanges = 0.0.0.0-255.255.255.255
        PermissionGroups = ExchangeUsers
        """,
    )
    c = connector(org, "Default HubA")
    assert c.maxMessageSize == 10 * MB == 10485760
    assert c.maxRecipientsPerMessage == 200
    assert c.connectionTimeout == 10 * 60
    assert c.connectionInactivityTimeout == 5 * 60
    assert c.maxInboundConnection == 5000
    assert c.maxInboundConnectionPerSource == 20
    assert c.maxLogonFailures == 3
    assert c.maxHopCount == 30
    assert c.maxHeaderSize == 64 * KB == 65536
    assert c.maxProtocolErrors == 5
    assert c.authTarpitInterval == 5
    assert c.requireTLS is False
    assert c.enabled is True
    assert c.bareLinefeedRejectionEnabled is True
    assert c.banner is None
    assert c.fqdn == "huba.fabrikam.com"
    assert c.server == "HubA"
    assert c.identity == "HubA\\Default HubA"
    assert c.usage == "Custom"
    assert c.permissions == ()
    assert c.origin.section == "ReceiveConnector Default HubA"


def test_limitsAreRead(tmp_path):
    org = organization(
        tmp_path,
        """
        [ReceiveConnector Default HubA]
        Bindings = 127.0.0.1:2525
        RemoteIPRanges = 0.0.0.0-255.255.255.255
        MaxMessageSize = 25 MB (26,214,400 bytes)
        MaxRecipientsPerMessage = 5,000
        MaxHeaderSize = 256KB
        MaxHopCount = 60
        ConnectionTimeout = 1.00:00:00
        ConnectionInactivityTimeout = 00:01:00
        MaxInboundConnection = unlimited
        MaxInboundConnectionPerSource = Unlimited
        MaxLogonFailures = 0
        MaxProtocolErrors = unlimited
        AuthTarpitInterval = 00:00:00
        RequireTLS = $true
        BareLinefeedRejectionEnabled = $false
        Enabled = $false
        Fqdn = mail.fabrikam.com
        Banner = "220 mail.fabrikam.com ready"
        Comment = the default connector
        """,
    )
    c = connector(org, "Default HubA")
    assert c.maxMessageSize == 25 * MB
    assert c.maxRecipientsPerMessage == 5000
    assert c.maxHeaderSize == 256 * KB
    assert c.maxHopCount == 60
    assert c.connectionTimeout == 86400
    assert c.connectionInactivityTimeout == 60
    assert c.maxInboundConnection is None
    assert c.maxInboundConnectionPerSource is None
    assert c.maxLogonFailures == 0
    assert c.maxProtocolErrors is None
    assert c.authTarpitInterval == 0
    assert c.requireTLS is True
    assert c.bareLinefeedRejectionEnabled is False
    assert c.enabled is False
    assert c.fqdn == "mail.fabrikam.com"
    assert c.banner == "220 mail.fabrikam.com ready"


def test_keysAndKindsAreCaseInsensitive(tmp_path):
    org = organization(
        tmp_path,
        """
        [receiveconnector Default HubA]
        BINDINGS = 127.0.0.1:2525
        remoteipranges = 127.0.0.0/8
        maxMessageSize = 20mb
        usage = custom
        authmechanism = tls, basicauth
        """,
        head="[transportserver HubA]\nfqdn = huba.fabrikam.com\n",
    )
    c = connector(org, "Default HubA")
    assert c.maxMessageSize == 20 * MB
    assert c.usage == "Custom"
    assert c.authMechanism == {"Tls", "BasicAuth"}
    assert c.origin.section == "ReceiveConnector Default HubA"
    assert list(org.transportServers) == ["HubA"]


# Usage presets


@pytest.mark.parametrize(
    "usage, extra, groups, auth, bindings, ranges",
    [
        (
            "Client",
            "RemoteIPRanges = 10.0.0.0/8",
            {"ExchangeUsers"},
            {"Tls", "BasicAuth", "BasicAuthRequireTLS", "Integrated"},
            ["0.0.0.0:587"],
            ["10.0.0.0/8"],
        ),
        (
            "Internal",
            "RemoteIPRanges = 10.0.0.0/8",
            {"ExchangeServers", "ExchangeLegacyServers"},
            {"Tls", "ExchangeServer"},
            ["0.0.0.0:25"],
            ["10.0.0.0/8"],
        ),
        (
            "Internet",
            "Bindings = 0.0.0.0:25",
            {"AnonymousUsers"},
            {"Tls"},
            ["0.0.0.0:25"],
            ["0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
        ),
        (
            "Partner",
            "Bindings = 0.0.0.0:25\nRemoteIPRanges = 10.0.0.0/8",
            {"Partners"},
            {"Tls"},
            ["0.0.0.0:25"],
            ["10.0.0.0/8"],
        ),
        (
            "Custom",
            "Bindings = 0.0.0.0:25\nRemoteIPRanges = 10.0.0.0/8",
            set(),
            {"Tls"},
            ["0.0.0.0:25"],
            ["10.0.0.0/8"],
        ),
    ],
)
def test_usagePresets(tmp_path, usage, extra, groups, auth, bindings, ranges):
    org = organization(tmp_path, f"[ReceiveConnector C]\nUsage = {usage}\n{extra}\n")
    c = connector(org, "C")
    assert c.usage == usage
    assert c.permissionGroups == groups
    assert c.authMechanism == auth
    assert [str(b) for b in c.bindings] == bindings
    assert [str(r) for r in c.remoteIPRanges] == ranges


def test_presetsAreOverridden(tmp_path):
    org = organization(
        tmp_path,
        """
        [ReceiveConnector C]
        Usage = Client
        Bindings = [::1]:5870
        RemoteIPRanges = ::1
        PermissionGroups = ExchangeUsers, AnonymousUsers
        AuthMechanism = Tls, BasicAuth
        """,
    )
    c = connector(org, "C")
    assert [str(b) for b in c.bindings] == ["[::1]:5870"]
    assert c.permissionGroups == {"ExchangeUsers", "AnonymousUsers"}
    assert c.authMechanism == {"Tls", "BasicAuth"}


@pytest.mark.parametrize("usage", ["Internet", "Partner", "Custom"])
def test_bindingsRequired(tmp_path, usage):
    assertError(
        tmp_path,
        f"[ReceiveConnector C]\nUsage = {usage}\nRemoteIPRanges = 10.0.0.1\n",
        "[ReceiveConnector C]",
        "ReceiveConnector C",
        "Bindings",
        f"Bindings is required with Usage {usage}",
    )


@pytest.mark.parametrize("usage", ["Client", "Internal", "Partner", "Custom"])
def test_remoteIPRangesRequired(tmp_path, usage):
    assertError(
        tmp_path,
        f"[ReceiveConnector C]\nUsage = {usage}\nBindings = 127.0.0.1:2525\n",
        "[ReceiveConnector C]",
        "ReceiveConnector C",
        "RemoteIPRanges",
        f"RemoteIPRanges is required with Usage {usage}",
    )


def test_usageDefaultsToCustom(tmp_path):
    assertError(
        tmp_path,
        "[ReceiveConnector C]\nRemoteIPRanges = 10.0.0.1\n",
        "[ReceiveConnector C]",
        "ReceiveConnector C",
        "Bindings",
        "Bindings is required with Usage Custom",
    )


def test_unknownUsage(tmp_path):
    assertError(
        tmp_path,
        "[ReceiveConnector C]\nUsage = Relay\n",
        "Usage = Relay",
        "ReceiveConnector C",
        "Usage",
        "'Relay' is not one of: Client, Internal, Internet, Partner, Custom",
    )


@pytest.mark.parametrize("key", ["Bindings", "RemoteIPRanges"])
def test_emptyLists(tmp_path, key):
    body = "[ReceiveConnector C]\nBindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.1\n"
    body = body.replace(f"{key} = ", f"{key} = ,")
    body = body.replace(",127.0.0.1:2525", ",").replace(",10.0.0.1", ",")
    assertError(tmp_path, body, f"{key} = ,", "ReceiveConnector C", key, f"{key} is empty")


# Validation rules


CONNECTOR = """
[ReceiveConnector C]
Bindings = 127.0.0.1:2525
RemoteIPRanges = 10.0.0.0/8
"""


@pytest.mark.parametrize(
    "line, key, message",
    [
        ("AuthMechanism = None, Tls", "AuthMechanism", "None must stand alone in AuthMechanism"),
        ("AuthMechanism = ,", "AuthMechanism", "AuthMechanism is empty; use None"),
        ("AuthMechanism = Tls, Kerberos", "AuthMechanism", "'Kerberos' is not one of: None, Tls"),
        ("AuthMechanism = BasicAuth, BasicAuthRequireTLS", "AuthMechanism", "BasicAuthRequireTLS requires BasicAuth and Tls"),
        ("AuthMechanism = Tls, BasicAuthRequireTLS", "AuthMechanism", "BasicAuthRequireTLS requires BasicAuth and Tls"),
        ("AuthMechanism = ExternalAuthoritative, BasicAuth", "AuthMechanism", "ExternalAuthoritative can only be combined with Tls"),
        ("AuthMechanism = ExternalAuthoritative, ExchangeServer", "AuthMechanism", "ExternalAuthoritative can only be combined with Tls"),
        ("PermissionGroups = None, AnonymousUsers", "PermissionGroups", "None must stand alone in PermissionGroups"),
        ("PermissionGroups = Everyone", "PermissionGroups", "'Everyone' is not one of: None, AnonymousUsers"),
        ("Banner = hello", "Banner", "a Banner must start with 220"),
        ("Banner = '550 go away'", "Banner", "a Banner must start with 220"),
        ("MaxMessageSize = 10KB", "MaxMessageSize", "10240 bytes is out of range; it must be 65536 to"),
        ("MaxMessageSize = 3GB", "MaxMessageSize", "out of range"),
        ("MaxMessageSize = 10 TB", "MaxMessageSize", "is not a size"),
        ("MaxMessageSize = " + "9" * 400, "MaxMessageSize", "out of range"),
        ("MaxRecipientsPerMessage = 0", "MaxRecipientsPerMessage", "0 is out of range; it must be 1 to 512000"),
        ("MaxRecipientsPerMessage = unlimited", "MaxRecipientsPerMessage", "is not a whole number"),
        ("MaxHopCount = 501", "MaxHopCount", "it must be 1 to 500"),
        ("MaxLogonFailures = 11", "MaxLogonFailures", "it must be 0 to 10"),
        ("MaxInboundConnectionPerSource = 10001", "MaxInboundConnectionPerSource", "it must be 1 to 10000"),
        ("ConnectionTimeout = 10 minutes", "ConnectionTimeout", "is not a time span"),
        ("ConnectionTimeout = 2.00:00:00", "ConnectionTimeout", "it must be 00:00:01 to 1.00:00:00"),
        ("RequireTLS = maybe", "RequireTLS", "use $true or $false"),
        ("Fqdn = not a host", "Fqdn", "is not a valid host name"),
        ("Bindings2 = 127.0.0.1:25", "Bindings2", "unknown key for a ReceiveConnector; known keys are: Server, Usage, Bindings"),
        ("SmartHosts = smtpgateway1.contoso.com", "SmartHosts", "unknown key for a ReceiveConnector"),
    ],
)
def test_connectorRules(tmp_path, line, key, message):
    assertError(tmp_path, CONNECTOR + line + "\n", line, "ReceiveConnector C", key, message)


def test_badBindingValue(tmp_path):
    assertError(
        tmp_path,
        "[ReceiveConnector C]\nRemoteIPRanges = 10.0.0.1\nBindings = 127.0.0.1:70000\n",
        "Bindings =",
        "ReceiveConnector C",
        "Bindings",
        "port 70000 is out of range",
    )


def test_badRangeValue(tmp_path):
    assertError(
        tmp_path,
        "[ReceiveConnector C]\nBindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.1, 10.0.0.9-10.0.0.2\n",
        "RemoteIPRanges =",
        "ReceiveConnector C",
        "RemoteIPRanges",
        "runs backwards",
    )


def test_basicAuthRequireTLSAccepted(tmp_path):
    org = organization(tmp_path, CONNECTOR + "AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS\n")
    assert connector(org, "C").authMechanism == {"Tls", "BasicAuth", "BasicAuthRequireTLS"}


def test_noneAlone(tmp_path):
    org = organization(tmp_path, CONNECTOR + "AuthMechanism = None\nPermissionGroups = None\n")
    c = connector(org, "C")
    assert c.authMechanism == {"None"}
    assert c.permissionGroups == frozenset()


def test_externalAuthoritativeWithTls(tmp_path):
    org = organization(
        tmp_path,
        CONNECTOR + "AuthMechanism = Tls, ExternalAuthoritative\nPermissionGroups = ExchangeServers\n",
    )
    assert connector(org, "C").authMechanism == {"Tls", "ExternalAuthoritative"}


def test_externalAuthoritativeNeedsExchangeServers(tmp_path):
    assertError(
        tmp_path,
        CONNECTOR + "AuthMechanism = ExternalAuthoritative\nPermissionGroups = ExchangeUsers\n",
        "PermissionGroups =",
        "ReceiveConnector C",
        "PermissionGroups",
        "AuthMechanism ExternalAuthoritative requires PermissionGroups to include ExchangeServers",
    )


def test_externalAuthoritativeNeedsExchangeServersPreset(tmp_path):
    """
    Custom presets no permission groups, so the fault is the AuthMechanism.
    """
    assertError(
        tmp_path,
        CONNECTOR + "AuthMechanism = ExternalAuthoritative\n",
        "AuthMechanism =",
        "ReceiveConnector C",
        "AuthMechanism",
        "requires PermissionGroups to include ExchangeServers",
    )


def test_requireTLSNeedsTls(tmp_path):
    assertError(
        tmp_path,
        CONNECTOR + "AuthMechanism = BasicAuth\nRequireTLS = $true\n",
        "RequireTLS =",
        "ReceiveConnector C",
        "RequireTLS",
        "RequireTLS $true needs Tls in AuthMechanism",
    )


@pytest.mark.parametrize(
    "lines, key, message",
    [
        ("ConnectionInactivityTimeout = 00:10:00", "ConnectionInactivityTimeout", "ConnectionInactivityTimeout (00:10:00) must be less than ConnectionTimeout (00:10:00)"),
        ("ConnectionInactivityTimeout = 00:20:00", "ConnectionInactivityTimeout", "(00:20:00) must be less than ConnectionTimeout (00:10:00)"),
        ("ConnectionTimeout = 00:03:00", "ConnectionTimeout", "ConnectionInactivityTimeout (00:05:00) must be less than ConnectionTimeout (00:03:00)"),
    ],
)
def test_inactivityBelowConnectionTimeout(tmp_path, lines, key, message):
    assertError(tmp_path, CONNECTOR + lines + "\n", lines, "ReceiveConnector C", key, message)


def test_inactivityJustBelowConnectionTimeout(tmp_path):
    org = organization(tmp_path, CONNECTOR + "ConnectionTimeout = 00:00:02\nConnectionInactivityTimeout = 00:00:01\n")
    assert (connector(org, "C").connectionTimeout, connector(org, "C").connectionInactivityTimeout) == (2, 1)


def test_unknownSectionKind(tmp_path):
    assertError(
        tmp_path,
        "[RoutingGroupConnector ToExchange2003]\nTargetTransportServers = EX2003\n",
        "[RoutingGroupConnector",
        "RoutingGroupConnector ToExchange2003",
        None,
        "unknown section kind 'RoutingGroupConnector'; known kinds are: TransportServer, "
        "AcceptedDomain, Mailbox, ADPermission, ReceiveConnector, SendConnector",
    )


@pytest.mark.parametrize("kind", ["TransportServer", "AcceptedDomain", "Mailbox", "ReceiveConnector"])
def test_sectionNeedsName(tmp_path, kind):
    assertError(tmp_path, f"[{kind}]\n", f"[{kind}]", kind, None, f"a {kind} section needs a name")


@pytest.mark.parametrize(
    "body, needle, section, key, message",
    [
        ("[TransportServer HubB]\nFqdn = hubb.fabrikam.com\nQueue = x\n", "Queue = x", "TransportServer HubB", "Queue", "unknown key for a TransportServer"),
        ("[AcceptedDomain contoso.com]\nDomainType = Relay\n", "DomainType = Relay", "AcceptedDomain contoso.com", "DomainType", "'Relay' is not one of: Authoritative, InternalRelay, ExternalRelay"),
        ("[Mailbox Kim]\nAddress = kim@fabrikam.com\n", "Address", "Mailbox Kim", "Address", "unknown key for a Mailbox"),
        ("[ADPermission]\nIdentity = C\nUser = x\nExtendedRights = ms-Exch-SMTP-Submit\nAccessRights = GenericAll\n", "AccessRights", "ADPermission", "AccessRights", "'GenericAll' is not one of: ExtendedRight"),
    ],
)
def test_unknownOrBadKeysInOtherSections(tmp_path, body, needle, section, key, message):
    assertError(tmp_path, body, needle, section, key, message)


def test_transportServerNeedsFqdn(tmp_path):
    assertError(
        tmp_path,
        "[TransportServer HubB]\nQueueDatabasePath = q\n",
        "[TransportServer HubB]",
        "TransportServer HubB",
        "Fqdn",
        "is required in a TransportServer section",
    )


def test_unknownServer(tmp_path):
    assertError(
        tmp_path,
        CONNECTOR + "Server = HubB\n",
        "Server = HubB",
        "ReceiveConnector C",
        "Server",
        "no [TransportServer HubB] is defined; defined: HubA",
    )


def test_serverNameIsCaseInsensitive(tmp_path):
    org = organization(tmp_path, CONNECTOR + "Server = huba\n")
    assert connector(org, "C").server == "HubA"


def test_serverRequiredWithSeveralServers(tmp_path):
    head = SERVER + "[TransportServer HubB]\nFqdn = hubb.fabrikam.com\n"
    assertError(
        tmp_path,
        CONNECTOR,
        "[ReceiveConnector C]",
        "ReceiveConnector C",
        "Server",
        "Server is required when org.ini defines several TransportServers",
        head=head,
    )


def test_serverRequiredWithoutServers(tmp_path):
    assertError(
        tmp_path,
        CONNECTOR,
        "[ReceiveConnector C]",
        "ReceiveConnector C",
        "Server",
        "no [TransportServer]",
        head="",
    )


def test_connectorsOfSeveralServers(tmp_path):
    head = SERVER + "[TransportServer HubB]\nFqdn = hubb.fabrikam.com\n"
    org = organization(
        tmp_path,
        """
        [ReceiveConnector Default HubA]
        Server = HubA
        Bindings = 127.0.0.1:2525
        RemoteIPRanges = 0.0.0.0/0
        [ReceiveConnector Default HubB]
        Server = HubB
        Bindings = 127.0.0.1:2525
        RemoteIPRanges = 0.0.0.0/0
        [ReceiveConnector Same]
        Server = HubA
        Bindings = 127.0.0.2:2525
        RemoteIPRanges = 10.0.0.0/8
        [ReceiveConnector Same]
        Server = HubB
        Bindings = 127.0.0.2:2525
        RemoteIPRanges = 10.0.0.0/8
        """,
        head=head,
    )
    assert [c.identity for c in org.connectorsOf("HubA")] == ["HubA\\Default HubA", "HubA\\Same"]
    assert [c.identity for c in org.connectorsOf("HubB")] == ["HubB\\Default HubB", "HubB\\Same"]
    assert connector(org, "Default HubB").fqdn == "hubb.fabrikam.com"


@pytest.mark.parametrize(
    "body, section, message",
    [
        ("[TransportServer huba]\nFqdn = x.fabrikam.com\n", "TransportServer huba", "a second TransportServer named 'huba' (the first is on line 1)"),
        ("[AcceptedDomain Fabrikam.com]\n", "AcceptedDomain Fabrikam.com", "a second AcceptedDomain named 'Fabrikam.com' (the first is on line 4)"),
    ],
)
def test_duplicateNames(tmp_path, body, section, message):
    assertError(tmp_path, body, f"[{section}]", section, None, message)


def test_duplicateMailboxNames(tmp_path):
    body = "[Mailbox Kim]\nPrimarySmtpAddress = kim@fabrikam.com\n[Mailbox kim]\nPrimarySmtpAddress = kim2@fabrikam.com\n"
    error = assertError(tmp_path, body, "[Mailbox kim]", "Mailbox kim", None, "a second Mailbox named 'kim'")
    assert "(the first is on line 6)" in str(error)


def test_duplicateConnectorNames(tmp_path):
    body = CONNECTOR + "[ReceiveConnector c]\nBindings = 127.0.0.2:2525\nRemoteIPRanges = 10.0.0.0/8\n"
    error = assertError(tmp_path, body, "[ReceiveConnector c]", "ReceiveConnector c", None, "a second ReceiveConnector 'HubA\\c'")
    assert "(the first is on line 7)" in str(error)


def test_duplicateDomainName(tmp_path):
    assertError(
        tmp_path,
        "[AcceptedDomain Fabrikam again]\nDomainName = FABRIKAM.com\n",
        "DomainName",
        "AcceptedDomain Fabrikam again",
        "DomainName",
        "fabrikam.com is already an accepted domain (line 4)",
    )


def test_acceptedDomainNameMustBeADomain(tmp_path):
    assertError(
        tmp_path,
        "[AcceptedDomain Contoso Ltd]\n",
        "[AcceptedDomain Contoso Ltd]",
        "AcceptedDomain Contoso Ltd",
        None,
        "the section name is not a domain",
    )


def test_acceptedDomains(tmp_path):
    org = organization(
        tmp_path,
        """
        [AcceptedDomain Contoso Ltd]
        DomainName = *.Contoso.com
        DomainType = InternalRelay
        [AcceptedDomain sales.contoso.com.]
        DomainType = ExternalRelay
        """,
    )
    assert [(d.name, d.domainName, d.domainType) for d in org.acceptedDomains] == [
        ("fabrikam.com", "fabrikam.com", "Authoritative"),
        ("Contoso Ltd", "*.contoso.com", "InternalRelay"),
        ("sales.contoso.com.", "sales.contoso.com", "ExternalRelay"),
    ]
    assert org.acceptedDomainFor("FABRIKAM.com").domainName == "fabrikam.com"
    assert org.acceptedDomainFor("contoso.com").domainName == "*.contoso.com"
    assert org.acceptedDomainFor("eu.contoso.com").domainName == "*.contoso.com"
    assert org.acceptedDomainFor("sales.contoso.com").domainName == "sales.contoso.com"
    assert org.acceptedDomainFor("notcontoso.com") is None
    assert org.acceptedDomainFor("sub.fabrikam.com") is None


# Receive connector overlaps


def _two(first, second):
    return f"""
[ReceiveConnector One]
{first}
[ReceiveConnector Two]
{second}
"""


def test_partialOverlapOnSharedBindingRefused(tmp_path):
    error = assertError(
        tmp_path,
        _two(
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.0-10.0.0.100",
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 192.168.0.1, 10.0.0.50-10.0.0.200",
        ),
        "RemoteIPRanges = 192.168.0.1",
        "ReceiveConnector Two",
        "RemoteIPRanges",
        "10.0.0.50-10.0.0.200 partly overlaps 10.0.0.0-10.0.0.100 of ReceiveConnector 'One' (line 7)",
    )
    assert "ranges may overlap only when one contains the other" in str(error)


def test_partialOverlapAcrossWildcardAndSpecificBindingAllowed(tmp_path):
    # A specific binding always wins over a wildcard one, so the ranges of
    # connectors on different bindings never compete.
    org = organization(
        tmp_path,
        _two(
            "Bindings = 0.0.0.0:2525\nRemoteIPRanges = 10.0.0.0/24",
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.128-10.0.1.5",
        ),
    )
    assert [c.name for c in org.receiveConnectors] == ["One", "Two"]


def test_partialOverlapWithDisabledConnectorRefused(tmp_path):
    assertError(
        tmp_path,
        _two(
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.0/24\nEnabled = $false",
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.128-10.0.1.5",
        ),
        "RemoteIPRanges = 10.0.0.128",
        "ReceiveConnector Two",
        "RemoteIPRanges",
        "partly overlaps",
    )


def test_nestedRangesOnSharedBindingAllowed(tmp_path):
    org = organization(
        tmp_path,
        _two(
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 0.0.0.0-255.255.255.255",
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 127.0.0.10, 10.0.0.0/8",
        )
        + "[ReceiveConnector Three]\nBindings = 127.0.0.1:2525\nRemoteIPRanges = 10.1.0.0/16\n",
    )
    assert [c.name for c in org.receiveConnectors] == ["One", "Two", "Three"]


def test_duplicateBindingAndRangeRefused(tmp_path):
    assertError(
        tmp_path,
        _two(
            "Bindings = 127.0.0.1:2525, 127.0.0.2:2525\nRemoteIPRanges = 10.0.0.0/8",
            "Bindings = 127.0.0.3:2525, 127.0.0.2:2525\nRemoteIPRanges = 10.0.0.0-10.255.255.255",
        ),
        "RemoteIPRanges = 10.0.0.0-",
        "ReceiveConnector Two",
        "RemoteIPRanges",
        "10.0.0.0-10.255.255.255 on 127.0.0.2:2525 is already the range of ReceiveConnector 'One' (line 7)",
    )


def test_sameRangeOnDifferentBindingsAllowed(tmp_path):
    org = organization(
        tmp_path,
        _two(
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.0/8",
            "Bindings = 127.0.0.1:2526\nRemoteIPRanges = 10.0.0.0/8",
        ),
    )
    assert len(org.receiveConnectors) == 2


def test_sameRangeOnWildcardAndSpecificBindingAllowed(tmp_path):
    """
    A specific-address binding beats the wildcard, so the pair is unambiguous.
    """
    org = organization(
        tmp_path,
        _two(
            "Bindings = 0.0.0.0:2525\nRemoteIPRanges = 10.0.0.0/8",
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 10.0.0.0/8",
        ),
    )
    assert len(org.receiveConnectors) == 2


def test_overlapOfDifferentVersionsIgnored(tmp_path):
    org = organization(
        tmp_path,
        _two(
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = 0.0.0.0/0",
            "Bindings = 127.0.0.1:2525\nRemoteIPRanges = ::/0",
        ),
    )
    assert len(org.receiveConnectors) == 2


# ADPermission


def test_adPermission(tmp_path):
    org = organization(
        tmp_path,
        CONNECTOR
        + """
        [ADPermission]
        Identity = c
        User = NT AUTHORITY\\ANONYMOUS LOGON
        ExtendedRights = 'Ms-Exch-SMTP-Accept-Any-Recipient', MS-EXCH-BYPASS-ANTI-SPAM

        [ADPermission]
        Identity = HubA\\C
        User = kim@fabrikam.com
        ExtendedRights = ms-Exch-SMTP-Submit
        Deny = $true
        """,
    )
    (first, second) = connector(org, "C").permissions
    assert first.identity == "HubA\\C"
    assert first.user == "NT AUTHORITY\\ANONYMOUS LOGON"
    assert first.extendedRights == {"ms-Exch-SMTP-Accept-Any-Recipient", "ms-Exch-Bypass-Anti-Spam"}
    assert first.deny is False
    assert (second.user, second.extendedRights, second.deny) == ("kim@fabrikam.com", {"ms-Exch-SMTP-Submit"}, True)


def test_adPermissionUnknownConnector(tmp_path):
    assertError(
        tmp_path,
        CONNECTOR + "[ADPermission]\nIdentity = FromInternetGateway\nUser = x\nExtendedRights = ms-Exch-SMTP-Submit\n",
        "Identity =",
        "ADPermission",
        "Identity",
        "no ReceiveConnector is named 'FromInternetGateway'",
    )


def test_adPermissionUnknownServerQualifiedConnector(tmp_path):
    error = assertError(
        tmp_path,
        CONNECTOR + "[ADPermission]\nIdentity = HubB\\C\nUser = x\nExtendedRights = ms-Exch-SMTP-Submit\n",
        "Identity =",
        "ADPermission",
        "Identity",
        "no ReceiveConnector is named 'HubB\\C'",
    )
    assert "\\\\" not in str(error)


def test_adPermissionUnknownRight(tmp_path):
    assertError(
        tmp_path,
        CONNECTOR + "[ADPermission]\nIdentity = C\nUser = x\nExtendedRights = ms-Exch-SMTP-Submit, ms-Exch-SMTP-Relay\n",
        "ExtendedRights =",
        "ADPermission",
        "ExtendedRights",
        "'ms-Exch-SMTP-Relay' is not an extended right exmta knows; known rights are: ms-Exch-SMTP-Submit",
    )


@pytest.mark.parametrize("key", ["Identity", "User", "ExtendedRights"])
def test_adPermissionRequiredKeys(tmp_path, key):
    lines = {"Identity": "Identity = C", "User": "User = x", "ExtendedRights": "ExtendedRights = ms-Exch-SMTP-Submit"}
    del lines[key]
    assertError(
        tmp_path,
        CONNECTOR + "[ADPermission]\n" + "\n".join(lines.values()) + "\n",
        "[ADPermission]",
        "ADPermission",
        key,
        "is required in a ADPermission section",
    )


def test_adPermissionAmbiguousIdentity(tmp_path):
    head = SERVER + "[TransportServer HubB]\nFqdn = hubb.fabrikam.com\n"
    body = (
        CONNECTOR.replace("[ReceiveConnector C]", "[ReceiveConnector C]\nServer = HubA")
        + CONNECTOR.replace("[ReceiveConnector C]", "[ReceiveConnector C]\nServer = HubB")
        + "[ADPermission]\nIdentity = C\nUser = x\nExtendedRights = ms-Exch-SMTP-Submit\n"
    )
    assertError(
        tmp_path,
        body,
        "Identity = C",
        "ADPermission",
        "Identity",
        "'C' names a connector on several servers; write Server\\Name, e.g. HubA\\C",
        head=head,
    )


def test_adPermissionGrantsRights(tmp_path):
    org = organization(
        tmp_path,
        CONNECTOR
        + "PermissionGroups = AnonymousUsers\n"
        + "[ADPermission]\nIdentity = C\nUser = nt authority\\anonymous logon\nExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient\n"
        + "[ADPermission]\nIdentity = C\nUser = NT AUTHORITY\\ANONYMOUS LOGON\nExtendedRights = ms-Exch-Accept-Headers-Routing\nDeny = $true\n",
    )
    rights = permissions.rightsOf(connector(org, "C"), {permissions.ANONYMOUS})
    assert permissions.ACCEPT_ANY_RECIPIENT in rights
    assert permissions.SUBMIT in rights
    assert permissions.ACCEPT_HEADERS_ROUTING not in rights


# Mailboxes


def test_mailboxes(tmp_path):
    org = organization(
        tmp_path,
        """
        [AcceptedDomain contoso.com]
        DomainType = InternalRelay
        [Mailbox Kim Akers]
        PrimarySmtpAddress = Kim@Fabrikam.com
        EmailAddresses = smtp:kim.akers@fabrikam.com, SMTP:kim@contoso.com
        [Mailbox Administrator]
        PrimarySmtpAddress = administrator@fabrikam.com
        UserPrincipalName = Admin@Fabrikam.com
        """,
    )
    kim, admin = org.mailboxes
    assert kim.name == "Kim Akers"
    assert kim.primarySmtpAddress == "kim@fabrikam.com"
    assert kim.emailAddresses == {"kim@fabrikam.com", "kim.akers@fabrikam.com", "kim@contoso.com"}
    assert kim.userPrincipalName == "kim@fabrikam.com"
    assert admin.userPrincipalName == "admin@fabrikam.com"
    assert org.mailboxFor("KIM.AKERS@fabrikam.com") is kim
    assert org.mailboxFor("administrator@fabrikam.com") is admin
    assert org.mailboxFor("nobody@fabrikam.com") is None


@pytest.mark.parametrize(
    "body, needle, key, message",
    [
        ("[Mailbox Kim]\nPrimarySmtpAddress = kim@contoso.com\n", "PrimarySmtpAddress", "PrimarySmtpAddress", "kim@contoso.com is not in an Authoritative or InternalRelay accepted domain"),
        ("[Mailbox Kim]\nPrimarySmtpAddress = kim@fabrikam.com\nEmailAddresses = kim@sub.fabrikam.com\n", "EmailAddresses", "EmailAddresses", "kim@sub.fabrikam.com is not in an Authoritative or InternalRelay"),
        ("[AcceptedDomain contoso.com]\nDomainType = ExternalRelay\n[Mailbox Kim]\nPrimarySmtpAddress = kim@contoso.com\n", "PrimarySmtpAddress", "PrimarySmtpAddress", "kim@contoso.com is not in an Authoritative or InternalRelay"),
        ("[Mailbox Kim]\nPrimarySmtpAddress = kim\n", "PrimarySmtpAddress", "PrimarySmtpAddress", "'kim' is not an e-mail address"),
        ("[Mailbox Kim]\nPrimarySmtpAddress = @fabrikam.com\n", "PrimarySmtpAddress", "PrimarySmtpAddress", "is not an e-mail address"),
        ("[Mailbox Kim]\nPrimarySmtpAddress = kim@fab_rikam.com\n", "PrimarySmtpAddress", "PrimarySmtpAddress", "is not a valid host name"),
        ("[Mailbox Kim]\n", "[Mailbox Kim]", "PrimarySmtpAddress", "is required in a Mailbox section"),
    ],
)
def test_mailboxAddressRules(tmp_path, body, needle, key, message):
    assertError(tmp_path, body, needle, "Mailbox Kim", key, message)


def test_mailboxAddressesAreUnique(tmp_path):
    body = """
    [Mailbox Administrator]
    PrimarySmtpAddress = administrator@fabrikam.com
    EmailAddresses = postmaster@fabrikam.com
    [Mailbox Kim]
    PrimarySmtpAddress = kim@fabrikam.com
    EmailAddresses = Postmaster@Fabrikam.com
    """
    assertError(
        tmp_path,
        body,
        "EmailAddresses = Postmaster",
        "Mailbox Kim",
        "EmailAddresses",
        "postmaster@fabrikam.com already belongs to the mailbox on line 7",
    )


def test_mailboxPrimaryAddressTakenByAnother(tmp_path):
    body = """
    [Mailbox Administrator]
    PrimarySmtpAddress = administrator@fabrikam.com
    [Mailbox Kim]
    PrimarySmtpAddress = ADMINISTRATOR@fabrikam.com
    """
    assertError(
        tmp_path,
        body,
        "PrimarySmtpAddress = ADMINISTRATOR",
        "Mailbox Kim",
        "PrimarySmtpAddress",
        "administrator@fabrikam.com already belongs to the mailbox on line 7",
    )


def test_mailboxInWildcardDomain(tmp_path):
    org = organization(
        tmp_path,
        "[AcceptedDomain *.contoso.com]\n[Mailbox Kim]\nPrimarySmtpAddress = kim@eu.contoso.com\n",
    )
    assert org.mailboxes[0].primarySmtpAddress == "kim@eu.contoso.com"


# Paths


def test_pathsResolveAgainstTheFolderOfOrgIni(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "org.ini"
    path.write_text(
        "[TransportServer HubA]\nFqdn = huba.fabrikam.com\n"
        "QueueDatabasePath = ../var/HubA/queue\n"
        "MailboxDatabasePath = /srv/mail\n"
        "TlsCertificatePath = tls/huba.pem\n"
        "TlsPrivateKeyPath = tls/huba.key\n"
        "[TransportServer HubB]\nFqdn = hubb.fabrikam.com\n",
        encoding="utf-8",
    )
    before = os.getcwd()
    os.chdir(tmp_path.parent)
    try:
        org = loadOrganization(os.path.relpath(path))
    finally:
        os.chdir(before)
    hubA, hubB = org.transportServers["HubA"], org.transportServers["HubB"]
    assert org.path == str(path)
    assert org.folder == str(folder)
    assert org.accountStorePath == str(folder / "accounts")
    assert hubA.queueDatabasePath == str(tmp_path / "var" / "HubA" / "queue")
    assert hubA.mailboxDatabasePath == "/srv/mail"
    assert hubA.tlsCertificatePath == str(folder / "tls" / "huba.pem")
    assert hubA.tlsPrivateKeyPath == str(folder / "tls" / "huba.key")
    assert hubB.queueDatabasePath == str(folder / "var" / "HubB" / "queue")
    assert hubB.mailboxDatabasePath == str(folder / "var" / "HubB" / "mailboxes")
    assert hubB.tlsCertificatePath is None and hubB.tlsPrivateKeyPath is None


@pytest.mark.parametrize("given, missing", [("TlsCertificatePath = a.pem", "TlsPrivateKeyPath"), ("TlsPrivateKeyPath = a.key", "TlsCertificatePath")])
def test_tlsPathsGoTogether(tmp_path, given, missing):
    assertError(
        tmp_path,
        f"[TransportServer HubB]\nFqdn = hubb.fabrikam.com\n{given}\n",
        "[TransportServer HubB]",
        "TransportServer HubB",
        missing,
        "TlsCertificatePath and TlsPrivateKeyPath go together",
    )


# Reading the file


def test_byteOrderMark(tmp_path):
    path = tmp_path / "org.ini"
    path.write_bytes(b"\xef\xbb\xbf" + SERVER.encode())
    assert list(loadOrganization(str(path)).transportServers) == ["HubA"]


def test_crlf(tmp_path):
    path = tmp_path / "org.ini"
    path.write_bytes((SERVER + CONNECTOR + "Banner = nope\n").replace("\n", "\r\n").encode())
    with pytest.raises(ConfigError) as caught:
        loadOrganization(str(path))
    assert (caught.value.line, caught.value.key) == (10, "Banner")


def test_missingFile(tmp_path):
    path = tmp_path / "nope.ini"
    with pytest.raises(ConfigError) as caught:
        loadOrganization(str(path))
    assert caught.value.path == str(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


def test_notUTF8(tmp_path):
    path = tmp_path / "org.ini"
    path.write_bytes(b"[TransportServer HubA]\nFqdn = h\xe9.fabrikam.com\n")
    with pytest.raises(ConfigError) as caught:
        loadOrganization(str(path))
    assert str(caught.value).startswith(f"{path}: is not UTF-8 text")


def test_parseOrganizationTakesText():
    org = parseOrganization(SERVER, "/etc/exmta/org.ini")
    assert org.path == "/etc/exmta/org.ini"
    assert org.transportServers["HubA"].queueDatabasePath == "/etc/exmta/var/HubA/queue"


# Any org.ini either loads or names its fault

_tricky = [
    "",
    ",",
    "$true",
    "$null",
    "unlimited",
    "0",
    "-1",
    "9" * 400,
    "10 MB (10,485,760 bytes)",
    "00:05:00",
    "24:00:00",
    "1.00:00:00",
    "127.0.0.1:2525",
    "[::1]:25",
    "0.0.0.0:25",
    "127.0.0.1:0",
    "0.0.0.0-255.255.255.255",
    "10.0.0.0/8",
    "10.0.0.50-10.0.0.200",
    "10.0.0.9-10.0.0.1",
    "::/0",
    "None",
    "Tls",
    "Tls, BasicAuth, BasicAuthRequireTLS",
    "ExternalAuthoritative",
    "None, Tls",
    "AnonymousUsers",
    "ExchangeServers",
    "Client",
    "Internal",
    "Internet",
    "Partner",
    "Custom",
    "HubA",
    "C",
    "huba.fabrikam.com",
    "kim@fabrikam.com",
    "kim@contoso.com",
    "ms-Exch-SMTP-Submit",
    "Ms-Exch-SMTP-Accept-Any-Recipient",
    "220 ready",
    "InternalRelay",
    "ExternalRelay",
    "*.fabrikam.com",
    "NT AUTHORITY\\ANONYMOUS LOGON",
    "*",
    "contoso.com;10",
    "*.contoso.com;5",
    "*contoso.com",
    "X400:c=US;a=;p=Contoso",
    "smtpgateway1.contoso.com",
    "[192.168.1.10]:2526",
    "BasicAuth, BasicAuthRequireTLS",
    "BasicAuthRequireTLS",
    "BasicAuth",
    "ToInternetGateway",
    "EncryptionOnly",
    "DomainValidation",
    "Verbose",
    "127.0.0.1:5353",
    "20.00:00:00",
]
_allKeys = sorted({key for schema in SECTION_KINDS.values() for key in schema})
_sectionStrategy = st.tuples(
    st.sampled_from(list(SECTION_KINDS) + ["RoutingGroupConnector"]),
    st.sampled_from(["", "C", "D", "HubA", "fabrikam.com", "contoso.com", "Kim"]),
    st.lists(
        st.tuples(
            st.sampled_from(_allKeys),
            st.one_of(
                st.sampled_from(_tricky),
                st.text(st.characters(blacklist_characters="\r\n"), max_size=12),
            ),
        ),
        max_size=6,
        unique_by=lambda pair: pair[0],
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_sectionStrategy, max_size=6))
def test_anyOrganizationLoadsOrRaisesConfigError(sections):
    lines = []
    for kind, name, entries in sections:
        lines.append(f"[{kind} {name}]")
        lines.extend(f"{key} = {value}" for key, value in entries)
    text = "\n".join(lines)
    try:
        org = parseOrganization(text, "/o/org.ini")
    except ConfigError as error:
        assert error.path == "/o/org.ini"
        assert error.line is not None and 1 <= error.line <= max(len(lines), 1)
        assert str(error).startswith(f"/o/org.ini:{error.line}")
        if error.key is not None:
            assert error.section is not None
            assert error.key.lower() in {k.lower() for k in RECEIVE_CONNECTOR_KEYS} | {
                k.lower() for schema in SECTION_KINDS.values() for k in schema
            }
    else:
        for c in org.receiveConnectors:
            assert c.connectionInactivityTimeout < c.connectionTimeout
            assert c.bindings and c.remoteIPRanges
        for c in org.sendConnectors:
            assert c.addressSpaces
            assert bool(c.smartHosts) != c.dnsRoutingEnabled
            assert c.sourceTransportServers
            assert set(c.sourceTransportServers) <= set(org.transportServers)
            assert ("BasicAuth" in c.smartHostAuthMechanism) == (c.authenticationCredential is not None)
            assert not (c.requireTLS and c.ignoreSTARTTLS)
            assert c.tlsAuthLevel is None or c.requireTLS
        for server in org.transportServers.values():
            if server.maxOutboundConnections is not None:
                assert server.maxPerDomainOutboundConnections <= server.maxOutboundConnections


# The shipped example


def test_shippedOrgIni():
    org = loadOrganization(SHIPPED)
    folder = os.path.dirname(SHIPPED)
    (server,) = org.transportServers.values()
    assert (server.name, server.fqdn) == ("HubA", "huba.fabrikam.com")
    assert server.queueDatabasePath == os.path.normpath(os.path.join(folder, "..", "var", "HubA", "queue"))
    assert server.mailboxDatabasePath == os.path.normpath(os.path.join(folder, "..", "var", "HubA", "mailboxes"))
    assert server.tlsCertificatePath is None
    assert [(d.domainName, d.domainType) for d in org.acceptedDomains] == [("fabrikam.com", "Authoritative")]
    assert org.mailboxFor("administrator@fabrikam.com").name == "Administrator"
    assert org.accountStorePath == os.path.join(folder, "accounts")

    assert [c.name for c in org.connectorsOf("HubA")] == [
        "Default HubA",
        "FromInternetGateway",
        "AnonymousRelay",
    ]
    for c in org.receiveConnectors:
        assert all(not b.isWildcard and b.port > 1024 for b in c.bindings)
        assert all(b.host.startswith("127.") for b in c.bindings)

    default = connector(org, "Default HubA")
    assert default.usage == "Custom"
    assert [str(b) for b in default.bindings] == ["127.0.0.1:2525"]
    assert [str(r) for r in default.remoteIPRanges] == ["0.0.0.0-255.255.255.255"]
    assert default.authMechanism == {"Tls", "BasicAuth", "BasicAuthRequireTLS"}
    assert default.permissionGroups == {"ExchangeUsers", "ExchangeServers"}
    assert default.maxMessageSize == 10 * MB
    assert default.maxRecipientsPerMessage == 200
    assert (default.connectionTimeout, default.connectionInactivityTimeout) == (600, 300)
    assert (default.maxInboundConnection, default.maxInboundConnectionPerSource) == (5000, 20)
    assert default.maxLogonFailures == 3
    assert default.requireTLS is False and default.enabled is True
    anonymous = permissions.rightsOf(default, {permissions.ANONYMOUS})
    assert permissions.SUBMIT not in anonymous
    assert anonymous == frozenset()
    users = permissions.rightsOf(default, {permissions.AUTHENTICATED_USERS})
    assert {permissions.SUBMIT, permissions.ACCEPT_ANY_RECIPIENT} <= users

    gateway = connector(org, "FromInternetGateway")
    assert gateway.usage == "Internal"
    assert gateway.bindings == default.bindings
    assert [str(r) for r in gateway.remoteIPRanges] == ["127.0.0.10"]
    assert gateway.authMechanism == {"ExternalAuthoritative"}
    assert "ExchangeServers" in gateway.permissionGroups
    secured = permissions.rightsOf(gateway, {permissions.EXTERNALLY_SECURED_SERVERS})
    assert {
        permissions.SUBMIT,
        permissions.ACCEPT_ANY_RECIPIENT,
        permissions.BYPASS_MESSAGE_SIZE_LIMIT,
        permissions.ACCEPT_HEADERS_ORGANIZATION,
    } <= secured
    assert permissions.rightsOf(gateway, {permissions.ANONYMOUS}) == frozenset()

    relay = connector(org, "AnonymousRelay")
    assert relay.usage == "Custom"
    assert [str(b) for b in relay.bindings] == ["127.0.0.4:2525"]
    assert [str(r) for r in relay.remoteIPRanges] == ["127.0.5.77"]
    assert relay.permissionGroups == {"AnonymousUsers"}
    (grant,) = relay.permissions
    assert (grant.user, grant.extendedRights, grant.deny) == (
        "NT AUTHORITY\\ANONYMOUS LOGON",
        {"ms-Exch-SMTP-Accept-Any-Recipient"},
        False,
    )
    anonymousRelay = permissions.rightsOf(relay, {permissions.ANONYMOUS})
    assert permissions.ACCEPT_ANY_RECIPIENT in anonymousRelay
    assert permissions.SUBMIT in anonymousRelay
    assert all(c.protocolLoggingLevel == "None" for c in org.receiveConnectors)

    # The send side: Exchange 2010's retry defaults, logs beside the queue.
    assert (server.messageExpirationTimeout, server.delayNotificationTimeout) == (2 * 86400, 4 * 3600)
    assert (server.messageRetryInterval, server.transientFailureRetryCount) == (60, 6)
    assert (server.transientFailureRetryInterval, server.outboundConnectionFailureRetryInterval) == (300, 600)
    assert (server.maxOutboundConnections, server.maxPerDomainOutboundConnections) == (1000, 20)
    var = os.path.normpath(os.path.join(folder, "..", "var", "HubA"))
    assert server.messageTrackingLogEnabled is True
    assert server.messageTrackingLogPath == os.path.join(var, "MessageTracking")
    assert server.sendProtocolLogPath == os.path.join(var, "ProtocolLog", "SmtpSend")
    assert server.receiveProtocolLogPath == os.path.join(var, "ProtocolLog", "SmtpReceive")
    assert server.externalPostmasterAddress is None
    assert org.postmasterAddressOf("HubA") == "postmaster@fabrikam.com"
    assert server.internalDNSServers == server.externalDNSServers == ()
    assert org.credentialStorePath == os.path.join(folder, "credentials")

    # The reference's New-SendConnector "ToInternetGateway", anonymous relay set-up.
    (send,) = org.sendConnectors
    assert send.name == "ToInternetGateway"
    assert send.usage == "Internet"
    assert [str(s) for s in send.addressSpaces] == ["SMTP:*;1"]
    assert [str(h) for h in send.smartHosts] == ["smtpgateway1.contoso.com"]
    assert send.smartHostAuthMechanism == {"None"}
    assert send.authenticationCredential is None
    assert send.sourceTransportServers == ("HubA",)
    assert send.dnsRoutingEnabled is False
    assert (send.port, send.fqdn, send.requireTLS, send.ignoreSTARTTLS, send.tlsAuthLevel) == (25, None, False, False, None)
    assert send.maxMessageSize == 10 * MB
    assert send.connectionInactivityTimeout == 600
    assert send.protocolLoggingLevel == "None"
    assert send.enabled is True


@pytest.mark.parametrize(
    "replace, auth, credential",
    [
        ("SmartHostAuthMechanism = BasicAuth, BasicAuthRequireTLS\nAuthenticationCredential = ToInternetGateway", {"BasicAuth", "BasicAuthRequireTLS"}, "ToInternetGateway"),
        ("SmartHostAuthMechanism = ExternalAuthoritative", {"ExternalAuthoritative"}, None),
    ],
)
def test_shippedOrgIniAlternatives(replace, auth, credential):
    """
    The commented-out alternatives in the shipped send connector, the
    reference's other two set-ups, load when put in place of
    SmartHostAuthMechanism = None.
    """
    with open(SHIPPED, encoding="utf-8") as handle:
        text = handle.read()
    for line in replace.split("\n"):
        assert f"# {line}\n" in text
    text = text.replace("\nSmartHostAuthMechanism = None\n", "\n" + replace + "\n")
    (send,) = parseOrganization(text, SHIPPED).sendConnectors
    assert (send.smartHostAuthMechanism, send.authenticationCredential) == (auth, credential)


def test_shippedOrgIniCommentsEveryKey():
    """
    Every key set in etc/org.ini has a comment directly above it (or is
    part of a block introduced by one).
    """
    with open(SHIPPED, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    uncommented = []
    for number, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            previous = lines[number - 1].strip() if number else ""
            if not previous.startswith("#") and "=" not in previous:
                uncommented.append(line)
    assert uncommented == []
