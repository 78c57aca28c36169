"""
Parsing of the MAIL and RCPT command arguments (RFC 5321 section 4.1.2).

Strict where strictness protects routing: a path has exactly one mailbox,
a source route is parsed and dropped (RFC 5321 section 3.3 says servers
SHOULD ignore it), and a local part is kept in its wire form, so
C{"user@elsewhere"@fabrikam.com} and C{user%elsewhere@fabrikam.com} stay
local parts of fabrikam.com and are never taken as relay addresses.
"""

import re

from exmta.envelope import Address

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_LITERAL = r"\[(?:[0-9.]+|IPv6:[0-9A-Fa-f:.]+)\]"
_MAILBOX = re.compile(
    rf"^(?P<local>{_DOT_STRING}|{_QUOTED_STRING})@(?P<domain>{_DOMAIN}|{_LITERAL})$"
)
_ROUTE = re.compile(rf"^@{_DOMAIN}(?:,@{_DOMAIN})*:")
_PARAMETER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?$")


class AddressError(ValueError):
    """
    The argument is not a valid path or parameter list.
    """


# Exchange's longest address under LongAddressesEnabled (XLONGADDR), for
# X.400 addresses encapsulated in SMTP.
LONG_ADDRESS_LIMIT = 1860


# RFC 6531 section 3.3: local parts may hold UTF-8 beyond ASCII (C1
# controls excepted); domains may be U-labels, kept as A-labels.
_UTF8 = r"[^\x00-\x9f]"
_UTF8_ATEXT = rf"(?:{_ATEXT}|{_UTF8})"
_UTF8_LOCAL = re.compile(
    rf"{_UTF8_ATEXT}+(?:\.{_UTF8_ATEXT}+)*|\"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|{_UTF8}|\\[\x20-\x7e])*\""
)


def _internationalized(text, longAddresses):
    local, at, domain = text.rpartition("@")
    if not at or not _UTF8_LOCAL.fullmatch(local):
        raise AddressError(text)
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise AddressError(text) from None
    # The domain, now ASCII, must be one as for any address.
    address = parseMailbox("x@" + domain)
    if len(local.encode("utf-8")) > 64 and not longAddresses:
        raise AddressError(text)
    return Address(local, address.domain)


def parseMailbox(text, longAddresses=False, utf8=False):
    """
    @param longAddresses: allow a local part longer than RFC 5321's 64
        octets, the address up to L{LONG_ADDRESS_LIMIT}.
    @param utf8: allow an internationalized address (RFC 6531): UTF-8 in
        the local part, U-labels in the domain, which becomes its A-labels.
    @return: the L{Address} of C{local@domain}.
    @raise AddressError: if C{text} is not exactly one mailbox.
    """
    if utf8 and not text.isascii():
        return _internationalized(text, longAddresses)
    match = _MAILBOX.match(text)
    if match is None or len(match.group("domain")) > 255:
        raise AddressError(text)
    if len(match.group("local")) > 64 and not (longAddresses and len(text) <= LONG_ADDRESS_LIMIT):
        raise AddressError(text)
    return Address(match.group("local"), match.group("domain").lower())


def parsePath(argument, keyword, allowNull, longAddresses=False, utf8=False):
    """
    Parse C{FROM:<path> params} or C{TO:<path> params}.

    @param keyword: C{"FROM"} or C{"TO"}.
    @param allowNull: whether C{<>} is allowed (reverse paths only).
    @param longAddresses: see L{parseMailbox}.
    @param utf8: see L{parseMailbox}.
    @return: (L{Address}, {PARAMETER: value or None}) with upper-case
        parameter names.
    @raise AddressError: on any syntax error.
    """
    head, colon, rest = argument.partition(":")
    if not colon or head.strip().upper() != keyword:
        raise AddressError(argument)
    rest = rest.lstrip(" ")
    if rest.startswith("<"):
        end = _closingBracket(rest)
        path, parameterText = rest[1:end], rest[end + 1 :]
        if parameterText and not parameterText.startswith(" "):
            raise AddressError(argument)
    else:
        path, _, parameterText = rest.partition(" ")
    if not path:
        if not allowNull or not rest.startswith("<"):
            raise AddressError(argument)
        address = Address("", "")
    else:
        route = _ROUTE.match(path)
        if route is not None:
            path = path[route.end() :]
        address = parseMailbox(path, longAddresses, utf8)
    return address, parseParameters(parameterText)


_WITHOUT_DOMAIN = re.compile(rf"^([A-Za-z]+:[ ]*<)({_DOT_STRING}|{_QUOTED_STRING})(>.*)$")


def withDomain(argument, domain):
    """
    @return: C{FROM:<kim> params} as C{FROM:<kim@domain> params} (a
        receive connector's DefaultDomain), or L{None} when the path is
        not a bare local part.
    """
    match = _WITHOUT_DOMAIN.match(argument)
    if match is None:
        return None
    return f"{match.group(1)}{match.group(2)}@{domain}{match.group(3)}"


_ADDRESS_LITERAL = re.compile(r"^\[(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|IPv6:[0-9A-Fa-f:.]+)\]$")
_HELLO_DOMAIN = re.compile(rf"^{_DOMAIN}$")


def isHelloDomain(text):
    """
    Whether a HELO or EHLO argument is a domain name or an address literal
    (RFC 5321 section 4.1.1.1), as RequireEHLODomain asks.
    """
    return bool(_HELLO_DOMAIN.fullmatch(text) or _ADDRESS_LITERAL.fullmatch(text))


def _closingBracket(text):
    """
    The index of the C{>} closing a path, skipping quoted local parts.
    """
    quoted = escaped = False
    for index, char in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    raise AddressError(text)


def parseParameters(text):
    parameters = {}
    for item in text.split():
        match = _PARAMETER.match(item)
        if match is None:
            raise AddressError(item)
        name = match.group(1).upper()
        if name in parameters:
            raise AddressError(item)
        parameters[name] = match.group(2)
    return parameters
