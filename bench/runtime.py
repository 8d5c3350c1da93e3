"""The durable runtime's request path: throughput and latency of triggers, workers and steps.

Usage::

    .venv/bin/python bench/runtime.py [--seconds 3] [--rate 20] [--ack-seconds 5] [--steps 10] [--repeat 5]

Issue 10's last acceptance point, in one run on this machine. The script starts its own embedded
Postgres (pgserver, as the tests do), migrates it, creates an organization, an owner key and a
customer with unlimited quotas, then serves the platform with ``switchboard run --no-worker`` in a
child process (the production command: uvicorn, one process) and runs ``switchboard worker``
processes when a phase needs them. Everything is then driven over HTTP on 127.0.0.1 by one shared
``httpx.AsyncClient`` holding N keep-alive connections.

Figures, each against baselines measured in the same run (machines are noisy):

* ``GET /health`` at 1 and 16 connections: requests/s and p50/p99. The floor of the whole stack.
* ``POST /v1/workflows/{id}/runs`` of an Instant one-map-step workflow (inline, answers 201 with the
  finished execution, which is recorded) at 1 and 16 connections.
* ``POST /v1/hooks/{org}/{trigger}``: a signed Standard Webhooks delivery to the same workflow's
  webhook trigger, at 1 and 16 connections. Every delivery has its own ``webhook-id``. The hook
  answers 202 once the event is stored; the inline run follows in the background, so the line says
  whether the answer carried the result, and the phase then waits until every event has its
  execution, so the throughput counted includes the runs (``runs/s``), not only acknowledgements.
* Webhook acknowledgement latency for a Standard workflow at a fixed rate (``--rate`` deliveries per
  second for ``--ack-seconds``, sent on schedule whatever the answers' latency: an open loop).
  No worker runs meanwhile, so the deliveries stay queued for the next phase.
* Standard executions per second with one, then two ``switchboard worker`` processes (started
  together). ``--standard`` executions are queued first, then the workers start; the rate is
  (executions - 1) over the time from the first completion to the last (the executions' own
  ``finished_at``), so the workers' start-up is not counted.
* Per-step overhead of a durable execution: a Standard workflow of ``--steps`` action steps, each one
  POST to a tiny app in another child process, and the same workflow with one step, run in turns
  ``--repeat`` times by one idle worker (after a warm-up round). A duration is the execution's own
  ``finished_at - started_at`` (``started_at`` is when it was queued, so the worker's pick-up is in
  it). The baseline: the same POSTs made directly with one ``httpx.AsyncClient``, one after another.
  ``per step overall`` is (durable - direct) / steps; ``per added step`` is the slope between the
  1-step and the N-step execution less one direct call, which leaves out the fixed cost of queueing
  and starting an execution.

The issue's reference points (same kind of machine): a peer platform does about 100/s at 1 and
180/s at 16 (p99 127 ms) for the webhook-triggered Instant workflow; the aim is at least twice that.
Before this bench, the inline runs route did about 84/s at 1 and 80/s at 16 (p99 276 ms) and
``GET /health`` about 280/s at 1.

The connector of the step phase declares a rate limit far above the bench's rate: the engine's
default per-connection limit is a throttle, not overhead. Nothing is asserted on time here;
``tests/test_bench_smoke.py`` runs it with tiny sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and bench/ holds engine.py,
# which would shadow the engine package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

START_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 300.0
UNLIMITED = {dimension: {"limit": None, "mode": "hard"}
             for dimension in ("events_per_day", "events_per_minute", "api_calls_per_day", "api_calls_per_minute")}
PAYLOAD = {"type": "contact.created", "data": {"email": "ada@example.com", "name": "Ada"}}


def _map_workflow(key: str, tier: str) -> dict[str, Any]:
    return {
        "id": key, "tier": tier,
        "steps": [{"id": "seen", "map": {"kind": "{{ trigger.type }}", "who": "{{ trigger.data.email }}"}}],
        "output": {"kind": "{{ steps.seen.kind }}", "who": "{{ steps.seen.who }}"},
    }


def _steps_workflow(key: str, steps: int) -> dict[str, Any]:
    return {
        "id": key, "tier": "standard",
        "steps": [{"id": f"s{i}", "action": "target.echo", "input": {"n": i}} for i in range(1, steps + 1)],
        "output": {"last": f"{{{{ steps.s{steps}.n }}}}"},
    }


def _target_connector(base_url: str) -> dict[str, Any]:
    return {
        "id": "target", "base_url": base_url, "rate_limit": {"requests": 1_000_000, "per_seconds": 1},
        "actions": {"echo": {"method": "POST", "path": "/echo", "body": {"n": "{{ input.n }}"},
                             "input": {"type": "object", "properties": {"n": {"type": "integer"}}}}},
    }


# -- child processes ----------------------------------------------------------------------------------------


def _serve_target() -> None:
    """The step phase's target: answers every POST /echo with its body (``--serve-target``)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False)).run(sockets=[sock])


def _env(conninfo: str, data_dir: Path, **settings: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "SWITCHBOARD_DATABASE_URL": conninfo,
            "SWITCHBOARD_DATA": str(data_dir), "SWITCHBOARD_EGRESS_ALLOW": "127.0.0.1",
            "SWITCHBOARD_LOG_LEVEL": "WARNING", **{f"SWITCHBOARD_{k.upper()}": v for k, v in settings.items()}}


Spec = tuple[list[str], dict[str, str], Callable[[str], "str | None"], str]


@contextmanager
def _children(specs: list[Spec]) -> Iterator[list[str]]:
    """Start every child of ``specs`` (argv, env, ready, name) at once, then yield, for each, what
    its ``ready`` made of the first stdout line it accepted; stop them all after. Started together
    so that workers begin together."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for argv, env, _, _ in specs:
            procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True))
        found: list[str] = []
        for proc, (_, _, ready, what) in zip(procs, specs, strict=True):
            assert proc.stdout is not None
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{what} did not start (exit {proc.wait(10)})")
                value = ready(line)
                if value is not None:
                    found.append(value)
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start in {START_TIMEOUT_S:.0f} s")
        yield found
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _platform(conninfo: str, data_dir: Path) -> Spec:
    def ready(line: str) -> str | None:
        return line.split()[3] if line.startswith("Switchboard API on ") else None
    return ([sys.executable, "-m", "switchboard", "run", "--no-worker", "--no-migrate", "--port", "0"],
            _env(conninfo, data_dir), ready, "the platform")


def _worker(conninfo: str, data_dir: Path, worker_id: str) -> Spec:
    return ([sys.executable, "-m", "switchboard", "worker", "--no-migrate"],
            _env(conninfo, data_dir, worker_id=worker_id), lambda line: line if "running" in line else None,
            f"worker {worker_id}")


def _target() -> Spec:
    return ([sys.executable, str(Path(__file__).resolve()), "--serve-target"], dict(os.environ),
            lambda line: f"http://127.0.0.1:{int(line)}" if line.strip().isdigit() else None, "the target app")


# -- measuring ----------------------------------------------------------------------------------------------


class Figures:
    """Latencies (seconds) of one phase and its wall time."""

    def __init__(self, latencies: list[float], wall: float) -> None:
        self.latencies = sorted(latencies)
        self.wall = wall

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else 0.0

    def pct(self, q: float) -> float:
        """The ``q`` quantile in milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        rank = min(len(self.latencies) - 1, max(0, round(q * len(self.latencies) + 0.5) - 1))
        return self.latencies[rank] * 1000

    def line(self, label: str) -> str:
        return (f"{label:<34} {self.rps:8.1f} req/s  p50 {self.pct(0.5):7.1f} ms  p99 {self.pct(0.99):7.1f} ms"
                f"  (n={len(self.latencies)})")


Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def closed_loop(http: httpx.AsyncClient, send: Send, expect: int, connections: int, seconds: float) -> Figures:
    """``connections`` senders, each sending its next request when the last one answered."""
    latencies: list[float] = []
    counter = iter(range(10**9))
    stop = time.perf_counter() + seconds

    async def sender() -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            response = await send(http, next(counter))
            if response.status_code != expect:
                raise RuntimeError(f"{response.request.url.path}: {response.status_code} {response.text[:300]}")
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(connections)))
    return Figures(latencies, time.perf_counter() - began)


async def open_loop(http: httpx.AsyncClient, send: Send, expect: int, rate: float, seconds: float) -> Figures:
    """One request every 1/``rate`` seconds, on schedule, whatever the earlier ones' latency."""
    latencies: list[float] = []
    count = max(1, int(rate * seconds))
    start = time.perf_counter()

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        began = time.perf_counter()
        response = await send(http, i)
        if response.status_code != expect:
            raise RuntimeError(f"{response.request.url.path}: {response.status_code} {response.text[:300]}")
        latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(one(i) for i in range(count)))
    return Figures(latencies, time.perf_counter() - start)


def _signed(secret: str, body: bytes) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    import store

    webhook_id = store.new_id("msg")
    at = datetime.now(UTC)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, at, body), "content-type": "application/json"}


