"""The flagship sync at scale: records per second and peak memory, unchanged path and create path.

Usage::

    .venv/bin/python bench/sync.py [--sizes 10000[,100000]] [--create-sizes 10000] [--profile SIZE]

For each size N, two sandboxes are served by ``switchboard sandbox`` child
processes from the providers' documents (HubSpot CRM contacts v3 and Cin7 Core
v2): HubSpot with N contacts, and Cin7 with N customers that already hold what
the flagship's mapping produces (the unchanged path: a second run over data
that did not change) or with none (the create path: a first run, one
``create_customer`` per contact). Then one child process of this script (so its
peak memory is that run's alone) runs ``examples/hubspot-contacts-to-cin7.yaml``
through the interpreter, the action executor and the HTTP client, exactly as a
worker would, and prints the sync's counts, the run's wall time, its records per
second and the child's peak RSS over its RSS before the run.

The baseline, measured in the same child right after the run: the same list
requests (every HubSpot page of 100, every Cin7 page of 1000) made with one
``httpx.AsyncClient`` and each body parsed, which is the least any sync must do
before comparing anything. ``ratio`` is the run's time over it.

Choices, and why:

* The sandboxes have no rate limit, and the connectors' declared ``rate_limit``
  (HubSpot's 100 per 10 s, Cin7's 60 per minute) is removed for the bench: the
  quota would be the whole figure (10,000 contacts are 100 HubSpot pages: 10 s
  at HubSpot's rate, whatever the engine does), and it is the engine's cost that
  is measured here.
* The list actions' ``max_pages`` is raised to the schema's ceiling (10,000),
  so 100,000 contacts (1,000 pages) are read whole.
* The run's expression budget is raised (``--budget-seconds``, default 600): the
  default (30 CPU seconds per run) is a guard for interactive runs.
* The create path sends one POST per record, so it is slow by nature (the
  sandbox answers each); it runs at ``--create-sizes`` only (default 10,000).
* ``--profile N`` prints a cProfile (CPU time) of the unchanged run at N records (``--profile-path
  create`` profiles the create path).

``tests/test_bench_smoke.py`` runs it with ``--sizes 200 --create-sizes 200``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import pstats
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Run as a script, this file's directory comes first on sys.path, and bench/ holds engine.py,
# which would shadow the engine package. The package is what we want.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOCUMENTS = ROOT / "tests" / "data" / "openapi"
HUBSPOT_DOCUMENT = DOCUMENTS / "hubspot-crm-contacts-v3.json"
CIN7_DOCUMENT = DOCUMENTS / "cin7-core-v2-subset.yaml"
WORKFLOW = ROOT / "examples" / "hubspot-contacts-to-cin7.yaml"
CONNECTORS = ROOT / "examples" / "connectors"
AIM_RECORDS_PER_SECOND = 5000
SANDBOX_START_TIMEOUT_S = 300.0
CHILD_TIMEOUT_S = 1800
HUBSPOT_PAGE, CIN7_PAGE = 100, 1000


# -- data --------------------------------------------------------------------------------


def contact(i: int) -> dict[str, Any]:
    props = {"email": f"person{i}@example.com", "firstname": f"First{i}", "lastname": f"Last{i}",
             "phone": f"+1 555 {i:07d}"}
    return {"id": str(100000 + i), "properties": props, "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z", "archived": False}


def customer(i: int) -> dict[str, Any]:
    """The Cin7 customer the flagship's mapping makes of contact ``i`` (so a second run changes nothing)."""
    name = f"First{i} Last{i}"
    return {"ID": str(uuid.UUID(int=i + 1)), "Name": name, "Currency": "USD",
            "Contacts": [{"Name": name, "Email": f"person{i}@example.com", "Phone": f"+1 555 {i:07d}", "Default": True}]}


