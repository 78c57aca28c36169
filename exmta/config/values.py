"""
Parsers for the value syntaxes of Exchange parameters.

Each parser takes the raw string and returns a typed value or raises
L{ValueError} with a message saying what would be right; the loader adds
the file, line, section and key.
"""

import ipaddress
import re
from dataclasses import dataclass
from fractions import Fraction

UNLIMITED = None

_TRUE = {"$true", "true", "yes", "on", "1"}
_FALSE = {"$false", "false", "no", "off", "0"}


def boolean(text):
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean; use $true or $false")


def commaList(text):
    """
    A Shell-style comma list; quotes around items are dropped.
    """
    items = [item.strip().strip("'\"").strip() for item in text.split(",")]
    return tuple(item for item in items if item)


def integer(low, high, unlimited=False):
    def parse(text):
        stripped = text.strip()
        if unlimited and stripped.lower() == "unlimited":
            return UNLIMITED
        try:
            number = int(stripped.replace(",", ""))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a whole number"
                + (" or 'unlimited'" if unlimited else "")
            ) from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range; it must be {low} to {high}")
        return number

    return parse


_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_SIZE = re.compile(
    r"^\s*([\d.,]+)\s*([kmg]?b?)\s*(\(.*\))?\s*$", re.IGNORECASE | re.ASCII
)


def byteSize(low, high, unlimited=False):
    """
    A size as Exchange writes it: C{10MB}, C{10 MB}, C{10485760},
    C{10 MB (10,485,760 bytes)}, or C{unlimited} where allowed.
    """

    def parse(text):
        if unlimited and text.strip().lower() == "unlimited":
            return UNLIMITED
        match = _SIZE.match(text)
        if not match:
            raise ValueError(
                f"{text!r} is not a size; write e.g. 10MB, 64KB or 10485760"
                + (" or unlimited" if unlimited else "")
            )
        number, unit = match.group(1).replace(",", ""), match.group(2).lower()
        if unit and not unit.endswith("b"):
            unit += "b"
        try:
            # Exact arithmetic: float() overflows (OverflowError) on long
            # digit strings and loses whole bytes above 2**53.
            size = int(Fraction(number) * _UNITS[unit])
        except (ValueError, KeyError):
            raise ValueError(f"{text!r} is not a size; write e.g. 10MB") from None
        if not low <= size <= high:
            raise ValueError(
                f"{size} bytes is out of range; it must be {low} to {high} bytes"
            )
        return size

    return parse


_TIMESPAN = re.compile(
    r"^\s*(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?\s*$", re.ASCII
)


def timespan(low, high):
    """
    A .NET TimeSpan as the Shell takes it: C{[d.]hh:mm:ss}, in seconds.
    """

    def parse(text):
        match = _TIMESPAN.match(text)
        if not match:
            raise ValueError(
                f"{text!r} is not a time span; write [days.]hh:mm:ss, e.g. 00:05:00"
            )
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(f"{text!r} has hours above 23 or minutes/seconds above 59")
        total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
        if not low <= total <= high:
            raise ValueError(
                f"{text!r} is out of range; it must be {formatTimespan(low)} "
                f"to {formatTimespan(high)}"
            )
        return total

    return parse


def formatTimespan(seconds):
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02}:{minutes:02}:{secs:02}"
    return f"{days}.{text}" if days else text


def flags(allowed):
    """
    A comma list of values from C{allowed}, matched case-insensitively and
    returned in their canonical spelling.
    """
    canonical = {value.lower(): value for value in allowed}

    def parse(text):
        chosen = []
        for item in commaList(text):
            value = canonical.get(item.lower())
            if value is None:
                raise ValueError(
                    f"{item!r} is not one of: {', '.join(allowed)}"
                )
            chosen.append(value)
        return frozenset(chosen)

    return parse


def choice(allowed):
    canonical = {value.lower(): value for value in allowed}

    def parse(text):
        value = canonical.get(text.strip().lower())
        if value is None:
            raise ValueError(f"{text!r} is not one of: {', '.join(allowed)}")
        return value

    return parse


