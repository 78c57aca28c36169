"""
A fuzzer of SMTP sessions over real sockets, shared by the suite
(L{tests.e2e.test_fuzz}, a few hundred sessions) and the long campaign
(C{campaigns/fuzz_sessions.py}, as many as asked).

Each session is drawn from a C{random.Random} seeded with the campaign's
seed and the session's number, so any failure is replayed by its number.
A session is one of:

  - a burst: commands (valid ones, then mutated: NULs, invalid UTF-8,
    bare CR and LF, overlong lines, garbage AUTH, BDAT, SIZE=-1 and huge,
    odd DATA terminators, STARTTLS in the middle) written in a few pieces
    without waiting, then C{CRLF . CRLF * CRLF QUIT CRLF}, which ends any
    DATA or SASL exchange and the session; every reply is read until the
    server closes (or accepts STARTTLS: what follows is TLS, not replies);
  - the same burst inside TLS, after EHLO and STARTTLS;
  - STARTTLS and then garbage instead of a TLS handshake.

Every reply line must be well formed: printable ASCII, at most 512 octets,
a 3-digit code, continuation lines with the same code, and an enhanced
status code of the reply's class on every line except in the greeting,
the HELO/EHLO reply, 334 and 354.  After each session a fresh connection
to the same connector must be greeted and answered EHLO.
"""

import base64
import os
import random
import re
import socket
import ssl
import threading
import time
from contextlib import contextmanager

from tests.e2e.harness import freePort, writeOrganization

FQDN = "huba.fabrikam.com"
KIM_PASSWORD = "Kim-Pa55"
SESSION_TIMEOUT = 30

# The shipped etc/org.ini's three connectors (authenticated TLS, externally
# secured, anonymous relay), an Internet one and a custom one that allows
# Basic without TLS, bare line ends and small limits.  No tarpit, so that
# failed logins cost no time; per-source limits high enough for parallel
# fuzzing clients that share a source address.
ORGANIZATION = r"""
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com
UserPrincipalName = kim@fabrikam.com

[ReceiveConnector Default HubA]
TarpitInterval = 00:00:00
Usage = Custom
Bindings = 127.0.0.1:{default}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
PermissionGroups = ExchangeUsers, ExchangeServers
AuthTarpitInterval = 00:00:00
MaxInboundConnectionPerSource = 1000
ProtocolLoggingLevel = Verbose

[ReceiveConnector FromInternetGateway]
TarpitInterval = 00:00:00
Usage = Internal
Bindings = 127.0.0.1:{default}
RemoteIPRanges = 127.0.0.10
AuthMechanism = ExternalAuthoritative
MaxInboundConnectionPerSource = 1000

[ReceiveConnector AnonymousRelay]
TarpitInterval = 00:00:00
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.4:{relay}
RemoteIpRanges = 127.0.5.77
MaxInboundConnectionPerSource = 1000

[ADPermission]
Identity = AnonymousRelay
User = NT AUTHORITY\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

[ReceiveConnector Internet]
TarpitInterval = 00:00:00
Usage = Internet
Bindings = 127.0.0.3:{internet}
MaxInboundConnectionPerSource = 1000

[ReceiveConnector Custom]
TarpitInterval = 00:00:00
Usage = Custom
Bindings = 127.0.0.5:{custom}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth
PermissionGroups = AnonymousUsers, ExchangeUsers
AuthTarpitInterval = 00:00:00
MaxLogonFailures = 5
MaxProtocolErrors = 8
MaxMessageSize = 64KB
MaxHeaderSize = 4KB
MaxRecipientsPerMessage = 3
MaxHopCount = 5
BareLinefeedRejectionEnabled = $false
MaxInboundConnectionPerSource = 1000
ProtocolLoggingLevel = Verbose

# Mail for other domains waits for a smart host that is down.
[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = 127.0.0.1:{downstream}
DNSRoutingEnabled = $false
"""

# connector -> (host, port name, the sources a client may use)
TARGETS = {
    "Default HubA": ("127.0.0.1", "default", [f"127.0.1.{n}" for n in range(1, 250)]),
    "FromInternetGateway": ("127.0.0.1", "default", ["127.0.0.10"]),
    "AnonymousRelay": ("127.0.0.4", "relay", ["127.0.5.77"]),
    "Internet": ("127.0.0.3", "internet", [f"127.0.2.{n}" for n in range(1, 250)]),
    "Custom": ("127.0.0.5", "custom", [f"127.0.3.{n}" for n in range(1, 250)]),
}