# -- sandboxes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def sandbox(document: Path, seed: dict[str, Any]) -> Iterator[str]:
    """``switchboard sandbox`` of ``document`` in a child process; yields its base URL."""
    import httpx

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        seed_file = Path(tmp) / "seed.json"
        seed_file.write_text(json.dumps(seed))
        command = [sys.executable, "-m", "switchboard", "sandbox", str(document), "--port", str(port),
                   "--seed", str(seed_file)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            origin = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + SANDBOX_START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"the sandbox of {document.name} exited with {process.returncode}")
                try:
                    if httpx.get(origin + "/__sandbox/state", timeout=5.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the sandbox of {document.name} did not serve within {SANDBOX_START_TIMEOUT_S:.0f} s")
                time.sleep(0.1)
            from engine.openapi import load_openapi

            yield origin + urlsplit(load_openapi(document).servers[0]).path.rstrip("/")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the measured child --------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _connectors() -> dict[str, Any]:
    from engine.specs import load_connectors_dir

    connectors = {}
    for cid, spec in load_connectors_dir(CONNECTORS).items():
        actions = {
            name: action.model_copy(update={"pagination": action.pagination.model_copy(update={"max_pages": 10_000})})
            if action.pagination is not None else action
            for name, action in spec.actions.items()
        }
        connectors[cid] = spec.model_copy(update={"rate_limit": None, "actions": actions})
    return connectors


async def _run_engine(hubspot: str, cin7: str, budget_seconds: float, profile: bool) -> dict[str, Any]:
    from engine.expressions import ExpressionBudget
    from engine.http import EgressPolicy, HttpClient, RateLimit
    from engine.specs import load_workflow
    from engine.workflow import Dependencies, Interpreter
    from runtime import build_executor

    workflow = load_workflow(WORKFLOW)
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)), rate_limit=RateLimit(per_second=1e9, burst=1_000_000_000))
    try:
        executor = build_executor(_connectors(), http, credentials=None, base_urls={"hubspot": hubspot, "cin7": cin7})
        interpreter = Interpreter(Dependencies(invoker=executor, budget=ExpressionBudget(seconds=budget_seconds)))
        gc.collect()
        rss_before = _rss_bytes()
        profiler = cProfile.Profile(time.process_time) if profile else None
        c0, w0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        result = await interpreter.run(workflow, {"page_size": HUBSPOT_PAGE, "currency": "USD"})
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if not result.succeeded:
            raise SystemExit(f"the flagship failed: {result.error}")
        if profiler:
            stats = pstats.Stats(profiler, stream=sys.stderr)
            for key in ("cumulative", "tottime"):
                print(f"\n-- cProfile (CPU time) of the run, top by {key} --", file=sys.stderr)
                stats.sort_stats(key).print_stats(35)
        return {"output": result.output, "wall": wall, "cpu": cpu, "rss_before": rss_before, "peak": peak}
    finally:
        await http.aclose()


async def _run_baseline(hubspot: str, cin7: str, size: int) -> float:
    """Every page of both lists with one httpx client, each body parsed: the least a sync must do."""
    import httpx

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60.0) as client:
        after, contacts = None, 0
        while True:
            params: dict[str, Any] = {"limit": HUBSPOT_PAGE, "properties": ["email", "firstname", "lastname", "phone"],
                                      "archived": "false"}
            if after is not None:
                params["after"] = after
            body = (await client.get(f"{hubspot}/crm/v3/objects/contacts", params=params,
                                     headers={"Authorization": "Bearer bench-token"})).json()
            contacts += len(body.get("results", []))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        page, customers = 1, 0
        while True:
            body = (await client.get(f"{cin7}/customer", params={"Page": page, "Limit": CIN7_PAGE},
                                     headers={"api-auth-accountid": "bench", "api-auth-applicationkey": "bench"})).json()
            listed = body.get("CustomerList") or []
            customers += len(listed)
            if len(listed) < CIN7_PAGE:
                break
            page += 1
    if contacts != size:
        raise SystemExit(f"the baseline read {contacts} contacts, not {size}")
    return time.perf_counter() - started


