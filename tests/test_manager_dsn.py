"""
The queue manager honours RFC 3461: NOTIFY says which recipients the
sender hears of (NEVER, SUCCESS at local delivery, "relayed" when a next
hop without DSN took the message), RET=FULL returns the whole message of a
failure, ENVID and ORCPT come back in the report.
"""

import email
import email.policy
from dataclasses import replace

from exmta.envelope import Relayed
from tests.test_manager import MESSAGE, NO_SUCH_USER, REFUSED, ManagerTestCase, parseReport
from tests.test_queue import SESSION, envelope


class DsnTests(ManagerTestCase):
    async def submitAsking(self, *recipients, ret=None, envid=None, asked=None):
        """
        Submit from alice@fabrikam.com; C{asked} maps a recipient to its
        (NOTIFY, ORCPT).
        """
        given = replace(envelope(*recipients, sender="alice@fabrikam.com"), ret=ret, envid=envid,
                        recipientDsn=asked or {})
        queueId = await self.spool.enqueue(given, SESSION, MESSAGE)
        await self.queue.whenIdle()
        return queueId

    async def test_neverMeansNoReport(self):
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER, "dave@example.org": NO_SUCH_USER}
        self.start()
        await self.submitAsking("carol@example.org", "dave@example.org",
                                asked={"carol@example.org": ("NEVER", None)})
        ((message, _, (dave,), _),) = self.reports()
        self.assertEqual(dave["Final-Recipient"], "rfc822; dave@example.org")

    async def test_neverForEveryoneMeansNoNotification(self):
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER}
        self.start()
        await self.submitAsking("carol@example.org", asked={"carol@example.org": ("NEVER", None)})
        self.assertEqual(self.mailbox(), [])
        self.assertEqual(self.tracking.of("DSN"), [])

    async def test_successAtLocalDelivery(self):
        self.start()
        await self.submitAsking("bob@fabrikam.com", envid="QQ314159",
                                asked={"bob@fabrikam.com": ("SUCCESS", "rfc822;Robert@fabrikam.com")})
        ((message, perMessage, (bob,), headers),) = self.reports()
        self.assertEqual(message["Subject"], "Delivered: Quarterly report")
        self.assertEqual(perMessage["Original-Envelope-Id"], "QQ314159")
        self.assertEqual(bob["Action"], "delivered")
        self.assertEqual(bob["Status"], "2.0.0")
        self.assertEqual(bob["Original-Recipient"], "rfc822; Robert@fabrikam.com")
        self.assertEqual(len(self.mailbox("bob@fabrikam.com")), 1)

    async def test_noSuccessNoticeUnlessAsked(self):
        self.start()
        await self.submitAsking("bob@fabrikam.com", asked={"bob@fabrikam.com": ("FAILURE,DELAY", None)})
        self.assertEqual(self.mailbox(), [])

    async def test_relayedWhenTheNextHopHasNoDsn(self):
        self.remote.outcomes = {"carol@example.org": Relayed("mx.example.org")}
        self.start()
        await self.submitAsking("carol@example.org", "dave@example.org",
                                asked={"carol@example.org": ("SUCCESS,FAILURE", None)})
        ((message, _, (carol,), _),) = self.reports()
        self.assertEqual(message["Subject"], "Relayed: Quarterly report")
        self.assertEqual(carol["Action"], "relayed")
        self.assertEqual(carol["Remote-MTA"], "dns; mx.example.org")
        self.assertEqual(self.spool.messages(), [])
        self.assertEqual([fields["recipients"] for _, fields in self.tracking.of("SEND")],
                         [["carol@example.org", "dave@example.org"]])

    async def test_acceptedWithDsnMeansNoNoticeHere(self):
        """
        A next hop that offers DSN takes over the notification: the send
        side says L{None}, and nothing is sent from here.
        """
        self.start()
        await self.submitAsking("carol@example.org", asked={"carol@example.org": ("SUCCESS", None)})
        self.assertEqual(self.mailbox(), [])

    async def test_delayOnlyWhenAsked(self):
        self.remote.outcomes = {"carol@example.org": REFUSED, "dave@example.org": REFUSED}
        self.start()
        queueId = await self.submitAsking("carol@example.org", "dave@example.org",
                                          asked={"carol@example.org": ("FAILURE", None)})
        await self.advance(4 * 3600)
        ((message, _, (dave,), _),) = self.reports()
        self.assertEqual(message["Subject"], "Delivery delayed: Quarterly report")
        self.assertEqual(dave["Final-Recipient"], "rfc822; dave@example.org")
        self.assertTrue(self.queued(queueId).delayNotified)

    async def test_retFullReturnsTheMessage(self):
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER}
        self.start()
        await self.submitAsking("carol@example.org", ret="FULL")
        (stored,) = self.mailbox()
        report = email.message_from_bytes(stored, policy=email.policy.default)
        human, status, returned = report.iter_parts()
        self.assertEqual(returned.get_content_type(), "message/rfc822")
        self.assertEqual(returned.get_payload()[0]["Subject"], "Quarterly report")
        self.assertIn(b"\r\n\r\nHello\r\n", stored)

    async def test_retHdrsReturnsTheHeaders(self):
        self.remote.outcomes = {"carol@example.org": NO_SUCH_USER}
        self.start()
        await self.submitAsking("carol@example.org", ret="HDRS")
        ((_, _, _, headers),) = self.reports()
        self.assertEqual(headers.get_payload(decode=True), MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n")

    async def test_expiryHonoursNever(self):
        self.remote.outcomes = {"carol@example.org": REFUSED}
        self.start()
        queueId = await self.submitAsking("carol@example.org", asked={"carol@example.org": ("NEVER", None)})
        await self.advance(2 * 86400)
        self.assertIsNone(self.queued(queueId))
        self.assertEqual(self.mailbox(), [])


del ManagerTestCase, parseReport
