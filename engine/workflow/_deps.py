"""What a run depends on, injected: clock, ids, randomness, actions, secrets, other workflows,
who watches it and what its expressions may use.

The interpreter reads time, makes ids, draws random numbers, calls actions,
reads secrets, looks up called workflows, reports events and evaluates
expressions only through :class:`Dependencies`,
so the same interpreter runs inline in a test (``FakeClock``, ``SequentialIds``,
a seeded ``random.Random``), as a dry run against a sandbox, and in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import itertools
import random as _random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from ..errors import SecretNotFound
from ..expressions import Evaluator, ExpressionBudget
from ..specs import WorkflowSpec
from ._invoker import ActionInvoker
from ._observe import NullObserver, RunObserver

FAKE_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)


@runtime_checkable
class Clock(Protocol):
    """Where a run reads the time and waits."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock: UTC wall time and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A virtual clock: sleeping takes no real time, and concurrent sleepers wake in deadline order.

    ``sleep(s)`` registers a wake-up at ``now() + s``. Once every task of the
    event loop is waiting (nothing else is ready to run), the clock jumps to the
    earliest deadline and wakes the sleepers due then, as a real clock would,
    only instantly: a run with delays finishes at once, reads predictable
    times, and concurrent iterations that sleep different amounts finish in the
    order real time would give. ``slept`` lists every sleep, for assertions.

    Work done outside the event loop (an expression evaluated in a worker
    thread) leaves the loop idle while it runs; the interpreter wraps it in
    :meth:`busy` so the clock does not jump past it.
    """

    # When the loop exposes no ready queue to look at, let this many rounds of callbacks run before jumping.
    SETTLE_ROUNDS = 50
    # A task that never stops being ready (busy polling) cannot hold the clock forever.
    MAX_ROUNDS = 10_000

    def __init__(self, start: datetime = FAKE_EPOCH):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._now = start
        self.slept: list[float] = []
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._scheduled = False
        self._busy = 0

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward without sleeping."""
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + timedelta(seconds=max(seconds, 0)), next(self._order), wake))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._advance, loop, 0)
        await wake

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Hold the clock still while the block runs (work that leaves the event loop idle)."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy and self._sleepers and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._advance, asyncio.get_running_loop(), 0)

    def _advance(self, loop: asyncio.AbstractEventLoop, rounds: int) -> None:
        if self._busy:
            self._scheduled = False  # busy() schedules the next jump when the work is done
            return
        ready = getattr(loop, "_ready", None)  # asyncio's own loop; other loops fall back to settling rounds
        busy = len(ready) > 0 if ready is not None else rounds < self.SETTLE_ROUNDS
        if busy and rounds < self.MAX_ROUNDS:
            loop.call_soon(self._advance, loop, rounds + 1)
            return
        self._scheduled = False
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleeps
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            return
        deadline = self._sleepers[0][0]
        self._now = max(self._now, deadline)
        while self._sleepers and self._sleepers[0][0] <= deadline:
            wake = heapq.heappop(self._sleepers)[2]
            if not wake.done():
                wake.set_result(None)
        if self._sleepers:
            self._scheduled = True
            loop.call_soon(self._advance, loop, 0)


def new_id() -> str:
    """A new random id (uuid4, hex form); the default id source."""
    return uuid.uuid4().hex


class SequentialIds:
    """Deterministic ids: ``prefix-1``, ``prefix-2``, ... (tests, dry runs)."""

    def __init__(self, prefix: str = "run"):
        self.prefix = prefix
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"{self.prefix}-{self._next}"


@runtime_checkable
class SecretProvider(Protocol):
    """Gives secret values by name. Raises :class:`~engine.errors.SecretNotFound` for an unknown name."""

    async def get(self, name: str) -> str: ...


