"""
SMTP protocol logs, as Exchange writes them for connectors whose
ProtocolLoggingLevel is Verbose.

One CSV file a day per direction (C{RECV20261127.LOG}, C{SEND20261127.LOG})
in the TransportServer's ReceiveProtocolLogPath or SendProtocolLogPath, with
Exchange's columns::

    date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context

C{event} is C{+} (connected), C{-} (disconnected), C{>} (sent), C{<}
(received) or C{*} (information).  Authentication payloads are never
written: callers pass C{redact=True} for SASL lines and the data becomes
C{<redacted>}.
"""

import csv
import io
import os
import time

from twisted.logger import Logger

FIELDS = (
    "date-time",
    "connector-id",
    "session-id",
    "sequence-number",
    "local-endpoint",
    "remote-endpoint",
    "event",
    "data",
    "context",
)


class ProtocolLog:
    """
    Appends protocol events to the day's file of one direction.

    @ivar prefix: C{RECV} or C{SEND}.
    """

    log = Logger()

    def __init__(self, folder, prefix, clock):
        self.folder = folder
        self.prefix = prefix
        self.clock = clock
        self._day = None
        self._file = None

    def session(self, connector, sessionId, local, remote):
        """
        @return: a L{ProtocolSession} writing one connection's events.
        """
        return ProtocolSession(self, connector, sessionId, local, remote)

    def write(self, row):
        when = self.clock.seconds()
        day = time.strftime("%Y%m%d", time.gmtime(when))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}Z"
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow((stamp,) + row)
        try:
            if day != self._day:
                self._open(day)
            self._file.write(buffer.getvalue())
        except OSError as error:
            self.log.error("cannot write the protocol log in {folder}: {error}",
                           folder=self.folder, error=error)

    def _open(self, day):
        if self._file is not None:
            self._file.close()
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        path = os.path.join(self.folder, f"{self.prefix}{day}.LOG")
        try:
            # Whoever creates the file writes its header: receive workers
            # share it.
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            fresh = True
        except FileExistsError:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
            fresh = False
        self._file = open(descriptor, "a", encoding="utf-8", buffering=1, newline="")
        self._day = day
        if fresh:
            self._file.write("#Fields: " + ",".join(FIELDS) + "\r\n")

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
            self._day = None


class ProtocolSession:
    """
    The events of one SMTP connection.
    """

    def __init__(self, protocolLog, connector, sessionId, local, remote):
        self._log = protocolLog
        self._prefix = (connector, sessionId)
        self._endpoints = (local, remote)
        self._sequence = 0

    def event(self, kind, data="", context="", redact=False):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        row = self._prefix + (self._sequence,) + self._endpoints + (
            kind,
            "<redacted>" if redact else data.rstrip("\r\n"),
            context,
        )
        self._sequence += 1
        self._log.write(row)
