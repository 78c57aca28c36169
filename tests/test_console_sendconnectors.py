"""
Organization Configuration > Hub Transport in the console, rendered with
twisted.web's DummyRequest: the Send Connectors list and its actions
(Enable, Disable, Remove after its confirmation page), the New Send
Connector wizard page by page, the properties' tabs running
Set-SendConnector with only what changed, and Accepted Domains' edit,
remove and default.  Each change is checked in org.ini (and the
credential store), as the Shell would have left them; the credential's
password appears in no page.  The browser's view of the same procedures:
tests/e2e/test_console_sendconnectors_browser.py.
"""

import os
import shutil
import tempfile

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from exmta.console.resource import LOGON_COOKIE, SESSION_COOKIE, ConsoleResource, OrganizationManagementRealm
from exmta.console.sendconnectorparts import addressSpaceRow, addressSpaceText, shellCommand, CREDENTIAL, NULL
from tests.test_console import _Request

PASSWORD = "Gateway-Secret-42!"

ORGANIZATION = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[TransportServer HubB]
Fqdn = hubb.fabrikam.com

[AcceptedDomain fabrikam.com]

[AcceptedDomain Contoso]
DomainName = contoso.com

[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = smtpgateway1.contoso.com
DNSRoutingEnabled = $false
SourceTransportServers = HubA

[SendConnector <b>Partner</b>]
AddressSpaces = *.tailspintoys.com;5
SourceTransportServers = HubA
"""


class _Post(_Request):
    """
    A request whose form fields may repeat (checkboxes of one name).
    """

    def __init__(self, postpath, cookies, fields):
        super().__init__(postpath, b"POST", cookies)
        self.args = {
            key.encode(): [v.encode() for v in (value if isinstance(value, list) else [value])]
            for key, value in fields.items()
        }


class ConsoleTestCase(TestCase):
    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        self.folder = folder
        self.path = os.path.join(folder, "org.ini")
        with open(self.path, "w") as handle:
            handle.write(ORGANIZATION)
        checker = InMemoryUsernamePasswordDatabaseDontUse(
            **{"admin@fabrikam.com": b"right", "kim@fabrikam.com": b"kims"}
        )
        portal = Portal(
            OrganizationManagementRealm(["admin@fabrikam.com"], ["kim@fabrikam.com"]), [checker]
        )
        self.console = ConsoleResource(self.path, portal, Clock())
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.pages = []
        self.key, self.token = self.logOn("admin@fabrikam.com", "right")

    def logOn(self, user, password):
        form = _Request([b"logon"])
        self.console.render(form)
        token = form.cookie(LOGON_COOKIE)
        request = _Request([b"logon"], b"POST", {LOGON_COOKIE: token},
                           {"csrf": token.decode(), "username": user, "password": password})
        self.console.render(request)
        key = request.cookie(SESSION_COOKIE)
        page = self.get("", key=key)
        return key, page.split('name="csrf" value="')[1].split('"')[0]

    def get(self, *path, key=None):
        request = _Request([p.encode() for p in path],
                           cookies={SESSION_COOKIE: key or getattr(self, "key", None)})
        self.console.render(request)
        if request.responseCode == 303:
            return request.responseHeaders.getRawHeaders(b"location")[0].decode()
        self.pages.append(request.body())
        return request.body()

    def post(self, *path, **fields):
        request = _Post([p.encode() for p in path], {SESSION_COOKIE: self.key},
                        {"csrf": self.token, **fields})
        self.console.render(request)
        self.pages.append(request.body())
        self.code = request.responseCode
        return request.body()

    def text(self):
        with open(self.path) as handle:
            return handle.read()

    def logged(self):
        return "\n".join(formatEvent(event) for event in self.events)


class SendConnectorListTests(ConsoleTestCase):
    def test_listShowsEachConnectorWithItsActions(self):
        page = self.get("sendconnectors")
        self.assertIn("<td>ToInternetGateway</td><td>True</td><td>SMTP:*;1</td>"
                      "<td>smtpgateway1.contoso.com</td><td>None</td>", page)
        self.assertIn("<td>&lt;b&gt;Partner&lt;/b&gt;</td>", page)
        self.assertIn("<td>(DNS MX records)</td>", page)
        self.assertIn('action="/ecp/sendconnector/ToInternetGateway/disable"', page)
        self.assertIn('href="/ecp/sendconnector/%3Cb%3EPartner%3C%2Fb%3E/remove"', page)
        self.assertIn('href="/ecp/new-sendconnector"', page)
        self.assertIn('href="/ecp/sendconnectors"', page)  # in the tree

    def test_disableThenEnable(self):
        page = self.post("sendconnector", "ToInternetGateway", "disable")
        self.assertIn(">Set-SendConnector 'ToInternetGateway' -Enabled $false</pre>", page)
        self.assertIn("[SendConnector ToInternetGateway]\nAddressSpaces = *\nSmartHosts = "
                      "smtpgateway1.contoso.com\nDNSRoutingEnabled = $false\nSourceTransportServers"
                      " = HubA\nEnabled = $false\n", self.text())
        self.assertIn('class="enable"', self.get("sendconnectors"))
        self.post("sendconnector", "ToInternetGateway", "enable")
        self.assertIn("Enabled = $true", self.text())
        self.assertIn("admin@fabrikam.com ran: Set-SendConnector 'ToInternetGateway' -Enabled $true",
                      self.logged())

    def test_removeAsksFirst(self):
        before = self.text()
        page = self.get("sendconnector", "<b>Partner</b>", "remove")
        self.assertIn("permanently remove the Send connector '<strong>&lt;b&gt;Partner&lt;/b&gt;"
                      "</strong>'?", page)
        self.assertIn('<form method="post" action="/ecp/sendconnector/%3Cb%3EPartner%3C%2Fb%3E/'
                      'remove">', page)
        self.assertEqual(self.text(), before)
        done = self.post("sendconnector", "<b>Partner</b>", "remove")
        self.assertIn(">Remove-SendConnector '&lt;b&gt;Partner&lt;/b&gt;'</pre>", done)
        self.assertNotIn("Partner", self.text())

    def test_unknownConnector(self):
        self.assertIn("couldn't be found", self.get("sendconnector", "Nope", "remove"))
        self.assertIn("couldn't be found", self.get("sendconnector", "Nope", "general"))

    def test_viewOnlySeesNoActions(self):
        self.key, self.token = self.logOn("kim@fabrikam.com", "kims")
        page = self.get("sendconnectors")
        self.assertIn("<td>ToInternetGateway</td>", page)
        self.assertNotIn('class="disable"', page)
        self.assertNotIn("new-sendconnector", page)
        self.post("sendconnector", "ToInternetGateway", "disable")
        self.assertEqual(self.code, 403)
        self.assertNotIn("\nEnabled = ", self.text())


class ShellTextTests(TestCase):
    def test_addressSpaceRows(self):
        self.assertEqual(addressSpaceRow("SMTP:*.contoso.com;5"),
                         {"Type": "SMTP", "Address": "contoso.com", "Cost": "5",
                          "IncludeSubdomains": True})
        for shown, text in (("SMTP:*;1", "*"), ("SMTP:*.contoso.com;5", "*.contoso.com;5"),
                            ("X400:c=US;a=;p=Fabrikam;2", "X400:c=US;a=;p=Fabrikam;2")):
            self.assertEqual(addressSpaceText(addressSpaceRow(shown)), text)

    def test_credentialAndNull(self):
        self.assertEqual(
            shellCommand("Set-SendConnector", "X", Fqdn=NULL, AuthenticationCredential=CREDENTIAL,
                         Comment=None),
            "$CredentialObject = Get-Credential\n"
            "Set-SendConnector 'X' -Fqdn $null -AuthenticationCredential $CredentialObject",
        )


class NewSendConnectorTests(ConsoleTestCase):
    """
    The wizard's pages in the EMC's order, as the reference document's
    procedures go through them.
    """

    def step(self, action="next", **fields):
        return self.post("new-sendconnector", action=action, **fields)

    def throughAddressSpace(self, name="ToInternetGateway", usage="Custom"):
        start = self.get("new-sendconnector")
        self.assertIn('<option value="Internet">Internet</option>', start)
        page = self.step(Name=name, Usage=usage)
        self.assertIn("<h2>Address space</h2>", page)
        dialog = self.step("add-AddressSpaces")
        self.assertIn('id="dialog">Add SMTP address space', dialog)
        # OK is the form's first button: Enter in the Address field is OK.
        self.assertLess(dialog.index('id="ok"'), dialog.index('id="next"'))
        self.assertIn('id="AddressSpaces"', self.step("ok-AddressSpaces", Address="*", Cost="1"))

    def test_basicAuthenticationOverTls(self):
        """
        The reference document's "Use the EMC to establish Internet mail
        flow ... by using Basic authentication".
        """
        self.throughAddressSpace()
        network = self.step()
        self.assertIn("<h2>Network settings</h2>", network)
        self.step("add-SmartHosts", DNSRoutingEnabled="false")
        self.step("ok-SmartHosts", SmartHost="smtpgateway1.contoso.com")
        security = self.step(DNSRoutingEnabled="false")
        self.assertIn("<h2>Smart host security</h2>", security)
        self.assertIn('id="SmartHostAuthMechanism-ExchangeServer"', security)
        missing = self.step(SmartHostAuthMechanism="BasicAuth", BasicAuthRequireTLS="true",
                            UserName="hub@contoso.com")
        self.assertIn('id="Password-error">Enter the password.', missing)
        source = self.step(SmartHostAuthMechanism="BasicAuth", BasicAuthRequireTLS="true",
                           UserName="hub@contoso.com", Password=PASSWORD)
        self.assertIn("<h2>Source Server</h2>", source)
        # Back and Next again: the password stays in the session only.
        back = self.step("back")
        self.assertIn('id="password-entered"', back)
        self.step(SmartHostAuthMechanism="BasicAuth", BasicAuthRequireTLS="true",
                  UserName="hub@contoso.com")
        self.assertIn('id="SourceTransportServers-error">Add at least one', self.step())
        self.step("add-server", Server="HubA")
        summary = self.step()
        expected = (
            "$CredentialObject = Get-Credential\n"
            "New-SendConnector -Name 'ToInternetGateway' -AddressSpaces '*' -SmartHosts "
            "'smtpgateway1.contoso.com' -SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS "
            "-AuthenticationCredential $CredentialObject -SourceTransportServers 'HubA' "
            "-DNSRoutingEnabled $false"
        )
        self.assertIn("<h2>New Connector</h2>", summary)
        self.assertIn(f'id="summary">{expected}</pre>', summary)
        self.assertIn("A Send connector named 'ToInternetGateway' already exists", self.step())
        self.post("sendconnector", "ToInternetGateway", "remove")
        self.get("new-sendconnector")
        self.step(Name="ToInternetGateway", Usage="Custom")  # a new run
        self.assertIn("Add at least one address space", self.step())

    def runBasic(self, smartHost):
        self.post("sendconnector", "ToInternetGateway", "remove")
        self.throughAddressSpace()
        self.step()
        self.step("add-SmartHosts", DNSRoutingEnabled="false")
        self.step("ok-SmartHosts", SmartHost=smartHost)
        self.step(DNSRoutingEnabled="false")
        self.step(SmartHostAuthMechanism="BasicAuth", BasicAuthRequireTLS="true",
                  UserName="hub@contoso.com", Password=PASSWORD)
        self.step("add-server", Server="HubA")
        self.step()
        return self.step()

    def test_completionStoresTheCredential(self):
        done = self.runBasic("smtpgateway1.contoso.com")
        self.assertIn("completed successfully", done)
        self.assertIn(">$CredentialObject = Get-Credential\nNew-SendConnector", done)
        text = self.text()
        self.assertIn("SmartHostAuthMechanism = BasicAuth, BasicAuthRequireTLS\n"
                      "AuthenticationCredential = ToInternetGateway\n", text)
        stored = [name for name in os.listdir(self.folder) if name not in ("org.ini", "org.ini.lock")]
        self.assertTrue(stored)
        for page in self.pages:
            self.assertNotIn(PASSWORD, page)
        self.assertNotIn(PASSWORD, text)
        self.assertNotIn(PASSWORD, self.logged())
        self.assertIn("ran: $CredentialObject = Get-Credential", self.logged())

    def test_refusalGoesBackToTheNetworkPage(self):
        page = self.runBasic("127.0.0.1:99999")
        self.assertIn("<h2>Network settings</h2>", page)
        self.assertIn('id="SmartHosts-error">[SendConnector ToInternetGateway] SmartHosts: '
                      "'127.0.0.1:99999': port 99999 is out of range", page)
        # Edit the row, and the rest of the run is as typed.
        self.assertIn('value="127.0.0.1:99999"', self.step("edit-SmartHosts-0",
                                                           DNSRoutingEnabled="false"))
        self.step("ok-SmartHosts", SmartHost="127.0.0.1:2525")
        self.step(DNSRoutingEnabled="false")
        self.step(SmartHostAuthMechanism="BasicAuth", BasicAuthRequireTLS="true",
                  UserName="hub@contoso.com")
        self.step()
        self.assertIn("completed successfully", self.step())
        self.assertIn("SmartHosts = 127.0.0.1:2525\n", self.text())
        for page in self.pages:
            self.assertNotIn(PASSWORD, page)

    def test_cmdletsOwnRefusalBesideTheCredential(self):
        """
        A refusal of the cmdlet's own ("-AuthenticationCredential: ...") goes
        back to the page with the user name and password (failed before
        fieldOf read that form).
        """
        self.post("sendconnector", "ToInternetGateway", "remove")
        self.throughAddressSpace()
        self.step()
        self.step("add-SmartHosts", DNSRoutingEnabled="false")
        self.step("ok-SmartHosts", SmartHost="smtpgateway1.contoso.com")
        self.step(DNSRoutingEnabled="false")
        self.step(SmartHostAuthMechanism="BasicAuth", UserName="hub\tgateway", Password=PASSWORD)
        self.step("add-server", Server="HubA")
        self.step()
        page = self.step()
        self.assertIn("<h2>Smart host security</h2>", page)
        self.assertIn('id="AuthenticationCredential-error">-AuthenticationCredential: ', page)
        self.assertIn("is not a user name", page)
        self.assertNotIn(PASSWORD, page)

    def test_addressSpaceRowsAddEditRemove(self):
        self.throughAddressSpace("ToPartners", "Partner")
        self.step("add-AddressSpaces")
        self.assertIn('id="Address-error">Enter an address space', self.step("ok-AddressSpaces"))
        page = self.step("ok-AddressSpaces", Address="tailspintoys.com", Cost="5",
                         IncludeSubdomains="true")
        self.assertIn("<td>SMTP</td><td>tailspintoys.com</td><td>5</td><td>Yes</td>", page)
        self.step("edit-AddressSpaces-1")
        page = self.step("ok-AddressSpaces", Address="woodgrovebank.com", Cost="2")
        self.assertIn("<td>woodgrovebank.com</td><td>2</td><td>No</td>", page)
        self.step("add-AddressSpaces")
        page = self.step("discard-AddressSpaces", Address="ignored.example")
        self.assertNotIn("ignored.example", page)
        page = self.step("remove-AddressSpaces-0")
        self.assertNotIn("<td>*</td>", page)
        self.step()
        # DNS MX records: no smart host security page.
        page = self.step(DNSRoutingEnabled="true", UseExternalDNSServersEnabled="true")
        self.assertIn("<h2>Source Server</h2>", page)
        self.assertNotIn("Smart host security", page)
        self.step("add-server", Server="HubB")
        summary = self.step()
        self.assertIn("New-SendConnector -Name 'ToPartners' -Usage Partner -AddressSpaces "
                      "'woodgrovebank.com;2' -SourceTransportServers 'HubB' -DNSRoutingEnabled "
                      "$true -UseExternalDNSServersEnabled $true</pre>", summary)
        self.assertIn("completed successfully", self.step())
        self.assertIn("[SendConnector ToPartners]\nUsage = Partner\nAddressSpaces = "
                      "woodgrovebank.com;2\n", self.text())

    def test_addressSpaceRefusedBesideTheList(self):
        self.throughAddressSpace("Bad")
        self.step("edit-AddressSpaces-0")
        self.step("ok-AddressSpaces", Address="*contoso.com")
        self.step()
        self.step(DNSRoutingEnabled="true")
        self.step("add-server", Server="HubA")
        self.step()
        page = self.step()
        self.assertIn("<h2>Address space</h2>", page)
        self.assertIn('id="AddressSpaces-error">[SendConnector Bad] AddressSpaces: '
                      "'*contoso.com' is not an SMTP address space", page)
        self.assertNotIn("[SendConnector Bad]", self.text())


class PropertiesTests(ConsoleTestCase):
    def test_generalRunsOnlyWhatChanged(self):
        page = self.get("sendconnector", "ToInternetGateway", "general")
        self.assertIn('value="10 MB (10,485,760 bytes)"', page)
        fields = dict(Name="ToInternetGateway", Enabled="true", ProtocolLoggingLevel="None",
                      Fqdn="", MaxMessageSize="10 MB (10,485,760 bytes)", Comment="")
        self.assertIn('id="error">Nothing was changed.', self.post(
            "sendconnector", "ToInternetGateway", "general", **fields))
        done = self.post("sendconnector", "ToInternetGateway", "general",
                         **dict(fields, ProtocolLoggingLevel="Verbose", MaxMessageSize="20MB",
                                Comment="to the <gateway>"))
        self.assertIn(">Set-SendConnector 'ToInternetGateway' -ProtocolLoggingLevel Verbose "
                      "-MaxMessageSize '20MB' -Comment 'to the &lt;gateway&gt;'</pre>", done)
        text = self.text()
        self.assertIn("ProtocolLoggingLevel = Verbose\nMaxMessageSize = 20MB\nComment = to the "
                      "<gateway>\n", text)
        page = self.get("sendconnector", "ToInternetGateway", "general")
        self.assertIn("to the &lt;gateway&gt;</textarea>", page)
        # Renamed, and the comment cleared.
        done = self.post("sendconnector", "ToInternetGateway", "general",
                         **dict(fields, Name="Outbound", ProtocolLoggingLevel="Verbose",
                                MaxMessageSize="20 MB (20,971,520 bytes)"))
        self.assertIn(">Set-SendConnector 'ToInternetGateway' -Name 'Outbound' -Comment $null</pre>",
                      done)
        self.assertIn('href="/ecp/sendconnector/Outbound/general"', done)
        self.assertNotIn("Comment", self.text())

    def test_refusalBesideTheField(self):
        fields = dict(Name="ToInternetGateway", Enabled="true", ProtocolLoggingLevel="None",
                      Fqdn="not a name", MaxMessageSize="10 MB (10,485,760 bytes)", Comment="")
        before = self.text()
        page = self.post("sendconnector", "ToInternetGateway", "general", **fields)
        self.assertEqual(self.code, 400)
        self.assertIn('id="Fqdn-error">[SendConnector ToInternetGateway] Fqdn: \'not a '
                      "name' is not a valid host name", page)
        self.assertIn('value="not a name"', page)
        self.assertEqual(self.text(), before)

    def test_addressSpaceTab(self):
        page = self.get("sendconnector", "<b>Partner</b>", "addressspace")
        self.assertIn('name="Address-0" id="Address-0" value="tailspintoys.com"', page)
        done = self.post("sendconnector", "<b>Partner</b>", "addressspace", rows="2",
                         **{"Address-0": "tailspintoys.com", "Cost-0": "5",
                            "IncludeSubdomains-0": "true", "Remove-0": "true",
                            "Address-1": "contoso.com", "Cost-1": "3"})
        self.assertIn("-AddressSpaces 'contoso.com;3'</pre>", done)
        self.assertIn("AddressSpaces = contoso.com;3\n", self.text())

    def test_networkTabChangesTheCredential(self):
        page = self.get("sendconnector", "ToInternetGateway", "network")
        self.assertIn('id="SmartHost-0" value="smtpgateway1.contoso.com"', page)
        fields = {"DNSRoutingEnabled": "false", "rows": "2",
                  "SmartHost-0": "smtpgateway1.contoso.com", "SmartHost-1": "smtpgateway2.contoso.com",
                  "SmartHostAuthMechanism": "BasicAuth", "BasicAuthRequireTLS": "true",
                  "UserName": "hub@contoso.com"}
        missing = self.post("sendconnector", "ToInternetGateway", "network", **fields)
        self.assertIn('id="Password-error">Enter the password.', missing)
        done = self.post("sendconnector", "ToInternetGateway", "network",
                         **dict(fields, Password=PASSWORD))
        self.assertIn(">$CredentialObject = Get-Credential\nSet-SendConnector 'ToInternetGateway' "
                      "-SmartHosts 'smtpgateway1.contoso.com','smtpgateway2.contoso.com' "
                      "-SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS "
                      "-AuthenticationCredential $CredentialObject</pre>", done)
        self.assertIn("AuthenticationCredential = ToInternetGateway\n", self.text())
        page = self.get("sendconnector", "ToInternetGateway", "network")
        self.assertIn('id="stored-credential"', page)
        # The stored credential is kept when no new one is typed.
        done = self.post("sendconnector", "ToInternetGateway", "network",
                         **dict(fields, RequireTLS="true", UserName=""))
        self.assertIn(">Set-SendConnector 'ToInternetGateway' -RequireTLS $true</pre>", done)
        for page in self.pages:
            self.assertNotIn(PASSWORD, page)
        self.assertNotIn(PASSWORD, self.logged())

    def test_sourceServerTab(self):
        page = self.get("sendconnector", "ToInternetGateway", "sourceserver")
        self.assertIn('value="HubB" id="server-HubB"', page)
        done = self.post("sendconnector", "ToInternetGateway", "sourceserver",
                         SourceTransportServers=["HubA", "HubB"])
        self.assertIn("-SourceTransportServers 'HubA','HubB'</pre>", done)
        page = self.post("sendconnector", "ToInternetGateway", "sourceserver")
        self.assertIn('id="SourceTransportServers-error">', page)
        self.assertIn("SourceTransportServers = HubA, HubB\n", self.text())


class AcceptedDomainTests(ConsoleTestCase):
    def test_listHasEachDomainsActions(self):
        page = self.get("accepteddomains")
        self.assertIn("<td>Contoso</td><td>contoso.com</td><td>Authoritative</td><td>False</td>", page)
        self.assertIn('action="/ecp/accepteddomain/Contoso/default"', page)
        self.assertNotIn('action="/ecp/accepteddomain/fabrikam.com/default"', page)
        self.assertIn('href="/ecp/accepteddomain/fabrikam.com/edit"', page)
        self.assertIn('href="/ecp/new-accepteddomain"', page)

    def test_edit(self):
        page = self.get("accepteddomain", "Contoso", "edit")
        self.assertIn('<strong id="DomainName">contoso.com</strong>', page)
        self.assertIn('id="error">Nothing was changed.', self.post(
            "accepteddomain", "Contoso", "edit", Name="Contoso", DomainType="Authoritative"))
        done = self.post("accepteddomain", "Contoso", "edit", Name="Contoso",
                         DomainType="InternalRelay")
        self.assertIn(">Set-AcceptedDomain 'Contoso' -DomainType 'InternalRelay'</pre>", done)
        self.assertIn("[AcceptedDomain Contoso]\nDomainName = contoso.com\nDomainType = InternalRelay\n",
                      self.text())
        page = self.post("accepteddomain", "Contoso", "edit", Name="fabrikam.com",
                         DomainType="InternalRelay")
        self.assertEqual(self.code, 400)
        self.assertIn("id=\"error\">An accepted domain named 'fabrikam.com' already exists.", page)

    def test_removeAsksFirst(self):
        page = self.get("accepteddomain", "Contoso", "remove")
        self.assertIn("permanently remove the accepted domain '<strong>Contoso</strong>' "
                      "(contoso.com)?", page)
        self.assertIn("[AcceptedDomain Contoso]", self.text())
        done = self.post("accepteddomain", "Contoso", "remove")
        self.assertIn(">Remove-AcceptedDomain 'Contoso'</pre>", done)
        self.assertNotIn("Contoso", self.text())

    def test_makeDefault(self):
        done = self.post("accepteddomain", "Contoso", "default")
        self.assertIn(">Set-AcceptedDomain 'Contoso' -MakeDefault $true</pre>", done)
        self.assertLess(self.text().index("[AcceptedDomain Contoso]"),
                        self.text().index("[AcceptedDomain fabrikam.com]"))
        page = self.get("accepteddomains")
        self.assertIn("<td>Contoso</td><td>contoso.com</td><td>Authoritative</td><td>True</td>", page)
