"""
How exmta hashes passwords, and how many it checks at once.

Hashes are argon2id with OWASP's parameters for servers: 19 MiB of memory,
two passes, one lane (C{m=19456,t=2,p=1}), about 25 ms of one core per
check.  A server checks a password at every AUTH, and under a guessing
flood it checks them back to back: argon2-cffi's default (RFC 9106's "low
memory" profile, 64 MiB, three passes, four lanes each on a thread of its
own) costs four times the memory and eight times the CPU per check, which
a flood turns into hundreds of megabytes and seconds of waiting for
everyone.  A hash names its own parameters, so hashes made before this
choice still verify, at their own cost; C{exmta account set} writes the
new ones.

Checks run in a L{VerificationPool} of L{THREADS} threads, separate from
the reactor's thread pool (which the queue and delivery use), with at most
L{WAITING} checks waiting for a thread: the memory of checking is bounded
(two checks of 19 MiB at a time) and so is the wait of a client whose
check is queued (about 0.4 s).  A check that would wait beyond that is
refused at once with L{VerifierBusy} (the client hears 454 4.7.0, try
later), and a waiting check whose client has gone is dropped before it
starts (cancel its Deferred).  Each process has its own pool: a server with
N receive workers checks up to N times L{THREADS} passwords at once.
"""

import functools
import secrets
import threading
import weakref
from collections import deque

import argon2
from argon2.exceptions import VerificationError
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

THREADS = 2
WAITING = 32


def hashPassword(password):
    """
    @param password: L{str} or L{bytes}, not empty.
    @return: the argon2id hash string of C{password}, freshly salted.
    """
    return HASHER.hash(password)


@functools.cache
def _dummyHash():
    """
    A hash no password matches, made with the same parameters as new ones,
    so that checking an unknown account costs what checking a known one
    does and timing does not tell which accounts exist.
    """
    return HASHER.hash(secrets.token_hex(32))


def verifyPassword(hashed, password):
    """
    Check a password against an argon2 hash, slowly: call it in a thread.

    @param hashed: the hash string, or L{None} for an unknown account,
        which costs a check all the same (see L{_dummyHash}).
    @param password: L{str} or L{bytes}.
    @return: L{True} if there is a hash and the password matches it.
    """
    try:
        return HASHER.verify(hashed or _dummyHash(), password) and hashed is not None
    except VerificationError:
        return False


class VerifierBusy(Exception):
    """
    Every thread of the verification pool is busy and its line is full.
    """


class VerificationDropped(CancelledError):
    """
    A check was cancelled while it waited for a thread: it never ran.
    (Cancelled once running, it fails with plain L{CancelledError}: the
    password has been checked, whatever the caller hears.)
    """


class VerificationPool:
    """
    A fixed number of threads for slow password checks, and a bounded line
    of checks waiting for one, in the order they came.

    @ivar running: how many checks are running now.
    @ivar waiting: how many are waiting for a thread.
    """

    def __init__(self, reactor, threads=THREADS, waiting=WAITING):
        self._reactor = reactor
        self._size = threads
        self._lineLength = waiting
        self._line = deque()
        self.running = 0
        self._threads = ThreadPool(threads, threads, "exmta password checks")
        # A check in progress must not keep a process from exiting.
        self._threads.threadFactory = functools.partial(threading.Thread, daemon=True)

    @property
    def waiting(self):
        return len(self._line)

    def run(self, function, *arguments):
        """
        Call C{function(*arguments)} in one of the pool's threads.

        @return: a Deferred firing with its result; failing at once with
            L{VerifierBusy} if the line is full.  Cancelling it before the
            call starts removes it from the line (L{VerificationDropped}).
        """
        if self.running >= self._size and len(self._line) >= self._lineLength:
            return fail(VerifierBusy())
        check = Deferred(self._drop)
        self._line.append((check, function, arguments))
        self._startWaiting()
        return check

    def _drop(self, check):
        for entry in self._line:
            if entry[0] is check:
                self._line.remove(entry)
                check.errback(VerificationDropped())
                return

    def _startWaiting(self):
        while self.running < self._size and self._line:
            check, function, arguments = self._line.popleft()
            if not self._threads.started:
                self._threads.start()
                self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)
            self.running += 1
            ran = deferToThreadPool(self._reactor, self._threads, function, *arguments)
            ran.addBoth(self._finished, check)

    def stop(self):
        """
        Stop the threads, once the checks running have ended (the reactor's
        shutdown does).
        """
        if self._threads.started:
            self._threads.stop()

    def _finished(self, result, check):
        self.running -= 1
        self._startWaiting()
        if check.called:
            return
        if isinstance(result, Failure):
            check.errback(result)
        else:
            check.callback(result)


_pools = weakref.WeakKeyDictionary()


def verificationPool(reactor):
    """
    @return: the L{VerificationPool} of C{reactor}'s process, made at the
        first call: one per process, shared by every credential checker.
    """
    pool = _pools.get(reactor)
    if pool is None:
        pool = _pools[reactor] = VerificationPool(reactor)
    return pool
