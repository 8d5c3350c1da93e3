"""/v1/langgraph: the assistants, threads and runs routes of the LangGraph server API, so the
official ``langgraph-sdk`` client works against the platform:
``get_client(url=<server>/v1/langgraph, headers=<the platform's headers>)``.

* Assistants are the graphs, one each: ``assistant_id`` is stable per graph (a UUID derived from
  its name; the name itself is accepted too), ``graph_id`` the graph's name. They are the same for
  every organization and not stored.
* Threads are our threads (the same ids under /v1/threads), scoped to the caller's organization:
  another organization's thread is a 404 like a missing one. A thread runs one graph: the one
  named at creation (``metadata.graph_id``) or by its first run.
* Runs stream over SSE with the server's events per stream mode (see ``_wire``), and resume an
  interrupt with ``command: {"resume": ...}``. ``runs/wait`` answers with the final state.

Authentication and errors are the platform's: the /v1 headers (``agents:read`` to read,
``agents:execute`` to create threads and run), problem+json for every refusal made before a
stream starts; a failure while streaming is an ``error`` event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

import agents
import store
from api._auth import Principal, require
from api._deps import Db
from api._langgraph._models import (
    THREAD_ID_PATTERN,
    AssistantOut,
    AssistantSearch,
    RunCreate,
    RunOut,
    ThreadCreate,
    ThreadOut,
    ThreadSearch,
    ThreadStateOut,
)
from api._langgraph._service import LangGraphThreads, RunStart, create_thread_row, graph_input
from api._langgraph._wire import StreamEncoder, jsonable, thread_state
from api._v1._common import in_thread, router as make_router, tenant_tx

PREFIX = "/langgraph"
router = make_router("langgraph")

# Assistant ids: uuid5 of the graph's name in a namespace of ours, so they never change.
ASSISTANT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:switchboard:langgraph:assistant")
# The graphs are the code's, not rows: they have no creation time of their own to show.
GRAPHS_SINCE = datetime(2026, 1, 1, tzinfo=UTC)
# Fields of a run request this server does not do, refused by name when set.
UNSUPPORTED = ("interrupt_before", "interrupt_after", "checkpoint", "checkpoint_id", "webhook", "after_seconds",
               "feedback_keys")
# Our run statuses as the LangGraph server names them.
RUN_STATUS = {"pending": "pending", "running": "running", "interrupted": "interrupted", "completed": "success",
              "failed": "error", "cancelled": "interrupted"}

ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN, description="A thread id.")]
Reader = Annotated[Principal, require("agents", "read")]
Runner = Annotated[Principal, require("agents", "execute")]


def get_langgraph(request: Request) -> LangGraphThreads:
    """The protocol's threads and runs over the app's platform (built once per app)."""
    service = getattr(request.app.state, "langgraph", None)
    if service is None or service.platform is not request.app.state.platform:
        factory = getattr(request.app.state, "graph_factory", None)
        service = LangGraphThreads(request.app.state.platform, factory)
        request.app.state.langgraph = service
    return service


# -- assistants ---------------------------------------------------------------------------------


def assistant_id(graph: str) -> str:
    """The stable assistant id of ``graph``."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph))


def assistant(graph: str) -> dict[str, Any]:
    """The assistant of ``graph``."""
    return {"assistant_id": assistant_id(graph), "graph_id": graph, "name": graph, "description": None,
            "config": {}, "context": {}, "metadata": {"created_by": "system"}, "version": 1,
            "created_at": GRAPHS_SINCE, "updated_at": GRAPHS_SINCE}


def resolve_graph(ref: str) -> str:
    """The graph an assistant id (or a graph's name) names; 404 otherwise."""
    for graph in agents.GRAPHS:
        if ref in (graph, assistant_id(graph)):
            return graph
    raise store.NotFound("assistant", ref)


