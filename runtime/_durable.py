"""Durable executions, the side every process shares: handing a recorded execution to the queue
that workers take it from, and the names both sides agree on.

DBOS (durable execution on the platform's Postgres, its tables in their own schema, by default
``dbos``) runs Standard and Long executions. :meth:`Runs.start` records such an execution
``queued`` and calls :meth:`DurableQueue.enqueue`, which enqueues one DBOS workflow whose id is the
execution's id: enqueueing the same execution twice is a no-op, so a sweep may hand over again an
execution whose hand-over may have been lost. A worker (``runtime.Worker``, ``switchboard worker``)
takes it from the queue and runs it (see ``runtime._worker``).

The queue is partitioned by organization, customer and workflow, one execution of a partition at
a time, in the order they were enqueued: runs of the same workflow for the same customer never
race (the workflow's ``concurrency.per_customer``, default 1 with a sync step), runs for different
customers never wait on each other. A workflow allowing N runs at once per customer gets N
partitions (``#0`` .. ``#N-1``, an execution's picked at random): at most N run at once, each partition in
order. One without a limit gets ``UNLIMITED_PARTITIONS`` of them, so that one customer's burst
still cannot hold every worker. The partition is recorded with the execution
(``queue_partition``), so a sweep that hands it over again uses the same one.

This side uses a ``DBOSClient`` only (it needs no launched DBOS, and runs no workflow code), so an
API process enqueues without being a worker.
"""

from __future__ import annotations

import secrets
import threading
from typing import TYPE_CHECKING, Any

import store

if TYPE_CHECKING:
    from engine.workflow import ActionCall
    from runtime._platform import Platform

QUEUE_NAME = "switchboard-executions"
WORKFLOW_NAME = "switchboard.execution"
CLASS_NAME = "switchboard.DurableExecutions"
INSTANCE_NAME = "platform"
APP_NAME = "switchboard"
DEFAULT_SCHEMA = "dbos"


def idempotency_key(workflow_id: str, call: ActionCall) -> str:
    """The idempotency key of one connector call of a durable run: the workflow (execution) id,
    the call's step pointer and its index in the run. The same call gets the same key every time
    the run reaches it, including when a worker lost mid-call makes it again after a recovery."""
    return f"{workflow_id}/{call.step_path}#{call.seq}"


# Partitions of a workflow without a per-customer limit (see the module docstring).
UNLIMITED_PARTITIONS = 4


def queue_partition(org_id: str, customer_id: str, workflow_id: str, limit: int | None) -> str:
    """The queue partition a new execution of ``workflow_id`` for ``customer_id`` waits in, for a
    workflow allowing ``limit`` runs of one customer at once (None: no limit; see the module
    docstring). Recorded with the execution (``queue_partition``)."""
    base = f"{org_id}/{customer_id}/{workflow_id}"
    slots = UNLIMITED_PARTITIONS if limit is None else limit
    return base if slots == 1 else f"{base}#{secrets.randbelow(slots)}"


def partition_key(execution: dict[str, Any]) -> str:
    """The queue partition of a recorded execution: its ``queue_partition``, else (recorded before
    partitions were kept) its organization, customer and workflow."""
    return execution.get("queue_partition") or f"{execution['org_id']}/{execution['customer_id']}/{execution['workflow_id']}"


class DurableQueue:
    """Hands recorded executions to the durable queue (a lazily opened ``DBOSClient`` over the
    platform's database). Thread-safe; :meth:`close` releases the client."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def schema(self) -> str:
        """The schema DBOS's tables live in."""
        return self.platform.config.durable_schema

    def _open(self) -> Any:
        with self._lock:
            if self._client is None:
                from dbos import DBOSClient

                url = store.durable_database_url(self.platform.conninfo)
                # The client never creates DBOS's tables; a worker does at launch, and this makes
                # an API that runs before any worker ever did work too (idempotent, once per process).
                store.migrate_durable(self.platform.conninfo, self.schema)
                self._client = DBOSClient(system_database_url=url, dbos_system_schema=self.schema,
                                          application_name=APP_NAME, system_database_pool_size=2)
            return self._client

    def register(self, *, worker_concurrency: int, polling_seconds: float) -> None:
        """Create or update the queue's settings in DBOS's tables, where every worker reads them:
        at most ``worker_concurrency`` executions per worker, one at a time per partition, and an
        idle worker's look at the queue every ``polling_seconds``. Blocking."""
        self._open().register_queue(
            QUEUE_NAME, worker_concurrency=worker_concurrency, partition_concurrency=1,
            polling_interval_sec=polling_seconds, on_conflict="always_update",
        )

    def enqueue(self, execution: dict[str, Any]) -> None:
        """Enqueue the DBOS workflow that runs ``execution`` (a row of ``store.Executions``, or the
        ``org_id``, ``id``, ``customer_id`` and ``workflow_id`` of one, with its ``queue_partition``);
        a no-op when it is already enqueued, running or finished. Blocking: call it off the event loop."""
        client = self._open()
        client.enqueue(
            {
                "workflow_name": WORKFLOW_NAME,
                "queue_name": QUEUE_NAME,
                "workflow_id": execution["id"],
                "class_name": CLASS_NAME,
                "instance_name": INSTANCE_NAME,
                "queue_partition_key": partition_key(execution),
            },
            execution["org_id"],
            execution["id"],
        )

    def send(self, execution_id: str, message: Any, *, topic: str, idempotency_key: str) -> None:
        """Send ``message`` to the DBOS workflow of ``execution_id`` on ``topic`` (a ``wait`` step
        receives it, see ``runtime._waits``); DBOS keeps it until received. A repeat with the same
        ``idempotency_key`` sends nothing more. Blocking: call it off the event loop."""
        self._open().send(execution_id, message, topic, idempotency_key)

    def cancel(self, execution_id: str) -> None:
        """Cancel the DBOS workflow of ``execution_id``: a queued one never starts, a running one
        stops at its next step boundary (the call in flight completes). A no-op for one never
        enqueued or finished. Blocking: call it off the event loop."""
        self._open().cancel_workflow(execution_id)

    def close(self) -> None:
        """Release the client's connections."""
        with self._lock:
            if self._client is not None:
                self._client.destroy()
                self._client = None