class World:
    """The tenant, its database handle and the platform's URL."""

    def __init__(self, conninfo: str, org_id: str, key: str, customer: str) -> None:
        self.conninfo, self.org_id, self.key, self.customer = conninfo, org_id, key, customer
        self.headers = {"x-fastn-access-key": key, "x-fastn-account-id": org_id,
                        "x-fastn-account-tenant-id": customer}

    def statuses(self, workflow_key: str) -> dict[str, int]:
        """How many executions of ``workflow_key`` are in each status (read in the database: the
        organization's API quota is no business of the bench's polling)."""
        import store

        with store.Database.from_conn_string(store.app_conninfo(self.conninfo), max_size=1) as db, \
                db.tenant(self.org_id) as tx:
            rows = tx.execute("SELECT status, count(*) AS n FROM executions WHERE workflow_id IN "
                              "(SELECT id FROM workflows WHERE key = %s) GROUP BY status", (workflow_key,)).fetchall()
        return {row["status"]: row["n"] for row in rows}

    def now(self) -> datetime:
        """The database's clock (the executions' timestamps are the database's)."""
        import store

        with store.Database.from_conn_string(store.app_conninfo(self.conninfo), max_size=1) as db, \
                db.tenant(self.org_id) as tx:
            return tx.execute("SELECT clock_timestamp() AS t").fetchone()["t"]

    def completions(self, workflow_key: str, since: datetime) -> tuple[int, float]:
        """How many executions of ``workflow_key`` completed after ``since``, and the seconds from the
        first of those completions to the last."""
        import store

        with store.Database.from_conn_string(store.app_conninfo(self.conninfo), max_size=1) as db, \
                db.tenant(self.org_id) as tx:
            row = tx.execute("SELECT count(*) AS n, extract(epoch FROM max(finished_at) - min(finished_at)) AS s "
                             "FROM executions WHERE status = 'completed' AND finished_at > %s AND workflow_id IN "
                             "(SELECT id FROM workflows WHERE key = %s)", (since, workflow_key)).fetchone()
        return row["n"], float(row["s"] or 0.0)

    def durations(self, workflow_key: str) -> list[float]:
        """Seconds from ``started_at`` to ``finished_at`` of every completed execution of ``workflow_key``,
        in the order they started."""
        import store

        with store.Database.from_conn_string(store.app_conninfo(self.conninfo), max_size=1) as db, \
                db.tenant(self.org_id) as tx:
            rows = tx.execute("SELECT extract(epoch FROM finished_at - started_at) AS s FROM executions "
                              "WHERE status = 'completed' AND workflow_id IN "
                              "(SELECT id FROM workflows WHERE key = %s) ORDER BY started_at", (workflow_key,)).fetchall()
        return [float(row["s"]) for row in rows]


def _ok(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                           f"{response.text[:500]}")
    return response.json()


async def _publish(http: httpx.AsyncClient, world: World, spec: dict[str, Any]) -> None:
    _ok(await http.post("/v1/workflows", headers=world.headers, json={"spec": spec}), 201)
    _ok(await http.post(f"/v1/workflows/{spec['id']}/publish", headers=world.headers), 201)


async def _hook(http: httpx.AsyncClient, world: World, workflow: str) -> dict[str, Any]:
    return _ok(await http.post(f"/v1/workflows/{workflow}/triggers", headers=world.headers,
                               json={"kind": "webhook", "customer": world.customer}), 201)


