"""
Tests for L{exmta.admin}'s socket (L{exmta.admin.server}), its protocol
(L{exmta.admin.protocol}) over a real UNIX socket and its client
(L{exmta.admin.client}), and configuration reloads of a server made by
L{exmta.service.makeService}.
"""

import json
import os
import shutil
import smtplib
import socket
import stat
import tempfile

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from exmta.admin.client import AdminClient, AdminUnavailable
from exmta.admin.commands import AdminCommands
from exmta.admin.protocol import AdminError, adminSocketPath
from exmta.admin.server import AdminService
from exmta.errors import ConfigError
from exmta.service import makeService
from tests.e2e.harness import freePort, writeOrganization
from tests.test_queue import temporaryFolder


# The socket


class SocketTests(TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder)
        self.path = os.path.join(self.folder, "queue", "admin.sock")
        self.reloads = []
        self.commands = AdminCommands(manager=None, reload=lambda: self.reloads.append(1) or {"ok": 1})

    def startAdmin(self, path=None):
        admin = AdminService(path or self.path, self.commands, reactor)
        admin.startService()
        self.addCleanup(lambda: admin.running and admin.stopService())
        return admin

    def test_mode(self):
        """
        The socket is mode 0600 and ours, in a folder of mode 0700.
        """
        self.startAdmin()
        info = os.lstat(self.path)
        self.assertTrue(stat.S_ISSOCK(info.st_mode))
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o600)
        self.assertEqual(info.st_uid, os.geteuid())
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.path)).st_mode), 0o700)

    def test_umaskDoesNotMatter(self):
        previous = os.umask(0)
        try:
            self.startAdmin()
        finally:
            os.umask(previous)
        self.assertEqual(stat.S_IMODE(os.lstat(self.path).st_mode), 0o600)
        self.assertEqual(os.umask(previous), previous)

    def test_otherUserIsRefused(self):
        """
        A process of another user cannot connect (run as root: the test
        forks a child that becomes nobody).
        """
        if os.geteuid() != 0:
            self.skipTest("needs root to run a process as another user")
        self.startAdmin()
        # Let nobody reach the socket itself: its mode alone must refuse.
        os.chmod(self.folder, 0o755)
        os.chmod(os.path.dirname(self.path), 0o755)
        child = os.fork()
        if child == 0:
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX) as connection:
                    connection.connect(self.path)
                code = 0
            except PermissionError:
                code = 3
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 3)

    def test_staleSocketReplaced(self):
        os.makedirs(os.path.dirname(self.path))
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(self.path)
        self.startAdmin()
        self.assertEqual(stat.S_IMODE(os.lstat(self.path).st_mode), 0o600)

    def test_otherFileRefused(self):
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "w") as handle:
            handle.write("keep me")
        admin = AdminService(self.path, self.commands, reactor)
        error = self.assertRaises(ConfigError, admin.startService)
        self.assertIn("is not a socket", str(error))
        with open(self.path) as handle:
            self.assertEqual(handle.read(), "keep me")
        self.assertFalse(admin.running)

    async def test_stopRemovesSocket(self):
        admin = self.startAdmin()
        await admin.stopService()
        self.assertFalse(os.path.exists(self.path))
        with self.assertRaises(AdminUnavailable) as caught:
            AdminClient(self.path).call("reload")
        self.assertIn("not running", str(caught.exception))

    async def test_longPath(self):
        """
        A path too long for a socket address is bound and reached through
        the folder's descriptor.
        """
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("needs /proc/self/fd")
        deep = os.path.join(self.folder, *(["d" * 40] * 3), "admin.sock")
        self.assertGreater(len(deep), 108)
        admin = self.startAdmin(deep)
        self.assertEqual(stat.S_IMODE(os.lstat(deep).st_mode), 0o600)
        result = await threads.deferToThread(AdminClient(deep).call, "reload")
        self.assertEqual(result, {"ok": 1})
        await admin.stopService()
        self.assertFalse(os.path.exists(deep))

    async def exchange(self, *lines):
        """
        Send raw request lines on one connection; read as many answers.
        """

        def talk():
            with socket.socket(socket.AF_UNIX) as connection:
                connection.settimeout(30)
                connection.connect(self.path)
                connection.sendall(b"".join(line + b"\n" for line in lines))
                data = b""
                while data.count(b"\n") < len(lines):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            return [json.loads(line) for line in data.splitlines()]

        return await threads.deferToThread(talk)

    async def test_protocol(self):
        """
        One JSON object a line each way; answers come in order; errors
        are classified; the connection carries on after one.
        """
        self.startAdmin()
        answers = await self.exchange(
            b'{"command": "reload"}',
            b"not json",
            b'{"command": "nothing"}',
            b'{"command": "reload", "arguments": {"force": true}}',
            b'["reload"]',
            b'{"command": "reload", "arguments": {}}',
        )
        self.assertEqual(answers[0], {"ok": True, "result": {"ok": 1}})
        self.assertEqual([a["error"]["kind"] for a in answers[1:5]], ["BadRequest"] * 4)
        self.assertIn("unknown command 'nothing'", answers[2]["error"]["message"])
        self.assertEqual(answers[5], {"ok": True, "result": {"ok": 1}})
        self.assertEqual(len(self.reloads), 2)

    async def test_clientRaisesRefusals(self):
        self.startAdmin()
        with self.assertRaises(AdminError) as caught:
            await threads.deferToThread(AdminClient(self.path).call, "nothing")
        self.assertEqual(caught.exception.kind, "BadRequest")


