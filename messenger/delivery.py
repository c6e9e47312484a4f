"""Delivery of one user's direct messages on one connection.

A ``DeliveryQueue`` sends ``R`` lines, keeps at most ``window`` of them
unacknowledged, re-sends each unacknowledged one after a retry interval that
doubles up to a cap, and pages the stored backlog in from the store.

Retries are driven by one Deferred-based timer per queue (``deferLater``
on the injected clock) armed for the earliest deadline in a heap, rather
than one timer per message: an ACK then only forgets the message, with no
timer to cancel.

Backlog and live messages are merged by id, without relying on the store
answering in submission order (a pool of connections, or a push from
another node, may overtake a read):

* ``_cursor`` is the highest id a read has returned.  Ids are assigned in
  commit order, so every message at or below it that was still pending
  when the read ran was in that read: a push at or below the cursor is
  already known (or already acknowledged) and is dropped.
* While a read is running or the backlog is still being paged in, pushes
  are *buffered*; when the backlog is exhausted (a short page) the buffered
  ones above the cursor are queued in id order.
* A message acknowledged while a read runs may come back from that read
  (its ACK is not committed yet): such ids are remembered for the read and
  skipped.

``refresh`` reads again from the cursor: another node, or a missed bus
message, may have committed messages this queue was never pushed.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence

from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.store.interface import StoredMessage

PAGE_SIZE = 500


class _InFlight:
    __slots__ = ("message", "interval", "due")

    def __init__(self, message: StoredMessage, interval: float, due: float) -> None:
        self.message = message
        self.interval = interval
        self.due = due


def _ignore_cancel(failure: Failure) -> None:
    failure.trap(CancelledError)


class DeliveryQueue:
    log = Logger()

    __slots__ = (
        "_send",
        "_fetch",
        "_clock",
        "_window",
        "_retry_initial",
        "_retry_max",
        "_page_size",
        "_on_retry",
        "_queue",
        "_known",
        "_in_flight",
        "_cursor",
        "_loading",
        "_fetching",
        "_buffered",
        "_acked_while_reading",
        "_read_again",
        "_paused",
        "_stopped",
        "_deadlines",
        "_timer",
        "_timer_due",
    )

    def __init__(
        self,
        send: Callable[[StoredMessage], None],
        fetch: Callable[[int, int], Deferred[list[StoredMessage]]],
        clock: IReactorTime,
        window: int,
        retry_initial: float,
        retry_max: float,
        page_size: int = PAGE_SIZE,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self._send = send
        self._fetch = fetch
        self._clock = clock
        self._window = window
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._page_size = page_size
        self._on_retry = on_retry
        # Made when needed: an idle connection's empty deque costs ~600 bytes.
        self._queue: deque[StoredMessage] | None = None
        self._known: set[int] = set()  # queued or in flight
        self._in_flight: dict[int, _InFlight] = {}
        self._cursor = 0
        self._loading = False
        self._fetching = False
        #: Pushes held while the backlog is read, by id.
        self._buffered: dict[int, StoredMessage] = {}
        self._acked_while_reading: set[int] = set()
        self._read_again = False
        self._paused = False
        self._stopped = False
        #: (due time, msgid) of in-flight messages; stale entries (acked,
        #: or rescheduled) are skipped when they come up.
        self._deadlines: list[tuple[float, int]] = []
        self._timer: Deferred[None] | None = None
        self._timer_due = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def waiting(self) -> int:
        """Messages held here: in flight or queued behind the window."""
        return len(self._known)

    def start(self) -> None:
        """Load and send every stored unacknowledged message, oldest first."""
        self._loading = True
        self._fetch_page()

    def start_with(self, first_page: Sequence[StoredMessage]) -> None:
        """:meth:`start`, with the first page (read from offset 0, at most
        ``page_size`` long) already read by the caller."""
        self._loading = True
        self._fetching = True
        self._fetched(first_page)

    def refresh(self) -> None:
        """The store may hold messages never pushed here (sent on another
        node while the bus was away, say): read again from the cursor."""
        if self._stopped:
            return
        if self._fetching:
            self._read_again = True
            return
        self._loading = True
        self._fetch_page()

    def push_live(self, message: StoredMessage) -> None:
        """A message committed for this user while they are connected, in
        any order and possibly also found by a read."""
        msgid = message.msgid
        if self._stopped or msgid <= self._cursor or msgid in self._known:
            return
        if self._loading or self._fetching:
            self._buffered[msgid] = message
            return
        self._enqueue(message)
        self._pump()

    def ack(self, msgid: int) -> StoredMessage | None:
        """The recipient acknowledged ``msgid``.  Returns the message if it
        was held here, else None (unknown or already acknowledged)."""
        if msgid not in self._known:
            return None
        self._known.discard(msgid)
        if self._fetching:
            self._acked_while_reading.add(msgid)
        entry = self._in_flight.pop(msgid, None)
        if entry is None:
            # Acknowledged before we sent it (seen on an earlier connection):
            # _pump skips it.  The message itself is gone from the deque
            # lazily, so find it for the caller.
            for message in self._queue or ():
                if message.msgid == msgid:
                    return message
            return None
        self._pump()
        return entry.message

    def pause(self) -> None:
        """The connection cannot take more output now: send nothing new."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._pump()

    def stop(self) -> None:
        """The connection is gone: cancel every timer and forget everything."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        self._in_flight.clear()
        self._queue = None
        self._known.clear()
        self._buffered.clear()

    def _enqueue(self, message: StoredMessage) -> None:
        self._known.add(message.msgid)
        if self._queue is None:
            self._queue = deque()
        self._queue.append(message)

    def _fetch_page(self) -> None:
        if self._fetching or self._stopped:
            return
        self._fetching = True
        d = self._fetch(self._cursor, self._page_size)
        d.addCallback(self._fetched)
        d.addErrback(self._fetch_failed)

    def _fetched(self, page: Sequence[StoredMessage]) -> None:
        self._fetching = False
        acked, self._acked_while_reading = self._acked_while_reading, set()
        if self._stopped:
            return
        for message in page:
            msgid = message.msgid
            if msgid > self._cursor:
                self._cursor = msgid
            if msgid not in self._known and msgid not in acked:
                self._enqueue(message)
        buffered = self._buffered
        for msgid in [i for i in buffered if i <= self._cursor]:
            del buffered[msgid]  # in this page, or acknowledged already
        if len(page) < self._page_size:
            self._loading = False
            for msgid in sorted(buffered):
                if msgid not in self._known:
                    self._enqueue(buffered[msgid])
            buffered.clear()
        if self._read_again:
            self._read_again = False
            self._loading = True
        self._pump()

    def _fetch_failed(self, failure: Failure) -> None:
        self._fetching = False
        self._acked_while_reading.clear()
        self.log.failure("loading pending messages failed; retrying", failure)
        if not self._stopped:
            self._clock.callLater(self._retry_initial, self._fetch_page)

    def _pump(self) -> None:
        if self._paused or self._stopped:
            return
        # Sending can pause the transport (and so this queue) mid-loop.
        while self._queue and len(self._in_flight) < self._window and not self._paused:
            message = self._queue.popleft()
            if message.msgid not in self._known:
                continue  # acknowledged while queued
            self._send(message)
            self._schedule(message, self._retry_initial)
        if not self._queue:
            self._queue = None
        if self._loading and len(self._queue or ()) < self._window:
            self._fetch_page()

    def _schedule(self, message: StoredMessage, interval: float) -> None:
        due = self._clock.seconds() + interval
        self._in_flight[message.msgid] = _InFlight(message, interval, due)
        heapq.heappush(self._deadlines, (due, message.msgid))
        if self._timer is None or due < self._timer_due:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = task.deferLater(
            self._clock, max(0.0, due - self._clock.seconds()), self._expired
        )
        self._timer.addErrback(_ignore_cancel)

    def _expired(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            due, msgid = heapq.heappop(deadlines)
            entry = self._in_flight.get(msgid)
            if entry is None or entry.due != due:
                continue  # acknowledged, or rescheduled since
            self._retry(entry)
        while deadlines:
            due, msgid = deadlines[0]
            entry = self._in_flight.get(msgid)
            if entry is not None and entry.due == due:
                self._arm(due)
                return
            heapq.heappop(deadlines)

    def _retry(self, entry: _InFlight) -> None:
        if self._paused:
            # The reader is not reading: re-sending would only grow its
            # buffer.  Try again after the same interval.
            self._schedule(entry.message, entry.interval)
            return
        self._send(entry.message)
        if self._on_retry is not None:
            self._on_retry()
        self._schedule(entry.message, min(entry.interval * 2, self._retry_max))
