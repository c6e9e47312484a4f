"""Backlog and live pushes merged by id (messenger/delivery.py).

The store is not assumed to answer in submission order: these tests hold
each read's answer back and let pushes overtake it, as a pool of
connections or a bus from another node would.
"""

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from messenger.delivery import DeliveryQueue
from messenger.store.interface import StoredMessage


def message(msgid: int) -> StoredMessage:
    return StoredMessage(msgid, "alice", "bob", None, f"m{msgid}", 0.0)


class FakeStore:
    """Pending messages by id; each read is answered only when told to."""

    def __init__(self, *msgids: int) -> None:
        self.pending = {i: message(i) for i in msgids}
        self.reads: list[tuple[int, int, Deferred]] = []

    def fetch(self, after_id: int, limit: int) -> Deferred:
        d: Deferred = Deferred()
        self.reads.append((after_id, limit, d))
        return d

    def answer(self) -> None:
        """Answer the oldest outstanding read with the store's state now."""
        after_id, limit, d = self.reads.pop(0)
        page = [self.pending[i] for i in sorted(self.pending) if i > after_id][:limit]
        d.callback(page)

    def commit(self, msgid: int) -> StoredMessage:
        self.pending[msgid] = message(msgid)
        return self.pending[msgid]


class MergeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.sent: list[int] = []

    def queue(self, store: FakeStore, window: int = 100, page_size: int = 500) -> DeliveryQueue:
        q = DeliveryQueue(
            send=lambda m: self.sent.append(m.msgid),
            fetch=store.fetch,
            clock=self.clock,
            window=window,
            retry_initial=2.0,
            retry_max=60.0,
            page_size=page_size,
        )
        return q

    def test_push_during_loading_is_buffered_and_not_duplicated(self):
        """A push that overtakes the backlog read is held, then sent once."""
        store = FakeStore(1, 2)
        q = self.queue(store)
        q.start()
        q.push_live(store.commit(3))  # committed before the read runs
        self.assertEqual(self.sent, [])
        store.answer()  # the read sees 1, 2 and 3
        self.assertEqual(self.sent, [1, 2, 3])

    def test_push_newer_than_the_read_is_sent_after_the_backlog(self):
        """A push the read did not see is sent after the backlog, not lost."""
        store = FakeStore(1, 2)
        q = self.queue(store)
        q.start()
        store.answer()
        # A second read is under way (refresh) when a newer message arrives.
        q.refresh()
        pushed = message(4)  # committed after the read ran
        q.push_live(pushed)
        store.answer()
        self.assertEqual(self.sent, [1, 2, 4])

    def test_buffered_pushes_are_merged_in_id_order(self):
        """Pushes arriving out of order (from two nodes) are queued by id."""
        store = FakeStore(1)
        q = self.queue(store)
        q.start()
        q.push_live(message(5))
        q.push_live(message(3))
        store.answer()
        self.assertEqual(self.sent, [1, 3, 5])

    def test_push_at_or_below_the_cursor_is_dropped(self):
        """A late push of a message a read already returned is not sent again."""
        store = FakeStore(1, 2)
        q = self.queue(store)
        q.start()
        store.answer()
        q.ack(2)
        q.push_live(message(2))
        self.assertEqual(self.sent, [1, 2])

    def test_message_acknowledged_during_a_read_is_not_sent_again(self):
        """The read may still return an ACKed message whose ACK is not committed."""
        store = FakeStore(1)
        q = self.queue(store)
        q.start()
        store.answer()
        q.push_live(store.commit(2))
        self.assertEqual(self.sent, [1, 2])
        q.refresh()
        q.ack(2)  # not committed: the store still calls it pending
        store.answer()
        self.assertEqual(self.sent, [1, 2])
        self.assertEqual(q.waiting, 1)

    def test_refresh_finds_messages_never_pushed(self):
        """Messages committed elsewhere, whose push was lost, come with a refresh."""
        store = FakeStore(1)
        q = self.queue(store)
        q.start()
        store.answer()
        store.commit(2)
        store.commit(3)
        q.refresh()
        store.answer()
        self.assertEqual(self.sent, [1, 2, 3])

    def test_refresh_during_a_read_reads_again(self):
        """A refresh asked for while a read runs starts another read after it."""
        store = FakeStore(1)
        q = self.queue(store)
        q.start()
        q.refresh()
        store.commit(2)
        store.answer()  # the first read saw 1 and 2 (the store's state now)
        store.commit(3)
        self.assertEqual(len(store.reads), 1)
        store.answer()
        self.assertEqual(self.sent, [1, 2, 3])

    def test_paged_backlog_keeps_newer_pushes_buffered_until_exhausted(self):
        """With several pages, a push newer than the first page waits for the last."""
        store = FakeStore(1, 2, 3, 4)
        q = self.queue(store, page_size=2)
        q.start()
        q.push_live(message(4))
        q.push_live(store.commit(5))
        store.answer()  # 1, 2
        self.assertEqual(self.sent, [1, 2])
        store.answer()  # 3, 4: a full page
        store.answer()  # 5: short, the backlog is exhausted
        self.assertEqual(self.sent, [1, 2, 3, 4, 5])

    def test_push_after_loading_is_sent_at_once(self):
        """Once loaded and idle, a push is sent without a read."""
        store = FakeStore()
        q = self.queue(store)
        q.start()
        store.answer()
        q.push_live(message(7))
        self.assertEqual(self.sent, [7])
        self.assertEqual(store.reads, [])
