"""
Domain Security (Exchange 2010): mutual TLS with partner domains.

The organization lists its partners in Set-TransportConfig's
TLSReceiveDomainSecureList and TLSSendDomainSecureList; connectors take
part with DomainSecureEnabled.

  - Receiving: on a receive connector with DomainSecureEnabled, mail whose
    MAIL FROM domain is in TLSReceiveDomainSecureList must come over TLS
    from a client whose certificate chains to a trusted authority and
    names that domain (L{DomainSecureChecker}).  The session is then
    logged in as the partner (C{MS Exchange\\Partner Servers}, AuthAs
    Partner), which the Partners permission group grants its rights to.
  - Sending: a send connector with DomainSecureEnabled sends to a domain
    of TLSSendDomainSecureList only over TLS, presenting this server's
    certificate as client certificate, to a server whose certificate
    chains to a trusted authority and names the domain
    (L{exmta.send.tls.TlsPolicy.partner}); anything less defers the mail.

The trusted authorities are the PEM file of the TransportServer's
DomainSecureCertificateAuthorityPath, or the system's trusted roots
without it (Exchange uses the Windows certificate store).
"""

import datetime
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto
from service_identity import VerificationError as NameMismatch
from service_identity.cryptography import verify_certificate_hostname
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from exmta.interfaces import IDomainSecureCertificate

log = Logger()

AUTHORITY_KEY = "DomainSecureCertificateAuthorityPath"


@dataclass(frozen=True)
class PartnerDomain:
    """
    The avatar id of a session a partner's certificate proved: the
    domain it was proved for.
    """

    domain: str


@implementer(IDomainSecureCertificate)
@dataclass(frozen=True)
class DomainSecureCertificate:
    """
    See L{IDomainSecureCertificate}.
    """

    chain: tuple
    domain: str


def isDomainSecured(domains, domain):
    """
    @param domains: TLSReceiveDomainSecureList or TLSSendDomainSecureList.
    @return: whether C{domain} is one of them, or under one listed as
        C{*.domain}.
    """
    wanted = domain.lower().rstrip(".")
    for listed in domains:
        listed = listed.lower().rstrip(".")
        if listed == wanted or (listed.startswith("*.") and wanted.endswith(listed[1:])):
            return True
    return False


def authorityPath(server):
    """
    @return: the PEM file of the authorities partners' certificates must
        chain to: the server's DomainSecureCertificateAuthorityPath, else
        the system's bundle (L{None} if it has none).
    """
    if server.domainSecureCertificateAuthorityPath is not None:
        return server.domainSecureCertificateAuthorityPath
    return ssl.get_default_verify_paths().cafile


def loadAuthorities(server):
    """
    @return: the trusted authorities of L{authorityPath}, as
        C{cryptography} certificates; empty when there are none.
    @raise ConfigError: DomainSecureCertificateAuthorityPath cannot be
        read or holds no PEM certificate, naming the TransportServer's key.
    """
    path = authorityPath(server)
    if path is None:
        return []
    try:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificates(handle.read())
    except OSError as error:
        problem = error.strerror
    except ValueError:
        problem = "holds no PEM certificate"
    if server.domainSecureCertificateAuthorityPath is None:
        log.warn("Domain Security trusts no authority: {path}: {problem}", path=path, problem=problem)
        return []
    raise server.origin.error(f"{path}: {problem}", AUTHORITY_KEY)


@implementer(ICredentialsChecker)
class DomainSecureChecker:
    """
    Logs a partner in (L{PartnerDomain}) when its client certificate
    chains to a trusted authority and names the domain it sends from.
    """

    credentialInterfaces = (IDomainSecureCertificate,)

    def __init__(self, authorities, clock):
        """
        @param authorities: the trusted authorities (L{loadAuthorities}).
        @param clock: gives the time certificates must be valid at.
        """
        self._authorities = list(authorities)
        self._clock = clock

    def check(self, chain, domain):
        """
        @raise UnauthorizedLogin: C{chain} does not prove C{domain}.
        """
        if not chain:
            raise UnauthorizedLogin("no client certificate")
        if not self._authorities:
            raise UnauthorizedLogin("no trusted certificate authority")
        # OpenSSL's chain check, as lenient as the peers' TLS libraries
        # (cryptography's verifier refuses, e.g., a critical
        # subjectAltName beside a subject, which public CAs still issue).
        store = crypto.X509Store()
        for authority in self._authorities:
            store.add_cert(crypto.X509.from_cryptography(authority))
        store.set_time(datetime.datetime.fromtimestamp(self._clock.seconds(), datetime.timezone.utc))
        context = crypto.X509StoreContext(
            store,
            crypto.X509.from_cryptography(chain[0]),
            [crypto.X509.from_cryptography(certificate) for certificate in chain[1:]],
        )
        try:
            context.verify_certificate()
        except crypto.X509StoreContextError as error:
            raise UnauthorizedLogin(f"untrusted certificate: {error}") from None
        try:
            verify_certificate_hostname(chain[0], domain)
        except NameMismatch:
            raise UnauthorizedLogin(f"the certificate does not name {domain}") from None

    def requestAvatarId(self, credentials):
        try:
            self.check(credentials.chain, credentials.domain)
        except UnauthorizedLogin as refusal:
            log.info(
                "Domain Security refused {domain}: {reason}",
                domain=credentials.domain,
                reason=str(refusal),
            )
            return defer.fail(refusal)
        return defer.succeed(PartnerDomain(credentials.domain.lower().rstrip(".")))


@dataclass(frozen=True)
class PartnerIdentity:
    """
    What a server shows and trusts when it sends to a partner domain: its
    own certificate and key (PEM bytes, the chain after the certificate)
    and the trusted authorities (PEM bytes).
    """

    certificate: bytes
    privateKey: bytes
    authorities: bytes


def loadPartnerIdentity(server, certificatePath, keyPath):
    """
    @param certificatePath: the certificate STARTTLS presents (the
        TlsCertificatePath, or the self-signed one made without it).
    @param keyPath: its key.
    @return: the L{PartnerIdentity} of C{server}.
    @raise ConfigError: a file cannot be read.
    """
    files = []
    for path, key in (
        (certificatePath, "TlsCertificatePath"),
        (keyPath, "TlsPrivateKeyPath"),
    ):
        try:
            with open(path, "rb") as handle:
                files.append(handle.read())
        except OSError as error:
            raise server.origin.error(f"{path}: {error.strerror}", key) from None
    authorities = b"".join(c.public_bytes(Encoding.PEM) for c in loadAuthorities(server))
    return PartnerIdentity(files[0], files[1], authorities)
