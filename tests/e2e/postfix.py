"""
A private Postfix instance on loopback, as a peer for end-to-end tests.

Debian's postfix package is installed unconfigured (debconf's "No
configuration"): there is no system instance, and this module never reads
or writes C{/etc/postfix}.  Each L{PostfixPeer} has its own configuration
folder (C{postfix -c DIR}), queue, data folder, log file and Maildirs,
and its smtpd listens on C{HOST:PORT} chosen by the test:

    peer = PostfixPeer(tls=(certificate, key))
    peer.start()
    ... send to 127.0.0.1:peer.port ...
    peer.waitForMessages("someone@contoso.com", 1)
    peer.stop()

It accepts mail for every domain and delivers it with Postfix's virtual(8)
agent into one Maildir, a file per recipient, adding C{Return-Path:} (the
envelope sender) and C{Delivered-To:} (the recipient), by which
L{PostfixPeer.messages} tells recipients apart.  Options:

  - C{tls}: (certificate, key) PEM paths: offer STARTTLS; without it the
    peer offers no STARTTLS at all.
  - C{sasl}: {user: password}: only clients that AUTH (PLAIN or LOGIN) may
    send (needs the sasl2-bin and libsasl2-modules packages).  With C{tls},
    AUTH is offered only after STARTTLS (C{smtpd_tls_auth_only}); without
    it, in the clear, for tests of clients that must not take that offer.
  - C{extra}: more main.cf settings.
"""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from tests.e2e.harness import freePort

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
STARTUP_TIMEOUT = 30
POLL = 0.02

# chroot is off everywhere (5th column "n"): the private instance's paths
# are absolute and outside any chroot.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
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
virtual   unix  -       n       n       -       -       virtual
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
myhostname = {hostname}
mydomain = {hostname}
myorigin = $myhostname
inet_interfaces = {host}
inet_protocols = {protocols}
mydestination =
mynetworks = 127.0.0.0/8 [::1]/128
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP
smtpd_forbid_bare_newline = yes
in_flow_delay = 0
default_process_limit = 200
smtpd_client_connection_count_limit = 0
message_size_limit = 52428800
virtual_mailbox_limit = 0
# Every recipient of every domain goes to one Maildir, a file per recipient
# with its Delivered-To: (virtual(8) allows no $1 in a regexp table).
virtual_mailbox_domains = static:all
virtual_mailbox_base = {maildirs}
virtual_mailbox_maps = static:all/
virtual_minimum_uid = {uid}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_destination_concurrency_limit = 50
"""

TLS_CF = """\
smtpd_tls_security_level = may
smtpd_tls_cert_file = {certificate}
smtpd_tls_key_file = {key}
smtpd_tls_session_cache_database =
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
"""

NO_TLS_CF = """\
smtpd_tls_security_level = none
"""

SASL_CF = """\
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {config}/sasl
smtpd_sasl_local_domain = {hostname}
smtpd_tls_auth_only = {authOnlyInsideTLS}
smtpd_sasl_security_options = noanonymous
smtpd_sasl_authenticated_header = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
"""

SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: {sasldb}
mech_list: PLAIN LOGIN
"""


