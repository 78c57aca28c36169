"""
A transport server's operations settings from org.ini: back pressure, the
resource monitor Exchange 2010 configures in EdgeTransport.exe.config, and
where the Prometheus metrics and health endpoints listen, which Exchange
has no noun for::

    [EdgeTransport HubA]
    EnableResourceMonitoring = $true
    ResourceMonitoringInterval = 00:00:02
    PercentageDatabaseDiskSpaceUsedHighThreshold = 0
    PercentagePrivateBytesHighThreshold = 75

    [Monitoring HubA]
    Binding = 127.0.0.1:9425

Each section's name is the TransportServer it is for.  Without an
C{[EdgeTransport]} section a server runs with Exchange's defaults; without
a C{[Monitoring]} section it serves no metrics and no health endpoints.

The C{[EdgeTransport]} keys are those of EdgeTransport.exe.config
(C{<add key="..." value="..."/>}), read and checked like every other key:

  - C{PercentageDatabaseDiskSpaceUsed*Threshold}: the used share of the
    queue folder's filesystem; C{PercentageDatabaseLoggingDiskSpaceUsed*}:
    that of the log folders'.  A High of 0 (the default) is Exchange's
    formula, C{100 * (size - 500 MB) / size} rounded down; a Medium or
    Normal of 0 is 2 or 4 points below the High.
  - C{PercentagePrivateBytes*Threshold}: the server's private memory as
    a share of the machine's (75, 73 and 71), averaged over the last
    C{PrivateBytesHistoryDepth} samples.
  - C{SubmissionQueue*Threshold}: messages accepted and waiting for or in
    their pass through the queue manager (4000, 2000 and 1000), averaged
    over the last C{SubmissionQueueHistoryDepth} samples.
  - C{TarpitStartDelay}, C{TarpitDelayStep}, C{MaxTarpitDelay}: how long
    a session waits for each C{452 4.3.1} to its MAIL FROM: the first after
    the start delay, each next one a step longer, up to the longest.

Percentages may have decimals.  A Normal must not be above its Medium, nor
a Medium above its High.
"""

from dataclasses import dataclass

from exmta.config import values

MB = 1024 * 1024


def percentage(low):
    """
    A share in percent from C{low} to 100, decimals allowed (C{75},
    C{0.5}).
    """

    def parse(text):
        try:
            number = float(text.strip().rstrip("%"))
        except ValueError:
            raise ValueError(f"{text!r} is not a percentage; write e.g. 75 or 0.5") from None
        if not low <= number <= 100:
            raise ValueError(f"{number:g} is out of range; it must be {low:g} to 100")
        return number

    return parse


_COMPUTED = percentage(0)
_SHARE = percentage(0.001)
_LENGTH = values.integer(1, 2**31 - 1)
_DEPTH = values.integer(1, 10000)

EDGE_TRANSPORT_KEYS = {
    "EnableResourceMonitoring": (values.boolean, True),
    "ResourceMonitoringInterval": (values.timespan(1, 3600), 2),
    "PercentageDatabaseDiskSpaceUsedHighThreshold": (_COMPUTED, 0),
    "PercentageDatabaseDiskSpaceUsedMediumThreshold": (_COMPUTED, 0),
    "PercentageDatabaseDiskSpaceUsedNormalThreshold": (_COMPUTED, 0),
    "PercentageDatabaseLoggingDiskSpaceUsedHighThreshold": (_COMPUTED, 0),
    "PercentageDatabaseLoggingDiskSpaceUsedMediumThreshold": (_COMPUTED, 0),
    "PercentageDatabaseLoggingDiskSpaceUsedNormalThreshold": (_COMPUTED, 0),
    "PercentagePrivateBytesHighThreshold": (_SHARE, 75),
    "PercentagePrivateBytesMediumThreshold": (_SHARE, 73),
    "PercentagePrivateBytesNormalThreshold": (_SHARE, 71),
    "PrivateBytesHistoryDepth": (_DEPTH, 30),
    "SubmissionQueueHighThreshold": (_LENGTH, 4000),
    "SubmissionQueueMediumThreshold": (_LENGTH, 2000),
    "SubmissionQueueNormalThreshold": (_LENGTH, 1000),
    "SubmissionQueueHistoryDepth": (_DEPTH, 300),
    "TarpitStartDelay": (values.timespan(0, 600), 1),
    "TarpitDelayStep": (values.timespan(0, 600), 1),
    "MaxTarpitDelay": (values.timespan(0, 600), 5),
    "Comment": (str, None),
}

MONITORING_KEYS = {
    "Binding": (values.binding, values.binding("127.0.0.1:9425")),
    "Comment": (str, None),
}


