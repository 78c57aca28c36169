"""
Several transport servers sharing one organization on etcd: a real etcd
(Debian's etcd-server, tests/e2e/etcd.py) and three C{twistd exmta -c
etcd://...} processes, HubA, HubB and HubC, each in a folder of its own.

The tests run in order on the same organization:

  - Shell edits made on HubA's side (L{Session.invoke}, as the console
    calls it) reach all three: a new receive connector on each listens, a
    new send connector routes each one's mail to a sink.
  - Two administrators editing at once both land.
  - An invalid text is refused by every server, naming the etcd key and
    line, and the running configuration stays.
  - etcd stopped: every server says so and mail still flows; etcd back:
    every server says so and a change reaches them again.
  - A server started while etcd is down runs on its cached copy.
"""

import base64
import json
import os
import smtplib
import threading
import time
import urllib.error
import urllib.request

import pytest

from exmta.cli import main as exmta
from exmta.config.storage import storageFor
from exmta.shell.runtime import Session, loadCmdlets
from tests.e2e.etcd import EtcdProcess
from tests.e2e.harness import ServerProcess, freePort
from tests.e2e.sink import SmtpSink

HUBS = ("HubA", "HubB", "HubC")
TIMEOUT = 30

ORGANIZATION = """\
[AcceptedDomain fabrikam.com]
DomainType = Authoritative

# contoso.com shares the name space: its mail leaves through a send connector.
[AcceptedDomain contoso.com]
DomainType = InternalRelay
"""

SERVER = """
[TransportServer {name}]
Fqdn = {lower}.fabrikam.com

[ReceiveConnector Default {name}]
Server = {name}
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.1
PermissionGroups = AnonymousUsers
"""


@pytest.fixture(scope="module")
def organization(tmp_path_factory):
    """
    etcd holding the organization (imported with C{exmta config import})
    and the three servers running on it.
    """
    loadCmdlets()
    folder = tmp_path_factory.mktemp("several")
    etcd = EtcdProcess(str(folder / "etcd"))
    location = f"etcd://127.0.0.1:{etcd.clientPort}/exmta/fabrikam"
    ports = {name: freePort() for name in HUBS}
    ports["health"] = freePort()
    text = ORGANIZATION + "".join(
        SERVER.format(name=name, lower=name.lower(), port=ports[name]) for name in HUBS
    ) + f"\n[Monitoring HubA]\nBinding = 127.0.0.1:{ports['health']}\n"
    (folder / "org.ini").write_text(text)
    servers = {}
    sink = SmtpSink()
    try:
        assert exmta(["config", "import", "-c", location, str(folder / "org.ini")]) == 0
        for name in HUBS:
            servers[name] = startHub(folder, location, name)
        yield _Organization(folder, etcd, location, ports, servers, sink)
    finally:
        for server in servers.values():
            server.stop()
        sink.stop()
        etcd.stop()


class _Organization:
    def __init__(self, folder, etcd, location, ports, servers, sink):
        self.folder = folder
        self.etcd = etcd
        self.location = location
        self.ports = ports
        self.servers = servers
        self.sink = sink

    def shell(self, text):
        # The Shell on HubA's machine: its folder holds HubA's local stores.
        previous = os.getcwd()
        os.chdir(self.folder / "HubA")
        try:
            return Session(self.location).invoke(text)
        finally:
            os.chdir(previous)

    def stored(self):
        return storageFor(self.location).read()[0]


def startHub(folder, location, name, sockets=1):
    home = folder / name
    home.mkdir(exist_ok=True)
    return ServerProcess(location, sockets=sockets, server=name, cwd=str(home))


