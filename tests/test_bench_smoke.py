"""The bench/ scripts run and print their figures.

Nothing here times anything: speed is the bench's business. Each bench runs at tiny sizes.
"""

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


IMPORT_BENCH = ROOT / "bench" / "import.py"


def test_import_bench_runs_and_prints_sizes():
    done = subprocess.run([sys.executable, str(IMPORT_BENCH), "--only", "large/xero-payroll-uk.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    row = re.search(r"^large/xero-payroll-uk\.yaml\s+(\d+)\s+(\d+)\s+(\d+\.\d\d)\s", done.stdout, re.M)
    assert row is not None, done.stdout
    assert float(row.group(3)) > 0
    assert re.search(r"^worst size ratio: \d+\.\d\d", done.stdout, re.M), done.stdout


def test_import_bench_says_when_nothing_matches():
    done = subprocess.run([sys.executable, str(IMPORT_BENCH), "--only", "no-such-document.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no documents found" in done.stderr


SYNC_BENCH = ROOT / "bench" / "sync.py"


def test_sync_bench_runs_and_prints_records_per_second_and_memory():
    done = subprocess.run([sys.executable, str(SYNC_BENCH), "--sizes", "150", "--create-sizes", "40"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    for path, size in (("unchanged", 150), ("create", 40)):
        row = re.search(rf"^{path}\s+{size}\s+(\d+\.\d\d)\s+(\d+)\s+\S+\s+\S+\s+(\d+\.\d\d)\s+(\d+)\s+(\d+)", done.stdout, re.M)
        assert row is not None, done.stdout
        assert float(row.group(1)) > 0 and int(row.group(2)) > 0 and int(row.group(5)) > 0


def test_sync_bench_refuses_a_bad_size():
    done = subprocess.run([sys.executable, str(SYNC_BENCH), "--sizes", "0"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "record counts must be >= 1" in done.stderr


CATALOG_BENCH = ROOT / "bench" / "catalog.py"


def test_catalog_bench_prints_recall_and_latency_ratios():
    done = subprocess.run([sys.executable, str(CATALOG_BENCH), "--repeat", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    recall = re.search(r"^recall@5: (\d\.\d{3})$", done.stdout, re.M)
    assert recall is not None, done.stdout
    assert float(recall.group(1)) >= 0.9
    assert re.search(r"^ratio p50: \d+\.\d\d \(search/baseline\), p95: \d+\.\d\d$", done.stdout, re.M), done.stdout


def test_catalog_bench_refuses_a_bad_repeat():
    done = subprocess.run([sys.executable, str(CATALOG_BENCH), "--repeat", "0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--repeat must be >= 1" in done.stderr


RUNTIME_BENCH = ROOT / "bench" / "runtime.py"
RUNTIME_TINY = ("--seconds", "0.5", "--warmup", "2", "--rate", "10", "--ack-seconds", "0.5", "--standard", "4",
                "--steps", "2", "--repeat", "1")


def test_runtime_bench_prints_every_figure_of_issue_10():
    done = subprocess.run([sys.executable, str(RUNTIME_BENCH), *RUNTIME_TINY], cwd=ROOT, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    for label in ("health", "runs route", "webhook instant"):
        for conns in (1, 16):
            row = re.search(rf"^{label}\s+conns={conns}\s+(\d+\.\d) req/s  p50\s+(\d+\.\d) ms  p99\s+(\d+\.\d) ms  "
                            r"\(n=(\d+)\)$", out, re.M)
            assert row is not None, (label, conns, out)
            assert float(row.group(1)) > 0 and int(row.group(4)) >= 1
    assert len(re.findall(r"^  webhook runs completed and recorded: \d+\.\d/s; answer carries the result: ", out,
                          re.M)) == 2, out
    assert len(re.findall(r"^  ratio conns=(1|16): runs/health \d+\.\d\d, webhook/health \d+\.\d\d", out, re.M)) == 2
    assert re.search(r"^standard webhook ack at 10/s for 0\.5 s: p50 \d+\.\d ms  p99 \d+\.\d ms  \(n=5;", out, re.M), out
    for workers in ("1 worker", "2 workers"):
        row = re.search(rf"^standard executions/s, {workers}: (\d+\.\d|nan)  \(5 executions, first to last "
                        r"completion \d+\.\d\d s\)$", out, re.M)
        assert row is not None, (workers, out)
    assert re.search(r"^durable execution of 2 steps: \d+\.\d ms, the same 2 calls made directly: \d+\.\d ms", out,
                     re.M), out
    assert re.search(r"^durable per-step overhead: -?\d+\.\d\d ms per step overall, -?\d+\.\d\d ms per added step", out,
                     re.M), out


def test_runtime_bench_refuses_a_one_step_workflow():
    done = subprocess.run([sys.executable, str(RUNTIME_BENCH), "--steps", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--steps must be >= 2" in done.stderr
    assert "req/s" not in done.stdout
