"""
SMTP AUTH (RFC 4954) for the receive protocol: the PLAIN and LOGIN
mechanisms, answered through twisted.cred, with Exchange's tarpit and
MaxLogonFailures, and failed logons counted across sessions per client
address and account (L{exmta.auth.throttle}).  The protocol never sees a
secret beyond passing it to the portal, and logs a user name only once a
checker has said it is an account's.
"""

import base64
import binascii
from dataclasses import replace

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import CancelledError
from twisted.internet.task import deferLater

from exmta.auth import permissions
from exmta.auth.checkers import WrongPassword
from exmta.auth.hashing import VerificationDropped, VerifierBusy
from exmta.envelope import Reply
from exmta.interfaces import IPrincipal

# The protocol's modes: reading commands, or a SASL response line.
COMMAND, SASL = "command", "sasl"

AUTH_FAILED = Reply(535, "5.7.3", "Authentication unsuccessful")
THROTTLED = Reply(
    454, "4.7.0", "Temporary authentication failure: too many failed logons, try again later"
)
VERIFIER_BUSY = Reply(454, "4.7.0", "Temporary authentication failure: server busy, try again later")
TOO_MANY_ERRORS = Reply(
    421, "4.7.0", "Too many errors on this connection, closing transmission channel"
)
# RFC 4954 section 6's code for a SASL response longer than the server takes.
AUTH_LINE_TOO_LONG = Reply(500, "5.5.6", "Authentication Exchange line is too long")


def reply(code, status, text):
    return Reply(code, status, text)


