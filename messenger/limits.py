"""Rate limits: a token bucket per connection, failed logins per address;
idle timeouts."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

T = TypeVar("T")


class TokenBucket:
    """``rate`` commands a second sustained, up to ``burst`` at once."""

    __slots__ = ("_rate", "_burst", "_clock", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        self._rate = rate
        # Not float(burst): that would be a float object per connection.
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock.seconds()

    def try_take(self) -> bool:
        """Take one token if there is one.  A refusal takes nothing."""
        now = self._clock.seconds()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FailedLogins:
    """Failed logins per source address within a sliding window."""

    def __init__(self, clock: IReactorTime, limit: int = 20, window: float = 60.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        cutoff = self._clock.seconds() - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[address]
        return times

    def blocked(self, address: str) -> bool:
        return len(self._recent(address)) >= self._limit

    def record(self, address: str) -> None:
        times = self._recent(address)
        if not times:
            self._failures[address] = times
        times.append(self._clock.seconds())


class ConcurrencyLimit:
    """At most ``limit`` operations at once per key; the others wait.

    Password checks are queued per source address: were they all run at
    once, an address could start a thousand guesses on a thousand
    connections before the first failure is counted.  Queued, each attempt
    looks at the failure count when its turn comes, while legitimate
    logins from one busy address (a NAT, a reconnect storm) only wait.

    A waiting operation is started from the clock, on a fresh stack, not
    from inside the one that finished: hundreds of queued attempts that
    finish at once (all refused) must not recurse.
    """

    def __init__(self, limit: int, clock: IReactorTime) -> None:
        self._limit = limit
        self._clock = clock
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[tuple[Callable[[], Deferred], Deferred]]] = {}

    def run(self, key: str, f: Callable[[], Deferred]) -> Deferred:
        done: Deferred = Deferred()
        running = self._running.get(key, 0)
        if running < self._limit:
            self._running[key] = running + 1
            self._execute(key, f, done)
        else:
            self._waiting.setdefault(key, deque()).append((f, done))
        return done

    def _execute(self, key: str, f: Callable[[], Deferred], done: Deferred) -> None:
        def finished(result):
            self._hand_over(key)
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(result)

        maybeDeferred(f).addBoth(finished)

    def _hand_over(self, key: str) -> None:
        """The slot passes to the next waiting operation, if any."""
        waiting = self._waiting.get(key)
        if waiting:
            f, done = waiting.popleft()
            if not waiting:
                del self._waiting[key]
            self._clock.callLater(0, self._execute, key, f, done)
            return
        self._running[key] -= 1
        if not self._running[key]:
            del self._running[key]


class IdleDeadlines(Generic[T]):
    """The idle timeout of every connection, on one timer.

    A timer per connection (TimeoutMixin's) costs a DelayedCall of some
    450 bytes for each of tens of thousands of idle connections.  Every
    connection has the same timeout, so the deadlines fall in the order of
    the connections' last activity: a dict in insertion order, oldest
    first, keeps that order for the cost of a delete and an insert per
    activity, and one timer waits for the oldest.  A plain dict, not an
    OrderedDict: its linked list costs some 40 bytes more per connection.
    """

    __slots__ = ("_clock", "_timeout", "_on_idle", "_last", "_timer")

    def __init__(self, clock: IReactorTime, timeout: float, on_idle: Callable[[T], object]) -> None:
        self._clock = clock
        self._timeout = timeout
        self._on_idle = on_idle
        self._last: dict[T, float] = {}
        self._timer: IDelayedCall | None = None

    def start(self, connection: T) -> None:
        """Time ``connection`` from now: ``on_idle(connection)`` after
        ``timeout`` seconds without a touch."""
        last = self._last
        last.pop(connection, None)  # to the end
        last[connection] = self._clock.seconds()
        if self._timer is None:
            self._arm()

    def touch(self, connection: T) -> None:
        """Activity on ``connection``: its timeout starts again, if timed."""
        last = self._last
        if last.pop(connection, None) is not None:
            last[connection] = self._clock.seconds()  # to the end

    def stop(self, connection: T) -> None:
        self._last.pop(connection, None)

    def __contains__(self, connection: object) -> bool:
        return connection in self._last

    def _arm(self) -> None:
        if not self._last:
            self._timer = None
            return
        oldest = next(iter(self._last.values()))
        delay = max(0.0, oldest + self._timeout - self._clock.seconds())
        self._timer = self._clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        # A hair of slack: (oldest + timeout - now) + now need not be exact.
        now = self._clock.seconds() + 1e-9
        last = self._last
        timeout = self._timeout
        due = []
        # One walk from the front (a dict walk also passes the slots of
        # entries deleted since, so not one walk per expired connection).
        for connection, seen in last.items():
            if seen + timeout > now:
                break
            due.append(connection)
        for connection in due:
            still = last.get(connection)
            if still is None or still + timeout > now:
                continue  # stopped or touched by an earlier one's on_idle
            del last[connection]
            self._on_idle(connection)
        self._arm()
