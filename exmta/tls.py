"""
What every TLS context of exmta has in common, receiving (STARTTLS offered
by a receive connector, L{exmta.receive.tls}) and sending (STARTTLS to a
next hop, L{exmta.send.tls}).

  - TLS 1.2 and newer only.
  - For TLS 1.2, the cipher suites of Mozilla's "intermediate"
    configuration (Server Side TLS guidelines 6.0,
    https://ssl-config.mozilla.org/guidelines/6.0.json): ECDHE key
    exchange, so every session has forward secrecy, with AES-GCM or
    ChaCha20-Poly1305, so every record is authenticated encryption (no CBC
    suites and their padding oracles, LUCKY13; no static RSA key
    exchange).  Guidelines 5.x also listed three DHE suites; 6.0 dropped
    them, which spares administrators a dhparams file.  TLS 1.3 keeps
    OpenSSL's suites, all of them AEAD.

The server side adds what a client context has no use for
(L{ServerOptions}): clients may not renegotiate, ALPN is ignored, and
client certificates may be asked for.
"""

from OpenSSL import SSL, crypto
from twisted.internet.ssl import AcceptableCiphers, Certificate, CertificateOptions, TLSVersion

INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

# The CertificateOptions arguments of every context, client or server.
BASELINE = {
    "raiseMinimumTo": TLSVersion.TLSv1_2,
    "acceptableCiphers": AcceptableCiphers.fromOpenSSLCipherString(INTERMEDIATE_CIPHERS),
}


class ServerOptions(CertificateOptions):
    """
    L{CertificateOptions} for the server end of STARTTLS, with the
    L{BASELINE} and:

      - no renegotiation (C{OP_NO_RENEGOTIATION}): a client could make the
        server redo the expensive half of a handshake as often as it likes.
        OpenSSL 3 already refuses client-initiated renegotiation unless told
        otherwise; 1.1.1 accepted it, and the flag does not depend on which
        one the cryptography wheel brings.
      - ALPN ignored.  Twisted installs an ALPN selection callback on every
        context, and with no protocols of its own it answers a ClientHello
        that offers ALPN with an empty selection, which OpenSSL 3 turns
        into a fatal C{internal_error} alert (80): C{openssl s_client
        -alpn smtp}, Go's and Android's clients never got through STARTTLS.
        SMTP has no ALPN identifier to agree on, so the server now answers
        as one without ALPN support does (as Postfix does): no ALPN in its
        hello, the handshake goes on.
    """

    def __init__(self, clientAuthorities=None, **options):
        """
        @param clientAuthorities: C{cryptography} certificates of the
            authorities whose client certificates are wanted (Exchange
            Server authentication); L{None} asks for no client certificate.
            The request names no authority (pyOpenSSL deprecates the
            X509Name lists that would): clients show the certificate they
            were given whatever the list says.
        """
        super().__init__(**BASELINE, **options)
        self._clientAuthorities = clientAuthorities
        self._hardened = None

    def getContext(self):
        # Changed before any connection uses it: pyOpenSSL refuses to change
        # a context afterwards.
        if self._hardened is None:
            context = super().getContext()
            context.set_options(SSL.OP_NO_RENEGOTIATION)
            context.set_alpn_select_callback(_ignoreALPN)
            if self._clientAuthorities:
                # Asked for, not required, and not checked here: a client
                # without one, or with one the organization did not issue,
                # goes on as it would have; the receive connector's
                # ExchangeServer checker alone decides what it proves.
                context.set_verify(SSL.VERIFY_PEER, _acceptForLater)
            self._hardened = context
        return self._hardened


def _acceptForLater(connection, certificate, errorNumber, depth, ok):
    return True


def _ignoreALPN(connection, offered):
    return SSL.NO_OVERLAPPING_PROTOCOLS


def pemCertificates(data):
    """
    @return: the certificates of PEM bytes C{data}, in order, as
        L{OpenSSL.crypto.X509}.
    """
    end = b"-----END CERTIFICATE-----"
    return [Certificate.loadPEM(block + end).original for block in data.split(end) if b"-----BEGIN" in block]


def mutualServerOptions(certificate, privateKey, authority):
    """
    @param certificate: PEM bytes: the server's certificate, then its chain.
    @param privateKey: PEM bytes of its key.
    @param authority: PEM bytes of the authority client certificates must
        chain to.
    @return: L{ServerOptions} that require a client certificate from
        C{authority}: a handshake without one fails.
    """
    chain = pemCertificates(certificate)
    return ServerOptions(
        privateKey=crypto.load_privatekey(crypto.FILETYPE_PEM, privateKey),
        certificate=chain[0],
        extraCertChain=chain[1:],
        verify=True,
        caCerts=pemCertificates(authority),
        requireCertificate=True,
    )
