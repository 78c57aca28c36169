"""
Which TransportServer of an organization a process is.
"""

import socket

from exmta.errors import ConfigError


def chooseServer(organization, name=None, hostname=None):
    """
    Which TransportServer this process is: the one named, else the only one
    defined, else the one whose Fqdn is this host's name.

    @raise ConfigError: if that does not settle it.
    """
    servers = organization.transportServers
    if name is not None:
        for candidate in servers.values():
            if candidate.name.lower() == name.lower():
                return candidate
        raise ConfigError(
            f"no [TransportServer {name}] is defined; defined: "
            + (", ".join(servers) or "none"),
            organization.path,
        )
    if len(servers) == 1:
        return next(iter(servers.values()))
    if not servers:
        raise ConfigError(
            "defines no [TransportServer Name] section; add one with at least Fqdn",
            organization.path,
        )
    hostname = (hostname or socket.getfqdn()).lower().rstrip(".")
    for candidate in servers.values():
        if candidate.fqdn.lower() == hostname:
            return candidate
    raise ConfigError(
        f"defines several TransportServers ({', '.join(servers)}) and none has "
        f"Fqdn {hostname}; choose one with --server NAME",
        organization.path,
    )
