"""
Send connectors from org.ini: Exchange 2010's New-SendConnector rules.

L{exmta.config.organization} reads each C{[SendConnector Name]} section
against its key schema (C{SEND_CONNECTOR_KEYS}); this module applies the
rules between keys and builds the L{SendConnector}s.  Errors name the file,
line, section and key, like every org.ini error.
"""

from exmta.config.model import SendConnector


def sendConnectors(readers, servers):
    """
    @param readers: one C{_Reader} per C{[SendConnector]} section.
    @param servers: the TransportServers, by name.
    @return: a tuple of L{SendConnector}, in file order.
    @raise ConfigError: a rule is broken, or two connectors share a name
        (send connectors belong to the organization, not to one server).
    """
    connectors = []
    seen = {}
    for reader in readers:
        name = reader.section.name
        if name.lower() in seen:
            raise reader.error(
                f"a second SendConnector named {name!r} (the first is on line "
                f"{seen[name.lower()]}); names must be unique in the organization"
            )
        seen[name.lower()] = reader.section.line
        connectors.append(_sendConnector(reader, servers))
    return tuple(connectors)


def _sendConnector(reader, servers):
    spaces = _addressSpaces(reader)
    smartHosts = reader["SmartHosts"]
    dnsRouting = reader["DNSRoutingEnabled"]
    if smartHosts and dnsRouting:
        raise reader.error(
            "DNSRoutingEnabled must be $false when SmartHosts is set; add "
            "DNSRoutingEnabled = $false to route through the smart hosts",
            "DNSRoutingEnabled" if "DNSRoutingEnabled" in reader.given else "SmartHosts",
        )
    if not smartHosts and not dnsRouting:
        raise reader.error(
            "SmartHosts is required when DNSRoutingEnabled is $false",
            "SmartHosts" if "SmartHosts" in reader.given else "DNSRoutingEnabled",
        )
    for space in spaces:
        if not space.isSmtp and not smartHosts:
            raise reader.error(
                f"the {space.type} address space {space.text!r} can only be routed "
                "through SmartHosts",
                "AddressSpaces",
            )

    auth = _smartHostAuthMechanism(reader, smartHosts)
    credential = reader["AuthenticationCredential"]
    if "BasicAuth" in auth and credential is None:
        raise reader.error(
            "is required with SmartHostAuthMechanism BasicAuth: the name of a "
            "credential made with 'exmta credential set -c org.ini NAME USERNAME'",
            "AuthenticationCredential",
        )
    if credential is not None and "BasicAuth" not in auth:
        raise reader.error(
            "is used only with SmartHostAuthMechanism BasicAuth; remove it or "
            "set SmartHostAuthMechanism = BasicAuth",
            "AuthenticationCredential",
        )

    requireTLS, ignoreSTARTTLS = reader["RequireTLS"], reader["IgnoreSTARTTLS"]
    if requireTLS and ignoreSTARTTLS:
        raise reader.error("must be $false when RequireTLS is $true", "IgnoreSTARTTLS")
    level = reader["TlsAuthLevel"]
    if level is not None and not requireTLS:
        raise reader.error(
            "can be set only when RequireTLS is $true (and IgnoreSTARTTLS $false)",
            "TlsAuthLevel",
        )
    if reader["TlsDomain"] is not None and level != "DomainValidation":
        raise reader.error(
            "is used only with TlsAuthLevel DomainValidation", "TlsDomain"
        )

    return SendConnector(
        name=reader.section.name,
        usage=reader["Usage"],
        addressSpaces=spaces,
        smartHosts=smartHosts,
        smartHostAuthMechanism=auth,
        authenticationCredential=credential,
        sourceTransportServers=_sourceTransportServers(reader, servers),
        dnsRoutingEnabled=dnsRouting,
        port=reader["Port"],
        fqdn=reader["Fqdn"],
        requireTLS=requireTLS,
        tlsAuthLevel=level,
        tlsDomain=reader["TlsDomain"],
        ignoreSTARTTLS=ignoreSTARTTLS,
        maxMessageSize=reader["MaxMessageSize"],
        connectionInactivityTimeout=reader["ConnectionInactivityTimeOut"],
        useExternalDNSServersEnabled=reader["UseExternalDNSServersEnabled"],
        protocolLoggingLevel=reader["ProtocolLoggingLevel"],
        enabled=reader["Enabled"],
        origin=reader.origin,
    )


def _addressSpaces(reader):
    spaces = reader["AddressSpaces"]
    if not spaces:
        raise reader.error(
            "AddressSpaces is empty; give at least one, e.g. * for every domain",
            "AddressSpaces",
        )
    seen = {}
    for space in spaces:
        key = (space.type.lower(), space.domain.lower())
        if key in seen:
            raise reader.error(
                f"{space.text!r} repeats the address space {seen[key]!r}",
                "AddressSpaces",
            )
        seen[key] = space.text
    return spaces


def _smartHostAuthMechanism(reader, smartHosts):
    auth = reader["SmartHostAuthMechanism"]
    if auth is None:
        return frozenset({"None"})

    def fail(message):
        return reader.error(message, "SmartHostAuthMechanism")

    if not auth:
        raise fail("SmartHostAuthMechanism is empty; use None for no authentication")
    if "None" in auth and len(auth) > 1:
        raise fail("None must stand alone in SmartHostAuthMechanism")
    if "BasicAuthRequireTLS" in auth and "BasicAuth" not in auth:
        raise fail("BasicAuthRequireTLS requires BasicAuth as well: BasicAuth, BasicAuthRequireTLS")
    if len(auth) > 1 and auth != {"BasicAuth", "BasicAuthRequireTLS"}:
        raise fail(
            "the values are mutually exclusive (only BasicAuth, BasicAuthRequireTLS "
            "go together)"
        )
    if auth != {"None"} and not smartHosts:
        raise fail(
            f"{', '.join(sorted(auth))} is valid only with SmartHosts; a connector "
            "that routes by DNS uses None"
        )
    return auth


def _sourceTransportServers(reader, servers):
    names = reader["SourceTransportServers"]
    if names is None:
        if len(servers) != 1:
            raise reader.error(
                "SourceTransportServers is required when org.ini defines "
                + ("no [TransportServer]" if not servers else "several TransportServers"),
                "SourceTransportServers",
            )
        return (next(iter(servers)),)
    if not names:
        raise reader.error(
            "SourceTransportServers is empty; name at least one TransportServer",
            "SourceTransportServers",
        )
    canonical = {server.lower(): server for server in servers}
    chosen = []
    for name in names:
        server = canonical.get(name.lower())
        if server is None:
            raise reader.error(
                f"no [TransportServer {name}] is defined; defined: "
                + (", ".join(servers) or "none"),
                "SourceTransportServers",
            )
        if server in chosen:
            raise reader.error(f"{server} is listed twice", "SourceTransportServers")
        chosen.append(server)
    return tuple(chosen)
