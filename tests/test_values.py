"""
Tests for L{exmta.config.values}: the parsers of Exchange's value syntaxes.
"""

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from exmta.config import values

KB, MB, GB = 1024, 1024**2, 1024**3


def anyTextParsesOrRaisesValueError(parser, text):
    """
    The contract of every parser: a value, or L{ValueError} with a message.
    """
    try:
        parser(text)
    except ValueError as error:
        assert str(error)


# Booleans


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$true", True),
        ("$false", False),
        ("$TRUE", True),
        ("$False", False),
        ("  $true  ", True),
        ("true", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("off", False),
        ("0", False),
    ],
)
def test_boolean(text, expected):
    assert values.boolean(text) is expected


@pytest.mark.parametrize("text", ["", "$null", "truthy", "2", "$ true", "t"])
def test_booleanRejects(text):
    with pytest.raises(ValueError, match=r"use \$true or \$false"):
        values.boolean(text)


@given(st.text())
def test_booleanAnyText(text):
    anyTextParsesOrRaisesValueError(values.boolean, text)


# Comma lists


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Tls, BasicAuth,BasicAuthRequireTLS", ("Tls", "BasicAuth", "BasicAuthRequireTLS")),
        ("one", ("one",)),
        ("", ()),
        (" , ,", ()),
        ("'a', \"b\"", ("a", "b")),
        ("\"NT AUTHORITY\\ANONYMOUS LOGON\"", ("NT AUTHORITY\\ANONYMOUS LOGON",)),
        ("a,,b", ("a", "b")),
    ],
)
def test_commaList(text, expected):
    assert values.commaList(text) == expected


@given(st.lists(st.text(st.characters(blacklist_characters=",'\""), min_size=1)))
def test_commaListRoundTrip(items):
    items = [item.strip() for item in items]
    assume(all(items))
    assert values.commaList(", ".join(items)) == tuple(items)


# Whole numbers


def test_integer():
    parse = values.integer(1, 512000)
    assert parse("200") == 200
    assert parse(" 5,000 ") == 5000
    assert parse("1") == 1
    assert parse("512000") == 512000


@pytest.mark.parametrize("text", ["0", "512001", "-1"])
def test_integerOutOfRange(text):
    with pytest.raises(ValueError, match="out of range; it must be 1 to 512000"):
        values.integer(1, 512000)(text)


@pytest.mark.parametrize("text", ["", "ten", "1.5", "unlimited"])
def test_integerNotANumber(text):
    with pytest.raises(ValueError, match="is not a whole number$"):
        values.integer(1, 10)(text)


def test_integerUnlimited():
    parse = values.integer(1, 10000, unlimited=True)
    assert parse("unlimited") is values.UNLIMITED
    assert parse("Unlimited") is None
    assert parse("20") == 20
    with pytest.raises(ValueError, match="or 'unlimited'"):
        parse("lots")


@given(st.integers(0, 10**9))
def test_integerRoundTrip(number):
    parse = values.integer(0, 10**9)
    assert parse(str(number)) == number
    assert parse(f"{number:,}") == number


# Sizes


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10MB", 10 * MB),
        ("10 MB", 10 * MB),
        ("10mb", 10 * MB),
        ("10 MB (10,485,760 bytes)", 10 * MB),
        ("64 KB (65,536 bytes)", 64 * KB),
        ("10485760", 10 * MB),
        ("10,485,760", 10 * MB),
        ("10485760B", 10 * MB),
        ("64KB", 64 * KB),
        ("64K", 64 * KB),
        ("10 M", 10 * MB),
        ("2GB", 2 * GB),
        ("1.5KB", 1536),
        ("0.5 MB", 512 * KB),
    ],
)
def test_byteSize(text, expected):
    assert values.byteSize(1, 4 * GB)(text) == expected


def test_byteSizeUnlimited():
    assert values.byteSize(1, GB, unlimited=True)("unlimited") is values.UNLIMITED
    assert values.byteSize(1, GB, unlimited=True)(" UNLIMITED ") is None
    with pytest.raises(ValueError, match="is not a size"):
        values.byteSize(1, GB)("unlimited")


@pytest.mark.parametrize("text", ["", "MB", "ten MB", "10 TB", "10 MiB", ".", "1.2.3MB", "-5MB"])
def test_byteSizeRejects(text):
    with pytest.raises(ValueError, match="is not a size"):
        values.byteSize(1, 4 * GB)(text)


