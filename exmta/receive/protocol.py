"""
The ESMTP server of a receive connector.

This replaces C{twisted.mail.smtp.ESMTP} rather than subclassing it, because
the traps listed in exchange-semantics.md section 2 sit in its core: it
executes plaintext pipelined behind STARTTLS, falls back to command mode in
the middle of an overlong DATA line, answers pipelined commands out of
order, ignores SIZE and BODY, and reads DATA one line at a time.  Here:

  - Framing is an explicit buffer.  Commands end only at CRLF; DATA is
    scanned in bulk for CRLF.CRLF, so a bare LF or CR never ends anything.
  - Commands run strictly one at a time: while one waits on a Deferred
    (a login, the queue's fsync) the rest stay buffered, so replies come
    back in order.
  - STARTTLS throws away whatever was buffered behind it and resets the
    session to its state at connect time.
  - The end-of-data reply is sent only after the queue has fsynced (the
    cleanup stage's reply comes then).
  - Transport agents (L{exmta.agents}) are asked at each SMTP event through
    the same one-command-at-a-time path; without agents nothing is built.
    At OnRcptCommand their C{recipients=} replace the command's recipient.
  - Shadow redundancy (L{exmta.queue.shadow}): an Exchange server's
    session is offered C{XSHADOW <instance>}; its MAIL may name the shadow
    it keeps (C{XSHADOW=server:queueId}), and C{XQDISCARD <server>} takes
    the discard notifications due to that server.  Nobody else gets either.

AUTH lives in L{exmta.receive.auth}, the DATA framing and whole-message
checks in L{exmta.receive.data}.  Once DATA has ended and passed those
checks, the message belongs to the cleanup stage (L{exmta.cleanup}): header
checks, the headers this hop adds, the end-of-data agent events and the
queue; the protocol sends the reply it gives.
"""

import re
from dataclasses import replace

from twisted.cred.credentials import Anonymous
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from exmta.agents import ACCEPT, CONTINUE, DISCONNECT, RECIPIENT_DELETED, AgentEvent
from exmta.auth import ExternallySecured, permissions
from exmta.auth.certificates import ExchangeServerCertificate, peerChain
from exmta.cleanup.cleanup import CANNOT_SEND_AS
from exmta.envelope import Address, Envelope, Reply, Session
from exmta.errors import Disconnect, SMTPFailure
from exmta.interfaces import IPrincipal
from exmta.message.address import AddressError
from exmta.message.header import rfc5322Date
from exmta.receive.auth import COMMAND, SASL, TOO_MANY_ERRORS, AuthCommands
from exmta.receive.chunking import CHUNK, ChunkingCommands
from exmta.receive.domainsecure import partnerLogin
from exmta.receive.data import TOO_BIG, MessageReader, checkMessage
from exmta.receive.limits import tarpitDelay
from exmta.receive.parameters import (
    INVALID_DOMAIN,
    commandLineLimit,
    connectorPath,
    ehloKeywords,
    helloRefusal,
    mailParameters,
    rcptParameters,
)

# RFC 4954 section 4: AUTH lines may be longer than other commands.
AUTH_LINE_LIMIT = 12288
# While a command waits, stop reading once this much is buffered behind it.
PAUSE_THRESHOLD = 256 * 1024
HARD_MESSAGE_LIMIT = 2 * 1024**3

_PROTOCOL_ERROR_CODES = {500, 501, 502, 503, 504, 555}

_DATA = "data"


def reply(code, status, text):
    return Reply(code, status, text)


NEED_HELO = reply(503, "5.5.1", "Send hello first")
UNRECOGNIZED = reply(500, "5.5.1", "Unrecognized command")
NOT_AUTHENTICATED = reply(530, "5.7.1", "Client was not authenticated")
MUST_STARTTLS = reply(530, "5.7.0", "Must issue a STARTTLS command first")
UNABLE_TO_RELAY = reply(550, "5.7.1", "Unable to relay")
RECIPIENT_NOT_FOUND = reply(550, "5.1.1", "RESOLVER.ADR.RecipNotFound; not found")
TOO_MANY_RECIPIENTS = reply(452, "4.5.3", "Too many recipients")
QUEUE_ERROR = reply(451, "4.3.0", "Error in processing; try again later")
LINE_TOO_LONG = reply(500, "5.5.2", "Line too long")
# RFC 6531 section 3.5.
NEEDS_SMTPUTF8 = reply(553, "5.6.7", "Non-ASCII addresses need MAIL FROM with SMTPUTF8")


