"""
The C{exmta} command, run as a user runs it: in a subprocess, on real files.
"""

import os
import pty
import select
import subprocess
import sys

import pytest

from exmta.auth.accounts import AccountStore
from exmta.auth.credentials import CredentialStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Client HubA]
Usage = Client
RemoteIPRanges = 0.0.0.0-255.255.255.255
"""


def exmta(*arguments, input=None):
    """
    Run C{exmta ARGUMENTS} with this checkout first on the path.

    @return: the L{subprocess.CompletedProcess}, output as text.
    """
    return subprocess.run(
        [sys.executable, "-m", "exmta.cli", *arguments],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


def failed(result):
    """
    @return: the one-line error C{result} printed, checking that it failed
        the way a user should see it fail.
    """
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("exmta: ")
    assert result.stderr.count("\n") == 1
    return result.stderr.rstrip("\n")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "org.ini"
    path.write_text(ORGANIZATION)
    return str(path)


def accountsOf(config):
    return os.path.join(os.path.dirname(config), "accounts")


def test_checkConfig(config):
    result = exmta("check-config", "-c", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{config}: OK (TransportServers: 1, ReceiveConnectors: 1, SendConnectors: 0, "
        "AcceptedDomains: 1, Mailboxes: 1, accounts: 0, credentials: 0)\n"
    )


def test_checkConfigBroken(config):
    with open(config, "a") as handle:
        handle.write("MaxMessageSize = 3GB\n")
    message = failed(exmta("check-config", "--config", config))
    assert message.startswith(f"exmta: {config}:12: [ReceiveConnector Client HubA] MaxMessageSize: ")


def test_checkConfigRefusesAnUnknownTransportAgent(config):
    with open(config, "a") as handle:
        handle.write("\n[TransportAgent NoSuchAgent]\nPriority = 1\n")
    message = failed(exmta("check-config", "-c", config))
    assert message.startswith(f"exmta: {config}:13: [TransportAgent NoSuchAgent]: ")
    assert "no transport agent plugin is named 'NoSuchAgent'" in message


def test_checkConfigMissing(tmp_path):
    missing = str(tmp_path / "org.ini")
    assert failed(exmta("check-config", "-c", missing)) == (
        f"exmta: {missing}: cannot read: No such file or directory"
    )


def test_checkConfigRefusesAnAccountStoreOpenToOthers(config):
    assert exmta("account", "set", "-c", config, "kim@fabrikam.com", input="Kim-Pa55\n").returncode == 0
    os.chmod(accountsOf(config), 0o644)
    message = failed(exmta("check-config", "-c", config))
    assert message.startswith(f"exmta: {accountsOf(config)}: is readable by group or others (mode 0644)")
    assert message.endswith(f"chmod 600 {accountsOf(config)}")


def test_accountSetListRemove(config):
    for name in ("SmtpGateway@Fabrikam.com", "kim@fabrikam.com"):
        result = exmta("account", "set", "-c", config, name, input="Gateway-Pa55word!\n")
        assert result.returncode == 0, result.stderr
    assert os.stat(accountsOf(config)).st_mode & 0o777 == 0o600
    with open(accountsOf(config)) as handle:
        assert "Gateway-Pa55word!" not in handle.read()

    listed = exmta("account", "list", "-c", config)
    assert (listed.returncode, listed.stdout) == (0, "kim@fabrikam.com\nsmtpgateway@fabrikam.com\n")
    assert "accounts: 2, credentials: 0)" in exmta("check-config", "-c", config).stdout

    assert exmta("account", "remove", "-c", config, "KIM@fabrikam.com").returncode == 0
    assert exmta("account", "list", "-c", config).stdout == "smtpgateway@fabrikam.com\n"
    assert failed(exmta("account", "remove", "-c", config, "kim@fabrikam.com")) == (
        f"exmta: no account kim@fabrikam.com in {accountsOf(config)}"
    )


def test_accountSetTheStoredPasswordIsTheLineWithoutItsEnd(config):
    exmta("account", "set", "-c", config, "kim@fabrikam.com", input=" Kim Pa55 \r\nmore\n")
    assert AccountStore.open(accountsOf(config)).verify("kim@fabrikam.com", " Kim Pa55 ")


@pytest.mark.parametrize("input", ["", "\n"])
def test_accountSetRefusesAnEmptyPassword(config, input):
    result = exmta("account", "set", "-c", config, "kim@fabrikam.com", input=input)
    assert failed(result) == "exmta: refusing an empty password"
    assert not os.path.exists(accountsOf(config))


def test_accountSetRefusesWhatIsNotAUserPrincipalName(config):
    message = failed(exmta("account", "set", "-c", config, "kim", input="Pa55\n"))
    assert message.startswith("exmta: 'kim' is not a user principal name")


def test_accountOnABrokenConfig(config):
    with open(config, "a") as handle:
        handle.write("Usage = Nonsense\n")
    message = failed(exmta("account", "list", "-c", config))
    assert message.startswith(f"exmta: {config}:12: [ReceiveConnector Client HubA] Usage: ")


def test_usageErrorsAreArgparseErrors():
    result = exmta("account")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage: exmta account" in result.stderr


def onTerminal(arguments, answers):
    """
    Run C{exmta ARGUMENTS} on a pseudo-terminal, answering each prompt in
    C{answers} (a mapping of prompt to the line to type) when it appears.

    @return: the exit status and everything written to the terminal.
    """
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "exmta.cli", *arguments],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    pending = dict(answers)
    try:
        while True:
            readable, _, _ = select.select([controller], [], [], 30)
            assert readable, f"no output from exmta; so far: {seen!r}"
            try:
                chunk = os.read(controller, 1024)
            except OSError:  # Linux: the other end is closed
                break
            if not chunk:
                break
            seen += chunk
            for prompt, answer in list(pending.items()):
                # getpass turns echo off, flushing typed-ahead input, before
                # it prompts: answer only once the prompt shows.
                if seen.endswith(prompt.encode()):
                    os.write(controller, answer.encode() + b"\n")
                    del pending[prompt]
    finally:
        os.close(controller)
    return process.wait(timeout=60), seen.decode()


def test_accountSetOnATerminalAsksTwice(config):
    status, output = onTerminal(
        ["account", "set", "-c", config, "kim@fabrikam.com"],
        {"Password: ": "Kim-Pa55", "Password again: ": "Kim-Pa56"},
    )
    assert status == 1
    assert "exmta: the passwords do not match" in output
    assert "Kim-Pa5" not in output

    status, output = onTerminal(
        ["account", "set", "-c", config, "kim@fabrikam.com"],
        {"Password: ": "Kim-Pa55", "Password again: ": "Kim-Pa55"},
    )
    assert status == 0, output
    assert "Kim-Pa55" not in output
    assert exmta("account", "list", "-c", config).stdout == "kim@fabrikam.com\n"


# Credentials: the passwords send connectors log on to smart hosts with

SEND_CONNECTOR = """
[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = smtpgateway1.contoso.com
DNSRoutingEnabled = $false
SmartHostAuthMechanism = BasicAuth, BasicAuthRequireTLS
AuthenticationCredential = ToInternetGateway
"""

SECRET = "Gateway-Pa55word!"


def credentialsOf(config):
    return os.path.join(os.path.dirname(config), "credentials")


def test_credentialSetListRemove(config):
    for name, user in [("ToInternetGateway", "smtpgateway@contoso.com"), ("Backup", "relay")]:
        result = exmta("credential", "set", "-c", config, name, user, input=SECRET + "\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"set the credential {name} (user name {user}) in {credentialsOf(config)}\n"
        assert SECRET not in result.stdout + result.stderr
    assert os.stat(credentialsOf(config)).st_mode & 0o777 == 0o600
    assert CredentialStore.open(credentialsOf(config)).get("ToInternetGateway") == (
        "smtpgateway@contoso.com",
        SECRET,
    )

    listed = exmta("credential", "list", "-c", config)
    assert (listed.returncode, listed.stdout) == (
        0,
        "Backup relay\nToInternetGateway smtpgateway@contoso.com\n",
    )
    assert "credentials: 2)" in exmta("check-config", "-c", config).stdout

    assert exmta("credential", "remove", "-c", config, "backup").returncode == 0
    assert exmta("credential", "list", "-c", config).stdout == "ToInternetGateway smtpgateway@contoso.com\n"
    assert failed(exmta("credential", "remove", "-c", config, "Backup")) == (
        f"exmta: no credential Backup in {credentialsOf(config)}"
    )


def test_credentialSetTheStoredPasswordIsTheLineWithoutItsEnd(config):
    exmta("credential", "set", "-c", config, "gw", "u", input=" Pa55 : word \r\nmore\n")
    assert CredentialStore.open(credentialsOf(config)).get("gw").password == " Pa55 : word "


@pytest.mark.parametrize("input", ["", "\n"])
def test_credentialSetRefusesAnEmptyPassword(config, input):
    assert failed(exmta("credential", "set", "-c", config, "gw", "u", input=input)) == (
        "exmta: refusing an empty password"
    )
    assert not os.path.exists(credentialsOf(config))


@pytest.mark.parametrize(
    "name, user, message",
    [
        ("user:Pa55", "u", "exmta: 'user:Pa55' is not a credential name"),
        ("gw", " u", "exmta: ' u' is not a user name"),
    ],
)
def test_credentialSetRefusesBadNames(config, name, user, message):
    assert failed(exmta("credential", "set", "-c", config, name, user, input="p\n")).startswith(message)
    assert not os.path.exists(credentialsOf(config))


def test_checkConfigReportsAMissingCredential(config):
    with open(config, "a") as handle:
        handle.write(SEND_CONNECTOR)
    line = ORGANIZATION.count("\n") + SEND_CONNECTOR.count("\n")
    assert failed(exmta("check-config", "-c", config)) == (
        f"exmta: {config}:{line}: [SendConnector ToInternetGateway] AuthenticationCredential: "
        f"no credential named 'ToInternetGateway' in {credentialsOf(config)}; add it with: "
        f"exmta credential set -c {config} ToInternetGateway USERNAME"
    )
    exmta("credential", "set", "-c", config, "ToInternetGateway", "gw", input="p\n")
    result = exmta("check-config", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "SendConnectors: 1," in result.stdout and "credentials: 1)" in result.stdout


def test_checkConfigRefusesACredentialStoreOpenToOthers(config):
    assert exmta("credential", "set", "-c", config, "gw", "u", input="p\n").returncode == 0
    os.chmod(credentialsOf(config), 0o640)
    message = failed(exmta("check-config", "-c", config))
    assert message == (
        f"exmta: {credentialsOf(config)}: is readable by group or others (mode 0640); "
        f"the passwords must be private: run chmod 600 {credentialsOf(config)}"
    )
    assert failed(exmta("credential", "list", "-c", config)) == message


def test_credentialListNeverShowsPasswords(config):
    exmta("credential", "set", "-c", config, "gw", "smtpgateway", input=SECRET + "\n")
    result = exmta("credential", "list", "-c", config)
    assert result.stdout == "gw smtpgateway\n"
    with open(credentialsOf(config)) as handle:
        encoded = handle.read().strip().rpartition(":")[2]
    assert SECRET not in result.stdout and encoded not in result.stdout


def test_credentialUsage():
    result = exmta("credential", "set", "-c", "etc/org.ini", "gw")
    assert result.returncode == 2
    assert "usage: exmta credential set" in result.stderr and "USERNAME" in result.stderr


def test_credentialSetOnATerminalAsksTwice(config):
    status, output = onTerminal(
        ["credential", "set", "-c", config, "gw", "smtpgateway"],
        {"Password: ": SECRET, "Password again: ": SECRET + "x"},
    )
    assert status == 1
    assert "exmta: the passwords do not match" in output
    assert SECRET not in output

    status, output = onTerminal(
        ["credential", "set", "-c", config, "gw", "smtpgateway"],
        {"Password: ": SECRET, "Password again: ": SECRET},
    )
    assert status == 0, output
    assert SECRET not in output
    assert CredentialStore.open(credentialsOf(config)).get("gw") == ("smtpgateway", SECRET)
