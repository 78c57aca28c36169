"""
Credential checker plugins: the chain BasicAuth asks in CredentialCheckers
order, the built-in Accounts and PasswdFile plugins on real files, and the
configuration errors that name the line at fault.
"""

import os
import shutil
import tempfile

import argon2
import pytest
from twisted.cred.checkers import ANONYMOUS
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from exmta.auth import checkerFactories, connectorChecker, loadCredentialCheckers, makePortal
from exmta.auth.accounts import AccountStore
from exmta.auth.checkers import AccountChecker, CheckerChain, WrongPassword
from exmta.auth.hashing import VerifierBusy
from exmta.auth.passwdfile import PasswdFileChecker, readPasswdFile
from exmta.auth import permissions
from exmta.config import parseOrganization
from exmta.errors import ConfigError
from exmta.interfaces import ICheckerFactory, IPrincipal
from exmta.validation import checkPlugins

CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

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


def organizationIn(folder, extra=""):
    path = os.path.join(folder, "org.ini")
    text = ORGANIZATION + extra
    with open(path, "w") as handle:
        handle.write(text)
    return parseOrganization(text, path)


def configError(folder, extra):
    organization = organizationIn(folder, extra)
    with pytest.raises(ConfigError) as raised:
        checkPlugins(organization, reactor)
    return raised.value


def lineOf(text, needle):
    """
    @return: the number of the line of L{ORGANIZATION} + C{text} holding C{needle}.
    """
    for number, line in enumerate((ORGANIZATION + text).splitlines(), 1):
        if needle in line:
            return number
    raise LookupError(needle)


def writePasswd(path, text, mode=0o640):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def temporaryFolder(case):
    folder = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, folder)
    return folder


# The chain


class Refusing:
    asked = 0

    def requestAvatarId(self, credentials):
        self.asked += 1
        return defer.fail(UnauthorizedLogin())


class Broken:
    def requestAvatarId(self, credentials):
        return defer.fail(OSError("the directory is down"))


class Failing(Refusing):
    def __init__(self, error):
        self.error = error

    def requestAvatarId(self, credentials):
        self.asked += 1
        return defer.fail(self.error)


class Answering:
    def __init__(self, avatarId):
        self.avatarId = avatarId

    def requestAvatarId(self, credentials):
        return defer.succeed(self.avatarId)


class Passwords:
    """
    A checker of a few passwords, answering str avatar ids as plugins must.
    """

    def __init__(self, **passwords):
        self.passwords = passwords

    def requestAvatarId(self, credentials):
        name = credentials.username.decode()
        if self.passwords.get(name) == credentials.password.decode():
            return defer.succeed(name)
        return defer.fail(UnauthorizedLogin())


