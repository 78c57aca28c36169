"""
Back pressure in memory: the levels and their hysteresis, Exchange's disk
formula, the [EdgeTransport] keys, what each level refuses at MAIL FROM
(with its tarpit, on a fake clock) and the resource monitor's level
changes.
"""

import base64
import os

import pytest
from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from zope.interface.verify import verifyObject

from exmta.auth.realm import ConnectorRealm
from exmta.config import parseOrganization
from exmta.config.monitoring import ResourceMonitoring, Thresholds, resourceMonitoringOf
from exmta.errors import ConfigError
from exmta.interfaces import IBackPressure
from exmta.monitor.levels import HIGH, MEDIUM, NORMAL, BackPressure, diskThresholds, nextLevel
from exmta.monitor.service import ResourceMonitor
from exmta.receive.listener import ReceiveFactory
from exmta.routing import Resolver
from exmta.testing import connect
from tests.test_protocol import ORG, ControlledQueue, PasswordChecker

MB = 1024 * 1024


def test_levelsRiseAtTheirThresholdAndFallOnlyBelowTheLowerOne():
    thresholds = Thresholds(high=99, medium=97, normal=95)
    level = NORMAL
    path = []
    for value in (90, 96, 97, 98, 99, 98, 97, 96.9, 95.5, 95, 94.9, 99.5, 90):
        level = nextLevel(level, value, thresholds)
        path.append(level)
    assert path == [
        NORMAL, NORMAL, MEDIUM, MEDIUM, HIGH, HIGH, HIGH, MEDIUM, MEDIUM, MEDIUM, NORMAL,
        HIGH, NORMAL,
    ]


def test_exchangesDiskFormula():
    # 100 * (size - 500 MB) / size, rounded down; Medium 2, Normal 4 below.
    assert diskThresholds(Thresholds(None, None, None), 1024 * 1024 * MB) == (99, 97, 95)
    assert diskThresholds(Thresholds(None, None, None), 25 * 1024 * MB) == (98, 96, 94)
    # A filesystem smaller than the reserve is always High.
    assert diskThresholds(Thresholds(None, None, None), 100 * MB) == (0, 0, 0)
    assert diskThresholds(Thresholds(80, None, None), 100 * MB) == (80, 78, 76)
    assert diskThresholds(Thresholds(80, 50, 10), 100 * MB) == (80, 50, 10)


def _organization(section):
    return parseOrganization(ORG + section, "/etc/exmta/org.ini")


def test_edgeTransportKeysAndDefaults():
    organization = _organization(
        "\n[EdgeTransport HubA]\nPercentagePrivateBytesHighThreshold = 0.5\n"
        "PercentagePrivateBytesMediumThreshold = 0.25\nPercentagePrivateBytesNormalThreshold = 0.1\n"
        "ResourceMonitoringInterval = 00:00:01\nMaxTarpitDelay = 00:00:00\n"
    )
    settings = resourceMonitoringOf(organization, "HubA")
    assert settings.privateBytes == Thresholds(0.5, 0.25, 0.1)
    assert settings.interval == 1
    assert settings.maxTarpitDelay == 0
    assert settings.databaseDiskSpace == Thresholds(None, None, None)
    assert settings.submissionQueue == Thresholds(4000, 2000, 1000)
    assert resourceMonitoringOf(parseOrganization(ORG, "/o.ini"), "HubA") == ResourceMonitoring("HubA")


@pytest.mark.parametrize(
    "section, line, key, words",
    [
        ("PercentagePrivateBytesHighThreshold = 101", 2, "PercentagePrivateBytesHighThreshold", "out of range"),
        ("PercentagePrivateBytesHighThreshold = lots", 2, "PercentagePrivateBytesHighThreshold", "not a percentage"),
        ("PercentagePrivateBytesNormalThreshold = 74", 2, "PercentagePrivateBytesNormalThreshold",
         "must not be above PercentagePrivateBytesMediumThreshold"),
        ("PercentageDatabaseDiskSpaceUsedMediumThreshold = 90", 2,
         "PercentageDatabaseDiskSpaceUsedMediumThreshold", "set PercentageDatabaseDiskSpaceUsedHighThreshold"),
        ("ResourceMonitoringInterval = 00:00:00", 2, "ResourceMonitoringInterval", "out of range"),
        ("BackPressure = $true", 2, "BackPressure", "unknown key"),
    ],
)
def test_edgeTransportErrorsNameFileLineAndKey(section, line, key, words):
    text = f"[EdgeTransport HubA]\n{section}\n"
    with pytest.raises(ConfigError) as caught:
        parseOrganization(ORG + "\n" + text, "/etc/exmta/org.ini")
    offset = (ORG + "\n").count("\n")
    message = str(caught.value)
    assert f"/etc/exmta/org.ini:{offset + line}" in message
    assert key in message and words in message


def test_sectionsNameAServer():
    with pytest.raises(ConfigError) as caught:
        _organization("\n[EdgeTransport HubB]\n")
    assert "names no TransportServer" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        _organization("\n[Monitoring HubA]\nBinding = localhost\n")
    assert "Binding" in str(caught.value) and "IP:port" in str(caught.value)
    assert _organization("\n[Monitoring HubA]\n").monitorings["HubA"].binding.port == 9425


class _Principal:
    def __init__(self, authAs):
        self.authAs = authAs


