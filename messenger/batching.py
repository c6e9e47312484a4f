"""Group commit: many writes, one durable transaction.

A fully durable SQLite commit costs a fraction of a millisecond, so one
commit per message would cap the server at a few thousand messages a
second.  ``CommitBatcher`` collects everything submitted during one reactor
turn (and everything submitted while the previous commit was running) and
commits it together.  Each submitter passes a plain callable, called with
its outcome only once the commit is over (the write durable, or the commit
failed), so an ``OK`` is never sent for a message that could still be lost.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.store.interface import (
    AckResult,
    BatchResult,
    IMessageStore,
    MessageRejected,
    NewMessage,
    StoredMessage,
)

#: Called with a message's outcome once its commit is over: a
#: StoredMessage, a MessageRejected, or the Failure of the commit.
MessageDone = Callable[[StoredMessage | MessageRejected | Failure], None]


def _ignore(_: object) -> None:
    pass


class CommitBatcher:
    """Submitters are told with plain callables, not Deferreds: a message
    costs two or three submissions, and this is the server's hottest path.

    ``on_acknowledged`` gets each AckResult of a committed batch (acks that
    changed nothing are left out); ``on_receipts_settled`` gets the message
    ids whose receipts a commit recorded as handed over, or failed to.
    """

    log = Logger()

    def __init__(
        self,
        store: IMessageStore,
        clock: IReactorTime,
        max_pending: int,
        on_acknowledged: Callable[[AckResult], None] = _ignore,
        on_receipts_settled: Callable[[list[int]], None] = _ignore,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_pending = max_pending
        self.on_acknowledged = on_acknowledged
        self.on_receipts_settled = on_receipts_settled
        self._messages: list[NewMessage] = []
        self._message_done: list[MessageDone] = []
        self._acks: list[tuple[str, int]] = []
        self._acks_committing: list[tuple[str, int]] = []
        self._receipts: list[int] = []
        self._flush_waiters: list[Deferred] = []
        self._in_flight_waiters: list[Deferred] = []
        self._scheduled: IDelayedCall | None = None
        self._in_flight = False
        #: Number of commits made, and rows in them: for the benchmark.
        self.commits = 0

    def submit_message(self, message: NewMessage, done: MessageDone) -> None:
        """``done`` is called with the message's outcome once committed."""
        self._messages.append(message)
        self._message_done.append(done)
        self._kick()

    def submit_ack(self, recipient: str, msgid: int) -> None:
        self._acks.append((recipient, msgid))
        self._kick()

    def submit_receipt_sent(self, msgid: int) -> None:
        self._receipts.append(msgid)
        self._kick()

    def acks_waiting_from(self, recipient: str) -> bool:
        """Whether ACKs of ``recipient`` are submitted but not yet
        committed (their messages still read as pending)."""
        if not (self._acks or self._acks_committing):
            return False
        return any(r == recipient for r, _ in self._acks) or any(
            r == recipient for r, _ in self._acks_committing
        )

    def flush(self) -> Deferred:
        """Fires once everything submitted so far is committed."""
        if self._has_pending():
            d: Deferred = Deferred()
            self._flush_waiters.append(d)
            return d
        if self._in_flight:
            d = Deferred()
            self._in_flight_waiters.append(d)
            return d
        return succeed(None)

    def _has_pending(self) -> bool:
        return bool(self._messages or self._acks or self._receipts)

    def _kick(self) -> None:
        if not self._in_flight and self._scheduled is None:
            self._scheduled = self._clock.callLater(0, self._commit)

    def _commit(self) -> None:
        self._scheduled = None
        messages, self._messages = self._messages, []
        done, self._message_done = self._message_done, []
        acks, self._acks = self._acks, []
        self._acks_committing = acks
        receipts, self._receipts = self._receipts, []
        self._in_flight_waiters, self._flush_waiters = self._flush_waiters, []
        self._in_flight = True
        d = self._store.commit_batch(
            messages, acks, receipts, self._clock.seconds(), self._max_pending
        )
        d.addCallbacks(
            self._committed,
            self._failed,
            callbackArgs=(done, receipts),
            errbackArgs=(done, len(acks), receipts),
        )
        d.addErrback(lambda f: self.log.failure("after a commit", f))
        d.addBoth(self._done)

    def _committed(self, result: BatchResult, done: list[MessageDone], receipts: list[int]) -> None:
        self.commits += 1
        self._tell_senders(zip(done, result.messages))
        on_acknowledged = self.on_acknowledged
        for outcome in result.acks:
            if outcome is not None:
                try:
                    on_acknowledged(outcome)
                except Exception:
                    self.log.failure("handling an ACK")
        if receipts:
            self.on_receipts_settled(receipts)

    def _failed(
        self, failure: Failure, done: list[MessageDone], acks: int, receipts: list[int]
    ) -> None:
        # Acks and receipts not recorded stay pending in the store: the
        # message, or its receipt, comes again at the next login.
        self.log.failure("commit of {count} writes failed", failure, count=len(done) + acks)
        self._tell_senders((tell, failure) for tell in done)
        if receipts:
            self.on_receipts_settled(receipts)

    def _tell_senders(self, tells) -> None:
        # One submitter's bug must not keep the others' replies back.
        for tell, outcome in tells:
            try:
                tell(outcome)
            except Exception:
                self.log.failure("telling a sender what became of its message")

    def _done(self, _: object | None) -> None:
        self._in_flight = False
        self._acks_committing = []
        waiters, self._in_flight_waiters = self._in_flight_waiters, []
        for d in waiters:
            d.callback(None)
        if self._has_pending():
            self._kick()
