"""
The servers a benchmark round talks to, each in its own temporary folder on
loopback:

  - L{PostfixInstance}: a private Postfix (Debian's package, C{postfix -c
    DIR}) that either holds what it accepts (C{check_client_access
    static:HOLD}: queued and fsynced, never delivered) or relays it to a
    smart host.  Mirrors C{tests/e2e/postfix.py}, which is written for
    pytest; this one is lean (no TLS, no virtual delivery) and raises
    C{default_process_limit} above the stock 100 for the 100-session rounds.
  - L{ExmtaServer}: C{twistd -n exmta -c org.ini} with an organization that
    takes anonymous mail for the InternalRelay domain C{bench.test} and
    sends it through one send connector to a smart host on loopback.
  - L{SmtpSink}: Postfix's C{smtp-sink}, a protocol-only SMTP server (no
    disk), as the smart host of the relay rounds; it counts messages.
  - L{Tarpit}: a listening socket that never accepts.  The kernel completes
    TCP handshakes into its backlog and nobody ever greets, so a smart host
    here is "down" without refusing: exmta's sends wait for a greeting
    (MaxPerDomainOutboundConnections of them; the rest wait for a
    connection in the pool) and nothing more is written to the queue.
"""

import glob
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from bench.measure import descendants, processCpu

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
STARTUP_TIMEOUT = 120
POLL = 0.02

# The domain every benchmark message is addressed to, and its sender.
DOMAIN = "bench.test"
RECIPIENT = f"user@{DOMAIN}"
SENDER = "load@source.test"


