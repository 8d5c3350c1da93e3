"""/v1 routes: agent threads and their runs, streamed over Server-Sent Events.

A thread is a conversation with one graph (``agents.Threads``). Posting a message or resuming an
interrupt starts a run (202) and answers at once; the run's events stream from
``GET .../runs/{run_id}/events`` as SSE whose ``id:`` is the event's sequence number in the run: a
client that lost its connection sends ``Last-Event-ID`` (or ``?after=``) and gets every later
event exactly once. The stream ends after the run's ``done``, ``error`` or ``interrupt``.

Permissions: ``agents:read`` to read threads, runs, events and state; ``agents:write`` to create
a thread; ``agents:execute`` to post, resume and cancel. Another organization's thread or run is
a 404, like a missing one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, Header, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

import agents
import store
from api._auth import Principal, require
from api._deps import ThreadsDep
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router

router = make_router("threads")

# Seconds between SSE comment lines that keep an idle stream's proxies from closing it.
PING_SECONDS = 15
MAX_TITLE = 200
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
RunStatus = Literal["pending", "running", "interrupted", "completed", "failed", "cancelled"]


class ThreadIn(BaseModel):
    graph: str = Field("home", max_length=64, description="The graph the thread talks to (see `graphs` in errors).")
    title: str = Field("", max_length=MAX_TITLE, description="Default: the start of the first message.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form labels of the caller's.")


class ThreadOut(BaseModel):
    id: str
    graph: str
    title: str
    status: ThreadStatus = Field(description="busy: a run is going; interrupted: a run awaits a resume.")
    metadata: dict[str, Any]
    customer_id: str | None = Field(description="The customer the thread's agents act for (from "
                                                "x-fastn-account-tenant-id when it was created).")
    actor_type: str
    actor_id: str
    created_at: datetime
    updated_at: datetime


class MessageIn(BaseModel):
    content: str = Field(min_length=1, max_length=agents.MAX_MESSAGE_CHARS, description="The builder's message.",
                         pattern=r"\S")


class ResumeIn(BaseModel):
    resume: Any = Field(description="The answer to the interrupt, e.g. {\"action\": \"approve\"} or "
                                    "{\"action\": \"reject\", \"comments\": \"...\"}.")


class RunOut(BaseModel):
    id: str
    thread_id: str
    kind: Literal["message", "resume"]
    status: RunStatus
    input: dict[str, Any]
    error: dict[str, Any] | None = Field(description="code and message of a failed run.")
    usage: dict[str, Any] = Field(description="Token usage of the run's model calls (input, output, total, calls).")
    actor_type: str
    actor_id: str
    created_at: datetime
    finished_at: datetime | None
    events_url: str = Field(description="Where the run's events stream (SSE).")


class CheckpointOut(BaseModel):
    values: dict[str, Any] = Field(description="The graph's state; messages as {type, id, content, tool_calls, ...}.")
    next: list[str] = Field(description="The nodes that run next (empty when the graph has ended).")
    interrupts: list[dict[str, Any]] = Field(description="Interrupts awaiting a resume: {id, value}.")
    checkpoint_id: str | None
    parent_checkpoint_id: str | None
    step: int | None
    source: str | None
    created_at: str | None


def _run_out(run: dict[str, Any]) -> dict[str, Any]:
    return run | {"events_url": f"/v1/threads/{run['thread_id']}/runs/{run['id']}/events"}


@router.post("/threads", name="thread.create", status_code=201, response_model=ThreadOut)
async def create_thread(threads: ThreadsDep, principal: Annotated[Principal, require("agents", "write")],
                        body: ThreadIn) -> Any:
    """Create a thread with one graph; it is idle until a message is posted."""
    if body.graph not in threads.graphs:
        raise RequestValidationError([{"loc": ("body", "graph"), "type": "value_error",
                                       "msg": f"is not a graph; graphs are {', '.join(threads.graphs)}"}])
    return await threads.create(principal, graph=body.graph, title=body.title, metadata=body.metadata,
                                customer_id=principal.customer_id)


@router.get("/threads", name="thread.list", response_model=PageOut[ThreadOut])
async def list_threads(
    threads: ThreadsDep,
    principal: Annotated[Principal, require("agents", "read")],
    page: ListParams,
    mine: Annotated[bool, Query(description="Only the threads the caller created.")] = False,
    graph: Annotated[str | None, Query(max_length=64)] = None,
    status: ThreadStatus | None = None,
) -> Any:
    """The organization's threads, newest first (sort: created_at, updated_at)."""
    return page_out(await threads.list(principal, page.query("-created_at"), mine=mine, graph=graph, status=status), dict)


@router.get("/threads/{thread_id}", name="thread.get", response_model=ThreadOut)
async def get_thread(thread_id: str, threads: ThreadsDep, principal: Annotated[Principal, require("agents", "read")]) -> Any:
    """One thread."""
    return await threads.get(principal, thread_id)


