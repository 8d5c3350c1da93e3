"""Engine overhead: a 10-step workflow against a sandbox, divided by the same 10 requests made with httpx.

Usage::

    .venv/bin/python bench/engine.py [--iterations 50] [--warmup 5] [--sandbox process|thread] [--profile]

The workflow (``WORKFLOW`` below) has ten action steps against one Cin7 Core
sandbox, each exactly one HTTP request (``paginate: false``); its templates read
the workflow input and earlier steps' outputs, as real workflows do. The
baseline sends the same ten requests (method, URL, query, auth headers),
written out by hand, one after another on one shared ``httpx.AsyncClient``,
and reads each JSON body, as code calling the API directly would.

Two engine layers are measured between them, sending the same requests, so
the breakdown says where the time goes: ``HttpClient`` (``engine.http``: SSRF
guard, rate limiter, retry policy, attempt records) and ``actions``
(``ActionExecutor.call``: input schema check, connector templates, auth,
body reading). Before timing, every side must send exactly the baseline's
requests. All sides are warmed up, then run interleaved in one process and one
event loop, the order rotating every iteration so none always goes first; the
medians are compared, because the machine is noisy.

Choices, and why:

* The sandbox runs in a separate process by default (``switchboard sandbox``),
  so its request handling does not compete with the measured client for the
  GIL, and this process's CPU time is the client's alone (printed too: a busy
  machine disturbs it less than wall time). ``--sandbox thread`` serves it from
  this process (``SandboxServer``) to compare. The sandbox's own time is in
  both sides' wall time, so a slow sandbox pulls the ratio towards 1: the
  script prints its CPU per request, and the overhead in ms per request.
* The engine's HTTP client gets a rate limit far above what the bench sends:
  the default per-connection limit (20/s, bursts of 40) is a deliberate
  throttle, not overhead, and would dominate the figure after four runs. The
  limiter itself still runs on every request. ``--default-rate-limit`` keeps
  the default to show the throttle.
* ``--profile`` runs the workflow side again under cProfile (CPU time) after
  the measurement and prints the top functions by cumulative and by own time.

Output of one run on a 2-core machine (``tests/test_bench_smoke.py`` reads the ``ratio:`` line)::

    10-step workflow against a Cin7 sandbox (separate process), 50 interleaved iterations, medians:
    engine:   median 68.34 ms per run (6.83 ms per request)
    baseline: median 56.67 ms per run (5.67 ms per request, one shared httpx.AsyncClient)
    ratio: 1.21 (engine/baseline; aim <= 1.3)
    engine overhead: 1.17 ms per request
    breakdown, wall ms per request over the layer below: HttpClient -0.05, actions +0.99, workflow +0.23
    client CPU ms per run (the sandbox is another process): httpx 25.7, HttpClient 25.4, actions 34.0, workflow 36.5; ratio 1.42
    sandbox CPU per request (in both sides' time): 2.92 ms
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file is named
# engine.py: it would shadow the engine package it measures. The package is what we want.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import pstats
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "tests" / "data" / "openapi" / "cin7-core-v2-subset.yaml"
CONNECTORS = ROOT / "examples" / "connectors"
STEPS = 10
AIM = 1.3
SANDBOX_START_TIMEOUT_S = 60.0

CREDENTIALS = {"account_id": "bench-account-id", "application_key": "bench-application-key"}
AUTH_HEADERS = {"api-auth-accountid": CREDENTIALS["account_id"], "api-auth-applicationkey": CREDENTIALS["application_key"]}

CUSTOMER_IDS = [f"6f1c6a52-0000-4000-8000-00000000000{i}" for i in range(1, 7)]
PRODUCT_IDS = [f"7a2d7b63-0000-4000-8000-00000000000{i}" for i in range(1, 7)]
SEED = {
    "/customer": [
        {"ID": cid, "Name": f"Customer {i}", "Currency": "USD",
         "Contacts": [{"Name": f"Contact {i}", "Email": f"c{i}@example.com", "Default": True}]}
        for i, cid in enumerate(CUSTOMER_IDS, 1)
    ],
    "/product": [
        {"ID": pid, "SKU": f"SKU-{i}", "Name": f"Product {i}", "PriceTier1": 10.0 * i}
        for i, pid in enumerate(PRODUCT_IDS, 1)
    ],
}

# Ten action steps, one request each. Lists are read a page at a time; the
# lookups by ID take their ids from earlier steps' outputs.
WORKFLOW: dict[str, Any] = {
    "id": "bench-ten-calls",
    "version": 1,
    "tier": "instant",
    "trigger": {"kind": "manual"},
    "input": {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1}}, "required": ["limit"]},
    "steps": [
        {"id": "customers", "action": "cin7.list_customers", "paginate": False,
         "input": {"Page": 1, "Limit": "{{ input.limit }}"}},
        {"id": "products", "action": "cin7.list_products", "paginate": False,
         "input": {"Page": 1, "Limit": "{{ input.limit }}"}},
        {"id": "customer_1", "action": "cin7.list_customers", "paginate": False,
         "input": {"ID": "{{ steps.customers.CustomerList[0].ID }}"}},
        {"id": "product_1", "action": "cin7.list_products", "paginate": False,
         "input": {"ID": "{{ steps.products.Products[0].ID }}"}},
        {"id": "customers_2", "action": "cin7.list_customers", "paginate": False,
         "input": {"Page": 2, "Limit": "{{ input.limit }}"}},
        {"id": "products_2", "action": "cin7.list_products", "paginate": False,
         "input": {"Page": 2, "Limit": "{{ input.limit }}"}},
        {"id": "customer_2", "action": "cin7.list_customers", "paginate": False,
         "input": {"ID": "{{ steps.customers.CustomerList[1].ID }}"}},
        {"id": "product_2", "action": "cin7.list_products", "paginate": False,
         "input": {"ID": "{{ steps.products.Products[1].ID }}"}},
        {"id": "by_name", "action": "cin7.list_customers", "paginate": False,
         "input": {"Name": "{{ steps.customer_1.CustomerList[0].Name }}"}},
        {"id": "by_sku", "action": "cin7.list_products", "paginate": False,
         "input": {"Sku": "{{ steps.product_1.Products[0].SKU }}"}},
    ],
}
INPUT = {"limit": 2}


def baseline_requests(base_url: str) -> list[tuple[str, str, dict[str, str]]]:
    """The workflow's ten requests, written out by hand: (method, URL, query)."""
    customer, product = f"{base_url}/customer", f"{base_url}/product"
    return [
        ("GET", customer, {"Page": "1", "Limit": "2"}),
        ("GET", product, {"Page": "1", "Limit": "2"}),
        ("GET", customer, {"ID": CUSTOMER_IDS[0]}),
        ("GET", product, {"ID": PRODUCT_IDS[0]}),
        ("GET", customer, {"Page": "2", "Limit": "2"}),
        ("GET", product, {"Page": "2", "Limit": "2"}),
        ("GET", customer, {"ID": CUSTOMER_IDS[1]}),
        ("GET", product, {"ID": PRODUCT_IDS[1]}),
        ("GET", customer, {"Name": "Customer 1"}),
        ("GET", product, {"Sku": "SKU-1"}),
    ]


