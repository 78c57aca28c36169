"""
The web console's root resource (exmta.console.resource), rendered with
twisted.web's DummyRequest: logon through twisted.cred, the Organization
Management role group, the session cookie's flags, CSRF tokens on every
POST, logoff, and the overview read through the Shell's cmdlets with every
name escaped.  The browser's view is tests/e2e/test_console_browser.py;
the [EcpVirtualDirectory] keys are checked at the end.
"""

import os
import tempfile

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from twisted.logger import formatEvent, globalLogPublisher

from exmta.config import parseOrganization
from exmta.console.page import command, completion, quote
from exmta.console.resource import (
    LOGON_COOKIE,
    SESSION_COOKIE,
    SESSION_TIMEOUT,
    ConsoleResource,
    OrganizationManagementRealm,
)
from exmta.errors import ConfigError

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[ReceiveConnector <script>alert(1)</script>]
Bindings = 127.0.0.1:2525
RemoteIPRanges = 0.0.0.0-255.255.255.255

[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = smtpgateway1.contoso.com
DNSRoutingEnabled = $false
"""


class _Request(DummyRequest):
    """
    A DummyRequest with cookies, as twisted.web.server.Request has them.
    """

    def __init__(self, postpath, method=b"GET", cookies=None, args=None):
        super().__init__(postpath)
        self.prepath = [b"ecp"]
        self.method = method
        self.received_cookies = dict(cookies or {})
        self.cookies = []
        self.args = {k.encode(): [v.encode()] for k, v in (args or {}).items()}
        self.responseHeaders = Headers()
        self.client = IPv4Address("TCP", "127.0.0.1", 50000)

    def getCookie(self, name):
        return self.received_cookies.get(name)

    def addCookie(self, name, value, **options):
        # twisted.web.http.Request.addCookie takes text or bytes only.
        for option in (value, options.get("path"), options.get("max_age")):
            assert option is None or isinstance(option, (bytes, str)), option
        self.cookies.append((name, value, options))

    def cookie(self, name):
        return next(value for key, value, _ in reversed(self.cookies) if key == name)

    def body(self):
        return b"".join(self.written).decode()


@implementer(ICredentialsChecker)
class _SlowChecker:
    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, answer):
        self.answer = answer

    def requestAvatarId(self, credentials):
        return self.answer


class ConsoleResourceTests(TestCase):
    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(folder))
        self.path = os.path.join(folder, "org.ini")
        with open(self.path, "w") as handle:
            handle.write(ORGANIZATION)
        self.checker = checker = InMemoryUsernamePasswordDatabaseDontUse(
            **{"admin@fabrikam.com": b"right", "kim@fabrikam.com": b"kims"}
        )
        portal = Portal(OrganizationManagementRealm(["Admin@fabrikam.com"]), [checker])
        self.clock = Clock()
        self.console = ConsoleResource(self.path, portal, self.clock)

    def render(self, request):
        self.console.render(request)
        return request

    def logonToken(self):
        form = self.render(_Request([b"logon"]))
        token = form.cookie(LOGON_COOKIE)
        self.assertIn(f'value="{token.decode()}"', form.body())
        return token

    def logon(self, user="admin@fabrikam.com", password="right"):
        token = self.logonToken()
        return self.render(
            _Request(
                [b"logon"],
                b"POST",
                {LOGON_COOKIE: token},
                {"csrf": token.decode(), "username": user, "password": password},
            )
        )

    def loggedOn(self):
        request = self.logon()
        self.assertEqual(request.responseCode, 303)
        return request.cookie(SESSION_COOKIE)

    def test_anonymousIsSentToLogon(self):
        request = self.render(_Request([b""]))
        self.assertEqual(request.responseCode, 303)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"location"), [b"/ecp/logon"])

    def test_logonSetsAStrictSessionCookie(self):
        request = self.logon()
        self.assertEqual(request.responseHeaders.getRawHeaders(b"location"), [b"/ecp/"])
        [options] = [o for name, _, o in request.cookies if name == SESSION_COOKIE]
        self.assertEqual(
            options,
            {"path": b"/ecp/", "secure": True, "httpOnly": True, "sameSite": "strict",
             "max_age": None},
        )

    def test_wrongPasswordRefused(self):
        request = self.logon(password="wrong")
        self.assertEqual(request.responseCode, 403)
        self.assertIn("password is incorrect", request.body())
        self.assertNotIn(SESSION_COOKIE, [name for name, _, _ in request.cookies])

    def test_accountOutsideOrganizationManagementRefused(self):
        request = self.logon("kim@fabrikam.com", "kims")
        self.assertEqual(request.responseCode, 403)
        self.assertNotIn(SESSION_COOKIE, [name for name, _, _ in request.cookies])

    def test_logonWithoutTheFormsTokenRefused(self):
        token = self.logonToken()
        request = self.render(
            _Request(
                [b"logon"],
                b"POST",
                {LOGON_COOKIE: token},
                {"csrf": "forged", "username": "admin@fabrikam.com", "password": "right"},
            )
        )
        self.assertEqual(request.responseCode, 403)
        self.assertNotIn(SESSION_COOKIE, [name for name, _, _ in request.cookies])

    def test_overviewRunsTheShellsCmdlets(self):
        key = self.loggedOn()
        page = self.render(_Request([b""], cookies={SESSION_COOKIE: key})).body()
        for table in ("Get-TransportServer", "Get-ReceiveConnector", "Get-SendConnector",
                      "Get-AcceptedDomain"):
            self.assertIn(f'id="{table}"', page)
        self.assertIn("<td>ToInternetGateway</td>", page)
        self.assertIn("<td>{smtpgateway1.contoso.com}</td>", page)
        self.assertIn("<td>fabrikam.com</td>", page)

    def test_namesAreEscaped(self):
        key = self.loggedOn()
        page = self.render(_Request([b""], cookies={SESSION_COOKIE: key})).body()
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", page)
        self.assertNotIn("<script>", page)

    def test_securityHeaders(self):
        request = self.render(_Request([b"logon"]))
        [policy] = request.responseHeaders.getRawHeaders(b"content-security-policy")
        self.assertIn(b"default-src 'none'", policy)

    def test_logoffNeedsTheSessionsToken(self):
        key = self.loggedOn()
        forged = self.render(
            _Request([b"logoff"], b"POST", {SESSION_COOKIE: key}, {"csrf": "forged"})
        )
        self.assertEqual(forged.responseCode, 403)
        page = self.render(_Request([b""], cookies={SESSION_COOKIE: key})).body()
        token = page.split('name="csrf" value="')[1].split('"')[0]
        logoff = self.render(
            _Request([b"logoff"], b"POST", {SESSION_COOKIE: key}, {"csrf": token})
        )
        self.assertEqual(logoff.responseHeaders.getRawHeaders(b"location"), [b"/ecp/logon"])
        after = self.render(_Request([b""], cookies={SESSION_COOKIE: key}))
        self.assertEqual(after.responseCode, 303)

    def test_postWithoutSessionRefused(self):
        request = self.render(_Request([b"logoff"], b"POST", args={"csrf": "x"}))
        self.assertEqual(request.responseCode, 403)

    def test_browserGoneBeforeThePasswordIsChecked(self):
        """
        A browser that disconnects while the (slow) password check runs gets
        no answer written to its lost connection.
        """
        checked = Deferred()
        checker = _SlowChecker(checked)
        portal = Portal(OrganizationManagementRealm(["admin@fabrikam.com"]), [checker])
        self.console = ConsoleResource(self.path, portal, self.clock)
        token = self.logonToken()
        request = _Request(
            [b"logon"],
            b"POST",
            {LOGON_COOKIE: token},
            {"csrf": token.decode(), "username": "admin@fabrikam.com", "password": "right"},
        )
        self.render(request)
        request.processingFailed(Failure(ConnectionDone()))
        checked.callback(b"admin@fabrikam.com")
        self.assertEqual((request.finished, request.written), (0, []))
        self.assertEqual(self.console.sessions, {})

    def viewOnly(self):
        portal = Portal(
            OrganizationManagementRealm(["admin@fabrikam.com"], ["kim@fabrikam.com"]),
            [self.checker],
        )
        self.console = ConsoleResource(self.path, portal, self.clock)
        request = self.logon("kim@fabrikam.com", "kims")
        self.assertEqual(request.responseCode, 303)
        return request.cookie(SESSION_COOKIE)

    def test_viewOnlySeesEverything(self):
        key = self.viewOnly()
        page = self.render(_Request([b""], cookies={SESSION_COOKIE: key})).body()
        self.assertIn("<td>ToInternetGateway</td>", page)
        self.assertIn("View-Only Organization Management", page)

    def test_viewOnlyChangesNothing(self):
        """
        Every POST of a View-Only member is refused before any page sees it,
        even with the session's own CSRF token.
        """
        key = self.viewOnly()
        self.console.routes[(b"POST", "probe")] = lambda context, rest: self.fail("reached")
        page = self.render(_Request([b""], cookies={SESSION_COOKIE: key})).body()
        token = page.split('name="csrf" value="')[1].split('"')[0]
        request = self.render(
            _Request([b"probe"], b"POST", {SESSION_COOKIE: key}, {"csrf": token})
        )
        self.assertEqual(request.responseCode, 403)
        self.assertIn("View-Only", request.body())

    def test_postWithoutTheSessionsTokenReachesNoPage(self):
        key = self.loggedOn()
        self.console.routes[(b"POST", "probe")] = lambda context, rest: self.fail("reached")
        request = self.render(
            _Request([b"probe"], b"POST", {SESSION_COOKIE: key}, {"csrf": "forged"})
        )
        self.assertEqual(request.responseCode, 403)

    def test_changeRunsTheShellLogsAndReloads(self):
        """
        A change runs the Shell command (org.ini is rewritten), is logged
        with the administrator's name, and the running server is asked to
        read org.ini again; the completion page shows the command.
        """
        reloads = []
        self.console._reload = lambda: reloads.append(True)
        key = self.loggedOn()
        text = command("Set-SendConnector", "ToInternetGateway", Enabled=False)

        def page(context, rest):
            return context.change(text).addCallback(
                lambda _: completion(context, "Done", text)
            )

        self.console.routes[(b"POST", "probe")] = page
        token = self.render(_Request([b""], cookies={SESSION_COOKIE: key})).body()
        token = token.split('name="csrf" value="')[1].split('"')[0]
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        request = self.render(
            _Request([b"probe"], b"POST", {SESSION_COOKIE: key}, {"csrf": token})
        )
        self.assertIn(
            "<pre class=\"command\" id=\"command\">Set-SendConnector 'ToInternetGateway' "
            "-Enabled $false</pre>",
            request.body(),
        )
        with open(self.path) as handle:
            self.assertIn("Enabled = $false", handle.read())
        self.assertEqual(reloads, [True])
        self.assertIn(
            "console: admin@fabrikam.com ran: Set-SendConnector 'ToInternetGateway' -Enabled $false",
            [formatEvent(e) for e in events],
        )

    def test_sessionExpires(self):
        key = self.loggedOn()
        self.clock.advance(SESSION_TIMEOUT + 1)
        request = self.render(_Request([b""], cookies={SESSION_COOKIE: key}))
        self.assertEqual(request.responseCode, 303)


class CommandTests(TestCase):
    """
    The Shell text the console's pages build from form fields: whatever an
    administrator types stays one argument.
    """

    def test_quoted(self):
        self.assertEqual(quote("it's"), "'it''s'")
        self.assertEqual(quote("a\u2019b"), "'a\u2019\u2019b'")

    def test_command(self):
        self.assertEqual(
            command("New-SendConnector", Name="x'; Remove-SendConnector y", AddressSpaces=["a", "b"],
                    Enabled=True, Cost=2, Comment=None, SmartHosts=[]),
            "New-SendConnector -Name 'x''; Remove-SendConnector y' -AddressSpaces 'a','b' "
            "-Enabled $true -Cost 2 -SmartHosts @()",
        )

    def test_hostileValueIsOneArgument(self):
        """
        The Shell's own parser reads the text back as the values given.
        """
        from exmta.shell.parser import parse

        hostile = "x'; Remove-SendConnector y; '\u2018"
        script = parse(command("Set-SendConnector", hostile, Comment=hostile))
        self.assertEqual(len(script.statements), 1)


class EcpVirtualDirectoryConfigTests(TestCase):
    SERVER = "[TransportServer HubA]\nFqdn = huba.fabrikam.com\n"

    def parse(self, section):
        return parseOrganization(self.SERVER + section, "/etc/exmta/org.ini")

    def test_offByDefault(self):
        self.assertEqual(self.parse("").ecpVirtualDirectories, {})

    def test_loopbackHttps(self):
        organization = self.parse(
            "[EcpVirtualDirectory huba]\nInternalUrl = https://[::1]:8443/ecp/\n"
            "OrganizationManagement = Admin@fabrikam.com\n"
            "ViewOnlyOrganizationManagement = Kim@fabrikam.com, lee@fabrikam.com\n"
        )
        directory = organization.ecpVirtualDirectories["HubA"]
        self.assertEqual((directory.host, directory.port), ("::1", 8443))
        self.assertEqual(directory.organizationManagement, ("admin@fabrikam.com",))
        self.assertEqual(
            directory.viewOnlyOrganizationManagement, ("kim@fabrikam.com", "lee@fabrikam.com")
        )

    def assertRefused(self, url, words):
        with self.assertRaises(ConfigError) as caught:
            self.parse(f"[EcpVirtualDirectory HubA]\nInternalUrl = {url}\n")
        text = str(caught.exception)
        self.assertIn("org.ini:4", text)
        self.assertIn("InternalUrl", text)
        self.assertIn(words, text)

    def test_notLoopbackRefused(self):
        self.assertRefused("https://192.0.2.1:8443/ecp/", "not a loopback address")

    def test_plainHttpRefused(self):
        self.assertRefused("http://127.0.0.1:8080/ecp/", "https://")

    def test_nameRefused(self):
        self.assertRefused("https://localhost:8443/ecp/", "loopback IP address")

    def test_portRequired(self):
        self.assertRefused("https://127.0.0.1/ecp/", "port")

    def test_pathIsEcp(self):
        self.assertRefused("https://127.0.0.1:8443/owa/", "/ecp/")

    def test_unknownServerRefused(self):
        with self.assertRaises(ConfigError) as caught:
            self.parse("[EcpVirtualDirectory HubB]\nInternalUrl = https://127.0.0.1:1/ecp/\n")
        self.assertIn("names no TransportServer", str(caught.exception))


class WizardTests(ConsoleResourceTests):
    """
    The wizards' machinery (exmta.console.wizard) through the New Accepted
    Domain wizard: Next and Back keep what was typed, the summary shows the
    command, the Shell's refusal comes back beside the field at fault, and
    the completion page shows the command that ran.
    """

    def setUp(self):
        super().setUp()
        self.key = self.loggedOn()
        page = self.render(_Request([b""], cookies={SESSION_COOKIE: self.key})).body()
        self.token = page.split('name="csrf" value="')[1].split('"')[0]

    def post(self, path, **fields):
        return self.render(
            _Request([path], b"POST", {SESSION_COOKIE: self.key}, {"csrf": self.token, **fields})
        )

    def test_newAcceptedDomain(self):
        start = self.render(_Request([b"new-accepteddomain"], cookies={SESSION_COOKIE: self.key}))
        self.assertIn('id="DomainName"', start.body())
        summary = self.post(
            b"new-accepteddomain",
            action="next",
            Name="Contoso",
            DomainName="contoso.com",
            DomainType="InternalRelay",
        ).body()
        self.assertIn(
            "New-AcceptedDomain -Name 'Contoso' -DomainName 'contoso.com' "
            "-DomainType 'InternalRelay'</pre>",
            summary,
        )
        back = self.post(b"new-accepteddomain", action="back").body()
        self.assertIn('value="contoso.com"', back)
        self.post(
            b"new-accepteddomain",
            action="next",
            Name="Contoso",
            DomainName="contoso.com",
            DomainType="InternalRelay",
        )
        done = self.post(b"new-accepteddomain", action="next").body()
        self.assertIn("completed successfully", done)
        self.assertIn('<pre class="command" id="command">New-AcceptedDomain', done)
        with open(self.path) as handle:
            self.assertIn("[AcceptedDomain Contoso]", handle.read())

    def test_refusalShownBesideTheField(self):
        self.render(_Request([b"new-accepteddomain"], cookies={SESSION_COOKIE: self.key}))
        self.post(b"new-accepteddomain", action="next", Name="x", DomainName="bad domain!",
                  DomainType="Authoritative")
        page = self.post(b"new-accepteddomain", action="next").body()
        self.assertIn(
            '<span class="field-error" id="DomainName-error">[AcceptedDomain x] DomainName: '
            "'bad domain!' is not a valid host name",
            page,
        )
        with open(self.path) as handle:
            self.assertNotIn("[AcceptedDomain x]", handle.read())

    def test_emptyFieldStopsAtItsPage(self):
        self.render(_Request([b"new-accepteddomain"], cookies={SESSION_COOKIE: self.key}))
        page = self.post(b"new-accepteddomain", action="next", Name="", DomainName="a.com",
                         DomainType="Authoritative").body()
        self.assertIn('id="Name-error">Enter a value.', page)
