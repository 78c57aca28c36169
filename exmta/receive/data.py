"""
The DATA phase of a session: finding the end of a message in the bytes
the client sends, and the checks made on the message as a whole.

Everything here works on the whole buffer with C-speed bytes methods
(C{find}, C{count}, C{split}, C{replace}); no Python loop runs per line, so
a 100 KB message costs about what a 1 KB one does plus a few copies.
"""

import re

from exmta.envelope import Reply

TEXT_LINE_LIMIT = 1000

TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
BARE_LINE_END = Reply(
    550, "5.6.11", "Bare line feeds or carriage returns are not allowed; use CRLF"
)
LINE_TOO_LONG = Reply(550, "5.6.0", f"A line of the message exceeds {TEXT_LINE_LIMIT} octets")

_TERMINATOR = b"\r\n.\r\n"
_LINE_END = re.compile(rb"\r\n|[\r\n]")


class MessageReader:
    """
    Collects one message's DATA from a session's input buffer.

    The buffer handed to L{feed} is the session's own; the reader starts by
    putting back the CRLF that ended the DATA command line, so a terminator
    on the very first line is found like any other, and the message is
    what lies between that CRLF and the terminator's CRLF.

    @ivar sizeLimit: the most octets the message may have; beyond it the
        reader keeps looking for the end but stops keeping the bytes.
    """

    def __init__(self, buffer, sizeLimit):
        buffer[:0] = b"\r\n"
        self.sizeLimit = sizeLimit
        self._scanFrom = 0
        self._discarded = 0

    def feed(self, buffer):
        """
        Look for the end of DATA in C{buffer}, which holds what arrived
        since the last call (and what was kept from it).

        @return: L{None} while the message goes on; once it has ended, the
            (stuffed) message with its leading and trailing CRLF, or
            L{TOO_BIG}.  The message and its terminator are removed from
            C{buffer}; what follows them is left for the next command.
        """
        end = buffer.find(_TERMINATOR, self._scanFrom)
        if end == -1:
            self._scanFrom = max(len(buffer) - 4, 0)
            if self._discarded + len(buffer) - 2 > self.sizeLimit:
                # Too big: keep scanning for the end, but stop keeping it.
                keep = max(len(buffer) - 4, 0)
                self._discarded += keep
                del buffer[:keep]
                self._scanFrom = 0
            return None
        with memoryview(buffer) as view:
            raw = bytes(view[: end + 2])
        del buffer[: end + 5]
        if self._discarded > 0 or len(raw) - 2 > self.sizeLimit:
            return TOO_BIG
        return raw


def unstuff(raw):
    """
    @param raw: a message as L{MessageReader.feed} returns it, with its
        leading CRLF.
    @return: the message with RFC 5321's dot-stuffing undone.
    """
    return raw.replace(b"\r\n..", b"\r\n.")[2:]


def checkMessage(message, refuseBareLineEnds):
    """
    The checks of a whole message: bare CR or LF (when the connector
    refuses them) and text lines longer than RFC 5321's 1,000 octets with
    their CRLF.

    @return: the refusal L{Reply}, or L{None} if the message passes.
    """
    lineEnds = message.count(b"\r\n")
    bare = message.count(b"\n") != lineEnds or message.count(b"\r") != lineEnds
    if bare and refuseBareLineEnds:
        return BARE_LINE_END
    if len(message) < TEXT_LINE_LIMIT - 1:
        return None
    # A bare CR or LF ends a line too when they are allowed; splitting on
    # CRLF alone suffices when there are none (the usual case, and faster).
    lines = _LINE_END.split(message) if bare else message.split(b"\r\n")
    if max(map(len, lines)) > TEXT_LINE_LIMIT - 2:
        return LINE_TOO_LONG
    return None
