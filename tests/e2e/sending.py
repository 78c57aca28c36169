"""
The parts of the send-side end-to-end tests (test_send.py): the two
organizations and their org.ini text, the peers' settings, and helpers that
read what servers and peers logged or received.

  - L{Gateway}: the external SMTP gateway of the reference document's
    set-ups (i) and (ii), an exmta owning contoso.com.
  - L{Organization}: the sending organization fabrikam.com, one
    C{twistd exmta --server NAME} per transport server; tests submit to it
    on an externally secured connector, from 127.0.0.1.
  - L{ZONE}: the test DNS server's names (tests/e2e/dns.py), which the
    sending servers use as their InternalDNSServers.
  - L{REFUSALS}: what the Postfix smart host (tests/e2e/postfix.py) refuses.
"""

import csv
import glob
import json
import os
import re
import smtplib
import subprocess
import sys
import time

from tests.e2e.harness import (
    REPOSITORY,
    ServerProcess,
    freePort,
    maildirMessages,
    writeOrganization,
)

GATEWAY_ACCOUNT = "hub@contoso.com"
GATEWAY_PASSWORD = "Gateway-Pa55word!"
SENDER = "kim@fabrikam.com"
# Retries are every second here: 30 s is ample for any event.
TIMEOUT = 30
POLL = 0.02

ZONE = {
    "smtpgateway1.contoso.com": {"A": ["127.0.0.1"]},
    "smtpgateway2.contoso.com": {"A": ["127.0.0.1"]},
    # The same address as smtpgateway1, but not the name on its certificate.
    "mismatch.contoso.com": {"A": ["127.0.0.1"]},
    # Nothing listens on 127.0.0.2.
    "down.contoso.com": {"A": ["127.0.0.2"]},
    "ipv6.contoso.com": {"AAAA": ["::1"]},
    "tailspintoys.com": {"MX": [[20, "mx2.tailspintoys.com"], [10, "mx1.tailspintoys.com"]]},
    "mx1.tailspintoys.com": {"A": ["127.0.0.2"]},
    "mx2.tailspintoys.com": {"A": ["127.0.0.1"]},
    "woodgrovebank.com": {"A": ["127.0.0.1"]},
    "nomail.example": {"MX": [[0, "."]]},
    "huba.fabrikam.com": {"A": ["127.0.0.1"]},
    "hubb.fabrikam.com": {"A": ["127.0.0.1"]},
}

# What the Postfix smart host refuses: a recipient for good, one for now,
# and any message from dan@fabrikam.com at the end of its data.
REFUSALS = {
    "smtpd_recipient_restrictions": (
        "check_recipient_access inline:{{ rejected@contoso.com = 550 5.1.1 No such user here }, "
        "{ later@contoso.com = 450 4.2.1 Mailbox busy, try later }}"
    ),
    "smtpd_end_of_data_restrictions": (
        "check_sender_access inline:{{ dan@fabrikam.com = 554 5.6.0 Content refused at end of data }}"
    ),
}

# The receiving side of set-ups (i) and (ii): the external SMTP gateway,
# itself an exmta, owning contoso.com.
GATEWAY = r"""
[TransportServer Gateway]
Fqdn = smtpgateway1.contoso.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
TlsCertificatePath = {certificate}
TlsPrivateKeyPath = {key}
ReceiveProtocolLogPath = {folder}/log/receive

[AcceptedDomain contoso.com]
DomainType = Authoritative

[Mailbox Basic]
PrimarySmtpAddress = basic@contoso.com

[Mailbox External]
PrimarySmtpAddress = external@contoso.com

[Mailbox Retry]
PrimarySmtpAddress = retry@contoso.com

# Set-up (i): the default connector takes the hub's account, Basic only inside TLS.
[ReceiveConnector Default Gateway]
Bindings = 127.0.0.1:{basic}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
PermissionGroups = ExchangeUsers
AuthTarpitInterval = 00:00:00
ProtocolLoggingLevel = Verbose

# Greets everyone on loopback with 421 (no connector takes them).
[ReceiveConnector Refusing]
Bindings = 127.0.0.1:{refusing}
RemoteIPRanges = 10.9.9.9

# Set-up (ii): externally secured by address (the hub sends from loopback).
[ReceiveConnector FromHubA]
Usage = Internal
Bindings = 127.0.0.1:{external}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = ExternalAuthoritative
ProtocolLoggingLevel = Verbose
"""

