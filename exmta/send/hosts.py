"""
Where a next hop's SMTP servers are: smart hosts, MX hosts, or another
transport server of the organization, each as a list of L{Target}s to try
in order.

Names are resolved with an injected L{twisted.names} resolver (A records
first, then AAAA); IP literals are used as they are.  A host that failed a
little while ago (L{FailedHosts}) is tried after the others.
"""

import ipaddress
import socket
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.names import dns
from twisted.names.error import AuthoritativeDomainError, DNSNameError, DomainError

from exmta.envelope import Reply
from exmta.errors import ConnectionFailure, PermanentFailure

# How long a host that failed is tried last (Exchange's glitch memory).
FAILED_HOST_MEMORY = 10 * 60


@dataclass(frozen=True)
class Target:
    """
    One SMTP server to try.

    @ivar name: the host as listed (a smart host, an MX exchange, a
        transport server's Fqdn) or an IP literal: what TLS checks and logs
        show.
    @ivar address: the IP address to connect to.
    """

    name: str
    address: str
    port: int

    @property
    def isIPv6(self):
        return ":" in self.address

    def __str__(self):
        if self.name == self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.name}[{self.address}]:{self.port}"


class HostLookupFailed(Exception):
    """
    A host name gave no address; C{reply} says why.

    @ivar missing: L{True} if DNS answered that there is no address, L{False}
        if it could not answer.
    """

    def __init__(self, reply, missing):
        super().__init__(str(reply))
        self.reply = reply
        self.missing = missing


def isAddressLiteral(text):
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def smartHostParts(smartHost, defaultPort):
    """
    @param smartHost: an L{exmta.config.values.SmartHost} (C{host},
        C{port} or L{None}, C{isAddress}), or a string C{host[:port]}.
    @return: (host, port, isAddress).
    """
    if isinstance(smartHost, str):
        text = smartHost.strip()
        host, port = text, None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest.startswith(":"):
                port = int(rest[1:])
        elif text.count(":") == 1:
            host, _, portText = text.partition(":")
            port = int(portText)
        return host, port or defaultPort, isAddressLiteral(host)
    host = smartHost.host.strip("[]")
    isAddress = getattr(smartHost, "isAddress", None)
    if isAddress is None:
        isAddress = isAddressLiteral(host)
    return host, smartHost.port or defaultPort, bool(isAddress)


async def resolveHost(resolver, name, port):
    """
    @return: the L{Target}s of C{name}: its A records, then its AAAA records.
    @raise HostLookupFailed: when it has none.
    """
    if isAddressLiteral(name):
        address = name.strip("[]")
        return [Target(address, address, port)]
    found, problems = [], []
    for lookup, kind in ((resolver.lookupAddress, dns.A), (resolver.lookupIPV6Address, dns.AAAA)):
        try:
            answers, _, _ = await lookup(name)
        except Exception as error:  # the resolver's failure, whatever its class
            problems.append(error)
            continue
        for record in answers:
            if record.type == kind == dns.A:
                found.append(record.payload.dottedQuad())
            elif record.type == kind == dns.AAAA:
                found.append(socket.inet_ntop(socket.AF_INET6, record.payload.address))
    unique = list(dict.fromkeys(found))
    if unique:
        return [Target(name, address, port) for address in unique]
    if all(_isNameError(p) for p in problems):
        raise HostLookupFailed(Reply(451, "4.4.0", f"DNS: {name} has no A or AAAA record"), True)
    raise HostLookupFailed(
        Reply(451, "4.4.0", f"DNS query for {name} failed: {_describe(problems[-1])}"), False
    )


def _isNameError(error):
    # A name error from a server, or "no records" from an in-process
    # resolver (a hosts file, an authority): the name has no address.
    return isinstance(error, (DNSNameError, AuthoritativeDomainError)) or type(error) is DomainError


def _describe(error):
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def smartHostTargets(resolver, smartHosts, defaultPort):
    """
    @return: (targets, failures): the addresses of every smart host in the
        order listed, and (name, L{Reply}) for those that have none.
    """
    targets, failures = [], []
    for smartHost in smartHosts:
        host, port, _ = smartHostParts(smartHost, defaultPort)
        try:
            targets.extend(await resolveHost(resolver, host, port))
        except HostLookupFailed as failed:
            failures.append((host, failed.reply))
    return targets, failures


NULL_MX = Reply(556, "5.1.10", "Recipient address has null MX")


def nonexistentDomain(domain):
    return Reply(550, "5.4.4", f"SMTPSEND.DNS.NonExistentDomain; nonexistent domain {domain}")


async def mailExchangerTargets(resolver, domain, port):
    """
    The MX hosts of C{domain} by preference (RFC 5321 section 5.1): none
    means the domain itself; a null MX (RFC 7505) means no mail at all.

    @return: (targets, failures) as L{smartHostTargets}.
    @raise PermanentFailure: for a null MX or a domain that does not exist.
    @raise ConnectionFailure: when DNS cannot answer.
    """
    try:
        answers, _, _ = await resolver.lookupMailExchange(domain)
    except Exception as error:
        if _isNameError(error):
            raise PermanentFailure(nonexistentDomain(domain)) from None
        raise ConnectionFailure(
            Reply(451, "4.4.0", f"DNS query for the MX of {domain} failed: {_describe(error)}")
        ) from None
    exchanges = [
        (record.payload.preference, str(record.payload.name).rstrip("."))
        for record in answers
        if record.type == dns.MX
    ]
    named = [(preference, name) for preference, name in exchanges if name]
    if exchanges and not named:
        raise PermanentFailure(NULL_MX)
    if not named:
        named = [(0, domain)]
    named.sort(key=lambda pair: pair[0])
    targets, failures = [], []
    for _, name in dict.fromkeys(named):
        try:
            targets.extend(await resolveHost(resolver, name, port))
        except HostLookupFailed as failed:
            if not exchanges and failed.missing:
                # No MX, and the domain itself has no address: not a mail domain.
                raise PermanentFailure(nonexistentDomain(domain)) from None
            failures.append((name, failed.reply))
    return targets, failures


class FailedHosts:
    """
    Remembers targets that failed, so they are tried last for a while.
    """

    def __init__(self, clock, memory=FAILED_HOST_MEMORY):
        self._clock = clock
        self._memory = memory
        self._until = {}

    def _key(self, target):
        return (target.address, target.port)

    def mark(self, target):
        self._until[self._key(target)] = self._clock.seconds() + self._memory

    def clear(self, target):
        self._until.pop(self._key(target), None)

    def hasFailed(self, target):
        until = self._until.get(self._key(target))
        if until is None:
            return False
        if until <= self._clock.seconds():
            del self._until[self._key(target)]
            return False
        return True

    def order(self, targets):
        """
        @return: C{targets}, recently failed ones moved to the end, the order
            otherwise kept.
        """
        return sorted(targets, key=self.hasFailed)


def asDeferred(coroutine):
    return Deferred.fromCoroutine(coroutine)
