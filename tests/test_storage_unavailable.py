"""When the database is away, commands that need it get 503 (PROTOCOL.md).

The store fails such calls with ``StorageUnavailable`` (PostgreSQL stopped,
see tests/test_store_contract.py for the store's side); the session turns
that into ``ERR|VERB|503|storage unavailable`` instead of a 500, and the
server carries on once the database is back.
"""

from __future__ import annotations

from twisted.internet.defer import fail
from twisted.trial.unittest import SynchronousTestCase

from messenger.store import StorageUnavailable
from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import Harness


class _AwayStore(ImmediateSqliteStore):
    """A store whose database is away while ``away`` is set."""

    away = False

    def _run(self, function, *args):
        if self.away:
            return fail(StorageUnavailable("connection refused"))
        return super()._run(function, *args)


class StorageUnavailableTests(SynchronousTestCase):
    def setUp(self):
        self.store = _AwayStore()
        self.h = Harness(store=self.store)
        self.alice, self.bob = self.h.users("alice", "bob")

    def test_a_message_is_answered_503_while_the_database_is_away(self):
        """MSG gets ERR|MSG|503|storage unavailable, reaches nobody, and the
        reply order holds (the PING after it is answered after it)."""
        self.store.away = True
        self.assertEqual(
            self.alice.command("MSG|bob|hi", "PING"),
            ["ERR|MSG|503|storage unavailable", "OK|PING"],
        )
        self.assertEqual(self.bob.lines(), [])
        # The batcher logs the failed commit; that log line is expected.
        self.flushLoggedErrors(StorageUnavailable)

    def test_a_command_reading_the_store_is_answered_503(self):
        """A command that reads the store (HISTORY) gets 503 as well."""
        self.store.away = True
        self.assertEqual(
            self.alice.command("HISTORY|#general|5"), ["ERR|HISTORY|503|storage unavailable"]
        )

    def test_the_server_works_again_once_the_database_is_back(self):
        self.store.away = True
        self.alice.command("MSG|bob|lost")
        self.flushLoggedErrors(StorageUnavailable)
        self.store.away = False
        self.assertEqual(self.alice.command("MSG|bob|again"), ["OK|MSG|1"])
        self.assertEqual(self.bob.lines(), ["R|alice|1|again"])
