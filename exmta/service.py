"""
The embedding API: one transport server of an organization as a Twisted
service.

    from exmta import loadOrganization, makeService
    makeService(loadOrganization("etc/org.ini"), "HubA").setServiceParent(application)
"""

from twisted.application import service
from twisted.internet.defer import ensureDeferred, inlineCallbacks, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from exmta.admin.commands import AdminCommands
from exmta.admin.parts import PartsCommands
from exmta.admin.protocol import adminSocketPath
from exmta.admin.server import AdminService, AdminTLSService
from exmta.auth.accounts import AccountStore
from exmta.auth.certificates import ExchangeServerChecker
from exmta.auth.checkers import AccountChecker
from exmta.config import storageFor
from exmta.config.monitoring import resourceMonitoringOf
from exmta.config.storage import EtcdUnavailable, isEtcd
from exmta.configwatch import EtcdWatch
from exmta.console.site import consoleService
from exmta.errors import ConfigError
from exmta.metrics.observers import ReceiveObserver
from exmta.metrics.registry import LogCounting, ServerMetrics
from exmta.metrics.web import monitoringResource, monitoringService
from exmta.monitor.levels import HIGH
from exmta.monitor.service import ResourceMonitor
from exmta.protocollog import ProtocolLog
from exmta.queue.shadow import DiscardNotifications
from exmta.queue.spool import Spool
from exmta.queueside import buildQueueSide, configure
from exmta.receive.limits import ConnectionCounts
from exmta.receive.listener import ReceiveFactory, ReceiveService
from exmta.receive.selection import listeningAddresses
from exmta.receive.workerpool import MAX_WORKERS, WorkerPool
from exmta.tls import mutualServerOptions
from exmta.tracking import MessageTrackingLog, searchTrackingLog


_log = Logger()


class TransportServerService(service.MultiService):
    """
    One transport server's services.  They stop one after the other, last
    started first (the admin endpoint, listeners, then the queue), and then
    the resources they shared are released: outbound connections and the
    queue folder's lock.

    @ivar configuration: the L{exmta.queueside.Configuration} it runs under.
    """

    log = Logger()

    def __init__(self, name, closers, storage=None):
        super().__init__()
        self.setName(name)
        self._closers = closers
        self.storage = storage
        self.configuration = None
        self.watch = None
        self._parts = None

    @inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        for child in reversed(list(self)):
            yield maybeDeferred(child.stopService)
        for close in self._closers:
            yield maybeDeferred(close)

    def reload(self, text=None):
        """
        Read org.ini again and run under it: sessions, routing and sends
        that start from now on use the new configuration, those in progress
        finish under the old one; listeners open and close as the bindings
        changed.  Checked exactly as a start is, first: a configuration
        that fails changes nothing.

        What a restart alone changes is named in the result's
        C{RestartRequired}: the TransportServer's folders and log settings
        and its outbound connection caps.

        @param text: the org.ini text to run under, as the etcd watch hands
            it over; by default org.ini is read again (on etcd: the newest
            text the watch has seen, since the reactor must not wait on a
            blocking read).
        @return: C{{"Path": org.ini, "RestartRequired": [setting names]}}.
        @raise ConfigError: the configuration was refused; the running one
            stays.
        """
        old = self.configuration
        reactor, factory, manager, delivery, receive, workers, monitor = self._parts
        try:
            if text is None:
                text = self.watch.text if self.watch is not None else self.storage.read()[0]
            new = configure(self.storage.organization(text), old.transportServer.name, reactor)
        except ConfigError as error:
            self.log.error("reload refused, running configuration kept: {error}", error=str(error))
            raise
        try:
            receive.listen(new.connectors)
        except CannotListenError as error:
            problem = ConfigError(
                f"cannot listen on {error.interface or '*'}:{error.port} ({error.socketError}); "
                "the running configuration stays",
                old.organization.path,
            )
            self.log.error("reload refused, running configuration kept: {error}", error=str(problem))
            raise problem from None
        factory.reconfigure(new.receive)
        monitor.reconfigure(*_monitorSettings(new))
        delivery.reconfigure(new.organization, new.transportServer, new.credentials, new.identity)
        manager.reconfigure(new.recipients, new.route, server=new.transportServer,
                            postmaster=new.postmaster, agents=new.agents,
                            linkedRoute=new.linkedRoute)
        manager.deliveryAgent = new.deliveryAgent
        manager.shadows.reconfigure(new.organization.transportConfig)
        receive.closeUnused(new.connectors)
        if workers is not None:
            workers.replace(new.organization)
        self.configuration = new
        restart = [
            setting for setting, attribute in _RESTART_SETTINGS
            if getattr(old.transportServer, attribute) != getattr(new.transportServer, attribute)
        ]
        self.log.info(
            "reloaded {path}{restart}",
            path=new.organization.path,
            restart=f"; a restart is needed for {', '.join(restart)}" if restart else "",
        )
        if self.watch is not None:
            deferToThreadPool(
                reactor, reactor.getThreadPool(), self.storage.writeCache, text
            ).addErrback(lambda failure: self.log.failure("cannot keep the etcd cache", failure))
        return {"Path": new.organization.path, "RestartRequired": restart}

    def _stored(self, text):
        """
        The etcd watch saw a new text: run under it, or log why not.
        """
        try:
            self.reload(text)
        except ConfigError:
            pass  # logged by reload; the running configuration stays


