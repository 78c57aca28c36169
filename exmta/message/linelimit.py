"""
Lines over RFC 5321's limit, made fit to send over SMTP.

exmta accepts and stores lines of any length, as Exchange and Postfix do
(marketing tools send unwrapped HTML, long base64 and long unfolded header
fields).  A next hop may enforce RFC 5321 section 4.5.3.1.6 (1,000 octets
with the CRLF) and refuse them, and the sender cannot know whether it
does, so before a message is sent over SMTP, L{fitLineLimit} makes every
line at most 998 octets long, changing as little as it can:

  - A message whose lines already fit is sent as it is, byte for byte.
    That is nearly every message.
  - A message that carries a C{DKIM-Signature} or C{ARC-Message-Signature}
    field is sent as it is too: its signer vouched for those very bytes,
    and any change breaks the signature for certain, where most next hops
    take long lines (Exchange, Postfix, exmta itself).  A next hop that
    refuses them gives a reply the sender gets in a non-delivery report.
    The queue manager calls L{fitLineLimit} before the OnRoutedMessage
    agents run, so exmta's own DkimSigner signs the message in the form it
    is sent in.
  - A header field line is folded before a space or tab (RFC 5322 section
    2.2.3): unfolding gives back the field as it was, and so does DKIM's
    relaxed header canonicalization.  A stretch of 998 octets without
    whitespace is broken Postfix's way, with CRLF and a space, which adds
    one space to the unfolded field.
  - A body part is re-encoded so that its decoded content stays the same:
    a 7bit, 8bit or binary part (or a message without MIME) becomes
    quoted-printable, with C{Content-Transfer-Encoding} (and, for a message
    without MIME, C{MIME-Version}) set accordingly; a base64 line is wrapped
    at 76 characters and a quoted-printable one gets soft line breaks,
    both of which decoders ignore.  Multiparts and attached messages are
    entered, so only the parts with long lines change.
  - Text no reader interprets (a multipart's preamble and epilogue), a
    part whose encoding is not one of those, and anything nested deeper
    than L{MAXIMUM_NESTING} are broken as Postfix's C{smtp_line_length_limit}
    does: CRLF and a space after every 998 octets.

Postfix breaks every long line that way (to "minimize the damage to MIME
formatted mail"); re-encoding instead keeps links in HTML and words in text
intact.
"""

import binascii
import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from exmta.message.header import fieldName, fields, splitHeader

# Octets a line may have before its CRLF (RFC 5321 4.5.3.1.6, RFC 5322 2.1.1).
LINE_LIMIT = 998
# Quoted-printable and base64 lines are at most 76 characters (RFC 2045).
ENCODED_LINE = 76
MAXIMUM_NESTING = 50

_CRLF = b"\r\n"
_SIGNATURES = (b"dkim-signature", b"arc-message-signature")
_REENCODED = ("", "7bit", "8bit", "binary")
_ATTACHED = ("message/rfc822", "message/global")
_parser = BytesHeaderParser(policy=compat32)


def fitLineLimit(message):
    """
    @param message: a message with CRLF line ends.
    @return: C{message} itself when every line has at most L{LINE_LIMIT}
        octets or it is signed, else the message with every line fitting,
        as the module docstring says.
    """
    if not _hasLongLine(message):
        return message
    header, _ = _split(message)
    if any(fieldName(field) in _SIGNATURES for field in fields(header)):
        return message
    return _breakLongLines(_fitEntity(message, "text/plain", isMessage=True, depth=0))


def _hasLongLine(data):
    return max(map(len, data.split(_CRLF))) > LINE_LIMIT


def _split(entity):
    """
    @return: (the header section with its last CRLF, the body or L{None}
        when there is no empty line).
    """
    header, rest = splitHeader(entity)
    return header, rest[2:] if rest else None


def _join(header, body):
    return header if body is None else header + _CRLF + body


def _fitEntity(entity, defaultType, isMessage, depth):
    """
    @param defaultType: the content type without a Content-Type field.
    @param isMessage: whether C{entity} is a whole message (the top one or
        an attached one), which needs C{MIME-Version} to have a
        C{Content-Transfer-Encoding}.
    """
    if not _hasLongLine(entity):
        return entity
    header, body = _split(entity)
    folded = [_foldField(field) for field in fields(header)]
    if body is None:
        joined = _header(folded)
        return joined if header.endswith(_CRLF) else joined[:-2]
    if not _hasLongLine(body):
        return _join(_header(folded), body)
    if depth >= MAXIMUM_NESTING:
        return _join(_header(folded), _breakLongLines(body))
    parsed = _parser.parsebytes(header + _CRLF)
    if parsed.get("Content-Type") is None:
        parsed.set_default_type(defaultType)
    contentType = parsed.get_content_type()
    encoding = str(parsed.get("Content-Transfer-Encoding", "")).strip().lower()
    boundary = parsed.get_boundary() if parsed.get_content_maintype() == "multipart" else None
    if boundary:
        body = _fitMultipart(body, boundary, contentType == "multipart/digest", depth)
    elif encoding == "base64":
        body = _wrapBase64(body)
    elif encoding == "quoted-printable":
        body = _softBreaks(body)
    elif contentType in _ATTACHED and encoding in _REENCODED:
        body = _fitEntity(body, "text/plain", True, depth + 1)
    elif encoding in _REENCODED and contentType not in _ATTACHED:
        folded = [field for field in folded if fieldName(field) != b"content-transfer-encoding"]
        if isMessage and not any(fieldName(field) == b"mime-version" for field in folded):
            folded.append(b"MIME-Version: 1.0")
        folded.append(b"Content-Transfer-Encoding: quoted-printable")
        body = _quotedPrintable(body)
    else:
        body = _breakLongLines(body)
    return _join(_header(folded), body)


