"""Drive load generator processes from the harness.

:class:`Loadgen` starts ``python -m bench.loadgen``, hands it its spec and
reads its JSON event lines with a deadline on every read; its stderr goes
to a log file.  A load generator that fails reports an ``error`` event,
raised here as :class:`LoadgenFailed` with its traceback.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import IO, Any

from bench.servers import REPO_ROOT, Reaper, child_env, die_with_parent


class LoadgenFailed(RuntimeError):
    pass


class Loadgen:
    def __init__(self, reaper: Reaper, spec: dict[str, Any], log_path: str) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = reaper.add(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.loadgen"],
                    cwd=REPO_ROOT,
                    env=child_env(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    preexec_fn=die_with_parent,
                )
            )
        self._buffer = b""
        self.info: dict[str, Any] = {}
        self._write(json.dumps(spec))
        self.info = self.expect("started", 60)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None  # Popen(stdin=PIPE)
        return self.proc.stdin

    def _write(self, line: str) -> None:
        try:
            self._stdin.write(line.encode() + b"\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError):
            raise LoadgenFailed(f"the load generator is gone; see {self.log_path}") from None

    def send(self, word: str) -> None:
        self._write(word)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next event line; it must be ``event``."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None  # Popen(stdout=PIPE)
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadgenFailed(f"no {event!r} from the load generator within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise LoadgenFailed(
                        f"the load generator exited (status {self.proc.wait()}) "
                        f"before {event!r}; see {self.log_path}\n{self._log_tail()}"
                    )
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if message.get("event") == "error":
            raise LoadgenFailed(
                f"load generator: {message.get('error')}\n{message.get('traceback', '')}"
            )
        if message.get("event") != event:
            raise LoadgenFailed(
                f"expected {event!r} from the load generator, got {message.get('event')!r}"
            )
        return message

    def close(self, timeout: float = 10.0) -> int | None:
        """Let it disconnect and exit (stdin closed); kill it if it lingers."""
        try:
            if self.proc.poll() is None:
                self._stdin.write(b"release\n")
                self._stdin.flush()
        except OSError:
            pass
        try:
            self._stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return None

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""
