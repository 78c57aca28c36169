"""
The reference document's EMC procedures for Send connectors, performed in
headless chromium through the console's pages (the New Send Connector
wizard, the list, the properties), then checked over SMTP against the
running C{twistd exmta}, as tests/e2e/test_shell_reference.py checks the
Shell's lines:

  - Basic authentication over TLS: mail submitted to HubA leaves through
    the new connector for the external SMTP gateway (an exmta,
    tests/e2e/sending.py's L{Gateway}), which demands AUTH inside STARTTLS;
    it logs on with the user name and password typed into the wizard
    (C{with ESMTPSA}).  On the way, a smart host the Shell refuses comes
    back beside the smart hosts with the Shell's words.  The password is in
    no page the browser was sent and not in the server's log.
  - Externally Secured: the gateway takes HubA's mail by its address,
    without AUTH.  Then the connector's properties (a refusal beside the
    FQDN, then the change), Disable, and Remove after its confirmation.
  - Accepted Domains: New, Set as Default, Edit and Remove, each seen in
    HubA's answer to RCPT TO.

With EXMTA_CONSOLE_SCREENSHOTS set, the wizard's pages and the list are
saved into docs/console/ (tests/e2e/browser.py).
"""

import os
import smtplib

import pytest
import trustme
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.e2e.browser import logOn, replacing, rows, screenshot, waitFor
from tests.e2e.harness import ServerProcess, freePort, writeOrganization
from tests.e2e.postfix import writeCertificate
from tests.e2e.sending import GATEWAY_ACCOUNT, GATEWAY_PASSWORD, TIMEOUT, Gateway, headerOf, waitUntil

ADMIN_PASSWORD = "Console-Pa55word!"

HUB = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01
OutboundConnectionFailureRetryInterval = 00:00:01

[EcpVirtualDirectory HubA]
InternalUrl = https://127.0.0.1:{console}/ecp/
OrganizationManagement = administrator@fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

# Where the test submits: HubA's own network, externally secured.
[ReceiveConnector Submission HubA]
Usage = Internal
Bindings = 127.0.0.1:{smtp}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = ExternalAuthoritative
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("pki"))
    certificate = writeCertificate(trustme.CA(), folder, "smtpgateway1.contoso.com")
    running = Gateway(str(tmp_path_factory.mktemp("gateway")), {"gateway1": certificate})
    yield running
    running.stop()


class Hub:
    def __init__(self, folder):
        console, self.smtp = freePort(), freePort()
        config = writeOrganization(
            folder, HUB.format(console=console, smtp=self.smtp),
            accounts=[("administrator@fabrikam.com", ADMIN_PASSWORD)],
        )
        self.server = ServerProcess(config, sockets=2)
        self.url = f"https://127.0.0.1:{console}/ecp/"
        self.server.waitFor(f"console listening on {self.url}")

    def rcpt(self, recipient):
        """
        @return: the code and enhanced status of HubA's answer to RCPT TO.
        """
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=TIMEOUT) as smtp:
            smtp.ehlo("client.fabrikam.com")
            smtp.mail("kim@fabrikam.com")
            code, text = smtp.rcpt(recipient)
            return code, text.decode()[:5]

    def submit(self, recipient, subject):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=TIMEOUT) as smtp:
            assert smtp.sendmail(
                "kim@fabrikam.com", [recipient],
                f"From: kim@fabrikam.com\r\nSubject: {subject}\r\n\r\nHello.\r\n".encode(),
            ) == {}


@pytest.fixture
def hub(tmp_path):
    running = Hub(str(tmp_path / "hub"))
    yield running
    running.server.stop()


