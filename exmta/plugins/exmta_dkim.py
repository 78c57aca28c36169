"""
The DkimSigner transport agent: signs mail leaving through send connectors
with DKIM (RFC 6376), using dkimpy.

    [TransportAgent DkimSigner]
    Priority = 20
    DomainName = fabrikam.com
    Selector = s2026
    PrivateKeyPath = dkim/fabrikam.com.key
    SendConnectors = ToInternetGateway
    HeaderCanonicalization = Relaxed
    BodyCanonicalization = Relaxed
    HeadersToSign = From, To, Subject, Date, Message-ID

A routing agent: at OnRoutedMessage it signs the bytes of that one send
attempt (the queued copy stays unsigned) when

  - the next hop is a send connector's (not local delivery, and not a
    forward to the connector's source server, which signs when it sends),
    and that connector is listed in SendConnectors (every connector when
    the key is absent);
  - the message has exactly one From: field whose addresses are all in one
    of the DomainName domains; that domain is the signature's C{d=}.

The signature is rsa-sha256.  C{PrivateKeyPath} (relative to org.ini's
folder) is a PEM RSA key of at least 1024 bits, PKCS#1 or PKCS#8,
unencrypted, readable only by its owner (mode 0600).  Publish its public
key as the TXT record C{<Selector>._domainkey.<domain>} of every DomainName.

Signing runs in the reactor's thread pool, so it never blocks the reactor.
A message dkimpy cannot parse is sent unsigned and a warning logged.
"""

import os
from email.utils import getaddresses

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.agents import Verdict
from exmta.auth.secretfile import readPrivate
from exmta.config.values import choice, commaList, fqdn
from exmta.errors import ConfigError, SettingError
from exmta.interfaces import IAgentFactory, IRoutingAgent
from exmta.message.header import fieldName, fields, splitHeader

# RFC 6376 section 5.4.1's recommendation, less the Resent-* and List-*
# fields, which mailing lists and forwarders add.
DEFAULT_HEADERS_TO_SIGN = (
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
)
# Verifiers refuse shorter keys (RFC 8301).
MINIMUM_KEY_BITS = 1024
# A forward to another TransportServer that sends through the connector:
# that server signs.
_WITHIN_SITE = "SmtpRelayWithinAdSite"
_canonicalization = choice(("Relaxed", "Simple"))
KEYS = (
    "DomainName",
    "Selector",
    "PrivateKeyPath",
    "SendConnectors",
    "HeaderCanonicalization",
    "BodyCanonicalization",
    "HeadersToSign",
)


@implementer(IRoutingAgent)
class DkimSignerAgent:
    """
    Signs messages routed to the chosen send connectors.

    @ivar domains: the signing domains, lower case.
    @ivar connectors: the send connectors' names, lower case, or L{None}
        for all.
    """

    log = Logger()

    def __init__(
        self, domains, selector, privateKey, connectors, canonicalization, headersToSign, reactor
    ):
        self.domains = frozenset(domains)
        self.selector = selector
        self.privateKey = privateKey
        self.connectors = connectors
        self.canonicalization = canonicalization
        self.headersToSign = frozenset(headersToSign)
        self.reactor = reactor

    def OnRoutedMessage(self, event):
        nextHop = event.nextHop
        if (
            event.message is None
            or nextHop is None
            or nextHop.deliveryType == _WITHIN_SITE
            or (self.connectors is not None and nextHop.connector.lower() not in self.connectors)
        ):
            return Verdict.continue_()
        domain = fromDomain(splitHeader(event.message)[0])
        if domain not in self.domains:
            return Verdict.continue_()
        signing = deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), self.sign, event.message, domain
        )
        return signing.addCallbacks(
            lambda signed: Verdict.continue_(message=signed),
            self._unsigned,
            errbackArgs=(event, domain),
        )

    def sign(self, message, domain):
        """
        @return: C{message} with a DKIM-Signature field first.  Runs in a
            thread.
        @raise dkim.DKIMException: dkimpy cannot parse the message.
        """
        signer = dkim.DKIM(message)
        signer.should_sign = set(self.headersToSign)
        signature = signer.sign(
            self.selector.encode("ascii"),
            domain.encode("ascii"),
            self.privateKey,
            canonicalize=self.canonicalization,
        )
        return signature + message

    def _unsigned(self, failure, event, domain):
        # The key was checked at load, so this is the message's fault;
        # holding it back would not make it signable.
        failure.trap(dkim.DKIMException)
        self.log.warn(
            "DkimSigner sends {queueId} unsigned: {reason}",
            queueId=event.queued.queueId,
            domain=domain,
            reason=failure.getErrorMessage(),
        )
        return Verdict.continue_()


