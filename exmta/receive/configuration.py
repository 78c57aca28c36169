"""
The receive side of a transport server made from org.ini: connectors,
portals with their credential checkers, the STARTTLS context, the
recipient resolver and the transport agents.  Nothing of the send side is
made or imported here; L{exmta.queueside.configure} builds this and the
queue and send side's parts, for the main process and for each worker
process (L{exmta.worker}).
"""

import functools

from exmta.agents import loadAgents
from exmta.auth import connectorChecker, loadCredentialCheckers, makePortal
from exmta.auth.certificates import ExchangeServerChecker
from exmta.auth.domainsecure import DomainSecureChecker, loadAuthorities
from exmta.receive.selection import selectConnector
from exmta.receive.tls import serverTLSOptions
from exmta.routing import Resolver


class ReceiveConfiguration:
    """
    What sessions take from org.ini.  Each session keeps the configuration
    it started under, so a reload (L{ReceiveFactory.reconfigure}) changes
    only the sessions that start after it.

    @ivar organization: the L{exmta.config.model.Organization}.
    @ivar server: the L{exmta.config.model.TransportServer}.
    @ivar connectors: the server's receive connectors.
    @ivar portals: a L{twisted.cred.portal.Portal} per connector identity.
    @ivar resolver: the L{exmta.interfaces.IRecipientResolver} RCPT asks.
    @ivar tlsOptions: the STARTTLS context factory, or L{None}.
    @ivar agents: the L{exmta.agents.AgentPipeline} of the enabled transport
        agents, or L{None} when there are none.
    """

    def __init__(self, organization, server, portals, resolver, tlsOptions, agents=None):
        self.organization = organization
        self.server = server
        self.connectors = organization.connectorsOf(server.name)
        self.portals = portals
        self.resolver = resolver
        self.tlsOptions = tlsOptions
        self.agents = agents
        # Choosing parses addresses against every connector's ranges: done
        # once per recent (local address, port, peer), not per connection.
        self.select = functools.lru_cache(maxsize=4096)(
            functools.partial(selectConnector, self.connectors)
        )


def configureReceive(organization, transportServer, reactor):
    """
    @param transportServer: the L{exmta.config.model.TransportServer} this
        process receives for.
    @return: the L{ReceiveConfiguration} its sessions start under.
    @raise ConfigError: naming the file, line, section and key at fault.
    """
    connectors = organization.connectorsOf(transportServer.name)
    checkers = loadCredentialCheckers(organization, connectors, reactor)
    tlsOptions = serverTLSOptions(transportServer, connectors, reactor)
    resolver = Resolver(organization)
    serverChecker = None
    if transportServer.tlsCertificateAuthorityPath is not None:
        serverChecker = ExchangeServerChecker(
            organization, transportServer.tlsCertificateAuthorityPath, reactor
        )
    partnerChecker = None
    # Read whenever it is set, so that a bad file shows at start, as the
    # other keys' mistakes do, not at the first partner's mail.
    if transportServer.domainSecureCertificateAuthorityPath is not None or any(
        connector.domainSecureEnabled for connector in connectors
    ):
        partnerChecker = DomainSecureChecker(loadAuthorities(transportServer), reactor)
    portals = {
        connector.identity: makePortal(
            organization, connector, connectorChecker(connector, checkers), serverChecker, partnerChecker
        )
        for connector in connectors
    }
    return ReceiveConfiguration(
        organization, transportServer, portals, resolver, tlsOptions, loadAgents(organization, reactor)
    )
