"""
A graceful stop of C{twistd exmta} while its sends wait on a smart host
that accepts TCP connections and never says a word: the process exits on
SIGTERM without waiting for the send timeouts, and the messages stay
queued, deferred.
"""

import os
import smtplib
import socket
import subprocess
import threading

from tests.e2e.harness import ServerProcess, freePort, queuedMessages, writeOrganization
from tests.e2e.sending import TIMEOUT

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

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

[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = 127.0.0.1:{silent}
DNSRoutingEnabled = $false
"""

# The longest a stop may take before the test calls it hung: far below
# the send connector's ConnectionInactivityTimeOut (10 minutes), which
# is what a stop used to wait for.
HUNG = 60


class SilentHost:
    """
    Accepts connections on 127.0.0.1 and never answers.
    """

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)
            self.connected.set()

    def close(self):
        self.sock.close()
        for connection in self.accepted:
            connection.close()


def test_stopWhileSendsWaitOnASilentSmartHost(tmp_path):
    silent = SilentHost()
    folder = str(tmp_path)
    port = freePort()
    config = writeOrganization(folder, ORGANIZATION.format(port=port, silent=silent.port))
    server = ServerProcess(config, sockets=1)
    try:
        for number in range(3):
            with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
                client.sendmail(
                    "kim@fabrikam.com", [f"r{number}@contoso.com"],
                    f"Subject: {number}\r\n\r\nHello\r\n".encode(),
                )
        assert silent.connected.wait(TIMEOUT), server.drain()
        server.process.terminate()
        try:
            server.process.wait(HUNG)
        except subprocess.TimeoutExpired:
            raise AssertionError("twistd did not exit on SIGTERM:\n" + server.drain()) from None
        output = server.drain()
        # twistd ends itself with the SIGTERM it handled, after a clean stop.
        assert "Server Shut Down." in output, output
    finally:
        server.stop()
        silent.close()
    queued = queuedMessages(os.path.join(folder, "var", "queue"))
    recipients = sorted(r["address"] for envelope in queued.values() for r in envelope["recipients"])
    assert recipients == ["r0@contoso.com", "r1@contoso.com", "r2@contoso.com"], output
    for envelope in queued.values():
        for recipient in envelope["recipients"]:
            assert recipient["status"] == "Ready", envelope
