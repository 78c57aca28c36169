"""
The message tracking log: what happened to each message, one event a line,
as Exchange's Get-MessageTrackingLog reports it.

Each line is one JSON object with Exchange's field names in camelCase::

    {"timestamp": "2026-11-27T06:30:03.250Z", "eventId": "SEND",
     "source": "SMTP", "internalMessageId": "00061A2B3C4D5EA1B2C3D4E5",
     "messageId": "<1234@contoso.com>", "sender": "alice@contoso.com",
     "recipients": ["bob@fabrikam.com"], "connectorId": "ToInternet",
     "nextHop": "ToInternet", "totalBytes": 1234}

  - C{timestamp}: ISO 8601, UTC, milliseconds.
  - C{eventId}: C{RECEIVE}, C{SUBMIT} (the message entered the queue),
    C{DELIVER} (to a mailbox), C{SEND} (a next hop took it), C{DEFER}
    (a transient failure; it will be retried), C{FAIL}, C{DSN} (a
    delivery status notification was made; its C{reference} is the
    original's Message-ID, C{relatedRecipientAddress} the recipients it
    reports on and C{sourceContext} its action: C{failed}, C{delayed},
    C{delivered}, C{relayed} or C{expanded}), C{EXPAND} and C{REDIRECT} (a transport agent replaced a
    recipient; C{relatedRecipientAddress} is the one it replaced).
  - C{source}: C{SMTP}, C{STOREDRIVER} (mailbox delivery), C{DSN},
    C{ROUTING}, C{AGENT} (a transport agent's verdict) or C{ADMIN}
    (Remove-Message).
  - C{internalMessageId}: the queue id; C{messageId}: the Message-ID
    header, when the event's author knows it; C{messageSubject}: the
    Subject (decoded), on C{RECEIVE} events; C{sender}: the envelope
    sender (C{""} for C{<>}); C{recipients}: the addresses the event is
    about; C{recipientStatus}: the reply, for C{DEFER} and C{FAIL};
    C{totalBytes}; C{connectorId}, C{nextHop}, C{clientIp}, C{serverIp}
    where they apply.

A field whose value is unknown is left out.  One file a day (UTC),
C{MSGTRK<yyyymmdd>.log}, in the TransportServer's MessageTrackingLogPath
(created with mode 0700; files 0600).  Events are gathered and appended
together once per reactor iteration, and at L{MessageTrackingLog.close}, so
a clean stop loses none; the file is not fsynced (a crash may lose the last
lines: it is a log, not the queue).  Writing it never raises: a log that
cannot be written is reported through L{twisted.logger} and mail goes on.  Get-MessageTrackingLog reads the
files with L{readTrackingLog}; the console's dashboard counts them with
L{trackingCounts}, which reads each line once.
"""

import calendar
import json
import os
import threading
import time
from collections import Counter

from twisted.logger import Logger
from zope.interface import implementer

from exmta.interfaces import IMessageTrackingLog


def _timestamp(when):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}Z"


_encodeEvent = json.JSONEncoder(ensure_ascii=False, default=str).encode


def eventFields(eventId, queued=None, **fields):
    """
    The fields of one tracking event, in the order they are written: the
    given C{fields} over what C{queued} (an
    L{exmta.envelope.QueuedMessage}) says, without unknown ones.
    """
    event = {"eventId": eventId}
    if queued is not None:
        event.update(
            internalMessageId=queued.queueId,
            sender=queued.mailFrom,
            recipients=[r.address for r in queued.recipients],
            totalBytes=queued.size,
        )
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