def fromDomain(header):
    """
    @param header: a message's header block.
    @return: the domain (lower case) of the From: field's addresses if the
        header has one From: field and its addresses share one domain;
        else L{None}.
    """
    values = [field.split(b":", 1)[1] for field in fields(header) if fieldName(field) == b"from"]
    if len(values) != 1:
        return None
    unfolded = values[0].replace(b"\r\n", b"").decode("utf-8", "surrogateescape")
    domains = set()
    for _, address in getaddresses([unfolded]):
        local, at, domain = address.rpartition("@")
        if not (local and at and domain):
            return None
        domains.add(domain.lower())
    return domains.pop() if len(domains) == 1 else None


def readPrivateKey(path):
    """
    @return: the PEM key in C{path} as bytes.
    @raise ValueError: it is missing, open to group or others, not a PEM RSA
        key dkimpy can use, or too short.
    """
    try:
        text = readPrivate(path, "DKIM signing key")
    except ConfigError as error:
        raise ValueError(f"{path} {error.message}") from None
    if text is None:
        raise ValueError(f"{path} does not exist")
    # dkimpy finds the PEM body between lines ending in LF only.
    key = text.replace("\r\n", "\n").encode("ascii", "replace")
    try:
        modulus = parse_pem_private_key(key)["modulus"]
    except UnparsableKeyError:
        raise ValueError(
            f"{path} is not an unencrypted PEM RSA private key (PKCS#1 or PKCS#8)"
        ) from None
    if modulus.bit_length() < MINIMUM_KEY_BITS:
        raise ValueError(
            f"{path} holds a {modulus.bit_length()}-bit key; DKIM needs at least "
            f"{MINIMUM_KEY_BITS} bits (2048 recommended)"
        )
    return key


@implementer(IPlugin, IAgentFactory)
class DkimSigner:
    name = "DkimSigner"

    def makeAgent(self, settings, organization, reactor):
        known = {key.lower(): key for key in KEYS}
        values = {}
        for key, value in settings.items():
            canonical = known.get(key.lower())
            if canonical is None:
                raise SettingError(
                    key, "unknown key for DkimSigner; known keys are: " + ", ".join(KEYS)
                )
            values[canonical] = (key, value)
        for required in ("DomainName", "Selector", "PrivateKeyPath"):
            if required not in values:
                raise ValueError(f"DkimSigner needs {required}")

        def parse(name, parser, default=None):
            if name not in values:
                return default
            key, value = values[name]
            try:
                return parser(value)
            except ValueError as error:
                raise SettingError(key, str(error)) from None

        domains = parse("DomainName", _domains)
        selector = parse("Selector", _selector)
        privateKey = parse(
            "PrivateKeyPath",
            lambda path: readPrivateKey(
                os.path.normpath(os.path.join(organization.folder, os.path.expanduser(path)))
            ),
        )
        connectors = parse("SendConnectors", lambda text: _connectors(text, organization))
        canonicalization = (
            parse("HeaderCanonicalization", _canonicalization, "Relaxed").lower().encode("ascii"),
            parse("BodyCanonicalization", _canonicalization, "Relaxed").lower().encode("ascii"),
        )
        defaultHeaders = [name.lower().encode() for name in DEFAULT_HEADERS_TO_SIGN]
        headers = parse("HeadersToSign", _headersToSign, defaultHeaders)
        return DkimSignerAgent(
            domains, selector, privateKey, connectors, canonicalization, headers, reactor
        )


def _domains(text):
    names = [fqdn(item).lower() for item in commaList(text)]
    if not names:
        raise ValueError("DomainName needs at least one domain")
    return names


def _selector(text):
    # A selector is one or more DNS labels (RFC 6376 section 3.1).
    return fqdn(text).lower()


def _connectors(text, organization):
    names = commaList(text)
    if not names:
        raise ValueError("list at least one send connector, or leave SendConnectors out for all")
    for name in names:
        if organization.sendConnector(name) is None:
            raise ValueError(
                f"no send connector is named {name!r}; the organization has: "
                + (", ".join(c.name for c in organization.sendConnectors) or "none")
            )
    return frozenset(name.lower() for name in names)


def _headersToSign(text):
    names = [name.lower().encode("ascii", "replace") for name in commaList(text)]
    if b"from" not in names:
        raise ValueError("HeadersToSign must include From (RFC 6376 section 5.4)")
    forbidden = sorted(set(names) & set(dkim.DKIM.SHOULD_NOT))
    if forbidden:
        raise ValueError(
            f"{forbidden[0].decode()} must not be signed: it is added or changed in transit"
        )
    return names


dkimSigner = DkimSigner()
