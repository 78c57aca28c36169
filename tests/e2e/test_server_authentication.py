"""
Exchange Server authentication between two real servers: HubA forwards
mail for contoso.com to HubB (the only SourceTransportServer of the send
connector to it) over mutual TLS with the certificates
New-ExchangeCertificate issued; HubB's connector for servers trusts no IP
address (its RemoteIPRanges cover everything, no ExternalAuthoritative),
so only the certificate lets HubA relay.  A certificate from another
authority, a self-signed one naming HubA, and none at all get no rights.
"""

import datetime
import smtplib
import ssl
import time

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exmta.shell.runtime import Session, loadCmdlets
from tests.e2e.harness import ServerProcess, freePort, writeOrganization
from tests.e2e.sink import SmtpSink

TIMEOUT = 30

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/HubA/queue
MailboxDatabasePath = var/HubA/mailboxes

[TransportServer HubB]
Fqdn = hubb.fabrikam.com
QueueDatabasePath = var/HubB/queue
MailboxDatabasePath = var/HubB/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[AcceptedDomain contoso.com]
DomainType = InternalRelay

[ReceiveConnector Default HubA]
Server = HubA
Usage = Custom
Bindings = 127.0.0.1:{a}
RemoteIPRanges = 127.0.0.1
PermissionGroups = AnonymousUsers

# Servers prove themselves by certificate: every address gets this
# connector, and none is trusted for being what it is.
[ReceiveConnector Servers HubB]
Server = HubB
Usage = Custom
Bindings = 127.0.0.1:{b}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, ExchangeServer
PermissionGroups = ExchangeServers

[SendConnector ToContoso]
AddressSpaces = contoso.com
SourceTransportServers = HubB
DNSRoutingEnabled = $false
SmartHosts = 127.0.0.1
Port = {sink}
"""


@pytest.fixture(scope="module")
def hubs(tmp_path_factory):
    loadCmdlets()
    folder = tmp_path_factory.mktemp("servers")
    sink = SmtpSink()
    ports = {"a": freePort(), "b": freePort(), "sink": sink.port}
    config = writeOrganization(str(folder), ORGANIZATION.format(**ports))
    session = Session(config)
    issued = {name: session.invoke(f"New-ExchangeCertificate -Server {name}")[0] for name in ("HubA", "HubB")}
    shown = session.invoke("Get-ExchangeCertificate")
    servers = []
    try:
        servers.append(ServerProcess(config, sockets=1, server="HubA"))
        servers.append(ServerProcess(config, sockets=1, server="HubB"))
        yield folder, ports, sink, servers, issued, shown
    finally:
        for server in servers:
            server.stop()
        sink.stop()


def awaitSubject(sink, subject):
    deadline = time.monotonic() + TIMEOUT
    while not any(f"Subject: {subject}".encode() in m.data for m in sink.messages):
        assert time.monotonic() < deadline, f"{subject!r} did not reach the sink"
        time.sleep(0.05)


def test_certificatesIssued(hubs):
    """
    New-ExchangeCertificate issued each server a certificate for its Fqdn
    from one organization authority; Get-ExchangeCertificate shows them.
    """
    _, _, _, _, issued, shown = hubs
    assert issued["HubA"].CertificateDomains == ("huba.fabrikam.com",)
    assert issued["HubA"].Issuer == issued["HubB"].Issuer
    assert not issued["HubA"].IsSelfSigned
    assert {view.Thumbprint for view in shown} == {v.Thumbprint for v in issued.values()}


def test_forwardedByCertificate(hubs):
    """
    HubA forwards to HubB, which relays to the sink because HubA's
    certificate names it, not because of its address; one
    Get-MessageTrackingLog over both servers shows the message's path.
    """
    folder, ports, sink, (hubA, hubB), _, _ = hubs
    with smtplib.SMTP("127.0.0.1", ports["a"], timeout=TIMEOUT) as client:
        client.sendmail(
            "sender@example.net", ["kim@contoso.com"],
            "From: sender@example.net\r\nSubject: via HubB\r\n"
            "Message-ID: <via-hubb@example.net>\r\n\r\nHi\r\n",
        )
    awaitSubject(sink, "via HubB")
    hubB.waitFor("client certificate of TransportServer HubA accepted")
    # Its path over both servers, from one tracking query.
    session = Session(str(folder / "org.ini"))
    deadline = time.monotonic() + TIMEOUT
    while True:
        events = session.invoke(
            "Get-MessageTrackingLog -Server HubA,HubB -MessageId via-hubb@example.net"
        )
        path = [(event.ServerHostname, event.EventId) for event in events]
        if len(path) >= 4:
            break
        assert time.monotonic() < deadline, path
        time.sleep(0.05)
    # HubB logs RECEIVE before its 250, HubA logs SEND after it.
    assert path[0] == ("HubA", "RECEIVE") and path[-1] == ("HubB", "SEND")
    assert set(path) == {("HubA", "RECEIVE"), ("HubA", "SEND"), ("HubB", "RECEIVE"), ("HubB", "SEND")}


def _client(tmp_path, certificate=None, key=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if certificate:
        context.load_cert_chain(certificate, key)
    return context


def _mailAnswer(port, context):
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.ehlo("huba.fabrikam.com")
        client.starttls(context=context)
        client.ehlo("huba.fabrikam.com")
        return client.mail("sender@example.net")


def _selfSigned(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "huba.fabrikam.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("huba.fabrikam.com")]), False)
        .sign(key, hashes.SHA256())
    )
    certificatePath, keyPath = tmp_path / "forged.pem", tmp_path / "forged.key"
    certificatePath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certificatePath), str(keyPath)


def test_otherCertificatesGetNoRights(hubs, tmp_path):
    """
    A certificate naming HubA from another authority, a self-signed one
    naming HubA, and no certificate: HubB's connector for servers does not
    even take MAIL from them (530 5.7.1), and HubB says why in its log.
    """
    _, ports, _, (_, hubB), _, _ = hubs
    foreign = trustme.CA().issue_cert("huba.fabrikam.com")
    foreignCertificate, foreignKey = tmp_path / "foreign.pem", tmp_path / "foreign.key"
    foreign.cert_chain_pems[0].write_to_path(str(foreignCertificate))
    foreign.private_key_pem.write_to_path(str(foreignKey))
    for context in (
        _client(tmp_path, str(foreignCertificate), str(foreignKey)),
        _client(tmp_path, *_selfSigned(tmp_path)),
        _client(tmp_path),
    ):
        code, text = _mailAnswer(ports["b"], context)
        assert code == 530 and text.startswith(b"5.7.1"), (code, text)
    hubB.waitFor("client certificate refused: not issued by the organization", count=2)
