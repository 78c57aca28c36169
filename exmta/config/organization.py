"""
Load org.ini into an L{Organization}, applying Exchange 2010's defaults,
Usage presets and validation rules.  Every error is a L{ConfigError} naming
the file, line, section and key.
"""

import os
from dataclasses import replace

from exmta.auth import permissions
from exmta.config import ini, values
from exmta.config.ecp import ECP_VIRTUAL_DIRECTORY_KEYS, ecpVirtualDirectories
from exmta.config.monitoring import (
    EDGE_TRANSPORT_KEYS,
    MONITORING_KEYS,
    edgeTransports,
    monitorings,
)
from exmta.config.transportconfig import TRANSPORT_CONFIG_KEYS, transportConfig
from exmta.config.model import (
    AcceptedDomain,
    Mailbox,
    Organization,
    Origin,
    Permission,
    PluginSettings,
    ReceiveConnector,
    TransportAgent,
    TransportServer,
)
from exmta.config.receiveoptions import (
    RECEIVE_EXTENSION_KEYS,
    UNSUPPORTED_RECEIVE_PARAMETERS,
    receiveOptions,
    unsupportedKeys,
)
from exmta.config.sendconnectors import SEND_OPTION_KEYS
from exmta.config.sendconnectors import sendConnectors as _sendConnectors
from exmta.errors import ConfigError

KB = 1024
MB = 1024 * KB
GB = 1024 * MB
DAY = 86400

AUTH_MECHANISMS = (
    "None",
    "Tls",
    "Integrated",
    "BasicAuth",
    "BasicAuthRequireTLS",
    "ExchangeServer",
    "ExternalAuthoritative",
)
PERMISSION_GROUPS = (
    "None",
    "AnonymousUsers",
    "ExchangeUsers",
    "ExchangeServers",
    "ExchangeLegacyServers",
    "Partners",
    "Custom",
)
USAGES = ("Client", "Internal", "Internet", "Partner", "Custom")
SEND_USAGES = ("Custom", "Internal", "Internet", "Partner")
SMART_HOST_AUTH_MECHANISMS = (
    "None",
    "BasicAuth",
    "BasicAuthRequireTLS",
    "ExchangeServer",
    "ExternalAuthoritative",
)
TLS_AUTH_LEVELS = ("EncryptionOnly", "CertificateValidation", "DomainValidation")
PROTOCOL_LOGGING_LEVELS = ("None", "Verbose")
DOMAIN_TYPES = ("Authoritative", "InternalRelay", "ExternalRelay")

