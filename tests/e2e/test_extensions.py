"""
The ESMTP extensions of issue 15 over real sockets, with real peers:

  - RFC 3461 (DSN): Postfix as a client relays its sender's NOTIFY, RET,
    ENVID and ORCPT to C{twistd exmta}, which delivers and sends the
    success notice asked for; exmta passes them on to a Postfix next hop
    that offers DSN (Postfix then notifies), and to one that does not
    (C{smtpd_discard_ehlo_keywords = dsn}) it sends none and tells the
    sender "relayed"; NOTIFY=NEVER means no report; a connector with
    DeliveryStatusNotificationEnabled $false hides DSN and refuses NOTIFY.
  - RFC 6531 (SMTPUTF8): Python's smtplib sends to a UTF-8 mailbox; exmta
    sends UTF-8 addresses to a Postfix next hop offering SMTPUTF8, and for
    one that does not (C{smtpd_discard_ehlo_keywords}) tells the sender
    why (5.6.7, in an RFC 6533 report).
  - Send connectors: ForceHELO and SourceIPAddress as the Postfix next hop
    sees them; LinkedReceiveConnector sends everything received on a
    connector to the linked connector's smart host, local recipients too.
  - RFC 3030 (CHUNKING): a client's BDAT chunks, split across reads, make
    the message, answered only once it is queued; the size limit and the
    bare line feed rule hold as under DATA; exmta sends with BDAT to a
    Postfix next hop (Postfix's smtpd takes BDAT; its smtp client sends
    DATA even to a peer offering CHUNKING, as the first test shows).
"""

import email
import email.policy
import os
import smtplib

import pytest

from tests.e2e.harness import RawClient, ServerProcess, freePort, maildirMessages, writeOrganization
from tests.e2e.postfix import PostfixPeer
from tests.e2e.sending import REFUSALS, TIMEOUT, commandsOf, protocolSessions, waitUntil

ORGANIZATION = r"""
[TransportServer HubA]
Fqdn = huba.fabrikam.com
QueueDatabasePath = var/queue
MailboxDatabasePath = var/mailboxes
MessageRetryInterval = 00:00:01
TransientFailureRetryInterval = 00:00:01
ReceiveProtocolLogPath = {folder}/log/receive
SendProtocolLogPath = {folder}/log/send

[AcceptedDomain fabrikam.com]

[Mailbox Kim Akers]
PrimarySmtpAddress = kim@fabrikam.com

[Mailbox Alice Ciccu]
PrimarySmtpAddress = alice@fabrikam.com

[Mailbox Jörg Böhm]
PrimarySmtpAddress = jörg@fabrikam.com

[ReceiveConnector Default HubA]
Bindings = 127.0.0.1:{default}
RemoteIPRanges = 127.0.0.0/8
AuthMechanism = ExternalAuthoritative
Usage = Internal
ProtocolLoggingLevel = Verbose

[ReceiveConnector Without DSN]
Bindings = 127.0.0.1:{plain}
RemoteIPRanges = 127.0.0.0/8
PermissionGroups = AnonymousUsers
DeliveryStatusNotificationEnabled = $false
MaxMessageSize = 64KB

[SendConnector To Contoso]
AddressSpaces = contoso.com
SmartHosts = 127.0.0.1
Port = {withDsn}
DNSRoutingEnabled = $false
ProtocolLoggingLevel = Verbose

[SendConnector To Tailspin]
AddressSpaces = tailspintoys.com
SmartHosts = 127.0.0.1
Port = {withoutDsn}
DNSRoutingEnabled = $false
ProtocolLoggingLevel = Verbose

[SendConnector To Woodgrove]
AddressSpaces = woodgrovebank.com
SmartHosts = 127.0.0.1
Port = {withoutDsn}
DNSRoutingEnabled = $false
ForceHELO = $true
SourceIPAddress = 127.0.0.5

# Everything received on it goes to the appliance (the Postfix without
# DSN), local recipients included.
[ReceiveConnector From Filter]
Bindings = 127.0.0.1:{linked}
RemoteIPRanges = 127.0.0.0/8
PermissionGroups = AnonymousUsers
TarpitInterval = 00:00:00

[SendConnector Through Appliance]
SmartHosts = 127.0.0.1
Port = {withoutDsn}
DNSRoutingEnabled = $false
MaxMessageSize = unlimited
LinkedReceiveConnector = From Filter
"""

MESSAGE = (
    b"From: Alice <alice@fabrikam.com>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
    b"Message-ID: <{subject}@fabrikam.com>\r\n\r\nHello.\r\n"
)


