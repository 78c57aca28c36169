"""
Local delivery over LMTP (RFC 2033) to a mail store such as Dovecot, which
then owns the mailboxes (their folders, quotas and Sieve filters).

Each message is one LMTP transaction with all its local recipients on a
new connection::

    LHLO <the TransportServer's Fqdn>
    MAIL FROM:<sender> [BODY=8BITMIME]
    RCPT TO:<mailbox>     one per mailbox
    DATA                  then one reply per accepted RCPT, in RCPT order
    QUIT

  - The LMTP user of a recipient is its mailbox's primary SMTP address
    (L{exmta.config.model.Mailbox.folder}), whichever of the mailbox's
    addresses the mail was sent to: the mail store knows each user under
    one name, and a message sent to several addresses of one mailbox is
    stored there once.  Mail for C{postmaster@<domain>} with no mailbox
    goes to that address.
  - Each reply becomes the outcome of its recipients: 2xx delivered, 5xx a
    L{PermanentFailure} (the sender gets a non-delivery report), 4xx a
    L{TransientFailure} (retried on the queue's schedule).  A refused
    MAIL FROM or DATA is the outcome of every recipient it concerns.
  - Not reaching the server, a greeting or LHLO refused, a lost
    connection or a reply slower than the inactivity timeout is a
    L{ConnectionFailure} for every recipient without an outcome yet: the
    queue retries them.  (A connection lost after the final dot may have
    delivered to some: those are retried, as SMTP would.)
  - The message goes as stored, each line ended by CRLF (a bare CR or LF
    becomes CRLF, so no line end can be read two ways), lines starting
    with a dot get another (RFC 5321 section 4.5.2), and a final CRLF is
    added when missing.
"""

import re

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from exmta.errors import ConnectionFailure
from exmta.interfaces import IDeliveryAgent
from exmta.send.replies import outcomeOf, parseReply

_LINE_END = re.compile(rb"\r\n|\r|\n")


def lmtpData(message):
    """
    @return: the DATA payload of C{message}, without the final C{.} line:
        CRLF line ends, dot-stuffed, ending in CRLF unless empty.
    """
    data = _LINE_END.sub(b"\r\n", message)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


