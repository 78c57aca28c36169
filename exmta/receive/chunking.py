"""
RFC 3030 CHUNKING for the receive protocol: the BDAT command, under a
connector's ChunkingEnabled, with the rules DATA has.

  - C{BDAT size [LAST]} is followed by exactly C{size} octets, taken as
    they are (no dot-stuffing, no end marker).  Those octets are read even
    when the command is refused (no MAIL, no recipient, a failed earlier
    chunk), so that they are never taken for commands; the refusal comes
    once they are in.
  - The chunks together count against the same size limit as DATA: past
    it the rest is read and thrown away, the chunk is answered 552 5.3.4
    and the transaction ends.
  - At C{LAST} the message goes through the whole-message checks of DATA
    (bare CR or LF, NUL: L{exmta.receive.data.checkMessage}) unless it was
    declared C{BODY=BINARYMIME}, whose content is binary, and then to the
    cleanup stage; the reply comes once the queue has fsynced, as after
    DATA.
  - Every earlier chunk is answered C{250 2.0.0} at once.  OnDataCommand is
    not raised for BDAT (Exchange 2010 raises it for DATA only); the
    end-of-data agents run as for DATA.
"""

import re

from exmta.envelope import Reply
from exmta.receive.auth import COMMAND
from exmta.receive.data import TOO_BIG

_BDAT = re.compile(r"(\d{1,18})(?: +(LAST))?", re.IGNORECASE)

NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = Reply(503, "5.5.2", "Need RCPT command")
BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")

CHUNK = "chunk"


class ChunkReader:
    """
    The message of one transaction, as its BDAT chunks arrive.

    @ivar sizeLimit: the most octets the message may have.
    @ivar received: octets received so far, kept or not.
    @ivar tooBig: the message has passed C{sizeLimit}; nothing more is kept.
    """

    def __init__(self, sizeLimit):
        self.sizeLimit = sizeLimit
        self.received = 0
        self.tooBig = False
        self._parts = []

    def add(self, data):
        self.received += len(data)
        if self.tooBig:
            return
        if self.received > self.sizeLimit:
            self.tooBig = True
            self._parts = []
            return
        self._parts.append(bytes(data))

    def message(self):
        return b"".join(self._parts)


class ChunkingCommands:
    """
    The BDAT command of L{exmta.receive.protocol.ReceiveProtocol}, which
    this is mixed into: it uses the protocol's C{connector}, C{envelope},
    C{_buffer}, C{_mode}, C{_recipientsAccepted}, C{_sizeLimit},
    C{_respond}, C{_resetTransaction} and C{_endOfData}.  The protocol's
    framing calls L{_scanChunk} while C{_mode} is L{CHUNK}.
    """

    _chunks = None
    _chunkRemaining = 0
    _chunkLast = False
    _chunkRefusal = None

    def smtp_BDAT(self, argument):
        if not self.connector.chunkingEnabled:
            return Reply(500, "5.5.1", "Unrecognized command")
        match = _BDAT.fullmatch(argument)
        if match is None:
            return BDAT_SYNTAX
        refusal = None
        if self.envelope is None:
            refusal = NEED_MAIL
        elif not self._recipientsAccepted:
            refusal = NEED_RCPT
        elif self._chunks is None:
            self._chunks = ChunkReader(self._sizeLimit())
        self._chunkRemaining = int(match.group(1))
        self._chunkLast = match.group(2) is not None
        self._chunkRefusal = refusal
        self._mode = CHUNK
        return None

    def _scanChunk(self):
        """
        Take what the buffer holds of the current chunk.

        @return: L{True} once the chunk is complete (and answered), else
            L{False}: more input is needed.
        """
        take = min(self._chunkRemaining, len(self._buffer))
        if self._chunkRefusal is None:
            with memoryview(self._buffer) as view:
                self._chunks.add(view[:take])
        del self._buffer[:take]
        self._chunkRemaining -= take
        if self._chunkRemaining:
            return False
        self._mode = COMMAND
        if self._chunkRefusal is not None:
            self._respond(self._chunkRefusal)
            return True
        chunks = self._chunks
        if chunks.tooBig:
            self._resetTransaction()
            self._respond(TOO_BIG)
        elif not self._chunkLast:
            self._respond(Reply(250, "2.0.0", f"{chunks.received} octets received"))
        else:
            self._chunks = None
            self._respond(self._endOfData(chunks.message()))
        return True
