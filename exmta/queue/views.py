"""
What Get-Queue and Get-Message show: a transport server's queues as
Exchange 2010 names them, computed from the spool's messages and the queue
manager's in-memory state, and the properties their C{-Filter}
(L{exmta.opath.query}) may use.  Pure: no I/O, no reactor.

Queues
======
The spool holds messages, not queues; a message's C{Ready} recipients put
it in these queues (one message may sit in several, one row in each):

  - one delivery queue per next hop (L{exmta.envelope.NextHop.key}: the
    send connector's name, C{connector:domain} for MX delivery, or a
    transport server's name), where the recipient was last routed;
    C{DeliveryType} C{SmartHostConnectorDelivery}, C{DnsConnectorDelivery}
    or C{SmtpRelayWithinAdSite};
  - C{Submission}: recipients not yet routed (no attempt yet);
  - C{Unreachable}: remote recipients that wait for a send side;
  - C{MailboxDelivery} (C{MapiDelivery}): local recipients waiting for a
    retry of their mailbox delivery;
  - C{Shadow\\N} (C{ShadowRedundancy}), one per server of the organization
    this one keeps shadows for (L{exmta.queue.shadow}), numbered from 1 in
    the order of their names, C{NextHopDomain} the server's name: the
    C{Shadow} recipients handed to it, until it reports them delivered.
    Shown, empty, for every server shadows were kept for since start.

A queue's identity is C{Server\\Name} (C{HubA\\ToInternetGateway}); a
message's is C{Server\\Queue\\QueueId}, the queue id being the spool's.

A message parked behind a next hop in retry (L{exmta.queue.hops}) is in
that next hop's queue even before any attempt of its own.

Queue status: C{Suspended} (Suspend-Queue), C{Active} (a delivery to it is
in progress), C{Retry} (its next hop is in retry, or every recipient in it
failed its last attempt and waits for its retry time), else C{Ready}.  Message status:
C{PendingSuspend} or C{PendingRemove} (an administrator's request waits
for the delivery in progress), C{Suspended}, C{Active}, C{Retry}, C{Ready}.

Times are ISO 8601 strings in UTC (C{2026-01-01T00:00:00Z}).  A message
row's C{Subject} and C{InternetMessageId} come from its header section,
which the caller reads (L{exmta.queue.spool.Spool.headerSections}).
"""

import re
import time
from dataclasses import dataclass, field

from exmta.message.header import originalHeader, subject
from exmta.queue.spool import READY, SHADOW

SUBMISSION = "Submission"
UNREACHABLE = "Unreachable"
MAILBOX_DELIVERY = "MailboxDelivery"
SHADOW_REDUNDANCY = "ShadowRedundancy"

# The lastError of a remote recipient a manager without a send side holds.
WAITING_FOR_SEND_CONNECTOR = "Waiting for a send connector"

_SPECIAL_TYPES = {
    SUBMISSION: "Undefined",
    UNREACHABLE: "Unreachable",
    MAILBOX_DELIVERY: "MapiDelivery",
}

# What a -Filter may compare, of each row; dates are ISO 8601 text.
QUEUE_PROPERTIES = (
    "Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain",
    "NextHopConnector", "NextRetryTime", "LastError",
)
MESSAGE_PROPERTIES = (
    "Identity", "Subject", "InternetMessageId", "FromAddress", "Status", "Size", "MessageSourceName", "SourceIP",
    "DateReceived", "ExpirationTime", "LastError", "RetryCount", "Recipients", "Queue",
    "InternalMessageId",
)
DATE_PROPERTIES = ("DateReceived", "ExpirationTime", "NextRetryTime")

ACTIVE = "Active"
READY_STATUS = "Ready"
RETRY = "Retry"
SUSPENDED = "Suspended"
PENDING_SUSPEND = "PendingSuspend"
PENDING_REMOVE = "PendingRemove"


