"""
The DkimSigner agent: which messages it signs, signatures checked by
dkimpy's verifier, the work handed to the reactor's thread pool, and its
org.ini keys (including the key file's checks) refused with their line.
"""

import base64
import os
import shutil
import subprocess
import tempfile

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from exmta.agents import CONTINUE, RoutingEvent, agentFactories, loadAgents
from exmta.config import parseOrganization
from exmta.envelope import NextHop, QueuedMessage, QueuedRecipient
from exmta.errors import ConfigError
from exmta.interfaces import IAgentFactory, IRoutingAgent
from exmta.plugins.exmta_dkim import fromDomain
from exmta.message.header import fields, splitHeader

from tests.test_addressrewrite_agent import exampleSection

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = [127.0.0.1]
DNSRoutingEnabled = $false

[SendConnector ToPartner]
AddressSpaces = contoso.com
SmartHosts = [127.0.0.1]
DNSRoutingEnabled = $false

[TransportAgent DkimSigner]
Priority = 1
"""

DEFAULT_SETTINGS = {
    "DomainName": "fabrikam.com, tailspintoys.com",
    "Selector": "s2026",
    "PrivateKeyPath": "dkim.key",
    "SendConnectors": "ToInternetGateway",
}

MESSAGE = (
    b'From: "Kim Akers" <kim@fabrikam.com>\r\n'
    b"To: someone@contoso.com\r\n"
    b"Subject: Quarterly figures\r\n"
    b"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <1@huba.fabrikam.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"Received: from client ([127.0.0.1]) by huba.fabrikam.com\r\n"
    b"\r\n"
    b"The figures are attached.\r\n"
    b"\r\n"
    b"-- \r\n"
    b"Kim\r\n"
)

GATEWAY = NextHop("SmartHostConnectorDelivery", "ToInternetGateway")
PARTNER = NextHop("SmartHostConnectorDelivery", "ToPartner")

_keys = {}


def rsaKey(bits=2048):
    """
    @return: (PKCS#8 PEM private key, DER public key), made once per size.
    """
    if bits not in _keys:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _keys[bits] = (private, public)
    return _keys[bits]


def dnsRecords(public, selector=b"s2026", domains=(b"fabrikam.com", b"tailspintoys.com")):
    """
    @return: a dkimpy C{dnsfunc} that knows the selector's TXT record at
        each domain and nothing else.
    """
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    names = {selector + b"._domainkey." + domain + b"." for domain in domains}

    def lookup(name, timeout=5):
        return record if name in names else None

    return lookup


def verifies(message, public=None):
    return dkim.verify(message, dnsfunc=dnsRecords(public or rsaKey()[1]))


def signatureTags(message):
    """
    @return: the tags of the message's first field, a DKIM-Signature, as str.
    """
    first = fields(splitHeader(message)[0])[0]
    name, value = first.split(b":", 1)
    assert name == b"DKIM-Signature"
    tags = dkim.util.parse_tag_value(value.replace(b"\r\n", b""))
    return {tag.decode(): text.decode() for tag, text in tags.items()}


def routed(message=MESSAGE, nextHop=GATEWAY):
    queued = QueuedMessage(
        "0000000000000A0102030405",
        "kim@fabrikam.com",
        (QueuedRecipient("someone@contoso.com"),),
        0.0,
        len(message),
    )
    return RoutingEvent("OnRoutedMessage", queued, ("someone@contoso.com",), message, nextHop)


class QueuedThreadPool:
    """
    A thread pool whose work waits until the test runs it.
    """

    def __init__(self):
        self.work = []

    def callInThreadWithCallback(self, onResult, function, *args, **kwargs):
        self.work.append((onResult, function, args, kwargs))

    def runAll(self):
        work, self.work = self.work, []
        for onResult, function, args, kwargs in work:
            try:
                result = function(*args, **kwargs)
            except BaseException:
                onResult(False, Failure())
            else:
                onResult(True, result)


class ThreadedReactor(MemoryReactorClock):
    """
    A memory reactor with the part of
    L{twisted.internet.interfaces.IReactorThreads} that
    C{deferToThreadPool} uses.
    """

    def __init__(self):
        super().__init__()
        self.pool = QueuedThreadPool()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, function, *args, **kwargs):
        function(*args, **kwargs)


class Folder:
    """
    A folder holding org.ini and the signing key.
    """

    def __init__(self, testCase):
        self.path = tempfile.mkdtemp()
        testCase.addCleanup(shutil.rmtree, self.path)

    def write(self, name, data, mode=0o600):
        path = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
        return path

    def organization(self, settings):
        text = ORGANIZATION + "".join(f"{key} = {value}\n" for key, value in settings.items())
        return parseOrganization(text, os.path.join(self.path, "org.ini"))


class SigningTests(SynchronousTestCase):
    def setUp(self):
        self.folder = Folder(self)
        self.folder.write("dkim.key", rsaKey()[0])
        self.reactor = ThreadedReactor()

    def agent(self, **changes):
        settings = dict(DEFAULT_SETTINGS)
        for key, value in changes.items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
        pipeline = loadAgents(self.folder.organization(settings), self.reactor)
        return pipeline.agents[0].agent

    def answer(self, agent, event):
        """
        @return: the agent's verdict, once its thread pool work has run.
        """
        result = agent.OnRoutedMessage(event)
        if not hasattr(result, "addCallback"):
            return result
        self.reactor.pool.runAll()
        return self.successResultOf(result)

    def test_plugin(self):
        factory = agentFactories()["dkimsigner"]
        verifyObject(IAgentFactory, factory)
        self.assertTrue(IRoutingAgent.providedBy(self.agent()))

    def test_signsForListedConnector(self):
        verdict = self.answer(self.agent(), routed())
        self.assertEqual(verdict.kind, CONTINUE)
        self.assertTrue(verdict.message.endswith(MESSAGE))
        self.assertTrue(verdict.message.startswith(b"DKIM-Signature:"))
        self.assertTrue(verifies(verdict.message))
        tags = signatureTags(verdict.message)
        self.assertEqual(
            (tags["a"], tags["c"], tags["d"], tags["s"]),
            ("rsa-sha256", "relaxed/relaxed", "fabrikam.com", "s2026"),
        )
        signed = [name.strip() for name in tags["h"].split(":")]
        self.assertEqual(
            signed,
            ["from", "to", "subject", "date", "message-id", "mime-version", "content-type", "from"],
        )

    def test_signingWaitsForTheThreadPool(self):
        # The RSA work is queued for a thread, not done on the reactor.
        result = self.agent().OnRoutedMessage(routed())
        self.assertNoResult(result)
        self.assertEqual(len(self.reactor.pool.work), 1)
        self.reactor.pool.runAll()
        self.assertTrue(verifies(self.successResultOf(result).message))

    def test_otherSigningDomain(self):
        message = MESSAGE.replace(b"kim@fabrikam.com", b"dan@TailspinToys.com")
        verdict = self.answer(self.agent(), routed(message))
        self.assertEqual(signatureTags(verdict.message)["d"], "tailspintoys.com")
        self.assertTrue(verifies(verdict.message))

    def test_changedBodyFails(self):
        signed = self.answer(self.agent(), routed()).message
        self.assertFalse(verifies(signed.replace(b"attached", b"enclosed")))
        self.assertFalse(verifies(signed.replace(b"Quarterly", b"Monthly")))
        # Relaxed canonicalization: whitespace changes in transit are fine.
        self.assertTrue(verifies(signed.replace(b"are attached", b"are  attached")))

    def test_wrongPublicKeyFails(self):
        signed = self.answer(self.agent(), routed()).message
        self.assertFalse(verifies(signed, public=rsaKey(1024)[1]))

    def test_unlistedConnectorNotSigned(self):
        verdict = self.answer(self.agent(), routed(nextHop=PARTNER))
        self.assertEqual(verdict.kind, CONTINUE)
        self.assertIsNone(verdict.message)
        self.assertEqual(self.reactor.pool.work, [])

    def test_connectorNamesIgnoreCase(self):
        verdict = self.answer(self.agent(SendConnectors="tointernetgateway"), routed())
        self.assertTrue(verifies(verdict.message))

    def test_everyConnectorWhenNoneListed(self):
        agent = self.agent(SendConnectors=None)
        self.assertTrue(verifies(self.answer(agent, routed(nextHop=PARTNER)).message))
        self.assertTrue(verifies(self.answer(agent, routed(nextHop=GATEWAY)).message))

    def test_localDeliveryNotSigned(self):
        verdict = self.answer(self.agent(SendConnectors=None), routed(nextHop=None))
        self.assertIsNone(verdict.message)

    def test_forwardWithinSiteNotSigned(self):
        # The connector's source server signs when it sends.
        forward = NextHop("SmtpRelayWithinAdSite", "ToInternetGateway", server="HubB")
        self.assertIsNone(self.answer(self.agent(), routed(nextHop=forward)).message)

    def test_otherFromDomainNotSigned(self):
        for message in (
            MESSAGE.replace(b"kim@fabrikam.com", b"kim@contoso.com"),
            MESSAGE.replace(b"kim@fabrikam.com", b"kim@sub.fabrikam.com"),
            MESSAGE.replace(b"From:", b"Sender:"),
            MESSAGE.replace(b"From:", b"From: a@contoso.com\r\nFrom:"),
        ):
            self.assertIsNone(self.answer(self.agent(), routed(message)).message, message)

    def test_simpleCanonicalization(self):
        agent = self.agent(HeaderCanonicalization="simple", BodyCanonicalization="Simple")
        signed = self.answer(agent, routed()).message
        self.assertEqual(signatureTags(signed)["c"], "simple/simple")
        self.assertTrue(verifies(signed))
        self.assertFalse(verifies(signed.replace(b"are attached", b"are  attached")))

    def test_headersToSign(self):
        agent = self.agent(HeadersToSign="From, Subject, X-Campaign")
        message = MESSAGE.replace(b"\r\n\r\n", b"\r\nX-Campaign: q4\r\n\r\n", 1)
        signed = self.answer(agent, routed(message)).message
        self.assertEqual(
            [name.strip() for name in signatureTags(signed)["h"].split(":")],
            ["from", "subject", "x-campaign", "from"],
        )
        self.assertTrue(verifies(signed))
        # To was not signed: changing it is not noticed; X-Campaign was.
        self.assertTrue(verifies(signed.replace(b"To: someone@", b"To: other@")))
        self.assertFalse(verifies(signed.replace(b"X-Campaign: q4", b"X-Campaign: q1")))

    def test_oversignedFromResistsAnAddedFrom(self):
        signed = self.answer(self.agent(), routed()).message
        header, body = signed.split(b"\r\n\r\n", 1)
        added = header + b"\r\nFrom: ceo@fabrikam.com\r\n\r\n" + body
        self.assertFalse(verifies(added))

    def test_unparseableMessageSentUnsigned(self):
        # A header line without a colon: dkimpy refuses it.
        message = MESSAGE.replace(b"Subject:", b"Broken line\r\nSubject:")
        verdict = self.answer(self.agent(), routed(message))
        self.assertEqual(verdict.kind, CONTINUE)
        self.assertIsNone(verdict.message)

    def test_keyPathRelativeToOrganization(self):
        self.folder.write(os.path.join("keys", "fabrikam.key"), rsaKey()[0])
        agent = self.agent(PrivateKeyPath="keys/fabrikam.key")
        self.assertTrue(verifies(self.answer(agent, routed()).message))

    def test_pkcs1KeyWithCrlf(self):
        key = serialization.load_pem_private_key(rsaKey()[0], None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        self.folder.write("dkim.key", key.replace(b"\n", b"\r\n"))
        self.assertTrue(verifies(self.answer(self.agent(), routed()).message))


class FromDomainTests(SynchronousTestCase):
    def test_domains(self):
        cases = {
            b"From: kim@Fabrikam.COM\r\n": "fabrikam.com",
            b'From: "Akers, Kim" <kim@fabrikam.com> (work)\r\n': "fabrikam.com",
            b"From: =?utf-8?q?J=C3=B6rg?=\r\n <jorg@fabrikam.com>\r\n": "fabrikam.com",
            b"From: a@fabrikam.com, b@fabrikam.com\r\n": "fabrikam.com",
            b"From: a@fabrikam.com, b@contoso.com\r\n": None,
            b"From: undisclosed\r\n": None,
            b"To: kim@fabrikam.com\r\n": None,
        }
        for header, domain in cases.items():
            self.assertEqual(fromDomain(header), domain, header)


class SettingTests(SynchronousTestCase):
    """
    Every bad setting is a ConfigError naming org.ini, the line and the key.
    """

    def setUp(self):
        self.folder = Folder(self)
        self.keyPath = self.folder.write("dkim.key", rsaKey()[0])

    def refused(self, key=None, **changes):
        settings = dict(DEFAULT_SETTINGS)
        settings.update(changes)
        for name in [name for name, value in settings.items() if value is None]:
            del settings[name]
        organization = self.folder.organization(settings)
        with self.assertRaises(ConfigError) as caught:
            loadAgents(organization, ThreadedReactor())
        error = caught.exception
        self.assertEqual(error.path, os.path.join(self.folder.path, "org.ini"))
        self.assertEqual(error.section, "TransportAgent DkimSigner")
        if key is not None:
            self.assertEqual(error.key, key)
            lines = ORGANIZATION.count("\n") + 1 + list(settings).index(key)
            self.assertEqual(error.line, lines)
        return error.message

    def test_missingKeyFile(self):
        os.unlink(self.keyPath)
        message = self.refused("PrivateKeyPath")
        self.assertIn(self.keyPath, message)
        self.assertIn("does not exist", message)

    def test_worldReadableKey(self):
        os.chmod(self.keyPath, 0o644)
        message = self.refused("PrivateKeyPath")
        self.assertIn("readable by group or others", message)
        self.assertIn(f"chmod 600 {self.keyPath}", message)

    def test_groupReadableKey(self):
        os.chmod(self.keyPath, 0o640)
        self.assertIn("readable by group or others", self.refused("PrivateKeyPath"))

    def test_unparseableKey(self):
        for data in (
            b"not a key\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            serialization.load_der_public_key(rsaKey()[1]).public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ):
            self.folder.write("dkim.key", data)
            self.assertIn("not an unencrypted PEM RSA private key", self.refused("PrivateKeyPath"))
        # A DER file, say.
        self.folder.write("dkim.key", rsaKey()[1])
        self.assertIn("not UTF-8 text", self.refused("PrivateKeyPath"))

    def test_encryptedKey(self):
        key = serialization.load_pem_private_key(rsaKey()[0], None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        self.folder.write("dkim.key", key)
        self.assertIn("not an unencrypted PEM RSA private key", self.refused("PrivateKeyPath"))

    def test_shortKey(self):
        if shutil.which("openssl") is None:
            self.skipTest("needs the openssl command to make a 768-bit key")
        key = subprocess.run(
            ["openssl", "genrsa", "768"], check=True, capture_output=True
        ).stdout
        self.folder.write("dkim.key", key)
        self.assertIn("768-bit key", self.refused("PrivateKeyPath"))

    def test_unknownSendConnector(self):
        message = self.refused("SendConnectors", SendConnectors="ToInternetGateway, ToNowhere")
        self.assertIn("'ToNowhere'", message)

    def test_badValues(self):
        self.assertIn("valid host name", self.refused("DomainName", DomainName="fabrikam..com"))
        self.assertIn("valid host name", self.refused("Selector", Selector="s 1"))
        self.assertIn("Relaxed, Simple", self.refused("HeaderCanonicalization", HeaderCanonicalization="nofws"))
        self.assertIn("must include From", self.refused("HeadersToSign", HeadersToSign="To, Subject"))
        self.assertIn("received must not be signed", self.refused("HeadersToSign", HeadersToSign="From, Received"))

    def test_unknownKey(self):
        self.assertIn("known keys are", self.refused("Algorithm", Algorithm="ed25519-sha256"))

    def test_requiredKeys(self):
        for key in ("DomainName", "Selector", "PrivateKeyPath"):
            self.assertIn(f"needs {key}", self.refused(**{key: None}))


class PipelineTests(SynchronousTestCase):
    def test_rewrittenThenSigned(self):
        """
        AddressRewrite before DkimSigner in Priority order: the signature is
        made over the rewritten From, in the external domain.
        """
        folder = Folder(self)
        folder.write("dkim.key", rsaKey()[0])
        settings = dict(DEFAULT_SETTINGS, SendConnectors="ToInternetGateway")
        text = (
            ORGANIZATION
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
            + "\n[TransportAgent AddressRewrite]\nPriority = 0\n"
            + "AddressRewriteEntries = corp.fabrikam.com -> fabrikam.com\n"
        )
        organization = parseOrganization(text, os.path.join(folder.path, "org.ini"))
        reactor = ThreadedReactor()
        pipeline = loadAgents(organization, reactor)
        message = MESSAGE.replace(b"kim@fabrikam.com", b"kim@corp.fabrikam.com")
        result = pipeline.run(routed(message))
        reactor.pool.runAll()
        signed = self.successResultOf(result).message
        self.assertIn(b'From: "Kim Akers" <kim@fabrikam.com>\r\n', signed)
        self.assertEqual(signatureTags(signed)["d"], "fabrikam.com")
        self.assertTrue(verifies(signed))


class DocumentationTests(SynchronousTestCase):
    def test_exampleLoads(self):
        """
        The example in docs/agents-builtin.rst is a working configuration.
        """
        folder = Folder(self)
        folder.write(os.path.join("dkim", "fabrikam.com.key"), rsaKey()[0])
        text = ORGANIZATION.split("[TransportAgent")[0] + exampleSection("DkimSigner")
        organization = parseOrganization(text, os.path.join(folder.path, "org.ini"))
        reactor = ThreadedReactor()
        agent = loadAgents(organization, reactor).agents[0].agent
        result = agent.OnRoutedMessage(routed())
        reactor.pool.runAll()
        self.assertTrue(verifies(self.successResultOf(result).message))
