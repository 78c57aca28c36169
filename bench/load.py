"""
The clients of the benchmark:

  - L{smtpSource}: Postfix's C{smtp-source}, the load generator of every
    throughput round (C, one process, one connection per message with
    C{-r 1} and no C{-d}).
  - L{LatencyProbe}: a few sessions of our own (asyncio) that send the same
    kind of message in a loop, a new connection each, and time the last
    step: from writing the message with its final CRLF.CRLF to reading the
    whole 250 reply.  Run beside smtp-source, they sample the latency a
    server gives under that load.
  - L{holdIdleSessions}: opens many sessions that read the banner, say EHLO
    and then stay silent.
  - L{sendOne}, L{greetingTime}, L{adminRequest}: single timed requests.
"""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time

from bench.peers import RECIPIENT, SENDER

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def smtpSource(port, messages, sessions, size, timeout=900):
    """
    Run C{smtp-source -l SIZE -m MESSAGES -s SESSIONS -r 1} against
    127.0.0.1:PORT, a new connection per message.

    @return: (wall seconds, the smtp-source process's stderr).
    """
    command = [
        SMTP_SOURCE, "-l", str(size), "-m", str(messages), "-s", str(sessions),
        "-r", "1", "-M", "client.source.test", "-f", SENDER, "-t", RECIPIENT,
        f"127.0.0.1:{port}",
    ]
    started = time.monotonic()
    try:
        finished = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        return time.monotonic() - started, f"smtp-source timed out after {timeout} s\n{expired.stderr or ''}"
    elapsed = time.monotonic() - started
    return elapsed, finished.stderr.decode("utf-8", "replace")


def message(size):
    """
    A message of about C{size} bytes with CRLF line ends, like smtp-source's.
    """
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: latency probe\r\n"
        "Message-ID: <probe@client.source.test>\r\n\r\n"
    ).encode()
    line = b"La de da de da " * 4 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


async def _reply(reader):
    """
    Read one whole (possibly multi-line) reply; return its code.
    """
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


class LatencyProbe:
    """
    C{sessions} loops of one message per connection; each end of data is
    timed (see the module docstring).

    @ivar latencies: seconds from the final dot's write to its 250.
    @ivar errors: replies or failures that were not the expected ones.
    """

    def __init__(self, port, sessions=10, size=1000, quota=None):
        self.port = port
        self.quota = quota
        self.sessions = sessions
        self.payload = message(size) + b".\r\n"
        self.latencies = []
        self.errors = 0
        self.sent = 0
        self._stopping = False

    async def _session(self):
        while not self._stopping and (self.quota is None or self.sent < self.quota):
            try:
                await asyncio.wait_for(self._one(), 60)
            except (OSError, ValueError, ConnectionError, asyncio.TimeoutError):
                self.errors += 1
                await asyncio.sleep(0.01)

    async def _one(self):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            steps = [None, b"EHLO probe.source.test\r\n", f"MAIL FROM:<{SENDER}>\r\n".encode(),
                     f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"DATA\r\n"]
            expected = [220, 250, 250, 250, 354]
            for step, code in zip(steps, expected):
                if step is not None:
                    writer.write(step)
                if await _reply(reader) != code:
                    raise ValueError(step)
            started = time.perf_counter()
            writer.write(self.payload)
            code = await _reply(reader)
            finished = time.perf_counter()
            if code != 250:
                raise ValueError(code)
            self.latencies.append(finished - started)
            self.sent += 1
            writer.write(b"QUIT\r\n")
            await _reply(reader)
        finally:
            writer.close()

    async def run(self, until):
        """
        Run until the awaitable C{until} is done; return its result.
        """
        tasks = [asyncio.ensure_future(self._session()) for _ in range(self.sessions)]
        try:
            return await until
        finally:
            self._stopping = True
            await asyncio.gather(*tasks, return_exceptions=True)