def send(port, recipient, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.sendmail(
            "sender@example.net",
            [recipient],
            f"From: sender@example.net\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\nHi\r\n",
        )


def awaitMessages(sink, subjects):
    deadline = time.monotonic() + TIMEOUT
    while not subjects <= received(sink):
        assert time.monotonic() < deadline, f"the sink got {received(sink)}, not {subjects}"
        time.sleep(0.05)


def received(sink):
    return {
        line.split(b":", 1)[1].strip().decode()
        for message in sink.messages
        for line in message.data.split(b"\r\n")
        if line.startswith(b"Subject:")
    }


def test_editReachesEveryServer(organization):
    """
    Receive connectors added from HubA's Shell listen on the servers they
    name, and a send connector added there routes mail on all three.
    """
    extra = {name: freePort() for name in HUBS}
    organization.shell(
        "New-SendConnector -Name ToContoso -AddressSpaces contoso.com "
        f"-SmartHosts 127.0.0.1 -Port {organization.sink.port} -DNSRoutingEnabled $false "
        "-SourceTransportServers HubA,HubB,HubC"
    )
    for name in HUBS:
        organization.shell(
            f'New-ReceiveConnector -Name "Extra {name}" -Server {name} -Usage Custom '
            f"-Bindings 127.0.0.1:{extra[name]} -RemoteIPRanges 127.0.0.1 "
            "-PermissionGroups AnonymousUsers"
        )
    organization.extra = extra
    # A server applies the changes in order, so once its new receive
    # connector listens it also has the send connector, written before.
    for name, server in organization.servers.items():
        server.waitFor(f"listening on 127.0.0.1:{extra[name]}", timeout=TIMEOUT)
        send(extra[name], "kim@contoso.com", f"through {name}")
    awaitMessages(organization.sink, {f"through {name}" for name in HUBS})


def test_concurrentEditsBothLand(organization):
    """
    Two administrators adding accepted domains at the same time, each
    unaware of the other: every domain lands, none is lost to the other's
    write.
    """
    start = threading.Barrier(2)
    failures = []

    def administrator(prefix):
        start.wait()
        try:
            for number in range(5):
                organization.shell(
                    f"New-AcceptedDomain -Name {prefix}{number}.example "
                    f"-DomainName {prefix}{number}.example -DomainType ExternalRelay"
                )
        except Exception as error:  # noqa: BLE001 (reported below)
            failures.append(error)

    threads = [threading.Thread(target=administrator, args=(p,)) for p in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not failures
    stored = organization.stored()
    for prefix in ("alpha", "beta"):
        for number in range(5):
            assert f"[AcceptedDomain {prefix}{number}.example]" in stored
    shown = {d.Name for d in organization.shell("Get-AcceptedDomain")}
    assert {f"{p}{n}.example" for p in ("alpha", "beta") for n in range(5)} <= shown


def test_invalidTextRefusedEverywhere(organization):
    """
    The Shell refuses an invalid change without writing it; a text
    written to etcd behind the Shell's back is refused by every server,
    naming the key and line, and each keeps running on what it had.
    """
    with pytest.raises(Exception, match="refused"):
        organization.shell("Set-TransportServer HubB -MessageRetryInterval 99:99:99")
    stored = organization.stored()
    broken = stored + "\n[ReceiveConnector Broken]\nServer = HubA\nBindings = nowhere\n"
    line = broken.splitlines().index("Bindings = nowhere") + 1
    key = base64.b64encode(b"/exmta/fabrikam").decode()
    value = base64.b64encode(broken.encode()).decode()
    organization.etcd.post("/v3/kv/put", {"key": key, "value": value})
    for server in organization.servers.values():
        server.waitFor(
            f"reload refused, running configuration kept: {organization.location}:{line}:",
            timeout=TIMEOUT,
        )
    send(organization.extra["HubB"], "kim@contoso.com", "after refusal")
    awaitMessages(organization.sink, {"after refusal"})
    # Put the good text back for the tests that follow.
    storage = storageFor(organization.location)
    assert storage.replace(stored, None)


def health(organization):
    url = f"http://127.0.0.1:{organization.ports['health']}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        return json.load(error)


def test_etcdDownAndBack(organization):
    """
    etcd stopped: every server says it runs on its last good configuration
    (in its log, and HubA in its health details too) and mail still flows.
    etcd back: every server says so, and a change reaches them again.
    """
    assert health(organization)["etcdReachable"] is True
    organization.etcd.stop()
    for server in organization.servers.values():
        server.waitFor("etcd unreachable", timeout=TIMEOUT)
        server.waitFor("running on the last good configuration", timeout=TIMEOUT)
    assert health(organization)["etcdReachable"] is False
    send(organization.extra["HubC"], "kim@contoso.com", "while etcd is down")
    awaitMessages(organization.sink, {"while etcd is down"})
    organization.etcd.start()
    for server in organization.servers.values():
        server.waitFor("etcd reachable", count=2, timeout=TIMEOUT)
    assert health(organization)["etcdReachable"] is True
    port = freePort()
    organization.shell(
        f'New-ReceiveConnector -Name "Later HubC" -Server HubC -Usage Custom '
        f"-Bindings 127.0.0.1:{port} -RemoteIPRanges 127.0.0.1 -PermissionGroups AnonymousUsers"
    )
    organization.servers["HubC"].waitFor(f"listening on 127.0.0.1:{port}", timeout=TIMEOUT)
    organization.later = port


def test_startWhileEtcdIsDown(organization):
    """
    A server started while etcd is down starts on the copy of the last
    configuration it ran (with the connector added while it ran), and
    follows etcd once it is back.
    """
    organization.servers.pop("HubC").stop()
    organization.etcd.stop()
    try:
        hub = startHub(organization.folder, organization.location, "HubC", sockets=3)
    finally:
        organization.etcd.start()
    organization.servers["HubC"] = hub
    hub.waitFor("starting on the cached configuration")
    hub.waitFor(f"listening on 127.0.0.1:{organization.later}")
    send(organization.later, "kim@contoso.com", "from the cache")
    awaitMessages(organization.sink, {"from the cache"})
    hub.waitFor("etcd reachable", timeout=TIMEOUT)
