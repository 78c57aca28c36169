"""
The console's Toolbox and Dashboard in Debian's headless chromium against
C{twistd exmta}, whose send connector's smart host is down: messages
submitted over SMTP wait in Retry.  The administrator suspends, resumes
and retries through the Queue Viewer, removes a message with a
non-delivery report (the script's confirmation dialog accepted) and the
sender finds the NDR in its Maildir; finds a delivered and a failed
message in Message Tracking and opens the failed one's path; reads the
dashboard's numbers after that mix, which the console's script keeps
fresh.  A subject C{<script>alert(1)</script>} shows as text.  Failed
logons over real HTTPS are throttled.

With EXMTA_CONSOLE_SCREENSHOTS set, the pages are saved into
docs/console/ (tests/e2e/browser.py).
"""

import http.client
import os
import re
import smtplib
import ssl
from urllib.parse import urlencode

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.browser import WAIT, logOn, rows, screenshot, waitFor
from tests.e2e.harness import ServerProcess, freePort, maildirMessages, writeOrganization

PASSWORD = "Console-Pa55word!"
HOSTILE = "<script>alert(1)</script>"

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageTrackingLogPath = var/tracking
TransientFailureRetryInterval = 01:00:00

[EcpVirtualDirectory HubA]
InternalUrl = https://127.0.0.1:{console}/ecp/
OrganizationManagement = administrator@fabrikam.com

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[Mailbox Administrator]
PrimarySmtpAddress = administrator@fabrikam.com

[ReceiveConnector Relay HubA]
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.1:{smtp}
RemoteIPRanges = 127.0.0.1

[ADPermission]
Identity = Relay HubA
User = NT AUTHORITY\\ANONYMOUS LOGON
ExtendedRights = Ms-Exch-SMTP-Accept-Any-Recipient

