"""
The metrics' observers in memory: what each reply, tracking event and log
event counts, a worker's relay, and the registry taking relayed counts.
"""

from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client import generate_latest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from exmta.envelope import QueuedMessage, QueuedRecipient, Reply, Session
from exmta.interfaces import IMessageTrackingLog, IReceiveObserver
from exmta.metrics import observers
from exmta.metrics.registry import MAX_QUEUES, ServerMetrics


class _Connector:
    name = "Default HubA"


class _Principal:
    def __init__(self, authAs):
        self.authAs = authAs


def _counting():
    counted = []
    return counted, lambda name, labels, amount: counted.append((name, labels, amount))


def test_repliesAreCounted():
    counted, count = _counting()
    observer = observers.ReceiveObserver(count)
    verifyObject(IReceiveObserver, observer)
    connector = _Connector()
    session = Session(
        connector="Default HubA", server="HubA", localHost="127.0.0.1", localPort=25,
        peerHost="127.0.0.9", peerPort=40000, principal=_Principal("Anonymous"),
    )
    observer.replied(None, None, Reply(421, "4.3.2", "Service not available"))
    observer.replied(connector, None, Reply(421, "4.3.2", "too many"))
    observer.replied(connector, session, Reply(220, "", "huba ready"))
    observer.replied(connector, session, Reply(220, "2.0.0", "SMTP server ready"))
    observer.replied(connector, session, Reply(250, "2.1.0", "Sender OK"))
    observer.replied(connector, session, Reply(250, "2.6.0", "Queued"))
    observer.replied(connector, replace(session, authenticated=True), Reply(250, "2.6.0", "Queued"))
    observer.replied(connector, replace(session, principal=_Principal("Internal")), Reply(250, "2.6.0", "Q"))
    observer.replied(connector, session, Reply(235, "2.7.0", "Authentication successful"))
    observer.replied(connector, session, Reply(535, "5.7.3", "Authentication unsuccessful"))
    observer.replied(connector, session, Reply(452, "4.3.1", "Insufficient system resources"))
    observer.tlsNegotiated(connector, "TLSv1.3")
    assert counted == [
        # A refused connection's 421 is a refused reply too.
        (observers.SESSIONS_REFUSED, ("none", "NoConnector"), 1),
        (observers.REFUSED, ("none", "421", "4.3.2"), 1),
        (observers.SESSIONS_REFUSED, ("Default HubA", "ConnectionLimit"), 1),
        (observers.REFUSED, ("Default HubA", "421", "4.3.2"), 1),
        (observers.SESSIONS, ("Default HubA",), 1),
        (observers.MESSAGES, ("Default HubA", "anonymous"), 1),
        (observers.MESSAGES, ("Default HubA", "authenticated"), 1),
        (observers.MESSAGES, ("Default HubA", "externally_secured"), 1),
        (observers.AUTH, ("Default HubA", "success"), 1),
        (observers.AUTH, ("Default HubA", "failure"), 1),
        (observers.REFUSED, ("Default HubA", "535", "5.7.3"), 1),
        (observers.REFUSED, ("Default HubA", "452", "4.3.1"), 1),
        (observers.TLS, ("receive", "TLSv1.3"), 1),
    ]


class _Tracking:
    def __init__(self):
        self.events = []

    def track(self, eventId, queued=None, **fields):
        self.events.append(eventId)


def test_trackingEventsAreWrittenAndCounted():
    counted, count = _counting()
    delays = []
    clock = Clock()
    clock.advance(100)
    tracking = _Tracking()
    observer = observers.TrackingObserver(
        tracking, count, lambda outcome, delay: delays.append((outcome, delay)),
        lambda: "Maildir", clock,
    )
    verifyObject(IMessageTrackingLog, observer)
    queued = QueuedMessage(
        queueId="0" * 24, mailFrom="a@contoso.com", recipients=(QueuedRecipient("b@fabrikam.com"),),
        arrivalTime=40.0, size=10, receivedFrom={},
    )
    observer.track("SUBMIT", queued, source="SMTP")
    observer.track("DELIVER", queued, source="STOREDRIVER", recipients=["b@f.com", "c@f.com"])
    observer.track("SEND", queued, source="SMTP", recipients=["x@c.com"], connectorId="ToInternet")
    observer.track("DEFER", queued, source="SMTP", recipients=["y@c.com"], connectorId="ToInternet")
    observer.track("FAIL", queued, source="ROUTING", recipients=["z@f.com"])
    observer.track("DSN", source="DSN", sourceContext="failed")
    assert tracking.events == ["SUBMIT", "DELIVER", "SEND", "DEFER", "FAIL", "DSN"]
    assert counted == [
        (observers.DELIVERIES, ("Maildir", "sent"), 2),
        (observers.DELIVERIES, ("ToInternet", "sent"), 1),
        (observers.DELIVERIES, ("ToInternet", "deferred"), 1),
        (observers.DELIVERIES, ("ROUTING", "failed"), 1),
        (observers.DSNS, ("failed",), 1),
    ]
    # Once per recipient at its final outcome; a deferral is none.
    assert delays == [("sent", 60.0)] * 3 + [("failed", 60.0)]
    # Without a tracking log (MessageTrackingLogEnabled $false) it still counts.
    observers.TrackingObserver(None, count, lambda *a: None, lambda: "Maildir", clock).track(
        "SEND", queued, recipients=["x@c.com"], connectorId="ToInternet"
    )
    assert counted[-1] == (observers.DELIVERIES, ("ToInternet", "sent"), 1)


