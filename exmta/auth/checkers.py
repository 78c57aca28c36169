"""
The twisted.cred checkers a receive connector's portal uses.

  - L{AccountChecker}: BasicAuth (AUTH PLAIN and LOGIN) against the
    L{exmta.auth.accounts.AccountStore}; the C{Accounts} plugin makes it.
  - L{CheckerChain}: the checkers a connector's C{CredentialCheckers} names,
    asked in order, as the one checker of BasicAuth.
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
from twisted.logger import Logger
from zope.interface import implementer

from exmta.auth import permissions
from exmta.auth.accounts import checkUserPrincipalName
from exmta.auth.hashing import VerifierBusy, verificationPool
from exmta.interfaces import IExternallySecured


class WrongPassword(UnauthorizedLogin):
    """
    The account exists and the password is not its.  A checker that knows
    says so with this rather than plain L{UnauthorizedLogin}, so that the
    user name may be logged: a name that is no account is never logged, as
    it may be a password typed into the user name field.
    """


@implementer(ICredentialsChecker)
class AccountChecker:
    """
    Checks user names and passwords against an account store, in the
    process's verification pool because argon2 is slow on purpose.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, store, reactor):
        """
        @param store: an L{exmta.interfaces.IAccountStore}.
        @param reactor: the reactor whose process's pool runs the checks.
        """
        self.store = store
        self.reactor = reactor

    def requestAvatarId(self, credentials):
        """
        @return: a Deferred firing with the lower-case user principal name,
            or failing as L{verifyInThreadPool} says.
        """
        return verifyInThreadPool(self.reactor, credentials, self._verify)

    def _verify(self, name, password):
        if self.store.verify(name, password):
            return True
        return False if name in self.store.names() else None


def verifyInThreadPool(reactor, credentials, verify):
    """
    Check a user name and password in the process's verification pool
    (L{exmta.auth.hashing}), for checkers whose password hashes are slow on
    purpose.

    @param credentials: L{IUsernamePassword} credentials.
    @param verify: called in a thread of the pool with the lower-case user
        name and the password; returns L{True} if they match, L{False} if
        the account exists and the password is not its, L{None} if there is
        no such account.
    @return: a Deferred firing with the lower-case user name; or failing
        with L{WrongPassword}, with L{UnauthorizedLogin} (no such account,
        or a user name that is not UTF-8), with
        L{exmta.auth.hashing.VerifierBusy} if the pool's line is full, and,
        cancelled, with L{exmta.auth.hashing.VerificationDropped} if the
        check had not started.
    """
    name = credentials.username
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            return defer.fail(UnauthorizedLogin())
    name = name.lower()

    def checked(valid):
        if valid is None:
            raise UnauthorizedLogin()
        if not valid:
            raise WrongPassword()
        return name

    verifying = verificationPool(reactor).run(verify, name, credentials.password)
    return verifying.addCallback(checked)


@implementer(ICredentialsChecker)
class CheckerChain:
    """
    Several user name and password checkers as one: twisted.cred's portal
    asks a single checker per credential interface, and a connector's
    CredentialCheckers may name several.

    A login succeeds with the first checker, in order, that accepts it; a
    checker that refuses it (not knowing the user, or a wrong password)
    passes it to the next.  A checker that fails otherwise (its file or
    directory is unusable) is logged by name and skipped too, and if no
    checker accepts the login that failure is the answer instead of
    L{UnauthorizedLogin}: the client hears of a temporary problem, not of
    a wrong password.  If any checker refused with L{WrongPassword}, so
    does the chain.  A busy verification pool, or a check cancelled (the
    client has gone), ends the chain there: the next checker would find
    the pool as busy, and no one is waiting for the answer.

    The avatar id is checked here: it must be a user principal name
    (C{name@domain}, lower-cased), so that no plugin can log a session in
    as a well-known principal.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(self, checkers):
        """
        @param checkers: C{(name, checker)} pairs in the order to ask them;
            the checkers are L{ICredentialsChecker}s of L{IUsernamePassword}.
        """
        self.checkers = tuple(checkers)

    def requestAvatarId(self, credentials):
        """
        @return: a Deferred firing with the lower-case user principal name
            of the first checker that accepts C{credentials}.
        """
        problems = []
        wrongPassword = []

        def ask(index):
            if index == len(self.checkers):
                if problems:
                    return defer.fail(problems[0])
                return defer.fail(WrongPassword() if wrongPassword else UnauthorizedLogin())
            name, checker = self.checkers[index]
            asking = defer.maybeDeferred(checker.requestAvatarId, credentials)
            asking.addCallback(self._userPrincipalName, name)

            def refused(failure):
                if failure.check(VerifierBusy, defer.CancelledError):
                    return failure
                if failure.check(WrongPassword):
                    wrongPassword.append(name)
                elif not failure.check(UnauthorizedLogin):
                    self.log.failure(
                        "credential checker {checker} failed", failure, checker=name
                    )
                    problems.append(failure)
                return ask(index + 1)

            return asking.addErrback(refused)

        return ask(0)

    @staticmethod
    def _userPrincipalName(avatarId, checker):
        if not isinstance(avatarId, str):
            raise TypeError(f"credential checker {checker} answered {avatarId!r}, not a str")
        try:
            return checkUserPrincipalName(avatarId)
        except ValueError:
            raise ValueError(
                f"credential checker {checker} answered {avatarId!r}, not a user principal name"
            ) from None


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