@dataclass(frozen=True)
class QueueState:
    """
    What the queue manager knows at one moment.

    @ivar server: the TransportServer's name, the first part of identities.
    @ivar now: seconds since the epoch.
    @ivar messages: the spool's L{exmta.envelope.QueuedMessage}s.
    @ivar suspendedQueues: names of the suspended queues.
    @ivar inFlight: for each queue a send is in progress to, the
        addresses being sent, by queue id.
    @ivar activeMessages: queue ids of the messages being worked on.
    @ivar pending: queue id to C{PendingSuspend} or C{PendingRemove}.
    @ivar deliveryTypes: next hop key to its DeliveryType, where known.
    @ivar messageExpirationTimeout: seconds, for C{ExpirationTime}.
    @ivar parked: queue id to the next hop key its message is parked
        behind.
    @ivar retrying: next hop key to (when it may be tried again, the reply
        of the failure that put it in retry), for the next hops in retry.
    @ivar shadowServers: the servers shadows were kept for since start.
    """

    server: str
    now: float
    messages: tuple = ()
    suspendedQueues: frozenset = frozenset()
    inFlight: dict = field(default_factory=dict)
    activeMessages: frozenset = frozenset()
    pending: dict = field(default_factory=dict)
    deliveryTypes: dict = field(default_factory=dict)
    messageExpirationTimeout: float = 2 * 86400
    parked: dict = field(default_factory=dict)
    retrying: dict = field(default_factory=dict)
    shadowServers: frozenset = frozenset()

    def shadowQueues(self):
        """
        @return: {server name: its Shadow Redundancy queue's name}.
        """
        servers = set(self.shadowServers)
        for queued in self.messages:
            servers.update(r.nextHop for r in queued.recipients if r.status == SHADOW)
        return {
            server: f"Shadow\\{number}"
            for number, server in enumerate(sorted(servers, key=str.lower), 1)
        }


def isoTime(when):
    """
    @return: C{when} (seconds since the epoch) as ISO 8601 UTC, or L{None}.
    """
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def queueOf(recipient, parkedBehind=None):
    """
    @param parkedBehind: the next hop key the recipient's message is
        parked behind, if it is.
    @return: the name of the queue a C{Ready} recipient waits in, as the
        spool says.
    """
    if recipient.nextHop is not None:
        return recipient.nextHop
    if parkedBehind is not None:
        return parkedBehind
    if recipient.lastError == WAITING_FOR_SEND_CONNECTOR:
        return UNREACHABLE
    if recipient.attempts == 0 and recipient.lastError is None:
        return SUBMISSION
    return MAILBOX_DELIVERY


def deliveryTypeOf(name, deliveryTypes):
    if name in _SPECIAL_TYPES:
        return _SPECIAL_TYPES[name]
    if name in deliveryTypes:
        return deliveryTypes[name]
    return "DnsConnectorDelivery" if ":" in name else "SmartHostConnectorDelivery"


def _members(state):
    """
    @return: {queue name: {queue id: (message, [its recipients there])}},
        in arrival order.
    """
    sending = {
        (queueId, address): name
        for name, messages in state.inFlight.items()
        for queueId, addresses in messages.items()
        for address in addresses
    }
    shadows = state.shadowQueues()
    queues = {name: {} for name in shadows.values()}
    for queued in state.messages:
        parkedBehind = state.parked.get(queued.queueId)
        for recipient in queued.recipients:
            if recipient.status == SHADOW:
                name = shadows[recipient.nextHop]
            elif recipient.status != READY:
                continue
            else:
                name = sending.get((queued.queueId, recipient.address)) or queueOf(
                    recipient, parkedBehind
                )
            entry = queues.setdefault(name, {}).setdefault(
                queued.queueId, (queued, [])
            )
            entry[1].append(recipient)
    return queues


def _waitingForRetry(recipients, now):
    return all(
        r.attempts > 0 and r.nextRetryTime is not None and r.nextRetryTime > now
        for r in recipients
    )


def _lastError(recipients):
    failed = [r for r in recipients if r.lastError]
    if not failed:
        return None
    return max(failed, key=lambda r: (r.nextRetryTime or 0, r.attempts)).lastError


def _retryOf(state, name):
    """
    @return: (until, last error) of next hop C{name} while it is in retry,
        else L{None}.
    """
    retry = state.retrying.get(name)
    if retry is None or retry[0] <= state.now:
        return None
    return retry


def queueRows(state):
    """
    @return: Get-Queue's objects (dicts), C{Submission} first, then by name.
    """
    members = _members(state)
    names = set(members) | set(state.suspendedQueues) | {SUBMISSION}
    shadowServers = {name: server for server, name in state.shadowQueues().items()}
    rows = []
    for name in sorted(names, key=lambda n: (n != SUBMISSION, n.lower())):
        messages = members.get(name, {})
        recipients = [r for _, waiting in messages.values() for r in waiting]
        retry = _retryOf(state, name)
        if name in state.suspendedQueues:
            status = SUSPENDED
        elif name in state.inFlight or (
            name == SUBMISSION and set(messages) & state.activeMessages
        ):
            status = ACTIVE
        elif retry is not None or (recipients and _waitingForRetry(recipients, state.now)):
            status = RETRY
        else:
            status = READY_STATUS
        retryTimes = [r.nextRetryTime for r in recipients if r.nextRetryTime is not None]
        if retry is not None:
            retryTimes.append(retry[0])
        deliveryType = deliveryTypeOf(name, state.deliveryTypes)
        nextHopDomain = name.partition(":")[2] if ":" in name else name
        if name in shadowServers:
            deliveryType, nextHopDomain = SHADOW_REDUNDANCY, shadowServers[name]
            status = READY_STATUS
        rows.append(
            {
                "Identity": f"{state.server}\\{name}",
                "DeliveryType": deliveryType,
                "Status": status,
                "MessageCount": len(messages),
                "NextHopDomain": nextHopDomain,
                "NextHopConnector": name.partition(":")[0]
                if deliveryType in ("SmartHostConnectorDelivery", "DnsConnectorDelivery")
                else None,
                "NextRetryTime": isoTime(min(retryTimes)) if status == RETRY else None,
                "LastError": retry[1] if retry is not None else _lastError(recipients),
            }
        )
    return rows


# A queue's status in queueRows' precedence.
_PRECEDENCE = (SUSPENDED, ACTIVE, RETRY, READY_STATUS)


def mergeQueueRows(rowLists):
    """
    Put together the Get-Queue rows of the parts of one server's queue
    (the receive workers' parts, L{exmta.admin.parts}).

    @param rowLists: each part's L{queueRows}.
    @return: the rows of the union, a row per queue, C{Submission} first,
        then by name: C{MessageCount} summed; C{Status} the first of the
        parts' in L{queueRows}' precedence (Suspended, Active, Retry,
        Ready); C{NextRetryTime} the earliest of the parts in Retry, when
        the queue is; C{LastError} that of the part whose status counted,
        else any part's; the other fields are the same in every part.
    """
    byName = {}
    for rows in rowLists:
        for row in rows:
            byName.setdefault(row["Identity"].lower(), []).append(row)
    merged = [_mergeQueue(rows) for rows in byName.values()]

    def order(row):
        name = row["Identity"].split("\\", 1)[1]
        return name != SUBMISSION, name.lower()

    return sorted(merged, key=order)


def _mergeQueue(rows):
    ranked = sorted(
        rows,
        key=lambda row: (
            _PRECEDENCE.index(row["Status"]) if row["Status"] in _PRECEDENCE else len(_PRECEDENCE),
            -row["MessageCount"],
        ),
    )
    merged = dict(ranked[0])
    merged["MessageCount"] = sum(row["MessageCount"] for row in rows)
    retryTimes = [
        row["NextRetryTime"] for row in rows
        if row["Status"] == RETRY and row["NextRetryTime"] is not None
    ]
    merged["NextRetryTime"] = (
        min(retryTimes) if merged["Status"] == RETRY and retryTimes else None
    )
    merged["LastError"] = next((row["LastError"] for row in ranked if row["LastError"]), None)
    return merged


def messageEntries(state):
    """
    @return: what Get-Message's rows are made of, in their order (by
        queue, then arrival): C{(queue name, message, its recipients
        there)} for each message and queue it is in.  Cheaper than the
        rows: a page of them is made into rows with L{messageRow}.
    """
    return [
        (name, queued, recipients)
        for name, messages in sorted(_members(state).items(), key=lambda item: item[0].lower())
        for queued, recipients in messages.values()
    ]


def messageRows(state, headers=None):
    """
    @param headers: {queue id: header section}, for C{Subject} and
        C{InternetMessageId}; without a message's, they are L{None}.
    @return: Get-Message's objects (dicts): one per message and queue it is
        in, by queue then arrival.
    """
    headers = headers or {}
    return [
        messageRow(state, entry, headerFields(headers.get(entry[1].queueId)))
        for entry in messageEntries(state)
    ]


def headerFields(header):
    """
    @param header: a message's header section, or L{None}.
    @return: its C{(Subject, InternetMessageId)}, the subject decoded.
    """
    if header is None:
        return None, None
    return subject(header), originalHeader(header, "Message-ID")


def messageRow(state, entry, fields=(None, None)):
    """
    @param entry: one of L{messageEntries}.
    @param fields: the message's L{headerFields}.
    @return: its Get-Message row.
    """
    name, queued, recipients = entry
    retry = _retryOf(state, name) if queued.queueId in state.parked else None
    if queued.queueId in state.pending:
        status = state.pending[queued.queueId]
    elif queued.suspended:
        status = SUSPENDED
    elif queued.queueId in state.activeMessages:
        status = ACTIVE
    elif retry is not None or _waitingForRetry(recipients, state.now):
        status = RETRY
    else:
        status = READY_STATUS
    received = queued.receivedFrom or {}
    subject, messageId = fields or (None, None)
    return {
        "Identity": f"{state.server}\\{name}\\{queued.queueId}",
        "Subject": subject,
        "InternetMessageId": messageId,
        "FromAddress": queued.mailFrom or "<>",
        "Status": status,
        "Size": queued.size,
        "MessageSourceName": received.get("connector") or "DSN",
        "SourceIP": received.get("peerHost") or None,
        "DateReceived": isoTime(queued.arrivalTime),
        "ExpirationTime": isoTime(queued.arrivalTime + state.messageExpirationTimeout),
        "LastError": _lastError(recipients) or (retry and retry[1]),
        "RetryCount": max(r.attempts for r in recipients),
        "Recipients": [r.address for r in recipients],
        "Queue": f"{state.server}\\{name}",
        "InternalMessageId": queued.queueId,
    }


