"""
Back pressure's levels and what they refuse: pure code, which the receive
side (in the main process and in every receive worker) and the resource
monitor (L{exmta.monitor.service}) share.

Each resource has three thresholds (L{exmta.config.monitoring.Thresholds}).
Its level rises to Medium at the Medium threshold and to High at the High
one; it falls back from High to Medium only below the Medium threshold,
and from Medium to Normal only below the Normal one.  The server's level is
the highest of its resources'.

At Medium, MAIL FROM from a session not authenticated as an Exchange
server or user (anonymous Internet mail, partners) is refused with
C{452 4.3.1 Insufficient system resources}; at High, every MAIL FROM is.
Connections are still accepted, and a transaction already past MAIL
finishes.
"""

from zope.interface import implementer

from exmta.errors import INSUFFICIENT_RESOURCES
from exmta.interfaces import IBackPressure

NORMAL = "Normal"
MEDIUM = "Medium"
HIGH = "High"
LEVELS = (NORMAL, MEDIUM, HIGH)

MB = 1024 * 1024
# Exchange's formula keeps this much of the queue's disk free.
DISK_RESERVE = 500 * MB
# And, as Postfix's queue_minfree, room for a message and a half.
MESSAGE_ROOM = 1.5

# The sessions Medium still serves: X-MS-Exchange-Organization-AuthAs of
# Exchange servers (Internal) and of authenticated users.
_TRUSTED = frozenset({"Internal", "Authenticated"})


def nextLevel(current, value, thresholds):
    """
    @param current: the resource's level now.
    @param value: its newest (or averaged) value.
    @param thresholds: its L{exmta.config.monitoring.Thresholds}, all set.
    @return: its new level.
    """
    if value >= thresholds.high:
        return HIGH
    if value >= thresholds.medium:
        return HIGH if current == HIGH else MEDIUM
    if value >= thresholds.normal and current != NORMAL:
        return MEDIUM
    return NORMAL


def diskThresholds(configured, size):
    """
    The thresholds of a filesystem of C{size} bytes: those configured,
    and where the High is 0 Exchange's C{100 * (size - 500 MB) / size}
    rounded down (never below 0), Medium 2 and Normal 4 points below.

    @param configured: the L{exmta.config.monitoring.Thresholds} of
        org.ini, L{None} where computed.
    @return: C{(high, medium, normal)}.
    """
    high = configured.high
    if high is None:
        high = max(0, (100 * (size - DISK_RESERVE)) // size) if size else 0
    medium = configured.medium if configured.medium is not None else max(0, high - 2)
    normal = configured.normal if configured.normal is not None else max(0, medium - 2)
    return high, medium, normal


def tarpitDelay(settings, refusedBefore):
    """
    How long the next C{452 4.3.1} of a session waits.

    @param settings: the L{exmta.config.monitoring.ResourceMonitoring}.
    @param refusedBefore: how many MAIL FROMs back pressure refused in the
        session so far.
    """
    delay = settings.tarpitStartDelay + refusedBefore * settings.tarpitDelayStep
    return min(delay, settings.maxTarpitDelay)


@implementer(IBackPressure)
class BackPressure:
    """
    The server's back pressure level as one process's sessions see it:
    set by the resource monitor in the main process, and by what the main
    process tells each receive worker.

    @ivar level: L{NORMAL}, L{MEDIUM} or L{HIGH}.
    @ivar settings: the L{exmta.config.monitoring.ResourceMonitoring}
        whose tarpit delays apply.
    """

    def __init__(self, settings, level=NORMAL):
        self.settings = settings
        self.level = level

    def mailRefusal(self, principal, refusedBefore):
        """
        See L{IBackPressure.mailRefusal}.
        """
        level = self.level
        if level == NORMAL or (level == MEDIUM and principal.authAs in _TRUSTED):
            return None
        return tarpitDelay(self.settings, refusedBefore), INSUFFICIENT_RESOURCES
