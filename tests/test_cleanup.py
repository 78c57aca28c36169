"""
The cleanup stage without a socket (L{exmta.cleanup}): the header checks,
the headers this hop writes, the end-of-data agent events and the queue's
answer, called as the receive protocol calls it.
"""

from hypothesis import given, strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from exmta.agents import Verdict, loadAgents
from exmta.auth import permissions
from exmta.auth.realm import Principal
from exmta.cleanup.cleanup import Cleanup
from exmta.cleanup.headers import firewall, hopCount, localHopCount, receivedHeader
from exmta.config import parseOrganization
from exmta.envelope import Address, Envelope, Reply, Session
from exmta.errors import Disconnect
from exmta.interfaces import ICleanup
from exmta.message.header import fieldName, fields
from tests.test_agents import Factory, Recorder, agentSection
from tests.test_protocol import ORG, ControlledQueue

ANONYMOUS = Principal(
    permissions.ANONYMOUS, frozenset({permissions.ANONYMOUS}),
    frozenset({permissions.SUBMIT}),
)
KIM = Principal(
    "kim@fabrikam.com", frozenset({"kim@fabrikam.com"}),
    frozenset({permissions.SUBMIT}), frozenset({"kim@fabrikam.com"}), "Authenticated",
)


def session(**changes):
    values = dict(connector="Default HubA", server="HubA", localHost="127.0.0.1", localPort=25,
                  peerHost="127.0.0.9", peerPort=40000, helo="client.example", esmtp=True,
                  principal=ANONYMOUS)
    values.update(changes)
    return Session(**values)


ENVELOPE = Envelope(Address("a", "example.com"), (Address("kim", "fabrikam.com"),))


class Tracking:
    def __init__(self):
        self.events = []

    def track(self, event, **fields):
        self.events.append((event, fields))


