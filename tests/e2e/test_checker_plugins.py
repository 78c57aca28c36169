"""
Credential checker plugins in a real C{twistd exmta}: a connector whose
CredentialCheckers lists Accounts then PasswdFile lets in, over a real
socket with AUTH PLAIN and LOGIN, users of either; a wrong password is
refused; and an unknown checker stops the start, and C{exmta
check-config}, naming its line.
"""

import os
import smtplib
import subprocess
import sys

import argon2
import pytest

from tests.e2e.harness import REPOSITORY, ServerProcess, freePort, runTwistd, writeOrganization

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[Mailbox Lee Gu]
PrimarySmtpAddress = lee@fabrikam.com

[ReceiveConnector Client HubA]
Usage = Client
Bindings = 127.0.0.1:{port}
RemoteIPRanges = 127.0.0.1
AuthMechanism = Tls, BasicAuth
AuthTarpitInterval = 00:00:00
CredentialCheckers = {checkers}

[CredentialChecker PasswdFile]
Path = dovecot-users
"""

# Dovecot's own format: doveadm pw -s ARGON2ID writes this prefix.
LEE_HASH = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("Lee-Pa55")


def makeOrganization(folder, port, checkers):
    config = writeOrganization(
        folder,
        ORGANIZATION.format(port=port, checkers=checkers),
        accounts=[("kim@fabrikam.com", "Kim-Pa55")],
    )
    users = os.path.join(folder, "dovecot-users")
    with open(users, "w") as handle:
        handle.write(f"lee@fabrikam.com:{{ARGON2ID}}{LEE_HASH}::::::\n")
    os.chmod(users, 0o640)
    return config


@pytest.fixture(scope="module", params=[0, 2], ids=["one process", "two receive workers"])
def server(tmp_path_factory, request):
    """
    The checkers run where the sessions do: in the server's process, or in
    each of its receive workers.
    """
    port = freePort()
    config = makeOrganization(str(tmp_path_factory.mktemp("checkers")), port, "Accounts, PasswdFile")
    process = ServerProcess(config, sockets=1, workers=request.param)
    yield port
    process.stop()


def login(port, user, password, mechanism):
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        client.ehlo("client.fabrikam.com")
        client.user, client.password = user, password
        authenticate = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login}[mechanism]
        return client.auth(mechanism, authenticate, initial_response_ok=mechanism == "PLAIN")
    except smtplib.SMTPAuthenticationError as error:
        return error.smtp_code, error.smtp_error
    finally:
        client.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize(
    "user, password",
    [("kim@fabrikam.com", "Kim-Pa55"), ("lee@fabrikam.com", "Lee-Pa55")],
    ids=["first checker", "second checker only"],
)
def test_usersOfEitherCheckerLogIn(server, user, password, mechanism):
    code, _ = login(server, user, password, mechanism)
    assert code == 235


@pytest.mark.parametrize(
    "user, password",
    [("lee@fabrikam.com", "Kim-Pa55"), ("kim@fabrikam.com", "Lee-Pa55"), ("max@fabrikam.com", "x")],
)
def test_wrongPasswordsAreRefused(server, user, password):
    code, text = login(server, user, password, "PLAIN")
    assert code == 535
    assert text.startswith(b"5.7.3")  # Exchange: 535 5.7.3 Authentication unsuccessful


def test_aLoggedInUserOfTheSecondCheckerSubmits(server):
    with smtplib.SMTP("127.0.0.1", server, timeout=30) as client:
        client.ehlo("client.fabrikam.com")
        client.login("lee@fabrikam.com", "Lee-Pa55")
        refused = client.sendmail(
            "lee@fabrikam.com", ["kim@fabrikam.com"], b"Subject: hi\r\n\r\nHello Kim.\r\n"
        )
        assert refused == {}


def test_anUnknownCheckerStopsTheStartNamingItsLine(tmp_path):
    config = makeOrganization(str(tmp_path), freePort(), "Accounts, Ldap")
    line = next(
        number
        for number, text in enumerate(open(config).read().splitlines(), 1)
        if text.startswith("CredentialCheckers")
    )
    where = f"{config}:{line}"
    result = runTwistd(config)
    assert result.returncode != 0
    assert where in result.stdout
    assert "no credential checker plugin is named 'Ldap'" in result.stdout
    checked = subprocess.run(
        [sys.executable, "-m", "exmta.cli", "check-config", "-c", config],
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1
    assert where in checked.stderr
    assert "CredentialCheckers" in checked.stderr


def test_maxLogonFailuresCountsEveryCheckersRefusals(server):
    """
    MaxLogonFailures (3, Exchange's default) ends the session whichever
    checkers refused the logins.
    """
    import base64

    from tests.e2e.harness import RawClient

    client = RawClient("127.0.0.1", server)
    try:
        assert client.reply()[0] == 220
        assert client.command("EHLO client.fabrikam.com")[0] == 250
        for user, password in (("kim@fabrikam.com", "x"), ("lee@fabrikam.com", "y"), ("max@fabrikam.com", "z")):
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            assert client.command(f"AUTH PLAIN {token}")[0] == 535
        assert client.reply()[0] == 421
        assert client.closedByPeer()
    finally:
        client.close()
