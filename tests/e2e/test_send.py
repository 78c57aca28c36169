"""
The send side end to end over loopback: C{twistd exmta} processes sending
through send connectors to real peers that check what they get.

  - The reference document's three Send connector set-ups, each with
    C{-AddressSpaces "*" -SmartHosts smtpgateway1.contoso.com
    -SourceTransportServers HubA -DNSRoutingEnabled $false}:
    (i) BasicAuth,BasicAuthRequireTLS with an AuthenticationCredential and
    (ii) ExternalAuthoritative, both against a second exmta acting as the
    gateway; (iii) None against a private Postfix.
  - Retries and delivery status notifications (DSNs) into the sender's
    mailbox, smart host failover, MX routing, address-space specificity and
    cost, SourceTransportServers forwarding between two servers of one
    organization, TLS policies, and a kill -9 in the middle of a batch.

Names such as smtpgateway1.contoso.com resolve through the test DNS server
(tests/e2e/dns.py), which the sending server uses as its
InternalDNSServers.  The sending organization is fabrikam.com (server HubA,
mailbox kim@fabrikam.com); tests submit to HubA on an externally secured
connector, from 127.0.0.1.

Waiting is on the servers' log lines (the queue manager's C{sent},
C{deferred}, C{failed} and C{notified} lines) or, for Postfix, which
offers no event, by polling its Maildir with a deadline.  The organizations
and helpers are in tests/e2e/sending.py.
"""

import base64
import glob
import os
import re
import socket
import subprocess
import threading

import pytest
import trustme

from tests.e2e.dns import DNSServer
from tests.e2e.harness import queuedMessages
from tests.e2e.postfix import PostfixPeer, writeCertificate
from tests.e2e.sending import (
    GATEWAY_ACCOUNT,
    GATEWAY_PASSWORD,
    REFUSALS,
    SENDER,
    TIMEOUT,
    ZONE,
    Gateway,
    Organization,
    actionsOf,
    commandsOf,
    deferrals,
    headerOf,
    loggedAfter,
    protocolSessions,
    reportsIn,
    sendConnector,
    unfolded,
    waitUntil,
)


# Peers shared by the module


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """
    A test CA that the sending servers trust (through SSL_CERT_FILE, which
    OpenSSL's default verify paths read), and the peers' certificates.
    """
    folder = str(tmp_path_factory.mktemp("pki"))
    ca = trustme.CA()
    bundle = os.path.join(folder, "ca.pem")
    ca.cert_pem.write_to_path(bundle)
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = bundle
    yield {"ca": ca, "gateway1": writeCertificate(ca, folder, "smtpgateway1.contoso.com")}
    if previous is None:
        del os.environ["SSL_CERT_FILE"]
    else:
        os.environ["SSL_CERT_FILE"] = previous


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    server = DNSServer(str(tmp_path_factory.mktemp("dns")), ZONE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postfix(pki):
    """
    The plain smart host of set-up (iii): STARTTLS with a certificate for
    smtpgateway1.contoso.com, no AUTH, everything to its Maildir but what
    L{REFUSALS} refuses.
    """
    peer = PostfixPeer(tls=pki["gateway1"], extra=REFUSALS)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def clearPostfix():
    """
    A second Postfix, without STARTTLS.
    """
    peer = PostfixPeer(hostname="clear.contoso.test")
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki):
    running = Gateway(str(tmp_path_factory.mktemp("gateway")), pki)
    yield running
    running.stop()


@pytest.fixture
def fabrikam(tmp_path, names):
    """
    Make (and finally stop) sending organizations:
    C{fabrikam(connectors, ...)} takes L{Organization}'s arguments.
    """
    made = []

    def make(connectors, **options):
        made.append(Organization(str(tmp_path / f"org{len(made)}"), names, connectors, **options))
        return made[-1]

    yield make
    for each in made:
        each.stop()


# The reference document's three set-ups


