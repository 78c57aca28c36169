"""
The send side passes RFC 3461's parameters on to a peer that offers DSN,
and reports "relayed" for recipients that asked for success notices when
the peer does not.
"""

import pytest
from twisted.internet.task import Clock

from exmta.envelope import Relayed
from exmta.errors import ConnectionFailure, PermanentFailure, TransientFailure
from exmta.send.client import DeliveryClient, Transaction
from exmta.send.replies import withErrorPolicies
from exmta.testing import SMTPTransport
from tests.test_send_parts import TARGET, ClientTestCase

ASKED = Transaction(
    "Q1", "a@fabrikam.com", ("kim@contoso.com", "lee@contoso.com"), b"hi\r\n",
    ret="HDRS", envid="QQ+314 x",
    recipientDsn={"kim@contoso.com": ("SUCCESS,FAILURE", "rfc822;Kim=Akers@fabrikam.com")},
)


class DsnClientTests(ClientTestCase):
    def readyWith(self, *keywords):
        client, transport = self.connect()
        self.say(client, transport, b"220 hello")
        self.say(client, transport, b"250-peer", *(b"250-" + k for k in keywords[:-1]),
                 b"250 " + keywords[-1])
        return client, transport

    def transact(self, client, transport):
        outcomes = []
        client.transact(ASKED).addBoth(outcomes.append)
        sent = transport.takeReplies()
        for _ in range(3):
            sent += self.say(client, transport, b"250 ok")
        sent += self.say(client, transport, b"354 go")
        sent += self.say(client, transport, b"250 queued")
        self.assertEqual(sent[-1], "RSET")
        self.say(client, transport, b"250 reset")
        return sent, outcomes

    def test_passedOnToAPeerWithDsn(self):
        client, transport = self.readyWith(b"DSN", b"8BITMIME")
        sent, outcomes = self.transact(client, transport)
        self.assertEqual(sent[:3], [
            "MAIL FROM:<a@fabrikam.com> RET=HDRS ENVID=QQ+2B314+20x",
            "RCPT TO:<kim@contoso.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Kim+3DAkers@fabrikam.com",
            "RCPT TO:<lee@contoso.com>",
        ])
        self.assertEqual(outcomes, [{"kim@contoso.com": None, "lee@contoso.com": None}])

    def test_relayedToAPeerWithoutDsn(self):
        client, transport = self.readyWith(b"8BITMIME")
        sent, outcomes = self.transact(client, transport)
        self.assertEqual(sent[:3], [
            "MAIL FROM:<a@fabrikam.com>", "RCPT TO:<kim@contoso.com>", "RCPT TO:<lee@contoso.com>",
        ])
        self.assertEqual(outcomes, [{"kim@contoso.com": Relayed("smtpgateway1.contoso.com"),
                                     "lee@contoso.com": None}])


class BdatClientTests(ClientTestCase):
    def readyWith(self, *keywords):
        client, transport = self.connect()
        self.say(client, transport, b"220 hello")
        self.say(client, transport, b"250-peer", *(b"250-" + k for k in keywords[:-1]),
                 b"250 " + keywords[-1])
        return client, transport

    def test_bdatToAPeerWithChunking(self):
        client, transport = self.readyWith(b"PIPELINING", b"CHUNKING")
        outcomes = []
        message = b"Subject: x\r\n\r\n.dot\r\n"
        client.transact(Transaction("Q1", "a@fabrikam.com", ("kim@contoso.com", "bad@contoso.com"),
                                    message)).addBoth(outcomes.append)
        self.assertEqual(transport.takeReplies(), [
            "MAIL FROM:<a@fabrikam.com>", "RCPT TO:<kim@contoso.com>", "RCPT TO:<bad@contoso.com>"])
        self.say(client, transport, b"250 ok", b"250 ok")
        client.dataReceived(b"550 5.1.1 no\r\n")
        self.assertEqual(transport.value(), b"BDAT %d LAST\r\n" % len(message) + message)
        transport.clear()
        self.assertEqual(self.say(client, transport, b"250 2.0.0 queued"), ["RSET"])
        self.say(client, transport, b"250 reset")
        self.assertEqual(outcomes[0]["kim@contoso.com"], None)
        self.assertEqual(outcomes[0]["bad@contoso.com"].reply.status, "5.1.1")

    def test_largeMessagesGoInChunks(self):
        from exmta.send.chunking import CHUNK_SIZE

        client, transport = self.readyWith(b"CHUNKING")
        message = b"x" * (CHUNK_SIZE + 10)
        outcomes = []
        client.transact(Transaction("Q1", "a@fabrikam.com", ("kim@contoso.com",), message)).addBoth(
            outcomes.append)
        self.say(client, transport, b"250 ok")
        transport.clear()
        client.dataReceived(b"250 ok\r\n")
        self.assertTrue(transport.value().startswith(b"BDAT %d\r\nxxx" % CHUNK_SIZE))
        transport.clear()
        client.dataReceived(b"250 2.0.0 chunk\r\n")
        self.assertEqual(transport.value(), b"BDAT 10 LAST\r\n" + b"x" * 10)
        transport.clear()
        client.dataReceived(b"552 5.3.4 too big\r\n")
        self.say(client, transport, b"250 reset")
        self.assertEqual(outcomes[0]["kim@contoso.com"].reply.status, "5.3.4")

    def test_binaryOnlyToAPeerWithBinaryMime(self):
        client, transport = self.readyWith(b"8BITMIME", b"CHUNKING")
        outcomes = []
        client.transact(Transaction("Q1", "a@fabrikam.com", ("kim@contoso.com",), b"\x00\xff",
                                    body="BINARYMIME")).addBoth(outcomes.append)
        self.assertEqual(outcomes[0]["kim@contoso.com"].reply.status, "5.6.3")
        client, transport = self.readyWith(b"BINARYMIME", b"CHUNKING")
        client.transact(Transaction("Q1", "a@fabrikam.com", ("kim@contoso.com",), b"\x00\xff",
                                    body="BINARYMIME"))
        self.assertEqual(transport.takeReplies(), ["MAIL FROM:<a@fabrikam.com> BODY=BINARYMIME"])