@pytest.fixture(scope="module", params=[0, 2], ids=["one process", "two receive workers"])
def workers(request):
    """
    Every test runs against a hub that receives in its own process, and
    again against one whose sessions run in receive workers, whose
    envelopes (DSN parameters, SMTPUTF8) reach the queue through the
    spool's JSON.
    """
    return request.param


@pytest.fixture(scope="module")
def nextHops(workers):
    withDsn = PostfixPeer(hostname="dsn.contoso.test", extra=REFUSALS)
    withoutDsn = PostfixPeer(hostname="nodsn.tailspintoys.test",
                             extra={"smtpd_discard_ehlo_keywords": "dsn, smtputf8"})
    for peer in (withDsn, withoutDsn):
        peer.start()
    yield withDsn, withoutDsn
    for peer in (withDsn, withoutDsn):
        peer.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, nextHops, workers):
    folder = str(tmp_path_factory.mktemp("dsn"))
    withDsn, withoutDsn = nextHops
    ports = {"default": freePort(), "plain": freePort(), "linked": freePort()}
    config = writeOrganization(folder, ORGANIZATION.format(
        folder=folder, withDsn=withDsn.port, withoutDsn=withoutDsn.port, **ports))
    server = ServerProcess(config, sockets=3, workers=workers)
    server.folder, server.ports = folder, ports
    yield server
    server.stop()


@pytest.fixture(scope="module")
def relay(hub):
    """
    A Postfix that relays everything to the hub: Postfix as exmta's client.
    """
    peer = PostfixPeer(hostname="relay.fabrikam.test", extra={
        "virtual_mailbox_domains": "", "relayhost": f"[127.0.0.1]:{hub.ports['default']}",
    })
    peer.start()
    yield peer
    peer.stop()


def mailbox(hub, address):
    return maildirMessages(os.path.join(hub.folder, "var", "mailboxes", address))


def reportsIn(hub, address, subject):
    found = []
    for data in mailbox(hub, address):
        report = email.message_from_bytes(data, policy=email.policy.default)
        if report["Subject"].endswith(subject):
            found.append(report)
    return found


def statusOf(report):
    _, status, _ = report.iter_parts()
    return status.get_payload()


def submit(port, recipients, subject, notify=None, ret=None, envid=None, orcpt=None):
    options = [f"RET={ret}"] * bool(ret) + [f"ENVID={envid}"] * bool(envid)
    rcptOptions = [f"NOTIFY={notify}"] * bool(notify) + [f"ORCPT={orcpt}"] * bool(orcpt)
    message = MESSAGE.replace(b"{to}", recipients[0].encode()).replace(b"{subject}", subject.encode())
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.fabrikam.com")
        refused = smtp.sendmail("alice@fabrikam.com", recipients, message,
                                mail_options=options, rcpt_options=rcptOptions)
    assert refused == {}


def test_postfixRelaysTheSendersRequestAndExmtaSaysDelivered(hub, relay):
    submit(relay.port, ["kim@fabrikam.com"], "fromPostfix", notify="SUCCESS,FAILURE", ret="HDRS",
           envid="QQ314159", orcpt="rfc822;Kim.Akers@fabrikam.com")
    [notice] = waitUntil(lambda: reportsIn(hub, "alice@fabrikam.com", "fromPostfix"),
                         "the success notice", [hub])
    assert notice["Subject"] == "Delivered: fromPostfix"
    perMessage, kim = statusOf(notice)
    assert perMessage["Original-Envelope-Id"] == "QQ314159"
    assert perMessage["Reporting-MTA"] == "dns; huba.fabrikam.com"
    assert kim["Action"] == "delivered"
    assert kim["Original-Recipient"] == "rfc822; Kim.Akers@fabrikam.com"
    assert any(b"Subject: fromPostfix" in m for m in mailbox(hub, "kim@fabrikam.com"))
    sent = [c for s in protocolSessions(os.path.join(hub.folder, "log", "receive")).values()
            for c in commandsOf(s)]
    assert any(c.startswith("MAIL FROM:<alice@fabrikam.com>") and "ENVID=QQ314159 RET=HDRS" in c
               for c in sent), sent
    assert ("RCPT TO:<kim@fabrikam.com> ORCPT=rfc822;Kim.Akers@fabrikam.com "
            "NOTIFY=SUCCESS,FAILURE") in sent


