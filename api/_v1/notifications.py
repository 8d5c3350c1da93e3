"""/v1 routes: outbound notification endpoints and their deliveries.

An organization registers endpoints (``settings:write``) subscribed to platform event types;
``runtime.Notifier`` (in every worker) delivers each event to each subscribed endpoint, signed per
Standard Webhooks with the endpoint's secret, retried with backoff, every attempt recorded. The
secret is returned once, by the create call, and stored encrypted; so that call takes no
Idempotency-Key (a stored response would keep the secret in plaintext).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

import store
from api._auth import Principal, require
from api._deps import Db, Encryptor
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import tenant_tx

router = make_router("notifications")

EventType = Literal["execution.failed", "alert.fired", "alert.resolved", "connection.needs_reconnect"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return store.check_endpoint_url(value)
    except store.InvalidInput as exc:
        raise ValueError(exc.reason) from None


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048, description="Where deliveries are POSTed (http or https). The "
                     "egress guard checks where it points when each delivery is sent.")
    event_types: list[EventType] = Field(min_length=1, max_length=16)
    description: str = Field("", max_length=500)
    enabled: bool = True

    _check_url = field_validator("url")(_url)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, min_length=1, max_length=2048)
    event_types: list[EventType] | None = Field(None, min_length=1, max_length=16)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None

    _check_url = field_validator("url")(_url)


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[EventType]
    enabled: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class EndpointCreatedOut(EndpointOut):
    secret: str | None = Field(None, description="The signing secret (Standard Webhooks, whsec_...): shown once, "
                                                 "here; keep it to verify deliveries.")


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status: Literal["succeeded", "failed"]
    response_code: int | None
    latency_ms: float | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str = Field(description="Also the webhook-id header of every attempt.")
    endpoint_id: str
    event_id: str = Field(description="The platform event delivered (GET /v1/events/{id}).")
    event_type: EventType
    status: DeliveryStatus = Field(description="pending: to be attempted (again) at next_attempt_at; succeeded: "
                                               "answered 2xx; failed: no attempts left.")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptOut] = Field(description="Every attempt, oldest first.")


@router.get("/notifications/endpoints", name="notification_endpoint.list", response_model=PageOut[EndpointOut])
def list_endpoints(db: Db, principal: Annotated[Principal, require("settings", "read")], page: ListParams) -> Any:
    """Notification endpoints (sort: created_at, url); never their secrets."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.NotificationEndpoints(tx).list(principal.org_id, page.query()), dict)


@router.post("/notifications/endpoints", name="notification_endpoint.create", response_model=EndpointCreatedOut,
             status_code=201, openapi_extra={"x-idempotent": False})
def create_endpoint(body: EndpointIn, db: Db, encryptor: Encryptor,
                    principal: Annotated[Principal, require("settings", "write")]) -> Any:
    """Register an endpoint; the answer carries its signing secret, the only time it is shown."""
    with tenant_tx(db, principal) as tx:
        row, secret = store.NotificationEndpoints(tx).create(
            principal.org_id, url=body.url, event_types=list(body.event_types), description=body.description,
            enabled=body.enabled, encryptor=encryptor, created_by=principal.actor_id)
    return {**row, "secret": secret}


@router.get("/notifications/endpoints/{endpoint_id}", name="notification_endpoint.get", response_model=EndpointOut)
def get_endpoint(endpoint_id: str, db: Db, principal: Annotated[Principal, require("settings", "read")]) -> Any:
    """One endpoint (without its secret)."""
    with tenant_tx(db, principal) as tx:
        return store.NotificationEndpoints(tx).get(principal.org_id, endpoint_id)


@router.patch("/notifications/endpoints/{endpoint_id}", name="notification_endpoint.update",
              response_model=EndpointOut)
def update_endpoint(endpoint_id: str, body: EndpointPatch, db: Db,
                    principal: Annotated[Principal, require("settings", "write")]) -> Any:
    """Change an endpoint; pending deliveries go to its new URL."""
    with tenant_tx(db, principal) as tx:
        return store.NotificationEndpoints(tx).update(
            principal.org_id, endpoint_id, url=body.url,
            event_types=list(body.event_types) if body.event_types is not None else None,
            description=body.description, enabled=body.enabled)


@router.delete("/notifications/endpoints/{endpoint_id}", name="notification_endpoint.delete", status_code=204)
def delete_endpoint(endpoint_id: str, db: Db, principal: Annotated[Principal, require("settings", "write")]) -> Response:
    """Delete an endpoint and its deliveries (the events stay)."""
    with tenant_tx(db, principal) as tx:
        store.NotificationEndpoints(tx).delete(principal.org_id, endpoint_id)
    return Response(status_code=204)


@router.get("/notifications/endpoints/{endpoint_id}/deliveries", name="notification_delivery.list",
            response_model=PageOut[DeliveryOut])
def list_deliveries(
    endpoint_id: str,
    db: Db,
    principal: Annotated[Principal, require("settings", "read")],
    page: ListParams,
    status: DeliveryStatus | None = None,
    event: Annotated[str | None, Query(max_length=128, description="Event id.")] = None,
) -> Any:
    """An endpoint's deliveries, newest first (sort: created_at), each with every attempt
    (status, response code, latency, error)."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.Deliveries(tx).list(principal.org_id, endpoint_id, page.query("-created_at"),
                                                  status=status, event_id=event), dict)