class ForceHeloTests(ClientTestCase):
    def test_heloInsteadOfEhlo(self):
        client = DeliveryClient(TARGET, "huba.fabrikam.com", None, False, None, None, 600,
                                Clock(), forceHelo=True)
        transport = SMTPTransport(local=("127.0.0.1", 40000), peer=("127.0.0.2", 25))
        client.makeConnection(transport)
        ready = []
        client.ready.addBoth(ready.append)
        self.assertEqual(self.say(client, transport, b"220 hello"), ["HELO huba.fabrikam.com"])
        self.say(client, transport, b"250 hi")
        self.assertEqual(ready, [client])
        client.transact(Transaction("Q1", "a@fabrikam.com", ("kim@contoso.com",), b"hi\r\n"))
        self.assertEqual(transport.takeReplies(), ["MAIL FROM:<a@fabrikam.com>"])


@pytest.mark.parametrize("policies, outcome, expected", [
    (frozenset(), PermanentFailure.of(550, "5.4.4", "SMTPSEND.DNS.NonExistentDomain; x"), "550 5.4.4"),
    ({"DowngradeDnsFailures"}, PermanentFailure.of(550, "5.4.4", "SMTPSEND.DNS.NonExistentDomain; x"),
     "450 4.4.4"),
    ({"DowngradeDnsFailures"}, PermanentFailure.of(550, "5.1.1", "No such user"), "550 5.1.1"),
    ({"DowngradeCustomFailures"}, PermanentFailure.of(554, "", "Go away"), "454"),
    ({"DowngradeCustomFailures"}, PermanentFailure.of(550, "5.0.0", "Policy"), "450 4.0.0"),
    ({"DowngradeCustomFailures"}, PermanentFailure.of(550, "5.1.1", "No such user"), "550 5.1.1"),
    ({"UpgradeCustomFailures"}, TransientFailure.of(451, "", "Try later, maybe"), "551"),
    ({"UpgradeCustomFailures"}, TransientFailure.of(452, "4.2.2", "Mailbox full"), "452 4.2.2"),
    ({"UpgradeCustomFailures"}, ConnectionFailure.of(421, "", "Closing"), "421"),
])
def test_errorPolicies(policies, outcome, expected):
    changed = withErrorPolicies(outcome, policies)
    assert str(changed.reply).startswith(expected)
    assert isinstance(changed, PermanentFailure) == expected.startswith("5")


def test_errorPoliciesLeaveSuccessAlone():
    assert withErrorPolicies(None, {"UpgradeCustomFailures"}) is None
    assert withErrorPolicies(Relayed("x"), {"UpgradeCustomFailures"}) == Relayed("x")


class SmtpUtf8ClientTests(ClientTestCase):
    def readyWith(self, *keywords):
        client, transport = self.connect()
        self.say(client, transport, b"220 hello")
        self.say(client, transport, b"250-peer", *(b"250-" + k for k in keywords[:-1]),
                 b"250 " + keywords[-1])
        return client, transport

    def test_utf8ToAPeerWithSmtpUtf8(self):
        client, transport = self.readyWith(b"8BITMIME", b"SMTPUTF8")
        client.transact(Transaction("Q1", "jörg@fabrikam.com", ("zoë@contoso.com",), b"hi\r\n",
                                    smtputf8=True))
        self.assertEqual(transport.value(), "MAIL FROM:<jörg@fabrikam.com> SMTPUTF8\r\n".encode())
        transport.clear()
        client.dataReceived(b"250 ok\r\n")
        self.assertEqual(transport.value(), "RCPT TO:<zoë@contoso.com>\r\n".encode())

    def test_utf8SenderToAPeerWithout(self):
        client, transport = self.readyWith(b"8BITMIME")
        outcomes = []
        client.transact(Transaction("Q1", "jörg@fabrikam.com", ("kim@contoso.com",), b"hi\r\n",
                                    smtputf8=True)).addBoth(outcomes.append)
        self.say(client, transport, b"250 reset")
        failure = outcomes[0]["kim@contoso.com"]
        self.assertIsInstance(failure, PermanentFailure)
        self.assertEqual(failure.reply.status, "5.6.7")
        self.assertIn("does not offer SMTPUTF8", str(failure.reply))