# The sending organization.  {servers} are TransportServer sections,
# {receive} their submission connectors, {connectors} the send connectors.
SENDER_ORGANIZATION = r"""
{servers}
[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[Mailbox Dan Jump]
PrimarySmtpAddress = dan@fabrikam.com

{receive}
{connectors}
"""

SERVER = r"""
[TransportServer {name}]
Fqdn = {fqdn}
QueueDatabasePath = var/{name}/queue
MailboxDatabasePath = var/{name}/mailboxes
InternalDNSServers = {dns}
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01
TransientFailureRetryCount = 2
OutboundConnectionFailureRetryInterval = 00:00:01
MessageTrackingLogPath = {folder}/log/{name}/tracking
SendProtocolLogPath = {folder}/log/{name}/send
ReceiveProtocolLogPath = {folder}/log/{name}/receive
{settings}
"""

# Tests submit here; other servers of the organization forward here too
# (Usage Internal gives the ExchangeServers group, which marks it as the
# forwarding target).
SUBMISSION = r"""
[ReceiveConnector Submission {name}]
Server = {name}
Usage = Internal
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = ExternalAuthoritative
"""


def sendConnector(name, **keys):
    """
    A C{[SendConnector name]} section; keys in org.ini spelling.
    """
    lines = [f"[SendConnector {name}]"]
    lines += [f"{key} = {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n\n"


# Running organizations


class Gateway:
    """
    The external SMTP gateway of set-ups (i) and (ii): an exmta owning
    contoso.com, with the hub's account.
    """

    def __init__(self, folder, pki):
        self.folder = folder
        self.basicPort = freePort()
        self.externalPort = freePort()
        self.refusingPort = freePort()
        certificate, key = pki["gateway1"]
        config = writeOrganization(
            folder,
            GATEWAY.format(certificate=certificate, key=key, folder=folder,
                           basic=self.basicPort, external=self.externalPort,
                           refusing=self.refusingPort),
            accounts=[(GATEWAY_ACCOUNT, GATEWAY_PASSWORD)],
        )
        self.server = ServerProcess(config, sockets=3)

    def messages(self, address):
        return maildirMessages(os.path.join(self.folder, "var", "mailboxes", address))

    def sessions(self):
        """
        @return: {session id: [(event, data)]} from the receive protocol log.
        """
        return protocolSessions(os.path.join(self.folder, "log", "receive"))

    def stop(self):
        self.server.stop()


class Organization:
    """
    The sending organization fabrikam.com in a folder: one org.ini, one
    C{twistd exmta --server NAME} per transport server.

    @ivar servers: {name: L{ServerProcess}} of the servers started.
    @ivar ports: {name: submission port}.
    """

    def __init__(self, folder, names, connectors, servers=("HubA",), settings="",
                 credentials=()):
        self.folder = folder
        self.ports = {name: freePort() for name in servers}
        text = SENDER_ORGANIZATION.format(
            servers="".join(
                SERVER.format(name=name, fqdn=f"{name.lower()}.fabrikam.com", dns=names.address,
                              folder=folder, settings=settings)
                for name in servers
            ),
            receive="".join(SUBMISSION.format(name=name, port=self.ports[name]) for name in servers),
            connectors=connectors,
        )
        self.config = writeOrganization(folder, text)
        for name, username, password in credentials:
            setCredential(self.config, name, username, password)
        self.servers = {}

    def start(self, name="HubA"):
        self.servers[name] = ServerProcess(self.config, sockets=1, server=name)
        return self.servers[name]

    @property
    def hub(self):
        return self.servers["HubA"]

    def queue(self, name="HubA"):
        return os.path.join(self.folder, "var", name, "queue")

    def mailbox(self, address, name="HubA"):
        return maildirMessages(os.path.join(self.folder, "var", name, "mailboxes", address))

    def submit(self, recipients, subject, mailFrom=SENDER, name="HubA", body="Hello.\r\n"):
        """
        Submit one message to server C{name}.

        @return: its queue id.
        """
        message = (f"From: <{mailFrom or SENDER}>\r\nTo: {', '.join(recipients)}\r\n"
                   f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@fabrikam.com>\r\n"
                   f"\r\n{body}").encode()
        with smtplib.SMTP("127.0.0.1", self.ports[name], timeout=TIMEOUT) as smtp:
            smtp.ehlo("client.fabrikam.com")
            code, text = smtp.mail(mailFrom)
            assert code == 250, text
            for recipient in recipients:
                code, text = smtp.rcpt(recipient)
                assert code == 250, (recipient, text)
            code, text = smtp.data(message)
            assert code == 250, text
        match = re.search(r"<([0-9A-Fa-f]+)@", text.decode())
        assert match, text
        return match.group(1)

    def trackingEvents(self, name="HubA"):
        events = []
        for path in sorted(glob.glob(os.path.join(self.folder, "log", name, "tracking", "*"))):
            with open(path) as handle:
                events += [json.loads(line) for line in handle if line.strip()]
        return events

    def stop(self):
        for server in self.servers.values():
            server.stop()


def queueDirectly(queueFolder, recipients, message, mailFrom=SENDER):
    """
    Put a message into a stopped server's queue folder in the spool's
    documented format (exmta/queue/spool.py), as a tool may: for tests of
    the send side that must not depend on what the receive side accepts.

    @return: its queue id.
    """
    from exmta.envelope import QueuedMessage, QueuedRecipient, newQueueId
    from exmta.queue.spool import encodeQueued

    queued = QueuedMessage(
        queueId=newQueueId(), mailFrom=mailFrom,
        recipients=tuple(QueuedRecipient(address) for address in recipients),
        arrivalTime=time.time(), size=len(message),
        receivedFrom={"connector": "", "server": "HubA", "peerHost": "", "peerPort": 0,
                      "helo": None, "principal": None, "tlsVersion": None},
    )
    folder = os.path.join(queueFolder, "messages")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for suffix, content in ((".eml", message), (".json", encodeQueued(queued))):
        with open(os.path.join(folder, queued.queueId + suffix), "wb") as handle:
            handle.write(content)
    return queued.queueId


def setCredential(config, name, username, password):
    """
    C{exmta credential set -c org.ini NAME USERNAME}, password on stdin.
    """
    result = subprocess.run(
        [sys.executable, "-m", "exmta.cli", "credential", "set", "-c", config, name, username],
        input=password + "\n", capture_output=True, text=True, timeout=TIMEOUT,
        cwd=os.path.dirname(config), env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def protocolSessions(folder):
    """
    @return: {session id: [(event, data)]} from the protocol logs in C{folder}.
    """
    sessions = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.LOG"))):
        with open(path, newline="") as handle:
            for row in csv.reader(line for line in handle if not line.startswith("#")):
                if len(row) >= 8:
                    sessions.setdefault((row[1], row[2]), []).append((row[6], row[7]))
    return sessions


def commandsOf(session):
    return [data for event, data in session if event == "<"]


def waitUntil(condition, what, servers=(), timeout=TIMEOUT):
    """
    Poll C{condition} with a deadline, reading the servers' output meanwhile
    (a server whose output pipe fills up stops).
    """
    deadline = time.monotonic() + timeout
    while True:
        for server in servers:
            server.drain()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL)


def headerOf(message, name):
    match = re.search(rb"^" + name.encode() + rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", message, re.M | re.I)
    return match and match.group(1).decode(errors="replace").strip()


def reportsIn(messages, subject):
    """
    @return: the delivery status notifications among C{messages} about the
        message with C{subject}, oldest first.
    """
    return [m for m in messages if b"multipart/report" in m and subject.encode() in m]


def unfolded(report):
    """
    @return: C{report} with folded (continued) header lines joined.
    """
    return re.sub(rb"\r?\n[ \t]+", b" ", report)


def actionsOf(report):
    return re.findall(rb"^Action: *(\w+)", report, re.M | re.I)


def loggedAfter(server, text):
    return sum(text in line for line in server.output)


def deferrals(server, queueId):
    """
    @return: the reasons the server gave for deferring C{queueId}.
    """
    server.drain()
    return [line.split(": ", 1)[1] for line in server.output if f"] deferred {queueId} to " in line]
