"""
The AddressRewrite agent: its entries (exact address, domain, subdomain
wildcard, case), header fields rewritten in place with everything else kept
byte for byte (checked against the stdlib's address parser), recipients
redirected inbound, and its org.ini keys.
"""

import email.utils
import os
import re

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from exmta.agents import CONTINUE, RoutingEvent, agentFactories, loadAgents
from exmta.config import parseOrganization
from exmta.envelope import NextHop, QueuedMessage, QueuedRecipient
from exmta.errors import ConfigError
from exmta.interfaces import IAgentFactory, IRoutingAgent
from exmta.plugins.exmta_addressrewrite import (
    AddressMap,
    addrSpecs,
    parseEntries,
    rewriteAddresses,
    rewriteHeader,
)

ENTRIES = (
    "john@corp.fabrikam.com -> john.smith@fabrikam.com, "
    "corp.fabrikam.com -> fabrikam.com, "
    "*.fabrikam.com -> fabrikam.com, "
    "*.eu.fabrikam.com -> fabrikam.eu"
)

ORGANIZATION = """
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[AcceptedDomain corp.fabrikam.com]

[TransportAgent AddressRewrite]
Priority = 1
"""

GATEWAY = NextHop("SmartHostConnectorDelivery", "ToInternetGateway")


def addressMap(text=ENTRIES):
    return AddressMap(parseEntries(text))


def event(name, recipients=("someone@contoso.com",), message=None, nextHop=GATEWAY):
    queued = QueuedMessage(
        "0000000000000A0102030405",
        "john@corp.fabrikam.com",
        tuple(QueuedRecipient(r) for r in recipients),
        0.0,
        0,
    )
    return RoutingEvent(name, queued, tuple(recipients), message, nextHop)


def makeAgent(settings):
    text = ORGANIZATION + "".join(f"{key} = {value}\n" for key, value in settings.items())
    return loadAgents(parseOrganization(text, "/o/org.ini"), reactor=None).agents[0].agent


class MappingTests(SynchronousTestCase):
    def test_outbound(self):
        mapping = addressMap()
        cases = {
            # The address entry wins over the domain entry.
            ("john", "corp.fabrikam.com"): ("john.smith", "fabrikam.com"),
            ("JOHN", "Corp.Fabrikam.com"): ("john.smith", "fabrikam.com"),
            # The domain entry keeps the local part as written.
            ("Kim", "CORP.fabrikam.com"): ("Kim", "fabrikam.com"),
            # Subdomains, the longest wildcard first.
            ("dan", "sales.fabrikam.com"): ("dan", "fabrikam.com"),
            ("dan", "a.b.fabrikam.com"): ("dan", "fabrikam.com"),
            ("dan", "paris.eu.fabrikam.com"): ("dan", "fabrikam.eu"),
        }
        for internal, external in cases.items():
            self.assertEqual(mapping.outbound(*internal), external, internal)
        for unmapped in [
            ("dan", "fabrikam.com"),  # a wildcard covers subdomains only
            ("dan", "eu.fabrikam.com.evil"),
            ("dan", "notfabrikam.com"),
            ("dan", "contoso.com"),
        ]:
            self.assertIsNone(mapping.outbound(*unmapped), unmapped)

    def test_inbound(self):
        mapping = addressMap()
        self.assertEqual(mapping.inbound("john.smith@fabrikam.com"), "john@corp.fabrikam.com")
        self.assertEqual(mapping.inbound("John.Smith@Fabrikam.COM"), "john@corp.fabrikam.com")
        self.assertEqual(mapping.inbound("Kim@fabrikam.com"), "Kim@corp.fabrikam.com")
        # Wildcards work outbound only; other domains are left alone.
        self.assertIsNone(mapping.inbound("dan@fabrikam.eu"))
        self.assertIsNone(mapping.inbound("kim@corp.fabrikam.com"))
        self.assertIsNone(mapping.inbound("kim@contoso.com"))

    def test_badEntries(self):
        for text, message in [
            ("corp.fabrikam.com", "is not InternalAddress -> ExternalAddress"),
            ("john@corp.fabrikam.com -> fabrikam.com", "an address to an address"),
            ("corp.fabrikam.com -> john@fabrikam.com", "an address to an address"),
            ("corp.fabrikam.com -> *.fabrikam.com", "cannot be a wildcard"),
            ("corp..fabrikam.com -> fabrikam.com", "neither an address nor a domain"),
            ("john@@corp.fabrikam.com -> j@fabrikam.com", "is not an address"),
            ("a.com -> b.com, A.com -> c.com", "'A.com' has two entries"),
            (" , ", "needs at least one"),
        ]:
            with self.assertRaises(ValueError) as caught:
                parseEntries(text)
            self.assertIn(message, str(caught.exception))