@implementer(IMessageTrackingLog)
class MessageTrackingLog:
    """
    Writes the tracking log of one transport server.
    """

    log = Logger()

    def __init__(self, path, clock):
        """
        @param path: the folder (MessageTrackingLogPath); created when the
            first event is written.
        @param clock: an L{twisted.internet.interfaces.IReactorTime}: it
            stamps the events and schedules their writing.
        """
        self.path = os.path.abspath(path)
        self.clock = clock
        self._day = None
        self._descriptor = None
        self._second = None
        self._secondText = None
        self._dayOfSecond = None
        self._pending = []
        self._flushCall = None

    def track(self, eventId, queued=None, **fields):
        """
        See L{IMessageTrackingLog.track}.
        """
        try:
            when = self.clock.seconds()
            second = int(when)
            if second != self._second:
                moment = time.gmtime(second)
                self._secondText = time.strftime("%Y-%m-%dT%H:%M:%S", moment)
                self._dayOfSecond = time.strftime("%Y%m%d", moment)
                self._second = second
            event = {"timestamp": f"{self._secondText}.{int(when * 1000) % 1000:03d}Z"}
            event.update(eventFields(eventId, queued, **fields))
            self._pending.append((self._dayOfSecond, _encodeEvent(event) + "\n"))
            if self._flushCall is None:
                self._flushCall = self.clock.callLater(0, self.flush)
        except Exception:
            self.log.failure(
                "cannot write the message tracking log in {path}", path=self.path
            )

    def flush(self):
        """
        Append the events tracked so far to their day's file.
        """
        if self._flushCall is not None:
            if self._flushCall.active():
                self._flushCall.cancel()
            self._flushCall = None
        pending, self._pending = self._pending, []
        try:
            start = 0
            while start < len(pending):
                day = pending[start][0]
                end = start
                while end < len(pending) and pending[end][0] == day:
                    end += 1
                if day != self._day:
                    self._open(day)
                # One write of whole lines: receive workers append to the
                # same file, and O_APPEND keeps each write whole.  A raw
                # 8-bit header value reaches here as surrogate escapes,
                # which backslashreplace writes as JSON's own \udcXX escapes.
                view = memoryview(
                    "".join(line for _, line in pending[start:end]).encode(
                        "utf-8", "backslashreplace"
                    )
                )
                while view:
                    view = view[os.write(self._descriptor, view) :]
                start = end
        except Exception:
            self.log.failure(
                "cannot write the message tracking log in {path}", path=self.path
            )

    def _open(self, day):
        self._closeFile()
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        descriptor = os.open(
            os.path.join(self.path, f"MSGTRK{day}.log"),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT,
            0o600,
        )
        self._descriptor = descriptor
        self._day = day

    def _closeFile(self):
        if self._descriptor is not None:
            descriptor, self._descriptor, self._day = self._descriptor, None, None
            os.close(descriptor)

    def close(self):
        """
        Write what is pending and close the day's file; the next event
        opens it again.
        """
        self.flush()
        self._closeFile()


@implementer(IMessageTrackingLog)
class NoTrackingLog:
    """
    A tracking log that keeps nothing: for MessageTrackingLogEnabled
    C{$false}.
    """

    def track(self, eventId, queued=None, **fields):
        pass

    def close(self):
        pass


