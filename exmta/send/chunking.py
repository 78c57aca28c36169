"""
RFC 3030 on the send side: a peer that offers CHUNKING is sent the message
with BDAT instead of DATA, in chunks of L{CHUNK_SIZE} octets, the last one
marked C{LAST}; the octets go as stored, without dot-stuffing.  Each chunk
is answered, which keeps the reply timeout from expiring while a large
message goes out; a refused chunk settles the transaction as a refused
end of data would.  A message received as C{BODY=BINARYMIME} can only go
this way, to a peer that offers BINARYMIME too
(L{exmta.send.client.DeliveryClient._refusal}).
"""

CHUNK_SIZE = 1024 * 1024


class BdatSending:
    """
    BDAT for L{exmta.send.client.DeliveryClient}, which this is mixed
    into: it uses the client's C{_tx}, C{transport}, C{_log},
    C{_expected}, C{_okresponse}, C{_failresponse}, C{_stage} and
    C{smtpState_msgSent}.
    """

    _bdatOffset = 0

    def _usesBdat(self):
        return b"CHUNKING" in self.extensions

    def _sendBdat(self):
        """
        Start sending the message with BDAT: the recipients are in.
        """
        self._stage = "DOT"
        self._log("*", f"{self._tx.size} bytes of message data", context="BDAT")
        self._bdatOffset = 0
        self._failresponse = self.smtpState_msgSent
        self._sendChunk()

    def _sendChunk(self):
        message = self._tx.message
        start = self._bdatOffset
        chunk = message[start:start + CHUNK_SIZE]
        self._bdatOffset = start + len(chunk)
        last = self._bdatOffset >= len(message)
        command = b"BDAT %d%s" % (len(chunk), b" LAST" if last else b"")
        self._log(">", command)
        self._expected = [250]
        self._okresponse = self.smtpState_msgSent if last else self._chunkAccepted
        self.transport.write(command + b"\r\n" + chunk)

    def _chunkAccepted(self, code, resp):
        self._sendChunk()
