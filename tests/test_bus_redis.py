"""RedisBus against a real redis-server (started and stopped here)."""

import pytest
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from messenger.bus.interface import IBus, IBusListener
from messenger.bus.redis import BusAddressError, RedisBus, parse_redis_url
from tests.support.redis import RedisServer

pytestmark = pytest.mark.services


@implementer(IBusListener)
class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.connected = 0
        self.disconnected = 0

    def bus_connected(self) -> None:
        self.connected += 1

    def bus_disconnected(self) -> None:
        self.disconnected += 1

    def bus_message(self, message) -> None:
        self.messages.append(message)


@defer.inlineCallbacks
def until(condition, timeout: float = 10.0):
    """Wait (on the real reactor) until ``condition()`` holds."""
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError("timed out waiting")
        yield task.deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


class RedisUrlTests(TestCase):
    def test_bus_address_is_redis_host_port_and_database(self):
        """--bus takes redis://host:port/N."""
        self.assertEqual(parse_redis_url("redis://127.0.0.1:6380/2"), ("127.0.0.1", 6380, 2))
        self.assertEqual(parse_redis_url("redis://localhost"), ("localhost", 6379, 0))
        self.assertRaises(BusAddressError, parse_redis_url, "http://x/1")
        self.assertRaises(BusAddressError, parse_redis_url, "redis://h:1/x")


class RedisBusTests(TestCase):
    def setUp(self):
        self.redis = RedisServer.start_or_skip(self)

    def bus(self, url=None) -> tuple[RedisBus, Recorder]:
        bus = RedisBus(reactor, url or self.redis.url)
        recorder = Recorder()
        bus.start(recorder)
        self.addCleanup(bus.stop)
        return bus, recorder

    def test_redis_bus_provides_the_interface(self):
        """RedisBus implements IBus."""
        bus = RedisBus(reactor, self.redis.url)
        self.assertTrue(verifyObject(IBus, bus))

    @defer.inlineCallbacks
    def test_published_message_reaches_every_node(self):
        """What one node publishes, every subscribed node hears, in order."""
        a, heard_a = self.bus()
        b, heard_b = self.bus()
        yield until(lambda: heard_a.connected and heard_b.connected)
        yield until(lambda: a._publisher is not None)
        for n in range(3):
            a.publish({"k": "x", "s": n})
        yield until(lambda: len(heard_b.messages) == 3)
        self.assertEqual([m["s"] for m in heard_b.messages], [0, 1, 2])

    @defer.inlineCallbacks
    def test_databases_are_separate_deployments(self):
        """redis://h:p/1 and /2 do not hear each other."""
        base = self.redis.url.rsplit("/", 1)[0]
        a, heard_a = self.bus(base + "/1")
        b, heard_b = self.bus(base + "/2")
        c, heard_c = self.bus(base + "/1")
        yield until(lambda: heard_a.connected and heard_b.connected and heard_c.connected)
        yield until(lambda: a._publisher is not None)
        a.publish({"k": "x"})
        yield until(lambda: len(heard_c.messages) == 1)
        self.assertEqual(heard_b.messages, [])

    @defer.inlineCallbacks
    def test_bus_reconnects_after_redis_restarts(self):
        """Redis stopped and started again: the bus says so and works again."""
        a, heard_a = self.bus()
        b, heard_b = self.bus()
        yield until(lambda: heard_a.connected and heard_b.connected)
        yield until(lambda: a._publisher is not None)
        old_publisher = a._publisher
        self.redis.stop()
        yield until(lambda: heard_a.disconnected == 1 and heard_b.disconnected == 1)
        a.publish({"k": "lost"})  # nobody to hear it: dropped, no error
        self.redis.start()
        yield until(lambda: heard_a.connected == 2 and heard_b.connected == 2)
        # A new publishing connection (the old one may be noticed lost late).
        yield until(lambda: a._publisher not in (None, old_publisher))
        a.publish({"k": "after"})
        yield until(lambda: heard_b.messages)
        self.assertEqual(heard_b.messages, [{"k": "after"}])