def smtpSourceWithProbe(port, messages, sessions, size, probeSessions):
    """
    smtp-source with C{sessions - probeSessions} sessions and C{messages},
    and a L{LatencyProbe} with the others, for as long as smtp-source runs
    and at most its share of messages (C{messages * probeSessions /
    (sessions - probeSessions)}), so that the probe's sessions carry no
    more of the load than smtp-source's.

    @return: (wall seconds, probe).
    """
    probe = LatencyProbe(port, probeSessions, size,
                         quota=messages * probeSessions // (sessions - probeSessions))

    async def main():
        started = time.monotonic()
        source = await asyncio.create_subprocess_exec(
            SMTP_SOURCE, "-l", str(size), "-m", str(messages), "-s", str(sessions - probeSessions),
            "-r", "1", "-M", "client.source.test", "-f", SENDER, "-t", RECIPIENT,
            f"127.0.0.1:{port}",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        await probe.run(source.wait())
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    return elapsed, probe


async def _openIdle(port, count, concurrency, sockets, timeout=15):
    semaphore = asyncio.Semaphore(concurrency)
    failures = 0

    async def opened():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if await _reply(reader) != 220:
                raise ValueError("banner")
            writer.write(b"EHLO idle.source.test\r\n")
            if await _reply(reader) != 250:
                raise ValueError("EHLO")
        except BaseException:
            writer.transport.abort()
            raise
        return writer

    async def one():
        nonlocal failures
        async with semaphore:
            try:
                sockets.append(await asyncio.wait_for(opened(), timeout))
            except (OSError, ValueError, ConnectionError, asyncio.TimeoutError):
                failures += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return failures


class IdleSessions:
    """
    C{count} sessions to 127.0.0.1:PORT, each greeted and after EHLO, then
    silent; L{close} ends them.  The event loop stays open (and idle) while
    they are held.

    At most C{concurrency} are being opened at once: Twisted's listenTCP
    has a listen backlog of 50, and a connection the kernel completes
    beyond a full backlog can be dropped by the server while the client
    waits for a banner that never comes (tcp_abort_on_overflow = 0).  A
    session not greeted and EHLO'd within 15 s counts as a failure.
    """

    def __init__(self, port, count, concurrency=40):
        self.loop = asyncio.new_event_loop()
        self.writers = []
        started = time.monotonic()
        self.failures = self.loop.run_until_complete(
            _openIdle(port, count, concurrency, self.writers)
        )
        self.seconds = time.monotonic() - started

    def __len__(self):
        return len(self.writers)

    def close(self):
        for writer in self.writers:
            writer.transport.abort()
        self.loop.run_until_complete(asyncio.sleep(0.1))
        self.loop.close()
        self.writers = []


def greetingTime(port, ehlo=True, timeout=30):
    """
    Seconds from connecting to the banner (and, with C{ehlo}, to the
    EHLO reply as well): (banner, banner + EHLO).
    """
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        stream = sock.makefile("rb")
        _blockingReply(stream)
        banner = time.perf_counter() - started
        total = banner
        if ehlo:
            sock.sendall(b"EHLO probe.source.test\r\n")
            _blockingReply(stream)
            total = time.perf_counter() - started
        sock.sendall(b"QUIT\r\n")
    return banner, total


def _blockingReply(stream):
    while True:
        line = stream.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line


def sendOne(port, size=1000, timeout=60):
    """
    Send one message; return the seconds from connecting to its 250, or
    raise if it was not accepted.
    """
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        stream = sock.makefile("rb")
        for line, expected in ((None, 220), (b"EHLO one.source.test\r\n", 250),
                               (f"MAIL FROM:<{SENDER}>\r\n".encode(), 250),
                               (f"RCPT TO:<{RECIPIENT}>\r\n".encode(), 250),
                               (b"DATA\r\n", 354), (message(size) + b".\r\n", 250)):
            if line is not None:
                sock.sendall(line)
            code, text = _blockingReply(stream)
            if code != expected:
                raise RuntimeError(f"{line!r} got {text!r}")
        elapsed = time.perf_counter() - started
        sock.sendall(b"QUIT\r\n")
    return elapsed


def adminRequest(path, command, arguments=None, timeout=120):
    """
    One request to exmta's admin endpoint (a UNIX socket, one JSON object a
    line; see exmta/admin/protocol.py).

    @return: (seconds to the answer, the decoded answer).
    """
    request = {"command": command}
    if arguments:
        request["arguments"] = arguments
    started = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            answer += chunk
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(answer) if answer else None


def cpuCount():
    return os.cpu_count() or 1
