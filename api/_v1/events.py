"""/v1 routes: Activity's Events view, what arrived to start work (webhook deliveries first).

Scoped like executions: ``workflows:read``; a request naming a customer in
``x-fastn-account-tenant-id`` (and a key bound to one) sees only that customer's events, and a
Test key does not see production customers' events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field

import store
from api._auth import Principal, require
from api._deps import Db
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router

router = make_router("events")

EventSource = Literal["webhook", "schedule", "app_event", "manual", "platform"]
PlatformEventType = Literal["execution.failed", "alert.fired", "alert.resolved", "connection.needs_reconnect"]
EventStatus = Literal["received", "dispatched", "filtered", "refused", "failed"]


class EventOut(BaseModel):
    id: str
    customer_id: str | None = Field(description="Null for an organization-wide platform event (an alert).")
    environment_id: str | None
    source: EventSource = Field(description="What it came from; platform: what the platform itself reports "
                                            "(type says what), delivered to the notification endpoints.")
    type: PlatformEventType | None = Field(None, description="A platform event's type.")
    trigger_id: str | None
    workflow_id: str | None
    webhook_id: str | None = Field(description="The sender's delivery id (webhooks), unique per trigger among "
                                               "accepted events.")
    status: EventStatus = Field(description="received: stored, not yet dispatched; dispatched: its run was "
                                            "started (at most once); filtered: the trigger's filter did not match; "
                                            "refused: not accepted (error says why: a quota, a disabled trigger); "
                                            "failed: its run could not start (error says why).")
    error: dict[str, Any] | None = None
    payload_bytes: int
    execution_ids: list[str] = Field(description="The executions the event started.")
    received_at: datetime
    dispatched_at: datetime | None


class EventDetailOut(EventOut):
    payload: Any = Field(description="The payload as received (JSON).")


def _scope(principal: Principal) -> tuple[str, str | None]:
    return principal.org_id, principal.customer_id


@router.get("/events", name="event.list", response_model=PageOut[EventOut])
def list_events(
    db: Db,
    principal: Annotated[Principal, require("workflows", "read")],
    page: ListParams,
    source: EventSource | None = None,
    status: EventStatus | None = None,
    type: PlatformEventType | None = None,
    trigger: Annotated[str | None, Query(max_length=128, description="Trigger id.")] = None,
    customer: Annotated[str | None, Query(max_length=128, description="Customer id (default: the "
                                                                     "x-fastn-account-tenant-id customer).")] = None,
    after: Annotated[str | None, Query(max_length=128, description=(
        "An event id: only events received after it. Poll with the newest id seen."))] = None,
) -> Any:
    """Events, newest first (sort: received_at), without payloads; filter by ``source``
    (webhook, schedule, app_event, manual, platform), ``status``, ``type`` (a platform event's),
    ``trigger`` and ``customer``.

    To poll for new events, pass the newest event id seen as ``after``: the answer holds only
    events received after it, newest first (follow ``next_cursor`` while there are more than
    ``limit``). Or walk oldest first with ``sort=received_at`` and keep the last page's cursor.
    Events are ordered by the time they were stored, not committed: one stored a moment before
    another can commit after it, so a poller that must miss nothing asks from a slightly older id
    and drops the ids it has seen."""
    with db.tenant(*_scope(principal)) as tx:
        result = store.Events(tx).list(
            principal.org_id, page.query("-received_at"), source=source, status=status, type=type, trigger_id=trigger,
            customer_id=customer or principal.customer_id, hidden_environment=principal.hidden_environment,
            after=after,
        )
    return page_out(result, dict)


@router.get("/events/{event_id}", name="event.get", response_model=EventDetailOut)
def get_event(event_id: str, db: Db, principal: Annotated[Principal, require("workflows", "read")]) -> Any:
    """One event with its payload. Naming a customer in x-fastn-account-tenant-id scopes the request
    to it: another customer's event is then a 404, as is a production customer's for a Test key."""
    with db.tenant(*_scope(principal)) as tx:
        event = store.Events(tx).get(principal.org_id, event_id)
        if principal.hidden_environment and event["environment_id"] is not None:
            environment = store.Environments(tx).get(principal.org_id, event["environment_id"])
            if environment["slug"] == principal.hidden_environment:
                raise store.NotFound("event", event_id)
    return event
