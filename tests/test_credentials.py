"""
The credential store (L{exmta.auth.credentials}): the user names and
passwords send connectors log on to smart hosts with, on real files.
"""

import base64
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exmta.auth.credentials import (
    Credential,
    CredentialStore,
    checkCredentials,
    missingCredentials,
)
from exmta.config import parseOrganization
from exmta.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET = "Gateway-Pa55word!"


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "credentials")


def mode(path):
    return os.stat(path).st_mode & 0o777


def private(path, text):
    """
    Write C{text} to C{path} as a file only its owner may read.
    """
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_roundTrip(path):
    store = CredentialStore.open(path)
    store.set("ToInternetGateway", "smtpgateway@contoso.com", SECRET)
    store.set("Backup", "relay", "other")
    reopened = CredentialStore.open(path)
    assert reopened.get("ToInternetGateway") == ("smtpgateway@contoso.com", SECRET)
    username, password = reopened.get("backup")
    assert (username, password) == ("relay", "other")
    assert reopened.names() == ["Backup", "ToInternetGateway"]
    assert reopened.usernames() == [("Backup", "relay"), ("ToInternetGateway", "smtpgateway@contoso.com")]
    assert "toInternetGateway" in reopened and "Other" not in reopened


def test_theFileFormat(path):
    CredentialStore.open(path).set("ToInternetGateway", "smtpgateway@contoso.com", SECRET)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    assert text == f"ToInternetGateway:smtpgateway@contoso.com:{b64(SECRET)}\n"
    assert SECRET not in text


def test_aCredentialHidesItsPassword(path):
    store = CredentialStore.open(path)
    store.set("gw", "smtpgateway", SECRET)
    credential = store.get("gw")
    assert isinstance(credential, Credential)
    assert (credential.username, credential.password) == ("smtpgateway", SECRET)
    for shown in (repr(credential), str(credential), f"{credential}", repr([credential]), repr(store)):
        assert SECRET not in shown
    assert repr(credential) == "Credential(username='smtpgateway', password=<hidden>)"


@pytest.mark.parametrize(
    "username, password",
    [
        ("DOMAIN\\smtpgateway", "pass:with:colons"),
        ("user:with:colons", "Pa55"),
        ("smtp gateway", " spaces around "),
        ("kim@fabrikam.com", "ünïcødé€"),
        ("u", "=="),
        ("u", "line\nbreak\r\n"),
    ],
)
def test_anyPasswordAndUserNameWithColons(path, username, password):
    CredentialStore.open(path).set("gw", username, password)
    assert CredentialStore.open(path).get("gw") == (username, password)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1).filter(lambda u: u == u.strip()),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
)
def test_roundTripAnything(tmp_path, username, password):
    path = str(tmp_path / "credentials")
    CredentialStore.open(path).set("gw", username, password)
    assert CredentialStore.open(path).get("gw") == (username, password)


def test_setReplacesAndKeepsCommentsAndOrder(path):
    private(path, f"# outbound\nB:b:{b64('1')}\n\nA:a:{b64('2')}\n")
    store = CredentialStore.open(path)
    store.set("b", "bee", "3")
    store.set("C", "c", "4")
    with open(path) as handle:
        assert handle.read() == f"# outbound\nb:bee:{b64('3')}\n\nA:a:{b64('2')}\nC:c:{b64('4')}\n"
    assert store.get("B") == ("bee", "3")


def test_remove(path):
    store = CredentialStore.open(path)
    store.set("gw", "u", "p")
    store.set("other", "u", "p")
    store.remove("GW")
    assert store.names() == ["other"]
    with pytest.raises(KeyError):
        store.get("gw")
    with pytest.raises(KeyError):
        store.remove("gw")


def test_missingFileIsAnEmptyStoreUntilTheFirstWrite(path):
    store = CredentialStore.open(path)
    assert not os.path.exists(path)
    assert store.names() == [] and store.usernames() == []
    with pytest.raises(KeyError):
        store.get("gw")


def test_writesArePrivateWhateverTheUmask(path):
    previous = os.umask(0)
    try:
        store = CredentialStore.open(path)
        store.set("gw", "u", SECRET)
        assert mode(path) == 0o600
        assert mode(path + ".lock") == 0o600
        store.remove("gw")
        assert mode(path) == 0o600
    finally:
        os.umask(previous)
    assert sorted(os.listdir(os.path.dirname(path))) == ["credentials", "credentials.lock"]