def test_basicAuthOverTLSWithCredentialToTheGateway(fabrikam, gateway, names):
    """
    Set-up (i): SmartHostAuthMechanism BasicAuth,BasicAuthRequireTLS and
    AuthenticationCredential.  The gateway sees AUTH only inside TLS, the
    message arrives authenticated, and the password is in no log.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*",
                      SmartHosts="smtpgateway1.contoso.com", Port=gateway.basicPort,
                      SmartHostAuthMechanism="BasicAuth,BasicAuthRequireTLS",
                      AuthenticationCredential="ToInternetGateway",
                      SourceTransportServers="HubA", DNSRoutingEnabled="$false",
                      ProtocolLoggingLevel="Verbose"),
        credentials=[("ToInternetGateway", GATEWAY_ACCOUNT, GATEWAY_PASSWORD)],
    )
    hub = org.start()
    queueId = org.submit(["basic@contoso.com"], "setup one basic auth")
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [message] = [m for m in waitUntil(lambda: gateway.messages("basic@contoso.com"), "delivery",
                                      [gateway.server])
                 if b"setup one basic auth" in m]
    assert "smtpgateway1.contoso.com A" in names.queries()
    received = headerOf(message, "Received")
    assert "with ESMTPSA (version=TLSv1." in received, received
    assert "huba.fabrikam.com" in received, received

    authenticated = [commandsOf(s) for s in gateway.sessions().values()
                     if any(c.upper().startswith("AUTH") for c in commandsOf(s))]
    assert authenticated, ("the gateway's receive protocol log (ReceiveProtocolLogPath, "
                           f"ProtocolLoggingLevel Verbose) shows no AUTH: {gateway.sessions()}")
    for commands in authenticated:
        firstAuth = next(i for i, c in enumerate(commands) if c.upper().startswith("AUTH"))
        assert "STARTTLS" in [c.upper() for c in commands[:firstAuth]], commands

    secrets = {GATEWAY_PASSWORD,
               base64.b64encode(f"\0{GATEWAY_ACCOUNT}\0{GATEWAY_PASSWORD}".encode()).decode(),
               base64.b64encode(GATEWAY_PASSWORD.encode()).decode()}
    hub.drain()
    logged = "\n".join(hub.output)
    for path in glob.glob(os.path.join(org.folder, "log", "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, errors="replace") as handle:
                logged += handle.read()
    assert not [secret for secret in secrets if secret in logged]


def test_externallySecuredToTheGateway(fabrikam, gateway):
    """
    Set-up (ii): Usage Internal, SmartHostAuthMechanism
    ExternalAuthoritative: no AUTH; the gateway's connector trusts the
    hub's address and labels the message Internal.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", Usage="Internal", AddressSpaces="*",
                      SmartHosts="smtpgateway1.contoso.com", Port=gateway.externalPort,
                      SmartHostAuthMechanism="ExternalAuthoritative",
                      SourceTransportServers="HubA", DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    queueId = org.submit(["external@contoso.com"], "setup two externally secured")
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [message] = [m for m in waitUntil(lambda: gateway.messages("external@contoso.com"), "delivery",
                                      [gateway.server])
                 if b"setup two externally secured" in m]
    received = headerOf(message, "Received")
    assert "huba.fabrikam.com" in received and "ESMTPSA" not in received, received
    assert headerOf(message, "X-MS-Exchange-Organization-AuthAs") == "Internal"
    external = [commandsOf(s) for (connector, _), s in gateway.sessions().items()
                if "FromHubA" in connector]
    assert external, ("the gateway's receive protocol log shows no session on FromHubA: "
                      f"{gateway.sessions()}")
    assert not [c for commands in external for c in commands if c.upper().startswith("AUTH")]