class StaticSecrets:
    """Secrets from a mapping (tests, the CLI)."""

    def __init__(self, values: Mapping[str, str] | None = None):
        self._values = dict(values or {})

    async def get(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            raise SecretNotFound(name) from None


WorkflowLookup = Callable[[str, "int | None"], "WorkflowSpec | None | Awaitable[WorkflowSpec | None]"]
"""Finds the workflow a call step names: ``(id, version or None for the latest) -> spec or None``; may be async."""


class WorkflowRegistry:
    """A :data:`WorkflowLookup` over specs held in memory; ``version=None`` gives the highest version."""

    def __init__(self, workflows: Iterable[WorkflowSpec] = ()):
        self._specs: dict[tuple[str, int], WorkflowSpec] = {}
        for spec in workflows:
            self.add(spec)

    def add(self, spec: WorkflowSpec) -> None:
        """Register ``spec`` (replacing the same id and version)."""
        self._specs[(spec.id, spec.version)] = spec

    def __call__(self, workflow_id: str, version: int | None = None) -> WorkflowSpec | None:
        if version is not None:
            return self._specs.get((workflow_id, version))
        versions = [v for (i, v) in self._specs if i == workflow_id]
        return self._specs[(workflow_id, max(versions))] if versions else None


async def lookup_workflow(lookup: WorkflowLookup, workflow_id: str, version: int | None) -> WorkflowSpec | None:
    """Call ``lookup``, awaiting it when it is async."""
    found: Any = lookup(workflow_id, version)
    if inspect.isawaitable(found):
        found = await found
    return found


@dataclass(frozen=True)
class EventWait:
    """What a ``wait`` step asks its :class:`EventWaiter` for: the next event of ``source`` (and
    ``trigger``) whose payload holds ``match`` (rendered), within ``timeout`` seconds. ``topic``
    names the wait within the run (its sequence number), stable when the run is resumed."""

    run_id: str
    seq: str
    step_id: str
    step_path: str
    source: str
    trigger: str | None
    match: dict[str, Any]
    timeout: float

    @property
    def topic(self) -> str:
        return f"wait:{self.seq}"


class EventWaiter(Protocol):
    """Waits for events on behalf of ``wait`` steps (a durable Long execution's worker)."""

    async def wait(self, request: EventWait) -> dict[str, Any] | None:
        """The matching event as ``{"event_id", "payload"}``, or None when ``request.timeout`` passed."""
        ...


class NoEventWaiter:
    """The default: nothing here can wait for an event (an inline run, a dry run)."""

    async def wait(self, request: EventWait) -> dict[str, Any] | None:
        from ..errors import WaitUnavailable

        raise WaitUnavailable(request.run_id, request.step_id, "waiting for an event needs a durable Long execution "
                                                               "(tier: long, run by a worker)")


@dataclass(frozen=True)
class Dependencies:
    """Everything nondeterministic or external a run uses, injected.

    Args:
        invoker: calls connector actions (the HTTP executor, a sandbox, a test app).
        clock: time and waiting; :class:`SystemClock` by default.
        ids: makes run ids; uuid4 by default, :class:`SequentialIds` in tests.
        random: seeds each run's ``$random()``; seed it (``random.Random(7)``) for repeatable runs.
        secrets: secret values by name; nothing by default.
        workflows: finds workflows that call steps run; none by default.
        observer: told about each step start, finish, retry and failure and each HTTP trace, in order
            (see ``engine.workflow._observe``); ignores them by default.
        budget: what all the expression evaluations of one run may use together (CPU time, depth,
            sizes); exceeding it fails the run with ``ExpressionBudgetExceeded``.
        evaluator: where expressions are parsed (once per text, in its bounded cache) and evaluated
            (off the event loop); the process's shared cache and the loop's default executor by
            default. A long-lived caller builds one and passes it to every run.
        waiter: answers ``wait`` steps (:class:`EventWaiter`); by default they fail with
            ``WaitUnavailable`` (only a durable Long execution waits).
        sequential: run foreach iterations one at a time whatever their ``concurrency``, so that the
            run makes its action calls in the same order every time it is run from its record
            (a durable run resumed after a lost worker matches calls to recorded steps by order).
    """

    invoker: ActionInvoker
    clock: Clock = field(default_factory=SystemClock)
    ids: Callable[[], str] = new_id
    random: _random.Random = field(default_factory=_random.Random)
    secrets: SecretProvider = field(default_factory=StaticSecrets)
    workflows: WorkflowLookup = field(default_factory=WorkflowRegistry)
    observer: RunObserver = field(default_factory=NullObserver)
    budget: ExpressionBudget = field(default_factory=ExpressionBudget)
    evaluator: Evaluator = field(default_factory=Evaluator)
    sequential: bool = False
    waiter: EventWaiter = field(default_factory=NoEventWaiter)
