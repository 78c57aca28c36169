"""
Receive connector permissions, as Exchange 2010 computes them: permission
groups grant extended rights to well-known principals, and Add-ADPermission
entries allow or deny single rights to any principal on top of that.

Pure policy: no I/O, no reactor.
"""

ANONYMOUS = "NT AUTHORITY\\ANONYMOUS LOGON"
AUTHENTICATED_USERS = "NT AUTHORITY\\Authenticated Users"
EXTERNALLY_SECURED_SERVERS = "MS Exchange\\Externally Secured Servers"
HUB_TRANSPORT_SERVERS = "MS Exchange\\Hub Transport Servers"
EDGE_TRANSPORT_SERVERS = "MS Exchange\\Edge Transport Servers"
LEGACY_INTEROP = "MS Exchange\\ExchangeLegacyInterop"
PARTNER_SERVERS = "MS Exchange\\Partner Servers"

SUBMIT = "ms-Exch-SMTP-Submit"
ACCEPT_ANY_RECIPIENT = "ms-Exch-SMTP-Accept-Any-Recipient"
ACCEPT_ANY_SENDER = "ms-Exch-SMTP-Accept-Any-Sender"
ACCEPT_AUTHORITATIVE_DOMAIN_SENDER = "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"
ACCEPT_AUTHENTICATION_FLAG = "ms-Exch-SMTP-Accept-Authentication-Flag"
BYPASS_ANTI_SPAM = "ms-Exch-Bypass-Anti-Spam"
BYPASS_MESSAGE_SIZE_LIMIT = "ms-Exch-Bypass-Message-Size-Limit"
ACCEPT_HEADERS_ROUTING = "ms-Exch-Accept-Headers-Routing"
ACCEPT_HEADERS_ORGANIZATION = "ms-Exch-Accept-Headers-Organization"
ACCEPT_HEADERS_FOREST = "ms-Exch-Accept-Headers-Forest"
ACCEPT_EXCH50 = "ms-Exch-SMTP-Accept-Exch50"
ACCEPT_XSHADOW = "ms-Exch-SMTP-Accept-XShadow"

EXTENDED_RIGHTS = (
    SUBMIT,
    ACCEPT_ANY_RECIPIENT,
    ACCEPT_ANY_SENDER,
    ACCEPT_AUTHORITATIVE_DOMAIN_SENDER,
    ACCEPT_AUTHENTICATION_FLAG,
    BYPASS_ANTI_SPAM,
    BYPASS_MESSAGE_SIZE_LIMIT,
    ACCEPT_HEADERS_ROUTING,
    ACCEPT_HEADERS_ORGANIZATION,
    ACCEPT_HEADERS_FOREST,
    ACCEPT_EXCH50,
    ACCEPT_XSHADOW,
)

_CANONICAL_RIGHTS = {right.lower(): right for right in EXTENDED_RIGHTS}


def canonicalRight(name):
    """
    @return: the canonical spelling of an extended right, matched
        case-insensitively (C{Ms-Exch-SMTP-Accept-Any-Recipient} as the
        reference document writes it); L{None} if there is no such right.
    """
    return _CANONICAL_RIGHTS.get(name.strip().lower())


# Exchange servers hold every extended right.
_SERVER_RIGHTS = frozenset(EXTENDED_RIGHTS)

# Group -> ((principal, rights), ...), Exchange 2010's table.
GROUP_GRANTS = {
    "AnonymousUsers": (
        (
            ANONYMOUS,
            frozenset(
                {
                    SUBMIT,
                    ACCEPT_ANY_SENDER,
                    ACCEPT_AUTHORITATIVE_DOMAIN_SENDER,
                    ACCEPT_HEADERS_ROUTING,
                }
            ),
        ),
    ),
    "ExchangeUsers": (
        (
            AUTHENTICATED_USERS,
            frozenset(
                {SUBMIT, ACCEPT_ANY_RECIPIENT, BYPASS_ANTI_SPAM, ACCEPT_HEADERS_ROUTING}
            ),
        ),
    ),
    "ExchangeServers": (
        (HUB_TRANSPORT_SERVERS, _SERVER_RIGHTS),
        (EDGE_TRANSPORT_SERVERS, _SERVER_RIGHTS),
        (
            EXTERNALLY_SECURED_SERVERS,
            _SERVER_RIGHTS - {ACCEPT_HEADERS_FOREST, ACCEPT_XSHADOW},
        ),
    ),
    "ExchangeLegacyServers": ((LEGACY_INTEROP, _SERVER_RIGHTS - {ACCEPT_XSHADOW}),),
    "Partners": ((PARTNER_SERVERS, frozenset({SUBMIT, ACCEPT_HEADERS_ROUTING})),),
}


def _grantedTo(identities, user):
    lowered = user.lower()
    return any(identity.lower() == lowered for identity in identities)


def rightsOf(connector, identities):
    """
    The extended rights a principal holds on a receive connector.

    @param connector: an L{exmta.config.model.ReceiveConnector}.
    @param identities: every principal name the session counts as.
    @return: a frozenset of canonical right names.  Deny entries win over
        allows, as in Active Directory.
    """
    allowed = set()
    for group in connector.permissionGroups:
        for principal, rights in GROUP_GRANTS.get(group, ()):
            if principal in identities:
                allowed |= rights
    denied = set()
    for permission in connector.permissions:
        if _grantedTo(identities, permission.user):
            (denied if permission.deny else allowed).update(permission.extendedRights)
    return frozenset(allowed - denied)


def maySendAs(organization, sender, principal):
    """
    Exchange's sender checks: an address in an authoritative domain
    needs Accept-Authoritative-Domain-Sender unless the principal owns
    it; Accept-Any-Sender lifts the check.

    @param sender: an L{exmta.envelope.Address}.
    @param principal: the session's L{exmta.interfaces.IPrincipal}.
    """
    if sender.isNull or principal.has(ACCEPT_ANY_SENDER):
        return True
    accepted = organization.acceptedDomainFor(sender.domain)
    if accepted is None or accepted.domainType != "Authoritative":
        return True
    if principal.has(ACCEPT_AUTHORITATIVE_DOMAIN_SENDER):
        return True
    return str(sender).lower() in principal.addresses