def test_anonymousToPostfixSmartHost(fabrikam, postfix):
    """
    Set-up (iii): SmartHostAuthMechanism None to a plain smart host, a real
    Postfix; opportunistic STARTTLS; the tracking log records the SEND.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", Usage="Internet", AddressSpaces="*",
                      SmartHosts="smtpgateway1.contoso.com", Port=postfix.port,
                      SmartHostAuthMechanism="None",
                      SourceTransportServers="HubA", DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    queueId = org.submit(["someone@contoso.com", "other@example.org"], "setup three anonymous")
    hub.waitFor(f"sent {queueId}", count=2, timeout=TIMEOUT)
    for recipient in ("someone@contoso.com", "other@example.org"):
        [message] = [m for m in postfix.waitForMessages(recipient) if b"setup three anonymous" in m]
        assert message.startswith(f"Return-Path: <{SENDER}>\n".encode())
        assert b"by huba.fabrikam.com" in message
        assert b"with ESMTPS id" in message and b"Authenticated sender" not in message
    # One transaction for both recipients: Postfix logs one queue file with nrcpt=2.
    assert re.search(r"from=<kim@fabrikam.com>, size=\d+, nrcpt=2", postfix.log())
    sends = [e for e in org.trackingEvents() if e.get("eventId") == "SEND"
             and e.get("internalMessageId") == queueId]
    assert sends and sends[0].get("connectorId") == "ToInternetGateway", org.trackingEvents()


def test_basicAuthToPostfixWithSASL(fabrikam, pki):
    """
    BasicAuth,BasicAuthRequireTLS against Postfix with Cyrus SASL that
    offers AUTH only after STARTTLS.
    """
    peer = PostfixPeer(tls=pki["gateway1"], sasl={GATEWAY_ACCOUNT: GATEWAY_PASSWORD})
    peer.start()
    try:
        org = fabrikam(
            sendConnector("ToInternetGateway", AddressSpaces="*",
                          SmartHosts="smtpgateway1.contoso.com", Port=peer.port,
                          SmartHostAuthMechanism="BasicAuth, BasicAuthRequireTLS",
                          AuthenticationCredential="ToInternetGateway",
                          SourceTransportServers="HubA", DNSRoutingEnabled="$false"),
            credentials=[("ToInternetGateway", GATEWAY_ACCOUNT, GATEWAY_PASSWORD)],
        )
        hub = org.start()
        queueId = org.submit(["someone@contoso.com"], "basic auth to postfix")
        hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
        [message] = peer.waitForMessages("someone@contoso.com")
        assert f"(Authenticated sender: {GATEWAY_ACCOUNT})".encode() in message
        assert b"with ESMTPSA" in message
    finally:
        peer.stop()


# Retries and notifications


def test_wrongPasswordIsRetriedThenTheSenderGetsDSNs(fabrikam, gateway):
    """
    The gateway refuses the credential: the hub retries, tells the sender
    of the delay once, and when the message expires sends a failure DSN,
    which arrives in the sender's mailbox.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*",
                      SmartHosts="smtpgateway1.contoso.com", Port=gateway.basicPort,
                      SmartHostAuthMechanism="BasicAuth,BasicAuthRequireTLS",
                      AuthenticationCredential="ToInternetGateway",
                      SourceTransportServers="HubA", DNSRoutingEnabled="$false"),
        credentials=[("ToInternetGateway", GATEWAY_ACCOUNT, "not-the-password")],
        settings="DelayNotificationTimeout = 00:00:02\nMessageExpirationTimeout = 00:00:08\n",
    )
    hub = org.start()
    subject = "wrong password retried"
    queueId = org.submit(["retry@contoso.com"], subject)
    hub.waitFor(f"deferred {queueId}", count=2, timeout=TIMEOUT)
    assert all("535" in reason for reason in deferrals(hub, queueId)), deferrals(hub, queueId)
    hub.waitFor(f"notified the sender of {queueId}", count=2, timeout=TIMEOUT)
    reports = waitUntil(
        lambda: (r := reportsIn(org.mailbox(SENDER), subject)) and len(r) >= 2 and r,
        "a delay and a failure DSN in the sender's mailbox", [hub],
    )
    assert [actionsOf(r) for r in reports] == [[b"delayed"], [b"failed"]], reports
    failure = reports[-1]
    assert re.search(rb"^Final-Recipient: *rfc822; *retry@contoso.com", failure, re.M | re.I)
    assert re.search(rb"^Status: *[45]\.\d+\.\d+", failure, re.M)
    assert headerOf(failure, "To").strip("<>") == SENDER or SENDER in headerOf(failure, "To")
    assert b"postmaster@" in (headerOf(failure, "From") or "").encode().lower()
    assert gateway.messages("retry@contoso.com") == []
    # The failure DSN is queued (and may be delivered) before the expired
    # message's files go.
    waitUntil(lambda: queueId not in queuedMessages(org.queue()), "the expired message gone",
              [hub])


