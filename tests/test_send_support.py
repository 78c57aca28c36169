"""
Peers and fixtures for the send-side tests (tests/test_send*.py): a
scriptable SMTP server, exmta's own receive side as a peer, an in-memory
DNS resolver, certificates from trustme and send connector settings.

Everything listens on loopback, on ports the kernel chooses.
"""

import base64
import dataclasses
from dataclasses import dataclass, field

import trustme
from twisted.internet import defer, reactor
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ServerFactory
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.names import dns
from twisted.names.common import ResolverBase
from twisted.names.error import DNSNameError
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from exmta.config import model
from exmta.interfaces import IAccountStore, IMessageQueue
from exmta.receive.listener import ReceiveFactory
from exmta.receive.protocol import ReceiveProtocol



ORIGIN = model.Origin("/nonexistent/org.ini", 1, "test")


def transportServer(**changes):
    values = dict(
        name="HubA",
        fqdn="huba.fabrikam.com",
        queueDatabasePath="/nonexistent/queue",
        mailboxDatabasePath="/nonexistent/mailboxes",
        tlsCertificatePath=None,
        tlsPrivateKeyPath=None,
        origin=ORIGIN,
    )
    values.update(changes)
    return model.TransportServer(**values)


def sendConnector(**changes):
    values = dict(
        name="ToInternetGateway",
        usage="Custom",
        addressSpaces=(),
        smartHosts=(),
        smartHostAuthMechanism=frozenset({"None"}),
        authenticationCredential=None,
        sourceTransportServers=("HubA",),
        dnsRoutingEnabled=False,
        port=25,
        fqdn=None,
        requireTLS=False,
        tlsAuthLevel=None,
        tlsDomain=None,
        ignoreSTARTTLS=False,
        maxMessageSize=10 * 1024 * 1024,
        connectionInactivityTimeout=600,
        useExternalDNSServersEnabled=False,
        protocolLoggingLevel="None",
        enabled=True,
        origin=ORIGIN,
    )
    values.update(changes)
    return model.SendConnector(**values)


def organization(*connectors, server=None):
    server = server or transportServer()
    return model.Organization(
        path="/nonexistent/org.ini",
        transportServers={server.name: server},
        sendConnectors=tuple(connectors),
    )


@dataclass(frozen=True)
class Queued:
    """
    The parts of an L{exmta.envelope.QueuedMessage} the send side reads.
    """

    queueId: str = "0123456789ABCDEF"
    mailFrom: str = "a@fabrikam.com"
    body: str = "7BIT"


class Credentials:
    def __init__(self, **secrets):
        self.secrets = secrets
        self.asked = []

    def get(self, name):
        self.asked.append(name)
        return self.secrets[name]


# Certificates

class Certificates:
    """
    A trustme CA and certificates it issued, as Twisted wants them.
    """

    def __init__(self):
        self.ca = trustme.CA()
        self.trustRoot = Certificate.loadPEM(self.ca.cert_pem.bytes())

    def serverOptions(self, *names):
        issued = self.ca.issue_cert(*names)
        return PrivateCertificate.loadPEM(issued.private_key_and_cert_chain_pem.bytes()).options()


# An in-memory resolver

class ZoneResolver(ResolverBase):
    """
    An IResolver answering from a mapping::

        {"smtpgateway1.contoso.com": {"A": ["127.0.0.2"]},
         "contoso.com": {"MX": [(10, "mx1.contoso.com")]}}

    A name not listed is NXDOMAIN; a listed name without records of the
    type asked gives an empty answer.
    """

    def __init__(self, zone):
        super().__init__()
        self.zone = {name.lower(): records for name, records in zone.items()}
        self.queries = []

    def _lookup(self, name, cls, type, timeout):
        name = name.decode("ascii").lower().rstrip(".")
        self.queries.append((name, dns.QUERY_TYPES.get(type, type)))
        records = self.zone.get(name)
        if records is None:
            return defer.fail(DNSNameError(name))
        answers = []
        for value in records.get(dns.QUERY_TYPES.get(type), ()):
            if type == dns.A:
                payload = dns.Record_A(value)
            elif type == dns.AAAA:
                payload = dns.Record_AAAA(value)
            elif type == dns.MX:
                preference, exchange = value
                payload = dns.Record_MX(preference, b"" if exchange == "." else exchange.encode("ascii"))
            else:
                continue
            answers.append(dns.RRHeader(name.encode("ascii"), type, cls, 60, payload))
        return defer.succeed((answers, [], []))


