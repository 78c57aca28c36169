"""
Domain Security at MAIL FROM (L{exmta.auth.domainsecure}): on a receive
connector with DomainSecureEnabled, a sender of a domain in
TLSReceiveDomainSecureList is accepted only over TLS, from a client whose
certificate proves that domain; the session then runs as the partner.

Exchange answers a domain-secured sender that did not start TLS with
C{451 5.7.3 STARTTLS is required to send mail} (its class and enhanced
code disagree; exmta keeps the transient class in both), and one whose
certificate fails with C{454 4.7.5 Certificate validation failure}.
Both are transient: the partner retries once it has fixed its side, and
no mail is returned meanwhile.
"""

from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.logger import Logger

from exmta.auth.certificates import peerChain
from exmta.auth.domainsecure import DomainSecureCertificate, isDomainSecured
from exmta.envelope import Reply
from exmta.interfaces import IPrincipal

log = Logger()

NEEDS_TLS = Reply(451, "4.7.3", "STARTTLS is required to send mail")
CERTIFICATE_REFUSED = Reply(454, "4.7.5", "Certificate validation failure")


def partnerLogin(connector, organization, session, transport, portal, sender):
    """
    @param sender: the MAIL FROM L{exmta.envelope.Address}.
    @return: L{None} when Domain Security does not apply to C{sender}; a
        refusal L{Reply}; or a Deferred firing with the partner's
        L{IPrincipal} or a refusal L{Reply}.
    """
    if not connector.domainSecureEnabled or sender.isNull:
        return None
    if not isDomainSecured(organization.transportConfig.tlsReceiveDomainSecureList, sender.domain):
        return None
    if not session.tlsVersion:
        # Exchange's event 11012 (MessageNotAuthenticatedTlsNotStarted).
        log.warn(
            "a message from domain-secured domain {domain} on connector {connector} could "
            "not be authenticated because the client did not use TLS",
            domain=sender.domain,
            connector=connector.identity,
        )
        return NEEDS_TLS
    chain = peerChain(transport.getHandle())
    credentials = DomainSecureCertificate(tuple(chain), sender.domain)

    def loggedIn(result):
        _, principal, _ = result
        return principal

    def refused(failure):
        failure.trap(UnauthorizedLogin, UnhandledCredentials)
        return CERTIFICATE_REFUSED

    return portal.login(credentials, None, IPrincipal).addCallbacks(loggedIn, refused)
