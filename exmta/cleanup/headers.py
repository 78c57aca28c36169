"""
What the cleanup stage checks and changes in a message's header: the hop
count, the header firewall of Exchange's Accept-Headers-* rights, and the
C{Received:} and authentication headers it adds.

Messages are bytes with CRLF line ends throughout; the header is read with
L{exmta.message.header}.
"""

import re

from exmta.auth import permissions
from exmta.message.header import fieldName, fields, headerText, rfc5322Date

# Headers this server writes about the session; whatever a client sends
# under these names is dropped, so no sender can forge them.
AUTH_AS = b"X-MS-Exchange-Organization-AuthAs"
AUTH_SOURCE = b"X-MS-Exchange-Organization-AuthSource"
AUTH_MECHANISM = b"X-MS-Exchange-Organization-AuthMechanism"
AUTH_DOMAIN = b"X-MS-Exchange-Organization-AuthDomain"
_OWN_HEADERS = {name.lower() for name in (AUTH_AS, AUTH_SOURCE, AUTH_MECHANISM, AUTH_DOMAIN)}

_ORGANIZATION_PREFIX = b"x-ms-exchange-organization-"
_FOREST_PREFIX = b"x-ms-exchange-forest-"
# What the names of the fields the firewall may drop, other than
# Received:, begin with.
_EXCHANGE_PREFIX = b"x-ms-exchange-"
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)


def hopCount(header):
    return len(_RECEIVED.findall(header))


_BY = re.compile(rb"\bby\s+([^\s;()]+)", re.IGNORECASE)


def localHopCount(header, names):
    """
    @param names: the lower-case host names of this organization's servers.
    @return: how many C{Received:} fields say one of C{names} received the
        message (MaxLocalHopCount).
    """
    if b"received" not in header.lower():
        return 0
    count = 0
    for field in fields(header):
        if fieldName(field) != b"received":
            continue
        found = _BY.search(field)
        if found is not None and found.group(1).decode("ascii", "replace").lower().rstrip(".") in names:
            count += 1
    return count


def firewall(header, rights):
    """
    Drop the header fields the sender has no right to set: C{Received:}
    without Accept-Headers-Routing, C{X-MS-Exchange-Organization-*} without
    Accept-Headers-Organization, C{X-MS-Exchange-Forest-*} without
    Accept-Headers-Forest, and this server's own authentication headers
    always.

    @return: the header block, CRLF-terminated.
    """
    if header.endswith(b"\r\n") or not header:
        lowered = header.lower()
        if b"received" not in lowered and _EXCHANGE_PREFIX not in lowered:
            # Nothing to drop (most messages): the header as it came is
            # what the fields, joined again, would be.
            return header
    keepRouting = permissions.ACCEPT_HEADERS_ROUTING in rights
    keepOrganization = permissions.ACCEPT_HEADERS_ORGANIZATION in rights
    keepForest = permissions.ACCEPT_HEADERS_FOREST in rights
    kept = []
    for field in fields(header):
        name = fieldName(field)
        if name in _OWN_HEADERS:
            continue
        if name == b"received" and not keepRouting:
            continue
        if name.startswith(_ORGANIZATION_PREFIX) and not keepOrganization:
            continue
        if name.startswith(_FOREST_PREFIX) and not keepForest:
            continue
        kept.append(field + b"\r\n")
    return b"".join(kept)


def receivedHeader(session, fqdn, when=None, utf8=False):
    """
    A C{Received:} field for this hop, with the protocol keyword of RFC
    3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA), or of RFC 6531 for a message
    received with SMTPUTF8 (UTF8SMTP...), and the TLS version and cipher as
    Exchange shows them.
    """
    protocol = "UTF8SMTP" if utf8 else "ESMTP" if session.esmtp else "SMTP"
    if session.tlsVersion:
        protocol += "S"
    if session.authenticated:
        protocol += "A"
    if session.tlsVersion:
        protocol += f" (version={session.tlsVersion}, cipher={session.tlsCipher})"
    helo = session.helo or "unknown"
    text = (
        f"from {helo} ([{session.peerHost}]) by {fqdn} ([{session.localHost}]) with {protocol};"
    )
    return b"Received: " + headerText(text) + b"\r\n\t" + rfc5322Date(when).encode("ascii") + b"\r\n"


def authenticationHeaders(principal, fqdn):
    """
    The session's authentication result, in the headers Exchange uses; added
    after L{firewall} has removed any copies the client sent.  A partner
    proved by Domain Security is C{AuthAs: Partner}, with the domain its
    certificate proved in C{AuthDomain}, as in Exchange.
    """
    headers = (
        AUTH_AS + b": " + headerText(principal.authAs) + b"\r\n"
        + AUTH_SOURCE + b": " + headerText(fqdn) + b"\r\n"
    )
    domain = getattr(principal, "authDomain", None)
    if domain is not None:
        headers += AUTH_DOMAIN + b": " + headerText(domain) + b"\r\n"
    return headers