def test_logEventsAreCounted():
    counted, count = _counting()
    observe = observers.logObserver(count)
    observe({"log_format": observers.AGENT_FAILED, "agent": "Spam", "event": "OnEndOfData"})
    observe({"log_format": observers.SEND_CONNECTED, "tls": "TLSv1.2"})
    observe({"log_format": observers.SEND_CONNECTED, "tls": "no TLS"})
    observe({"log_format": "something else"})
    assert counted == [
        (observers.AGENT_ERRORS, ("Spam", "OnEndOfData"), 1),
        (observers.TLS, ("send", "TLSv1.2"), 1),
    ]


def _samples(metrics):
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def test_aWorkersCountsReachTheRegistryOncePerIteration():
    import json

    clock = Clock()
    lines = []
    relay = observers.CountRelay(lines.append, clock)
    for _ in range(3):
        relay.count(observers.SESSIONS, ("Default HubA",), 1)
    relay.count(observers.AUTH, ("Default HubA", "failure"), 1)
    assert lines == []
    clock.advance(0)
    assert len(lines) == 1
    metrics = ServerMetrics("HubA")
    # What does not fit is left out, the rest counted.
    metrics.addCounts(json.loads(lines[0]) + [["nothing", [], 1], [observers.SESSIONS, ["a", "b"], 1],
                                              [observers.SESSIONS, ["x"], "many"], 7])
    samples = _samples(metrics)
    assert samples[("exmta_receive_sessions_total", (("connector", "Default HubA"),))] == 3
    assert samples[("exmta_receive_auth_total", (("connector", "Default HubA"), ("result", "failure")))] == 1
    assert ("exmta_receive_sessions_total", (("connector", "x"),)) not in samples


def test_aWorkersDeliveryDelaysReachTheRegistry():
    """
    The delays a worker's queue observes are relayed with its counts and
    observed in the main process's histogram; an outcome that is not one
    is left out.
    """
    import json

    clock = Clock()
    lines = []
    relay = observers.CountRelay(lines.append, clock)
    relay.observeDelay("sent", 2.5)
    relay.observeDelay("failed", 30.0)
    clock.advance(0)
    assert len(lines) == 1
    metrics = ServerMetrics("HubA")
    metrics.addCounts(json.loads(lines[0]) + [[observers.DELIVERY_DELAY, ["bogus"], 1.0]])
    samples = _samples(metrics)
    assert samples[("exmta_delivery_delay_seconds_count", (("outcome", "sent"),))] == 1
    assert samples[("exmta_delivery_delay_seconds_sum", (("outcome", "failed"),))] == 30.0
    assert ("exmta_delivery_delay_seconds_count", (("outcome", "bogus"),)) not in samples


class _State:
    def __init__(self, now, messages):
        self.now = now
        self.messages = messages


def test_queuesBeyondTheLongestAreAddedUp(monkeypatch):
    rows = [
        {"Identity": f"HubA\\hop{n}", "DeliveryType": "DnsConnectorDelivery", "Status": "Retry",
         "MessageCount": n + 1}
        for n in range(MAX_QUEUES + 5)
    ]
    monkeypatch.setattr("exmta.queue.views.queueRows", lambda state: rows)
    metrics = ServerMetrics("HubA")
    message = QueuedMessage(queueId="0" * 24, mailFrom="", recipients=(), arrivalTime=10.0,
                            size=1, receivedFrom={})
    metrics.refresh(_State(70.0, [message]))
    samples = _samples(metrics)
    queues = {dict(labels)["queue"]: value for (name, labels), value in samples.items()
              if name == "exmta_queue_messages"}
    assert len(queues) == MAX_QUEUES + 1
    assert queues["other"] == sum(range(1, 6))
    assert samples[("exmta_queue_oldest_message_age_seconds", ())] == 60