class PostfixPeer:
    """
    One private Postfix instance; see the module docstring.

    @ivar host: the address its smtpd listens on.
    @ivar port: its smtpd port.
    @ivar maildirs: the folder holding one Maildir per recipient address.
    """

    def __init__(self, port=None, host="127.0.0.1", hostname="peer.contoso.test",
                 tls=None, sasl=None, extra=None):
        # Postfix's delivery agents run as the postfix user, which must reach
        # the Maildirs: pytest's 0700 temporary folders would stop them.
        if os.geteuid() != 0:
            pytest.skip("a private Postfix instance needs root (postfix start); CI runs as root")
        if not os.path.exists(POSTFIX):
            raise AssertionError(
                "Debian's postfix package is not installed: see the test command in README.rst"
            )
        self.folder = tempfile.mkdtemp(prefix="exmta-postfix-")
        os.chmod(self.folder, 0o755)
        self.host = host
        self.port = port or freePort(host)
        self.hostname = hostname
        self.config = os.path.join(self.folder, "etc")
        self.queue = os.path.join(self.folder, "spool")
        self.data = os.path.join(self.folder, "data")
        self.maildirs = os.path.join(self.folder, "maildirs")
        self.logPath = os.path.join(self.folder, "maillog")
        self._started = False
        self._recipientOf = {}
        self._write(tls, sasl, extra or {})

    def _write(self, tls, sasl, extra):
        owner = pwd.getpwnam("postfix")
        uid, gid = owner.pw_uid, owner.pw_gid
        for path in (self.config, self.queue, self.data, self.maildirs):
            os.makedirs(path, exist_ok=True)
        for path in (self.data, self.maildirs):
            os.chown(path, uid, gid)
        listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        settings = MAIN_CF.format(
            config=self.config, queue=self.queue, data=self.data, log=self.logPath,
            hostname=self.hostname, host=self.host,
            protocols="ipv6" if ":" in self.host else "ipv4",
            maildirs=self.maildirs, uid=uid, gid=gid,
        )
        if tls:
            certificate, key = tls
            settings += TLS_CF.format(certificate=certificate, key=key)
        else:
            settings += NO_TLS_CF
        if sasl:
            settings += SASL_CF.format(config=self.config, hostname=self.hostname,
                                       authOnlyInsideTLS="yes" if tls else "no")
        settings += "".join(f"{key} = {value}\n" for key, value in extra.items())
        with open(os.path.join(self.config, "main.cf"), "w") as handle:
            handle.write(settings)
        with open(os.path.join(self.config, "master.cf"), "w") as handle:
            handle.write(MASTER_CF.format(listen=listen))
        if sasl:
            self._writeSasl(sasl, gid)

    def _writeSasl(self, accounts, gid):
        folder = os.path.join(self.config, "sasl")
        os.makedirs(folder, exist_ok=True)
        sasldb = os.path.join(folder, "sasldb2")
        for user, password in accounts.items():
            name, _, realm = user.partition("@")
            command = [SASLPASSWD2, "-p", "-c", "-f", sasldb]
            if realm:
                command += ["-u", realm]
            subprocess.run(command + [name], input=password.encode(), check=True,
                           capture_output=True, timeout=30)
        os.chown(sasldb, 0, gid)
        os.chmod(sasldb, 0o640)
        with open(os.path.join(folder, "smtpd.conf"), "w") as handle:
            handle.write(SASL_CONF.format(sasldb=sasldb))

    def postfix(self, *arguments, check=True):
        """
        Run C{postfix -c CONFIG ARGUMENTS}.
        """
        return subprocess.run(
            [POSTFIX, "-c", self.config, *arguments],
            capture_output=True, text=True, timeout=60, check=check,
        )

    def start(self):
        """
        Start the instance; return once its smtpd answers with 220.
        """
        # "postfix start" checks the configuration and makes the queue's
        # folders with their owners (post-install create-missing); a
        # separate set-permissions would only add seconds.
        started = self.postfix("start", check=False)
        if started.returncode:
            raise AssertionError(f"postfix start failed:\n{started.stdout}{started.stderr}\n{self.log()}")
        self._started = True
        self._waitForGreeting()

    def _waitForGreeting(self):
        # Postfix offers no readiness event: poll its port, tightly, with a deadline.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as probe:
                    if probe.recv(512).startswith(b"220"):
                        probe.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"postfix did not greet on {self.host}:{self.port}:\n{self.log()}")
            time.sleep(POLL)

    def stop(self):
        """
        Stop the instance, wait until its master process has gone, and
        remove its folder.
        """
        if not self._started:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        self._started = False
        pid = self._masterPid()
        self.postfix("stop", check=False)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while pid and _alive(pid):
            if time.monotonic() > deadline:
                self.postfix("abort", check=False)
                os.kill(pid, 9)
                break
            time.sleep(POLL)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _masterPid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def log(self):
        try:
            with open(self.logPath, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def _delivered(self):
        """
        @return: [(recipient, file path)] of every delivered copy, oldest first.
        """
        folder = os.path.join(self.maildirs, "all", "new")
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            recipient = self._recipientOf.get(name)
            path = os.path.join(folder, name)
            if recipient is None:
                with open(path, "rb") as handle:
                    head = handle.read(4096)
                match = re.search(rb"^Delivered-To: *(\S+)\r?$", head, re.M | re.I)
                recipient = match.group(1).decode().lower() if match else ""
                self._recipientOf[name] = recipient
            found.append((recipient, path))
        return found

    def messages(self, address=None):
        """
        @return: the bytes of each copy delivered to C{address} (to anyone
            if L{None}), oldest first.
        """
        address = address and address.lower()
        found = []
        for recipient, path in self._delivered():
            if address in (None, recipient):
                with open(path, "rb") as handle:
                    found.append(handle.read())
        return found

    def recipients(self):
        """
        @return: {address: number of copies delivered to it}.
        """
        counts = {}
        for recipient, _ in self._delivered():
            counts[recipient] = counts.get(recipient, 0) + 1
        return counts

    def waitForMessages(self, address=None, count=1, timeout=STARTUP_TIMEOUT):
        """
        Poll the Maildir until C{count} copies for C{address} (for anyone
        if L{None}) have arrived.

        @return: those messages.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(address)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{address or 'the peer'} has {len(found)} of {count} messages:\n"
                    + self.log()[-4000:]
                )
            time.sleep(POLL)

    def waitUntil(self, predicate, timeout=STARTUP_TIMEOUT, what="the condition"):
        """
        Poll L{recipients} until C{predicate(recipients())} is true.

        @return: the last L{recipients}.
        """
        deadline = time.monotonic() + timeout
        while True:
            counts = self.recipients()
            if predicate(counts):
                return counts
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the peer never met {what}: {sum(counts.values())} copies to "
                    f"{len(counts)} recipients\n" + self.log()[-4000:]
                )
            time.sleep(POLL * 5)

    def clear(self):
        """
        Forget every delivered message (between tests sharing one peer).
        """
        for _, path in self._delivered():
            os.unlink(path)
        self._recipientOf.clear()


def _alive(pid):
    # The master is a daemon, not our child; where nobody reaps it, a zombie is gone too.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def writeCertificate(ca, folder, *names):
    """
    Issue a certificate for C{names} from a C{trustme.CA} and write it as
    PEM files a peer can use (readable by root, which is who reads them).

    @return: (certificate chain path, private key path).
    """
    os.makedirs(folder, exist_ok=True)
    issued = ca.issue_cert(*names)
    stem = os.path.join(folder, names[0].replace("*", "_"))
    chain, key = stem + ".pem", stem + ".key"
    with open(chain, "wb") as handle:
        for blob in issued.cert_chain_pems:
            handle.write(blob.bytes())
    issued.private_key_pem.write_to_path(key)
    os.chmod(key, 0o600)
    return chain, key
