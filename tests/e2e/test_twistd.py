"""
C{twistd exmta} as users run it: its help, its refusal to start on bad
configuration, and listening on wildcard and specific bindings at once.
"""

import os
import shutil
import smtplib
import socket
import subprocess

import pytest

from tests.e2e.conftest import makeOrganization
from tests.e2e.harness import (
    REPOSITORY,
    TWISTD,
    RawClient,
    ServerProcess,
    freePort,
    runTwistd,
    writeOrganization,
)


def test_helpDocumentsConfigAndServer():
    result = subprocess.run(
        [TWISTD, "exmta", "--help"],
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "-c, --config=" in result.stdout
    assert "--server=" in result.stdout
    assert "--workers=" in result.stdout
    assert "--log-level=" in result.stdout


def test_anUnknownLogLevelIsAUsageError(tmp_path):
    config, _ = makeOrganization(str(tmp_path))
    result = runTwistd(config, "--log-level", "verbose")
    assert result.returncode != 0
    assert "--log-level must be one of debug, info" in result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("count", ["-1", "86"])
def test_aWorkerCountOutOfRangeIsAUsageError(tmp_path, count):
    """
    Each worker's spool part is numbered in two hex digits of its queue
    ids: 85 workers at most (three rows each).
    """
    config, _ = makeOrganization(str(tmp_path))
    result = runTwistd(config, "--workers", count)
    assert result.returncode != 0
    assert "--workers must be 0 to 85" in result.stdout
    assert "Traceback" not in result.stdout


def test_badConfigurationStopsStartWithoutTraceback(tmp_path):
    config, ports = makeOrganization(str(tmp_path))
    with open(config) as handle:
        text = handle.read()
    broken = text.replace(
        "AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS", "AuthMechanism = Tls, BasicAuthRequireTLS"
    )
    with open(config, "w") as handle:
        handle.write(broken)
    line = broken.splitlines().index("AuthMechanism = Tls, BasicAuthRequireTLS") + 1
    result = runTwistd(config)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout
    assert f"org.ini:{line}: [ReceiveConnector Default HubA] AuthMechanism:" in result.stdout
    assert "BasicAuthRequireTLS requires BasicAuth and Tls" in result.stdout
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", ports["default"])) != 0


def test_groupReadableAccountStoreIsRefused(tmp_path):
    config, _ = makeOrganization(str(tmp_path))
    os.chmod(os.path.join(str(tmp_path), "accounts"), 0o640)
    result = runTwistd(config)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout
    assert "accounts" in result.stdout and "chmod 600" in result.stdout


def test_busyPortIsAClearError(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config, _ = makeOrganization(str(tmp_path), default=port)
        result = runTwistd(config)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout


WILDCARD = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Everyone]
Usage = Internet
Bindings = 0.0.0.0:{port}
Banner = 220 everyone.fabrikam.com wildcard

[ReceiveConnector Specific]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.6:{port}
RemoteIPRanges = 127.0.0.0/8
Banner = 220 specific.fabrikam.com specific
"""


def test_wildcardAndSpecificBindingOnOnePort(tmp_path):
    port = freePort("0.0.0.0")
    config = writeOrganization(str(tmp_path), WILDCARD.format(port=port))
    server = ServerProcess(config, sockets=1)
    try:
        for host, banner in [("127.0.0.6", "specific"), ("127.0.0.7", "wildcard"),
                             ("127.0.0.1", "wildcard")]:
            raw = RawClient(host, port)
            code, lines = raw.reply()
            assert code == 220 and lines[0].endswith(banner), (host, lines)
            raw.close()
    finally:
        server.stop()


def test_shippedOrganizationStarts(tmp_path):
    """
    The shipped etc/org.ini, copied so its queue lands in a temporary folder,
    with its ports (2525, the console's 8443 and the metrics' 9425) swapped
    for free ones: it starts, and serves the console and the metrics.
    """
    shutil.copytree(os.path.join(REPOSITORY, "etc"), tmp_path / "etc")
    config = tmp_path / "etc" / "org.ini"
    text = config.read_text()
    for host in ("127.0.0.1", "127.0.0.4"):
        assert f"{host}:2525" in text
        text = text.replace(f"{host}:2525", f"{host}:{freePort(host)}")
    assert "https://127.0.0.1:8443/ecp/" in text
    text = text.replace("127.0.0.1:8443", f"127.0.0.1:{freePort()}")
    assert "Binding = 127.0.0.1:9425" in text
    text = text.replace("127.0.0.1:9425", f"127.0.0.1:{freePort()}")
    config.write_text(text)
    server = ServerProcess(str(config), sockets=3)
    server.waitFor("console listening on https://127.0.0.1:")
    server.waitFor("serving /metrics and /health on http://127.0.0.1:")
    try:
        assert os.path.isdir(tmp_path / "var" / "HubA" / "queue")
    finally:
        server.stop()


def test_theDefaultLogLevelLeavesOutTheLinesPerMessage(tmp_path):
    """
    At the default level (info) neither the main process nor a receive
    worker names each message accepted; local delivery is still logged.
    """
    config, ports = makeOrganization(str(tmp_path))
    server = ServerProcess(config, sockets=3, workers=1, logLevel="info")
    try:
        with smtplib.SMTP("127.0.0.3", ports["internet"], timeout=60) as client:
            client.sendmail("someone@example.org", ["kim@fabrikam.com"], b"Subject: quiet\r\n\r\nHello\r\n")
            reply = client.noop()
        assert reply[0] == 250
        server.waitFor("delivered ")
        output = server.drain()
        assert " accepted " not in output, output
    finally:
        server.stop()
