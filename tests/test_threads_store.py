"""Threads in the store: migration m011 creates LangGraph's checkpoint tables as the library would
(its own ``setup()`` then finds nothing to do), and row-level security confines both our thread
tables and the checkpoint tables to the organization, checked with raw SQL as the app role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, MessagesState, StateGraph

import store
from store.errors import OutsideTenantScope


def test_the_migration_stands_for_every_checkpoint_migration_of_the_library(migrated_database_url: str) -> None:
    # A library release with a new migration needs a migration of ours (store/_threads.py).
    assert len(PostgresSaver.MIGRATIONS) == store._threads.CHECKPOINT_MIGRATIONS
    with psycopg.connect(migrated_database_url, autocommit=True) as owner:
        before = [r[0] for r in owner.execute("SELECT v FROM checkpoint_migrations ORDER BY v")]
        assert before == list(range(len(PostgresSaver.MIGRATIONS)))
        saver = PostgresSaver(owner)
        saver.setup()  # what a user of the library would run: nothing left to do
        after = [r[0] for r in owner.execute("SELECT v FROM checkpoint_migrations ORDER BY v")]
    assert after == before


def _orgs(url: str) -> tuple[str, str]:
    a, b = store.new_id("orgA"), store.new_id("orgB")
    with psycopg.connect(url, autocommit=True) as owner:
        for org in (a, b):
            owner.execute("INSERT INTO organizations (id, name) VALUES (%s, %s)", (org, org))
    return a, b


def _graph():
    def answer(state: MessagesState) -> dict:
        return {"messages": [{"role": "ai", "content": f"heard {len(state['messages'])}"}]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder


async def _write_checkpoint(app_conninfo: str, org: str, thread: str) -> None:
    async with store.open_checkpointer(app_conninfo, org) as saver:
        graph = _graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": store.checkpoint_thread_id(org, thread)}}
        await graph.ainvoke({"messages": [{"role": "user", "content": "hi"}]}, config)
        state = await graph.aget_state(config)
        assert [m.content for m in state.values["messages"]] == ["hi", "heard 1"]


@pytest.fixture(scope="module")
def checkpoints(migrated_database_url: str) -> Iterator[tuple[str, str]]:
    a, b = _orgs(migrated_database_url)
    app = store.app_conninfo(migrated_database_url)
    asyncio.run(_write_checkpoint(app, a, "thr_1"))
    asyncio.run(_write_checkpoint(app, b, "thr_1"))
    yield a, b


@pytest.mark.parametrize("table", store.CHECKPOINT_TABLES)
def test_sql_as_the_app_role_reads_only_its_organizations_checkpoints(
    migrated_database_url: str, checkpoints: tuple[str, str], table: str
) -> None:
    a, b = checkpoints
    with psycopg.connect(migrated_database_url, autocommit=True) as owner:
        total = {org: owner.execute(f"SELECT count(*) FROM {table} WHERE thread_id = %s",
                                    (store.checkpoint_thread_id(org, "thr_1"),)).fetchone()[0] for org in (a, b)}
    assert total[a] > 0 and total[b] > 0
    with psycopg.connect(store.app_conninfo(migrated_database_url)) as app:
        app.execute("SELECT set_config('app.org_id', %s, true)", (a,))
        seen = {r[0] for r in app.execute(f"SELECT DISTINCT thread_id FROM {table}")}
        assert seen == {store.checkpoint_thread_id(a, "thr_1")}
        # Naming B's thread explicitly finds nothing; changing or deleting it touches nothing.
        other = store.checkpoint_thread_id(b, "thr_1")
        assert app.execute(f"SELECT count(*) FROM {table} WHERE thread_id = %s", (other,)).fetchone()[0] == 0
        assert app.execute(f"UPDATE {table} SET checkpoint_ns = checkpoint_ns WHERE thread_id = %s", (other,)).rowcount == 0
        assert app.execute(f"DELETE FROM {table} WHERE thread_id = %s", (other,)).rowcount == 0
    # Without an organization set, nothing at all.
    with psycopg.connect(store.app_conninfo(migrated_database_url)) as app:
        assert app.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_an_org_id_with_an_underscore_is_no_pattern_for_other_ids(
    migrated_database_url: str, checkpoints: tuple[str, str]
) -> None:
    # With LIKE, org "orgA_1" would match thread ids of org "orgAx1" ("_" is any character): the
    # namespace check is an exact prefix.
    a, _ = checkpoints
    lookalike = a.replace("_", "x", 1)
    with psycopg.connect(migrated_database_url, autocommit=True) as owner:
        owner.execute("INSERT INTO organizations (id, name) VALUES (%s, %s)", (lookalike, lookalike))
    asyncio.run(_write_checkpoint(store.app_conninfo(migrated_database_url), lookalike, "thr_1"))
    with psycopg.connect(store.app_conninfo(migrated_database_url)) as app:
        app.execute("SELECT set_config('app.org_id', %s, true)", (a,))
        seen = {r[0] for r in app.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    assert seen == {store.checkpoint_thread_id(a, "thr_1")}


def test_a_checkpointer_cannot_write_into_another_organizations_namespace(
    migrated_database_url: str, checkpoints: tuple[str, str]
) -> None:
    a, b = checkpoints

    async def attempt() -> None:
        async with store.open_checkpointer(store.app_conninfo(migrated_database_url), a) as saver:
            graph = _graph().compile(checkpointer=saver)
            config = {"configurable": {"thread_id": store.checkpoint_thread_id(b, "thr_1")}}
            # Reading B's thread through A's saver finds no state at all.
            assert (await graph.aget_state(config)).values == {}
            await graph.ainvoke({"messages": [{"role": "user", "content": "take over"}]}, config)

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        asyncio.run(attempt())


def _seed_thread(url: str, org: str) -> None:
    with psycopg.connect(url, autocommit=True) as owner:
        owner.execute("INSERT INTO threads (org_id, id, graph, actor_type, actor_id) VALUES (%s, 't', 'home', 'user', 'u')", (org,))
        owner.execute("INSERT INTO thread_runs (org_id, id, thread_id, kind, input, actor_type, actor_id)"
                      " VALUES (%s, 'r', 't', 'message', '{}', 'user', 'u')", (org,))
        owner.execute("INSERT INTO thread_events (org_id, run_id, seq, type, data) VALUES (%s, 'r', 1, 'done', '{}')", (org,))


@pytest.mark.parametrize("table", store.THREAD_TABLES)
def test_sql_as_the_app_role_reads_and_writes_only_its_organizations_threads(
    migrated_database_url: str, db: store.Database, table: str
) -> None:
    a, b = _orgs(migrated_database_url)
    _seed_thread(migrated_database_url, a)
    _seed_thread(migrated_database_url, b)
    with db.tenant(a) as tx:
        assert {r["org_id"] for r in tx.execute(f"SELECT org_id FROM {table}")} == {a}
        assert tx.execute(f"DELETE FROM {table} WHERE org_id = %s", (b,)).rowcount == 0
    with pytest.raises(OutsideTenantScope):
        with db.tenant(a) as tx:
            store.Threads(tx).create(b, "t2", graph="home", title="", metadata={}, customer_id=None,
                                     actor_type="user", actor_id="u")
