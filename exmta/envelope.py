"""
Value types passed between the stages of the pipeline.

A L{Session} describes one SMTP connection, an L{Envelope} one mail
transaction on it; L{Reply} is what a client hears back.  All are frozen:
a stage that changes something makes a new value.
"""

import os
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reply:
    """
    An SMTP reply with its RFC 3463 enhanced status code.

    @ivar code: the three-digit reply code.
    @ivar status: the enhanced status code (C{"5.7.1"}), or C{""} for replies
        that carry none (the greeting, EHLO, and 334 challenges).
    @ivar text: the text, one string per reply line.
    """

    code: int
    status: str
    text: str | tuple[str, ...]

    def lines(self):
        return (self.text,) if isinstance(self.text, str) else self.text

    def toBytes(self):
        lines = self.lines()
        out = []
        for index, line in enumerate(lines):
            separator = " " if index == len(lines) - 1 else "-"
            prefix = f"{self.code}{separator}"
            if self.status:
                prefix += f"{self.status} "
            out.append(f"{prefix}{line}\r\n")
        return "".join(out).encode("utf-8")

    @property
    def isPositive(self):
        return self.code < 400

    def __str__(self):
        return self.toBytes().decode("utf-8").rstrip("\r\n")


@dataclass(frozen=True)
class Address:
    """
    An envelope address split at its last C{@}.  The null reverse-path
    C{<>} is C{Address("", "")}.
    """

    localPart: str
    domain: str

    @property
    def isNull(self):
        return not self.localPart and not self.domain

    def __str__(self):
        if self.isNull:
            return ""
        return f"{self.localPart}@{self.domain}"


@dataclass(frozen=True)
class Session:
    """
    What is known about one connection: who is at the other end and how
    they are talking to us.

    @ivar connector: the receive connector's name.
    @ivar principal: the L{exmta.interfaces.IPrincipal} logged in.
    @ivar tlsVersion: e.g. C{"TLSv1.3"}, or L{None} in the clear.
    """

    connector: str
    server: str
    localHost: str
    localPort: int
    peerHost: str
    peerPort: int
    helo: str | None = None
    esmtp: bool = False
    tlsVersion: str | None = None
    tlsCipher: str | None = None
    principal: object = None
    authenticated: bool = False


@dataclass(frozen=True)
class Envelope:
    """
    One mail transaction: the reverse path, the forward paths, and the
    parameters the client gave with them.

    @ivar ret: RFC 3461 C{RET} (C{FULL} or C{HDRS}), or L{None}.
    @ivar envid: RFC 3461 C{ENVID}, decoded, or L{None}.
    @ivar recipientDsn: RFC 3461 C{NOTIFY} and C{ORCPT} of the recipients
        that gave them: C{{address text: (notify, orcpt)}}
        (L{exmta.message.dsnparams}).
    @ivar smtputf8: MAIL carried C{SMTPUTF8} (RFC 6531): addresses and
        headers may hold UTF-8.
    @ivar shadow: (server, queue id) from C{MAIL FROM:<...> XSHADOW=}: the
        TransportServer that keeps a shadow copy of the message, and the
        message's queue id there (L{exmta.queue.shadow}).
    """

    mailFrom: Address
    recipients: tuple[Address, ...] = ()
    body: str = "7BIT"
    declaredSize: int | None = None
    ret: str | None = None
    envid: str | None = None
    recipientDsn: dict = field(default_factory=dict)
    smtputf8: bool = False
    shadow: tuple[str, str] | None = None