class HeaderTests(SynchronousTestCase):
    def rewritten(self, value):
        return rewriteAddresses(value, addressMap())

    def test_displayNamesAndCommentsKept(self):
        cases = {
            " John Smith <john@corp.fabrikam.com>": " John Smith <john.smith@fabrikam.com>",
            ' "Akers, Kim" <kim@corp.fabrikam.com> (sales)': ' "Akers, Kim" <kim@fabrikam.com> (sales)',
            " kim@corp.fabrikam.com (Kim Akers)": " kim@fabrikam.com (Kim Akers)",
            " =?utf-8?q?J=C3=B6rg?= <jorg@sales.fabrikam.com>": " =?utf-8?q?J=C3=B6rg?= <jorg@fabrikam.com>",
            ' "kim@corp.fabrikam.com" <kim@corp.fabrikam.com>': ' "kim@corp.fabrikam.com" <kim@fabrikam.com>',
            " Team: a@corp.fabrikam.com, b@contoso.com;": " Team: a@fabrikam.com, b@contoso.com;",
            " <@relay.example:kim@corp.fabrikam.com>": " <@relay.example:kim@fabrikam.com>",
            " kim@[192.0.2.1], kim@contoso.com": " kim@[192.0.2.1], kim@contoso.com",
            ' "odd (not a comment)"@corp.fabrikam.com': ' "odd (not a comment)"@fabrikam.com',
            " (nested (comment) a@corp.fabrikam.com) b@corp.fabrikam.com": " (nested (comment) a@corp.fabrikam.com) b@fabrikam.com",
            # Folded between addresses: the folding stays.
            " a@corp.fabrikam.com,\r\n\tJohn <john@corp.fabrikam.com>": " a@fabrikam.com,\r\n\tJohn <john.smith@fabrikam.com>",
        }
        for value, expected in cases.items():
            self.assertEqual(self.rewritten(value), expected, value)

    def test_unmappedUnchanged(self):
        for value in [" undisclosed-recipients:;", " <>", " kim@contoso.com", " garbage @@ <", ""]:
            self.assertEqual(self.rewritten(value), value)

    def test_addrSpecsOfRoute(self):
        specs = addrSpecs(" <@a.example,@b.example:kim@c.example>")
        self.assertEqual([(s.local, s.domain) for s in specs], [("kim", "c.example")])

    def test_message(self):
        body = b"From: john@corp.fabrikam.com\r\nTo: kim@corp.fabrikam.com\r\n"
        message = (
            b"Received: from client ([127.0.0.1]) by huba.corp.fabrikam.com\r\n"
            b'From: "John Smith"\r\n <john@corp.fabrikam.com>\r\n'
            b"to: Kim <kim@corp.fabrikam.com>, someone@contoso.com\r\n"
            b"CC: dan@sales.fabrikam.com\r\n"
            b"Reply-To: help@corp.fabrikam.com\r\n"
            b"Sender: robot@corp.fabrikam.com\r\n"
            b"Bcc: secret@corp.fabrikam.com\r\n"
            b"Message-ID: <1@huba.corp.fabrikam.com>\r\n"
            b"Subject: mail for kim@corp.fabrikam.com \xc3\xa9\r\n"
            b"\r\n" + body
        )
        expected = (
            b"Received: from client ([127.0.0.1]) by huba.corp.fabrikam.com\r\n"
            b'From: "John Smith"\r\n <john.smith@fabrikam.com>\r\n'
            b"to: Kim <kim@fabrikam.com>, someone@contoso.com\r\n"
            b"CC: dan@fabrikam.com\r\n"
            b"Reply-To: help@fabrikam.com\r\n"
            b"Sender: robot@fabrikam.com\r\n"
            b"Bcc: secret@corp.fabrikam.com\r\n"
            b"Message-ID: <1@huba.corp.fabrikam.com>\r\n"
            b"Subject: mail for kim@corp.fabrikam.com \xc3\xa9\r\n"
            b"\r\n" + body
        )
        self.assertEqual(rewriteHeader(message, addressMap()), expected)

    def test_utf8AndUnmappedMessageKept(self):
        message = b"From: J\xc3\xb6rg <j\xc3\xb6rg@contoso.com>\r\nTo: \xff@contoso.com\r\n\r\nbody\r\n"
        self.assertIs(rewriteHeader(message, addressMap()), message)
        utf8 = b"From: J\xc3\xb6rg <j\xc3\xb6rg@corp.fabrikam.com>\r\n\r\n"
        self.assertEqual(
            rewriteHeader(utf8, addressMap()), b"From: J\xc3\xb6rg <j\xc3\xb6rg@fabrikam.com>\r\n\r\n"
        )


