"""
Domain Security (DomainSecureEnabled with Set-TransportConfig's
TLSSendDomainSecureList and TLSReceiveDomainSecureList) over real loopback
sockets and real TLS with trustme certificates: fabrikam.com's exmta sends
to contoso.com's exmta, each showing a certificate for its domain.
"""

import os
import shutil
import smtplib
import ssl
import tempfile

import pytest
import trustme
from twisted.internet import defer, reactor, threads

from exmta.auth.domainsecure import isDomainSecured
from exmta.auth.permissions import PARTNER_SERVERS
from exmta.cleanup.headers import authenticationHeaders
from exmta.config import parseOrganization
from exmta.envelope import NextHop
from exmta.errors import ConfigError, ConnectionFailure
from exmta.receive.configuration import configureReceive
from exmta.routing import Resolver
from exmta.send import SmtpDelivery
from tests.test_config import assertError
from tests.test_send import MESSAGE, DeliveryTestCase, ZoneResolver
from tests.test_send_support import (
    Credentials,
    ExmtaPeer,
    Peer,
    Queued,
    RecordingQueue,
    listen,
)

FABRIKAM = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
TlsCertificatePath = fabrikam.pem
TlsPrivateKeyPath = fabrikam.key
DomainSecureCertificateAuthorityPath = partners-ca.pem

[TransportConfig]
TLSSendDomainSecureList = contoso.com

[AcceptedDomain fabrikam.com]

[SendConnector ToContoso]
AddressSpaces = contoso.com
Port = {port}
DomainSecureEnabled = $true
"""

CONTOSO = """\
[TransportServer Mx]
Fqdn = mx.contoso.com
TlsCertificatePath = contoso.pem
TlsPrivateKeyPath = contoso.key
DomainSecureCertificateAuthorityPath = partners-ca.pem

[TransportConfig]
TLSReceiveDomainSecureList = fabrikam.com

