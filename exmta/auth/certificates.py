"""
Exchange Server authentication: the transport servers of an organization
prove who they are to each other with certificates the organization
issues, not with their IP addresses.

  - The organization's certificate authority (L{makeAuthority}) is a key
    pair and a self-signed CA certificate, made by the Shell's
    New-ExchangeCertificate the first time it is needed.  Its key stays
    where the Shell ran; servers only need its certificate
    (TlsCertificateAuthorityPath).
  - Each TransportServer gets a certificate from it (L{issue}) naming its
    Fqdn, for both ends of TLS (serverAuth and clientAuth): it presents it
    on STARTTLS as a server, and as a client when it sends to another
    server of the organization.
  - A receive connector whose AuthMechanism includes ExchangeServer asks
    the client for a certificate; one that chains to the organization's
    authority and names the Fqdn of one of its TransportServers logs the
    session in as an Exchange server (L{ExchangeServerChecker}), which the
    ExchangeServers permission group grants its rights to.  A certificate
    from another authority, a self-signed one, or one naming no server of
    the organization gets nothing: the session stays what it was.
"""

import datetime
import hashlib
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from exmta.auth import permissions
from exmta.errors import ConfigError
from exmta.interfaces import IExchangeServerCertificate

log = Logger()

AUTHORITY_DAYS = 10 * 365
CERTIFICATE_DAYS = 5 * 365
# Where New-ExchangeCertificate keeps what it makes, in the Shell's folder.
FOLDER = "ExchangeCertificates"
AUTHORITY_NAME = "organization-ca"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _writeKey(path, key):
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _writeCertificate(path, certificate):
    with open(path, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))


def authorityPaths(folder):
    """
    @return: C{(certificate, key)} paths of the organization's authority
        kept in C{folder}.
    """
    stem = os.path.join(folder, FOLDER, AUTHORITY_NAME)
    return stem + ".pem", stem + ".key"


