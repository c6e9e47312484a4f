"""messenger-admin export and import: the JSON format, both layouts, all or nothing.

Includes the older messenger's sample file imported and then used to log
in over the wire to a real ``twistd messenger``, and a round trip of a
whole database (with history) into a fresh one.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat

import argon2
from twisted.trial.unittest import TestCase

from messenger.admin import transfer
from messenger.admin.__main__ import main
from messenger.passwords import verify_hash
from messenger.store.engines import engine_for
from tests.test_admin import FAST, FAST_HASHER, REPO_ROOT, T0, AdminMixin

LEGACY_SAMPLE = "/work/shared/samples/legacy-database.json"
EXAMPLE = os.path.join(REPO_ROOT, "etc", "users.example.json")


def legacy(*users, message_list=(), notification_list=()):
    return {
        "user_list": [
            {
                "_User__username": u[0],
                "_User__password": u[1],
                **({"_User__email": u[2]} if len(u) > 2 else {}),
            }
            for u in users
        ],
        "message_list": list(message_list),
        "notification_list": list(notification_list),
    }


def export_doc(users=(), rooms=None, messages=None):
    doc = {"format": "messenger-export", "version": 1, "users": list(users)}
    if rooms is not None:
        doc["rooms"] = rooms
    if messages is not None:
        doc["messages"] = messages
    return doc


def user_entry(username, password="password1", **extra):
    return {"username": username, "password_hash": FAST_HASHER.hash(password), **extra}


def dump_tables(path):
    """Every row of every table that an export carries, for comparison
    (an SQLite path or a postgresql:// URI)."""
    conn = engine_for(path).connect(create=False)
    try:
        return {
            "users": conn.execute(
                "SELECT username, password_hash, display_name, created_at, last_seen, pending_count"
                " FROM users ORDER BY username"
            ).fetchall(),
            "rooms": conn.execute("SELECT name, created_at FROM rooms ORDER BY name").fetchall(),
            "room_members": conn.execute(
                "SELECT room, username, joined_at FROM room_members ORDER BY room, username"
            ).fetchall(),
            "messages": conn.execute(
                "SELECT id, sender, recipient, room, conversation, body, created_at, delivered_at, receipt_sent"
                " FROM messages ORDER BY id"
            ).fetchall(),
        }
    finally:
        conn.close()


class LegacyImportTests(AdminMixin, TestCase):
    def test_sample_file_of_the_older_messenger_imports_every_user(self):
        """The shared sample (clear-text 2-character passwords) imports; passwords become Argon2id hashes."""
        out = self.admin_ok("import", LEGACY_SAMPLE)
        self.assertIn("older messenger", out)
        self.assertIn("users: 4 created, 0 updated, 0 skipped", out)
        with open(LEGACY_SAMPLE, encoding="utf-8") as f:
            entries = json.load(f)["user_list"]
        for entry in entries:
            record = self.user(entry["_User__username"].lower())
            self.assertIsNotNone(record)
            self.assertTrue(record.password_hash.startswith("$argon2id$"))
            self.assertTrue(
                verify_hash(FAST_HASHER, record.password_hash, entry["_User__password"])
            )
            self.assertEqual(record.display_name, entry["_User__email"])
        members = self.successResultOf(self.store.load_memberships())["#general"]
        self.assertEqual(members, {e["_User__username"].lower() for e in entries})

    def test_legacy_email_becomes_the_cleaned_display_name_or_the_username(self):
        """_User__email is cleaned with clean_display_name; invalid or missing: the username."""
        path = self.write(
            "legacy.json",
            legacy(
                ("Alice", "pw", "  alice@example.org  "),
                ("bob", "pw", "bad|name"),
                ("carol", "pw", "   "),
                ("dave", "pw"),
                ("erin", "pw", "x" * 65),
                ("frank", "pw", "tab\tname"),
            ),
        )
        self.admin_ok("import", path)
        self.assertEqual(
            {
                name: self.user(name).display_name
                for name in ("alice", "bob", "carol", "dave", "erin", "frank")
            },
            {
                "alice": "alice@example.org",
                "bob": "bob",
                "carol": "carol",
                "dave": "dave",
                "erin": "erin",
                "frank": "frank",
            },
        )

    def test_legacy_file_with_messages_is_refused(self):
        """A legacy file whose message_list is not empty is refused, naming the list; nothing imported."""
        path = self.write("legacy.json", legacy(("alice", "pw"), message_list=[{"text": "hi"}]))
        status, _, err = self.admin("import", path)
        self.assertEqual(status, 1)
        self.assertIn('"message_list"', err)
        self.assertEqual(self.users(), [])

    def test_legacy_duplicate_username_in_another_case_is_refused(self):
        """Two legacy entries whose usernames differ only in case: error naming both entries."""
        path = self.write("legacy.json", legacy(("alice", "pw"), ("bob", "pw"), ("ALICE", "pw")))
        status, _, err = self.admin("import", path)
        self.assertEqual(status, 1)
        self.assertIn("user_list[2]", err)
        self.assertIn("user_list[0]", err)
        self.assertEqual(self.users(), [])

    def test_legacy_invalid_username_names_the_entry(self):
        """An invalid legacy username is reported with its entry."""
        path = self.write("legacy.json", legacy(("alice", "pw"), ("bad name", "pw")))
        status, _, err = self.admin("import", path)
        self.assertEqual(status, 1)
        self.assertIn("user_list[1]._User__username", err)

    def test_legacy_unusable_password_is_reported_without_echoing_it(self):
        """A legacy password the protocol cannot carry is refused; the clear text is not printed."""
        path = self.write("legacy.json", legacy(("alice", "sec|ret")))
        status, _, err = self.admin("import", path)
        self.assertEqual(status, 1)
        self.assertIn("user_list[0] (alice)._User__password", err)
        self.assertNotIn("sec|ret", err)


class ImportRulesTests(AdminMixin, TestCase):
    def test_on_conflict_fail_is_the_default_and_imports_nothing(self):
        """Existing usernames with --on-conflict fail (default): exit 1, names listed, nothing written."""
        self.add_user("alice", "Alice")
        path = self.write("in.json", export_doc([user_entry("alice"), user_entry("bob")]))
        status, _, err = self.admin("import", path)
        self.assertEqual(status, 1)
        self.assertIn("alice", err)
        self.assertIn("nothing was imported", err)
        self.assertEqual(self.users(), ["alice"])

    def test_on_conflict_skip_leaves_existing_accounts_untouched(self):
        """--on-conflict skip imports the others and leaves existing accounts (and memberships) as they were."""
        self.add_user("alice", "Alice", password="alice's own")
        before = self.user("alice")
        path = self.write(
            "in.json",
            export_doc(
                [user_entry("alice", "imported", display_name="Other Alice"), user_entry("bob")],
                rooms=[{"name": "#dev", "members": ["alice", "bob"]}],
            ),
        )
        out = self.admin_ok("import", path, "--on-conflict", "skip")
        self.assertIn("users: 1 created, 0 updated, 1 skipped", out)
        self.assertIn("skipped (already exist): alice", out)
        self.assertEqual(self.user("alice"), before)
        self.assertEqual(
            [m["username"] for m in self.admin_json("rooms", "members", "#dev")], ["bob"]
        )

    def test_on_conflict_update_replaces_hash_and_display_name(self):
        """--on-conflict update replaces password hash and display name, and revokes tokens."""
        self.add_user("alice", "Alice", password="old password")
        self.successResultOf(self.store.add_token("alice", "ef" * 32, T0 + 10**9))
        path = self.write(
            "in.json", export_doc([user_entry("alice", "new password", display_name="Alice New")])
        )
        out = self.admin_ok("import", path, "--on-conflict", "update")
        self.assertIn("users: 0 created, 1 updated, 0 skipped", out)
        record = self.user("alice")
        self.assertEqual(record.display_name, "Alice New")
        self.assertTrue(verify_hash(FAST_HASHER, record.password_hash, "new password"))
        self.assertIsNone(self.successResultOf(self.store.resume_record("alice", "ef" * 32, T0)))

    def test_import_is_all_or_nothing(self):
        """A problem found while importing (unknown room member) rolls back every user already written."""
        path = self.write(
            "in.json",
            export_doc(
                [user_entry("alice"), user_entry("bob")],
                rooms=[{"name": "#dev", "members": ["alice", "zed"]}],
            ),
        )
        status, _, err = self.admin("import", path)
        self.assertEqual(status, 1)
        self.assertIn("rooms[0] (#dev).members[1]", err)
        self.assertIn("'zed'", err)
        self.assertEqual(self.users(), [])
        self.assertEqual([r["name"] for r in self.admin_json("rooms", "list")], ["#general"])

    def test_room_members_may_be_existing_users_of_the_database(self):
        """A room member that is not in the file but has an account already is accepted."""
        self.add_user("carol")
        path = self.write(
            "in.json",
            export_doc(
                [user_entry("alice")], rooms=[{"name": "#dev", "members": ["alice", "carol"]}]
            ),
        )
        self.admin_ok("import", path)
        self.assertEqual(
            [m["username"] for m in self.admin_json("rooms", "members", "#dev")], ["alice", "carol"]
        )

    def test_dry_run_reports_and_writes_nothing(self):
        """--dry-run reports what it would do and leaves the database unchanged."""
        path = self.write(
            "in.json",
            export_doc([user_entry("alice")], rooms=[{"name": "#dev", "members": ["alice"]}]),
        )
        out = self.admin_ok("import", path, "--dry-run")
        self.assertIn("users: 1 created", out)
        self.assertIn("dry run: nothing was written", out)
        self.assertEqual(self.users(), [])

    def test_import_report_as_json(self):
        """import --json reports created, updated, skipped, rooms and messages as JSON."""
        self.add_user("alice")
        path = self.write(
            "in.json",
            export_doc(
                [user_entry("alice"), user_entry("bob")],
                rooms=[{"name": "#dev", "members": ["bob"]}],
            ),
        )
        report = self.admin_json("import", path, "--on-conflict", "skip")
        self.assertEqual(report["created"], ["bob"])
        self.assertEqual(report["skipped"], ["alice"])
        self.assertEqual(report["rooms_created"], ["#dev"])
        self.assertEqual(report["memberships_added"], 1)
        self.assertFalse(report["dry_run"])

    def test_import_reads_standard_input_with_dash(self):
        """import - reads the file from standard input."""
        self.admin_ok("import", "-", stdin=json.dumps(export_doc([user_entry("alice")])))
        self.assertEqual(self.users(), ["alice"])

    def test_example_users_file_imports(self):
        """etc/users.example.json is a valid import file."""
        out = self.admin_ok("import", EXAMPLE)
        self.assertIn("users: 3 created", out)
        self.assertEqual(
            [m["username"] for m in self.admin_json("rooms", "members", "#ops")], ["alice", "carol"]
        )


class MalformedFileTests(AdminMixin, TestCase):
    def assertRefused(self, content, *expected):
        path = self.write("bad.json", content)
        status, out, err = self.admin("import", path)
        self.assertEqual(status, 1, out)
        for text in expected:
            self.assertIn(text, err)
        self.assertEqual(self.users(), [])
        return err

    def test_invalid_json_reports_line_and_column(self):
        """A JSON syntax error is reported as FILE:LINE:COLUMN."""
        text = '{\n  "format": "messenger-export",\n  "version": 1,\n  "users": [\n    {"username": "alice",}\n  ]\n}\n'
        err = self.assertRefused(text, "bad.json:5:", "not valid JSON")
        self.assertIn(":5:26:", err)

    def test_a_file_that_is_not_utf8_is_reported_with_its_line(self):
        """Bytes that are not UTF-8 are reported with the line."""
        self.assertRefused(b'{\n"users": [\n"\xff"]}', "bad.json:3:", "not UTF-8")

    def test_missing_file_is_an_error(self):
        """import of a file that does not exist: exit 1."""
        status, _, err = self.admin("import", os.path.join(self.dir, "nope.json"))
        self.assertEqual(status, 1)
        self.assertIn("no such file", err)

    def test_top_level_must_be_an_object_of_a_known_layout(self):
        """A JSON array, or an object of neither layout, is refused."""
        self.assertRefused([1, 2], "must hold a JSON object")
        self.assertRefused({"people": []}, "neither a Messenger export", "user_list")

    def test_wrong_format_or_version_is_refused(self):
        """format must be messenger-export and version 1."""
        self.assertRefused({"format": "other", "version": 1, "users": []}, '"format"')
        self.assertRefused(
            {"format": "messenger-export", "version": 2, "users": []},
            '"version"',
            "reads version 1",
        )

    def test_bad_user_entry_is_named(self):
        """A wrong value names the entry, e.g. users[1] (bob).password_hash."""
        self.assertRefused(
            export_doc([user_entry("alice"), {"username": "bob", "password_hash": "hunter2"}]),
            "users[1] (bob).password_hash",
            "not an Argon2 hash",
        )

    def test_clear_text_password_is_refused_in_the_export_layout(self):
        """A 'password' key in Messenger's layout is refused: hashes only."""
        self.assertRefused(
            export_doc([{"username": "alice", "password": "secret"}]),
            "users[0]",
            "clear-text passwords are not accepted",
        )

    def test_unknown_key_is_refused(self):
        """A misspelt key is an error, not silently ignored."""
        self.assertRefused(
            export_doc([user_entry("alice", displayname="A")]),
            "users[0]",
            "unknown key 'displayname'",
        )

    def test_duplicate_username_is_refused(self):
        """The same username twice (in any case) names both entries."""
        self.assertRefused(
            export_doc([user_entry("alice"), user_entry("ALICE")]),
            "users[1] (alice)",
            "users[0] (alice)",
        )

    def test_bad_room_and_message_entries_are_named(self):
        """Rooms and messages are checked too, with the entry named."""
        self.assertRefused(
            export_doc([user_entry("alice")], rooms=[{"name": "general"}]), "rooms[0].name"
        )
        self.assertRefused(
            export_doc(
                [user_entry("alice")],
                messages=[
                    {
                        "id": 1,
                        "sender": "alice",
                        "recipient": "alice",
                        "room": "#general",
                        "body": "x",
                        "created_at": T0,
                    }
                ],
            ),
            "messages[0] (id 1)",
            "exactly one of",
        )
        self.assertRefused(
            export_doc(
                [user_entry("alice")],
                messages=[
                    {
                        "id": 1,
                        "sender": "alice",
                        "room": "#general",
                        "body": "   ",
                        "created_at": T0,
                    }
                ],
            ),
            "messages[0] (id 1).body",
        )
        self.assertRefused(
            export_doc(
                [user_entry("alice")],
                messages=[
                    {
                        "id": 1,
                        "sender": "alice",
                        "room": "#general",
                        "body": "x",
                        "created_at": "yesterday",
                    }
                ],
            ),
            "messages[0] (id 1).created_at",
        )

    def test_message_to_an_unknown_recipient_is_refused(self):
        """A direct message to someone neither in the file nor the database rolls everything back."""
        self.assertRefused(
            export_doc(
                [user_entry("alice")],
                messages=[
                    {"id": 1, "sender": "alice", "recipient": "zed", "body": "hi", "created_at": T0}
                ],
            ),
            "messages[0] (id 1).recipient",
            "'zed'",
        )


class ExportTests(AdminMixin, TestCase):
    def fill(self):
        """A database with something of everything an export carries."""
        self.add_user("alice", "Alice Liddell", password="alice password", now=T0)
        self.add_user("bob", "Bob", password="bob password", now=T0 + 1)
        self.add_user("carol", "Carol", now=T0 + 2)
        self.successResultOf(self.store.set_last_seen(["bob"], T0 + 500.25))
        self.successResultOf(self.store.join_room("#dev", "alice", T0 + 3))
        self.successResultOf(self.store.join_room("#dev", "carol", T0 + 4))
        self.successResultOf(self.store.add_token("alice", "12" * 32, T0 + 10**9))
        delivered = self.send("alice", "bob", "delivered, receipt owed", now=T0 + 10.125)
        self.ack("bob", delivered, now=T0 + 11.5)
        self.send("bob", "alice", "waiting | with a pipe", now=T0 + 12)
        self.send("carol", "#dev", "dev talk", now=T0 + 13)
        self.send("alice", "#general", "héllo, ünïcode ✓", now=T0 + 14)
        self.send("carol", "alice", "also waiting", now=T0 + 15)

    def test_round_trip_export_then_import_into_a_fresh_database(self):
        """export --with-history, then import --create into a new file: the same users, rooms, members and messages."""
        self.fill()
        exported = os.path.join(self.dir, "export.json")
        out = self.admin_ok("export", exported, "--with-history")
        self.assertIn("5 messages", out)
        fresh = os.path.join(self.dir, "fresh.sqlite3")
        report = self.admin_json("import", exported, "--create", db=fresh)
        self.assertEqual(report["created"], ["alice", "bob", "carol"])
        self.assertEqual(report["messages_imported"], 5)
        self.assertTrue(report["message_ids_kept"])
        self.assertEqual(dump_tables(fresh), dump_tables(self.db))
        # ... and exporting the copy gives the same file (but for its date)
        again = os.path.join(self.dir, "again.json")
        self.admin_ok("export", again, "--with-history", db=fresh)
        with open(exported, encoding="utf-8") as a, open(again, encoding="utf-8") as b:
            first, second = json.load(a), json.load(b)
        first.pop("exported_at")
        second.pop("exported_at")
        self.assertEqual(first, second)

    def test_imported_copy_keeps_waiting_messages_and_owed_receipts(self):
        """Waiting direct messages and undelivered receipts survive the round trip as such."""
        self.fill()
        exported = os.path.join(self.dir, "export.json")
        self.admin_ok("export", exported, "--with-history")
        fresh = os.path.join(self.dir, "fresh.sqlite3")
        self.admin_ok("import", exported, "--create", db=fresh)
        self.assertEqual(self.admin_json("stats", db=fresh), self.admin_json("stats"))
        self.assertEqual(self.admin_json("users", "list", db=fresh)[0]["pending"], 2)
        from messenger.store.sqlite import ImmediateSqliteStore

        copy = ImmediateSqliteStore(fresh)
        self.addCleanup(copy.close)
        receipts = self.successResultOf(copy.pending_receipts("alice"))
        self.assertEqual([(r.recipient, r.delivered_at) for r in receipts], [("bob", T0 + 11.5)])
        pending = self.successResultOf(copy.pending_messages("alice", 0, 10))
        self.assertEqual([m.body for m in pending], ["waiting | with a pipe", "also waiting"])

    def test_export_holds_hashes_and_never_session_tokens(self):
        """The export carries Argon2 hashes, not clear text, and no session tokens."""
        self.fill()
        exported = os.path.join(self.dir, "export.json")
        self.admin_ok("export", exported)
        with open(exported, encoding="utf-8") as f:
            text = f.read()
        document = json.loads(text)
        self.assertNotIn("alice password", text)
        self.assertNotIn("12" * 32, text)
        for entry in document["users"]:
            argon2.extract_parameters(entry["password_hash"])
        self.assertEqual(document["format"], "messenger-export")
        self.assertEqual(document["version"], 1)

    def test_export_without_history_has_no_messages(self):
        """Without --with-history the file has users and rooms only."""
        self.fill()
        exported = os.path.join(self.dir, "export.json")
        out = self.admin_ok("export", exported)
        self.assertNotIn("messages", out)
        with open(exported, encoding="utf-8") as f:
            document = json.load(f)
        self.assertNotIn("messages", document)
        self.assertEqual([u["username"] for u in document["users"]], ["alice", "bob", "carol"])
        self.assertEqual(
            {r["name"]: [m["username"] for m in r["members"]] for r in document["rooms"]},
            {"#dev": ["alice", "carol"], "#general": ["alice", "bob", "carol"]},
        )

    def test_export_file_is_private_and_not_overwritten_without_force(self):
        """The export file is mode 0600; an existing file is replaced only with --force."""
        self.fill()
        exported = self.write("export.json", "precious")
        status, _, err = self.admin("export", exported)
        self.assertEqual(status, 1)
        self.assertIn("--force", err)
        with open(exported, encoding="utf-8") as f:
            self.assertEqual(f.read(), "precious")
        self.admin_ok("export", exported, "--force")
        self.assertEqual(stat.S_IMODE(os.stat(exported).st_mode), 0o600)
        self.assertEqual([name for name in os.listdir(self.dir) if name.startswith(".export-")], [])

    def test_export_to_standard_output(self):
        """export - writes the JSON to standard output and the report to stderr."""
        self.fill()
        status, out, err = self.admin("export", "-")
        self.assertEqual(status, 0, err)
        self.assertEqual(len(json.loads(out)["users"]), 3)
        self.assertIn("exported 3 users", err)

    def test_history_into_a_database_with_messages_gets_new_ids(self):
        """Imported history whose ids the database already used is renumbered after its own, in order."""
        self.fill()
        exported = os.path.join(self.dir, "export.json")
        self.admin_ok("export", exported, "--with-history")
        other = os.path.join(self.dir, "other.sqlite3")
        source, copy = sqlite3.connect(self.db), sqlite3.connect(other)
        source.backup(copy)
        source.close()
        copy.close()
        self.admin_ok("users", "delete", "alice", "--yes", db=other)
        self.admin_ok("users", "delete", "bob", "--yes", db=other)
        self.admin_ok("users", "delete", "carol", "--yes", db=other)
        report = self.admin_json("import", exported, db=other)
        self.assertFalse(report["message_ids_kept"])
        rows = dump_tables(other)["messages"]
        room_ids = [row[0] for row in rows if row[5] in ("dev talk", "héllo, ünïcode ✓")]
        # two room messages survived the deletions (ids 3 and 4); 5 imported after id 5
        self.assertEqual([row[0] for row in rows], [3, 4, 6, 7, 8, 9, 10])
        self.assertEqual(room_ids[:2], [3, 4])
        self.assertEqual(
            [row[5] for row in rows[2:]],
            [
                "delivered, receipt owed",
                "waiting | with a pipe",
                "dev talk",
                "héllo, ünïcode ✓",
                "also waiting",
            ],
        )

    def test_import_into_a_missing_database_needs_create(self):
        """import without --create refuses a missing database; with it, a new one gets the schema."""
        path = self.write("in.json", export_doc([user_entry("alice")]))
        fresh = os.path.join(self.dir, "new.sqlite3")
        status, _, err = self.admin("import", path, db=fresh)
        self.assertEqual(status, 1)
        self.assertIn("import --create", err)
        self.assertFalse(os.path.exists(fresh))
        self.admin_ok("import", path, "--create", db=fresh)
        self.assertEqual(self.admin_json("users", "list", db=fresh)[0]["username"], "alice")
        self.assertEqual(
            [r["name"] for r in self.admin_json("rooms", "list", db=fresh)], ["#general"]
        )

    def test_failed_import_with_create_leaves_no_database_behind(self):
        """If an import with --create fails, the new database file is removed again."""
        path = self.write(
            "in.json", export_doc([user_entry("alice")], rooms=[{"name": "#x", "members": ["zed"]}])
        )
        fresh = os.path.join(self.dir, "new.sqlite3")
        status, _, _ = self.admin("import", path, "--create", db=fresh)
        self.assertEqual(status, 1)
        self.assertEqual([n for n in os.listdir(self.dir) if n.startswith("new.sqlite3")], [])


class ParseTests(TestCase):
    def test_parse_names_the_layout(self):
        """transfer.parse tells the two layouts apart from their content."""
        self.assertEqual(transfer.parse(json.dumps(legacy(("a", "pw"))).encode()).layout, "legacy")
        self.assertEqual(transfer.parse(json.dumps(export_doc()).encode()).layout, "messenger")

    def test_hash_passwords_forgets_the_clear_text(self):
        """After hash_passwords no clear-text password is left in the data."""
        data = transfer.parse(json.dumps(legacy(("a", "pw"), ("b", "p2"))).encode())
        transfer.hash_passwords(data, FAST_HASHER)
        self.assertEqual([u.password for u in data.users], [None, None])
        self.assertTrue(
            all(
                verify_hash(FAST_HASHER, u.password_hash, p)
                for u, p in zip(data.users, ["pw", "p2"])
            )
        )


class ImportedAccountLoginTests(AdminMixin, TestCase):
    """Needs the real server (tests/support/server.py)."""

    def test_imported_legacy_account_logs_in_over_the_wire(self):
        """Import the older messenger's sample, start the server on it, LOGIN with a 2-character password."""
        from tests.support.server import ServerProcess

        server = ServerProcess(self, start=False)
        self.admin_ok("import", LEGACY_SAMPLE, "--create", db=server.db)
        server.start()
        with open(LEGACY_SAMPLE, encoding="utf-8") as f:
            entry = json.load(f)["user_list"][1]
        client = server.client()
        username = entry["_User__username"].lower()
        reply = client.command(f"LOGIN|{entry['_User__username']}|{entry['_User__password']}")
        self.assertEqual(reply, f"OK|LOGIN|{username}|{entry['_User__email']}")
        self.assertTrue(client.command("ROOMS").startswith("OK|ROOMS|#general"))
        self.assertEqual(client.command("BCST|hello from an imported account"), "OK|BCST|1")
        other = server.client()
        self.assertEqual(other.command(f"LOGIN|{username}|wrong"), "ERR|LOGIN|401|bad credentials")

    def test_account_imported_while_the_server_runs_can_log_in(self):
        """An import into the database of a running server is seen at the next LOGIN."""
        from tests.support.server import ServerProcess

        server = ServerProcess(self)
        path = self.write("legacy.json", legacy(("newcomer", "pw", "New Comer")))
        self.admin_ok("import", path, db=server.db)
        client = server.client()
        self.assertEqual(client.command("LOGIN|newcomer|pw"), "OK|LOGIN|newcomer|New Comer")

    def test_account_imported_while_the_server_runs_is_in_its_rooms_at_login(self):
        """Room memberships written by messenger-admin are taken from the store at LOGIN, without a restart."""
        from tests.support.server import ServerProcess

        server = ServerProcess(self)
        path = self.write("legacy.json", legacy(("newcomer", "pw", "New Comer")))
        self.admin_ok("import", path, db=server.db)
        client = server.client()
        client.command("LOGIN|newcomer|pw")
        self.assertEqual(client.command("ROOMS"), "OK|ROOMS|#general")
        self.assertEqual(client.command("MEMBERS|#general"), "OK|MEMBERS|#general|newcomer")


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so progress bars are drawn."""

    def isatty(self):
        return True


class ProgressTests(AdminMixin, TestCase):
    def run_on_terminal(self, *argv):
        out, err = io.StringIO(), _Terminal()
        status = main(["--db", self.db, *FAST, *argv], stdin=io.StringIO(), stdout=out, stderr=err)
        self.assertEqual(status, 0, err.getvalue())
        return out.getvalue(), err.getvalue()

    def test_progress_bars_show_on_a_terminal(self):
        """Import (hashing, then writing) and export draw a progress bar when stderr is a terminal."""
        path = self.write("legacy.json", legacy(*[(f"user{i}", "pw") for i in range(20)]))
        out, err = self.run_on_terminal("import", path)
        self.assertIn("hashing passwords", err)
        self.assertIn("importing", err)
        self.assertNotIn("hashing", out)
        _, err = self.run_on_terminal(
            "export", os.path.join(self.dir, "out.json"), "--with-history"
        )
        self.assertIn("exporting", err)

    def test_no_progress_bar_when_not_a_terminal(self):
        """Without a terminal (cron, pipes) nothing but the report is written."""
        path = self.write("legacy.json", legacy(("alice", "pw")))
        status, out, err = self.admin("import", path)
        self.assertEqual((status, err), (0, ""))