def _wait_until(done: Callable[[], bool], what: str, timeout: float = DRAIN_TIMEOUT_S, every: float = 0.02) -> float:
    """Poll ``done`` until true; returns the time.perf_counter() at which it was seen true."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return time.perf_counter()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base > 0 else "n/a"


# -- the phases ---------------------------------------------------------------------------------------------


async def _count_until(world: World, key: str, status: str, count: int, what: str) -> float:
    return await asyncio.to_thread(
        _wait_until, lambda: world.statuses(key).get(status, 0) >= count, what)


async def _send_all(http: httpx.AsyncClient, send: Send, expect: int, count: int, connections: int = 16) -> None:
    """Send ``count`` requests over ``connections`` connections, as fast as they answer."""
    counter = iter(range(count))

    async def sender() -> None:
        for i in counter:
            response = await send(http, i)
            if response.status_code != expect:
                raise RuntimeError(f"{response.request.url.path}: {response.status_code} {response.text[:300]}")

    await asyncio.gather(*(sender() for _ in range(connections)))


async def run_phases(args: argparse.Namespace, world: World, url: str, data_dir: Path) -> None:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        org = {k: v for k, v in world.headers.items() if k != "x-fastn-account-tenant-id"}
        _ok(await http.put(f"/v1/billing/customers/{world.customer}/overrides", headers=org, json=UNLIMITED), 200)
        await _publish(http, world, _map_workflow("instant-map", "instant"))
        await _publish(http, world, _map_workflow("standard-map", "standard"))
        instant_hook = await _hook(http, world, "instant-map")
        standard_hook = await _hook(http, world, "standard-map")
        body = json.dumps(PAYLOAD).encode()
        run_body = {"input": {}}

        async def health(c: httpx.AsyncClient, _: int) -> httpx.Response:
            return await c.get("/health")

        async def run_instant(c: httpx.AsyncClient, _: int) -> httpx.Response:
            return await c.post("/v1/workflows/instant-map/runs", headers=world.headers, json=run_body)

        async def run_standard(c: httpx.AsyncClient, _: int) -> httpx.Response:
            return await c.post("/v1/workflows/standard-map/runs", headers=world.headers, json=run_body)

        def deliver(hook: dict[str, Any]) -> Send:
            async def send(c: httpx.AsyncClient, _: int) -> httpx.Response:
                return await c.post(hook["config"]["path"], content=body, headers=_signed(hook["signing_secret"], body))
            return send

        # Warm up every route (imports, caches, pool connections) before timing anything.
        for send, expect in ((health, 200), (run_instant, 201), (deliver(instant_hook), 202)):
            await _send_all(http, send, expect, args.warmup, connections=min(4, args.warmup))
        first = await deliver(instant_hook)(http, 0)
        carries = "output" in first.json()
        hooked = args.warmup + 1
        await _count_until(world, "instant-map", "completed", 2 * args.warmup + 1, "the warm-up's runs")

        print(f"bench/runtime.py: {args.seconds:g} s per closed-loop phase; ratios against GET /health "
              "measured in the same run")
        for connections in (1, 16):
            base = await closed_loop(http, health, 200, connections, args.seconds)
            print(base.line(f"health            conns={connections:<2}"))
            runs = await closed_loop(http, run_instant, 201, connections, args.seconds)
            print(runs.line(f"runs route        conns={connections:<2}"))
            done_before = world.statuses("instant-map").get("completed", 0)
            began = time.perf_counter()
            hooks = await closed_loop(http, deliver(instant_hook), 202, connections, args.seconds)
            print(hooks.line(f"webhook instant   conns={connections:<2}"))
            hooked += len(hooks.latencies)
            ended = await _count_until(world, "instant-map", "completed", done_before + len(hooks.latencies),
                                       "the webhook-triggered runs")
            recorded = len(hooks.latencies) / (ended - began)
            print(f"  webhook runs completed and recorded: {recorded:.1f}/s; answer carries the result: "
                  f"{'yes' if carries else 'no (202 with event_id; the run follows)'}")
            print(f"  ratio conns={connections}: runs/health {_ratio(runs.rps, base.rps)}, "
                  f"webhook/health {_ratio(hooks.rps, base.rps)}, webhook/runs {_ratio(hooks.rps, runs.rps)}, "
                  f"recorded/health {_ratio(recorded, base.rps)}")

        # Standard: acknowledgement latency at a fixed rate, no worker running (the deliveries queue up).
        ack = await open_loop(http, deliver(standard_hook), 202, args.rate, args.ack_seconds)
        print(f"standard webhook ack at {args.rate:g}/s for {args.ack_seconds:g} s: p50 {ack.pct(0.5):.1f} ms  "
              f"p99 {ack.pct(0.99):.1f} ms  (n={len(ack.latencies)}; sent at {ack.rps:.1f}/s)")
        queued = max(args.standard, len(ack.latencies))
        await _count_until(world, "standard-map", "queued", len(ack.latencies), "the deliveries' queued executions")
        await _send_all(http, run_standard, 202, queued - len(ack.latencies))
        await _count_until(world, "standard-map", "queued", queued, "the queued executions")

        per_worker_count: dict[int, float] = {}
        total = 0
        for workers in (1, 2):
            if workers == 2:
                await _send_all(http, run_standard, 202, queued)
                await _count_until(world, "standard-map", "queued", queued, "the queued executions")
            total += queued
            since = world.now()
            specs = [_worker(world.conninfo, data_dir, f"bench-{workers}-{i}") for i in range(workers)]
            with _children(specs):
                await _count_until(world, "standard-map", "completed", total, "the standard executions")
            # From the first completion to the last: the workers' start-up is not in the window, and
            # nothing races the moment they say they run.
            count, span = world.completions("standard-map", since)
            per_worker_count[workers] = (count - 1) / span if span > 0 else float("nan")
            print(f"standard executions/s, {workers} worker{'s' if workers > 1 else ''}: "
                  f"{per_worker_count[workers]:.1f}  ({count} executions, first to last completion {span:.2f} s)")
        print(f"  ratio 2 workers/1 worker: {_ratio(per_worker_count[2], per_worker_count[1])}")

        # Per-step overhead of a durable execution over the same calls made directly.
        with _children([_target(), _worker(world.conninfo, data_dir, "bench-steps")]) as (target_url, _):
            _ok(await http.post("/v1/connectors", headers=org, json={"spec": _target_connector(target_url)}), 201)
            _ok(await http.post("/v1/connectors/target/versions/1/publish", headers=org), 200)
            await _publish(http, world, _steps_workflow("durable-steps", args.steps))
            await _publish(http, world, _steps_workflow("durable-one", 1))
            ends: list[float] = []
            for i in range(args.repeat + 1):  # the first round warms up
                for key in ("durable-one", "durable-steps"):
                    began = time.perf_counter()
                    _ok(await http.post(f"/v1/workflows/{key}/runs", headers=world.headers, json=run_body), 202)
                    ended = await asyncio.to_thread(
                        _wait_until, lambda k=key, n=i + 1: world.statuses(k).get("completed", 0) >= n,
                        "the durable execution", DRAIN_TIMEOUT_S, 0.005)
                    if i and key == "durable-steps":
                        ends.append(ended - began)
            durable = statistics.median(world.durations("durable-steps")[1:])
            single = statistics.median(world.durations("durable-one")[1:])
            async with httpx.AsyncClient(base_url=target_url) as direct_http:
                directs = []
                for _ in range(args.repeat + 1):
                    began = time.perf_counter()
                    for n in range(1, args.steps + 1):
                        _ok(await direct_http.post("/echo", json={"n": n}), 200)
                    directs.append(time.perf_counter() - began)
            direct = statistics.median(directs[1:])
        end_to_end = statistics.median(ends)
        marginal = (durable - single) / (args.steps - 1)
        print(f"durable execution of {args.steps} steps: {durable * 1000:.1f} ms, the same {args.steps} calls made "
              f"directly: {direct * 1000:.1f} ms (median of {args.repeat}; ratio {_ratio(durable, direct)})")
        print(f"durable per-step overhead: {(durable - direct) / args.steps * 1000:.2f} ms per step overall, "
              f"{(marginal - direct / args.steps) * 1000:.2f} ms per added step "
              f"(1-step execution {single * 1000:.1f} ms; a direct call {direct / args.steps * 1000:.2f} ms)")
        print(f"  request to observed completion: {end_to_end * 1000:.1f} ms median (polling included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each closed-loop phase")
    parser.add_argument("--warmup", type=int, default=20, help="requests per route before timing")
    parser.add_argument("--rate", type=float, default=20.0, help="Standard webhook deliveries per second")
    parser.add_argument("--ack-seconds", type=float, default=5.0, help="length of the fixed-rate phase")
    parser.add_argument("--standard", type=int, default=200, help="Standard executions queued per worker phase")
    parser.add_argument("--steps", type=int, default=10, help="action steps of the durable workflow")
    parser.add_argument("--repeat", type=int, default=5, help="durable executions timed (after one warm-up)")
    parser.add_argument("--serve-target", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_target:
        _serve_target()
        return
    for name in ("seconds", "warmup", "rate", "ack_seconds", "standard", "steps", "repeat"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the added cost of a step compares it with a 1-step execution)")

    import store
    from switchboard import bootstrap

    root = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    data_dir = root / "data"
    data_dir.mkdir()
    embedded = store.start_embedded(root / "pg")
    try:
        conninfo = embedded.conninfo
        store.migrate(conninfo)
        # Before the platform starts: its first start then finds an organization and makes none.
        with store.Database.from_conn_string(store.app_conninfo(conninfo), max_size=1) as db:
            org = bootstrap.create_organization(db, "Bench")
            _, key = bootstrap.create_api_key(db, org["id"], "bench key")
            customer = bootstrap.create_customer(db, org["id"], "Bench customer")["id"]
        world = World(conninfo, org["id"], key, customer)
        with _children([_platform(conninfo, data_dir)]) as (url,):
            # The command prints its URL just before uvicorn starts serving.
            _wait_until(lambda: _healthy(url), "the platform's /health", START_TIMEOUT_S, 0.05)
            asyncio.run(run_phases(args, world, url, data_dir))
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