# ASCII: with IGNORECASE alone, [a-z] also matches U+212A KELVIN SIGN and
# U+017F LATIN SMALL LETTER LONG S.  fullmatch: "$" would let a "\n" through.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE | re.ASCII)


def fqdn(text):
    name = text.strip().rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(p) for p in name.split(".")):
        raise ValueError(f"{text!r} is not a valid host name, e.g. mail.fabrikam.com")
    return name


def domain(text):
    """
    A domain name, optionally C{*.}-prefixed (a domain and its subdomains).
    """
    stripped = text.strip().lower()
    wildcard = stripped.startswith("*.")
    name = fqdn(stripped[2:] if wildcard else stripped)
    return ("*." if wildcard else "") + name


@dataclass(frozen=True, order=True)
class IPRange:
    """
    An inclusive range of addresses of one IP version, as Exchange's
    RemoteIPRanges holds them: a single address, C{a-b}, or CIDR.
    """

    version: int
    first: int
    last: int
    text: str = ""

    @property
    def size(self):
        return self.last - self.first + 1

    def __contains__(self, address):
        address = ipaddress.ip_address(address)
        if address.version == 6 and address.ipv4_mapped and self.version == 4:
            address = address.ipv4_mapped
        return address.version == self.version and self.first <= int(address) <= self.last

    def overlaps(self, other):
        return (
            self.version == other.version
            and self.first <= other.last
            and other.first <= self.last
        )

    def contains(self, other):
        return (
            self.version == other.version
            and self.first <= other.first
            and other.last <= self.last
        )

    def __str__(self):
        return self.text


def ipRange(text):
    item = text.strip()
    try:
        if "/" in item:
            network = ipaddress.ip_network(item, strict=False)
            return IPRange(
                network.version,
                int(network.network_address),
                int(network.broadcast_address),
                item,
            )
        if "-" in item:
            low, high = (ipaddress.ip_address(p.strip()) for p in item.split("-", 1))
        else:
            low = high = ipaddress.ip_address(item)
    except ValueError:
        raise ValueError(
            f"{item!r} is not an IP address, a range a-b, or a CIDR block a/n"
        ) from None
    if low.version != high.version:
        raise ValueError(f"{item!r} mixes IPv4 and IPv6")
    if int(low) > int(high):
        raise ValueError(f"{item!r} runs backwards; write the lower address first")
    return IPRange(low.version, int(low), int(high), item)


def ipRanges(text):
    return tuple(ipRange(item) for item in commaList(text))


@dataclass(frozen=True)
class Binding:
    """
    A local IP:port a receive connector listens on; C{0.0.0.0} and C{::}
    mean every address of that IP version.
    """

    host: str
    port: int

    @property
    def version(self):
        return ipaddress.ip_address(self.host).version

    @property
    def isWildcard(self):
        return ipaddress.ip_address(self.host).is_unspecified

    def matches(self, host, port):
        if port != self.port:
            return False
        address = ipaddress.ip_address(host)
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if self.isWildcard:
            return address.version == self.version
        return address == ipaddress.ip_address(self.host)

    def __str__(self):
        return f"[{self.host}]:{self.port}" if self.version == 6 else f"{self.host}:{self.port}"


def binding(text):
    item = text.strip()
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)", item, re.ASCII) or re.fullmatch(
        r"([0-9.]+):(\d+)", item, re.ASCII
    )
    if not match:
        raise ValueError(
            f"{item!r} is not IP:port; write e.g. 127.0.0.1:2525 or [::1]:2525"
        )
    try:
        address = ipaddress.ip_address(match.group(1))
    except ValueError:
        raise ValueError(f"{match.group(1)!r} is not an IP address") from None
    # [::ffff:a.b.c.d] is the IPv4 address a.b.c.d, which is how matches()
    # sees the local address of such a connection.
    host = str(getattr(address, "ipv4_mapped", None) or address)
    port = int(match.group(2))
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range; it must be 1 to 65535")
    return Binding(host, port)


def bindings(text):
    return tuple(binding(item) for item in commaList(text))
