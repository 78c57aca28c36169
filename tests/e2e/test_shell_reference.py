"""
The reference document's Shell examples, pasted verbatim into C{exmta
shell -c org.ini -Command '...'} (C{$mycred = Get-Credential} answered with
two lines on standard input), then a real C{twistd exmta} on the org.ini
they made, showing what the document says the set-up does.

Each procedure starts from fabrikam.com as Exchange 2010 leaves it: the
Hub Transport server HubA with its default Receive connector on
0.0.0.0:25.  Then the document's lines run, as printed.  Then more Shell
lines, not the document's, make the organization runnable on loopback
without root, as an administrator would adapt it to the test network:
Set-ReceiveConnector moves the bindings to free loopback ports and the
gateway's addresses onto loopback ones (192.168.1.10 and 192.168.5.77
become 127.0.0.10 and 127.0.5.77), Set-TransportServer points
InternalDNSServers at a test DNS server that resolves
smtpgateway1.contoso.com, and Set-SendConnector gives the gateway's port.
The gateway is a second exmta owning contoso.com (tests/e2e/sending.py).

  - Basic authentication: the gateway logs on to the default connector as
    smtpgateway@fabrikam.com (an account New-User made) and may deliver
    and relay; HubA sends to the gateway with the credential from
    Get-Credential, AUTH only inside TLS.
  - Externally Secured: the gateway's address may relay without logging
    on and its mail counts as internal; other addresses get the default
    connector; HubA sends without AUTH.
  - Anonymous relay (the Shell procedure, and the EMC one whose last step
    is the Shell line): anonymous mail from the gateway's address is
    relayed only once Add-ADPermission has granted
    Ms-Exch-SMTP-Accept-Any-Recipient (the running server takes the change
    on SIGHUP), and the connector answers no other address.
"""

import os
import signal
import smtplib
import ssl
import subprocess
import sys

import pytest
import trustme

from tests.e2e.dns import DNSServer
from tests.e2e.harness import REPOSITORY, RawClient, ServerProcess, freePort, maildirMessages
from tests.e2e.postfix import writeCertificate
from tests.e2e.sending import GATEWAY_ACCOUNT, GATEWAY_PASSWORD, TIMEOUT, ZONE, Gateway, headerOf, waitUntil
from tests.test_shell_parser import REFERENCE

(
    GET_CREDENTIAL,
    BASIC_SEND,
    EXTERNAL_SEND,
    EXTERNAL_RECEIVE,
    EMC_RELAY_PERMISSION,
    RELAY_SEND,
    RELAY_RECEIVE,
    RELAY_PERMISSION,
) = REFERENCE

# The smtpgateway@fabrikam.com domain account of the prerequisites.
HUB_ACCOUNT = "smtpgateway@fabrikam.com"
HUB_PASSWORD = "Hub-Gateway-Pa55!"

# fabrikam.com as Exchange 2010 sets it up.
BASE = """\
# fabrikam.com: one Hub Transport server and its default Receive connector.
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Default HubA]
Server = HubA
Bindings = 0.0.0.0:25
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
PermissionGroups = ExchangeUsers, ExchangeServers, ExchangeLegacyServers
"""


