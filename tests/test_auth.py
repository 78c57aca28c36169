"""
Authentication: the account store on real files, the cred checkers through
a real portal, and the rights the realm gives each kind of principal.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import argon2
import pytest
from twisted.cred.checkers import ANONYMOUS
from twisted.cred.credentials import Anonymous, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from exmta.auth import ExternallySecured, permissions, portalFor
from exmta.auth.accounts import AccountStore
from exmta.auth.checkers import ExternalTrustChecker, WrongPassword
from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.errors import ConfigError
from exmta.interfaces import IAccountStore, IPrincipal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# For files written by hand in tests: a valid argon2 hash that is cheap to make.
CHEAP_HASH = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x")

ORGANIZATION = r"""
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com
EmailAddresses = smtp:kim.akers@fabrikam.com
UserPrincipalName = Kim@Fabrikam.com

[Mailbox Shared]
PrimarySmtpAddress = shared@fabrikam.com

[ReceiveConnector Client HubA]
Usage = Client
RemoteIPRanges = 0.0.0.0-255.255.255.255

[ReceiveConnector AnonymousRelay]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 0.0.0.0:2526
RemoteIPRanges = 192.0.2.10

[ReceiveConnector FromGateway]
Usage = Internal
RemoteIPRanges = 198.51.100.0/24, 2001:db8::/32
AuthMechanism = ExternalAuthoritative
"""


def connector(name, extra=""):
    """
    @return: the organization of L{ORGANIZATION} plus C{extra}, and its
        receive connector C{name}.
    """
    organization = parseOrganization(ORGANIZATION + extra, "/etc/exmta/org.ini")
    for candidate in organization.receiveConnectors:
        if candidate.name == name:
            return organization, candidate
    raise LookupError(name)


def principal(avatarId, connectorName, extra=""):
    organization, chosen = connector(connectorName, extra)
    interface, avatar, logout = ConnectorRealm(organization, chosen).requestAvatar(
        avatarId, None, IPrincipal
    )
    assert interface is IPrincipal
    logout()
    return avatar


def mode(path):
    return os.stat(path).st_mode & 0o777


# The account store


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "accounts")


def test_roundTrip(path):
    store = AccountStore.open(path)
    assert verifyObject(IAccountStore, store)
    assert store.names() == []
    store.setPassword("kim@fabrikam.com", "Kim-Pa55")
    store.setPassword("smtpgateway@fabrikam.com", "Gateway-Pa55word!")
    reopened = AccountStore.open(path)
    assert reopened.names() == ["kim@fabrikam.com", "smtpgateway@fabrikam.com"]
    assert reopened.verify("kim@fabrikam.com", "Kim-Pa55")
    assert reopened.verify("smtpgateway@fabrikam.com", b"Gateway-Pa55word!")


def test_wrongPasswordAndUnknownUser(path):
    store = AccountStore.open(path)
    store.setPassword("kim@fabrikam.com", "Kim-Pa55")
    assert store.verify("kim@fabrikam.com", "kim-pa55") is False
    assert store.verify("nobody@fabrikam.com", "Kim-Pa55") is False
    assert store.verify("kim@fabrikam.com", "") is False


def test_userPrincipalNameIsCaseInsensitive(path):
    store = AccountStore.open(path)
    store.setPassword("Kim@Fabrikam.COM", "Kim-Pa55")
    assert store.names() == ["kim@fabrikam.com"]
    assert store.verify("KIM@fabrikam.com", "Kim-Pa55")


def test_changingAPasswordReplacesTheLineAndKeepsComments(path):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(f"# gateways\nrelay@fabrikam.com:{CHEAP_HASH}\n\n# people\n")
    store = AccountStore.open(path)
    store.setPassword("relay@fabrikam.com", "New-Pa55")
    store.setPassword("kim@fabrikam.com", "Kim-Pa55")
    store.remove("KIM@fabrikam.com")
    with open(path) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "# gateways"
    assert lines[1].startswith("relay@fabrikam.com:$argon2id$")
    assert lines[1] != f"relay@fabrikam.com:{CHEAP_HASH}"
    assert lines[2:] == ["", "# people"]
    assert store.verify("relay@fabrikam.com", "New-Pa55")


def test_removeAnUnknownAccount(path):
    with pytest.raises(KeyError):
        AccountStore.open(path).remove("nobody@fabrikam.com")


def test_missingFileIsAnEmptyStoreUntilTheFirstWrite(path):
    store = AccountStore.open(path)
    assert not os.path.exists(path)
    assert store.verify("kim@fabrikam.com", "anything") is False


def test_writesArePrivateWhateverTheUmask(path):
    previous = os.umask(0)
    try:
        store = AccountStore.open(path)
        store.setPassword("kim@fabrikam.com", "Kim-Pa55")
        assert mode(path) == 0o600
        assert mode(path + ".lock") == 0o600
        store.remove("kim@fabrikam.com")
        assert mode(path) == 0o600
    finally:
        os.umask(previous)
    # Nothing but the store and its lock is left behind.
    assert sorted(os.listdir(os.path.dirname(path))) == ["accounts", "accounts.lock"]


def test_noPlainTextPasswordIsStored(path):
    AccountStore.open(path).setPassword("kim@fabrikam.com", "Kim-Pa55-Secret")
    with open(path, "rb") as handle:
        data = handle.read()
    assert b"Kim-Pa55-Secret" not in data
    assert data.startswith(b"kim@fabrikam.com:$argon2id$")


@pytest.mark.parametrize("fileMode", [0o644, 0o640, 0o604, 0o620])
def test_refusesAFileOpenToOthers(path, fileMode):
    with open(path, "w") as handle:
        handle.write(f"kim@fabrikam.com:{CHEAP_HASH}\n")
    os.chmod(path, fileMode)
    with pytest.raises(ConfigError) as raised:
        AccountStore.open(path)
    assert raised.value.path == path
    message = str(raised.value)
    assert message.startswith(f"{path}: is ")
    assert f"(mode {fileMode:04o})" in message
    assert f"chmod 600 {path}" in message


def test_refusesToWriteAFileOpenToOthers(path):
    store = AccountStore.open(path)
    store.setPassword("kim@fabrikam.com", "Kim-Pa55")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError):
        store.remove("kim@fabrikam.com")
    # An unsafe file met after startup fails loudly rather than as a wrong password.
    with pytest.raises(ConfigError):
        store.verify("kim@fabrikam.com", "Kim-Pa55")


@pytest.mark.parametrize(
    "line, problem",
    [
        ("kim@fabrikam.com", "expected 'userprincipalname:<argon2 hash>'"),
        (f"kim:{CHEAP_HASH}", "expected 'userprincipalname:<argon2 hash>'"),
        (f":{CHEAP_HASH}", "expected 'userprincipalname:<argon2 hash>'"),
        ("kim@fabrikam.com:plaintext", "the password hash of kim@fabrikam.com is not an argon2 hash"),
        (f"Relay@Fabrikam.com:{CHEAP_HASH}", "a second line for relay@fabrikam.com (the first is line 2)"),
    ],
)
def test_malformedLine(path, line, problem):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(f"# accounts\nrelay@fabrikam.com:{CHEAP_HASH}\n\n{line}\n")
    with pytest.raises(ConfigError) as raised:
        AccountStore.open(path)
    assert (raised.value.path, raised.value.line) == (path, 4)
    assert str(raised.value).startswith(f"{path}:4: {problem}")
    assert "plaintext" not in str(raised.value)


def test_notUTF8(path):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
        handle.write(b"k\xe9@fabrikam.com:x\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        AccountStore.open(path)


@pytest.mark.parametrize("name", ["kim", "kim fabrikam@com", "a:b@fabrikam.com", "", "NT AUTHORITY\\SYSTEM"])
def test_setPasswordRefusesWhatIsNotAUserPrincipalName(path, name):
    with pytest.raises(ValueError, match="is not a user principal name"):
        AccountStore.open(path).setPassword(name, "Pa55")
    assert not os.path.exists(path)


def test_setPasswordRefusesAnEmptyPassword(path):
    with pytest.raises(ValueError, match="empty"):
        AccountStore.open(path).setPassword("kim@fabrikam.com", "")


WRITER = """
import sys
from exmta.auth.accounts import AccountStore
path, who = sys.argv[1:]
store = AccountStore.open(path)
store.setPassword(who + "@fabrikam.com", "Pa55-" + who)
for n in range(100):
    store.remove(f"{who}{n}@fabrikam.com")