def test_nullMXFailsAtOnceWithDSNAndNullSenderGetsNone(fabrikam, postfix):
    """
    A null MX is a permanent failure: a DSN for kim, none for a message
    from <> (no bounce loops).
    """
    org = fabrikam(
        sendConnector("Internet", Usage="Internet", AddressSpaces="*", Port=postfix.port,
                      DNSRoutingEnabled="$true"),
    )
    hub = org.start()
    bounced = org.submit(["nobody@nomail.example"], "null mx from kim")
    silent = org.submit(["nobody@nomail.example"], "null mx from null", mailFrom="")
    hub.waitFor(f"failed {bounced}", timeout=TIMEOUT)
    hub.waitFor(f"failed {silent}", timeout=TIMEOUT)
    [report] = waitUntil(lambda: reportsIn(org.mailbox(SENDER), "null mx from kim"),
                         "a DSN for kim", [hub])
    assert actionsOf(report) == [b"failed"]
    assert re.search(rb"^Status: *5\.\d+\.\d+", report, re.M)
    waitUntil(lambda: silent not in queuedMessages(org.queue()), "the <> message to leave the queue",
              [hub])
    hub.drain()
    assert not loggedAfter(hub, f"notified the sender of {silent}")
    assert reportsIn(org.mailbox(SENDER), "null mx from null") == []


def test_eachRecipientHasItsOwnOutcome(fabrikam, postfix):
    """
    In one transaction the smart host takes one recipient, refuses one for
    good (550: failed, a DSN quoting the reply) and one for now (450:
    retried, still queued).
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="127.0.0.1",
                      Port=postfix.port, DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    subject = "each recipient its outcome"
    queueId = org.submit(["taken@contoso.com", "rejected@contoso.com", "later@contoso.com"], subject)
    hub.waitFor(f"sent {queueId} to taken@contoso.com", timeout=TIMEOUT)
    hub.waitFor(f"failed {queueId} to rejected@contoso.com", timeout=TIMEOUT)
    hub.waitFor(f"deferred {queueId} to later@contoso.com", count=2, timeout=TIMEOUT)
    assert [m for m in postfix.waitForMessages("taken@contoso.com") if subject.encode() in m]
    [report] = waitUntil(lambda: reportsIn(org.mailbox(SENDER), subject), "a DSN", [hub])
    assert re.findall(rb"^Final-Recipient: *rfc822; *(\S+)", report, re.M | re.I) == [
        b"rejected@contoso.com"]
    assert actionsOf(report) == [b"failed"]
    assert re.search(rb"^Diagnostic-Code: *smtp; *550 5\.1\.1 .*No such user here", unfolded(report),
                     re.M | re.I), report
    assert all("450 4.2.1" in reason for reason in deferrals(hub, queueId)), deferrals(hub, queueId)
    [queued] = [m for q, m in queuedMessages(org.queue()).items() if q == queueId]
    assert [r["address"] for r in queued["recipients"] if r["status"] == "Ready"] == [
        "later@contoso.com"]


def test_refusalAtEndOfDataFailsEveryRecipient(fabrikam, postfix):
    """
    A 5xx to the end of data fails every recipient of the transaction, in
    one DSN to the sender (here dan@fabrikam.com, whom the peer refuses).
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="127.0.0.1",
                      Port=postfix.port, DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    subject = "refused at end of data"
    queueId = org.submit(["first@contoso.com", "second@contoso.com"], subject,
                         mailFrom="dan@fabrikam.com")
    hub.waitFor(f"failed {queueId}", count=2, timeout=TIMEOUT)
    [report] = waitUntil(lambda: reportsIn(org.mailbox("dan@fabrikam.com"), subject),
                         "a DSN for dan", [hub])
    assert sorted(re.findall(rb"^Final-Recipient: *rfc822; *(\S+)", report, re.M | re.I)) == [
        b"first@contoso.com", b"second@contoso.com"]
    assert re.search(rb"^Status: *5\.6\.0", report, re.M)
    assert not [m for m in postfix.messages() if subject.encode() in m]