def freePort(host="127.0.0.1"):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def waitForGreeting(host, port, timeout=STARTUP_TIMEOUT, process=None, log=lambda: ""):
    """
    Poll C{host:port} until a server greets with 220.

    @return: seconds waited.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=10) as probe:
                if probe.recv(512).startswith(b"220"):
                    probe.sendall(b"QUIT\r\n")
                    return time.monotonic() - started
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}) before greeting:\n{log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing greeted on {host}:{port} in {timeout} s:\n{log()}")
        time.sleep(POLL)


def raiseFileLimit(wanted=65536):
    """
    Raise this process's RLIMIT_NOFILE (children inherit it) as far as the
    hard limit allows, and the hard limit too when running as root.

    @return: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# Postfix

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {config}
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {log}
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.postfix.test
mydomain = postfix.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP
smtpd_forbid_bare_newline = yes
smtpd_tls_security_level = none
in_flow_delay = 0
# Stock Postfix serves at most 100 sessions at once (one smtpd each).
default_process_limit = {processLimit}
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
message_size_limit = 52428800
"""

HOLD_CF = """\
# Durable acceptance: every message is queued, fsynced, and put on hold.
smtpd_recipient_restrictions = check_client_access static:HOLD, permit_mynetworks, reject
"""

RELAY_CF = """\
# Relay: everything from loopback goes to the smart host.
relayhost = [127.0.0.1]:{smartHost}
smtpd_relay_restrictions = permit_mynetworks, reject
"""


class PostfixInstance:
    """
    One private Postfix; C{mode} is C{"hold"} or C{"relay"} (then
    C{smartHost} is the port of the smart host on 127.0.0.1).

    @ivar port: its smtpd's port on 127.0.0.1.
    """

    name = "Postfix"

    def __init__(self, mode="hold", smartHost=None, processLimit=400, folder=None):
        if os.geteuid() != 0:
            raise SystemExit("bench: a private Postfix instance needs root (postfix start)")
        if not os.path.exists(POSTFIX):
            raise SystemExit(
                "bench: Debian's postfix package is not installed: see bench/README.rst"
            )
        self.folder = tempfile.mkdtemp(prefix="bench-postfix-", dir=folder)
        os.chmod(self.folder, 0o755)
        self.mode = mode
        self.port = freePort()
        self.config = os.path.join(self.folder, "etc")
        self.queue = os.path.join(self.folder, "spool")
        self.data = os.path.join(self.folder, "data")
        self.logPath = os.path.join(self.folder, "maillog")
        owner = pwd.getpwnam("postfix")
        for path in (self.config, self.queue, self.data):
            os.makedirs(path, exist_ok=True)
        os.chown(self.data, owner.pw_uid, owner.pw_gid)
        settings = MAIN_CF.format(
            config=self.config, queue=self.queue, data=self.data, log=self.logPath,
            processLimit=processLimit,
        )
        settings += HOLD_CF if mode == "hold" else RELAY_CF.format(smartHost=smartHost)
        with open(os.path.join(self.config, "main.cf"), "w") as handle:
            handle.write(settings)
        with open(os.path.join(self.config, "master.cf"), "w") as handle:
            handle.write(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        self._master = None

    def postfix(self, *arguments, check=True):
        return subprocess.run(
            [POSTFIX, "-c", self.config, *arguments],
            capture_output=True, text=True, timeout=120, check=check,
        )

    def start(self):
        started = self.postfix("start", check=False)
        if started.returncode:
            raise RuntimeError(f"postfix start failed:\n{started.stdout}{started.stderr}\n{self.log()}")
        waitForGreeting("127.0.0.1", self.port, log=self.log)
        self._master = self.masterPid()
        return self

    def masterPid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def pids(self):
        """
        @return: the master and every process it started.
        """
        if self._master is None:
            return []
        return [self._master] + descendants(self._master)

    def cpuSeconds(self):
        """
        CPU (user + system) of the whole instance so far: the master with its
        reaped children (cutime/cstime), plus the children still running.
        """
        return sum(processCpu(pid, children=True) for pid in self.pids())

    def rss(self):
        from bench.measure import processRss

        return sum(processRss(pid) for pid in self.pids())

    def held(self):
        """
        @return: how many messages are in the hold queue.
        """
        return _countFiles(os.path.join(self.queue, "hold"))

    def queued(self):
        """
        @return: messages in the incoming, active and deferred queues.
        """
        return sum(
            _countFiles(os.path.join(self.queue, name))
            for name in ("incoming", "active", "deferred", "maildrop")
        )

    def log(self):
        try:
            with open(self.logPath, errors="replace") as handle:
                return handle.read()[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self):
        pid = self.masterPid()
        self.postfix("stop", check=False)
        deadline = time.monotonic() + 60
        while pid and _alive(pid):
            if time.monotonic() > deadline:
                self.postfix("abort", check=False)
                _kill(pid)
                break
            time.sleep(POLL)
        shutil.rmtree(self.folder, ignore_errors=True)


def _countFiles(folder):
    count = 0
    for _, _, files in os.walk(folder):
        count += len(files)
    return count


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# exmta

ORGANIZATION = r"""
# The benchmark's organization: one transport server, one receive connector
# that takes anonymous mail for bench.test, one send connector to a smart
# host on loopback.  Everything not set here is exmta's shipped default
# (message tracking on, no protocol log, Exchange 2010's limits), except
# the connection limits, which the 100- and 10,000-session rounds exceed.
[TransportServer Bench]
Fqdn = bench.exmta.test
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageTrackingLogPath = var/log/tracking
{server}

[AcceptedDomain bench.test]
DomainType = InternalRelay

[ReceiveConnector Bench]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 0.0.0.0-255.255.255.255
MaxInboundConnection = unlimited
MaxInboundConnectionPerSource = unlimited

