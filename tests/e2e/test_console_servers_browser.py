"""
The reference document's EMC procedures for Receive connectors, performed
in headless chromium through the console's pages against C{twistd exmta},
then checked over SMTP against the same running server (the console's
changes reload it):

  - Anonymous relay (the EMC steps 2 to 4): the New Receive Connector
    wizard (Custom; the All Available IPv4 binding removed and the
    server's own address added; the all-ranges entry removed and the
    gateway's address added) makes a connector that answers on its new
    binding; Anonymous users ticked on the Permission Groups tab; anonymous
    relay refused with 550 5.7.1, then accepted once the Permissions page
    has granted NT AUTHORITY\\ANONYMOUS LOGON
    Ms-Exch-SMTP-Accept-Any-Recipient.
  - The Authentication tab: "Offer Basic authentication only after
    starting TLS" ticked, AUTH is no longer offered before STARTTLS and
    still is after it (smtplib).
  - A member of View-Only Organization Management sees these pages and
    every change is refused with 403; org.ini is unchanged.

The gateway's address 192.168.5.77 becomes 127.0.5.77 and the server's
10.2.3.4:25 a free port on 127.0.0.4, as in tests/e2e/test_shell_reference.py.
With EXMTA_CONSOLE_SCREENSHOTS set, the wizard's pages, the Authentication
and Permission Groups tabs and the Permissions page are saved in
docs/console/.
"""

import smtplib
import ssl

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.e2e.browser import logOn, replacing, rows, screenshot, waitFor
from tests.e2e.harness import RawClient, ServerProcess, freePort, writeOrganization

ADMIN_PASSWORD = "Console-Pa55word!"
KIM_PASSWORD = "Kims-Pa55word!"

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes

[EcpVirtualDirectory HubA]
InternalUrl = https://127.0.0.1:{console}/ecp/
OrganizationManagement = administrator@fabrikam.com
ViewOnlyOrganizationManagement = kim@fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:{smtp}
RemoteIPRanges = 0.0.0.0-255.255.255.255
AuthMechanism = Tls, BasicAuth
PermissionGroups = ExchangeUsers
AuthTarpitInterval = 00:00:00

# Mail for other domains waits for a smart host that is down.
[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = 127.0.0.1:{downstream}
DNSRoutingEnabled = $false
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("console-servers"))
    ports = {"console": freePort(), "smtp": freePort(), "downstream": freePort()}
    config = writeOrganization(
        folder,
        ORGANIZATION.format(**ports),
        accounts=[
            ("administrator@fabrikam.com", ADMIN_PASSWORD),
            ("kim@fabrikam.com", KIM_PASSWORD),
        ],
    )
    server = ServerProcess(config, sockets=2)
    server.waitFor(f"console listening on https://127.0.0.1:{ports['console']}/ecp/")
    server.url = f"https://127.0.0.1:{ports['console']}/ecp/"
    server.smtpPort = ports["smtp"]
    try:
        yield server
    finally:
        server.stop()


def click(browser, element):
    """
    Click the element of id C{element} (a link or a button), and wait for
    the page it leads to.
    """
    follow(browser, browser.find_element(By.ID, element))


def follow(browser, element):
    replacing(browser, element.click)


def typeInto(browser, element, text):
    field = browser.find_element(By.ID, element)
    field.clear()
    field.send_keys(text)


def heading(browser):
    return browser.find_element(By.CSS_SELECTOR, "#content h2").text


def openServer(browser):
    follow(browser, browser.find_element(By.LINK_TEXT, "Hub Transport"))
    follow(browser, browser.find_element(By.LINK_TEXT, "HubA"))
    return waitFor(browser, "receive-connectors")


def relayAttempt(port, subject):
    """
    Offer an anonymous message for external@contoso.com from the gateway's
    address.

    @return: the RCPT reply's first line.
    """
    raw = RawClient("127.0.0.4", port, source="127.0.5.77")
    assert raw.reply()[0] == 220
    raw.command("EHLO smtpgateway1.contoso.com")
    assert raw.command("MAIL FROM:<news@contoso.com>")[0] == 250
    code, lines = raw.command("RCPT TO:<external@contoso.com>")
    if code == 250:
        assert raw.command("DATA")[0] == 354
        raw.send(f"Subject: {subject}\r\n\r\nHello.\r\n.\r\n".encode())
        assert raw.reply()[0] == 250
    raw.command("QUIT")
    raw.close()
    return lines[0]


