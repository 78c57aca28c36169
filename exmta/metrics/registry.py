"""
The Prometheus metrics of one transport server, in a registry of its own
(L{prometheus_client.CollectorRegistry}): the counts the observers make
(L{exmta.metrics.observers}), in this process and relayed from its
receive workers, and gauges read when scraped: the queues, the oldest
message, back pressure.  Every name, label and help text is listed in
docs/metrics.rst.
"""

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.process_collector import ProcessCollector
from twisted.application import service
from twisted.logger import globalLogPublisher

from exmta.metrics import observers
from exmta.monitor.levels import LEVELS
from exmta.queue import views

# Get-Queue rows beyond this many (the longest kept) are added up as one
# queue named "other", so MX next hops cannot grow the label set.
MAX_QUEUES = 50
OTHER = "other"

# Seconds from arrival to a recipient's final outcome: local delivery
# takes milliseconds, retries minutes to days (MessageExpirationTimeout).
DELAY_BUCKETS = (0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 2 * 86400, 7 * 86400)

_COUNTERS = (
    (observers.SESSIONS, "exmta_receive_sessions",
     "SMTP sessions admitted, by receive connector.", ("connector",)),
    (observers.SESSIONS_REFUSED, "exmta_receive_sessions_refused",
     "Connections closed before their session began: no receive connector matched "
     "(NoConnector) or MaxInboundConnection/MaxInboundConnectionPerSource was reached "
     "(ConnectionLimit).", ("connector", "reason")),
    (observers.MESSAGES, "exmta_receive_messages",
     "Messages accepted (250 after DATA), by receive connector and how the session "
     "authenticated: anonymous, authenticated, externally_secured or partner.",
     ("connector", "authentication")),
    (observers.REFUSED, "exmta_receive_replies_refused",
     "4xx and 5xx replies sent by the receive side, by receive connector, reply code "
     "and enhanced status code.", ("connector", "code", "status")),
    (observers.AUTH, "exmta_receive_auth",
     "SMTP AUTH attempts, by receive connector and result (success, failure).",
     ("connector", "result")),
    (observers.TLS, "exmta_tls_sessions",
     "TLS sessions negotiated, by direction (receive, send) and protocol version.",
     ("direction", "version")),
    (observers.DELIVERIES, "exmta_deliveries",
     "Recipients handed on, by send connector or delivery agent (or ROUTING, AGENT for "
     "recipients failed before any attempt) and outcome (sent, deferred, failed).",
     ("via", "outcome")),
    (observers.DSNS, "exmta_dsns",
     "Delivery status notifications made, by kind (failed, delayed, delivered, "
     "relayed, expanded).", ("kind",)),
    (observers.AGENT_ERRORS, "exmta_agent_errors",
     "Transport agents' failures, by agent and event.", ("agent", "event")),
)


def _version():
    try:
        return version("exmta")
    except PackageNotFoundError:
        return "unknown"