def test_byteSizeRange():
    parse = values.byteSize(64 * KB, 2 * GB)
    assert parse("64KB") == 64 * KB
    assert parse("2GB") == 2 * GB
    with pytest.raises(ValueError, match="65535 bytes is out of range; it must be 65536 to"):
        parse("65535")
    with pytest.raises(ValueError, match="out of range"):
        parse("3GB")


def test_byteSizeHugeNumber():
    """
    A long digit string is out of range, not an OverflowError from float().
    """
    with pytest.raises(ValueError, match="out of range"):
        values.byteSize(1, 2 * GB)("9" * 400)
    with pytest.raises(ValueError, match="out of range"):
        values.byteSize(1, 2 * GB)("9" * 400 + " MB")


@given(st.integers(0, 2**60))
def test_byteSizeBytesRoundTrip(size):
    parse = values.byteSize(0, 2**60)
    assert parse(str(size)) == size
    assert parse(f"{size:,}") == size
    assert parse(f"{size}B") == size


@given(st.integers(0, 2**20), st.sampled_from([("KB", KB), ("MB", MB), ("GB", GB)]))
def test_byteSizeUnitRoundTrip(count, unit):
    """
    Whole multiples of a unit, in every way Exchange writes them.
    """
    name, factor = unit
    parse = values.byteSize(0, 2**60)
    assert parse(f"{count}{name}") == count * factor
    assert parse(f"{count} {name.lower()}") == count * factor
    assert parse(f"{count} {name} ({count * factor:,} bytes)") == count * factor


@given(st.text())
def test_byteSizeAnyText(text):
    anyTextParsesOrRaisesValueError(values.byteSize(64 * KB, 2 * GB, unlimited=True), text)


@given(st.from_regex(r"\A\s*[\d.,]+\s*[kKmMgG]?[bB]?\s*(\(.*\))?\s*\Z"))
def test_byteSizeAnyNumberLikeText(text):
    anyTextParsesOrRaisesValueError(values.byteSize(64 * KB, 2 * GB), text)


# TimeSpans


