"""
The AddressRewrite transport agent, after Exchange's Address Rewriting
agents (New-AddressRewriteEntry -InternalAddress -ExternalAddress): the
organization's internal addresses are shown to the outside world as
external ones, and mail to the external ones reaches the internal mailboxes.

    [TransportAgent AddressRewrite]
    Priority = 10
    AddressRewriteEntries = john@corp.fabrikam.com -> john.smith@fabrikam.com, corp.fabrikam.com -> fabrikam.com, *.fabrikam.com -> fabrikam.com, fabrikam.net -> fabrikam.com
    OutboundOnly = fabrikam.net

Each entry is C{InternalAddress -> ExternalAddress}, one of:

  - an address to an address: that address only;
  - a domain to a domain: every address of that domain, local part kept;
  - C{*.domain} to a domain: every address of every subdomain of that
    domain (not of the domain itself), local part kept.

An address entry wins over a domain entry, a domain entry over a wildcard,
and a longer wildcard over a shorter one.  Addresses and domains match
without regard to case.

Outbound, at OnRoutedMessage to a send connector (not for local delivery,
nor for a forward to the connector's source server, which rewrites when it
sends): the addresses in the From, Sender, Reply-To, To and Cc fields are
rewritten internal to external, for this send attempt.  Display names,
comments, folding and everything else in the message are kept byte for
byte.  The envelope (MAIL FROM, RCPT TO) is not rewritten.

Inbound, at OnResolvedMessage: a recipient at an external address is
redirected to the internal one, so mail to john@fabrikam.com reaches
john@corp.fabrikam.com's mailbox.  This runs after the receive side checked
the recipient, so the external addresses must pass that check: their
domain is an InternalRelay (or ExternalRelay) accepted domain, or a mailbox
owns them.  Wildcard entries, and the entries listed in OutboundOnly (by
their InternalAddress), work outbound only; as in Exchange, two entries that
work inbound may not share an ExternalAddress, since the way back would be
ambiguous.
"""

from dataclasses import dataclass

from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.agents import Verdict
from exmta.config.values import commaList, domain as domainName
from exmta.errors import SettingError
from exmta.interfaces import IAgentFactory, IRoutingAgent
from exmta.message.address import AddressError, parseMailbox
from exmta.message.header import fieldName, fields, splitHeader

ADDRESS_FIELDS = frozenset((b"from", b"sender", b"reply-to", b"to", b"cc"))
# A forward to another TransportServer that sends through the connector:
# that server rewrites.
_WITHIN_SITE = "SmtpRelayWithinAdSite"
KEYS = ("AddressRewriteEntries", "OutboundOnly")


@dataclass(frozen=True)
class AddressRewriteEntry:
    """
    One C{internal -> external} mapping, lower case.

    @ivar internal: C{local@domain}, C{domain} or C{*.domain}.
    @ivar external: C{local@domain} (for an address) or C{domain}.
    """

    internal: str
    external: str
    outboundOnly: bool = False

    @property
    def isAddress(self):
        return "@" in self.internal

    @property
    def isWildcard(self):
        return self.internal.startswith("*.")


class AddressMap:
    """
    The entries, indexed for both directions.
    """

    def __init__(self, entries):
        self._outboundAddresses = {e.internal: e.external for e in entries if e.isAddress}
        self._outboundDomains = {
            e.internal: e.external for e in entries if not e.isAddress and not e.isWildcard
        }
        # Longest first, so the most specific wildcard wins.
        self._outboundWildcards = sorted(
            ((e.internal[1:], e.external) for e in entries if e.isWildcard),
            key=lambda pair: -len(pair[0]),
        )
        inbound = [e for e in entries if not e.outboundOnly and not e.isWildcard]
        self._inboundAddresses = {e.external: e.internal for e in inbound if e.isAddress}
        self._inboundDomains = {e.external: e.internal for e in inbound if not e.isAddress}

    def outbound(self, local, domain):
        """
        @return: the external C{(local, domain)} for an internal address, or
            L{None} if no entry maps it.
        """
        domain = domain.lower()
        address = self._outboundAddresses.get(f"{local.lower()}@{domain}")
        if address is not None:
            return tuple(address.rsplit("@", 1))
        external = self._outboundDomains.get(domain)
        if external is None:
            external = next(
                (e for suffix, e in self._outboundWildcards if domain.endswith(suffix)), None
            )
        return None if external is None else (local, external)

    def inbound(self, address):
        """
        @return: the internal address (str) for an external one, or L{None}.
        """
        local, _, domain = address.rpartition("@")
        domain = domain.lower()
        internal = self._inboundAddresses.get(f"{local.lower()}@{domain}")
        if internal is not None:
            return internal
        internal = self._inboundDomains.get(domain)
        return None if internal is None else f"{local}@{internal}"


