"""Threads over real HTTP: create, post a message, stream the run as SSE (resumable with
Last-Event-ID), 409 on a busy thread, cancel, interrupt and resume, errors, and isolation between
organizations (through the API, and with SQL as the app role on the checkpoint tables).

The graph is the scripted one of tests/support/threads.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

import store
from support.platform import Tenant, app_database, client, make_tenant, running_platform
from support.threads import ANSWER, CANARY, ScriptedGraphs, Sse, read_sse

GRAPH = "scripted"


@pytest.fixture(scope="module")
def graphs() -> ScriptedGraphs:
    return ScriptedGraphs()


@pytest.fixture(scope="module")
def platform(migrated_database_url: str, graphs: ScriptedGraphs) -> Iterator[str]:
    with running_platform(migrated_database_url, graph_factory=graphs, graphs=(GRAPH, "other")) as (url, _):
        yield url


@pytest.fixture(scope="module")
def http(platform: str) -> Iterator[httpx.Client]:
    with client(platform) as c:
        yield c


@pytest.fixture(scope="module")
def tenants(migrated_database_url: str) -> tuple[Tenant, Tenant]:
    with app_database(migrated_database_url) as db:
        return make_tenant(db, "Acme"), make_tenant(db, "Globex")


@pytest.fixture
def gate(graphs: ScriptedGraphs) -> Iterator[Any]:
    graphs.gate.clear()
    yield graphs.gate
    graphs.gate.set()


def new_thread(http: httpx.Client, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/threads", headers=tenant.headers(), json={"graph": GRAPH} | body)
    assert response.status_code == 201, response.text
    return response.json()


def post(http: httpx.Client, tenant: Tenant, thread: str, content: str) -> dict[str, Any]:
    response = http.post(f"/v1/threads/{thread}/messages", headers=tenant.headers(), json={"content": content})
    assert response.status_code == 202, response.text
    return response.json()


def stream(http: httpx.Client, tenant: Tenant, run: dict[str, Any], *, headers: dict[str, str] | None = None,
           params: dict[str, Any] | None = None, stop_after: int | None = None) -> list[Sse]:
    """Read the run's events; with ``stop_after``, drop the connection after that many."""
    got: list[Sse] = []
    with http.stream("GET", run["events_url"], headers=tenant.headers() | (headers or {}), params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in read_sse(response):
            got.append(event)
            if stop_after is not None and len(got) == stop_after:
                break
    return got


def wait_until(predicate, what: str) -> None:
    # Waits for a state, never asserts on how long it took.
    for _ in range(1000):
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def run_status(http: httpx.Client, tenant: Tenant, run: dict[str, Any]) -> str:
    return http.get(f"/v1/threads/{run['thread_id']}/runs/{run['id']}", headers=tenant.headers()).json()["status"]


# -- streaming ------------------------------------------------------------------------------------


def test_a_run_streams_typed_events_and_ends_with_done(http: httpx.Client, tenants: tuple[Tenant, Tenant]) -> None:
    acme, _ = tenants
    thread = new_thread(http, acme, metadata={"source": "test"})
    assert (thread["status"], thread["graph"], thread["title"]) == ("idle", GRAPH, "")
    run = post(http, acme, thread["id"], "sync contacts please")
    assert run["status"] in ("pending", "running") and run["kind"] == "message"

    events = stream(http, acme, run)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    types = [e.event for e in events]
    assert types[-1] == "done" and events[-1].data["status"] == "completed"
    call = next(e.data for e in events if e.event == "tool_call")
    assert (call["name"], call["args"]) == ("lookup", {"q": "contacts"})
    result = next(e.data for e in events if e.event == "tool_result")
    assert (result["name"], result["content"], result["status"]) == ("lookup", '{"found": "contacts"}', "success")
    assert result["tool_call_id"] == call["id"]
    usage = [e.data for e in events if e.event == "usage"]
    assert usage[0]["input_tokens"] == 3 and usage[0]["output_tokens"] == 5 and usage[0]["model"] == "scripted"
    assert "".join(e.data["delta"] for e in events if e.event == "token") == ANSWER
    assert {e.data["node"] for e in events if e.event == "step" and "node" in e.data} >= {"plan", "tools", "answer"}
    assert types.index("tool_call") < types.index("tool_result") < types.index("token")
    assert events[-1].data["usage"]["input_tokens"] == 3

    finished = http.get(f"/v1/threads/{thread['id']}/runs/{run['id']}", headers=acme.headers()).json()
    assert finished["status"] == "completed" and finished["usage"]["total_tokens"] == 8
    detail = http.get(f"/v1/threads/{thread['id']}", headers=acme.headers()).json()
    assert (detail["status"], detail["title"], detail["metadata"]) == ("idle", "sync contacts please", {"source": "test"})

    state = http.get(f"/v1/threads/{thread['id']}/state", headers=acme.headers()).json()
    messages = state["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[-1]["content"] == ANSWER and state["next"] == [] and state["interrupts"] == []
    history = http.get(f"/v1/threads/{thread['id']}/history", headers=acme.headers(), params={"limit": 3}).json()
    assert len(history) == 3 and history[0]["checkpoint_id"] == state["checkpoint_id"]

    # A finished run's events read back the same from the store, in full or after a point.
    assert stream(http, acme, run) == events
    assert stream(http, acme, run, params={"after": 2}) == events[2:]
    assert stream(http, acme, run, params={"after": len(events)}) == []
    runs = http.get(f"/v1/threads/{thread['id']}/runs", headers=acme.headers()).json()["items"]
    assert [r["id"] for r in runs] == [run["id"]]


def test_no_event_state_or_history_shows_what_the_model_did_not_see(
    http: httpx.Client, tenants: tuple[Tenant, Tenant], migrated_database_url: str
) -> None:
    acme, _ = tenants
    thread = new_thread(http, acme)
    run = post(http, acme, thread["id"], "sync contacts")
    events = stream(http, acme, run)
    texts = [str(e.data) for e in events]
    texts.append(http.get(f"/v1/threads/{thread['id']}/state", headers=acme.headers()).text)
    texts.append(http.get(f"/v1/threads/{thread['id']}/history", headers=acme.headers()).text)
    assert not [t for t in texts if CANARY in t]
    with psycopg.connect(migrated_database_url) as owner:
        stored = owner.execute("SELECT data::text FROM thread_events WHERE run_id = %s", (run["id"],)).fetchall()
    assert stored and not [row for row in stored if CANARY in row[0]]


def test_a_dropped_stream_resumes_with_last_event_id_and_delivers_every_event_once(
    http: httpx.Client, tenants: tuple[Tenant, Tenant], gate
) -> None:
    acme, _ = tenants
    thread = new_thread(http, acme)
    run = post(http, acme, thread["id"], "slow sync")
    first = stream(http, acme, run, stop_after=2)  # the connection is dropped after two events
    assert [e.id for e in first] == [1, 2]
    wait_until(lambda: run_status(http, acme, run) == "running", "the run is running")
    # Reconnect while the run still waits, drop again, then reconnect and let it finish.
    second = stream(http, acme, run, headers={"Last-Event-ID": str(first[-1].id)}, stop_after=1)
    assert [e.id for e in second] == [3]
    gate.set()
    rest = stream(http, acme, run, headers={"Last-Event-ID": str(second[-1].id)})
    delivered = first + second + rest
    assert [e.id for e in delivered] == list(range(1, len(delivered) + 1))
    assert delivered[-1].event == "done"
    assert "".join(e.data["delta"] for e in delivered if e.event == "token") == ANSWER
    # The store holds exactly what was delivered live.
    assert stream(http, acme, run) == delivered
    # Last-Event-ID wins over ?after (an EventSource reconnecting keeps its URL).
    assert stream(http, acme, run, headers={"Last-Event-ID": "4"}, params={"after": 1}) == delivered[4:]


def test_a_second_run_on_a_busy_thread_is_refused_and_a_run_can_be_cancelled(
    http: httpx.Client, tenants: tuple[Tenant, Tenant], gate
) -> None:
    acme, _ = tenants
    thread = new_thread(http, acme)
    run = post(http, acme, thread["id"], "slow one")
    busy = http.post(f"/v1/threads/{thread['id']}/messages", headers=acme.headers(), json={"content": "another"})
    assert busy.status_code == 409 and busy.headers["content-type"].startswith("application/problem+json")
    assert (busy.json()["code"], busy.json()["thread_id"], busy.json()["run_id"]) == ("thread_busy", thread["id"], run["id"])
    resumed = http.post(f"/v1/threads/{thread['id']}/resume", headers=acme.headers(), json={"resume": {"action": "approve"}})
    assert resumed.status_code == 409 and resumed.json()["code"] == "thread_busy"
    assert http.get(f"/v1/threads/{thread['id']}", headers=acme.headers()).json()["status"] == "busy"

    cancelled = http.post(f"/v1/threads/{thread['id']}/runs/{run['id']}/cancel", headers=acme.headers())
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"]
    events = stream(http, acme, run)
    assert events[-1].event == "done" and events[-1].data["status"] == "cancelled"
    assert not [e for e in events if e.event == "token"]
    assert http.get(f"/v1/threads/{thread['id']}", headers=acme.headers()).json()["status"] == "idle"
    again = http.post(f"/v1/threads/{thread['id']}/runs/{run['id']}/cancel", headers=acme.headers())
    assert again.status_code == 409 and again.json()["code"] == "run_not_active"

    # The thread takes the next message.
    follow = post(http, acme, thread["id"], "go on")
    assert stream(http, acme, follow)[-1].data["status"] == "completed"


def test_a_run_stops_at_an_interrupt_and_a_resume_goes_on_from_it(http: httpx.Client, tenants: tuple[Tenant, Tenant]) -> None:
    acme, _ = tenants
    thread = new_thread(http, acme)
    early = http.post(f"/v1/threads/{thread['id']}/resume", headers=acme.headers(), json={"resume": {"action": "approve"}})
    assert early.status_code == 409 and early.json()["code"] == "thread_not_interrupted"

    run = post(http, acme, thread["id"], "review the sync")
    events = stream(http, acme, run)
    assert events[-1].event == "interrupt"
    (pending,) = events[-1].data["interrupts"]
    assert pending["value"] == {"type": "review", "summary": "sync contacts"}
    assert {"stage": "review"} in [e.data.get("progress") for e in events if e.event == "step"]
    assert run_status(http, acme, run) == "interrupted"
    assert http.get(f"/v1/threads/{thread['id']}", headers=acme.headers()).json()["status"] == "interrupted"
    state = http.get(f"/v1/threads/{thread['id']}/state", headers=acme.headers()).json()
    assert state["next"] == ["review"] and state["interrupts"][0]["id"] == pending["id"]

    resumed = http.post(f"/v1/threads/{thread['id']}/resume", headers=acme.headers(),
                        json={"resume": {"action": "reject", "comments": "match by email"}})
    assert resumed.status_code == 202, resumed.text
    after = stream(http, acme, resumed.json())
    assert after[-1].event == "done" and after[-1].data["status"] == "completed"
    # A node's own AI message (not a model's) streams as one piece of text.
    assert "".join(e.data["delta"] for e in after if e.event == "token") == "review answer: reject" + ANSWER
    messages = http.get(f"/v1/threads/{thread['id']}/state", headers=acme.headers()).json()["values"]["messages"]
    assert [m["content"] for m in messages[-2:]] == ["review answer: reject", ANSWER]
    assert http.get(f"/v1/threads/{thread['id']}", headers=acme.headers()).json()["status"] == "idle"
    recorded = http.get(f"/v1/threads/{thread['id']}/runs/{resumed.json()['id']}", headers=acme.headers()).json()
    assert recorded["kind"] == "resume" and recorded["input"] == {"resume": {"action": "reject", "comments": "match by email"}}


def test_a_failing_graph_ends_the_run_with_an_error_that_quotes_nothing_internal(
    http: httpx.Client, tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = tenants
    thread = new_thread(http, acme)
    run = post(http, acme, thread["id"], "fail now")
    events = stream(http, acme, run)
    assert events[-1].event == "error" and events[-1].data["code"] == "run_failed"
    assert CANARY not in str(events[-1].data) and "RuntimeError" in events[-1].data["message"]
    failed = http.get(f"/v1/threads/{thread['id']}/runs/{run['id']}", headers=acme.headers()).json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "run_failed"
    assert http.get(f"/v1/threads/{thread['id']}", headers=acme.headers()).json()["status"] == "error"
    assert stream(http, acme, post(http, acme, thread["id"], "try again"))[-1].event == "done"


# -- isolation ------------------------------------------------------------------------------------


def test_another_organization_reaches_no_thread_run_event_or_checkpoint(
    http: httpx.Client, tenants: tuple[Tenant, Tenant], migrated_database_url: str
) -> None:
    acme, globex = tenants
    thread = new_thread(http, acme, title="acme private")
    run = post(http, acme, thread["id"], "review acme things")
    assert stream(http, acme, run)[-1].event == "interrupt"
    t, r = thread["id"], run["id"]
    attempts = [
        ("GET", f"/v1/threads/{t}", None), ("GET", f"/v1/threads/{t}/state", None),
        ("GET", f"/v1/threads/{t}/history", None), ("GET", f"/v1/threads/{t}/runs", None),
        ("GET", f"/v1/threads/{t}/runs/{r}", None), ("GET", f"/v1/threads/{t}/runs/{r}/events", None),
        ("POST", f"/v1/threads/{t}/messages", {"content": "take over"}),
        ("POST", f"/v1/threads/{t}/resume", {"resume": {"action": "approve"}}),
        ("POST", f"/v1/threads/{t}/runs/{r}/cancel", None),
    ]
    for method, url, body in attempts:
        response = http.request(method, url, headers=globex.headers(), **({"json": body} if body else {}))
        assert response.status_code == 404, f"{method} {url}: {response.status_code} {response.text}"
        assert "acme" not in response.text.lower()
    # Globex's own thread cannot reach Acme's run either.
    own = new_thread(http, globex)
    assert http.get(f"/v1/threads/{own['id']}/runs/{r}", headers=globex.headers()).status_code == 404
    listed = http.get("/v1/threads", headers=globex.headers()).json()["items"]
    assert t not in [x["id"] for x in listed] and own["id"] in [x["id"] for x in listed]
    # Acme's thread is untouched: still interrupted, awaiting its own resume.
    assert http.get(f"/v1/threads/{t}", headers=acme.headers()).json()["status"] == "interrupted"

    # SQL as the app role: Globex sees none of Acme's rows, checkpoints included.
    namespaced = store.checkpoint_thread_id(acme.org_id, t)
    with psycopg.connect(store.app_conninfo(migrated_database_url)) as app:
        counts = {}
        for org in (acme.org_id, globex.org_id):
            app.execute("SELECT set_config('app.org_id', %s, false)", (org,))
            counts[org] = [
                app.execute("SELECT count(*) FROM threads WHERE id = %s", (t,)).fetchone()[0],
                app.execute("SELECT count(*) FROM thread_runs WHERE id = %s", (r,)).fetchone()[0],
                app.execute("SELECT count(*) FROM thread_events WHERE run_id = %s", (r,)).fetchone()[0],
                *[app.execute(f"SELECT count(*) FROM {table} WHERE thread_id = %s", (namespaced,)).fetchone()[0]
                  for table in store.CHECKPOINT_TABLES],
            ]
    assert all(n > 0 for n in counts[acme.org_id][:5]), counts
    assert counts[globex.org_id] == [0] * len(counts[globex.org_id])


def test_threads_need_the_agents_permissions(http: httpx.Client, tenants: tuple[Tenant, Tenant]) -> None:
    acme, _ = tenants
    key = http.post("/v1/api-keys", headers=acme.headers(), json={"name": "viewer", "role": "viewer"})
    assert key.status_code == 201, key.text
    viewer = acme.headers() | {"x-fastn-access-key": key.json()["key"]}
    thread = new_thread(http, acme)
    assert http.get(f"/v1/threads/{thread['id']}", headers=viewer).status_code == 200
    refused = http.post(f"/v1/threads/{thread['id']}/messages", headers=viewer, json={"content": "hi"})
    assert refused.status_code == 403 and "agents:execute" in refused.text
    assert http.post("/v1/threads", headers=viewer, json={"graph": GRAPH}).status_code == 403


# -- bad input ------------------------------------------------------------------------------------


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def _pointers(problem: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in problem["errors"]]


def test_bad_input_is_refused_naming_what_and_where(http: httpx.Client, tenants: tuple[Tenant, Tenant]) -> None:
    acme, _ = tenants
    h = acme.headers()
    missing = _problem(http.get("/v1/threads/thr_missing", headers=h), 404)
    assert (missing["code"], missing["resource"]) == ("not_found", "thread")
    assert _problem(http.post("/v1/threads/thr_missing/messages", headers=h, json={"content": "hi"}), 404)["code"] == "not_found"
    thread = new_thread(http, acme)
    t = thread["id"]
    assert _problem(http.get(f"/v1/threads/{t}/runs/run_missing/events", headers=h), 404)["resource"] == "run"
    assert _problem(http.post(f"/v1/threads/{t}/runs/run_missing/cancel", headers=h), 404)["resource"] == "run"

    assert _pointers(_problem(http.post(f"/v1/threads/{t}/messages", headers=h, json={"content": 5}), 422)) == ["/body/content"]
    assert _pointers(_problem(http.post(f"/v1/threads/{t}/messages", headers=h, json={}), 422)) == ["/body/content"]
    assert _pointers(_problem(http.post(f"/v1/threads/{t}/messages", headers=h, json={"content": "  \n "}), 422)) == ["/body/content"]
    long = _problem(http.post(f"/v1/threads/{t}/messages", headers=h, json={"content": "x" * 32_001}), 422)
    assert _pointers(long) == ["/body/content"] and "32000" in long["detail"]
    assert _problem(http.post(f"/v1/threads/{t}/messages", headers=h, json={"content": "x" * (2 << 20)}), 413)
    assert _pointers(_problem(http.post(f"/v1/threads/{t}/messages", headers=h, content=b"{not json",
                                        ), 422)) == ["/body"]
    unknown = _problem(http.post("/v1/threads", headers=h, json={"graph": "nope"}), 422)
    assert _pointers(unknown) == ["/body/graph"] and GRAPH in unknown["detail"]
    assert _pointers(_problem(http.post(f"/v1/threads/{t}/resume", headers=h, json={}), 422)) == ["/body/resume"]
    bad_id = _problem(http.get(f"/v1/threads/{t}/runs/run_x/events", headers=h | {"Last-Event-ID": "abc"}), 422)
    assert _pointers(bad_id) == ["/header/Last-Event-ID"]
    assert _pointers(_problem(http.get(f"/v1/threads/{t}/runs/run_x/events", headers=h, params={"after": -1}), 422)) == ["/query/after"]
    assert _pointers(_problem(http.get("/v1/threads", headers=h, params={"status": "sleeping"}), 422)) == ["/query/status"]
    # Nothing of that started a run.
    assert http.get(f"/v1/threads/{t}/runs", headers=h).json()["items"] == []