# What the server logs when something escaped its error handling.
TRACEBACK_MARKERS = ("Traceback", "Unhandled Error", "unexpected error")


def makeOrganization(folder):
    """
    @return: (org.ini path, {port name: port}).
    """
    ports = {
        "default": freePort("127.0.0.1"),
        "relay": freePort("127.0.0.4"),
        "internet": freePort("127.0.0.3"),
        "custom": freePort("127.0.0.5"),
        "downstream": freePort("127.0.0.1"),
    }
    path = writeOrganization(folder, ORGANIZATION.format(**ports),
                             accounts=[("kim@fabrikam.com", KIM_PASSWORD)])
    return path, ports


class Problem(AssertionError):
    """
    A session broke a rule; the message says which, with what was sent.
    """


class Stats:
    def __init__(self):
        self.sessions = 0
        self.replies = 0
        self.lines = 0
        self.octetsSent = 0
        self.tlsSessions = 0
        self.accepted = 0
        self.resets = 0

    def add(self, other):
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def __str__(self):
        return ", ".join(f"{name}={value}" for name, value in vars(self).items())


# Replies

_LINE = re.compile(rb"([2-5][0-5][0-9])([ -])(.*)", re.DOTALL)
_UNPRINTABLE = re.compile(rb"[^\x20-\x7e]")
_STATUS = re.compile(rb"([245])\.[0-9]{1,3}\.[0-9]{1,3} ")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_HELLO = FQDN.encode() + b" Hello ["
STARTTLS_READY = b"220 2.0.0 SMTP server ready"


class ReplyReader:
    """
    Reads reply lines from a socket, checking each reply as it completes.
    """

    def __init__(self, sock, stats):
        self.sock = sock
        self.stats = stats
        self._pending = b""
        self._reply = []
        self._greeted = False
        self.replies = []

    def readReply(self):
        """
        @return: the next reply's lines (bytes), or L{None} at the end of
            the connection.
        """
        count = len(self.replies)
        while len(self.replies) == count:
            if not self._readLine():
                return None
        return self.replies[-1]

    def readToEnd(self, stopAtStartTLS=True):
        """
        Read replies until the server closes the connection, or (with
        C{stopAtStartTLS}) accepts STARTTLS.

        @return: whether STARTTLS was accepted.
        """
        while True:
            reply = self.readReply()
            if reply is None:
                return False
            if stopAtStartTLS and reply == [STARTTLS_READY]:
                return True

    def _readLine(self):
        while b"\r\n" not in self._pending:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                # A server that closes with input unread resets the
                # connection, and the unread replies may be lost with it.
                self.stats.resets += 1
                return False
            if not chunk:
                if self._pending or self._reply:
                    raise Problem(f"connection closed inside a reply: {self._reply + [self._pending]!r}")
                return False
            self._pending += chunk
        line, self._pending = self._pending.split(b"\r\n", 1)
        self._line(line)
        return True

    def _line(self, line):
        self.stats.lines += 1
        if len(line) + 2 > 512:
            raise Problem(f"reply line of {len(line) + 2} octets: {line[:100]!r}...")
        if _UNPRINTABLE.search(line):
            raise Problem(f"reply line with a control or non-ASCII octet: {line!r}")
        match = _LINE.fullmatch(line)
        if match is None:
            raise Problem(f"reply line without a code: {line!r}")
        if self._reply and line[:3] != self._reply[0][:3]:
            raise Problem(f"continuation with another code: {self._reply + [line]!r}")
        self._reply.append(line)
        if match.group(2) == b" ":
            reply, self._reply = self._reply, []
            self._check(reply)
            self.replies.append(reply)
            self.stats.replies += 1
            self.stats.accepted += reply[0].startswith(b"250 2.6.0 ")

    def _check(self, reply):
        code = reply[0][:3]
        texts = [line[4:] for line in reply]
        greeting, self._greeted = not self._greeted, True
        if greeting and code == b"220":
            return
        if code == b"250" and texts[0].startswith(_HELLO):
            return
        if code == b"334":
            if len(reply) != 1 or not _BASE64.fullmatch(texts[0]):
                raise Problem(f"334 without one base64 challenge: {reply!r}")
            return
        if code == b"354":
            return
        for text in texts:
            status = _STATUS.match(text)
            if status is None or status.group(1) != code[:1]:
                raise Problem(f"reply without an enhanced status code of its class: {reply!r}")