def _isAuthCommand(line):
    return line[:5].upper() in (b"AUTH", b"AUTH ")


class ReceiveProtocol(AuthCommands, ChunkingCommands, Protocol, TimeoutMixin):
    """
    One SMTP session.  C{self.factory} is the L{exmta.receive.listener.ReceiveFactory}
    that chooses the connector and holds the portal, queue and resolver.
    """

    log = Logger()

    def __init__(self):
        self._buffer = bytearray()
        self._mode = COMMAND
        self._pending = None
        self._processing = False
        self._paused = False
        self._closing = False
        self._discardingLine = False
        self._afterAuthCommand = False
        self._protocolErrors = 0
        self._logonFailures = 0
        self._sessionTimer = None
        self._admitted = False
        self._protocolLog = None
        self.connector = None
        self.session = None
        self._connectPrincipal = None
        self.envelope = None
        self._agents = None
        self._reader = None
        self._recipientsAccepted = 0
        self._pressureRefusals = 0

    # Connection

    def connectionMade(self):
        host, peer = self.transport.getHost(), self.transport.getPeer()
        factory = self.factory
        connector = factory.select(host.host, host.port, peer.host)
        if connector is None:
            self.log.warn(
                "refused {peerHost} on {localHost}:{localPort}: no receive connector matches",
                peerHost=peer.host,
                localHost=host.host,
                localPort=host.port,
            )
            self._close(reply(421, "4.3.2", "Service not available, closing transmission channel"))
            return
        self.connector = connector
        refusal = factory.admit(connector, peer.host)
        if refusal is not None:
            self.log.warn(
                "refused {peerHost} on {connector}: {reply}",
                peerHost=peer.host,
                connector=connector.name,
                reply=str(refusal),
            )
            self._close(refusal)
            return
        self._admitted = True
        self._agents = getattr(factory, "agents", None)
        self._protocolLog = factory.protocolSession(connector, host, peer)
        self.session = Session(
            connector=connector.name,
            server=connector.server,
            localHost=host.host,
            localPort=host.port,
            peerHost=peer.host,
            peerPort=peer.port,
        )
        self.callLater = factory.reactor.callLater
        self.setTimeout(connector.connectionInactivityTimeout)
        self._sessionTimer = factory.reactor.callLater(
            connector.connectionTimeout, self._connectionTimedOut
        )
        if self._protocolLog is not None:
            self._protocolLog.event("+")
        self._await(self._connectLogin().addCallback(self._greet))

    def _connectLogin(self):
        """
        Log the session in as the principal it has before any AUTH:
        Externally Secured Servers where the connector trusts the peer's
        address, anonymous otherwise.
        """
        portal = self.factory.portalFor(self.connector)
        anonymous = lambda _: portal.login(Anonymous(), None, IPrincipal)
        if "ExternalAuthoritative" in self.connector.authMechanism:
            login = portal.login(ExternallySecured(self.session.peerHost), None, IPrincipal)
            login.addErrback(anonymous)
        else:
            login = anonymous(None)

        def loggedIn(result):
            _, principal, _ = result
            self._connectPrincipal = principal
            self.session = replace(self.session, principal=principal)

        return login.addCallback(loggedIn)

    def _greet(self, _):
        return self._agentsThen("OnConnect", self._greeting, refusalCloses=True)

    def _greeting(self):
        if self.connector.banner:
            return Reply(220, "", self.connector.banner[4:].strip() or self.connector.fqdn)
        date = rfc5322Date(self.factory.reactor.seconds())
        return Reply(220, "", f"{self.connector.fqdn} exmta ESMTP service ready at {date}")

    def connectionLost(self, reason):
        self.setTimeout(None)
        if self._sessionTimer is not None and self._sessionTimer.active():
            self._sessionTimer.cancel()
        if self._admitted:
            self.factory.release(self.connector, self.session.peerHost)
            if self._agents is not None and self._agents.wants("OnDisconnect"):
                self._agents.run(AgentEvent("OnDisconnect", self.session, self.envelope))
            if self._protocolLog is not None:
                self._protocolLog.event("-")
            # Sessions come and go by the thousand; the server log names
            # each accepted message, and only the sessions that left one
            # unfinished.
            if self.envelope is not None:
                self.log.info(
                    "disconnected {peerHost}:{peerPort} from {connector} during a mail transaction",
                    peerHost=self.session.peerHost,
                    peerPort=self.session.peerPort,
                    connector=self.connector.name,
                )
        self._closing = True
        self._buffer = bytearray()
        self._abandonLogin()

    def timeoutConnection(self):
        self._close(reply(451, "4.7.0", "Timeout waiting for client input"))

    def _connectionTimedOut(self):
        self._sessionTimer = None
        self._close(reply(421, "4.4.1", "Connection timed out; session too long"))

    def _close(self, final):
        if self._closing:
            return
        self._closing = True
        self._buffer = bytearray()
        if final.status and not self._enhancedStatusCodes():
            final = replace(final, status="")
        self._logReply(final)
        self.transport.write(final.toBytes())
        self.transport.loseConnection()

    # Framing

    def dataReceived(self, data):
        if self._closing:
            return
        self.resetTimeout()
        self._buffer += data
        if self._pending is None:
            self._process()
        elif len(self._buffer) > PAUSE_THRESHOLD and not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _process(self):
        self._processing = True
        try:
            while self._pending is None and not self._closing:
                if self._mode == _DATA:
                    if not self._scanData():
                        return
                    continue
                if self._mode == CHUNK:
                    if not self._scanChunk():
                        return
                    continue
                end = self._buffer.find(b"\r\n")
                if end == -1:
                    self._partialLine()
                    return
                if self._discardingLine:
                    self._discardingLine = False
                    del self._buffer[: end + 2]
                    continue
                if end > self._lineLimit():
                    self._refuseLongLine(end + 2)
                    continue
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                self._respond(self._lineReceived(line))
        finally:
            self._processing = False

    def _partialLine(self):
        """
        The buffer holds the start of a line whose CRLF has not come yet.
        Once it is longer than a line may be it is answered, once, and from
        then on what arrives of it is thrown away up to its CRLF.
        """
        # A CR at the end may be the first half of the CRLF.
        length = len(self._buffer) - self._buffer.endswith(b"\r")
        if self._discardingLine:
            del self._buffer[:length]
        elif length > self._lineLimit():
            self._refuseLongLine(length)
            self._discardingLine = True

    def _lineLimit(self):
        if self._mode == SASL or _isAuthCommand(self._buffer):
            return AUTH_LINE_LIMIT
        return commandLineLimit(self.connector, self._buffer[:5])

    def _refuseLongLine(self, length):
        """
        Drop the first C{length} octets of the buffer, an overlong line, and
        answer it.  In a SASL exchange this ends the exchange.
        """
        if _isAuthCommand(self._buffer):
            self._afterAuthCommand = True
        del self._buffer[:length]
        if self._mode == SASL:
            self._send(self._abandonExchange())
        else:
            self._send(LINE_TOO_LONG)

    def _respond(self, result):
        if isinstance(result, defer.Deferred):
            self._await(result)
        elif result is not None:
            self._sendOrTarpit(result)

    def _sendOrTarpit(self, response):
        """
        Send C{response}, after the connector's TarpitInterval when it
        refuses mail to an anonymous session (L{tarpitDelay}); nothing else
        is read meanwhile.
        """
        delay = tarpitDelay(self.connector, self.session, response)
        if not delay:
            self._send(response)
            return
        self._await(deferLater(self.factory.reactor, delay, self._send, response))

    def _await(self, deferred):
        self._pending = deferred
        deferred.addErrback(self._unexpected)
        deferred.addCallback(self._settled)

    def _unexpected(self, failure):
        if failure.check(Disconnect):
            self._close(failure.value.reply)
            return None
        if failure.check(SMTPFailure):
            return failure.value.reply
        self.log.failure(
            "unexpected error on {connector} from {peerHost}",
            failure,
            connector=self.connector.name if self.connector else None,
            peerHost=self.session.peerHost if self.session else None,
        )
        return QUEUE_ERROR

    def _settled(self, result):
        self._pending = None
        if result is not None:
            self._sendOrTarpit(result)
            if self._pending is not None:
                return
        if self._closing:
            return
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        if not self._processing:
            self._process()

    def _send(self, response):
        if self._closing:
            return
        if response.status and not self._enhancedStatusCodes():
            response = replace(response, status="")
        self._logReply(response)
        self.transport.write(response.toBytes())
        if response.code in _PROTOCOL_ERROR_CODES:
            self._protocolErrors += 1
            limit = self.connector.maxProtocolErrors
            if limit is not None and self._protocolErrors > limit:
                self._close(TOO_MANY_ERRORS)

    def _enhancedStatusCodes(self):
        # A connector's EnhancedStatusCodesEnabled; before one is chosen
        # (the 421 of an address no connector takes), Exchange's default.
        return self.connector is None or self.connector.enhancedStatusCodesEnabled

    def _logCommand(self, line):
        """
        Log a command line, keeping SASL responses (which carry passwords)
        out of the log: of an AUTH command only the verb and mechanism are
        written, and the line after it is never written, whatever became
        of the AUTH: a client may send its credentials after a refusal.
        """
        if self._mode == SASL or self._afterAuthCommand:
            self._protocolLog.event("<", redact=True)
        elif _isAuthCommand(line):
            self._protocolLog.event("<", b" ".join(line.split()[:2]), context="response redacted")
        else:
            self._protocolLog.event("<", line)
        self._afterAuthCommand = _isAuthCommand(line)

    def _logReply(self, response):
        observer = self.factory.observer
        if observer is not None:
            observer.replied(self.connector, self.session, response)
        if self._protocolLog is not None:
            for line in str(response).split("\r\n"):
                self._protocolLog.event(">", line)

    # Transport agents

    def _agentsThen(self, name, then, refusalCloses=False, **about):
        """
        Ask the agents handling event C{name}, then answer with C{then()}
        unless one refused.  Without agents for the event C{then} runs at
        once and no event is built.

        @param then: makes the command's own reply; it is passed the
            changes the agents made (L{exmta.agents.Verdict.changes}) as
            keyword arguments: C{message} at OnEndOfData, C{recipients} at
            OnRcptCommand.
        @param refusalCloses: a refusal closes the connection (OnConnect).
        @param about: L{AgentEvent} fields; C{session} and C{envelope}
            default to the session's.
        """
        agents = self._agents
        if agents is None or not agents.wants(name):
            return then()
        about.setdefault("session", self.session)
        about.setdefault("envelope", self.envelope)
        return agents.run(AgentEvent(name, **about)).addCallback(
            self._verdict, then, refusalCloses
        )

    def _verdict(self, verdict, then, refusalCloses):
        if verdict.kind in (CONTINUE, ACCEPT):
            return then(**verdict.changes())
        if verdict.kind == DISCONNECT or refusalCloses:
            self._close(verdict.reply)
            return None
        return verdict.reply

    # Commands

    def _lineReceived(self, line):
        if self._protocolLog is not None:
            self._logCommand(line)
        if self._refreshTLS():
            login = self._certificateLogin()
            if login is not None:
                return login.addCallback(lambda _: self._command(line))
        return self._command(line)

    def _command(self, line):
        if self._mode == SASL:
            return self._saslStep(line)
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            # RFC 6531: MAIL and RCPT may name UTF-8 addresses.
            try:
                if line[:5].upper() not in (b"MAIL ", b"RCPT "):
                    raise UnicodeDecodeError("ascii", line, 0, 1, "not MAIL or RCPT")
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                return reply(500, "5.5.2", "Syntax error: command contains non-ASCII octets")
        if "\r" in text or "\n" in text:
            return reply(500, "5.5.2", "Syntax error: bare CR or LF in command")
        verb, _, argument = text.partition(" ")
        handler = getattr(self, "smtp_" + verb.upper(), None)
        if handler is None or not verb.isalpha():
            return UNRECOGNIZED
        return handler(argument.strip(" "))

    def smtp_HELO(self, argument):
        if not argument:
            return reply(501, "5.5.4", "Syntax: HELO hostname")
        if helloRefusal(self.connector, argument):
            return INVALID_DOMAIN
        session = replace(self.session, helo=argument, esmtp=False)

        def accept():
            self._resetTransaction()
            self.session = session
            return Reply(250, "", f"{self.connector.fqdn} Hello [{self.session.peerHost}]")

        return self._agentsThen("OnHelo", accept, session=session)

    def smtp_EHLO(self, argument):
        if not argument:
            return reply(501, "5.5.4", "Syntax: EHLO hostname")
        if helloRefusal(self.connector, argument):
            return INVALID_DOMAIN
        session = replace(self.session, helo=argument, esmtp=True)

        def accept():
            self._resetTransaction()
            self.session = session
            return Reply(
                250,
                "",
                (f"{self.connector.fqdn} Hello [{self.session.peerHost}]",) + self._extensions(),
            )

        return self._agentsThen("OnEhlo", accept, session=session)

    def _extensions(self):
        keywords = ehloKeywords(
            self.connector, self._advertisedSize(), self._tlsAvailable(), self._authOffered()
        )
        if self._shadowOffered():
            keywords += (f"XSHADOW {self.factory.shadowDiscards.instance}",)
        return keywords

    def _shadowOffered(self):
        """
        Whether this session may hand messages over under shadow redundancy
        and poll for discard notifications (L{exmta.queue.shadow}): an
        Exchange server's, with ShadowRedundancyEnabled.
        """
        return (
            self.factory.shadowDiscards is not None
            and self.factory.organization.transportConfig.shadowRedundancyEnabled
            and self._principal().has(permissions.ACCEPT_XSHADOW)
        )

    def smtp_XQDISCARD(self, argument):
        """
        C{XQDISCARD <server>}: the discard notifications due to the shadow
        server C{<server>}, one queue id a line (L{exmta.queue.shadow}).
        """
        if self.session.helo is None or not self.session.esmtp:
            return NEED_HELO
        if not self._shadowOffered():
            return reply(503, "5.7.1", "XQDISCARD is not offered to this session")
        server = self._shadowServer(argument)
        if server is None:
            return reply(501, "5.5.4", "Syntax: XQDISCARD <TransportServer of the organization>")
        # A receive worker asks its main process, which holds them.
        taken = defer.maybeDeferred(self.factory.shadowDiscards.take, server)
        return taken.addCallbacks(
            lambda taken: Reply(250, "2.0.0", (*taken, f"{len(taken)} discard notifications")),
            lambda _: reply(451, "4.3.2", "Discard notifications are not available now"),
        )

    def _shadowServer(self, name):
        """
        @return: the TransportServer named C{name}, as org.ini names it,
            or L{None}.
        """
        for server in self.factory.organization.transportServers.values():
            if server.name.lower() == name.lower():
                return server.name
        return None

    def _tlsAvailable(self):
        return "Tls" in self.connector.authMechanism and not self.session.tlsVersion

    def _authOffered(self):
        auth = self.connector.authMechanism
        if "BasicAuth" not in auth:
            return False
        return bool(self.session.tlsVersion) or "BasicAuthRequireTLS" not in auth

    def smtp_NOOP(self, argument):
        return reply(250, "2.0.0", "OK")

    def smtp_RSET(self, argument):
        self._resetTransaction()
        return reply(250, "2.0.0", "Resetting")

    def smtp_QUIT(self, argument):
        self._close(reply(221, "2.0.0", "Service closing transmission channel"))

    def smtp_VRFY(self, argument):
        return reply(252, "2.1.5", "Cannot VRFY user, but will accept message and attempt delivery")

    def smtp_EXPN(self, argument):
        return reply(502, "5.5.1", "EXPN is not supported")

    def smtp_HELP(self, argument):
        return reply(
            214, "2.0.0", "Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY"
        )

    def _resetTransaction(self):
        self.envelope = None
        self._chunks = None

    def smtp_STARTTLS(self, argument):
        if argument:
            return reply(501, "5.5.4", "Syntax: STARTTLS takes no parameters")
        if not self._tlsAvailable():
            if self.session.tlsVersion:
                return reply(503, "5.5.1", "TLS already active")
            return reply(502, "5.5.1", "STARTTLS is not enabled on this connector")
        context = self.factory.tlsContextFor(self.connector)
        self._send(reply(220, "2.0.0", "SMTP server ready"))
        # Anything the client sent behind STARTTLS arrived in the clear; it
        # must not be executed inside the TLS session (CVE-2011-0411).
        self._buffer = bytearray()
        self.transport.startTLS(context)
        self._resetTransaction()
        self.session = replace(
            self.session,
            helo=None,
            esmtp=False,
            principal=self._connectPrincipal,
            authenticated=False,
            tlsVersion="TLS",
        )
        return None

    def _refreshTLS(self):
        """
        Record the negotiated TLS version and cipher; they are known only
        once the handshake is done, which it is when the first command
        arrives through it.
        """
        if self.session.tlsVersion != "TLS":
            return False
        try:
            connection = self.transport.getHandle()
            version = connection.get_protocol_version_name()
            cipher = connection.get_cipher_name()
        except AttributeError:
            return False
        self.session = replace(self.session, tlsVersion=version, tlsCipher=cipher)
        if self.factory.observer is not None:
            self.factory.observer.tlsNegotiated(self.connector, version)
        return True

    def _certificateLogin(self):
        """
        Exchange Server authentication, once STARTTLS is done: on a
        connector whose AuthMechanism includes ExchangeServer, a client
        certificate the organization issued to one of its TransportServers
        logs the session in as an Exchange server, whatever its address.
        Any other certificate changes nothing.

        @return: a L{defer.Deferred} firing once the session has its
            principal, or L{None} when there is nothing to check.
        """
        if "ExchangeServer" not in self.connector.authMechanism:
            return None
        chain = peerChain(self.transport.getHandle())
        if not chain:
            return None
        portal = self.factory.portalFor(self.connector)
        login = portal.login(ExchangeServerCertificate(chain), None, IPrincipal)

        def loggedIn(result):
            _, principal, _ = result
            self._connectPrincipal = principal
            self.session = replace(self.session, principal=principal)

        def refused(failure):
            failure.trap(UnauthorizedLogin, UnhandledCredentials)

        return login.addCallbacks(loggedIn, refused)

    # The mail transaction

    def _principal(self):
        return self.session.principal

    def smtp_MAIL(self, argument):
        if self.session.helo is None:
            return NEED_HELO
        if self.envelope is not None:
            return reply(503, "5.5.1", "Sender already specified")
        if self.connector.requireTLS and not self.session.tlsVersion:
            return MUST_STARTTLS
        principal = self._principal()
        # With Domain Security the partner may get its rights only from
        # its certificate, checked once the sender's domain is known.
        if not principal.has(permissions.SUBMIT) and not self.connector.domainSecureEnabled:
            return NOT_AUTHENTICATED
        pressure = self.factory.backPressure.mailRefusal(principal, self._pressureRefusals)
        if pressure is not None:
            self._pressureRefusals += 1
            delay, refusal = pressure
            return deferLater(self.factory.reactor, delay, lambda: refusal) if delay else refusal
        try:
            sender, parameters = connectorPath(self.connector, argument, "FROM", allowNull=True)
        except AddressError:
            return reply(501, "5.1.7", "Invalid address")
        if parameters and not self.session.esmtp:
            return reply(555, "5.5.4", "MAIL parameters need EHLO")
        shadow = None
        if "XSHADOW" in parameters and self._shadowOffered():
            parameters = dict(parameters)
            server, _, shadowId = (parameters.pop("XSHADOW") or "").partition(":")
            server = self._shadowServer(server)
            if server is None or not re.fullmatch(r"[0-9A-F]{24}", shadowId):
                return reply(501, "5.5.4", "Invalid XSHADOW parameter; XSHADOW=<server>:<queue id>")
            shadow = (server, shadowId)
        fields = mailParameters(self.connector, parameters, self._sizeLimit())
        if isinstance(fields, Reply):
            return fields
        if not fields["smtputf8"] and not str(sender).isascii():
            return NEEDS_SMTPUTF8
        partner = partnerLogin(
            self.connector, self.factory.organization, self.session, self.transport,
            self.factory.portalFor(self.connector), sender,
        )
        if partner is None:
            return self._mailFrom(sender, fields, principal, shadow)
        if isinstance(partner, Reply):
            return partner

        def asPartner(result):
            if isinstance(result, Reply):
                return result
            # The certificate proved the peer: the rest of the session
            # runs as the partner, as after an AUTH.
            self._connectPrincipal = result
            self.session = replace(self.session, principal=result)
            return self._mailFrom(sender, fields, result, shadow)

        return partner.addCallback(asPartner)

    def _mailFrom(self, sender, fields, principal, shadow):
        if not principal.has(permissions.SUBMIT):
            return NOT_AUTHENTICATED
        if not permissions.maySendAs(self.factory.organization, sender, principal):
            return CANNOT_SEND_AS
        refusal = self.factory.messageRates.admit(self.connector, self.session.peerHost, principal)
        if refusal is not None:
            self._close(refusal)
            return None
        envelope = Envelope(sender, (), shadow=shadow, **fields)

        def accept():
            self.envelope = envelope
            self._recipientsAccepted = 0
            return reply(250, "2.1.0", "Sender OK")

        return self._agentsThen("OnMailCommand", accept, envelope=envelope, address=sender)

    def _sizeLimit(self):
        if self._principal().has(permissions.BYPASS_MESSAGE_SIZE_LIMIT):
            return HARD_MESSAGE_LIMIT
        return self._advertisedSize()

    def _advertisedSize(self):
        """
        The connector's MaxMessageSize, or the organization's MaxReceiveSize
        when smaller, or its MaxSendSize for a sender of the organization
        (one who authenticated) when smaller still.
        """
        config = self.factory.organization.transportConfig
        limits = [self.connector.maxMessageSize, config.maxReceiveSize]
        if self.session.authenticated:
            limits.append(config.maxSendSize)
        return min(limit for limit in limits if limit is not None)

    def _recipientLimit(self):
        """
        The connector's MaxRecipientsPerMessage, or the organization's
        MaxRecipientEnvelopeLimit when smaller.
        """
        envelopeLimit = self.factory.organization.transportConfig.maxRecipientEnvelopeLimit
        if envelopeLimit is None:
            return self.connector.maxRecipientsPerMessage
        return min(self.connector.maxRecipientsPerMessage, envelopeLimit)

    def smtp_RCPT(self, argument):
        if self.envelope is None:
            return reply(503, "5.5.1", "Need MAIL command")
        try:
            recipient, parameters = connectorPath(self.connector, argument, "TO", allowNull=False)
        except AddressError:
            recipient, parameters = self._postmaster(argument), {}
            if recipient is None:
                return reply(501, "5.1.3", "Invalid address")
        if parameters and not self.session.esmtp:
            return reply(555, "5.5.4", "RCPT parameters need EHLO")
        dsn = rcptParameters(self.connector, parameters)
        if isinstance(dsn, Reply):
            return dsn
        if not self.envelope.smtputf8 and not str(recipient).isascii():
            return NEEDS_SMTPUTF8
        if len(self.envelope.recipients) >= self._recipientLimit():
            return TOO_MANY_RECIPIENTS
        refusal = self._checkRecipient(recipient)
        if refusal is not None:
            return refusal

        def accept(recipients=None):
            current = self.envelope.recipients
            if recipients is None:
                added = (recipient,)
            else:
                # An agent's replacements: each counts against the limit,
                # and one already in the envelope is not added twice.
                present = {str(address).casefold() for address in current}
                added = tuple(a for a in recipients if str(a).casefold() not in present)
                if len(current) + len(added) > self._recipientLimit():
                    return TOO_MANY_RECIPIENTS
                # A replacement gets the checks the client's own address got:
                # an agent must not make this session a relay, nor accept
                # unknown local recipients only to bounce them later.
                for replacement in added:
                    refusal = self._checkRecipient(replacement)
                    if refusal is not None:
                        self.log.warn(
                            "transport agents replaced {recipient} with {replacement}, "
                            "refused for this session on {connector}: {reply}",
                            recipient=str(recipient),
                            replacement=str(replacement),
                            connector=self.connector.name,
                            reply=str(refusal),
                        )
                        return refusal
                self._trackReplacement(recipient, recipients)
            requested = self.envelope.recipientDsn
            if dsn != (None, None):
                # An agent's replacements inherit what the client asked
                # for its recipient (RFC 3461 section 6.2.1).
                requested = dict(requested, **{str(address): dsn for address in added})
            self.envelope = replace(
                self.envelope, recipients=current + added, recipientDsn=requested
            )
            self._recipientsAccepted += 1
            return reply(250, "2.1.5", "Recipient OK")

        return self._agentsThen(
            "OnRcptCommand", accept, address=recipient, recipients=(recipient,)
        )

    def _trackReplacement(self, recipient, replacements):
        tracking = self.factory.tracking
        if tracking is None:
            return
        if not replacements:
            tracking.track(
                "FAIL", source="AGENT", sender=str(self.envelope.mailFrom),
                recipients=[str(recipient)], recipientStatus=RECIPIENT_DELETED,
                connectorId=self.connector.identity, clientIp=self.session.peerHost,
            )
        elif len(replacements) > 1 or str(replacements[0]).casefold() != str(recipient).casefold():
            tracking.track(
                "EXPAND" if len(replacements) > 1 else "REDIRECT", source="AGENT",
                sender=str(self.envelope.mailFrom), recipients=[str(a) for a in replacements],
                relatedRecipientAddress=[str(recipient)], connectorId=self.connector.identity,
                clientIp=self.session.peerHost,
            )

    def _postmaster(self, argument):
        """
        RFC 5321 requires C{RCPT TO:<Postmaster>} without a domain to work;
        it means the postmaster of the first authoritative domain.
        """
        if argument.upper().replace(" ", "") != "TO:<POSTMASTER>":
            return None
        for accepted in self.factory.organization.acceptedDomains:
            if accepted.domainType == "Authoritative" and not accepted.domainName.startswith("*"):
                return Address("postmaster", accepted.domainName)
        return None

    def _checkRecipient(self, recipient):
        organization = self.factory.organization
        accepted = organization.acceptedDomainFor(recipient.domain)
        if accepted is None:
            if self._principal().has(permissions.ACCEPT_ANY_RECIPIENT):
                return None
            return UNABLE_TO_RELAY
        if self.factory.resolver.resolve(recipient).kind == "unknown":
            return RECIPIENT_NOT_FOUND
        return None

    def smtp_DATA(self, argument):
        if self.envelope is None:
            return reply(503, "5.5.1", "Need MAIL command")
        if not self._recipientsAccepted:
            return reply(503, "5.5.2", "Need RCPT command")
        if argument:
            return reply(501, "5.5.4", "Syntax: DATA takes no parameters")
        if self.envelope.body == "BINARYMIME":
            # RFC 3030 section 3.
            return reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
        if self._chunks is not None:
            return reply(503, "5.5.1", "DATA cannot follow BDAT in a transaction")

        def accept():
            self._mode = _DATA
            self._reader = MessageReader(self._buffer, self._sizeLimit())
            return Reply(354, "", "Start mail input; end with <CRLF>.<CRLF>")

        return self._agentsThen("OnDataCommand", accept)

    def _scanData(self):
        """
        Look for the end of DATA in the buffer.

        @return: L{True} if the message ended (and was handed on), L{False}
            if more input is needed.
        """
        message = self._reader.feed(self._buffer)
        if message is None:
            return False
        self._mode = COMMAND
        self._reader = None
        self._respond(self._endOfData(message))
        return True

    def _endOfData(self, message):
        envelope, self.envelope = self.envelope, None
        if message is TOO_BIG:
            return TOO_BIG
        # BINARYMIME content (RFC 3030) is binary: its octets are not lines.
        if envelope.body != "BINARYMIME":
            refusal = checkMessage(message, self.connector.bareLinefeedRejectionEnabled)
            if refusal is not None:
                return refusal
        return self.factory.cleanup.endOfData(self.connector, self.session, envelope, message)
