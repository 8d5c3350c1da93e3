"""Request and response bodies of the LangGraph server API, as the ``langgraph-sdk`` client sends
and reads them (langgraph_sdk.schema). Requests ignore the fields the client always sends that
change nothing here; a field that would ask for something this server does not do is refused by
the routes, by name."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api._langgraph._wire import STREAM_MODES

StreamMode = Literal["values", "updates", "messages", "messages-tuple", "custom", "tasks"]
assert set(StreamMode.__args__) == set(STREAM_MODES)  # type: ignore[attr-defined]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
# Our ids and the client's UUIDs both fit; anything else cannot name a thread.
THREAD_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AssistantSearch(_Request):
    graph_id: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class AssistantOut(BaseModel):
    assistant_id: str = Field(description="Stable per graph.")
    graph_id: str = Field(description="The graph's name.")
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


class ThreadCreate(_Request):
    thread_id: str | None = Field(default=None, pattern=THREAD_ID_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(_Request):
    metadata: dict[str, Any] | None = None
    status: ThreadStatus | None = None
    ids: list[str] | None = Field(default=None, max_length=1000)
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class HistorySearch(_Request):
    limit: int = Field(default=10, ge=1, le=1000)
    # Accepted by the client; refused here when set.
    before: Any = None
    checkpoint: Any = None
    metadata: Any = None


class InterruptOut(BaseModel):
    value: Any
    id: str


class ThreadOut(BaseModel):
    thread_id: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    status: ThreadStatus
    values: dict[str, Any] | None = Field(description="The latest state (null in search results).")
    interrupts: dict[str, list[InterruptOut]] = Field(description="Pending interrupts by task id.")
    config: dict[str, Any] = Field(default_factory=dict)


class CheckpointOut(BaseModel):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None
    checkpoint_map: dict[str, Any] | None = None


class TaskOut(BaseModel):
    id: str
    name: str
    error: str | None
    interrupts: list[InterruptOut]
    checkpoint: CheckpointOut | None = None
    state: dict[str, Any] | None = None
    result: Any = None


class ThreadStateOut(BaseModel):
    values: dict[str, Any] | list[Any]
    next: list[str] = Field(description="The nodes that run next (the interrupted one while it waits).")
    checkpoint: CheckpointOut | None
    metadata: dict[str, Any]
    created_at: str | None
    parent_checkpoint: CheckpointOut | None
    tasks: list[TaskOut]
    interrupts: list[InterruptOut]


class CommandIn(_Request):
    resume: Any = Field(default=None, description="The answer to the pending interrupt.")
    update: Any = None
    goto: Any = None


class RunCreate(_Request):
    assistant_id: str = Field(max_length=100, description="An assistant id or a graph's name.")
    input: dict[str, Any] | None = None
    command: CommandIn | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] | None = None
    if_not_exists: Literal["reject", "create"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    # Accepted by the client; refused here when set (see routes: UNSUPPORTED).
    interrupt_before: Any = None
    interrupt_after: Any = None
    checkpoint: Any = None
    checkpoint_id: Any = None
    webhook: Any = None
    after_seconds: Any = None
    feedback_keys: Any = None


class RunOut(BaseModel):
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime
    updated_at: datetime
    status: RunStatus
    metadata: dict[str, Any]
    multitask_strategy: str = "reject"
    kwargs: dict[str, Any] = Field(default_factory=dict)
