"""
Which receive connector handles a connection (Exchange 2010's rule).

Candidates are the enabled connectors whose Bindings match the local
address and port the connection arrived on and whose RemoteIPRanges
contain the peer.  A specific-address binding beats a wildcard one; then
the narrowest matching range wins.  Validation has already ensured that
ranges sharing a binding nest, so the winner is unambiguous.

Pure: no I/O, no reactor.
"""


def selectConnector(connectors, localHost, localPort, peerHost):
    """
    @param connectors: the L{exmta.config.model.ReceiveConnector}s of this server.
    @return: the connector for the connection, or L{None} if none matches.
    """
    best = None
    bestKey = None
    for connector in connectors:
        if not connector.enabled:
            continue
        bindings = [b for b in connector.bindings if b.matches(localHost, localPort)]
        if not bindings:
            continue
        ranges = [r for r in connector.remoteIPRanges if peerHost in r]
        if not ranges:
            continue
        specificBinding = any(not b.isWildcard for b in bindings)
        narrowest = min(r.size for r in ranges)
        key = (not specificBinding, narrowest, connector.name.lower())
        if bestKey is None or key < bestKey:
            best, bestKey = connector, key
    return best


def listeningAddresses(connectors):
    """
    The sockets to open for a set of connectors: one per distinct binding,
    except that a specific address whose port and IP version also have a
    wildcard binding is served by the wildcard socket (Linux will not bind
    both; connections are told apart by their local address anyway).

    @return: a sorted list of L{exmta.config.values.Binding}.
    """
    bindings = {b for c in connectors if c.enabled for b in c.bindings}
    wildcards = {(b.version, b.port) for b in bindings if b.isWildcard}
    return sorted(
        (b for b in bindings if b.isWildcard or (b.version, b.port) not in wildcards),
        key=lambda b: (b.port, b.version, b.host),
    )
