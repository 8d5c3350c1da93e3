"""Agent threads: our tables (the only way in) and LangGraph's checkpoint tables (migration m011,
``THREADS_SCHEMA``).

* ``threads``: one conversation with a graph, per organization, created by an actor (and for the
  customer its agents act for, when one is named). ``status`` is ``idle``, ``busy`` (a run is
  going), ``interrupted`` (a run stopped at an interrupt and awaits a resume) or ``error``.
* ``thread_runs``: each message posted or interrupt resumed starts a run: ``pending``,
  ``running``, then ``interrupted``, ``completed``, ``failed`` or ``cancelled``, with its input,
  error and token usage.
* ``thread_events``: the typed events of a run, numbered 1, 2, 3... per run (``seq``), so a
  client streaming them (SSE) resumes after the last one it saw (``Last-Event-ID``).

LangGraph's checkpoint tables carry no tenant column. Their thread ids are namespaced
``<org_id>:<thread_id>`` (:func:`checkpoint_thread_id`), and row-level security restricts them to
the rows whose thread id starts with the transaction's organization and a colon, so SQL as the app
role cannot read another organization's checkpoints. The tables are created here exactly as
``langgraph-checkpoint-postgres`` 3.2's ``setup()`` would (its migrations 0-9, the indexes built
at once rather than ``CONCURRENTLY``, which cannot run in a transaction), and its
``checkpoint_migrations`` table records them as done, so the library's ``setup()`` finds nothing
to do and is never needed at run time (the app role could not run it). A library release that
adds a migration must come with a new migration of ours (tests/test_threads_store.py checks the
count).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from store._paging import Filters, ListQuery, Page, fetch_page
from store._schema import APP_ROLE
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from store._database import Tx

THREAD_STATUSES = ("idle", "busy", "interrupted", "error")
RUN_STATUSES = ("pending", "running", "interrupted", "completed", "failed", "cancelled")
# A run in one of these is over; the others may still produce events.
RUN_FINISHED = ("interrupted", "completed", "failed", "cancelled")
EVENT_TYPES = ("token", "tool_call", "tool_result", "step", "interrupt", "usage", "done", "error")
THREAD_TABLES = ("threads", "thread_runs", "thread_events")
CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
# How many of langgraph-checkpoint-postgres's migrations THREADS_SCHEMA stands for (3.2: 10).
CHECKPOINT_MIGRATIONS = 10

_ORG = "current_setting('app.org_id', true)"
# starts_with rather than LIKE: ids contain "_", which LIKE takes for a wildcard.
_NAMESPACE = f"starts_with(thread_id, {_ORG} || ':')"


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


THREADS_SCHEMA = f"""
CREATE TABLE threads (
    org_id      text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id          text NOT NULL,
    graph       text NOT NULL,
    title       text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'idle' CHECK (status IN ({_in(THREAD_STATUSES)})),
    metadata    jsonb NOT NULL DEFAULT '{{}}',
    customer_id text,
    actor_type  text NOT NULL,
    actor_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CREATE INDEX threads_by_actor ON threads (org_id, actor_id, created_at);
CREATE TABLE thread_runs (
    org_id      text NOT NULL,
    id          text NOT NULL,
    thread_id   text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('message', 'resume')),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ({_in(RUN_STATUSES)})),
    input       jsonb NOT NULL,
    error       jsonb,
    usage       jsonb NOT NULL DEFAULT '{{}}',
    -- Set by a process that cannot cancel the run itself; the process running it stops it.
    cancel_requested boolean NOT NULL DEFAULT false,
    actor_type  text NOT NULL,
    actor_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, thread_id) REFERENCES threads(org_id, id) ON DELETE CASCADE
);
CREATE INDEX thread_runs_by_thread ON thread_runs (org_id, thread_id, created_at);
CREATE TABLE thread_events (
    org_id     text NOT NULL,
    run_id     text NOT NULL,
    seq        integer NOT NULL CHECK (seq > 0),
    type       text NOT NULL CHECK (type IN ({_in(EVENT_TYPES)})),
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, run_id, seq),
    FOREIGN KEY (org_id, run_id) REFERENCES thread_runs(org_id, id) ON DELETE CASCADE
);
ALTER TABLE threads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON threads USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
ALTER TABLE thread_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON thread_runs USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
ALTER TABLE thread_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON thread_events USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
GRANT SELECT, INSERT, UPDATE, DELETE ON threads, thread_runs, thread_events TO {APP_ROLE};