# A scriptable SMTP server

@dataclass
class PeerMessage:
    mailFrom: bytes
    recipients: list
    wire: bytes  # the DATA payload as received, dot-stuffed, without the final dot line

    @property
    def content(self):
        """
        The message after undoing dot-stuffing.
        """
        data = b"\r\n" + self.wire
        return data.replace(b"\r\n..", b"\r\n.")[2:]


@dataclass
class PeerSession:
    commands: list = field(default_factory=list)  # (in TLS, line)
    messages: list = field(default_factory=list)
    authenticated: str | None = None
    tls: bool = False


class PeerProtocol(LineReceiver):
    """
    One session of a L{Peer}.  Replies come from the factory's settings.
    """

    MAX_LENGTH = 65536

    def connectionMade(self):
        factory = self.factory
        factory.connections.add(self)
        factory.sessions.append(PeerSession())
        self.session = factory.sessions[-1]
        self._pendingLogin = None
        self._data = None
        self.mailFrom = None
        self.recipients = []
        self.transport.write(factory.greeting + b"\r\n")
        if factory.greeting[:1] in (b"4", b"5") and factory.closeAfterGreeting:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.factory.connections.discard(self)
        self.factory._checkClosed()

    def reply(self, *lines):
        self.transport.write(b"".join(line + b"\r\n" for line in lines))

    def lineReceived(self, line):
        self.session.commands.append((self.session.tls, line))
        if self._pendingLogin is not None:
            return self._pendingLogin(line)
        verb, _, argument = line.partition(b" ")
        handler = getattr(self, "do_" + verb.upper().decode("ascii", "replace"), None)
        if handler is None:
            return self.reply(b"500 5.5.1 Unrecognized command")
        handler(argument)

    def do_EHLO(self, argument):
        factory = self.factory
        if factory.ehloReply is not None:
            return self.reply(factory.ehloReply)
        extensions = list(factory.extensions)
        if factory.tls is not None and not self.session.tls:
            extensions.append(b"STARTTLS")
        if factory.accounts and (self.session.tls or not factory.authRequiresTLS):
            extensions.append(b"AUTH " + factory.authMechanisms)
        lines = [b"peer.example Hello"] + extensions
        self.reply(*[b"250-" + line for line in lines[:-1]] + [b"250 " + lines[-1]])

    def do_HELO(self, argument):
        self.reply(b"250 peer.example")

    def do_STARTTLS(self, argument):
        if self.factory.starttlsReply is not None:
            return self.reply(self.factory.starttlsReply)
        self.reply(b"220 2.0.0 Ready to start TLS")
        self.transport.startTLS(self.factory.tls)
        self.session.tls = True
        self.mailFrom, self.recipients = None, []

    def do_AUTH(self, argument):
        mechanism, _, initial = argument.partition(b" ")
        if mechanism.upper() == b"PLAIN":
            if initial:
                return self._plain(initial)
            self.reply(b"334 ")
            self._pendingLogin = self._plainLine
        elif mechanism.upper() == b"LOGIN":
            self.reply(b"334 " + base64.b64encode(b"Username:"))
            self._pendingLogin = self._loginUser
        else:
            self.reply(b"504 5.7.4 Unrecognized authentication type")

    def _plainLine(self, line):
        self._pendingLogin = None
        self._plain(line)

    def _plain(self, encoded):
        _, user, password = base64.b64decode(encoded).split(b"\0")
        self._login(user, password)

    def _loginUser(self, line):
        user = base64.b64decode(line)
        self.reply(b"334 " + base64.b64encode(b"Password:"))

        def password(line):
            self._pendingLogin = None
            self._login(user, base64.b64decode(line))

        self._pendingLogin = password

    def _login(self, user, password):
        if self.factory.accounts.get(user.decode()) == password.decode():
            self.session.authenticated = user.decode()
            self.reply(b"235 2.7.0 Authentication successful")
        else:
            self.reply(b"535 5.7.3 Authentication unsuccessful")

    def do_MAIL(self, argument):
        self.mailFrom = argument
        self.recipients = []
        self.reply(self.factory.mailReply)

    def do_RCPT(self, argument):
        address = argument.partition(b"<")[2].rpartition(b">")[0].decode()
        reply = self.factory.rcptReply(address)
        if reply.startswith(b"2"):
            self.recipients.append(address)
        self.reply(reply)

    def do_DATA(self, argument):
        self.reply(self.factory.dataReply)
        if self.factory.dataReply.startswith(b"354"):
            self._data = bytearray(b"\r\n")
            self.setRawMode()

    def rawDataReceived(self, data):
        self._data += data
        end = self._data.find(b"\r\n.\r\n")
        if end == -1:
            return
        wire = bytes(self._data[2 : end + 2])
        rest = bytes(self._data[end + 5 :])
        self._data = None
        message = PeerMessage(self.mailFrom, list(self.recipients), wire)
        self.session.messages.append(message)
        self.factory.arrivals.append(message)
        final = self.factory.finalReply
        if self.factory.holdFinal:
            held = defer.Deferred()
            held.addCallback(lambda reply: self.reply(reply or final))
            self.factory.hold(held)
        else:
            self.reply(final)
        self.setLineMode(rest)

    def do_RSET(self, argument):
        self.mailFrom, self.recipients = None, []
        self.reply(b"250 2.0.0 Resetting")

    def do_NOOP(self, argument):
        self.reply(b"250 2.0.0 OK")

    def do_QUIT(self, argument):
        self.reply(b"221 2.0.0 Bye")
        self.transport.loseConnection()


