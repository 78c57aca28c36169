"""
L{exmta.message.linelimit.fitLineLimit}: every line fits in 998 octets, what a
reader decodes stays the same, signed and fitting messages are untouched.
"""

import base64
import binascii
import email
import re
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from exmta.message.linelimit import LINE_LIMIT, fitLineLimit

HEADER = b"From: kim@fabrikam.com\r\nTo: someone@contoso.com\r\nSubject: long lines\r\n"


def lines(message):
    return message.split(b"\r\n")


def longest(message):
    return max(map(len, lines(message)))


def leaves(message):
    """
    @return: (content type, decoded payload) of every leaf part, and the
        unfolded header fields of every part, as Python's email package
        reads them.
    """
    parsed = email.message_from_bytes(message, policy=compat32)
    found = []
    for part in parsed.walk():
        headers = [(name.lower(), re.sub(r"\r?\n(?=[ \t])", "", value))
                   for name, value in part.items()
                   if name.lower() not in ("content-transfer-encoding", "mime-version")]
        payload = None if part.is_multipart() else part.get_payload(decode=True)
        found.append((part.get_content_type(), payload, headers))
    return found


def assertFitsAndReadsTheSame(original):
    fitted = fitLineLimit(original)
    assert longest(fitted) <= LINE_LIMIT, longest(fitted)
    assert leaves(fitted) == leaves(original)
    assert fitLineLimit(fitted) == fitted
    return fitted


# Examples


def test_aMessageThatFitsIsTheSameObject():
    message = HEADER + b"\r\n" + b"x" * LINE_LIMIT + b"\r\n"
    assert fitLineLimit(message) is message


def test_aSignedMessageIsUntouched():
    for name in (b"DKIM-Signature", b"ARC-Message-Signature"):
        message = name + b": v=1; a=rsa-sha256; d=fabrikam.com\r\n" + HEADER + b"\r\n" + b"y" * 5000 + b"\r\n"
        assert fitLineLimit(message) is message


def test_aLongHeaderFieldIsFoldedBeforeWhitespace():
    value = b" ".join(b"recipient%d@contoso.com" % n for n in range(4000))
    message = b"To: " + value + b"\r\n" + HEADER + b"\r\nHello.\r\n"
    fitted = assertFitsAndReadsTheSame(message)
    field = fitted.split(b"\r\nFrom:")[0]
    # Unfolding gives the field back exactly.
    assert field.replace(b"\r\n", b"") == b"To: " + value
    assert fitted.endswith(b"\r\n\r\nHello.\r\n")


def test_aHeaderFieldWithoutWhitespaceIsBrokenAsPostfixDoes():
    token = b"A" * 2500
    fitted = fitLineLimit(HEADER + b"X-Token: " + token + b"\r\n\r\nHello.\r\n")
    assert longest(fitted) <= LINE_LIMIT
    field = re.search(rb"X-Token:.*?\r\n(?=\r\n)", fitted, re.S).group(0)
    assert len(lines(field)) == 5, field
    assert all(line.startswith(b" ") for line in lines(field)[1:-1])
    # Only whitespace was added.
    assert re.sub(rb"\s", b"", field) == b"X-Token:" + token


def test_aMessageWithoutMIMEBecomesQuotedPrintable():
    body = ("caf\u00e9 " * 400).encode() + b"\r\nsecond line  \r\n.\r\n"
    message = HEADER + b"\r\n" + body
    fitted = assertFitsAndReadsTheSame(message)
    header = fitted.split(b"\r\n\r\n")[0]
    assert b"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable" in header + b"\r\n"
    assert binascii.a2b_qp(fitted.split(b"\r\n\r\n", 1)[1]) == body


