"""
The web console in a real browser: Debian's headless chromium, driven by
Selenium through chromium-driver, against C{twistd exmta} serving the
console over HTTPS on loopback.  The test types into the logon form and
clicks, reads the overview's tables (which the Shell's cmdlets filled),
logs off, and is refused with a wrong password and with an account outside
Organization Management.

With EXMTA_CONSOLE_SCREENSHOTS set, the overview is saved as
docs/console/overview.png (tests/e2e/browser.py).
"""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.browser import WAIT, logOn, rows, screenshot
from tests.e2e.harness import ServerProcess, freePort, writeOrganization

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

[AcceptedDomain fabrikam.com]

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:{smtp}
RemoteIPRanges = 0.0.0.0-255.255.255.255

[SendConnector ToInternetGateway]
AddressSpaces = *
SmartHosts = smtpgateway1.contoso.com
DNSRoutingEnabled = $false
"""

@pytest.fixture
def console(tmp_path):
    port = freePort()
    config = writeOrganization(
        str(tmp_path),
        ORGANIZATION.format(console=port, smtp=freePort()),
        accounts=[
            ("administrator@fabrikam.com", ADMIN_PASSWORD),
            ("kim@fabrikam.com", KIM_PASSWORD),
        ],
    )
    server = ServerProcess(config, sockets=2)
    server.waitFor(f"console listening on https://127.0.0.1:{port}/ecp/")
    try:
        yield f"https://127.0.0.1:{port}/ecp/"
    finally:
        server.stop()


def test_logOnReadTheOverviewLogOff(console, browser):
    logOn(browser, console, "administrator@fabrikam.com", ADMIN_PASSWORD)
    WebDriverWait(browser, WAIT).until(
        expected_conditions.presence_of_element_located((By.ID, "Get-ReceiveConnector"))
    )
    assert browser.current_url == console
    assert browser.find_element(By.ID, "user").text == "administrator@fabrikam.com"
    receive = rows(browser, "Get-ReceiveConnector")
    assert receive[0][0] == "Identity"
    assert receive[1][0] == "HubA\\Default HubA"
    send = rows(browser, "Get-SendConnector")
    assert send[1][:4] == ["ToInternetGateway", "True", "{SMTP:*;1}", "{smtpgateway1.contoso.com}"]
    assert rows(browser, "Get-AcceptedDomain")[1][:3] == [
        "fabrikam.com",
        "fabrikam.com",
        "Authoritative",
    ]
    assert rows(browser, "Get-TransportServer")[1][:2] == ["HubA", "huba.fabrikam.com"]
    cookie = browser.get_cookie("exmta-ecp-session")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    screenshot(browser, "overview")

    browser.find_element(By.ID, "logoff").click()
    WebDriverWait(browser, WAIT).until(expected_conditions.url_to_be(console + "logon"))
    browser.get(console)
    WebDriverWait(browser, WAIT).until(expected_conditions.url_to_be(console + "logon"))
    assert not browser.find_elements(By.ID, "Get-ReceiveConnector")


@pytest.mark.parametrize(
    "user, password",
    [
        ("administrator@fabrikam.com", "not-the-password"),
        ("kim@fabrikam.com", KIM_PASSWORD),  # right password, not in Organization Management
    ],
)
def test_logOnRefused(console, browser, user, password):
    logOn(browser, console, user, password)
    error = WebDriverWait(browser, WAIT).until(
        expected_conditions.presence_of_element_located((By.ID, "error"))
    )
    assert "password is incorrect" in error.text
    assert browser.get_cookie("exmta-ecp-session") is None
    browser.get(console)
    WebDriverWait(browser, WAIT).until(expected_conditions.url_to_be(console + "logon"))