# Sorting and paging


class SortOrderError(ValueError):
    """
    A C{-SortOrder} names no property of the rows.
    """


def sortKeys(sortOrder, properties):
    """
    Read Get-Message's C{-SortOrder}: properties, each C{+Name}
    (ascending, the default) or C{-Name} (descending), the first the most
    significant.

    @param sortOrder: a list of text, or L{None}.
    @return: C{[(property, descending)]}.
    @raise SortOrderError: for a property the rows do not have.
    """
    names = {name.lower(): name for name in properties}
    keys = []
    for item in sortOrder or ():
        text = str(item).strip()
        descending = text.startswith("-")
        name = text.lstrip("+-").strip()
        if name.lower() not in names:
            raise SortOrderError(
                f"{name!r} cannot be sorted on; the properties are " + ", ".join(properties)
            )
        keys.append((names[name.lower()], descending))
    return keys


def sortValue(value):
    """
    @return: what a row's C{value} sorts by: text without case, lists as
        their text.
    """
    if isinstance(value, list):
        value = ", ".join(value)
    return value.lower() if isinstance(value, str) else value


def sortRows(rows, keys):
    """
    Sort C{rows} in place by L{sortKeys}' C{keys}, stably; an empty value
    sorts after every other whatever the direction.
    """
    for name, descending in reversed(keys):
        present = [row for row in rows if row.get(name) is not None]
        empty = [row for row in rows if row.get(name) is None]
        present.sort(key=lambda row: sortValue(row[name]), reverse=descending)
        rows[:] = present + empty


def pageStart(bookmarkIndex, position, includeBookmark):
    """
    Where a page begins in a result set.

    @param bookmarkIndex: the 1-based C{-BookmarkIndex}, or L{None}.
    @param position: the 0-based position of C{-BookmarkObject}, or
        L{None}.
    @param includeBookmark: whether the bookmark itself begins the page.
    @return: the 0-based index of the page's first object.
    """
    if bookmarkIndex is not None:
        position = bookmarkIndex - 1
    if position is None:
        return 0
    return position if includeBookmark else position + 1


# Identities


class IdentityError(ValueError):
    """
    An identity names no queue or message of this server.
    """


def _parts(text):
    parts = []
    for part in str(text).strip().split("\\"):
        if parts and parts[-1].lower() == "shadow" and part.isdigit():
            # A Shadow Redundancy queue's name has a backslash of its own.
            parts[-1] = f"Shadow\\{part}"
        else:
            parts.append(part)
    return parts


def queueName(text, server):
    """
    @param text: C{Server\\Queue} or C{Queue}.
    @return: the queue's name.
    @raise IdentityError: for another server's queue or an empty name.
    """
    parts = _parts(text)
    if len(parts) == 2:
        if parts[0].lower() != server.lower():
            raise IdentityError(
                f"The queue {text} is on server {parts[0]}; this is {server}"
            )
        parts = parts[1:]
    if len(parts) != 1 or not parts[0]:
        raise IdentityError(f"{text!r} is not a queue identity (Server\\Queue)")
    return parts[0]


def messageIdentity(text, server):
    """
    @param text: C{Server\\Queue\\QueueId}, C{Queue\\QueueId},
        C{Server\\QueueId} or C{QueueId}.
    @return: (queue name or L{None} for every queue, queue id).
    @raise IdentityError: when it cannot be one of this server's messages.
    """
    parts = _parts(text)
    queueId = parts[-1].strip().upper()
    if not re.fullmatch(r"[0-9A-F]{24}", queueId):
        raise IdentityError(f"{text!r} is not a message identity (Server\\Queue\\QueueId)")
    rest = parts[:-1]
    if len(rest) == 2:
        return queueName("\\".join(rest), server), queueId
    if len(rest) == 1:
        if rest[0].lower() == server.lower():
            return None, queueId
        return queueName(rest[0], server), queueId
    if rest:
        raise IdentityError(f"{text!r} is not a message identity (Server\\Queue\\QueueId)")
    return None, queueId


def sameQueue(name, other):
    return name.lower() == other.lower()
