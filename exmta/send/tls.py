"""
The TLS policy of a send connector, and the client contexts it needs.

Twisted's C{ESMTPSender} builds a context only when given a hostname, and
then always checks the chain and the name (C{optionsForClientTLS}); it has
no equivalent of Exchange's TlsAuthLevel.  Here the context is chosen from
the connector's settings:

  - C{EncryptionOnly}, and opportunistic STARTTLS whatever the level says
    (Exchange applies TlsAuthLevel only with RequireTLS): encrypt, accept
    any certificate.
  - C{CertificateValidation}: the chain must lead to a trusted root; the
    name is not checked.
  - C{DomainValidation}: the chain, and the name (TlsDomain, else the smart
    host's name or the recipient domain) through service_identity.

Every level has the protocols and cipher suites of L{exmta.tls.BASELINE},
and sends the server name (SNI) when it is a DNS name.  No ALPN is offered:
SMTP has no ALPN identifier, and a server that cannot agree on one may end
the handshake (RFC 7301 section 3.2), as exmta's own did (alert 80, see
L{exmta.tls.ServerOptions}).
"""

import functools
from dataclasses import dataclass

from OpenSSL import SSL, crypto
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from zope.interface import implementer

from exmta.tls import BASELINE, pemCertificates

ENCRYPTION_ONLY = "EncryptionOnly"
CERTIFICATE_VALIDATION = "CertificateValidation"
DOMAIN_VALIDATION = "DomainValidation"


@dataclass(frozen=True)
class TlsPolicy:
    """
    What a send connector asks of TLS.

    @ivar requireTLS: never send in the clear (RequireTLS).
    @ivar ignoreSTARTTLS: never try STARTTLS (IgnoreSTARTTLS).
    @ivar tlsAuthLevel: C{EncryptionOnly}, C{CertificateValidation},
        C{DomainValidation} or L{None}; only used when C{requireTLS}.
    @ivar tlsDomain: the name DomainValidation checks (TlsDomain), or
        L{None} for the target's own name.
    @ivar identity: for Exchange Server authentication, this server's
        certificate, key and organization authority (PEM bytes in an
        L{exmta.auth.certificates.ServerIdentity}): shown to the next hop,
        whose certificate must chain to that authority.
    """

    requireTLS: bool = False
    ignoreSTARTTLS: bool = False
    tlsAuthLevel: str | None = None
    tlsDomain: str | None = None
    identity: object = None

    @property
    def level(self):
        if not self.requireTLS or self.tlsAuthLevel is None:
            return ENCRYPTION_ONLY
        return self.tlsAuthLevel

    def contextFor(self, serverName, trustRoot=None):
        """
        @param serverName: the name of the host as we know it (a smart
            host's name, an MX host, or an IP literal), for SNI and, without
            a TlsDomain, for DomainValidation.
        @param trustRoot: the L{twisted.internet.ssl.IOpenSSLTrustRoot}
            certificates are checked against; the platform's by default.
        @return: an L{IOpenSSLClientConnectionCreator}, or L{None} when
            STARTTLS must not be tried.
        """
        if self.ignoreSTARTTLS and not self.requireTLS:
            return None
        if self.identity is not None:
            return _SendServerName(_identityOptions(self.identity), serverName)
        level = self.level
        if level == DOMAIN_VALIDATION:
            return optionsForClientTLS(
                self.tlsDomain or serverName,
                trustRoot=trustRoot if trustRoot is not None else platformTrust(),
                extraCertificateOptions=dict(BASELINE),
            )
        if level == CERTIFICATE_VALIDATION:
            options = CertificateOptions(
                trustRoot=trustRoot if trustRoot is not None else platformTrust(), **BASELINE
            )
        else:
            options = CertificateOptions(verify=False, **BASELINE)
        return _SendServerName(options, serverName)


@functools.lru_cache(maxsize=8)
def _identityOptions(identity):
    """
    @return: the L{CertificateOptions} of Exchange Server authentication:
        the server's certificate as client certificate, the peer's checked
        against the organization's authority alone.
    """
    chain = pemCertificates(identity.certificate)
    return CertificateOptions(
        privateKey=crypto.load_privatekey(crypto.FILETYPE_PEM, identity.privateKey),
        certificate=chain[0],
        extraCertChain=chain[1:],
        trustRoot=trustRootFromCertificates(
            [Certificate(x509) for x509 in pemCertificates(identity.authority)]
        ),
        **BASELINE,
    )


@implementer(IOpenSSLClientConnectionCreator)
class _SendServerName:
    """
    A client connection creator that adds SNI to L{CertificateOptions},
    which alone sends none.
    """

    def __init__(self, options, serverName):
        self._options = options
        self._serverName = None
        if serverName and not (isIPAddress(serverName) or isIPv6Address(serverName)):
            try:
                self._serverName = serverName.rstrip(".").encode("idna")
            except UnicodeError:
                self._serverName = None

    def clientConnectionForTLS(self, tlsProtocol):
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._serverName:
            connection.set_tlsext_host_name(self._serverName)
        return connection


def describe(connection):
    """
    @param connection: an L{OpenSSL.SSL.Connection}, or anything else.
    @return: (protocol version, cipher name), or (L{None}, L{None}).
    """
    try:
        return connection.get_protocol_version_name(), connection.get_cipher_name()
    except (AttributeError, SSL.Error):
        return None, None
