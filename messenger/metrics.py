"""Prometheus metrics of a Messenger server.

:class:`Metrics` owns its own :class:`prometheus_client.CollectorRegistry`
(never the process-wide default one), so that several services, and several
tests, each count for themselves.  The service calls its plain methods as
things happen; :func:`metrics_site` serves the registry in Prometheus' text
format at ``/metrics`` for ``--metrics ENDPOINT``.

Exposed (all names start with ``messenger_``):

=====================================  =========  ======================================
``connections``                        gauge      client connections open now
``connections_opened_total``           counter    client connections accepted
``logins_total{result="ok|failed"}``   counter    LOGIN and RESUME attempts by outcome
``messages_accepted_total``            counter    messages committed (direct and room)
``messages_delivered_total``           counter    direct messages acknowledged
``messages_retried_total``             counter    ``R`` lines sent again for lack of an ACK
``messages_pending``                   gauge      direct messages waiting for an ACK
``delivery_latency_seconds``           histogram  from acceptance to the recipient's ACK
``rate_limited_total``                 counter    commands refused by the rate limit
``node_info{node="..."}``              gauge      1, labelled with this node's ``--node-id``
=====================================  =========  ======================================

Every count is this node's: a cluster's totals are the sum over its nodes
(``messages_pending`` is each node's estimate of the cluster-wide number).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Site

#: Delivery latency includes the time a recipient was offline, so the
#: buckets reach from milliseconds to a day.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    6 * 3600.0,
    24 * 3600.0,
)


class Metrics:
    """The counters of one service, and the hooks it calls.

    ``pending`` is a function of no arguments returning how many direct
    messages wait for an acknowledgement; it is read at each scrape, on the
    reactor thread (see :meth:`refresh`).  Without it the gauge stays 0.
    """

    def __init__(
        self,
        pending: Callable[[], float] | None = None,
        namespace: str = "messenger",
        node_id: str | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._pending_source = pending
        r = self.registry
        self.connections = Gauge(
            "connections", "Client connections open now", namespace=namespace, registry=r
        )
        self.connections_opened = Counter(
            "connections_opened", "Client connections accepted", namespace=namespace, registry=r
        )
        self.logins = Counter(
            "logins",
            "LOGIN and RESUME attempts, by result",
            ["result"],
            namespace=namespace,
            registry=r,
        )
        for result in ("ok", "failed"):
            self.logins.labels(result=result)  # both series exist from the start, at 0
        self.messages_accepted = Counter(
            "messages_accepted",
            "Messages committed to storage (direct and room)",
            namespace=namespace,
            registry=r,
        )
        self.messages_delivered = Counter(
            "messages_delivered",
            "Direct messages acknowledged by their recipient",
            namespace=namespace,
            registry=r,
        )
        self.messages_retried = Counter(
            "messages_retried",
            "Direct messages sent again for lack of an ACK",
            namespace=namespace,
            registry=r,
        )
        self.messages_pending = Gauge(
            "messages_pending",
            "Direct messages waiting for an ACK",
            namespace=namespace,
            registry=r,
        )
        self.delivery_latency = Histogram(
            "delivery_latency_seconds",
            "Seconds from a direct message's acceptance to its recipient's ACK",
            namespace=namespace,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.rate_limited_count = Counter(
            "rate_limited",
            "Commands refused by the per-connection rate limit",
            namespace=namespace,
            registry=r,
        )
        if node_id is not None:
            Gauge(
                "node_info",
                "This node, by its --node-id",
                ["node"],
                namespace=namespace,
                registry=r,
            ).labels(node=node_id).set(1)

    # -- hooks the service calls -----------------------------------------

    def connection_opened(self) -> None:
        self.connections.inc()
        self.connections_opened.inc()

    def connection_closed(self) -> None:
        self.connections.dec()

    def login(self, ok: bool) -> None:
        self.logins.labels(result="ok" if ok else "failed").inc()

    def message_accepted(self) -> None:
        self.messages_accepted.inc()

    def message_delivered(self, latency_seconds: float) -> None:
        self.messages_delivered.inc()
        if math.isfinite(latency_seconds):
            self.delivery_latency.observe(max(0.0, latency_seconds))

    def message_retried(self) -> None:
        self.messages_retried.inc()

    def rate_limited(self) -> None:
        self.rate_limited_count.inc()

    # -- reading ---------------------------------------------------------

    def refresh(self) -> None:
        """Read the values that are asked for rather than counted.

        Called before each scrape on the reactor thread: the exposition
        itself runs on a thread-pool thread, where the service's state must
        not be touched.
        """
        if self._pending_source is None:
            return
        try:
            value = float(self._pending_source())
        except Exception:
            value = math.nan  # a broken source must not break the scrape
        self.messages_pending.set(value)

    def text(self) -> bytes:
        """The metrics in Prometheus' text format, as a scrape gets them."""
        self.refresh()
        return generate_latest(self.registry)


class _MetricsPage(Resource):
    """prometheus_client's Twisted resource, after a :meth:`Metrics.refresh`
    on the reactor thread."""

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        from prometheus_client.twisted import MetricsResource

        self._metrics = metrics
        self._exposition = MetricsResource(registry=metrics.registry)

    def render(self, request):
        self._metrics.refresh()
        return self._exposition.render(request)


class _QuietSite(Site):
    """No access log line for every scrape, no start/stop messages."""

    noisy = False

    def log(self, request) -> None:
        pass


class _Root(Resource):
    """``/metrics`` and nothing else (404 everywhere else)."""

    def getChild(self, path, request):
        from twisted.web.pages import notFound

        return notFound()

    def render(self, request):
        return self.getChild(b"", request).render(request)


def metrics_resource(metrics: Metrics) -> Resource:
    """A resource tree with the metrics at ``/metrics``."""
    root = _Root()
    root.putChild(b"metrics", _MetricsPage(metrics))
    return root


def metrics_site(metrics: Metrics) -> Site:
    """A web site serving the metrics at ``/metrics``, for ``--metrics``."""
    return _QuietSite(metrics_resource(metrics))
