"""
The DATA phase of a session: finding the end of a message in the bytes
the client sends, and the checks made on the message as a whole.

A 100 KB message is about 1,300 lines, and a Python step per line would
cost more than the rest of its acceptance, so everything here works on the
whole buffer in C: compiled patterns whose literal first octet the regular
expression engine scans for, and C{in} (C{memchr}).  No Python object is
made per line.

Lines longer than RFC 5321's 1,000 octets are taken and kept as they
came, as Exchange and Postfix take them (unwrapped HTML, long base64, long
unfolded headers): refusing them bounces legitimate mail.  A NUL octet is
refused: a next hop that drops NULs before it looks for the end of data
would read C{CRLF NUL . CRLF} as one.
"""

import re

from exmta.envelope import Reply

TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
BARE_LINE_END = Reply(
    550, "5.6.11", "Bare line feeds or carriage returns are not allowed; use CRLF"
)
NUL_REFUSED = Reply(550, "5.6.0", "Message contains NUL characters")

_TERMINATOR = b"\r\n.\r\n"
_END = re.compile(re.escape(_TERMINATOR))
# The end, or a line that starts with a dot the client doubled
# (RFC 5321 4.5.2): both begin with CRLF and a dot.
_END_OR_STUFFED_LINE = re.compile(rb"\r\n\.(?:\r\n|\.)")
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"\n(?<!\r\n)")


class MessageReader:
    """
    Collects one message's DATA from a session's input buffer.

    The buffer handed to L{feed} is the session's own; the reader starts by
    putting back the CRLF that ended the DATA command line, so a terminator
    or a stuffed dot on the very first line is found like any other, and
    the message is what lies between that CRLF and the terminator's CRLF.

    @ivar sizeLimit: the most octets the message may have, counted as sent
        (dot-stuffed); beyond it the reader keeps looking for the end but
        stops keeping the bytes.
    """

    def __init__(self, buffer, sizeLimit):
        buffer[:0] = b"\r\n"
        self.sizeLimit = sizeLimit
        self._scanFrom = 0
        self._discarded = 0
        self._stuffed = False

    def feed(self, buffer):
        """
        Look for the end of DATA in C{buffer}, which holds what arrived
        since the last call (and what was kept from it).

        @return: L{None} while the message goes on; once it has ended, the
            message, dot-stuffing undone, up to and including the CRLF
            before the terminator; or L{TOO_BIG}.  The message and its
            terminator are removed from C{buffer}; what follows them is
            left for the next command.
        """
        end = self._findEnd(buffer)
        if end == -1:
            # The terminator may have begun in the last four octets.
            self._scanFrom = max(len(buffer) - 4, 0)
            # Past the leading CRLF, the last two octets may be a
            # terminator's ".\r" rather than the message's.
            if self._discarded + len(buffer) - 4 > self.sizeLimit:
                # Too big: keep scanning for the end, but stop keeping it.
                keep = max(len(buffer) - 4, 0)
                self._discarded += keep
                del buffer[:keep]
                self._scanFrom = 0
            return None
        if self._discarded > 0 or end > self.sizeLimit:
            del buffer[: end + 5]
            return TOO_BIG
        with memoryview(buffer) as view:
            if self._stuffed:
                message = bytes(view[: end + 2]).replace(b"\r\n..", b"\r\n.")[2:]
            else:
                message = bytes(view[2 : end + 2])
        del buffer[: end + 5]
        return message

    def _findEnd(self, buffer):
        """
        @return: where the terminator starts in C{buffer}, or -1.  Until a
            stuffed line is seen, the same scan looks for one, so that a
            message without any (nearly all of them) is not scanned again
            to undo the stuffing.
        """
        while not self._stuffed:
            found = _END_OR_STUFFED_LINE.search(buffer, self._scanFrom)
            if found is None:
                return -1
            if found.end() - found.start() == len(_TERMINATOR):
                return found.start()
            self._stuffed = True
            self._scanFrom = found.end()
        found = _END.search(buffer, self._scanFrom)
        return -1 if found is None else found.start()


def checkMessage(message, refuseBareLineEnds):
    """
    The checks of a whole message: bare CR or LF (when the connector
    refuses them), and NUL octets.

    @return: the refusal L{Reply}, or L{None} if the message passes.
    """
    if refuseBareLineEnds and (_BARE_CR.search(message) or _BARE_LF.search(message)):
        return BARE_LINE_END
    if b"\0" in message:
        return NUL_REFUSED
    return None
