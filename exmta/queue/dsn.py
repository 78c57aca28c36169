"""
Delivery status notifications (RFC 3464): what the queue manager sends a
message's sender when recipients fail, or are late.

A notification is a C{multipart/report; report-type=delivery-status} with
three parts:

  1. C{text/plain}: what happened, for the person who sent the message;
  2. C{message/delivery-status}: C{Original-Envelope-Id} (the sender's
     C{ENVID}, if given), C{Reporting-MTA} and C{Arrival-Date}, then for
     each recipient C{Original-Recipient} (its C{ORCPT}, if given),
     C{Final-Recipient}, C{Action} (C{failed}, C{delayed}, C{delivered}
     or C{relayed}), C{Status}, and where known C{Remote-MTA},
     C{Diagnostic-Code} (the reply that settled it), C{Last-Attempt-Date}
     and, for a delay, C{Will-Retry-Until}.  A report naming a UTF-8
     address is a C{message/global-delivery-status}, the address of type
     C{utf-8} (RFC 6533), and goes to a UTF-8 sender with SMTPUTF8;
  3. the original message: whole (C{message/rfc822}) when its sender
     asked for C{RET=FULL} and a recipient failed, else its header
     section (C{text/rfc822-headers}), Exchange's default.

Which recipients a report tells of is the sender's RFC 3461 C{NOTIFY}
(L{exmta.message.dsnparams.notifies}): failures and delays unless it said
otherwise, success (C{delivered} at local delivery, C{relayed} when a next
hop without DSN took the message) only when it asked.

It comes from the organization's postmaster, goes to the message's
envelope sender, and travels with the null reverse path C{<>}, so that a
notification that cannot be delivered is dropped rather than answered
(RFC 5321 section 6.1): no notification is ever made about a message from
C{<>}.  The manager submits it to the queue like any received message, so
it reaches a local sender's mailbox or a remote sender's next hop the
usual way.

Pure: the functions here build bytes and values, and touch neither disk
nor reactor.
"""

import os
import re
import textwrap
from dataclasses import dataclass
from email.utils import formatdate, make_msgid

from exmta.envelope import Address, Envelope, Session
from exmta.message.header import headerSection, originalHeader

FAILED = "failed"
DELAYED = "delayed"
DELIVERED = "delivered"
RELAYED = "relayed"

_MAX_LINE = 900
_REPLY = re.compile(r"^([245])\d\d[ -](?:([245]\.\d{1,3}\.\d{1,3})\b)?")


@dataclass(frozen=True)
class RecipientReport:
    """
    What a notification says about one recipient.

    @ivar action: L{FAILED} or L{DELAYED}.
    @ivar status: the RFC 3463 status code, e.g. C{"5.1.1"}.
    @ivar diagnostic: the SMTP reply that settled it, if there was one.
    @ivar remoteMta: the host name of the server that gave that reply, if
        it came from one.
    @ivar lastAttemptTime: when it was last tried, if it was.
    @ivar orcpt: its RFC 3461 ORCPT (C{addr-type;address}), if given.
    """

    address: str
    action: str
    status: str
    diagnostic: str | None = None
    remoteMta: str | None = None
    lastAttemptTime: float | None = None
    orcpt: str | None = None


def statusOf(reply, default):
    """
    The RFC 3463 status of an SMTP reply as text (C{"550 5.1.1 ..."}): its
    enhanced status code, else the class of its reply code (C{5.0.0}).

    @return: that, or C{default} if C{reply} is not a reply at all.
    """
    match = _REPLY.match(reply or "")
    if match is None:
        return default
    return match.group(2) or f"{match.group(1)}.0.0"


def isReply(text):
    """
    Whether C{text} is an SMTP reply, as opposed to a note of ours such as
    "Waiting for a send connector".
    """
    return _REPLY.match(text or "") is not None


def envelopeFor(queued, body="7BIT"):
    """
    @return: the L{Envelope} of a notification about C{queued}: from the
        null path, to its sender (with SMTPUTF8 when its address is UTF-8).
    """
    localPart, _, domain = queued.mailFrom.rpartition("@")
    return Envelope(
        Address("", ""), (Address(localPart, domain),), body,
        smtputf8=not queued.mailFrom.isascii(),
    )


