"""
L{exmta.receive.data}: framing a message out of DATA, dot-unstuffing and
the whole-message checks, fed in arbitrary pieces.
"""

from hypothesis import given, strategies as st

from exmta.receive.data import BARE_LINE_END, NUL_REFUSED, TOO_BIG, MessageReader, checkMessage


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


def test_linesOfAnyLengthPass():
    assert checkMessage(b"a\r\n" + b"x" * 999 + b"\r\nb\r\n", True) is None
    assert checkMessage(b"Subject: " + b"h" * 100_000 + b"\r\n\r\n" + b"x" * 10**6, True) is None


def test_bareLineEnds():
    assert checkMessage(b"a\nb\r\n", True) is BARE_LINE_END
    assert checkMessage(b"a\rb\r\n", True) is BARE_LINE_END
    assert checkMessage(b"a\nb\r\n", False) is None
    assert checkMessage(b"a\rb\r\n", False) is None


def test_nulIsRefused():
    assert checkMessage(b"a\r\n\x00.\r\nb\r\n", True) is NUL_REFUSED
    assert checkMessage(b"\x00", False) is NUL_REFUSED
    assert checkMessage(b"a\r\n\xff\x01\x7f\r\n", True) is None


def expectedCheck(message, refuseBareLineEnds):
    """
    What L{checkMessage} must answer, made the slow and obvious way: one
    object per line.
    """
    lines = message.split(b"\r\n")
    if refuseBareLineEnds and any(b"\r" in line or b"\n" in line for line in lines):
        return BARE_LINE_END
    if any(b"\0" in line for line in lines):
        return NUL_REFUSED
    return None


linePieces = st.sampled_from([
    b"\r\n", b"\r", b"\n", b"\0", b"x" * 400, b"y" * 1600, b"z", b"v" * 78 + b"\r\n",
])


@given(st.lists(st.one_of(linePieces, st.lists(linePieces, max_size=40).map(b"".join)),
                max_size=12),
       st.booleans())
def test_checksAsLineByLine(pieces, refuseBareLineEnds):
    """
    Long lines, CRLF-only lines, NULs and bare line ends anywhere: the
    answer is the line-by-line one.
    """
    message = b"".join(pieces)
    assert checkMessage(message, refuseBareLineEnds) is expectedCheck(message, refuseBareLineEnds)


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