# Usage -> (PermissionGroups, AuthMechanism, default Bindings, default RemoteIPRanges)
USAGE_PRESETS = {
    "Client": (
        {"ExchangeUsers"},
        {"Tls", "BasicAuth", "BasicAuthRequireTLS", "Integrated"},
        "0.0.0.0:587",
        None,
    ),
    "Internal": (
        {"ExchangeServers", "ExchangeLegacyServers"},
        {"Tls", "ExchangeServer"},
        "0.0.0.0:25",
        None,
    ),
    "Internet": (
        {"AnonymousUsers"},
        {"Tls"},
        None,
        "0.0.0.0-255.255.255.255, ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ),
    "Partner": ({"Partners"}, {"Tls"}, None, None),
    "Custom": (set(), {"Tls"}, None, None),
}

# Key -> (parser, default).  A default of REQUIRED must be given; callables
# given as defaults are computed from the section's other values.
REQUIRED = object()

UNLIMITED_COUNT = values.integer(1, 2**31 - 1, unlimited=True)

TRANSPORT_SERVER_KEYS = {
    "Fqdn": (values.fqdn, REQUIRED),
    "QueueDatabasePath": (str, None),
    "MailboxDatabasePath": (str, None),
    "TlsCertificatePath": (str, None),
    "TlsPrivateKeyPath": (str, None),
    # The organization's certificate authority (New-ExchangeCertificate):
    # peers with a certificate it issued for a TransportServer's Fqdn are
    # Exchange servers; this server's own certificate must be one of them.
    "TlsCertificateAuthorityPath": (str, None),
    # Where the admin endpoint also listens, on TCP with mutual TLS, for
    # Shells elsewhere in the organization (Get-Queue -Server HubB).
    "AdminBindings": (values.bindings, None),
    # Set-TransportServer: retries and expiry, Exchange 2010's ranges.
    "MessageExpirationTimeout": (values.timespan(5, 90 * DAY), 2 * DAY),
    "DelayNotificationTimeout": (values.timespan(1, 30 * DAY), 4 * 3600),
    "MessageRetryInterval": (values.timespan(1, DAY), 60),
    "TransientFailureRetryCount": (values.integer(0, 15), 6),
    "TransientFailureRetryInterval": (values.timespan(1, 12 * 3600), 5 * 60),
    "OutboundConnectionFailureRetryInterval": (values.timespan(1, 20 * DAY), 10 * 60),
    "MaxOutboundConnections": (UNLIMITED_COUNT, 1000),
    "MaxPerDomainOutboundConnections": (UNLIMITED_COUNT, 20),
    # Logs, and where DSNs come from.
    "MessageTrackingLogEnabled": (values.boolean, True),
    "MessageTrackingLogPath": (str, None),
    "SendProtocolLogPath": (str, None),
    "ReceiveProtocolLogPath": (str, None),
    "ExternalPostmasterAddress": (str, None),
    "InternalDNSServers": (values.dnsServers, ()),
    "ExternalDNSServers": (values.dnsServers, ()),
    # The IDeliveryAgentFactory plugin that delivers to local mailboxes.
    "DeliveryAgent": (values.pluginName, "Maildir"),
}

ACCEPTED_DOMAIN_KEYS = {
    "DomainName": (values.domain, None),
    "DomainType": (values.choice(DOMAIN_TYPES), "Authoritative"),
}

MAILBOX_KEYS = {
    "PrimarySmtpAddress": (str, REQUIRED),
    "EmailAddresses": (values.commaList, ()),
    "UserPrincipalName": (str, None),
}

PERMISSION_KEYS = {
    "Identity": (str, REQUIRED),
    "User": (str, REQUIRED),
    "ExtendedRights": (values.commaList, REQUIRED),
    "AccessRights": (values.choice(("ExtendedRight",)), "ExtendedRight"),
    "Deny": (values.boolean, False),
}

RECEIVE_CONNECTOR_KEYS = {
    "Server": (str, None),
    "Usage": (values.choice(USAGES), "Custom"),
    "Bindings": (values.bindings, None),
    "RemoteIPRanges": (values.ipRanges, None),
    "AuthMechanism": (values.flags(AUTH_MECHANISMS), None),
    "PermissionGroups": (values.flags(PERMISSION_GROUPS), None),
    "Fqdn": (values.fqdn, None),
    "Banner": (str, None),
    "MaxMessageSize": (values.byteSize(64 * KB, 2 * GB), 10 * MB),
    "MaxRecipientsPerMessage": (values.integer(1, 512000), 200),
    "MaxHeaderSize": (values.byteSize(1, 2 * GB), 64 * KB),
    "MaxHopCount": (values.integer(1, 500), 30),
    "ConnectionTimeout": (values.timespan(1, DAY), 10 * 60),
    "ConnectionInactivityTimeout": (values.timespan(1, DAY), 5 * 60),
    "MaxInboundConnection": (values.integer(1, 2**31 - 1, unlimited=True), 5000),
    "MaxInboundConnectionPerSource": (values.integer(1, 10000, unlimited=True), 20),
    "MaxLogonFailures": (values.integer(0, 10), 3),
    "MaxProtocolErrors": (values.integer(0, 2**31 - 1, unlimited=True), 5),
    "AuthTarpitInterval": (values.timespan(0, 10 * 60), 5),
    "RequireTLS": (values.boolean, False),
    "BareLinefeedRejectionEnabled": (values.boolean, True),
    "ProtocolLoggingLevel": (values.choice(PROTOCOL_LOGGING_LEVELS), "None"),
    "Enabled": (values.boolean, True),
    "Comment": (str, None),
    # The ICheckerFactory plugins BasicAuth asks, in order; Accounts if unset.
    "CredentialCheckers": (values.pluginNames, None),
    **RECEIVE_EXTENSION_KEYS,
    **unsupportedKeys(UNSUPPORTED_RECEIVE_PARAMETERS),
}

SEND_CONNECTOR_KEYS = {
    "Usage": (values.choice(SEND_USAGES), "Custom"),
    # Required unless LinkedReceiveConnector is set (config/sendconnectors.py).
    "AddressSpaces": (values.addressSpaces, None),
    "SmartHosts": (values.smartHosts, ()),
    "DNSRoutingEnabled": (values.boolean, True),
    "SmartHostAuthMechanism": (values.flags(SMART_HOST_AUTH_MECHANISMS), None),
    "AuthenticationCredential": (values.credentialName, None),
    "SourceTransportServers": (values.commaList, None),
    "Port": (values.integer(1, 65535), 25),
    "Fqdn": (values.fqdn, None),
    "RequireTLS": (values.boolean, False),
    "TlsAuthLevel": (values.choice(TLS_AUTH_LEVELS), None),
    "TlsDomain": (values.domain, None),
    "IgnoreSTARTTLS": (values.boolean, False),
    "MaxMessageSize": (values.byteSize(0, 2 * GB, unlimited=True), 10 * MB),
    "ConnectionInactivityTimeOut": (values.timespan(1, DAY), 10 * 60),
    "UseExternalDNSServersEnabled": (values.boolean, False),
    "ProtocolLoggingLevel": (values.choice(PROTOCOL_LOGGING_LEVELS), "None"),
    "Enabled": (values.boolean, True),
    "Comment": (str, None),
    **SEND_OPTION_KEYS,
}

FAILURE_POLICIES = ("FailClosed", "FailOpen")

# The keys exmta reads itself; every other key of the section is the agent's.
TRANSPORT_AGENT_KEYS = {
    "Enabled": (values.boolean, True),
    "Priority": (values.integer(-(2**31), 2**31 - 1), REQUIRED),
    "Timeout": (values.timespan(1, DAY), 30),
    "FailurePolicy": (values.choice(FAILURE_POLICIES), "FailClosed"),
    "DisableAfterFailures": (values.integer(0, 2**31 - 1), 0),
    "Comment": (str, None),
}

# [CredentialChecker Name] and [DeliveryAgent Name]: every key but Comment
# is the plugin's.
PLUGIN_KEYS = {"Comment": (str, None)}

SECTION_KINDS = {
    "TransportServer": TRANSPORT_SERVER_KEYS,
    "AcceptedDomain": ACCEPTED_DOMAIN_KEYS,
    "Mailbox": MAILBOX_KEYS,
    "ADPermission": PERMISSION_KEYS,
    "ReceiveConnector": RECEIVE_CONNECTOR_KEYS,
    "SendConnector": SEND_CONNECTOR_KEYS,
    "TransportAgent": TRANSPORT_AGENT_KEYS,
    "CredentialChecker": PLUGIN_KEYS,
    "DeliveryAgent": PLUGIN_KEYS,
    "EcpVirtualDirectory": ECP_VIRTUAL_DIRECTORY_KEYS,
    "EdgeTransport": EDGE_TRANSPORT_KEYS,
    "Monitoring": MONITORING_KEYS,
    "TransportConfig": TRANSPORT_CONFIG_KEYS,
}

_PLUGIN_SECTION_KINDS = ("TransportAgent", "CredentialChecker", "DeliveryAgent")

DEFAULT_CREDENTIAL_CHECKERS = ("Accounts",)


class _Reader:
    """
    Parses one section's keys against a schema, remembering lines so later
    checks can point at the key they concern.
    """

    def __init__(self, path, section, schema):
        self.path = path
        self.section = section
        self.schema = {key.lower(): key for key in schema}
        self.values = {}
        self.given = set()
        for entry in section.entries:
            canonical = self.schema.get(entry.key.lower())
            if canonical is None:
                raise self.error(
                    f"unknown key for a {section.kind}; known keys are: "
                    + ", ".join(schema),
                    entry.key,
                    entry.line,
                )
            parser = schema[canonical][0]
            try:
                self.values[canonical] = parser(entry.value)
            except ValueError as problem:
                raise self.error(str(problem), canonical, entry.line) from None
            self.given.add(canonical)
        for canonical, (_, default) in schema.items():
            if canonical in self.values:
                continue
            if default is REQUIRED:
                raise self.error(f"is required in a {section.kind} section", canonical)
            self.values[canonical] = default

    @property
    def origin(self):
        keys = tuple(
            (self.schema[entry.key.lower()], entry.line) for entry in self.section.entries
        )
        return Origin(self.path, self.section.line, self.section.header, keys)

    def line(self, key):
        entry = self.section.get(key)
        return entry.line if entry is not None else self.section.line

    def error(self, message, key=None, line=None):
        if line is None:
            line = self.line(key) if key else self.section.line
        return ConfigError(message, self.path, line, self.section.header, key)

    def __getitem__(self, key):
        return self.values[key]


class _AgentReader(_Reader):
    """
    A [TransportAgent Name], [CredentialChecker Name] or [DeliveryAgent
    Name] section: exmta's own keys are checked like any section's, the
    others are kept (with their lines) for the plugin.
    """

    def __init__(self, path, section, schema):
        known = {key.lower() for key in schema}
        own = tuple(e for e in section.entries if e.key.lower() in known)
        super().__init__(path, ini.Section(section.kind, section.name, section.line, own), schema)
        self.section = section
        self.settings = tuple(
            (e.key, e.value) for e in section.entries if e.key.lower() not in known
        )

    @property
    def origin(self):
        keys = tuple((self.schema.get(e.key.lower(), e.key), e.line) for e in self.section.entries)
        return Origin(self.path, self.section.line, self.section.header, keys)


def _transportAgents(readers):
    """
    @return: the L{TransportAgent}s in Priority order.
    """
    _unique(readers, "TransportAgent")
    agents, priorities = [], {}
    for reader in readers:
        priority = reader["Priority"]
        if priority in priorities:
            raise reader.error(
                f"Priority {priority} is already that of [TransportAgent "
                f"{priorities[priority][0]}] (line {priorities[priority][1]}); "
                "priorities must be unique",
                "Priority",
            )
        priorities[priority] = (reader.section.name, reader.line("Priority"))
        agents.append(
            TransportAgent(
                name=reader.section.name,
                priority=priority,
                enabled=reader["Enabled"],
                timeout=reader["Timeout"],
                failurePolicy=reader["FailurePolicy"],
                disableAfterFailures=reader["DisableAfterFailures"],
                settings=reader.settings,
                origin=reader.origin,
            )
        )
    return tuple(sorted(agents, key=lambda agent: agent.priority))


def _pluginSections(readers, kind):
    """
    @return: the L{PluginSettings} of the [kind Name] sections, in file
        order; whether a plugin of that name exists, and takes those
        settings, is checked when it is made.
    """
    _unique(readers, kind)
    return tuple(
        PluginSettings(reader.section.name, reader.settings, reader.origin) for reader in readers
    )


def _relative(folder, path):
    return os.path.normpath(os.path.join(folder, os.path.expanduser(path)))


def parseOrganization(text, path, location=None, folder=None):
    """
    Validate org.ini's text.

    @param path: what errors name: the file, or the etcd key's URL.
    @param location: what the organization remembers to read itself again
        (L{Organization.path}); C{path} by default.
    @param folder: where relative paths start; C{path}'s folder by default.
    @return: an L{Organization}.
    @raise ConfigError: naming C{path}, the line, section and key at fault.
    """
    folder = folder or os.path.dirname(os.path.abspath(path))
    location = location or path
    readers = {kind: [] for kind in SECTION_KINDS}
    for section in ini.parse(text, path):
        schema = SECTION_KINDS.get(section.kind)
        if schema is None:
            kinds = {k.lower(): k for k in SECTION_KINDS}
            if section.kind.lower() in kinds:
                section = ini.Section(
                    kinds[section.kind.lower()], section.name, section.line, section.entries
                )
                schema = SECTION_KINDS[section.kind]
            else:
                raise ConfigError(
                    f"unknown section kind {section.kind!r}; known kinds are: "
                    + ", ".join(SECTION_KINDS),
                    path,
                    section.line,
                    section.header,
                )
        if not section.name and section.kind not in ("ADPermission", "TransportConfig"):
            raise ConfigError(
                f"a {section.kind} section needs a name: [{section.kind} Name]",
                path,
                section.line,
                section.header,
            )
        if section.kind in _PLUGIN_SECTION_KINDS:
            readers[section.kind].append(_AgentReader(path, section, schema))
        else:
            readers[section.kind].append(_Reader(path, section, schema))

    servers = _transportServers(readers["TransportServer"], folder)
    domains = _acceptedDomains(readers["AcceptedDomain"])
    organization = Organization(
        path=location, transportServers=servers, acceptedDomains=domains, folder=folder
    )
    mailboxes = _mailboxes(readers["Mailbox"], organization)
    connectors = _receiveConnectors(
        readers["ReceiveConnector"], readers["ADPermission"], servers
    )
    _checkConnectorOverlaps(connectors, readers["ReceiveConnector"])
    sendConnectors = _sendConnectors(readers["SendConnector"], servers, connectors)
    agents = _transportAgents(readers["TransportAgent"])
    return Organization(
        path=location,
        folder=folder,
        transportServers=servers,
        acceptedDomains=domains,
        mailboxes=mailboxes,
        receiveConnectors=connectors,
        sendConnectors=sendConnectors,
        transportAgents=agents,
        credentialCheckers=_pluginSections(readers["CredentialChecker"], "CredentialChecker"),
        deliveryAgents=_pluginSections(readers["DeliveryAgent"], "DeliveryAgent"),
        ecpVirtualDirectories=ecpVirtualDirectories(readers["EcpVirtualDirectory"], servers),
        edgeTransports=edgeTransports(readers["EdgeTransport"], servers),
        monitorings=monitorings(readers["Monitoring"], servers),
        transportConfig=transportConfig(readers["TransportConfig"]),
        text=text,
    )


def _unique(readers, what):
    seen = {}
    for reader in readers:
        name = reader.section.name.lower()
        if name in seen:
            raise reader.error(
                f"a second {what} named {reader.section.name!r} "
                f"(the first is on line {seen[name]}); names must be unique"
            )
        seen[name] = reader.section.line


def _transportServers(readers, folder):
    _unique(readers, "TransportServer")
    servers = {}
    for reader in readers:
        name = reader.section.name
        queue = reader["QueueDatabasePath"] or os.path.join("var", name, "queue")
        mailboxes = reader["MailboxDatabasePath"] or os.path.join("var", name, "mailboxes")
        certificate, key = reader["TlsCertificatePath"], reader["TlsPrivateKeyPath"]
        if (certificate is None) != (key is None):
            missing = "TlsPrivateKeyPath" if key is None else "TlsCertificatePath"
            raise reader.error(
                "TlsCertificatePath and TlsPrivateKeyPath go together; set both "
                "or neither (neither makes a self-signed certificate)",
                missing,
            )
        authority = reader["TlsCertificateAuthorityPath"]
        if authority is not None and certificate is None:
            raise reader.error(
                "TlsCertificateAuthorityPath needs TlsCertificatePath and TlsPrivateKeyPath: "
                "the certificate the organization issued this server "
                f"(New-ExchangeCertificate -Server {name})",
                "TlsCertificateAuthorityPath",
            )
        adminBindings = reader["AdminBindings"] or ()
        if adminBindings and authority is None:
            raise reader.error(
                "AdminBindings needs TlsCertificateAuthorityPath: only servers of the "
                "organization, proven by certificate, may reach the admin endpoint over TCP",
                "AdminBindings",
            )
        total = reader["MaxOutboundConnections"]
        perDomain = reader["MaxPerDomainOutboundConnections"]
        if total is not None and (perDomain is None or perDomain > total):
            raise reader.error(
                f"MaxPerDomainOutboundConnections ({_count(perDomain)}) must not "
                f"exceed MaxOutboundConnections ({_count(total)})",
                "MaxPerDomainOutboundConnections"
                if "MaxPerDomainOutboundConnections" in reader.given
                else "MaxOutboundConnections",
            )
        postmaster = reader["ExternalPostmasterAddress"]
        if postmaster is not None and postmaster.strip().lower() in ("", "$null"):
            postmaster = None
        if postmaster is not None:
            postmaster = _address(reader, "ExternalPostmasterAddress", postmaster)

        def logPath(key, *default):
            return _relative(folder, reader[key] or os.path.join("var", name, *default))

        servers[name] = TransportServer(
            name=name,
            fqdn=reader["Fqdn"],
            queueDatabasePath=_relative(folder, queue),
            mailboxDatabasePath=_relative(folder, mailboxes),
            tlsCertificatePath=certificate and _relative(folder, certificate),
            tlsPrivateKeyPath=key and _relative(folder, key),
            tlsCertificateAuthorityPath=authority and _relative(folder, authority),
            adminBindings=tuple(adminBindings),
            origin=reader.origin,
            messageExpirationTimeout=reader["MessageExpirationTimeout"],
            delayNotificationTimeout=reader["DelayNotificationTimeout"],
            messageRetryInterval=reader["MessageRetryInterval"],
            transientFailureRetryCount=reader["TransientFailureRetryCount"],
            transientFailureRetryInterval=reader["TransientFailureRetryInterval"],
            outboundConnectionFailureRetryInterval=reader[
                "OutboundConnectionFailureRetryInterval"
            ],
            maxOutboundConnections=total,
            maxPerDomainOutboundConnections=perDomain,
            messageTrackingLogEnabled=reader["MessageTrackingLogEnabled"],
            messageTrackingLogPath=logPath("MessageTrackingLogPath", "MessageTracking"),
            sendProtocolLogPath=logPath("SendProtocolLogPath", "ProtocolLog", "SmtpSend"),
            receiveProtocolLogPath=logPath(
                "ReceiveProtocolLogPath", "ProtocolLog", "SmtpReceive"
            ),
            externalPostmasterAddress=postmaster,
            internalDNSServers=reader["InternalDNSServers"],
            externalDNSServers=reader["ExternalDNSServers"],
            deliveryAgent=reader["DeliveryAgent"],
        )
    return servers


def _count(number):
    return "unlimited" if number is None else number


def _acceptedDomains(readers):
    _unique(readers, "AcceptedDomain")
    domains = []
    seen = {}
    for reader in readers:
        name = reader.section.name
        domainName = reader["DomainName"]
        if domainName is None:
            try:
                domainName = values.domain(name)
            except ValueError as problem:
                raise reader.error(
                    f"the section name is not a domain ({problem}); set DomainName"
                ) from None
        if domainName in seen:
            raise reader.error(
                f"{domainName} is already an accepted domain (line {seen[domainName]})",
                "DomainName" if reader["DomainName"] else None,
            )
        seen[domainName] = reader.section.line
        domains.append(
            AcceptedDomain(name, domainName, reader["DomainType"], reader.origin)
        )
    return tuple(domains)


def _address(reader, key, text):
    address = text.strip().lower()
    if address.lower().startswith("smtp:"):
        address = address[5:]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise reader.error(f"{text!r} is not an e-mail address", key)
    try:
        values.fqdn(domain)
    except ValueError as problem:
        raise reader.error(f"{text!r}: {problem}", key) from None
    return address


def _mailboxes(readers, organization):
    _unique(readers, "Mailbox")
    owners = {}
    mailboxes = []
    for reader in readers:
        primary = _address(reader, "PrimarySmtpAddress", reader["PrimarySmtpAddress"])
        addresses = {primary}
        for item in reader["EmailAddresses"]:
            addresses.add(_address(reader, "EmailAddresses", item))
        for address in sorted(addresses):
            key = "PrimarySmtpAddress" if address == primary else "EmailAddresses"
            accepted = organization.acceptedDomainFor(address.rpartition("@")[2])
            if accepted is None or accepted.domainType == "ExternalRelay":
                raise reader.error(
                    f"{address} is not in an Authoritative or InternalRelay "
                    "accepted domain; add an [AcceptedDomain] for its domain",
                    key,
                )
            if address in owners:
                raise reader.error(
                    f"{address} already belongs to the mailbox on line {owners[address]}",
                    key,
                )
            owners[address] = reader.section.line
        upn = reader["UserPrincipalName"] or primary
        mailboxes.append(
            Mailbox(reader.section.name, primary, frozenset(addresses), upn.lower(), reader.origin)
        )
    return tuple(mailboxes)


def _permissions(readers, connectors):
    """
    @return: a mapping of connector identity to its L{Permission}s.
    """
    byIdentity = {}
    for reader in readers:
        identity = reader["Identity"].strip()
        matches = [
            c
            for c in connectors
            if identity.lower() in (c.name.lower(), c.identity.lower())
        ]
        if not matches:
            raise reader.error(
                f"no ReceiveConnector is named '{identity}'", "Identity"
            )
        if len(matches) > 1:
            raise reader.error(
                f"'{identity}' names a connector on several servers; write "
                "Server\\Name, e.g. " + matches[0].identity,
                "Identity",
            )
        rights = set()
        for name in reader["ExtendedRights"]:
            right = permissions.canonicalRight(name)
            if right is None:
                raise reader.error(
                    f"{name!r} is not an extended right exmta knows; known rights are: "
                    + ", ".join(permissions.EXTENDED_RIGHTS),
                    "ExtendedRights",
                )
            rights.add(right)
        permission = Permission(
            matches[0].identity,
            reader["User"].strip(),
            frozenset(rights),
            reader["Deny"],
            reader.origin,
        )
        byIdentity.setdefault(matches[0].identity, []).append(permission)
    return byIdentity


def _receiveConnectors(readers, permissionReaders, servers):
    connectors = []
    seen = {}
    for reader in readers:
        connector = _receiveConnector(reader, servers)
        key = connector.identity.lower()
        if key in seen:
            raise reader.error(
                f"a second ReceiveConnector '{connector.identity}' (the first is "
                f"on line {seen[key]}); names must be unique per server"
            )
        seen[key] = reader.section.line
        connectors.append(connector)
    granted = _permissions(permissionReaders, connectors)
    return tuple(
        replace(connector, permissions=tuple(granted.get(connector.identity, ())))
        for connector in connectors
    )


def _receiveConnector(reader, servers):
    name = reader.section.name
    server = reader["Server"]
    if server is None:
        if len(servers) != 1:
            raise reader.error(
                "Server is required when org.ini defines "
                + ("no [TransportServer]" if not servers else "several TransportServers"),
                "Server",
            )
        server = next(iter(servers))
    matched = [s for s in servers if s.lower() == server.lower()]
    if not matched:
        raise reader.error(
            f"no [TransportServer {server}] is defined; defined: "
            + (", ".join(servers) or "none"),
            "Server",
        )
    transportServer = servers[matched[0]]
    usage = reader["Usage"]
    groups, mechanisms, defaultBindings, defaultRanges = USAGE_PRESETS[usage]

    bindings = reader["Bindings"]
    if bindings is None:
        if defaultBindings is None:
            raise reader.error(f"Bindings is required with Usage {usage}", "Bindings")
        bindings = values.bindings(defaultBindings)
    if not bindings:
        raise reader.error("Bindings is empty; give at least one IP:port", "Bindings")

    ranges = reader["RemoteIPRanges"]
    if ranges is None:
        if defaultRanges is None:
            raise reader.error(
                f"RemoteIPRanges is required with Usage {usage}", "RemoteIPRanges"
            )
        ranges = values.ipRanges(defaultRanges)
    if not ranges:
        raise reader.error("RemoteIPRanges is empty", "RemoteIPRanges")

    auth = reader["AuthMechanism"]
    auth = frozenset(mechanisms) if auth is None else auth
    _checkAuthMechanism(reader, auth)

    permissionGroups = reader["PermissionGroups"]
    permissionGroups = frozenset(groups) if permissionGroups is None else permissionGroups
    if "None" in permissionGroups and len(permissionGroups) > 1:
        raise reader.error(
            "None must stand alone in PermissionGroups", "PermissionGroups"
        )
    permissionGroups = permissionGroups - {"None"}
    if "ExternalAuthoritative" in auth and "ExchangeServers" not in permissionGroups:
        raise reader.error(
            "AuthMechanism ExternalAuthoritative requires PermissionGroups to "
            "include ExchangeServers",
            "PermissionGroups" if reader["PermissionGroups"] is not None else "AuthMechanism",
        )
    if reader["RequireTLS"] and "Tls" not in auth:
        raise reader.error(
            "RequireTLS $true needs Tls in AuthMechanism", "RequireTLS"
        )
    checkers = reader["CredentialCheckers"]
    if checkers is not None and "BasicAuth" not in auth:
        # Nothing would ask them: say so rather than ignore the key.
        raise reader.error(
            "CredentialCheckers check BasicAuth logins; add BasicAuth to "
            "AuthMechanism or remove CredentialCheckers",
            "CredentialCheckers",
        )
    if "BasicAuth" in auth:
        checkers = checkers or DEFAULT_CREDENTIAL_CHECKERS

    banner = reader["Banner"]
    if banner is not None:
        banner = banner.strip().strip("'\"")
        if not banner.startswith("220"):
            raise reader.error(
                "a Banner must start with 220, e.g. '220 mail.fabrikam.com'", "Banner"
            )
    timeout, inactivity = reader["ConnectionTimeout"], reader["ConnectionInactivityTimeout"]
    if inactivity >= timeout:
        raise reader.error(
            f"ConnectionInactivityTimeout ({values.formatTimespan(inactivity)}) must "
            f"be less than ConnectionTimeout ({values.formatTimespan(timeout)})",
            "ConnectionInactivityTimeout"
            if "ConnectionInactivityTimeout" in reader.given
            else "ConnectionTimeout",
        )
    return ReceiveConnector(
        name=name,
        server=transportServer.name,
        usage=usage,
        bindings=bindings,
        remoteIPRanges=ranges,
        authMechanism=auth,
        permissionGroups=permissionGroups,
        fqdn=reader["Fqdn"] or transportServer.fqdn,
        banner=banner,
        maxMessageSize=reader["MaxMessageSize"],
        maxRecipientsPerMessage=reader["MaxRecipientsPerMessage"],
        maxHeaderSize=reader["MaxHeaderSize"],
        maxHopCount=reader["MaxHopCount"],
        connectionTimeout=timeout,
        connectionInactivityTimeout=inactivity,
        maxInboundConnection=reader["MaxInboundConnection"],
        maxInboundConnectionPerSource=reader["MaxInboundConnectionPerSource"],
        maxLogonFailures=reader["MaxLogonFailures"],
        maxProtocolErrors=reader["MaxProtocolErrors"],
        authTarpitInterval=reader["AuthTarpitInterval"],
        requireTLS=reader["RequireTLS"],
        bareLinefeedRejectionEnabled=reader["BareLinefeedRejectionEnabled"],
        enabled=reader["Enabled"],
        origin=reader.origin,
        protocolLoggingLevel=reader["ProtocolLoggingLevel"],
        credentialCheckers=checkers or (),
        **receiveOptions(reader),
    )


def _checkAuthMechanism(reader, auth):
    def fail(message):
        return reader.error(message, "AuthMechanism")

    if not auth:
        raise fail("AuthMechanism is empty; use None for no authentication")
    if "None" in auth and len(auth) > 1:
        raise fail("None must stand alone in AuthMechanism")
    if "BasicAuthRequireTLS" in auth and not {"BasicAuth", "Tls"} <= auth:
        raise fail("BasicAuthRequireTLS requires BasicAuth and Tls as well")
    if "ExternalAuthoritative" in auth and not auth <= {"ExternalAuthoritative", "Tls"}:
        raise fail("ExternalAuthoritative can only be combined with Tls")


def _checkConnectorOverlaps(connectors, readers):
    """
    Exchange's rule: connectors of one server that share a binding must
    differ in RemoteIPRanges, and their ranges may overlap only when one
    contains the other, so the most specific match is never ambiguous.
    """
    readerOf = {id(c): r for c, r in zip(connectors, readers)}
    for index, first in enumerate(connectors):
        for second in connectors[index + 1 :]:
            # A specific binding always beats a wildcard one, so only
            # connectors on the very same binding compete by range.  Disabled
            # connectors count too: enabling one must not make org.ini invalid.
            shared = [y for y in second.bindings if y in first.bindings]
            if first.server != second.server or not shared:
                continue
            for a in first.remoteIPRanges:
                for b in second.remoteIPRanges:
                    same = (a.version, a.first, a.last) == (b.version, b.first, b.last)
                    if same:
                        raise readerOf[id(second)].error(
                            f"{b} on {shared[0]} is already the range of "
                            f"ReceiveConnector {first.name!r} (line {first.origin.line}) "
                            "on the same binding; a binding and range pair must be unique",
                            "RemoteIPRanges",
                        )
                    if a.overlaps(b) and not (a.contains(b) or b.contains(a)):
                        raise readerOf[id(second)].error(
                            f"{b} partly overlaps {a} of ReceiveConnector {first.name!r} "
                            f"(line {first.origin.line}) on a shared binding; ranges may "
                            "overlap only when one contains the other",
                            "RemoteIPRanges",
                        )
