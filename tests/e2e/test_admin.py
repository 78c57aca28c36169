"""
The queue cmdlets and configuration reloads against a live C{twistd exmta},
through C{exmta shell -c org.ini -Command '...'}: a send connector whose
smart host is down keeps mail retrying; the administrator looks at the
queue, suspends a message, exports it to a .eml and removes it; the
server takes org.ini changes on SIGHUP.
"""

import os
import signal
import smtplib
import socket
import stat
import subprocess
import sys

from tests.e2e.harness import REPOSITORY, ServerProcess, freePort, writeOrganization
from tests.e2e.sending import TIMEOUT, waitUntil

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
TransientFailureRetryInterval = 01:00:00

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Relay HubA]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.1

[ADPermission]
Identity = Relay HubA
User = NT AUTHORITY\\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

# The smart host is down: mail for other domains retries.
[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = 127.0.0.1:{down}
DNSRoutingEnabled = $false
"""


def shell(config, command, check=True):
    """
    Run one line of C{exmta shell}.

    @return: the CompletedProcess (output in C{stdout} and C{stderr}).
    """
    result = subprocess.run(
        [sys.executable, "-m", "exmta.cli", "shell", "-c", config, "-Command", command],
        capture_output=True, text=True, timeout=TIMEOUT,
        cwd=os.path.dirname(config), env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )
    if check:
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result


def send(port, sender, recipient, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.sendmail(sender, [recipient], f"Subject: {subject}\r\nMessage-ID: <{subject}@fabrikam.com>\r\n\r\nHello\r\n".encode())


def lines(text):
    return [line.split() for line in text.splitlines() if line.strip()]


def test_queueManagement(tmp_path):
    folder = str(tmp_path)
    port = freePort()
    config = writeOrganization(folder, ORGANIZATION.format(port=port, down=freePort()))
    server = ServerProcess(config, sockets=1)
    try:
        server.waitFor("admin endpoint on")
        socketPath = os.path.join(folder, "var", "queue", "admin.sock")
        assert stat.S_IMODE(os.lstat(socketPath).st_mode) == 0o600

        send(port, "kim@fabrikam.com", "lee@contoso.com", "first")
        send(port, "kim@fabrikam.com", "max@contoso.com", "second")
        # The first message's attempt puts the smart host in retry; the
        # second waits in its queue without an attempt of its own.
        server.waitFor("deferred")

        # Get-Queue shows the next hop's queue in Retry status.
        output = shell(config, "Get-Queue").stdout
        assert ["HubA\\ToInternetGateway", "SmartHostConnectorDelivery", "Retry", "2", "ToInternetGateway"] in lines(output), output
        output = shell(config, "Get-Queue HubA\\ToInternetGateway | Format-List").stdout
        assert "LastError        : 451 4.4.1 Unable to connect to" in output, output
        assert "NextRetryTime    : 2" in output, output

        output = shell(config, "Get-Message -Queue HubA\\ToInternetGateway | Format-Table Identity,Recipients -AutoSize").stdout
        identities = {row[1].strip("{}"): row[0] for row in lines(output)[2:]}
        assert set(identities) == {"lee@contoso.com", "max@contoso.com"}, output
        first = identities["lee@contoso.com"]

        # Export-Message needs the message suspended first.
        path = os.path.join(folder, "first.eml")
        refused = shell(config, f"Export-Message -Identity {first} -Path {path}", check=False)
        assert refused.returncode != 0
        assert "must be suspended" in refused.stderr
        shell(config, f"Suspend-Message -Identity {first}")
        output = shell(config, f"Get-Message {first}").stdout
        assert lines(output)[2][2] == "Suspended", output
        shell(config, f"Export-Message -Identity {first} | AssembleMessage -Path {path}")
        with open(path, "rb") as handle:
            exported = handle.read()
        assert b"Subject: first\r\n" in exported
        assert exported.endswith(b"\r\nHello\r\n")

        # Suspension is durable: a restart leaves it suspended.
        server.stop()
        server = ServerProcess(config, sockets=1)
        server.waitFor("admin endpoint on")
        output = shell(config, "Get-Message | Format-Table Identity,Status -AutoSize").stdout
        assert [first, "Suspended"] in lines(output), output

        # Remove-Message -WithNDR $false: gone, and the sender hears nothing.
        shell(config, f"Remove-Message -Identity {first} -WithNDR $false")
        output = shell(config, "Get-Message").stdout
        assert first not in output and identities["max@contoso.com"] in output
        assert not os.path.exists(os.path.join(folder, "var", "queue", "messages", first.rsplit("\\", 1)[1] + ".eml"))
        assert not os.path.isdir(os.path.join(folder, "var", "mailboxes", "kim@fabrikam.com"))

        # Get-MessageTrackingLog tells the story.
        output = shell(config, "Get-MessageTrackingLog -Recipients lee@contoso.com | Format-Table EventId,Source -AutoSize").stdout
        assert [row for row in lines(output)[2:]] == [
            ["SUBMIT", "SMTP"], ["RECEIVE", "SMTP"], ["DEFER", "SMTP"], ["FAIL", "ADMIN"]
        ], output
    finally:
        server.stop()

    # Without the server, the queue cmdlets say so and fail.
    result = shell(config, "Get-Queue", check=False)
    assert result.returncode != 0
    assert "Cannot reach TransportServer HubA: the server is not running" in result.stderr
    assert not os.path.exists(socketPath)


def test_reloadOnHangup(tmp_path):
    """
    SIGHUP: a new accepted domain and a new binding take effect with no
    restart; a change that fails validation is refused, the server keeps
    running as before and logs why.
    """
    folder = str(tmp_path)
    port, second = freePort(), freePort()
    text = ORGANIZATION.format(port=port, down=freePort()).replace(
        "[SendConnector ToInternetGateway]\nAddressSpaces = *", "[SendConnector ToInternetGateway]\nAddressSpaces = contoso.com"
    )
    config = writeOrganization(folder, text)
    server = ServerProcess(config, sockets=1)
    try:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", second)) != 0
        with open(config, "a") as handle:
            handle.write(
                "\n[AcceptedDomain tailspintoys.com]\n\n[Mailbox Lee]\nPrimarySmtpAddress = lee@tailspintoys.com\n"
                f"\n[ReceiveConnector Second HubA]\nUsage = Internet\nBindings = 127.0.0.1:{second}\n"
            )
        server.process.send_signal(signal.SIGHUP)
        server.waitFor("reloaded ")
        server.waitFor(f"listening on 127.0.0.1:{second}")
        send(second, "someone@example.com", "lee@tailspintoys.com", "after-reload")
        mailbox = os.path.join(folder, "var", "mailboxes", "lee@tailspintoys.com", "new")
        waitUntil(lambda: os.path.isdir(mailbox) and os.listdir(mailbox), "delivery after the reload", [server])

        with open(config, "a") as handle:
            handle.write("\n[AcceptedDomain wingtiptoys.com]\nDomainType = Sometimes\n")
        server.process.send_signal(signal.SIGHUP)
        server.waitFor("reload refused, running configuration kept")
        assert "[AcceptedDomain wingtiptoys.com] DomainType" in server.drain()
        assert server.process.poll() is None
        send(second, "someone@example.com", "lee@tailspintoys.com", "still-running")
        waitUntil(lambda: len(os.listdir(mailbox)) == 2, "delivery after the refused reload", [server])

        # The admin endpoint's reload says the same, with the text.
        result = subprocess.run(
            [sys.executable, "-c",
             "import sys\nfrom exmta.admin.client import AdminClient\nfrom exmta.admin.protocol import AdminError\n"
             f"try:\n    AdminClient({os.path.join(folder, 'var', 'queue', 'admin.sock')!r}).call('reload')\n"
             "except AdminError as error:\n    print(error.kind, error.message)\n"],
            capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ, PYTHONPATH=REPOSITORY),
        )
        assert result.stdout.startswith("ConfigError "), result
        assert "DomainType" in result.stdout
    finally:
        server.stop()