# TransportServer settings a reload does not apply.
_RESTART_SETTINGS = (
    ("QueueDatabasePath", "queueDatabasePath"),
    ("MailboxDatabasePath", "mailboxDatabasePath"),
    ("MessageTrackingLogEnabled", "messageTrackingLogEnabled"),
    ("MessageTrackingLogPath", "messageTrackingLogPath"),
    ("ReceiveProtocolLogPath", "receiveProtocolLogPath"),
    ("SendProtocolLogPath", "sendProtocolLogPath"),
    ("MaxOutboundConnections", "maxOutboundConnections"),
    ("AdminBindings", "adminBindings"),
    ("MaxPerDomainOutboundConnections", "maxPerDomainOutboundConnections"),
)


def _monitorSettings(configuration):
    """
    @return: the arguments of L{ResourceMonitor.reconfigure}: the
        server's C{[EdgeTransport]} settings and its largest MaxMessageSize.
    """
    server = configuration.transportServer
    sizes = [c.maxMessageSize for c in configuration.connectors if c.server == server.name]
    return resourceMonitoringOf(configuration.organization, server.name), max(sizes, default=0)


def _readiness(top, receive, manager, monitor):
    """
    @return: C{(ready, details)}: ready when every receive binding
        listens, the queue is open and back pressure is not High; for an
        organization on etcd, the details say whether etcd answers.
    """
    wanted = set(listeningAddresses(top.configuration.connectors))
    listening = len(receive.ports) >= len(wanted) and receive.running
    details = {
        "receiveBindingsListening": listening,
        "queueOpen": manager.running,
        "backPressureLevel": monitor.level,
    }
    if top.watch is not None:
        # Not a reason to be unready: the server runs, and delivers, on its
        # last good configuration.
        details["etcdReachable"] = bool(top.watch.reachable)
    return listening and manager.running and monitor.level != HIGH, details


def _startingOrganization(location):
    """
    @return: the organization at C{location} (a file or etcd); when etcd
        cannot be reached, the copy of the last configuration this server
        ran, saying so in the log.
    """
    storage = storageFor(location)
    try:
        return storage.organization(storage.read()[0])
    except EtcdUnavailable as error:
        try:
            text = storage.readCache()
        except ConfigError as missing:
            raise ConfigError(
                f"{error.message}, and there is no cached configuration to start from "
                f"({missing.message}: {missing.path})",
                error.path,
            ) from None
        _log.warn(
            "{error}; starting on the cached configuration {cache}",
            error=str(error),
            cache=storage.cachePath,
        )
        return storage.organization(text)


def _refreshMetrics(metrics, manager, monitor, commands):
    """
    @param commands: the admin endpoint's commands.
    @return: what a scrape calls to set the gauges: from the queue
        manager's state at once or, for a queue in parts (L{PartsCommands}),
        from every part's answers (a Deferred).
    """
    if isinstance(commands, PartsCommands):

        def refresh():
            metrics.refresh(None, monitor)
            return ensureDeferred(commands.queueSummary()).addCallback(
                lambda summary: metrics.refreshQueues(*summary)
            )

        return refresh
    return lambda: metrics.refresh(manager.administration.state(), monitor)