@implementer(IRoutingAgent)
class AddressRewriteAgent:
    def __init__(self, addressMap):
        self.addressMap = addressMap

    def OnResolvedMessage(self, event):
        redirected = {}
        for address in event.recipients:
            internal = self.addressMap.inbound(address)
            if internal is not None:
                redirected[address] = (internal,)
        return Verdict.continue_(recipients=redirected or None)

    def OnRoutedMessage(self, event):
        nextHop = event.nextHop
        if event.message is None or nextHop is None or nextHop.deliveryType == _WITHIN_SITE:
            return Verdict.continue_()
        rewritten = rewriteHeader(event.message, self.addressMap)
        return Verdict.continue_(message=None if rewritten is event.message else rewritten)


def rewriteHeader(message, addressMap):
    """
    @return: C{message} with the addresses of its address fields mapped
        outbound; the same bytes where nothing maps.
    """
    header, rest = splitHeader(message)
    out = []
    changed = False
    for field in fields(header):
        if fieldName(field) in ADDRESS_FIELDS:
            name, value = field.split(b":", 1)
            text = value.decode("utf-8", "surrogateescape")
            rewritten = rewriteAddresses(text, addressMap)
            if rewritten != text:
                field = name + b":" + rewritten.encode("utf-8", "surrogateescape")
                changed = True
        out.append(field + b"\r\n")
    return b"".join(out) + rest if changed else message


def rewriteAddresses(value, addressMap):
    """
    @param value: an address-list field's value (RFC 5322 section 3.4),
        possibly folded.
    @return: C{value} with each addr-spec that C{addressMap} maps replaced in
        place; everything around it (display names, comments, spacing) as
        it was.
    """
    pieces = []
    done = 0
    for spec in addrSpecs(value):
        mapped = addressMap.outbound(spec.local, spec.domain)
        if mapped is None:
            continue
        local, domain = mapped
        if local == spec.local:
            pieces += [value[done : spec.domainStart], domain]
        else:
            pieces += [value[done : spec.localStart], f"{local}@{domain}"]
        done = spec.end
    return "".join(pieces) + value[done:]


@dataclass(frozen=True)
class AddrSpec:
    """
    An addr-spec found in a field value: its local part and domain (CFWS
    removed) and where they are.
    """

    local: str
    domain: str
    localStart: int
    domainStart: int
    end: int


_SPECIALS = '()<>[]:;@\\,."'
_WHITESPACE = " \t\r\n"


def _tokens(value):
    """
    The lexical tokens of an address-list, without whitespace and comments:
    C{(kind, text, start, end)} where kind is C{word} (an atom or a quoted
    string), C{literal} (a domain literal) or the special character itself.
    """
    index, length = 0, len(value)
    while index < length:
        char = value[index]
        start = index
        if char in _WHITESPACE:
            index += 1
            continue
        if char == "(":
            depth = 0
            while index < length:
                if value[index] == "\\":
                    index += 1
                elif value[index] == "(":
                    depth += 1
                elif value[index] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                index += 1
            index += 1
            continue
        if char in '"[':
            close = '"' if char == '"' else "]"
            index += 1
            while index < length and value[index] != close:
                index += 2 if value[index] == "\\" else 1
            index += 1
            end = min(index, length)
            yield ("word" if char == '"' else "literal", value[start:end], start, end)
            continue
        if char in _SPECIALS:
            index += 1
            yield (char, char, start, index)
            continue
        while index < length and value[index] not in _SPECIALS and value[index] not in _WHITESPACE:
            index += 1
        yield ("word", value[start:index], start, index)