class AuthCommands:
    """
    The AUTH command of L{exmta.receive.protocol.ReceiveProtocol}, which
    this is mixed into: it uses the protocol's C{session}, C{connector},
    C{envelope}, C{factory}, C{_mode}, C{_send}, C{_close} and
    C{_agentsThen}.  The protocol frames the lines and calls
    L{_abandonExchange} when a SASL response line is too long, and
    L{_abandonLogin} when the connection is lost.

    Each password checked is counted against the client's address and the
    account in the factory's C{logonThrottle}
    (L{exmta.auth.throttle.LogonThrottle}), across connections; a logon
    it refuses is answered 454 4.7.0 without checking the password.
    """

    def smtp_AUTH(self, argument):
        auth = self.connector.authMechanism
        if self.session.helo is None or not self.session.esmtp:
            return reply(503, "5.5.1", "Send EHLO first")
        if "BasicAuth" not in auth:
            return reply(503, "5.5.1", "Authentication is not enabled on this connector")
        if self.session.authenticated:
            return reply(503, "5.5.1", "Already authenticated")
        if self.envelope is not None:
            return reply(503, "5.5.1", "AUTH is not permitted during a mail transaction")
        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in ("PLAIN", "LOGIN"):
            return reply(504, "5.7.4", "Unrecognized authentication type")
        if "BasicAuthRequireTLS" in auth and not self.session.tlsVersion:
            return reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
        initial = initial.strip()
        if mechanism == "PLAIN":
            if initial:
                return self._plainResponse(initial.encode("ascii"))
            return self._challenge(b"", self._plainResponse)
        if initial:
            return self._loginUsername(initial.encode("ascii"))
        return self._challenge(b"Username:", self._loginUsername)

    def _challenge(self, text, step):
        self._mode = SASL
        self._saslStep = step
        return Reply(334, "", base64.b64encode(text).decode("ascii"))

    def _abandonExchange(self):
        """
        Fail the AUTH command whose SASL response line was too long: the
        session reads commands again.

        @return: the reply.
        """
        self._mode = COMMAND
        return AUTH_LINE_TOO_LONG

    def _decodeResponse(self, line):
        self._mode = COMMAND
        if line.strip() == b"*":
            raise _Cancelled()
        try:
            return base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _Malformed() from None

    def _plainResponse(self, line):
        try:
            decoded = self._decodeResponse(line)
        except _SASLAbort as abort:
            return abort.reply
        parts = decoded.split(b"\0")
        if len(parts) != 3:
            return reply(501, "5.5.2", "Cannot decode AUTH PLAIN response")
        authorizationId, user, password = parts
        if authorizationId and authorizationId != user:
            return self._loginFailed(None)
        return self._login(user, password)

    def _loginUsername(self, line):
        try:
            user = self._decodeResponse(line)
        except _SASLAbort as abort:
            return abort.reply

        def password(line):
            try:
                secret = self._decodeResponse(line)
            except _SASLAbort as abort:
                return abort.reply
            return self._login(user, secret)

        return self._challenge(b"Password:", password)

    def _login(self, user, password):
        try:
            user.decode("utf-8")
        except UnicodeDecodeError:
            return self._loginFailed(None)
        attempt = self.factory.logonThrottle.attempt(self.session.peerHost, user)
        if attempt is None:
            # The throttle said so in the log when it began refusing.
            return self._refuseLogin(THROTTLED)
        portal = self.factory.portalFor(self.connector)
        login = self._checking = portal.login(UsernamePassword(user, password), None, IPrincipal)

        def loggedIn(result):
            self._checking = None
            attempt.finished()
            _, principal, _ = result
            if not principal.has(permissions.SUBMIT):
                return self._loginFailed(principal.name)
            session = replace(self.session, principal=principal, authenticated=True)

            def accept():
                self.session = session
                self.log.info(
                    "authenticated {user} from {peerHost} on {connector}",
                    user=principal.name,
                    peerHost=self.session.peerHost,
                    connector=self.connector.name,
                )
                return reply(235, "2.7.0", "Authentication successful")

            return self._agentsThen("OnAuth", accept, session=session)

        def failed(failure):
            self._checking = None
            if failure.check(VerifierBusy):
                attempt.finished()
                return VERIFIER_BUSY
            if failure.check(VerificationDropped):
                attempt.finished()
                self.log.info(
                    "dropped login from {peerHost} on {connector}: the client left "
                    "before its check started",
                    peerHost=self.session.peerHost,
                    connector=self.connector.name,
                )
                return None
            if failure.check(CancelledError):
                # The client left while its password was being checked.
                attempt.failed()
                self.log.warn(
                    "abandoned login from {peerHost} on {connector}, counted as failed",
                    peerHost=self.session.peerHost,
                    connector=self.connector.name,
                )
                return None
            if failure.check(UnauthorizedLogin):
                # Only the name of an account that exists may be logged.
                name = user.decode("utf-8").lower() if failure.check(WrongPassword) else None
                attempt.failed(name)
                return self._loginFailed(name)
            attempt.finished()
            return failure

        return login.addCallbacks(loggedIn, failed)

    # The login whose password is being checked, if any.
    _checking = None

    def _abandonLogin(self):
        """
        The connection is lost: drop the check of its password if it has
        not started; one that has started counts as a failed logon.
        """
        if self._checking is not None:
            self._checking.cancel()

    def _loginFailed(self, user):
        """
        Log a failed login and refuse it.

        @param user: the account's name, or L{None} if it is not known to
            be an account: then the name is not logged, as it may be a
            password typed into the user name field.
        """
        self.log.warn(
            "failed login {failures} for {user} from {peerHost} on {connector}",
            failures=self._logonFailures + 1,
            user=user or "a name not known as an account",
            peerHost=self.session.peerHost,
            connector=self.connector.name,
        )
        return self._refuseLogin(AUTH_FAILED)

    def _refuseLogin(self, answer):
        """
        Answer a refused login with C{answer} after the connector's
        AuthTarpitInterval, and end the session once MaxLogonFailures is
        reached.
        """
        self._logonFailures += 1
        limit = self.connector.maxLogonFailures

        def respond():
            if limit and self._logonFailures >= limit:
                self._send(answer)
                self._close(TOO_MANY_ERRORS)
                return None
            return answer

        return deferLater(self.factory.reactor, self.connector.authTarpitInterval, respond)


class _SASLAbort(Exception):
    reply = None


class _Cancelled(_SASLAbort):
    reply = reply(501, "5.0.0", "Authentication cancelled")


class _Malformed(_SASLAbort):
    reply = reply(501, "5.5.2", "Cannot decode response")