def newQueueId(clock=time.time, part=0):
    """
    A queue identifier, unique on this host: the time in microseconds,
    random bits and the spool part that accepted it (0, the main process's,
    to 255; see L{exmta.queue.spool}), in hex so it sorts by arrival.
    """
    return f"{int(clock() * 1_000_000):014X}{os.urandom(4).hex().upper()}{part:02X}"


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """
    A message as the queue holds it: its identifier, envelope, where it came
    from, and each recipient's state.

    @ivar body: the ESMTP BODY type it was received with (L{Envelope.body}),
        which the send side must honour.
    @ivar suspended: an administrator suspended it (Suspend-Message): the
        queue manager leaves it alone until it is resumed.
    @ivar categorized: the routing agents' once-per-message events
        (OnSubmittedMessage, OnResolvedMessage) have run and what they
        decided is recorded.
    @ivar ret: RFC 3461 C{RET} as received (L{Envelope.ret}).
    @ivar envid: RFC 3461 C{ENVID} as received (L{Envelope.envid}).
    @ivar smtputf8: received with C{SMTPUTF8} (L{Envelope.smtputf8}).
    """

    queueId: str
    mailFrom: str
    recipients: tuple["QueuedRecipient", ...]
    arrivalTime: float
    size: int
    receivedFrom: dict = field(default_factory=dict)
    body: str = "7BIT"
    delayNotified: bool = False
    suspended: bool = False
    categorized: bool = False
    ret: str | None = None
    envid: str | None = None
    smtputf8: bool = False


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    """
    One recipient of a queued message.  C{status} is C{Ready} until a delivery
    stage settles it as C{Delivered} or C{Failed}; C{lastError} says why it
    is still waiting.

    @ivar notify: RFC 3461 C{NOTIFY} (C{NEVER}, or some of C{SUCCESS},
        C{FAILURE}, C{DELAY} comma-separated), or L{None} when not given.
    @ivar orcpt: RFC 3461 C{ORCPT}, C{addr-type;address} decoded, or L{None}.
    @ivar shadowInstance: for a C{Shadow} recipient, the queue instance of
        the server C{nextHop} it was handed to (L{ShadowedOutcomes.instance}),
        or L{None} when not known.
    """

    address: str
    status: str = "Ready"
    lastError: str | None = None
    attempts: int = 0
    nextRetryTime: float | None = None
    nextHop: str | None = None
    notify: str | None = None
    orcpt: str | None = None
    shadowInstance: str | None = None


@dataclass(frozen=True)
class Relayed:
    """
    The outcome of a recipient a next hop accepted without taking over the
    notification of its success: the peer offered no DSN (RFC 3461 section
    6.2.2), so its sender, who asked for NOTIFY=SUCCESS, is told "relayed".

    @ivar remoteMta: the host name of that next hop.
    """

    remoteMta: str | None = None


@dataclass(frozen=True)
class NextHop:
    """
    Where a recipient goes next, as Exchange names delivery queues.

    @ivar deliveryType: C{SmartHostConnectorDelivery} (a send connector's
        smart hosts), C{DnsConnectorDelivery} (a send connector's MX lookup
        for C{domain}) or C{SmtpRelayWithinAdSite} (forwarding to the
        TransportServer C{server}, a source server of C{connector}).
    @ivar connector: the send connector's name.
    """

    deliveryType: str
    connector: str
    domain: str | None = None
    server: str | None = None

    @property
    def key(self):
        """
        The next hop's queue identity: recipients with the same key travel
        together, and it is what Get-Queue shows.
        """
        if self.deliveryType == "DnsConnectorDelivery":
            return f"{self.connector}:{self.domain}"
        if self.deliveryType == "SmtpRelayWithinAdSite":
            return f"{self.server}"
        return self.connector


class ShadowedOutcomes(dict):
    """
    The outcomes of a send ({recipient: L{None} or a failure}) to a server
    of the organization that took the message under shadow redundancy: it
    offered XSHADOW and will report when the message may be discarded
    (L{exmta.queue.shadow}).

    @ivar instance: the XSHADOW value the server offered: its queue's
        instance, which changes when its queue is lost.
    """

    def __init__(self, outcomes, instance):
        super().__init__(outcomes)
        self.instance = instance