def addrSpecs(value):
    """
    @return: the L{AddrSpec}s of an address-list field value, in order.
        Route domains (C{<@a,@b:x@y>}), which have no local part, and
        domain literals are not included.
    """
    tokens = list(_tokens(value))
    found = []
    for at, token in enumerate(tokens):
        if token[0] != "@":
            continue
        first = at - 1
        if first < 0 or tokens[first][0] != "word":
            continue
        while first >= 2 and tokens[first - 1][0] == "." and tokens[first - 2][0] == "word":
            first -= 2
        last = at + 1
        if last >= len(tokens) or tokens[last][0] != "word":
            continue
        while last + 2 < len(tokens) and (tokens[last + 1][0], tokens[last + 2][0]) == (".", "word"):
            last += 2
        found.append(
            AddrSpec(
                local=".".join(t[1] for t in tokens[first:at:2]),
                domain=".".join(t[1] for t in tokens[at + 1 : last + 1 : 2]),
                localStart=tokens[first][2],
                domainStart=tokens[at + 1][2],
                end=tokens[last][3],
            )
        )
    return found


def _side(text, item, allowWildcard):
    """
    One side of an entry: an address, a domain, or (internal side only) a
    C{*.domain}; lower case.
    """
    if "@" in text:
        try:
            address = parseMailbox(text)
        except AddressError:
            raise ValueError(f"{text!r} in {item!r} is not an address") from None
        return f"{address.localPart.lower()}@{address.domain}"
    try:
        name = domainName(text)
    except ValueError:
        raise ValueError(f"{text!r} in {item!r} is neither an address nor a domain") from None
    if name.startswith("*.") and not allowWildcard:
        raise ValueError(f"{item!r}: an ExternalAddress cannot be a wildcard")
    return name


def parseEntries(text):
    """
    @return: the L{AddressRewriteEntry}s of an AddressRewriteEntries value.
    @raise ValueError: an entry is not C{internal -> external} of one kind.
    """
    entries = []
    seen = set()
    for item in commaList(text):
        internal, arrow, external = item.partition("->")
        if not arrow:
            raise ValueError(f"{item!r} is not InternalAddress -> ExternalAddress")
        entry = AddressRewriteEntry(
            _side(internal.strip(), item, True), _side(external.strip(), item, False)
        )
        if entry.isAddress != ("@" in entry.external):
            raise ValueError(f"{item!r}: map an address to an address, or a domain to a domain")
        if entry.internal in seen:
            raise ValueError(f"{internal.strip()!r} has two entries")
        seen.add(entry.internal)
        entries.append(entry)
    if not entries:
        raise ValueError(
            "AddressRewriteEntries needs at least one InternalAddress -> ExternalAddress"
        )
    return entries


@implementer(IPlugin, IAgentFactory)
class AddressRewrite:
    name = "AddressRewrite"

    def makeAgent(self, settings, organization, reactor):
        entriesKey = outboundKey = None
        for key in settings:
            if key.lower() == "addressrewriteentries":
                entriesKey = key
            elif key.lower() == "outboundonly":
                outboundKey = key
            else:
                raise SettingError(
                    key, "unknown key for AddressRewrite; known keys are: " + ", ".join(KEYS)
                )
        if entriesKey is None:
            raise ValueError("AddressRewrite needs AddressRewriteEntries")
        try:
            entries = parseEntries(settings[entriesKey])
        except ValueError as error:
            raise SettingError(entriesKey, str(error)) from None
        if outboundKey is not None:
            entries = _markOutboundOnly(entries, settings[outboundKey], outboundKey)
        _checkWayBack(entries, entriesKey, outboundKey or "OutboundOnly")
        return AddressRewriteAgent(AddressMap(entries))


def _markOutboundOnly(entries, text, key):
    byInternal = {entry.internal: entry for entry in entries}
    chosen = set()
    for item in commaList(text):
        lowered = item.lower()
        if lowered not in byInternal:
            raise SettingError(key, f"{item!r} is not the InternalAddress of an entry")
        chosen.add(lowered)
    return [
        AddressRewriteEntry(e.internal, e.external, e.internal in chosen) for e in entries
    ]


def _checkWayBack(entries, entriesKey, outboundKey):
    inbound = {}
    for entry in entries:
        if entry.outboundOnly or entry.isWildcard:
            continue
        other = inbound.get(entry.external)
        if other is not None:
            raise SettingError(
                entriesKey,
                f"{other.internal} and {entry.internal} both map to {entry.external}, so mail "
                f"to {entry.external} could go to either; list all but one in {outboundKey}",
            )
        inbound[entry.external] = entry


addressRewrite = AddressRewrite()
