"""Sample the server with py-spy during a measured phase, and summarize.

``PySpy`` runs ``py-spy record --format raw`` (collapsed stacks, one
``frame;frame;...;frame count`` line per distinct stack) against the
server's pid; ``summarize`` turns such a file into the top functions by
self time and by cumulative time.  py-spy takes CPU of its own: figures
measured while it samples are not comparable with those without.

    python -m bench.profiling profile.txt    # the tables of a recorded file
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.servers import Reaper, die_with_parent


class PySpy:
    def __init__(
        self, reaper: Reaper, pid: int, directory: str, name: str, rate: int = 250
    ) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"{name}.txt")
        self.summary_path = os.path.join(directory, f"{name}-top.txt")
        self.proc: subprocess.Popen | None = None
        self._result: dict[str, str] | None = None
        exe = shutil.which("py-spy")
        if exe is None:
            self._result = {"error": "py-spy is not installed (pip install py-spy)"}
            return
        self.proc = reaper.add(
            subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--function",
                    "--nonblocking",
                    "--rate",
                    str(rate),
                    "--output",
                    self.path,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        )

    def stop(self) -> dict[str, str]:
        if self._result is not None:
            return self._result
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not os.path.exists(self.path):
            self._result = {"error": "py-spy wrote nothing (needs ptrace permission)"}
            return self._result
        with open(self.summary_path, "w", encoding="utf-8") as f:
            f.write(format_summary(summarize(self.path)))
        self._result = {"stacks": self.path, "summary": self.summary_path}
        return self._result


REACTOR = "reactor thread"
WORKERS = "worker threads (SQLite, Argon2)"


@dataclass
class _Samples:
    """Samples of one group of threads: by own frame, by any frame, in all."""

    own: Counter[str] = field(default_factory=Counter)
    cumulative: Counter[str] = field(default_factory=Counter)
    samples: int = 0


def summarize(path: str, top: int = 25) -> dict[str, dict[str, Any]]:
    """Top frames by self and by cumulative samples, for all threads and
    separately for the reactor thread and the pool threads (a stack that
    starts in ``Thread._bootstrap`` is a pool thread's)."""
    groups = {name: _Samples() for name in ("all threads", REACTOR, WORKERS)}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            kind = WORKERS if frames[0].startswith("Thread._bootstrap") else REACTOR
            for name in ("all threads", kind):
                group = groups[name]
                group.samples += n
                group.own[frames[-1]] += n
                for frame in set(frames):
                    group.cumulative[frame] += n
    return {
        name: {
            "samples": g.samples,
            "self": g.own.most_common(top),
            "cumulative": g.cumulative.most_common(top),
            "cumulative, messenger/ only": [
                (frame, n) for frame, n in g.cumulative.most_common() if "(messenger/" in frame
            ][:top],
        }
        for name, g in groups.items()
    }


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """Percentages are of all samples (every thread), so they add up."""
    total = max(1, int(summary["all threads"]["samples"]))
    out: list[str] = []
    for name, group in summary.items():
        out += [
            f"== {name}: {group['samples']} samples, "
            f"{100.0 * int(group['samples']) / total:.0f}% of all"
        ]
        for title in ("self", "cumulative", "cumulative, messenger/ only"):
            out += ["", f"top by {title} time:"]
            rows: list[tuple[str, int]] = group[title]
            for frame, n in rows:
                out.append(f"{100.0 * n / total:6.1f}%  {frame}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(format_summary(summarize(p)))
