"""
Tests for L{exmta.routing.connectors}: which send connector and next hop a
remote recipient takes, and where another server takes forwarded mail.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exmta.config import parseOrganization
from exmta.config.model import Organization, Origin, SendConnector
from exmta.config.values import addressSpace, smartHost
from exmta.envelope import Address, NextHop
from exmta.routing import chooseSendConnector, forwardingTarget, nextHopFor

SERVERS = """\
[TransportServer HubA]
Fqdn = huba.fabrikam.com

[TransportServer HubB]
Fqdn = hubb.fabrikam.com

[AcceptedDomain fabrikam.com]
"""


def org(body, head=SERVERS):
    return parseOrganization(head + body, "/etc/exmta/org.ini")


def send(name, spaces, sources="HubA", smartHosts="gw.contoso.com", extra=""):
    """
    A [SendConnector] section through smart hosts (or by DNS if
    C{smartHosts} is empty).
    """
    routing = (
        f"SmartHosts = {smartHosts}\nDNSRoutingEnabled = $false\n" if smartHosts else ""
    )
    return (
        f"\n[SendConnector {name}]\nAddressSpaces = {spaces}\n"
        f"SourceTransportServers = {sources}\n{routing}{extra}"
    )


def chosen(organization, domain, server="HubA"):
    connector = chooseSendConnector(organization, server, domain)
    return connector and connector.name


# The most specific address space wins


SPECIFIC = org(
    send("Everything", "*")
    + send("ContosoAndSubdomains", "*.contoso.com")
    + send("ContosoOnly", "contoso.com")
    + send("DotCom", "*.com")
    + send("Sales", "*.sales.contoso.com")
)


@pytest.mark.parametrize(
    "domain, name",
    [
        ("contoso.com", "ContosoOnly"),
        ("CONTOSO.COM.", "ContosoOnly"),
        ("mail.contoso.com", "ContosoAndSubdomains"),
        ("sales.contoso.com", "Sales"),
        ("eu.sales.contoso.com", "Sales"),
        ("fabrikam.com", "DotCom"),
        ("fabrikam.net", "Everything"),
        ("[192.0.2.1]", "Everything"),
    ],
)
def test_mostSpecificAddressSpaceWins(domain, name):
    assert chosen(SPECIFIC, domain) == name


def test_wildcardMatchesItsOwnDomain():
    organization = org(send("Everything", "*") + send("Contoso", "*.contoso.com"))
    assert chosen(organization, "contoso.com") == "Contoso"


def test_specificityBeatsCost():
    organization = org(send("Cheap", "*;1") + send("Dear", "contoso.com;100"))
    assert chosen(organization, "contoso.com") == "Dear"
    assert chosen(organization, "fabrikam.net") == "Cheap"


# Then the lowest cost


def test_lowestCostWins():
    organization = org(send("A", "*;5") + send("B", "*;2") + send("C", "*;9"))
    assert chosen(organization, "contoso.com") == "B"


def test_aConnectorCompetesWithItsBestMatchingAddressSpace():
    organization = org(
        send("Mixed", "*;50, contoso.com;3, *.contoso.com;1")
        + send("Plain", "contoso.com;4")
        + send("Wild", "*.contoso.com;2")
    )
    # Mixed matches contoso.com exactly at cost 3, beating Plain's 4.
    assert chosen(organization, "contoso.com") == "Mixed"
    # For a subdomain its best is *.contoso.com;1, beating Wild's 2.
    assert chosen(organization, "mail.contoso.com") == "Mixed"
    # For anything else only its * at cost 50 matches.
    assert chosen(organization, "fabrikam.net") == "Mixed"
    organization = org(send("Mixed", "*;50") + send("Other", "*;10"))
    assert chosen(organization, "fabrikam.net") == "Other"


# Then a connector this server is a source server of, then the name


def test_localSourceServerPreferred():
    organization = org(send("ViaB", "*", sources="HubB") + send("ViaA", "*", sources="HubA"))
    assert chosen(organization, "contoso.com", "HubA") == "ViaA"
    assert chosen(organization, "contoso.com", "HubB") == "ViaB"
    assert chosen(organization, "contoso.com", "hubb") == "ViaB"
    # A server that is neither takes the lowest name.
    assert chosen(organization, "contoso.com", None) == "ViaA"


def test_costBeatsLocalSourceServer():
    organization = org(send("Local", "*;5", sources="HubA") + send("Remote", "*;1", sources="HubB"))
    assert chosen(organization, "contoso.com", "HubA") == "Remote"


def test_lowestNameLast():
    organization = org(send("beta", "*") + send("Alpha", "*") + send("gamma", "*"))
    assert chosen(organization, "contoso.com") == "Alpha"


def test_serverMayBeTheTransportServer():
    organization = org(send("ViaB", "*", sources="HubB") + send("ViaA", "*", sources="HubA"))
    hubB = organization.transportServers["HubB"]
    assert chooseSendConnector(organization, hubB, "contoso.com").name == "ViaB"


# Disabled connectors, non-SMTP address spaces, unroutable domains


def test_disabledConnectorsAreIgnored():
    organization = org(
        send("Specific", "contoso.com", extra="Enabled = $false\n") + send("Everything", "*")
    )
    assert chosen(organization, "contoso.com") == "Everything"
    organization = org(send("Only", "*", extra="Enabled = $false\n"))
    assert chosen(organization, "contoso.com") is None
    assert nextHopFor(organization, "HubA", "contoso.com") is None


def test_nonSmtpAddressSpacesNeverMatch():
    organization = org(send("X400", "X400:c=US;a=;p=Contoso"))
    assert chosen(organization, "contoso.com") is None


def test_unroutable():
    organization = org(send("Contoso", "*.contoso.com"))
    assert chosen(organization, "fabrikam.net") is None
    assert nextHopFor(organization, "HubA", "fabrikam.net") is None
    assert chosen(org(""), "contoso.com") is None


# Next hops


def test_nextHopThroughSmartHosts():
    organization = org(send("ToInternetGateway", "*", sources="HubA, HubB"))
    hop = nextHopFor(organization, "HubB", "Contoso.com")
    assert hop == NextHop("SmartHostConnectorDelivery", "ToInternetGateway")
    assert hop.key == "ToInternetGateway"
    # Every domain through the smart hosts shares one queue.
    assert nextHopFor(organization, "HubA", "fabrikam.net").key == hop.key


def test_nextHopByDNS():
    organization = org(send("Internet", "*", smartHosts=""))
    hop = nextHopFor(organization, "HubA", "Mail.Contoso.COM.")
    assert hop == NextHop("DnsConnectorDelivery", "Internet", domain="mail.contoso.com")
    assert hop.key == "Internet:mail.contoso.com"
    assert nextHopFor(organization, "HubA", "fabrikam.net").key == "Internet:fabrikam.net"


def test_nextHopForwardsToTheFirstSourceServer():
    head = SERVERS + "[TransportServer HubC]\nFqdn = hubc.fabrikam.com\n"
    organization = org(send("ToInternetGateway", "*", sources="HubB, HubC"), head=head)
    hop = nextHopFor(organization, "HubA", "contoso.com")
    assert hop == NextHop("SmtpRelayWithinAdSite", "ToInternetGateway", server="HubB")
    assert hop.key == "HubB"
    # A source server sends itself.
    assert nextHopFor(organization, "HubC", "contoso.com").deliveryType == "SmartHostConnectorDelivery"


def test_nextHopPrefersALocalConnectorOverForwarding():
    organization = org(send("ViaB", "*", sources="HubB") + send("ViaA", "*", sources="HubA", smartHosts=""))
    assert nextHopFor(organization, "HubA", "contoso.com").deliveryType == "DnsConnectorDelivery"
    assert nextHopFor(organization, "HubB", "contoso.com").deliveryType == "SmartHostConnectorDelivery"


# Where forwarded mail goes

RECEIVE = """
[ReceiveConnector Client {server}]
Server = {server}
Usage = Client
Bindings = 127.0.0.1:{clientPort}
RemoteIPRanges = 0.0.0.0-255.255.255.255