# Commands

_ADDRESSES = [
    "kim@fabrikam.com", "postmaster@fabrikam.com", "nobody@fabrikam.com", "someone@contoso.com",
    "", "Postmaster", '"a b"@fabrikam.com', "a@[127.0.0.1]", "@r.example:kim@fabrikam.com",
    "kim@fabrikam.com@contoso.com", "x" * 70 + "@fabrikam.com", "kim@", "<kim@fabrikam.com>",
]
_TERMINATORS = [
    b"\r\n.\r\n", b"\r\n.\r\n", b"\r\n.\r\n", b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n",
    b"\r\n.\r", b"\r\n\x00.\r\n", b"\r\n..\r\n", b"\r\n. \r\n", b"",
]


def _b64(data):
    return base64.b64encode(data)


def _hello(rng):
    verb = rng.choice([b"EHLO", b"HELO", b"ehlo", b"EhLo"])
    name = rng.choice([b"client.contoso.com", b"", b"a\x00b (spoofed.example)", b"a\x1bb",
                       b"\xc3\xa9t\xc3\xa9.example", b"[127.0.0.1]", b"x" * 600, b"a b c"])
    return verb + b" " + name + b"\r\n"


def _path(rng):
    return rng.choice(_ADDRESSES).encode()


def _mail(rng):
    parameters = rng.sample([b"SIZE=-1", b"SIZE=0", b"SIZE=1000", b"SIZE=" + b"9" * 30, b"SIZE=",
                             b"SIZE=abc", b"BODY=8BITMIME", b"BODY=7BIT", b"BODY=BINARYMIME",
                             b"AUTH=<>", b"SMTPUTF8", b"RET=HDRS", b"X=" + b"\xff"],
                            rng.randint(0, 3))
    return b" ".join([b"MAIL FROM:<" + _path(rng) + b">"] + parameters) + b"\r\n"


def _rcpt(rng):
    suffix = rng.choice([b"", b"", b" NOTIFY=NEVER", b" ORCPT=rfc822;x@y"])
    return b"RCPT TO:<" + _path(rng) + b">" + suffix + b"\r\n"


def _message(rng):
    header = [b"From: " + rng.choice([b"a@contoso.com", b"kim@fabrikam.com", b"<>"]),
              b"Subject: fuzz " + str(rng.random()).encode()]
    for _ in range(rng.randint(0, 4)):
        header.append(rng.choice([
            b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000",
            b"X-MS-Exchange-Organization-AuthAs: Internal",
            b"X-Long: " + b"h" * rng.choice([100, 1200, 5000]),
            b"X-Folded: a\r\n\tb", b"X-Eight: \xe9\xff", b"Bad header without colon",
        ]))
    body = []
    for _ in range(rng.randint(0, 8)):
        body.append(rng.choice([
            b"text", b".", b"..", b".leading dot", b"x" * rng.choice([998, 999, 3000]), b"",
            b"nul\x00inside", b"bare\nlf", b"bare\rcr", b"\xff\xfe invalid utf-8", b"QUIT",
            b"MAIL FROM:<smuggled@contoso.com>",
        ]))
    return b"\r\n".join(header) + b"\r\n\r\n" + b"\r\n".join(body)


def _data(rng):
    return b"DATA\r\n" + _message(rng) + rng.choice(_TERMINATORS)


def _transaction(rng):
    sender = rng.choice([b"a@contoso.com", b"", b"kim@fabrikam.com"])
    return (b"MAIL FROM:<" + sender + b">\r\nRCPT TO:<kim@fabrikam.com>\r\nDATA\r\n"
            + _message(rng) + b"\r\n.\r\n")


def _bdat(rng):
    chunk = _message(rng)[: rng.randint(0, 200)]
    return b"BDAT %d LAST\r\n" % len(chunk) + chunk