@router.post(PREFIX + "/assistants/search", name="langgraph_assistant.search", response_model=list[AssistantOut])
def search_assistants(principal: Reader, body: AssistantSearch) -> Any:
    """Assistants, one per graph, filtered by graph, name (substring) and metadata."""
    found = [assistant(graph) for graph in agents.GRAPHS]
    if body.graph_id:
        found = [a for a in found if a["graph_id"] == body.graph_id]
    if body.name:
        found = [a for a in found if body.name.lower() in a["name"].lower()]
    if body.metadata:
        found = [a for a in found if all(a["metadata"].get(k) == v for k, v in body.metadata.items())]
    return found[body.offset:body.offset + body.limit]


@router.post(PREFIX + "/assistants/count", name="langgraph_assistant.count", response_model=int)
def count_assistants(principal: Reader, body: AssistantSearch) -> Any:
    """How many assistants the search would find (without paging)."""
    return len(search_assistants(principal, body.model_copy(update={"limit": 1000, "offset": 0})))


# The same for every organization, so not among the document's tenant routes (the cross-tenant walk
# expects another organization's ids to be 404s).
@router.get(PREFIX + "/assistants/{assistant_id}", name="langgraph_assistant.get", response_model=AssistantOut,
            include_in_schema=False)
def get_assistant(principal: Reader, assistant_id: Annotated[str, Path(max_length=100)]) -> Any:
    """One assistant, by id or graph name."""
    return assistant(resolve_graph(assistant_id))


# -- threads ------------------------------------------------------------------------------------


def thread_out(row: Mapping[str, Any], values: Any = None, interrupts: Any = None) -> dict[str, Any]:
    """A thread row as the server's ``Thread``."""
    return {"thread_id": row["id"], "created_at": row["created_at"], "updated_at": row["updated_at"],
            "metadata": {**row["metadata"], "graph_id": row["graph"], "assistant_id": assistant_id(row["graph"])},
            "status": row["status"], "values": values, "interrupts": interrupts or {}, "config": {}}


def visible(row: Mapping[str, Any], principal: Principal) -> bool:
    """Whether the caller sees the thread: any of the organization's, or only its customer's when
    the request acts for one (a key bound to a customer, or the customer header)."""
    return principal.customer_id is None or row["customer_id"] == principal.customer_id


def _thread(threads: store.Threads, principal: Principal, thread_id: str, *, lock: bool = False) -> dict[str, Any]:
    row = threads.get(principal.org_id, thread_id, lock=lock)
    if not visible(row, principal):
        raise store.NotFound("thread", thread_id)
    return row


def _get_thread(db: store.Database, principal: Principal, thread_id: str) -> dict[str, Any]:
    with tenant_tx(db, principal) as tx:
        return _thread(store.Threads(tx), principal, thread_id)


@router.post(PREFIX + "/threads", name="langgraph_thread.create", response_model=ThreadOut)
def create_thread(db: Db, principal: Runner, body: ThreadCreate) -> Any:
    """Create a thread (for ``metadata.graph_id``, else for the graph its first run names)."""
    graph_ref = body.metadata.get("graph_id")
    graph = resolve_graph(graph_ref) if isinstance(graph_ref, str) else "home"
    metadata = {k: v for k, v in body.metadata.items() if k not in ("graph_id", "assistant_id")}
    with tenant_tx(db, principal) as tx:
        row = create_thread_row(tx, principal, thread_id=body.thread_id, graph=graph, metadata=metadata,
                                if_exists=body.if_exists)
    return thread_out(row)


@router.post(PREFIX + "/threads/search", name="langgraph_thread.search", response_model=list[ThreadOut])
def search_threads(db: Db, principal: Reader, body: ThreadSearch) -> Any:
    """The organization's threads, newest first, filtered by status, metadata and ids."""
    wanted = body.offset + body.limit
    found: list[dict[str, Any]] = []
    cursor = None
    with tenant_tx(db, principal) as tx:
        threads = store.Threads(tx)
        while len(found) < wanted:
            page = threads.list(principal.org_id, store.ListQuery(limit=store.MAX_LIMIT, cursor=cursor,
                                                                  sort="-created_at"), status=body.status)
            for row in page.items:
                if not visible(row, principal):
                    continue
                if body.ids is not None and row["id"] not in body.ids:
                    continue
                metadata = thread_out(row)["metadata"]
                if body.metadata and any(metadata.get(k) != v for k, v in body.metadata.items()):
                    continue
                found.append(row)
            cursor = page.next_cursor
            if cursor is None:
                break
    return [thread_out(row) for row in found[body.offset:wanted]]


