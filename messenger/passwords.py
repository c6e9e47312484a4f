"""Password hashing with Argon2id, off the reactor thread.

Hashing is deliberately slow, so it runs in a thread (``deferToThreadPool``)
and the reactor keeps serving everyone else meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

import argon2
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

# OWASP's minimum recommendation for Argon2id: m=19 MiB, t=2, p=1.
DEFAULT_TIME_COST = 2
DEFAULT_MEMORY_COST = 19 * 1024  # KiB
PARALLELISM = 1


def make_hasher(
    time_cost: int = DEFAULT_TIME_COST, memory_cost: int = DEFAULT_MEMORY_COST
) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=PARALLELISM,
        type=argon2.Type.ID,
    )


def verify_hash(hasher: argon2.PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


class PasswordHasher:
    """Hash and verify passwords in a thread pool.

    ``verify(None, password)`` checks the password against a dummy hash, so
    that a login for an unknown user costs as much as one with a wrong
    password and the two cannot be told apart by their timing.
    """

    def __init__(
        self,
        reactor,
        time_cost: int = DEFAULT_TIME_COST,
        memory_cost: int = DEFAULT_MEMORY_COST,
        run_in_thread: Callable[..., Deferred] | None = None,
    ) -> None:
        self._hasher = make_hasher(time_cost, memory_cost)
        if run_in_thread is None:

            def run_in_thread(f, *args):
                return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

        self._run = run_in_thread
        self._dummy_hash = self._hasher.hash("not the password of anybody")

    def hash(self, password: str) -> Deferred:
        return self._run(self._hasher.hash, password)

    def verify(self, password_hash: str | None, password: str) -> Deferred:
        if password_hash is None:
            d = self._run(verify_hash, self._hasher, self._dummy_hash, password)
            return d.addCallback(lambda _: False)
        return self._run(verify_hash, self._hasher, password_hash, password)
