"""
The console as a service of the transport server: an HTTPS site on the
C{[EcpVirtualDirectory]}'s InternalUrl, whose C{/ecp/} is
L{ConsoleResource}.
"""

from twisted.application import internet
from twisted.cred.portal import Portal
from twisted.logger import Logger
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


def consoleService(directory, configPath, checker, tlsOptions, reactor):
    """
    @param directory: the server's L{exmta.config.model.EcpVirtualDirectory}.
    @param configPath: the org.ini the console's cmdlets read.
    @param checker: the twisted.cred checker of the organization's accounts.
    @param tlsOptions: the server's TLS context factory (STARTTLS's).
    @return: a service listening on the InternalUrl's address and port.
    """
    portal = Portal(OrganizationManagementRealm(directory.organizationManagement), [checker])
    root = resource.Resource()
    root.putChild(b"ecp", ConsoleResource(configPath, portal, reactor))
    site = server.Site(root)
    site.displayTracebacks = False
    service = _ConsoleServer(
        directory,
        directory.port,
        site,
        tlsOptions,
        interface=directory.host,
        reactor=reactor,
    )
    service.setName("console")
    return service
