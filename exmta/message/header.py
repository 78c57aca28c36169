"""
A message's header section (RFC 5322 section 2.2): the one parser every
part of exmta reads headers with, and the text this server writes into
the fields it adds.

Messages are bytes with CRLF line ends throughout.  The parser is
deliberately plain: a field is a line that does not start with white
space, with the lines after it that do (its continuation); its name is
what comes before its first colon.  Nothing is decoded or unfolded unless
a function says so.
"""

import re
from email.header import decode_header, make_header
from email.utils import formatdate

_CRLF = b"\r\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def splitHeader(message):
    """
    @return: (header block including its final CRLF, the rest from the
        blank line on).  A message with no blank line is all header; one
        that starts with a blank line has an empty header.
    """
    end = headerEnd(message)
    return message[:end], message[end:]


def headerEnd(message):
    """
    @return: where L{splitHeader} splits C{message}: the length of its
        header block.  The cleanup stage takes the body from there without
        copying it.
    """
    if message.startswith(_CRLF):
        return 0
    end = message.find(b"\r\n\r\n")
    return len(message) if end == -1 else end + 2


def headerSection(message):
    """
    @return: the header lines of C{message}, each with its CRLF, without
        the empty line that ends them (a message with no empty line and no
        final CRLF gets one).
    """
    header, _ = splitHeader(message)
    return header if not header or header.endswith(_CRLF) else header + _CRLF


def fields(header):
    """
    @return: the header's fields, each with its continuation lines and the
        CRLFs between them, without the final CRLF.
    """
    if not header:
        return []
    lines = header.split(_CRLF)
    if header.endswith(_CRLF):
        del lines[-1]
    result = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and result:
            result[-1] += _CRLF + line
        else:
            result.append(line)
    return result


def fieldName(field):
    """
    @return: the field's name, lower case, without surrounding white space.
    """
    return field.split(b":", 1)[0].strip().lower()


def messageId(header):
    """
    @return: the Message-ID field's value, or L{None}.
    """
    for field in fields(header):
        if fieldName(field) == b"message-id":
            return field.split(b":", 1)[1].strip().decode("ascii", "replace")
    return None


def originalHeader(header, name):
    """
    @param header: a header section, as L{headerSection} gives it.
    @return: the first C{name} field's value, unfolded, with runs of white
        space and control characters made one space (it goes into a
        header the server writes); L{None} if there is none.  Raw 8-bit
        bytes come back as surrogate escapes, so that encoding the value
        with C{surrogateescape} gives them back unchanged.
    """
    prefix = name.lower().encode("ascii") + b":"
    for field in fields(header):
        if field.lower().startswith(prefix):
            value = field[len(prefix) :].decode("ascii", "surrogateescape")
            return " ".join(_CONTROL.sub(" ", value).split())
    return None


def subject(header):
    """
    @param header: a header section, as L{headerSection} gives it.
    @return: the Subject field's value (L{originalHeader}) with its RFC 2047
        encoded words decoded, or L{None}.
    """
    value = originalHeader(header, "Subject")
    if value is None or (value.isascii() and "=?" not in value):
        # No encoded word to decode (nearly every message): what the
        # decoding below would give back unchanged, at a tenth of its cost.
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")


def headerText(text):
    """
    @return: C{text} as the ASCII octets of a header field the server
        writes, each control character and non-ASCII character made a
        C{?}: session values (a HELO name, a TLS cipher) cannot break the
        field or hide in it.
    """
    return _CONTROL.sub("?", text).encode("ascii", "replace")


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
