"""
What one SMTP transaction sends (L{Transaction}), and how its parts go on
the wire: the DATA payload (L{encodeData}), the paths, and the ESMTP
parameters of MAIL and RCPT for what the peer offers (SIZE, BODY, and RFC
3461's RET, ENVID, NOTIFY and ORCPT passed on from the original sender).
"""

from dataclasses import dataclass, field

from exmta.message.dsnparams import encodeXtext, formatOrcpt


def encodeData(message):
    """
    The DATA payload of a message whose lines already end in CRLF: lines
    starting with a dot get another (RFC 5321 section 4.5.2), and a missing
    final CRLF is added.  Nothing else changes.
    """
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..")


def path(address, utf8=False):
    """
    @param utf8: the peer offered SMTPUTF8 (RFC 6531): UTF-8 may go.
    @return: C{<address>} as bytes.
    @raise UnicodeEncodeError: the address is not ASCII, and may not be.
    """
    return b"<" + address.encode("utf-8" if utf8 else "ascii") + b">"


@dataclass(frozen=True)
class Transaction:
    """
    One message for some of its recipients.

    @ivar body: C{7BIT} or C{8BITMIME}: how the message was received.
    @ivar ret: the original sender's RFC 3461 RET, or L{None}.
    @ivar envid: its ENVID, decoded, or L{None}.
    @ivar recipientDsn: {recipient: (NOTIFY, ORCPT)} of the recipients
        whose sender gave them.
    @ivar smtputf8: received with SMTPUTF8 (RFC 6531).
    @ivar shadow: C{server:queueId}, the C{XSHADOW=} parameter for a peer
        that offers XSHADOW (L{exmta.queue.shadow}), or L{None}.
    """

    queueId: str
    mailFrom: str
    recipients: tuple
    message: bytes
    body: str = "7BIT"
    ret: str | None = None
    envid: str | None = None
    recipientDsn: dict = field(default_factory=dict)
    smtputf8: bool = False
    shadow: str | None = None

    @property
    def size(self):
        return len(self.message)

    @property
    def eightBit(self):
        """
        Whether the message has an octet above 127, which a peer may only be
        sent under C{BODY=8BITMIME} (RFC 6152).  Converting such a message
        to 7 bit (quoted-printable parts, as Postfix does) would break a
        DKIM signature made before it reached us, and every SMTP server in
        use offers 8BITMIME; a peer that does not gets no such message, and
        the sender a report saying why.
        """
        return not self.message.isascii()

    @property
    def needsSmtpUtf8(self):
        """
        Whether the transaction is to go with SMTPUTF8: received so, or
        naming a UTF-8 address.
        """
        return (
            self.smtputf8
            or not self.mailFrom.isascii()
            or not all(recipient.isascii() for recipient in self.recipients)
        )

    def mailParameters(self, extensions):
        """
        @param extensions: the peer's EHLO keywords, {keyword: value}.
        @return: the parameters of MAIL for that peer, as bytes.
        """
        parameters = b""
        if b"SIZE" in extensions:
            parameters += b" SIZE=%d" % self.size
        if self.body == "BINARYMIME":
            parameters += b" BODY=BINARYMIME"
        elif b"8BITMIME" in extensions and (self.eightBit or self.body == "8BITMIME"):
            parameters += b" BODY=8BITMIME"
        if b"SMTPUTF8" in extensions and self.needsSmtpUtf8:
            parameters += b" SMTPUTF8"
        if b"DSN" in extensions:
            if self.ret is not None:
                parameters += b" RET=" + self.ret.encode("ascii")
            if self.envid is not None:
                parameters += b" ENVID=" + encodeXtext(self.envid).encode("ascii")
        if self.shadow is not None and extensions.get(b"XSHADOW"):
            parameters += b" XSHADOW=" + self.shadow.encode("ascii")
        return parameters

    def rcptLine(self, recipient, extensions):
        """
        @return: the RCPT command for C{recipient} to that peer.
        @raise UnicodeEncodeError: the address is not ASCII.
        """
        line = b"RCPT TO:" + path(recipient, b"SMTPUTF8" in extensions)
        notify, orcpt = self.recipientDsn.get(recipient, (None, None))
        if b"DSN" in extensions:
            if notify is not None:
                line += b" NOTIFY=" + notify.encode("ascii")
            if orcpt is not None:
                line += b" ORCPT=" + formatOrcpt(orcpt).encode("ascii")
        return line

    def relayed(self, recipient, extensions):
        """
        Whether the peer's acceptance of C{recipient} is to be reported to
        its sender as "relayed": it asked for NOTIFY=SUCCESS and the peer
        offers no DSN to pass that on to (RFC 3461 section 6.2.2).
        """
        notify, _ = self.recipientDsn.get(recipient, (None, None))
        return b"DSN" not in extensions and notify is not None and "SUCCESS" in notify