def test_passedOnToANextHopWithDsn(hub, nextHops):
    withDsn, _ = nextHops
    submit(hub.ports["default"], ["bob@contoso.com"], "passedOn", notify="SUCCESS",
           envid="passed-1")
    # Postfix delivered it, and, as asked, told the sender itself.
    withDsn.waitForMessages("bob@contoso.com")
    [notice] = withDsn.waitForMessages("alice@fabrikam.com")
    assert b"Action: delivered" in notice and b"Original-Envelope-Id: passed-1" in notice
    sent = [c for s in protocolSessions(os.path.join(hub.folder, "log", "send")).values()
            for event, c in s if event == ">"]
    assert any(c.startswith("MAIL FROM:<alice@fabrikam.com>") and "ENVID=passed-1" in c for c in sent)
    assert "RCPT TO:<bob@contoso.com> NOTIFY=SUCCESS" in sent
    assert reportsIn(hub, "alice@fabrikam.com", "passedOn") == []


def test_relayedWhenTheNextHopOffersNoDsn(hub, nextHops):
    _, withoutDsn = nextHops
    submit(hub.ports["default"], ["carol@tailspintoys.com"], "relayedOn", notify="SUCCESS,FAILURE")
    withoutDsn.waitForMessages("carol@tailspintoys.com")
    [notice] = waitUntil(lambda: reportsIn(hub, "alice@fabrikam.com", "relayedOn"),
                         "the relayed notice", [hub])
    assert notice["Subject"] == "Relayed: relayedOn"
    _, carol = statusOf(notice)
    assert carol["Action"] == "relayed"
    assert carol["Remote-MTA"] == "dns; 127.0.0.1"
    sent = [c for s in protocolSessions(os.path.join(hub.folder, "log", "send")).values()
            for event, c in s if event == ">"]
    assert "RCPT TO:<carol@tailspintoys.com>" in sent


def test_neverMeansNoReport(hub, nextHops):
    submit(hub.ports["default"], ["rejected@contoso.com"], "neverTold", notify="NEVER")
    submit(hub.ports["default"], ["rejected@contoso.com"], "told")
    waitUntil(lambda: reportsIn(hub, "alice@fabrikam.com", "told"), "the report", [hub])
    assert reportsIn(hub, "alice@fabrikam.com", "neverTold") == []


def test_connectorWithoutDsn(hub):
    raw = RawClient("127.0.0.1", hub.ports["plain"])
    raw.reply()
    code, lines = raw.command("EHLO client.contoso.com")
    assert code == 250 and not any(line[4:] == "DSN" for line in lines), lines
    assert raw.command("MAIL FROM:<max@contoso.com> RET=HDRS") == (
        555, ["555 5.5.4 Unsupported parameter RET"])
    assert raw.command("MAIL FROM:<max@contoso.com>")[0] == 250
    assert raw.command("RCPT TO:<kim@fabrikam.com> NOTIFY=SUCCESS") == (
        555, ["555 5.5.4 Unsupported parameter NOTIFY"])
    raw.close()


# CHUNKING


def bdatClient(hub, port="default"):
    raw = RawClient("127.0.0.1", hub.ports[port])
    raw.reply()
    code, lines = raw.command("EHLO client.contoso.com")
    assert "250-CHUNKING" in lines or "250 CHUNKING" in lines, lines
    assert raw.command("MAIL FROM:<alice@fabrikam.com>")[0] == 250
    assert raw.command("RCPT TO:<kim@fabrikam.com>")[0] == 250
    return raw


def test_bdatFromAClient(hub):
    raw = bdatClient(hub)
    first = b"Subject: chunked\r\nMessage-ID: <chunked@fabrikam.com>\r\n\r\n.first\r\n"
    second = b".second\r\n"
    raw.send(b"BDAT %d\r\n" % len(first) + first[:10])
    raw.send(first[10:])
    assert raw.reply() == (250, ["250 2.0.0 %d octets received" % len(first)])
    raw.send(b"BDAT %d LAST\r\n" % len(second) + second)
    code, lines = raw.reply()
    assert code == 250 and "Queued mail for delivery" in lines[0], lines
    raw.command("QUIT")
    [stored] = waitUntil(lambda: [m for m in mailbox(hub, "kim@fabrikam.com") if b"chunked@" in m],
                         "the chunked message", [hub])
    assert stored.endswith(b"\r\n\r\n.first\r\n.second\r\n")


def test_bdatSizeAndSmugglingRules(hub):
    raw = bdatClient(hub, "plain")
    raw.send(b"BDAT 70000 LAST\r\n" + b"x" * 70000)
    assert raw.reply() == (552, ["552 5.3.4 Message size exceeds fixed maximum message size"])
    assert raw.command("NOOP") == (250, ["250 2.0.0 OK"])
    raw.close()
    raw = bdatClient(hub)
    smuggled = b"Subject: x\r\n\r\nHi\n.\nMAIL FROM:<evil@contoso.com>\r\n"
    raw.send(b"BDAT %d LAST\r\n" % len(smuggled) + smuggled)
    assert raw.reply() == (550, ["550 5.6.11 Bare line feeds or carriage returns are not allowed; use CRLF"])
    raw.close()


