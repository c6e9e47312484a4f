"""One store contract, two engines: the same tests on SQLite and PostgreSQL.

Each test states one promise of ``IMessageStore`` (messenger/store/
interface.py) and checks it on a fresh database of each engine: an SQLite
file, and a schema of its own on a real PostgreSQL started for the session
(tests/support/postgres.py; those runs carry the ``services`` marker and
skip, or fail under MESSENGER_REQUIRE_SERVICES=1, without PostgreSQL).

The store under test is ``ImmediateStore``: the very ``*_txn`` functions
the server runs through adbapi, run on the calling thread.  What only the
adbapi store does (reconnecting, ``StorageUnavailable``) is tested at the
end against a PostgreSQL of its own that is stopped and started again.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from messenger.store import IMessageStore, StorageUnavailable, open_store, prepare_database
from messenger.store.database import DatabaseStore, ImmediateStore
from messenger.store.engines import MAX_PARAMETERS, engine_for
from messenger.store.interface import (
    AckResult,
    MessageRejected,
    NewMessage,
    Receipt,
    StoredMessage,
    conversation_key,
)
from messenger.store.txns import SEND_KEY_LIFETIME, latest_schema_version
from tests.support.postgres import PostgresServer, require_postgres, skip_unless_postgres

NOW = 1_780_000_000.125  # a time whose fraction a 4-byte float would lose
MAX = 100


def done(d: Deferred):
    """The result of an already-fired Deferred (ImmediateStore's)."""
    results: list = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "messenger.sqlite3")
    return require_postgres().fresh_schema()


@pytest.fixture
def store(database):
    prepare_database(database)
    s = ImmediateStore(engine_for(database))
    for name in ("alice", "bob", "carol"):
        assert done(s.create_user(name, f"hash-{name}", name.title(), NOW))
    yield s
    s.close()


def dm(sender: str, recipient: str, body: str, client_id: str | None = None) -> NewMessage:
    return NewMessage(sender, recipient, None, body, client_id)


def to_room(sender: str, room: str, body: str) -> NewMessage:
    return NewMessage(sender, None, room, body)


def commit(store, messages=(), acks=(), receipts=(), now=NOW, max_pending=MAX):
    return done(store.commit_batch(list(messages), list(acks), list(receipts), now, max_pending))


# -- the interface and the schema ------------------------------------------


def test_the_store_provides_the_interface(store):
    """Every method of IMessageStore is there, with its arguments."""
    assert verifyObject(IMessageStore, store)


def test_the_schema_is_created_at_the_latest_version_and_opening_again_changes_nothing(
    database, store
):
    """prepare_database and open() are idempotent: the version stays the
    latest, and the data stays."""
    latest = latest_schema_version(engine_for(database).name)
    assert prepare_database(database) == latest
    assert done(store.open()) == latest
    assert done(store.get_user("alice")) is not None


def test_a_v1_database_upgrades_through_later_files_shared_or_per_engine(database, tmp_path):
    """A database of schema version 1 (as in the field) is upgraded in one
    transaction by every later file: ``vN.sql`` for every engine, or its
    ``vN.<engine>.sql`` where one exists; the data stays."""
    from messenger.store import txns
    from messenger.store.engines import Txn

    shipped = tmp_path / "schema"
    shipped.mkdir()
    v1 = txns.schema_versions("sqlite")[0]
    assert v1[0] == 1
    (shipped / "v1.sql").write_text(v1[1])
    (shipped / "v2.sql").write_text("CREATE TABLE two (at REAL NOT NULL);")
    (shipped / "v3.sql").write_text("CREATE TABLE three_shared (n INTEGER);")
    (shipped / "v3.postgresql.sql").write_text("CREATE TABLE three_postgresql (n INTEGER);")
    engine = engine_for(database)

    def upgrade(upto: int) -> int:
        versions = [v for v in txns.schema_versions(engine.name, shipped.iterdir()) if v[0] <= upto]
        conn = engine.connect()
        try:
            version = txns.upgrade_schema_txn(Txn(engine, conn.cursor()), versions)
            conn.commit()
            return version
        finally:
            conn.close()

    assert upgrade(1) == 1
    s = ImmediateStore(engine)
    assert done(s.create_user("alice", "h", "Alice", NOW))
    assert upgrade(3) == 3
    assert done(s.get_user("alice")) is not None
    conn = engine.connect()
    txn = Txn(engine, conn.cursor())
    assert engine.table_exists(txn, "two")
    mine, other = ("three_postgresql", "three_shared")
    if engine.name == "sqlite":
        mine, other = other, mine
    assert engine.table_exists(txn, mine)
    assert not engine.table_exists(txn, other)
    conn.close()
    s.close()


