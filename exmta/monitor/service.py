"""
The resource monitor of one transport server: Exchange 2010's back
pressure.  Every C{ResourceMonitoringInterval} it samples

  - C{DatabaseUsedSpace[folder]}: the used share of the queue folder's
    filesystem (and High whenever less than MaxMessageSize x 1.5 is free);
  - C{UsedDiskSpace[folder]}: the same of each filesystem holding the
    message tracking and protocol log folders;
  - C{PrivateBytes}: the server process's private memory (Linux's
    C{RssAnon}) as a share of the machine's, averaged over the last
    C{PrivateBytesHistoryDepth} samples;
  - C{QueueLength[SubmissionQueue]}: the messages waiting for or in their
    pass through the queue manager, averaged likewise;

moves each resource's level with hysteresis (L{exmta.monitor.levels}) and
sets the server's level, the highest of them, on its L{BackPressure},
which the receive side asks at each MAIL FROM.  Each change of the
server's level is logged once, as Exchange's events 15004 (increased) and
15005 (decreased) are, with every resource's value and level, and handed
to the C{onLevelChanged} callables (the receive workers hear it so).
"""

import os
from collections import deque

from twisted.application import service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from exmta.config.monitoring import Thresholds
from exmta.monitor.levels import (
    HIGH,
    LEVELS,
    MEDIUM,
    MESSAGE_ROOM,
    NORMAL,
    BackPressure,
    diskThresholds,
    nextLevel,
)

_DISABLED = {
    NORMAL: "none",
    MEDIUM: "mail submission from sessions not authenticated as Exchange servers or users",
    HIGH: "all mail submission",
}


def _existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


class _Resource:
    """
    One monitored resource: its newest value, its thresholds and level.
    """

    def __init__(self, name, depth=1):
        self.name = name
        self.level = NORMAL
        self.value = 0.0
        self.thresholds = (0, 0, 0)
        self._history = deque(maxlen=depth)

    def update(self):
        sample, self.thresholds, forced = self.sample()
        self._history.append(sample)
        self.value = sum(self._history) / len(self._history)
        high, medium, normal = self.thresholds
        level = nextLevel(self.level, self.value, Thresholds(high, medium, normal))
        self.level = HIGH if forced else level

    def describe(self):
        high, medium, normal = self.thresholds
        return (
            f"{self.name} = {self.value:.4g}{self.unit} [{self.level}] "
            f"[Normal={normal:g}{self.unit} Medium={medium:g}{self.unit} High={high:g}{self.unit}]"
        )

    def row(self):
        high, medium, normal = self.thresholds
        return {
            "Resource": self.name, "Value": round(self.value, 4), "Unit": self.unit.strip() or "messages",
            "Level": self.level, "NormalThreshold": normal, "MediumThreshold": medium,
            "HighThreshold": high,
        }


class DiskSpace(_Resource):
    """
    The used share of the filesystem holding C{path}.
    """

    unit = "%"

    def __init__(self, name, path, thresholds, room):
        super().__init__(name)
        self.path = path
        self.configured = thresholds
        self.room = room

    def sample(self):
        stat = os.statvfs(_existing(self.path))
        size = stat.f_blocks * stat.f_frsize
        free = stat.f_bavail * stat.f_frsize
        used = 100.0 * (size - free) / size if size else 100.0
        return used, diskThresholds(self.configured, size), free < self.room


class PrivateBytes(_Resource):
    """
    This process's private memory as a share of the machine's.
    """

    unit = "%"

    def __init__(self, thresholds, depth):
        super().__init__("PrivateBytes", depth)
        self.configured = thresholds
        self.total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def sample(self):
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    private = int(line.split()[1]) * 1024
                    break
            else:
                private = 0
        c = self.configured
        return 100.0 * private / self.total, (c.high, c.medium, c.normal), False


class SubmissionQueue(_Resource):
    """
    The messages accepted and waiting for, or in, their pass through the
    queue manager.
    """

    unit = ""

    def __init__(self, thresholds, depth, backlog):
        super().__init__("QueueLength[SubmissionQueue]", depth)
        self.configured = thresholds
        self.backlog = backlog

    def sample(self):
        c = self.configured
        return float(self.backlog()), (c.high, c.medium, c.normal), False


