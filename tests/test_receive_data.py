"""
L{exmta.receive.data}: framing a message out of DATA, dot-unstuffing and
the whole-message checks, fed in arbitrary pieces.
"""

import re

from hypothesis import given, strategies as st

from exmta.receive.data import (
    BARE_LINE_END, LINE_TOO_LONG, TOO_BIG, MessageReader, checkMessage, unstuff,
)


def read(pieces, sizeLimit=10**9):
    """
    Feed C{pieces} as a session would, one read at a time.

    @return: (what the reader returned, what is left in the buffer).
    """
    buffer = bytearray()
    reader = MessageReader(buffer, sizeLimit)
    result = None
    for piece in pieces:
        buffer += piece
        if result is None:
            result = reader.feed(buffer)
    return result, bytes(buffer)


def split(data, cuts):
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


lines = st.lists(
    st.one_of(
        st.sampled_from([b".", b"..", b".x", b"", b"Subject: s", b"\xff\x00"]),
        st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    ),
    max_size=20,
)


@given(lines, st.lists(st.integers(min_value=0), max_size=8), st.binary(max_size=20))
def test_anyCuttingFindsTheSameMessage(messageLines, cuts, after):
    """
    Wherever the reads split the input, even inside the terminator, the
    message ends at the first CRLF.CRLF, is unstuffed exactly, and what
    follows stays for the next command.
    """
    original = b"".join(line + b"\r\n" for line in messageLines)
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                       for line in messageLines)
    raw, rest = read(split(stuffed + b".\r\n" + after, cuts))
    assert unstuff(raw) == original
    assert rest == after


def test_terminatorOnTheFirstLine():
    raw, rest = read([b".\r\nQUIT\r\n"])
    assert unstuff(raw) == b""
    assert rest == b"QUIT\r\n"


def test_bareLineEndsDoNotEndData():
    raw, _ = read([b"a\n.\nb\r.\r\nc\r\n.\r\n"])
    assert unstuff(raw) == b"a\n.\nb\r.\r\nc\r\n"


def test_tooBigIsKnownOnlyAtTheEndAndNotKept():
    buffer = bytearray()
    reader = MessageReader(buffer, 100)
    for _ in range(50):
        buffer += b"x" * 60 + b"\r\n"
        assert reader.feed(buffer) is None
        assert len(buffer) < 200
    buffer += b".\r\nQUIT\r\n"
    assert reader.feed(buffer) is TOO_BIG
    assert bytes(buffer) == b"QUIT\r\n"


def test_sizeLimitIsExact():
    message = b"x" * 98 + b"\r\n"
    assert unstuff(read([message + b".\r\n"], sizeLimit=100)[0]) == message
    assert read([message + b".\r\n"], sizeLimit=99)[0] is TOO_BIG


def test_lineLimitCountsTheCRLF():
    assert checkMessage(b"a\r\n" + b"x" * 998 + b"\r\nb\r\n", True) is None
    assert checkMessage(b"a\r\n" + b"x" * 999 + b"\r\nb\r\n", True) is LINE_TOO_LONG
    assert checkMessage(b"x" * 999, True) is LINE_TOO_LONG


def test_bareLineEnds():
    assert checkMessage(b"a\nb\r\n", True) is BARE_LINE_END
    assert checkMessage(b"a\rb\r\n", True) is BARE_LINE_END
    assert checkMessage(b"a\nb\r\n", False) is None
    # Allowed, they still end lines for the length check.
    assert checkMessage((b"x" * 900 + b"\n") * 3, False) is None
    assert checkMessage((b"x" * 999 + b"\r") * 3, False) is LINE_TOO_LONG


@given(st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b"x" * 400, b"y" * 600, b"z"]),
                max_size=12))
def test_lineLengthAsTheLongestRunWithoutLineEnds(pieces):
    message = b"".join(pieces)
    longest = max(map(len, re.split(rb"[\r\n]", message)))
    expected = LINE_TOO_LONG if longest >= 999 else None
    assert checkMessage(message, False) is expected
