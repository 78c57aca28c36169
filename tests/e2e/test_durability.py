"""
Mail is never lost: every message that got its 250 survives a kill -9 of the
server and is found in the queue or a mailbox after a restart.
"""

import os
import re
import smtplib

import pytest

from tests.e2e.conftest import RunningOrganization, makeOrganization
from tests.e2e.harness import ServerProcess, awaitEnded, maildirMessages, queuedMessages

BATCH = 40


@pytest.mark.parametrize("workers", [0, 2], ids=["one process", "two receive workers"])
def test_killNineLosesNoAcceptedMessage(tmp_path, workers):
    """
    With workers the kill is of the main process; its workers end with it,
    their messages in their spool parts, which the restart (without
    workers) adopts before it reads the queue.
    """
    folder = str(tmp_path)
    running = RunningOrganization(folder, workers=workers)
    config, ports, server = running.config, running.ports, running.server
    accepted = []
    pids = []
    try:
        with smtplib.SMTP("127.0.0.4", ports["relay"], timeout=30,
                          source_address=("127.0.5.77", 0)) as smtp:
            smtp.ehlo()
            for number in range(BATCH):
                # Half stay queued (remote), half go to a mailbox (local).
                recipient = "kim@fabrikam.com" if number % 2 else f"r{number}@contoso.com"
                body = f"Subject: durable {number}\r\nX-Serial: {number}\r\n\r\nbody\r\n".encode()
                assert smtp.mail("a@contoso.com")[0] == 250
                assert smtp.rcpt(recipient)[0] == 250
                code, text = smtp.data(body)
                assert code == 250, text
                accepted.append((number, re.search(rb"<([0-9A-F]+)@", text).group(1).decode()))
            pids = server.workerPids()
            assert len(pids) == workers
            server.kill()
    finally:
        if server.process.poll() is None:
            server.kill()
    awaitEnded(pids)

    restarted = ServerProcess(config, sockets=3)
    try:
        queue = os.path.join(folder, "var", "queue")
        # Local mail still queued at the kill is delivered after the restart.
        for number, queueId in accepted:
            if number % 2 and queueId in queuedMessages(queue):
                restarted.waitFor(f"delivered {queueId}")
        restarted.drain()
        queued = queuedMessages(queue)
        delivered = b"".join(maildirMessages(os.path.join(folder, "var", "mailboxes", "kim@fabrikam.com")))
        for number, queueId in accepted:
            if number % 2:
                assert f"X-Serial: {number}\r\n".encode() in delivered, number
            else:
                assert queueId in queued, number
                assert queued[queueId]["recipients"][0]["address"] == f"r{number}@contoso.com"
                with open(os.path.join(queue, "messages", queueId + ".eml"), "rb") as handle:
                    assert f"X-Serial: {number}\r\n".encode() in handle.read()
    finally:
        restarted.stop()


def test_disconnectMidDataLeavesNothing(tmp_path):
    from tests.e2e.harness import RawClient

    folder = str(tmp_path)
    config, ports = makeOrganization(folder)
    server = ServerProcess(config, sockets=3)
    try:
        raw = RawClient("127.0.0.4", ports["relay"], source="127.0.5.77")
        raw.reply()
        raw.command("EHLO gateway")
        raw.command("MAIL FROM:<a@contoso.com>")
        raw.command("RCPT TO:<b@contoso.com>")
        assert raw.command("DATA")[0] == 354
        raw.send(b"Subject: half\r\n\r\nthe rest never comes")
        raw.close()
        server.waitFor("disconnected")
        assert queuedMessages(os.path.join(folder, "var", "queue")) == {}
        assert os.listdir(os.path.join(folder, "var", "queue", "tmp")) == []
    finally:
        server.stop()
