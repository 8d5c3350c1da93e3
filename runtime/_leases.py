"""No execution is left ``running`` by a crash: each process's lease, and the sweep that fails the
inline executions of processes that are gone.

An inline execution runs inside the process that answers its request; if that process is killed
(``kill -9``, a lost machine) the run cannot resume (its caller is gone too), so it must end
``failed``, with the reason. Each platform process holds a lease (``store.register_process``; its
id is ``Platform.process_id``, which inline executions record as their ``owner``) and renews it
every ``Config.heartbeat_seconds``. The sweep (``store.fail_orphaned``) runs when a process starts
and then with every heartbeat: an execution still running whose owner's lease is missing, older
than ``Config.lease_seconds``, or held by a pid of this host that no longer exists, is marked
``failed`` with code ``process_lost``. So a restarted process fails its predecessor's runs at once,
and any other process does within a lease.

Durable (Standard, Long) executions are not failed: DBOS resumes them (see ``runtime._worker``).
A worker's lease also hands over again executions left ``queued`` without a DBOS workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import anyio.to_thread

import store

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)

# A queued execution older than this is handed over to the queue again by a worker's sweep.
REQUEUE_AFTER_SECONDS = 30.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True


class ProcessLease:
    """This process's lease and sweeps, for the life of an ``async with`` block.

    ``kind`` is ``api`` or ``worker``; a worker's sweep also re-enqueues stranded queued executions.
    """

    def __init__(self, platform: Platform, kind: str) -> None:
        self.platform = platform
        self.kind = kind
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ProcessLease:
        try:
            await anyio.to_thread.run_sync(self._register)
            await self.sweep()
        except store.StoreError as exc:
            # A database unreachable or not migrated yet must not stop the process from starting:
            # its /health answers 503 and says why, and the heartbeat takes the lease once it can.
            log.warning("cannot take the process lease yet: %s", exc)
        self._task = asyncio.get_running_loop().create_task(self._beat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._end)

    def _register(self) -> None:
        store.register_process(self.platform.conninfo, self.platform.process_id, kind=self.kind,
                               host=socket.gethostname(), pid=os.getpid())

    def _end(self) -> None:
        try:
            store.end_process(self.platform.conninfo, self.platform.process_id)
        except store.StoreError as exc:  # the database went first; the lease expires by itself
            log.warning("could not end the process lease: %s", exc)

    async def sweep(self) -> list[dict[str, Any]]:
        """Fail the inline executions of gone processes (and, for a worker, hand stranded queued
        executions over again); returns the executions failed."""
        config = self.platform.config
        failed = await anyio.to_thread.run_sync(lambda: store.fail_orphaned(
            self.platform.conninfo, host=socket.gethostname(), alive=pid_alive, lease_seconds=config.lease_seconds))
        for execution in failed:
            log.warning("execution %s failed: its process %s is gone", execution["id"], execution["owner"])
        if self.kind == "worker":
            stranded = await anyio.to_thread.run_sync(lambda: store.unstarted_executions(
                self.platform.conninfo, older_than_seconds=REQUEUE_AFTER_SECONDS))
            for execution in stranded:
                await anyio.to_thread.run_sync(self.platform.durable.enqueue, execution)
        return failed

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.platform.config.heartbeat_seconds)
            try:
                # Registering again renews the lease, and restores one a sweep removed after a stall.
                await anyio.to_thread.run_sync(self._register)
                await self.sweep()
            except Exception as exc:  # a database hiccup must not end the process's heartbeat
                log.warning("process lease heartbeat failed: %s", exc)