def test_times_keep_their_fraction(store):
    """Times are stored as 8-byte floats on both engines."""
    (stored,) = commit(store, [dm("alice", "bob", "hi")]).messages
    assert stored.created_at == NOW
    assert done(store.pending_messages("bob", 0, 10))[0].created_at == NOW


# -- accounts ---------------------------------------------------------------


def test_create_user_makes_a_member_of_general_and_refuses_a_taken_name(store):
    """A new account is a member of #general; creating it again fires False
    and changes nothing."""
    assert done(store.create_user("dave", "h", "Dave", NOW))
    assert not done(store.create_user("dave", "other", "Other", NOW))
    record = done(store.login_record("dave"))
    assert record.user.password_hash == "h"
    assert record.rooms == frozenset({"#general"})


def test_get_user_returns_the_record_or_none(store):
    """get_user fires with every field of the account, or None."""
    user = done(store.get_user("alice"))
    assert (user.username, user.password_hash, user.display_name) == (
        "alice",
        "hash-alice",
        "Alice",
    )
    assert (user.created_at, user.last_seen, user.pending_count) == (NOW, None, 0)
    assert done(store.get_user("nobody")) is None


def test_set_display_name_changes_the_name(store):
    done(store.set_display_name("alice", "Alice L."))
    assert done(store.get_user("alice")).display_name == "Alice L."


def test_set_password_hash_revokes_every_token(store):
    """A new password hash revokes the user's session tokens, not others'."""
    done(store.add_token("alice", "t1", NOW + 60))
    done(store.add_token("bob", "t2", NOW + 60))
    done(store.set_password_hash("alice", "new"))
    assert done(store.get_user("alice")).password_hash == "new"
    assert done(store.resume_record("alice", "t1", NOW)) is None
    assert done(store.resume_record("bob", "t2", NOW)) is not None


def test_set_last_seen_writes_every_user_given(store):
    done(store.set_last_seen(["alice", "bob"], NOW + 5))
    assert done(store.get_user("alice")).last_seen == NOW + 5
    assert done(store.get_user("bob")).last_seen == NOW + 5
    assert done(store.get_user("carol")).last_seen is None


def test_resume_record_needs_the_users_own_unexpired_token(store):
    """RESUME's record comes only for the user's own token before it expires."""
    done(store.add_token("alice", "tok", NOW + 60))
    record = done(store.resume_record("alice", "tok", NOW))
    assert record.user.username == "alice"
    assert record.rooms == frozenset({"#general"})
    assert done(store.resume_record("alice", "tok", NOW + 61)) is None
    assert done(store.resume_record("bob", "tok", NOW)) is None
    assert done(store.resume_record("alice", "other", NOW)) is None


def test_resume_record_can_carry_everything_a_login_needs(store):
    """With pending_page, one RESUME read also holds the oldest pending
    messages (at most the page) and the pending receipts; without it,
    neither is read."""
    done(store.add_token("alice", "tok", NOW + 60))
    to_alice = commit(store, [dm("bob", "alice", str(i)) for i in range(3)]).messages
    (from_alice,) = commit(store, [dm("alice", "bob", "hi")]).messages
    commit(store, acks=[("bob", from_alice.msgid)], now=NOW + 1)
    record = done(store.resume_record("alice", "tok", NOW, 2))
    assert [m.msgid for m in record.pending] == [m.msgid for m in to_alice[:2]]
    assert record.receipts == [Receipt(from_alice.msgid, "bob", NOW + 1)]
    plain = done(store.resume_record("alice", "tok", NOW))
    assert plain.pending is None and plain.receipts is None
    assert done(store.resume_record("alice", "wrong", NOW, 2)) is None


def test_login_record_holds_the_rooms_or_is_none(store):
    done(store.join_room("#dev", "alice", NOW))
    assert done(store.login_record("alice")).rooms == frozenset({"#general", "#dev"})
    assert done(store.login_record("nobody")) is None


# -- messages -------------------------------------------------------------------


