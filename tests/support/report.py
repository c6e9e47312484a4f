"""Figures that reliability tests report for docs/reliability.md."""

import fcntl
import json
import os


def merge_report(figures: dict) -> None:
    """Merge ``figures`` into $MESSENGER_RELIABILITY_REPORT (read-modify-write
    under an exclusive lock; other tests write to the same file)."""
    path = os.environ.get("MESSENGER_RELIABILITY_REPORT")
    if not path:
        return
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                with open(path, encoding="utf-8") as f:
                    report = json.load(f)
                if not isinstance(report, dict):
                    report = {}
            except (OSError, ValueError):
                report = {}
            report.update(figures)
            temporary = f"{path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(temporary, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