class ResourceMonitor(service.Service):
    """
    Samples a transport server's resources and sets its back pressure
    level.

    @ivar backPressure: the L{BackPressure} the receive side asks.
    @ivar resources: the monitored resources.
    @ivar onLevelChanged: callables, each called with the new level.
    """

    name = "resource monitor"
    log = Logger()

    def __init__(self, settings, queuePath, logPaths, maxMessageSize, backlog, reactor):
        """
        @param settings: the L{exmta.config.monitoring.ResourceMonitoring}.
        @param queuePath: the queue folder (QueueDatabasePath).
        @param logPaths: the log folders (message tracking, protocol logs).
        @param maxMessageSize: the largest MaxMessageSize of the server's
            receive connectors: the queue folder's filesystem is High
            whenever less than 1.5 times it is free.
        @param backlog: called with no arguments, the submission queue's
            length.
        """
        self.reactor = reactor
        self.backPressure = BackPressure(settings)
        self.onLevelChanged = []
        self._call = None
        self._queuePath, self._logPaths, self._backlog = queuePath, logPaths, backlog
        self.reconfigure(settings, maxMessageSize)

    def reconfigure(self, settings, maxMessageSize):
        """
        Monitor from now on with C{settings} (a reload), keeping the
        levels; a new C{ResourceMonitoringInterval} or
        C{EnableResourceMonitoring} applies at the next start.
        """
        queuePath, logPaths, backlog = self._queuePath, self._logPaths, self._backlog
        levels = {r.name: r.level for r in getattr(self, "resources", ())}
        self.settings = settings
        self.backPressure.settings = settings
        room = int(maxMessageSize * MESSAGE_ROOM)
        self.resources = [
            DiskSpace(f"DatabaseUsedSpace[{queuePath}]", queuePath, settings.databaseDiskSpace, room)
        ]
        devices = set()
        for path in logPaths:
            device = os.stat(_existing(path)).st_dev
            if device not in devices:
                devices.add(device)
                self.resources.append(
                    DiskSpace(f"UsedDiskSpace[{path}]", path, settings.loggingDiskSpace, 0)
                )
        self.resources.append(PrivateBytes(settings.privateBytes, settings.privateBytesHistoryDepth))
        self.resources.append(
            SubmissionQueue(settings.submissionQueue, settings.submissionQueueHistoryDepth, backlog)
        )
        for resource in self.resources:
            resource.level = levels.get(resource.name, NORMAL)

    @property
    def level(self):
        return self.backPressure.level

    def startService(self):
        super().startService()
        if self.settings.enabled:
            self._call = LoopingCall(self.sample)
            self._call.clock = self.reactor
            self._call.start(self.settings.interval, now=True).addErrback(
                lambda failure: self.log.failure("resource monitoring stopped", failure)
            )

    def stopService(self):
        super().stopService()
        if self._call is not None and self._call.running:
            self._call.stop()
        self._call = None

    def sample(self):
        """
        Sample every resource once and set the server's level.
        """
        for resource in self.resources:
            try:
                resource.update()
            except OSError as error:
                self.log.error(
                    "cannot sample {resource}: {error}", resource=resource.name, error=str(error)
                )
        level = max((r.level for r in self.resources), key=LEVELS.index)
        old = self.backPressure.level
        if level == old:
            return
        self.backPressure.level = level
        increased = LEVELS.index(level) > LEVELS.index(old)
        self.log.warn(
            "resource pressure {direction} from {old} to {backPressureLevel} (event {event}). "
            "Resources: {resources}. Refused: {disabled}",
            direction="increased" if increased else "decreased",
            old=old,
            backPressureLevel=level,
            event=15004 if increased else 15005,
            resources="; ".join(r.describe() for r in self.resources),
            disabled=_DISABLED[level],
        )
        for observer in list(self.onLevelChanged):
            observer(level)

    def diagnosticInfo(self):
        """
        What C{Get-ExchangeDiagnosticInfo -Process EdgeTransport -Component
        ResourceThrottling} shows.
        """
        return {
            "ResourceMonitoringEnabled": self.settings.enabled,
            "ResourceMonitoringInterval": self.settings.interval,
            "BackPressureLevel": self.backPressure.level,
            "Resources": [r.row() for r in self.resources],
        }
