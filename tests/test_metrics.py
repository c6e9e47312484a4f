"""Metrics: the hooks update their own registry, the site serves Prometheus
text over real HTTP, and a running server's endpoint counts real traffic."""

from __future__ import annotations

import math
import threading
import time
import urllib.request

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss

from messenger.metrics import Metrics, metrics_site


def samples(text) -> dict:
    """{(sample name, frozenset(labels)): value} of a Prometheus text page."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


class _Body(Protocol):
    """Collects a response body (Agent's readBody warns about WSGI responses)."""

    def __init__(self, finished: defer.Deferred) -> None:
        self.finished = finished
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)


def read_body(response) -> defer.Deferred:
    finished: defer.Deferred[bytes] = defer.Deferred()
    response.deliverBody(_Body(finished))
    return finished


def value(page: dict, name: str, **labels) -> float:
    return page[(name, frozenset(labels.items()))]


class MetricsHookTests(TestCase):
    def setUp(self):
        self.metrics = Metrics()

    def read(self, name, **labels):
        return value(samples(self.metrics.text()), name, **labels)

    def test_everything_starts_at_zero(self):
        """A new Metrics exposes every series at 0, both login results included."""
        page = samples(self.metrics.text())
        for name in (
            "messenger_connections",
            "messenger_connections_opened_total",
            "messenger_messages_accepted_total",
            "messenger_messages_delivered_total",
            "messenger_messages_retried_total",
            "messenger_messages_pending",
            "messenger_delivery_latency_seconds_count",
            "messenger_rate_limited_total",
        ):
            self.assertEqual(value(page, name), 0, name)
        self.assertEqual(value(page, "messenger_logins_total", result="ok"), 0)
        self.assertEqual(value(page, "messenger_logins_total", result="failed"), 0)

    def test_connection_hooks_update_the_gauge_and_the_total(self):
        """connection_opened/closed move the open gauge; the total only grows."""
        for _ in range(3):
            self.metrics.connection_opened()
        self.metrics.connection_closed()
        self.assertEqual(self.read("messenger_connections"), 2)
        self.assertEqual(self.read("messenger_connections_opened_total"), 3)

    def test_login_hook_counts_by_result(self):
        """login(True) and login(False) count separately."""
        self.metrics.login(True)
        self.metrics.login(False)
        self.metrics.login(False)
        self.assertEqual(self.read("messenger_logins_total", result="ok"), 1)
        self.assertEqual(self.read("messenger_logins_total", result="failed"), 2)

    def test_message_hooks_count(self):
        """accepted, retried and rate-limit hooks each increment their counter."""
        for _ in range(4):
            self.metrics.message_accepted()
        self.metrics.message_retried()
        self.metrics.message_retried()
        self.metrics.rate_limited()
        self.assertEqual(self.read("messenger_messages_accepted_total"), 4)
        self.assertEqual(self.read("messenger_messages_retried_total"), 2)
        self.assertEqual(self.read("messenger_rate_limited_total"), 1)

    def test_delivered_hook_counts_and_observes_latency(self):
        """message_delivered(latency) counts and fills the latency histogram."""
        self.metrics.message_delivered(0.02)
        self.metrics.message_delivered(3.0)
        self.metrics.message_delivered(-1.0)  # a clock step back counts as 0
        page = samples(self.metrics.text())
        self.assertEqual(value(page, "messenger_messages_delivered_total"), 3)
        self.assertEqual(value(page, "messenger_delivery_latency_seconds_count"), 3)
        self.assertAlmostEqual(value(page, "messenger_delivery_latency_seconds_sum"), 3.02)
        self.assertEqual(value(page, "messenger_delivery_latency_seconds_bucket", le="0.025"), 2)
        self.assertEqual(value(page, "messenger_delivery_latency_seconds_bucket", le="5.0"), 3)
        self.assertEqual(value(page, "messenger_delivery_latency_seconds_bucket", le="86400.0"), 3)

    def test_pending_gauge_reads_the_service_function_at_each_scrape(self):
        """The pending gauge is the function's value at scrape time."""
        waiting = [5]
        metrics = Metrics(pending=lambda: waiting[0])
        self.assertEqual(value(samples(metrics.text()), "messenger_messages_pending"), 5)
        waiting[0] = 2
        self.assertEqual(value(samples(metrics.text()), "messenger_messages_pending"), 2)

    def test_a_failing_pending_function_does_not_break_the_scrape(self):
        """If the pending function raises, the gauge is NaN and the page is still served."""
        metrics = Metrics(pending=lambda: 1 / 0)
        self.assertTrue(math.isnan(value(samples(metrics.text()), "messenger_messages_pending")))

    def test_each_metrics_has_its_own_registry(self):
        """Two Metrics count independently and never touch the global registry."""
        other = Metrics()
        self.metrics.message_accepted()
        self.assertEqual(value(samples(other.text()), "messenger_messages_accepted_total"), 0)
        self.assertIsNot(self.metrics.registry, REGISTRY)
        self.assertIsNone(REGISTRY.get_sample_value("messenger_messages_accepted_total"))