_names = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="\r\n\\\x00\x7f"), max_size=12
)
_locals = st.just("john") | st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,10}[a-z0-9]", fullmatch=True).filter(
    lambda local: ".." not in local
)
_domains = st.sampled_from(
    ["corp.fabrikam.com", "CORP.fabrikam.com", "sales.fabrikam.com", "fabrikam.com", "contoso.com", "x.eu.fabrikam.com"]
)


class HeaderPropertyTests(SynchronousTestCase):
    """
    Against the stdlib's parser: what email.utils.getaddresses reads from
    a rewritten value is what it read before, each address mapped.
    """

    @given(st.lists(st.tuples(_names, _locals, _domains), min_size=1, max_size=4))
    def test_sameAsStdlibMapped(self, people):
        mapping = addressMap()
        value = " " + ", ".join(
            email.utils.formataddr((name, f"{local}@{domain}")) for name, local, domain in people
        )
        rewritten = rewriteAddresses(value, mapping)

        def mapped(address):
            local, _, domain = address.rpartition("@")
            external = mapping.outbound(local, domain)
            return address if external is None else "@".join(external)

        before = email.utils.getaddresses([value])
        after = email.utils.getaddresses([rewritten])
        self.assertEqual(after, [(name, mapped(address)) for name, address in before])

    @given(st.text(alphabet=st.sampled_from(list('ab@.<>()",:; \\\r\n\t')) , max_size=40))
    def test_nothingMappedNothingChanged(self, value):
        self.assertEqual(rewriteAddresses(value, addressMap("x.example -> y.example")), value)


class AgentTests(SynchronousTestCase):
    def setUp(self):
        self.agent = makeAgent({"AddressRewriteEntries": ENTRIES})

    def test_plugin(self):
        verifyFactory = agentFactories()["addressrewrite"]
        self.assertTrue(IAgentFactory.providedBy(verifyFactory))
        self.assertTrue(IRoutingAgent.providedBy(self.agent))

    def test_inboundRedirects(self):
        verdict = self.agent.OnResolvedMessage(
            event(
                "OnResolvedMessage",
                ("John.Smith@fabrikam.com", "kim@fabrikam.com", "kim@corp.fabrikam.com", "a@contoso.com"),
            )
        )
        self.assertEqual(verdict.kind, CONTINUE)
        self.assertEqual(
            verdict.recipients,
            {
                "John.Smith@fabrikam.com": ("john@corp.fabrikam.com",),
                "kim@fabrikam.com": ("kim@corp.fabrikam.com",),
            },
        )

    def test_inboundNothingToRedirect(self):
        verdict = self.agent.OnResolvedMessage(event("OnResolvedMessage", ("a@contoso.com",)))
        self.assertEqual((verdict.kind, verdict.recipients), (CONTINUE, None))

    def test_outboundRewritesRemoteHops(self):
        message = b"From: John <john@corp.fabrikam.com>\r\n\r\nHi\r\n"
        for nextHop in [GATEWAY, NextHop("DnsConnectorDelivery", "ToInternet", domain="contoso.com")]:
            verdict = self.agent.OnRoutedMessage(event("OnRoutedMessage", message=message, nextHop=nextHop))
            self.assertEqual(verdict.message, b"From: John <john.smith@fabrikam.com>\r\n\r\nHi\r\n")

    def test_outboundLeavesLocalAndWithinSite(self):
        message = b"From: John <john@corp.fabrikam.com>\r\n\r\nHi\r\n"
        for nextHop in [None, NextHop("SmtpRelayWithinAdSite", "ToInternet", server="HubB")]:
            verdict = self.agent.OnRoutedMessage(event("OnRoutedMessage", message=message, nextHop=nextHop))
            self.assertEqual((verdict.kind, verdict.message), (CONTINUE, None))

    def test_outboundNothingToRewrite(self):
        message = b"From: a@contoso.com\r\n\r\nHi\r\n"
        verdict = self.agent.OnRoutedMessage(event("OnRoutedMessage", message=message))
        self.assertIsNone(verdict.message)