class CheckerChainTests(SynchronousTestCase):
    def login(self, chain, username, password):
        return chain.requestAvatarId(UsernamePassword(username, password))

    def test_theFirstThatAcceptsDecides(self):
        first = Passwords(**{"kim@fabrikam.com": "one"})
        second = Passwords(**{"kim@fabrikam.com": "two", "lee@fabrikam.com": "three"})
        chain = CheckerChain([("First", first), ("Second", second)])
        self.assertEqual(
            self.successResultOf(self.login(chain, b"kim@fabrikam.com", b"one")),
            "kim@fabrikam.com",
        )
        # Refused by the first, kim is still asked of the second.
        self.assertEqual(
            self.successResultOf(self.login(chain, b"kim@fabrikam.com", b"two")),
            "kim@fabrikam.com",
        )
        # A user only the second knows.
        self.assertEqual(
            self.successResultOf(self.login(chain, b"lee@fabrikam.com", b"three")),
            "lee@fabrikam.com",
        )

    def test_noneAccepts(self):
        refusing = Refusing()
        chain = CheckerChain([("A", refusing), ("B", Passwords(**{"kim@fabrikam.com": "one"}))])
        self.failureResultOf(self.login(chain, b"kim@fabrikam.com", b"wrong"), UnauthorizedLogin)
        self.assertEqual(refusing.asked, 1)

    def test_theFirstIsNotAskedAgainAfterAccepting(self):
        refusing = Refusing()
        chain = CheckerChain([("A", Answering("kim@fabrikam.com")), ("B", refusing)])
        self.successResultOf(self.login(chain, b"kim@fabrikam.com", b"x"))
        self.assertEqual(refusing.asked, 0)

    def test_aWrongPasswordFromAnyCheckerIsTheAnswer(self):
        """
        The account exists for one checker: the chain says so, and its name
        may be logged.
        """
        chain = CheckerChain([("A", Failing(WrongPassword())), ("B", Refusing())])
        self.failureResultOf(self.login(chain, b"kim@fabrikam.com", b"x"), WrongPassword)
        chain = CheckerChain([("A", Refusing()), ("B", Failing(WrongPassword()))])
        self.failureResultOf(self.login(chain, b"kim@fabrikam.com", b"x"), WrongPassword)
        failure = self.failureResultOf(
            self.login(CheckerChain([("A", Refusing()), ("B", Refusing())]), b"kim", b"x")
        )
        self.assertFalse(failure.check(WrongPassword))

    def test_aBusyPoolOrACancelledCheckEndsTheChain(self):
        for error in (VerifierBusy(), defer.CancelledError()):
            second = Refusing()
            chain = CheckerChain([("A", Failing(error)), ("B", second)])
            self.failureResultOf(self.login(chain, b"kim@fabrikam.com", b"x"), type(error))
            self.assertEqual(second.asked, 0)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_aBrokenCheckerIsSkipped(self):
        chain = CheckerChain([("Broken", Broken()), ("B", Passwords(**{"kim@fabrikam.com": "one"}))])
        self.assertEqual(
            self.successResultOf(self.login(chain, b"kim@fabrikam.com", b"one")),
            "kim@fabrikam.com",
        )
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_aBrokenCheckerIsTheAnswerWhenNoneAccepts(self):
        """
        Not "wrong password": the client should hear of a temporary problem.
        """
        chain = CheckerChain([("Broken", Broken()), ("B", Refusing())])
        self.failureResultOf(self.login(chain, b"kim@fabrikam.com", b"one"), OSError)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_avatarIdsAreLowerCaseUserPrincipalNames(self):
        chain = CheckerChain([("A", Answering("Kim@Fabrikam.COM"))])
        self.assertEqual(
            self.successResultOf(self.login(chain, b"kim", b"x")), "kim@fabrikam.com"
        )

    def test_aCheckerCannotLogInAsAWellKnownPrincipal(self):
        for avatarId in (
            permissions.EXTERNALLY_SECURED_SERVERS,
            permissions.ANONYMOUS,
            ANONYMOUS,
            "kim",
            b"kim@fabrikam.com",
        ):
            chain = CheckerChain([("Evil", Answering(avatarId))])
            self.failureResultOf(self.login(chain, b"kim", b"x"), TypeError, ValueError)
            self.flushLoggedErrors(TypeError, ValueError)


# The plugins


def test_builtInCheckersArePlugins():
    factories = checkerFactories()
    assert {"accounts", "passwdfile"} <= set(factories)
    for name in ("accounts", "passwdfile"):
        factory = factories[name]
        assert verifyObject(ICheckerFactory, factory)
        assert factory.name.lower() == name


def test_accountsIsTheDefault(tmp_path):
    organization = organizationIn(str(tmp_path))
    (client,) = organization.receiveConnectors
    assert client.credentialCheckers == ("Accounts",)
    checkers = loadCredentialCheckers(organization, organization.receiveConnectors, reactor)
    assert isinstance(checkers["accounts"], AccountChecker)
    assert checkers["accounts"].store.path == str(tmp_path / "accounts")


def test_aConnectorWithoutBasicAuthAsksNoChecker(tmp_path):
    organization = organizationIn(
        str(tmp_path),
        "\n[ReceiveConnector Internet]\nUsage = Internet\nBindings = 0.0.0.0:25\n",
    )
    internet = organization.receiveConnectors[1]
    assert internet.credentialCheckers == ()
    assert set(loadCredentialCheckers(organization, [internet], reactor)) == set()


def test_passwdFileIsMadeWithItsPath(tmp_path):
    writePasswd(str(tmp_path / "users"), f"lee@fabrikam.com:{{ARGON2ID}}{CHEAP.hash('x')}\n")
    organization = organizationIn(
        str(tmp_path),
        "CredentialCheckers = PasswdFile, Accounts\n\n[CredentialChecker PasswdFile]\nPath = users\n",
    )
    checkers = loadCredentialCheckers(organization, organization.receiveConnectors, reactor)
    assert isinstance(checkers["passwdfile"], PasswdFileChecker)
    assert checkers["passwdfile"].path == str(tmp_path / "users")
    chain = connectorChecker(organization.receiveConnectors[0], checkers)
    assert [name for name, _ in chain.checkers] == ["PasswdFile", "Accounts"]


