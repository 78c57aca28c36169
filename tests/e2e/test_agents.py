"""
A transport agent in a real C{twistd exmta}: the built-in SenderBlockList
agent, enabled in org.ini, refuses a blocked sender's MAIL FROM with 550
5.7.1 over a real socket, while other senders are accepted.
"""

import smtplib

import pytest

from tests.e2e.harness import ServerProcess, freePort, writeOrganization

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Administrator]
PrimarySmtpAddress = administrator@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}

[TransportAgent SenderBlockList]
Enabled = $true
Priority = 1
BlockedSenders = spammer@contoso.com, *@spam.example
"""


@pytest.fixture(scope="module", params=[0, 2], ids=["one process", "two receive workers"])
def server(tmp_path_factory, request):
    """
    Receive agents run where the sessions do: in the server's process, or
    in each of its receive workers.
    """
    folder = str(tmp_path_factory.mktemp("agents"))
    port = freePort()
    process = ServerProcess(
        writeOrganization(folder, ORGANIZATION.format(port=port)), sockets=1, workers=request.param
    )
    yield port
    process.stop()


@pytest.mark.parametrize("sender", ["spammer@contoso.com", "anyone@SPAM.example"])
def test_blockedSenderRefusedAtMail(server, sender):
    with smtplib.SMTP("127.0.0.1", server, timeout=30) as client:
        client.ehlo("client.contoso.com")
        code, text = client.mail(sender)
        assert code == 550
        assert text.startswith(b"5.7.1")
        # The transaction never started: RCPT needs MAIL first.
        assert client.rcpt("administrator@fabrikam.com")[0] == 503


def test_otherSenderAccepted(server):
    with smtplib.SMTP("127.0.0.1", server, timeout=30) as client:
        client.ehlo("client.contoso.com")
        assert client.mail("kim@contoso.com")[0] == 250
        assert client.rcpt("administrator@fabrikam.com")[0] == 250
        code, _ = client.data(b"Subject: hello\r\n\r\nHello.\r\n")
        assert code == 250
