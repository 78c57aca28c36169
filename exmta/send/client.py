"""
The SMTP client of a send connector: Twisted's L{ESMTPClient}, with what an
MTA needs and it lacks (exchange-semantics.md section 2.3).

Kept from Twisted: the reply parser and its state machine
(C{_expected}/C{_okresponse}/C{_failresponse}), the greeting, EHLO and the
HELO fallback, STARTTLS followed by a new EHLO, the SASL challenge loop for
LOGIN, the RCPT loop, L{FileSender} for the data of large messages, and
RSET after each message.

Changed, and why:

  - C{smtpState_from} no longer asks C{getMailFrom} and QUITs on L{None}:
    the client goes idle after RSET and its owner (the connection pool)
    hands it the next L{Transaction}, so one connection carries many
    messages.  Replies that arrive while idle (a server's 421 before it
    hangs up) close the connection instead of being taken for the answer
    to the last command.
  - With a peer that offers PIPELINING (RFC 2920), MAIL, every RCPT and
    DATA go out in one write and their replies are read in order; a
    refused MAIL is settled once the replies to the commands sent after
    it are in.  Twisted's client waits for each reply.
  - MAIL carries C{XSHADOW=} when the transaction names a shadow and the
    peer offers XSHADOW (L{exmta.queue.shadow}), and L{DeliveryClient.command}
    sends one command outside a transaction (XQDISCARD).
  - MAIL carries C{SIZE=} when the peer advertises it, and C{BODY=8BITMIME}
    when the peer advertises 8BITMIME and the message was received as
    8BITMIME or has an octet above 127, whatever its client declared.  A
    message above the peer's SIZE is refused here (552 5.3.4), and so is
    one with 8-bit octets for a peer without 8BITMIME (554 5.6.3: exmta
    does not convert content to 7 bit, see L{Transaction.eightBit}); neither
    starts a transaction.  Paths are written as given instead of through
    C{quoteaddr}, whose C{parseaddr} drops quoted local parts.
  - A peer offering CHUNKING gets the message with BDAT
    (L{exmta.send.chunking}); MAIL and RCPT carry RFC 3461's parameters
    for one offering DSN (L{exmta.send.transaction}).
  - The data is the stored message, which already has CRLF line ends: it
    is dot-stuffed here and sent as it is.  C{transformChunk}'s C{\\n} to
    C{\\r\\n} conversion would turn each CRLF into CR CR LF, and
    C{finishedFileTransfer} would add an empty line to an empty message.
  - STARTTLS: a 454 (or any refusal) no longer QUITs unless TLS is
    required; the client carries on in the clear (twisted#10334).  TLS is
    required for RequireTLS, and for AUTH under BasicAuthRequireTLS.  A
    failed handshake (a certificate the policy refuses) is reported as
    such.  The context is built by L{exmta.send.tls}.
  - AUTH: PLAIN with an empty authorization identity, once (Twisted's
    PLAIN tries twice on failure, doubling failed logins and tarpits), else
    LOGIN; never outside TLS under BasicAuthRequireTLS.
  - Twisted's C{LineLog} (C{debug}) is off: it kept the AUTH lines, with
    the password, in memory and in the text of its exceptions.  The
    protocol log written here redacts them.
  - Every reply becomes an L{exmta.envelope.Reply} with its enhanced status
    code (L{exmta.send.replies}, which the LMTP client shares); outcomes are per recipient (L{Transaction}), and failures to
    reach or use the host are L{HostFailure}s that the caller turns into a
    failover or a L{ConnectionFailure}.
  - A 5xx answer to HELO no longer makes the client send HELO again
    forever.
"""

import base64
import itertools
from collections import deque
from io import BytesIO

from twisted.internet.defer import Deferred
from twisted.mail.smtp import (
    SUCCESS,
    AUTHDeclinedError,
    AuthenticationError,
    ESMTPClient,
    LOGINAuthenticator,
    SMTPClientError,
    SMTPConnectError,
    SMTPProtocolError,
    TLSError,
)

