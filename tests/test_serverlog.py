"""
exmta.serverlog: the level of the per-message lines, checked before an
event reaches any observer.
"""

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from exmta import serverlog


class LevelTests(TestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.addCleanup(serverlog.setLevel, serverlog.level())
        self.log = serverlog.logger("exmta.test")

    def test_debugIsDroppedAtInfo(self):
        serverlog.setLevel("info")
        self.log.debug("accepted {queueId}", queueId="A")
        self.log.info("listening")
        self.log.warn("deferred")
        self.assertEqual([e["log_format"] for e in self.events], ["listening", "deferred"])

    def test_debugIsWrittenAtDebug(self):
        serverlog.setLevel("debug")
        self.log.debug("accepted {queueId}", queueId="A")
        self.assertEqual([e["queueId"] for e in self.events], ["A"])
        self.assertEqual(serverlog.level(), "debug")

    def test_anUnknownLevel(self):
        self.assertRaises(ValueError, serverlog.setLevel, "verbose")

    def test_aClassAttributeNamesItsClass(self):
        class Stage:
            log = serverlog.logger()

        Stage().log.info("hello")
        self.assertEqual(self.events[-1]["log_namespace"], f"{__name__}.Stage")
