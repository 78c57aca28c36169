"""
org.ini on a real etcd (tests/e2e/etcd.py), through the storage seam the
Shell uses (L{exmta.config.storage.EtcdStorage}) and through a server
following it over TLS with a user and password.
"""

import os
import smtplib
import subprocess

import pytest
import trustme

from exmta.cli import main as exmta
from exmta.config.editor import Conflict, editing, modify
from exmta.config.storage import EtcdUnavailable, storageFor
from exmta.errors import ConfigError
from exmta.shell.runtime import Session, loadCmdlets
from tests.e2e.etcd import EtcdProcess
from tests.e2e.harness import ServerProcess, freePort
from tests.e2e.postfix import writeCertificate

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]
DomainType = Authoritative
"""


@pytest.fixture
def etcd(tmp_path):
    process = EtcdProcess(str(tmp_path / "etcd"))
    yield process
    process.stop()


def addDomain(name):
    return lambda document: document.addSection(
        "AcceptedDomain", name, [("DomainType", "ExternalRelay")]
    )


def test_compareAndSwap(etcd):
    """
    A write at a revision that is no longer the key's is refused; an edit
    overtaken by another one raises L{Conflict}, and L{modify} redoes its
    change on the new text, so both land.
    """
    storage = storageFor(f"etcd://127.0.0.1:{etcd.clientPort}/exmta/fabrikam")
    assert storage.replace(ORGANIZATION, 0)
    text, revision = storage.read()
    assert text == ORGANIZATION
    assert not storage.replace(ORGANIZATION + "\n", revision - 1)
    with editing(storage.location) as slow:
        addDomain("first.example")(slow.document)
        modify(storage.location, addDomain("second.example"))
        with pytest.raises(Conflict):
            slow.write()
    assert "second.example" in storage.read()[0]
    assert "first.example" not in storage.read()[0]

    overtaken = []

    def change(document):
        # The first attempt is overtaken by another administrator's write.
        if not overtaken:
            overtaken.append(True)
            modify(storage.location, addDomain("third.example"))
        addDomain("fourth.example")(document)

    modify(storage.location, change)
    stored = storage.read()[0]
    assert "[AcceptedDomain third.example]" in stored
    assert "[AcceptedDomain fourth.example]" in stored


def test_errorsNameTheKeyAndLine(etcd):
    """
    A change the server would refuse is refused with the etcd key and line,
    and nothing is written; a key holding nothing says how to store one.
    """
    location = f"etcd://127.0.0.1:{etcd.clientPort}/exmta/fabrikam"
    storage = storageFor(location)
    with pytest.raises(ConfigError, match="no organization is stored under this key; store one"):
        storage.read()
    storage.replace(ORGANIZATION, None)
    with pytest.raises(ConfigError) as refused:
        modify(location, lambda d: d.set(d.section("TransportServer", "HubA"), "MessageRetryInterval", "soon"))
    assert str(refused.value).startswith(f"{location}:3: [TransportServer HubA] MessageRetryInterval:")
    assert storage.read()[0] == ORGANIZATION


def test_endpoints(etcd, tmp_path):
    """
    Endpoints are tried in turn; when none answers, the error names each.
    """
    dead = freePort()
    storage = storageFor(f"etcd://127.0.0.1:{dead},127.0.0.1:{etcd.clientPort}/exmta/fabrikam")
    assert storage.replace(ORGANIZATION, None)
    assert storage.read()[0] == ORGANIZATION
    etcd.stop()
    with pytest.raises(EtcdUnavailable) as unreachable:
        storage.read()
    assert f"127.0.0.1:{dead}" in str(unreachable.value)
    assert f"127.0.0.1:{etcd.clientPort}" in str(unreachable.value)


def test_exportImport(etcd, tmp_path):
    """
    C{exmta config import} stores a file's text as it is, after validating
    it; C{export} gives the same bytes back; an invalid file is refused
    naming its own line.
    """
    location = f"etcd://127.0.0.1:{etcd.clientPort}/exmta/fabrikam"
    source = tmp_path / "org.ini"
    source.write_text("# comments stay\r\n" + ORGANIZATION)
    assert exmta(["config", "import", "-c", location, str(source)]) == 0
    assert exmta(["config", "export", "-c", location, str(tmp_path / "back.ini")]) == 0
    assert (tmp_path / "back.ini").read_bytes() == source.read_bytes()
    bad = tmp_path / "bad.ini"
    bad.write_text(ORGANIZATION + "[Nonsense x]\n")
    assert exmta(["config", "import", "-c", location, str(bad)]) == 1
    assert storageFor(location).read()[0].encode() == source.read_bytes()


def test_tlsAndPassword(tmp_path):
    """
    etcd over https asking for a client certificate, with authentication
    on: the Shell and a server reach it with the URL's cacert, cert, key,
    user and passwordFile, and the server follows a change made there.
    """
    loadCmdlets()
    ca = trustme.CA()
    serverCertificate, serverKey = writeCertificate(ca, str(tmp_path / "etcd-tls"), "127.0.0.1")
    authority = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(authority)
    clientCertificate, clientKey = writeCertificate(ca, str(tmp_path / "client"), "huba.fabrikam.com")
    etcd = EtcdProcess(
        str(tmp_path / "etcd"), tls=(serverCertificate, serverKey, authority)
    )
    server = None
    try:
        environment = {"ETCDCTL_API": "3", "PATH": os.environ["PATH"]}
        for command in (
            ["user", "add", "root:Root-Pa55"],
            ["user", "add", "exmta:Exmta-Pa55"],
            ["role", "add", "exmta"],
            ["role", "grant-permission", "exmta", "--prefix=true", "readwrite", "/exmta/"],
            ["user", "grant-role", "exmta", "exmta"],
            ["auth", "enable"],
        ):
            subprocess.run(
                ["etcdctl", "--endpoints", etcd.url, "--cacert", authority,
                 "--cert", clientCertificate, "--key", clientKey, *command],
                env=environment, check=True, capture_output=True,
            )
        password = tmp_path / "etcd-password"
        password.write_text("Exmta-Pa55\n")
        location = (
            f"etcds://exmta@127.0.0.1:{etcd.clientPort}/exmta/fabrikam?cacert={authority}"
            f"&cert={clientCertificate}&key={clientKey}&passwordFile={password}"
        )
        storage = storageFor(location)
        assert storage.name == f"etcds://127.0.0.1:{etcd.clientPort}/exmta/fabrikam"
        port = freePort()
        assert storage.replace(
            ORGANIZATION + f"[ReceiveConnector Default HubA]\nBindings = 127.0.0.1:{port}\n"
            "RemoteIPRanges = 127.0.0.1\n",
            0,
        )
        home = tmp_path / "HubA"
        home.mkdir()
        server = ServerProcess(location, sockets=1, cwd=str(home))
        server.waitFor("etcd reachable at https://127.0.0.1")
        later = freePort()
        Session(location).invoke(
            f'New-ReceiveConnector -Name Later -Server HubA -Usage Custom '
            f"-Bindings 127.0.0.1:{later} -RemoteIPRanges 127.0.0.1"
        )
        server.waitFor(f"listening on 127.0.0.1:{later}")
    finally:
        if server is not None:
            server.stop()
        etcd.stop()


def test_receiveWorkers(etcd, tmp_path):
    """
    Receive workers of a server on etcd run on the text their main process
    checked, with relative paths from the server's folder: a message taken
    by a worker is delivered.
    """
    location = f"etcd://127.0.0.1:{etcd.clientPort}/exmta/fabrikam"
    port = freePort()
    storageFor(location).replace(
        ORGANIZATION + "[Mailbox Kim]\nPrimarySmtpAddress = kim@fabrikam.com\n\n"
        f"[ReceiveConnector Default HubA]\nBindings = 127.0.0.1:{port}\n"
        "RemoteIPRanges = 127.0.0.1\nPermissionGroups = AnonymousUsers\n",
        None,
    )
    home = tmp_path / "HubA"
    home.mkdir()
    server = ServerProcess(location, sockets=1, cwd=str(home), workers=1)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("a@example.net", ["kim@fabrikam.com"], "Subject: w\r\n\r\nHi\r\n")
        server.waitFor("delivered")
        assert "worker 1] accepted" in server.drain()
        assert os.path.isdir(home / "var" / "HubA" / "mailboxes")
    finally:
        server.stop()
