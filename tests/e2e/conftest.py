import os

import pytest

from tests.e2e.browser import startBrowser, stopBrowser
from tests.e2e.harness import ServerProcess, freePort, writeOrganization

GATEWAY_PASSWORD = "Gateway-Pa55word!"

ORGANIZATION = r"""
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Administrator]
PrimarySmtpAddress = administrator@fabrikam.com

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com
UserPrincipalName = kim@fabrikam.com

# Every connector answers refusals at once (TarpitInterval 0, where
# Exchange waits 5 s); tests/test_receive_extensions.py tests the tarpit.
# The default connector: authenticated users, Basic only inside TLS.
[ReceiveConnector Default HubA]
TarpitInterval = 00:00:00
Bindings = 127.0.0.1:{default}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
PermissionGroups = ExchangeUsers
AuthTarpitInterval = 00:00:00
MaxLogonFailures = 2
ProtocolLoggingLevel = Verbose

# The reference document's externally secured gateway, told apart by address.
[ReceiveConnector FromInternetGateway]
TarpitInterval = 00:00:00
Usage = Internal
Bindings = 127.0.0.1:{default}
RemoteIPRanges = 127.0.0.10
AuthMechanism = ExternalAuthoritative

# The reference document's anonymous relay, on its own address.
[ReceiveConnector AnonymousRelay]
TarpitInterval = 00:00:00
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.4:{relay}
RemoteIpRanges = 127.0.5.77

[ADPermission]
Identity = AnonymousRelay
User = NT AUTHORITY\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

# Mail for other domains goes to a smart host that is down: it stays queued.
[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = 127.0.0.1:{downstream}
DNSRoutingEnabled = $false

# An Internet-facing connector: anonymous may submit to local mailboxes only.
[ReceiveConnector Internet]
TarpitInterval = 00:00:00
Usage = Internet
Bindings = 127.0.0.3:{internet}
MaxMessageSize = 64KB
MaxHeaderSize = 8KB
MaxRecipientsPerMessage = 3
MaxInboundConnectionPerSource = 2
"""


def makeOrganization(folder, **overrides):
    ports = {
        "default": freePort("127.0.0.1"),
        "relay": freePort("127.0.0.4"),
        "internet": freePort("127.0.0.3"),
        "downstream": freePort("127.0.0.1"),
    }
    ports.update(overrides)
    path = writeOrganization(
        folder,
        ORGANIZATION.format(**ports),
        accounts=[("smtpgateway@fabrikam.com", GATEWAY_PASSWORD), ("kim@fabrikam.com", "Kim-Pa55")],
    )
    return path, ports


class RunningOrganization:
    """
    @param workers: C{twistd exmta --workers}; the constructor returns once
        they accept.
    """

    def __init__(self, folder, workers=0):
        self.folder = folder
        self.config, self.ports = makeOrganization(folder)
        self.server = ServerProcess(self.config, sockets=3, workers=workers)

    @property
    def queueFolder(self):
        return os.path.join(self.folder, "var", "queue")

    def mailbox(self, address):
        return os.path.join(self.folder, "var", "mailboxes", address)

    def receiveProtocolLog(self):
        """
        @return: the text of the receive protocol logs (the Default HubA
            connector's ProtocolLoggingLevel is Verbose).
        """
        folder = os.path.join(self.folder, "var", "HubA", "ProtocolLog", "SmtpReceive")
        text = ""
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                text += handle.read()
        return text


@pytest.fixture(scope="module")
def organization(tmp_path_factory):
    running = RunningOrganization(str(tmp_path_factory.mktemp("org")))
    yield running
    running.server.stop()


@pytest.fixture
def browser():
    """
    A new headless chromium (tests/e2e/browser.py), for the console's tests.
    """
    driver = startBrowser()
    try:
        yield driver
    finally:
        stopBrowser(driver)