def makeAuthority(folder, organizationName):
    """
    Make the organization's certificate authority in C{folder}, unless it
    is there already.

    @return: C{(certificate path, key path)}.
    """
    certificatePath, keyPath = authorityPaths(folder)
    if os.path.exists(certificatePath) and os.path.exists(keyPath):
        return certificatePath, keyPath
    os.makedirs(os.path.dirname(certificatePath), mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{organizationName} Exchange servers CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=AUTHORITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _writeKey(keyPath, key)
    _writeCertificate(certificatePath, certificate)
    return certificatePath, keyPath


def issue(authority, server, names, folder):
    """
    Issue C{server} a certificate for its Fqdn and C{names}, for TLS as
    server and as client.

    @param authority: C{(certificate path, key path)} of the authority.
    @param server: the L{exmta.config.model.TransportServer}.
    @return: C{(certificate path, key path)} in C{folder}'s certificate
        folder; the certificate file holds the authority's after it.
    """
    with open(authority[0], "rb") as handle:
        caCertificate = x509.load_pem_x509_certificate(handle.read())
    with open(authority[1], "rb") as handle:
        caKey = serialization.load_pem_private_key(handle.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    domains = list(dict.fromkeys([server.fqdn.lower()] + [n.lower() for n in names]))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
        .issuer_name(caCertificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(caCertificate.public_key()),
            critical=False,
        )
        .sign(caKey, hashes.SHA256())
    )
    stem = os.path.join(folder, FOLDER, server.name)
    os.makedirs(os.path.dirname(stem), mode=0o700, exist_ok=True)
    _writeKey(stem + ".key", key)
    with open(stem + ".pem", "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
        handle.write(caCertificate.public_bytes(serialization.Encoding.PEM))
    return stem + ".pem", stem + ".key"


@dataclass(frozen=True)
class CertificateFacts:
    """
    What Get-ExchangeCertificate shows of one certificate.
    """

    thumbprint: str
    subject: str
    issuer: str
    notBefore: datetime.datetime
    notAfter: datetime.datetime
    domains: tuple
    isSelfSigned: bool


def describe(path):
    """
    @return: the L{CertificateFacts} of the first certificate in the PEM
        file C{path}.
    @raise ConfigError: it cannot be read.
    """
    certificate = readCertificates(path)[0]
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        domains = tuple(names.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        domains = ()
    return CertificateFacts(
        # Exchange shows the SHA-1 thumbprint, as Windows' certificate store.
        thumbprint=hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper(),
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        notBefore=certificate.not_valid_before_utc,
        notAfter=certificate.not_valid_after_utc,
        domains=domains,
        isSelfSigned=certificate.issuer == certificate.subject,
    )


def readCertificates(path):
    """
    @return: the certificates of the PEM file C{path}, in order.
    @raise ConfigError: it cannot be read or holds none.
    """
    try:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificates(handle.read())
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", path) from None
    except ValueError:
        raise ConfigError("holds no PEM certificate", path) from None


def peerChain(connection):
    """
    @param connection: the L{OpenSSL.SSL.Connection} of a TLS session.
    @return: the certificates the peer presented, its own first; empty
        when it presented none.
    """
    leaf = connection.get_peer_certificate(as_cryptography=True)
    if leaf is None:
        return []
    # On the server side OpenSSL's chain may leave out the leaf.
    others = connection.get_peer_cert_chain(as_cryptography=True) or []
    return [leaf] + [certificate for certificate in others if certificate != leaf]


@implementer(IExchangeServerCertificate)
class ExchangeServerCertificate:
    """
    The certificate chain a TLS client presented, leaf first.
    """

    def __init__(self, chain):
        self.chain = tuple(chain)


@implementer(ICredentialsChecker)
class ExchangeServerChecker:
    """
    Logs in, as L{permissions.HUB_TRANSPORT_SERVERS}, a client whose
    certificate the organization's authority issued for the Fqdn of one of
    its TransportServers.
    """

    credentialInterfaces = (IExchangeServerCertificate,)

    def __init__(self, organization, authorityPath, clock):
        """
        @param authorityPath: the TlsCertificateAuthorityPath file.
        @param clock: gives the time certificates must be valid at.
        @raise ConfigError: the authority's file cannot be read.
        """
        self._servers = {
            server.fqdn.lower().rstrip("."): server.name
            for server in organization.transportServers.values()
        }
        self._store = Store(readCertificates(authorityPath))
        self._clock = clock

    def serverFor(self, chain):
        """
        @return: the name of the TransportServer C{chain} proves to be.
        @raise UnauthorizedLogin: it proves none.
        """
        if not chain:
            raise UnauthorizedLogin("no client certificate")
        now = datetime.datetime.fromtimestamp(self._clock.seconds(), datetime.timezone.utc)
        verifier = PolicyBuilder().store(self._store).time(now).build_client_verifier()
        try:
            verified = verifier.verify(chain[0], list(chain[1:]))
        except VerificationError as error:
            raise UnauthorizedLogin(f"not issued by the organization: {error}") from None
        for name in verified.subjects or ():
            if isinstance(name, x509.DNSName):
                server = self._servers.get(name.value.lower().rstrip("."))
                if server is not None:
                    return server
        raise UnauthorizedLogin("the certificate names no TransportServer of the organization")

    def authorize(self, transport):
        """
        For the admin endpoint's TLS connections
        (L{exmta.admin.server.AdminFactory}).

        @return: the name of the TransportServer the peer's certificate
            proves, or L{None}.
        """
        try:
            return self.serverFor(peerChain(transport.getHandle()))
        except UnauthorizedLogin as refusal:
            log.info("admin client certificate refused: {reason}", reason=str(refusal))
            return None

    def requestAvatarId(self, credentials):
        try:
            server = self.serverFor(credentials.chain)
        except UnauthorizedLogin as refusal:
            log.info("client certificate refused: {reason}", reason=str(refusal))
            return defer.fail(refusal)
        log.info("client certificate of TransportServer {server} accepted", server=server)
        return defer.succeed(permissions.HUB_TRANSPORT_SERVERS)


@dataclass(frozen=True)
class ServerIdentity:
    """
    What a transport server shows and trusts when it talks to another
    server of its organization: its certificate and key (PEM bytes, the
    chain after the certificate) and the organization's authority.
    """

    certificate: bytes
    privateKey: bytes
    authority: bytes


def loadIdentity(server):
    """
    @return: the L{ServerIdentity} of C{server}, or L{None} when it has
        no TlsCertificateAuthorityPath.
    @raise ConfigError: a file cannot be read.
    """
    if server.tlsCertificateAuthorityPath is None:
        return None
    files = []
    for path, key in (
        (server.tlsCertificatePath, "TlsCertificatePath"),
        (server.tlsPrivateKeyPath, "TlsPrivateKeyPath"),
        (server.tlsCertificateAuthorityPath, "TlsCertificateAuthorityPath"),
    ):
        try:
            with open(path, "rb") as handle:
                files.append(handle.read())
        except OSError as error:
            raise server.origin.error(f"{path}: {error.strerror}", key) from None
    return ServerIdentity(*files)
