"""
The organization-wide limits of [TransportConfig] (Set-TransportConfig),
applied by a running C{twistd exmta} over real sockets: MaxReceiveSize and
MaxRecipientEnvelopeLimit on receive whatever the Receive connector
allows, MaxSendSize on receive from an authenticated sender and on send
through a Send connector (an NDR to the sender instead of the next hop).
"""

import base64
import os
import re
import smtplib

import pytest

from tests.e2e.harness import ServerProcess, freePort, maildirMessages, writeOrganization
from tests.e2e.sending import TIMEOUT, waitUntil
from tests.e2e.sink import SmtpSink

ACCOUNT, PASSWORD = "kim@fabrikam.com", "Kim-Pa55word!"

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com
UserPrincipalName = kim@fabrikam.com

# Anonymous relay: the connector's own limits are Exchange's defaults
# (10 MB, 200 recipients).
[ReceiveConnector Relay HubA]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{relay}
RemoteIPRanges = 127.0.0.1

[ADPermission]
Identity = Relay HubA
User = NT AUTHORITY\\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

# The organization's users, with Basic authentication.
[ReceiveConnector Client HubA]
Usage = Client
Bindings = 127.0.0.1:{client}
RemoteIPRanges = 127.0.0.1
AuthMechanism = BasicAuth
AuthTarpitInterval = 00:00:00

[SendConnector ToSink]
AddressSpaces = *
SmartHosts = 127.0.0.1:{sink}
DNSRoutingEnabled = $false

[TransportConfig]
MaxReceiveSize = 200KB
MaxSendSize = 64KB
MaxRecipientEnvelopeLimit = 3
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("transportconfig"))
    sink = SmtpSink()
    ports = {"relay": freePort(), "client": freePort()}
    config = writeOrganization(
        folder, ORGANIZATION.format(sink=sink.port, **ports), accounts=[(ACCOUNT, PASSWORD)]
    )
    server = ServerProcess(config, sockets=2)
    server.folder, server.sink, server.ports = folder, sink, ports
    yield server
    server.stop()
    sink.stop()


def message(subject, size):
    head = f"From: <kim@fabrikam.com>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@fabrikam.com>\r\n\r\n"
    line = "x" * 78 + "\r\n"
    return (head + line * (size // len(line))).encode()


def session(hub, which="relay"):
    client = smtplib.SMTP("127.0.0.1", hub.ports[which], timeout=TIMEOUT)
    client.ehlo("client.fabrikam.com")
    return client


def test_maxReceiveSize(hub):
    """
    The organization's MaxReceiveSize (200 KB) is the limit, not the
    connector's 10 MB: advertised in EHLO, refused in MAIL's SIZE and at
    the end of DATA.
    """
    with session(hub) as client:
        assert client.esmtp_features["size"] == str(200 * 1024)
        code, text = client.mail("kim@fabrikam.com", ["SIZE=300000"])
        assert (code, text[:5]) == (552, b"5.3.4"), text
        client.rset()
        client.mail("kim@fabrikam.com")
        client.rcpt("kim@fabrikam.com")
        code, text = client.data(message("too-big", 250 * 1024))
        assert (code, text[:5]) == (552, b"5.3.4"), text
        client.rset()
        client.mail("kim@fabrikam.com")
        client.rcpt("kim@fabrikam.com")
        code, text = client.data(message("fits", 150 * 1024))
        assert code == 250, text


def test_maxRecipientEnvelopeLimit(hub):
    with session(hub) as client:
        client.mail("kim@fabrikam.com")
        for number in range(3):
            assert client.rcpt(f"user{number}@contoso.com")[0] == 250
        code, text = client.rcpt("user3@contoso.com")
        assert (code, text) == (452, b"4.5.3 Too many recipients")


def test_maxSendSizeOnReceive(hub):
    """
    A sender of the organization (authenticated) may not send more than
    MaxSendSize (64 KB); an anonymous one may, up to MaxReceiveSize.
    """
    with session(hub, "client") as client:
        token = base64.b64encode(f"\0{ACCOUNT}\0{PASSWORD}".encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {token}")[0] == 235
        client.ehlo("client.fabrikam.com")
        assert client.esmtp_features["size"] == str(64 * 1024)
        code, text = client.mail("kim@fabrikam.com", ["SIZE=100000"])
        assert (code, text[:5]) == (552, b"5.3.4"), text
    with session(hub) as client:
        assert client.mail("kim@fabrikam.com", ["SIZE=100000"])[0] == 250


def test_maxSendSizeOnSend(hub):
    """
    A message over MaxSendSize received anonymously is not sent through
    the Send connector: the sender gets an NDR (5.3.4); a smaller one is
    sent.
    """
    with session(hub) as client:
        client.sendmail("kim@fabrikam.com", ["lee@contoso.com"], message("large-out", 100 * 1024))
        client.sendmail("kim@fabrikam.com", ["max@contoso.com"], message("small-out", 10 * 1024))
    mailbox = os.path.join(hub.folder, "var", "mailboxes", "kim@fabrikam.com")

    def report():
        return [m for m in maildirMessages(mailbox) if b"large-out" in m and b"Status:" in m]

    [ndr] = waitUntil(report, "an NDR for the large message", [hub])
    assert re.search(rb"^Status: *5\.3\.4", ndr, re.M), ndr
    waitUntil(lambda: any(b"small-out" in m.data for m in hub.sink.messages), "the small one sent", [hub])
    assert not [m for m in hub.sink.messages if b"large-out" in m.data]
