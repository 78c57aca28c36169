"""
Authentication and authorization of SMTP sessions, through twisted.cred.

Each receive connector has its own L{Portal}: its checkers say how a peer
may prove who it is (L{exmta.auth.checkers}), its realm makes the principal
it then runs as (L{exmta.auth.realm}), and L{exmta.auth.permissions} says
what that principal may do on the connector.

BasicAuth asks the credential checker plugins
(L{exmta.interfaces.ICheckerFactory}) that the connector's
C{CredentialCheckers} names, in order: C{Accounts}, exmta's own account
store (L{exmta.auth.accounts}), unless it says otherwise.  Their settings
come from C{[CredentialChecker Name]} sections of org.ini.
"""

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal

from exmta.auth import permissions
from exmta.auth.checkers import (
    AccountChecker,
    CheckerChain,
    ExternallySecured,
    ExternalTrustChecker,
)
from exmta.auth.realm import ConnectorRealm, Principal
from exmta.pluginkinds import CREDENTIAL_CHECKER, byName

__all__ = [
    "ExternallySecured",
    "connectorChecker",
    "Principal",
    "loadCredentialCheckers",
    "makePortal",
    "permissions",
    "portalFor",
]


def makePortal(organization, connector, passwordChecker, serverChecker=None):
    """
    The portal sessions on C{connector} log in through.

    Anonymous is always a login that succeeds: whether an anonymous session
    may do anything is for the connector's rights to say, not for the portal.

    @param organization: the L{exmta.config.model.Organization}.
    @param connector: the L{exmta.config.model.ReceiveConnector}.
    @param passwordChecker: the L{twisted.cred.checkers.ICredentialsChecker}
        of user names and passwords, asked if the connector's AuthMechanism
        includes BasicAuth (a L{CheckerChain}, from L{connectorChecker}).
    @param serverChecker: the L{exmta.auth.certificates.ExchangeServerChecker}
        of the server's TlsCertificateAuthorityPath, asked if the
        connector's AuthMechanism includes ExchangeServer; L{None} when the
        server has no authority.
    @return: a L{Portal} whose avatars provide L{exmta.interfaces.IPrincipal}.
    """
    checkers = [AllowAnonymousAccess()]
    if "BasicAuth" in connector.authMechanism:
        checkers.append(passwordChecker)
    if "ExternalAuthoritative" in connector.authMechanism:
        checkers.append(ExternalTrustChecker(connector))
    if "ExchangeServer" in connector.authMechanism and serverChecker is not None:
        checkers.append(serverChecker)
    return Portal(ConnectorRealm(organization, connector), checkers)


def portalFor(organization, connector, accountStore, reactor):
    """
    The portal of C{connector} with BasicAuth checked against one account
    store, as the C{Accounts} checker does: for embedding and tests.

    @param accountStore: an L{exmta.interfaces.IAccountStore}.
    @param reactor: the reactor whose process's verification pool checks passwords.
    """
    checker = CheckerChain([("Accounts", AccountChecker(accountStore, reactor))])
    return makePortal(organization, connector, checker)


def checkerFactories():
    """
    @return: a dict of every L{exmta.interfaces.ICheckerFactory} plugin
        by lower-case name.
    """
    return CREDENTIAL_CHECKER.installed()


def loadCredentialCheckers(organization, connectors, reactor, factories=None):
    """
    Make the credential checkers that C{connectors} name in their
    CredentialCheckers, and those of every C{[CredentialChecker Name]}
    section (used or not, so that a mistake shows before it is used).
    Each is made once, and shared by the connectors naming it.

    @param connectors: the L{exmta.config.model.ReceiveConnector}s to serve.
    @param factories: the L{exmta.interfaces.ICheckerFactory}s to choose
        from; by default the plugins in L{exmta.plugins}.
    @return: a dict of lower-case name to its checker.
    @raise exmta.errors.ConfigError: a name has no plugin, the plugin does
        not check user names and passwords, or it refused its settings;
        naming the CredentialCheckers key or the section's key at fault.
    """
    factories = checkerFactories() if factories is None else byName(factories)
    wanted = {}
    for section in organization.credentialCheckers:
        wanted.setdefault(section.name.lower(), (section.name, section.origin, None))
    for connector in connectors:
        for name in connector.credentialCheckers:
            wanted.setdefault(name.lower(), (name, connector.origin, "CredentialCheckers"))
    made = {}
    for lowered, (name, origin, key) in wanted.items():
        factory = CREDENTIAL_CHECKER.find(factories, name, origin, key)
        if IUsernamePassword not in factory.credentialInterfaces:
            raise origin.error(
                f"the credential checker {factory.name} does not check user names "
                "and passwords, which BasicAuth needs",
                key,
            )
        section = organization.credentialCheckerSettings(name)
        made[lowered] = CREDENTIAL_CHECKER.make(factory, section, origin, key, organization, reactor)
    return made


def connectorChecker(connector, checkers):
    """
    @param checkers: what L{loadCredentialCheckers} made for the connector.
    @return: the L{CheckerChain} of C{connector}'s CredentialCheckers.
    """
    return CheckerChain(
        (name, checkers[name.lower()]) for name in connector.credentialCheckers
    )
