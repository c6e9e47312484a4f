"""The benchmark harness still runs end to end (``python -m bench --quick``).

It checks that every workload completes against the real server and the
relay baseline, and that nothing was lost, duplicated, refused or left
unanswered.  It never checks how fast anything was: the figures belong to
the report, not to the test suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: A real benchmark run, however short.
pytestmark = pytest.mark.slow


class QuickBenchTest(unittest.TestCase):
    def test_quick_run_completes_without_loss_or_duplicates(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "bench.json")
            env = dict(os.environ)
            env["PYTHONPATH"] = REPO_ROOT + (
                os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
            )
            proc = subprocess.run(
                [sys.executable, "-m", "bench", "--quick", "--json", out, "--tmpdir", tmp],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=600,
            )
            report = f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
            self.assertTrue(os.path.exists(out), report)
            with open(out, encoding="utf-8") as f:
                data = json.load(f)

        runs = data["outcomes"] + data["scaling"]
        seen = {(r["workload"], r["target"]) for r in runs}
        for expected in [
            ("W1", "messenger"),
            ("W1", "relay"),
            ("W2", "messenger"),
            ("W2", "relay"),
            ("W3", "messenger"),
            ("W3", "relay"),
            ("W4", "messenger"),
            ("W5-resume", "messenger"),
            ("W5-resume", "relay"),
            ("W5-login", "messenger"),
        ]:
            self.assertIn(expected, seen, report)
        self.assertTrue(any(r["workload"].startswith("scale-") for r in data["scaling"]), report)
        for run in runs:
            name = f"{run['workload']} on the {run['target']}"
            self.assertIsNone(run["error"], f"{name}: {run['error']}\n{report}")
            self.assertEqual(run["problems"], [], f"{name}\n{report}")
            checks = run["checks"]
            for key in ("lost", "duplicated", "misdelivered"):
                if key in checks:
                    self.assertEqual(checks[key], 0, f"{name}: {key}\n{report}")
            self.assertFalse(checks.get("timed_out"), f"{name} timed out\n{report}")
        # Every message workload delivered something, and the report has a table.
        for run in runs:
            if "delivered" in run["checks"]:
                self.assertGreater(run["checks"]["delivered"], 0, run["workload"])
        self.assertIn("| workload | figure |", proc.stdout)
        self.assertEqual(proc.returncode, 0, report)


if __name__ == "__main__":
    unittest.main()
