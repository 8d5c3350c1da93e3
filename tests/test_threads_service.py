"""The Threads service across processes: two ``Threads`` over one database stand for two API
processes. A run of one streams live to a client of the other (from the store), exactly once and
in order; a cancel sent to the other process stops it; a run whose process is gone is cancelled
after the grace period, its thread freed.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from langchain_core.callbacks import BaseCallbackHandler

import runtime
import store
from agents import ThreadEvent, Threads
from support.platform import Tenant, make_tenant
from support.threads import ANSWER, ScriptedGraphs
from switchboard.app import open_platform
from switchboard.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(migrated_database_url: str) -> AsyncIterator[runtime.Platform]:
    with tempfile.TemporaryDirectory() as data_dir:
        async with open_platform(Settings(database_url=migrated_database_url, data_dir=Path(data_dir))) as p:
            yield p


@pytest.fixture(scope="module")
def graphs() -> ScriptedGraphs:
    return ScriptedGraphs()


@pytest.fixture(scope="module")
def tenant(db: store.Database) -> Tenant:
    return make_tenant(db, "Threads service", customers=1)


def principal(platform: runtime.Platform, tenant: Tenant) -> runtime.Principal:
    return runtime.authenticate_key(platform.db, tenant.org_id, tenant.key, None)


def two(platform: runtime.Platform, graphs: ScriptedGraphs, grace: float = 0.5) -> tuple[Threads, Threads]:
    return (Threads(platform, graphs, graphs=("scripted",), cancel_grace=grace),
            Threads(platform, graphs, graphs=("scripted",), cancel_grace=grace))


async def collect(threads: Threads, who: runtime.Principal, thread: str, run: str, after: int = 0) -> list[ThreadEvent]:
    return [e async for e in threads.events(who, thread, run, after=after)]


async def until(predicate, what: str) -> None:
    for _ in range(1000):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_run_of_one_process_streams_live_to_a_client_of_another(
    platform: runtime.Platform, graphs: ScriptedGraphs, tenant: Tenant
) -> None:
    first, second = two(platform, graphs)
    who = principal(platform, tenant)
    graphs.gate.clear()
    thread = await first.create(who, graph="scripted")
    run = await first.post_message(who, thread["id"], "slow please")
    elsewhere = asyncio.create_task(collect(second, who, thread["id"], run["id"]))
    here = asyncio.create_task(collect(first, who, thread["id"], run["id"]))
    # The other process has seen the events so far, from the store, while the run waits.
    await until(lambda: _stored(second, who, thread["id"], run["id"], 4), "four events stored")
    assert not elsewhere.done()
    graphs.gate.set()
    remote, local = await elsewhere, await here
    assert remote == local
    assert [e.seq for e in remote] == list(range(1, len(remote) + 1))
    assert remote[-1].type == "done" and "".join(e.data["delta"] for e in remote if e.type == "token") == ANSWER
    assert (await first.run(who, thread["id"], run["id"]))["status"] == "completed"


async def _stored(threads: Threads, who: runtime.Principal, thread: str, run: str, count: int) -> bool:
    def read(t: store.Threads) -> int:
        return len(t.events(who.org_id, run))

    return await threads._tx(who.org_id, read) >= count


async def test_a_cancel_sent_to_another_process_stops_the_run_where_it_runs(
    platform: runtime.Platform, graphs: ScriptedGraphs, tenant: Tenant
) -> None:
    # Grace enough for the running process to look (it does every CANCEL_CHECK_SECONDS).
    first, second = two(platform, graphs, grace=30.0)
    who = principal(platform, tenant)
    graphs.gate.clear()
    try:
        thread = await first.create(who, graph="scripted")
        run = await first.post_message(who, thread["id"], "slow please")
        await until(lambda: _stored(first, who, thread["id"], run["id"], 1), "the run started")
        cancelled = await second.cancel(who, thread["id"], run["id"])
        assert cancelled["status"] == "cancelled" and cancelled["error"] is None  # stopped by its own process
        events = await collect(second, who, thread["id"], run["id"])
        assert events[-1].type == "done" and events[-1].data["status"] == "cancelled"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert (await first.get(who, thread["id"]))["status"] == "idle"
    finally:
        graphs.gate.set()


async def test_a_run_whose_process_is_gone_is_cancelled_after_the_grace_period(
    platform: runtime.Platform, graphs: ScriptedGraphs, tenant: Tenant
) -> None:
    threads, _ = two(platform, graphs)
    who = principal(platform, tenant)
    thread = await threads.create(who, graph="scripted")
    # A run recorded by a process that died at once: busy thread, running run, one event.
    with platform.db.tenant(who.org_id) as tx:
        rows = store.Threads(tx)
        rows.set_status(who.org_id, thread["id"], "busy")
        rows.insert_run(who.org_id, thread["id"], "run_orphan", kind="message", input={"content": "hi"},
                        actor_type=who.actor_type, actor_id=who.actor_id)
        rows.set_run_status(who.org_id, "run_orphan", "running")
        rows.append_events(who.org_id, "run_orphan", [(1, "step", {"node": "plan", "namespace": []})])
    busy = threads.post_message(who, thread["id"], "another")
    with pytest.raises(Exception) as refused:
        await busy
    assert getattr(refused.value, "code", None) == "thread_busy"

    cancelled = await threads.cancel(who, thread["id"], "run_orphan")
    assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == "run_abandoned"
    events = await collect(threads, who, thread["id"], "run_orphan")
    assert [(e.seq, e.type) for e in events] == [(1, "step"), (2, "done")]
    assert (await threads.get(who, thread["id"]))["status"] == "idle"
    follow = await threads.post_message(who, thread["id"], "now it runs")
    assert (await collect(threads, who, thread["id"], follow["id"]))[-1].data["status"] == "completed"


class OutOfCredits(Exception):
    code = "credits_exhausted"
    http_status = 402


class Meter(BaseCallbackHandler):
    """Counts the run's model calls; refuses them when ``refuse``."""

    raise_error = True

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.calls = 0

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        self.calls += 1
        if self.refuse:
            raise OutOfCredits("the organization has no agent credits left this month")


async def test_each_run_gets_its_callbacks_and_a_coded_refusal_ends_it(
    platform: runtime.Platform, graphs: ScriptedGraphs, tenant: Tenant
) -> None:
    given: dict[str, Meter] = {}

    def callbacks(who: runtime.Principal, thread: dict, run_id: str) -> list[Meter]:
        given[run_id] = Meter(refuse="refuse" in thread["title"])
        return [given[run_id]]

    threads = Threads(platform, graphs, graphs=("scripted",), callbacks=callbacks)
    who = principal(platform, tenant)
    paid = await threads.create(who, graph="scripted", title="paid")
    run = await threads.post_message(who, paid["id"], "sync contacts")
    assert (await collect(threads, who, paid["id"], run["id"]))[-1].type == "done"
    assert given[run["id"]].calls == 1  # the answer node's model call

    broke = await threads.create(who, graph="scripted", title="refuse")
    run = await threads.post_message(who, broke["id"], "sync contacts")
    last = (await collect(threads, who, broke["id"], run["id"]))[-1]
    assert (last.type, last.data["code"]) == ("error", "credits_exhausted")
    assert "no agent credits left" in last.data["message"]
