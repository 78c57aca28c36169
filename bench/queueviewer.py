"""
How long the console's Queue Viewer takes to show a page of a long queue.

Writes N messages (100,000 by default) into a queue folder in the spool's
format, all waiting in Retry for a smart host, starts ``twistd exmta`` on
it with the console, logs on over HTTPS and times, each several times:

  - the Queue Viewer's queues page (Get-Queue);
  - its first, middle and last page of 50 messages (Get-Message
    -ResultSize 50 -BookmarkIndex N -ReturnPageInfo $true);
  - a filtered page (From address), which makes every row on the server;
  - the Dashboard.

Run from the checkout, with the Python of a venv where exmta is installed
(no root needed; nothing leaves loopback)::

    .venv/bin/python bench/queueviewer.py [--messages 100000] [--rounds 5]

Prints a reStructuredText table of median and worst times (ms).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from urllib.parse import urlencode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exmta.envelope import QueuedMessage, QueuedRecipient  # noqa: E402
from exmta.queue.spool import encodeQueued  # noqa: E402
from tests.e2e.harness import ServerProcess, freePort, writeOrganization  # noqa: E402

PASSWORD = "Bench-Pa55word!"

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
TransientFailureRetryInterval = 01:00:00

[EcpVirtualDirectory HubA]
InternalUrl = https://127.0.0.1:{console}/ecp/
OrganizationManagement = administrator@fabrikam.com

[AcceptedDomain fabrikam.com]

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:{smtp}
RemoteIPRanges = 127.0.0.1

[SendConnector ToInternet]
AddressSpaces = *
SmartHosts = 127.0.0.1:{closed}
DNSRoutingEnabled = $false
"""


def fillQueue(folder, count):
    """
    Write C{count} messages waiting in Retry for ToInternet, the way the
    spool writes them (its format is a documented contract).
    """
    messages = os.path.join(folder, "messages")
    os.makedirs(messages, mode=0o700)
    now = time.time()
    for number in range(count):
        queueId = f"{0x0660000000000000 + number:016X}{number:08X}"
        body = (
            f"Message-ID: <{number}@fabrikam.com>\r\nSubject: Report {number}\r\n"
            f"From: sender{number % 100}@fabrikam.com\r\n\r\nFigures.\r\n"
        ).encode()
        queued = QueuedMessage(
            queueId=queueId,
            mailFrom=f"sender{number % 100}@fabrikam.com",
            recipients=(
                QueuedRecipient(
                    f"rcpt{number}@contoso.com",
                    lastError="451 4.4.1 Unable to connect",
                    attempts=1,
                    nextRetryTime=now + 3600,
                    nextHop="ToInternet",
                ),
            ),
            # Arrived in the last minute: no delay notification is due.
            arrivalTime=now - 60 + number * 60 / count,
            size=len(body),
            receivedFrom={"connector": "Default HubA", "server": "HubA", "peerHost": "127.0.0.1",
                          "peerPort": 1025},
            categorized=True,
        )
        with open(os.path.join(messages, queueId + ".eml"), "wb") as handle:
            handle.write(body)
        with open(os.path.join(messages, queueId + ".json"), "wb") as handle:
            handle.write(encodeQueued(queued))


class Browser:
    """
    A logged-on console session over HTTPS, with the server's certificate
    unchecked (it is made for the test).
    """

    def __init__(self, port):
        self.port = port
        self.context = ssl._create_unverified_context()
        self.cookies = {}

    def request(self, method, path, fields=None):
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context,
                                                 timeout=600)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if fields is not None:
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        for header in answer.headers.get_all("Set-Cookie") or ():
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        connection.close()
        return answer.status, data.decode("utf-8", "replace")

    def logOn(self):
        _, form = self.request("GET", "/ecp/logon")
        token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        status, _ = self.request(
            "POST", "/ecp/logon",
            {"csrf": token, "username": "administrator@fabrikam.com", "password": PASSWORD},
        )
        assert status == 303, status


def timed(browser, path, rounds, expect):
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        status, page = browser.request("GET", path)
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200 and expect in page, (status, path, page[-2000:])
    return statistics.median(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tmp", default=None)
    options = parser.parse_args()
    folder = tempfile.mkdtemp(dir=options.tmp)
    server = None
    try:
        console = freePort()
        config = writeOrganization(
            folder,
            ORGANIZATION.format(console=console, smtp=freePort(), closed=freePort()),
            accounts=[("administrator@fabrikam.com", PASSWORD)],
        )
        started = time.perf_counter()
        fillQueue(os.path.join(folder, "var", "queue"), options.messages)
        print(f"wrote {options.messages:,} messages in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        started = time.perf_counter()
        server = ServerProcess(config, sockets=2)
        print(f"server started in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        # A server whose log pipe is full stops at its next line: keep reading it.
        reading = threading.Event()
        reading.set()

        def drain():
            while reading.is_set():
                server._readSome(0.2)
                del server.output[:-100]

        threading.Thread(target=drain, daemon=True).start()
        browser = Browser(console)
        browser.logOn()
        total = options.messages
        last = ((total - 1) // 50) * 50 + 1
        middle = (total // 100) * 50 + 1
        targets = [
            ("Queues (Get-Queue)", "/ecp/queueviewer", "HubA\\ToInternet"),
            ("Messages, first page", "/ecp/queueviewer/messages", f"of {total:,}"),
            ("Messages, middle page", f"/ecp/queueviewer/messages?start={middle}", f"of {total:,}"),
            ("Messages, last page", f"/ecp/queueviewer/messages?start={last}", f"of {total:,}"),
            ("Messages of one queue", "/ecp/queueviewer/messages?queue=HubA%5CToInternet",
             f"of {total:,}"),
            ("Filtered (From address)",
             "/ecp/queueviewer/messages?from=sender7%40fabrikam.com", "Messages 1-"),
            ("Dashboard", "/ecp/", "HubA:queued"),
        ]
        rows = []
        for label, path, expect in targets:
            median, worst = timed(browser, path, options.rounds, expect)
            rows.append((label, f"{median:.0f}", f"{worst:.0f}"))
            print(f"{label}: median {median:.0f} ms, worst {worst:.0f} ms", file=sys.stderr)
        status, live = browser.request("GET", "/ecp/queueviewer.json")
        assert json.loads(live)["MessageCount:HubA\\ToInternet"] == str(total), live
        width = max(len(label) for label, _, _ in rows)
        line = "=" * width + " ========== =========="
        print(f"Queue Viewer with {total:,} queued messages, {options.rounds} rounds (ms)\n")
        print(line)
        print(f"{'Page':<{width}} {'median':>10} {'worst':>10}")
        print(line)
        for label, median, worst in rows:
            print(f"{label:<{width}} {median:>10} {worst:>10}")
        print(line)
    except BaseException:
        if server is not None:
            print("\n".join(server.output[-30:]), file=sys.stderr)
        raise
    finally:
        if server is not None:
            reading.clear()
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
