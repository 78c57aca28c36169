"""
Scripts from Exchange administrators' everyday work, run as written by
C{exmta shell -c org.ini -File script.ps1} against a running C{twistd
exmta}: raise every Receive connector's size limit with ForEach-Object,
look at the queues of every transport server with foreach, export the
last hour's message tracking to CSV and read it back; and the errors such
scripts meet, in PowerShell's shape.
"""

import csv
import datetime
import os
import smtplib
import subprocess
import sys

from exmta.config import loadOrganization
from tests.e2e.harness import REPOSITORY, ServerProcess, freePort, maildirMessages, writeOrganization
from tests.e2e.sending import TIMEOUT, waitUntil

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

# A second server, not running here.
[TransportServer HubB]
Fqdn = hubb.fabrikam.com
QueueDatabasePath = var/queueB
MailboxDatabasePath = var/mailboxesB

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Internet HubA]
Server = HubA
Usage = Internet
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.1

[ReceiveConnector Client HubA]
Server = HubA
Usage = Client
Bindings = 127.0.0.1:{other}
RemoteIPRanges = 127.0.0.1
"""

SCRIPT = """\
# Raise the size limit of every Receive connector.
Get-ReceiveConnector | ForEach-Object { Set-ReceiveConnector $_.Identity -MaxMessageSize 25MB }

# The queues of every transport server.
foreach ($s in Get-TransportServer) {
    Write-Output "== $($s.Name)"
    Get-Queue -Server $s.Name | Select-Object -ExpandProperty Identity
}

# What happened in the last hour, to CSV.
Get-MessageTrackingLog -Server HubA -Start (Get-Date).AddHours(-1) | Export-Csv track.csv -NoTypeInformation
$rows = Import-Csv track.csv
$received = @($rows | Where-Object { $_.EventId -eq "RECEIVE" })
"received: $($received.Count) from $(($received | Select-Object -First 1).Sender)"
"next hour: $((Get-MessageTrackingLog -Server HubA -Start (Get-Date).AddHours(1) | Measure-Object).Count)"
"""


def shell(folder, script, name="script.ps1"):
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write(script)
    return subprocess.run(
        [sys.executable, "-m", "exmta.cli", "shell", "-c", os.path.join(folder, "org.ini"), "-File", name],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=folder,
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )


def send(port, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.sendmail(
            "lee@contoso.com", ["kim@fabrikam.com"],
            f"Subject: {subject}\r\nMessage-ID: <{subject}@contoso.com>\r\n\r\nHello\r\n".encode(),
        )


def test_everydayScripts(tmp_path):
    folder = str(tmp_path)
    port = freePort()
    config = writeOrganization(folder, ORGANIZATION.format(port=port, other=freePort()))
    server = ServerProcess(config, sockets=2, server="HubA")
    try:
        server.waitFor("admin endpoint on")
        started = datetime.datetime.now().replace(microsecond=0)
        send(port, "first")
        send(port, "second")
        mailbox = os.path.join(folder, "var", "mailboxes", "kim@fabrikam.com")
        waitUntil(lambda: len(maildirMessages(mailbox)) == 2, "two deliveries", [server])

        result = shell(folder, SCRIPT)
        server.drain()
    finally:
        server.stop()
    # HubB does not run: its Get-Queue fails, the loop and the script go on.
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines()[:2] == [
        "Get-Queue : Cannot reach TransportServer HubB: the server is not running (nothing answers at "
        f"{os.path.join(folder, 'var', 'queueB', 'admin.sock')}). Start it with: twistd exmta -c "
        f"{config} --server HubB",
        "At script.ps1:7 char:5",
    ], result.stderr
    assert len(result.stderr.splitlines()) == 4, result.stderr
    output = result.stdout.splitlines()
    assert output[0] == "== HubA"
    assert output[output.index("== HubB") + 1 :] == ["received: 2 from lee@contoso.com", "next hour: 0"]

    # Every connector took the new limit.
    organization = loadOrganization(config)
    assert [c.maxMessageSize for c in organization.receiveConnectors] == [25 * 1048576] * 2

    # The CSV is PowerShell's: every field quoted, no #TYPE line, dates as
    # en-US writes them, lists as their type's name.
    with open(os.path.join(folder, "track.csv"), newline="") as handle:
        text = handle.read()
    assert text.startswith('"Timestamp","EventId","Source","Sender","Recipients",')
    rows = list(csv.DictReader(text.splitlines()))
    received = [row for row in rows if row["EventId"] == "RECEIVE"]
    assert [row["MessageId"] for row in received] == ["<first@contoso.com>", "<second@contoso.com>"]
    assert {row["Recipients"] for row in received} == {"System.String[]"}
    stamp = datetime.datetime.strptime(received[0]["Timestamp"], "%m/%d/%Y %I:%M:%S %p")
    assert started <= stamp <= datetime.datetime.now()


ERRORS = """\
function Set-Limit($Name, $Size) {
    Set-ReceiveConnector $Name -MaxMessageSize $Size -Frob 1
}
Set-Limit "Client HubA" 20MB
try {
    Get-ReceiveConnector "Nope" -ErrorAction Stop
} catch {
    Write-Output "caught: $($_.Exception.Message)"
}
Get-ReceiveConnector "Nope"
"went on: $?"
if ((Get-ReceiveConnector).Count -gt 1 {
"""


def test_errorsInPowerShellsShape(tmp_path):
    folder = str(tmp_path)
    writeOrganization(folder, ORGANIZATION.format(port=freePort(), other=freePort()))
    # A script that does not parse does not run at all.
    result = shell(folder, ERRORS, "errors.ps1")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "At errors.ps1:12 char:40",
        "+ if ((Get-ReceiveConnector).Count -gt 1 {",
        "+                                        ~",
        "Unexpected token '{' in expression or statement.",
    ]
    result = shell(folder, ERRORS.replace("-gt 1 {", "-gt 1) { 'two' }"), "errors.ps1")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "caught: The operation couldn't be performed because object 'Nope' couldn't be found in "
        f"{os.path.join(folder, 'org.ini')}.",
        "went on: False",
        "two",
    ]
    errors = result.stderr.splitlines()
    assert errors[:4] == [
        "Set-ReceiveConnector : A parameter cannot be found that matches parameter name 'Frob'.",
        "At errors.ps1:2 char:54",
        "+     Set-ReceiveConnector $Name -MaxMessageSize $Size -Frob 1",
        "+ " + " " * 53 + "~~~~~",
    ]
    assert errors[4:6] == [
        "Get-ReceiveConnector : The operation couldn't be performed because object 'Nope' couldn't "
        f"be found in {os.path.join(folder, 'org.ini')}.",
        "At errors.ps1:10 char:1",
    ]
    # The binding failed before anything changed.
    assert loadOrganization(os.path.join(folder, "org.ini")).receiveConnectors[1].maxMessageSize == 10485760
