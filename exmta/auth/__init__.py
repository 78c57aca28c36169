"""
Authentication and authorization of SMTP sessions, through twisted.cred.

Each receive connector has its own L{Portal}: its checkers say how a peer
may prove who it is (L{exmta.auth.checkers}), its realm makes the principal
it then runs as (L{exmta.auth.realm}), and L{exmta.auth.permissions} says
what that principal may do on the connector.  The account store behind
BasicAuth is L{exmta.auth.accounts}.
"""

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal

from exmta.auth import permissions
from exmta.auth.checkers import AccountChecker, ExternallySecured, ExternalTrustChecker
from exmta.auth.realm import ConnectorRealm, Principal

__all__ = ["ExternallySecured", "Principal", "permissions", "portalFor"]


def portalFor(organization, connector, accountStore, reactor):
    """
    The portal sessions on C{connector} log in through.

    Anonymous is always a login that succeeds: whether an anonymous session
    may do anything is for the connector's rights to say, not for the portal.

    @param organization: the L{exmta.config.model.Organization}.
    @param connector: the L{exmta.config.model.ReceiveConnector}.
    @param accountStore: the L{exmta.interfaces.IAccountStore} BasicAuth
        checks, if the connector's AuthMechanism includes it.
    @param reactor: the reactor whose thread pool checks passwords.
    @return: a L{Portal} whose avatars provide L{exmta.interfaces.IPrincipal}.
    """
    checkers = [AllowAnonymousAccess()]
    if "BasicAuth" in connector.authMechanism:
        checkers.append(AccountChecker(accountStore, reactor))
    if "ExternalAuthoritative" in connector.authMechanism:
        checkers.append(ExternalTrustChecker(connector))
    return Portal(ConnectorRealm(organization, connector), checkers)
