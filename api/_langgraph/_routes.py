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

A run is the Threads service's run (``agents.Threads``: the busy rule, typed events under
/v1/threads, usage, cancellation); the graph's own stream reaches the client through a run tap
(``_service``). Its input is one user message, as a thread takes; ``command`` takes ``resume`` only.

Authentication and errors are the platform's: the /v1 headers (``agents:read`` to read,
``agents:write`` to create a thread, ``agents:execute`` to run), problem+json for every refusal
made before a stream starts (a field this server does not do is a 422 naming it); a failure while
streaming is an ``error`` event.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

import agents
import store
from api._auth import Principal, require
from api._deps import Db, ThreadsDep
from api._langgraph._models import (
    THREAD_ID_PATTERN,
    AssistantOut,
    AssistantSearch,
    HistorySearch,
    RunCreate,
    RunOut,
    ThreadCreate,
    ThreadOut,
    ThreadSearch,
    ThreadStateOut,
)
from api._langgraph._service import END_OF_STREAM, RunTaps, Tap, checkpoint_history, checkpoint_state
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
               "feedback_keys", "config", "context")
# Our run statuses as the LangGraph server names them.
RUN_STATUS = {"pending": "pending", "running": "running", "interrupted": "interrupted", "completed": "success",
              "failed": "error", "cancelled": "interrupted"}

ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN, description="A thread id.")]
Reader = Annotated[Principal, require("agents", "read")]
Writer = Annotated[Principal, require("agents", "write")]
Runner = Annotated[Principal, require("agents", "execute")]


def get_taps(request: Request) -> RunTaps:
    """The run taps of the app's Threads service (see ``_service``)."""
    return request.app.state.langgraph_taps


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
async def create_thread(threads: ThreadsDep, principal: Writer, body: ThreadCreate) -> Any:
    """Create a thread (for ``metadata.graph_id``, else for the graph its first run names)."""
    if body.thread_id is not None:
        raise RequestValidationError([{"loc": ("body", "thread_id"), "type": "value_error",
                                       "msg": "is chosen by the server: create the thread without it"}])
    graph_ref = body.metadata.get("graph_id")
    graph = resolve_graph(graph_ref) if isinstance(graph_ref, str) else "home"
    metadata = {k: v for k, v in body.metadata.items() if k not in ("graph_id", "assistant_id")}
    title = metadata["title"] if isinstance(metadata.get("title"), str) else ""
    row = await threads.create(principal, graph=graph, title=title[:200], metadata=metadata,
                               customer_id=principal.customer_id)
    return thread_out(row)


@router.post(PREFIX + "/threads/search", name="langgraph_thread.search", response_model=list[ThreadOut])
async def search_threads(threads: ThreadsDep, principal: Reader, body: ThreadSearch) -> Any:
    """The organization's threads, newest first, filtered by status, metadata and ids."""
    wanted = body.offset + body.limit
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < wanted:
        page = await threads.list(principal, store.ListQuery(limit=store.MAX_LIMIT, cursor=cursor, sort="-created_at"),
                                  status=body.status)
        for row in page.items:
            if not visible(row, principal) or (body.ids is not None and row["id"] not in body.ids):
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
async def get_thread(db: Db, threads: ThreadsDep, principal: Reader, thread_id: ThreadId) -> Any:
    """One thread with its latest values and pending interrupts."""
    row = await in_thread(_get_thread, db, principal, thread_id)
    snapshot = await checkpoint_state(threads, principal, row)
    interrupts = {task.id: jsonable(task.interrupts) for task in snapshot.tasks if task.interrupts}
    return thread_out(row, jsonable(snapshot.values), interrupts)


@router.get(PREFIX + "/threads/{thread_id}/state", name="langgraph_thread.state", response_model=ThreadStateOut)
async def get_thread_state(db: Db, threads: ThreadsDep, principal: Reader, thread_id: ThreadId) -> Any:
    """The thread's latest state: values, the nodes to run next, pending interrupts."""
    row = await in_thread(_get_thread, db, principal, thread_id)
    snapshot = await checkpoint_state(threads, principal, row)
    return thread_state(snapshot, row["id"], {"graph_id": row["graph"], "assistant_id": assistant_id(row["graph"])})


@router.post(PREFIX + "/threads/{thread_id}/history", name="langgraph_thread.history",
             response_model=list[ThreadStateOut])
async def get_thread_history(db: Db, threads: ThreadsDep, principal: Reader, thread_id: ThreadId,
                             body: HistorySearch) -> Any:
    """The thread's checkpoints as states, newest first."""
    row = await in_thread(_get_thread, db, principal, thread_id)
    refused = [name for name in ("before", "checkpoint", "metadata") if getattr(body, name) not in (None, {})]
    if refused:
        raise RequestValidationError([{"loc": ("body", name), "type": "value_error",
                                       "msg": "is not supported by this server"} for name in refused])
    extra = {"graph_id": row["graph"], "assistant_id": assistant_id(row["graph"])}
    return [thread_state(snapshot, row["id"], extra)
            for snapshot in await checkpoint_history(threads, principal, row, body.limit)]