# The smart host is down: mail for other domains waits in Retry.
[SendConnector ToInternet]
AddressSpaces = *
SmartHosts = 127.0.0.1:{closed}
DNSRoutingEnabled = $false
"""


class Running:
    def __init__(self, folder):
        self.folder = folder
        self.port = freePort()
        self.smtp = freePort()
        config = writeOrganization(
            folder,
            ORGANIZATION.format(console=self.port, smtp=self.smtp, closed=freePort()),
            accounts=[("administrator@fabrikam.com", PASSWORD)],
        )
        self.server = ServerProcess(config, sockets=2)
        self.url = f"https://127.0.0.1:{self.port}/ecp/"

    def send(self, sender, recipient, subject):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as client:
            client.sendmail(
                sender, [recipient],
                f"From: {sender}\r\nSubject: {subject}\r\n\r\nHello\r\n".encode(),
            )

    def mailbox(self, address):
        return os.path.join(self.folder, "var", "mailboxes", address)


@pytest.fixture
def running(tmp_path):
    organization = Running(str(tmp_path))
    try:
        yield organization
    finally:
        organization.server.stop()


def click(browser, element):
    browser.find_element(By.ID, element).click()


def tick(browser, table, text):
    """
    Tick the row of C{table} whose cells hold C{text}.
    """
    for row in browser.find_element(By.ID, table).find_elements(By.TAG_NAME, "tr")[1:]:
        if text in row.text:
            row.find_element(By.NAME, "identity").click()
            return
    raise AssertionError(f"no row of {table} holds {text!r}")


def column(browser, table, name):
    found = rows(browser, table)
    index = found[0].index(name)
    return {tuple(row): row[index] for row in found[1:]}


def statusOf(browser, subject):
    found = rows(browser, "messages")
    index = found[0].index("Status")
    for row in found[1:]:
        if subject in row:
            return row[index]
    raise AssertionError(f"no message {subject!r}")


def act(browser, action):
    """
    Press an action button, then go back to the list from the completion page.
    """
    click(browser, f"action-{action}")
    if action.startswith("remove"):
        WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present()).accept()
    assert "completed successfully" in waitFor(browser, "command").find_element(
        By.XPATH, ".."
    ).text
    command = browser.find_element(By.ID, "command").text
    click(browser, "back-to-viewer")
    return command


def test_queueViewerOnALiveQueue(running, browser):
    for subject in ("first", "second", HOSTILE):
        running.send("kim@fabrikam.com", "lee@contoso.com", subject)
    # The first message's attempt puts the smart host in retry; the others
    # wait in its queue without one of their own.
    running.server.waitFor("deferred", count=1)
    logOn(browser, running.url, "administrator@fabrikam.com", PASSWORD)
    waitFor(browser, "dashboard-link")
    browser.find_element(By.LINK_TEXT, "Queue Viewer").click()
    queue = rows(browser, "queues")
    header, *found = queue
    [toInternet] = [row for row in found if row[1] == "HubA\\ToInternet"]
    assert toInternet[header.index("Status")] == "Retry"
    assert toInternet[header.index("MessageCount")] == "3"
    assert "Unable to connect" in toInternet[header.index("LastError")]
    screenshot(browser, "queueviewer-queues")

    browser.find_element(By.LINK_TEXT, "HubA\\ToInternet").click()
    waitFor(browser, "messages")
    assert browser.find_element(By.ID, "page-info").text == "Messages 1-3 of 3"
    subjects = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.Subject")]
    assert HOSTILE in subjects
    screenshot(browser, "queueviewer-messages")

    tick(browser, "messages", "first")
    assert "Suspend-Message -Identity 'HubA\\ToInternet\\" in act(browser, "suspend")
    assert statusOf(browser, "first") == "Suspended"
    assert browser.find_elements(By.CSS_SELECTOR, "a.export")
    tick(browser, "messages", "first")
    act(browser, "resume")
    assert statusOf(browser, "first") == "Retry"

    click(browser, "queues-tab")
    tick(browser, "queues", "HubA\\ToInternet")
    act(browser, "suspend")
    assert column(browser, "queues", "Status")[
        next(r for r in column(browser, "queues", "Status") if "HubA\\ToInternet" in r)
    ] == "Suspended"
    tick(browser, "queues", "HubA\\ToInternet")
    act(browser, "resume")
    tick(browser, "queues", "HubA\\ToInternet")
    assert act(browser, "retry") == "Retry-Queue -Identity 'HubA\\ToInternet'"
    # One attempt for the queue, the others waiting for it.
    running.server.waitFor("deferred", count=2)

    browser.find_element(By.LINK_TEXT, "HubA\\ToInternet").click()
    waitFor(browser, "messages")
    tick(browser, "messages", "second")
    assert "-WithNDR $true" in act(browser, "remove-ndr")
    # Removed at once, or once a delivery in progress ends (PendingRemove).
    WebDriverWait(browser, WAIT).until(
        lambda driver: driver.refresh()
        or driver.find_element(By.ID, "page-info").text == "Messages 1-2 of 2"
    )
    running.server.waitFor("delivered", count=1)
    [ndr] = maildirMessages(running.mailbox("kim@fabrikam.com"))
    assert b"QUEUE.Admin; message deleted by administrative action" in ndr
    assert b"Subject: second" in ndr


def test_trackingAndDashboard(running, browser):
    running.send("administrator@fabrikam.com", "kim@fabrikam.com", "Lunch")
    running.send("kim@fabrikam.com", "administrator@fabrikam.com", "Re: Lunch")
    for subject in ("Quarterly report", "Invoice", HOSTILE):
        running.send("kim@fabrikam.com", "lee@contoso.com", subject)
    running.server.waitFor("deferred", count=1)
    running.server.waitFor("delivered", count=2)
    logOn(browser, running.url, "administrator@fabrikam.com", PASSWORD)
    waitFor(browser, "dashboard-link")
    # Remove one with the Queue Viewer: it fails, its sender hears of it.
    browser.get(running.url + "queueviewer/messages?" + urlencode({"subject": "Invoice"}))
    tick(browser, "messages", "Invoice")
    act(browser, "remove-ndr")
    running.server.waitFor("delivered", count=3)

    browser.find_element(By.LINK_TEXT, "Message Tracking").click()
    browser.find_element(By.ID, "track-sender").send_keys("kim@fabrikam.com")
    click(browser, "search")
    waitFor(browser, "events")
    events = rows(browser, "events")
    header = events[0]
    found = {(row[header.index("EventId")], row[header.index("MessageSubject")]) for row in events[1:]}
    assert ("DELIVER", "Re: Lunch") in found
    assert ("FAIL", "Invoice") in found
    assert ("DEFER", "Quarterly report") in found
    screenshot(browser, "tracking-results")

    failed = next(
        row for row in browser.find_element(By.ID, "events").find_elements(By.TAG_NAME, "tr")[1:]
        if "FAIL" in row.text and "Invoice" in row.text
    )
    failed.find_element(By.LINK_TEXT, "Path").click()
    path = rows(browser, "path")
    order = [row[path[0].index("EventId")] for row in path[1:]]
    # Invoice waited behind the first message's attempt: no DEFER of its own.
    assert order[-1] == "FAIL" and "RECEIVE" in order
    assert "Invoice" in browser.find_element(By.ID, "message").text
    screenshot(browser, "tracking-path")

    click(browser, "dashboard-link")
    waitFor(browser, "traffic-HubA")
    server = rows(browser, "server-HubA")
    assert server[1][:3] == ["HubA", "Running", "2"]
    traffic = {row[0]: row[1:] for row in rows(browser, "traffic-HubA")[1:]}
    # Received, Sent, Deferred, Failed over the last hour, then the last day.
    assert traffic["HubA\\Relay HubA"][0] == "5"
    assert traffic["ToInternet"][2] == "1"
    assert traffic["(all connectors)"][:4] == ["5", "3", "1", "1"]
    assert traffic["(all connectors)"][4:] == ["5", "3", "1", "1"]
    WebDriverWait(browser, WAIT).until(
        lambda driver: driver.find_element(By.ID, "live").get_attribute("data-updates")
    )
    assert "Updated at" in browser.find_element(By.ID, "live").text
    screenshot(browser, "dashboard")


def test_logonThrottledOverHttps(running):
    context = ssl._create_unverified_context()

    def attempt(password):
        connection = http.client.HTTPSConnection("127.0.0.1", running.port, context=context,
                                                 timeout=30)
        connection.request("GET", "/ecp/logon")
        answer = connection.getresponse()
        page = answer.read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        connection.request(
            "POST", "/ecp/logon",
            body=urlencode({"csrf": token, "username": "administrator@fabrikam.com",
                            "password": password}),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Cookie": f"exmta-ecp-logon={token}"},
        )
        answer = connection.getresponse()
        page = answer.read().decode()
        connection.close()
        return answer.status, page

    for _ in range(10):
        assert attempt("guess")[0] == 403
    status, page = attempt(PASSWORD)
    assert status == 429
    assert "Too many failed logons from your address" in page
    running.server.waitFor("console logon refused unchecked for administrator@fabrikam.com")
    running.server.waitFor("refusing logons from 127.0.0.1")
