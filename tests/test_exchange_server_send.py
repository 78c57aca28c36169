"""
Sending with SmartHostAuthMechanism ExchangeServer, over real loopback
sockets and real TLS: the sending server shows the certificate the
organization issued it, and exmta's own receive side (HubB's connector
for servers) logs the session in as an Exchange server from it.
"""

import os
import shutil
import tempfile

from twisted.internet import defer, reactor

from exmta.auth import makePortal
from exmta.auth.certificates import ExchangeServerChecker, issue, loadIdentity, makeAuthority
from exmta.auth.permissions import HUB_TRANSPORT_SERVERS
from exmta.config import parseOrganization
from exmta.envelope import NextHop
from exmta.errors import ConnectionFailure
from exmta.receive.tls import serverTLSOptions
from exmta.routing import Resolver
from exmta.send import SmtpDelivery
from tests.test_send import MESSAGE, ZONE, DeliveryTestCase, ZoneResolver
from tests.test_send_support import Credentials, ExmtaPeer, Queued, RecordingQueue, listen

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
TlsCertificatePath = ExchangeCertificates/HubA.pem
TlsPrivateKeyPath = ExchangeCertificates/HubA.key
TlsCertificateAuthorityPath = ExchangeCertificates/organization-ca.pem

[TransportServer HubB]
Fqdn = hubb.fabrikam.com
TlsCertificatePath = ExchangeCertificates/HubB.pem
TlsPrivateKeyPath = ExchangeCertificates/HubB.key
TlsCertificateAuthorityPath = ExchangeCertificates/organization-ca.pem

[AcceptedDomain fabrikam.com]

[ReceiveConnector Servers HubB]
Server = HubB
Usage = Custom
Bindings = 0.0.0.0:25
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, ExchangeServer
PermissionGroups = ExchangeServers

[SendConnector ToHubB]
AddressSpaces = contoso.com
SourceTransportServers = HubA
DNSRoutingEnabled = $false
SmartHosts = 127.0.0.1
Port = {port}
SmartHostAuthMechanism = ExchangeServer
"""
HOP = NextHop("SmartHostConnectorDelivery", "ToHubB")


class ExchangeServerSmartHostTests(DeliveryTestCase):
    def setUp(self):
        # Not trial's mktemp: under pytest it writes into the checkout.
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, True)
        path = os.path.join(self.folder, "org.ini")
        organization = parseOrganization(ORGANIZATION.format(port=25), path)
        authority = makeAuthority(self.folder, "fabrikam.com")
        for server in organization.transportServers.values():
            issue(authority, server, [], self.folder)
        hubB = organization.transportServers["HubB"]
        checker = ExchangeServerChecker(organization, hubB.tlsCertificateAuthorityPath, reactor)
        portals = {
            connector.identity: makePortal(organization, connector, None, checker)
            for connector in organization.connectorsOf("HubB")
        }
        self.queue = RecordingQueue()
        peer = ExmtaPeer(
            organization, hubB, portals, self.queue, Resolver(organization),
            serverTLSOptions(hubB, organization.connectorsOf("HubB"), reactor), reactor,
        )
        port = listen(self, peer)
        self.organization = parseOrganization(ORGANIZATION.format(port=port), path)

    def sender(self, identity):
        delivery = SmtpDelivery(
            self.organization, self.organization.transportServers["HubA"], Credentials(),
            reactor, resolver=ZoneResolver(ZONE), identity=identity,
        )
        self.addCleanup(delivery.close)
        return delivery

    @defer.inlineCallbacks
    def test_certificateMakesTheSenderAnExchangeServer(self):
        delivery = self.sender(loadIdentity(self.organization.transportServers["HubA"]))
        outcomes = yield delivery.send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        self.assertEqual(outcomes, {"kim@contoso.com": None})
        [(envelope, session, message)] = self.queue.received
        self.assertEqual(session.principal.name, HUB_TRANSPORT_SERVERS)
        self.assertIn(session.tlsVersion, ("TLSv1.2", "TLSv1.3"))

    @defer.inlineCallbacks
    def test_noCertificateNoSend(self):
        outcomes = yield self.sender(None).send(HOP, Queued(), ["kim@contoso.com"], MESSAGE)
        failure = outcomes["kim@contoso.com"]
        self.assertIsInstance(failure, ConnectionFailure)
        self.assertIn("454 4.7.0", str(failure.reply))
        self.assertIn("TlsCertificateAuthorityPath", str(failure.reply))
        self.assertEqual(self.queue.received, [])