def _addressType(address):
    # RFC 6533 section 3: UTF-8 addresses are of type utf-8.
    return "rfc822" if address.isascii() else "utf-8"


def localSubmission(server):
    """
    @param server: the TransportServer's name.
    @return: the L{Session} a message the server makes itself arrives on.
    """
    return Session(
        connector="", server=server, localHost="", localPort=0, peerHost="", peerPort=0
    )


def _date(when):
    return formatdate(when, usegmt=True)


def _oneLine(text):
    return " ".join(text.split())


def _fold(line, indent=" "):
    """
    Fold a long line (a header field, or a line of text) at its spaces into
    lines of at most 78 characters where it can, continued by C{indent};
    a word too long for RFC 5322's 998 is cut.

    @return: the folded line, CRLF between its parts.
    """
    parts = textwrap.wrap(
        line, width=78, subsequent_indent=indent, break_long_words=False,
        break_on_hyphens=False,
    ) or [line]
    lines = []
    for part in parts:
        while len(part) > _MAX_LINE:
            lines.append(part[:_MAX_LINE])
            part = indent + part[_MAX_LINE:]
        lines.append(part)
    return "\r\n".join(lines)


def _part(headers, text):
    """
    A MIME body part, 7bit when it can be.
    """
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    eightBit = any(byte > 0x7F for byte in data)
    lines = list(headers)
    if eightBit:
        lines.append("Content-Transfer-Encoding: 8bit")
    return "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + data, eightBit


def _humanReadable(reports, reportingMta, subject, willRetryUntil, attached):
    failed = [r for r in reports if r.action == FAILED]
    delayed = [r for r in reports if r.action == DELAYED]
    delivered = [r for r in reports if r.action == DELIVERED]
    relayed = [r for r in reports if r.action == RELAYED]
    lines = []
    if delivered:
        lines += ["Your message has been delivered to the following recipients:", ""]
        lines += [report.address for report in delivered] + [""]
    if relayed:
        lines += [
            "Delivery to these recipients is complete, but delivery notification "
            "was not sent by the destination:",
            "",
        ]
        lines += [report.address for report in relayed] + [""]
    if failed:
        lines += ["Delivery has failed to these recipients:", ""]
        for report in failed:
            lines.append(report.address)
            if report.diagnostic:
                lines.append(_fold("    " + _oneLine(report.diagnostic), "    "))
            if report.status == "4.4.7":
                lines.append("    The message expired before it could be delivered.")
        lines.append("")
    if delayed:
        lines += ["Delivery to these recipients is delayed:", ""]
        lines += [report.address for report in delayed]
        lines += ["", "The message has not been delivered to them yet; delivery will continue."]
        if willRetryUntil is not None:
            lines.append(
                f"If it has not succeeded by {_date(willRetryUntil)}, "
                "you will be notified again."
            )
        lines.append("")
    lines += [_fold(f"Subject: {subject}") if subject else "The message has no subject.", ""]
    lines += ["Diagnostic information for administrators:", "", f"Generating server: {reportingMta}", ""]
    for report in reports:
        lines.append(report.address)
        if report.remoteMta:
            lines.append(f"    Remote server {report.remoteMta}")
        if report.diagnostic:
            lines.append(_fold("    " + _oneLine(report.diagnostic), "    "))
        lines.append(f"    Status {report.status} ({report.action})")
    lines += ["", f"The original message{attached} attached."]
    return "\r\n".join(lines) + "\r\n"


def _deliveryStatus(queued, reports, reportingMta, willRetryUntil):
    head = []
    envid = getattr(queued, "envid", None)
    if envid is not None:
        head.append(_fold(f"Original-Envelope-Id: {_oneLine(envid)}"))
    head += [f"Reporting-MTA: dns; {reportingMta}", f"Arrival-Date: {_date(queued.arrivalTime)}"]
    blocks = [head]
    for report in reports:
        fields = []
        if report.orcpt is not None:
            kind, _, address = report.orcpt.partition(";")
            fields.append(_fold(f"Original-Recipient: {kind}; {_oneLine(address)}"))
        fields += [
            f"Final-Recipient: {_addressType(report.address)}; {report.address}",
            f"Action: {report.action}",
            f"Status: {report.status}",
        ]
        if report.remoteMta:
            fields.append(f"Remote-MTA: dns; {report.remoteMta}")
        if report.diagnostic:
            fields.append(_fold(f"Diagnostic-Code: smtp; {_oneLine(report.diagnostic)}"))
        if report.lastAttemptTime is not None:
            fields.append(f"Last-Attempt-Date: {_date(report.lastAttemptTime)}")
        if report.action == DELAYED and willRetryUntil is not None:
            fields.append(f"Will-Retry-Until: {_date(willRetryUntil)}")
        blocks.append(fields)
    return "\r\n\r\n".join("\r\n".join(block) for block in blocks) + "\r\n"


