"""
The embedding API: one transport server of an organization as a Twisted
service.

    from exmta import loadOrganization, makeService
    makeService(loadOrganization("etc/org.ini"), "HubA").setServiceParent(application)
"""

import socket

from twisted.application import service
from twisted.internet.defer import inlineCallbacks, maybeDeferred

from exmta.auth import portalFor
from exmta.auth.accounts import AccountStore
from exmta.auth.credentials import CredentialStore, checkCredentials
from exmta.config import loadOrganization
from exmta.deliver.maildir import MaildirDeliveryAgent
from exmta.errors import ConfigError
from exmta.protocollog import ProtocolLog
from exmta.queue.manager import QueueManager
from exmta.queue.spool import Spool
from exmta.receive.listener import ReceiveFactory, ReceiveService
from exmta.receive.tls import serverTLSOptions
from exmta.routing import Resolver, nextHopFor
from exmta.send import SmtpDelivery
from exmta.tracking import MessageTrackingLog


class TransportServerService(service.MultiService):
    """
    One transport server's services.  They stop one after the other, last
    started first (listeners, then the queue), and then the resources they
    shared are released: outbound connections and the queue folder's lock.
    """

    def __init__(self, name, closers):
        super().__init__()
        self.setName(name)
        self._closers = closers

    @inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        for child in reversed(list(self)):
            yield maybeDeferred(child.stopService)
        for close in self._closers:
            yield maybeDeferred(close)


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


def makeService(organization, server=None, reactor=None, resolver=None):
    """
    Build the services of one transport server: its receive connectors'
    listeners, the durable queue, local delivery and the send connectors.

    Everything that can be checked without binding a socket is checked
    here, so configuration errors stop a start before anything listens.

    @param organization: an L{exmta.config.model.Organization}, or the path
        of an org.ini.
    @param server: the TransportServer's name; see L{chooseServer}.
    @param reactor: the reactor to use; the global one by default.
    @param resolver: the L{twisted.names} resolver the send side looks names
        and MX records up with; by default one asking the TransportServer's
        InternalDNSServers, else the system's.
    @return: a L{TransportServerService} (a L{service.MultiService});
        attach it with C{setServiceParent}.
    @raise ConfigError: naming the file, line, section and key at fault.
    """
    if reactor is None:
        from twisted.internet import reactor
    if isinstance(organization, str):
        organization = loadOrganization(organization)
    transportServer = chooseServer(organization, server)
    accounts = AccountStore.open(organization.accountStorePath)
    credentials = CredentialStore.open(organization.credentialStorePath)
    checkCredentials(organization, credentials)
    connectors = organization.connectorsOf(transportServer.name)
    tlsOptions = serverTLSOptions(transportServer, connectors, reactor)
    spool = Spool.open(transportServer.queueDatabasePath, reactor)
    recipients = Resolver(organization)
    tracking = (
        MessageTrackingLog(transportServer.messageTrackingLogPath, reactor)
        if transportServer.messageTrackingLogEnabled
        else None
    )
    portals = {
        connector.identity: portalFor(organization, connector, accounts, reactor)
        for connector in connectors
    }
    factory = ReceiveFactory(
        organization,
        transportServer,
        portals,
        spool,
        recipients,
        tlsOptions,
        reactor,
        protocolLog=ProtocolLog(transportServer.receiveProtocolLogPath, "RECV", reactor),
        tracking=tracking,
    )

    remoteDelivery = SmtpDelivery(
        organization, transportServer, credentials, reactor, resolver=resolver
    )
    closers = [remoteDelivery.close, spool.close]
    if tracking is not None:
        closers.append(tracking.close)
    top = TransportServerService(f"exmta {transportServer.name}", closers)
    QueueManager(
        spool,
        recipients,
        MaildirDeliveryAgent(transportServer.mailboxDatabasePath, reactor),
        reactor,
        server=transportServer,
        postmaster=organization.postmasterAddressOf(transportServer.name),
        route=lambda address: nextHopFor(organization, transportServer.name, address.domain),
        remoteDelivery=remoteDelivery,
        trackingLog=tracking,
    ).setServiceParent(top)
    receive = ReceiveService(factory, reactor)
    receive.setName("receive")
    receive.setServiceParent(top)
    return top