def test_whatEachLevelRefuses():
    settings = ResourceMonitoring("HubA", tarpitStartDelay=1, tarpitDelayStep=2, maxTarpitDelay=4)
    pressure = BackPressure(settings)
    verifyObject(IBackPressure, pressure)
    kinds = {name: _Principal(name) for name in ("Anonymous", "Partner", "Internal", "Authenticated")}
    assert all(pressure.mailRefusal(p, 0) is None for p in kinds.values())
    pressure.level = MEDIUM
    refused = {name for name, p in kinds.items() if pressure.mailRefusal(p, 0)}
    assert refused == {"Anonymous", "Partner"}
    pressure.level = HIGH
    assert all(pressure.mailRefusal(p, 0) for p in kinds.values())
    delay, reply = pressure.mailRefusal(kinds["Internal"], 0)
    assert (delay, str(reply)) == (1, "452 4.3.1 Insufficient system resources")
    assert [pressure.mailRefusal(kinds["Internal"], n)[0] for n in range(4)] == [1, 3, 4, 4]


class TestMailFromUnderPressure:
    def setup_method(self):
        self.organization = parseOrganization(ORG, "/nonexistent/org.ini")
        connector = self.organization.receiveConnectors[0]
        self.clock = MemoryReactorClock()
        portal = Portal(
            ConnectorRealm(self.organization, connector), [AllowAnonymousAccess(), PasswordChecker()]
        )
        self.pressure = BackPressure(ResourceMonitoring("HubA", tarpitStartDelay=2, tarpitDelayStep=1))
        self.factory = ReceiveFactory(
            self.organization, self.organization.transportServers["HubA"],
            {connector.identity: portal}, ControlledQueue(), Resolver(self.organization), None,
            self.clock, backPressure=self.pressure,
        )

    def session(self, login=False):
        protocol, transport = connect(self.factory, peer=("127.0.0.9", 40000))
        protocol.dataReceived(b"EHLO c\r\n")
        if login:
            protocol.dataReceived(
                b"AUTH PLAIN " + base64.b64encode(b"\0kim@fabrikam.com\0right") + b"\r\n"
            )
        transport.takeReplies()
        return protocol, transport

    def test_mediumRefusesAnonymousAfterTheTarpit(self):
        self.pressure.level = MEDIUM
        protocol, transport = self.session()
        protocol.dataReceived(b"MAIL FROM:<a@contoso.com>\r\nNOOP\r\n")
        self.clock.advance(1.9)
        assert transport.takeReplies() == []
        self.clock.advance(0.1)
        assert transport.takeReplies() == ["452 4.3.1 Insufficient system resources", "250 2.0.0 OK"]
        protocol.dataReceived(b"MAIL FROM:<a@contoso.com>\r\n")
        self.clock.advance(2.9)
        assert transport.takeReplies() == []
        self.clock.advance(0.1)
        assert transport.takeReplies() == ["452 4.3.1 Insufficient system resources"]
        self.pressure.level = NORMAL
        protocol.dataReceived(b"MAIL FROM:<a@contoso.com>\r\n")
        assert transport.takeReplies() == ["250 2.1.0 Sender OK"]

    def test_mediumServesAuthenticatedUsersAndHighNobody(self):
        self.pressure.level = MEDIUM
        protocol, transport = self.session(login=True)
        protocol.dataReceived(b"MAIL FROM:<kim@fabrikam.com>\r\nRSET\r\n")
        assert transport.takeReplies() == ["250 2.1.0 Sender OK", "250 2.0.0 Resetting"]
        self.pressure.level = HIGH
        protocol.dataReceived(b"MAIL FROM:<kim@fabrikam.com>\r\n")
        self.clock.advance(2)
        assert transport.takeReplies() == ["452 4.3.1 Insufficient system resources"]


class _Backlog:
    length = 0

    def __call__(self):
        return self.length


def test_monitorChangesLevelOnceAndLogsEachResource(tmp_path):
    settings = ResourceMonitoring(
        "HubA", interval=2, submissionQueue=Thresholds(10, 5, 2), submissionQueueHistoryDepth=1,
        databaseDiskSpace=Thresholds(100, 100, 100),
    )
    backlog = _Backlog()
    clock = Clock()
    monitor = ResourceMonitor(settings, str(tmp_path / "q"), [str(tmp_path / "logs")], MB, backlog, clock)
    heard, events = [], []
    monitor.onLevelChanged.append(heard.append)
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        monitor.startService()
        backlog.length = 6
        clock.advance(2)
        clock.advance(2)
        backlog.length = 11
        clock.advance(2)
        backlog.length = 4
        clock.advance(2)
        backlog.length = 1
        clock.advance(2)
        monitor.stopService()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert heard == [MEDIUM, HIGH, MEDIUM, NORMAL]
    changes = [e for e in events if "backPressureLevel" in e]
    assert [e["event"] for e in changes] == [15004, 15004, 15005, 15005]
    assert "QueueLength[SubmissionQueue] = 11 [High] [Normal=2 Medium=5 High=10]" in changes[1]["resources"]
    assert f"DatabaseUsedSpace[{tmp_path / 'q'}]" in changes[1]["resources"]
    info = monitor.diagnosticInfo()
    assert info["BackPressureLevel"] == NORMAL
    assert {row["Resource"] for row in info["Resources"]} >= {"PrivateBytes", "QueueLength[SubmissionQueue]"}


def test_lessThanAMessageAndAHalfFreeIsHigh(tmp_path):
    stat = os.statvfs(tmp_path)
    free = stat.f_bavail * stat.f_frsize
    settings = ResourceMonitoring("HubA", databaseDiskSpace=Thresholds(100, 100, 100))
    clock = Clock()
    monitor = ResourceMonitor(settings, str(tmp_path), [], free, lambda: 0, clock)
    monitor.sample()
    assert monitor.level == HIGH