[ReceiveConnector Internal {server}]
Server = {server}
Usage = Internal
Bindings = {binding}
RemoteIPRanges = 127.0.0.0/8
"""


@pytest.mark.parametrize(
    "binding, target",
    [
        ("127.0.0.2:2526, 127.0.0.3:2527", ("127.0.0.2", 2526)),
        ("0.0.0.0:25", ("hubb.fabrikam.com", 25)),
        ("[::]:2525", ("hubb.fabrikam.com", 2525)),
        ("[::1]:2525", ("::1", 2525)),
    ],
)
def test_forwardingTarget(binding, target):
    organization = org(RECEIVE.format(server="HubB", clientPort=2587, binding=binding))
    assert forwardingTarget(organization, "HubB") == target
    assert forwardingTarget(organization, "hubb") == target


def test_forwardingTargetTakesTheFirstEnabledExchangeServersConnector():
    body = """
[ReceiveConnector Disabled]
Server = HubB
Usage = Custom
PermissionGroups = ExchangeServers
Bindings = 127.0.0.2:2600
RemoteIPRanges = 127.0.0.0/8
Enabled = $false

[ReceiveConnector Anonymous]
Server = HubB
Usage = Custom
PermissionGroups = AnonymousUsers
Bindings = 127.0.0.2:2601
RemoteIPRanges = 127.0.0.0/8

