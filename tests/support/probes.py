"""Probes into a running harness: the failures the server logs, and the
Argon2 verifications its password hasher runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet import task
from twisted.internet.defer import maybeDeferred
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from messenger import passwords
from messenger.passwords import PasswordHasher
from tests.support.harness import Harness


class LoggedFailures:
    """Collects every ``log.failure`` of the server while it is installed."""

    def __init__(self, testcase: SynchronousTestCase) -> None:
        self.failures: list[Failure] = []
        # Any callable taking an event is an observer; mypy wants the interface.
        observer = cast(ILogObserver, self._observe)
        globalLogPublisher.addObserver(observer)
        testcase.addCleanup(globalLogPublisher.removeObserver, observer)

    def _observe(self, event: dict[str, Any]) -> None:
        if "log_failure" in event:
            self.failures.append(event["log_failure"])

    def take(self) -> list[Failure]:
        failures, self.failures = self.failures, []
        return failures


class CountingRun:
    """A ``run_in_thread`` for :class:`PasswordHasher` that records every
    function it runs (so Argon2 verifications can be counted without timing
    anything); it runs them at once, or after ``delay`` seconds of clock
    time as a thread pool would."""

    def __init__(self, clock=None, delay: float = 0.0) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._clock = clock
        self._delay = delay

    def __call__(self, f, *args):
        self.calls.append((f, args))
        if self._delay:
            return task.deferLater(self._clock, self._delay, f, *args)
        return maybeDeferred(f, *args)

    def verifications(self) -> list[str]:
        """The hashes checked with Argon2 verify so far, then forget them."""
        hashes = [args[1] for f, args in self.calls if f is passwords.verify_hash]
        self.calls = []
        return hashes


def count_argon2(h: Harness, delay: float = 0.0) -> CountingRun:
    run = CountingRun(h.clock, delay)
    h.service.hasher = PasswordHasher(None, 1, 8, run_in_thread=run)
    return run
