"""
Tests for L{exmta.message}: paths and mailboxes (L{exmta.message.address})
and the one header parser (L{exmta.message.header}).
"""

import re
from email.header import decode_header, make_header

import pytest
from hypothesis import given, strategies as st

from exmta.envelope import Address
from exmta.message.address import AddressError, parsePath
from exmta.message.header import (
    fieldName,
    fields,
    headerSection,
    originalHeader,
    splitHeader,
    subject,
)


# Command arguments


@pytest.mark.parametrize(
    "argument, address, parameters",
    [
        ("FROM:<a@b.example>", Address("a", "b.example"), {}),
        ("from: <a@B.Example> SIZE=10 body=8BITMIME", Address("a", "b.example"),
         {"SIZE": "10", "BODY": "8BITMIME"}),
        ("FROM:<>", Address("", ""), {}),
        ("FROM:a@b.example", Address("a", "b.example"), {}),
        ("FROM:<@r1.example,@r2.example:a@b.example>", Address("a", "b.example"), {}),
        ('FROM:<"a b>c"@b.example>', Address('"a b>c"', "b.example"), {}),
        ("FROM:<a@[127.0.0.1]>", Address("a", "[127.0.0.1]"), {}),
    ],
)
def test_parsePath(argument, address, parameters):
    assert parsePath(argument, "FROM", allowNull=True) == (address, parameters)


@pytest.mark.parametrize(
    "argument",
    [
        "TO:<>",
        "TO:<a@b@c.example>",
        "TO:<a>",
        "TO:<a@b.example",
        "TO:<a@b.example>X",
        "FROM:<a@b.example>",
        "TO:<a@-bad.example>",
        "TO:<a..b@c.example>",
        "TO:<a@b.example> SIZE=1 SIZE=2",
        "TO:<" + "a" * 65 + "@b.example>",
    ],
)
def test_parsePathRefuses(argument):
    with pytest.raises(AddressError):
        parsePath(argument, "TO", allowNull=False)


@given(st.text(max_size=80))
def test_parsePathNeverRaisesAnythingElse(text):
    try:
        address, parameters = parsePath(text, "TO", allowNull=False)
    except AddressError:
        return
    assert address.domain and address.localPart
    assert "@" not in address.domain


# Header sections


def test_splitHeader():
    assert splitHeader(b"A: 1\r\n\r\nbody\r\n") == (b"A: 1\r\n", b"\r\nbody\r\n")
    assert splitHeader(b"\r\nbody\r\n") == (b"", b"\r\nbody\r\n")
    assert splitHeader(b"A: 1\r\n") == (b"A: 1\r\n", b"")


@pytest.mark.parametrize(
    "message, headers",
    [
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore", b"A: 1\r\nB: 2\r\n"),
        (b"A: 1\r\n", b"A: 1\r\n"),
        (b"A: 1", b"A: 1\r\n"),
        (b"\r\nbody", b""),
        (b"A: 1\r\n folded\r\n\r\n", b"A: 1\r\n folded\r\n"),
        (b"", b""),
    ],
)
def test_headerSection(message, headers):
    assert headerSection(message) == headers


@pytest.mark.parametrize(
    "headers, value",
    [
        (b"Subject: a\r\n  b\r\n\tc\r\n", "a b c"),
        (b"subject:x\r\nSubject: second\r\n", "x"),
        (b"X-Subject: no\r\n", None),
        (b"Subject:\r\n", ""),
        (b"Subject: a\x00b\x1b[31mc\x7f\r\n", "a b [31mc"),
        (b"", None),
    ],
)
def test_originalHeader(headers, value):
    assert originalHeader(headers, "Subject") == value


@given(st.binary())
def test_originalHeaderAnyBytes(data):
    """
    Any header section reads without error, as one line that encodes back
    to bytes.
    """
    value = originalHeader(headerSection(data), "Subject")
    if value is not None:
        assert not re.search(r"[\x00-\x1f\x7f]", value)
        value.encode("utf-8", "surrogateescape")


@given(st.lists(st.sampled_from([b"A: 1", b" folded", b"\tmore", b"B:2", b"x\ry"]), max_size=8))
def test_fieldsGiveTheHeaderBack(lines):
    """
    A header's fields joined with CRLFs are the header again, whether or
    not it ends with a CRLF, and a field never starts with white space
    unless it is the first line.
    """
    header = b"\r\n".join(lines)
    for ending in (b"", b"\r\n"):
        parsed = fields(header + ending if header else b"")
        assert b"\r\n".join(parsed) == header
        assert all(field[:1] not in (b" ", b"\t") for field in parsed[1:])


def test_fieldName():
    assert fieldName(b"Subject : x") == b"subject"
    assert fieldName(b"X-A:b:c") == b"x-a"


@given(st.text(max_size=60))
def test_subjectDecodesEncodedWordsOnly(text):
    """
    A Subject without encoded words comes back as originalHeader gives it,
    as decoding it would give it; encoded words are decoded.
    """
    value = text.encode("utf-8", "surrogateescape")
    header = b"Subject: " + value + b"\r\n"
    original = originalHeader(header, "Subject")
    try:
        decoded = str(make_header(decode_header(original)))
    except (ValueError, LookupError, UnicodeError):
        decoded = original.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    assert subject(header) == decoded


def test_subjectEncodedWords():
    assert subject(b"Subject: =?utf-8?q?caf=C3=A9?= menu\r\n") == "caf\u00e9 menu"
    assert subject(b"Subject: plain  text\r\n") == "plain text"
    assert subject(b"From: a\r\n") is None
