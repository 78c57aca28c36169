"""
The certificate a transport server presents on STARTTLS.

The PEM files come from the TransportServer's TlsCertificatePath (the
certificate first, then its chain) and TlsPrivateKeyPath.  Without them a
self-signed certificate for the server's and its receive connectors' FQDNs
is made on first start, kept in C{tls/} beside the queue folder, and a
warning says so.  The protocols, cipher suites and the rest of the TLS
policy are L{exmta.tls.ServerOptions}'s.  With a TlsCertificateAuthorityPath
the server also asks clients for a certificate (Exchange Server
authentication, L{exmta.auth.certificates}).
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.logger import Logger

from exmta.errors import ConfigError
from exmta.tls import ServerOptions

log = Logger()

SELF_SIGNED_DAYS = 825


def selfSignedPaths(server):
    folder = os.path.join(os.path.dirname(server.queueDatabasePath), "tls")
    return os.path.join(folder, "self-signed.pem"), os.path.join(folder, "self-signed.key")


def serverTLSOptions(server, connectors, clock):
    """
    @param server: the L{exmta.config.model.TransportServer}.
    @param connectors: its receive connectors, whose FQDNs a self-signed
        certificate must name.
    @param clock: gives the current time for a new certificate's validity.
    @return: the L{ServerOptions} for STARTTLS.
    @raise ConfigError: if the configured files cannot be used.
    """
    if server.tlsCertificatePath is not None:
        certificatePath, keyPath = server.tlsCertificatePath, server.tlsPrivateKeyPath
        where = server.origin
    else:
        certificatePath, keyPath = selfSignedPaths(server)
        where = None
        names = sorted({server.fqdn} | {c.fqdn for c in connectors})
        if not (os.path.exists(certificatePath) and os.path.exists(keyPath)):
            _makeSelfSigned(certificatePath, keyPath, names, clock)
        log.warn(
            "TransportServer {server} has no TlsCertificatePath: STARTTLS presents "
            "the self-signed certificate {path} for {names}; clients that check "
            "certificates will refuse it",
            server=server.name,
            path=certificatePath,
            names=names,
        )
    return _load(certificatePath, keyPath, where, server.tlsCertificateAuthorityPath)


def _load(certificatePath, keyPath, origin, authorityPath=None):
    def fail(path, key, problem):
        raise ConfigError(
            f"{path}: {problem}",
            origin.path if origin else path,
            origin.line if origin else None,
            origin.section if origin else None,
            key if origin else None,
        )

    try:
        with open(certificatePath, "rb") as handle:
            chain = x509.load_pem_x509_certificates(handle.read())
    except (OSError, ValueError) as problem:
        fail(certificatePath, "TlsCertificatePath", getattr(problem, "strerror", None) or "not a PEM certificate")
    try:
        with open(keyPath, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
    except (OSError, ValueError, TypeError) as problem:
        fail(keyPath, "TlsPrivateKeyPath", getattr(problem, "strerror", None) or "not an unencrypted PEM private key")
    if chain[0].public_key().public_numbers() != key.public_key().public_numbers():
        fail(keyPath, "TlsPrivateKeyPath", "this key does not belong to the certificate")
    authorities = None
    if authorityPath is not None:
        try:
            with open(authorityPath, "rb") as handle:
                authorities = x509.load_pem_x509_certificates(handle.read())
        except (OSError, ValueError) as problem:
            fail(
                authorityPath,
                "TlsCertificateAuthorityPath",
                getattr(problem, "strerror", None) or "not a PEM certificate",
            )
    return ServerOptions(
        privateKey=crypto.PKey.from_cryptography_key(key),
        certificate=crypto.X509.from_cryptography(chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in chain[1:]],
        clientAuthorities=authorities,
    )


def _makeSelfSigned(certificatePath, keyPath, names, clock):
    os.makedirs(os.path.dirname(certificatePath), mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.fromtimestamp(clock.seconds(), datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    keyBytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(keyPath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(keyBytes)
    with open(certificatePath, "wb") as handle:
        handle.write(certificate.public_bytes(serialization.Encoding.PEM))