@router.delete(PREFIX + "/threads/{thread_id}", name="langgraph_thread.delete", status_code=204)
async def delete_thread(db: Db, threads: ThreadsDep, principal: Writer, thread_id: ThreadId) -> Response:
    """Delete the thread with its runs and checkpoints (a run going on is cancelled first)."""
    await in_thread(_get_thread, db, principal, thread_id)
    await threads.delete(principal, thread_id)
    return Response(status_code=204)


# -- runs ---------------------------------------------------------------------------------------


def _modes(body: RunCreate) -> list[str]:
    modes = [body.stream_mode] if isinstance(body.stream_mode, str) else list(body.stream_mode)
    return modes or ["values"]


def _check(body: RunCreate) -> None:
    """Refuse (422, by name) what the client may send and this server does not do."""
    errors = [{"loc": ("body", name), "msg": "is not supported by this server", "type": "value_error"}
              for name in UNSUPPORTED if getattr(body, name) not in (None, [], {})]
    if body.stream_resumable:
        errors.append({"loc": ("body", "stream_resumable"), "type": "value_error", "msg": (
            "is not supported here: GET /v1/threads/{thread_id}/runs/{run_id}/events resumes a run's "
            "events with Last-Event-ID")})
    if body.if_not_exists == "create":
        errors.append({"loc": ("body", "if_not_exists"), "type": "value_error",
                       "msg": "threads are created first (POST /threads): only 'reject' is supported"})
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


def _user_message(input: Mapping[str, Any]) -> str:
    """The text of the one user message a run's input carries (what a thread takes)."""
    messages = input.get("messages")
    if set(input) == {"messages"} and isinstance(messages, list) and len(messages) == 1 \
            and isinstance(messages[0], dict) and isinstance(messages[0].get("content"), str) \
            and (messages[0].get("role") in ("user", "human") or messages[0].get("type") == "human") \
            and 0 < len(messages[0]["content"].strip()) and len(messages[0]["content"]) <= agents.MAX_MESSAGE_CHARS:
        return messages[0]["content"]
    raise RequestValidationError([{"loc": ("body", "input"), "type": "value_error", "msg": (
        f'must be one user message of 1 to {agents.MAX_MESSAGE_CHARS} characters: '
        '{"messages": [{"role": "user", "content": "..."}]}')}])


def _bind_graph(db: store.Database, principal: Principal, thread_id: str, graph: str) -> dict[str, Any]:
    """The thread, bound to ``graph``: a thread runs one graph, the one of its creation or, for a
    thread that never ran, the one its first run names (409 for another)."""
    with tenant_tx(db, principal) as tx:
        threads = store.Threads(tx)
        thread = _thread(threads, principal, thread_id, lock=True)
        if thread["graph"] == graph:
            return thread
        if threads.list_runs(principal.org_id, thread_id, store.ListQuery(limit=1)).items:
            raise store.Conflict("thread", "graph", f"thread {thread_id!r} runs graph {thread['graph']!r}, not {graph!r}")
        threads.set_graph(principal.org_id, thread_id, graph)
        return {**thread, "graph": graph}


async def _prepare(db: store.Database, principal: Principal, thread_id: str, body: RunCreate) -> tuple[str, str | None]:
    """Check the run request and bind the thread to its graph; returns the graph and the message."""
    _check(body)
    graph = resolve_graph(body.assistant_id)
    content = _user_message(body.input) if body.input is not None else None
    await in_thread(_bind_graph, db, principal, thread_id, graph)
    return graph, content


async def _launch(threads: agents.Threads, principal: Principal, thread_id: str, body: RunCreate,
                  content: str | None) -> dict[str, Any]:
    """Start the run (a resume for a command); returns the run."""
    if body.command is not None:
        return await threads.resume(principal, thread_id, body.command.resume)
    return await threads.post_message(principal, thread_id, content or "")


def run_out(row: Mapping[str, Any], graph: str) -> dict[str, Any]:
    """A thread_runs row as the server's ``Run``."""
    return {"run_id": row["id"], "thread_id": row["thread_id"], "assistant_id": assistant_id(graph),
            "created_at": row["created_at"], "updated_at": row["finished_at"] or row["created_at"],
            "status": RUN_STATUS[row["status"]], "metadata": {"kind": row["kind"]}, "multitask_strategy": "reject"}


def _run_error(run: Mapping[str, Any]) -> dict[str, str] | None:
    """The ``error`` event of a run that failed (its recorded error), or None."""
    if run["status"] != "failed":
        return None
    error = run.get("error") or {}
    return {"error": str(error.get("code", "run_failed")), "message": str(error.get("message", "the run failed"))}