@router.get(PREFIX + "/threads/{thread_id}", name="langgraph_thread.get", response_model=ThreadOut)
async def get_thread(db: Db, principal: Reader, thread_id: ThreadId, request: Request) -> Any:
    """One thread with its latest values and pending interrupts."""
    row = await in_thread(_get_thread, db, principal, thread_id)
    snapshot = await get_langgraph(request).checkpoint_state(principal, row)
    interrupts: dict[str, list[Any]] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            interrupts[task.id] = jsonable(task.interrupts)
    return thread_out(row, jsonable(snapshot.values), interrupts)


@router.get(PREFIX + "/threads/{thread_id}/state", name="langgraph_thread.state", response_model=ThreadStateOut)
async def get_thread_state(db: Db, principal: Reader, thread_id: ThreadId, request: Request) -> Any:
    """The thread's latest state: values, the nodes to run next, pending interrupts."""
    row = await in_thread(_get_thread, db, principal, thread_id)
    snapshot = await get_langgraph(request).checkpoint_state(principal, row)
    return thread_state(snapshot, row["id"], {"graph_id": row["graph"], "assistant_id": assistant_id(row["graph"])})


# -- runs ---------------------------------------------------------------------------------------


def _modes(body: RunCreate) -> list[str]:
    modes = [body.stream_mode] if isinstance(body.stream_mode, str) else list(body.stream_mode)
    return modes or ["values"]


def _check(body: RunCreate) -> None:
    """Refuse (422, by name) what the client may send and this server does not do."""
    errors = [{"loc": ("body", name), "msg": "is not supported by this server", "type": "value_error"}
              for name in UNSUPPORTED if getattr(body, name) not in (None, [], {})]
    if body.multitask_strategy not in (None, "reject"):
        errors.append({"loc": ("body", "multitask_strategy"), "type": "value_error",
                       "msg": "only 'reject' is supported: a busy thread answers 409"})
    if (body.input is None) == (body.command is None):
        errors.append({"loc": ("body", "input"), "type": "value_error",
                       "msg": "give either input (a new message) or command (a resume), not both or neither"})
    if body.command is not None:
        if body.command.update is not None or body.command.goto is not None:
            errors.append({"loc": ("body", "command"), "type": "value_error",
                           "msg": "only command.resume is supported"})
        if body.command.resume is None:
            errors.append({"loc": ("body", "command", "resume"), "type": "value_error",
                           "msg": "is required: the answer to the pending interrupt"})
    if errors:
        raise RequestValidationError(errors)


def _start(db: store.Database, principal: Principal, service: LangGraphThreads, thread_id: str,
           body: RunCreate) -> RunStart:
    graph = resolve_graph(body.assistant_id)
    resume = body.command is not None
    run_input = {"command": {"resume": body.command.resume}} if body.command is not None else {"input": body.input}
    with tenant_tx(db, principal) as tx:
        if body.if_not_exists == "create":
            create_thread_row(tx, principal, thread_id=thread_id, graph=graph, metadata={}, if_exists="do_nothing")
        return service.start_run(tx, principal, thread_id, graph, resume=resume, run_input=jsonable(run_input),
                                 graph_input=graph_input(body.input, body.command.resume if resume else None, resume))


def run_out(row: Mapping[str, Any], graph: str) -> dict[str, Any]:
    """A thread_runs row as the server's ``Run``."""
    return {"run_id": row["id"], "thread_id": row["thread_id"], "assistant_id": assistant_id(graph),
            "created_at": row["created_at"], "updated_at": row["finished_at"] or row["created_at"],
            "status": RUN_STATUS[row["status"]], "metadata": {"kind": row["kind"]}, "multitask_strategy": "reject"}