from exmta import serverlog
from exmta.envelope import Relayed, Reply
from exmta.errors import PermanentFailure
from exmta.send.chunking import BdatSending
from exmta.send.replies import connectionFailure, outcomeOf, parseReply
from exmta.send.tls import describe
from exmta.send.transaction import Transaction, encodeData, path as _path

__all__ = ["DeliveryClient", "HostFailure", "StaleConnection", "Transaction", "encodeData"]

log = serverlog.logger("exmta.send")

# How long to wait for the answer to QUIT before dropping the connection.
QUIT_TIMEOUT = 30

# Messages up to this size (in wire form) are written at once; larger ones
# go through a producer in chunks, each chunk resetting the reply timeout.
DIRECT_WRITE_LIMIT = 64 * 1024

NON_ASCII_RECIPIENT = Reply(
    553, "5.6.7", "The recipient's address is not ASCII and the next hop does not offer SMTPUTF8"
)

_sessions = itertools.count(1)


class HostFailure(Exception):
    """
    A host could not be used: it did not answer, refused the session, or
    failed the TLS or authentication policy.  The next host is tried.
    """

    def __init__(self, reply):
        super().__init__(str(reply))
        self.reply = reply


class StaleConnection(Exception):
    """
    A reused connection turned out to be closed before the server answered
    MAIL: nothing was sent, the transaction may go on a new connection.
    """