[ReceiveConnector Servers]
Server = HubB
Usage = Custom
PermissionGroups = AnonymousUsers, ExchangeServers
AuthMechanism = Tls, ExternalAuthoritative
Bindings = 127.0.0.2:2602
RemoteIPRanges = 127.0.0.1

[ReceiveConnector Later]
Server = HubB
Usage = Internal
Bindings = 127.0.0.2:2603
RemoteIPRanges = 127.0.0.0/8

[ReceiveConnector OnHubA]
Server = HubA
Usage = Internal
Bindings = 127.0.0.1:2604
RemoteIPRanges = 127.0.0.0/8
"""
    organization = org(body)
    assert forwardingTarget(organization, "HubB") == ("127.0.0.2", 2602)
    assert forwardingTarget(organization, "HubA") == ("127.0.0.1", 2604)


def test_forwardingTargetNone():
    organization = org(RECEIVE.format(server="HubB", clientPort=2587, binding="127.0.0.2:2526").split("[ReceiveConnector Internal")[0])
    with pytest.raises(ValueError, match="HubB has no enabled ReceiveConnector whose PermissionGroups include ExchangeServers"):
        forwardingTarget(organization, "HubB")
    with pytest.raises(ValueError, match="no TransportServer is named 'HubZ'"):
        forwardingTarget(organization, "HubZ")


# Against a brute-force reading of the rules

_domains = ["contoso.com", "sales.contoso.com", "eu.sales.contoso.com", "fabrikam.net", "com"]
_spaces = ["*", "*.com", "contoso.com", "*.contoso.com", "*.sales.contoso.com", "sales.contoso.com", "fabrikam.net", "X400:c=US"]


def _connector(index, spaces, enabled, sources):
    return SendConnector(
        name=f"C{index}",
        usage="Custom",
        addressSpaces=tuple(addressSpace(s) for s in spaces),
        smartHosts=(smartHost("gw.contoso.com"),),
        smartHostAuthMechanism=frozenset({"None"}),
        authenticationCredential=None,
        sourceTransportServers=sources,
        dnsRoutingEnabled=False,
        port=25,
        fqdn=None,
        requireTLS=False,
        tlsAuthLevel=None,
        tlsDomain=None,
        ignoreSTARTTLS=False,
        maxMessageSize=None,
        connectionInactivityTimeout=600,
        useExternalDNSServersEnabled=False,
        protocolLoggingLevel="None",
        enabled=enabled,
        origin=Origin("/o/org.ini", 1, f"SendConnector C{index}"),
    )


_connectors = st.lists(
    st.tuples(
        st.lists(
            st.builds(lambda s, c: f"{s};{c}", st.sampled_from(_spaces), st.integers(1, 3)),
            min_size=1,
            max_size=3,
            unique_by=lambda s: s.split(";")[0],
        ),
        st.booleans(),
        st.sampled_from([("HubA",), ("HubB",), ("HubB", "HubA")]),
    ),
    max_size=6,
)


@given(_connectors, st.sampled_from(_domains), st.sampled_from(["HubA", "HubB"]))
def test_choiceAgreesWithTheRules(specs, domain, server):
    connectors = tuple(_connector(i, *spec) for i, spec in enumerate(specs))
    organization = Organization(path="/o/org.ini", sendConnectors=connectors)
    choice = chooseSendConnector(organization, server, domain)

    def best(connector):
        """
        (labels matched, exact, -cost) of the connector's best address space.
        """
        found = []
        for space in connector.addressSpaces:
            if space.type != "SMTP":
                continue
            d = space.domain
            if d == "*":
                found.append((0, False, -space.cost))
            elif d.startswith("*.") and (domain == d[2:] or domain.endswith(d[1:])):
                found.append((len(d[2:].split(".")), False, -space.cost))
            elif d == domain:
                found.append((len(d.split(".")), True, -space.cost))
        return max(found, default=None)

    candidates = [c for c in connectors if c.enabled and best(c) is not None]
    if not candidates:
        assert choice is None
        assert nextHopFor(organization, server, domain) is None
        return
    top = max(best(c) for c in candidates)
    assert best(choice) == top
    tied = [c for c in candidates if best(c) == top]
    local = [c for c in tied if server in c.sourceTransportServers]
    assert choice is min(local or tied, key=lambda c: c.name)
    hop = nextHopFor(organization, server, domain)
    if server in choice.sourceTransportServers:
        assert hop == NextHop("SmartHostConnectorDelivery", choice.name)
    else:
        assert hop == NextHop("SmtpRelayWithinAdSite", choice.name, server=choice.sourceTransportServers[0])


# The running server's routes


class TestServiceRoutes:
    """
    The service keeps each domain's next hop for its configuration, and a
    reload routes by the new one.
    """

    @pytest.fixture
    def running(self, tmp_path):
        from twisted.internet import reactor

        from exmta.service import makeService

        path = tmp_path / "org.ini"
        path.write_text(SERVERS + send("Outbound", "*"))
        server = makeService(str(path), server="HubA", reactor=reactor)
        server.startService()
        yield path, server
        server.stopService()

    def test_aDomainRoutedTwiceTakesTheSameHop(self, running):
        _, server = running
        route = server.getServiceNamed("queue").route
        first = route(Address("a", "contoso.com"))
        assert first == NextHop("SmartHostConnectorDelivery", "Outbound")
        assert route(Address("b", "contoso.com")) is first

    def test_aReloadRoutesByTheNewConnectors(self, running):
        path, server = running
        manager = server.getServiceNamed("queue")
        manager.route(Address("a", "contoso.com"))
        path.write_text(SERVERS + send("Outbound", "*") + send("Contoso", "contoso.com"))
        server.reload()
        assert manager.route(Address("a", "contoso.com")) == NextHop(
            "SmartHostConnectorDelivery", "Contoso"
        )
        assert manager.route(Address("a", "fabrikam.net")) == NextHop(
            "SmartHostConnectorDelivery", "Outbound"
        )