# -- the sandbox ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen, origin: str) -> None:
    deadline = time.monotonic() + SANDBOX_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the sandbox process exited with {process.returncode} before serving")
        try:
            if httpx.get(origin + "/__sandbox/state", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the sandbox did not serve {origin} within {SANDBOX_START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


@contextlib.contextmanager
def sandbox_in_process() -> Iterator[tuple[str, int | None]]:
    """``switchboard sandbox`` in a child process; yields the base URL and the process id."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed.json"
        seed.write_text(json.dumps(SEED))
        command = [sys.executable, "-m", "switchboard", "sandbox", str(DOCUMENT), "--port", str(port), "--seed", str(seed)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            origin = f"http://127.0.0.1:{port}"
            _wait_until_serving(process, origin)
            from engine.openapi import load_openapi

            # the sandbox serves under the path of the document's first server URL
            yield origin + urlsplit(load_openapi(DOCUMENT).servers[0]).path.rstrip("/"), process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def sandbox_in_thread() -> Iterator[tuple[str, int | None]]:
    """``SandboxServer`` in a thread of this process; yields the base URL (and no process id)."""
    from engine.sandbox import SandboxServer

    with SandboxServer(DOCUMENT, seed=SEED) as server:
        yield server.base_url, None


def process_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far; None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the sides ---------------------------------------------------------------------------
#
# Four ways to make the same ten requests, each built once as a long-running worker would:
# the baseline, then the engine's layers from the bottom up, so the differences between
# neighbours say where the engine's time goes.

# The ten calls as the executor receives them (the workflow's step inputs, rendered).
CALLS = [
    ("list_customers", {"Page": 1, "Limit": 2}),
    ("list_products", {"Page": 1, "Limit": 2}),
    ("list_customers", {"ID": CUSTOMER_IDS[0]}),
    ("list_products", {"ID": PRODUCT_IDS[0]}),
    ("list_customers", {"Page": 2, "Limit": 2}),
    ("list_products", {"Page": 2, "Limit": 2}),
    ("list_customers", {"ID": CUSTOMER_IDS[1]}),
    ("list_products", {"ID": PRODUCT_IDS[1]}),
    ("list_customers", {"Name": "Customer 1"}),
    ("list_products", {"Sku": "SKU-1"}),
]


class Baseline:
    """httpx: the ten requests on one shared ``httpx.AsyncClient``, each JSON body read."""

    name = "httpx"

    def __init__(self, base_url: str):
        self.requests = baseline_requests(base_url)
        self.client = httpx.AsyncClient(headers=AUTH_HEADERS)

    async def run(self) -> list[str]:
        urls = []
        for method, url, params in self.requests:
            response = await self.client.request(method, url, params=params)
            response.raise_for_status()
            response.json()
            urls.append(str(response.request.url))
        return urls

    async def aclose(self) -> None:
        await self.client.aclose()


class HttpLayer:
    """engine.http: the same requests through ``HttpClient.request`` (SSRF guard, rate limiter, retry policy)."""

    name = "HttpClient"

    def __init__(self, base_url: str, http: Any):
        self.requests = baseline_requests(base_url)
        self.http = http

    async def run(self) -> list[str]:
        urls = []
        for method, url, params in self.requests:
            response = await self.http.request(method, url, headers=AUTH_HEADERS, params=params, rate_key="cin7")
            response.raise_for_status()
            response.json()
            urls.append(str(response.request.url))
        return urls


class ActionsLayer:
    """engine.actions: ``ActionExecutor.call`` with the steps' inputs (schema check, templates, auth)."""

    name = "actions"

    def __init__(self, executor: Any):
        self.executor = executor

    async def run(self) -> list[str]:
        urls = []
        for action, value in CALLS:
            response = await self.executor.call("cin7", action, value, paginate_pages=False)
            urls.append(response.url)
        return urls


class Engine:
    """engine.workflow: the interpreter running ``WORKFLOW`` (step templates, records, traces)."""

    name = "workflow"

    def __init__(self, executor: Any):
        from engine.specs import load_workflow
        from engine.workflow import Dependencies, Interpreter

        self.workflow = load_workflow(WORKFLOW)
        self.interpreter = Interpreter(Dependencies(invoker=executor))

    async def run(self) -> list[str]:
        result = await self.interpreter.run(self.workflow, INPUT)
        if not result.succeeded:
            raise SystemExit(f"the workflow failed: {result.error}")
        if any(t.status != 200 for t in result.traces):
            raise SystemExit(f"the workflow got statuses {[t.status for t in result.traces]}")
        return [t.url for t in result.traces]


def build_sides(base_url: str, *, default_rate_limit: bool) -> tuple[list[Any], Any]:
    """The four sides (baseline first, workflow last) and the engine's HttpClient."""
    from engine.http import DEFAULT_RATE_LIMIT, EgressPolicy, HttpClient, RateLimit
    from engine.specs import load_connectors_dir
    from runtime import build_executor

    limit = DEFAULT_RATE_LIMIT if default_rate_limit else RateLimit(per_second=1e9, burst=1_000_000_000)
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)), rate_limit=limit)
    executor = build_executor(load_connectors_dir(CONNECTORS), http, credentials={"cin7": CREDENTIALS},
                              base_urls={"cin7": base_url})
    sides = [Baseline(base_url), HttpLayer(base_url, http), ActionsLayer(executor), Engine(executor)]
    return sides, http