class Peer(ServerFactory):
    """
    A scriptable SMTP server; each attribute is a reply or a setting.

    @ivar sessions: the L{PeerSession} of every connection, in order.
    @ivar held: final replies waiting for the test (C{holdFinal}).
    """

    protocol = PeerProtocol
    noisy = False

    def __init__(self, **settings):
        self.greeting = b"220 peer.example ESMTP"
        self.closeAfterGreeting = False
        self.ehloReply = None
        self.extensions = [b"SIZE 10485760", b"8BITMIME", b"ENHANCEDSTATUSCODES"]
        self.tls = None
        self.starttlsReply = None
        self.accounts = {}
        self.authMechanisms = b"PLAIN LOGIN"
        self.authRequiresTLS = False
        self.mailReply = b"250 2.1.0 Sender OK"
        self.rcptReply = lambda address: b"250 2.1.5 Recipient OK"
        self.dataReply = b"354 Start mail input"
        self.finalReply = b"250 2.6.0 Queued mail for delivery"
        self.holdFinal = False
        for name, value in settings.items():
            if not hasattr(self, name):
                raise TypeError(name)
            setattr(self, name, value)
        self.sessions = []
        self.arrivals = []
        self.connections = set()
        self.held = []
        self.maxOpen = 0
        self._heldWaiters = []
        self._closedWaiters = []

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.maxOpen = max(self.maxOpen, len(self.connections) + 1)
        return protocol

    def hold(self, deferred):
        self.held.append(deferred)
        for count, waiter in list(self._heldWaiters):
            if len(self.held) >= count:
                self._heldWaiters.remove((count, waiter))
                waiter.callback(None)

    def whenHeld(self, count):
        """
        @return: a Deferred firing once C{count} final replies are held.
        """
        waiter = defer.Deferred()
        if len(self.held) >= count:
            waiter.callback(None)
        else:
            self._heldWaiters.append((count, waiter))
        return waiter

    def release(self, reply=None):
        held, self.held = self.held, []
        for deferred in held:
            deferred.callback(reply)

    def closed(self):
        """
        @return: a Deferred firing once no connection is open.
        """
        waiter = defer.Deferred()
        self._closedWaiters.append(waiter)
        self._checkClosed()
        return waiter

    def _checkClosed(self):
        if not self.connections:
            waiters, self._closedWaiters = self._closedWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    @property
    def messages(self):
        return [message for session in self.sessions for message in session.messages]

    def verbs(self, session=0):
        return [line.split(b" ")[0].upper().decode() for _, line in self.sessions[session].commands]


