"""
What the console's Message Tracking and Dashboard pages read: the
Shell's Get-MessageTrackingLog -MessageSubject, and
Get-MessageTrackingStatistics over L{exmta.tracking.TrackingCounts},
which reads each line of the log once.
"""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from exmta.shell.cmdlet import Context
from exmta.shell.queue_cmdlets import getMessageTrackingLog, getMessageTrackingStatistics
from exmta.tracking import MessageTrackingLog, TrackingCounts
from tests.e2e.harness import writeOrganization
from tests.test_queue import temporaryFolder

# 2026-01-01T00:00:00Z
START = 1767225600


class TrackingTestCase(TestCase):
    def setUp(self):
        self.folder = temporaryFolder(self)
        self.config = writeOrganization(
            self.folder,
            "[TransportServer HubA]\nFqdn = huba.fabrikam.com\nMessageTrackingLogPath = log\n",
        )
        self.clock = Clock()
        self.clock.advance(START)
        self.log = MessageTrackingLog(os.path.join(self.folder, "log"), self.clock)
        self.context = Context(self.config, host=self)

    def writeWarning(self, message):
        pass

    def track(self, eventId, queueId, **fields):
        self.log.track(eventId, internalMessageId=queueId * 24, **fields)
        self.log.flush()


class MessageSubjectTests(TrackingTestCase):
    def test_aPartOfTheSubjectFindsTheWholePath(self):
        # A message's SUBMIT may be written before its RECEIVE.
        self.track("SUBMIT", "A")
        self.track("RECEIVE", "A", messageSubject="Quarterly Figures", connectorId="Default")
        self.track("RECEIVE", "B", messageSubject="Lunch", connectorId="Default")
        self.track("DEFER", "A", connectorId="ToInternet")
        self.track("SEND", "A", connectorId="ToInternet")
        self.track("SEND", "B", connectorId="ToInternet")
        events = getMessageTrackingLog(self.context, MessageSubject="figures")
        self.assertEqual(
            [(e.EventId, e.MessageSubject) for e in events],
            [("SUBMIT", "Quarterly Figures"), ("RECEIVE", "Quarterly Figures"),
             ("DEFER", "Quarterly Figures"), ("SEND", "Quarterly Figures")],
        )
        everything = getMessageTrackingLog(self.context)
        self.assertEqual(everything[0].MessageSubject, "Quarterly Figures")
        [send] = getMessageTrackingLog(self.context, MessageSubject="LUNCH", EventId="SEND")
        self.assertEqual(send.InternalMessageId, "B" * 24)


class StatisticsTests(TrackingTestCase):
    def test_countsPerConnectorAndEvent(self):
        self.track("RECEIVE", "A", connectorId="Default")
        self.track("SEND", "A", connectorId="ToInternet")
        self.clock.advance(7200)
        self.track("RECEIVE", "B", connectorId="Default")
        self.track("DEFER", "B", connectorId="ToInternet")
        self.track("RECEIVE", "C", connectorId="Default")
        self.track("FAIL", "C")
        end = START + 7200 + 60

        def counts(start):
            return [
                (s.ConnectorId, s.EventId, s.Count)
                for s in getMessageTrackingStatistics(self.context, Start=start, End=end)
            ]

        self.assertEqual(
            counts(START + 3600),
            [(None, "FAIL", 1), ("Default", "RECEIVE", 2), ("ToInternet", "DEFER", 1)],
        )
        self.assertEqual(
            counts(START),
            [(None, "FAIL", 1), ("Default", "RECEIVE", 3), ("ToInternet", "DEFER", 1),
             ("ToInternet", "SEND", 1)],
        )

    def test_readsOnlyWhatWasAppended(self):
        counts = TrackingCounts(os.path.join(self.folder, "log"))
        self.track("RECEIVE", "A", connectorId="Default")
        self.assertEqual(counts.count(START, START + 60)["RECEIVE", "Default"], 1)
        # A line not yet whole is left for the next count.
        path = os.path.join(self.folder, "log", "MSGTRK20260101.log")
        with open(path, "a") as handle:
            handle.write('{"timestamp": "2026-01-01T00:00:05.000Z", "eventId": "RECEIVE", ')
        self.assertEqual(counts.count(START, START + 60)["RECEIVE", "Default"], 1)
        with open(path, "a") as handle:
            handle.write('"connectorId": "Default"}\n')
        self.assertEqual(counts.count(START, START + 60)["RECEIVE", "Default"], 2)
        self.assertEqual(counts._offsets["MSGTRK20260101.log"], os.path.getsize(path))