[AcceptedDomain contoso.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@contoso.com

# Internet mail, and partners' with their certificates.
[ReceiveConnector Default Mx]
Server = Mx
Usage = Internet
PermissionGroups = AnonymousUsers, Partners
Bindings = 0.0.0.0:25
RemoteIPRanges = 0.0.0.0-255.255.255.255
DomainSecureEnabled = $true
"""

ZONE = {"contoso.com": {"MX": [(10, "mx.contoso.com")]}, "mx.contoso.com": {"A": ["127.0.0.1"]}}
HOP = NextHop("DnsConnectorDelivery", "ToContoso", domain="contoso.com")


def write(folder, name, data):
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(data)


class Folder:
    """
    A temporary folder with the partners' authority and the certificates
    it issued: C{fabrikam.pem}/C{.key}, C{contoso.pem}/C{.key}.
    """

    def __init__(self, testCase, contosoNames=("mx.contoso.com", "contoso.com"), contosoCA=None):
        # Not trial's mktemp: under pytest it writes into the checkout.
        self.path = tempfile.mkdtemp()
        testCase.addCleanup(shutil.rmtree, self.path, True)
        self.ca = trustme.CA()
        write(self.path, "partners-ca.pem", self.ca.cert_pem.bytes())
        self.issue("fabrikam", self.ca, "huba.fabrikam.com", "fabrikam.com")
        self.issue("contoso", contosoCA or self.ca, *contosoNames)

    def issue(self, stem, ca, *names):
        issued = ca.issue_cert(*names)
        write(self.path, stem + ".pem", issued.cert_chain_pems[0].bytes())
        write(self.path, stem + ".key", issued.private_key_pem.bytes())
        return issued

    def organization(self, text, port=25):
        return parseOrganization(text.format(port=port), os.path.join(self.path, "org.ini"))


class DomainSecureSendTests(DeliveryTestCase):
    def contoso(self, folder):
        """
        contoso.com's exmta on 127.0.0.1.

        @return: (its L{RecordingQueue}, its port).
        """
        organization = folder.organization(CONTOSO)
        server = organization.transportServers["Mx"]
        configuration = configureReceive(organization, server, reactor)
        queue = RecordingQueue()
        peer = ExmtaPeer(
            organization, server, configuration.portals, queue, Resolver(organization),
            configuration.tlsOptions, reactor,
        )
        return queue, listen(self, peer)

    def fabrikam(self, folder, port):
        organization = folder.organization(FABRIKAM, port)
        delivery = SmtpDelivery(
            organization, organization.transportServers["HubA"], Credentials(), reactor,
            resolver=ZoneResolver(ZONE),
        )
        self.addCleanup(delivery.close)
        return delivery

    @defer.inlineCallbacks
    def test_partnerCertificatesBothWays(self):
        """
        Each side shows a certificate for its domain from a trusted
        authority: the mail goes, and contoso's server runs the session as
        the partner fabrikam.com and says so in the message's headers.
        """
        folder = Folder(self)
        queue, port = self.contoso(folder)
        outcomes = yield self.fabrikam(folder, port).send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@contoso.com": None})
        [(envelope, session, message)] = queue.received
        self.assertEqual(session.principal.name, PARTNER_SERVERS)
        self.assertEqual(session.principal.authAs, "Partner")
        self.assertEqual(session.principal.authDomain, "fabrikam.com")
        self.assertIn(session.tlsVersion, ("TLSv1.2", "TLSv1.3"))
        self.assertIn(b"X-MS-Exchange-Organization-AuthAs: Partner\r\n", message)
        self.assertIn(b"X-MS-Exchange-Organization-AuthDomain: fabrikam.com\r\n", message)

    @defer.inlineCallbacks
    def assertDeferred(self, folder, port, queue, needle):
        outcomes = yield self.fabrikam(folder, port).send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        failure = outcomes["kim@contoso.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertTrue(str(failure.reply).startswith("4"), failure.reply)
        self.assertIn(needle, str(failure.reply))
        self.assertEqual(queue.received if queue is not None else [], [])

    def test_certificateForAnotherDomain(self):
        folder = Folder(self, contosoNames=("mx.example.net",))
        queue, port = self.contoso(folder)
        return self.assertDeferred(folder, port, queue, "DNSMismatch")

    def test_certificateFromAnUnknownAuthority(self):
        folder = Folder(self, contosoCA=trustme.CA())
        queue, port = self.contoso(folder)
        return self.assertDeferred(folder, port, queue, "certificate verify failed")

    @defer.inlineCallbacks
    def test_noSTARTTLS(self):
        """
        A next hop without STARTTLS gets nothing: the mail waits.
        """
        folder = Folder(self)
        peer = Peer()
        port = listen(self, peer)
        yield self.assertDeferred(folder, port, None, "does not offer STARTTLS")
        self.assertEqual(peer.messages, [])

    @defer.inlineCallbacks
    def test_otherDomainsAsBefore(self):
        """
        A domain not in TLSSendDomainSecureList goes as it did, in the
        clear to a peer without STARTTLS.
        """
        folder = Folder(self)
        peer = Peer()
        port = listen(self, peer)
        zone = {"tailspintoys.com": {"A": ["127.0.0.1"]}}
        organization = folder.organization(FABRIKAM.replace("AddressSpaces = contoso.com", "AddressSpaces = contoso.com, tailspintoys.com"), port)
        delivery = SmtpDelivery(
            organization, organization.transportServers["HubA"], Credentials(), reactor,
            resolver=ZoneResolver(zone),
        )
        self.addCleanup(delivery.close)
        hop = NextHop("DnsConnectorDelivery", "ToContoso", domain="tailspintoys.com")
        outcomes = yield delivery.send(hop, Queued(), ["kim@tailspintoys.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@tailspintoys.com": None})
        self.assertEqual(len(peer.messages), 1)


class DomainSecureReceiveTests(DeliveryTestCase):
    """
    contoso.com's receive connector, from smtplib.
    """

    def setUp(self):
        self.folder = Folder(self)
        organization = self.folder.organization(CONTOSO)
        server = organization.transportServers["Mx"]
        configuration = configureReceive(organization, server, reactor)
        self.queue = RecordingQueue()
        peer = ExmtaPeer(
            organization, server, configuration.portals, self.queue, Resolver(organization),
            configuration.tlsOptions, reactor,
        )
        self.port = listen(self, peer)

    def clientContext(self, certificate=None):
        context = ssl.create_default_context(cadata=self.folder.ca.cert_pem.bytes().decode())
        context.check_hostname = False
        if certificate is not None:
            certificate.configure_cert(context)
        return context

    def mail(self, sender, context=None):
        """
        @return: a Deferred firing with the replies to MAIL and, if it was
            taken, to the end of DATA.
        """

        def dialogue():
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                client.ehlo("huba.fabrikam.com")
                if context is not None:
                    client.starttls(context=context)
                    client.ehlo("huba.fabrikam.com")
                code, text = client.mail(sender)
                if code != 250:
                    return (code, text), None
                client.rcpt("kim@contoso.com")
                return (code, text), client.data(MESSAGE)

        return threads.deferToThread(dialogue)

    @defer.inlineCallbacks
    def test_certificateForTheSendersDomain(self):
        certificate = self.folder.ca.issue_cert("huba.fabrikam.com", "fabrikam.com")
        mail, data = yield self.mail("a@fabrikam.com", self.clientContext(certificate))
        self.assertEqual(mail[0], 250)
        self.assertEqual(data[0], 250)
        [(envelope, session, message)] = self.queue.received
        self.assertEqual(session.principal.authDomain, "fabrikam.com")

    @defer.inlineCallbacks
    def test_noCertificate(self):
        mail, _ = yield self.mail("a@fabrikam.com", self.clientContext())
        self.assertEqual(mail, (454, b"4.7.5 Certificate validation failure"))
        self.assertEqual(self.queue.received, [])

    @defer.inlineCallbacks
    def test_certificateForAnotherDomain(self):
        certificate = self.folder.ca.issue_cert("mail.tailspintoys.com")
        mail, _ = yield self.mail("a@fabrikam.com", self.clientContext(certificate))
        self.assertEqual(mail, (454, b"4.7.5 Certificate validation failure"))

    @defer.inlineCallbacks
    def test_certificateFromAnUnknownAuthority(self):
        certificate = trustme.CA().issue_cert("fabrikam.com")
        mail, _ = yield self.mail("a@fabrikam.com", self.clientContext(certificate))
        self.assertEqual(mail, (454, b"4.7.5 Certificate validation failure"))

    @defer.inlineCallbacks
    def test_noTLS(self):
        mail, _ = yield self.mail("a@fabrikam.com")
        self.assertEqual(mail, (451, b"4.7.3 STARTTLS is required to send mail"))

    @defer.inlineCallbacks
    def test_otherSendersAsBefore(self):
        """
        A sender of a domain not in TLSReceiveDomainSecureList needs no
        certificate, and stays anonymous.
        """
        mail, data = yield self.mail("a@tailspintoys.com")
        self.assertEqual((mail[0], data[0]), (250, 250))
        [(envelope, session, message)] = self.queue.received
        self.assertEqual(session.principal.authAs, "Anonymous")


CONNECTOR = "[TransportServer Mx]\nFqdn = mx.contoso.com\n\n[ReceiveConnector C]\nServer = Mx\nBindings = 0.0.0.0:25\nRemoteIPRanges = 0.0.0.0-255.255.255.255\n"


@pytest.mark.parametrize(
    "lines",
    ["AuthMechanism = BasicAuth\nDomainSecureEnabled = $true\n", "AuthMechanism = Tls, ExternalAuthoritative\nPermissionGroups = ExchangeServers\nDomainSecureEnabled = $true\n"],
)
def test_receiveConnectorNeedsTls(tmp_path, lines):
    assertError(
        tmp_path, CONNECTOR + lines, "DomainSecureEnabled =", "ReceiveConnector C",
        "DomainSecureEnabled", "needs Tls in AuthMechanism, and not ExternalAuthoritative",
    )


@pytest.mark.parametrize("enabled", ["$true", "$false"])
@pytest.mark.parametrize(
    "content, message", [("not a certificate\n", "holds no PEM certificate"), (None, "No such file")]
)
def test_unreadableAuthorities(tmp_path, enabled, content, message):
    """
    A DomainSecureCertificateAuthorityPath that cannot be used stops the
    start, naming the key, whether a connector uses it yet or not.
    """
    if content is not None:
        (tmp_path / "bad.pem").write_text(content)
    organization = parseOrganization(
        "[TransportServer Mx]\nFqdn = mx.contoso.com\nDomainSecureCertificateAuthorityPath = bad.pem\n\n"
        "[ReceiveConnector C]\nServer = Mx\nUsage = Partner\nBindings = 0.0.0.0:25\n"
        f"RemoteIPRanges = 0.0.0.0-255.255.255.255\nDomainSecureEnabled = {enabled}\n",
        str(tmp_path / "org.ini"),
    )
    with pytest.raises(ConfigError) as raised:
        configureReceive(organization, organization.transportServers["Mx"], reactor)
    assert (raised.value.line, raised.value.key) == (3, "DomainSecureCertificateAuthorityPath")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "domain, secured",
    [("contoso.com", True), ("CONTOSO.com.", True), ("mail.contoso.com", False),
     ("woodgrovebank.com", False), ("eu.woodgrovebank.com", True), ("xwoodgrovebank.com", False)],
)
def test_listedDomains(domain, secured):
    """
    TLS*DomainSecureList entries name a domain, or its subdomains with *.
    """
    assert isDomainSecured(("contoso.com", "*.woodgrovebank.com"), domain) is secured


def test_headersOfOthersUnchanged():
    """
    Only a partner's principal adds AuthDomain.
    """
    from exmta.auth.realm import Principal

    principal = Principal("x", frozenset(), frozenset(), authAs="Anonymous")
    assert b"AuthDomain" not in authenticationHeaders(principal, "mx.contoso.com")
