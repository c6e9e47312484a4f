"""Rate limits: a token bucket per connection, failed logins per address."""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict

from twisted.internet.interfaces import IReactorTime


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
    """Failed logins per source address within a sliding window.

    Attempts still being checked count as failures until they are decided:
    otherwise one address could start a thousand password checks in
    parallel, on a thousand connections, before the first failure is known.
    """

    def __init__(self, clock: IReactorTime, limit: int = 20, window: float = 60.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: Dict[str, Deque[float]] = {}
        self._checking: Dict[str, int] = {}

    def started(self, address: str) -> None:
        self._checking[address] = self._checking.get(address, 0) + 1

    def finished(self, address: str) -> None:
        left = self._checking.get(address, 0) - 1
        if left > 0:
            self._checking[address] = left
        else:
            self._checking.pop(address, None)

    def _recent(self, address: str) -> Deque[float]:
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
        return len(self._recent(address)) + self._checking.get(address, 0) >= self._limit

    def record(self, address: str) -> None:
        times = self._recent(address)
        if not times:
            self._failures[address] = times
        times.append(self._clock.seconds())