class LmtpClient(LineOnlyReceiver, TimeoutMixin):
    """
    One LMTP transaction, then QUIT.

    @ivar outcomes: a Deferred firing, once the connection is gone, with a
        mapping of every LMTP user to L{None} or an L{SMTPFailure}.
    """

    MAX_LENGTH = 64 * 1024

    def __init__(self, clientName, sender, users, data, body, timeout, where):
        """
        @param clientName: the name to give in LHLO.
        @param sender: the envelope sender, C{""} for the null path.
        @param users: the LMTP users (str), one RCPT each.
        @param data: the DATA payload, from L{lmtpData}.
        @param body: the message's ESMTP BODY type (C{7BIT}, C{8BITMIME});
            a message with an octet above 127 goes with C{BODY=8BITMIME}
            whichever it is.
        @param timeout: seconds to wait for any reply.
        @param where: the server, as org.ini names it, for messages.
        """
        self.clientName = clientName
        self.sender = sender
        self.users = list(users)
        self.data = data
        self.body = body
        self.timeout = timeout
        self.where = where
        self.outcomes = Deferred()
        self._results = {}
        self._accepted = []
        self._lines = []
        self._expect = self._greeting
        self._remoteMta = None
        self._lost = "lost the connection to"

    # Transport and replies

    def connectionMade(self):
        self.setTimeout(self.timeout)

    def timeoutConnection(self):
        self._lost = "timed out waiting for"
        self.transport.abortConnection()

    def lineLengthExceeded(self, line):
        self._lost = "got an over-long line from"
        self.transport.abortConnection()

    def lineReceived(self, line):
        self.resetTimeout()
        text = line.decode("utf-8", "replace")
        if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in ("", " ", "-"):
            self._lost = f"got a malformed reply ({text[:80]!r}) from"
            self.transport.abortConnection()
            return
        self._lines.append(text[4:])
        if text[3:4] == "-":
            return
        reply, self._lines = parseReply(int(text[:3]), "\n".join(self._lines)), []
        self._expect(reply)

    def send(self, command):
        self.sendLine(command.encode("utf-8"))

    def connectionLost(self, reason):
        self.setTimeout(None)
        unsettled = ConnectionFailure.of(451, "4.4.2", f"{self._lost} the LMTP server {self.where}")
        for user in self.users:
            self._results.setdefault(user, unsettled)
        self.outcomes.callback(self._results)

    # The transaction

    def _refused(self, reply, users):
        """
        A reply that decides for all C{users} at once; then QUIT.
        """
        outcome = outcomeOf(reply, self._remoteMta)
        for user in users:
            self._results[user] = outcome
        self._quit()

    def _sessionRefused(self, reply):
        failure = ConnectionFailure(reply)
        failure.remoteMta = self._remoteMta
        for user in self.users:
            self._results[user] = failure
        self._quit()

    def _greeting(self, reply):
        if reply.code != 220:
            return self._sessionRefused(reply)
        words = reply.lines()[0].split()
        self._remoteMta = words[0] if words else self.where
        self.send(f"LHLO {self.clientName}")
        self._expect = self._lhlo

    def _lhlo(self, reply):
        if reply.code != 250:
            return self._sessionRefused(reply)
        extensions = {line.split()[0].upper() for line in reply.lines()[1:] if line.split()}
        command = f"MAIL FROM:<{self.sender}>"
        # As the send side does (exmta.send.client): 8-bit content is
        # declared whatever its client declared, since clients often leave
        # BODY out.
        if "8BITMIME" in extensions and (self.body == "8BITMIME" or not self.data.isascii()):
            command += " BODY=8BITMIME"
        # RFC 6531: UTF-8 addresses go only under SMTPUTF8; a server that
        # does not offer it refuses them one by one.
        utf8 = not self.sender.isascii() or not all(user.isascii() for user in self.users)
        if utf8 and "SMTPUTF8" in extensions:
            command += " SMTPUTF8"
        self.send(command)
        self._expect = self._mail

    def _mail(self, reply):
        if reply.code // 100 != 2:
            return self._refused(reply, self.users)
        self._askNext()

    def _askNext(self):
        asked = len(self._accepted) + len(self._results)
        if asked < len(self.users):
            self.send(f"RCPT TO:<{self.users[asked]}>")
            self._expect = self._rcpt
        elif self._accepted:
            self.send("DATA")
            self._expect = self._dataCommand
        else:
            self._quit()

    def _rcpt(self, reply):
        user = self.users[len(self._accepted) + len(self._results)]
        if reply.code // 100 == 2:
            self._accepted.append(user)
        else:
            self._results[user] = outcomeOf(reply, self._remoteMta)
        self._askNext()

    def _dataCommand(self, reply):
        if reply.code != 354:
            return self._refused(reply, self._accepted)
        self.transport.write(self.data + b".\r\n")
        self._delivering = iter(self._accepted)
        self._expect = self._delivered

    def _delivered(self, reply):
        """
        One reply per accepted recipient, in RCPT order (RFC 2033 4.2).
        """
        self._results[next(self._delivering)] = outcomeOf(reply, self._remoteMta)
        if len(self._results) == len(self.users):
            self._quit()

    def _quit(self):
        self.send("QUIT")
        self._expect = self._closing

    def _closing(self, reply):
        self.transport.loseConnection()


class _OneClient(Factory):
    noisy = False

    def __init__(self, client):
        self.client = client

    def buildProtocol(self, addr):
        return self.client


@implementer(IDeliveryAgent)
class LmtpDeliveryAgent:
    """
    Delivers local recipients to an LMTP server; see the module docstring.
    """

    name = "Lmtp"
    log = Logger()

    def __init__(self, endpoint, where, clientName, timeout):
        """
        @param endpoint: the L{twisted.internet.interfaces.IStreamClientEndpoint}
            of the LMTP server, with its connection timeout.
        @param where: how org.ini names the server (C{127.0.0.1:24}, a
            socket's path), for messages.
        @param clientName: the name to give in LHLO.
        @param timeout: seconds to wait for any reply.
        """
        self.endpoint = endpoint
        self.where = where
        self.clientName = clientName
        self.timeout = timeout

    def deliver(self, queued, mailboxes, message):
        """
        See L{IDeliveryAgent.deliver}.
        """
        addressesOf = {}
        for address, target in mailboxes.items():
            user = getattr(target, "folder", target)
            addressesOf.setdefault(user, []).append(address)
        client = LmtpClient(
            self.clientName,
            queued.mailFrom,
            addressesOf,
            lmtpData(message),
            queued.body,
            self.timeout,
            self.where,
        )

        def unreachable(reason):
            self.log.warn(
                "cannot reach the LMTP server {where}: {reason}",
                where=self.where,
                reason=reason.getErrorMessage(),
            )
            failure = ConnectionFailure.of(
                451, "4.4.1", f"cannot reach the LMTP server {self.where}: {reason.getErrorMessage()}"
            )
            return dict.fromkeys(addressesOf, failure)

        connecting = self.endpoint.connect(_OneClient(client))
        connecting.addCallbacks(lambda _: client.outcomes, unreachable)

        def byAddress(outcomes):
            return {
                address: outcomes[user]
                for user, addresses in addressesOf.items()
                for address in addresses
            }

        return connecting.addCallback(byAddress)
