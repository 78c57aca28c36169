"""
L{exmta.receive.data}: framing a message out of DATA, dot-unstuffing and
the whole-message checks, fed in arbitrary pieces.
"""

import re

from hypothesis import given, strategies as st

from exmta.receive.data import (
    BARE_LINE_END, LINE_TOO_LONG, TOO_BIG, MessageReader, checkMessage,
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
    message, rest = read(split(stuffed + b".\r\n" + after, cuts))
    assert message == original
    assert rest == after


def test_terminatorOnTheFirstLine():
    message, rest = read([b".\r\nQUIT\r\n"])
    assert message == b""
    assert rest == b"QUIT\r\n"


def test_bareLineEndsDoNotEndData():
    message, _ = read([b"a\n.\nb\r.\r\nc\r\n.\r\n"])
    assert message == b"a\n.\nb\r.\r\nc\r\n"


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
    assert read([message + b".\r\n"], sizeLimit=100)[0] == message
    assert read([message + b".\r\n"], sizeLimit=99)[0] is TOO_BIG


@given(st.lists(st.integers(min_value=0), max_size=6))
def test_sizeLimitIsExactWhereverTheReadsEnd(cuts):
    """
    A message of exactly the limit is taken however its terminator is cut
    between reads (the octets of a terminator begun are not the message's),
    and one octet more is refused.
    """
    message = b"x" * 98 + b"\r\n"
    assert read(split(message + b".\r\n", cuts), sizeLimit=100)[0] == message
    assert read(split(message + b".\r\n", cuts), sizeLimit=99)[0] is TOO_BIG


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


def expectedCheck(message, refuseBareLineEnds):
    """
    What L{checkMessage} must answer, made the slow and obvious way: one
    object per line.
    """
    if refuseBareLineEnds and re.search(rb"\r(?!\n)|(?<!\r)\n", message):
        return BARE_LINE_END
    longest = max(map(len, re.split(rb"\r\n|[\r\n]", message)))
    return LINE_TOO_LONG if longest > 998 else None


linePieces = st.sampled_from([
    b"\r\n", b"\r", b"\n", b"x" * 400, b"y" * 600, b"z", b"w" * 997, b"w" * 998, b"w" * 999,
    b"v" * 78 + b"\r\n",
])


@given(st.lists(linePieces, max_size=12))
def test_lineLengthAsTheLongestRunWithoutLineEnds(pieces):
    message = b"".join(pieces)
    longest = max(map(len, re.split(rb"[\r\n]", message)))
    expected = LINE_TOO_LONG if longest >= 999 else None
    assert checkMessage(message, False) is expected


@given(st.lists(st.one_of(linePieces, st.lists(linePieces, max_size=40).map(b"".join)),
                max_size=12),
       st.booleans())
def test_checksAsLineByLine(pieces, refuseBareLineEnds):
    """
    Many short lines before a long one (the check jumps over lines a
    window at a time), lines at the limit, CRLF-only and bare line ends:
    the answer is the line-by-line one.
    """
    message = b"".join(pieces)
    assert checkMessage(message, refuseBareLineEnds) is expectedCheck(message, refuseBareLineEnds)


def test_longLineAfterManyShortOnes():
    short = (b"v" * 78 + b"\r\n") * 1300
    assert checkMessage(short, True) is None
    for length in (998, 999):
        message = short + b"x" * length + b"\r\n" + short
        assert checkMessage(message, True) is expectedCheck(message, True)
    assert checkMessage(short + b"x" * 999 + b"\r\n", True) is LINE_TOO_LONG


def readWhole(data):
    """
    The message in C{data} (what follows the DATA command), found and
    unstuffed the obvious way, all at once; and what follows it.
    """
    stream = b"\r\n" + data
    end = stream.find(b"\r\n.\r\n")
    return stream[: end + 2].replace(b"\r\n..", b"\r\n.")[2:], stream[end + 5:]


@given(st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"x", b"\r\n.", b"\r\n.."]),
                max_size=30),
       st.binary(max_size=10),
       st.lists(st.integers(min_value=0), max_size=8))
def test_anyInputAnyCuttingReadsAsAWhole(pieces, after, cuts):
    """
    Whatever the client sends (bare line ends, dots it did not double,
    stuffed lines before or after the first read), cut anywhere, the
    reader finds and unstuffs what a single pass over the whole input does.
    """
    data = b"".join(pieces).replace(b"\r\n.\r\n", b"\r\n..\r\n") + b"\r\n.\r\n" + after
    assert read(split(data, cuts)) == readWhole(data)


def test_stuffedSizeCountsAsSent():
    """
    The size limit counts the octets the client sent, doubled dots
    included.
    """
    message = b".." + b"x" * 96 + b"\r\n"
    assert read([message + b".\r\n"], sizeLimit=100)[0] == message[1:]
    assert read([message + b".\r\n"], sizeLimit=99)[0] is TOO_BIG
