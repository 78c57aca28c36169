"""
The console's Server Configuration, Permissions, Recipient Configuration
and Transport Agents pages (exmta/console/servers.py, receiveconnectors.py,
newreceiveconnector.py, permissions.py, recipients.py,
transportagents.py), rendered with twisted.web's DummyRequest: each
action runs the Shell command it shows and org.ini says so; refusals come
back beside the field; a View-Only member changes nothing.  The browser's
view, checked against a running server over SMTP, is
tests/e2e/test_console_servers_browser.py.
"""

import os
import shutil
import tempfile

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from exmta.console.page import Bare, command
from exmta.console.resource import LOGON_COOKIE, SESSION_COOKIE, ConsoleResource
from exmta.console.resource import OrganizationManagementRealm
from exmta.shell.parser import parse
from tests.test_console import _Request

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain fabrikam.com]

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:2525
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS
PermissionGroups = ExchangeUsers

[ReceiveConnector <b>Client</b>]
Usage = Client
Bindings = 127.0.0.1:2587
RemoteIPRanges = 127.0.0.0/8

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[TransportAgent SenderBlockList]
Priority = 1
Enabled = $false
BlockedSenders = spam@contoso.com
"""


class _Console:
    """
    A console on a temporary org.ini, logged on as an administrator (or,
    with C{viewOnly}, as a View-Only member).
    """

    viewOnly = False

    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        self.path = os.path.join(folder, "org.ini")
        with open(self.path, "w") as handle:
            handle.write(ORGANIZATION)
        checker = InMemoryUsernamePasswordDatabaseDontUse(
            **{"admin@fabrikam.com": b"right", "kim@fabrikam.com": b"kims"}
        )
        realm = OrganizationManagementRealm(["admin@fabrikam.com"], ["kim@fabrikam.com"])
        self.console = ConsoleResource(self.path, Portal(realm, [checker]), Clock())
        self.reloads = []
        self.console._reload = lambda: self.reloads.append(True)
        form = self.render(_Request([b"logon"]))
        token = form.cookie(LOGON_COOKIE)
        user = ("kim@fabrikam.com", "kims") if self.viewOnly else ("admin@fabrikam.com", "right")
        logon = self.render(
            _Request([b"logon"], b"POST", {LOGON_COOKIE: token},
                     {"csrf": token.decode(), "username": user[0], "password": user[1]})
        )
        self.key = logon.cookie(SESSION_COOKIE)
        page = self.get("")
        self.token = page.split('name="csrf" value="')[1].split('"')[0]

    def render(self, request):
        self.console.render(request)
        return request

    def request(self, path, method=b"GET", fields=()):
        """
        @param path: the path below /ecp/, or its segments (a list).
        @param fields: (name, value) pairs; a name may repeat.
        """
        segments = path if isinstance(path, list) else path.split("/")
        request = _Request([part.encode() for part in segments], method,
                           {SESSION_COOKIE: self.key})
        request.args = {}
        for name, value in ([("csrf", self.token)] if method == b"POST" else []) + list(fields):
            request.args.setdefault(name.encode(), []).append(value.encode())
        return self.render(request)

    def get(self, path):
        return self.request(path).body()

    def post(self, path, *fields, **named):
        return self.request(path, b"POST", list(fields) + list(named.items())).body()

    def text(self):
        with open(self.path) as handle:
            return handle.read()


def ran(page):
    """
    @return: the Shell command a page says completed, or L{None}.
    """
    if 'id="command">' not in page:
        return None
    text = page.split('id="command">')[1].split("</pre>")[0]
    return text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


class HubTransportTests(_Console, TestCase):
    def test_serversAndTheirReceiveConnectors(self):
        servers = self.get("hubtransport")
        self.assertIn('<a href="/ecp/hubtransport/HubA">HubA</a>', servers)
        page = self.get("hubtransport/HubA")
        self.assertIn('id="receive-connectors"', page)
        self.assertIn("<td>Default HubA</td>", page)
        self.assertIn("<td>{127.0.0.1:2525}</td>", page)
        self.assertIn('href="/ecp/receiveconnector/HubA/Default%20HubA"', page)
        self.assertIn('href="/ecp/new-receiveconnector/HubA"', page)
        # A hostile name is text.
        self.assertIn("<td>&lt;b&gt;Client&lt;/b&gt;</td>", page)
        self.assertNotIn("<b>Client", page)

    def test_unknownServer(self):
        self.assertEqual(self.request("hubtransport/HubZ").responseCode, 404)

    def test_disableAndEnable(self):
        done = self.post("receiveconnector-enabled/HubA/Default HubA", Enabled="false")
        self.assertEqual(ran(done), "Set-ReceiveConnector 'HubA\\Default HubA' -Enabled $false")
        self.assertIn("Enabled = $false", self.text())
        self.assertIn("<td>Disabled</td>", self.get("hubtransport/HubA"))
        self.assertEqual(self.reloads, [True])
        self.post("receiveconnector-enabled/HubA/Default HubA", Enabled="true")
        self.assertIn("Enabled = $true", self.text())

    def test_removeAsksFirst(self):
        question = self.get("remove-receiveconnector/HubA/Default HubA")
        self.assertIn("Are you sure you want to permanently remove", question)
        self.assertIn("[ReceiveConnector Default HubA]", self.text())
        done = self.post("remove-receiveconnector/HubA/Default HubA")
        self.assertEqual(ran(done), "Remove-ReceiveConnector 'HubA\\Default HubA'")
        self.assertNotIn("[ReceiveConnector Default HubA]", self.text())

    def test_removeUnknown(self):
        self.assertEqual(self.request("remove-receiveconnector/HubA/Nope").responseCode, 404)

    def test_serverProperties(self):
        form = self.get("server-properties/HubA")
        self.assertIn('name="TransientFailureRetryCount" id="TransientFailureRetryCount" '
                      'value="6"', form)
        self.assertIn('value="00:01:00"', form)
        fields = dict(_formFields(form))
        fields["TransientFailureRetryCount"] = "4"
        fields["MessageExpirationTimeout"] = "1.00:00:00"
        fields["InternalDNSServers"] = "127.0.0.53"
        done = self.post("server-properties/HubA", *fields.items())
        self.assertEqual(
            ran(done),
            "Set-TransportServer 'HubA' -TransientFailureRetryCount 4 "
            "-MessageExpirationTimeout 1.00:00:00 -InternalDNSServers 127.0.0.53",
        )
        self.assertIn("TransientFailureRetryCount = 4", self.text())
        self.assertIn('value="4"', done)

    def test_serverPropertiesUnchanged(self):
        before = self.text()
        page = self.post("server-properties/HubA", *_formFields(self.get("server-properties/HubA")))
        self.assertIn("Nothing was changed.", page)
        self.assertIsNone(ran(page))
        self.assertEqual((self.text(), self.reloads), (before, []))

    def test_serverPropertiesRefusedBesideTheField(self):
        fields = dict(_formFields(self.get("server-properties/HubA")))
        fields["TransientFailureRetryCount"] = "99"
        page = self.post("server-properties/HubA", *fields.items())
        self.assertIn('id="TransientFailureRetryCount-error">', page)
        self.assertIn('value="99"', page)
        self.assertNotIn("TransientFailureRetryCount", self.text())


def _formFields(page):
    """
    @return: the (name, value) pairs a browser would post from a page's
        properties form: text inputs, checked boxes, selected options.
    """
    from html.parser import HTMLParser

    found = []

    class Reader(HTMLParser):
        select = None

        def handle_starttag(self, tag, attributes):
            attributes = dict(attributes)
            name = attributes.get("name")
            if tag == "input" and name and name != "csrf":
                kind = attributes.get("type", "text")
                if kind in ("text", "hidden") or (kind == "checkbox" and "checked" in attributes):
                    found.append((name, attributes.get("value") or ""))
            elif tag == "select":
                self.select = name
            elif tag == "option" and "selected" in attributes:
                found.append((self.select, attributes["value"]))

    Reader().feed(page.split('id="properties"')[1].split("</form>")[0])
    return found


class NewReceiveConnectorTests(_Console, TestCase):
    def test_anonymousRelayProcedure(self):
        """
        The reference document's EMC steps: Custom, the All Available IPv4
        binding removed and one address added, the all-ranges entry
        removed and the gateway's address added; the command is the
        document's Shell line.
        """
        start = self.get("new-receiveconnector/HubA")
        self.assertIn('id="Usage"', start)
        local = self.post("new-receiveconnector", action="next", Name="FromInternetGateway",
                          Usage="Custom")
        self.assertIn("Local Network settings</h2>", local)
        self.assertIn('value="0.0.0.0:25"', local)
        removed = self.post("new-receiveconnector", ("Bindings", "0.0.0.0:25"),
                            action="remove-Bindings-0", Fqdn="")
        self.assertNotIn('value="0.0.0.0:25"', removed)
        added = self.post("new-receiveconnector", action="add-Bindings",
                          **{"Bindings-new": "10.2.3.4:25", "Fqdn": ""})
        self.assertIn('value="10.2.3.4:25" size="40" id="Bindings-0"', added)
        remote = self.post("new-receiveconnector", ("Bindings", "10.2.3.4:25"), action="next",
                           Fqdn="")
        self.assertIn("Remote Network settings</h2>", remote)
        self.post("new-receiveconnector", ("RemoteIPRanges", "0.0.0.0-255.255.255.255"),
                  action="remove-RemoteIPRanges-0")
        summary = self.post("new-receiveconnector", action="next",
                            **{"RemoteIPRanges-new": "192.168.5.77"})
        self.assertIn(
            "New-ReceiveConnector -Name 'FromInternetGateway' -Server HubA "
            "-Usage Custom -Bindings 10.2.3.4:25 -RemoteIPRanges 192.168.5.77</pre>",
            summary,
        )
        done = self.post("new-receiveconnector", action="next")
        self.assertEqual(
            ran(done),
            "New-ReceiveConnector -Name 'FromInternetGateway' -Server HubA -Usage Custom "
            "-Bindings 10.2.3.4:25 -RemoteIPRanges 192.168.5.77",
        )
        self.assertIn("[ReceiveConnector FromInternetGateway]\nServer = HubA\nUsage = Custom\n"
                      "Bindings = 10.2.3.4:25\nRemoteIPRanges = 192.168.5.77\n", self.text())

    def test_internalSkipsLocalNetworkSettings(self):
        """
        Internal fixes the bindings: the wizard goes from the Introduction
        to the Remote Network settings and back, and the command has no
        -Bindings (as the reference document's Shell line).
        """
        self.get("new-receiveconnector/HubA")
        remote = self.post("new-receiveconnector", action="next", Name="FromInternetGateway",
                           Usage="Internal")
        self.assertIn("Remote Network settings</h2>", remote)
        self.assertNotIn("Local Network settings", remote)
        back = self.post("new-receiveconnector", ("RemoteIPRanges", "0.0.0.0-255.255.255.255"),
                         action="back")
        self.assertIn("Introduction</h2>", back)
        self.post("new-receiveconnector", action="next", Name="FromInternetGateway",
                  Usage="Internal")
        summary = self.post("new-receiveconnector", ("RemoteIPRanges", "192.168.1.10"),
                            action="next")
        self.assertIn("-Server HubA -Usage Internal -RemoteIPRanges 192.168.1.10</pre>", summary)

    def test_internetHasNoRemoteNetworkSettings(self):
        self.get("new-receiveconnector/HubA")
        self.post("new-receiveconnector", action="next", Name="Internet", Usage="Internet")
        summary = self.post("new-receiveconnector", ("Bindings", "127.0.0.3:2525"),
                            action="next", Fqdn="mail.fabrikam.com")
        self.assertIn("-Usage Internet -Bindings 127.0.0.3:2525 -Fqdn mail.fabrikam.com</pre>",
                      summary)

    def test_refusedBindingShownOnItsPage(self):
        self.get("new-receiveconnector/HubA")
        self.post("new-receiveconnector", action="next", Name="X", Usage="Custom")
        self.post("new-receiveconnector", ("Bindings", "not-an-address"), action="next", Fqdn="")
        self.post("new-receiveconnector", ("RemoteIPRanges", "127.0.0.1"), action="next")
        page = self.post("new-receiveconnector", action="next")
        self.assertIn("Local Network settings</h2>", page)
        self.assertIn('id="Bindings-error">', page)
        self.assertNotIn("[ReceiveConnector X]", self.text())

    def test_emptyListStopsAtItsPage(self):
        self.get("new-receiveconnector/HubA")
        self.post("new-receiveconnector", action="next", Name="X", Usage="Custom")
        page = self.post("new-receiveconnector", action="next", Fqdn="")
        self.assertIn('id="Bindings-error">Add at least one binding.', page)


class ReceiveConnectorPropertiesTests(_Console, TestCase):
    def tab(self, tab, name="Default HubA"):
        return ["receiveconnector", "HubA", name, tab]

    def test_generalRunsOnlyWhatChanged(self):
        form = self.get(self.tab("general"))
        self.assertIn('value="10 MB (10,485,760 bytes)"', form)
        fields = dict(_formFields(form))
        fields["MaxMessageSize"] = "20MB"
        fields["ProtocolLoggingLevel"] = "Verbose"
        fields["Banner"] = "220 huba ready"
        done = self.post(self.tab("general"), *fields.items())
        self.assertEqual(
            ran(done),
            "Set-ReceiveConnector 'HubA\\Default HubA' -ProtocolLoggingLevel Verbose "
            "-MaxMessageSize 20MB -Banner '220 huba ready'",
        )
        self.assertIn("MaxMessageSize = 20MB", self.text())
        self.assertIn('value="20 MB (20,971,520 bytes)"', done)

    def test_generalClearsAndDisables(self):
        fields = dict(_formFields(self.get(self.tab("general"))))
        del fields["Enabled"]
        fields["Fqdn"] = ""
        done = self.post(self.tab("general"), *fields.items())
        self.assertEqual(
            ran(done), "Set-ReceiveConnector 'HubA\\Default HubA' -Enabled $false -Fqdn $null"
        )

    def test_networkListsEditWithoutRunning(self):
        before = self.text()
        page = self.post(self.tab("network"), ("Bindings", "127.0.0.1:2525"),
                         ("RemoteIPRanges", "0.0.0.0-255.255.255.255"), action="add-Bindings",
                         **{"Bindings-new": "127.0.0.1:2526"})
        self.assertIn('value="127.0.0.1:2526"', page)
        self.assertEqual(self.text(), before)
        done = self.post(self.tab("network"), ("Bindings", "127.0.0.1:2525"),
                         ("Bindings", "127.0.0.1:2526"), ("RemoteIPRanges", "127.0.0.0/8"),
                         action="ok")
        self.assertEqual(
            ran(done),
            "Set-ReceiveConnector 'HubA\\Default HubA' -Bindings 127.0.0.1:2525,127.0.0.1:2526 "
            "-RemoteIPRanges 127.0.0.0/8",
        )

    def test_authenticationBasicOnlyAfterTls(self):
        page = self.get(self.tab("authentication"))
        self.assertIn('id="AuthMechanism-BasicAuthRequireTLS" checked="checked"', page)
        self.assertIn("Integrated Windows authentication (not supported by exmta)", page)
        done = self.post(self.tab("authentication"), ("AuthMechanism", "Tls"),
                         ("AuthMechanism", "BasicAuth"), action="ok")
        self.assertEqual(
            ran(done), "Set-ReceiveConnector 'HubA\\Default HubA' -AuthMechanism Tls,BasicAuth"
        )
        self.assertIn("AuthMechanism = Tls, BasicAuth\n", self.text())

    def test_authenticationRefusedBesideTheField(self):
        page = self.post(self.tab("authentication"), ("AuthMechanism", "Tls"),
                         ("AuthMechanism", "BasicAuthRequireTLS"), action="ok")
        self.assertIn('id="AuthMechanism-error">[ReceiveConnector Default HubA] AuthMechanism: '
                      "BasicAuthRequireTLS requires BasicAuth", page)
        self.assertIn("AuthMechanism = Tls, BasicAuth, BasicAuthRequireTLS\n", self.text())

    def test_unsupportedFlagIsKept(self):
        """
        The Client usage's Integrated cannot be changed here: a change of
        the other boxes keeps it.
        """
        tab = self.tab("authentication", "<b>Client</b>")
        self.assertIn('id="AuthMechanism-Integrated" checked="checked"', self.get(tab))
        done = self.post(tab, ("AuthMechanism", "Tls"), action="ok")
        self.assertEqual(
            ran(done), "Set-ReceiveConnector 'HubA\\<b>Client</b>' -AuthMechanism Tls,Integrated"
        )

    def test_permissionGroups(self):
        done = self.post(self.tab("permissiongroups"), ("PermissionGroups", "AnonymousUsers"),
                         ("PermissionGroups", "ExchangeUsers"), action="ok")
        self.assertEqual(
            ran(done),
            "Set-ReceiveConnector 'HubA\\Default HubA' -PermissionGroups AnonymousUsers,ExchangeUsers",
        )
        none = self.post(self.tab("permissiongroups"), action="ok")
        self.assertEqual(ran(none), "Set-ReceiveConnector 'HubA\\Default HubA' -PermissionGroups None")

    def test_unknownTabOrConnector(self):
        self.assertEqual(self.request(self.tab("nope")).responseCode, 404)
        self.assertEqual(self.request("receiveconnector/HubA/Nope").responseCode, 404)


class PermissionsTests(_Console, TestCase):
    def test_grantListRemove(self):
        page = self.get("permissions/HubA/Default HubA")
        self.assertIn('id="no-permissions"', page)
        self.assertIn('value="NT AUTHORITY\\ANONYMOUS LOGON"', page)
        done = self.post("permissions/HubA/Default HubA", action="add",
                         User="NT AUTHORITY\\ANONYMOUS LOGON",
                         ExtendedRights="Ms-Exch-SMTP-Accept-Any-Recipient")
        self.assertEqual(
            ran(done),
            "Get-ReceiveConnector 'HubA\\Default HubA' | Add-ADPermission "
            "-User 'NT AUTHORITY\\ANONYMOUS LOGON' -ExtendedRights 'Ms-Exch-SMTP-Accept-Any-Recipient'",
        )
        self.assertIn("[ADPermission]\nIdentity = HubA\\Default HubA\n"
                      "User = NT AUTHORITY\\ANONYMOUS LOGON\n", self.text())
        self.assertIn("<td>ms-Exch-SMTP-Accept-Any-Recipient</td>", done)
        removed = self.post("permissions/HubA/Default HubA", action="remove",
                            User="NT AUTHORITY\\ANONYMOUS LOGON",
                            ExtendedRights="ms-Exch-SMTP-Accept-Any-Recipient", Deny="false")
        self.assertEqual(
            ran(removed),
            "Get-ReceiveConnector 'HubA\\Default HubA' | Remove-ADPermission "
            "-User 'NT AUTHORITY\\ANONYMOUS LOGON' -ExtendedRights 'ms-Exch-SMTP-Accept-Any-Recipient'",
        )
        self.assertNotIn("[ADPermission]", self.text())

    def test_unknownRightRefused(self):
        page = self.post("permissions/HubA/Default HubA", action="add", User="kim@fabrikam.com",
                         ExtendedRights="Ms-Exch-Nonsense")
        self.assertIn('<span class="field-error" id="ExtendedRights-error">[ADPermission] '
                      "ExtendedRights: 'Ms-Exch-Nonsense' is not an extended right", page)
        self.assertNotIn("[ADPermission]", self.text())


class MailboxTests(_Console, TestCase):
    PASSWORD = "Mailbox-Pa55word!"

    def test_newMailboxPasswordNeverShownOrLogged(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        pages = [self.get("new-mailbox")]
        pages.append(self.post("new-mailbox", action="next", Name="Lee Hsu",
                               UserPrincipalName="lee@fabrikam.com", Password=self.PASSWORD,
                               ConfirmPassword=self.PASSWORD))
        self.assertIn('value="lee"', pages[-1])
        pages.append(self.post("new-mailbox", action="back", Alias="lee"))
        self.assertIn('id="password-kept"', pages[-1])
        pages.append(self.post("new-mailbox", action="next", Name="Lee Hsu",
                               UserPrincipalName="lee@fabrikam.com", Password="",
                               ConfirmPassword=""))
        pages.append(self.post("new-mailbox", action="next", Alias="lee"))
        pages.append(self.post("new-mailbox", action="next"))
        self.assertEqual(
            ran(pages[-1]),
            "New-Mailbox -Name 'Lee Hsu' -Alias lee -UserPrincipalName 'lee@fabrikam.com' "
            "-Password (Read-Host 'Enter password' -AsSecureString)",
        )
        self.assertIn("[Mailbox Lee Hsu]\nPrimarySmtpAddress = lee@fabrikam.com\n", self.text())
        from exmta.auth.accounts import AccountStore

        accounts = AccountStore.open(os.path.join(os.path.dirname(self.path), "accounts"))
        self.assertTrue(accounts.verify("lee@fabrikam.com", self.PASSWORD))
        self.assertIn("<td>Lee Hsu</td>", self.get("mailboxes"))
        for page in pages:
            self.assertNotIn(self.PASSWORD, page)
        self.assertFalse([e for e in events if self.PASSWORD in formatEvent(e)])

    def test_passwordsMustMatch(self):
        self.get("new-mailbox")
        page = self.post("new-mailbox", action="next", Name="Lee", UserPrincipalName="lee@fabrikam.com",
                         Password="a-Pa55word", ConfirmPassword="other")
        self.assertIn('id="ConfirmPassword-error">The passwords do not match.', page)

    def test_removeAsksFirst(self):
        self.assertIn("Are you sure", self.get("remove-mailbox/Kim Akers"))
        done = self.post("remove-mailbox/Kim Akers")
        self.assertEqual(ran(done), "Remove-Mailbox 'Kim Akers'")
        self.assertNotIn("[Mailbox Kim Akers]", self.text())


class TransportAgentTests(_Console, TestCase):
    def test_enableDisablePriority(self):
        page = self.get("transportagents")
        self.assertIn("<td>SenderBlockList</td>", page)
        done = self.post("transportagents", Identity="SenderBlockList", action="enable")
        self.assertEqual(ran(done), "Enable-TransportAgent 'SenderBlockList'")
        self.assertIn("Enabled = $true", self.text())
        done = self.post("transportagents", Identity="SenderBlockList", action="priority",
                         Priority="3")
        self.assertEqual(ran(done), "Set-TransportAgent 'SenderBlockList' -Priority 3")
        self.assertIn("Priority = 3", self.text())
        done = self.post("transportagents", Identity="SenderBlockList", action="disable")
        self.assertIn("Enabled = $false", self.text())

    def test_badPriorityRefused(self):
        page = self.post("transportagents", Identity="SenderBlockList", action="priority",
                         Priority="first")
        self.assertIn('id="error"', page)
        self.assertIn("Priority = 1", self.text())


class ViewOnlyTests(_Console, TestCase):
    viewOnly = True

    def test_seesEveryPage(self):
        for path in ("hubtransport", "hubtransport/HubA", "server-properties/HubA",
                     "receiveconnector/HubA/Default HubA/authentication",
                     "permissions/HubA/Default HubA", "mailboxes", "transportagents"):
            self.assertEqual(self.request(path).responseCode, 200, path)
        self.assertNotIn("new-receiveconnector", self.get("hubtransport/HubA"))

    def test_changesNothing(self):
        before = self.text()
        for path, fields in (
            ("receiveconnector-enabled/HubA/Default HubA", {"Enabled": "false"}),
            ("remove-receiveconnector/HubA/Default HubA", {}),
            ("server-properties/HubA", {"TransientFailureRetryCount": "4"}),
            ("receiveconnector/HubA/Default HubA/permissiongroups",
             {"PermissionGroups": "AnonymousUsers", "action": "ok"}),
            ("permissions/HubA/Default HubA",
             {"action": "add", "User": "NT AUTHORITY\\ANONYMOUS LOGON",
              "ExtendedRights": "Ms-Exch-SMTP-Accept-Any-Recipient"}),
            ("remove-mailbox/Kim Akers", {}),
            ("transportagents", {"Identity": "SenderBlockList", "action": "enable"}),
            ("new-receiveconnector", {"action": "next"}),
            ("new-mailbox", {"action": "next"}),
        ):
            request = self.request(path, b"POST", list(fields.items()))
            self.assertEqual(request.responseCode, 403, path)
        self.assertEqual((self.text(), self.reloads), (before, []))


class BareTests(TestCase):
    """
    Barewords in the console's commands: written as the reference
    document writes them when the Shell reads them back as the same
    value, quoted otherwise.
    """

    def test_bare(self):
        self.assertEqual(
            command("New-ReceiveConnector", Name="FromInternetGateway", Server=Bare("HubA"),
                    Bindings=[Bare("10.2.3.4:25"), Bare("[::1]:25")],
                    MaxMessageSize=Bare("20MB"), Priority=Bare("3")),
            "New-ReceiveConnector -Name 'FromInternetGateway' -Server HubA "
            "-Bindings 10.2.3.4:25,'[::1]:25' -MaxMessageSize 20MB -Priority 3",
        )

    def test_hostileStaysOneQuotedArgument(self):
        for hostile in ("a b", "x;Remove-ReceiveConnector y", "a`", "$x", "-WhatIf", "a,b",
                        "@(1)", "a|b", "1.5"):
            text = command("Set-ReceiveConnector", "X", Fqdn=Bare(hostile))
            self.assertTrue(text.endswith(" -Fqdn '" + hostile + "'"), text)
            (statement,) = parse(text).statements
            self.assertEqual(len(statement.elements), 1)
