"""
The cred realm of a receive connector: it turns an avatar id from one of
L{exmta.auth.checkers} into the L{Principal} a session runs as, with the
rights that connector grants it.
"""

from dataclasses import dataclass

from twisted.cred import checkers
from twisted.cred.portal import IRealm
from zope.interface import implementer

from exmta.auth import permissions
from exmta.interfaces import IPrincipal


@implementer(IPrincipal)
@dataclass(frozen=True)
class Principal:
    """
    See L{IPrincipal}.
    """

    name: str
    identities: frozenset[str]
    rights: frozenset[str]
    addresses: frozenset[str] = frozenset()
    authAs: str = "Anonymous"

    def has(self, right):
        return right in self.rights


@implementer(IRealm)
class ConnectorRealm:
    """
    Makes the principals of one receive connector.
    """

    def __init__(self, organization, connector):
        """
        @param organization: the L{exmta.config.model.Organization}, whose
            mailboxes say which addresses an account owns.
        @param connector: the L{exmta.config.model.ReceiveConnector} whose
            permission groups and entries grant the rights.
        """
        self.organization = organization
        self.connector = connector

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IPrincipal not in interfaces:
            raise NotImplementedError("ConnectorRealm only makes IPrincipal avatars")
        return IPrincipal, self.principalFor(avatarId), lambda: None

    def principalFor(self, avatarId):
        """
        @param avatarId: L{checkers.ANONYMOUS},
            L{permissions.EXTERNALLY_SECURED_SERVERS},
            L{permissions.HUB_TRANSPORT_SERVERS} (a certificate the
            organization issued, L{exmta.auth.certificates}), or a lower-case user
            principal name (which always has an C{@}, so it cannot be taken
            for a well-known principal).
        """
        if avatarId == checkers.ANONYMOUS:
            return self._principal(permissions.ANONYMOUS, {permissions.ANONYMOUS}, "Anonymous")
        if avatarId in (permissions.EXTERNALLY_SECURED_SERVERS, permissions.HUB_TRANSPORT_SERVERS):
            return self._principal(avatarId, {avatarId}, "Internal")
        addresses = frozenset(
            address
            for mailbox in self.organization.mailboxes
            if mailbox.userPrincipalName == avatarId
            for address in mailbox.emailAddresses
        )
        return self._principal(
            avatarId, {avatarId, permissions.AUTHENTICATED_USERS}, "Internal", addresses
        )

    def _principal(self, name, identities, authAs, addresses=frozenset()):
        identities = frozenset(identities)
        return Principal(
            name=name,
            identities=identities,
            rights=permissions.rightsOf(self.connector, identities),
            addresses=addresses,
            authAs=authAs,
        )