-- LangGraph's checkpoint tables, as langgraph-checkpoint-postgres 3.2 setup() leaves them.
CREATE TABLE IF NOT EXISTS checkpoint_migrations (v INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);
CREATE TABLE IF NOT EXISTS checkpoint_writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    blob BYTEA NOT NULL,
    task_path TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
CREATE INDEX IF NOT EXISTS checkpoints_thread_id_idx ON checkpoints(thread_id);
CREATE INDEX IF NOT EXISTS checkpoint_blobs_thread_id_idx ON checkpoint_blobs(thread_id);
CREATE INDEX IF NOT EXISTS checkpoint_writes_thread_id_idx ON checkpoint_writes(thread_id);
INSERT INTO checkpoint_migrations (v) SELECT generate_series(0, {CHECKPOINT_MIGRATIONS - 1}) ON CONFLICT DO NOTHING;
ALTER TABLE checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON checkpoints USING ({_NAMESPACE}) WITH CHECK ({_NAMESPACE});
ALTER TABLE checkpoint_blobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON checkpoint_blobs USING ({_NAMESPACE}) WITH CHECK ({_NAMESPACE});
ALTER TABLE checkpoint_writes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON checkpoint_writes USING ({_NAMESPACE}) WITH CHECK ({_NAMESPACE});
GRANT SELECT, INSERT, UPDATE, DELETE ON checkpoints, checkpoint_blobs, checkpoint_writes TO {APP_ROLE};
GRANT SELECT ON checkpoint_migrations TO {APP_ROLE};
"""


def checkpoint_thread_id(org_id: str, thread_id: str) -> str:
    """The thread id LangGraph's checkpointer stores for thread ``thread_id`` of ``org_id``."""
    return f"{org_id}:{thread_id}"


@asynccontextmanager
async def open_checkpointer(app_conninfo: str, org_id: str) -> AsyncIterator[AsyncPostgresSaver]:
    """LangGraph's Postgres checkpointer on a connection of its own, bound to ``org_id``.

    ``app_conninfo`` is the app role's (``Database.conninfo``): row-level security then confines
    the saver to the organization's namespace, whatever thread id a config names. The organization
    is set for the session (``set_config(..., false)``): the saver runs in autocommit, one
    transaction per statement, and the connection is never pooled, so the setting cannot reach
    another organization's work. Raises ``DatabaseUnavailable`` when no connection can be made.
    """
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row

    from store._db import error_reason
    from store.errors import DatabaseUnavailable

    if not org_id:
        raise ValueError("a checkpointer needs an organization id")
    try:
        conn = await psycopg.AsyncConnection.connect(
            app_conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row
        )
    except psycopg.Error as exc:
        raise DatabaseUnavailable(error_reason(exc)) from exc
    async with conn:
        await conn.execute("SELECT set_config('app.org_id', %s, false)", (org_id,))
        yield AsyncPostgresSaver(conn=conn)


_THREAD_COLUMNS = ("id, graph, title, status, metadata, customer_id, actor_type, actor_id, created_at, updated_at")
_RUN_COLUMNS = ("id, thread_id, kind, status, input, error, usage, actor_type, actor_id, created_at, finished_at")


