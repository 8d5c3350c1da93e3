"""Webhook deliveries in: ``POST /v1/hooks/{org_id}/{trigger_id}``, one URL per webhook trigger.

Not under API-key authentication (a provider cannot send Switchboard's keys): each delivery is
signed instead, and verified with the trigger's secret by ``runtime.Webhooks`` (Standard Webhooks
or HubSpot v3). The organization is part of the URL so the trigger is looked up in a transaction
bound to it: another organization's trigger id is a 404 whatever is signed.

Not audited as an actor's action (the sender is not an actor of the organization): every accepted
or refused delivery is recorded as an event instead (``GET /v1/events``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api._deps import PlatformDep
from api._quota import note_warnings
from runtime import APP_EVENTS_PREFIX, Delivery

HOOKS_PREFIX = "/v1/hooks"

router = APIRouter(prefix=HOOKS_PREFIX, tags=["webhooks"])
# Deliveries of webhook-style app events, one URL per subscription (runtime._subscriptions).
app_events_router = APIRouter(prefix=APP_EVENTS_PREFIX, tags=["webhooks"])

IdPart = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


def hook_path(org_id: str, trigger_id: str) -> str:
    """The delivery path of trigger ``trigger_id`` of ``org_id``."""
    return f"{HOOKS_PREFIX}/{org_id}/{trigger_id}"


class DeliveryOut(BaseModel):
    event_id: str = Field(description="The stored event (GET /v1/events/{id}).")
    status: Literal["received", "dispatched", "filtered", "refused", "failed"] = Field(
        description="received: stored, its run is being dispatched; filtered: the trigger's filter did not match; "
                    "failed: it could not run (the event's error says why). A duplicate answers the first delivery's.")
    duplicate: bool = Field(description="true when an earlier delivery had the same webhook id; nothing new ran.")


_BODY = {
    "requestBody": {
        "required": True,
        "description": "The provider's JSON payload, verified byte for byte against its signature.",
        "content": {"application/json": {"schema": {}}},
    },
    "parameters": [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in (
            ("webhook-id", "Standard Webhooks: the delivery's id (deduplicated per trigger)."),
            ("webhook-timestamp", "Standard Webhooks: Unix seconds; refused beyond 5 minutes."),
            ("webhook-signature", "Standard Webhooks: space-separated `v1,<base64>` signatures."),
            ("X-HubSpot-Signature-v3", "HubSpot v3 triggers: base64 HMAC-SHA256 of method, URI, body and timestamp."),
            ("X-HubSpot-Request-Timestamp", "HubSpot v3 triggers: Unix milliseconds."),
        )
    ],
}


@router.post(
    "/{org_id}/{trigger_id}", name="webhook.deliver", status_code=202, response_model=DeliveryOut,
    openapi_extra=_BODY, responses={200: {"model": DeliveryOut, "description": "A duplicate delivery."}},
)
async def deliver(org_id: IdPart, trigger_id: IdPart, request: Request, platform: PlatformDep) -> Any:
    """Receive a webhook delivery for a trigger.

    Answers 202 with the event id as soon as the event is stored, before the workflow runs; 200
    with the first event's id for a delivery whose webhook id was seen already. 401 for a missing
    or wrong signature or a timestamp older than 5 minutes (nothing stored), 404 for no such webhook
    trigger in the organization, 400/422 for a body that is not JSON or not the trigger's payload,
    413 over the event size limit, 429 (with ``Retry-After``) when the customer's event quota
    refuses and 409 for a disabled trigger; both of those are stored as refused events.
    """
    body = await request.body()
    # The URL the sender signed: behind a proxy, the public URL's origin with this path.
    public = platform.config.public_url
    url = str(request.url) if not public else public.rstrip("/") + request.url.path + (
        "?" + request.url.query if request.url.query else "")
    delivery = Delivery(method=request.method, url=url, headers={k.lower(): v for k, v in request.headers.items()},
                        body=body)
    receipt = await platform.webhooks.deliver(org_id, trigger_id, delivery)
    note_warnings(request, receipt.warnings)
    out = {"event_id": receipt.event["id"], "status": receipt.event["status"], "duplicate": receipt.duplicate}
    return JSONResponse(out, status_code=200 if receipt.duplicate else 202)


class AppEventOut(BaseModel):
    event_id: str = Field(description="The stored event (GET /v1/events/{id}).")
    status: Literal["received", "dispatched", "refused", "failed"] = Field(
        description="received: stored, its run is being dispatched.")


TokenPart = Annotated[str, Path(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


@app_events_router.post(
    "/{org_id}/{subscription_id}/{token}", name="app_event.deliver", status_code=202, response_model=AppEventOut,
    openapi_extra={"requestBody": {"required": True, "description": "The provider's JSON payload.",
                                   "content": {"application/json": {"schema": {}}}}},
)
async def deliver_app_event(org_id: IdPart, subscription_id: IdPart, token: TokenPart, request: Request,
                            platform: PlatformDep) -> Any:
    """Receive a delivery of a webhook-style app event at the URL its subscription registered with
    the provider (the token in the path is the subscription's secret).

    Answers 202 with the event id once the event is stored, before the workflow runs. 404 for no
    such subscription or a wrong token (not told apart), 400 for a body that is not JSON, 413 over
    the event size limit, 429 (with ``Retry-After``) when the customer's event quota refuses (the
    event is stored refused).
    """
    event = await platform.subscriptions.deliver(org_id, subscription_id, token, await request.body())
    return JSONResponse({"event_id": event["id"], "status": event["status"]}, status_code=202)