@pytest.mark.parametrize(
    "text, expected",
    [
        ("00:05:00", 300),
        ("00:10:00", 600),
        ("0:0:1", 1),
        ("23:59:59", 86399),
        ("1.00:00:00", 86400),
        ("2.03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        (" 00:00:05 ", 5),
        ("00:00:05.500", 5),
    ],
)
def test_timespan(text, expected):
    assert values.timespan(0, 10 * 86400)(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5m", "00:05", "-00:00:01", "1:00:00:00", "00:005:00"])
def test_timespanRejectsSyntax(text):
    with pytest.raises(ValueError, match=r"not a time span; write \[days.\]hh:mm:ss"):
        values.timespan(0, 86400)(text)


@pytest.mark.parametrize("text", ["24:00:00", "00:60:00", "00:00:60"])
def test_timespanRejectsFields(text):
    with pytest.raises(ValueError, match="hours above 23 or minutes/seconds above 59"):
        values.timespan(0, 10 * 86400)(text)


def test_timespanRange():
    parse = values.timespan(1, 86400)
    assert parse("00:00:01") == 1
    assert parse("1.00:00:00") == 86400
    with pytest.raises(ValueError, match="out of range; it must be 00:00:01 to 1.00:00:00"):
        parse("00:00:00")
    with pytest.raises(ValueError, match="out of range"):
        parse("1.00:00:01")


@pytest.mark.parametrize(
    "seconds, text", [(0, "00:00:00"), (300, "00:05:00"), (86400, "1.00:00:00"), (90061, "1.01:01:01")]
)
def test_formatTimespan(seconds, text):
    assert values.formatTimespan(seconds) == text


@given(st.integers(0, 1000 * 86400))
def test_timespanRoundTrip(seconds):
    assert values.timespan(0, 1000 * 86400)(values.formatTimespan(seconds)) == seconds


@given(st.text())
def test_timespanAnyText(text):
    anyTextParsesOrRaisesValueError(values.timespan(1, 86400), text)


# Flags and choices


def test_flagsCanonicalSpelling():
    parse = values.flags(("None", "Tls", "BasicAuth", "BasicAuthRequireTLS"))
    assert parse("tls, BASICAUTH, basicauthrequiretls") == frozenset(
        {"Tls", "BasicAuth", "BasicAuthRequireTLS"}
    )
    assert parse("") == frozenset()


def test_flagsUnknown():
    with pytest.raises(ValueError, match="'Kerberos' is not one of: None, Tls"):
        values.flags(("None", "Tls"))("Tls, Kerberos")


def test_choice():
    parse = values.choice(("Authoritative", "InternalRelay", "ExternalRelay"))
    assert parse(" internalrelay ") == "InternalRelay"
    with pytest.raises(ValueError, match="'Relay' is not one of: Authoritative, InternalRelay"):
        parse("Relay")


# Host and domain names


@pytest.mark.parametrize(
    "text, expected",
    [
        ("huba.fabrikam.com", "huba.fabrikam.com"),
        ("HubA.Fabrikam.COM", "HubA.Fabrikam.COM"),
        ("huba.fabrikam.com.", "huba.fabrikam.com"),
        ("localhost", "localhost"),
        ("a-b.c0", "a-b.c0"),
        ("x" * 63 + ".com", "x" * 63 + ".com"),
    ],
)
def test_fqdn(text, expected):
    assert values.fqdn(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "-huba.fabrikam.com",
        "huba-.fabrikam.com",
        "huba..fabrikam.com",
        "hub a.fabrikam.com",
        "hub_a.fabrikam.com",
        "x" * 64 + ".com",
        ".".join(["abcdefghi"] * 26),  # 259 characters
        "*.fabrikam.com",
        "\u212a.com",  # KELVIN SIGN, which IGNORECASE alone lets [a-z] match
        "\u017f.com",  # LATIN SMALL LETTER LONG S, likewise
        "b\u00fccher.de",
        "huba\n.fabrikam.com",
        "huba.fabrikam.com\nx",
    ],
)
def test_fqdnRejects(text):
    with pytest.raises(ValueError, match="is not a valid host name"):
        values.fqdn(text)


@given(st.text())
def test_fqdnAnyText(text):
    try:
        name = values.fqdn(text)
    except ValueError:
        return
    assert name.isascii()
    assert all(0 < len(label) <= 63 for label in name.split("."))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fabrikam.com", "fabrikam.com"),
        ("Fabrikam.COM", "fabrikam.com"),
        ("*.fabrikam.com", "*.fabrikam.com"),
        ("fabrikam.com.", "fabrikam.com"),
        ("*.Fabrikam.com.", "*.fabrikam.com"),
    ],
)
def test_domain(text, expected):
    assert values.domain(text) == expected


@pytest.mark.parametrize("text", ["*", "*.", "*fabrikam.com", "fab*.com", "*.*.com"])
def test_domainRejects(text):
    with pytest.raises(ValueError):
        values.domain(text)


# IP ranges