class Threads:
    """An organization's threads, their runs and their events (one transaction's worth)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    # -- threads ------------------------------------------------------------------------------

    def create(self, org_id: str, thread_id: str, *, graph: str, title: str, metadata: dict[str, Any],
               customer_id: str | None, actor_type: str, actor_id: str) -> dict[str, Any]:
        """Insert an idle thread and return it."""
        return self.tx.execute(
            f"INSERT INTO threads (org_id, id, graph, title, metadata, customer_id, actor_type, actor_id)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_THREAD_COLUMNS}",
            (org_id, thread_id, graph, title, Jsonb(metadata), customer_id, actor_type, actor_id),
        ).fetchone()

    def get(self, org_id: str, thread_id: str, *, customer_id: str | None = None, lock: bool = False) -> dict[str, Any]:
        """Thread ``thread_id`` (only if it is ``customer_id``'s, when given); ``NotFound`` for a
        missing one, another organization's or another customer's."""
        row = self.tx.execute(
            f"SELECT {_THREAD_COLUMNS} FROM threads WHERE org_id = %s AND id = %s"
            + (" AND customer_id = %s" if customer_id else "") + (" FOR UPDATE" if lock else ""),
            (org_id, thread_id, customer_id) if customer_id else (org_id, thread_id),
        ).fetchone()
        if row is None:
            raise NotFound("thread", thread_id)
        return row

    def list(self, org_id: str, query: ListQuery, *, customer_id: str | None = None, actor_id: str | None = None,
             graph: str | None = None, status: str | None = None) -> Page:
        """Threads (sort: created_at, updated_at), optionally only ``customer_id``'s, ``actor_id``'s,
        one graph's or in one status. Raises ``InvalidInput`` (``status``, ``sort``, ``limit``,
        ``cursor``)."""
        if status is not None and status not in THREAD_STATUSES:
            raise InvalidInput("thread", "status", f"must be one of {', '.join(THREAD_STATUSES)}")
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if customer_id:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        if actor_id:
            filters.add("actor_id = %(actor)s", actor=actor_id)
        if graph:
            filters.add("graph = %(graph)s", graph=graph)
        if status:
            filters.add("status = %(status)s", status=status)
        return fetch_page(self.tx, "thread", "threads", query, {"created_at": "created_at", "updated_at": "updated_at"},
                          filters, columns=_THREAD_COLUMNS)

    def set_status(self, org_id: str, thread_id: str, status: str) -> None:
        """Set the thread's status."""
        self.tx.execute("UPDATE threads SET status = %s, updated_at = now() WHERE org_id = %s AND id = %s",
                        (status, org_id, thread_id))

    def set_graph(self, org_id: str, thread_id: str, graph: str) -> None:
        """Bind the thread to ``graph`` (a LangGraph client's thread names its graph with its first run)."""
        self.tx.execute("UPDATE threads SET graph = %s, updated_at = now() WHERE org_id = %s AND id = %s",
                        (graph, org_id, thread_id))

    def delete(self, org_id: str, thread_ids: Sequence[str]) -> int:
        """Delete threads ``thread_ids`` with their runs, events and checkpoints; returns how many
        threads there were. In the caller's transaction (an onboarding reset deletes its threads
        with its state)."""
        if not thread_ids:
            return 0
        namespaced = [checkpoint_thread_id(org_id, thread_id) for thread_id in thread_ids]
        for table in CHECKPOINT_TABLES:
            self.tx.execute(f"DELETE FROM {table} WHERE thread_id = ANY(%s)", (namespaced,))
        return self.tx.execute("DELETE FROM threads WHERE org_id = %s AND id = ANY(%s)",
                               (org_id, list(thread_ids))).rowcount

    def set_title(self, org_id: str, thread_id: str, title: str) -> None:
        """Set the thread's title."""
        self.tx.execute("UPDATE threads SET title = %s, updated_at = now() WHERE org_id = %s AND id = %s",
                        (title, org_id, thread_id))

    # -- runs ---------------------------------------------------------------------------------

    def insert_run(self, org_id: str, thread_id: str, run_id: str, *, kind: str, input: dict[str, Any],
                   actor_type: str, actor_id: str) -> dict[str, Any]:
        """Insert a pending run of the thread. The caller marks the thread busy in the same
        transaction, having locked it (``get(..., lock=True)``) and found it free."""
        return self.tx.execute(
            f"INSERT INTO thread_runs (org_id, id, thread_id, kind, input, actor_type, actor_id)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_RUN_COLUMNS}",
            (org_id, run_id, thread_id, kind, Jsonb(input), actor_type, actor_id),
        ).fetchone()

    def get_run(self, org_id: str, thread_id: str, run_id: str) -> dict[str, Any]:
        """Run ``run_id`` of thread ``thread_id``; ``NotFound`` otherwise."""
        row = self.tx.execute(
            f"SELECT {_RUN_COLUMNS} FROM thread_runs WHERE org_id = %s AND thread_id = %s AND id = %s",
            (org_id, thread_id, run_id),
        ).fetchone()
        if row is None:
            raise NotFound("run", run_id)
        return row

    def list_runs(self, org_id: str, thread_id: str, query: ListQuery) -> Page:
        """The thread's runs (sort: created_at)."""
        filters = Filters()
        filters.add("org_id = %(org)s AND thread_id = %(thread)s", org=org_id, thread=thread_id)
        return fetch_page(self.tx, "run", "thread_runs", query, {"created_at": "created_at"}, filters,
                          columns=_RUN_COLUMNS)

    def active_run(self, org_id: str, thread_id: str) -> dict[str, Any] | None:
        """The thread's pending or running run, if any."""
        return self.tx.execute(
            f"SELECT {_RUN_COLUMNS} FROM thread_runs WHERE org_id = %s AND thread_id = %s"
            " AND status IN ('pending', 'running') ORDER BY created_at DESC LIMIT 1",
            (org_id, thread_id),
        ).fetchone()

    def set_run_status(self, org_id: str, run_id: str, status: str) -> None:
        """Move an unfinished run to ``status`` (``running``)."""
        self.tx.execute(
            "UPDATE thread_runs SET status = %s WHERE org_id = %s AND id = %s AND status IN ('pending', 'running')",
            (status, org_id, run_id),
        )

    def request_cancel(self, org_id: str, run_id: str) -> bool:
        """Ask the process running the run to cancel it; False when the run is over."""
        row = self.tx.execute(
            "UPDATE thread_runs SET cancel_requested = true WHERE org_id = %s AND id = %s"
            " AND status IN ('pending', 'running') RETURNING id",
            (org_id, run_id),
        ).fetchone()
        return row is not None

    def cancel_requested(self, org_id: str, run_id: str) -> bool:
        """Whether a cancel of the run was asked for (by any process)."""
        row = self.tx.execute(
            "SELECT cancel_requested FROM thread_runs WHERE org_id = %s AND id = %s", (org_id, run_id)
        ).fetchone()
        return bool(row and row["cancel_requested"])

    def finish_run(self, org_id: str, run_id: str, status: str, *, error: dict[str, Any] | None = None,
                   usage: dict[str, Any] | None = None) -> bool:
        """Finish an unfinished run with ``status`` (one of ``RUN_FINISHED``); False when it had
        finished already (a cancel that came first)."""
        row = self.tx.execute(
            "UPDATE thread_runs SET status = %s, error = %s, usage = coalesce(%s, usage), finished_at = now()"
            " WHERE org_id = %s AND id = %s AND status IN ('pending', 'running') RETURNING id",
            (status, Jsonb(error) if error is not None else None, Jsonb(usage) if usage is not None else None,
             org_id, run_id),
        ).fetchone()
        return row is not None

    # -- events -------------------------------------------------------------------------------

    def append_events(self, org_id: str, run_id: str, events: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
        """Store ``(seq, type, data)`` events of the run (a seq stored already is a conflict)."""
        with self.tx.cursor() as cur:
            cur.executemany(
                "INSERT INTO thread_events (org_id, run_id, seq, type, data) VALUES (%s, %s, %s, %s, %s)",
                [(org_id, run_id, seq, kind, Jsonb(data)) for seq, kind, data in events],
            )

    def events(self, org_id: str, run_id: str, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The run's events with ``seq`` greater than ``after``, in order (at most ``limit``)."""
        return self.tx.execute(
            "SELECT seq, type, data, created_at FROM thread_events WHERE org_id = %s AND run_id = %s AND seq > %s"
            " ORDER BY seq LIMIT %s",
            (org_id, run_id, after, limit),
        ).fetchall()

    def last_seq(self, org_id: str, run_id: str) -> int:
        """The highest stored ``seq`` of the run (0 for none)."""
        row = self.tx.execute(
            "SELECT coalesce(max(seq), 0) AS seq FROM thread_events WHERE org_id = %s AND run_id = %s", (org_id, run_id)
        ).fetchone()
        return row["seq"]
