"""
Tests for L{exmta.routing}: Exchange 2010's accepted-domain rules.
"""

from zope.interface.verify import verifyObject

from exmta.config import parseOrganization
from exmta.envelope import Address
from exmta.interfaces import IRecipientResolver
from exmta.routing import LOCAL, REMOTE, UNKNOWN, Resolution, Resolver

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[AcceptedDomain Subsidiaries]
DomainName = *.fabrikam.com
DomainType = Authoritative

[AcceptedDomain contoso.com]
DomainType = InternalRelay

[AcceptedDomain partner.example]
DomainType = ExternalRelay

[Mailbox Bob]
PrimarySmtpAddress = Bob@fabrikam.com
EmailAddresses = smtp:robert@fabrikam.com, bob@sales.fabrikam.com

[Mailbox Carol]
PrimarySmtpAddress = carol@contoso.com

[Mailbox Postmaster]
PrimarySmtpAddress = admin@fabrikam.com
EmailAddresses = postmaster@fabrikam.com
"""


def resolver():
    return Resolver(parseOrganization(ORGANIZATION, "/nonexistent/org.ini"))


def resolve(text):
    localPart, _, domain = text.rpartition("@")
    return resolver().resolve(Address(localPart, domain))


def test_interface():
    assert verifyObject(IRecipientResolver, resolver())


def test_authoritativeMailbox():
    """
    An address a mailbox owns is local and goes to that mailbox's folder,
    whichever of its addresses and however it is capitalised.
    """
    for address in ("bob@fabrikam.com", "ROBERT@Fabrikam.COM"):
        resolution = resolve(address)
        assert resolution.kind == LOCAL
        assert resolution.mailbox.name == "Bob"
        assert resolution.folder == "bob@fabrikam.com"


def test_authoritativeUnknown():
    assert resolve("nobody@fabrikam.com") == Resolution(UNKNOWN)


def test_postmasterWithoutMailbox():
    """
    postmaster is valid at every authoritative domain, wildcard ones
    included; without a mailbox it has a folder of its own.
    """
    resolution = resolve("PostMaster@EU.Fabrikam.com")
    assert resolution == Resolution(LOCAL, None, "postmaster@eu.fabrikam.com")


def test_postmasterOwnedByMailbox():
    resolution = resolve("postmaster@fabrikam.com")
    assert resolution.kind == LOCAL
    assert resolution.mailbox.name == "Postmaster"
    assert resolution.folder == "admin@fabrikam.com"


def test_wildcardDomain():
    """
    C{*.fabrikam.com} covers every subdomain: mailbox addresses there are
    local, the rest unknown.
    """
    assert resolve("bob@sales.fabrikam.com").folder == "bob@fabrikam.com"
    assert resolve("alice@sales.fabrikam.com").kind == UNKNOWN
    assert resolve("alice@a.b.fabrikam.com").kind == UNKNOWN
    assert resolve("alice@notfabrikam.com").kind == REMOTE


def test_internalRelay():
    """
    In an InternalRelay domain a mailbox's addresses are local and the
    rest belong to the other system, postmaster included.
    """
    resolution = resolve("carol@contoso.com")
    assert resolution.kind == LOCAL
    assert resolution.folder == "carol@contoso.com"
    assert resolve("dave@contoso.com") == Resolution(REMOTE)
    assert resolve("postmaster@contoso.com") == Resolution(REMOTE)


def test_externalRelay():
    assert resolve("anyone@partner.example") == Resolution(REMOTE)
    assert resolve("postmaster@partner.example") == Resolution(REMOTE)


def test_notAccepted():
    assert resolve("someone@example.org") == Resolution(REMOTE)
    assert resolve("postmaster@example.org") == Resolution(REMOTE)