@router.get("/threads/{thread_id}/state", name="thread.state", response_model=CheckpointOut)
async def thread_state(thread_id: str, threads: ThreadsDep, principal: Annotated[Principal, require("agents", "read")]) -> Any:
    """The thread's current state from its checkpoints: messages, next nodes, pending interrupts."""
    return await threads.state(principal, thread_id)


@router.get("/threads/{thread_id}/history", name="thread.history", response_model=list[CheckpointOut])
async def thread_history(
    thread_id: str, threads: ThreadsDep, principal: Annotated[Principal, require("agents", "read")],
    limit: Annotated[int, Query(ge=1, le=store.MAX_LIMIT, description="Checkpoints to return.")] = 10,
) -> Any:
    """The thread's checkpoints, newest first."""
    return await threads.history(principal, thread_id, limit=limit)


@router.post("/threads/{thread_id}/messages", name="run.create", status_code=202, response_model=RunOut)
async def post_message(thread_id: str, threads: ThreadsDep, principal: Annotated[Principal, require("agents", "execute")],
                       body: MessageIn) -> Any:
    """Post a message: starts a run of the thread's graph and answers at once (202); stream the
    run from ``events_url``. 409 ``thread_busy`` while another run of the thread goes on."""
    return _run_out(await threads.post_message(principal, thread_id, body.content))


@router.post("/threads/{thread_id}/resume", name="run.resume", status_code=202, response_model=RunOut)
async def resume_thread(thread_id: str, threads: ThreadsDep, principal: Annotated[Principal, require("agents", "execute")],
                        body: Annotated[ResumeIn, Body(examples=[{"resume": {"action": "approve"}}])]) -> Any:
    """Answer the thread's interrupt: starts a run that goes on from it (202). 409
    ``thread_not_interrupted`` for a thread that awaits no answer."""
    return _run_out(await threads.resume(principal, thread_id, body.resume))


@router.get("/threads/{thread_id}/runs", name="run.list", response_model=PageOut[RunOut])
async def list_runs(thread_id: str, threads: ThreadsDep, principal: Annotated[Principal, require("agents", "read")],
                    page: ListParams) -> Any:
    """The thread's runs, newest first (sort: created_at)."""
    return page_out(await threads.runs(principal, thread_id, page.query("-created_at")), _run_out)


@router.get("/threads/{thread_id}/runs/{run_id}", name="run.get", response_model=RunOut)
async def get_run(thread_id: str, run_id: str, threads: ThreadsDep,
                  principal: Annotated[Principal, require("agents", "read")]) -> Any:
    """One run: status, error, token usage."""
    return _run_out(await threads.run(principal, thread_id, run_id))


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", name="run.cancel", response_model=RunOut)
async def cancel_run(thread_id: str, run_id: str, threads: ThreadsDep,
                     principal: Annotated[Principal, require("agents", "execute")]) -> Any:
    """Cancel a pending or running run; answers once it has stopped (``cancelled``, the thread
    idle). 409 ``run_not_active`` for a run that is over."""
    return _run_out(await threads.cancel(principal, thread_id, run_id))


def _last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise RequestValidationError([{"loc": ("header", "Last-Event-ID"), "type": "value_error",
                                       "msg": "must be the id of an event of this stream (a whole number)"}])
    return int(value)


@router.get(
    "/threads/{thread_id}/runs/{run_id}/events",
    name="run.events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": (
        "Server-Sent Events: `event:` is the type (token, tool_call, tool_result, step, interrupt, usage, done, "
        "error), `id:` its sequence number in the run, `data:` a JSON object.")}},
)
async def run_events(
    thread_id: str,
    run_id: str,
    threads: ThreadsDep,
    principal: Annotated[Principal, require("agents", "read")],
    after: Annotated[int | None, Query(ge=0, description="Send the events after this sequence number.")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description=(
        "The id of the last event received (an EventSource sends it when it reconnects); wins over `after`."))] = None,
) -> Any:
    """Stream the run's events (SSE), live while it goes on, from the start or after
    ``Last-Event-ID`` / ``after``; the stream ends after ``done``, ``error`` or ``interrupt``."""
    start = _last_event_id(last_event_id)
    start = after or 0 if start is None else start
    await threads.run(principal, thread_id, run_id)  # 404 before the stream starts

    async def stream() -> Any:
        async for event in threads.events(principal, thread_id, run_id, after=start):
            yield ServerSentEvent(data=json.dumps(event.data, default=str, separators=(",", ":")),
                                  event=event.type, id=str(event.seq))

    return EventSourceResponse(stream(), ping=PING_SECONDS, headers={"Cache-Control": "no-store"})
