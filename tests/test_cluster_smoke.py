"""Two real ``twistd messenger`` nodes on one SQLite file and one Redis."""

import pytest
from twisted.trial.unittest import TestCase

from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.services, pytest.mark.slow]


class TwoNodeSmokeTests(TestCase):
    def setUp(self):
        redis = RedisServer.start_or_skip(self)
        self.a = ServerProcess(self, "--bus", redis.url, "--node-id", "a")
        self.b = ServerProcess(self, "--bus", redis.url, "--node-id", "b", "--db", self.a.db)

    def login(self, server, user):
        client = server.client()
        reply = client.command(f"LOGIN|{user}|password1")
        self.assertTrue(reply.startswith(f"OK|LOGIN|{user}|"), reply)
        return client

    def register(self, server, *users):
        with server.client() as client:
            for user in users:
                self.assertEqual(client.command(f"USR|{user}|password1|{user}"), f"OK|USR|{user}")

    def test_direct_message_across_nodes(self):
        """A message sent on one node is delivered live on the other, and
        the receipt comes back."""
        self.register(self.a, "alice", "bob")
        alice = self.login(self.a, "alice")
        bob = self.login(self.b, "bob")
        alice.send("MSG|bob|hi")
        lines = alice.read_until_prefix("OK|MSG|")
        msgid = lines[-1].split("|")[2]
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{msgid}|hi")
        bob.send(f"ACK|{msgid}")
        self.assertTrue(alice.expect_event("DLV|").startswith(f"DLV|{msgid}|bob|"))

    def test_takeover_across_nodes(self):
        """Logging in on node b closes the session on node a with BYE|409,
        and node b delivers what was not acknowledged."""
        self.register(self.a, "alice", "bob")
        alice = self.login(self.a, "alice")
        bob = self.login(self.a, "bob")
        alice.send("MSG|bob|one")
        alice.read_until_prefix("OK|MSG|")
        self.assertEqual(bob.expect_event("R|"), "R|alice|1|one")
        bob_again = self.login(self.b, "bob")
        self.assertIn("BYE|409|logged in elsewhere", bob.read_until_closed())
        self.assertEqual(bob_again.expect_event("R|"), "R|alice|1|one")
        self.assertEqual(alice.command("WHO"), "OK|WHO|alice|bob")