async def check_same_requests(sides: list[Any]) -> None:
    """Refuse to measure unless every side sends exactly the baseline's requests."""
    expected = await sides[0].run()
    if len(expected) != STEPS:
        raise SystemExit(f"the baseline sent {len(expected)} requests, not {STEPS}")
    for side in sides[1:]:
        sent = await side.run()
        if sent != expected:
            lines = "\n".join(f"  {side.name:>8} {s}\n  {'httpx':>8} {e}" for s, e in zip(sent, expected))
            raise SystemExit(f"{side.name} sends other requests than the baseline ({len(sent)}):\n{lines}")


async def measure(base_url: str, sandbox_pid: int | None, iterations: int, warmup: int, default_rate_limit: bool,
                  profile: bool) -> dict[str, Any]:
    """Wall and CPU seconds per run of each side, interleaved; the sandbox's CPU seconds per request;
    and a CPU profile of the workflow side."""
    sides, http = build_sides(base_url, default_rate_limit=default_rate_limit)
    try:
        await check_same_requests(sides)
        for _ in range(warmup):
            for side in sides:
                await side.run()
        gc.collect()
        wall: dict[str, list[float]] = {side.name: [] for side in sides}
        cpu: dict[str, list[float]] = {side.name: [] for side in sides}
        sandbox_before = process_cpu_seconds(sandbox_pid)
        for i in range(iterations):
            # rotate the order, so no side always runs first or right after another
            k = i % len(sides)
            for side in sides[k:] + sides[:k]:
                c0, w0 = time.process_time(), time.perf_counter()
                await side.run()
                wall[side.name].append(time.perf_counter() - w0)
                cpu[side.name].append(time.process_time() - c0)
        sandbox_after = process_cpu_seconds(sandbox_pid)
        sandbox_cpu = None
        if sandbox_before is not None and sandbox_after is not None:
            sandbox_cpu = (sandbox_after - sandbox_before) / (iterations * len(sides) * STEPS)
        stats = None
        if profile:
            # CPU time, not wall time: the wait for the sandbox is not the engine's cost
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for _ in range(max(iterations, 20)):
                await sides[-1].run()
            profiler.disable()
            stats = pstats.Stats(profiler)
        return {"names": [side.name for side in sides], "wall": wall, "cpu": cpu, "sandbox_cpu": sandbox_cpu, "profile": stats}
    finally:
        await sides[0].aclose()
        await http.aclose()


