"""
The server log's level for the lines exmta writes per message.

The message tracking log is the record of every message (Exchange writes
no per-message line elsewhere); the server log names each accepted and
each sent message only at C{debug} level, which is left out unless asked
for (C{twistd exmta --log-level debug}).  Formatting and writing such a
line cost more than the rest of the work of receiving a small message
bar its commit, so a line that is left out is dropped before it is
formatted: the loggers on the per-message paths (L{logger}) go through
one filter, whose level L{setLevel} changes for the whole process.

Other loggers are not filtered here: what they write is written, and
every line above C{debug} is written whatever the level.
"""

from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    LogLevel,
    Logger,
    PredicateResult,
    globalLogPublisher,
)
from zope.interface import implementer

# The names --log-level takes, lowest first; every level above is always
# written.
LEVELS = ("debug", "info")


@implementer(ILogFilterPredicate)
class _AtLeast:
    """
    Lets through the events at or above a level: one set look-up an event.
    """

    def __init__(self, name):
        self.set(name)

    def set(self, name):
        self.name = name
        self._levels = frozenset(
            level for level in LogLevel.iterconstants()
            if level is not LogLevel.debug or name == "debug"
        )

    def __call__(self, event):
        return PredicateResult.maybe if event["log_level"] in self._levels else PredicateResult.no


_predicate = _AtLeast("info")
_observer = FilteringLogObserver(globalLogPublisher, [_predicate])


def logger(namespace=None):
    """
    @return: a L{Logger} whose events below the process's level are
        dropped before any observer sees them; as a class attribute it
        names itself after its class, as L{Logger} does.
    """
    return Logger(namespace, observer=_observer)


def setLevel(name):
    """
    @param name: one of L{LEVELS}.
    @raise ValueError: for another name.
    """
    if name not in LEVELS:
        raise ValueError(f"{name!r} is not a log level ({', '.join(LEVELS)})")
    _predicate.set(name)


def level():
    """
    @return: the name of the process's level, as L{setLevel} takes it.
    """
    return _predicate.name
