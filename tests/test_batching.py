"""CommitBatcher: group commit, and how submitters hear about it."""

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from messenger.batching import CommitBatcher
from messenger.store.interface import (
    AckResult,
    BatchResult,
    MessageRejected,
    NewMessage,
    StoredMessage,
)
from messenger.store.sqlite import ImmediateSqliteStore


class RecordingStore:
    """Keeps each commit_batch call and its Deferred, for the test to fire."""

    def __init__(self):
        self.calls = []

    def commit_batch(self, messages, acks, receipts_sent, now, max_pending):
        d = Deferred()
        self.calls.append((list(messages), list(acks), list(receipts_sent), d))
        return d


def stored(message: NewMessage, msgid: int) -> StoredMessage:
    return StoredMessage(msgid, message.sender, message.recipient, message.room, message.body, 0.0)


class CommitBatcherTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.store = RecordingStore()
        self.acknowledged = []
        self.settled = []
        self.batcher = CommitBatcher(
            self.store,
            self.clock,
            max_pending=100,
            on_acknowledged=self.acknowledged.append,
            on_receipts_settled=self.settled.append,
        )

    def test_everything_submitted_in_one_turn_goes_into_one_commit(self):
        """Messages, ACKs and receipts submitted before the reactor turns
        are committed together, once the turn is over."""
        one = NewMessage("alice", "bob", None, "one", None)
        two = NewMessage("bob", "alice", None, "two", None)
        self.batcher.submit_message(one, lambda outcome: None)
        self.batcher.submit_ack("bob", 7)
        self.batcher.submit_message(two, lambda outcome: None)
        self.batcher.submit_receipt_sent(5)
        self.assertEqual(self.store.calls, [])
        self.clock.advance(0)
        self.assertEqual([call[:3] for call in self.store.calls], [([one, two], [("bob", 7)], [5])])

    def test_writes_submitted_during_a_commit_wait_for_the_next_one(self):
        """One commit at a time: what comes while one runs forms the next."""
        first = NewMessage("alice", "bob", None, "one", None)
        later = NewMessage("alice", "bob", None, "two", None)
        self.batcher.submit_message(first, lambda outcome: None)
        self.clock.advance(0)
        self.batcher.submit_message(later, lambda outcome: None)
        self.clock.advance(0)
        self.assertEqual(len(self.store.calls), 1)
        self.store.calls[0][3].callback(BatchResult([stored(first, 1)], []))
        self.clock.advance(0)
        self.assertEqual([call[0] for call in self.store.calls], [[first], [later]])

    def test_each_submitter_is_told_its_own_outcome_once_committed(self):
        """The callbacks fire only after the commit, each with its row."""
        one = NewMessage("alice", "bob", None, "one", None)
        two = NewMessage("carol", "bob", None, "two", None)
        told = []
        self.batcher.submit_message(one, lambda outcome: told.append(("one", outcome)))
        self.batcher.submit_message(two, lambda outcome: told.append(("two", outcome)))
        self.clock.advance(0)
        self.assertEqual(told, [])
        self.store.calls[0][3].callback(BatchResult([stored(one, 1), stored(two, 2)], []))
        self.assertEqual(told, [("one", stored(one, 1)), ("two", stored(two, 2))])

    def test_a_failing_submitter_does_not_hold_back_the_others(self):
        """One callback raising is logged; the rest of the batch is still told."""
        one = NewMessage("alice", "bob", None, "one", None)
        two = NewMessage("carol", "bob", None, "two", None)
        told = []

        def broken(outcome):
            raise RuntimeError("a bug in one session")

        self.batcher.submit_message(one, broken)
        self.batcher.submit_message(two, told.append)
        self.batcher.submit_ack("bob", 9)
        self.clock.advance(0)
        ack = AckResult(9, "alice", "bob", 0.0)
        self.store.calls[0][3].callback(BatchResult([stored(one, 1), stored(two, 2)], [ack]))
        self.assertEqual(told, [stored(two, 2)])
        self.assertEqual(self.acknowledged, [ack])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_after_a_failed_commit_a_failing_submitter_holds_back_nobody(self):
        """The same on the failure path: every other sender hears of it."""
        told = []

        def broken(outcome):
            raise RuntimeError("a bug in one session")

        self.batcher.submit_message(NewMessage("alice", "bob", None, "one", None), broken)
        self.batcher.submit_message(NewMessage("carol", "bob", None, "two", None), told.append)
        self.clock.advance(0)
        self.store.calls[0][3].errback(Failure(OSError("disk full")))
        self.assertEqual(len(told), 1)
        self.assertIsInstance(told[0], Failure)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_acks_that_changed_nothing_are_not_reported(self):
        """An ACK for an unknown or already acknowledged message is dropped."""
        self.batcher.submit_ack("bob", 1)
        self.batcher.submit_ack("bob", 2)
        self.clock.advance(0)
        ack = AckResult(2, "alice", "bob", 0.0)
        self.store.calls[0][3].callback(BatchResult([], [None, ack]))
        self.assertEqual(self.acknowledged, [ack])

    def test_a_failed_commit_tells_every_sender_and_settles_the_receipts(self):
        """Each message's callback gets the Failure; receipts are reported
        settled (they stay pending in the store for the next login)."""
        one = NewMessage("alice", "bob", None, "one", None)
        told = []
        self.batcher.submit_message(one, told.append)
        self.batcher.submit_receipt_sent(4)
        self.clock.advance(0)
        self.store.calls[0][3].errback(Failure(OSError("disk full")))
        self.assertEqual(len(told), 1)
        self.assertIsInstance(told[0], Failure)
        self.assertEqual(self.settled, [[4]])
        self.assertEqual(self.acknowledged, [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_flush_fires_once_everything_submitted_before_it_is_committed(self):
        """flush() waits for the pending writes and the commit in flight."""
        self.batcher.submit_ack("bob", 1)
        flushed = self.batcher.flush()
        self.clock.advance(0)
        self.assertNoResult(flushed)
        self.store.calls[0][3].callback(BatchResult([], [None]))
        self.assertIsNone(self.successResultOf(flushed))

    def test_flush_with_nothing_pending_fires_at_once(self):
        """Nothing submitted, nothing in flight: flush() has already fired."""
        self.assertIsNone(self.successResultOf(self.batcher.flush()))


class MailboxCountInOneCommitTests(SynchronousTestCase):
    """The store keeps each mailbox's count in memory during a commit and
    writes it once: the limit must hold row by row all the same."""

    def setUp(self):
        self.store = ImmediateSqliteStore()
        self.successResultOf(self.store.open())
        for user in ("alice", "bob"):
            self.successResultOf(self.store.create_user(user, "hash", user.title(), 0.0))

    def commit(self, messages=(), acks=(), max_pending=2):
        return self.successResultOf(
            self.store.commit_batch(list(messages), list(acks), [], 1.0, max_pending)
        )

    def test_the_mailbox_limit_holds_within_one_commit(self):
        """Three messages to a mailbox with room for two, in one commit: the
        third is refused with MAILBOX_FULL."""
        to_bob = [NewMessage("alice", "bob", None, str(i), None) for i in range(3)]
        outcomes = self.commit(to_bob).messages
        self.assertEqual([type(o) for o in outcomes[:2]], [StoredMessage, StoredMessage])
        self.assertIs(outcomes[2], MessageRejected.MAILBOX_FULL)
        self.assertEqual(self.successResultOf(self.store.get_user("bob")).pending_count, 2)

    def test_acks_in_a_commit_make_room_for_the_next_commit(self):
        """An ACK lowers the count it is committed with; the mailbox takes
        a new message in the next commit."""
        self.commit([NewMessage("alice", "bob", None, str(i), None) for i in range(2)])
        result = self.commit(acks=[("bob", 1)])
        self.assertEqual([a.msgid for a in result.acks], [1])
        self.assertEqual(self.successResultOf(self.store.get_user("bob")).pending_count, 1)
        outcome = self.commit([NewMessage("alice", "bob", None, "more", None)]).messages[0]
        self.assertIsInstance(outcome, StoredMessage)

    def test_a_message_to_an_unknown_user_leaves_the_counts_alone(self):
        """NO_SUCH_USER, and no counter row is written for it."""
        outcome = self.commit([NewMessage("alice", "nobody", None, "hi", None)]).messages[0]
        self.assertIs(outcome, MessageRejected.NO_SUCH_USER)
        self.assertEqual(self.successResultOf(self.store.get_user("alice")).pending_count, 0)
