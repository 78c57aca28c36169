"""
One view of the organization: the Shell on HubA's machine (its folder)
reaches HubB's queue with C{-Server HubB} over HubB's AdminBindings, with
mutual TLS and the certificates the organization issued.  The two servers
share the organization on etcd and run in folders of their own, as on two
machines: HubB's certificate is made on HubA's machine and imported on
HubB's (Import-ExchangeCertificate).
"""

import os
import smtplib
import ssl
import time

import pytest
import trustme

from exmta.admin.client import AdminUnavailable, RemoteAdminClient
from exmta.cli import main as exmta
from exmta.shell.runtime import Session, ShellError, loadCmdlets
from tests.e2e.etcd import EtcdProcess
from tests.e2e.harness import ServerProcess, freePort

TIMEOUT = 30

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[TransportServer HubB]
Fqdn = hubb.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[AcceptedDomain contoso.com]
DomainType = InternalRelay

[ReceiveConnector Default HubB]
Server = HubB
Usage = Custom
Bindings = 127.0.0.1:{b}
RemoteIPRanges = 127.0.0.1
PermissionGroups = AnonymousUsers

# Nothing answers there: HubB's mail for contoso.com waits in its queue.
[SendConnector ToContoso]
AddressSpaces = contoso.com
SourceTransportServers = HubB
DNSRoutingEnabled = $false
SmartHosts = 127.0.0.1
Port = {dead}
"""


class _Shell:
    def __init__(self, location, folder):
        self.location = location
        self.folder = folder

    def __call__(self, text):
        previous = os.getcwd()
        os.chdir(self.folder)
        try:
            return Session(self.location).invoke(text)
        finally:
            os.chdir(previous)


@pytest.fixture(scope="module")
def organization(tmp_path_factory):
    loadCmdlets()
    folder = tmp_path_factory.mktemp("remote")
    etcd = EtcdProcess(str(folder / "etcd"))
    location = f"etcd://127.0.0.1:{etcd.clientPort}/exmta/fabrikam"
    ports = {"b": freePort(), "dead": freePort(), "admin": freePort()}
    (folder / "org.ini").write_text(ORGANIZATION.format(**ports))
    homes = {name: folder / name for name in ("HubA", "HubB")}
    for home in homes.values():
        home.mkdir()
    servers = []
    try:
        assert exmta(["config", "import", "-c", location, str(folder / "org.ini")]) == 0
        onA, onB = _Shell(location, homes["HubA"]), _Shell(location, homes["HubB"])
        onA("New-ExchangeCertificate -Server HubA")
        onA("New-ExchangeCertificate -Server HubB")
        made = homes["HubA"] / "ExchangeCertificates"
        onB(
            f"Import-ExchangeCertificate -Server HubB -FileName {made / 'HubB.pem'} "
            f"-PrivateKeyFileName {made / 'HubB.key'} "
            f"-CertificateAuthorityFileName {made / 'organization-ca.pem'}"
        )
        onA(f"Set-TransportServer HubB -AdminBindings 127.0.0.1:{ports['admin']}")
        servers.append(ServerProcess(location, sockets=0, server="HubA", cwd=str(homes["HubA"])))
        hubB = ServerProcess(location, sockets=1, server="HubB", cwd=str(homes["HubB"]))
        servers.append(hubB)
        hubB.waitFor(f"admin endpoint on 127.0.0.1:{ports['admin']} (mutual TLS)")
        yield onA, ports, hubB, made
    finally:
        for server in servers:
            server.stop()
        etcd.stop()


def test_getQueueOnAnotherServer(organization):
    """
    A message waiting in HubB's queue is seen, and removed, from HubA's
    Shell, which has no way to HubB's UNIX socket or its files; so is
    HubB's message tracking log.
    """
    onA, ports, hubB, _ = organization
    with smtplib.SMTP("127.0.0.1", ports["b"], timeout=TIMEOUT) as client:
        client.sendmail(
            "sender@example.net", ["kim@contoso.com"],
            "From: sender@example.net\r\nSubject: waiting\r\n\r\nHi\r\n",
        )
    deadline = time.monotonic() + TIMEOUT
    while True:
        queues = [q for q in onA("Get-Queue -Server HubB") if q.MessageCount]
        if queues and queues[0].Status == "Retry":
            break
        assert time.monotonic() < deadline, queues
        time.sleep(0.1)
    assert queues[0].Identity.startswith("HubB\\")
    [message] = onA("Get-Message -Server HubB")
    assert message.Subject == "waiting"
    hubB.waitFor("admin connection from TransportServer HubA")
    onA(f"Remove-Message -Server HubB -Identity '{message.Identity}' -WithNDR $false")
    assert onA("Get-Message -Server HubB") == []
    events = onA("Get-MessageTrackingLog -Server HubB -Sender sender@example.net")
    assert ("HubB", "RECEIVE") in [(event.ServerHostname, event.EventId) for event in events]


def test_foreignCertificateRefused(organization, tmp_path):
    """
    A client whose certificate the organization did not issue gets no TLS
    session with the admin endpoint.
    """
    _, ports, _, made = organization
    foreign = trustme.CA().issue_cert("huba.fabrikam.com")
    certificate, key = tmp_path / "c.pem", tmp_path / "c.key"
    foreign.cert_chain_pems[0].write_to_path(str(certificate))
    foreign.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context(cafile=str(made / "organization-ca.pem"))
    context.load_cert_chain(str(certificate), str(key))
    client = RemoteAdminClient(("127.0.0.1", ports["admin"]), context, "hubb.fabrikam.com")
    with pytest.raises(AdminUnavailable):
        client.call("getQueue")


def test_noLocalCertificate(organization, tmp_path):
    """
    A Shell on a machine with no server certificate says what to do.
    """
    onA, _, _, _ = organization
    elsewhere = _Shell(onA.location, tmp_path)
    with pytest.raises(ShellError, match="no server's certificate is here"):
        elsewhere("Get-Queue -Server HubB")
