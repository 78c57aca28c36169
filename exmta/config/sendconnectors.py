"""
Send connectors from org.ini: Exchange 2010's New-SendConnector rules.

L{exmta.config.organization} reads each C{[SendConnector Name]} section
against its key schema (C{SEND_CONNECTOR_KEYS}, which takes in
L{SEND_OPTION_KEYS} from here); this module applies the rules between keys
and builds the L{SendConnector}s.  Errors name the file, line, section and
key, like every org.ini error.
"""

from exmta.config import values
from exmta.config.model import SendConnector
from exmta.config.receiveoptions import unsupportedKeys

ERROR_POLICIES = ("Default", "DowngradeDnsFailures", "DowngradeCustomFailures", "UpgradeCustomFailures")

SEND_OPTION_KEYS = {
    "ForceHELO": (values.boolean, False),
    "SourceIPAddress": (values.ipAddress, "0.0.0.0"),
    "ErrorPolicies": (values.flags(ERROR_POLICIES), None),
    "LinkedReceiveConnector": (str, None),
    # exmta's transport servers are one Active Directory site: a scoped
    # connector is usable by all of them, as an unscoped one is.
    "IsScopedConnector": (values.boolean, False),
}

# Parameter -> (Exchange's default as org.ini writes it, why exmta has no more).
UNSUPPORTED_SEND_PARAMETERS = {
    "DomainSecureEnabled": (
        "$false",
        "mutual TLS with the domains of Set-TransportConfig's TLSSendDomainSecureList "
        "is not implemented yet: exmta presents no client certificate",
    ),
    "IsCoexistenceConnector": (
        "$false",
        "it marks the connector of a hybrid deployment with Office 365; exmta has no "
        "hybrid configuration",
    ),
    "DomainController": (
        "$null",
        "exmta keeps its configuration in org.ini, not in Active Directory: there is no "
        "domain controller to read it from",
    ),
}

SEND_OPTION_KEYS.update(unsupportedKeys(UNSUPPORTED_SEND_PARAMETERS))


def sendConnectors(readers, servers, receiveConnectors=()):
    """
    @param readers: one C{_Reader} per C{[SendConnector]} section.
    @param servers: the TransportServers, by name.
    @param receiveConnectors: the L{exmta.config.model.ReceiveConnector}s,
        which LinkedReceiveConnector names.
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
        connectors.append(_sendConnector(reader, servers, receiveConnectors))
    linked = {}
    for reader, connector in zip(readers, connectors):
        if connector.linkedReceiveConnector is None:
            continue
        if connector.linkedReceiveConnector in linked:
            raise reader.error(
                f"{connector.linkedReceiveConnector} is already linked to SendConnector "
                f"{linked[connector.linkedReceiveConnector]!r}; a receive connector can be "
                "linked to one send connector",
                "LinkedReceiveConnector",
            )
        linked[connector.linkedReceiveConnector] = connector.name
    return tuple(connectors)


def _sendConnector(reader, servers, receiveConnectors):
    smartHosts = reader["SmartHosts"]
    dnsRouting = reader["DNSRoutingEnabled"]
    linked = _linkedReceiveConnector(reader, receiveConnectors, smartHosts, dnsRouting)
    spaces = () if linked is not None else _addressSpaces(reader)
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
    forceHelo = reader["ForceHELO"]
    if forceHelo and (requireTLS or auth & {"BasicAuth", "ExchangeServer"}):
        raise reader.error(
            "HELO offers neither STARTTLS nor AUTH: ForceHELO cannot be used with "
            "RequireTLS or SmartHostAuthMechanism BasicAuth or ExchangeServer",
            "ForceHELO",
        )
    policies = reader["ErrorPolicies"] or frozenset({"Default"})
    if "Default" in policies and len(policies) > 1:
        raise reader.error("Default must stand alone in ErrorPolicies", "ErrorPolicies")
    if {"DowngradeCustomFailures", "UpgradeCustomFailures"} <= policies:
        raise reader.error(
            "DowngradeCustomFailures and UpgradeCustomFailures are opposites; choose one",
            "ErrorPolicies",
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
        forceHELO=forceHelo,
        sourceIPAddress=reader["SourceIPAddress"],
        errorPolicies=policies - {"Default"},
        linkedReceiveConnector=linked,
        isScopedConnector=reader["IsScopedConnector"],
    )


def _linkedReceiveConnector(reader, receiveConnectors, smartHosts, dnsRouting):
    """
    @return: the identity of the receive connector LinkedReceiveConnector
        names, or L{None}.
    """
    name = reader["LinkedReceiveConnector"]
    if name is None or name.strip().lower() in ("", "$null"):
        if reader["AddressSpaces"] is None:
            raise reader.error(
                "is required in a SendConnector section, unless LinkedReceiveConnector is set",
                "AddressSpaces",
            )
        return None
    name = name.strip().strip("'\"")
    matches = [c for c in receiveConnectors if name.lower() in (c.name.lower(), c.identity.lower())]
    if len(matches) != 1:
        raise reader.error(
            f"no ReceiveConnector is named {name!r}" if not matches
            else f"{name!r} names receive connectors on several servers; write Server\\Name",
            "LinkedReceiveConnector",
        )
    rules = [
        (reader["AddressSpaces"] is not None, "AddressSpaces must not be set"),
        (dnsRouting or not smartHosts, "DNSRoutingEnabled must be $false with SmartHosts"),
        (reader["MaxMessageSize"] is not None, "MaxMessageSize must be unlimited"),
    ]
    for broken, rule in rules:
        if broken:
            raise reader.error(
                f"with a LinkedReceiveConnector, {rule} (everything received on "
                f"{matches[0].identity} goes to the smart hosts)",
                "LinkedReceiveConnector",
            )
    return matches[0].identity


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
