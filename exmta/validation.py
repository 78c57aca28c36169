"""
What a server checks before it starts beyond org.ini itself, for the
tools that must refuse what a server would refuse (C{exmta check-config},
the Shell's Test-Config and every Shell change that names a plugin)
without building or importing a server.
"""

from exmta.agents import loadAgents
from exmta.auth import loadCredentialCheckers
from exmta.deliver import loadDeliveryAgent


def checkPlugins(organization, reactor):
    """
    Make, and drop, the transport agents, the credential checkers of every
    receive connector and the delivery agent of every TransportServer, as
    servers starting on C{organization} would: what C{exmta check-config}
    checks beyond org.ini itself.  Nothing listens or connects.

    @raise ConfigError: naming the file, line, section and key at fault.
    """
    loadAgents(organization, reactor)
    loadCredentialCheckers(organization, organization.receiveConnectors, reactor)
    for transportServer in organization.transportServers.values():
        loadDeliveryAgent(organization, transportServer, reactor)