def makeService(organization, server=None, reactor=None, resolver=None, workers=0):
    """
    Build the services of one transport server: its receive connectors'
    listeners, the durable queue, local delivery, the send connectors and,
    with an C{[EcpVirtualDirectory]} for the server, the web console.

    Everything that can be checked without binding a socket is checked
    here, so configuration errors stop a start before anything listens.

    @param organization: an L{exmta.config.model.Organization}, or where
        its org.ini is: a path or an etcd URL (L{exmta.config.storage}).
        On etcd the server follows the key and reloads on each change.
    @param server: the TransportServer's name; see
        L{exmta.config.servers.chooseServer}.
    @param reactor: the reactor to use; the global one by default.
    @param resolver: the L{twisted.names} resolver the send side looks names
        and MX records up with; by default one asking the TransportServer's
        InternalDNSServers, else the system's.
    @param workers: how many worker processes share this process's
        listening sockets, each a whole MTA for the messages it accepts,
        over its own spool part (L{exmta.receive.workerpool}); none by
        default, at most L{MAX_WORKERS}.
    @return: a L{TransportServerService} (a L{service.MultiService});
        attach it with C{setServiceParent}.
    @raise ConfigError: naming the file, line, section and key at fault.
    """
    if not 0 <= workers <= MAX_WORKERS:
        # Each worker's spool part is numbered in two hex digits.
        raise ValueError(f"workers must be 0 to {MAX_WORKERS}")
    if reactor is None:
        from twisted.internet import reactor
    if isinstance(organization, str):
        organization = _startingOrganization(organization)
    storage = storageFor(organization.path)
    configuration = configure(organization, server, reactor)
    transportServer = configuration.transportServer
    spool = Spool.open(transportServer.queueDatabasePath, reactor)
    tracking = (
        MessageTrackingLog(transportServer.messageTrackingLogPath, reactor)
        if transportServer.messageTrackingLogEnabled
        else None
    )
    monitoring = organization.monitorings.get(transportServer.name)
    metrics = None if monitoring is None else ServerMetrics(transportServer.name)
    # Rows for the workers, those of a reload's new generation, and those
    # of an older one still draining.
    connections = ConnectionCounts.create(1 + 3 * workers) if workers else None
    factory = ReceiveFactory(
        organization,
        transportServer,
        configuration.portals,
        spool,
        configuration.recipients,
        configuration.tlsOptions,
        reactor,
        protocolLog=ProtocolLog(transportServer.receiveProtocolLogPath, "RECV", reactor),
        tracking=tracking,
        agents=configuration.agents,
        connections=connections,
        observer=None if metrics is None else ReceiveObserver(metrics.count),
    )

    # With workers the outbound caps hold for the server, counted in the
    # same region as the inbound ones: this process sends in row 0.
    manager = buildQueueSide(
        configuration, spool, reactor, resolver=resolver, tracking=tracking, metrics=metrics,
        connections=connections,
    )
    remoteDelivery = manager.remoteDelivery
    closers = [remoteDelivery.close, spool.close]
    if tracking is not None:
        closers.append(tracking.close)
    if connections is not None:
        closers.append(connections.close)
    top = TransportServerService(f"exmta {transportServer.name}", closers, storage)
    manager.shadows.discards = factory.shadowDiscards = DiscardNotifications(
        spool.path, spool.instance
    )

    manager.setServiceParent(top)
    settings, maxMessageSize = _monitorSettings(configuration)
    logFolders = [
        transportServer.messageTrackingLogPath,
        transportServer.receiveProtocolLogPath,
        transportServer.sendProtocolLogPath,
    ]
    monitor = ResourceMonitor(
        settings, transportServer.queueDatabasePath, logFolders, maxMessageSize,
        manager.submissionBacklog, reactor,
    )
    monitor.setServiceParent(top)
    factory.backPressure = monitor.backPressure
    receive = ReceiveService(factory, reactor)
    receive.setName("receive")
    receive.setServiceParent(top)
    pool = None
    if workers:
        pool = WorkerPool(
            workers, receive, spool, connections, organization, transportServer.name, reactor
        )
        pool.setName("workers")
        pool.setServiceParent(top)
        monitor.onLevelChanged.append(pool.setBackPressure)
        if metrics is not None:
            pool.countsReceived = metrics.addCounts

    def searchTracking(**filters):
        path = top.configuration.transportServer.messageTrackingLogPath
        return deferToThreadPool(
            reactor, reactor.getThreadPool(), searchTrackingLog, path, **filters
        )

    # One object answers both endpoints; with receive workers owning parts
    # of the queue, a PartsCommands over this process's, which asks them.
    commands = AdminCommands(manager, top.reload, monitor.diagnosticInfo, searchTracking)
    if pool is not None:
        commands = PartsCommands(commands, pool.partAdminSockets, reactor)
    AdminService(adminSocketPath(transportServer), commands, reactor).setServiceParent(top)
    identity = configuration.identity
    if transportServer.adminBindings:
        checker = ExchangeServerChecker(
            organization, transportServer.tlsCertificateAuthorityPath, reactor
        )
        AdminTLSService(
            transportServer.adminBindings,
            commands,
            mutualServerOptions(identity.certificate, identity.privateKey, identity.authority),
            checker.authorize,
            reactor,
        ).setServiceParent(top)
    if metrics is not None:
        LogCounting(metrics).setServiceParent(top)
        monitoringService(
            monitoring.binding,
            monitoringResource(
                metrics,
                _refreshMetrics(metrics, manager, monitor, commands),
                lambda: _readiness(top, receive, manager, monitor),
            ),
            reactor,
        ).setServiceParent(top)
    directory = organization.ecpVirtualDirectories.get(transportServer.name)
    if directory is not None:
        accounts = AccountChecker(AccountStore.open(organization.accountStorePath), reactor)
        consoleService(
            directory,
            organization.path,
            accounts,
            configuration.tlsOptions,
            reactor,
            reload=top.reload,
        ).setServiceParent(top)
    if isEtcd(organization.path):
        storage.writeCache(organization.text)
        top.watch = EtcdWatch(storage, organization.text, top._stored, reactor)
        top.watch.setServiceParent(top)
    top.configuration = configuration
    top._parts = (reactor, factory, manager, remoteDelivery, receive, pool, monitor)
    return top