def test_a_direct_message_is_stored_pending_and_counted(store):
    (stored,) = commit(store, [dm("alice", "bob", "hi")]).messages
    assert isinstance(stored, StoredMessage)
    assert (stored.sender, stored.recipient, stored.room, stored.body) == (
        "alice",
        "bob",
        None,
        "hi",
    )
    assert not stored.duplicate
    assert done(store.pending_messages("bob", 0, 10)) == [
        StoredMessage(stored.msgid, "alice", "bob", None, "hi", NOW)
    ]
    assert done(store.get_user("bob")).pending_count == 1
    assert done(store.count_waiting()) == 1


def test_ids_increase_in_batch_order_and_across_batches(store):
    """Ids are unique and increase in the order messages were accepted."""
    first = commit(store, [dm("alice", "bob", str(i)) for i in range(5)]).messages
    second = commit(store, [to_room("alice", "#general", "r"), dm("bob", "alice", "x")]).messages
    ids = [m.msgid for m in [*first, *second]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [m.body for m in first] == ["0", "1", "2", "3", "4"]


def test_rejections_are_reported_per_message_and_store_nothing(store):
    """Unknown recipient, unknown room and non-members are rejected, each
    in its place in the batch, while the others are stored."""
    result = commit(
        store,
        [
            dm("alice", "nobody", "a"),
            to_room("alice", "#nowhere", "b"),
            to_room("alice", "#dev", "c"),
            dm("alice", "bob", "d"),
        ],
    )
    assert result.messages[:2] == [MessageRejected.NO_SUCH_USER, MessageRejected.NO_SUCH_ROOM]
    assert result.messages[2] == MessageRejected.NO_SUCH_ROOM
    done(store.join_room("#dev", "bob", NOW))
    (outcome,) = commit(store, [to_room("alice", "#dev", "c")]).messages
    assert outcome == MessageRejected.NOT_A_MEMBER
    assert isinstance(result.messages[3], StoredMessage)
    assert [m.body for m in done(store.pending_messages("bob", 0, 10))] == ["d"]


def test_the_mailbox_limit_counts_the_earlier_messages_of_the_same_batch(store):
    """With max_pending 2, the third message of one batch is MAILBOX_FULL."""
    outcomes = commit(store, [dm("alice", "bob", str(i)) for i in range(3)], max_pending=2)
    assert [isinstance(m, StoredMessage) for m in outcomes.messages[:2]] == [True, True]
    assert outcomes.messages[2] == MessageRejected.MAILBOX_FULL
    (later,) = commit(store, [dm("carol", "bob", "x")], max_pending=2).messages
    assert later == MessageRejected.MAILBOX_FULL


def test_a_send_repeated_with_its_client_id_yields_the_first_message(store):
    """SEND idempotency: a client_id reused within 24 hours gives the first
    message, marked duplicate, and stores nothing new, in a later batch or
    in the same one."""
    (first,) = commit(store, [dm("alice", "bob", "hi", "k1")]).messages
    (again,) = commit(store, [dm("alice", "bob", "changed", "k1")], now=NOW + 10).messages
    assert again.duplicate and again.msgid == first.msgid and again.body == "hi"
    a, b = commit(store, [dm("alice", "bob", "x", "k2"), dm("alice", "bob", "y", "k2")]).messages
    assert not a.duplicate and b.duplicate and b.msgid == a.msgid
    assert len(done(store.pending_messages("bob", 0, 10))) == 2


def test_a_duplicate_is_found_before_any_other_check(store):
    """A re-sent SEND gets its first id even if the mailbox is full since."""
    (first,) = commit(store, [dm("alice", "bob", "hi", "k")], max_pending=1).messages
    (again,) = commit(store, [dm("alice", "bob", "hi", "k")], max_pending=1).messages
    assert again.duplicate and again.msgid == first.msgid


def test_a_client_id_is_forgotten_after_24_hours(store):
    """Another user's key, or a key older than its lifetime, is a new message."""
    (first,) = commit(store, [dm("alice", "bob", "hi", "k")]).messages
    (other,) = commit(store, [dm("carol", "bob", "hi", "k")]).messages
    assert not other.duplicate
    later = NOW + SEND_KEY_LIFETIME + 1
    (fresh,) = commit(store, [dm("alice", "bob", "hi", "k")], now=later).messages
    assert not fresh.duplicate and fresh.msgid > first.msgid
    (again,) = commit(store, [dm("alice", "bob", "hi", "k")], now=later).messages
    assert again.duplicate and again.msgid == fresh.msgid


def test_an_ack_counts_once_and_only_from_the_recipient(store):
    """ACK marks the message delivered once; the sender, another user, a
    second ACK or an unknown id change nothing."""
    (m,) = commit(store, [dm("alice", "bob", "hi")]).messages
    result = commit(
        store,
        acks=[("alice", m.msgid), ("carol", m.msgid), ("bob", m.msgid), ("bob", m.msgid)],
        now=NOW + 1,
    )
    assert result.acks == [None, None, AckResult(m.msgid, "alice", "bob", NOW + 1), None]
    assert commit(store, acks=[("bob", m.msgid), ("bob", 999_999)]).acks == [None, None]
    assert done(store.pending_messages("bob", 0, 10)) == []
    assert done(store.get_user("bob")).pending_count == 0


def test_acks_of_one_batch_are_all_recorded(store):
    """Many ACKs in one batch (more than one statement holds) all count."""
    n = MAX_PARAMETERS  # more than one ACK statement's worth
    stored = commit(store, [dm("alice", "bob", str(i)) for i in range(n)], max_pending=n).messages
    result = commit(store, acks=[("bob", m.msgid) for m in stored], now=NOW + 1)
    assert all(isinstance(a, AckResult) for a in result.acks)
    assert done(store.get_user("bob")).pending_count == 0
    assert done(store.count_waiting()) == 0


def test_a_message_and_its_ack_in_one_batch(store):
    """Acks of a batch are handled after its messages."""
    (m,) = commit(store, [dm("alice", "bob", "hi")]).messages
    result = commit(store, [dm("bob", "alice", "yo")], acks=[("bob", m.msgid)])
    assert result.acks[0] is not None
    assert isinstance(result.messages[0], StoredMessage)


def test_receipts_wait_until_marked_handed_over(store):
    """A delivered direct message gives its sender a receipt until the
    batch that records it handed over; room messages give none."""
    a, b, _ = commit(
        store,
        [dm("alice", "bob", "1"), dm("alice", "carol", "2"), to_room("alice", "#general", "r")],
    ).messages
    commit(store, acks=[("carol", b.msgid), ("bob", a.msgid)], now=NOW + 2)
    assert done(store.pending_receipts("alice")) == [
        Receipt(a.msgid, "bob", NOW + 2),
        Receipt(b.msgid, "carol", NOW + 2),
    ]
    commit(store, receipts=[a.msgid])
    assert done(store.pending_receipts("alice")) == [Receipt(b.msgid, "carol", NOW + 2)]


def test_a_large_batch_is_one_commit(store):
    """A batch larger than one statement's parameters is stored whole, in order."""
    n = MAX_PARAMETERS + 10
    stored = commit(store, [dm("alice", "bob", str(i)) for i in range(n)], max_pending=n).messages
    assert [m.body for m in stored] == [str(i) for i in range(n)]
    ids = [m.msgid for m in stored]
    assert ids == sorted(ids)
    pending = done(store.pending_messages("bob", 0, n + 1))
    assert [m.msgid for m in pending] == ids


def test_pending_messages_pages_by_id(store):
    """Oldest first, above after_id, at most limit; another user's are not there."""
    stored = commit(store, [dm("alice", "bob", str(i)) for i in range(5)]).messages
    commit(store, [dm("alice", "carol", "c")])
    page = done(store.pending_messages("bob", 0, 2))
    assert [m.body for m in page] == ["0", "1"]
    page = done(store.pending_messages("bob", page[-1].msgid, 10))
    assert [m.body for m in page] == ["2", "3", "4"]
    assert done(store.pending_messages("bob", stored[-1].msgid, 10)) == []


def test_history_pages_both_ways_and_shares_a_direct_conversation(store):
    """The newest `limit`, older than a cursor, newer than a cursor; both
    directions of a direct conversation are one history."""
    stored = commit(
        store, [dm("alice", "bob", "a"), dm("bob", "alice", "b"), dm("alice", "bob", "c")]
    ).messages
    commit(store, [dm("alice", "carol", "elsewhere")])
    key = conversation_key("bob", "alice")
    assert [m.body for m in done(store.history(key, 2, None, None))] == ["b", "c"]
    before = done(store.history(key, 5, "before", stored[2].msgid))
    assert [m.body for m in before] == ["a", "b"]
    after = done(store.history(key, 1, "after", stored[0].msgid))
    assert [m.body for m in after] == ["b"]


def test_room_history_holds_the_rooms_messages(store):
    commit(store, [to_room("alice", "#general", "one"), to_room("bob", "#general", "two")])
    rows = done(store.history("#general", 10, None, None))
    assert [(m.sender, m.room, m.body) for m in rows] == [
        ("alice", "#general", "one"),
        ("bob", "#general", "two"),
    ]


# -- rooms ----------------------------------------------------------------------


def test_join_creates_the_room_and_tells_whether_the_user_was_new(store):
    assert done(store.join_room("#dev", "alice", NOW))
    assert not done(store.join_room("#dev", "alice", NOW))
    assert done(store.load_memberships())["#dev"] == {"alice"}


def test_part_tells_whether_the_user_was_a_member(store):
    done(store.join_room("#dev", "alice", NOW))
    assert done(store.part_room("#dev", "alice"))
    assert not done(store.part_room("#dev", "alice"))
    assert done(store.load_memberships())["#dev"] == set()


def test_load_memberships_lists_every_room(store):
    """Every room, its members, and rooms with none."""
    assert done(store.load_memberships()) == {"#general": {"alice", "bob", "carol"}}


def test_count_waiting_counts_unacknowledged_direct_messages(store):
    commit(
        store, [dm("alice", "bob", "1"), dm("bob", "carol", "2"), to_room("alice", "#general", "r")]
    )
    assert done(store.count_waiting()) == 2


# -- several nodes on one PostgreSQL -------------------------------------------


@pytest.mark.services
def test_ids_increase_in_commit_order_across_nodes():
    """Two stores on one database (two nodes) interleaving batches: every
    id is above every id committed before it, whichever node made it."""
    uri = require_postgres().fresh_schema()
    prepare_database(uri)
    nodes = [ImmediateStore(engine_for(uri)) for _ in range(2)]
    for name in ("alice", "bob"):
        done(nodes[0].create_user(name, "h", name, NOW))
    committed: list[int] = []
    for i in range(10):
        batch = commit(nodes[i % 2], [dm("alice", "bob", f"{i}.{j}") for j in range(3)])
        ids = [m.msgid for m in batch.messages]
        assert min(ids) > max(committed, default=0)
        committed += ids
    assert [m.msgid for m in done(nodes[1].pending_messages("bob", 0, 100))] == committed
    for node in nodes:
        node.close()


# -- the adbapi store: reconnecting after PostgreSQL comes back ----------------


@pytest.mark.services
@pytest.mark.slow
class PostgresOutageTests(TestCase):
    """A PostgreSQL server of its own, stopped and started under the store."""

    def setUp(self) -> None:
        skip_unless_postgres()
        self.server = PostgresServer()
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.uri = self.server.create_database("messenger")
        prepare_database(self.uri)
        from twisted.internet import reactor

        self.store = open_store(self.uri, reactor)
        self.addCleanup(self.store.close)

    def test_the_store_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IMessageStore, self.store))
        self.assertIsInstance(self.store, DatabaseStore)

    def test_calls_fail_with_storage_unavailable_while_away_and_recover_after(self):
        """While PostgreSQL is stopped every call fails StorageUnavailable;
        once it is back the same store works again, and what was committed
        before is still there."""

        async def scenario() -> None:
            store = self.store
            await store.create_user("alice", "h", "Alice", NOW)
            await store.create_user("bob", "h", "Bob", NOW)
            before = await store.commit_batch([dm("alice", "bob", "kept")], [], [], NOW, MAX)
            self.server.stop()
            for _ in range(2):  # the broken connection, then a refused one
                with self.assertRaises(StorageUnavailable):
                    await store.commit_batch([dm("alice", "bob", "lost")], [], [], NOW, MAX)
                with self.assertRaises(StorageUnavailable):
                    await store.get_user("alice")
            self.server.start()
            after = await store.commit_batch([dm("alice", "bob", "again")], [], [], NOW, MAX)
            pending = await store.pending_messages("bob", 0, 10)
            self.assertEqual([m.body for m in pending], ["kept", "again"])
            first, last = before.messages[0], after.messages[0]
            assert isinstance(first, StoredMessage) and isinstance(last, StoredMessage)
            self.assertGreater(last.msgid, first.msgid)

        return ensureDeferred(scenario())

    def test_the_first_call_after_a_restart_works(self):
        """PostgreSQL restarted while the store was idle: the connection it
        held is dead, yet the next call succeeds (run again on a new
        connection, since nothing of it had been committed)."""

        async def scenario() -> None:
            store = self.store
            await store.create_user("alice", "h", "Alice", NOW)
            self.server.stop()
            self.server.start()
            user = await store.get_user("alice")
            self.assertIsNotNone(user)
            created = await store.create_user("bob", "h", "Bob", NOW)
            self.assertTrue(created)

        return ensureDeferred(scenario())
