"""
SMTP AUTH (RFC 4954) for the receive protocol: the PLAIN and LOGIN
mechanisms, answered through twisted.cred, with Exchange's tarpit and
MaxLogonFailures.  The protocol never sees a secret beyond passing it to
the portal.
"""

import base64
import binascii
from dataclasses import replace

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.task import deferLater

from exmta.auth import permissions
from exmta.envelope import Reply
from exmta.interfaces import IPrincipal

# The protocol's modes: reading commands, or a SASL response line.
COMMAND, SASL = "command", "sasl"

AUTH_FAILED = Reply(535, "5.7.3", "Authentication unsuccessful")
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
    L{_abandonExchange} when a SASL response line is too long.
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
            return self._loginFailed(user)
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
            return self._loginFailed(user)
        portal = self.factory.portalFor(self.connector)
        login = portal.login(UsernamePassword(user, password), None, IPrincipal)

        def loggedIn(result):
            _, principal, _ = result
            if not principal.has(permissions.SUBMIT):
                return self._loginFailed(user)
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
            failure.trap(UnauthorizedLogin)
            return self._loginFailed(user)

        return login.addCallbacks(loggedIn, failed)

    def _loginFailed(self, user):
        """
        Answer a failed login after the connector's AuthTarpitInterval, and
        end the session once MaxLogonFailures is reached.
        """
        self._logonFailures += 1
        self.log.warn(
            "failed login {failures} for {user} from {peerHost} on {connector}",
            failures=self._logonFailures,
            user=user.decode("utf-8", "replace"),
            peerHost=self.session.peerHost,
            connector=self.connector.name,
        )
        limit = self.connector.maxLogonFailures

        def answer():
            if limit and self._logonFailures >= limit:
                self._send(AUTH_FAILED)
                self._close(TOO_MANY_ERRORS)
                return None
            return AUTH_FAILED

        return deferLater(self.factory.reactor, self.connector.authTarpitInterval, answer)


class _SASLAbort(Exception):
    reply = None


class _Cancelled(_SASLAbort):
    reply = reply(501, "5.0.0", "Authentication cancelled")


class _Malformed(_SASLAbort):
    reply = reply(501, "5.5.2", "Cannot decode response")

