"""
Failed logons counted per client address and per account across sessions
(L{exmta.auth.throttle}), on a fake clock.
"""

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from exmta.auth import throttle
from exmta.auth.throttle import LogonThrottle, sourceKey


def fail(logons, source, user, times=1):
    for _ in range(times):
        attempt = logons.attempt(source, user)
        assert attempt is not None, f"refused {source} for {user!r}"
        attempt.failed()


class SourceTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.logons = LogonThrottle(self.clock)

    def test_refusedAfterTenFailuresThenOneAMinute(self):
        for number in range(throttle.SOURCE_LIMIT):
            fail(self.logons, "192.0.2.1", b"user%d@fabrikam.com" % number)
        self.assertIsNone(self.logons.attempt("192.0.2.1", b"new@fabrikam.com"))
        self.clock.advance(throttle.SOURCE_LEAK - 1)
        self.assertIsNone(self.logons.attempt("192.0.2.1", b"new@fabrikam.com"))
        self.clock.advance(1)
        fail(self.logons, "192.0.2.1", b"new@fabrikam.com")
        self.assertIsNone(self.logons.attempt("192.0.2.1", b"new@fabrikam.com"))

    def test_otherSourcesAreNotHeldBack(self):
        fail(self.logons, "192.0.2.1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT)
        self.assertIsNotNone(self.logons.attempt("192.0.2.2", b"kim@fabrikam.com"))

    def test_forgottenOnceDrained(self):
        fail(self.logons, "192.0.2.1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT)
        self.clock.advance(throttle.SOURCE_LIMIT * throttle.SOURCE_LEAK)
        fail(self.logons, "192.0.2.1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT)

    def test_logonsBeingCheckedCount(self):
        """
        Parallel connections cannot overrun the limit: a logon counts while
        its password is checked.
        """
        checking = [
            self.logons.attempt("192.0.2.1", b"kim@fabrikam.com")
            for _ in range(throttle.SOURCE_LIMIT)
        ]
        self.assertNotIn(None, checking)
        self.assertIsNone(self.logons.attempt("192.0.2.1", b"kim@fabrikam.com"))
        checking.pop().finished()
        self.assertIsNotNone(self.logons.attempt("192.0.2.1", b"kim@fabrikam.com"))

    def test_rightPasswordsDoNotCount(self):
        for _ in range(3 * throttle.SOURCE_LIMIT):
            self.logons.attempt("192.0.2.1", b"kim@fabrikam.com").finished()
        self.assertIsNotNone(self.logons.attempt("192.0.2.1", b"kim@fabrikam.com"))

    def test_anAttemptEndsOnce(self):
        attempt = self.logons.attempt("192.0.2.1", b"kim@fabrikam.com")
        attempt.failed()
        attempt.failed()
        attempt.finished()
        fail(self.logons, "192.0.2.1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT - 1)
        self.assertIsNone(self.logons.attempt("192.0.2.1", b"kim@fabrikam.com"))

    def test_ipv6CountsPerSlash64(self):
        fail(self.logons, "2001:db8:1:2::1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT)
        self.assertIsNone(self.logons.attempt("2001:db8:1:2:ffff::9", b"x@fabrikam.com"))
        self.assertIsNotNone(self.logons.attempt("2001:db8:1:3::1", b"x@fabrikam.com"))

    def test_sourceKeys(self):
        self.assertEqual(sourceKey("192.0.2.1"), "192.0.2.1")
        self.assertEqual(sourceKey("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(sourceKey("2001:db8::5"), "2001:db8::/64")
        self.assertEqual(sourceKey("/run/exmta.sock"), "/run/exmta.sock")

    def test_tablesAreBounded(self):
        logons = LogonThrottle(self.clock, maxKeys=3)
        fail(logons, "192.0.2.1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT)
        for number in range(3):
            logons.attempt(f"192.0.2.{10 + number}", b"kim@fabrikam.com").finished()
        self.assertEqual(len(logons._sources), 3)
        self.assertIsNotNone(logons.attempt("192.0.2.1", b"kim@fabrikam.com"))


class AccountTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.logons = LogonThrottle(self.clock)

    def test_manySourcesLockAnAccountOut(self):
        sources = [f"192.0.2.{number}" for number in range(1, 5)]
        for number in range(throttle.ACCOUNT_LIMIT):
            fail(self.logons, sources[number % 3], b"Kim@Fabrikam.com")
        self.assertIsNone(self.logons.attempt(sources[3], b"kim@fabrikam.com"))
        self.assertIsNotNone(self.logons.attempt(sources[3], b"lee@fabrikam.com"))
        self.clock.advance(throttle.ACCOUNT_LEAK)
        self.assertIsNotNone(self.logons.attempt(sources[3], b"kim@fabrikam.com"))

    def test_oneSourceCannotLockAnAccountOut(self):
        fail(self.logons, "192.0.2.1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT)
        for _ in range(100):
            self.assertIsNone(self.logons.attempt("192.0.2.1", b"kim@fabrikam.com"))
        self.assertIsNotNone(self.logons.attempt("192.0.2.2", b"kim@fabrikam.com"))


class LogTests(SynchronousTestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.logons = LogonThrottle(Clock())

    def notices(self):
        return [e for e in self.events if e.get("log_namespace") == "exmta.auth.throttle.LogonThrottle"]

    def test_saidOnceWhenASourceIsFull(self):
        fail(self.logons, "192.0.2.1", b"kim@fabrikam.com", throttle.SOURCE_LIMIT)
        for _ in range(5):
            self.logons.attempt("192.0.2.1", b"kim@fabrikam.com")
        [notice] = self.notices()
        self.assertEqual(notice["what"], "from 192.0.2.1")
        self.assertEqual(round(notice["seconds"]), throttle.SOURCE_LEAK)

    def test_anAccountIsNamedOnlyIfItExists(self):
        for number in range(throttle.ACCOUNT_LIMIT):
            self.logons.attempt(f"192.0.2.{number}", b"Secret-Pa55").failed()
        for number in range(throttle.ACCOUNT_LIMIT):
            self.logons.attempt(f"192.0.2.{number}", b"kim@fabrikam.com").failed("kim@fabrikam.com")
        self.assertEqual(
            [notice["what"] for notice in self.notices()],
            ["for a user name", "for kim@fabrikam.com"],
        )
