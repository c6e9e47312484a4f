"""messenger-admin --db postgresql://...: the admin tests again, on PostgreSQL.

The test classes of tests/test_admin.py and tests/test_admin_transfer.py
run unchanged with the database swapped: each test gets an empty schema of
its own on the session's PostgreSQL (tests/support/postgres.py), filled by
the server's own store on that engine.  Tests about SQLite files (a missing
file, a directory, a file that is not a database, a locked file) stay
SQLite-only; their PostgreSQL counterparts are at the end.
"""

from __future__ import annotations

import pytest
from twisted.trial.unittest import TestCase

from messenger.store import prepare_database
from messenger.store.database import ImmediateStore
from messenger.store.engines import engine_for
from tests import test_admin, test_admin_transfer
from tests.support.postgres import require_postgres

pytestmark = pytest.mark.services


class PostgresAdminMixin:
    """AdminMixin's database, on PostgreSQL."""

    def setUp(self):
        super().setUp()  # the temporary directory and an SQLite store, replaced here
        self.store.close()
        self.db = require_postgres().fresh_schema()
        prepare_database(self.db)
        self.store = ImmediateStore(engine_for(self.db))
        self.addCleanup(self.store.close)


class UsersCommandPostgresTests(PostgresAdminMixin, test_admin.UsersCommandTests):
    pass


class RoomsAndStatsPostgresTests(PostgresAdminMixin, test_admin.RoomsAndStatsTests):
    pass


class LegacyImportPostgresTests(PostgresAdminMixin, test_admin_transfer.LegacyImportTests):
    pass


class ImportRulesPostgresTests(PostgresAdminMixin, test_admin_transfer.ImportRulesTests):
    pass


class ImportedAccountLoginPostgresTests(
    PostgresAdminMixin, test_admin_transfer.ImportedAccountLoginTests
):
    pass


class ExportPostgresTests(PostgresAdminMixin, test_admin_transfer.ExportTests):
    def test_history_into_a_database_with_messages_gets_new_ids(self):
        """Imported history whose ids the database already used is renumbered
        after the highest id the database ever gave (its sequence), in order."""
        self.fill()
        exported = f"{self.dir}/export.json"
        self.admin_ok("export", exported, "--with-history")
        for name in ("alice", "bob", "carol"):
            self.admin_ok("users", "delete", name, "--yes")
        report = self.admin_json("import", exported)
        self.assertFalse(report["message_ids_kept"])
        rows = test_admin_transfer.dump_tables(self.db)["messages"]
        # two room messages survived the deletions (ids 3 and 4); 5 imported after id 5
        self.assertEqual([row[0] for row in rows], [3, 4, 6, 7, 8, 9, 10])


class PostgresDatabaseTests(PostgresAdminMixin, test_admin.AdminMixin, TestCase):
    """What differs on PostgreSQL: no file, a server to reach."""

    def test_an_empty_database_is_refused_without_create(self):
        """A PostgreSQL database without Messenger's schema is refused, with
        the way out in the message, and left untouched."""
        self.db = require_postgres().fresh_schema()
        status, _, err = self.admin("users", "list")
        self.assertEqual(status, 1)
        self.assertIn("is empty: start the server once", err)

    def test_import_create_puts_the_schema_into_an_empty_database(self):
        """import --create works on an empty PostgreSQL database too."""
        self.add_user("alice")
        exported = f"{self.dir}/export.json"
        self.admin_ok("export", exported)
        self.db = require_postgres().fresh_schema()
        report = self.admin_json("import", exported, "--create")
        self.assertEqual(report["created"], ["alice"])
        self.assertEqual(self.users(), ["alice"])

    def test_an_unreachable_server_is_one_clear_line(self):
        """A URI nobody answers on gives one line naming the database
        (without its password), and status 1."""
        status, _, err = self.admin(
            "users", "list", db="postgresql://messenger:secret@127.0.0.1:1/messenger"
        )
        self.assertEqual(status, 1)
        self.assertIn("cannot reach the database postgresql://messenger:***@127.0.0.1:1/", err)
        self.assertNotIn("secret", err)
        self.assertEqual(len(err.strip().splitlines()), 1)