class MetricsSiteTests(TestCase):
    """The site over a real loopback HTTP connection, with Twisted's Agent."""

    def setUp(self):
        self.metrics = Metrics(pending=lambda: 3)
        self.port = reactor.listenTCP(0, metrics_site(self.metrics), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    @defer.inlineCallbacks
    def get(self, path):
        response = yield Agent(reactor).request(b"GET", (self.base + path).encode("ascii"))
        body = yield read_body(response)
        return response, body

    @defer.inlineCallbacks
    def test_site_serves_prometheus_text_at_metrics(self):
        """GET /metrics: 200, Prometheus text format, the current values."""
        self.metrics.connection_opened()
        self.metrics.login(True)
        self.metrics.message_accepted()
        response, body = yield self.get("/metrics")
        self.assertEqual(response.code, 200)
        content_type = response.headers.getRawHeaders(b"content-type")[0].decode()
        self.assertTrue(content_type.startswith("text/plain"), content_type)
        page = samples(body)
        self.assertEqual(value(page, "messenger_connections"), 1)
        self.assertEqual(value(page, "messenger_logins_total", result="ok"), 1)
        self.assertEqual(value(page, "messenger_messages_accepted_total"), 1)
        self.assertEqual(value(page, "messenger_messages_pending"), 3)

    @defer.inlineCallbacks
    def test_site_serves_new_values_at_each_scrape(self):
        """A second scrape sees what happened since the first."""
        _, first = yield self.get("/metrics")
        self.metrics.message_accepted()
        _, second = yield self.get("/metrics")
        self.assertEqual(value(samples(first), "messenger_messages_accepted_total"), 0)
        self.assertEqual(value(samples(second), "messenger_messages_accepted_total"), 1)

    @defer.inlineCallbacks
    def test_site_has_nothing_but_metrics(self):
        """Any other path is 404."""
        response, _ = yield self.get("/")
        self.assertEqual(response.code, 404)
        response, _ = yield self.get("/secrets")
        self.assertEqual(response.code, 404)


class ServerMetricsTests(TestCase):
    """A real ``twistd messenger --metrics`` scraped over HTTP while messages flow."""

    def scrape(self, port) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            self.assertEqual(response.status, 200)
            return samples(response.read())

    def wait_for(self, port, check, timeout=60.0) -> dict:
        """Scrape until ``check(page)`` holds (bounded); the last page."""
        deadline = time.monotonic() + timeout
        while True:
            page = self.scrape(port)
            if check(page) or time.monotonic() > deadline:
                return page
            time.sleep(0.05)

    def test_metrics_endpoint_counts_traffic_while_messages_flow(self):
        """Connections, logins, accepted, delivered, retried, pending, latency and 429s, from a live server."""
        from tests.support.server import ServerProcess, free_port

        metrics_port = free_port()
        server = ServerProcess(
            self,
            "--metrics",
            f"tcp:{metrics_port}:interface=127.0.0.1",
            "--retry-initial",
            "0.2",
        )
        # Scrapes keep coming, on another thread, the whole time.
        stop = threading.Event()
        scrape_errors, scrapes = [], []

        def keep_scraping():
            while not stop.is_set():
                try:
                    page = self.scrape(metrics_port)
                    scrapes.append(value(page, "messenger_messages_accepted_total"))
                except Exception as e:  # reported below
                    scrape_errors.append(e)
                time.sleep(0.02)

        scraper = threading.Thread(target=keep_scraping, daemon=True)
        scraper.start()
        self.addCleanup(stop.set)

        alice, bob = server.client(), server.client()
        for client, name in ((alice, "alice"), (bob, "bob")):
            self.assertEqual(
                client.command(f"USR|{name}|password1|{name.title()}"), f"OK|USR|{name}"
            )
            self.assertTrue(client.command(f"LOGIN|{name}|password1").startswith("OK|LOGIN|"))
        stranger = server.client()
        self.assertEqual(
            stranger.command("LOGIN|alice|wrong password"), "ERR|LOGIN|401|bad credentials"
        )

        count = 30
        msgids = []
        for i in range(count):
            reply = alice.command(f"MSG|bob|message {i}")
            self.assertTrue(reply.startswith("OK|MSG|"), reply)
            msgids.append(int(reply.split("|")[2]))
        received = {}
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            fields = bob.read_line().split("|")
            if fields[0] == "R":
                received.setdefault(int(fields[2]), 0)
                received[int(fields[2])] += 1
        self.assertEqual(sorted(received), msgids)
        # ACK all but the last: it is sent again after --retry-initial.
        bob.send(*[f"ACK|{msgid}" for msgid in msgids[:-1]])
        page = self.wait_for(
            metrics_port,
            lambda p: (
                value(p, "messenger_messages_retried_total") >= 1
                and value(p, "messenger_messages_delivered_total") == count - 1
            ),
        )
        self.assertGreaterEqual(value(page, "messenger_messages_retried_total"), 1)
        self.assertEqual(value(page, "messenger_messages_pending"), 1)
        bob.read_until_line(f"R|alice|{msgids[-1]}|message {count - 1}")
        bob.send(f"ACK|{msgids[-1]}")

        # Over the rate limit: 300 PINGs at once from a fresh connection (the
        # burst is 100 and 20 more come each second: 10 s to spare if slow).
        flooder = server.client()
        flooder.send(*["PING"] * 300)
        replies = [flooder.read_line() for _ in range(300)]
        refused = sum(1 for r in replies if r == "ERR|PING|429|rate limit")
        self.assertGreater(refused, 0)

        page = self.wait_for(
            metrics_port,
            lambda p: (
                value(p, "messenger_messages_delivered_total") == count
                and value(p, "messenger_rate_limited_total") == refused
                and value(p, "messenger_messages_pending") == 0
            ),
        )
        stop.set()
        scraper.join(10)
        self.assertEqual(scrape_errors, [])
        self.assertGreater(len(scrapes), 0)
        self.assertEqual(scrapes, sorted(scrapes))  # a counter never goes back
        self.assertEqual(value(page, "messenger_messages_accepted_total"), count)
        self.assertEqual(value(page, "messenger_messages_delivered_total"), count)
        self.assertEqual(value(page, "messenger_delivery_latency_seconds_count"), count)
        self.assertGreater(value(page, "messenger_delivery_latency_seconds_sum"), 0)
        self.assertEqual(value(page, "messenger_messages_pending"), 0)
        self.assertEqual(value(page, "messenger_logins_total", result="ok"), 2)
        self.assertEqual(value(page, "messenger_logins_total", result="failed"), 1)
        self.assertEqual(value(page, "messenger_rate_limited_total"), refused)
        # alice, bob, stranger, flooder (+ the harness's readiness probes, closed)
        self.assertEqual(value(page, "messenger_connections"), 4)
        self.assertGreaterEqual(value(page, "messenger_connections_opened_total"), 4)
