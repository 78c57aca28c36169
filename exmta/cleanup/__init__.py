"""
The cleanup stage, between the SMTP session and the queue (Postfix's
C{cleanup}): what happens to a message once its DATA has ended.  The
receive protocol hands it the bytes the client sent; it checks the header
against the connector's limits and the sender's rights, writes this hop's
C{Received:} and authentication headers, applies the header firewall,
runs the transport agents' OnEndOfHeaders and OnEndOfData events and
submits the message to the queue (L{exmta.interfaces.ICleanup}).

It needs no socket: L{exmta.cleanup.cleanup.Cleanup} is called with the
session's values, by the in-process receive path and by receive workers
alike.
"""
