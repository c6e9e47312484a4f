"""A real ``twistd messenger --db postgresql://...`` and PostgreSQL going away.

PROTOCOL.md: while the database is away, commands that need storage get
``ERR|VERB|503|storage unavailable``; nothing acknowledged is lost; the
node recovers by itself.  Each test starts a PostgreSQL of its own (it is
stopped and started under the server) and a real twistd on it.
"""

from __future__ import annotations

import pytest
from twisted.trial.unittest import SynchronousTestCase

from tests.support.postgres import PostgresServer
from tests.support.server import ServerProcess
from tests.test_integration import login, signup
from tests.test_store_contract import _postgres_or_skip

pytestmark = [pytest.mark.services, pytest.mark.slow]


class PostgresOutageTests(SynchronousTestCase):
    def setUp(self) -> None:
        _postgres_or_skip()
        self.postgres = PostgresServer()
        self.addCleanup(self.postgres.cleanup)
        self.postgres.start()
        self.uri = self.postgres.create_database("messenger")
        self.server = ServerProcess(self, "--db", self.uri)

    def test_a_server_on_postgresql_delivers_and_keeps_messages(self):
        """The protocol's basic round trip works on PostgreSQL: a message is
        stored, delivered, acknowledged, and its receipt reaches the sender."""
        alice, bob = self.server.client(), self.server.client()
        signup(alice, "alice")
        signup(bob, "bob")
        login(alice, "alice")
        login(bob, "bob")
        self.assertEqual(alice.command("MSG|bob|hello"), "OK|MSG|1")
        self.assertEqual(bob.expect_event("R|"), "R|alice|1|hello")
        bob.send("ACK|1")
        self.assertTrue(alice.expect_event("DLV|").startswith("DLV|1|bob|"))

    def test_storage_unavailable_while_postgresql_is_away_then_recovery(self):
        """PostgreSQL stopped: MSG gets 503 and the node stays up; started
        again: the node works again by itself, and the message accepted
        before the outage is still waiting for its recipient."""
        alice, bob = self.server.client(), self.server.client()
        signup(alice, "alice")
        signup(bob, "bob")
        login(alice, "alice")
        self.assertEqual(alice.command("MSG|bob|before"), "OK|MSG|1")
        self.postgres.stop()
        self.assertEqual(alice.command("MSG|bob|during"), "ERR|MSG|503|storage unavailable")
        self.assertEqual(alice.command("MSG|bob|during"), "ERR|MSG|503|storage unavailable")
        self.assertEqual(alice.command("PING"), "OK|PING")
        self.postgres.start()
        self.assertEqual(alice.command("MSG|bob|after"), "OK|MSG|2")
        reply = bob.command("LOGIN|bob|password1")
        self.assertTrue(reply.startswith("OK|LOGIN|bob"), reply)
        self.assertEqual(bob.expect_event("R|"), "R|alice|1|before")
        self.assertEqual(bob.expect_event("R|"), "R|alice|2|after")
