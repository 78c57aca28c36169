"""
Crash safety of the queue manager: a process that receives and delivers
mail at once is killed with SIGKILL at arbitrary points, again and again;
after a final run nothing any accepted message was owed is missing.
"""

import email
import email.policy
import os
import signal
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.test_queue import ROOT, temporaryFolder

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Bob]
PrimarySmtpAddress = bob@fabrikam.com

[Mailbox Alice]
PrimarySmtpAddress = alice@fabrikam.com
"""

# argv: folder, "run" (enqueue while delivering, forever) or "drain"
# (deliver until the queue is empty, then exit).
#
# Each message N goes to ok-N@example.org (taken by the next hop),
# slow-N@example.org (refused with 451 at its first attempt),
# rejected-N@example.org (refused with 550: a DSN to alice, a local
# mailbox) and bob@fabrikam.com (a local mailbox).  The fake next hop
# records what it takes durably in remote.log before it answers, as a
# real server does before its 250.
SCRIPT = """
import os, sys
from dataclasses import replace
from twisted.internet import defer, reactor, task
from zope.interface import implementer
from exmta.config import loadOrganization
from exmta.deliver import MaildirDeliveryAgent
from exmta.envelope import Address, Envelope, NextHop, Session
from exmta.errors import PermanentFailure, TransientFailure
from exmta.interfaces import IRemoteDelivery
from exmta.queue.manager import QueueManager
from exmta.queue.spool import Spool
from exmta.routing import Resolver

folder, mode = sys.argv[1], sys.argv[2]
organization = loadOrganization(os.path.join(folder, "org.ini"))
server = replace(organization.transportServers["HubA"], messageRetryInterval=0.01)
spool = Spool.open(os.path.join(folder, "queue"), reactor)
hop = NextHop("SmartHostConnectorDelivery", "ToInternet")


def failed(reason):
    sys.stderr.write(reason.getTraceback())
    os._exit(1)


@implementer(IRemoteDelivery)
class Remote:
    def close(self):
        return defer.succeed(None)

    def send(self, nextHop, queued, recipients, message):
        number = message.split(b"\\r\\n", 1)[0].split()[1].decode()
        attempts = {r.address: r.attempts for r in queued.recipients}
        outcomes, taken = {}, []
        for address in recipients:
            if address.startswith("rejected-"):
                outcomes[address] = PermanentFailure.of(550, "5.1.1", "No such user")
            elif address.startswith("slow-") and attempts[address] == 0:
                outcomes[address] = TransientFailure.of(451, "4.3.0", "Try again")
            else:
                outcomes[address] = None
                taken.append(f"{number} {address}\\n")
        if taken:
            descriptor = os.open(os.path.join(folder, "remote.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(descriptor, "".join(taken).encode())
            os.fsync(descriptor)
            os.close(descriptor)
        return task.deferLater(reactor, 0, lambda: outcomes)


manager = QueueManager(
    spool, Resolver(organization), MaildirDeliveryAgent(os.path.join(folder, "mailboxes"), reactor),
    reactor, server=server, postmaster="postmaster@fabrikam.com",
    route=lambda address: hop, remoteDelivery=Remote(),
)
manager.startService()
counter = iter(range(int(sys.argv[3]), 10**9))
session = Session("Default HubA", "HubA", "127.0.0.1", 25, "192.0.2.7", 50123)


def enqueued(queueId, number):
    sys.stdout.write(f"{number} {queueId}\\n")
    sys.stdout.flush()
    enqueueNext()


def enqueueNext():
    number = next(counter)
    recipients = tuple(
        Address(f"{kind}-{number}", "example.org") for kind in ("ok", "slow", "rejected")
    ) + (Address("bob", "fabrikam.com"),)
    envelope = Envelope(Address("alice", "fabrikam.com"), recipients)
    message = b"Subject: %d\\r\\nMessage-ID: <%d@fabrikam.com>\\r\\n\\r\\n" % (number, number) + b"line\\r\\n" * 200
    spool.enqueue(envelope, session, message).addCallback(enqueued, number).addErrback(failed)


def drained():
    if not spool.messages():
        sys.stdout.write("drained\\n")
        sys.stdout.flush()
        reactor.stop()


if mode == "run":
    for _ in range(4):
        enqueueNext()
else:
    task.LoopingCall(drained).start(0.05)
reactor.run()
"""


def mailbox(folder):
    new = os.path.join(folder, "new")
    contents = []
    for name in sorted(os.listdir(new)) if os.path.isdir(new) else ():
        with open(os.path.join(new, name), "rb") as handle:
            contents.append(handle.read())
    return contents


class CrashTests(SynchronousTestCase):
    def start(self, mode, first=0):
        process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, self.folder, mode, str(first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
        self.addCleanup(process.stderr.close)
        self.addCleanup(process.stdout.close)
        return process

    def test_killed(self):
        """
        Kill the process with SIGKILL after it has accepted some messages
        (while it is delivering others), several times, then let a last run
        empty the queue: every recipient of every accepted message reached
        the next hop or its mailbox at least once, and every refused one
        was reported to the sender, at least once.
        """
        self.folder = temporaryFolder(self)
        with open(os.path.join(self.folder, "org.ini"), "w") as handle:
            handle.write(ORGANIZATION)
        accepted = set()
        for stopAfter in (7, 40, 23, 60):
            process = self.start("run", first=len(accepted) and max(accepted) + 1)
            for _ in range(stopAfter):
                line = process.stdout.readline()
                if not line:
                    process.wait()
                    self.fail(process.stderr.read().decode())
                accepted.add(int(line.split()[0]))
            process.send_signal(signal.SIGKILL)
            process.wait()
            self.assertEqual(process.returncode, -signal.SIGKILL)

        process = self.start("drain")
        try:
            output, errors = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            output, errors = process.communicate()
            self.fail(f"the queue did not drain:\n{errors.decode()}")
        self.assertEqual(output.strip().splitlines()[-1:], [b"drained"], errors.decode())

        with open(os.path.join(self.folder, "remote.log")) as handle:
            taken = {tuple(line.split()) for line in handle}
        delivered = {
            int(stored.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0])
            for stored in mailbox(os.path.join(self.folder, "mailboxes", "bob@fabrikam.com"))
        }
        reported = set()
        for stored in mailbox(os.path.join(self.folder, "mailboxes", "alice@fabrikam.com")):
            report = email.message_from_bytes(stored, policy=email.policy.default)
            self.assertEqual(report.get_content_type(), "multipart/report")
            _, status, _ = report.iter_parts()
            for recipient in status.get_payload()[1:]:
                self.assertEqual(recipient["Status"], "5.1.1")
                reported.add(recipient["Final-Recipient"].removeprefix("rfc822; "))

        for number in accepted:
            self.assertIn((str(number), f"ok-{number}@example.org"), taken)
            self.assertIn((str(number), f"slow-{number}@example.org"), taken)
            self.assertIn(number, delivered)
            self.assertIn(f"rejected-{number}@example.org", reported)
        self.assertEqual(os.listdir(os.path.join(self.folder, "queue", "messages")), [])
        self.assertGreaterEqual(len(accepted), 100)
