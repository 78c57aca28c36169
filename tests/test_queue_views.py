"""
Tests for L{exmta.queue.views}: which queue a recipient waits in, queue
and message identities, dates, and the -Filter language.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from exmta.envelope import QueuedMessage, QueuedRecipient
from exmta.queue.views import (
    FilterError,
    IdentityError,
    QueueState,
    WAITING_FOR_SEND_CONNECTOR,
    messageIdentity,
    messageRows,
    parseDateTime,
    parseFilter,
    queueName,
    queueOf,
    queueRows,
)

FIELDS = ("FromAddress", "Status", "Size", "Recipients", "DateReceived", "LastError")
QUEUE_ID = "00061A2B3C4D5EA1B2C3D4E5"


def row(**values):
    base = {
        "FromAddress": "kim@fabrikam.com",
        "Status": "Retry",
        "Size": 2048,
        "Recipients": ["lee@contoso.com", "max@contoso.com"],
        "DateReceived": "2026-01-01T10:00:00Z",
        "LastError": None,
    }
    base.update(values)
    return base


class FilterTests(SynchronousTestCase):
    def matches(self, text, **values):
        return parseFilter(text, FIELDS)(row(**values))

    def test_comparisons(self):
        self.assertTrue(self.matches('FromAddress -eq "KIM@fabrikam.com"'))
        self.assertTrue(self.matches("FromAddress -ne 'ann@fabrikam.com'"))
        self.assertTrue(self.matches("FromAddress -like '*@FABRIKAM.com'"))
        self.assertTrue(self.matches("FromAddress -notlike 'ann*'"))
        self.assertTrue(self.matches("Size -gt 2KB") is False)
        self.assertTrue(self.matches("Size -ge 2KB"))
        self.assertTrue(self.matches("Size -lt 3000"))
        self.assertTrue(self.matches("Size -le 2048"))
        self.assertTrue(self.matches("Status -eq Retry"))
        self.assertTrue(self.matches("LastError -eq $null"))
        self.assertFalse(self.matches("LastError -ne $null"))

    def test_lists(self):
        self.assertTrue(self.matches("Recipients -eq 'max@contoso.com'"))
        self.assertTrue(self.matches("Recipients -contains 'LEE@contoso.com'"))
        self.assertTrue(self.matches("Recipients -like 'm*'"))
        self.assertFalse(self.matches("Recipients -ne 'max@contoso.com'"))
        self.assertTrue(self.matches("Recipients -notcontains 'ann@contoso.com'"))

    def test_dates(self):
        self.assertTrue(self.matches("DateReceived -gt '2026-01-01T09:59:59Z'"))
        self.assertFalse(self.matches("DateReceived -gt '2026-01-01T10:00:00+00:00'"))
        self.assertTrue(self.matches("DateReceived -lt '2026-01-02'"))
        with self.assertRaises(FilterError):
            parseFilter("DateReceived -gt 'soon'", FIELDS)

    def test_logic(self):
        """
        -and binds tighter than -or; -not and parentheses work; braces of
        a script block are optional.
        """
        text = "{Status -eq 'Ready' -and Size -gt 0 -or FromAddress -like 'kim*'}"
        self.assertTrue(self.matches(text))
        self.assertFalse(self.matches("Status -eq 'Ready' -and (Size -gt 0 -or FromAddress -like 'kim*')"))
        self.assertTrue(self.matches("-not (Status -eq 'Ready')"))
        self.assertFalse(self.matches("-not Status -eq 'Retry'"))

    def test_quoting(self):
        self.assertTrue(self.matches("FromAddress -eq 'o''brien@x'", FromAddress="o'brien@x"))
        self.assertTrue(self.matches('FromAddress -eq "say `"hi`""', FromAddress='say "hi"'))

    def test_errors(self):
        for text, words in [
            ("", "empty"),
            ("Colour -eq 'red'", "Colour is not a property"),
            ("Status 'Retry'", "expected a comparison"),
            ("Status -eq", "expected a value"),
            ("Status -eq 'a' -and", "expected a property name"),
            ("(Status -eq 'a'", "is not closed"),
            ("Status -eq 'a')", "Invalid filter syntax"),
            ("Status -eq $who", "Unknown variable $who"),
            ("Status -eq 'unterminated", "Invalid filter syntax"),
        ]:
            with self.assertRaises(FilterError, msg=text) as caught:
                parseFilter(text, FIELDS)
            self.assertIn(words, str(caught.exception), text)

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.sampled_from(list("Status-eqandor()'\" $1KB*Size")), max_size=40))
    def test_parserNeverCrashes(self, text):
        """
        Any text either parses or raises FilterError, never anything else.
        """
        try:
            predicate = parseFilter(text, FIELDS)
        except FilterError:
            return
        try:
            predicate(row())
        except FilterError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=30))
    def test_anyText(self, text):
        try:
            parseFilter(text, FIELDS)
        except FilterError:
            pass


class IdentityTests(SynchronousTestCase):
    def test_queueName(self):
        self.assertEqual(queueName("HubA\\ToInternet", "HubA"), "ToInternet")
        self.assertEqual(queueName("huba\\ToInternet", "HubA"), "ToInternet")
        self.assertEqual(queueName("ToInternet", "HubA"), "ToInternet")
        for bad in ("HubB\\ToInternet", "", "a\\b\\c"):
            with self.assertRaises(IdentityError):
                queueName(bad, "HubA")

    def test_messageIdentity(self):
        self.assertEqual(messageIdentity(QUEUE_ID.lower(), "HubA"), (None, QUEUE_ID))
        self.assertEqual(messageIdentity(f"HubA\\{QUEUE_ID}", "HubA"), (None, QUEUE_ID))
        self.assertEqual(messageIdentity(f"Submission\\{QUEUE_ID}", "HubA"), ("Submission", QUEUE_ID))
        self.assertEqual(messageIdentity(f"HubA\\ByMX:x.com\\{QUEUE_ID}", "HubA"), ("ByMX:x.com", QUEUE_ID))
        for bad in ("HubA\\ToInternet\\17", f"HubB\\ToInternet\\{QUEUE_ID}", f"a\\b\\c\\{QUEUE_ID}"):
            with self.assertRaises(IdentityError):
                messageIdentity(bad, "HubA")


class DateTests(SynchronousTestCase):
    def test_forms(self):
        self.assertEqual(parseDateTime("2026-01-01T00:00:00Z"), 1767225600)
        self.assertEqual(parseDateTime("2026-01-01T01:00:00+01:00"), 1767225600)
        self.assertEqual(parseDateTime(1767225600), 1767225600)
        local = parseDateTime("1/1/2026 10:00 AM")
        self.assertEqual(local, parseDateTime("2026-01-01 10:00"))
        self.assertEqual(parseDateTime("1/1/2026"), parseDateTime("2026-01-01"))
        with self.assertRaises(ValueError):
            parseDateTime("tomorrow")


class QueueOfTests(SynchronousTestCase):
    def test_queues(self):
        self.assertEqual(queueOf(QueuedRecipient("a@x")), "Submission")
        self.assertEqual(queueOf(QueuedRecipient("a@x", nextHop="ToInternet")), "ToInternet")
        self.assertEqual(
            queueOf(QueuedRecipient("a@x", lastError=WAITING_FOR_SEND_CONNECTOR)), "Unreachable"
        )
        self.assertEqual(
            queueOf(QueuedRecipient("a@x", lastError="452 4.2.2 Full", attempts=1)), "MailboxDelivery"
        )

    def test_rows(self):
        """
        A message's settled recipients are in no queue; a suspended queue
        shows even when empty.
        """
        message = QueuedMessage(
            QUEUE_ID, "kim@fabrikam.com",
            (
                QueuedRecipient("a@x", "Delivered", nextHop="ToInternet"),
                QueuedRecipient("b@x", nextHop="ToInternet", attempts=2, nextRetryTime=200,
                                lastError="421 4.4.1 Refused"),
            ),
            arrivalTime=0, size=10,
        )
        state = QueueState("HubA", now=100, messages=(message,), suspendedQueues=frozenset({"Other"}))
        rows = queueRows(state)
        self.assertEqual(
            [(r["Identity"], r["Status"], r["MessageCount"], r["NextRetryTime"]) for r in rows],
            [
                ("HubA\\Submission", "Ready", 0, None),
                ("HubA\\Other", "Suspended", 0, None),
                ("HubA\\ToInternet", "Retry", 1, "1970-01-01T00:03:20Z"),
            ],
        )
        [message] = messageRows(state)
        self.assertEqual((message["Recipients"], message["RetryCount"]), (["b@x"], 2))

    def test_subject(self):
        """
        Given the messages' header sections, rows carry the Subject (encoded
        words decoded) and the Message-ID.
        """
        message = QueuedMessage(
            QUEUE_ID, "kim@fabrikam.com", (QueuedRecipient("b@x", nextHop="ToInternet"),),
            arrivalTime=0, size=10,
        )
        state = QueueState("HubA", now=0, messages=(message,))
        headers = {QUEUE_ID: b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n report\r\nMessage-ID: <c@x>\r\n"}
        [row] = messageRows(state, headers)
        self.assertEqual((row["Subject"], row["InternetMessageId"]), ("Café report", "<c@x>"))
        [row] = messageRows(state)
        self.assertEqual((row["Subject"], row["InternetMessageId"]), (None, None))