@pytest.mark.parametrize(
    "text, version, first, last",
    [
        ("192.168.1.10", 4, "192.168.1.10", "192.168.1.10"),
        ("10.0.0.0/8", 4, "10.0.0.0", "10.255.255.255"),
        ("10.1.2.3/8", 4, "10.0.0.0", "10.255.255.255"),
        ("0.0.0.0-255.255.255.255", 4, "0.0.0.0", "255.255.255.255"),
        ("192.168.1.10 - 192.168.1.20", 4, "192.168.1.10", "192.168.1.20"),
        ("192.168.1.10-192.168.1.10", 4, "192.168.1.10", "192.168.1.10"),
        ("::1", 6, "::1", "::1"),
        ("2001:db8::/32", 6, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:db8::1-2001:db8::ff", 6, "2001:db8::1", "2001:db8::ff"),
        ("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ],
)
def test_ipRange(text, version, first, last):
    parsed = values.ipRange(text)
    assert parsed.version == version
    assert parsed.first == int(ipaddress.ip_address(first))
    assert parsed.last == int(ipaddress.ip_address(last))
    assert str(parsed) == text.strip()


@pytest.mark.parametrize(
    "text",
    ["", "192.168.1", "192.168.1.256", "10.0.0.0/33", "host.fabrikam.com", "1.2.3.4-", "-1.2.3.4", "1.2.3.4-5", "mixes", "backwards"],
)
def test_ipRangeRejects(text):
    with pytest.raises(ValueError, match="is not an IP address, a range a-b, or a CIDR block a/n"):
        values.ipRange(text)


def test_ipRangeMixedVersions():
    with pytest.raises(ValueError, match="mixes IPv4 and IPv6"):
        values.ipRange("10.0.0.1-::1")


def test_ipRangeBackwards():
    with pytest.raises(ValueError, match="runs backwards; write the lower address first"):
        values.ipRange("10.0.0.9-10.0.0.1")


def test_ipRanges():
    ranges = values.ipRanges("192.168.1.10, 10.0.0.0/8,::1")
    assert [str(r) for r in ranges] == ["192.168.1.10", "10.0.0.0/8", "::1"]
    assert values.ipRanges("") == ()


def test_ipRangeSize():
    assert values.ipRange("10.0.0.0/24").size == 256
    assert values.ipRange("10.0.0.7").size == 1


def test_ipRangeContainsAddress():
    network = values.ipRange("10.0.0.0/8")
    assert "10.0.0.0" in network
    assert "10.255.255.255" in network
    assert "10.1.2.3" in network
    assert "11.0.0.0" not in network
    assert "9.255.255.255" not in network
    # An IPv4 peer seen on an IPv6 socket.
    assert "::ffff:10.1.2.3" in network
    assert "::ffff:11.1.2.3" not in network
    # Another version never matches.
    assert "::a01:203" not in network
    assert "::1" not in values.ipRange("0.0.0.0-255.255.255.255")
    assert "127.0.0.1" not in values.ipRange("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    assert "2001:db8::5" in values.ipRange("2001:db8::/64")


def test_ipRangeContainment():
    everything = values.ipRange("0.0.0.0-255.255.255.255")
    wide = values.ipRange("10.0.0.0/8")
    narrow = values.ipRange("10.1.0.0/16")
    single = values.ipRange("10.1.2.3")
    partial = values.ipRange("10.255.0.0-11.0.0.255")
    outside = values.ipRange("192.168.0.0/16")
    six = values.ipRange("::/0")

    assert everything.contains(wide) and wide.contains(narrow) and narrow.contains(single)
    assert not narrow.contains(wide)
    assert wide.contains(wide)
    assert wide.overlaps(narrow) and narrow.overlaps(wide)
    assert wide.overlaps(partial) and partial.overlaps(wide)
    assert not wide.contains(partial) and not partial.contains(wide)
    assert not wide.overlaps(outside)
    assert not six.overlaps(everything) and not six.contains(single)
    # A range written two ways is the same range.
    assert values.ipRange("10.0.0.0-10.255.255.255").contains(wide)
    assert wide.contains(values.ipRange("10.0.0.0-10.255.255.255"))


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_ipRangeSingleRoundTrip(address):
    parsed = values.ipRange(str(address))
    assert (parsed.version, parsed.first, parsed.last) == (address.version, int(address), int(address))
    assert address in parsed
    assert values.ipRange(str(parsed)) == parsed


@given(st.one_of(st.ip_addresses(v=4, network="0.0.0.0/0"), st.ip_addresses(v=6)), st.data())
def test_ipRangeCIDRRoundTrip(address, data):
    prefix = data.draw(st.integers(0, address.max_prefixlen))
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    parsed = values.ipRange(str(network))
    assert parsed.first == int(network.network_address)
    assert parsed.last == int(network.broadcast_address)
    assert parsed.size == network.num_addresses
    assert address in parsed
    assert values.ipRange(str(parsed)) == parsed


@given(st.data())
def test_ipRangeDashRoundTrip(data):
    version = data.draw(st.sampled_from([4, 6]))
    a, b = data.draw(st.ip_addresses(v=version)), data.draw(st.ip_addresses(v=version))
    low, high = min(a, b), max(a, b)
    parsed = values.ipRange(f"{low}-{high}")
    assert (parsed.first, parsed.last) == (int(low), int(high))
    assert values.ipRange(str(parsed)) == parsed
    probe = data.draw(st.ip_addresses(v=version))
    assert (probe in parsed) == (low <= probe <= high)


def _ranges(version):
    bits = 32 if version == 4 else 128
    return st.tuples(st.integers(0, 2**bits - 1), st.integers(0, 2**bits - 1)).map(
        lambda pair: values.IPRange(version, min(pair), max(pair))
    )


@given(_ranges(4), _ranges(4))
def test_ipRangeRelationsAgree(a, b):
    """
    overlaps and contains agree with the sets of addresses they describe.
    """
    assert a.overlaps(b) == b.overlaps(a)
    assert a.overlaps(b) == (max(a.first, b.first) <= min(a.last, b.last))
    assert a.contains(b) == (a.first <= b.first and b.last <= a.last)
    if a.contains(b):
        assert a.overlaps(b)
        assert a.size >= b.size
    if a.contains(b) and b.contains(a):
        assert (a.first, a.last) == (b.first, b.last)


@given(st.text())
def test_ipRangeAnyText(text):
    anyTextParsesOrRaisesValueError(values.ipRange, text)


# Bindings


@pytest.mark.parametrize(
    "text, host, port, version, wildcard, shown",
    [
        ("127.0.0.1:2525", "127.0.0.1", 2525, 4, False, "127.0.0.1:2525"),
        (" 10.2.3.4:25 ", "10.2.3.4", 25, 4, False, "10.2.3.4:25"),
        ("0.0.0.0:25", "0.0.0.0", 25, 4, True, "0.0.0.0:25"),
        ("[::1]:25", "::1", 25, 6, False, "[::1]:25"),
        ("[::]:587", "::", 587, 6, True, "[::]:587"),
        ("[2001:DB8::0001]:25", "2001:db8::1", 25, 6, False, "[2001:db8::1]:25"),
        ("127.0.0.1:65535", "127.0.0.1", 65535, 4, False, "127.0.0.1:65535"),
        ("127.0.0.1:1", "127.0.0.1", 1, 4, False, "127.0.0.1:1"),
    ],
)
def test_binding(text, host, port, version, wildcard, shown):
    parsed = values.binding(text)
    assert (parsed.host, parsed.port) == (host, port)
    assert parsed.version == version
    assert parsed.isWildcard is wildcard
    assert str(parsed) == shown


@pytest.mark.parametrize(
    "text",
    ["", "127.0.0.1", "127.0.0.1:", ":25", "localhost:25", "::1:25", "[::1]", "[::1]25", "127.0.0.1:25:25", "127.0.0.1:smtp", "127.0.0.1:\uff12\uff15"],
)
def test_bindingRejectsSyntax(text):
    with pytest.raises(ValueError, match="is not IP:port; write e.g. 127.0.0.1:2525 or"):
        values.binding(text)


@pytest.mark.parametrize("text", ["256.0.0.1:25", "1.2.3:25", "[1::2::3]:25", "[12345::]:25"])
def test_bindingRejectsAddress(text):
    with pytest.raises(ValueError, match="is not an IP address"):
        values.binding(text)


@pytest.mark.parametrize("text", ["127.0.0.1:0", "127.0.0.1:65536", "[::1]:99999", "127.0.0.1:00"])
def test_bindingRejectsPort(text):
    with pytest.raises(ValueError, match="is out of range; it must be 1 to 65535"):
        values.binding(text)


def test_bindings():
    parsed = values.bindings("127.0.0.1:2525, [::1]:2525")
    assert parsed == (values.Binding("127.0.0.1", 2525), values.Binding("::1", 2525))
    assert values.bindings("") == ()


def test_bindingMatches():
    specific = values.binding("127.0.0.1:2525")
    assert specific.matches("127.0.0.1", 2525)
    assert specific.matches("::ffff:127.0.0.1", 2525)
    assert not specific.matches("127.0.0.1", 25)
    assert not specific.matches("127.0.0.2", 2525)
    anyFour = values.binding("0.0.0.0:25")
    assert anyFour.matches("10.2.3.4", 25)
    assert anyFour.matches("::ffff:10.2.3.4", 25)
    assert not anyFour.matches("::1", 25)
    anySix = values.binding("[::]:25")
    assert anySix.matches("::1", 25)
    assert not anySix.matches("10.2.3.4", 25)


def test_bindingIPv4MappedIsIPv4():
    parsed = values.binding("[::ffff:127.0.0.1]:2525")
    assert parsed == values.Binding("127.0.0.1", 2525)
    assert parsed.matches("127.0.0.1", 2525)
    assert parsed.matches("::ffff:127.0.0.1", 2525)


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(1, 65535))
def test_bindingRoundTrip(address, port):
    written = str(values.Binding(str(address), port))
    parsed = values.binding(written)
    if getattr(address, "ipv4_mapped", None) is None:
        assert parsed == values.Binding(str(address), port)
        assert str(parsed) == written
    assert parsed.matches(str(address), port)
    assert not parsed.matches(str(address), port % 65535 + 1)


@given(st.text())
def test_bindingAnyText(text):
    anyTextParsesOrRaisesValueError(values.binding, text)


# Address spaces: [Type:]AddressSpace[;Cost]


@pytest.mark.parametrize(
    "text, kind, domain, cost",
    [
        ("*", "SMTP", "*", 1),
        ("contoso.com;10", "SMTP", "contoso.com", 10),
        ("SMTP:*.contoso.com;5", "SMTP", "*.contoso.com", 5),
        ("smtp:Contoso.COM", "SMTP", "contoso.com", 1),
        ("SMTP:contoso.com;1", "SMTP", "contoso.com", 1),
        (" *.com ", "SMTP", "*.com", 1),
        ("'contoso.com;100'", "SMTP", "contoso.com", 100),
        ("contoso.com.", "SMTP", "contoso.com", 1),
        ("*;7", "SMTP", "*", 7),
        ("localhost", "SMTP", "localhost", 1),
        ("X400:c=US;a=;p=Fabrikam;2", "X400", "c=US;a=;p=Fabrikam", 2),
        ("X400:c=US;a=;p=Fabrikam;o=Exchange;", "X400", "c=US;a=;p=Fabrikam;o=Exchange;", 1),
        ("Notes:Fabrikam/Sales", "Notes", "Fabrikam/Sales", 1),
    ],
)
def test_addressSpace(text, kind, domain, cost):
    space = values.addressSpace(text)
    assert (space.type, space.domain, space.cost) == (kind, domain, cost)
    assert space.text == text.strip().strip("'")
    assert space.isSmtp is (kind == "SMTP")


@pytest.mark.parametrize(
    "text, message",
    [
        ("*contoso.com", "not *contoso.com"),
        ("**.com", "a wildcard must be '*' alone"),
        ("fab*.com", "a wildcard must be '*' alone"),
        ("*.*.com", "a wildcard must be '*' alone"),
        ("contoso.*", "a wildcard must be '*' alone"),
        ("*.", "is not an SMTP address space"),
        ("", "is not an SMTP address space"),
        ("contoso..com", "is not an SMTP address space"),
        ("contoso_mail.com", "is not an SMTP address space"),
        ("contoso.com;0", "cost 0 is out of range; it must be 1 to 100"),
        ("contoso.com;101", "cost 101 is out of range"),
        ("contoso.com;", "the cost after ';' must be a whole number 1 to 100"),
        ("contoso.com;ten", "the cost after ';' must be a whole number"),
        ("contoso.com;1;2", "the cost after ';' must be a whole number"),
        ("contoso.com;-1", "the cost after ';' must be a whole number"),
        ("--", "for Edge Transport servers only"),
        ("SM TP:contoso.com", "is not an address type"),
        (":contoso.com", "is not an address type"),
        ("SMTP:contoso.com:25", "is not an SMTP address space"),
        ("X400:;5", "the X400 address space is empty"),
        ("X400:c=US;0", "cost 0 is out of range"),
    ],
)
def test_addressSpaceRejects(text, message):
    with pytest.raises(ValueError) as raised:
        values.addressSpace(text)
    assert message in str(raised.value)


def test_addressSpaceDefaultsAndCanonicalText():
    assert values.AddressSpace() == values.AddressSpace("SMTP", "*", 1, "")
    assert str(values.addressSpace("*")) == "SMTP:*;1"
    assert str(values.addressSpace("Contoso.com;10")) == "SMTP:contoso.com;10"
    assert str(values.addressSpace("x400:c=US;a=;p=Fabrikam;2")) == "x400:c=US;a=;p=Fabrikam;2"


def test_addressSpaces():
    assert [str(s) for s in values.addressSpaces("*;10, contoso.com, 'SMTP:*.fabrikam.com;2'")] == [
        "SMTP:*;10",
        "SMTP:contoso.com;1",
        "SMTP:*.fabrikam.com;2",
    ]
    assert values.addressSpaces("") == ()


@pytest.mark.parametrize(
    "space, domain, matches",
    [
        ("*", "contoso.com", True),
        ("*", "[192.168.1.10]", True),
        ("contoso.com", "contoso.com", True),
        ("contoso.com", "CONTOSO.com.", True),
        ("contoso.com", "sales.contoso.com", False),
        ("contoso.com", "notcontoso.com", False),
        ("*.contoso.com", "contoso.com", True),
        ("*.contoso.com", "sales.contoso.com", True),
        ("*.contoso.com", "a.b.contoso.com", True),
        ("*.contoso.com", "notcontoso.com", False),
        ("*.contoso.com", "contoso.com.au", False),
        ("*.com", "contoso.com", True),
        ("X400:c=US;a=;p=Fabrikam", "contoso.com", False),
    ],
)
def test_addressSpaceMatches(space, domain, matches):
    assert (values.addressSpace(space).specificity(domain) is not None) is matches


def test_addressSpaceSpecificityOrder():
    """
    contoso.com beats *.contoso.com beats *.com beats *, and a longer
    wildcard beats a shorter one.
    """
    order = ["*", "*.com", "*.contoso.com", "contoso.com"]
    ranks = [values.addressSpace(s).specificity("contoso.com") for s in order]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    deeper = ["*", "*.com", "*.contoso.com", "*.sales.contoso.com", "eu.sales.contoso.com"]
    ranks = [values.addressSpace(s).specificity("eu.sales.contoso.com") for s in deeper]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


_labels = st.lists(st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\Z"), min_size=1, max_size=4)


@given(_labels, st.integers(1, 100), st.sampled_from(["", "*.", "SMTP:", "smtp:*."]))
def test_addressSpaceRoundTrip(labels, cost, prefix):
    text = f"{prefix}{'.'.join(labels)};{cost}"
    space = values.addressSpace(text)
    assert space.cost == cost and space.text == text
    again = values.addressSpace(str(space))
    assert (again.type, again.domain, again.cost) == (space.type, space.domain, space.cost)


@given(_labels, _labels)
def test_addressSpaceMostSpecificIsTheLongestMatchingSuffix(labels, extra):
    """
    Of every address space that could match a domain, the most specific
    match is the exact domain, then the longest wildcard suffix.
    """
    domain = ".".join(extra + labels)
    parts = domain.split(".")
    candidates = ["*"] + [f"*.{'.'.join(parts[i:])}" for i in reversed(range(len(parts)))] + [domain]
    spaces = [values.addressSpace(c) for c in candidates]
    ranks = [s.specificity(domain) for s in spaces]
    assert None not in ranks
    # Candidates run from the least to the most specific.
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


@given(st.text())
def test_addressSpaceAnyText(text):
    anyTextParsesOrRaisesValueError(values.addressSpace, text)


@given(st.text(), st.text())
def test_addressSpaceSpecificityOfAnyDomain(text, domain):
    try:
        space = values.addressSpace(text)
    except ValueError:
        return
    rank = space.specificity(domain)
    assert rank is None or isinstance(rank, tuple)


# Smart hosts


@pytest.mark.parametrize(
    "text, host, port, isAddress, shown",
    [
        ("smtpgateway1.contoso.com", "smtpgateway1.contoso.com", None, False, "smtpgateway1.contoso.com"),
        ("SmtpGateway1.Contoso.com.", "smtpgateway1.contoso.com", None, False, "smtpgateway1.contoso.com"),
        ("192.168.1.10", "192.168.1.10", None, True, "192.168.1.10"),
        ("[192.168.1.10]", "192.168.1.10", None, True, "192.168.1.10"),
        ("[::1]", "::1", None, True, "[::1]"),
        ("::1", "::1", None, True, "[::1]"),
        ("2001:DB8::10", "2001:db8::10", None, True, "[2001:db8::10]"),
        ("smtpgateway1.contoso.com:2526", "smtpgateway1.contoso.com", 2526, False, "smtpgateway1.contoso.com:2526"),
        ("192.168.1.10:2526", "192.168.1.10", 2526, True, "192.168.1.10:2526"),
        ("[192.168.1.10]:25", "192.168.1.10", 25, True, "192.168.1.10:25"),
        ("[::1]:2526", "::1", 2526, True, "[::1]:2526"),
        ("localhost:65535", "localhost", 65535, False, "localhost:65535"),
        ("'gateway'", "gateway", None, False, "gateway"),
    ],
)
def test_smartHost(text, host, port, isAddress, shown):
    smartHost = values.smartHost(text)
    assert (smartHost.host, smartHost.port, smartHost.isAddress) == (host, port, isAddress)
    assert str(smartHost) == shown
    assert values.smartHost(str(smartHost)) == smartHost


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "a smart host is empty"),
        ("[smtpgateway1.contoso.com]", "only an IP address goes in brackets"),
        ("[192.168.1.10", "is not a host name or IP address"),
        ("gateway:0", "port 0 is out of range"),
        ("gateway:65536", "port 65536 is out of range"),
        ("gateway:", "is not a port number"),
        ("gateway:smtp", "is not a port number"),
        ("[::1]:", "is not a port number"),
        ("192.168.1.256", "'192.168.1.256' is not an IPv4 address"),
        ("192.168.001.010", "is not an IPv4 address"),
        ("1.2.3", "is not an IPv4 address"),
        ("gateway.123", "all-digit label"),
        ("-gateway.contoso.com", "is not a host name or IP address"),
        ("smtp gateway", "is not a host name or IP address"),
        ("1::2::3", "is not an IPv6 address"),
        ("gateway:25:26", "is not an IPv6 address"),
    ],
)
def test_smartHostRejects(text, message):
    with pytest.raises(ValueError) as raised:
        values.smartHost(text)
    assert message in str(raised.value)


def test_smartHosts():
    assert values.smartHosts("a.contoso.com, [10.0.0.1]:26 ,b.contoso.com") == (
        values.SmartHost("a.contoso.com"),
        values.SmartHost("10.0.0.1", 26),
        values.SmartHost("b.contoso.com"),
    )
    assert values.smartHosts("") == ()


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.one_of(st.none(), st.integers(1, 65535)))
def test_smartHostAddressRoundTrip(address, port):
    text = f"[{address}]" + ("" if port is None else f":{port}")
    smartHost = values.smartHost(text)
    assert (smartHost.host, smartHost.port, smartHost.isAddress) == (str(address), port, True)
    assert values.smartHost(str(smartHost)) == smartHost


