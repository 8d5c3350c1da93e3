"""OpenAPI import on large documents: spec size, import time and peak memory, per document.

Usage::

    .venv/bin/python bench/import.py [--only NAME ...] [--large-only] [--profile NAME]

For every document of the large folder (``tests/data/openapi/large``) and of the regular specs folder
(``tests/data/openapi``), one child process per document (so peak memory is that
document's alone) does, in order:

* the baseline: read the file and parse it (JSON or YAML), the least any
  importer must do; its time and the process's peak RSS after it;
* the import: ``engine.openapi.import_connector`` on the file, then the
  connector written out as JSON (``dump_connector``), as ``switchboard
  connector import`` does.

Printed per document: the document's size as JSON (compact), the connector
spec's size as JSON (compact), their ratio (the issue's aim: about 2x, at most
3x), the import's wall time and its ratio to the parse, and the peak RSS of
the child (and of the parse-only point, to show what the import adds). The
machine is noisy: the ratios against the same run's parse are the figures to
compare across machines.

Output of one run on a 2-core machine (``tests/test_bench_smoke.py`` reads the lines)::

    document                                   doc KB  spec KB  size x  parse s  import s  time x  parse MB  peak MB  actions   defs
    large/box.json                               1064      837    0.79    0.015      2.85   193.9        27       91      296    300
    large/slack_web_v2.json                       442      225    0.51    0.006      1.36   218.4        20       77      174     47
    large/twilio_conversations_v1.json            492      237    0.48    0.005      0.86   174.2        20       75      103     67
    large/xero-payroll-uk.yaml                    192      107    0.56    0.080      0.57     7.1        23       75       69    106
    large/xero_accounting.yaml                    629      324    0.51    0.329      1.88     5.7        43       93      235    135
    ...
    worst size ratio: 1.69 (spec/document; aim <= 2, limit 3)

Before shared schemas were kept in ``$defs`` (every ``$ref`` inlined), the same run gave
box 5284 KB (4.97x), 13.5 s, 176 MB; slack 945 KB (2.14x), 7.9 s, 100 MB; xero_accounting
39392 KB (62.67x), 105.9 s, 921 MB. ``peak MB`` includes the engine's own modules (about 65 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and bench/ holds engine.py,
# which would shadow the engine package. The package is what we want.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SPECS = ROOT / "tests" / "data" / "openapi"
LARGE_DIRS = (SPECS / "large",)
SIZE_AIM, SIZE_LIMIT = 2.0, 3.0
CHILD_TIMEOUT_S = 600


def _documents(only: list[str], large_only: bool) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    large = next((d for d in LARGE_DIRS if d.is_dir()), None)
    if large is not None:
        found += [(f"large/{p.name}", p) for p in sorted(large.iterdir()) if p.suffix in (".json", ".yaml", ".yml")]
    if SPECS.is_dir() and not large_only:
        found += [(p.name, p) for p in sorted(SPECS.iterdir()) if p.suffix in (".json", ".yaml", ".yml")]
    if only:
        found = [(label, path) for label, path in found if path.name in only or label in only]
    return found


def _peak_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _child(path: Path, profile: bool) -> None:
    """Measure one document in this (fresh) process; print one JSON line."""
    import yaml

    started = time.perf_counter()
    text = path.read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # what the importer uses
    data = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=loader)  # noqa: S506
    parse_s = time.perf_counter() - started
    doc_bytes = len(json.dumps(data, separators=(",", ":"), default=str).encode())
    del data, text
    parse_mb = _peak_mb()

    from engine.errors import OpenAPIImportError
    from engine.openapi import dump_connector, import_connector

    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    try:
        result = import_connector(path)
        spec_text = dump_connector(result.connector, "json")
    except OpenAPIImportError as exc:
        print(json.dumps({"refused": exc.reason[:120]}))
        return
    import_s = time.perf_counter() - started
    if profiler is not None:
        import pstats
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    spec_bytes = len(json.dumps(json.loads(spec_text), separators=(",", ":")).encode())
    print(json.dumps({
        "doc_bytes": doc_bytes, "spec_bytes": spec_bytes, "parse_s": parse_s, "import_s": import_s,
        "parse_mb": parse_mb, "peak_mb": _peak_mb(), "actions": len(result.connector.actions),
        "defs": len(result.connector.defs or {}),
    }))


def _run(path: Path, profile: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)] + (["--profile-child"] if profile else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env, cwd=ROOT)
    if profile:
        sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", nargs="*", default=[], help="document file names (or large/NAME) to measure")
    parser.add_argument("--large-only", action="store_true", help="only the large folder")
    parser.add_argument("--profile", metavar="NAME", help="print a cProfile of importing this document")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.profile_child)
        return 0
    documents = _documents(args.only + ([args.profile] if args.profile else []), args.large_only)
    if not documents:
        print("no documents found (looked in tests/data/openapi/large and tests/data/openapi)",
              file=sys.stderr)
        return 2
    print(f"OpenAPI import, one process per document; baseline: reading and parsing the document "
          f"(aim: spec <= {SIZE_AIM:g}x the document as JSON, at most {SIZE_LIMIT:g}x)")
    header = f"{'document':<40} {'doc KB':>8} {'spec KB':>8} {'size x':>7} {'parse s':>8} {'import s':>9} " \
             f"{'time x':>7} {'parse MB':>9} {'peak MB':>8} {'actions':>8} {'defs':>6}"
    print(header)
    worst = 0.0
    for label, path in documents:
        row = _run(path, args.profile is not None and path.name == args.profile)
        if "error" in row or "refused" in row:
            print(f"{label:<40} {'refused: ' + row['refused'] if 'refused' in row else 'error: ' + row['error']}")
            continue
        size_x = row["spec_bytes"] / row["doc_bytes"]
        worst = max(worst, size_x)
        time_x = row["import_s"] / max(row["parse_s"], 1e-6)
        print(f"{label:<40} {row['doc_bytes'] / 1024:>8.0f} {row['spec_bytes'] / 1024:>8.0f} {size_x:>7.2f} "
              f"{row['parse_s']:>8.3f} {row['import_s']:>9.2f} {time_x:>7.1f} {row['parse_mb']:>9.0f} "
              f"{row['peak_mb']:>8.0f} {row['actions']:>8} {row['defs']:>6}")
    print(f"worst size ratio: {worst:.2f} (spec/document; aim <= {SIZE_AIM:g}, limit {SIZE_LIMIT:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
