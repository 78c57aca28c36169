"""
What the metrics count, as observers of what the stages already tell:
the receive side's replies (L{exmta.interfaces.IReceiveObserver}), the
queue's message tracking events (L{exmta.interfaces.IMessageTrackingLog})
and a few log events.  Each observation is a count, C{count(name, labels,
amount)}; L{exmta.metrics.registry.ServerMetrics} keeps them, and a
worker process sends them to its main process (L{CountRelay}).

This module loads no Prometheus code: a worker process imports it.
"""

import json

from zope.interface import implementer

from exmta.interfaces import IMessageTrackingLog, IReceiveObserver

# Metric keys: the short names ServerMetrics registers under.
SESSIONS = "receive_sessions"
SESSIONS_REFUSED = "receive_sessions_refused"
MESSAGES = "receive_messages"
REFUSED = "receive_replies_refused"
AUTH = "auth"
TLS = "tls_sessions"
DELIVERIES = "deliveries"
DSNS = "dsns"
AGENT_ERRORS = "agent_errors"

# X-MS-Exchange-Organization-AuthAs to the authentication label, for a
# session that did not AUTH.
_AUTHENTICATION = {"Internal": "externally_secured", "Partner": "partner"}

_NO_CONNECTOR = "none"


@implementer(IReceiveObserver)
class ReceiveObserver:
    """
    Counts the receive side's sessions, messages, refusals, AUTH results
    and TLS versions from the replies it sends.
    """

    def __init__(self, count):
        """
        @param count: called with a metric key, a tuple of label values
            and an amount.
        """
        self.count = count

    def replied(self, connector, session, reply):
        name = _NO_CONNECTOR if connector is None else connector.name
        code = reply.code
        if session is None:
            reason = "NoConnector" if connector is None else "ConnectionLimit"
            self.count(SESSIONS_REFUSED, (name, reason), 1)
        elif code == 220:
            if not reply.status:
                self.count(SESSIONS, (name,), 1)
            return
        elif code == 250:
            if reply.status == "2.6.0":
                self.count(MESSAGES, (name, _authentication(session)), 1)
            return
        elif code == 235:
            self.count(AUTH, (name, "success"), 1)
            return
        elif code == 535:
            self.count(AUTH, (name, "failure"), 1)
        if code >= 400:
            self.count(REFUSED, (name, str(code), reply.status or ""), 1)

    def tlsNegotiated(self, connector, version):
        self.count(TLS, ("receive", version or "unknown"), 1)


def _authentication(session):
    if session.authenticated:
        return "authenticated"
    principal = session.principal
    return _AUTHENTICATION.get(principal.authAs if principal is not None else None, "anonymous")


@implementer(IMessageTrackingLog)
class TrackingObserver:
    """
    The queue manager's message tracking log, and the metrics listening to
    it: deliveries by send connector or delivery agent and outcome, the
    delay of each recipient's final outcome, the DSNs made.
    """

    def __init__(self, tracking, count, observeDelay, deliveryAgent, clock):
        """
        @param tracking: the L{exmta.tracking.MessageTrackingLog} that
            writes the events, or L{None} when it is disabled.
        @param observeDelay: called with an outcome (C{sent}, C{failed})
            and the seconds since the message arrived.
        @param deliveryAgent: called with no arguments, the name of the
            delivery agent (a reload may change it).
        """
        self.tracking = tracking
        self.count = count
        self.observeDelay = observeDelay
        self.deliveryAgent = deliveryAgent
        self.clock = clock

    def track(self, eventId, queued=None, **fields):
        if self.tracking is not None:
            self.tracking.track(eventId, queued, **fields)
        try:
            self._observe(eventId, queued, fields)
        except Exception:
            pass  # metrics must never stop mail, nor the tracking log

    def _observe(self, eventId, queued, fields):
        if eventId == "DSN":
            self.count(DSNS, (fields.get("sourceContext") or "unknown",), 1)
            return
        outcome = _OUTCOMES.get(eventId)
        if outcome is None:
            return
        source = fields.get("source")
        via = fields.get("connectorId") or (
            self.deliveryAgent() if source == "STOREDRIVER" else source or "unknown"
        )
        recipients = fields.get("recipients") or ()
        self.count(DELIVERIES, (via, outcome), len(recipients))
        if outcome != "deferred" and queued is not None:
            delay = max(0.0, self.clock.seconds() - queued.arrivalTime)
            for _ in recipients:
                self.observeDelay(outcome, delay)


_OUTCOMES = {"SEND": "sent", "DELIVER": "sent", "DEFER": "deferred", "FAIL": "failed"}

# Log events counted, by their format: rare ones, which in a receive
# worker reach the main process's log too.
AGENT_FAILED = "transport agent {agent} failed at {event} ({policy})"
SEND_CONNECTED = "connected to {target} ({tls}, {auth})"


def logObserver(count):
    """
    @return: a L{twisted.logger} observer counting transport agents'
        failures and outbound connections' TLS versions.
    """

    def observe(event):
        form = event.get("log_format")
        if form == AGENT_FAILED:
            count(AGENT_ERRORS, (str(event.get("agent")), str(event.get("event"))), 1)
        elif form == SEND_CONNECTED:
            tls = event.get("tls")
            if tls and tls != "no TLS":
                count(TLS, ("send", str(tls)), 1)

    return observe


# The name a relayed delivery delay goes by among the counts
# (L{CountRelay.observeDelay}).
DELIVERY_DELAY = "deliveryDelay"


class CountRelay:
    """
    A worker process's counts, and the delivery delays its queue observed,
    sent to its main process once per reactor iteration (an C{M} line of
    JSON: C{[[name, [label, ...], amount], ...]}, a delay as
    C{[DELIVERY_DELAY, [outcome], seconds]}), where they join the
    server's.  A worker that dies keeps what it sent: at most the counts of
    the iteration it died in are lost.
    """

    def __init__(self, send, clock):
        """
        @param send: called with the bytes of one line's data.
        """
        self.send = send
        self.clock = clock
        self._pending = {}
        self._delays = []
        self._flush = None

    def count(self, name, labels, amount):
        key = (name, labels)
        self._pending[key] = self._pending.get(key, 0) + amount
        self._flushSoon()

    def observeDelay(self, outcome, seconds):
        self._delays.append([DELIVERY_DELAY, [outcome], seconds])
        self._flushSoon()

    def _flushSoon(self):
        if self._flush is None:
            self._flush = self.clock.callLater(0, self.flush)

    def flush(self):
        self._flush = None
        pending, self._pending = self._pending, {}
        delays, self._delays = self._delays, []
        if pending or delays:
            entries = [[name, list(labels), amount] for (name, labels), amount in pending.items()]
            self.send(json.dumps(entries + delays).encode("utf-8"))