def _auth(rng):
    credentials = rng.choice([
        b"\x00kim@fabrikam.com\x00" + KIM_PASSWORD.encode(), b"\x00kim@fabrikam.com\x00wrong",
        b"kim\x00kim\x00x", b"", b"\xff\xfe", b"no nuls at all",
    ])
    return rng.choice([
        b"AUTH PLAIN " + _b64(credentials) + b"\r\n",
        b"AUTH PLAIN\r\n" + _b64(credentials) + b"\r\n",
        b"AUTH PLAIN\r\n*\r\n",
        b"AUTH PLAIN not-base64!\r\n",
        b"AUTH LOGIN\r\n" + _b64(b"kim@fabrikam.com") + b"\r\n" + _b64(b"wrong") + b"\r\n",
        b"AUTH LOGIN " + _b64(b"kim@fabrikam.com") + b"\r\n" + _b64(KIM_PASSWORD.encode()) + b"\r\n",
        b"AUTH LOGIN\r\n" + b"A" * rng.choice([12289, 13000]) + b"\r\n",
        b"AUTH CRAM-MD5\r\n", b"AUTH\r\n", b"AUTH PLAIN " + b"A" * 13000 + b"\r\n",
    ])


def _simple(rng):
    return rng.choice([b"NOOP", b"RSET", b"VRFY kim", b"EXPN list", b"HELP", b"STARTTLS",
                       b"STARTTLS now", b"TURN", b"ETRN fabrikam.com", b"XCLIENT ADDR=1.2.3.4",
                       b"", b"   ", b"DATA extra", b"MAIL", b"RCPT", b"noop"]) + b"\r\n"


def _garbage(rng):
    length = rng.choice([1, 10, 100, 511, 512, 513, 600, 12288, 12289, 13000, 200_000]
                        if rng.random() < 0.9 else [5])
    if length > 20_000 and rng.random() < 0.8:
        length = 1000
    alphabet = rng.choice([b"A", b"\x00", b"\r", b"\n", b"\xff", bytes(range(256))])
    data = bytes(rng.choice(alphabet) for _ in range(min(length, 64))) * (length // 64 + 1)
    return data[:length] + rng.choice([b"\r\n", b"", b"\n", b"\r"])


_GENERATORS = [_hello] * 3 + [_mail] * 3 + [_rcpt] * 3 + [_data] * 3 + [_transaction] * 3 + [
    _bdat, _auth, _auth, _simple, _simple, _garbage]


def _mutate(rng, piece):
    """
    One random damage to a command, or none.
    """
    if not piece or rng.random() < 0.6:
        return piece
    at = rng.randrange(len(piece) + 1)
    return rng.choice([
        lambda: piece[:at] + b"\x00" + piece[at:],
        lambda: piece[:at] + b"\xc3\x28\xff" + piece[at:],
        lambda: piece.replace(b"\r\n", b"\n"),
        lambda: piece.replace(b"\r\n", b"\r"),
        lambda: piece[:at],
        lambda: piece * 2,
        lambda: piece.lower(),
        lambda: piece[:at] + b" " * 20 + piece[at:],
    ])()


def commands(rng):
    """
    @return: the bytes of a burst: a transaction's commands, some of them
        damaged, some pieces of garbage.
    """
    pieces = [_hello(rng) if rng.random() < 0.3 else b"EHLO client.contoso.com\r\n"]
    for _ in range(rng.randint(1, 10)):
        pieces.append(_mutate(rng, rng.choice(_GENERATORS)(rng)))
    return b"".join(pieces)


# Sessions

# Ends any DATA or SASL exchange, and then the session.
CLOSING = b"\r\n.\r\n*\r\nQUIT\r\n"


def connect(target, ports, rng):
    host, portName, sources = TARGETS[target]
    sock = socket.create_connection((host, ports[portName]), timeout=SESSION_TIMEOUT,
                                    source_address=(rng.choice(sources), 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _sendInPieces(sock, rng, data, stats):
    """
    Write C{data} in a few pieces (so that lines are often split between
    the server's reads), or as much of it as the server takes before it
    closes.
    """
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 4)))
    try:
        for start, end in zip([0] + cuts, cuts + [len(data)]):
            if start < end:
                sock.sendall(data[start:end])
                stats.octetsSent += end - start
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass


def _tlsContext():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def fuzzSession(target, ports, rng, stats):
    """
    Run one random session against C{target}, checking every reply.

    @raise Problem: if a reply is malformed or the session does not end.
    """
    stats.sessions += 1
    kind = rng.choice(["burst"] * 6 + ["tls burst", "starttls garbage"])
    sock = connect(target, ports, rng)
    reader = ReplyReader(sock, stats)
    try:
        if reader.readReply() is None:
            raise Problem("no greeting")
        if kind != "burst":
            sock.sendall(b"EHLO client.contoso.com\r\nSTARTTLS\r\n")
            reader.readReply()
            accepted = reader.readReply() == [STARTTLS_READY]
            if accepted and kind == "tls burst":
                sock = _tlsContext().wrap_socket(sock, server_hostname=FQDN)
                reader.sock = sock
                stats.tlsSessions += 1
            elif accepted:
                # Not a ClientHello: the handshake fails and the server closes.
                _sendInPieces(sock, rng, rng.choice([b"EHLO x\r\n", b"\x16\x03\x01\x00\x05hello",
                                                     bytes(rng.randrange(256) for _ in range(300))]),
                              stats)
                try:
                    sock.shutdown(socket.SHUT_WR)
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass  # the server was quicker to close
                return
        burst = commands(rng) + CLOSING
        if b"BDAT" in burst.upper():
            # A chunk cut short by a mutation takes the octets after it,
            # CLOSING included, as RFC 3030 says: fill it up (a fuzzed
            # chunk is under 512 octets) and close again.
            burst += b" " * 512 + CLOSING
        # A server that closed early may still have replies to read.
        _sendInPieces(sock, rng, burst, stats)
        reader.readToEnd()
    except socket.timeout:
        raise Problem(f"the server did not end a {kind} session within {SESSION_TIMEOUT} s") from None
    finally:
        sock.close()


def freshHello(target, ports, rng, stats):
    """
    A new session on C{target} is greeted and answered EHLO.
    """
    sock = connect(target, ports, rng)
    reader = ReplyReader(sock, stats)
    started = time.monotonic()
    try:
        greeting = reader.readReply()
        if greeting is None or not greeting[0].startswith(b"220 "):
            raise Problem(f"a fresh session was not greeted: {greeting!r}")
        sock.sendall(b"EHLO fresh.contoso.com\r\n")
        reply = reader.readReply()
        if reply is None or reply[0][:4] not in (b"250 ", b"250-"):
            raise Problem(f"a fresh EHLO was not answered: {reply!r}")
        sock.sendall(b"QUIT\r\n")
        reader.readToEnd()
    except socket.timeout:
        raise Problem(f"a fresh session got no reply within {SESSION_TIMEOUT} s "
                      f"(started at {started:.3f}, replies {reader.replies!r})") from None
    finally:
        sock.close()


def campaign(ports, seed, sessions, first=0, stats=None):
    """
    Run sessions C{first} to C{first + sessions - 1} of the campaign
    C{seed}, each followed by a fresh EHLO, cycling through the
    connectors.

    @return: the L{Stats}.
    @raise Problem: at the first broken rule, naming the session.
    """
    stats = stats or Stats()
    targets = sorted(TARGETS)
    for number in range(first, first + sessions):
        rng = random.Random(f"{seed}-{number}")
        target = targets[number % len(targets)]
        try:
            fuzzSession(target, ports, rng, stats)
            freshHello(target, ports, rng, stats)
        except Problem as problem:
            raise Problem(f"session {number} of seed {seed} on {target}: {problem}") from None
    return stats


def storedProblems(mailboxes):
    """
    Check the messages delivered into the Maildirs under C{mailboxes}:
    none holds a NUL, and the lines the server wrote at their top
    (Return-Path, Delivered-To, its Received field) are printable ASCII.

    @return: a description of each problem found.
    """
    problems = []
    for mailbox in sorted(os.listdir(mailboxes)) if os.path.isdir(mailboxes) else ():
        folder = os.path.join(mailboxes, mailbox, "new")
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as handle:
                message = handle.read()
            own = b"\r\n".join(message.split(b"\r\n")[:4])
            if not own.startswith(b"Return-Path: ") or b"\r\nReceived: from " not in own:
                problems.append(f"{name}: unexpected top of message {own[:300]!r}")
            elif re.search(rb"[^\x20-\x7e\r\n\t]", own):
                problems.append(f"{name}: a control or non-ASCII octet in {own!r}")
            if b"\0" in message:
                problems.append(f"{name}: a NUL was stored")
    return problems


@contextmanager
def draining(server):
    """
    Keep reading the log of a L{tests.e2e.harness.ServerProcess} while
    clients run: a server whose log pipe is full blocks at its next line.
    """
    done = threading.Event()

    def read():
        while not done.is_set():
            server._readSome(0.2)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield server
    finally:
        done.set()
        reader.join()


def tracebacks(serverOutput):
    """
    @return: the server log lines that show an error escaping its handling.
    """
    return [line for line in serverOutput.splitlines()
            if any(marker in line for marker in TRACEBACK_MARKERS)]
