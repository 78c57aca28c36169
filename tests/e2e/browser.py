"""
The console's browser tests' plumbing: Debian's headless chromium driven
by Selenium through chromium-driver (no download, no traffic beyond
loopback), and the steps every console test takes.

The C{browser} fixture (tests/e2e/conftest.py) gives each test a new
browser; pages are waited for, never slept on.  With EXMTA_CONSOLE_SCREENSHOTS set,
L{screenshot} saves into docs/console/ (the pictures the README shows);
otherwise the repository is left alone.
"""

import os
import shutil
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.harness import REPOSITORY

# Headless, and nothing but loopback: no background fetches, updates or sync.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",  # the server's self-signed certificate
    "--window-size=1280,900",
)
WAIT = 30


def startBrowser():
    """
    @return: a Selenium driver of a new headless chromium with a profile
        of its own; L{stopBrowser} ends it.
    """
    # Selenium must not look for drivers or report usage over the network.
    os.environ["SE_OFFLINE"] = "true"
    os.environ["SE_AVOID_STATS"] = "true"
    profile = tempfile.mkdtemp()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.exmtaProfile = profile
    return driver


def stopBrowser(driver):
    driver.quit()
    shutil.rmtree(driver.exmtaProfile, ignore_errors=True)


def logOn(browser, url, user, password):
    browser.get(url)
    WebDriverWait(browser, WAIT).until(expected_conditions.url_to_be(url + "logon"))
    browser.find_element(By.ID, "username").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "logon").click()


def rows(browser, table):
    element = browser.find_element(By.ID, table)
    return [
        [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
        for row in element.find_elements(By.TAG_NAME, "tr")
    ]


def replacing(browser, act):
    """
    Do C{act} (a click, a submit) and wait until the page it brings has
    replaced the current one.
    """
    old = browser.find_element(By.TAG_NAME, "html")
    act()

    def replaced(browser):
        # While the old page goes, chromium answers "stale" or, at times,
        # an inspector error about a node that left the document.
        try:
            old.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(browser, WAIT).until(replaced)


def waitFor(browser, element):
    """
    @return: the element of id C{element}, once the page has it.
    """
    return WebDriverWait(browser, WAIT).until(
        expected_conditions.presence_of_element_located((By.ID, element))
    )


def screenshot(browser, name):
    """
    Save the page as docs/console/C{name}.png when EXMTA_CONSOLE_SCREENSHOTS
    is set.
    """
    if os.environ.get("EXMTA_CONSOLE_SCREENSHOTS"):
        folder = os.path.join(REPOSITORY, "docs", "console")
        os.makedirs(folder, exist_ok=True)
        browser.save_screenshot(os.path.join(folder, f"{name}.png"))
