"""messenger-admin: every subcommand against a real temporary database.

The commands run in-process through ``main(argv, stdin, stdout, stderr)``
(and once as a real subprocess); the database is made and filled by the
server's own store (:class:`ImmediateSqliteStore`), so the admin tool is
checked against exactly what the server writes.  Hashing uses the cheapest
Argon2 cost to stay fast.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

import argon2
from twisted.trial.unittest import SynchronousTestCase, TestCase

from messenger.admin.__main__ import main
from messenger.passwords import make_hasher, verify_hash
from messenger.store.interface import NewMessage
from messenger.store.sqlite import ImmediateSqliteStore

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ("--argon2-time-cost", "1", "--argon2-memory-cost", "8")
FAST_HASHER = make_hasher(1, 8)
T0 = 1795339800.0  # 2026-11-22T09:30:00Z


class _Stdin(io.StringIO):
    """Standard input with a binary ``buffer``, as sys.stdin has."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self._buffer = io.BytesIO(text.encode("utf-8"))

    @property
    def buffer(self) -> io.BytesIO:
        return self._buffer


if TYPE_CHECKING:
    _TestCaseBase = SynchronousTestCase
else:
    _TestCaseBase = object


class AdminMixin(_TestCaseBase):
    """A fresh database per test and a way to run messenger-admin on it.

    A mixin (not a TestCase) so that other test modules can use it without
    pytest collecting these tests twice.
    """

    def setUp(self):
        # Not trial's mktemp(): under pytest it would write into the checkout.
        self.dir = tempfile.mkdtemp(prefix="messenger-admin-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.db = os.path.join(self.dir, "messenger.sqlite3")
        self.store = ImmediateSqliteStore(self.db)
        self.successResultOf(self.store.open())
        self.addCleanup(self.store.close)

    # -- running the tool ---------------------------------------------------

    def admin(self, *argv: str, stdin: str = "", db: str | None = None):
        """Run ``messenger-admin --db DB <fast hashing> argv``: (status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        args = ["--db", db or self.db, *FAST, *argv]
        status = main(args, stdin=_Stdin(stdin), stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def admin_ok(self, *argv: str, **kwargs) -> str:
        status, out, err = self.admin(*argv, **kwargs)
        self.assertEqual(status, 0, f"messenger-admin {' '.join(argv)} failed: {err}")
        return out

    def admin_json(self, *argv: str, **kwargs):
        return json.loads(self.admin_ok(*argv, "--json", **kwargs))

    def write(self, name: str, content) -> str:
        path = os.path.join(self.dir, name)
        if isinstance(content, bytes):
            with open(path, "wb") as f:
                f.write(content)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(content if isinstance(content, str) else json.dumps(content))
        return path

    def password_file(self, password: str) -> str:
        return self.write("password.txt", password + "\n")

    # -- filling the database the way the server does ----------------------

    def add_user(
        self,
        username: str,
        display_name: str | None = None,
        password: str = "password1",
        now: float = T0,
    ) -> None:
        created = self.successResultOf(
            self.store.create_user(
                username, FAST_HASHER.hash(password), display_name or username.title(), now
            )
        )
        self.assertTrue(created)

    def send(self, sender: str, target: str, body: str, now: float = T0) -> int:
        is_room = target.startswith("#")
        message = NewMessage(sender, None if is_room else target, target if is_room else None, body)
        result = self.successResultOf(self.store.commit_batch([message], [], [], now, 10000))
        return result.messages[0].msgid

    def ack(self, recipient: str, msgid: int, now: float = T0 + 1) -> None:
        self.successResultOf(self.store.commit_batch([], [(recipient, msgid)], [], now, 10000))

    def user(self, username: str):
        return self.successResultOf(self.store.get_user(username))

    def users(self):
        return [u["username"] for u in self.admin_json("users", "list")]


class UsersCommandTests(AdminMixin, TestCase):
    def test_users_add_creates_an_account_that_is_a_member_of_general(self):
        """users add creates the account (lower-cased) in #general, with the display name given."""
        out = self.admin_ok(
            "users",
            "add",
            "Alice",
            "--display-name",
            "  Alice Liddell ",
            "--password-file",
            self.password_file("correct horse"),
        )
        self.assertIn("created alice", out)
        record = self.user("alice")
        self.assertEqual(record.display_name, "Alice Liddell")
        self.assertIn("alice", self.successResultOf(self.store.load_memberships())["#general"])

    def test_users_add_hash_uses_the_argon2_cost_options(self):
        """The stored hash is Argon2id with the --argon2-* costs and verifies the password."""
        self.admin_ok(
            "users", "add", "alice", "--password-file", self.password_file("correct horse")
        )
        password_hash = self.user("alice").password_hash
        parameters = argon2.extract_parameters(password_hash)
        self.assertEqual(
            (parameters.type, parameters.time_cost, parameters.memory_cost), (argon2.Type.ID, 1, 8)
        )
        self.assertTrue(verify_hash(FAST_HASHER, password_hash, "correct horse"))
        self.assertNotIn("correct horse", password_hash)

    def test_users_add_display_name_defaults_to_the_username(self):
        """Without --display-name the display name is the username."""
        self.admin_ok("users", "add", "bob", "--password-file", self.password_file("password1"))
        self.assertEqual(self.user("bob").display_name, "bob")

    def test_users_add_prompts_twice_for_the_password_without_echo(self):
        """Without --password-file the password is asked twice through getpass (no echo)."""
        prompts = []

        def fake_getpass(prompt="Password: "):
            prompts.append(prompt)
            return "typed password"

        self.patch(getpass, "getpass", fake_getpass)
        self.admin_ok("users", "add", "alice")
        self.assertEqual(len(prompts), 2)
        self.assertTrue(
            verify_hash(FAST_HASHER, self.user("alice").password_hash, "typed password")
        )

    def test_users_add_with_two_different_passwords_creates_nothing(self):
        """Two different answers to the password prompts: error, no account."""
        answers = iter(["first password", "second password"])
        self.patch(getpass, "getpass", lambda prompt="": next(answers))
        status, _, err = self.admin("users", "add", "alice")
        self.assertEqual(status, 1)
        self.assertIn("differ", err)
        self.assertIsNone(self.user("alice"))

    def test_users_add_reads_the_password_from_stdin_with_dash(self):
        """--password-file - reads the first line of standard input."""
        self.admin_ok(
            "users", "add", "alice", "--password-file", "-", stdin="from stdin 1\nignored\n"
        )
        self.assertTrue(verify_hash(FAST_HASHER, self.user("alice").password_hash, "from stdin 1"))

    def test_users_add_refuses_a_password_shorter_than_the_minimum(self):
        """Passwords shorter than --min-password-length (8) are refused."""
        status, _, err = self.admin(
            "users", "add", "alice", "--password-file", self.password_file("short")
        )
        self.assertEqual(status, 1)
        self.assertIn("shorter than 8", err)
        self.assertIsNone(self.user("alice"))
        self.admin_ok(
            "--min-password-length",
            "4",
            "users",
            "add",
            "alice",
            "--password-file",
            self.password_file("short"),
        )

    def test_users_add_refuses_a_password_with_a_pipe(self):
        """A password the protocol cannot carry (with '|') is refused."""
        status, _, err = self.admin(
            "users", "add", "alice", "--password-file", self.password_file("pass|word1")
        )
        self.assertEqual(status, 1)
        self.assertIn("password", err)

    def test_users_add_refuses_an_existing_username_in_any_case(self):
        """users add of a taken username (case-insensitive) fails and changes nothing."""
        self.add_user("alice", "Alice")
        before = self.user("alice")
        status, _, err = self.admin(
            "users", "add", "ALICE", "--password-file", self.password_file("password2")
        )
        self.assertEqual(status, 1)
        self.assertIn("exists already", err)
        self.assertEqual(self.user("alice"), before)

    def test_users_add_refuses_an_invalid_username(self):
        """A username outside 1-32 of A-Z a-z 0-9 _ . - is refused."""
        for name in ("al ice", "a" * 33, "#room", "élise"):
            status, _, err = self.admin(
                "users", "add", name, "--password-file", self.password_file("password1")
            )
            self.assertEqual(status, 1, name)
            self.assertIn("not a valid username", err)

    def test_users_list_shows_name_display_created_last_seen_and_pending(self):
        """users list: username, display name, created, last seen, waiting direct messages."""
        self.add_user("alice", "Alice Liddell", now=T0)
        self.add_user("bob", "Bob", now=T0 + 60)
        self.successResultOf(self.store.set_last_seen(["alice"], T0 + 3600))
        self.send("alice", "bob", "one")
        self.send("alice", "bob", "two")
        out = self.admin_ok("users", "list")
        lines = out.splitlines()
        self.assertEqual(
            lines[0].split(), ["USERNAME", "DISPLAY", "NAME", "CREATED", "LAST", "SEEN", "PENDING"]
        )
        self.assertEqual(
            lines[1].split(),
            [
                "alice",
                "Alice",
                "Liddell",
                "2026-11-22T09:30:00.000Z",
                "2026-11-22T10:30:00.000Z",
                "0",
            ],
        )
        self.assertEqual(lines[2].split(), ["bob", "Bob", "2026-11-22T09:31:00.000Z", "-", "2"])

    def test_users_list_json(self):
        """users list --json gives the same facts as JSON."""
        self.add_user("alice", "Alice", now=T0)
        self.assertEqual(
            self.admin_json("users", "list"),
            [
                {
                    "username": "alice",
                    "display_name": "Alice",
                    "created_at": T0,
                    "last_seen": None,
                    "pending": 0,
                }
            ],
        )

    def test_users_delete_asks_for_confirmation_and_no_keeps_the_account(self):
        """users delete asks; any answer but y/yes deletes nothing (exit 1)."""
        self.add_user("alice")
        status, _, err = self.admin("users", "delete", "alice", stdin="n\n")
        self.assertEqual(status, 1)
        self.assertIn("Delete alice", err)
        self.assertIn("not deleted", err)
        self.assertIsNotNone(self.user("alice"))
        status, _, _ = self.admin("users", "delete", "alice", stdin="")  # end of input: no
        self.assertEqual(status, 1)
        self.assertIsNotNone(self.user("alice"))

    def test_users_delete_yes_answer_deletes(self):
        """Answering y to the confirmation deletes the account."""
        self.add_user("alice")
        self.admin_ok("users", "delete", "alice", stdin="y\n")
        self.assertIsNone(self.user("alice"))

    def test_users_delete_removes_tokens_memberships_and_direct_messages(self):
        """users delete --yes: account, tokens, memberships and its direct messages go; room messages stay."""
        for name in ("alice", "bob", "carol"):
            self.add_user(name)
        self.successResultOf(self.store.join_room("#dev", "alice", T0))
        self.successResultOf(self.store.add_token("alice", "ab" * 32, T0 + 10**9))
        self.send("alice", "bob", "to bob, waiting")
        self.send("carol", "alice", "to alice")
        self.send("alice", "#general", "in the room")
        self.send("carol", "bob", "carol to bob")
        self.assertEqual(self.user("bob").pending_count, 2)
        self.admin_ok("users", "delete", "ALICE", "--yes")
        self.assertIsNone(self.user("alice"))
        self.assertIsNone(self.successResultOf(self.store.resume_record("alice", "ab" * 32, T0)))
        memberships = self.successResultOf(self.store.load_memberships())
        self.assertNotIn("alice", memberships["#general"] | memberships["#dev"])
        self.assertEqual(self.user("bob").pending_count, 1)
        bodies = [
            m.body for m in self.successResultOf(self.store.history("#general", 10, None, None))
        ]
        self.assertEqual(bodies, ["in the room"])
        self.assertEqual(
            self.successResultOf(self.store.history("dm:alice:bob", 10, None, None)), []
        )
        self.assertEqual(
            self.successResultOf(self.store.history("dm:alice:carol", 10, None, None)), []
        )
        self.assertEqual(
            len(self.successResultOf(self.store.history("dm:bob:carol", 10, None, None))), 1
        )

    def test_users_delete_of_an_unknown_user_is_an_error(self):
        """users delete of a user that does not exist: exit 1, clear message."""
        status, _, err = self.admin("users", "delete", "nobody", "--yes")
        self.assertEqual(status, 1)
        self.assertIn("no user nobody", err)

    def test_users_passwd_sets_a_new_hash_and_revokes_tokens(self):
        """users passwd replaces the hash and revokes every session token."""
        self.add_user("alice", password="old password")
        self.successResultOf(self.store.add_token("alice", "cd" * 32, T0 + 10**9))
        self.admin_ok(
            "users", "passwd", "alice", "--password-file", self.password_file("new password")
        )
        password_hash = self.user("alice").password_hash
        self.assertTrue(verify_hash(FAST_HASHER, password_hash, "new password"))
        self.assertFalse(verify_hash(FAST_HASHER, password_hash, "old password"))
        self.assertIsNone(self.successResultOf(self.store.resume_record("alice", "cd" * 32, T0)))

    def test_users_passwd_of_an_unknown_user_is_an_error(self):
        """users passwd of a user that does not exist: exit 1, before any prompt."""
        self.patch(getpass, "getpass", lambda prompt="": self.fail("prompted"))
        status, _, err = self.admin("users", "passwd", "nobody")
        self.assertEqual(status, 1)
        self.assertIn("no user nobody", err)

    def test_users_rename_display_changes_the_display_name(self):
        """users rename-display sets the stripped display name."""
        self.add_user("alice", "Alice")
        self.admin_ok("users", "rename-display", "alice", "  Alice Liddell  ")
        self.assertEqual(self.user("alice").display_name, "Alice Liddell")

    def test_users_rename_display_refuses_an_invalid_name(self):
        """A display name with '|' or a control character, or too long, is refused."""
        self.add_user("alice", "Alice")
        for name in ("a|b", "tab\there", "x" * 65, "   "):
            status, _, err = self.admin("users", "rename-display", "alice", name)
            self.assertEqual(status, 1, name)
            self.assertIn("bad display name", err)
        self.assertEqual(self.user("alice").display_name, "Alice")

    def test_users_rename_display_of_an_unknown_user_is_an_error(self):
        """users rename-display of a user that does not exist: exit 1."""
        status, _, err = self.admin("users", "rename-display", "nobody", "Nobody")
        self.assertEqual(status, 1)
        self.assertIn("no user nobody", err)


class RoomsAndStatsTests(AdminMixin, TestCase):
    def test_rooms_list_counts_members_and_messages(self):
        """rooms list: every room with its member and message counts."""
        self.add_user("alice")
        self.add_user("bob")
        self.successResultOf(self.store.join_room("#dev", "alice", T0 + 5))
        self.send("alice", "#dev", "hello dev")
        self.send("alice", "#general", "hello all")
        self.send("bob", "#general", "hi")
        self.assertEqual(
            self.admin_json("rooms", "list"),
            [
                {"name": "#dev", "created_at": T0 + 5, "members": 1, "messages": 1},
                {"name": "#general", "created_at": 0, "members": 2, "messages": 2},
            ],
        )
        lines = self.admin_ok("rooms", "list").splitlines()
        self.assertEqual(lines[0].split(), ["ROOM", "MEMBERS", "MESSAGES", "CREATED"])
        self.assertEqual(lines[1].split()[:3], ["#dev", "1", "1"])

    def test_rooms_members_lists_the_members(self):
        """rooms members ROOM lists usernames (the room name in any case)."""
        self.add_user("bob")
        self.add_user("alice")
        out = self.admin_ok("rooms", "members", "#GENERAL")
        self.assertEqual(
            [line.split()[0] for line in out.splitlines()], ["USERNAME", "alice", "bob"]
        )
        self.assertEqual(
            [m["username"] for m in self.admin_json("rooms", "members", "#general")],
            ["alice", "bob"],
        )

    def test_rooms_members_of_an_unknown_room_is_an_error(self):
        """rooms members of a room that does not exist: exit 1."""
        status, _, err = self.admin("rooms", "members", "#nowhere")
        self.assertEqual(status, 1)
        self.assertIn("no room #nowhere", err)

    def test_rooms_members_of_an_invalid_room_name_is_an_error(self):
        """rooms members with a name that is not a room: exit 1."""
        status, _, err = self.admin("rooms", "members", "general")
        self.assertEqual(status, 1)
        self.assertIn("not a valid room name", err)

    def test_stats_counts_accounts_rooms_messages_and_waiting(self):
        """stats: accounts, rooms, messages stored, waiting, oldest waiting."""
        self.add_user("alice")
        self.add_user("bob")
        first = self.send("alice", "bob", "delivered", now=T0 + 10)
        self.ack("bob", first)
        self.send("alice", "bob", "waiting 1", now=T0 + 20)
        self.send("bob", "alice", "waiting 2", now=T0 + 30)
        self.send("alice", "#general", "room message", now=T0 + 40)
        self.assertEqual(
            self.admin_json("stats"),
            {
                "accounts": 2,
                "rooms": 1,
                "messages": 4,
                "waiting": 2,
                "oldest_waiting": T0 + 20,
            },
        )
        out = self.admin_ok("stats")
        self.assertIn("messages waiting for delivery: 2", out)
        self.assertIn("oldest waiting message:        2026-11-22T09:30:20.000Z", out)

    def test_stats_of_an_empty_database(self):
        """stats of a fresh database: #general only, nothing waiting."""
        self.assertEqual(
            self.admin_json("stats"),
            {
                "accounts": 0,
                "rooms": 1,
                "messages": 0,
                "waiting": 0,
                "oldest_waiting": None,
            },
        )
        self.assertIn("oldest waiting message:        -", self.admin_ok("stats"))


class DatabaseErrorTests(AdminMixin, TestCase):
    def test_missing_database_is_an_error_and_is_not_created(self):
        """Every command on a --db that does not exist: exit 1, clear message, no file made."""
        missing = os.path.join(self.dir, "missing.sqlite3")
        for argv in (
            ["users", "list"],
            ["users", "add", "x", "--password-file", self.password_file("password1")],
            ["rooms", "list"],
            ["stats"],
            ["export", os.path.join(self.dir, "out.json")],
            [
                "import",
                self.write("in.json", {"format": "messenger-export", "version": 1, "users": []}),
            ],
        ):
            status, out, err = self.admin(*argv, db=missing)
            self.assertEqual(status, 1, argv)
            self.assertIn(f"no database at {missing}", err)
            self.assertFalse(os.path.exists(missing), argv)

    def test_a_file_that_is_not_sqlite_is_refused(self):
        """A --db that is not an SQLite file: exit 1, clear message, file unchanged."""
        path = self.write("notes.txt", "these are not the tables you are looking for\n" * 100)
        status, _, err = self.admin("stats", db=path)
        self.assertEqual(status, 1)
        self.assertIn("not an SQLite database", err)
        with open(path, encoding="utf-8") as f:
            self.assertTrue(f.read().startswith("these are not"))

    def test_an_sqlite_database_of_another_program_is_refused(self):
        """An SQLite file without Messenger's schema: exit 1, no tables added."""
        path = os.path.join(self.dir, "other.sqlite3")
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE things (x)")
        conn.commit()
        conn.close()
        status, _, err = self.admin("users", "list", db=path)
        self.assertEqual(status, 1)
        self.assertIn("not a Messenger one", err)

    def test_a_directory_is_refused(self):
        """A --db that is a directory: exit 1."""
        status, _, err = self.admin("stats", db=self.dir)
        self.assertEqual(status, 1)
        self.assertIn("is a directory", err)

    def test_locked_database_gives_a_clear_error_after_the_busy_timeout(self):
        """A write while another process holds the write lock fails after --busy-timeout, exit 1."""
        self.add_user("alice", "Alice")
        holder = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE users SET display_name = 'held' WHERE username = 'alice'")
        started = time.monotonic()
        status, _, err = self.admin(
            "--busy-timeout", "0.2", "users", "rename-display", "alice", "Alice L"
        )
        self.assertEqual(status, 1)
        self.assertIn("is locked by another process", err)
        self.assertIn("--busy-timeout", err)
        self.assertLess(time.monotonic() - started, 5)
        status, _, err = self.admin(
            "--busy-timeout",
            "0.2",
            "users",
            "add",
            "bob",
            "--password-file",
            self.password_file("password1"),
        )
        self.assertEqual(status, 1)
        self.assertIn("is locked", err)
        holder.execute("ROLLBACK")
        self.admin_ok("users", "rename-display", "alice", "Alice L")
        self.assertEqual(self.user("alice").display_name, "Alice L")

    def test_reading_commands_do_not_wait_for_a_writer(self):
        """list, stats and export work while another connection holds the write lock (WAL)."""
        self.add_user("alice", "Alice")
        holder = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE users SET display_name = 'uncommitted' WHERE username = 'alice'")
        self.assertEqual(
            self.admin_json("--busy-timeout", "0.2", "users", "list")[0]["display_name"], "Alice"
        )
        self.admin_ok("--busy-timeout", "0.2", "stats")
        self.admin_ok("--busy-timeout", "0.2", "export", os.path.join(self.dir, "snapshot.json"))
        holder.execute("ROLLBACK")

    def test_the_database_stays_in_wal_mode(self):
        """The tool opens the database with the server's journal mode (WAL)."""
        self.add_user("alice")
        self.admin_ok("users", "rename-display", "alice", "A")
        conn = sqlite3.connect(self.db)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")


class CommandLineTests(AdminMixin, TestCase):
    COMMANDS: tuple[list[str], ...] = (
        [],
        ["users"],
        ["users", "list"],
        ["users", "add"],
        ["users", "delete"],
        ["users", "passwd"],
        ["users", "rename-display"],
        ["rooms"],
        ["rooms", "list"],
        ["rooms", "members"],
        ["stats"],
        ["export"],
        ["import"],
    )

    def test_every_command_has_help(self):
        """--help works on the tool and every (sub)command: usage on stdout, exit 0."""
        for command in self.COMMANDS:
            out, err = io.StringIO(), io.StringIO()
            status = main([*command, "--help"], stdout=out, stderr=err)
            self.assertEqual(status, 0, command)
            self.assertIn("usage: messenger-admin", out.getvalue(), command)
            self.assertIn("--db", out.getvalue(), command)

    def test_usage_errors_exit_with_status_2(self):
        """An unknown command, missing argument or bad option value: exit 2 with usage on stderr."""
        for argv in (
            ["frobnicate"],
            ["users"],
            ["users", "add"],
            ["import", "x.json", "--on-conflict", "maybe"],
            ["--busy-timeout", "soon", "stats"],
            [],
        ):
            out, err = io.StringIO(), io.StringIO()
            self.assertEqual(main(argv, stdout=out, stderr=err), 2, argv)
            self.assertIn("usage:", err.getvalue(), argv)

    def test_busy_timeout_must_be_above_zero(self):
        """--busy-timeout 0 (or less) is a usage error, exit 2, as every positive number option."""
        for value in ("0", "-1", "inf"):
            out, err = io.StringIO(), io.StringIO()
            self.assertEqual(main(["--busy-timeout", value, "stats"], stdout=out, stderr=err), 2)
            self.assertIn("must be a number above 0", err.getvalue())

    def test_shared_options_may_follow_the_command(self):
        """--db and the other shared options work after the command as well as before it."""
        self.add_user("alice")
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(
            main(["users", "list", "--db", self.db, "--json"], stdout=out, stderr=err),
            0,
            err.getvalue(),
        )
        self.assertEqual(json.loads(out.getvalue())[0]["username"], "alice")
        out = io.StringIO()
        self.assertEqual(
            main(["--db", self.db, "users", "list", "--json"], stdout=out, stderr=err), 0
        )
        self.assertEqual(json.loads(out.getvalue())[0]["username"], "alice")

    def test_config_file_gives_the_database_and_argon2_costs(self):
        """--config reads db, argon2 costs and min-password-length from the server's INI file."""
        ini = self.write(
            "messenger.ini",
            (
                "[messenger]\n"
                f"db = {self.db}\n"
                "argon2-time-cost = 1\n"
                "argon2-memory-cost = 16\n"
                "min-password-length = 3\n"
                "listen = tcp:10000\n"
            ),
        )
        out, err = io.StringIO(), io.StringIO()
        status = main(
            [
                "--config",
                ini,
                "users",
                "add",
                "alice",
                "--password-file",
                self.password_file("abc"),
            ],
            stdin=_Stdin(),
            stdout=out,
            stderr=err,
        )
        self.assertEqual(status, 0, err.getvalue())
        parameters = argon2.extract_parameters(self.user("alice").password_hash)
        self.assertEqual((parameters.time_cost, parameters.memory_cost), (1, 16))

    def test_config_file_problems_are_errors(self):
        """A missing INI file or one without [messenger]: exit 1 with the reason."""
        for content, expected in (
            (None, "cannot read"),
            ("[other]\nx = 1\n", "no [messenger] section"),
            ("[messenger]\nargon2-time-cost = fast\n", "argon2-time-cost"),
        ):
            path = (
                os.path.join(self.dir, "missing.ini")
                if content is None
                else self.write("bad.ini", content)
            )
            out, err = io.StringIO(), io.StringIO()
            self.assertEqual(main(["--config", path, "stats"], stdout=out, stderr=err), 1)
            self.assertIn(expected, err.getvalue())

    def test_runs_as_a_real_process(self):
        """python -m messenger.admin --help, and an error's exit status, from a real subprocess."""
        env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        done = subprocess.run(
            [sys.executable, "-m", "messenger.admin", "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("usage: messenger-admin", done.stdout)
        for command in ("users", "rooms", "stats", "export", "import"):
            self.assertIn(command, done.stdout)
        done = subprocess.run(
            [sys.executable, "-m", "messenger.admin", "--db", self.db, "users", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "messenger.admin",
                "--db",
                os.path.join(self.dir, "nope.sqlite3"),
                "stats",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(done.returncode, 1)
        self.assertIn("messenger-admin: error: no database at", done.stderr)