def test_dataArrivesExactlyDotsAnd8BitIncluded(fabrikam, postfix):
    """
    Lines that start with dots, 8-bit text and long lines arrive as they
    were submitted (dot-stuffing undone on receipt, redone on sending).
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="127.0.0.1",
                      Port=postfix.port, DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    lines = [".", "..", ".leading dot", "...three", "caf\u00e9 \u2014 na\u00efve", "x" * 990, "."]
    body = "".join(line + "\r\n" for line in lines)
    queueId = org.submit(["exact@contoso.com"], "data transparency", body=body)
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [message] = postfix.waitForMessages("exact@contoso.com")
    # Postfix stores LF line ends.
    assert message.endswith(("\n" + "\n".join(lines) + "\n").encode()), message[-1200:]


def test_messageOverTheConnectorsMaxMessageSizeFails(fabrikam, postfix):
    """
    A message bigger than the send connector's MaxMessageSize is not sent:
    the sender gets a DSN (5.3.4).
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="127.0.0.1",
                      Port=postfix.port, DNSRoutingEnabled="$false", MaxMessageSize="64KB"),
    )
    hub = org.start()
    subject = "too big for the connector"
    queueId = org.submit(["big@contoso.com"], subject, body=("y" * 76 + "\r\n") * 1500)
    hub.waitFor(f"failed {queueId}", timeout=TIMEOUT)
    [report] = waitUntil(lambda: reportsIn(org.mailbox(SENDER), subject), "a DSN", [hub])
    assert re.search(rb"^Status: *5\.3\.4", report, re.M), report
    assert "big@contoso.com" not in postfix.log()


# Choosing hosts and connectors


def test_smartHostFailover(fabrikam, postfix, names):
    """
    The first smart host refuses connections: the second takes the message
    in the same attempt.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*",
                      SmartHosts="down.contoso.com, smtpgateway1.contoso.com", Port=postfix.port,
                      SmartHostAuthMechanism="None", DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    queueId = org.submit(["failover@contoso.com"], "failover")
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    postfix.waitForMessages("failover@contoso.com")
    assert not loggedAfter(hub, f"deferred {queueId}")
    assert "down.contoso.com A" in names.queries()


def test_smartHostFailoverPastA421Greeting(fabrikam, postfix, gateway):
    """
    The first smart host greets with 421 (the gateway has no connector for
    loopback clients on that port): the next one takes the message.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*",
                      SmartHosts=f"127.0.0.1:{gateway.refusingPort}, smtpgateway1.contoso.com",
                      Port=postfix.port, DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    queueId = org.submit(["busy@contoso.com"], "failover past 421")
    hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    postfix.waitForMessages("busy@contoso.com")
    assert not loggedAfter(hub, f"deferred {queueId}")
    gateway.server.waitFor("no receive connector matches", timeout=TIMEOUT)


