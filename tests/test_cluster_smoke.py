"""Two real ``twistd messenger`` nodes on one SQLite file and one Redis."""

import time

import pytest
from twisted.trial.unittest import TestCase

from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.services, pytest.mark.slow]


def login(server, user):
    client = server.client()
    reply = client.command(f"LOGIN|{user}|password1")
    assert reply.startswith(f"OK|LOGIN|{user}|"), reply
    return client


def register(server, *users):
    with server.client() as client:
        for user in users:
            reply = client.command(f"USR|{user}|password1|{user}")
            assert reply == f"OK|USR|{user}", reply


class TwoNodeSmokeTests(TestCase):
    def setUp(self):
        redis = RedisServer.start_or_skip(self)
        self.a = ServerProcess(self, "--bus", redis.url, "--node-id", "a")
        self.b = ServerProcess(self, "--bus", redis.url, "--node-id", "b", "--db", self.a.db)

    def test_direct_message_across_nodes(self):
        """A message sent on one node is delivered live on the other, and
        the receipt comes back."""
        register(self.a, "alice", "bob")
        alice = login(self.a, "alice")
        bob = login(self.b, "bob")
        alice.send("MSG|bob|hi")
        lines = alice.read_until_prefix("OK|MSG|")
        msgid = lines[-1].split("|")[2]
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{msgid}|hi")
        bob.send(f"ACK|{msgid}")
        self.assertTrue(alice.expect_event("DLV|").startswith(f"DLV|{msgid}|bob|"))

    def test_takeover_across_nodes(self):
        """Logging in on node b closes the session on node a with BYE|409,
        and node b delivers what was not acknowledged."""
        register(self.a, "alice", "bob")
        alice = login(self.a, "alice")
        bob = login(self.a, "bob")
        alice.send("MSG|bob|one")
        alice.read_until_prefix("OK|MSG|")
        self.assertEqual(bob.expect_event("R|"), "R|alice|1|one")
        bob_again = login(self.b, "bob")
        self.assertIn("BYE|409|logged in elsewhere", bob.read_until_closed())
        self.assertEqual(bob_again.expect_event("R|"), "R|alice|1|one")
        self.assertEqual(alice.command("WHO"), "OK|WHO|alice|bob")

    def test_presence_rooms_and_who_across_nodes(self):
        """ON, room messages, JOINED and WHO cross the bus between real nodes."""
        register(self.a, "alice", "carol")
        alice = login(self.a, "alice")
        carol = login(self.b, "carol")
        self.assertEqual(alice.expect_event("ON|"), "ON|carol")
        self.assertEqual(carol.command("JOIN|#tea"), "OK|JOIN|#tea")
        self.assertEqual(alice.command("JOIN|#tea"), "OK|JOIN|#tea")
        self.assertEqual(carol.expect_event("JOINED|"), "JOINED|#tea|alice")
        carol.send("MSG|#tea|tea?")
        self.assertTrue(alice.expect_event("C|").startswith("C|#tea|carol|"))
        self.assertEqual(alice.command("WHO"), "OK|WHO|alice|carol")
        self.assertEqual(alice.command("WHOIS|carol"), "OK|WHOIS|carol|online|-|carol")


class TwoNodeFailureSmokeTests(TestCase):
    def setUp(self):
        self.redis = RedisServer.start_or_skip(self)
        url = self.redis.url
        self.a = ServerProcess(self, "--bus", url, "--node-id", "a")
        self.b = ServerProcess(self, "--bus", url, "--node-id", "b", "--db", self.a.db)
        register(self.a, "alice", "bob")
        self.alice = login(self.a, "alice")
        self.bob = login(self.b, "bob")

    def test_messages_flow_while_redis_is_down_and_after(self):
        """Without Redis, nodes keep accepting and deliver from a database
        poll; when it is back, delivery is live again."""
        self.redis.stop()
        self.alice.send("MSG|bob|while down")
        self.assertTrue(self.alice.read_until_prefix("OK|MSG|")[-1].startswith("OK|MSG|"))
        self.assertEqual(self.bob.expect_event("R|", timeout=10), "R|alice|1|while down")
        self.bob.send("ACK|1")
        self.assertTrue(self.alice.expect_event("DLV|", timeout=10).startswith("DLV|1|bob|"))
        self.redis.start()
        back = time.monotonic()
        self.wait_until_both_nodes_are_back_on_the_bus()
        reconnected = time.monotonic() - back
        self.alice.send("MSG|bob|back")
        started = time.monotonic()
        self.assertEqual(self.bob.expect_event("R|", timeout=10), "R|alice|2|back")
        took = time.monotonic() - started
        print(f"nodes back on the bus {reconnected:.1f} s after Redis; delivered in {took:.3f} s")
        # Live, not from the database poll of a node without its bus (every
        # POLL_WITHOUT_BUS = 5 s) nor the re-read after a gap (heartbeats, 3 s).
        self.assertLess(took, 1.0)

    def wait_until_both_nodes_are_back_on_the_bus(self, timeout: float = 60.0) -> None:
        """Until each node has subscribed again (it logs "bus connected" a
        second time) and Redis has all four connections back (each node also
        publishes on a connection of its own).  The reconnection backoff is
        up to 3 s (2 s capped, plus jitter), more on a loaded machine."""
        deadline = time.monotonic() + timeout
        while not (
            all(node.log_text().count("bus connected") >= 2 for node in (self.a, self.b))
            and self.redis.connected_clients() >= 4
        ):
            self.assertLess(
                time.monotonic(),
                deadline,
                f"the nodes are not back on the bus ({self.redis.connected_clients()} clients)",
            )
            time.sleep(0.05)

    def test_killed_node_users_go_offline_within_15_seconds(self):
        """kill -9 of a node: the others see OFF for its users within 15 s."""
        started = time.monotonic()
        self.b.kill()
        self.assertEqual(self.alice.expect_event("OFF|", timeout=20), "OFF|bob")
        took = time.monotonic() - started
        print(f"OFF for the killed node's user after {took:.1f} s")
        self.assertLess(took, 15.0)
