"""bench/engine.py runs and prints its ratio. Nothing here times anything: speed is the bench's business."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "engine.py"


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_bench_runs_and_prints_a_ratio():
    done = run_bench("--iterations", "1", "--warmup", "0")
    assert done.returncode == 0, done.stderr
    ratio = re.search(r"^ratio: (\d+\.\d\d) \(engine/baseline", done.stdout, re.M)
    assert ratio is not None, done.stdout
    assert float(ratio.group(1)) > 0
    for label in ("engine:", "baseline:", "breakdown,", "client CPU ms per run"):
        assert label in done.stdout, done.stdout


def test_bench_refuses_a_bad_iteration_count():
    done = run_bench("--iterations", "0")
    assert done.returncode == 2
    assert "--iterations must be >= 1" in done.stderr
    assert "ratio:" not in done.stdout
