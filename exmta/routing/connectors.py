"""
Which send connector a remote recipient leaves through, and the next hop
that makes it, as Exchange 2010 chooses them:

  1. Candidates are the enabled send connectors with an SMTP address space
     that matches the recipient's domain.
  2. The most specific match wins: C{contoso.com} beats C{*.contoso.com}
     (which matches contoso.com too), which beats C{*.com}, which beats C{*}.
  3. Then the lowest cost of the matching address space.
  4. Then a connector whose SourceTransportServers include this server.
  5. Then the lowest connector name (case-insensitively).

A connector this server is a source server of sends itself: through its
smart hosts (C{SmartHostConnectorDelivery}) or by MX lookup for the
recipient's domain (C{DnsConnectorDelivery}).  Any other connector is
reached by forwarding the message over SMTP to its first source server
(C{SmtpRelayWithinAdSite}), at L{forwardingTarget}.

Pure: no I/O, no reactor.
"""

from exmta.envelope import NextHop

SMART_HOST_CONNECTOR_DELIVERY = "SmartHostConnectorDelivery"
DNS_CONNECTOR_DELIVERY = "DnsConnectorDelivery"
SMTP_RELAY_WITHIN_AD_SITE = "SmtpRelayWithinAdSite"


def _serverName(server):
    return getattr(server, "name", server)


def _isSource(connector, server):
    if server is None:
        return False
    lowered = _serverName(server).lower()
    return any(source.lower() == lowered for source in connector.sourceTransportServers)


def _bestMatch(connector, domain):
    """
    @return: the (specificity, cost) of the best of C{connector}'s address
        spaces for C{domain} (most specific, then cheapest), or L{None}.
    """
    matches = [
        (specificity, -space.cost)
        for space in connector.addressSpaces
        if (specificity := space.specificity(domain)) is not None
    ]
    if not matches:
        return None
    specificity, negativeCost = max(matches)
    return specificity, -negativeCost


def chooseSendConnector(organization, server, domain):
    """
    The send connector for recipients in C{domain}.

    @param organization: the L{exmta.config.model.Organization}.
    @param server: the name of the local TransportServer (or the
        L{TransportServer}), or L{None} to ignore SourceTransportServers.
    @param domain: the recipient's domain.
    @return: the L{exmta.config.model.SendConnector}, or L{None} when no
        enabled connector's address space covers C{domain}.
    """

    def rank(candidate):
        connector, (specificity, cost) = candidate
        return (
            # max() of specificity: negate its parts for an ascending sort.
            -specificity[0],
            not specificity[1],
            cost,
            not _isSource(connector, server),
            connector.name.lower(),
            connector.name,
        )

    candidates = [
        (connector, match)
        for connector in organization.sendConnectors
        if connector.enabled and (match := _bestMatch(connector, domain)) is not None
    ]
    if not candidates:
        return None
    return min(candidates, key=rank)[0]


def nextHopFor(organization, server, domain):
    """
    Where this server sends recipients in C{domain}.

    @param server: the local TransportServer's name (or the L{TransportServer}).
    @return: an L{exmta.envelope.NextHop}, or L{None} when no send connector
        covers C{domain}: the caller fails the recipient with
        C{550 5.4.4 Unable to route}.
    """
    connector = chooseSendConnector(organization, server, domain)
    if connector is None:
        return None
    if _isSource(connector, server):
        if connector.smartHosts:
            return NextHop(SMART_HOST_CONNECTOR_DELIVERY, connector.name)
        return NextHop(
            DNS_CONNECTOR_DELIVERY,
            connector.name,
            domain=domain.strip().lower().rstrip("."),
        )
    return NextHop(
        SMTP_RELAY_WITHIN_AD_SITE,
        connector.name,
        server=connector.sourceTransportServers[0],
    )


def linkedNextHop(organization, server, receivedFrom):
    """
    Where a message received on a receive connector that a send
    connector's LinkedReceiveConnector names goes: all of it, to that
    connector's smart hosts, whatever its recipients.

    @param server: the local TransportServer's name (or the L{TransportServer}).
    @param receivedFrom: the message's C{receivedFrom} (its C{connector}
        and C{server}, see L{exmta.queue.spool}).
    @return: an L{exmta.envelope.NextHop}, or L{None} when the connector it
        came in on is linked to no enabled send connector.
    """
    identity = f"{receivedFrom.get('server', '')}\\{receivedFrom.get('connector', '')}".lower()
    for connector in organization.sendConnectors:
        linked = connector.linkedReceiveConnector
        if connector.enabled and linked is not None and linked.lower() == identity:
            if _isSource(connector, server):
                return NextHop(SMART_HOST_CONNECTOR_DELIVERY, connector.name)
            return NextHop(
                SMTP_RELAY_WITHIN_AD_SITE, connector.name, server=connector.sourceTransportServers[0]
            )
    return None


def forwardingTarget(organization, serverName):
    """
    Where the TransportServer C{serverName} takes mail forwarded to it by
    other servers of the organization: the first binding of its first
    enabled receive connector whose PermissionGroups include
    ExchangeServers, in org.ini order.  A wildcard binding (C{0.0.0.0},
    C{::}) is replaced by the server's Fqdn.

    @return: C{(host, port)}.
    @raise ValueError: the server is not defined or has no such connector.
    """
    server = None
    for candidate in organization.transportServers.values():
        if candidate.name.lower() == _serverName(serverName).lower():
            server = candidate
    if server is None:
        raise ValueError(f"no TransportServer is named {serverName!r}")
    for connector in organization.connectorsOf(server.name):
        if connector.enabled and "ExchangeServers" in connector.permissionGroups:
            for binding in connector.bindings:
                host = server.fqdn if binding.isWildcard else binding.host
                return (host, binding.port)
    raise ValueError(
        f"TransportServer {server.name} has no enabled ReceiveConnector whose "
        "PermissionGroups include ExchangeServers, so other servers cannot "
        "forward mail to it"
    )