# Configuration errors


def test_credentialCheckersWithoutBasicAuth(tmp_path):
    extra = "\n[ReceiveConnector Internet]\nUsage = Internet\nBindings = 0.0.0.0:25\nCredentialCheckers = Accounts\n"
    with pytest.raises(ConfigError) as raised:
        organizationIn(str(tmp_path), extra)
    error = raised.value
    assert (error.line, error.section, error.key) == (
        lineOf(extra, "CredentialCheckers"), "ReceiveConnector Internet", "CredentialCheckers",
    )
    assert "BasicAuth" in str(error)


@pytest.mark.parametrize(
    "value, problem",
    [("Accounts, accounts", "twice"), (",", "empty"), ("Acc ounts", "not a plugin name")],
)
def test_credentialCheckersSyntax(tmp_path, value, problem):
    extra = f"CredentialCheckers = {value}\n"
    with pytest.raises(ConfigError, match=problem) as raised:
        organizationIn(str(tmp_path), extra)
    assert raised.value.line == lineOf(extra, "CredentialCheckers")


def test_unknownCheckerNamedByAConnector(tmp_path):
    extra = "CredentialCheckers = Accounts, Ldap\n"
    error = configError(str(tmp_path), extra)
    assert error.path == str(tmp_path / "org.ini")
    assert (error.line, error.section, error.key) == (
        lineOf(extra, "CredentialCheckers"), "ReceiveConnector Client HubA", "CredentialCheckers",
    )
    assert "no credential checker plugin is named 'Ldap'" in str(error)
    assert "Accounts" in str(error) and "PasswdFile" in str(error)


def test_unknownCheckerSection(tmp_path):
    extra = "\n[CredentialChecker Ldap]\nServer = ldap://127.0.0.1\n"
    error = configError(str(tmp_path), extra)
    assert (error.line, error.section) == (lineOf(extra, "[CredentialChecker Ldap]"), "CredentialChecker Ldap")


def test_unknownKeyOfAChecker(tmp_path):
    writePasswd(str(tmp_path / "users"), "")
    extra = (
        "CredentialCheckers = PasswdFile\n\n[CredentialChecker PasswdFile]\n"
        "Comment = Dovecot's users\nPath = users\nScheme = SHA512-CRYPT\n"
    )
    error = configError(str(tmp_path), extra)
    assert (error.line, error.section, error.key) == (
        lineOf(extra, "Scheme"), "CredentialChecker PasswdFile", "Scheme",
    )


def test_accountsTakesNoKeys(tmp_path):
    extra = "\n[CredentialChecker Accounts]\nPath = other\n"
    error = configError(str(tmp_path), extra)
    assert (error.line, error.key) == (lineOf(extra, "Path = other"), "Path")


def test_aCheckerWithoutItsSectionNamesTheConnectorsKey(tmp_path):
    extra = "CredentialCheckers = PasswdFile\n"
    error = configError(str(tmp_path), extra)
    assert (error.line, error.key) == (lineOf(extra, "CredentialCheckers"), "CredentialCheckers")
    assert "Path" in str(error)


def test_aBrokenPasswdFileNamesItsLine(tmp_path):
    writePasswd(str(tmp_path / "users"), "# users\nlee@fabrikam.com:{SHA512-CRYPT}$6$abc$def\n")
    error = configError(
        str(tmp_path), "CredentialCheckers = PasswdFile\n\n[CredentialChecker PasswdFile]\nPath = users\n"
    )
    assert (error.path, error.line) == (str(tmp_path / "users"), 2)
    assert "SHA512-CRYPT" in str(error) and "doveadm pw -s ARGON2ID" in str(error)


def test_aSecondCheckerSectionOfTheSameName(tmp_path):
    with pytest.raises(ConfigError, match="second CredentialChecker"):
        organizationIn(str(tmp_path), "\n[CredentialChecker A]\n\n[CredentialChecker a]\n")


# The passwd-file


