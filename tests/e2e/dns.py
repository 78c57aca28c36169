"""
A DNS server for end-to-end tests: twisted.names answering from an
in-memory zone on 127.0.0.1, UDP and TCP on one port the kernel chose.

It runs in its own process, so an exmta under test (a twistd subprocess)
can use it through C{InternalDNSServers = 127.0.0.1:PORT}:

    python -m tests.e2e.dns zone.json

prints C{port N} once it answers, and serves until its standard input
closes or it is terminated.  The zone is JSON, one entry per name:

    {"smtpgateway1.contoso.com": {"A": ["127.0.0.1"]},
     "contoso.com": {"MX": [[10, "mx1.contoso.com"], [20, "mx2.contoso.com"]]},
     "nomail.example": {"MX": [[0, "."]]}}

with record types A, AAAA, MX (preference, exchange; C{"."} is a null MX,
RFC 7505), CNAME and TXT.  The server is authoritative for the root: a name
not listed is NXDOMAIN, a listed name without records of the type asked is
an empty NOERROR answer (so a domain with only A records has "no MX").
Each query is logged to standard error as C{query NAME TYPE}.
"""

import json
import os
import subprocess
import sys
import time

from tests.e2e.harness import REPOSITORY, STARTUP_TIMEOUT

TTL = 60


def _records(zone):
    from twisted.names import dns

    records = {}
    for name, types in zone.items():
        owner = name.rstrip(".").lower().encode("ascii")
        entries = records.setdefault(owner, [])
        for kind, values in types.items():
            kind = kind.upper()
            for value in values:
                if kind == "A":
                    entries.append(dns.Record_A(value, ttl=TTL))
                elif kind == "AAAA":
                    entries.append(dns.Record_AAAA(value, ttl=TTL))
                elif kind == "MX":
                    preference, exchange = value
                    exchange = "" if exchange == "." else exchange.rstrip(".")
                    entries.append(dns.Record_MX(preference, exchange.encode("ascii"), ttl=TTL))
                elif kind == "CNAME":
                    entries.append(dns.Record_CNAME(value.rstrip(".").encode("ascii"), ttl=TTL))
                elif kind == "TXT":
                    entries.append(dns.Record_TXT(value.encode("utf-8"), ttl=TTL))
                else:
                    raise ValueError(f"{name}: unsupported record type {kind}")
    return records


def _authority(zone):
    from twisted.names import authority, dns

    class ZoneAuthority(authority.FileAuthority):
        """
        The root zone, filled from a mapping instead of a file.
        """

        def loadFile(self, zone):
            self.soa = (
                b"",
                dns.Record_SOA(
                    mname=b"ns.test", rname=b"hostmaster.test", serial=1,
                    refresh=TTL, retry=TTL, expire=TTL, minimum=TTL, ttl=TTL,
                ),
            )
            self.records = _records(zone)

    return ZoneAuthority(zone)


def serve(zone, reactor, interface="127.0.0.1", attempts=20):
    """
    Listen on UDP and TCP, the same port on both.

    @return: the port.
    """
    from twisted.internet.error import CannotListenError
    from twisted.names import dns, server

    class LoggingFactory(server.DNSServerFactory):
        def handleQuery(self, message, protocol, address):
            for query in message.queries:
                sys.stderr.write(
                    f"query {query.name.name.decode('ascii', 'replace')} "
                    f"{dns.QUERY_TYPES.get(query.type, query.type)}\n"
                )
            return super().handleQuery(message, protocol, address)

    factory = LoggingFactory(authorities=[_authority(zone)])
    for _ in range(attempts):
        udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface=interface)
        port = udp.getHost().port
        try:
            reactor.listenTCP(port, factory, interface=interface)
        except CannotListenError:
            udp.stopListening()
            continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


def main(arguments):
    from twisted.internet import reactor, stdio
    from twisted.internet.protocol import Protocol

    with open(arguments[0]) as handle:
        zone = json.load(handle)
    port = serve(zone, reactor)

    class StopOnEOF(Protocol):
        def connectionLost(self, reason):
            if reactor.running:
                reactor.stop()

    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    stdio.StandardIO(StopOnEOF())
    reactor.run()


class DNSServer:
    """
    The test DNS server in a subprocess, serving C{zone} (the JSON shape
    above, as a dict).

    @ivar port: the UDP and TCP port on 127.0.0.1.
    @ivar address: C{127.0.0.1:PORT}, for org.ini's InternalDNSServers.
    @ivar log: the path of its query log.
    """

    def __init__(self, folder, zone):
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "zone.json")
        with open(path, "w") as handle:
            json.dump(zone, handle, indent=1)
        self.log = os.path.join(folder, "queries.log")
        self._logFile = open(self.log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.dns", path],
            cwd=REPOSITORY,
            env=dict(os.environ, PYTHONPATH=REPOSITORY, PYTHONUNBUFFERED="1"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._logFile,
        )
        line = self._readLine()
        if not line.startswith(b"port "):
            self.stop()
            raise AssertionError(f"DNS server did not start: {line!r}, {self.queries()!r}")
        self.port = int(line.split()[1])
        self.address = f"127.0.0.1:{self.port}"

    def _readLine(self):
        import selectors

        deadline = time.monotonic() + STARTUP_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(deadline - time.monotonic()):
                    return self.process.stdout.readline()
        return b""

    def queries(self):
        """
        @return: the queries answered so far, as C{"NAME TYPE"} strings.
        """
        with open(self.log, "rb") as handle:
            return [
                line[len(b"query "):].decode() for line in handle.read().splitlines()
                if line.startswith(b"query ")
            ]

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process.stdout.close()
        self._logFile.close()


if __name__ == "__main__":
    main(sys.argv[1:])
