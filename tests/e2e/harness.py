"""
Real processes and real sockets for end-to-end tests: an exmta server run
by twistd, and an SMTP client that shows the raw protocol.
"""

import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
STARTUP_TIMEOUT = 60
REPLY_TIMEOUT = 30


def freePort(host="127.0.0.1"):
    """
    A port the kernel just chose as free on C{host}, for org.ini Bindings
    that must be written before the server starts.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def writeOrganization(folder, text, accounts=()):
    """
    Write org.ini into C{folder}, and the BasicAuth accounts next to it.

    @param accounts: (user principal name, password) pairs.
    @return: the path of org.ini.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "org.ini")
    with open(path, "w") as handle:
        handle.write(text)
    if accounts:
        from exmta.auth.accounts import AccountStore

        store = AccountStore.open(os.path.join(folder, "accounts"))
        for name, password in accounts:
            store.setPassword(name, password)
    return path


class ServerProcess:
    """
    C{twistd -n exmta -c org.ini} in a subprocess, with this checkout first
    on its path, run in org.ini's folder unless told C{cwd} (an etcd
    location has none).  Started means listening: the constructor returns once the
    server has logged every socket it opens, and, with C{workers}
    (C{--workers}), once each receive worker accepts on them.

    C{logLevel} is C{--log-level}: C{debug} unless told, so that tests can
    wait for the line naming each message accepted or sent.
    """

    def __init__(self, config, sockets, server=None, extra=(), workers=0, cwd=None,
                 logLevel="debug"):
        self.config = config
        self.output = []
        environment = dict(os.environ, PYTHONPATH=REPOSITORY, PYTHONUNBUFFERED="1")
        command = [TWISTD, "-n", "--pidfile=", "exmta", "-c", config, "--log-level", logLevel]
        if server:
            command += ["--server", server]
        if workers:
            command += ["--workers", str(workers)]
        self.process = subprocess.Popen(
            command + list(extra),
            cwd=cwd or os.path.dirname(config),
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._partial = b""
        self.waitFor("listening on", count=sockets)
        if workers:
            self.waitFor("receive worker accepting on", count=workers)

    def waitFor(self, text, count=1, timeout=STARTUP_TIMEOUT):
        """
        Read the server's log until C{text} has appeared C{count} times.
        """
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.output) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._readSome(remaining):
                raise AssertionError(
                    f"server did not log {text!r} {count} times:\n" + "\n".join(self.output)
                )

    def _readSome(self, timeout):
        if not self._selector.select(timeout):
            return False
        chunk = os.read(self.process.stdout.fileno(), 65536)
        if not chunk:
            return False
        self._partial += chunk
        *lines, self._partial = self._partial.split(b"\n")
        self.output.extend(line.decode("utf-8", "replace") for line in lines)
        return True

    def drain(self):
        while self._readSome(0):
            pass
        return "\n".join(self.output)

    def workerPids(self):
        """
        @return: the pids of every receive worker the server has logged
            starting, alive or not.
        """
        self.drain()
        return [
            int(line.rsplit("pid ", 1)[1].rstrip(")"))
            for line in self.output
            if "started receive worker" in line
        ]

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._close()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.drain()
        self._close()

    def _close(self):
        self._selector.close()
        self.process.stdout.close()


def alive(pid):
    """
    @return: whether process C{pid} runs; a zombie has ended, only its
        parent's wait is missing.
    """
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def awaitEnded(pids, timeout=STARTUP_TIMEOUT):
    """
    Wait until processes that are not our children are gone (the workers
    of a killed main process end when their standard input does, and free
    the sockets), polling: their end cannot be waited for.
    """
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.02)


def runTwistd(config, *extra):
    """
    Run twistd to completion (for starts that must fail).

    @return: the CompletedProcess, output in C{stdout}.
    """
    environment = dict(os.environ, PYTHONPATH=REPOSITORY)
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=", "exmta", "-c", config, *extra],
        cwd=os.path.dirname(config),
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=STARTUP_TIMEOUT,
        text=True,
    )


class RawClient:
    """
    An SMTP client that writes exactly the bytes given and reads replies
    whole, for tests about the wire.
    """

    def __init__(self, host, port, source=None):
        self.sock = socket.create_connection(
            (host, port), timeout=REPLY_TIMEOUT, source_address=(source, 0) if source else None
        )
        self._pending = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """
        @return: (code, [lines]) of the next reply.
        """
        lines = []
        while True:
            while b"\r\n" not in self._pending:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {lines!r}")
                self._pending += chunk
            line, self._pending = self._pending.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), lines

    def command(self, line):
        self.send(line.encode("ascii") + b"\r\n")
        return self.reply()

    def buffered(self):
        return self._pending

    def startTLS(self, serverName="huba.fabrikam.com"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname=serverName)
        return self.sock

    def closedByPeer(self):
        """
        @return: L{True} if the server has closed the connection.
        """
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()


def queuedMessages(queueFolder):
    """
    @return: {queue id: envelope} of the messages committed in a queue
        folder and in its workers' spool parts (C{--workers}).
    """
    found = {}
    parts = os.path.join(queueFolder, "parts")
    folders = [queueFolder] + (
        [os.path.join(parts, name) for name in os.listdir(parts)] if os.path.isdir(parts) else []
    )
    for spool in folders:
        folder = os.path.join(spool, "messages")
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue  # a part adopted since the listing
        for name in names:
            if name.endswith(".json"):
                try:
                    with open(os.path.join(folder, name)) as handle:
                        found[name[:-5]] = json.load(handle)
                except FileNotFoundError:
                    continue  # delivered, removed or adopted since the listing
    return found


def maildirMessages(mailboxFolder):
    """
    @return: the bytes of every message in a Maildir's new/ folder.
    """
    folder = os.path.join(mailboxFolder, "new")
    if not os.path.isdir(folder):
        return []
    contents = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as handle:
            contents.append(handle.read())
    return contents
