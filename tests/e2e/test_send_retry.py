"""
A smart host that is down, over real sockets: a next hop in retry
(Exchange's queue C{Retry} status) gets one connection attempt, and the
server one warning, per retry interval, not one per message received;
the messages that arrive meanwhile wait in its queue, which Get-Queue shows
in C{Retry} with the last error; once the smart host is back, Retry-Queue
or the retry timer delivers them all.
"""

import os
import smtplib
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.harness import REPOSITORY, ServerProcess, freePort, writeOrganization
from tests.e2e.sending import TIMEOUT, waitUntil
from tests.e2e.sink import SmtpSink

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
TransientFailureRetryInterval = {interval}

[AcceptedDomain fabrikam.com]

[ReceiveConnector Relay HubA]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.1

[ADPermission]
Identity = Relay HubA
User = NT AUTHORITY\\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

[SendConnector ToSmartHost]
AddressSpaces = *
SmartHosts = 127.0.0.1:{smartHost}
DNSRoutingEnabled = $false
"""

MESSAGES = 1000
CLIENTS = 10
# One attempt and its warnings per retry interval: a few more would still
# be "a handful"; one per message is what this guards against.
HANDFUL = 5


class ClosingSmartHost:
    """
    A smart host that takes each connection and closes it at once, before
    any greeting, counting them: every connection attempt is seen.
    """

    def __init__(self, port=0):
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def stop(self):
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(TIMEOUT)


def submitAll(server, port, count, clients=CLIENTS):
    """
    Submit C{count} messages to C{port} over C{clients} concurrent
    sessions, each sending its share one after another, reading the
    server's log meanwhile (a server whose log pipe is full stops).
    """

    def client(number):
        with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
            for index in range(number, count, clients):
                smtp.sendmail(
                    "kim@fabrikam.com", [f"user{index}@contoso.com"],
                    f"Subject: m{index}\r\nMessage-ID: <m{index}@fabrikam.com>\r\n\r\nHello\r\n".encode(),
                )

    with ThreadPoolExecutor(clients) as pool:
        running = [pool.submit(client, number) for number in range(clients)]
        waitUntil(lambda: all(done.done() for done in running), "the clients", [server], timeout=120)
        for done in running:
            done.result()


def shell(config, command):
    result = subprocess.run(
        [sys.executable, "-m", "exmta.cli", "shell", "-c", config, "-Command", command],
        capture_output=True, text=True, timeout=TIMEOUT,
        cwd=os.path.dirname(config), env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result.stdout


def logged(server, text):
    server.drain()
    return sum(text in line for line in server.output)


def queued(folder):
    try:
        return sum(name.endswith(".json") for name in os.listdir(os.path.join(folder, "var", "queue", "messages")))
    except FileNotFoundError:
        return 0


def start(folder, smartHost, interval):
    port = freePort()
    config = writeOrganization(
        str(folder), ORGANIZATION.format(port=port, smartHost=smartHost, interval=interval)
    )
    return config, port, ServerProcess(config, sockets=1)


def test_aClosingSmartHostGetsAHandfulOfAttemptsThenRetryQueueDelivers(tmp_path):
    down = ClosingSmartHost()
    config, port, server = start(tmp_path, down.port, "01:00:00")
    sink = None
    try:
        submitAll(server, port, MESSAGES)
        assert queued(tmp_path) == MESSAGES
        server.drain()
        assert 1 <= down.connections <= HANDFUL, down.connections
        deferrals = logged(server, "] deferred ")
        assert 1 <= deferrals <= HANDFUL, deferrals
        assert logged(server, " failed for ToSmartHost") <= HANDFUL
        listing = shell(config, "Get-Queue HubA\\ToSmartHost | Format-List")
        fields = dict(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in listing.splitlines())
            if value
        )
        assert fields["Status"] == "Retry", listing
        assert fields["MessageCount"] == str(MESSAGES), listing
        assert fields["LastError"].startswith("451 4.4.2 Lost the connection"), listing
        assert logged(server, "] deferred ") == deferrals

        down.stop()
        sink = SmtpSink(port=down.port)
        shell(config, "Retry-Queue -Identity HubA\\ToSmartHost")
        waitUntil(lambda: len(sink.messages) >= MESSAGES and queued(tmp_path) == 0,
                  "delivery of every message", [server], timeout=120)
        delivered = {recipient for message in sink.messages for recipient in message.recipients}
        assert delivered == {f"user{index}@contoso.com" for index in range(MESSAGES)}
    finally:
        server.stop()
        down.stop() if sink is None else sink.stop()


def test_aRefusingSmartHostIsRetriedByTheTimerOnceBack(tmp_path):
    # A port bound then closed: connections to it are refused.
    smartHost = freePort()
    config, port, server = start(tmp_path, smartHost, "00:00:02")
    sink = None
    try:
        submitAll(server, port, 200)
        waitUntil(lambda: logged(server, " failed for ToSmartHost"), "an attempt", [server])
        sink = SmtpSink(port=smartHost)
        waitUntil(lambda: len(sink.messages) >= 200 and queued(tmp_path) == 0,
                  "delivery of every message", [server], timeout=120)
    finally:
        server.stop()
        if sink is not None:
            sink.stop()