class ServerMetrics:
    """
    @ivar registry: the L{CollectorRegistry} C{/metrics} shows.
    """

    def __init__(self, serverName):
        self.registry = CollectorRegistry()
        self._counters = {
            key: Counter(name, text, labels, registry=self.registry)
            for key, name, text, labels in _COUNTERS
        }
        self._arity = {key: len(labels) for key, _, _, labels in _COUNTERS}
        self.deliveryDelay = Histogram(
            "exmta_delivery_delay_seconds",
            "Seconds from a message's arrival to a recipient's final outcome (sent or "
            "failed), observed once per recipient.",
            ("outcome",), buckets=DELAY_BUCKETS, registry=self.registry,
        )
        self.queueMessages = Gauge(
            "exmta_queue_messages",
            f"Messages in each queue (Get-Queue's MessageCount), by queue, delivery type "
            f"and status (Active, Ready, Retry, Suspended); beyond {MAX_QUEUES} queues the "
            f"shortest are added up as queue=\"{OTHER}\".",
            ("queue", "delivery_type", "status"), registry=self.registry,
        )
        self.oldestMessage = Gauge(
            "exmta_queue_oldest_message_age_seconds",
            "Seconds since the oldest queued message arrived; 0 with an empty queue.",
            registry=self.registry,
        )
        self.pressureLevel = Gauge(
            "exmta_back_pressure_level",
            "Back pressure level of each monitored resource, and of the server "
            "(resource=\"Server\"): 0 Normal, 1 Medium, 2 High.",
            ("resource",), registry=self.registry,
        )
        self.pressureValue = Gauge(
            "exmta_back_pressure_resource_value",
            "Each monitored resource's value: used disk space and private bytes in "
            "percent, the submission queue in messages.",
            ("resource",), registry=self.registry,
        )
        Info(
            "exmta_build", "exmta's version, and the Python running it.", registry=self.registry
        ).info({
            "version": _version(),
            "python": platform.python_version(),
            "server": serverName,
        })
        ProcessCollector(registry=self.registry)

    def count(self, name, labels, amount=1):
        """
        Add C{amount} to the counter C{name} (an L{observers} key) with
        the label values C{labels}.
        """
        counter = self._counters.get(name)
        if counter is not None and amount > 0:
            counter.labels(*labels).inc(amount)

    def addCounts(self, counts):
        """
        Add the counts a worker process relayed (L{observers.CountRelay}):
        C{[[name, [label, ...], amount], ...]}, and the delivery delays
        among them.  What does not fit is left out: a worker is another
        process, its lines are data.
        """
        for entry in counts:
            try:
                name, labels, amount = entry
                if name == observers.DELIVERY_DELAY and len(labels) == 1:
                    if labels[0] in ("sent", "failed") and isinstance(amount, (int, float)):
                        self.observeDelay(labels[0], max(0.0, amount))
                elif self._arity.get(name) == len(labels) and isinstance(amount, int):
                    self.count(name, tuple(str(label) for label in labels), amount)
            except (TypeError, ValueError):
                continue

    def observeDelay(self, outcome, seconds):
        self.deliveryDelay.labels(outcome).observe(seconds)

    def refresh(self, queueState=None, monitor=None):
        """
        Set the gauges read when scraped, on the reactor's thread.

        @param queueState: the queue's L{exmta.queue.views.QueueState}.
        @param monitor: the L{exmta.monitor.service.ResourceMonitor}.
        """
        if queueState is not None:
            arrivals = [m.arrivalTime for m in queueState.messages]
            self.refreshQueues(
                views.queueRows(queueState), queueState.now - min(arrivals) if arrivals else 0
            )
        if monitor is not None:
            self.pressureLevel.labels("Server").set(LEVELS.index(monitor.level))
            for resource in monitor.resources:
                self.pressureLevel.labels(resource.name).set(LEVELS.index(resource.level))
                self.pressureValue.labels(resource.name).set(resource.value)


    def refreshQueues(self, rows, oldestAge):
        """
        Set the queue gauges.

        @param rows: Get-Queue's rows (L{views.queueRows}, or
            L{views.mergeQueueRows} of a queue in parts).
        @param oldestAge: seconds since the oldest queued message arrived,
            0 with an empty queue.
        """
        self.oldestMessage.set(oldestAge)
        self.queueMessages.clear()
        rows = sorted(rows, key=lambda row: -row["MessageCount"])
        for row in rows[:MAX_QUEUES]:
            queue = row["Identity"].split("\\", 1)[1]
            self.queueMessages.labels(queue, row["DeliveryType"], row["Status"]).set(
                row["MessageCount"]
            )
        for row in rows[MAX_QUEUES:]:
            self.queueMessages.labels(OTHER, OTHER, row["Status"]).inc(row["MessageCount"])


class LogCounting(service.Service):
    """
    While running, counts the log events L{observers.logObserver} knows,
    those the main process relays from its receive workers included.
    """

    def __init__(self, metrics):
        self._observer = observers.logObserver(metrics.count)

    def startService(self):
        super().startService()
        globalLogPublisher.addObserver(self._observer)

    def stopService(self):
        super().stopService()
        globalLogPublisher.removeObserver(self._observer)