def returnsWhole(queued, reports):
    """
    Whether a notification about C{queued} carries the whole message: its
    sender asked for C{RET=FULL} and it reports a failure (RFC 3461
    section 4.3: success and delay notices return the headers).
    """
    return getattr(queued, "ret", None) == "FULL" and any(r.action == FAILED for r in reports)


def _subjectPrefix(reports):
    actions = {report.action for report in reports}
    for action, prefix in ((FAILED, "Undeliverable"), (DELAYED, "Delivery delayed"),
                           (RELAYED, "Relayed"), (DELIVERED, "Delivered")):
        if action in actions:
            return prefix
    raise ValueError("a notification needs at least one report")


def notification(queued, message, reports, reportingMta, postmaster, now, willRetryUntil=None):
    """
    Build a delivery status notification.

    @param queued: the L{exmta.envelope.QueuedMessage} it is about; its
        sender must not be the null path.
    @param message: that message's bytes: the whole message when
        L{returnsWhole}, else at least its header section.
    @param reports: the L{RecipientReport}s, one per recipient to tell of.
    @param reportingMta: this server's FQDN.
    @param postmaster: the address it comes from.
    @param now: seconds since the epoch, for its C{Date}.
    @param willRetryUntil: for delays, when the message expires.
    @return: (the message bytes with CRLF line ends, its Message-ID, the
        ESMTP BODY type it needs: C{7BIT} or C{8BITMIME}).
    """
    if not queued.mailFrom:
        raise ValueError("no notification is ever sent to the null path <>")
    headers = headerSection(message)
    subject = originalHeader(headers, "Subject")
    originalId = originalHeader(headers, "Message-ID")
    prefix = _subjectPrefix(reports)
    whole = returnsWhole(queued, reports)
    messageId = make_msgid(domain=reportingMta)
    boundary = f"=_exmta_report_{os.urandom(12).hex()}"

    head = [
        f"From: {postmaster}",
        f"To: {queued.mailFrom}",
        _fold(f"Subject: {prefix}: {subject}") if subject else f"Subject: {prefix}",
        f"Date: {_date(now)}",
        f"Message-ID: {messageId}",
    ]
    if originalId:
        head += [f"In-Reply-To: {originalId}", f"References: {originalId}"]
    head += [
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    parts = [
        _part(
            ["Content-Type: text/plain; charset=utf-8"],
            _humanReadable(
                reports, reportingMta, subject, willRetryUntil, " is" if whole else "'s headers are"
            ),
        ),
        _part(
            # RFC 6533: a report naming UTF-8 addresses is a global one.
            ["Content-Type: message/delivery-status"]
            if all(r.address.isascii() for r in reports)
            else ["Content-Type: message/global-delivery-status"],
            _deliveryStatus(queued, reports, reportingMta, willRetryUntil),
        ),
        _part(["Content-Type: message/rfc822"], message)
        if whole
        else _part(["Content-Type: text/rfc822-headers"], headers),
    ]
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    body = (
        b"This is a MIME-formatted delivery status notification."
        + delimiter
        + delimiter.join(data for data, _ in parts)
        + f"\r\n--{boundary}--\r\n".encode("ascii")
    )
    # A raw 8-bit original Subject comes back as the bytes it was.
    head = "\r\n".join(head).encode("utf-8", "surrogateescape")
    eightBit = any(byte > 0x7F for byte in head) or any(flag for _, flag in parts)
    encoded = head + b"\r\n\r\n" + body
    return encoded, messageId, "8BITMIME" if eightBit else "7BIT"