def test_bdatToAPostfixNextHop(hub, nextHops):
    withDsn, _ = nextHops
    raw = RawClient("127.0.0.1", hub.ports["default"])
    raw.reply()
    raw.command("EHLO client.contoso.com")
    raw.command("MAIL FROM:<alice@fabrikam.com>")
    raw.command("RCPT TO:<dora@contoso.com>")
    raw.command("DATA")
    code, lines = raw.command("Subject: onward\r\n\r\n..dotted\r\nend\r\n.")
    assert code == 250, lines
    raw.close()
    [received] = withDsn.waitForMessages("dora@contoso.com")
    assert received.replace(b"\r\n", b"\n").endswith(b"\n.dotted\nend\n")
    sent = [c for s in protocolSessions(os.path.join(hub.folder, "log", "send")).values()
            for event, c in s if event == ">"]
    assert any(c.startswith("BDAT ") and c.endswith(" LAST") for c in sent), sent
    assert "DATA" not in sent


# Send connector parameters


def test_forceHeloAndSourceIPAddress(hub, nextHops):
    _, peer = nextHops
    submit(hub.ports["default"], ["erin@woodgrovebank.com"], "fromFive")
    [received] = peer.waitForMessages("erin@woodgrovebank.com")
    # Postfix's Received field: the HELO name, the address it came from,
    # and SMTP (HELO), not ESMTP.
    assert b"from huba.fabrikam.com (unknown [127.0.0.5])" in received, received[:600]
    assert b"with SMTP id" in received


def test_linkedReceiveConnector(hub, nextHops):
    _, appliance = nextHops
    submit(hub.ports["linked"], ["kim@fabrikam.com"], "throughTheFilter")
    [sent] = appliance.waitForMessages("kim@fabrikam.com")
    assert b"Subject: throughTheFilter" in sent
    assert not any(b"throughTheFilter" in m for m in mailbox(hub, "kim@fabrikam.com"))


# SMTPUTF8


def test_smtpUtf8ToALocalMailbox(hub):
    message = "From: <zoë@contoso.com>\r\nSubject: Grüße\r\n\r\nHallo Jörg\r\n".encode()
    with smtplib.SMTP("127.0.0.1", hub.ports["default"], timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.contoso.com")
        assert smtp.has_extn("smtputf8")
        assert smtp.sendmail("zoë@contoso.com", ["Jörg@fabrikam.com"], message,
                             mail_options=["SMTPUTF8"]) == {}
    [stored] = waitUntil(lambda: mailbox(hub, "jörg@fabrikam.com"), "the UTF-8 mailbox", [hub])
    assert stored.startswith("Return-Path: <zoë@contoso.com>\r\nDelivered-To: Jörg@fabrikam.com".encode())
    assert b"with UTF8SMTP" in stored and "Hallo Jörg".encode() in stored


def sendUtf8(hub, recipient, subject):
    message = f"From: <jörg@fabrikam.com>\r\nSubject: {subject}\r\n\r\nHallo\r\n".encode()
    with smtplib.SMTP("127.0.0.1", hub.ports["default"], timeout=TIMEOUT) as smtp:
        assert smtp.sendmail("jörg@fabrikam.com", [recipient], message,
                             mail_options=["SMTPUTF8"]) == {}


def test_smtpUtf8ToANextHopThatOffersIt(hub, nextHops):
    withDsn, _ = nextHops
    sendUtf8(hub, "zoë@contoso.com", "utf8Onward")
    [received] = withDsn.waitForMessages("zoë@contoso.com")
    assert "Return-Path: <jörg@fabrikam.com>".encode() in received
    sent = [c for s in protocolSessions(os.path.join(hub.folder, "log", "send")).values()
            for event, c in s if event == ">"]
    assert any(c.startswith("MAIL FROM:<jörg@fabrikam.com>") and c.endswith(" SMTPUTF8")
               for c in sent), sent


def test_smtpUtf8ToANextHopWithoutIt(hub):
    sendUtf8(hub, "zoë@tailspintoys.com", "utf8Refused")
    [report] = waitUntil(lambda: [m for m in mailbox(hub, "jörg@fabrikam.com") if b"utf8Refused" in m],
                         "the report", [hub])
    assert b"Content-Type: message/global-delivery-status" in report
    assert "Final-Recipient: utf-8; zoë@tailspintoys.com".encode() in report
    assert b"Status: 5.6.7" in report and b"does not offer SMTPUTF8" in report
