"""A pass run again and again in the background of a process, for the life of an ``async with`` block.

The worker's scheduler and poller are both such loops: each pass claims what is due in Postgres
(``FOR UPDATE SKIP LOCKED``), so any number of processes can run the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from runtime._platform import Platform

log = logging.getLogger(__name__)


class Periodic:
    """Runs :meth:`tick` every ``poll_seconds`` while entered; a failed pass is logged, not fatal.

    Subclasses set ``name`` (for the log) and implement :meth:`tick`, which is also callable alone
    (tests, a one-shot command).
    """

    name = "periodic"

    def __init__(self, platform: Platform, *, poll_seconds: float, batch: int) -> None:
        self.platform = platform
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a database hiccup must not end the loop
                log.warning("%s: a pass failed: %s", self.name, exc)
            await asyncio.sleep(self.poll_seconds)

    async def tick(self) -> list[dict[str, Any]]:
        """One pass; returns what it did."""
        raise NotImplementedError
