"""Group commit: many writes, one durable transaction.

A fully durable SQLite commit costs a fraction of a millisecond, so one
commit per message would cap the server at a few thousand messages a
second.  ``CommitBatcher`` collects everything submitted during one reactor
turn (and everything submitted while the previous commit was running) and
commits it together; each submitter's Deferred fires only once its write is
durable, so an ``OK`` is never sent for a message that could still be lost.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from messenger.store.interface import IMessageStore, NewMessage


class CommitBatcher:
    log = Logger()

    def __init__(self, store: IMessageStore, clock: IReactorTime, max_pending: int) -> None:
        self._store = store
        self._clock = clock
        self._max_pending = max_pending
        self._messages: List[Tuple[NewMessage, Deferred]] = []
        self._acks: List[Tuple[Tuple[str, int], Deferred]] = []
        self._receipts: List[Tuple[int, Deferred]] = []
        self._flush_waiters: List[Deferred] = []
        self._in_flight_waiters: List[Deferred] = []
        self._scheduled = None
        self._in_flight = False
        #: Number of commits made, and rows in them: for the benchmark.
        self.commits = 0

    def submit_message(self, message: NewMessage) -> Deferred:
        """Fires with a StoredMessage or a MessageRejected once committed."""
        d: Deferred = Deferred()
        self._messages.append((message, d))
        self._kick()
        return d

    def submit_ack(self, recipient: str, msgid: int) -> Deferred:
        """Fires with an AckResult, or None if the ack changed nothing."""
        d: Deferred = Deferred()
        self._acks.append(((recipient, msgid), d))
        self._kick()
        return d

    def submit_receipt_sent(self, msgid: int) -> Deferred:
        """Fires with None once the receipt is recorded as handed over."""
        d: Deferred = Deferred()
        self._receipts.append((msgid, d))
        self._kick()
        return d

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
        acks, self._acks = self._acks, []
        receipts, self._receipts = self._receipts, []
        self._in_flight_waiters, self._flush_waiters = self._flush_waiters, []
        self._in_flight = True
        d = self._store.commit_batch(
            [m for m, _ in messages],
            [a for a, _ in acks],
            [msgid for msgid, _ in receipts],
            self._clock.seconds(),
            self._max_pending,
        )
        d.addCallbacks(
            self._committed,
            self._failed,
            callbackArgs=(messages, acks, receipts),
            errbackArgs=(messages, acks, receipts),
        )
        d.addBoth(self._done)

    def _committed(self, result, messages, acks, receipts) -> None:
        self.commits += 1
        for (_, d), outcome in zip(messages, result.messages):
            d.callback(outcome)
        for (_, d), outcome in zip(acks, result.acks):
            d.callback(outcome)
        for _, d in receipts:
            d.callback(None)

    def _failed(self, failure, messages, acks, receipts) -> None:
        self.log.failure("commit of {count} writes failed", failure, count=len(messages) + len(acks))
        for _, d in messages + acks + receipts:
            d.errback(failure)

    def _done(self, _: Optional[object]) -> None:
        self._in_flight = False
        waiters, self._in_flight_waiters = self._in_flight_waiters, []
        for d in waiters:
            d.callback(None)
        if self._has_pending():
            self._kick()