@dataclass(frozen=True)
class Thresholds:
    """
    The three levels of one resource: at or above C{high} it is High; at
    or above C{medium} Medium, and it comes back down only below
    C{normal} (Medium) or below C{medium} (High).  L{None}: computed from
    the filesystem's size (L{exmta.monitor.levels.diskThresholds}).
    """

    high: float | None
    medium: float | None
    normal: float | None


@dataclass(frozen=True)
class ResourceMonitoring:
    """
    One TransportServer's C{[EdgeTransport]} settings (Exchange's defaults
    when it has no section).
    """

    server: str
    enabled: bool = True
    interval: int = 2
    databaseDiskSpace: Thresholds = Thresholds(None, None, None)
    loggingDiskSpace: Thresholds = Thresholds(None, None, None)
    privateBytes: Thresholds = Thresholds(75, 73, 71)
    privateBytesHistoryDepth: int = 30
    submissionQueue: Thresholds = Thresholds(4000, 2000, 1000)
    submissionQueueHistoryDepth: int = 300
    tarpitStartDelay: int = 1
    tarpitDelayStep: int = 1
    maxTarpitDelay: int = 5


@dataclass(frozen=True)
class Monitoring:
    """
    Where one TransportServer serves C{/metrics}, C{/health/live} and
    C{/health/ready} (L{exmta.metrics}).
    """

    server: str
    binding: values.Binding


def _serverOf(reader, servers, kind, seen):
    name = reader.section.name
    server = {s.lower(): s for s in servers}.get(name.lower())
    if server is None:
        raise reader.error(
            f"names no TransportServer; the section's name is the server it is for, "
            f"one of: {', '.join(servers)}"
        )
    if server in seen:
        raise reader.error(f"a second {kind} section for {server}")
    return server


def _thresholds(reader, prefix, computed):
    keys = [f"{prefix}{level}Threshold" for level in ("High", "Medium", "Normal")]
    high, medium, normal = (reader[key] for key in keys)
    if computed:
        high, medium, normal = (value or None for value in (high, medium, normal))
    checked = [(keys[0], high), (keys[1], medium), (keys[2], normal)]
    for (upperKey, upper), (lowerKey, lower) in zip(checked, checked[1:]):
        if upper is not None and lower is not None and lower > upper:
            raise reader.error(
                f"{lowerKey} ({lower:g}) must not be above {upperKey} ({upper:g})",
                lowerKey if lowerKey in reader.given else upperKey,
            )
    if computed and high is None and (medium is not None or normal is not None):
        # Computed from the filesystem, a High could end up below them.
        raise reader.error(
            f"set {keys[0]} too when setting {keys[1]} or {keys[2]}",
            keys[1] if medium is not None else keys[2],
        )
    return Thresholds(high, medium, normal)


def edgeTransports(readers, servers):
    """
    @param readers: one C{_Reader} per C{[EdgeTransport]} section.
    @param servers: the TransportServers, by name.
    @return: {TransportServer name: L{ResourceMonitoring}}.
    @raise ConfigError: naming the file, line, section and key at fault.
    """
    settings = {}
    for reader in readers:
        server = _serverOf(reader, servers, "EdgeTransport", settings)
        settings[server] = ResourceMonitoring(
            server=server,
            enabled=reader["EnableResourceMonitoring"],
            interval=reader["ResourceMonitoringInterval"],
            databaseDiskSpace=_thresholds(reader, "PercentageDatabaseDiskSpaceUsed", True),
            loggingDiskSpace=_thresholds(reader, "PercentageDatabaseLoggingDiskSpaceUsed", True),
            privateBytes=_thresholds(reader, "PercentagePrivateBytes", False),
            privateBytesHistoryDepth=reader["PrivateBytesHistoryDepth"],
            submissionQueue=_thresholds(reader, "SubmissionQueue", False),
            submissionQueueHistoryDepth=reader["SubmissionQueueHistoryDepth"],
            tarpitStartDelay=reader["TarpitStartDelay"],
            tarpitDelayStep=reader["TarpitDelayStep"],
            maxTarpitDelay=reader["MaxTarpitDelay"],
        )
    return settings


def monitorings(readers, servers):
    """
    @param readers: one C{_Reader} per C{[Monitoring]} section.
    @return: {TransportServer name: L{Monitoring}}.
    @raise ConfigError: naming the file, line, section and key at fault.
    """
    found = {}
    for reader in readers:
        server = _serverOf(reader, servers, "Monitoring", found)
        found[server] = Monitoring(server=server, binding=reader["Binding"])
    return found


def resourceMonitoringOf(organization, serverName):
    """
    @return: the L{ResourceMonitoring} of the TransportServer C{serverName}.
    """
    settings = organization.edgeTransports.get(serverName)
    return ResourceMonitoring(server=serverName) if settings is None else settings