def report(measured: dict[str, Any], iterations: int, where: str, show_cpu: bool) -> None:
    names = measured["names"]
    wall = {n: statistics.median(measured["wall"][n]) * 1000 for n in names}
    cpu = {n: statistics.median(measured["cpu"][n]) * 1000 for n in names}
    engine_ms, baseline_ms = wall[names[-1]], wall[names[0]]
    print(f"{STEPS}-step workflow against a Cin7 sandbox ({where}), {iterations} interleaved iterations, medians:")
    print(f"engine:   median {engine_ms:.2f} ms per run ({engine_ms / STEPS:.2f} ms per request)")
    print(f"baseline: median {baseline_ms:.2f} ms per run ({baseline_ms / STEPS:.2f} ms per request, one shared httpx.AsyncClient)")
    print(f"ratio: {engine_ms / baseline_ms:.2f} (engine/baseline; aim <= {AIM})")
    print(f"engine overhead: {(engine_ms - baseline_ms) / STEPS:.2f} ms per request")
    steps = ", ".join(f"{b} {(wall[b] - wall[a]) / STEPS:+.2f}" for a, b in zip(names, names[1:]))
    print(f"breakdown, wall ms per request over the layer below: {steps}")
    if show_cpu:
        per_run = ", ".join(f"{n} {cpu[n]:.1f}" for n in names)
        print(f"client CPU ms per run (the sandbox is another process): {per_run}; "
              f"ratio {cpu[names[-1]] / cpu[names[0]]:.2f}")
    if measured["sandbox_cpu"] is not None:
        print(f"sandbox CPU per request (in both sides' time): {measured['sandbox_cpu'] * 1000:.2f} ms")
    stats = measured["profile"]
    if stats is not None:
        for key in ("cumulative", "tottime"):
            print(f"\n-- cProfile (CPU time) of the workflow side, top by {key} --")
            stats.sort_stats(key).print_stats(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50, help="timed runs of each side (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs of each side first (default 5)")
    parser.add_argument("--sandbox", choices=("process", "thread"), default="process",
                        help="serve the sandbox from a child process (default) or a thread of this one")
    parser.add_argument("--default-rate-limit", action="store_true",
                        help="keep the HTTP client's default per-connection rate limit (throttles the engine)")
    parser.add_argument("--profile", action="store_true", help="then profile the engine side with cProfile")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    if not DOCUMENT.exists():
        parser.error(f"the Cin7 document is not at {DOCUMENT}")
    serve = sandbox_in_process if args.sandbox == "process" else sandbox_in_thread
    with serve() as (base_url, pid):
        measured = asyncio.run(measure(base_url, pid, args.iterations, args.warmup, args.default_rate_limit, args.profile))
    in_process = args.sandbox == "process"
    report(measured, args.iterations, "separate process" if in_process else "thread of this process", show_cpu=in_process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