def test_connectionIsReusedWithRSET(fabrikam, postfix):
    """
    Further messages to the same next hop go over the open connection,
    RSET between them (the hub's send protocol log shows one session).
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="127.0.0.1",
                      Port=postfix.port, DNSRoutingEnabled="$false",
                      ProtocolLoggingLevel="Verbose"),
    )
    hub = org.start()
    for number in range(3):
        queueId = org.submit([f"reuse{number}@contoso.com"], f"reuse {number}")
        hub.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    sessions = protocolSessions(os.path.join(org.folder, "log", "HubA", "send"))
    sent = {key: [data for event, data in rows if event == ">"] for key, rows in sessions.items()}
    [commands] = [c for c in sent.values() if any("reuse0@" in line for line in c)]
    assert sum(line.startswith("MAIL FROM:") for line in commands) == 3, commands
    assert "RSET" in commands and len(sessions) == 1, sessions


def ipv6Loopback():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6Loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6SmartHostsByNameAndLiteral(fabrikam):
    """
    A smart host whose name has only an AAAA record, and an IPv6 literal.
    """
    peer = PostfixPeer(host="::1")
    peer.start()
    try:
        org = fabrikam(
            sendConnector("ByName", AddressSpaces="v6name.test", SmartHosts="ipv6.contoso.com",
                          Port=peer.port, DNSRoutingEnabled="$false")
            + sendConnector("ByLiteral", AddressSpaces="v6literal.test", SmartHosts="[::1]",
                            Port=peer.port, DNSRoutingEnabled="$false")
        )
        hub = org.start()
        byName = org.submit(["a@v6name.test"], "ipv6 by name")
        byLiteral = org.submit(["b@v6literal.test"], "ipv6 literal")
        hub.waitFor(f"sent {byName}", timeout=TIMEOUT)
        hub.waitFor(f"sent {byLiteral}", timeout=TIMEOUT)
        for recipient in ("a@v6name.test", "b@v6literal.test"):
            [message] = peer.waitForMessages(recipient)
            assert b"[IPv6:::1]" in message
    finally:
        peer.stop()


def test_mxRoutingThroughTheTestDNS(fabrikam, postfix, names):
    """
    DNSRoutingEnabled: MX records in preference order (the preferred one is
    down), and a domain with no MX is its own mail host.
    """
    org = fabrikam(
        sendConnector("Internet", Usage="Internet", AddressSpaces="*", Port=postfix.port,
                      DNSRoutingEnabled="$true"),
    )
    hub = org.start()
    queueId = org.submit(["mx@tailspintoys.com", "a@woodgrovebank.com"], "mx routing")
    hub.waitFor(f"sent {queueId}", count=2, timeout=TIMEOUT)
    postfix.waitForMessages("mx@tailspintoys.com")
    postfix.waitForMessages("a@woodgrovebank.com")
    assert not loggedAfter(hub, f"deferred {queueId}")
    asked = names.queries()
    for question in ("tailspintoys.com MX", "woodgrovebank.com MX", "woodgrovebank.com A"):
        assert question in asked, asked


def test_addressSpaceSpecificityThenCost(fabrikam, postfix, clearPostfix):
    """
    The most specific address space wins whatever its cost; among equally
    specific ones the lowest cost wins.  Two sinks tell the connectors apart.
    """
    def toSink(name, spaces, sink):
        return sendConnector(name, AddressSpaces=spaces, SmartHosts="127.0.0.1", Port=sink.port,
                             DNSRoutingEnabled="$false")

    org = fabrikam(
        toSink("Everything", "*", postfix)
        + toSink("Contoso", "contoso.com;10", clearPostfix)
        + toSink("ContosoSubdomains", "*.contoso.com;1", postfix)
        + toSink("TailspinCheap", "tailspintoys.com;2", clearPostfix)
        + toSink("TailspinDear", "tailspintoys.com;5", postfix)
    )
    hub = org.start()
    queueId = org.submit(["space@contoso.com", "space@sub.contoso.com", "space@tailspintoys.com",
                          "space@other.example"], "address spaces")
    hub.waitFor(f"sent {queueId}", count=4, timeout=TIMEOUT)
    expected = {clearPostfix: ["space@contoso.com", "space@tailspintoys.com"],
                postfix: ["space@sub.contoso.com", "space@other.example"]}
    for sink, recipients in expected.items():
        for recipient in recipients:
            assert [m for m in sink.waitForMessages(recipient) if b"address spaces" in m]
    for sink, other in ((postfix, clearPostfix), (clearPostfix, postfix)):
        for recipient in expected[other]:
            assert not [m for m in sink.messages(recipient) if b"address spaces" in m], recipient


def test_sourceTransportServersForwardBetweenServers(fabrikam, postfix):
    """
    One org.ini, two servers: the connector's only source server is HubB,
    so mail submitted to HubA goes to HubB over SMTP and leaves from there.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="smtpgateway1.contoso.com",
                      Port=postfix.port, SourceTransportServers="HubB", DNSRoutingEnabled="$false"),
        servers=("HubA", "HubB"),
    )
    hubA, hubB = org.start("HubA"), org.start("HubB")
    queueId = org.submit(["forwarded@contoso.com"], "forwarded through hubb", name="HubA")
    hubA.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    hubB.waitFor("] sent ", timeout=TIMEOUT)
    [message] = postfix.waitForMessages("forwarded@contoso.com")
    received = re.findall(rb"^Received:.*(?:\n[ \t].*)*", message, re.M)
    assert b"by hubb.fabrikam.com" in received[1], received
    assert b"by huba.fabrikam.com" in received[2], received