@given(_labels, st.one_of(st.none(), st.integers(1, 65535)))
def test_smartHostNameRoundTrip(labels, port):
    assume(not labels[-1].isdigit())
    name = ".".join(labels)
    smartHost = values.smartHost(name + ("" if port is None else f":{port}"))
    assert (smartHost.host, smartHost.port, smartHost.isAddress) == (name, port, False)
    assert values.smartHost(str(smartHost)) == smartHost


@given(st.text())
def test_smartHostAnyText(text):
    anyTextParsesOrRaisesValueError(values.smartHost, text)


# DNS servers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("192.168.1.53", ("192.168.1.53", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[127.0.0.1]:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_dnsServer(text, expected):
    assert values.dnsServer(text) == expected


@pytest.mark.parametrize("text", ["", "dns.contoso.com", "dns.contoso.com:53", "127.0.0.1:0", "1.2.3", "127.0.0.1:", "[::1]:x"])
def test_dnsServerRejects(text):
    with pytest.raises(ValueError, match="is not a DNS server's IP address"):
        values.dnsServer(text)


def test_dnsServers():
    assert values.dnsServers("10.0.0.53, [::1]:5353") == (("10.0.0.53", 53), ("::1", 5353))
    assert values.dnsServers("") == ()


@given(st.text())
def test_dnsServerAnyText(text):
    anyTextParsesOrRaisesValueError(values.dnsServer, text)


# Credential names


@pytest.mark.parametrize("text", ["ToInternetGateway", "smtpgateway@contoso.com", "a", "gw-1.relay_2+x", " gw "])
def test_credentialName(text):
    assert values.credentialName(text) == text.strip()


@pytest.mark.parametrize("text", ["", "-gw", ".gw", "gw:1", "gw 1", "Pa55 word", "gw#", "é", "a" * 129])
def test_credentialNameRejects(text):
    with pytest.raises(ValueError, match="is not a credential name"):
        values.credentialName(text)


@given(st.text())
def test_credentialNameAnyText(text):
    anyTextParsesOrRaisesValueError(values.credentialName, text)