def _error_event(exc: Exception) -> dict[str, str]:
    # Our errors build their message from typed fields (no secrets); anything else shows its type only.
    if isinstance(getattr(type(exc), "code", None), str):
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": type(exc).__name__, "message": "the run failed; the server log has the details"}


@router.post(PREFIX + "/threads/{thread_id}/runs/stream", name="langgraph_run.stream",
             responses={200: {"description": "Server-sent events of the run, per stream mode.",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def stream_run(db: Db, principal: Runner, thread_id: ThreadId, body: RunCreate, request: Request) -> Any:
    """Start a run on the thread and stream it (stream_mode values, updates, messages, ...)."""
    if body.if_not_exists != "create":
        await in_thread(_get_thread, db, principal, thread_id)  # another organization's thread: 404 first
    _check(body)
    service = get_langgraph(request)
    start = await in_thread(_start, db, principal, service, thread_id, body)
    run_id = start.run["id"]
    encoder = StreamEncoder(_modes(body), {"thread_id": thread_id, "run_id": run_id, "graph_id": start.graph,
                                           "assistant_id": assistant_id(start.graph)})

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(_json({"run_id": run_id, "attempt": 1}), event="metadata")
        try:
            async for namespace, mode, chunk in service.execute(principal, start, encoder.graph_modes,
                                                                subgraphs=body.stream_subgraphs):
                for event, data in encoder.encode(namespace, mode, chunk):
                    yield ServerSentEvent(_json(data), event=event)
        except Exception as exc:
            yield ServerSentEvent(_json(_error_event(exc)), event="error")
            return
        yield ServerSentEvent(_json(None), event="end")

    return EventSourceResponse(events(), headers={"Content-Location": f"/v1{PREFIX}/threads/{thread_id}/runs/{run_id}"})


@router.post(PREFIX + "/threads/{thread_id}/runs/wait", name="langgraph_run.wait")
async def wait_run(db: Db, principal: Runner, thread_id: ThreadId, body: RunCreate, request: Request) -> Any:
    """Run on the thread until it ends or waits at an interrupt; answers with the last state values."""
    if body.if_not_exists != "create":
        await in_thread(_get_thread, db, principal, thread_id)  # another organization's thread: 404 first
    _check(body)
    service = get_langgraph(request)
    start = await in_thread(_start, db, principal, service, thread_id, body)
    values: Any = None
    try:
        async for namespace, mode, chunk in service.execute(principal, start, ["values"], subgraphs=False):
            if mode == "values" and not namespace:
                values = jsonable(chunk)
    except Exception as exc:
        return {"__error__": _error_event(exc)}
    return values


@router.get(PREFIX + "/threads/{thread_id}/runs", name="langgraph_run.list", response_model=list[RunOut])
def list_runs(db: Db, principal: Reader, thread_id: ThreadId,
              limit: Annotated[int, Query(ge=1, le=store.MAX_LIMIT)] = 10) -> Any:
    """The thread's runs, newest first."""
    with tenant_tx(db, principal) as tx:
        threads = store.Threads(tx)
        thread = _thread(threads, principal, thread_id)
        page = threads.list_runs(principal.org_id, thread_id, store.ListQuery(limit=limit, sort="-created_at"))
    return [run_out(row, thread["graph"]) for row in page.items]


@router.get(PREFIX + "/threads/{thread_id}/runs/{run_id}", name="langgraph_run.get", response_model=RunOut)
def get_run(db: Db, principal: Reader, thread_id: ThreadId,
            run_id: Annotated[str, Path(max_length=100)]) -> Any:
    """One run of the thread."""
    with tenant_tx(db, principal) as tx:
        threads = store.Threads(tx)
        thread = _thread(threads, principal, thread_id)
        row = threads.get_run(principal.org_id, thread_id, run_id)
    return run_out(row, thread["graph"])


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
