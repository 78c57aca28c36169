"""
Fuzzing over sockets (L{tests.e2e.fuzz}): a few hundred random and mutated
sessions against every kind of receive connector, in one process and
with two receive workers.  Every reply line must be well formed, no
traceback may reach the log, a fresh EHLO must be answered after each
session, and what was delivered must hold no NUL and no control character
in the lines the server wrote.  The long campaign is
C{campaigns/fuzz_sessions.py}.
"""

import os

import pytest

from tests.e2e import fuzz
from tests.e2e.harness import ServerProcess

SEED = 11
SESSIONS = 250


@pytest.mark.parametrize("workers", [0, 2], ids=["one process", "two receive workers"])
def test_fuzzedSessionsGetWellFormedReplies(tmp_path, workers):
    config, ports = fuzz.makeOrganization(str(tmp_path))
    server = ServerProcess(config, sockets=4, workers=workers)
    try:
        with fuzz.draining(server):
            stats = fuzz.campaign(ports, seed=SEED + workers, sessions=SESSIONS)
    finally:
        server.stop()
    assert fuzz.tracebacks("\n".join(server.output)) == []
    assert stats.sessions == SESSIONS and stats.replies > 10 * SESSIONS, stats
    assert stats.tlsSessions > 0 and stats.accepted > 0, stats
    assert fuzz.storedProblems(os.path.join(str(tmp_path), "var", "mailboxes")) == []
