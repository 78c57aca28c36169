"""
Failed logons counted over every session of a process, per client address
and per account, so that a password guesser is held back however many
connections it opens and whether or not it waits for the answers.

Each key has a leaky bucket, as Postfix's anvil counts rates:

  - a client address (an IPv4 address, or the /64 network of an IPv6 one,
    which a single host commonly has whole): L{SOURCE_LIMIT} (10) failed
    logons, draining one every L{SOURCE_LEAK} (a minute);
  - an account (the user name as given, lower-cased): L{ACCOUNT_LIMIT}
    (20) failed logons, draining one every L{ACCOUNT_LEAK} (five
    minutes).  Names that are no account are counted too, so that a
    refusal does not tell which accounts exist; like Active Directory's
    account lockout, guessing an account's password from many addresses
    locks its owner out too until the guessing stops.

While either bucket of a logon is full, the logon is refused without its
password being checked (the client hears 454 4.7.0, try again later), until
the bucket has drained by one.  A guesser from one address thus gets 10
guesses, then one a minute; an account gets 20, then one every five
minutes, from all addresses together.  A single address cannot lock an
account out: it is held back at 10.

A logon counts from the moment its password is handed to be checked until
the check says it was right (L{LogonAttempt.finished}); a check that
failed, or whose client hung up once it had started, stays counted
(L{LogonAttempt.failed}).  So parallel connections cannot overrun a limit,
and hanging up before the answer (to skip the tarpit) does not make a
guess free.

The counts live in the process's memory and are lost at restart.  Each
table holds at most L{MAX_KEYS} keys (a few megabytes); beyond that the key
used least recently is forgotten.
"""

import hashlib
import ipaddress
from collections import OrderedDict

from twisted.logger import Logger

SOURCE_LIMIT = 10
SOURCE_LEAK = 60.0
ACCOUNT_LIMIT = 20
ACCOUNT_LEAK = 300.0
MAX_KEYS = 100_000


def sourceKey(peerHost):
    """
    @return: what the failures of C{peerHost} are counted under: the
        address itself, or for IPv6 its /64 network.
    """
    try:
        address = ipaddress.ip_address(peerHost)
    except ValueError:
        return peerHost
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def accountKey(userName):
    """
    @param userName: the user name as the client gave it (L{bytes}).
    @return: a short digest of it lower-cased: what is kept in memory,
        whatever its length.
    """
    return hashlib.blake2b(userName.lower(), digest_size=16).digest()


class _Bucket:
    """
    The failed logons of one key: C{level} as of time C{at}, and the
    logons being checked now.
    """

    __slots__ = ("level", "at", "checking")

    def __init__(self, now):
        self.level = 0.0
        self.at = now
        self.checking = 0


class _Table:
    """
    The buckets of one kind of key, with their limit and leak.
    """

    def __init__(self, limit, leak, maxKeys):
        self.limit = limit
        self.leak = leak
        self._maxKeys = maxKeys
        self._buckets = OrderedDict()

    def __len__(self):
        return len(self._buckets)

    def bucket(self, key, now):
        """
        @return: the bucket of C{key}, drained up to C{now}.
        """
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(now)
            while len(self._buckets) >= self._maxKeys:
                self._buckets.popitem(last=False)
        self._buckets[key] = bucket
        self.drain(bucket, now)
        return bucket

    def drain(self, bucket, now):
        bucket.level = max(0.0, bucket.level - (now - bucket.at) / self.leak)
        bucket.at = now

    def full(self, bucket):
        """
        @return: whether one more logon would pass the limit.
        """
        return bucket.level + bucket.checking + 1 > self.limit

    def wait(self, bucket):
        """
        @return: seconds until C{bucket} takes a logon again, if nothing
            else fills it.
        """
        return max(0.0, (bucket.level + bucket.checking + 1 - self.limit) * self.leak)


class LogonThrottle:
    """
    The failed logons of one process; see the module docstring.
    """

    log = Logger()

    def __init__(self, clock, maxKeys=MAX_KEYS):
        """
        @param clock: an L{twisted.internet.interfaces.IReactorTime}.
        """
        self._clock = clock
        self._sources = _Table(SOURCE_LIMIT, SOURCE_LEAK, maxKeys)
        self._accounts = _Table(ACCOUNT_LIMIT, ACCOUNT_LEAK, maxKeys)

    def attempt(self, peerHost, userName):
        """
        Ask to check a password of C{userName} for a client at C{peerHost}.

        @param userName: L{bytes}, as the client gave it.
        @return: a L{LogonAttempt}, counted until it is L{finished
            <LogonAttempt.finished>}; or L{None} if the client's address or
            the account has failed too often: refuse the logon unchecked.
        """
        now = self._clock.seconds()
        source = self._sources.bucket(sourceKey(peerHost), now)
        account = self._accounts.bucket(accountKey(userName), now)
        if self._sources.full(source) or self._accounts.full(account):
            return None
        source.checking += 1
        account.checking += 1
        return LogonAttempt(self, peerHost, source, account)

    def _end(self, attempt, failed, accountName):
        now = self._clock.seconds()
        for table, bucket, what in (
            (self._sources, attempt._source, f"from {attempt.peerHost}"),
            (self._accounts, attempt._account, f"for {accountName or 'a user name'}"),
        ):
            table.drain(bucket, now)
            bucket.checking -= 1
            if not failed:
                continue
            bucket.level += 1
            # Said once, when failures alone fill the bucket, not at each
            # refusal that follows.
            if bucket.level - 1 <= table.limit - 1 < bucket.level:
                self.log.warn(
                    "refusing logons {what} for {seconds:.0f} s: {failures:.0f} failed "
                    "logons recently",
                    what=what,
                    seconds=table.wait(bucket),
                    failures=bucket.level,
                )


class LogonAttempt:
    """
    One logon whose password is being checked, counted against its client's
    address and its account until it ends.

    @ivar peerHost: the client's address.
    """

    def __init__(self, throttle, peerHost, source, account):
        self._throttle = throttle
        self.peerHost = peerHost
        self._source = source
        self._account = account
        self._ended = False

    def failed(self, accountName=None):
        """
        The password was wrong, or its check started and nobody waits for
        the answer: count it as a failed logon.

        @param accountName: the account's name if it is known to exist (it
            may then be logged), else L{None}.
        """
        self._endOnce(True, accountName)

    def finished(self):
        """
        The logon ended otherwise: the password was right, or it was never
        checked.
        """
        self._endOnce(False, None)

    def _endOnce(self, failed, accountName):
        if not self._ended:
            self._ended = True
            self._throttle._end(self, failed, accountName)
