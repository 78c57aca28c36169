"""
The built-in routing agents in a real C{twistd exmta}: DkimSigner and
AddressRewrite enabled in org.ini of fabrikam.com (HubA), whose send
connectors lead to a second exmta, the gateway, owning contoso.com and
tailspintoys.com.  What the gateway stores in its Maildirs is what it
received over SMTP; the DKIM signatures on it are checked with dkimpy's
verifier against the public key the test made.

  - Mail to contoso.com leaves through ToInternetGateway, which DkimSigner
    signs for: it arrives signed with d=fabrikam.com, its From and Cc
    rewritten from corp.fabrikam.com to fabrikam.com.
  - Mail to tailspintoys.com leaves through ToPartner, not listed in
    SendConnectors: rewritten, not signed.
  - Local mail is neither signed nor rewritten.
  - Mail to john@fabrikam.com (an InternalRelay domain here) reaches
    john@corp.fabrikam.com's Maildir.
  - A key file others may read stops twistd with the line at fault.
"""

import base64
import os
import smtplib
import uuid

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.harness import ServerProcess, freePort, maildirMessages, runTwistd, writeOrganization
from tests.e2e.sending import headerOf, waitUntil

HUB = r"""
[TransportServer HubA]
Fqdn = huba.corp.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01

[AcceptedDomain corp.fabrikam.com]
DomainType = Authoritative

# The organization's face to the world: its users' external addresses.
[AcceptedDomain fabrikam.com]
DomainType = InternalRelay

[Mailbox John Smith]
PrimarySmtpAddress = john@corp.fabrikam.com

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@corp.fabrikam.com

# Users submit here.
[ReceiveConnector Submission]
Usage = Internal
Bindings = 127.0.0.1:{submission}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = ExternalAuthoritative

# The Internet delivers here.
[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{internet}

[SendConnector ToInternetGateway]
AddressSpaces = contoso.com
SmartHosts = 127.0.0.1:{gateway}
DNSRoutingEnabled = $false

[SendConnector ToPartner]
AddressSpaces = tailspintoys.com
SmartHosts = 127.0.0.1:{gateway}
DNSRoutingEnabled = $false

[TransportAgent AddressRewrite]
Priority = 1
AddressRewriteEntries = corp.fabrikam.com -> fabrikam.com

[TransportAgent DkimSigner]
Priority = 2
DomainName = fabrikam.com
Selector = s2026
PrivateKeyPath = keys/fabrikam.com.key
SendConnectors = ToInternetGateway
"""

GATEWAY = r"""
[TransportServer Gateway]
Fqdn = smtpgateway1.contoso.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain contoso.com]
[AcceptedDomain tailspintoys.com]

[Mailbox Partner]
PrimarySmtpAddress = partner@contoso.com

[Mailbox Someone]
PrimarySmtpAddress = someone@tailspintoys.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}
"""


