"""
A third-party transport agent installed as its users install one:
examples/hello-agent is pip-installed into a new virtual environment, whose
own twistd runs exmta with the agent enabled in org.ini.  Mail sent over a
real socket arrives with the agent's header, and its refusal reaches the
client.

The new environment sees this interpreter's packages through a .pth file
(Twisted is not downloaded again); the example alone is installed into it,
so the agent can only come from the installed distribution.
"""

import importlib.util
import os
import re
import shutil
import site
import smtplib
import subprocess
import sys

import pytest

import exmta
from tests.e2e import harness
from tests.e2e.harness import REPOSITORY, ServerProcess, freePort, maildirMessages, writeOrganization

EXAMPLE = os.path.join(REPOSITORY, "examples", "hello-agent")
GREETING = "Hi from a third party"

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]
DomainType = Authoritative

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[Mailbox Nobody]
PrimarySmtpAddress = nobody@fabrikam.com

[ReceiveConnector Internet]
Usage = Internet
Bindings = 127.0.0.1:{port}
"""

AGENT = f"""
[TransportAgent HelloAgent]
Enabled = $true
Priority = 1
Greeting = {GREETING}
"""


def canBuildWheelsHere():
    """
    Whether this interpreter's setuptools can build a wheel by itself
    (setuptools 70.1 and later, or the wheel package beside it); Debian 12's
    venv has setuptools 66 without wheel, and then pip fetches a build
    backend from PyPI instead.
    """
    if importlib.util.find_spec("setuptools") is None:
        return False
    return (
        importlib.util.find_spec("wheel") is not None
        or importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
    )


def makeEnvironment(folder):
    """
    A virtual environment in C{folder} with examples/hello-agent installed
    by pip and a C{bin/twistd}; everything else it imports is this
    interpreter's.

    @return: the path of its python.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", folder], check=True)
    python = os.path.join(folder, "bin", "python")
    ownPackages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    exmtaLocation = os.path.dirname(os.path.dirname(os.path.abspath(exmta.__file__)))
    with open(os.path.join(ownPackages, "test-interpreter.pth"), "w") as handle:
        handle.write("\n".join([*site.getsitepackages(), exmtaLocation]) + "\n")
    # pip builds in the source folder: build from a copy, not the checkout.
    source = os.path.join(os.path.dirname(folder), "hello-agent")
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    isolation = ["--no-build-isolation"] if canBuildWheelsHere() else []
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", *isolation, source],
        check=True,
    )
    twistd = os.path.join(folder, "bin", "twistd")
    with open(twistd, "w") as handle:
        handle.write(f"#!{python}\nimport sys\nfrom twisted.scripts.twistd import run\nsys.exit(run())\n")
    os.chmod(twistd, 0o755)
    return python


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    return makeEnvironment(str(tmp_path_factory.mktemp("hello-agent") / "venv"))


@pytest.fixture(scope="module")
def server(environment, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("org"))
    port = freePort()
    config = writeOrganization(folder, ORGANIZATION.format(port=port) + AGENT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "TWISTD", os.path.join(os.path.dirname(environment), "twistd"))
        process = ServerProcess(config, sockets=1)
    yield process, folder, port
    process.stop()


def test_installedIntoTheEnvironmentOnly(environment):
    found = subprocess.run(
        [environment, "-c", "import exmta.plugins.hello_agent as m; print(m.__file__)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    assert found.startswith(os.path.dirname(os.path.dirname(environment)))
    assert importlib.util.find_spec("exmta.plugins.hello_agent") is None


def test_greetingHeaderOnDeliveredMail(server):
    process, folder, port = server
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.contoso.com")
        assert client.mail("a@contoso.com")[0] == 250
        assert client.rcpt("kim@fabrikam.com")[0] == 250
        code, text = client.data(b"Subject: greet me\r\n\r\nHello.\r\n")
        assert code == 250, text
    queueId = re.search(rb"<([0-9A-F]+)@", text).group(1).decode()
    process.waitFor(f"delivered {queueId}")
    messages = maildirMessages(os.path.join(folder, "var", "mailboxes", "kim@fabrikam.com"))
    assert len(messages) == 1
    header, _, body = messages[0].partition(b"\r\n\r\n")
    assert f"X-Hello: {GREETING}".encode() in header.split(b"\r\n")
    assert b"Subject: greet me" in header
    assert body == b"Hello.\r\n"


def test_nobodyRefusedAtRcpt(server):
    _, _, port = server
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.contoso.com")
        assert client.mail("a@contoso.com")[0] == 250
        code, text = client.rcpt("nobody@fabrikam.com")
        assert (code, text) == (550, b"5.1.1 Nobody lives here")
        assert client.rcpt("kim@fabrikam.com")[0] == 250


def test_installTransportAgentInTheShell(environment, tmp_path):
    config = writeOrganization(str(tmp_path), ORGANIZATION.format(port=freePort()))

    def shell(command):
        return subprocess.run(
            [environment, "-m", "exmta.cli", "shell", "-c", config, "-Command", command],
            capture_output=True, text=True, timeout=120,
        )

    installed = shell("Install-TransportAgent -Name HelloAgent")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    with open(config) as handle:
        assert "[TransportAgent HelloAgent]" in handle.read()
    listed = shell("Get-TransportAgent")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "HelloAgent" in listed.stdout