[SendConnector ToSmartHost]
AddressSpaces = *
SmartHosts = 127.0.0.1:{smartHost}
DNSRoutingEnabled = $false
"""


class ExmtaServer:
    """
    C{twistd -n exmta -c org.ini} in a subprocess, C{source} first on its
    PYTHONPATH, its log in C{twistd.log} beside org.ini.

    @ivar port: the receive connector's port on 127.0.0.1.
    """

    name = "exmta"

    def __init__(self, python, source=REPOSITORY, smartHost=None, folder=None, server=None,
                 extra=(), workers=0):
        self.folder = tempfile.mkdtemp(prefix="bench-exmta-", dir=folder)
        self.python = python
        self.source = source
        self.port = freePort()
        self.smartHost = smartHost or freePort()
        self.config = os.path.join(self.folder, "org.ini")
        with open(self.config, "w") as handle:
            handle.write(ORGANIZATION.format(
                port=self.port, smartHost=self.smartHost,
                server="\n".join(f"{key} = {value}" for key, value in (server or {}).items()),
            ))
        self.logPath = os.path.join(self.folder, "twistd.log")
        self.queueFolder = os.path.join(self.folder, "var", "queue")
        self.extra = list(extra) + (["--workers", str(workers)] if workers else [])
        self.process = None
        self.startupSeconds = None

    def start(self):
        """
        Start the server; return once it greets.
        """
        environment = dict(
            os.environ, PYTHONPATH=self.source, PYTHONDONTWRITEBYTECODE="1",
        )
        environment.pop("PYTHONUNBUFFERED", None)
        twistd = os.path.join(os.path.dirname(self.python), "twistd")
        command = [twistd,
            "-n", "--pidfile=", "exmta", "-c", self.config, *self.extra,
        ]
        started = time.monotonic()
        self._logHandle = open(self.logPath, "ab")
        self.process = subprocess.Popen(
            command, cwd=self.folder, env=environment,
            stdout=self._logHandle, stderr=subprocess.STDOUT,
        )
        waitForGreeting("127.0.0.1", self.port, process=self.process, log=self.log)
        self.startupSeconds = time.monotonic() - started
        return self

    @property
    def pid(self):
        return self.process.pid

    def pids(self):
        """
        The server's process and its live receive workers.
        """
        from bench.measure import descendants

        return [self.process.pid] + descendants(self.process.pid)

    def cpuSeconds(self):
        return sum(processCpu(pid, children=True) for pid in self.pids())

    def rss(self):
        from bench.measure import processRss

        return sum(processRss(pid) for pid in self.pids())

    def queued(self):
        """
        @return: messages committed in the queue (their envelope files), in
            the queue folder and in its workers' spool parts.
        """
        folders = [os.path.join(self.queueFolder, "messages")] + glob.glob(
            os.path.join(self.queueFolder, "parts", "*", "messages")
        )
        total = 0
        for folder in folders:
            try:
                total += sum(name.endswith(".json") for name in os.listdir(folder))
            except FileNotFoundError:
                pass
        return total

    def log(self):
        try:
            with open(self.logPath, errors="replace") as handle:
                return handle.read()[-4000:]
        except FileNotFoundError:
            return ""

    def adminSocket(self):
        path = os.path.join(self.queueFolder, "admin.sock")
        return path if os.path.exists(path) else None

    def stop(self, timeout=60, kill=False):
        """
        Stop the server (SIGTERM, SIGKILL after C{timeout} or at once if
        C{kill}).

        @return: (seconds the stop took, whether SIGKILL ended it).
        """
        if self.process is None:
            return 0.0, False
        started = time.monotonic()
        killed = kill
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self.process.kill()
                self.process.wait(30)
        self._logHandle.close()
        self.process = None
        return time.monotonic() - started, killed

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


# Smart hosts


class SmtpSink:
    """
    C{smtp-sink -c -u root 127.0.0.1:PORT BACKLOG}: accepts everything,
    writes nothing; its running counters go to a file we read.
    """

    def __init__(self, port=None, backlog=1024, folder=None):
        self.port = port or freePort()
        self.backlog = backlog
        handle, self.countsPath = tempfile.mkstemp(prefix="bench-sink-", dir=folder)
        os.close(handle)
        self.process = None

    def start(self):
        self._output = open(self.countsPath, "wb")
        self.process = subprocess.Popen(
            [SMTP_SINK, "-c", "-u", "root", f"127.0.0.1:{self.port}", str(self.backlog)],
            stdout=self._output, stderr=subprocess.DEVNULL,
        )
        waitForGreeting("127.0.0.1", self.port, process=self.process)
        return self

    def messages(self):
        """
        @return: messages received so far (the last "mesg=N" counter).
        """
        with open(self.countsPath, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 200))
            tail = handle.read()
        for record in reversed(tail.split(b"\r")):
            _, found, digits = record.rpartition(b"mesg=")
            if found and digits.strip().isdigit():
                return int(digits)
        return 0

    def waitFor(self, count, timeout, progress=None):
        """
        Wait until C{count} messages have arrived.

        @return: the monotonic time the count was first seen reached, or
            L{None} on timeout.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.messages() >= count:
                return time.monotonic()
            if progress:
                progress()
            time.sleep(0.01)
        return None

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self._output.close()
        os.unlink(self.countsPath)


class Tarpit:
    """
    A listening socket that never accepts: a smart host that is down
    without refusing connections (see the module docstring).
    """

    def __init__(self, port=None, backlog=128):
        self.port = port or freePort()
        self.backlog = backlog
        self.sock = None

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(self.backlog)
        return self

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