@pytest.mark.parametrize("fileMode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_refusesAFileOpenToOthers(path, fileMode):
    private(path, f"gw:u:{b64(SECRET)}\n")
    os.chmod(path, fileMode)
    with pytest.raises(ConfigError) as raised:
        CredentialStore.open(path)
    assert (raised.value.path, raised.value.line) == (path, None)
    message = str(raised.value)
    access = "readable" if fileMode & 0o044 else "writable"
    assert message == (
        f"{path}: is {access} by group or others (mode {fileMode:04o}); the passwords "
        f"must be private: run chmod 600 {path}"
    )


def test_refusesAFileThatBecameOpenToOthers(path):
    store = CredentialStore.open(path)
    store.set("gw", "u", SECRET)
    os.chmod(path, 0o644)
    # Met after start-up, an unsafe file fails loudly, never as a missing credential.
    with pytest.raises(ConfigError):
        store.get("gw")
    with pytest.raises(ConfigError):
        store.set("gw", "u", "new")
    with pytest.raises(ConfigError):
        store.remove("gw")


@pytest.mark.parametrize(
    "line, problem",
    [
        ("gw", "expected 'name:username:base64 password'"),
        (f"gw:{b64(SECRET)}", "expected 'name:username:base64 password'"),
        (f":u:{b64(SECRET)}", "expected 'name:username:base64 password'; the name is letters, digits"),
        (f"g w:u:{b64(SECRET)}", "expected 'name:username:base64 password'; the name is letters"),
        (f"gw::{b64(SECRET)}", "the user name or password of gw is malformed"),
        (f"gw:u:{SECRET}", "the user name or password of gw is malformed"),
        ("gw:u:", "the user name or password of gw is malformed"),
        ("gw:u:" + base64.b64encode(b"\xff\xfe").decode(), "the user name or password of gw is malformed"),
        (f"Relay:u:{b64(SECRET)}", "a second line for Relay (the first is line 2)"),
    ],
)
def test_malformedLine(path, line, problem):
    private(path, f"# credentials\nrelay:u:{b64('x')}\n\n{line}\n")
    with pytest.raises(ConfigError) as raised:
        CredentialStore.open(path)
    assert (raised.value.path, raised.value.line) == (path, 4)
    assert str(raised.value).startswith(f"{path}:4: {problem}")
    assert SECRET not in str(raised.value) and b64(SECRET) not in str(raised.value)


def test_notUTF8(path):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
        handle.write(b"g\xe9:u:eA==\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        CredentialStore.open(path)


@pytest.mark.parametrize(
    "name, username, password, message",
    [
        ("user:Pa55", "u", "p", "is not a credential name"),
        ("", "u", "p", "is not a credential name"),
        ("gw", "", "p", "the user name is empty"),
        ("gw", " u", "p", "is not a user name"),
        ("gw", "u\n", "p", "is not a user name"),
        ("gw", "u\x00v", "p", "is not a user name"),
        ("gw", "u", "", "the password is empty"),
    ],
)
def test_setRefuses(path, name, username, password, message):
    with pytest.raises(ValueError, match=message):
        CredentialStore.open(path).set(name, username, password)
    assert not os.path.exists(path)


WRITER = """
import sys
from exmta.auth.credentials import CredentialStore
path, who = sys.argv[1:]
store = CredentialStore.open(path)
store.set(who, who, "Pa55-" + who)
for n in range(100):
    store.remove(f"{who}{n}")
"""


def test_concurrentWritersFromTwoProcessesKeepEveryChange(path):
    private(path, "".join(f"{who}{n}:u:eA==\n" for who in "ab" for n in range(100)))
    environment = dict(os.environ, PYTHONPATH=ROOT)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, path, who], cwd=ROOT, env=environment)
        for who in "ab"
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    store = CredentialStore.open(path)
    assert store.names() == ["a", "b"]
    assert store.get("a") == ("a", "Pa55-a")
    assert mode(path) == 0o600


# Every AuthenticationCredential must exist

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[SendConnector Anonymous]
AddressSpaces = contoso.com
SmartHosts = smtpgateway2.contoso.com
DNSRoutingEnabled = $false

[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = smtpgateway1.contoso.com
DNSRoutingEnabled = $false
SmartHostAuthMechanism = BasicAuth, BasicAuthRequireTLS
AuthenticationCredential = ToInternetGateway

[SendConnector Spare]
Enabled = $false
AddressSpaces = fabrikam.net
SmartHosts = smtpgateway3.contoso.com
DNSRoutingEnabled = $false
SmartHostAuthMechanism = BasicAuth
AuthenticationCredential = Spare
"""


def test_missingCredentials(path):
    organization = parseOrganization(ORGANIZATION, "/etc/exmta/org.ini")
    store = CredentialStore.open(path)
    assert [c.name for c in missingCredentials(organization, store)] == ["ToInternetGateway", "Spare"]
    store.set("toInternetGateway", "u", "p")
    # A disabled connector counts: enabling it must not break a start.
    assert [c.name for c in missingCredentials(organization, store)] == ["Spare"]
    store.set("Spare", "u", "p")
    assert missingCredentials(organization, store) == ()
    checkCredentials(organization, store)


def test_checkCredentialsPointsAtTheAuthenticationCredentialLine(path):
    organization = parseOrganization(ORGANIZATION, "/etc/exmta/org.ini")
    store = CredentialStore.open(path)
    with pytest.raises(ConfigError) as raised:
        checkCredentials(organization, store)
    error = raised.value
    assert (error.path, error.line, error.section, error.key) == (
        "/etc/exmta/org.ini",
        14,
        "SendConnector ToInternetGateway",
        "AuthenticationCredential",
    )
    assert str(error) == (
        "/etc/exmta/org.ini:14: [SendConnector ToInternetGateway] AuthenticationCredential: "
        f"no credential named 'ToInternetGateway' in {path}; add it with: "
        "exmta credential set -c /etc/exmta/org.ini ToInternetGateway USERNAME"
    )
