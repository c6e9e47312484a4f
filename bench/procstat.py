"""What the kernel says about a process: CPU time, resident memory, limits.

Linux only (``/proc``).  CPU time is ``utime + stime`` of the whole process
(every thread: the reactor, SQLite's thread, the Argon2 thread pool), in
clock ticks converted to seconds, so its resolution is 1/CLK_TCK (10 ms).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """One reading of a process: when, CPU seconds so far, RSS bytes."""

    at: float  # time.monotonic()
    cpu: float
    rss: int
    #: Seconds its threads spent runnable but waiting for a CPU (another
    #: process had it): how much a busy machine slowed the run down.
    wait: float = 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = data[data.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_queue_wait(pid) -> float:
    """Seconds the threads of ``pid`` (or "self") have waited on a run
    queue, from /proc/PID/task/*/schedstat (0.0 where the kernel lacks it).
    A thread that has exited takes its share with it."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def sample(pid: int | Sequence[int]) -> Sample:
    """One process, or the sum over several (a cluster's nodes with its
    PostgreSQL and Redis processes); a process gone meanwhile counts 0."""
    if isinstance(pid, int):
        return Sample(time.monotonic(), cpu_seconds(pid), rss_bytes(pid), run_queue_wait(pid))
    cpu = wait = 0.0
    rss = 0
    for one in pid:
        try:
            cpu += cpu_seconds(one)
            rss += rss_bytes(one)
            wait += run_queue_wait(one)
        except OSError:
            continue
    return Sample(time.monotonic(), cpu, rss, wait)


def settle(
    pid: int | Sequence[int], timeout: float = 5.0, quiet: float = 0.3, step: float = 0.05
) -> Sample:
    """Wait until ``pid`` stops using CPU (no tick for ``quiet`` seconds),
    at most ``timeout`` seconds, and return the last sample.

    The server goes on working after the last line a client sees (an ACK
    to commit, a receipt to write): this lets the CPU window include it.
    """
    deadline = time.monotonic() + timeout
    last = sample(pid)
    quiet_since = last.at
    while time.monotonic() < deadline:
        time.sleep(step)
        now = sample(pid)
        if now.cpu > last.cpu:
            quiet_since = now.at
        last = now
        if now.at - quiet_since >= quiet:
            break
    return last


def self_cpu() -> float:
    """CPU seconds of the calling process, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_nofile(wanted: int) -> tuple[int, int, str | None]:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard
    limit).  Children started afterwards inherit it.  Returns (soft, hard,
    a warning if ``wanted`` could not be reached)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            return soft, hard, f"cannot raise the file descriptor limit to {target}: {e}"
    if soft < wanted:
        return (
            soft,
            hard,
            (f"file descriptor limit is {soft} (hard limit {hard}), below the {wanted} wanted"),
        )
    return soft, hard, None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


def filesystem_type(path: str) -> str:
    """The type of the file system holding ``path`` (ext4, tmpfs, ...)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and (
                    path == parts[1] or path.startswith(parts[1].rstrip("/") + "/")
                ):
                    if len(parts[1]) > len(best):
                        best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind
