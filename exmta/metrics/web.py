"""
The monitoring endpoints of a transport server, on twisted.web, at the
C{[Monitoring]} section's Binding (loopback by default), without login:

  - C{/metrics}: the Prometheus exposition of L{exmta.metrics.registry}
    (prometheus_client's Twisted C{MetricsResource});
  - C{/health/live}: 200 while the process answers;
  - C{/health/ready}: 200 when every receive binding listens, the queue is
    open and back pressure is not High, else 503; the body says which
    (JSON), and C{exmta check-health} reads it.
"""

import json

from prometheus_client.twisted import MetricsResource
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

log = Logger(namespace="exmta.metrics")


class _QuietSite(Site):
    """
    A scrape every few seconds is not worth a log line each.
    """

    def log(self, request):
        pass


class _Scrape(Resource):
    """
    C{/metrics}: the gauges read from the queue and the resource monitor
    are set here, on the reactor's thread, at once or when the refresh's
    Deferred fires (a queue in parts is asked over their admin sockets);
    prometheus_client then renders the registry in the reactor's thread
    pool.
    """

    isLeaf = True

    def __init__(self, metrics, refresh):
        super().__init__()
        self._exposition = MetricsResource(metrics.registry)
        self._refresh = refresh

    def render(self, request):
        refreshed = self._refresh()
        if not isinstance(refreshed, Deferred):
            return self._exposition.render(request)
        refreshed.addErrback(lambda failure: log.failure("cannot refresh the gauges", failure))
        refreshed.addCallback(lambda _: self._exposition.render(request))
        return NOT_DONE_YET


class _Health(Resource):
    isLeaf = True

    def __init__(self, check):
        super().__init__()
        self._check = check

    def render_GET(self, request):
        ready, details = self._check()
        request.setResponseCode(200 if ready else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(dict(details, ready=ready), sort_keys=True).encode("utf-8") + b"\n"


def monitoringResource(metrics, refresh, readiness):
    """
    @param metrics: the L{exmta.metrics.registry.ServerMetrics}.
    @param refresh: called with no arguments before each scrape; the
        scrape waits for the Deferred it may return.
    @param readiness: called with no arguments: C{(ready, details)}.
    @return: the root L{Resource}, which an embedding application may
        mount elsewhere.
    """
    root = Resource()
    root.putChild(b"metrics", _Scrape(metrics, refresh))
    health = Resource()
    root.putChild(b"health", health)
    health.putChild(b"live", _Health(lambda: (True, {})))
    health.putChild(b"ready", _Health(readiness))
    return root


class _MonitoringService(StreamServerEndpointService):
    log = Logger()

    def privilegedStartService(self):
        super().privilegedStartService()
        self.log.info("serving /metrics and /health on http://{address}/", address=self.address)


def monitoringService(binding, resource, reactor):
    """
    @param binding: the L{exmta.config.values.Binding} to listen on.
    @return: a service listening there, bound at privileged start so that
        a busy port stops the server's start.
    """
    kind = TCP6ServerEndpoint if ":" in binding.host else TCP4ServerEndpoint
    site = _QuietSite(resource)
    site.noisy = False
    listening = _MonitoringService(kind(reactor, binding.port, interface=binding.host), site)
    listening._raiseSynchronously = True
    listening.address = str(binding)
    listening.setName("monitoring")
    return listening