class Console:
    """
    The administrator at the browser: every page the browser was sent is
    kept, to look for the password in.
    """

    def __init__(self, browser, url):
        self.browser = browser
        self.url = url
        self.pages = []

    def logOn(self):
        logOn(self.browser, self.url, "administrator@fabrikam.com", ADMIN_PASSWORD)
        waitFor(self.browser, "user")

    def click(self, selector, by=By.ID):
        """
        Click a button or link and wait for the page it brings.
        """
        self.replacing(lambda: self.browser.find_element(by, selector).click())

    def replacing(self, act):
        """
        Do C{act} and wait for the page it brings.
        """
        replacing(self.browser, act)
        waitFor(self.browser, "content")
        self.pages.append(self.browser.page_source)

    def action(self, value):
        self.click(f'button[value="{value}"]', By.CSS_SELECTOR)

    def type(self, field, text):
        element = self.browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(text)

    def heading(self):
        return self.browser.find_element(By.CSS_SELECTOR, "#content h2").text

    def text(self, element):
        return self.browser.find_element(By.ID, element).text

    def newSendConnector(self, name, usage, smartHost, security, shots=False):
        """
        The New Send Connector wizard as the reference document's EMC
        procedures go through it, up to its New Connector page.
        """
        self.browser.get(self.url)
        waitFor(self.browser, "user")
        self.click("Send Connectors", By.LINK_TEXT)
        self.click("new")
        assert self.heading() == "Introduction"
        self.type("Name", name)
        Select(self.browser.find_element(By.ID, "Usage")).select_by_value(usage)
        shots and screenshot(self.browser, "new-sendconnector-introduction")
        self.click("next")
        assert self.heading() == "Address space"
        self.click("add-AddressSpaces")
        # Enter in the dialog's field means OK, as in the EMC's dialog.
        self.replacing(lambda: self.type("Address", "*" + Keys.ENTER))
        assert rows(self.browser, "AddressSpaces")[1][:4] == ["SMTP", "*", "1", "No"]
        shots and screenshot(self.browser, "new-sendconnector-addressspace")
        self.click("next")
        assert self.heading() == "Network settings"
        self.browser.find_element(By.ID, "DNSRoutingEnabled-false").click()
        self.click("add-SmartHosts")
        self.type("SmartHost", smartHost)
        self.click("ok")
        self.click("next")
        assert self.heading() == "Smart host security"
        security()
        shots and screenshot(self.browser, "new-sendconnector-security")
        self.click("next")
        assert self.heading() == "Source Server"
        Select(self.browser.find_element(By.ID, "Server")).select_by_value("HubA")
        self.click("add-server")
        shots and screenshot(self.browser, "new-sendconnector-sourceserver")
        self.click("next")
        assert self.heading() == "New Connector"
        return self.text("summary")


def test_basicAuthenticationOverTls(hub, gateway, browser):
    console = Console(browser, hub.url)
    console.logOn()

    def basicOverTls():
        browser.find_element(By.ID, "SmartHostAuthMechanism-BasicAuth").click()
        browser.find_element(By.ID, "BasicAuthRequireTLS").click()
        console.type("UserName", GATEWAY_ACCOUNT)
        console.type("Password", GATEWAY_PASSWORD)

    # First with a port the Shell refuses: the wizard goes back to the
    # network page with the Shell's words beside the smart hosts.
    summary = console.newSendConnector("ToInternetGateway", "Custom", "127.0.0.1:99999",
                                       basicOverTls, shots=True)
    assert summary.startswith("$CredentialObject = Get-Credential\nNew-SendConnector")
    console.click("finish")
    assert console.heading() == "Network settings"
    assert console.text("SmartHosts-error").startswith(
        "[SendConnector ToInternetGateway] SmartHosts: '127.0.0.1:99999': port 99999 is out of "
        "range; it must be 1 to 65535"
    )
    screenshot(browser, "new-sendconnector-refused")
    console.click("button.edit", By.CSS_SELECTOR)
    console.type("SmartHost", f"127.0.0.1:{gateway.basicPort}")
    console.click("ok")
    screenshot(browser, "new-sendconnector-network")
    console.click("next")
    assert console.text("password-entered")  # kept in the session, not in the page
    console.click("next")
    console.click("next")
    screenshot(browser, "new-sendconnector-summary")
    console.click("finish")
    assert console.text("command") == (
        "$CredentialObject = Get-Credential\n"
        "New-SendConnector -Name 'ToInternetGateway' -AddressSpaces '*' -SmartHosts "
        f"'127.0.0.1:{gateway.basicPort}' -SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS "
        "-AuthenticationCredential $CredentialObject -SourceTransportServers 'HubA' "
        "-DNSRoutingEnabled $false"
    )
    screenshot(browser, "new-sendconnector-completion")
    console.click("connectors")
    assert rows(browser, "send-connectors")[1][:5] == [
        "ToInternetGateway", "True", "SMTP:*;1", f"127.0.0.1:{gateway.basicPort}",
        "BasicAuth, BasicAuthRequireTLS",
    ]
    screenshot(browser, "send-connectors")

    # The gateway demands AUTH inside STARTTLS: HubA logs on with what was typed.
    hub.submit("basic@contoso.com", "console basic over TLS")
    found = waitUntil(
        lambda: [m for m in gateway.messages("basic@contoso.com") if b"console basic over TLS" in m],
        "the message at the gateway", [hub.server, gateway.server],
    )
    assert "with ESMTPSA" in headerOf(found[0], "Received")

    assert all(GATEWAY_PASSWORD not in page for page in console.pages)
    assert GATEWAY_PASSWORD not in hub.server.drain()
    assert "console: administrator@fabrikam.com ran: $CredentialObject = Get-Credential" in (
        hub.server.drain()
    )