def test_forwardingWaitsForTheSourceServer(fabrikam, postfix):
    """
    HubB, the connector's source server, is down: HubA keeps the message
    and retries; once HubB is up the message goes through it.
    """
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="127.0.0.1",
                      Port=postfix.port, SourceTransportServers="HubB", DNSRoutingEnabled="$false"),
        servers=("HubA", "HubB"),
    )
    hubA = org.start("HubA")
    queueId = org.submit(["waited@contoso.com"], "waited for hubb", name="HubA")
    hubA.waitFor(f"deferred {queueId}", count=2, timeout=TIMEOUT)
    assert queueId in queuedMessages(org.queue("HubA"))
    org.start("HubB")
    hubA.waitFor(f"sent {queueId}", timeout=TIMEOUT)
    [message] = postfix.waitForMessages("waited@contoso.com")
    assert b"by hubb.fabrikam.com" in message


# TLS policies


def test_requireTLSNeverSendsInTheClear(fabrikam, clearPostfix):
    """
    RequireTLS against a peer that offers no STARTTLS: nothing is sent and
    the message stays queued.
    """
    org = fabrikam(
        sendConnector("Secure", AddressSpaces="*", SmartHosts="127.0.0.1", Port=clearPostfix.port,
                      RequireTLS="$true", DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    queueId = org.submit(["cleartext@contoso.com"], "require tls")
    hub.waitFor(f"deferred {queueId}", count=2, timeout=TIMEOUT)
    assert queueId in queuedMessages(org.queue())
    assert all("STARTTLS" in reason for reason in deferrals(hub, queueId)), deferrals(hub, queueId)
    assert "cleartext@contoso.com" not in clearPostfix.log()
    assert clearPostfix.messages("cleartext@contoso.com") == []


def test_basicAuthRequireTLSNeverAuthenticatesInTheClear(fabrikam):
    """
    A peer offering AUTH without STARTTLS: BasicAuth,BasicAuthRequireTLS
    does not take the offer (the message waits), plain BasicAuth does.
    """
    peer = PostfixPeer(sasl={GATEWAY_ACCOUNT: GATEWAY_PASSWORD})
    peer.start()
    try:
        def toPeer(name, space, mechanism):
            return sendConnector(name, AddressSpaces=space, SmartHosts="127.0.0.1", Port=peer.port,
                                 SmartHostAuthMechanism=mechanism,
                                 AuthenticationCredential="Gateway", DNSRoutingEnabled="$false")

        org = fabrikam(
            toPeer("OnlyInsideTLS", "requiretls.test", "BasicAuth, BasicAuthRequireTLS")
            + toPeer("Anywhere", "anywhere.test", "BasicAuth"),
            credentials=[("Gateway", GATEWAY_ACCOUNT, GATEWAY_PASSWORD)],
        )
        hub = org.start()
        held = org.submit(["a@requiretls.test"], "auth needs tls")
        clear = org.submit(["b@anywhere.test"], "auth in the clear")
        hub.waitFor(f"sent {clear}", timeout=TIMEOUT)
        hub.waitFor(f"deferred {held}", count=2, timeout=TIMEOUT)
        [message] = peer.waitForMessages("b@anywhere.test")
        assert f"(Authenticated sender: {GATEWAY_ACCOUNT})".encode() in message
        assert held in queuedMessages(org.queue())
        assert "a@requiretls.test" not in peer.log()
        assert len(re.findall(r"sasl_method=", peer.log())) == 1, peer.log()
    finally:
        peer.stop()


def test_domainValidationChecksTheName(fabrikam, postfix):
    """
    TlsAuthLevel DomainValidation: the certificate (for
    smtpgateway1.contoso.com, from a CA the hub trusts) must match the smart
    host's name or TlsDomain; a mismatch is refused and the message stays
    queued.
    """
    def validated(name, space, smartHost, **keys):
        return sendConnector(name, AddressSpaces=space, SmartHosts=smartHost, Port=postfix.port,
                             RequireTLS="$true", TlsAuthLevel="DomainValidation",
                             DNSRoutingEnabled="$false", **keys)

    org = fabrikam(
        validated("RightName", "dv-right.test", "smtpgateway1.contoso.com")
        + validated("WrongName", "dv-wrong.test", "mismatch.contoso.com")
        + validated("ByTlsDomain", "dv-tlsdomain.test", "127.0.0.1",
                    TlsDomain="smtpgateway1.contoso.com")
        + validated("WrongTlsDomain", "dv-wrongdomain.test", "smtpgateway1.contoso.com",
                    TlsDomain="other.contoso.com")
    )
    hub = org.start()
    right = org.submit(["a@dv-right.test"], "dv right name")
    wrong = org.submit(["b@dv-wrong.test"], "dv wrong name")
    byDomain = org.submit(["c@dv-tlsdomain.test"], "dv tls domain")
    wrongDomain = org.submit(["d@dv-wrongdomain.test"], "dv wrong tls domain")
    hub.waitFor(f"sent {right}", timeout=TIMEOUT)
    hub.waitFor(f"sent {byDomain}", timeout=TIMEOUT)
    hub.waitFor(f"deferred {wrong}", timeout=TIMEOUT)
    hub.waitFor(f"deferred {wrongDomain}", timeout=TIMEOUT)
    postfix.waitForMessages("a@dv-right.test")
    postfix.waitForMessages("c@dv-tlsdomain.test")
    queued = queuedMessages(org.queue())
    assert wrong in queued and wrongDomain in queued
    for queueId, name in ((wrong, "mismatch.contoso.com"), (wrongDomain, "other.contoso.com")):
        reasons = deferrals(hub, queueId)
        assert all(" 4.7." in r and "TLS" in r and name in r for r in reasons), reasons
    log = postfix.log()
    assert "b@dv-wrong.test" not in log and "d@dv-wrongdomain.test" not in log


# Crash safety

BATCH = 500


def test_killNineWhileABatchIsInFlightLosesNoRecipient(fabrikam):
    """
    500 messages queued at the hub while the smart host is down; it comes
    up, and the hub is killed (-9) in the middle of sending.  After a
    restart the queue empties and every recipient has its message at the
    peer, at least once.
    """
    peer = PostfixPeer()
    org = fabrikam(
        sendConnector("ToInternetGateway", AddressSpaces="*", SmartHosts="127.0.0.1",
                      Port=peer.port, DNSRoutingEnabled="$false"),
    )
    hub = org.start()
    try:
        submitted = subprocess.Popen(
            ["smtp-source", "-s", "20", "-m", str(BATCH), "-l", "1000", "-N",
             "-M", "client.fabrikam.com", "-f", SENDER, "-t", "rcpt@contoso.com",
             f"127.0.0.1:{org.ports['HubA']}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        waitUntil(lambda: submitted.poll() is not None, "smtp-source", [hub])
        assert submitted.returncode == 0, submitted.stdout.read()
        assert len(queuedMessages(org.queue())) == BATCH

        starting = threading.Thread(target=peer.start)
        starting.start()
        waitUntil(lambda: not starting.is_alive(), "Postfix to start", [hub])
        hub.waitFor("] sent ", count=20, timeout=TIMEOUT)
        hub.kill()
        arrived = sum(peer.recipients().values())
        assert arrived < BATCH, "everything arrived before the kill: nothing was in flight"

        hub = org.start()
        waitUntil(lambda: not queuedMessages(org.queue()), "the hub's queue to empty", [hub],
                  timeout=120)
        # smtp-source -N numbers the recipients from 1.
        expected = {f"{number}rcpt@contoso.com" for number in range(1, BATCH + 1)}
        try:
            counts = peer.waitUntil(lambda c: expected <= set(c), timeout=TIMEOUT,
                                    what="every recipient")
        except AssertionError:
            counts = peer.recipients()
            raise AssertionError(f"missing at the peer: {sorted(expected - set(counts))}; "
                                 f"unexpected: {sorted(set(counts) - expected)}") from None
        duplicates = sum(counts[r] - 1 for r in expected)
        print(f"{arrived} arrived before the kill; {duplicates} duplicates after the restart")
    finally:
        peer.stop()
