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


_PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


def pluginName(text):
    """
    The name of a plugin (a credential checker, a delivery agent), as its
    factory's C{name} spells it.
    """
    name = text.strip().strip("'\"").strip()
    if not _PLUGIN_NAME.fullmatch(name):
        raise ValueError(f"{text!r} is not a plugin name (letters, digits, '.', '_', '-')")
    return name


def pluginNames(text):
    """
    A comma list of plugin names, each once, at least one.
    """
    names = tuple(pluginName(item) for item in commaList(text))
    if not names:
        raise ValueError("is empty; name at least one plugin")
    seen = set()
    for name in names:
        if name.lower() in seen:
            raise ValueError(f"names {name} twice")
        seen.add(name.lower())
    return names


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


def onlyDefault(default, why):
    """
    A parameter of Exchange's that exmta cannot honour: it takes only
    Exchange's default, C{default} as org.ini writes it (C{$false},
    C{$null}, C{None}), so scripts that set the default run.

    @param why: why exmta has nothing else, said when another value is given.
    """

    def same(text):
        lowered = text.strip().strip("'\"").lower()
        if default == "$null":
            return lowered in ("", "$null")
        if default == "$false":
            return lowered in _FALSE
        return lowered == default.lower()

    def parse(text):
        if not same(text):
            raise ValueError(f"{text.strip()!r}: not supported on exmta: {why}")
        return None

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


def ipAddress(text):
    """
    One IPv4 or IPv6 address, as text in its compressed form.
    """
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not an IP address, e.g. 192.0.2.25") from None


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


@dataclass(frozen=True)
class AddressSpace:
    """
    One entry of a send connector's AddressSpaces, C{[Type:]AddressSpace[;Cost]}.

    @ivar type: C{SMTP}, or another address type (C{X400}, any text), which
        a Hub Transport server accepts but which only smart hosts can route
        and which no SMTP recipient matches.
    @ivar domain: for SMTP, C{*} (every domain), a domain (C{contoso.com}) or
        C{*.contoso.com} (contoso.com and every subdomain of it), lower-case;
        for other types, the address space as written.
    @ivar cost: 1-100; among equally specific matches the lowest wins.
    @ivar text: the entry as written in org.ini.
    """

    type: str = "SMTP"
    domain: str = "*"
    cost: int = 1
    text: str = ""

    @property
    def isSmtp(self):
        return self.type == "SMTP"

    def specificity(self, domain):
        """
        How closely this address space matches the recipient domain
        C{domain}.

        @return: L{None} if it does not match; else a value that compares
            greater the more specific the match is, for one C{domain}: the
            number of labels matched, exact beating wildcard on a tie.  So
            C{contoso.com} beats C{*.contoso.com} (which matches contoso.com
            too) beats C{*.com} beats C{*}.
        """
        if not self.isSmtp:
            return None
        domain = domain.strip().lower().rstrip(".")
        if self.domain == "*":
            return (0, False)
        if self.domain.startswith("*."):
            suffix = self.domain[2:]
            if domain == suffix or domain.endswith("." + suffix):
                return (suffix.count(".") + 1, False)
            return None
        if domain == self.domain:
            return (self.domain.count(".") + 1, True)
        return None

    def __str__(self):
        """
        The canonical form, as Get-SendConnector shows it: C{SMTP:*;1}.
        """
        return f"{self.type}:{self.domain};{self.cost}"


_ADDRESS_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*", re.ASCII)


def _cost(text, item):
    if not re.fullmatch(r"\d{1,6}", text.strip(), re.ASCII):
        raise ValueError(f"{item!r}: the cost after ';' must be a whole number 1 to 100")
    cost = int(text)
    if not 1 <= cost <= 100:
        raise ValueError(f"{item!r}: cost {cost} is out of range; it must be 1 to 100")
    return cost


def addressSpace(text):
    """
    Parse C{[Type:]AddressSpace[;Cost]}: C{*}, C{contoso.com;10},
    C{SMTP:*.contoso.com;5}, C{X400:c=US;a=;p=Fabrikam;2}.
    """
    item = text.strip().strip("'\"").strip()
    kind = "SMTP"
    space = item
    head, colon, rest = item.partition(":")
    if colon:
        if not _ADDRESS_TYPE.fullmatch(head.strip()):
            raise ValueError(
                f"{item!r}: {head.strip()!r} is not an address type; write e.g. SMTP:contoso.com"
            )
        kind = head.strip()
        space = rest.strip()
        if kind.upper() == "SMTP":
            kind = "SMTP"
    if kind != "SMTP":
        # Other address types (X.400's c=US;a=;p=...) use ';' themselves:
        # only a final all-digit part is a cost.
        body, semicolon, last = space.rpartition(";")
        cost = 1
        if semicolon and re.fullmatch(r"\s*\d+\s*", last, re.ASCII):
            cost, space = _cost(last, item), body.strip()
        if not space:
            raise ValueError(f"{item!r}: the {kind} address space is empty")
        return AddressSpace(kind, space, cost, item)
    body, semicolon, last = space.partition(";")
    cost = _cost(last, item) if semicolon else 1
    name = body.strip().lower()
    if name == "--":
        raise ValueError(
            f"{item!r}: '--' (all accepted domains) is for Edge Transport servers only"
        )
    if name != "*":
        if "*" in name.lstrip("*") or (name.startswith("*") and not name.startswith("*.")):
            raise ValueError(
                f"{item!r} is not an SMTP address space; a wildcard must be '*' alone "
                "or a '*.' prefix, e.g. *.contoso.com (not *contoso.com)"
            )
        try:
            name = domain(name)
        except ValueError:
            raise ValueError(
                f"{item!r} is not an SMTP address space; write *, contoso.com or "
                "*.contoso.com, optionally with ;cost"
            ) from None
    return AddressSpace("SMTP", name, cost, item)


