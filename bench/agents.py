"""How much the agent graphs and the threads API add around a model and its tools.

Against a fake chat model that answers instantly (no network, no tokens), through the real API
over HTTP on 127.0.0.1 with the real Postgres (checkpoints, thread events):

* **time to first streamed event**: from ``POST /v1/threads/{id}/messages`` to the first SSE
  event of the run, p50/p95, beside ``GET /health`` measured in the same run (the baseline of one
  request on this machine now);
* **per-tool-call overhead of the graphs**: runs whose model calls ``search_catalog`` N times,
  against runs that call no tool; (difference) / N is what one tool call costs inside a graph run,
  compared with the same call made directly through the tool registry (``ToolRegistry.invoke``).

Usage: ``python bench/agents.py [--runs 30] [--calls 10]``. Machines are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and bench/ holds engine.py,
# which would shadow the engine package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402

TOOL = "search_catalog"
QUERY = {"query": "create a customer"}


class InstantModel(BaseChatModel):
    """A tool-calling chat model that answers at once: ``calls`` calls of ``search_catalog``, then
    a final message. Its usage is counted as zero tokens."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "bench-instant"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools])

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=0)
        done = sum(isinstance(m, ToolMessage) for m in messages[start:])
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        if done < self.calls:
            message = AIMessage("", tool_calls=[{"name": TOOL, "args": dict(QUERY), "id": f"bench_{done}", "type": "tool_call"}],
                                usage_metadata=usage)
        else:
            message = AIMessage("bench model: done", usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return self._generate(messages)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ms(values: list[float]) -> str:
    return f"p50 {_percentile(values, 0.5) * 1000:8.2f} ms  p95 {_percentile(values, 0.95) * 1000:8.2f} ms"


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the platform did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _events(http: httpx.Client, url: str, headers: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, data = "message", []
    with http.stream("GET", url, headers=headers | {"Accept": "text/event-stream"}, timeout=httpx.Timeout(30, read=120)) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                yield kind, json.loads("\n".join(data))
                kind, data = "message", []


def _run(http: httpx.Client, headers: dict[str, str], graph: str) -> tuple[float, float, int]:
    """One run on a new thread: seconds to its first event and to its last, and its tool calls."""
    thread = http.post("/v1/threads", headers=headers, json={"graph": graph})
    thread.raise_for_status()
    started = time.perf_counter()
    run = http.post(f"/v1/threads/{thread.json()['id']}/messages", headers=headers, json={"content": "bench"})
    run.raise_for_status()
    first = None
    calls = 0
    for kind, data in _events(http, run.json()["events_url"], headers):
        if first is None:
            first = time.perf_counter() - started
        if kind == "tool_call":
            calls += 1
        if kind in ("done", "error", "interrupt"):
            if kind != "done":
                raise RuntimeError(f"the bench run ended with {kind}: {data}")
            break
    return first or 0.0, time.perf_counter() - started, calls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per phase (default 30)")
    parser.add_argument("--calls", type=int, default=10, help="tool calls per run in the tool phase (default 10)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be >= 2")
    if not 1 <= args.calls <= 30:
        parser.error("--calls must be between 1 and 30 (the graphs stop a run at 40 model calls)")

    import agents
    import store
    import tools
    from runtime import authenticate_key
    from switchboard import bootstrap
    from switchboard.app import create_app
    from switchboard.settings import Settings

    calls_of = {"none": 0, "tools": args.calls}

    def factory(name: str, ctx: Any, checkpointer: Any) -> Any:
        calls = calls_of["tools"] if ctx.thread_id in tool_threads else 0
        return agents.build_graph(name, ctx, model=InstantModel(calls=calls), checkpointer=checkpointer)

    tool_threads: set[str] = set()
    work = Path(tempfile.mkdtemp(prefix="switchboard-bench-agents-"))
    embedded = store.start_embedded(work / "pg")
    try:
        store.migrate(embedded.conninfo)
        settings = Settings(database_url=embedded.conninfo, data_dir=work / "data", log_level="WARNING")
        with store.Database.from_conn_string(store.app_conninfo(embedded.conninfo)) as db:
            org = bootstrap.create_organization(db, "Bench")
            _row, access_key = bootstrap.create_api_key(db, org["id"], "bench", kind="test")
            customer = bootstrap.create_customer(db, org["id"], "Bench customer")
        headers = {"x-fastn-account-id": org["id"], "x-fastn-access-key": access_key,
                   "x-fastn-account-tenant-id": customer["id"]}
        app = create_app(settings, graph_factory=factory)
        with _serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            # The free plan's per-minute API calls would refuse a bench: lift the customer's limits.
            unlimited = {d: {"limit": None, "mode": "hard"}
                         for d in ("events_per_day", "events_per_minute", "api_calls_per_day", "api_calls_per_minute")}
            http.put(f"/v1/billing/customers/{customer['id']}/overrides", headers=headers,
                     json=unlimited).raise_for_status()
            for _ in range(3):  # warm up: imports, the embedder, the pools
                _run(http, headers, "connector_agent")
            health = []
            for _ in range(args.runs):
                started = time.perf_counter()
                http.get("/health").raise_for_status()
                health.append(time.perf_counter() - started)
            first_events, plain_totals = [], []
            for _ in range(args.runs):
                first, total, _calls = _run(http, headers, "connector_agent")
                first_events.append(first)
                plain_totals.append(total)

            original = http.post

            def post(path: str, **kwargs: Any) -> Any:
                response = original(path, **kwargs)
                if path == "/v1/threads" and response.status_code == 201:
                    tool_threads.add(response.json()["id"])
                return response

            http.post = post  # type: ignore[method-assign]
            tool_totals = []
            for _ in range(args.runs):
                _first, total, calls = _run(http, headers, "connector_agent")
                if calls != args.calls:
                    raise RuntimeError(f"a tool run made {calls} tool calls, not {args.calls}")
                tool_totals.append(total)
            http.post = original  # type: ignore[method-assign]

            platform = app.state.platform
            principal = authenticate_key(platform.db, org["id"], access_key, customer["id"])
            ctx = tools.ToolContext(platform=platform, principal=principal, customer_id=customer["id"])
            registry = tools.default_registry()
            direct = []

            async def invoke_all() -> None:
                for _ in range(args.runs * 3):
                    started = time.perf_counter()
                    result = await registry.invoke(ctx, TOOL, dict(QUERY))
                    direct.append(time.perf_counter() - started)
                    if "error" in result:
                        raise RuntimeError(f"the direct call failed: {result}")

            asyncio.run(invoke_all())
    finally:
        embedded.stop()
        shutil.rmtree(work, ignore_errors=True)

    per_call = [(t - statistics.median(plain_totals)) / args.calls for t in tool_totals]
    direct_p50 = _percentile(direct, 0.5)
    overhead = [value - direct_p50 for value in per_call]
    print(f"bench/agents.py: {args.runs} runs per phase, {args.calls} tool calls per tool run, instant fake model")
    print(f"GET /health (baseline)                 {_ms(health)}")
    print(f"first streamed event of a run          {_ms(first_events)}")
    print(f"whole run, no tool call                {_ms(plain_totals)}")
    print(f"whole run, {args.calls:2d} tool calls              {_ms(tool_totals)}")
    print(f"one tool call inside a graph run       {_ms(per_call)}")
    print(f"the same call made directly            {_ms(direct)}")
    print(f"per-tool-call overhead of the graphs   {_ms(overhead)}")
    ratio_first = _percentile(first_events, 0.5) / _percentile(health, 0.5)
    ratio_call = _percentile(per_call, 0.5) / direct_p50
    print(f"ratio: {ratio_first:.2f} (first event / GET /health, p50)")
    print(f"ratio: {ratio_call:.2f} (tool call in a graph / direct call, p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