class DeliveryClient(BdatSending, ESMTPClient):
    """
    One outbound SMTP connection to one L{exmta.send.hosts.Target}.

    @ivar ready: a L{Deferred} that fires with this client once it may
        send mail (greeted, TLS and AUTH done as the policy asks), or fails
        with L{HostFailure}.
    @ivar whenLost: a L{Deferred} that fires when the connection is gone.
    @ivar owner: told C{released(client)} when an idle client may take
        another transaction and C{lost(client)} when the connection ends.
    """

    # Twisted's LineLog would keep AUTH lines, password included.
    debug = False

    def __init__(
        self, target, ehloName, context, requireTLS, authentication, credentials,
        timeout, clock, protocolLog=None, forceHelo=False,
    ):
        """
        @param target: the L{exmta.send.hosts.Target} connected to.
        @param ehloName: the name we give in EHLO.
        @param context: the STARTTLS client connection creator, or L{None}
            never to try STARTTLS.
        @param requireTLS: refuse to send in the clear (RequireTLS).
        @param authentication: L{None}, C{BasicAuth} or C{BasicAuthRequireTLS}.
        @param credentials: (username, password) as str, or L{None}.
        @param timeout: seconds to wait for each reply
            (ConnectionInactivityTimeOut).
        @param clock: an L{IReactorTime}.
        @param protocolLog: called with the local and remote addresses once
            connected, returns the L{exmta.protocollog.ProtocolSession} to
            write (or L{None}); L{None} for no protocol log.
        @param forceHelo: say HELO instead of EHLO (ForceHELO): no ESMTP
            extension is used.
        """
        username = password = None
        if authentication and credentials is not None:
            username, password = (
                value.encode("utf-8") if isinstance(value, str) else value for value in credentials
            )
        ESMTPClient.__init__(self, password, context, ehloName)
        self.target = target
        self.timeout = timeout
        self.callLater = clock.callLater
        self.requireTransportSecurity = requireTLS or authentication == "BasicAuthRequireTLS"
        self.requireAuthentication = username is not None
        self._requireTLS = requireTLS
        self._authentication = authentication if username is not None else None
        self._username = username
        self._openProtocolLog = protocolLog
        self._forceHelo = forceHelo
        self._protocolLog = None
        self.ready = Deferred()
        self.whenLost = Deferred()
        self.owner = None
        self.idle = False
        self.extensions = {}
        self.tlsVersion = None
        self.tlsCipher = None
        self.transactions = 0
        self.sessionId = next(_sessions)
        self._tx = None
        self._result = None
        self._settled = None
        self._outcomes = {}
        self._stage = None
        self._handshaking = False
        self._inSASL = False
        self._failure = None
        self._closing = False
        self._lost = False
        self._items = {}
        self._data = None
        self._awaiting = deque()
        self._mailRefusal = None

    # Wire and logs

    def _log(self, kind, data="", context="", redact=False):
        if self._protocolLog is not None:
            self._protocolLog.event(kind, data, context, redact)

    def sendLine(self, line):
        if line[:5].upper() == b"AUTH ":
            parts = line.split()
            if len(parts) > 2:
                self._log(">", b" ".join(parts[:2]), context="initial response redacted")
            else:
                self._log(">", line)
            self._inSASL = True
        elif self._inSASL:
            self._log(">", redact=True)
        else:
            self._log(">", line)
        ESMTPClient.sendLine(self, line)

    def lineReceived(self, line):
        self._log("<", line)
        if self._handshaking:
            self._handshaking = False
            getHandle = getattr(self.transport, "getHandle", lambda: None)
            self.tlsVersion, self.tlsCipher = describe(getHandle())
            self._log("*", f"{self.tlsVersion} {self.tlsCipher}", context="TLS negotiated")
        if line[:3] != b"334":
            self._inSASL = False
        if self.idle:
            return self._unsolicited(line)
        return ESMTPClient.lineReceived(self, line)

    def connectionMade(self):
        if self._openProtocolLog is not None:
            self._protocolLog = self._openProtocolLog(self.transport.getHost(), self.transport.getPeer())
        self._log("+", context=str(self.target))
        ESMTPClient.connectionMade(self)

    # Failing

    def _abandon(self, reply, quit=True):
        """
        Give up on this connection: the host failed (before C{ready}) or the
        transaction did (after).  QUIT politely when the session still
        makes sense, else just close.
        """
        if self._failure is None:
            self._failure = reply
        if not self.ready.called:
            self.ready.errback(HostFailure(reply))
        elif self._tx is not None:
            self._endTransaction(lambda recipient: connectionFailure(reply, self.target.name))
        self._fireSettled()
        self.quit() if quit else self.close()

    def sendError(self, exc):
        """
        Twisted's client reports every failure here; say what it means for
        delivery.
        """
        remote = self._remoteText(exc)
        target = self.target
        if isinstance(exc, AUTHDeclinedError):
            reply = Reply(454, "4.7.0", f"Authentication failed at {target}: {remote}")
        elif isinstance(exc, AuthenticationError):
            reply = Reply(454, "4.7.0", f"Authentication with {target} failed: {remote}")
        elif isinstance(exc, TLSError):
            reply = Reply(454, "4.7.5", f"STARTTLS with {target} failed: {remote}")
        elif isinstance(exc, SMTPConnectError) and exc.code > 0:
            reply = Reply(451, "4.4.0", f"{target} refused the session: {remote}")
        elif isinstance(exc, SMTPProtocolError):
            reply = Reply(451, "4.5.0", f"{target} sent an invalid reply")
        else:
            reply = Reply(451, "4.4.2", f"Lost the connection to {target}: {exc}")
        polite = isinstance(exc, SMTPClientError) and not exc.isFatal
        if isinstance(exc, SMTPConnectError) and exc.code > 0:
            # A refusing greeting still expects QUIT (RFC 5321 section
            # 3.1); only 421 means the server is hanging up itself.
            polite = exc.code != 421
        self._abandon(reply, quit=polite)

    def _remoteText(self, exc):
        code = getattr(exc, "code", -1)
        resp = getattr(exc, "resp", b"")
        if isinstance(resp, bytes):
            resp = resp.decode("utf-8", "replace")
        return f"{code} {resp}".replace("\n", " ") if code and code > 0 else resp

    def timeoutConnection(self):
        reply = Reply(451, "4.4.2", f"Timed out waiting for {self.target}")
        log.warn("timed out waiting for {target}", target=str(self.target))
        self._abandon(reply, quit=False)

    def abort(self, reply):
        """
        Drop the connection now: a send still connecting fails with
        C{reply}, as does a transaction under way.
        """
        if not self._lost:
            self._abandon(reply, quit=False)

    def quit(self):
        """
        Say QUIT and close when answered (or after L{QUIT_TIMEOUT}).
        """
        if self._closing or self._lost:
            return
        self._closing = True
        self.idle = False
        self.setTimeout(min(QUIT_TIMEOUT, self.timeout or QUIT_TIMEOUT))
        self._expected = range(0, 1000)
        self._okresponse = self._failresponse = self.smtpState_disconnect
        self.sendLine(b"QUIT")

    def close(self):
        self._closing = True
        self.idle = False
        if not self._lost and self.transport is not None:
            self.transport.abortConnection()

    def smtpState_disconnect(self, code, resp):
        self.transport.loseConnection()

    def _unsolicited(self, line):
        # An idle connection's server speaks only to say goodbye.
        log.info(
            "{target} closed an idle connection: {line}",
            target=str(self.target),
            line=line.decode("utf-8", "replace"),
        )
        self.idle = False
        self._closing = True
        self.transport.loseConnection()

    def connectionLost(self, reason):
        ESMTPClient.connectionLost(self, reason)
        self._lost = True
        self.idle = False
        self._log("-")
        reply = self._failure
        if reply is None:
            if self._handshaking:
                reply = Reply(454, "4.7.5", f"TLS negotiation with {self.target} failed: {_why(reason)}")
            else:
                reply = Reply(451, "4.4.2", f"Lost the connection to {self.target}: {_why(reason)}")
        if not self.ready.called:
            self.ready.errback(HostFailure(reply))
        elif self._tx is not None:
            if self._stage == "MAIL" and self.transactions > 1:
                result, self._result, self._tx = self._result, None, None
                result.errback(StaleConnection(str(reply)))
            else:
                self._endTransaction(lambda recipient: connectionFailure(reply, self.target.name))
        # Outcomes already settled stand, even if the RSET after them failed.
        self._fireSettled()
        owner, self.owner = self.owner, None
        if owner is not None:
            owner.lost(self)
        self.whenLost.callback(None)

    # Greeting, EHLO, STARTTLS and AUTH

    def esmtpState_ehlo(self, code, resp):
        if self._forceHelo:
            return self.smtpState_helo(code, resp)
        return ESMTPClient.esmtpState_ehlo(self, code, resp)

    def esmtpEHLORequired(self, code=-1, resp=None):
        # EHLO refused, and HELO would not do: TLS or AUTH is required.
        self._abandon(Reply(451, "4.5.0", f"{self.target} rejected EHLO: {parseReply(code, resp or b'')}"))

    def smtpState_helo(self, code, resp):
        self.extensions = {}
        self._failresponse = self._heloRefused
        ESMTPClient.smtpState_helo(self, code, resp)

    def _heloRefused(self, code, resp):
        self._abandon(Reply(451, "4.5.0", f"{self.target} rejected HELO: {parseReply(code, resp)}"))

    def esmtpState_serverConfig(self, code, resp):
        items = {}
        for line in resp.splitlines()[1:]:
            keyword, _, value = line.partition(b" ")
            items[keyword.upper()] = value.strip() or None
        self.extensions = items
        self.tryTLS(code, resp, items)

    def tryTLS(self, code, resp, items):
        """
        The STARTTLS policy: try it when the peer offers it and the
        connector does not ignore it; without it, stop if TLS is required.
        """
        self._items = items
        if self._tlsMode or self.context is None or b"STARTTLS" not in items:
            if not self._tlsMode and self.requireTransportSecurity:
                return self._abandon(self._tlsRequired(f"{self.target} does not offer STARTTLS"))
            return self.authenticate(code, resp, items)
        self._expected = [220]
        self._okresponse = self.esmtpState_starttls
        self._failresponse = self._starttlsRefused
        self.sendLine(b"STARTTLS")

    def _tlsRequired(self, why):
        if self._requireTLS:
            return Reply(451, "4.7.3", f"STARTTLS is required to send mail: {why}")
        return Reply(454, "4.7.0", f"BasicAuthRequireTLS: not authenticating in the clear: {why}")

    def _starttlsRefused(self, code, resp):
        refusal = parseReply(code, resp)
        if self.requireTransportSecurity:
            return self._abandon(self._tlsRequired(f"{self.target} answered STARTTLS with {refusal}"))
        log.info(
            "{target} refused STARTTLS ({reply}); continuing in the clear",
            target=str(self.target),
            reply=str(refusal),
        )
        self.authenticate(code, resp, self._items)

    def esmtpState_starttls(self, code, resp):
        try:
            self.transport.startTLS(self.context)
        except Exception as error:
            return self._abandon(
                Reply(454, "4.7.5", f"Cannot start TLS with {self.target}: {error}"), quit=False
            )
        self._tlsMode = True
        self._handshaking = True
        self.esmtpState_ehlo(code, resp)

    def authenticate(self, code, resp, items):
        """
        BasicAuth: AUTH PLAIN, or LOGIN when only that is offered.
        """
        if self._authentication is None:
            return self.smtpState_from(code, resp)
        if self._authentication == "BasicAuthRequireTLS" and not self._tlsMode:
            return self._abandon(self._tlsRequired(f"{self.target} offers no TLS"))
        offered = set((items.get(b"AUTH") or b"").upper().split())
        if b"PLAIN" in offered:
            self._expected = [235]
            self._okresponse = self.smtpState_from
            self._failresponse = self.esmtpAUTHDeclined
            response = base64.b64encode(b"\0" + self._username + b"\0" + self.secret)
            self.sendLine(b"AUTH PLAIN " + response)
        elif b"LOGIN" in offered:
            self._authinfo = LOGINAuthenticator(self._username)
            self._expected = [334]
            self._okresponse = self.esmtpState_challenge
            self._failresponse = self.esmtpAUTHServerError
            self.sendLine(b"AUTH LOGIN")
        else:
            self._abandon(
                Reply(454, "4.7.0", f"{self.target} offers neither AUTH PLAIN nor AUTH LOGIN")
            )

    # The mail transaction

    def smtpState_from(self, code, resp):
        """
        Ready for a transaction: the first time, fire C{ready}; later (after
        RSET), go idle and tell the owner.
        """
        if not self.ready.called:
            self._becomeIdle()
            log.info(
                "connected to {target} ({tls}, {auth})",
                target=str(self.target),
                tls=self.tlsVersion or "no TLS",
                auth="authenticated" if self._authentication else "anonymous",
            )
            self.ready.callback(self)
            return
        self._becomeIdle()
        settled, self._settled = self._settled, None
        # Back in the pool first, so that the send that hears the outcome
        # can reuse this connection for its next message.
        if self.owner is not None:
            self.owner.released(self)
        if settled is not None:
            result, outcomes = settled
            result.callback(outcomes)

    def _fireSettled(self):
        settled, self._settled = self._settled, None
        if settled is not None:
            result, outcomes = settled
            result.callback(outcomes)

    def _becomeIdle(self):
        self.idle = True
        self._stage = None
        self.setTimeout(None)

    def transact(self, transaction):
        """
        Send one message on this (idle) connection.

        @param transaction: a L{Transaction}.
        @return: a L{Deferred} firing with {recipient: L{None} or an
            L{exmta.errors.SMTPFailure}}, or failing with L{StaleConnection}
            when a reused connection was already closed.
        """
        if not self.idle or self._tx is not None:
            raise RuntimeError("transact() on a busy or closed connection")
        self.idle = False
        self._tx = transaction
        self._result = Deferred()
        self._outcomes = {}
        self.transactions += 1
        self.setTimeout(self.timeout)
        result = self._result
        self._beginTransaction()
        return result

    def _beginTransaction(self):
        tx = self._tx
        refusal = self._refusal(tx)
        if refusal is not None:
            reply, remoteMta = refusal
            self._endTransaction(lambda recipient: outcomeOf(reply, remoteMta))
            self.smtpState_from(0, b"")
            return
        parameters = tx.mailParameters(self.extensions)
        sender = _path(tx.mailFrom, b"SMTPUTF8" in self.extensions)
        self._stage = "MAIL"
        if b"PIPELINING" in self.extensions:
            return self._pipeline(b"MAIL FROM:" + sender + parameters)
        self._expected = [250]
        self._okresponse = self.smtpState_to
        self._failresponse = self.smtpTransferFailed
        self.sendLine(b"MAIL FROM:" + sender + parameters)

    @property
    def shadowInstance(self):
        """
        The queue instance the peer offered with XSHADOW, or L{None}.
        """
        instance = self.extensions.get(b"XSHADOW")
        return None if instance is None else instance.decode("ascii", "replace")

    def command(self, line):
        """
        Send one command outside a transaction on this idle connection
        (XQDISCARD, L{exmta.queue.shadow}).

        @return: a L{Deferred} firing with the reply's (code, text lines),
            or failing with L{HostFailure} when the connection is lost first.
        """
        if not self.idle or self._tx is not None:
            raise RuntimeError("command() on a busy or closed connection")
        self.idle = False
        self.setTimeout(self.timeout)
        answer = Deferred()

        def answered(code, resp):
            self._becomeIdle()
            answer.callback((code, resp.split(b"\n")))

        def lost(_):
            if not answer.called:
                answer.errback(HostFailure(self._failure or Reply(
                    451, "4.4.2", f"Lost the connection to {self.target}"
                )))

        self.whenLost.addCallback(lost)
        self._expected = range(0, 1000)
        self._okresponse = self._failresponse = answered
        self.sendLine(line)
        return answer

    def _refusal(self, tx):
        """
        @return: (reply, Remote-MTA) when C{tx} cannot go to this peer at
            all, else L{None}.
        """
        limit = self.extensions.get(b"SIZE")
        if limit and limit.isdigit() and int(limit) and tx.size > int(limit):
            return Reply(
                552, "5.3.4",
                f"Message size exceeds fixed maximum message size of {self.target} ({int(limit)} bytes)",
            ), self.target.name
        if not tx.mailFrom.isascii() and b"SMTPUTF8" not in self.extensions:
            return Reply(
                553, "5.6.7",
                f"The sender's address is not ASCII and {self.target} does not offer SMTPUTF8",
            ), self.target.name
        if tx.body == "BINARYMIME" and not {b"BINARYMIME", b"CHUNKING"} <= set(self.extensions):
            return Reply(
                554, "5.6.3",
                f"The message is binary (BODY=BINARYMIME) and {self.target} does not offer "
                "BINARYMIME and CHUNKING; exmta does not convert messages",
            ), self.target.name
        if tx.eightBit and tx.body != "BINARYMIME" and b"8BITMIME" not in self.extensions:
            return Reply(
                554, "5.6.3",
                f"The message has 8-bit content and {self.target} does not offer 8BITMIME; "
                "exmta does not convert messages to 7 bit",
            ), self.target.name
        return None

    def _pipeline(self, mail):
        """
        RFC 2920: MAIL, every RCPT and DATA go in one write, and their
        replies are read in order (L{_pipelinedReply}) before anything
        else is sent.
        """
        self.successAddresses = []
        lines = [mail]
        self._awaiting = deque([("MAIL", None)])
        for address in self._tx.recipients:
            try:
                lines.append(self._tx.rcptLine(address, self.extensions))
            except UnicodeEncodeError:
                self._outcomes[address] = PermanentFailure(NON_ASCII_RECIPIENT)
                continue
            self._awaiting.append(("RCPT", address))
        if len(self._awaiting) > 1 and not self._usesBdat():
            lines.append(b"DATA")
            self._awaiting.append(("DATA", None))
        self._mailRefusal = None
        self._expected = range(0, 1000)
        self._okresponse = self._failresponse = self._pipelinedReply
        for line in lines:
            self.sendLine(line)

    def _pipelinedReply(self, code, resp):
        kind, address = self._awaiting.popleft()
        if kind == "MAIL":
            self._stage = "RCPT"
            if code != 250 and (code == 421 or not self._awaiting):
                # Closing, or nothing else was sent: settle it now.
                self._stage = "MAIL"
                return self.smtpState_msgSent(code, resp)
            if code != 250:
                # The RCPT and DATA replies still to come are refusals.
                self._mailRefusal = (code, resp)
            elif not self._awaiting:
                self._endTransaction(lambda recipient: self._outcomes[recipient])
                self._reset()
            return
        if code == 421:
            return self._abandon(parseReply(code, resp), quit=False)
        if kind == "RCPT":
            if self._mailRefusal is None:
                if code in SUCCESS:
                    self.successAddresses.append(address)
                else:
                    self._outcomes[address] = outcomeOf(parseReply(code, resp), self.target.name)
            if not self._awaiting:
                # The last RCPT, and no DATA behind it: BDAT follows.
                if self._mailRefusal is not None:
                    self._stage = "MAIL"
                    return self.smtpState_msgSent(*self._mailRefusal)
                if not self.successAddresses:
                    self._endTransaction(lambda recipient: self._outcomes[recipient])
                    return self._reset()
                self._sendBdat()
            return
        if code == 354 and (self._mailRefusal is not None or not self.successAddresses):
            return self._abandon(
                Reply(451, "4.5.0", f"{self.target} accepted DATA without a sender or recipient"),
                quit=False,
            )
        if self._mailRefusal is not None:
            self._stage = "MAIL"
            return self.smtpState_msgSent(*self._mailRefusal)
        if not self.successAddresses:
            self._endTransaction(lambda recipient: self._outcomes[recipient])
            return self._reset()
        self._stage = "DATA"
        self._failresponse = self.smtpTransferFailed
        if code == 354:
            return self.smtpState_data(code, resp)
        return self.smtpState_msgSent(code, resp)

    def getMailTo(self):
        return self._tx.recipients

    def getMailData(self):
        return BytesIO(self._data)

    def smtpState_to(self, code, resp):
        self._stage = "RCPT"
        return ESMTPClient.smtpState_to(self, code, resp)

    def smtpState_toOrData(self, code, resp):
        if self.lastAddress is not None:
            reply = parseReply(code, resp)
            self.toAddressesResult.append((self.lastAddress, code, resp))
            if code in SUCCESS:
                self.successAddresses.append(self.lastAddress)
            elif code == 421:
                # The server is closing the session.
                return self._abandon(reply, quit=False)
            else:
                self._outcomes[self.lastAddress] = outcomeOf(reply, self.target.name)
        while True:
            try:
                self.lastAddress = next(self.toAddresses)
            except StopIteration:
                break
            try:
                line = self._tx.rcptLine(self.lastAddress, self.extensions)
            except UnicodeEncodeError:
                self._outcomes[self.lastAddress] = PermanentFailure(NON_ASCII_RECIPIENT)
                continue
            self.sendLine(line)
            return
        self.lastAddress = None
        if self.successAddresses and self._usesBdat():
            self._sendBdat()
        elif self.successAddresses:
            self._stage = "DATA"
            self._expected = [354]
            self._okresponse = self.smtpState_data
            self._failresponse = self.smtpTransferFailed
            self.sendLine(b"DATA")
        else:
            self._endTransaction(lambda recipient: self._outcomes[recipient])
            self._reset()

    def smtpState_data(self, code, resp):
        self._stage = "DOT"
        self._log("*", f"{self._tx.size} bytes of message data", context="DATA")
        self._data = encodeData(self._tx.message)
        if len(self._data) > DIRECT_WRITE_LIMIT:
            return ESMTPClient.smtpState_data(self, code, resp)
        # Small messages go out with the final dot in one write, without a
        # producer's extra turn of the reactor.
        self.transport.write(self._data + b".\r\n")
        self._data = None
        self._expected = SUCCESS
        self._okresponse = self.smtpState_msgSent

    def transformChunk(self, chunk):
        # The data is already in wire form (encodeData); just keep the
        # reply timeout from expiring while a large message goes out.
        self.resetTimeout()
        return chunk

    def finishedFileTransfer(self, lastsent):
        self._data = None
        self.sendLine(b".")

    def smtpState_msgSent(self, code, resp):
        """
        The end of a transaction: the reply to MAIL or DATA when it failed,
        or the reply to the final dot.
        """
        if self._tx is None:
            return self._abandon(Reply(451, "4.5.0", f"{self.target} answered out of turn"))
        reply = parseReply(code, resp)
        remote = self.target.name
        if self._stage == "MAIL":
            if code == 421 and self.transactions > 1:
                result, self._result, self._tx = self._result, None, None
                self.close()
                result.errback(StaleConnection(str(reply)))
                return
            if code >= 500:
                outcome = outcomeOf(reply, remote)
            else:
                outcome = connectionFailure(reply, remote)
            self._endTransaction(lambda recipient: outcome)
        else:
            # The answer to DATA or to the data: it settles every recipient
            # RCPT accepted; a 4xx retries them all.
            if 200 <= code < 300:
                tx, extensions = self._tx, self.extensions
                self._endTransaction(
                    lambda recipient: Relayed(remote) if tx.relayed(recipient, extensions) else None
                )
            else:
                if code >= 500:
                    outcome = outcomeOf(reply, remote)
                else:
                    outcome = connectionFailure(reply, remote)
                self._endTransaction(lambda recipient: outcome)
        if code == 421:
            self._fireSettled()
            self.close()
        else:
            self._reset()

    def _endTransaction(self, outcomeFor):
        """
        Settle every recipient of the transaction: those RCPT refused by
        their own reply, the others by C{outcomeFor(recipient)}.  The
        result fires later (L{_fireSettled}), once the connection is back
        in the pool or gone.
        """
        tx, result = self._tx, self._result
        self._tx = self._result = None
        outcomes = {}
        for recipient in tx.recipients:
            if recipient in self._outcomes:
                outcomes[recipient] = self._outcomes[recipient]
            else:
                outcomes[recipient] = outcomeFor(recipient)
        self._outcomes = {}
        self._stage = None
        delivered = sum(1 for outcome in outcomes.values() if outcome is None)
        # The queue manager logs each recipient's outcome.
        log.debug(
            "{queueId} to {target}: {delivered} of {count} recipients accepted",
            queueId=tx.queueId,
            target=str(self.target),
            delivered=delivered,
            count=len(outcomes),
        )
        self._settled = (result, outcomes)

    def _reset(self):
        self._stage = "RSET"
        self._expected = SUCCESS
        self._okresponse = self.smtpState_from
        self._failresponse = self._resetRefused
        self.sendLine(b"RSET")

    def _resetRefused(self, code, resp):
        self._fireSettled()
        self._abandon(Reply(451, "4.5.0", f"{self.target} refused RSET: {parseReply(code, resp)}"))


def _why(reason):
    error = reason.value
    details = getattr(error, "args", None)
    if details and isinstance(details[0], list):
        # OpenSSL.SSL.Error: [(library, function, reason), ...]
        texts = [entry[-1] for entry in details[0] if isinstance(entry, tuple) and entry[-1]]
        if texts:
            return ", ".join(texts)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