def test_anonymousRelayProcedure(hub, browser):
    relayPort = freePort("127.0.0.4")
    logOn(browser, hub.url, "administrator@fabrikam.com", ADMIN_PASSWORD)
    waitFor(browser, "user")
    openServer(browser)

    # Step 2: the New Receive Connector wizard.
    click(browser, "new-receiveconnector")
    typeInto(browser, "Name", "FromInternetGateway")
    Select(browser.find_element(By.ID, "Usage")).select_by_value("Custom")
    screenshot(browser, "new-receive-connector-introduction")
    click(browser, "next")
    assert heading(browser) == "Local Network settings"
    assert browser.find_element(By.ID, "Bindings-0").get_attribute("value") == "0.0.0.0:25"
    click(browser, "remove-Bindings-0")
    typeInto(browser, "Bindings-new", f"127.0.0.4:{relayPort}")
    click(browser, "add-Bindings")
    assert browser.find_element(By.ID, "Bindings-0").get_attribute("value") == (
        f"127.0.0.4:{relayPort}"
    )
    screenshot(browser, "new-receive-connector-local-network")
    click(browser, "next")
    assert heading(browser) == "Remote Network settings"
    click(browser, "remove-RemoteIPRanges-0")
    typeInto(browser, "RemoteIPRanges-new", "127.0.5.77")
    screenshot(browser, "new-receive-connector-remote-network")
    # Enter in the field means Next (not the list's Remove), and keeps what
    # was typed.
    replacing(browser, lambda: browser.find_element(By.ID, "RemoteIPRanges-new").send_keys(Keys.ENTER))
    line = (
        "New-ReceiveConnector -Name 'FromInternetGateway' -Server HubA -Usage Custom "
        f"-Bindings 127.0.0.4:{relayPort} -RemoteIPRanges 127.0.5.77"
    )
    assert browser.find_element(By.ID, "summary").text == line
    screenshot(browser, "new-receive-connector-summary")
    click(browser, "finish")
    assert waitFor(browser, "command").text == line
    screenshot(browser, "new-receive-connector-completion")

    # The running server answers on the new binding, to the gateway only.
    raw = RawClient("127.0.0.4", relayPort, source="127.0.5.77")
    assert raw.reply()[0] == 220
    raw.close()

    # Step 3: Properties, Permission Groups, Anonymous users.
    click(browser, "properties")
    click(browser, "tab-permissiongroups")
    box = browser.find_element(By.ID, "PermissionGroups-AnonymousUsers")
    assert not box.is_selected()
    box.click()
    screenshot(browser, "receive-connector-permission-groups")
    click(browser, "ok")
    assert waitFor(browser, "command").text == (
        "Set-ReceiveConnector 'HubA\\FromInternetGateway' -PermissionGroups AnonymousUsers"
    )
    assert browser.find_element(By.ID, "PermissionGroups-AnonymousUsers").is_selected()
    assert relayAttempt(relayPort, "before").startswith("550 5.7.1")

    # Step 4: the relay permission, on the Permissions page.
    click(browser, "tab-permissions")
    assert browser.find_element(By.ID, "User").get_attribute("value") == (
        "NT AUTHORITY\\ANONYMOUS LOGON"
    )
    click(browser, "add-permission")
    assert waitFor(browser, "command").text == (
        "Get-ReceiveConnector 'HubA\\FromInternetGateway' | Add-ADPermission "
        "-User 'NT AUTHORITY\\ANONYMOUS LOGON' -ExtendedRights 'Ms-Exch-SMTP-Accept-Any-Recipient'"
    )
    assert rows(browser, "permissions")[1][:3] == [
        "NT AUTHORITY\\ANONYMOUS LOGON",
        "ms-Exch-SMTP-Accept-Any-Recipient",
        "Allow",
    ]
    screenshot(browser, "receive-connector-permissions")
    assert relayAttempt(relayPort, "after").startswith("250")

    # The server's list shows the new connector as the Shell sees it.
    openServer(browser)
    connector = [r for r in rows(browser, "receive-connectors") if r[0] == "FromInternetGateway"]
    assert connector[0][1:5] == [
        "Enabled",
        f"{{127.0.0.4:{relayPort}}}",
        "{127.0.5.77}",
        "Tls",
    ]


def ehloAuth(port, startTLS):
    """
    @return: whether the default connector offers AUTH, before or after
        STARTTLS.
    """
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("kims-pc.fabrikam.com")
        if startTLS:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            client.ehlo("kims-pc.fabrikam.com")
            offered = client.has_extn("auth")
            client.login("kim@fabrikam.com", KIM_PASSWORD)
            return offered
        return client.has_extn("auth")


def test_authenticationTabBasicOnlyAfterTls(hub, browser):
    assert ehloAuth(hub.smtpPort, startTLS=False)
    logOn(browser, hub.url, "administrator@fabrikam.com", ADMIN_PASSWORD)
    waitFor(browser, "user")
    openServer(browser)
    click(browser, "properties-Default HubA")
    click(browser, "tab-authentication")
    assert browser.find_element(By.ID, "AuthMechanism-BasicAuth").is_selected()
    browser.find_element(By.ID, "AuthMechanism-BasicAuthRequireTLS").click()
    screenshot(browser, "receive-connector-authentication")
    click(browser, "ok")
    assert waitFor(browser, "command").text == (
        "Set-ReceiveConnector 'HubA\\Default HubA' -AuthMechanism Tls,BasicAuth,BasicAuthRequireTLS"
    )
    assert not ehloAuth(hub.smtpPort, startTLS=False)
    assert ehloAuth(hub.smtpPort, startTLS=True)


def test_viewOnlySeesAndChangesNothing(hub, browser):
    with open(hub.config) as handle:
        before = handle.read()
    logOn(browser, hub.url, "kim@fabrikam.com", KIM_PASSWORD)
    waitFor(browser, "user")
    openServer(browser)
    assert rows(browser, "receive-connectors")[1][0] == "Default HubA"
    assert not browser.find_elements(By.ID, "new-receiveconnector")
    # Each kind of change, as the pages offer it, is refused.
    attempts = [
        ("properties-Default HubA", "tab-permissiongroups", "PermissionGroups-AnonymousUsers", "ok"),
        ("properties-Default HubA", "tab-authentication", "AuthMechanism-Tls", "ok"),
        ("permissions-Default HubA", None, None, "add-permission"),
        ("remove-Default HubA", None, None, "yes"),
        ("state-Default HubA", None, None, None),
    ]
    for link, tab, box, button in attempts:
        openServer(browser)
        click(browser, link)
        if tab:
            click(browser, tab)
        if box:
            browser.find_element(By.ID, box).click()
        if button:
            click(browser, button)
        assert "View-Only" in waitFor(browser, "error").text
        assert browser.title.startswith("Refused")
    browser.get(hub.url + "server-properties/HubA")
    typeInto(browser, "TransientFailureRetryCount", "4")
    click(browser, "ok")
    assert "View-Only" in waitFor(browser, "error").text
    with open(hub.config) as handle:
        assert handle.read() == before