def shell(config, *statements, input=None):
    """
    Run C{statements} (one per line) with C{exmta shell -c config -Command}.

    @return: what it printed.
    """
    result = subprocess.run(
        [sys.executable, "-m", "exmta.cli", "shell", "-c", config, "-Command", "\n".join(statements)],
        input=input, capture_output=True, text=True, timeout=TIMEOUT,
        cwd=os.path.dirname(config), env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stderr, result.stderr
    return result.stdout


def organization(folder):
    os.makedirs(folder)
    config = os.path.join(folder, "org.ini")
    with open(config, "w") as handle:
        handle.write(BASE)
    return config


def read(path):
    with open(path) as handle:
        return handle.read()


def tlsContext():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def waitForMessage(hub, gateway, address, subject):
    """
    @return: the message with C{subject} once the gateway has delivered it
        to C{address}.
    """
    try:
        found = waitUntil(
            lambda: [m for m in gateway.messages(address) if subject.encode() in m],
            f"{subject!r} at {address}", [hub, gateway.server],
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; HubA logged:\n{hub.drain()}") from None
    return found[0]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("pki"))
    certificate = writeCertificate(trustme.CA(), folder, "smtpgateway1.contoso.com")
    running = Gateway(str(tmp_path_factory.mktemp("gateway")), {"gateway1": certificate})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    server = DNSServer(str(tmp_path_factory.mktemp("dns")), ZONE)
    yield server
    server.stop()


@pytest.fixture
def servers():
    """
    Start (and finally stop) C{twistd exmta} processes.
    """
    started = []

    def start(config, sockets):
        started.append(ServerProcess(config, sockets=sockets))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_basicAuthentication(tmp_path, gateway, names, servers):
    config = organization(str(tmp_path / "fabrikam"))
    # The prerequisite: the domain account the gateway logs on with; and a
    # password for Kim, who sends to the Internet.
    shell(config,
          f"New-User -Name smtpgateway -UserPrincipalName {HUB_ACCOUNT} "
          f'-Password (ConvertTo-SecureString "{HUB_PASSWORD}" -AsPlainText -Force)',
          'Set-Mailbox "Kim Akers" -Password (ConvertTo-SecureString "Kim-Pa55" -AsPlainText -Force)')
    # The procedure: both lines in one session, the credential typed in.
    printed = shell(config, GET_CREDENTIAL, BASIC_SEND, input=f"{GATEWAY_ACCOUNT}\n{GATEWAY_PASSWORD}\n")
    assert "ToInternetGateway" in printed and GATEWAY_PASSWORD not in printed
    text = read(config)
    assert "SmartHostAuthMechanism = BasicAuth, BasicAuthRequireTLS\nAuthenticationCredential = ToInternetGateway\n" in text
    assert GATEWAY_PASSWORD not in text and HUB_PASSWORD not in text
    shown = shell(config, "Get-SendConnector ToInternetGateway | Format-List")
    assert "AuthenticationCredential     : ToInternetGateway\n" in shown
    assert GATEWAY_PASSWORD not in shown

    port = freePort()
    shell(config,
          f'Set-ReceiveConnector "Default HubA" -Bindings 127.0.0.1:{port}',
          f"Set-TransportServer HubA -InternalDNSServers {names.address}",
          f"Set-SendConnector ToInternetGateway -Port {gateway.basicPort}",
          "Test-Config")
    hub = servers(config, sockets=1)

    # The gateway hands Internet mail to the default connector, logged on
    # over TLS.
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tlsContext())
        smtp.login(HUB_ACCOUNT, HUB_PASSWORD)
        assert smtp.sendmail("news@tailspintoys.com", ["kim@fabrikam.com"],
                             b"Subject: basic procedure in\r\n\r\nHello.\r\n") == {}
    hub.waitFor("delivered ")
    mailbox = str(tmp_path / "fabrikam" / "var" / "mailboxes" / "kim@fabrikam.com")
    assert [m for m in maildirMessages(mailbox) if b"basic procedure in" in m]

    # Kim's mail for the Internet leaves through ToInternetGateway, which
    # logs on to the gateway with $mycred.
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tlsContext())
        smtp.login("kim@fabrikam.com", "Kim-Pa55")
        assert smtp.sendmail("kim@fabrikam.com", ["basic@contoso.com"],
                             b"From: kim@fabrikam.com\r\nSubject: basic procedure out\r\n\r\nHello.\r\n") == {}
    message = waitForMessage(hub, gateway, "basic@contoso.com", "basic procedure out")
    assert "with ESMTPSA" in headerOf(message, "Received")

    # Without logging on, the default connector takes nothing.
    raw = RawClient("127.0.0.1", port)
    assert raw.reply()[0] == 220
    raw.command("EHLO gateway.contoso.com")
    code, lines = raw.command("MAIL FROM:<news@contoso.com>")
    assert (code, lines[0][4:9]) == (530, "5.7.1"), lines
    raw.close()


