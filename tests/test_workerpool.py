"""
Tests for L{exmta.receive.workerpool}'s view of its workers' spool parts;
the processes themselves are tested for real in tests/e2e/test_workers.py
and tests/e2e/test_parts.py.
"""

import os
from types import SimpleNamespace

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from exmta.receive.workerpool import WorkerPool


class PartAdminSocketsTests(SynchronousTestCase):
    def test_theReadyWorkersParts(self):
        """
        The admin sockets of the parts of the workers that said they are
        ready, draining ones included (they still hold and send messages),
        named by their rows in the queue folder's C{parts/}.
        """
        organization = SimpleNamespace(path="/etc/exmta/org.ini", text="")
        spool = SimpleNamespace(path="/var/queue")
        pool = WorkerPool(2, None, spool, None, organization, "HubA", MemoryReactorClock())
        self.addCleanup(pool._closeSnapshot)
        pool.workers = [
            SimpleNamespace(row=1, ready=True, draining=True),
            SimpleNamespace(row=2, ready=False, draining=False),
            SimpleNamespace(row=11, ready=True, draining=False),
        ]
        self.assertEqual(
            pool.partAdminSockets(),
            [
                os.path.join("/var/queue", "parts", "01", "admin.sock"),
                os.path.join("/var/queue", "parts", "0B", "admin.sock"),
            ],
        )
