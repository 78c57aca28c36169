"""
The web console's settings from org.ini: Exchange 2010 serves its web
management (the ECP) from a virtual directory whose InternalUrl says where
it listens, so exmta reads the same noun::

    [EcpVirtualDirectory HubA]
    InternalUrl = https://127.0.0.1:8443/ecp/
    OrganizationManagement = administrator@fabrikam.com
    ViewOnlyOrganizationManagement = kim@fabrikam.com

The section's name is the TransportServer that serves the console; without
a section, no console.  The console listens only on a loopback address
until its login throttling and role groups are complete (issue 13), and
only over HTTPS.  C{OrganizationManagement} lists the accounts (user
principal names of the accounts file) that are members of Exchange's
"Organization Management" role group, and
C{ViewOnlyOrganizationManagement} those of "View-Only Organization
Management", who see every page and change nothing: only they may log on.
"""

import ipaddress
from urllib.parse import urlsplit

from exmta.config import values
from exmta.config.model import EcpVirtualDirectory

ECP_VIRTUAL_DIRECTORY_KEYS = {
    "InternalUrl": (str, None),
    "OrganizationManagement": (values.commaList, ()),
    "ViewOnlyOrganizationManagement": (values.commaList, ()),
    "Comment": (str, None),
}


def ecpVirtualDirectories(readers, servers):
    """
    @param readers: one C{_Reader} per C{[EcpVirtualDirectory]} section.
    @param servers: the TransportServers, by name.
    @return: {TransportServer name: L{EcpVirtualDirectory}}.
    @raise ConfigError: naming the file, line, section and key at fault.
    """
    directories = {}
    for reader in readers:
        name = reader.section.name
        server = {s.lower(): s for s in servers}.get(name.lower())
        if server is None:
            raise reader.error(
                f"names no TransportServer; the section's name is the server that "
                f"serves the console, one of: {', '.join(servers)}"
            )
        if server in directories:
            raise reader.error(f"a second EcpVirtualDirectory for {server}")
        if reader["InternalUrl"] is None:
            raise reader.error("is required in an EcpVirtualDirectory section", "InternalUrl")
        host, port = _internalUrl(reader)
        directories[server] = EcpVirtualDirectory(
            server=server,
            internalUrl=reader["InternalUrl"],
            host=host,
            port=port,
            organizationManagement=tuple(m.lower() for m in reader["OrganizationManagement"]),
            viewOnlyOrganizationManagement=tuple(
                m.lower() for m in reader["ViewOnlyOrganizationManagement"]
            ),
            origin=reader.origin,
        )
    return directories


def _internalUrl(reader):
    text = reader["InternalUrl"]
    parts = urlsplit(text.strip())
    if parts.scheme.lower() != "https":
        raise reader.error(
            f"{text!r} must be an https:// URL (the console is served over TLS only)",
            "InternalUrl",
        )
    try:
        address = ipaddress.ip_address(parts.hostname or "")
        port = parts.port
    except ValueError:
        raise reader.error(
            f"{text!r} must name a loopback IP address and a port, e.g. "
            "https://127.0.0.1:8443/ecp/",
            "InternalUrl",
        ) from None
    if not address.is_loopback:
        raise reader.error(
            f"{address} is not a loopback address; the console listens on "
            "127.0.0.0/8 or ::1 only",
            "InternalUrl",
        )
    if port is None:
        raise reader.error(f"{text!r} must give a port, e.g. https://127.0.0.1:8443/ecp/", "InternalUrl")
    if parts.path.rstrip("/").lower() != "/ecp":
        raise reader.error(f"{text!r}: the console's path is /ecp/", "InternalUrl")
    return str(address), port