def test_externallySecured(tmp_path, gateway, names, servers):
    config = organization(str(tmp_path / "fabrikam"))
    shell(config, EXTERNAL_SEND, EXTERNAL_RECEIVE)
    received = shell(config, 'Get-ReceiveConnector "FromInternetGateway" | Format-List')
    # No -Bindings: Exchange's default for Internal, shared with the default
    # connector and told apart by RemoteIPRanges.
    assert "{0.0.0.0:25}" in received and "{192.168.1.10}" in received
    assert "ExternalAuthoritative" in received

    port = freePort()
    shell(config,
          f'Set-ReceiveConnector "Default HubA" -Bindings 127.0.0.1:{port}',
          f"Set-ReceiveConnector FromInternetGateway -Bindings 127.0.0.1:{port} -RemoteIPRanges 127.0.0.10",
          f"Set-TransportServer HubA -InternalDNSServers {names.address}",
          f"Set-SendConnector ToInternetGateway -Port {gateway.externalPort}",
          "Test-Config")
    hub = servers(config, sockets=1)

    # From the gateway's address: no logon, yet it may relay, and its mail
    # is internal.
    raw = RawClient("127.0.0.1", port, source="127.0.0.10")
    assert raw.reply()[0] == 220
    raw.command("EHLO smtpgateway1.contoso.com")
    assert raw.command("MAIL FROM:<news@contoso.com>")[0] == 250
    assert raw.command("RCPT TO:<external@contoso.com>")[0] == 250
    assert raw.command("RCPT TO:<kim@fabrikam.com>")[0] == 250
    assert raw.command("DATA")[0] == 354
    raw.send(b"Subject: externally secured procedure\r\n\r\nHello.\r\n.\r\n")
    code, lines = raw.reply()
    assert code == 250, lines
    raw.close()
    message = waitForMessage(hub, gateway, "external@contoso.com", "externally secured procedure")
    assert headerOf(message, "X-MS-Exchange-Organization-AuthAs") == "Internal"
    assert "ESMTPSA" not in headerOf(message, "Received")
    hub.waitFor("delivered ")

    # Any other address gets the default connector, which wants a logon.
    raw = RawClient("127.0.0.1", port, source="127.0.0.11")
    assert raw.reply()[0] == 220
    raw.command("EHLO other.contoso.com")
    assert raw.command("MAIL FROM:<news@contoso.com>")[0] == 530
    raw.close()


def relayAttempt(port, source, subject):
    """
    Offer an anonymous message for external@contoso.com from C{source}.

    @return: the RCPT reply's first line.
    """
    raw = RawClient("127.0.0.4", port, source=source)
    assert raw.reply()[0] == 220
    raw.command("EHLO smtpgateway1.contoso.com")
    assert raw.command("MAIL FROM:<news@contoso.com>")[0] == 250
    code, lines = raw.command("RCPT TO:<external@contoso.com>")
    if code == 250:
        assert raw.command("DATA")[0] == 354
        raw.send(f"Subject: {subject}\r\n\r\nHello.\r\n.\r\n".encode())
        assert raw.reply()[0] == 250
    raw.command("QUIT")
    raw.close()
    return lines[0]


@pytest.mark.parametrize(
    "procedure",
    ["Shell", "EMC"],
)
def test_anonymousRelay(tmp_path, gateway, names, servers, procedure):
    config = organization(str(tmp_path / "fabrikam"))
    if procedure == "Shell":
        name, permission = "FromInternetGateway", RELAY_PERMISSION
        shell(config, RELAY_SEND, RELAY_RECEIVE)
    else:
        # The EMC steps 1 to 3 (a Custom connector bound to one address of
        # the server, the gateway's address, Anonymous users), as Shell
        # lines; then step 4, the document's own line.
        name, permission = "Receive Connector Name", EMC_RELAY_PERMISSION
        shell(config, RELAY_SEND,
              f'New-ReceiveConnector -Name "{name}" -Server HubA -Usage Custom '
              "-Bindings 10.2.3.4:25 -RemoteIPRanges 192.168.5.77",
              f'Set-ReceiveConnector "{name}" -PermissionGroups AnonymousUsers')

    port, relayPort = freePort(), freePort("127.0.0.4")
    shell(config,
          f'Set-ReceiveConnector "Default HubA" -Bindings 127.0.0.1:{port}',
          f'Set-ReceiveConnector "{name}" -Bindings 127.0.0.4:{relayPort} -RemoteIPRanges 127.0.5.77',
          f"Set-TransportServer HubA -InternalDNSServers {names.address}",
          f"Set-SendConnector ToInternetGateway -Port {gateway.externalPort}")
    hub = servers(config, sockets=2)

    # Anonymous users may submit to fabrikam.com, but not relay yet.
    assert relayAttempt(relayPort, "127.0.5.77", "before").startswith("550 5.7.1")

    printed = shell(config, permission)
    assert "NT AUTHORITY\\ANONYMOUS LOGON" in printed
    assert "Identity = HubA\\" + name + "\nUser = NT AUTHORITY\\ANONYMOUS LOGON\n" in read(config)
    hub.process.send_signal(signal.SIGHUP)
    hub.waitFor("reloaded ")

    subject = f"anonymous relay procedure {procedure}"
    assert relayAttempt(relayPort, "127.0.5.77", subject).startswith("250")
    waitForMessage(hub, gateway, "external@contoso.com", subject)

    # The connector answers its RemoteIPRanges only.
    raw = RawClient("127.0.0.4", relayPort, source="127.0.5.78")
    code, lines = raw.reply()
    assert (code, lines[0][4:9]) == (421, "4.3.2"), lines
    assert raw.closedByPeer()
