"""Delivery of one user's direct messages on one connection.

A ``DeliveryQueue`` sends ``R`` lines, keeps at most ``window`` of them
unacknowledged, re-sends each unacknowledged one after a retry interval that
doubles up to a cap, and pages the stored backlog in from the store.

Retries are driven by one Deferred-based timer per queue (``deferLater``
on the injected clock) armed for the earliest deadline in a heap, rather
than one timer per message: an ACK then only forgets the message, with no
timer to cancel.

Backlog and live messages are merged without a gap or a duplicate by
relying on the store running operations in submission order: while the
queue is still *loading* it ignores live pushes, because every pushed
message was committed before the push and so is found by a later page;
once a page comes back short the backlog is exhausted and live pushes are
taken as they come.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from messenger.store.interface import StoredMessage

PAGE_SIZE = 500


class _InFlight:
    __slots__ = ("message", "interval", "due")

    def __init__(self, message: StoredMessage, interval: float, due: float) -> None:
        self.message = message
        self.interval = interval
        self.due = due


def _ignore_cancel(failure):
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
        "_paused",
        "_stopped",
        "_deadlines",
        "_timer",
        "_timer_due",
    )

    def __init__(
        self,
        send: Callable[[StoredMessage], None],
        fetch: Callable[[int, int], Deferred],
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
        self._paused = False
        self._stopped = False
        #: (due time, msgid) of in-flight messages; stale entries (acked,
        #: or rescheduled) are skipped when they come up.
        self._deadlines: list[tuple[float, int]] = []
        self._timer: Deferred | None = None
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

    def push_live(self, message: StoredMessage) -> None:
        """A message committed for this user while they are connected."""
        if self._stopped or self._loading or message.msgid in self._known:
            return
        self._enqueue(message)
        self._pump()

    def ack(self, msgid: int) -> StoredMessage | None:
        """The recipient acknowledged ``msgid``.  Returns the message if it
        was held here, else None (unknown or already acknowledged)."""
        if msgid not in self._known:
            return None
        self._known.discard(msgid)
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

    def _fetched(self, page) -> None:
        self._fetching = False
        if self._stopped:
            return
        for message in page:
            self._cursor = message.msgid
            if message.msgid not in self._known:
                self._enqueue(message)
        if len(page) < self._page_size:
            self._loading = False
        self._pump()

    def _fetch_failed(self, failure) -> None:
        self._fetching = False
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