def _header(headerFields):
    return b"".join(field + _CRLF for field in headerFields)


def _fitMultipart(body, boundary, digest, depth):
    """
    Fit each part between the delimiter lines of C{boundary} (RFC 2046
    section 5.1.1), which stay as they are.
    """
    delimiter = b"--" + boundary.encode("ascii", "surrogateescape")
    lines = body.split(_CRLF)
    marks = []  # (index of a delimiter line, whether it closes)
    for index, line in enumerate(lines):
        if line.startswith(delimiter):
            rest = line[len(delimiter) :]
            closing = rest.startswith(b"--")
            if not (rest[2:] if closing else rest).strip(b" \t"):
                marks.append((index, closing))
                if closing:
                    break
    if not marks:
        return _breakLongLines(body)
    partType = "message/rfc822" if digest else "text/plain"
    pieces = []  # each stands for one or more whole lines

    def add(run, fit):
        if run:
            pieces.append(fit(_CRLF.join(run)))

    def fitPart(part):
        return _fitEntity(part, partType, False, depth + 1)

    add(lines[: marks[0][0]], _breakLongLines)
    ends = [index for index, _ in marks[1:]] + [len(lines)]
    for (start, closing), end in zip(marks, ends):
        pieces.append(lines[start])
        if closing:
            add(lines[start + 1 :], _breakLongLines)
        else:
            add(lines[start + 1 : end], fitPart)
    return _CRLF.join(pieces)


def _foldField(field):
    """
    Fold a header field's lines over the limit before a space or tab.
    """
    lines = field.split(_CRLF)
    if max(map(len, lines)) <= LINE_LIMIT:
        return field
    out = []
    for number, line in enumerate(lines):
        # Never fold inside the name, nor leave a line of whitespace only.
        floor = line.find(b":") + 1 if number == 0 else len(line) - len(line.lstrip(b" \t")) + 1
        while len(line) > LINE_LIMIT:
            cut = max(line.rfind(b" ", floor, LINE_LIMIT + 1), line.rfind(b"\t", floor, LINE_LIMIT + 1))
            if cut > 0 and line[:cut].strip(b" \t"):
                out.append(line[:cut])
                line = line[cut:]
            else:
                out.append(line[:LINE_LIMIT])
                line = b" " + line[LINE_LIMIT:]
            floor = 1
        out.append(line)
    return _CRLF.join(out)


def _breakLongLines(data):
    """
    Postfix's C{smtp_line_length_limit}: CRLF and a space after every 998
    octets of a longer line.
    """
    lines = data.split(_CRLF)
    if max(map(len, lines)) <= LINE_LIMIT:
        return data
    out = []
    for line in lines:
        while len(line) > LINE_LIMIT:
            out.append(line[:LINE_LIMIT])
            line = b" " + line[LINE_LIMIT:]
        out.append(line)
    return _CRLF.join(out)


def _wrapBase64(body):
    out = []
    for line in body.split(_CRLF):
        while len(line) > LINE_LIMIT:
            out.append(line[:ENCODED_LINE])
            line = line[ENCODED_LINE:]
        out.append(line)
    return _CRLF.join(out)


_ESCAPE = re.compile(rb"=[0-9A-Fa-f]{2}")


def _softBreaks(body):
    """
    Soft line breaks (a final C{=}) in quoted-printable lines over the
    limit, never inside an C{=XX} escape.
    """
    out = []
    for line in body.split(_CRLF):
        while len(line) > LINE_LIMIT:
            cut = ENCODED_LINE - 1
            escape = line.rfind(b"=", cut - 2, cut)
            if escape != -1 and _ESCAPE.match(line, escape):
                cut = escape
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return _CRLF.join(out)


def _quotedPrintable(body):
    """
    RFC 2045 section 6.7, each CRLF kept as a hard line break.
    """
    # b2a_qp writes the line ends it first meets, LF when it meets none: a
    # final CRLF, taken off again, makes them CRLF.
    return binascii.b2a_qp(body + _CRLF, istext=True)[:-2]