class SettingTests(SynchronousTestCase):
    def refused(self, settings):
        with self.assertRaises(ConfigError) as caught:
            makeAgent(settings)
        return caught.exception

    def test_badEntryNamesLine(self):
        error = self.refused({"AddressRewriteEntries": "corp.fabrikam.com"})
        self.assertEqual((error.line, error.key), (ORGANIZATION.count("\n") + 1, "AddressRewriteEntries"))
        self.assertEqual(error.section, "TransportAgent AddressRewrite")

    def test_ambiguousWayBack(self):
        entries = "corp.fabrikam.com -> fabrikam.com, sales.fabrikam.com -> fabrikam.com"
        error = self.refused({"AddressRewriteEntries": entries})
        self.assertIn("both map to fabrikam.com", error.message)
        self.assertEqual(error.key, "AddressRewriteEntries")
        agent = makeAgent({"AddressRewriteEntries": entries, "OutboundOnly": "Sales.fabrikam.com"})
        mapping = agent.addressMap
        self.assertEqual(mapping.outbound("a", "sales.fabrikam.com"), ("a", "fabrikam.com"))
        self.assertEqual(mapping.inbound("a@fabrikam.com"), "a@corp.fabrikam.com")

    def test_outboundOnlyNamesAnEntry(self):
        error = self.refused({"AddressRewriteEntries": ENTRIES, "OutboundOnly": "contoso.com"})
        self.assertEqual((error.key, error.line), ("OutboundOnly", ORGANIZATION.count("\n") + 2))

    def test_unknownAndMissingKeys(self):
        self.assertIn("known keys are", self.refused({"AddressRewriteEntries": ENTRIES, "Entries": "x"}).message)
        self.assertIn("needs AddressRewriteEntries", self.refused({}).message)


class DocumentationTests(SynchronousTestCase):
    def test_exampleLoads(self):
        """
        The example in docs/agents-builtin.rst is a working configuration.
        """
        example = exampleSection("AddressRewrite")
        organization = parseOrganization(
            "[TransportServer HubA]\nFqdn = huba.fabrikam.com\n" + example, "/o/org.ini"
        )
        mapping = loadAgents(organization, reactor=None).agents[0].agent.addressMap
        self.assertEqual(mapping.outbound("kim", "fabrikam.net"), ("kim", "fabrikam.com"))
        self.assertEqual(mapping.inbound("kim@fabrikam.com"), "kim@corp.fabrikam.com")


def exampleSection(name):
    """
    @return: the C{[TransportAgent name]} example of docs/agents-builtin.rst,
        unindented.
    """
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "agents-builtin.rst")
    with open(path) as handle:
        text = handle.read()
    block = re.search(rf"^    \[TransportAgent {name}\]\n(?:    \S.*\n)+", text, re.M).group(0)
    return "\n".join(line[4:] for line in block.splitlines()) + "\n"