def test_readsDovecotAndPlainArgon2Lines(tmp_path):
    kim, lee = CHEAP.hash("kim"), CHEAP.hash("lee")
    path = str(tmp_path / "users")
    writePasswd(
        path,
        "# Dovecot's passdb\n\n"
        f"Kim@Fabrikam.com:{{ARGON2ID}}{kim}:1000:1000::/home/kim::\n"
        f"lee@fabrikam.com:{lee}\n",
    )
    assert readPasswdFile(path) == {"kim@fabrikam.com": kim, "lee@fabrikam.com": lee}


@pytest.mark.parametrize(
    "line, problem",
    [
        ("kim:{hash}", "user principal name"),
        ("kim@fabrikam.com", "no password hash"),
        ("kim@fabrikam.com:{PLAIN}secret", "PLAIN hash"),
        ("kim@fabrikam.com:$2y$05$abcdefghijklmnopqrstuu", "not an argon2 hash"),
        ("kim@fabrikam.com:{hash}\nKIM@fabrikam.com:{hash}", "a second line for kim@fabrikam.com"),
    ],
)
def test_malformedPasswdFile(tmp_path, line, problem):
    path = str(tmp_path / "users")
    writePasswd(path, "# first\n" + line.replace("{hash}", CHEAP.hash("x")) + "\n")
    with pytest.raises(ConfigError, match=problem) as raised:
        readPasswdFile(path)
    assert raised.value.line == line.count("\n") + 2
    assert CHEAP.hash("x")[:20] not in str(raised.value)


def test_passwdFileOpenToOthersIsRefused(tmp_path):
    path = str(tmp_path / "users")
    writePasswd(path, "", mode=0o644)
    with pytest.raises(ConfigError, match="open to others"):
        readPasswdFile(path)