def addressSpaces(text):
    return tuple(addressSpace(item) for item in commaList(text))


@dataclass(frozen=True)
class SmartHost:
    """
    One of a send connector's SmartHosts: a host name or IP address, and
    the port if one is given (else the connector's Port applies).
    """

    host: str
    port: int | None = None

    @property
    def isAddress(self):
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _port(text, item):
    if not re.fullmatch(r"\d{1,5}", text, re.ASCII):
        raise ValueError(f"{item!r}: {text!r} is not a port number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{item!r}: port {port} is out of range; it must be 1 to 65535")
    return port


def _hostAndPort(item):
    """
    Split C{item} into an IP address or host name and an optional port:
    C{name}, C{name:port}, C{1.2.3.4[:port]}, C{[1.2.3.4][:port]},
    C{[::1][:port]} or a bare C{::1} (which cannot take a port).

    @return: (host, port or L{None}, whether host is an IP address)
    """
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", item, re.ASCII | re.DOTALL)
    if bracketed:
        try:
            address = ipaddress.ip_address(bracketed.group(1))
        except ValueError:
            raise ValueError(
                f"{item!r}: only an IP address goes in brackets, e.g. [192.168.1.10]"
            ) from None
        port = bracketed.group(2)
        return str(address), None if port is None else _port(port, item), True
    if item.count(":") > 1:
        try:
            return str(ipaddress.IPv6Address(item)), None, True
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IPv6 address; write an IPv6 address with a "
                "port as [::1]:25"
            ) from None
    host, colon, port = item.partition(":")
    port = _port(port, item) if colon else None
    try:
        return str(ipaddress.IPv4Address(host)), port, True
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", host, re.ASCII):
        raise ValueError(f"{item!r}: {host!r} is not an IPv4 address")
    try:
        name = fqdn(host).lower()
    except ValueError:
        raise ValueError(
            f"{item!r} is not a host name or IP address, e.g. smtpgateway1.contoso.com, "
            "192.168.1.10 or [::1], optionally with :port"
        ) from None
    if name.rpartition(".")[2].isdigit():
        raise ValueError(f"{item!r}: a host name cannot end in an all-digit label")
    return name, port, False


def smartHost(text):
    """
    Parse a smart host: C{smtpgateway1.contoso.com}, C{192.168.1.10},
    C{[192.168.1.10]}, C{[::1]}, C{::1}, each but the bare IPv6 address
    optionally followed by C{:port}.
    """
    item = text.strip().strip("'\"").strip()
    if not item:
        raise ValueError("a smart host is empty")
    host, port, _ = _hostAndPort(item)
    return SmartHost(host, port)


def smartHosts(text):
    return tuple(smartHost(item) for item in commaList(text))


def dnsServer(text):
    """
    Parse a DNS server for InternalDNSServers/ExternalDNSServers: an IP
    address with an optional port (C{192.168.1.1}, C{127.0.0.1:5353},
    C{[::1]:53}, C{::1}).

    @return: C{(host, port)}, port 53 unless given.
    """
    item = text.strip().strip("'\"").strip()
    try:
        host, port, isAddress = _hostAndPort(item)
    except ValueError:
        isAddress = False
    if not isAddress:
        raise ValueError(
            f"{item!r} is not a DNS server's IP address, e.g. 192.168.1.1, "
            "127.0.0.1:5353 or [::1]:53"
        )
    return (host, 53 if port is None else port)


def dnsServers(text):
    return tuple(dnsServer(item) for item in commaList(text))


_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}", re.ASCII)


def credentialName(text):
    """
    The name of an entry in the credential store (a send connector's
    AuthenticationCredential): letters, digits and C{. _ @ + -}, starting
    with a letter or digit, at most 128 characters.  Never a password.
    """
    name = text.strip()
    if not _CREDENTIAL_NAME.fullmatch(name):
        raise ValueError(
            f"{text!r} is not a credential name; use letters, digits and . _ @ + -, "
            "e.g. ToInternetGateway (the name of an entry made with "
            "'exmta credential set', never a password)"
        )
    return name
