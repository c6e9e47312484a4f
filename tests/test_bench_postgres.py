"""``python -m bench --db postgres``: the benchmark runs on a PostgreSQL it
starts itself, counts that server's CPU, and loses nothing.

Like tests/test_bench.py it never checks speed, only that the runs
complete and are correct.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from tests.support.postgres import skip_unless_postgres

pytestmark = [pytest.mark.slow, pytest.mark.services]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_quick_run_on_postgresql_completes_without_loss_or_duplicates():
    """W1 and W2 on one node on PostgreSQL: every run ends without error,
    nothing lost, duplicated or misdelivered, and the report says where the
    server ran."""
    skip_unless_postgres()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "--quick", "--workloads", "W1,W2",
             "--targets", "messenger", "--db", "postgres", "--nodes", "1",
             "--json", out, "--tmpdir", tmp],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        report = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        assert os.path.exists(out), report
        with open(out, encoding="utf-8") as f:
            data = json.load(f)
    runs = data["outcomes"]
    assert {(r["workload"], r["target"]) for r in runs} >= {
        ("W1", "messenger"),
        ("W2", "messenger"),
    }, report
    for run in runs:
        assert run["error"] is None, report
        assert run["problems"] == [], report
        for key in ("lost", "duplicated", "misdelivered"):
            assert run["checks"].get(key, 0) == 0, report
        assert run["checks"]["delivered"] > 0, report
    assert "runs on PostgreSQL" in proc.stdout, report
    assert proc.returncode == 0, report