def test_onlyThePartsWithLongLinesChange():
    html = b'<a href="https://contoso.com/' + b"x" * 3000 + b'">offer</a>'
    short = b"Short text.\r\n"
    picture = base64.b64encode(bytes(range(256)) * 20)
    message = (
        HEADER + b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"A preamble no reader shows " + b"p" * 1500 + b"\r\n"
        b"--outer\r\nContent-Type: text/plain\r\n\r\n" + short +
        b"--outer\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + html + b"\r\n"
        b"--outer\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + picture + b"\r\n"
        b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        + HEADER + b"\r\n" + b"inner " * 300 + b"\r\n"
        b"--outer--\r\nepilogue\r\n"
    )
    fitted = assertFitsAndReadsTheSame(message)
    assert b"--outer\r\nContent-Type: text/plain\r\n\r\n" + short + b"--outer\r\n" in fitted
    assert fitted.endswith(b"--outer--\r\nepilogue\r\n")
    html_part = fitted.split(b"--outer\r\n")[2]
    assert b"Content-Transfer-Encoding: quoted-printable" in html_part
    assert b"8bit" not in html_part
    assert b"MIME-Version" not in html_part


def test_longQuotedPrintableLinesGetSoftBreaks():
    encoded = binascii.b2a_qp(("na\u00efve =  " * 500).encode(), istext=True).replace(b"=\n", b"")
    message = (HEADER + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded + b"\r\n")
    assert longest(message) > LINE_LIMIT
    assertFitsAndReadsTheSame(message)


def test_aDigestsPartsAreMessages():
    message = (
        HEADER + b"MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n"
        b"--d\r\n\r\n" + HEADER + b"\r\n" + b"digest " * 300 + b"\r\n--d--\r\n"
    )
    fitted = assertFitsAndReadsTheSame(message)
    # The part is a message without MIME: it gets MIME-Version too.
    assert b"--d\r\n\r\n" + HEADER + (
        b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n") in fitted


def test_aMultipartWithoutItsBoundaryIsBroken():
    message = (HEADER + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=absent\r\n\r\n"
               + b"z" * 2000 + b"\r\n")
    fitted = fitLineLimit(message)
    assert longest(fitted) <= LINE_LIMIT
    # Postfix's way: CRLF and a space after every 998 octets.
    assert fitted.endswith(b"\r\n\r\n" + b"z" * 998 + b"\r\n " + b"z" * 997 + b"\r\n " + b"z" * 5 + b"\r\n")


# Properties

text = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
line = st.one_of(text, st.integers(LINE_LIMIT - 2, 3 * LINE_LIMIT).map(lambda n: b"w" * n))
body = st.lists(line, max_size=6).map(lambda ls: b"".join(each + b"\r\n" for each in ls))
words = st.lists(st.text("abcdefgh", min_size=1, max_size=40), min_size=1, max_size=400)


@st.composite
def parts(draw):
    encoding = draw(st.sampled_from([None, "7bit", "8bit", "binary", "base64", "quoted-printable"]))
    content = draw(body)
    kind = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream"]))
    if encoding == "base64":
        wrapped = draw(st.booleans())
        encoded = base64.b64encode(content)
        content = (base64.encodebytes(content).replace(b"\n", b"\r\n") if wrapped else encoded + b"\r\n")
    elif encoding == "quoted-printable":
        content = binascii.b2a_qp(content, istext=True).replace(b"=\r\n", b"")
        if content and not content.endswith(b"\r\n"):
            content += b"\r\n"
    if encoding == "7bit":
        content = re.sub(rb"[\x80-\xff]", b"?", content)
    headers = b"Content-Type: " + kind.encode() + b"\r\n"
    if encoding:
        headers += b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n"
    return headers + b"\r\n" + content


@st.composite
def messages(draw):
    subject = " ".join(draw(words)).encode()
    header = HEADER.replace(b"long lines", subject) + b"MIME-Version: 1.0\r\n"
    chosen = draw(st.lists(parts(), min_size=1, max_size=4))
    if len(chosen) == 1:
        return header + chosen[0]
    boundary = b"=_boundary_42"
    preamble = draw(body)
    return (header + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n' + preamble
            + b"".join(b"--" + boundary + b"\r\n" + part.rstrip(b"\r\n") + b"\r\n" for part in chosen)
            + b"--" + boundary + b"--\r\n")


@settings(max_examples=150, deadline=None)
@given(messages())
def test_everyLineFitsAndEveryPartReadsTheSame(message):
    fitted = assertFitsAndReadsTheSame(message)
    if longest(message) <= LINE_LIMIT:
        assert fitted is message