# Reloading a running server


ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
MessageRetryInterval = 00:00:01

[AcceptedDomain fabrikam.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}
"""


def smtp(port, *commands):
    """
    Open a session, send C{commands}, and return each reply code.
    """
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example")
        return [client.docmd(command)[0] for command in commands]


class ReloadTests(TestCase):
    def setUp(self):
        self.folder = temporaryFolder(self)
        self.port = freePort()
        self.text = ORGANIZATION.format(port=self.port)
        self.config = writeOrganization(self.folder, self.text)
        self.server = makeService(self.config, "HubA", reactor=reactor)
        self.server.startService()
        self.addCleanup(lambda: self.server.running and self.server.stopService())

    def rewrite(self, text):
        self.text = text
        with open(self.config, "w") as handle:
            handle.write(text)

    def inThread(self, function, *arguments):
        return threads.deferToThread(function, *arguments)

    async def test_newSessionsUseNewConfiguration(self):
        """
        After a reload, new sessions take mail for a domain added as an
        accepted domain; a session opened before the reload still works
        under the old configuration, to its end.
        """
        self.assertEqual(
            await self.inThread(smtp, self.port, "MAIL FROM:<a@example.com>", "RCPT TO:<lee@contoso.com>"),
            [250, 550],
        )
        old = await self.inThread(smtplib.SMTP, "127.0.0.1", self.port, "", 30)
        self.addCleanup(old.close)
        await self.inThread(old.ehlo, "before.example")
        self.rewrite(
            self.text + "\n[AcceptedDomain contoso.com]\n\n[Mailbox Lee]\nPrimarySmtpAddress = lee@contoso.com\n"
        )
        result = self.server.reload()
        self.assertEqual(result, {"Path": self.config, "RestartRequired": []})
        self.assertEqual(
            await self.inThread(smtp, self.port, "MAIL FROM:<a@example.com>", "RCPT TO:<lee@contoso.com>"),
            [250, 250],
        )
        self.assertEqual((await self.inThread(old.docmd, "MAIL FROM:<a@example.com>"))[0], 250)
        self.assertEqual((await self.inThread(old.docmd, "RCPT TO:<lee@contoso.com>"))[0], 550)
        # The queue routes by the new configuration too.
        await self.inThread(
            lambda: smtplib.SMTP("127.0.0.1", self.port, timeout=30).sendmail(
                "a@example.com", ["lee@contoso.com"], b"Subject: new\r\n\r\nhi\r\n"
            )
        )
        await self.queueIdle()
        mailbox = os.path.join(self.folder, "var", "HubA", "mailboxes", "lee@contoso.com", "new")
        self.assertEqual(len(os.listdir(mailbox)), 1)

    async def queueIdle(self):
        queue = self.server.getServiceNamed("queue")
        for _ in range(100):
            await queue.whenIdle()
            if not queue.spool.messages():
                return
            await deferLater(reactor, 0.05, lambda: None)

    async def test_invalidConfigurationRefused(self):
        """
        A configuration that fails validation is refused with the
        ConfigError's text, and the running one stays.
        """
        self.rewrite(self.text + "\n[AcceptedDomain contoso.com]\nDomainType = Sometimes\n")
        error = self.assertRaises(ConfigError, self.server.reload)
        self.assertIn("org.ini:", str(error))
        self.assertIn("[AcceptedDomain contoso.com] DomainType", str(error))
        self.assertEqual(
            await self.inThread(smtp, self.port, "MAIL FROM:<a@example.com>", "RCPT TO:<kim@fabrikam.com>", "RCPT TO:<x@contoso.com>"),
            [250, 250, 550],
        )
        admin = AdminClient(adminSocketPath(self.server.configuration.transportServer))
        with self.assertRaises(AdminError) as caught:
            await self.inThread(admin.call, "reload")
        self.assertEqual(caught.exception.kind, "ConfigError")
        self.assertEqual(caught.exception.message, str(error))

    async def test_bindingsFollow(self):
        """
        A binding added opens a socket; one removed closes it, with no
        restart.
        """
        other = freePort()
        self.rewrite(self.text + f"\n[ReceiveConnector Second]\nUsage = Internet\nBindings = 127.0.0.1:{other}\n")
        self.server.reload()
        self.assertEqual(await self.inThread(smtp, other, "NOOP"), [250])
        self.rewrite(ORGANIZATION.format(port=other))
        self.server.reload()
        await deferLater(reactor, 0, lambda: None)
        self.assertEqual(await self.inThread(smtp, other, "NOOP"), [250])
        with socket.socket() as probe:
            self.assertNotEqual(probe.connect_ex(("127.0.0.1", self.port)), 0)

    async def test_busyPortRefused(self):
        """
        A new binding that cannot be listened on refuses the reload, and
        nothing changes.
        """
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            self.rewrite(self.text + "\n[AcceptedDomain contoso.com]\n"
                         f"\n[ReceiveConnector Second]\nUsage = Internet\nBindings = 127.0.0.1:{taken}\n")
            error = self.assertRaises(ConfigError, self.server.reload)
            self.assertIn(f"cannot listen on 127.0.0.1:{taken}", str(error))
        self.assertEqual(
            await self.inThread(smtp, self.port, "MAIL FROM:<a@example.com>", "RCPT TO:<x@contoso.com>"),
            [250, 550],
        )

    def test_restartRequired(self):
        self.rewrite(self.text.replace("Fqdn = huba.fabrikam.com", "Fqdn = huba.fabrikam.com\nMailboxDatabasePath = elsewhere"))
        result = self.server.reload()
        self.assertEqual(result["RestartRequired"], ["MailboxDatabasePath"])


class AdminServiceInServerTests(TestCase):
    async def test_adminSocketBesideQueue(self):
        """
        makeService's server has its admin endpoint in its queue folder.
        """
        folder = temporaryFolder(self)
        config = writeOrganization(folder, ORGANIZATION.format(port=freePort()))
        server = makeService(config, "HubA", reactor=reactor)
        server.startService()
        self.addCleanup(lambda: server.running and server.stopService())
        path = os.path.join(folder, "var", "HubA", "queue", "admin.sock")
        self.assertEqual(adminSocketPath(server.configuration.transportServer), path)
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)
        rows = await threads.deferToThread(AdminClient(path).call, "getQueue")
        self.assertEqual([r["Identity"] for r in rows], ["HubA\\Submission"])
        await server.stopService()
        self.assertFalse(os.path.exists(path))