def listen(testCase, factory, host="127.0.0.1", port=0):
    """
    Listen on C{host}; stop (after every connection closed) when the test ends.

    @return: the port number.
    """
    listening = reactor.listenTCP(port, factory, interface=host)
    testCase.addCleanup(_stopper(listening, factory))
    return listening.getHost().port


def listenAll(testCase, factories, hosts, attempts=20):
    """
    Listen with each factory on its host, all on one port number.

    @return: the port.
    """
    for _ in range(attempts):
        opened = []
        try:
            first = reactor.listenTCP(0, factories[0], interface=hosts[0])
            opened.append(first)
            port = first.getHost().port
            for factory, host in zip(factories[1:], hosts[1:]):
                opened.append(reactor.listenTCP(port, factory, interface=host))
        except CannotListenError:
            for listening in opened:
                listening.stopListening()
            continue
        for listening, factory in zip(opened, factories):
            testCase.addCleanup(_stopper(listening, factory))
        return port
    raise RuntimeError("no port free on every host")


def _stopper(listening, factory):
    def stop():
        return defer.gatherResults([defer.maybeDeferred(listening.stopListening), factory.closed()])

    return stop


def closedPort(host="127.0.0.1"):
    """
    A port nothing listens on (it was free a moment ago).
    """
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


# exmta's receive side as a peer

@implementer(IMessageQueue)
class RecordingQueue:
    """
    Accepts every message at once, keeping (envelope, session, message).
    """

    def __init__(self):
        self.onEnqueued = []
        self.onAdopted = []
        self.received = []

    def enqueue(self, envelope, session, message):
        self.received.append((envelope, session, message))
        return defer.succeed(f"{len(self.received):016X}")

    def messages(self):
        return []

    def messageBytes(self, queueId):
        raise KeyError(queueId)

    def update(self, queued):
        return defer.succeed(None)


@implementer(IAccountStore)
class Accounts:
    def __init__(self, **passwords):
        self.passwords = passwords

    def verify(self, userPrincipalName, password):
        if isinstance(password, bytes):
            password = password.decode("utf-8")
        return self.passwords.get(userPrincipalName) == password

    def setPassword(self, userPrincipalName, password):
        self.passwords[userPrincipalName] = password

    def remove(self, userPrincipalName):
        del self.passwords[userPrincipalName]

    def names(self):
        return sorted(self.passwords)


class RecordingReceiveProtocol(ReceiveProtocol):
    """
    exmta's receive protocol, noting each command line with whether it
    came inside TLS.
    """

    def connectionMade(self):
        self.factory.connections.add(self)
        super().connectionMade()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.factory.connections.discard(self)
        self.factory._checkClosed()

    def _lineReceived(self, line):
        result = super()._lineReceived(line)
        self.factory.commands.append((self.session.tlsVersion, line))
        return result


class ExmtaPeer(ReceiveFactory):
    """
    exmta's receive side for one organization, selecting connectors as if
    every socket were on port 25 (the tests' ports are the kernel's
    choice).
    """

    protocol = RecordingReceiveProtocol

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.connections = set()
        self.commands = []
        self._closedWaiters = []

    def select(self, localHost, localPort, peerHost):
        return super().select(localHost, 25, peerHost)

    closed = Peer.closed
    _checkClosed = Peer._checkClosed


def exmtaPeer(orgText, serverName, tlsOptions=None, accounts=None):
    """
    @return: (L{ExmtaPeer}, its L{RecordingQueue}).
    """
    from exmta.auth import portalFor
    from exmta.config import parseOrganization
    from exmta.routing import Resolver

    organization = parseOrganization(orgText, "/nonexistent/gateway.ini")
    server = organization.transportServers[serverName]
    queue = RecordingQueue()
    portals = {
        connector.identity: portalFor(organization, connector, accounts or Accounts(), reactor)
        for connector in organization.connectorsOf(server.name)
    }
    factory = ExmtaPeer(
        organization, server, portals, queue, Resolver(organization), tlsOptions, reactor
    )
    return factory, queue


def replace(value, **changes):
    return dataclasses.replace(value, **changes)