def test_missingPasswdFile(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        readPasswdFile(str(tmp_path / "users"))


class PasswdFileCheckerTests(TestCase):
    """
    Logins checked against a real file in the reactor's thread pool.
    """

    def setUp(self):
        self.path = os.path.join(temporaryFolder(self), "users")
        writePasswd(self.path, f"kim@fabrikam.com:{{ARGON2ID}}{CHEAP.hash('Kim-Pa55')}\n")
        self.checker = PasswdFileChecker(self.path, reactor)

    @defer.inlineCallbacks
    def test_rightAndWrongPasswords(self):
        avatarId = yield self.checker.requestAvatarId(UsernamePassword(b"KIM@fabrikam.com", b"Kim-Pa55"))
        self.assertEqual(avatarId, "kim@fabrikam.com")
        with self.assertRaises(WrongPassword):
            yield self.checker.requestAvatarId(UsernamePassword(b"kim@fabrikam.com", b"wrong"))
        for username, password in ((b"lee@fabrikam.com", b"Kim-Pa55"), (b"\xff", b"x")):
            refusal = self.checker.requestAvatarId(UsernamePassword(username, password))
            failure = yield self.assertFailure(refusal, UnauthorizedLogin)
            self.assertNotIsInstance(failure, WrongPassword)

    @defer.inlineCallbacks
    def test_eachLoginReadsTheFile(self):
        writePasswd(self.path, f"lee@fabrikam.com:{CHEAP.hash('Lee-Pa55')}\n")
        avatarId = yield self.checker.requestAvatarId(UsernamePassword(b"lee@fabrikam.com", b"Lee-Pa55"))
        self.assertEqual(avatarId, "lee@fabrikam.com")
        with self.assertRaises(UnauthorizedLogin):
            yield self.checker.requestAvatarId(UsernamePassword(b"kim@fabrikam.com", b"Kim-Pa55"))

    @defer.inlineCallbacks
    def test_aFileBrokenSinceTheStartIsAnError(self):
        os.chmod(self.path, 0o666)
        with self.assertRaises(ConfigError):
            yield self.checker.requestAvatarId(UsernamePassword(b"kim@fabrikam.com", b"Kim-Pa55"))


class PortalTests(TestCase):
    """
    A connector's portal with two checkers, through the realm: a user known
    only to the second logs in as the principal of its mailbox.
    """

    def setUp(self):
        folder = temporaryFolder(self)
        AccountStore.open(os.path.join(folder, "accounts")).setPassword("kim@fabrikam.com", "Kim-Pa55")
        writePasswd(os.path.join(folder, "users"), f"lee@fabrikam.com:{CHEAP.hash('Lee-Pa55')}\n")
        organization = organizationIn(
            folder,
            "CredentialCheckers = Accounts, PasswdFile\n\n"
            "[Mailbox Lee]\nPrimarySmtpAddress = lee@fabrikam.com\n\n"
            "[CredentialChecker PasswdFile]\nPath = users\n",
        )
        client = organization.receiveConnectors[0]
        checkers = loadCredentialCheckers(organization, [client], reactor)
        self.portal = makePortal(organization, client, connectorChecker(client, checkers))

    @defer.inlineCallbacks
    def test_eachCheckersUsersLogIn(self):
        for user, password in ((b"kim@fabrikam.com", b"Kim-Pa55"), (b"lee@fabrikam.com", b"Lee-Pa55")):
            interface, avatar, logout = yield self.portal.login(
                UsernamePassword(user, password), None, IPrincipal
            )
            self.assertEqual(avatar.name, user.decode())
            self.assertEqual(avatar.addresses, frozenset({user.decode()}))
            self.assertTrue(avatar.has(permissions.SUBMIT))

    @defer.inlineCallbacks
    def test_wrongPassword(self):
        with self.assertRaises(UnauthorizedLogin):
            yield self.portal.login(UsernamePassword(b"lee@fabrikam.com", b"Kim-Pa55"), None, IPrincipal)


class ReloadTests(TestCase):
    """
    A reload makes the checkers org.ini names now, checked as a start is.
    """

    def test_reload(self):
        from exmta.service import makeService

        from tests.e2e.harness import freePort

        folder = temporaryFolder(self)
        bindings = f"Bindings = 127.0.0.1:{freePort()}\n"
        organizationIn(folder, bindings)
        service = makeService(os.path.join(folder, "org.ini"), reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        portal = service.configuration.portals["HubA\\Client HubA"]
        writePasswd(os.path.join(folder, "users"), "")

        extra = bindings + "CredentialCheckers = Accounts, Ldap\n"
        organizationIn(folder, extra)
        with self.assertRaises(ConfigError) as raised:
            service.reload()
        self.assertEqual(raised.exception.line, lineOf(extra, "Ldap"))
        self.assertIs(service.configuration.portals["HubA\\Client HubA"], portal)

        organizationIn(
            folder,
            bindings + "CredentialCheckers = PasswdFile\n\n"
            "[CredentialChecker PasswdFile]\nPath = users\n",
        )
        service.reload()
        (passwordChecker,) = [
            checker
            for checker in service.configuration.portals["HubA\\Client HubA"].checkers.values()
            if isinstance(checker, CheckerChain)
        ]
        self.assertEqual([name for name, _ in passwordChecker.checkers], ["PasswdFile"])


# The Shell


def cmdlet(path, name, **parameters):
    from exmta.shell import config_cmdlets  # noqa: F401 (registers the cmdlets)
    from exmta.shell.cmdlet import CMDLETS, Context
    from exmta.shell.host import MemoryHost

    return CMDLETS[name.lower()].function(Context(path, host=MemoryHost()), **parameters)


def test_setReceiveConnectorCredentialCheckers(tmp_path):
    from exmta.shell.cmdlet import CmdletError

    folder = str(tmp_path)
    writePasswd(os.path.join(folder, "users"), "")
    organizationIn(folder, "\n[CredentialChecker PasswdFile]\nPath = users\n")
    path = os.path.join(folder, "org.ini")
    (shown,) = cmdlet(path, "Get-ReceiveConnector", Identity="Client HubA")
    assert shown.CredentialCheckers == ("Accounts",)

    cmdlet(path, "Set-ReceiveConnector", Identity="Client HubA", CredentialCheckers=("PasswdFile", "Accounts"))
    (shown,) = cmdlet(path, "Get-ReceiveConnector", Identity="Client HubA")
    assert shown.CredentialCheckers == ("PasswdFile", "Accounts")
    assert "CredentialCheckers = PasswdFile, Accounts\n" in open(path).read()

    # What a server would refuse to start with is refused here.
    before = open(path).read()
    with pytest.raises(CmdletError, match="no credential checker plugin is named 'Ldap'"):
        cmdlet(path, "Set-ReceiveConnector", Identity="Client HubA", CredentialCheckers="Ldap")
    with pytest.raises(CmdletError, match="CredentialCheckers check BasicAuth logins"):
        cmdlet(path, "Set-ReceiveConnector", Identity="Client HubA", AuthMechanism="Tls")
    assert open(path).read() == before