def child(args: argparse.Namespace) -> int:
    measured = asyncio.run(_run_engine(args.hubspot, args.cin7, args.budget_seconds, args.profile_run))
    measured["baseline"] = asyncio.run(_run_baseline(args.hubspot, args.cin7, args.size))
    print(json.dumps(measured))
    return 0


# -- the parent ----------------------------------------------------------------------------


def measure(size: int, path: str, budget_seconds: float, profile: bool) -> dict[str, Any]:
    contacts = {"/crm/v3/objects/contacts": [contact(i) for i in range(size)]}
    customers = {"/customer": [customer(i) for i in range(size)] if path == "unchanged" else []}
    with sandbox(HUBSPOT_DOCUMENT, contacts) as hubspot, sandbox(CIN7_DOCUMENT, customers) as cin7:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--hubspot", hubspot, "--cin7", cin7, "--size", str(size),
                   "--budget-seconds", str(budget_seconds)] + (["--profile-run"] if profile else [])
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=None if profile else subprocess.PIPE,
                              text=True, timeout=CHILD_TIMEOUT_S)
    if done.returncode != 0:
        raise SystemExit(f"the measured run failed ({size} records, {path}):\n{done.stderr or ''}{done.stdout}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"unchanged": {"created": 0, "updated": 0, "unchanged": size, "skipped": 0},
                "create": {"created": size, "updated": 0, "unchanged": 0, "skipped": 0}}[path]
    if result["output"] != expected:
        raise SystemExit(f"the sync did not do what the bench expects ({size} records, {path}): "
                         f"{result['output']} != {expected}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000", help="record counts of the unchanged path (default 10000; "
                        "100000 is an option: the sandboxes page slowly through that many records)")
    parser.add_argument("--create-sizes", default="10000", help="record counts of the create path (default 10000; '' for none)")
    parser.add_argument("--budget-seconds", type=float, default=600.0, help="the run's expression budget in CPU seconds")
    parser.add_argument("--profile", type=int, default=None, metavar="N", help="profile the unchanged run at N records")
    parser.add_argument("--profile-path", choices=("unchanged", "create"), default="unchanged",
                        help="which path --profile profiles")
    # the measured child's own arguments
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hubspot", help=argparse.SUPPRESS)
    parser.add_argument("--cin7", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        create_sizes = [int(s) for s in args.create_sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes and --create-sizes are comma-separated record counts")
    if any(n < 1 for n in sizes + create_sizes):
        parser.error("record counts must be >= 1")
    if args.profile is not None:
        measure(args.profile, args.profile_path, args.budget_seconds, profile=True)
        return 0
    print("flagship sync (HubSpot contacts -> Cin7 customers) against sandboxes in child processes, no rate limit:")
    print(f"{'path':<10} {'records':>8} {'run s':>8} {'records/s':>10} {'cpu s':>7} {'baseline s':>10} {'ratio':>6} "
          f"{'rss MB':>7} {'peak MB':>8} {'grew MB':>8}")
    for path, counts in (("unchanged", sizes), ("create", create_sizes)):
        for size in counts:
            r = measure(size, path, args.budget_seconds, profile=False)
            rate = size / r["wall"]
            print(f"{path:<10} {size:>8} {r['wall']:>8.2f} {rate:>10.0f} {r['cpu']:>7.2f} {r['baseline']:>10.2f} "
                  f"{r['wall'] / r['baseline']:>6.2f} {r['rss_before'] / 2**20:>7.0f} {r['peak'] / 2**20:>8.0f} "
                  f"{(r['peak'] - r['rss_before']) / 2**20:>8.0f}", flush=True)
    print(f"aim: unchanged path >= {AIM_RECORDS_PER_SECOND} records/s at 10000 records; "
          "ratio = run time / httpx listing both sides")
    return 0


if __name__ == "__main__":
    sys.exit(main())
