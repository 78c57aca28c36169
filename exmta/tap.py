"""
C{twistd exmta}: command-line options to L{exmta.service.makeService}.

SIGHUP makes the server read org.ini again
(L{exmta.service.TransportServerService.reload}); the outcome is logged.
A server whose org.ini is on etcd (C{-c etcd://...}) reloads on its own
when the key changes.
"""

import signal
import sys

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.python import usage

from exmta import serverlog
from exmta.errors import ConfigError
from exmta.service import MAX_WORKERS, makeService as makeServerService


class Options(usage.Options):
    synopsis = "[-c etc/org.ini] [--server NAME] [--workers N] [--log-level LEVEL]"
    longdesc = (
        "Run one transport server of an exmta organization: its receive "
        "connectors, durable queue and local delivery, as org.ini describes."
    )
    optParameters = [
        [
            "config",
            "c",
            "etc/org.ini",
            "The organization's configuration: org.ini's path, or an etcd URL "
            "(etcd://127.0.0.1:2379/exmta/fabrikam) that the server follows.",
        ],
        [
            "server",
            None,
            None,
            "Which TransportServer of the organization this process is. Default: "
            "the only one defined, else the one whose Fqdn is this host's name.",
        ],
        [
            "workers",
            None,
            0,
            "Receive also in this many worker processes sharing the listening "
            "sockets, so SMTP sessions use more than one core. Default: 0.",
            int,
        ],
        [
            "log-level",
            None,
            "info",
            "debug adds a line per message accepted and sent to the server log "
            "(the message tracking log records them at any level): "
            + " or ".join(serverlog.LEVELS) + ". Default: info.",
        ],
    ]

    def postOptions(self):
        if not 0 <= self["workers"] <= MAX_WORKERS:
            # Each worker's spool part is numbered in its queue ids.
            raise usage.UsageError(f"--workers must be 0 to {MAX_WORKERS}")
        if self["log-level"] not in serverlog.LEVELS:
            raise usage.UsageError(
                f"--log-level must be one of {', '.join(serverlog.LEVELS)}"
            )


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

    def startService(self):
        try:
            super().startService()
        except ConfigError as error:
            sys.stderr.write(f"exmta: {error}\n")
            raise SystemExit(1)


class _ReloadOnHangup(service.Service):
    """
    While running, SIGHUP reloads the server's configuration.  The handler
    is installed before the server opens any socket, so a SIGHUP sent once
    it listens never meets the default action (which ends the process); a
    reload asked for before the reactor runs happens when it does.
    """

    def __init__(self, server):
        self.server = server
        self._installed = False
        self._previous = None

    def privilegedStartService(self):
        from twisted.internet import reactor

        super().privilegedStartService()
        if not self._installed:
            self._previous = signal.signal(
                signal.SIGHUP, lambda number, frame: reactor.callFromThread(self._reload)
            )
            self._installed = True

    def startService(self):
        self.privilegedStartService()
        super().startService()

    def _reload(self):
        try:
            self.server.reload()
        except ConfigError:
            pass  # logged by reload; the running configuration stays

    def stopService(self):
        super().stopService()
        if self._installed:
            signal.signal(signal.SIGHUP, self._previous or signal.SIG_DFL)
            self._installed = False


def makeService(options):
    # Before any service is made: receive workers take the level with them.
    serverlog.setLevel(options["log-level"])
    try:
        server = makeServerService(
            options["config"], options["server"], workers=options["workers"]
        )
    except ConfigError as error:
        sys.stderr.write(f"exmta: {error}\n")
        raise SystemExit(1)
    top = _StartOrExit()
    _ReloadOnHangup(server).setServiceParent(top)
    server.setServiceParent(top)
    return top
