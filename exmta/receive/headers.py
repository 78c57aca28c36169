"""
What the receive side checks and changes in a message's header: the hop
count, the header firewall of Exchange's Accept-Headers-* rights, and the
C{Received:} and authentication headers it adds.

Messages are bytes with CRLF line ends throughout.
"""

import re
from email.utils import formatdate

from exmta.auth import permissions

# Headers this server writes about the session; whatever a client sends
# under these names is dropped, so no sender can forge them.
AUTH_AS = b"X-MS-Exchange-Organization-AuthAs"
AUTH_SOURCE = b"X-MS-Exchange-Organization-AuthSource"
AUTH_MECHANISM = b"X-MS-Exchange-Organization-AuthMechanism"
_OWN_HEADERS = {name.lower() for name in (AUTH_AS, AUTH_SOURCE, AUTH_MECHANISM)}

_ORGANIZATION_PREFIX = b"x-ms-exchange-organization-"
_FOREST_PREFIX = b"x-ms-exchange-forest-"
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def splitHeader(message):
    """
    @return: (header block including its final CRLF, the rest from the
        blank line on).  A message with no blank line is all header; one
        that starts with a blank line has an empty header.
    """
    if message.startswith(b"\r\n"):
        return b"", message
    end = message.find(b"\r\n\r\n")
    if end == -1:
        return message, b""
    return message[: end + 2], message[end + 2 :]


def fields(header):
    """
    @return: the header's fields, each with its continuation lines, without
        the final CRLF.
    """
    result = []
    for line in header.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and result:
            result[-1] += b"\r\n" + line
        else:
            result.append(line)
    return result


def fieldName(field):
    return field.split(b":", 1)[0].strip().lower()


def messageId(header):
    """
    @return: the Message-ID field's value, or L{None}.
    """
    for field in fields(header):
        if fieldName(field) == b"message-id":
            return field.split(b":", 1)[1].strip().decode("ascii", "replace")
    return None


def hopCount(header):
    return len(_RECEIVED.findall(header))


def firewall(header, rights):
    """
    Drop the header fields the sender has no right to set: C{Received:}
    without Accept-Headers-Routing, C{X-MS-Exchange-Organization-*} without
    Accept-Headers-Organization, C{X-MS-Exchange-Forest-*} without
    Accept-Headers-Forest, and this server's own authentication headers
    always.

    @return: the header block, CRLF-terminated.
    """
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


_lastDate = (None, None)


def rfc5322Date(when):
    """
    RFC 5322's date of C{when} (now if L{None}), in GMT, made once per
    second.
    """
    global _lastDate
    if when is None:
        return formatdate(None, localtime=False, usegmt=True)
    second = int(when)
    if _lastDate[0] != second:
        _lastDate = (second, formatdate(second, localtime=False, usegmt=True))
    return _lastDate[1]


def receivedHeader(session, fqdn, when=None):
    """
    A C{Received:} field for this hop, with the protocol keyword of RFC
    3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA) and the TLS version and cipher as
    Exchange shows them.
    """
    protocol = "ESMTP" if session.esmtp else "SMTP"
    if session.tlsVersion:
        protocol += "S"
    if session.authenticated:
        protocol += "A"
    if session.tlsVersion:
        protocol += f" (version={session.tlsVersion}, cipher={session.tlsCipher})"
    helo = session.helo or "unknown"
    fields = (
        f"from {helo} ([{session.peerHost}]) by {fqdn} ([{session.localHost}]) with {protocol};"
    )
    return b"Received: " + headerText(fields) + b"\r\n\t" + rfc5322Date(when).encode("ascii") + b"\r\n"


def headerText(text):
    """
    @return: C{text} as the ASCII octets of a header field the server
        writes, each control character and non-ASCII character made a
        C{?}: session values (a HELO name, a TLS cipher) cannot break the
        field or hide in it.
    """
    return _CONTROL.sub("?", text).encode("ascii", "replace")


def authenticationHeaders(principal, fqdn):
    """
    The session's authentication result, in the headers Exchange uses; added
    after L{firewall} has removed any copies the client sent.
    """
    return (
        AUTH_AS + b": " + headerText(principal.authAs) + b"\r\n"
        + AUTH_SOURCE + b": " + headerText(fqdn) + b"\r\n"
    )
