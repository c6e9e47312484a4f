"""Rate limits: a token bucket per connection, failed logins per address."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure


class TokenBucket:
    """``rate`` commands a second sustained, up to ``burst`` at once."""

    __slots__ = ("_rate", "_burst", "_clock", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        self._rate = rate
        self._burst = float(burst)
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
