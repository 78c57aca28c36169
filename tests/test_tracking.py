"""
Tests for L{exmta.tracking}: the message tracking log.
"""

import json
import os
import stat

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from exmta.envelope import QueuedMessage, QueuedRecipient
from exmta.interfaces import IMessageTrackingLog
from exmta.tracking import MessageTrackingLog, NoTrackingLog, eventFields
from tests.test_queue import temporaryFolder

START = 1767225600.25  # 2026-01-01T00:00:00.250Z

QUEUED = QueuedMessage(
    queueId="00061A2B3C4D5EA1B2C3D4E5",
    mailFrom="alice@contoso.com",
    recipients=(QueuedRecipient("bob@fabrikam.com"), QueuedRecipient("carol@example.org")),
    arrivalTime=START,
    size=1234,
)


class MessageTrackingLogTests(SynchronousTestCase):
    def setUp(self):
        self.folder = os.path.join(temporaryFolder(self), "logs", "MessageTracking")
        self.clock = Clock()
        self.clock.advance(START)
        self.log = MessageTrackingLog(self.folder, self.clock)
        self.addCleanup(self.log.close)

    def lines(self, day="20260101"):
        self.clock.advance(0)
        with open(os.path.join(self.folder, f"MSGTRK{day}.log"), encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    def test_interface(self):
        self.assertTrue(verifyObject(IMessageTrackingLog, self.log))
        self.assertTrue(verifyObject(IMessageTrackingLog, NoTrackingLog()))

    def test_event(self):
        """
        An event is one JSON line with Exchange's field names: the given
        fields over what the queued message says, unknown ones left out.
        """
        self.log.track(
            "SEND", QUEUED, source="SMTP", recipients=["carol@example.org"],
            messageId="<m1@contoso.com>", connectorId="ToInternet", nextHop="ToInternet",
            serverIp="192.0.2.25", clientIp=None,
        )
        self.assertEqual(
            self.lines(),
            [{
                "timestamp": "2026-01-01T00:00:00.250Z",
                "eventId": "SEND",
                "internalMessageId": "00061A2B3C4D5EA1B2C3D4E5",
                "sender": "alice@contoso.com",
                "recipients": ["carol@example.org"],
                "totalBytes": 1234,
                "source": "SMTP",
                "messageId": "<m1@contoso.com>",
                "connectorId": "ToInternet",
                "nextHop": "ToInternet",
                "serverIp": "192.0.2.25",
            }],
        )

    def test_withoutQueuedMessage(self):
        """
        The receive side tracks RECEIVE with the fields it has.
        """
        self.log.track("RECEIVE", source="SMTP", sender="alice@contoso.com", clientIp="192.0.2.7")
        self.assertEqual(
            self.lines(),
            [{"timestamp": "2026-01-01T00:00:00.250Z", "eventId": "RECEIVE", "source": "SMTP",
              "sender": "alice@contoso.com", "clientIp": "192.0.2.7"}],
        )

    def test_defaultRecipients(self):
        self.assertEqual(
            eventFields("SUBMIT", QUEUED)["recipients"], ["bob@fabrikam.com", "carol@example.org"]
        )

    def test_filePerDay(self):
        """
        Events go to the file of their UTC day, appended line by line.
        """
        self.log.track("SUBMIT", QUEUED)
        self.clock.advance(86400)
        self.log.track("DEFER", QUEUED)
        self.log.track("FAIL", QUEUED)
        self.clock.advance(0)
        self.assertEqual(sorted(os.listdir(self.folder)), ["MSGTRK20260101.log", "MSGTRK20260102.log"])
        self.assertEqual([e["eventId"] for e in self.lines("20260101")], ["SUBMIT"])
        self.assertEqual([e["eventId"] for e in self.lines("20260102")], ["DEFER", "FAIL"])
        self.assertEqual(self.lines("20260102")[0]["timestamp"], "2026-01-02T00:00:00.250Z")

    def test_appendsAcrossOpens(self):
        self.log.track("SUBMIT", QUEUED)
        self.log.close()
        again = MessageTrackingLog(self.folder, self.clock)
        again.track("SEND", QUEUED)
        again.close()
        self.assertEqual([e["eventId"] for e in self.lines()], ["SUBMIT", "SEND"])

    def test_writtenOncePerReactorTurn(self):
        """
        The events of one reactor iteration are written together, in
        order, when it ends; a close writes what is pending, so a clean
        stop loses nothing.
        """
        self.log.track("RECEIVE", QUEUED)
        self.log.track("SUBMIT", QUEUED)
        path = os.path.join(self.folder, "MSGTRK20260101.log")
        self.assertFalse(os.path.exists(path))
        self.assertEqual([e["eventId"] for e in self.lines()], ["RECEIVE", "SUBMIT"])
        self.log.track("SEND", QUEUED)
        self.log.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        with open(path, encoding="utf-8") as handle:
            self.assertEqual([json.loads(line)["eventId"] for line in handle],
                             ["RECEIVE", "SUBMIT", "SEND"])

    def test_private(self):
        self.log.track("SUBMIT", QUEUED)
        self.clock.advance(0)
        self.assertEqual(stat.S_IMODE(os.stat(self.folder).st_mode), 0o700)
        path = os.path.join(self.folder, "MSGTRK20260101.log")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode) & 0o077, 0)

    def test_rawHeaderBytes(self):
        """
        A Message-ID with raw 8-bit bytes (surrogate escapes) is written as
        JSON escapes, not lost.
        """
        messageId = b"<\xff@x>".decode("ascii", "surrogateescape")
        self.log.track("SEND", QUEUED, messageId=messageId)
        self.assertEqual(self.lines()[0]["messageId"], "<\udcff@x>")

    def test_neverRaises(self):
        """
        A log that cannot be written is reported, and mail goes on.
        """
        os.makedirs(os.path.dirname(self.folder), exist_ok=True)
        with open(self.folder, "w") as handle:
            handle.write("a file where the folder should be")
        self.log.track("SUBMIT", QUEUED)
        self.clock.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.log.track("SUBMIT", QUEUED, unserializable=object())
        self.clock.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
