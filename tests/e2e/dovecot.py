"""
A private Dovecot LMTP server on loopback, as the mail store of end-to-end
tests of the Lmtp delivery agent.

Debian's dovecot-lmtpd package is installed, but the system's Dovecot is
neither configured nor started by these tests: each L{DovecotPeer} has its
own configuration file, base and state folders, log file, passwd-file and
Maildirs in a folder of its own, and runs C{dovecot -F -c <its file>} as a
child process.  Its LMTP service listens on 127.0.0.1 on a free port::

    peer = DovecotPeer({"alice@fabrikam.com": "Alice-Pa55"})
    peer.start()
    ... deliver over LMTP to 127.0.0.1:peer.port ...
    peer.waitForMessages("alice@fabrikam.com", 1)
    peer.stop()

Every user has a quota (Dovecot's quota plugin: a message that does not
fit is refused after DATA with 552 5.2.2), unlimited unless given.

Dovecot refuses to store mail as root (and as any uid or gid below
first_valid_uid/gid), so as root the Maildirs belong to C{nobody}; run by
another user, to that user.
"""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from tests.e2e.harness import freePort

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
STARTUP_TIMEOUT = 30
POLL = 0.02

CONFIGURATION = """\
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = lmtp
ssl = no
listen = 127.0.0.1
default_internal_user = {runner}
default_internal_group = {runnerGroup}
default_login_user = {runner}
mail_uid = {mailUser}
mail_gid = {mailGroup}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{folder}/mail/%u
mail_plugins = $mail_plugins quota
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {folder}/passwd
}}
userdb {{
  driver = passwd-file
  args = {folder}/passwd
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener {folder}/lmtp {{
    mode = 0600
  }}
}}
"""


class DovecotPeer:
    """
    A private Dovecot whose LMTP service knows the users it is given.

    @ivar port: its LMTP port on 127.0.0.1.
    @ivar passwd: its passwd-file (Dovecot's passdb and userdb): the users'
        ARGON2ID hashes, as C{doveadm pw} writes them.
    """

    def __init__(self, users, quotas=None):
        """
        @param users: {address: password} of the users it knows.
        @param quotas: {address: size}, e.g. C{"1K"}, for users whose
            mailbox may hold only that much (Dovecot's quota_rule).
        """
        if not os.path.exists(DOVECOT):
            pytest.skip("dovecot is not installed (apt-get install dovecot-lmtpd)")
        # A short path of its own: UNIX socket paths are limited to ~100 bytes.
        self.folder = tempfile.mkdtemp(prefix="exmta-dovecot-")
        os.chmod(self.folder, 0o755)
        self.port = freePort()
        runner = pwd.getpwuid(os.geteuid())
        mailUser = pwd.getpwnam("nobody") if runner.pw_uid == 0 else runner
        os.makedirs(os.path.join(self.folder, "mail"))
        os.chown(os.path.join(self.folder, "mail"), mailUser.pw_uid, mailUser.pw_gid)
        with open(os.path.join(self.folder, "dovecot.conf"), "w") as handle:
            handle.write(
                CONFIGURATION.format(
                    folder=self.folder,
                    port=self.port,
                    runner=runner.pw_name,
                    runnerGroup=grp.getgrgid(runner.pw_gid).gr_name,
                    mailUser=mailUser.pw_uid,
                    mailGroup=mailUser.pw_gid,
                )
            )
        self.passwd = os.path.join(self.folder, "passwd")
        quotas = quotas or {}
        lines = [
            f"{user}:{self._hash(password)}::::::"
            + (f"userdb_quota_rule=*:storage={quotas[user]}" if user in quotas else "")
            + "\n"
            for user, password in users.items()
        ]
        with open(self.passwd, "w") as handle:
            handle.writelines(lines)
        os.chmod(self.passwd, 0o640)
        self.process = None

    def _hash(self, password):
        return subprocess.run(
            [DOVEADM, "-c", os.path.join(self.folder, "dovecot.conf"), "pw", "-s", "ARGON2ID", "-p", password],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()

    @property
    def socketPath(self):
        return os.path.join(self.folder, "lmtp")

    def start(self):
        """
        Run Dovecot and return once its LMTP port takes connections.
        """
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", os.path.join(self.folder, "dovecot.conf")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode("utf-8", "replace")
                raise AssertionError(f"dovecot exited with {self.process.returncode}:\n{output}\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("dovecot's LMTP port never opened:\n" + self.log()) from None
                time.sleep(POLL)

    def stop(self):
        """
        Stop Dovecot (and every process it started) and wait for it.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.process.stdout.close()
        self.process = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.folder, "dovecot.log"), errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return "(no dovecot.log)"

    def messages(self, user):
        """
        @return: the bytes of each message in C{user}'s Maildir INBOX.
        """
        found = []
        for sub in ("new", "cur"):
            folder = os.path.join(self.folder, "mail", user, sub)
            if os.path.isdir(folder):
                for name in sorted(os.listdir(folder)):
                    with open(os.path.join(folder, name), "rb") as handle:
                        found.append(handle.read())
        return found

    def waitForMessages(self, user, count=1, timeout=STARTUP_TIMEOUT):
        """
        Poll C{user}'s Maildir until it holds C{count} messages.

        @return: those messages.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(user)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{user} has {len(found)} of {count} messages:\n" + self.log()[-4000:]
                )
            time.sleep(POLL)
