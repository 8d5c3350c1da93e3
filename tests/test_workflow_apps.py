"""In-memory fake apps behind the ActionInvoker seam, for the workflow interpreter's unit tests.

Like httpx.MockTransport: a fake of the third-party side, not of our code. The
end-to-end flagship against real sandboxes over HTTP lives elsewhere.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from engine.errors import ActionFailed
from engine.workflow import ActionCall, ActionInvoker, TraceRecord

Handler = Callable[[ActionCall], Awaitable[Any]]


class MemoryApps:
    """Actions served from Python handlers; CRM-like collections kept as lists of dicts.

    Every call is logged in ``calls``; ``in_flight``/``max_in_flight`` count
    concurrent calls; ``latency(call)`` says how many times a call yields to the
    event loop before answering, and ``delay(call)`` how many seconds it sleeps on
    ``clock`` (deterministic stand-ins for network latency).
    """

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Handler] = {}
        self.collections: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[ActionCall] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency: Callable[[ActionCall], int] = lambda call: 0
        self.delay: Callable[[ActionCall], float] = lambda call: 0
        self.clock: Any = None

    def on(self, action: str, handler: Handler) -> None:
        connector, _, name = action.rpartition(".")
        self.handlers[(connector, name)] = handler

    def crm(self, connector: str, collection: str, *, records: list[dict] | None = None, id_field: str = "id",
            paginated: bool = True, list_shape: Callable[[list], Any] | None = None) -> list[dict[str, Any]]:
        """Register ``list_/create_/update_<collection>`` actions over a list of records; return the list."""
        store = self.collections.setdefault(f"{connector}.{collection}", [])
        store.extend(copy.deepcopy(records or []))

        async def list_(call: ActionCall) -> Any:
            items = copy.deepcopy(store)
            if list_shape is not None:
                return list_shape(items)
            return {"items": items, "pages": 1} if paginated and call.paginate else items

        async def create(call: ActionCall) -> Any:
            record = dict(call.input["body"])
            record[id_field] = f"{collection}-{len(store) + 1}"
            store.append(record)
            return copy.deepcopy(record)

        async def update(call: ActionCall) -> Any:
            body = call.input["body"]
            wanted = call.input.get("id", body.get(id_field))
            for record in store:
                if record[id_field] == wanted:
                    record.update(body)
                    return copy.deepcopy(record)
            raise ActionFailed(connector, f"update_{collection}", "PUT", f"https://{connector}.test/{collection}",
                               404, f"no record {wanted}")

        self.on(f"{connector}.list_{collection}", list_)
        self.on(f"{connector}.create_{collection}", create)
        self.on(f"{connector}.update_{collection}", update)
        return store

    def actions(self, action: str) -> list[ActionCall]:
        """The logged calls of ``connector.action``."""
        return [c for c in self.calls if c.qualified_action == action]

    async def invoke(self, call: ActionCall) -> Any:
        self.calls.append(call)
        handler = self.handlers.get((call.connector, call.action))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        status, error = 200, None
        try:
            for _ in range(self.latency(call)):
                await asyncio.sleep(0)
            if self.clock is not None:
                await self.clock.sleep(self.delay(call))
            if handler is None:
                raise ActionFailed(call.connector, call.action, "POST", f"https://{call.connector}.test/{call.action}",
                                   404, "no such action in the fake app")
            return await handler(call)
        except ActionFailed as exc:
            status, error = exc.status, str(exc)
            raise
        finally:
            self.in_flight -= 1
            call.trace.append(TraceRecord(
                run_id=call.run_id, seq=call.seq, step_id=call.step_id, step_path=call.step_path,
                connector=call.connector, action=call.action, method="POST",
                url=f"https://{call.connector}.test/{call.action}", status=status, latency_ms=0.0,
                error=error,
            ))


def echo_app() -> MemoryApps:
    """An app whose ``app.echo`` returns ``{"echo": input}`` and ``app.fail`` always fails."""
    apps = MemoryApps()

    async def echo(call: ActionCall) -> Any:
        return {"echo": call.input}

    async def fail(call: ActionCall) -> Any:
        raise ActionFailed("app", "fail", "POST", "https://app.test/fail", 503, "unavailable")

    apps.on("app.echo", echo)
    apps.on("app.fail", fail)
    return apps


async def test_memory_apps_is_an_action_invoker() -> None:
    apps = echo_app()
    assert isinstance(apps, ActionInvoker)
    store = apps.crm("crm", "people", records=[{"id": "p1", "email": "a@x.test"}])
    assert store[0]["email"] == "a@x.test"
    with pytest.raises(ActionFailed):
        from engine.workflow import TraceSink

        await apps.invoke(ActionCall("r", "1", "s", "s", "app", "fail", {}, False, None, TraceSink()))
