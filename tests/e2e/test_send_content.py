"""
What C{twistd exmta} sends, as next hops see it: 8-bit content goes with
C{BODY=8BITMIME} even when its client did not declare it (a real Postfix,
checked in the send protocol log); a next hop without 8BITMIME gets no such
message, and the sender gets a report saying why (554 5.6.3).
"""

import glob
import os
import re

import pytest

from tests.e2e.postfix import PostfixPeer
from tests.e2e.sending import (
    SENDER,
    TIMEOUT,
    actionsOf,
    reportsIn,
    sendConnector,
    unfolded,
    waitUntil,
)
from tests.e2e.sink import SmtpSink
from tests.e2e.test_send import fabrikam, names  # noqa: F401 (fixtures)

GREETING = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 caf\u00e9\r\n"


@pytest.fixture(scope="module")
def postfix():
    """
    A Postfix smart host without STARTTLS.
    """
    peer = PostfixPeer(hostname="longlines.contoso.test")
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def sink():
    made = []

    def make(**settings):
        made.append(SmtpSink(**settings))
        return made[-1]

    yield make
    for each in made:
        each.stop()


def connectorTo(port, **keys):
    return sendConnector("Outbound", AddressSpaces="*", SmartHosts="127.0.0.1", Port=port,
                         DNSRoutingEnabled="$false", **keys)


def sentCommands(org):
    """
    @return: the lines the hub sent, from its send protocol log.
    """
    sent = []
    for path in sorted(glob.glob(os.path.join(org.folder, "log", "HubA", "send", "*.LOG"))):
        with open(path, errors="replace") as handle:
            sent += [line for line in handle if ",>," in line]
    return sent


# 8-bit content


def test_eightBitContentIsDeclaredWhateverItsClientSaid(fabrikam, postfix):  # noqa: F811
    """
    smtplib submits 8-bit text without BODY=8BITMIME; Postfix offers
    8BITMIME, and the hub declares it.
    """
    org = fabrikam(connectorTo(postfix.port, ProtocolLoggingLevel="Verbose"))
    hub = org.start()
    queueId = org.submit(["eightbit@contoso.com"], "undeclared eight bit", body=GREETING)
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [message] = postfix.waitForMessages("eightbit@contoso.com")
    assert GREETING.replace("\r\n", "\n").encode() in message
    [mail] = [line for line in sentCommands(org) if "MAIL FROM:" in line]
    assert re.search(r"MAIL FROM:<kim@fabrikam.com> SIZE=\d+ BODY=8BITMIME", mail), mail


def test_eightBitContentToANextHopWithout8BITMIMEIsReported(fabrikam, sink):  # noqa: F811
    """
    The next hop offers no 8BITMIME: the 8-bit message fails at once with
    554 5.6.3 and the sender gets a report; a 7-bit one goes.
    """
    peer = sink(eightBitMime=False)
    org = fabrikam(connectorTo(peer.port))
    hub = org.start()
    subject = "eight bit to a seven bit host"
    refused = org.submit(["old@contoso.com"], subject, body=GREETING)
    taken = org.submit(["old@contoso.com"], "seven bit to a seven bit host")
    hub.waitFor(f"failed {refused}", timeout=TIMEOUT)
    hub.waitFor(f"sent {taken}", timeout=TIMEOUT)
    [report] = waitUntil(lambda: reportsIn(org.mailbox(SENDER), subject), "a report", [hub])
    assert actionsOf(report) == [b"failed"]
    assert re.search(rb"^Status: *5\.6\.3", report, re.M)
    assert re.search(rb"^Diagnostic-Code: *smtp; *554 5\.6\.3 .*8BITMIME", unfolded(report), re.M)
    assert [m.data for m in peer.messages if b"seven bit to a seven bit host" in m.data]
    assert not [m for m in peer.messages if b"eight bit to a seven bit host" in m.data]
