"""
A small SMTP server on Python's C{socket} and C{ssl} modules, as a next hop
that behaves in ways exmta and Postfix do not: it can leave out 8BITMIME,
enforce RFC 5321's 1,000-octet line limit, select ALPN or offer only some
TLS cipher suites.

    sink = SmtpSink(eightBitMime=False)
    ... send to 127.0.0.1:sink.port ...
    sink.stop()

It takes every message (unless it breaks the line limit it enforces) and
keeps what it saw of each session in L{Session}s; it offers no
PIPELINING, so commands and replies alternate.
"""

import socket
import ssl
import threading
from dataclasses import dataclass, field

# RFC 5321 section 4.5.3.1.6: 1,000 octets with the CRLF.
TEXT_LINE_LIMIT = 998


@dataclass
class Message:
    mail: str  # the MAIL command as received
    recipients: list
    data: bytes  # dot-stuffing undone
    refused: bool = False


@dataclass
class Session:
    tlsVersion: str | None = None
    tlsCipher: str | None = None
    alpn: str | None = None
    tlsError: str | None = None
    messages: list = field(default_factory=list)


class SmtpSink:
    """
    @param tls: an L{ssl.SSLContext} for the server side of STARTTLS, or
        L{None} to offer no STARTTLS.
    @param eightBitMime: offer 8BITMIME.
    @param enforceLineLimit: refuse, at the end of the data, a message with
        a line over 998 octets (without its CRLF), as a strict RFC 5321
        server may.
    @param refuse: {recipient address: reply line} to answer RCPT TO for
        those recipients with, e.g. C{"451 4.2.0 Try later"}.
    @param port: the port to listen on (one the kernel chooses if 0).
    @param silent: accept connections but greet none (a tarpit) until
        L{answer} is called.
    """

    def __init__(self, tls=None, eightBitMime=True, enforceLineLimit=False, refuse=None, port=0,
                 silent=False):
        self.tls = tls
        self._answering = threading.Event()
        if not silent:
            self._answering.set()
        self.refuse = refuse or {}
        self.eightBitMime = eightBitMime
        self.enforceLineLimit = enforceLineLimit
        self.sessions = []
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self.port = self._listener.getsockname()[1]
        self._threads = []
        self._conversations = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def messages(self):
        return [message for session in self.sessions for message in session.messages]

    def answer(self):
        """
        Greet the connections waiting, and those to come.
        """
        self._answering.set()

    def stop(self):
        """
        Close the listening socket and every session (a sender may keep an
        idle connection open).
        """
        self._answering.set()
        # Closing alone would not wake the thread blocked in accept().
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(30)
        for conversation in self._conversations:
            try:
                conversation.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(30)

    def _accept(self):
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            session = Session()
            self.sessions.append(session)
            thread = threading.Thread(target=self._serve, args=(connection, session), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection, session):
        connection.settimeout(60)
        conversation = _Conversation(self, connection, session)
        self._conversations.append(conversation)
        try:
            self._answering.wait()
            conversation.run()
        except (OSError, ConnectionError):
            pass
        finally:
            conversation.connection.close()


class _Conversation:
    def __init__(self, sink, connection, session):
        self.sink = sink
        self.connection = connection
        self.session = session
        self.pending = b""
        self.mail = None
        self.recipients = []

    def send(self, *lines):
        self.connection.sendall(b"".join(line.encode() + b"\r\n" for line in lines))

    def line(self):
        while b"\r\n" not in self.pending:
            chunk = self.connection.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line

    def run(self):
        self.send("220 sink.contoso.test ESMTP")
        while True:
            line = self.line()
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                extensions = ["SIZE 10485760", "ENHANCEDSTATUSCODES"]
                if self.sink.eightBitMime:
                    extensions.append("8BITMIME")
                if self.sink.tls is not None and self.session.tlsVersion is None:
                    extensions.append("STARTTLS")
                lines = ["sink.contoso.test"] + extensions
                self.send(*[f"250-{text}" for text in lines[:-1]], f"250 {lines[-1]}")
            elif verb == b"STAR":
                self.send("220 2.0.0 Ready to start TLS")
                self.startTLS()
            elif verb == b"MAIL":
                self.mail, self.recipients = line.decode(), []
                self.send("250 2.1.0 Sender OK")
            elif verb == b"RCPT":
                address = line.decode().partition("<")[2].rpartition(">")[0]
                if address in self.sink.refuse:
                    self.send(self.sink.refuse[address])
                else:
                    self.recipients.append(address)
                    self.send("250 2.1.5 Recipient OK")
            elif verb == b"DATA":
                self.send("354 Start mail input; end with <CRLF>.<CRLF>")
                self.receiveData()
            elif verb == b"RSET":
                self.mail, self.recipients = None, []
                self.send("250 2.0.0 Reset")
            elif verb == b"QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("500 5.5.1 Unrecognized command")

    def startTLS(self):
        try:
            self.connection = self.sink.tls.wrap_socket(self.connection, server_side=True)
        except ssl.SSLError as error:
            self.session.tlsError = error.reason or str(error)
            raise ConnectionError("handshake failed") from None
        self.session.tlsVersion = self.connection.version()
        self.session.tlsCipher = self.connection.cipher()[0]
        self.session.alpn = self.connection.selected_alpn_protocol()

    def receiveData(self):
        lines = []
        while True:
            line = self.line()
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        tooLong = any(len(line) > TEXT_LINE_LIMIT for line in lines)
        refused = self.sink.enforceLineLimit and tooLong
        data = b"".join(line + b"\r\n" for line in lines)
        self.session.messages.append(Message(self.mail, list(self.recipients), data, refused))
        if refused:
            self.send("500 5.5.2 Line too long: a text line may have at most 1000 octets (RFC 5321 4.5.3.1.6)")
        else:
            self.send("250 2.6.0 Queued")
