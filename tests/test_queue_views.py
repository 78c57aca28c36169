"""
Tests for L{exmta.queue.views}: which queue a recipient waits in, queue
and message identities, and the rows of Get-Queue and Get-Message.
"""

from twisted.trial.unittest import SynchronousTestCase

from exmta.envelope import QueuedMessage, QueuedRecipient
from exmta.queue.views import (
    IdentityError,
    QueueState,
    WAITING_FOR_SEND_CONNECTOR,
    messageIdentity,
    messageRows,
    queueName,
    queueOf,
    queueRows,
)

QUEUE_ID = "00061A2B3C4D5EA1B2C3D4E5"


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