def makeKey():
    """
    @return: (PEM private key, dkimpy C{dnsfunc} publishing its public key
        as s2026._domainkey.fabrikam.com).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def lookup(name, timeout=5):
        return record if name == b"s2026._domainkey.fabrikam.com." else None

    return private, lookup


def writeKey(folder, private, mode=0o600):
    path = os.path.join(folder, "keys", "fabrikam.com.key")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(private)
    os.chmod(path, mode)


class Running:
    def __init__(self, root):
        private, self.dnsfunc = makeKey()
        self.gatewayFolder = os.path.join(root, "gateway")
        self.hubFolder = os.path.join(root, "hub")
        gatewayPort = freePort()
        self.gateway = ServerProcess(
            writeOrganization(self.gatewayFolder, GATEWAY.format(port=gatewayPort)), sockets=1
        )
        self.submissionPort, self.internetPort = freePort(), freePort()
        writeKey(self.hubFolder, private)
        self.hub = ServerProcess(
            writeOrganization(
                self.hubFolder,
                HUB.format(
                    submission=self.submissionPort, internet=self.internetPort, gateway=gatewayPort
                ),
            ),
            sockets=2,
        )

    def stop(self):
        self.hub.stop()
        self.gateway.stop()

    def arrived(self, folder, address, token):
        """
        @return: the message carrying C{token} in a mailbox, once it is there.
        """

        def find():
            mailbox = os.path.join(folder, "var", "mailboxes", address)
            return next((m for m in maildirMessages(mailbox) if token.encode() in m), None)

        return waitUntil(find, f"{token} in {address}", servers=(self.hub, self.gateway))

    def atGateway(self, address, token):
        return self.arrived(self.gatewayFolder, address, token)

    def atHub(self, address, token):
        return self.arrived(self.hubFolder, address, token)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    servers = Running(str(tmp_path_factory.mktemp("builtin-agents")))
    yield servers
    servers.stop()


def submit(port, sender, recipients, header):
    """
    Send a message with a unique Subject.

    @return: (the Subject, the message as sent).
    """
    token = uuid.uuid4().hex
    message = (
        header
        + f"Subject: test {token}\r\n"
        + f"Message-ID: <{token}@huba.corp.fabrikam.com>\r\n"
        + "Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
        + "MIME-Version: 1.0\r\n"
        + "Content-Type: text/plain; charset=utf-8\r\n"
        + "\r\n"
        + "Dear partner,\r\n\r\nthe figures are attached.\r\n-- \r\nJohn\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, recipients, message)
    return token, message


def bodyOf(message):
    return message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]


def test_signedAndRewrittenThroughListedConnector(running):
    token, sent = submit(
        running.submissionPort,
        "john@corp.fabrikam.com",
        ["partner@contoso.com"],
        'From: "Smith, John" <john@corp.fabrikam.com>\r\n'
        + "To: Partner <partner@contoso.com>\r\n"
        + "Cc: kim@corp.fabrikam.com (Kim Akers)\r\n",
    )
    received = running.atGateway("partner@contoso.com", token)
    assert headerOf(received, "From") == '"Smith, John" <john@fabrikam.com>'
    assert headerOf(received, "Cc") == "kim@fabrikam.com (Kim Akers)"
    assert headerOf(received, "To") == "Partner <partner@contoso.com>"
    assert bodyOf(received) == bodyOf(sent)
    signature = headerOf(received, "DKIM-Signature")
    assert "d=fabrikam.com" in signature and "s=s2026" in signature
    assert dkim.verify(received, dnsfunc=running.dnsfunc)
    # A body changed after signing no longer verifies.
    tampered = received.replace(b"the figures are attached", b"the figures are wrong")
    assert tampered != received
    assert not dkim.verify(tampered, dnsfunc=running.dnsfunc)


def test_unlistedConnectorNotSigned(running):
    token, _ = submit(
        running.submissionPort,
        "kim@corp.fabrikam.com",
        ["someone@tailspintoys.com"],
        "From: Kim Akers <kim@corp.fabrikam.com>\r\nTo: someone@tailspintoys.com\r\n",
    )
    received = running.atGateway("someone@tailspintoys.com", token)
    assert headerOf(received, "From") == "Kim Akers <kim@fabrikam.com>"
    assert headerOf(received, "DKIM-Signature") is None


def test_localDeliveryNeitherSignedNorRewritten(running):
    token, sent = submit(
        running.submissionPort,
        "kim@corp.fabrikam.com",
        ["john@corp.fabrikam.com"],
        "From: Kim Akers <kim@fabrikam.com>\r\nCc: kim@corp.fabrikam.com\r\n",
    )
    delivered = running.atHub("john@corp.fabrikam.com", token)
    assert headerOf(delivered, "DKIM-Signature") is None
    assert headerOf(delivered, "From") == "Kim Akers <kim@fabrikam.com>"
    assert headerOf(delivered, "Cc") == "kim@corp.fabrikam.com"


def test_externalAddressReachesInternalMailbox(running):
    token, _ = submit(
        running.internetPort,
        "partner@contoso.com",
        ["john@fabrikam.com"],
        "From: partner@contoso.com\r\nTo: John <john@fabrikam.com>\r\n",
    )
    delivered = running.atHub("john@corp.fabrikam.com", token)
    # The recipient was redirected; the header says what the sender wrote.
    assert headerOf(delivered, "To") == "John <john@fabrikam.com>"
    mailboxes = os.path.join(running.hubFolder, "var", "mailboxes")
    assert not os.path.exists(os.path.join(mailboxes, "john@fabrikam.com"))


@pytest.mark.parametrize(
    "mode, reason",
    [(0o644, "is readable by group or others"), (None, "does not exist")],
)
def test_badKeyFileStopsStart(tmp_path, mode, reason):
    folder = str(tmp_path)
    if mode is not None:
        writeKey(folder, makeKey()[0], mode)
    config = writeOrganization(
        folder, HUB.format(submission=freePort(), internet=freePort(), gateway=freePort())
    )
    result = runTwistd(config)
    assert result.returncode != 0
    line = HUB.splitlines().index("PrivateKeyPath = keys/fabrikam.com.key") + 1
    assert f"{config}:{line}: [TransportAgent DkimSigner] PrivateKeyPath: " in result.stdout
    assert reason in result.stdout
