"""
Where a recipient belongs, by Exchange 2010's accepted-domain rules.

  - Authoritative domain: the organization holds every mailbox there.  An
    address a mailbox owns is local; C{postmaster} is valid at every
    authoritative domain even without a mailbox (RFC 5321 requires it);
    any other address does not exist (the receive side answers 550 5.1.1).
  - InternalRelay domain: shared with another system.  Addresses a mailbox
    owns are local; the rest go on to that system.
  - ExternalRelay domain, or no accepted domain: remote.

Pure: no I/O, no reactor.
"""

from dataclasses import dataclass

from zope.interface import implementer

from exmta.config.model import Mailbox
from exmta.interfaces import IRecipientResolver

LOCAL = "local"
REMOTE = "remote"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Resolution:
    """
    Where one recipient goes.

    @ivar kind: L{LOCAL}, L{REMOTE} or L{UNKNOWN}.
    @ivar mailbox: the L{Mailbox} owning the address, if one does.
    @ivar folder: for local recipients, the name of the mailbox folder
        delivery writes to (L{Mailbox.folder}, or C{postmaster@<domain>}
        for a postmaster no mailbox owns); else L{None}.
    """

    kind: str
    mailbox: Mailbox | None = None
    folder: str | None = None


_REMOTE = Resolution(REMOTE)
_UNKNOWN = Resolution(UNKNOWN)


@implementer(IRecipientResolver)
class Resolver:
    """
    Resolves recipients against one organization's accepted domains and
    mailboxes.
    """

    def __init__(self, organization):
        self.organization = organization
        # Organizations are frozen, so the owner of each address can be
        # looked up once rather than searched for every recipient.
        self._owners = {
            address: mailbox
            for mailbox in organization.mailboxes
            for address in mailbox.emailAddresses
        }

    def resolve(self, address):
        """
        See L{IRecipientResolver.resolve}.
        """
        domain = address.domain.lower()
        accepted = self.organization.acceptedDomainFor(domain)
        if accepted is None or accepted.domainType == "ExternalRelay":
            return _REMOTE
        mailbox = self._owners.get(f"{address.localPart}@{domain}".lower())
        if mailbox is not None:
            return Resolution(LOCAL, mailbox, mailbox.folder)
        if accepted.domainType == "InternalRelay":
            return _REMOTE
        if address.localPart.lower() == "postmaster":
            return Resolution(LOCAL, None, f"postmaster@{domain}")
        return _UNKNOWN