def test_externallySecuredThenPropertiesDisableRemove(hub, gateway, browser):
    console = Console(browser, hub.url)
    console.logOn()

    def externallySecured():
        browser.find_element(By.ID, "SmartHostAuthMechanism-ExternalAuthoritative").click()

    summary = console.newSendConnector("ToInternetGateway", "Internal",
                                       f"127.0.0.1:{gateway.externalPort}", externallySecured)
    assert summary == (
        "New-SendConnector -Name 'ToInternetGateway' -Usage Internal -AddressSpaces '*' "
        f"-SmartHosts '127.0.0.1:{gateway.externalPort}' -SmartHostAuthMechanism "
        "ExternalAuthoritative -SourceTransportServers 'HubA' -DNSRoutingEnabled $false"
    )
    console.click("finish")
    assert "completed successfully" in console.text("content")

    hub.submit("external@contoso.com", "console externally secured")
    found = waitUntil(
        lambda: [m for m in gateway.messages("external@contoso.com")
                 if b"console externally secured" in m],
        "the message at the gateway", [hub.server, gateway.server],
    )
    assert "ESMTPSA" not in headerOf(found[0], "Received")

    # Properties: the Shell's refusal beside the field, then the change.
    console.click("connectors")
    console.click("Properties", By.LINK_TEXT)
    screenshot(browser, "sendconnector-properties")
    assert console.text("tabs").split("\n") == ["General", "Address Space", "Network",
                                                "Source Server"]
    Select(browser.find_element(By.ID, "ProtocolLoggingLevel")).select_by_value("Verbose")
    console.type("Fqdn", "not a name")
    console.click("ok")
    assert console.text("Fqdn-error").startswith(
        "[SendConnector ToInternetGateway] Fqdn: 'not a name' is not a valid host name"
    )
    console.type("Fqdn", "huba.fabrikam.com")
    console.click("ok")
    assert console.text("command") == (
        "Set-SendConnector 'ToInternetGateway' -ProtocolLoggingLevel Verbose "
        "-Fqdn 'huba.fabrikam.com'"
    )
    hub.submit("external@contoso.com", "console after properties")
    waitUntil(
        lambda: [m for m in gateway.messages("external@contoso.com")
                 if b"console after properties" in m],
        "the message at the gateway", [hub.server, gateway.server],
    )
    log = os.path.join(os.path.dirname(hub.server.config), "var", "HubA", "ProtocolLog", "SmtpSend")
    assert os.listdir(log)  # Verbose: the send protocol log is written

    console.click("connectors")
    console.click("button.disable", By.CSS_SELECTOR)
    assert "-Enabled $false" in console.text("command")
    console.click("connectors")
    assert rows(browser, "send-connectors")[1][1] == "False"
    console.click("Remove", By.LINK_TEXT)
    assert "permanently remove the Send connector 'ToInternetGateway'?" in console.text("content")
    console.click("yes")
    assert console.text("command") == "Remove-SendConnector 'ToInternetGateway'"
    console.click("connectors")
    assert rows(browser, "send-connectors") == [
        ["Name", "Enabled", "Address spaces", "Smart hosts", "Smart host authentication", ""]
    ]


def test_acceptedDomainsNewEditDefaultRemove(hub, browser):
    """
    Accepted Domains through the console, each change checked by what the
    running HubA answers to RCPT TO: an Authoritative domain refuses an
    unknown mailbox, an External Relay domain and a domain that is not
    accepted are relayed (the submission connector is externally secured).
    """
    console = Console(browser, hub.url)
    console.logOn()
    assert hub.rcpt("nobody@tailspintoys.com") == (250, "2.1.5")
    console.click("Accepted Domains", By.LINK_TEXT)
    console.click("new")
    console.type("Name", "Tailspin Toys")
    console.type("DomainName", "tailspintoys.com")
    console.click("next")
    console.click("finish")
    assert hub.rcpt("nobody@tailspintoys.com")[0] == 550

    console.click("domains")
    console.click("button.make-default", By.CSS_SELECTOR)
    assert console.text("command") == "Set-AcceptedDomain 'Tailspin Toys' -MakeDefault $true"
    console.click("domains")
    assert [row[:4] for row in rows(browser, "accepted-domains")[1:]] == [
        ["Tailspin Toys", "tailspintoys.com", "Authoritative", "True"],
        ["fabrikam.com", "fabrikam.com", "Authoritative", "False"],
    ]

    browser.find_elements(By.CSS_SELECTOR, "a.edit")[0].click()
    waitFor(browser, "DomainType")
    Select(browser.find_element(By.ID, "DomainType")).select_by_value("ExternalRelay")
    console.click("ok")
    assert console.text("command") == "Set-AcceptedDomain 'Tailspin Toys' -DomainType 'ExternalRelay'"
    assert hub.rcpt("nobody@tailspintoys.com") == (250, "2.1.5")

    console.click("domains")
    browser.find_elements(By.CSS_SELECTOR, "a.remove")[0].click()
    waitFor(browser, "yes")
    console.click("yes")
    assert console.text("command") == "Remove-AcceptedDomain 'Tailspin Toys'"
    console.click("domains")
    assert [row[0] for row in rows(browser, "accepted-domains")[1:]] == ["fabrikam.com"]