class CleanupTests(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(86400)
        self.queue = ControlledQueue()
        self.tracking = Tracking()
        self.calls = []

    def cleanup(self, agents=(), extra=""):
        """
        @param agents: (name, priority, agent) tuples.
        @return: the L{Cleanup} and the receive connector.
        """
        text = ORG + extra + "".join(agentSection(name, priority) for name, priority, _ in agents)
        organization = parseOrganization(text, "/o/org.ini")
        pipeline = loadAgents(organization, self.clock, [Factory(a[0], a[2]) for a in agents])
        cleanup = Cleanup(organization, self.queue, self.clock, pipeline, self.tracking)
        return cleanup, organization.receiveConnectors[0]

    def endOfData(self, message, agents=(), extra="", **changes):
        cleanup, connector = self.cleanup(agents, extra)
        return cleanup.endOfData(connector, session(**changes), ENVELOPE, message)

    def test_interface(self):
        cleanup, _ = self.cleanup()
        self.assertTrue(verifyObject(ICleanup, cleanup))

    def test_queuedWithHeadersThenAnswered(self):
        """
        The message is queued with this hop's Received: and authentication
        headers in front, the client's own copy of those dropped; the 250
        comes once the queue's Deferred fires, and tracking hears of it.
        """
        answer = self.endOfData(
            b"X-MS-Exchange-Organization-AuthAs: Internal\r\nMessage-ID: <m@x>\r\n"
            b"Subject: s\r\n\r\nbody\r\n"
        )
        [(envelope, stored, committed)] = self.queue.pending
        self.assertEqual(envelope, ENVELOPE)
        self.assertTrue(stored.startswith(
            b"Received: from client.example ([127.0.0.9]) by huba.fabrikam.com ([127.0.0.1]) "
            b"with ESMTP;\r\n\tFri, 02 Jan 1970 00:00:00 GMT\r\n"
            b"X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"
            b"X-MS-Exchange-Organization-AuthSource: huba.fabrikam.com\r\n"
            b"Message-ID: <m@x>\r\nSubject: s\r\n\r\nbody\r\n"
        ), stored)
        replies = []
        answer.addCallback(replies.append)
        self.assertEqual(replies, [])
        committed.callback("Q1")
        self.assertEqual(replies, [Reply(250, "2.6.0", "<Q1@huba.fabrikam.com> Queued mail for delivery")])
        [(event, fields)] = self.tracking.events
        self.assertEqual((event, fields["messageId"], fields["totalBytes"]), ("RECEIVE", "<m@x>", len(stored)))

    def test_headerTooBig(self):
        self.assertEqual(
            self.endOfData(b"X: " + b"y" * 70000 + b"\r\n\r\nbody\r\n"),
            Reply(552, "5.3.4", "Header size exceeds fixed maximum size"),
        )
        self.assertEqual(self.queue.pending, [])

    def test_hopCount(self):
        self.assertEqual(
            self.endOfData(b"Received: x\r\n" * 30 + b"\r\nbody\r\n"),
            Reply(554, "5.4.6", "Hop count exceeded - possible mail loop"),
        )
        self.assertEqual(self.queue.pending, [])

    def test_fromInAnAuthoritativeDomain(self):
        """
        From: with an address of an authoritative domain needs the right
        to send as it: refused for an anonymous session, taken from the
        mailbox that owns it.
        """
        message = b"From: Kim <kim@fabrikam.com>\r\n\r\nbody\r\n"
        self.assertEqual(
            self.endOfData(message),
            Reply(550, "5.7.1", "Client does not have permissions to send as this sender"),
        )
        self.endOfData(message, principal=KIM, authenticated=True)
        self.assertEqual(len(self.queue.pending), 1)

    def test_agentsSeeTheHeaderThenTheMessage(self):
        seen = []
        agent = Recorder(
            self.calls, "a",
            OnEndOfHeaders=lambda e: seen.append(e.header) or Verdict.continue_(),
            OnEndOfData=lambda e: Verdict.continue_(message=b"X-Agent: 1\r\n" + e.message),
        )
        self.endOfData(b"Subject: s\r\n\r\nbody\r\n", agents=[("A", 1, agent)])
        self.assertEqual(seen, [b"Subject: s\r\n"])
        [(_, stored, _)] = self.queue.pending
        self.assertTrue(stored.startswith(b"X-Agent: 1\r\nReceived: "))

    def test_agentRefuses(self):
        refusal = Reply(550, "5.7.1", "No")
        agent = Recorder(self.calls, "a", OnEndOfHeaders=lambda e: Verdict.reject(refusal))
        replies = []
        self.endOfData(b"Subject: s\r\n\r\nbody\r\n", agents=[("A", 1, agent)]).addCallback(
            replies.append
        )
        self.assertEqual(replies, [refusal])
        self.assertEqual(self.queue.pending, [])

    def test_agentDisconnects(self):
        agent = Recorder(self.calls, "a", OnEndOfData=lambda e: Verdict.disconnect())
        answer = self.endOfData(b"Subject: s\r\n\r\nbody\r\n", agents=[("A", 1, agent)])
        failure = self.failureResultOf(answer, Disconnect)
        self.assertEqual(failure.value.reply.code, 421)
        self.assertEqual(self.queue.pending, [])

    def test_noRecipientsLeft(self):
        """
        An envelope whose recipients the agents all removed is answered
        250 and queued nowhere.
        """
        cleanup, connector = self.cleanup()
        empty = Envelope(ENVELOPE.mailFrom, ())
        answer = cleanup.endOfData(connector, session(), empty, b"Subject: s\r\n\r\nbody\r\n")
        self.assertEqual(answer, Reply(250, "2.6.0", "Queued mail for delivery"))
        self.assertEqual(self.queue.pending, [])

    def test_queueFails(self):
        answer = self.endOfData(b"Subject: s\r\n\r\nbody\r\n")
        [(_, _, committed)] = self.queue.pending
        committed.errback(OSError("disk"))
        self.failureResultOf(answer, OSError)


# The headers this hop writes


def test_receivedHeaderNamesTLSAndAuth():
    header = receivedHeader(
        session(tlsVersion="TLSv1.3", tlsCipher="TLS_AES_256_GCM_SHA384", authenticated=True),
        "huba.fabrikam.com", 0,
    )
    assert header.startswith(b"Received: from client.example ([127.0.0.9]) by huba.fabrikam.com")
    assert b"with ESMTPSA (version=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384);" in header
    assert header.endswith(b"Thu, 01 Jan 1970 00:00:00 GMT\r\n")
    assert b"with ESMTP;" in receivedHeader(session(), "h", 0)
    assert b"with SMTP;" in receivedHeader(session(esmtp=False), "h", 0)


@given(st.text(max_size=40), st.text(max_size=20))
def test_receivedHeaderNeverCarriesAControlCharacter(helo, cipher):
    """
    Whatever a session value holds (HELO refuses control characters, and
    this is the second line of defence), the field is ASCII text with only
    its own CRLF and folding tab.
    """
    header = receivedHeader(session(helo=helo, tlsVersion="TLSv1.3", tlsCipher=cipher),
                                    "huba.fabrikam.com", 0)
    first, second = header.split(b"\r\n\t")
    assert second.endswith(b"\r\n") and second.count(b"\r\n") == 1
    assert all(32 <= octet < 127 for octet in first + second[:-2])


def test_firewallFollowsRights():
    header = (b"Received: from a\r\n\tby b\r\nX-MS-Exchange-Organization-SCL: 1\r\n"
              b"X-MS-Exchange-Forest-Rules: 1\r\nx-ms-exchange-organization-authas: Internal\r\n"
              b"Subject: s\r\n")
    assert firewall(header, frozenset()) == b"Subject: s\r\n"
    everything = frozenset({permissions.ACCEPT_HEADERS_ROUTING, permissions.ACCEPT_HEADERS_ORGANIZATION,
                            permissions.ACCEPT_HEADERS_FOREST})
    kept = firewall(header, everything)
    assert b"Received: from a\r\n\tby b\r\n" in kept
    assert b"SCL" in kept and b"Forest" in kept
    assert b"authas" not in kept


_RIGHTS = [permissions.ACCEPT_HEADERS_ROUTING, permissions.ACCEPT_HEADERS_ORGANIZATION,
           permissions.ACCEPT_HEADERS_FOREST]
_HEADER_LINES = st.lists(
    st.tuples(
        st.sampled_from(["", " ", "\t"]),
        st.sampled_from(["Subject", "Received", "rEcEiVeD ", "X-MS-Exchange-Organization-SCL",
                         "x-ms-exchange-forest-rules", "X-MS-Exchange-Organization-AuthAs",
                         "X-Received", "From"]),
        st.sampled_from([": v", ":", ": by huba.fabrikam.com", " x", ""]),
    ).map(lambda parts: "".join(parts).encode("ascii")),
    max_size=6,
)


@given(_HEADER_LINES, st.booleans(), st.sets(st.sampled_from(_RIGHTS)))
def test_firewallKeepsExactlyTheFieldsAllowed(lines, finalLineEnd, rights):
    """
    Whatever the header (folded fields, odd spacing and case, a field name
    that only contains a dropped one), the firewall gives back each field
    it keeps as it came and drops the others, also when it has nothing to
    drop and hands the header back whole.
    """
    header = b"\r\n".join(lines) + (b"\r\n" if finalLineEnd and lines else b"")
    dropped = {b"x-ms-exchange-organization-authas"}
    if permissions.ACCEPT_HEADERS_ROUTING not in rights:
        dropped.add(b"received")
    expected = []
    for field in fields(header):
        name = fieldName(field)
        if (name in dropped
                or (name.startswith(b"x-ms-exchange-organization-")
                    and permissions.ACCEPT_HEADERS_ORGANIZATION not in rights)
                or (name.startswith(b"x-ms-exchange-forest-")
                    and permissions.ACCEPT_HEADERS_FOREST not in rights)):
            continue
        expected.append(field + b"\r\n")
    assert firewall(header, frozenset(rights)) == b"".join(expected)


def test_localHopCount():
    header = (b"Received: from a by huba.fabrikam.com.; now\r\nX-Received: by huba.fabrikam.com\r\n"
              b"RECEIVED: from b by other.example; then\r\nSubject: by huba.fabrikam.com\r\n")
    assert localHopCount(header, {"huba.fabrikam.com"}) == 1
    assert localHopCount(b"Subject: s\r\n", {"huba.fabrikam.com"}) == 0


def test_hopCount():
    assert hopCount(b"Received: a\r\nreceived : b\r\nX-Received: c\r\n") == 2
