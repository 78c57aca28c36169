"""
The console as a service of the transport server: an HTTPS site on the
C{[EcpVirtualDirectory]}'s InternalUrl, whose C{/ecp/} is
L{ConsoleResource}.
"""

from twisted.application import internet, service
from twisted.cred.portal import Portal
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server

from exmta.console.resource import ConsoleResource, OrganizationManagementRealm

log = Logger()


class _ConsoleServer(internet.SSLServer):
    def __init__(self, directory, *arguments, **keywords):
        super().__init__(*arguments, **keywords)
        self.directory = directory

    def privilegedStartService(self):
        super().privilegedStartService()
        address = self._port.getHost()
        log.info(
            "console listening on https://{host}:{port}/ecp/ for {server}",
            host=address.host if ":" not in address.host else f"[{address.host}]",
            port=address.port,
            server=self.directory.server,
        )


class _ShellThread(service.Service):
    """
    The one thread the console's Shell commands run in, one after
    another, as an administrator's commands run in one Shell.
    """

    def __init__(self, reactor):
        self.pool = ThreadPool(1, 1, name="console-shell")
        self.reactor = reactor

    def startService(self):
        super().startService()
        self.pool.start()

    def stopService(self):
        super().stopService()
        self.pool.stop()

    def run(self, function):
        return deferToThreadPool(self.reactor, self.pool, function)


def consoleService(directory, configPath, checker, tlsOptions, reactor, reload=None):
    """
    @param directory: the server's L{exmta.config.model.EcpVirtualDirectory}.
    @param configPath: the org.ini the console's cmdlets read.
    @param checker: the twisted.cred checker of the organization's accounts.
    @param tlsOptions: the server's TLS context factory (STARTTLS's).
    @param reload: called after each change made in the console, to have
        the running server read org.ini again.
    @return: a service listening on the InternalUrl's address and port.
    """
    portal = Portal(
        OrganizationManagementRealm(
            directory.organizationManagement, directory.viewOnlyOrganizationManagement
        ),
        [checker],
    )
    top = service.MultiService()
    top.setName("console")
    shell = _ShellThread(reactor)
    shell.setServiceParent(top)
    root = resource.Resource()
    root.putChild(
        b"ecp", ConsoleResource(configPath, portal, reactor, runInThread=shell.run, reload=reload)
    )
    site = server.Site(root)
    site.displayTracebacks = False
    listening = _ConsoleServer(
        directory,
        directory.port,
        site,
        tlsOptions,
        interface=directory.host,
        reactor=reactor,
    )
    listening.setServiceParent(top)
    return top
