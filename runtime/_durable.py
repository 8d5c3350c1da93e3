"""Durable executions, the side every process shares: handing a recorded execution to the queue
that workers take it from, and the names both sides agree on.

DBOS (durable execution on the platform's Postgres, its tables in their own schema, by default
``dbos``) runs Standard and Long executions. :meth:`Runs.start` records such an execution
``queued`` and calls :meth:`DurableQueue.enqueue`, which enqueues one DBOS workflow whose id is the
execution's id: enqueueing the same execution twice is a no-op, so a sweep may hand over again an
execution whose hand-over may have been lost. A worker (``runtime.Worker``, ``switchboard worker``)
takes it from the queue and runs it (see ``runtime._worker``).

The queue is partitioned by organization, customer and workflow, one execution of a partition at
a time: runs of the same workflow for the same customer never race, runs for different customers
never wait on each other, and one customer's burst cannot hold every worker.

This side uses a ``DBOSClient`` only (it needs no launched DBOS, and runs no workflow code), so an
API process enqueues without being a worker.
"""

from __future__ import annotations

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


def partition_key(execution: dict[str, Any]) -> str:
    """The queue partition an execution waits in: its organization, customer and workflow."""
    return f"{execution['org_id']}/{execution['customer_id']}/{execution['workflow_id']}"


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
        ``org_id``, ``id``, ``customer_id`` and ``workflow_id`` of one); a no-op when it is already
        enqueued, running or finished. Blocking: call it off the event loop."""
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

    def close(self) -> None:
        """Release the client's connections."""
        with self._lock:
            if self._client is not None:
                self._client.destroy()
                self._client = None
