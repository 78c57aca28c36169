"""
The Lmtp delivery agent: local recipients go over LMTP to a mail store
such as Dovecot (L{exmta.deliver.lmtp}).

    [TransportServer HubA]
    DeliveryAgent = Lmtp

    [DeliveryAgent Lmtp]
    Host = 127.0.0.1:24               ; or: Socket = /run/dovecot/lmtp
    ConnectionTimeout = 00:00:30      ; to connect (the default)
    ConnectionInactivityTimeout = 00:10:00  ; for each reply (the default)

C{Host} is an IP address or host name with an optional port (24 unless
given); C{Socket} a UNIX socket's path, relative to org.ini's folder unless
absolute.  One of them is required.
"""

import os

from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.plugin import IPlugin
from zope.interface import implementer

from exmta.config import values
from exmta.deliver.lmtp import LmtpDeliveryAgent
from exmta.errors import SettingError
from exmta.interfaces import IDeliveryAgentFactory

LMTP_PORT = 24
DAY = 86400


@implementer(IPlugin, IDeliveryAgentFactory)
class Lmtp:
    name = "Lmtp"

    _parsers = {
        "Host": values.smartHost,
        "Socket": str.strip,
        "ConnectionTimeout": values.timespan(1, DAY),
        "ConnectionInactivityTimeout": values.timespan(1, DAY),
    }

    def makeDeliveryAgent(self, settings, transportServer, reactor):
        known = {key.lower(): key for key in self._parsers}
        given = {}
        for key, value in settings.items():
            canonical = known.get(key.lower())
            if canonical is None:
                raise SettingError(key, "unknown key for Lmtp; known keys are: " + ", ".join(self._parsers))
            try:
                given[canonical] = self._parsers[canonical](value)
            except ValueError as error:
                raise SettingError(key, str(error)) from None
        if ("Host" in given) == ("Socket" in given):
            raise SettingError(
                "Socket" if "Socket" in given else None,
                "Lmtp needs one of Host = address[:port] or Socket = path",
            )
        connectTimeout = given.get("ConnectionTimeout", 30)
        if "Host" in given:
            host = given["Host"]
            port = host.port or LMTP_PORT
            endpoint = HostnameEndpoint(reactor, host.host, port, timeout=connectTimeout)
            where = f"[{host.host}]:{port}" if ":" in host.host else f"{host.host}:{port}"
        else:
            if not given["Socket"]:
                raise SettingError("Socket", "is empty; give the LMTP socket's path")
            folder = os.path.dirname(transportServer.origin.path)
            where = os.path.join(folder, os.path.expanduser(given["Socket"]))
            endpoint = UNIXClientEndpoint(reactor, where, timeout=connectTimeout)
        return LmtpDeliveryAgent(
            endpoint, where, transportServer.fqdn, given.get("ConnectionInactivityTimeout", 10 * 60)
        )


lmtp = Lmtp()