def readTrackingLog(path, start=None, end=None):
    """
    Read the events of a tracking log folder, oldest first, as
    Get-MessageTrackingLog does.

    @param path: the folder (MessageTrackingLogPath).
    @param start: seconds since the epoch: skip events before it.
    @param end: seconds since the epoch: skip events at or after it.
    @return: an iterator of event dicts (the fields above); lines that are
        not a JSON object, such as one cut short by a crash, are skipped.
    """
    try:
        names = sorted(
            name for name in os.listdir(path)
            if name.startswith("MSGTRK") and name.endswith(".log") and len(name) == 18
        )
    except FileNotFoundError:
        return
    first = time.strftime("%Y%m%d", time.gmtime(start)) if start is not None else None
    last = time.strftime("%Y%m%d", time.gmtime(end)) if end is not None else None
    for name in names:
        day = name[6:14]
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        with open(os.path.join(path, name), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                when = _parseTimestamp(event.get("timestamp"))
                if when is None:
                    continue
                if (start is not None and when < start) or (end is not None and when >= end):
                    continue
                yield event


def _parseTimestamp(text):
    """
    @return: seconds since the epoch of a C{timestamp} field, or L{None}.
    """
    try:
        whole, _, fraction = str(text).rstrip("Z").partition(".")
        when = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        return when + (int(fraction) / 10 ** len(fraction) if fraction.isdigit() else 0)
    except (ValueError, TypeError):
        return None


def searchTrackingLog(
    path, start=None, end=None, sender=None, recipients=None, messageId=None,
    internalMessageId=None, eventId=None, limit=None, messageSubject=None,
):
    """
    The events of a tracking log folder that Get-MessageTrackingLog's
    filters select: C{sender}, C{messageId} (with or without its angle
    brackets), C{internalMessageId} and C{eventId} compare
    case-insensitively; C{recipients} (a collection) matches an event
    about any of them; C{messageSubject} is a part of the subject,
    case-insensitive.  Blocks.

    The subject is logged with a message's C{RECEIVE}; every event of the
    message (its queue id) is given it as C{messageSubject}, those logged
    before it included (a message's C{SUBMIT}, even its first C{DEFER},
    may be written before its C{RECEIVE}).

    @param limit: stop after C{limit + 1} events (so the caller can tell
        there were more); L{None} for all.
    @return: a list of event dicts, oldest first.
    """
    wanted = {str(r).lower() for r in recipients} if recipients else None
    part = None if messageSubject is None else str(messageSubject).lower()
    subjects = {}
    if part is not None:
        subjects = {
            event.get("internalMessageId"): event["messageSubject"]
            for event in readTrackingLog(path, start, end)
            if "messageSubject" in event
        }
    waiting = {}
    found = []
    for event in readTrackingLog(path, start, end):
        queueId = event.get("internalMessageId")
        if "messageSubject" in event:
            subjects[queueId] = event["messageSubject"]
            for earlier in waiting.pop(queueId, ()):
                earlier["messageSubject"] = event["messageSubject"]
        elif queueId in subjects:
            event["messageSubject"] = subjects[queueId]
        if part is not None and part not in str(event.get("messageSubject") or "").lower():
            continue
        if sender is not None and str(event.get("sender", "")).lower() != str(sender).lower():
            continue
        if eventId is not None and str(event.get("eventId", "")).lower() != str(eventId).lower():
            continue
        if messageId is not None and _bare(event.get("messageId", "")) != _bare(messageId):
            continue
        if internalMessageId is not None and (
            str(event.get("internalMessageId", "")).upper() != str(internalMessageId).upper()
        ):
            continue
        if wanted is not None and not wanted & {str(r).lower() for r in event.get("recipients", ())}:
            continue
        if "messageSubject" not in event and queueId:
            waiting.setdefault(queueId, []).append(event)
        found.append(event)
        if limit is not None and len(found) > limit:
            break
    return found


def _bare(messageId):
    return str(messageId).strip().strip("<>").lower()


class TrackingCounts:
    """
    How many events of each C{(eventId, connectorId)} a tracking log folder
    holds, per minute, kept by reading only what was appended to its files
    since the last count: counting a busy day again costs the new lines.
    Minutes more than L{KEPT} seconds before the oldest count asked for are
    forgotten.  Safe to use from several threads.
    """

    KEPT = 2 * 86400

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self._offsets = {}
        self._minutes = Counter()
        self._parsed = {}
        self._lock = threading.Lock()

    def count(self, start, end):
        """
        @param start: seconds since the epoch; events from its minute on count.
        @param end: seconds since the epoch; events from its minute on do not.
        @return: a L{Counter} of C{(eventId, connectorId)}: how many
            events of each happened between C{start} and C{end}, to the
            minute (C{connectorId} is L{None} where the event has none).
        """
        first, last = int(start // 60), int(end // 60)
        with self._lock:
            self._read(start)
            counts = Counter()
            for (minute, eventId, connector), number in self._minutes.items():
                if first <= minute < last:
                    counts[eventId, connector] += number
            oldest = int((start - self.KEPT) // 60)
            for key in [key for key in self._minutes if key[0] < oldest]:
                del self._minutes[key]
            self._parsed = {text: m for text, m in self._parsed.items() if m >= oldest}
            return counts

    def _read(self, start):
        try:
            names = sorted(
                name for name in os.listdir(self.path)
                if name.startswith("MSGTRK") and name.endswith(".log") and len(name) == 18
            )
        except FileNotFoundError:
            return
        first = time.strftime("%Y%m%d", time.gmtime(start - self.KEPT))
        for name in names:
            if name[6:14] >= first:
                self._readFile(name)

    def _readFile(self, name):
        offset = self._offsets.get(name, 0)
        with open(os.path.join(self.path, name), "rb") as handle:
            if os.fstat(handle.fileno()).st_size < offset:
                offset = 0  # a file made again: counted anew
            handle.seek(offset)
            data = handle.read()
        # A line still being written is read whole at the next count.
        whole = data.rfind(b"\n") + 1
        self._offsets[name] = offset + whole
        for line in data[:whole].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            minute = self._minute(event.get("timestamp"))
            if minute is not None:
                self._minutes[minute, event.get("eventId"), event.get("connectorId")] += 1

    def _minute(self, timestamp):
        """
        @return: the minute (since the epoch) of a C{timestamp} field, or
            L{None}; each minute's text is parsed once.
        """
        text = str(timestamp)[:16]
        minute = self._parsed.get(text)
        if minute is None:
            when = _parseTimestamp(text + ":00Z")
            if when is None:
                return None
            minute = self._parsed[text] = int(when // 60)
        return minute


_counts = {}
_countsLock = threading.Lock()


def trackingCounts(path):
    """
    @return: the process's L{TrackingCounts} of the folder C{path}.
    """
    with _countsLock:
        key = os.path.abspath(path)
        if key not in _counts:
            _counts[key] = TrackingCounts(key)
        return _counts[key]
