"""
C{twistd exmta}: command-line options to L{exmta.service.makeService}.
"""

import sys

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.python import usage

from exmta.errors import ConfigError
from exmta.service import makeService as makeServerService


class Options(usage.Options):
    synopsis = "[-c etc/org.ini] [--server NAME]"
    longdesc = (
        "Run one transport server of an exmta organization: its receive "
        "connectors, durable queue and local delivery, as org.ini describes."
    )
    optParameters = [
        ["config", "c", "etc/org.ini", "The organization's configuration file (org.ini)."],
        [
            "server",
            None,
            None,
            "Which TransportServer of the organization this process is. Default: "
            "the only one defined, else the one whose Fqdn is this host's name.",
        ],
    ]


class _StartOrExit(service.MultiService):
    """
    Turns a socket that cannot be bound into a one-line error and a failed
    start, instead of a traceback and a server that does not listen.
    """

    def privilegedStartService(self):
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            sys.stderr.write(
                f"exmta: cannot listen on {error.interface or '*'}:{error.port}: "
                f"{error.socketError}\n"
            )
            raise SystemExit(1)


def makeService(options):
    try:
        server = makeServerService(options["config"], options["server"])
    except ConfigError as error:
        sys.stderr.write(f"exmta: {error}\n")
        raise SystemExit(1)
    top = _StartOrExit()
    server.setServiceParent(top)
    return top
