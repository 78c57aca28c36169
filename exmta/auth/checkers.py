"""
The twisted.cred checkers a receive connector's portal uses.

  - L{AccountChecker}: BasicAuth (AUTH PLAIN and LOGIN) against the
    L{exmta.auth.accounts.AccountStore}.
  - L{ExternalTrustChecker}: AuthMechanism C{ExternalAuthoritative}, where
    the connector trusts every peer in its RemoteIPRanges as an Externally
    Secured Server, with no secret exchanged.
  - Anonymous sessions log in with L{twisted.cred.checkers.AllowAnonymousAccess}.

Avatar ids are what L{exmta.auth.realm.ConnectorRealm} maps to principals:
a lower-case user principal name, L{permissions.EXTERNALLY_SECURED_SERVERS},
or L{twisted.cred.checkers.ANONYMOUS}.
"""

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from exmta.auth import permissions
from exmta.interfaces import IExternallySecured


@implementer(ICredentialsChecker)
class AccountChecker:
    """
    Checks user names and passwords against an account store, in the
    reactor's thread pool because argon2 is slow on purpose.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, store, reactor):
        """
        @param store: an L{exmta.interfaces.IAccountStore}.
        @param reactor: the reactor whose thread pool runs the checks.
        """
        self.store = store
        self.reactor = reactor

    def requestAvatarId(self, credentials):
        """
        @return: a Deferred firing with the lower-case user principal name,
            or failing with L{UnauthorizedLogin}.
        """
        name = credentials.username
        if isinstance(name, bytes):
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                return defer.fail(UnauthorizedLogin())
        name = name.lower()

        def checked(valid):
            if not valid:
                raise UnauthorizedLogin()
            return name

        verifying = deferToThreadPool(
            self.reactor,
            self.reactor.getThreadPool(),
            self.store.verify,
            name,
            credentials.password,
        )
        return verifying.addCallback(checked)


@implementer(IExternallySecured)
class ExternallySecured:
    """
    The credentials a session presents, before any AUTH, on a connector
    whose AuthMechanism includes C{ExternalAuthoritative}.
    """

    def __init__(self, peerHost):
        self.peerHost = peerHost


@implementer(ICredentialsChecker)
class ExternalTrustChecker:
    """
    Grants L{permissions.EXTERNALLY_SECURED_SERVERS} to peers inside the
    RemoteIPRanges of a connector whose AuthMechanism includes
    C{ExternalAuthoritative}: the network path is the authentication.
    """

    credentialInterfaces = (IExternallySecured,)

    def __init__(self, connector):
        """
        @param connector: an L{exmta.config.model.ReceiveConnector}.
        """
        self.connector = connector

    def requestAvatarId(self, credentials):
        if "ExternalAuthoritative" in self.connector.authMechanism and self._trusted(
            credentials.peerHost
        ):
            return defer.succeed(permissions.EXTERNALLY_SECURED_SERVERS)
        return defer.fail(UnauthorizedLogin())

    def _trusted(self, host):
        try:
            return any(host in ipRange for ipRange in self.connector.remoteIPRanges)
        except ValueError:
            # Not an IP address (a UNIX socket's path, say): nothing to trust.
            return False
