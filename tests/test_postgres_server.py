"""A real ``twistd messenger --db postgresql://...`` and PostgreSQL going away.

PROTOCOL.md: while the database is away, commands that need storage get
``ERR|VERB|503|storage unavailable``; nothing acknowledged is lost; the
node recovers by itself.  Each test starts a PostgreSQL of its own (it is
stopped and started under the server) and a real twistd on it.
"""

from __future__ import annotations

import tempfile
import threading

import pytest
from twisted.trial.unittest import SynchronousTestCase

from messenger.store import prepare_database
from messenger.store.database import ImmediateStore
from messenger.store.engines import engine_for
from messenger.store.interface import NewMessage
from tests.support.postgres import PostgresServer, require_postgres, skip_unless_postgres
from tests.support.server import HOST, ServerProcess, run_twistd
from tests.test_integration import login, signup

pytestmark = [pytest.mark.services, pytest.mark.slow]


class PostgresOutageTests(SynchronousTestCase):
    def setUp(self) -> None:
        skip_unless_postgres()
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


class PostgresStartTests(SynchronousTestCase):
    def test_an_unreachable_postgresql_fails_the_start_in_one_line(self):
        """--db with a PostgreSQL nobody answers: exit status 1, one clear
        line naming the database without its password, no traceback."""
        with tempfile.TemporaryDirectory() as directory:
            result = run_twistd(
                ["-n", "--pidfile", "", "messenger", "--listen", f"tcp:0:interface={HOST}",
                 "--db", "postgresql://messenger:secret@127.0.0.1:1/messenger"],
                cwd=directory,
                timeout=30,
            )  # fmt: skip
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertIn("cannot use the database postgresql://messenger:***@127.0.0.1:1/", output)
        self.assertNotIn("secret", output)
        self.assertNotIn("Traceback", output)


def test_a_reader_paging_by_id_never_skips_a_message_committed_by_another_node():
    """Two nodes commit batches at the same time while a third pages the
    recipient's pending messages by id (after_id = the last id it saw): it
    sees every message exactly once, because ids are allocated and
    committed under the write lock, so no id below one already visible can
    appear later."""
    uri = require_postgres().fresh_schema()
    prepare_database(uri)
    setup = ImmediateStore(engine_for(uri))
    for name in ("alice", "bob"):
        setup.create_user(name, "h", name, 0.0)
    setup.close()
    batches, per_batch = 40, 5
    errors: list[BaseException] = []

    def write(node: int) -> None:
        store = ImmediateStore(engine_for(uri))
        try:
            for b in range(batches):
                messages = [
                    NewMessage("alice", "bob", None, f"{node}.{b}.{i}") for i in range(per_batch)
                ]
                store.commit_batch(messages, [], [], 1.0, 10**6).addErrback(
                    lambda f: errors.append(f.value)
                )
        finally:
            store.close()

    writers = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    reader = ImmediateStore(engine_for(uri))
    seen: list[int] = []

    def page() -> None:
        rows: list = []
        reader.pending_messages("bob", seen[-1] if seen else 0, 1000).addCallback(rows.extend)
        seen.extend(m.msgid for m in rows)

    for w in writers:
        w.start()
    while any(w.is_alive() for w in writers):
        page()
    page()
    reader.close()
    assert errors == []
    assert len(seen) == len(set(seen)) == 2 * batches * per_batch