"""


def test_concurrentWritersFromTwoProcessesKeepEveryChange(path):
    """
    Two processes each add an account and then remove 100 others, one at a
    time.  Removing needs no hashing, so their read-modify-write cycles
    overlap all the time: without the lock, removed accounts come back.
    """
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        for who in "ab":
            handle.writelines(f"{who}{n}@fabrikam.com:{CHEAP_HASH}\n" for n in range(100))
    environment = dict(os.environ, PYTHONPATH=ROOT)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, path, who], cwd=ROOT, env=environment)
        for who in "ab"
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    store = AccountStore.open(path)
    assert store.names() == ["a@fabrikam.com", "b@fabrikam.com"]
    assert store.verify("a@fabrikam.com", "Pa55-a")
    assert store.verify("b@fabrikam.com", "Pa55-b")
    assert mode(path) == 0o600


# Checkers, through the portal of a connector


class PortalTests(TestCase):
    """
    Logins through L{portalFor}'s portal, with passwords checked in the
    reactor's thread pool.
    """

    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        self.store = AccountStore.open(os.path.join(folder, "accounts"))
        self.store.setPassword("kim@fabrikam.com", "Kim-Pa55")

    def login(self, connectorName, credentials):
        organization, chosen = connector(connectorName)
        portal = portalFor(organization, chosen, self.store, reactor)
        return portal.login(credentials, None, IPrincipal)

    def test_account(self):
        login = self.login("Client HubA", UsernamePassword(b"Kim@Fabrikam.com", b"Kim-Pa55"))

        def loggedIn(result):
            interface, avatar, logout = result
            self.assertIs(interface, IPrincipal)
            self.assertTrue(verifyObject(IPrincipal, avatar))
            self.assertEqual(avatar.name, "kim@fabrikam.com")
            self.assertEqual(avatar.authAs, "Internal")
            self.assertEqual(
                avatar.addresses, {"kim@fabrikam.com", "kim.akers@fabrikam.com"}
            )
            self.assertTrue(avatar.has(permissions.SUBMIT))
            logout()

        return login.addCallback(loggedIn)

    def test_wrongPassword(self):
        """
        The account exists: L{WrongPassword}, so that its name may be logged.
        """
        login = self.login("Client HubA", UsernamePassword(b"kim@fabrikam.com", b"kim-pa55"))
        return self.assertFailure(login, WrongPassword)

    def test_unknownAccount(self):
        """
        Plain L{UnauthorizedLogin}: the name may be a mistyped password.
        """
        login = self.login("Client HubA", UsernamePassword(b"nobody@fabrikam.com", b"Kim-Pa55"))
        refused = self.assertFailure(login, UnauthorizedLogin)
        return refused.addCallback(lambda error: self.assertNotIsInstance(error, WrongPassword))

    def test_userNameNotUTF8(self):
        login = self.login("Client HubA", UsernamePassword(b"k\xe9@fabrikam.com", b"Kim-Pa55"))
        return self.assertFailure(login, UnauthorizedLogin)

    def test_noBasicAuthOnTheConnector(self):
        login = self.login("AnonymousRelay", UsernamePassword(b"kim@fabrikam.com", b"Kim-Pa55"))
        return self.assertFailure(login, UnhandledCredentials)

    def test_anonymousIsALogin(self):
        def loggedIn(result):
            _, avatar, _ = result
            self.assertEqual(avatar.name, permissions.ANONYMOUS)
            self.assertEqual(avatar.authAs, "Anonymous")

        return self.login("Client HubA", Anonymous()).addCallback(loggedIn)

    def test_externallySecuredInsideTheRanges(self):
        def loggedIn(result):
            _, avatar, _ = result
            self.assertEqual(avatar.identities, {permissions.EXTERNALLY_SECURED_SERVERS})
            self.assertEqual(avatar.authAs, "Internal")
            self.assertTrue(avatar.has(permissions.ACCEPT_ANY_RECIPIENT))

        logins = [
            self.login("FromGateway", ExternallySecured(host)).addCallback(loggedIn)
            for host in ("198.51.100.7", "2001:db8::25", "::ffff:198.51.100.8")
        ]
        return logins[0].addCallback(lambda _: logins[1]).addCallback(lambda _: logins[2])

    def test_externallySecuredOutsideTheRanges(self):
        login = self.login("FromGateway", ExternallySecured("203.0.113.5"))
        return self.assertFailure(login, UnauthorizedLogin)

    def test_externallySecuredNotAnAddress(self):
        login = self.login("FromGateway", ExternallySecured("/run/exmta.sock"))
        return self.assertFailure(login, UnauthorizedLogin)

    def test_externallySecuredOnAConnectorWithoutExternalAuthoritative(self):
        # The portal does not even take the credentials...
        login = self.login("AnonymousRelay", ExternallySecured("192.0.2.10"))
        self.assertFailure(login, UnhandledCredentials)
        # ...and the checker, used on its own, refuses them.
        _, relay = connector("AnonymousRelay")
        check = ExternalTrustChecker(relay).requestAvatarId(ExternallySecured("192.0.2.10"))
        self.assertFailure(check, UnauthorizedLogin)
        return login.addCallback(lambda _: check)


# The realm's principals and their rights


ANONYMOUS_RELAY_GRANT = r"""
[ADPermission]
Identity = AnonymousRelay
User = NT AUTHORITY\ANONYMOUS LOGON
ExtendedRights = ms-Exch-SMTP-Accept-Any-Recipient
"""


def test_anonymousNeedsAGrantToRelay():
    anonymous = principal(ANONYMOUS, "AnonymousRelay")
    assert anonymous.name == permissions.ANONYMOUS
    assert anonymous.identities == {permissions.ANONYMOUS}
    assert anonymous.addresses == frozenset()
    assert anonymous.has(permissions.SUBMIT)
    assert not anonymous.has(permissions.ACCEPT_ANY_RECIPIENT)

    granted = principal(ANONYMOUS, "AnonymousRelay", ANONYMOUS_RELAY_GRANT)
    assert granted.has(permissions.ACCEPT_ANY_RECIPIENT)
    assert granted.has(permissions.SUBMIT)


def test_anonymousOnAClientConnectorHoldsNothing():
    assert principal(ANONYMOUS, "Client HubA").rights == frozenset()


def test_accountOnAClientConnector():
    kim = principal("kim@fabrikam.com", "Client HubA")
    assert verifyObject(IPrincipal, kim)
    assert kim.identities == {"kim@fabrikam.com", permissions.AUTHENTICATED_USERS}
    assert kim.authAs == "Internal"
    assert kim.addresses == {"kim@fabrikam.com", "kim.akers@fabrikam.com"}
    assert kim.has(permissions.SUBMIT)
    assert kim.has(permissions.ACCEPT_ANY_RECIPIENT)
    assert not kim.has(permissions.ACCEPT_ANY_SENDER)


def test_accountWithoutAMailboxOwnsNoAddresses():
    gateway = principal("smtpgateway@fabrikam.com", "Client HubA")
    assert gateway.addresses == frozenset()
    assert gateway.has(permissions.SUBMIT)


def test_denyWins():
    deny = r"""
[ADPermission]
Identity = Client HubA
User = Kim@Fabrikam.com
ExtendedRights = ms-Exch-SMTP-Accept-Any-Recipient, ms-Exch-SMTP-Accept-Any-Sender
Deny = $true

[ADPermission]
Identity = Client HubA
User = kim@fabrikam.com
ExtendedRights = ms-Exch-SMTP-Accept-Any-Sender
"""
    kim = principal("kim@fabrikam.com", "Client HubA", deny)
    assert kim.has(permissions.SUBMIT)
    assert not kim.has(permissions.ACCEPT_ANY_RECIPIENT)
    assert not kim.has(permissions.ACCEPT_ANY_SENDER)
    # Entries for one account leave the others alone.
    assert principal("smtpgateway@fabrikam.com", "Client HubA", deny).has(
        permissions.ACCEPT_ANY_RECIPIENT
    )


def test_realmMakesOnlyPrincipals():
    organization, client = connector("Client HubA")
    with pytest.raises(NotImplementedError):
        ConnectorRealm(organization, client).requestAvatar(ANONYMOUS, None, IAccountStore)