async def _parts(threads: agents.Threads, principal: Principal, thread_id: str, run: Mapping[str, Any],
                 tap: Tap) -> AsyncIterator[Any]:
    """The graph parts of the run from its tap, until the graph's stream ends and the run is over;
    the last item is the finished run row."""
    finished = asyncio.ensure_future(threads.wait(principal, thread_id, run["id"]))
    try:
        streaming = True
        while streaming:
            # A graph that fails before it streams (or a run cancelled first) ends without a part.
            got = asyncio.ensure_future(tap.parts.get())
            await asyncio.wait({got, finished}, return_when=asyncio.FIRST_COMPLETED)
            if not got.done():
                got.cancel()
                while not tap.parts.empty():
                    part = tap.parts.get_nowait()
                    if part is not END_OF_STREAM:
                        yield part
                break
            part = got.result()
            if part is END_OF_STREAM:
                streaming = False
            else:
                yield part
        yield await finished
    finally:
        finished.cancel()


@router.post(PREFIX + "/threads/{thread_id}/runs/stream", name="langgraph_run.stream",
             responses={200: {"description": "Server-sent events of the run, per stream mode.",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def stream_run(db: Db, threads: ThreadsDep, taps: Annotated[RunTaps, Depends(get_taps)], principal: Runner,
                     thread_id: ThreadId, body: RunCreate) -> Any:
    """Start a run on the thread and stream it (stream_mode values, updates, messages, ...)."""
    await in_thread(_get_thread, db, principal, thread_id)  # another organization's thread: 404 first
    encoder = StreamEncoder(_modes(body), {"thread_id": thread_id})
    graph, content = await _prepare(db, principal, thread_id, body)
    tap = taps.open(principal.org_id, thread_id, encoder.graph_modes)
    try:
        run = await _launch(threads, principal, thread_id, body, content)
    except BaseException:
        taps.close(tap)
        raise
    encoder.metadata.update({"run_id": run["id"], "graph_id": graph, "assistant_id": assistant_id(graph)})

    async def events() -> AsyncIterator[ServerSentEvent]:
        finished = None
        try:
            yield ServerSentEvent(_json({"run_id": run["id"], "attempt": 1}), event="metadata")
            async for item in _parts(threads, principal, thread_id, run, tap):
                if isinstance(item, dict):
                    finished = item
                    continue
                if item[0] and not body.stream_subgraphs:
                    continue  # a subgraph's part: only for a client that asked for them
                for event, data in encoder.encode(*item):
                    yield ServerSentEvent(_json(data), event=event)
            error = _run_error(finished or {})
            if error is not None:
                yield ServerSentEvent(_json(error), event="error")
            else:
                yield ServerSentEvent(_json(None), event="end")
        finally:
            taps.close(tap)
            if finished is None and body.on_disconnect == "cancel":
                # The client went away: the run stops too (by default it goes on, as a thread's would).
                await asyncio.shield(_cancel(threads, principal, thread_id, run["id"]))

    return EventSourceResponse(events(), headers={"Content-Location": f"/v1{PREFIX}/threads/{thread_id}/runs/{run['id']}"})


async def _cancel(threads: agents.Threads, principal: Principal, thread_id: str, run_id: str) -> None:
    try:
        await threads.cancel(principal, thread_id, run_id)
    except agents.RunNotActive:
        pass  # it ended meanwhile


@router.post(PREFIX + "/threads/{thread_id}/runs/wait", name="langgraph_run.wait")
async def wait_run(db: Db, threads: ThreadsDep, principal: Runner, thread_id: ThreadId, body: RunCreate) -> Any:
    """Run on the thread until it ends or waits at an interrupt; answers with the last state values."""
    await in_thread(_get_thread, db, principal, thread_id)  # another organization's thread: 404 first
    _graph, content = await _prepare(db, principal, thread_id, body)
    run = await _launch(threads, principal, thread_id, body, content)  # no tap: the answer is the state it leaves
    finished = await threads.wait(principal, thread_id, run["id"])
    error = _run_error(finished)
    if error is not None:
        return {"__error__": error}
    row = await in_thread(_get_thread, db, principal, thread_id)
    snapshot = await checkpoint_state(threads, principal, row)
    values = jsonable(snapshot.values)
    if snapshot.interrupts:
        values["__interrupt__"] = jsonable(snapshot.interrupts)
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


@router.post(PREFIX + "/threads/{thread_id}/runs/{run_id}/cancel", name="langgraph_run.cancel", response_model=RunOut)
async def cancel_run(db: Db, threads: ThreadsDep, principal: Runner, thread_id: ThreadId,
                     run_id: Annotated[str, Path(max_length=100)],
                     action: Annotated[Literal["interrupt"], Query(description=(
                         "interrupt: stop the run; what it did stays in its checkpoints (rollback is "
                         "not supported)."))] = "interrupt") -> Any:
    """Cancel a pending or running run (409 when it is over); answers with the run once it stopped."""
    thread = await in_thread(_get_thread, db, principal, thread_id)
    return run_out(await threads.cancel(principal, thread_id, run_id), thread["graph"])
