"""/v1 routes: the hosted sandbox of each connector imported from an OpenAPI document, per
organization: read its records, seed it, reset it, describe it; and the sandbox's own API, served
at ``/sandboxes/{org_id}/{connector}/api/...`` for clients outside the platform.

Runs never use that URL: a connection with ``target: sandbox`` reaches the sandbox in-process
(``runtime._sandboxes``). Records calls made live in the serving process (a bounded number of
sandboxes, least recently used dropped); the seed is stored, so a reset returns to it anywhere.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, Depends, Request, Response

import store
from api._auth import CurrentPrincipal, Principal, require
from api._deps import PlatformDep
from api._v1._common import router as make_router

router = make_router("sandboxes")

SEED_EXAMPLE = {"/customer": [{"Name": "Acme", "Currency": "USD"}]}
# Headers that are the platform's, not the sandboxed API's: never handed to the sandbox.
_PLATFORM_HEADERS = ("x-fastn-access-key", "x-fastn-account-id", "x-fastn-account-tenant-id", "host",
                     "content-length")
_ANSWER_HEADERS = ("content-type", "allow", "www-authenticate", "location", "retry-after")


def _out(principal: Principal, result: dict[str, Any], request: Request) -> dict[str, Any]:
    key = result["connector"]
    return result | {"api_url": str(request.base_url).rstrip("/") + f"/sandboxes/{principal.org_id}/{key}/api"}


@router.get("/sandboxes/{connector_id}/state", name="sandbox.state")
async def sandbox_state(
    connector_id: str, request: Request, platform: PlatformDep, principal: Annotated[Principal, require("connectors", "read")]
) -> Any:
    """Every record of the connector's sandbox, by collection path (``collections``). 404 for a
    connector of another organization; 409 ``sandbox_unavailable`` for one not imported from a
    document."""
    return _out(principal, await platform.sandboxes.state(principal, connector_id), request)


@router.get("/sandboxes/{connector_id}/describe", name="sandbox.describe")
async def sandbox_describe(
    connector_id: str, request: Request, platform: PlatformDep, principal: Annotated[Principal, require("connectors", "read")]
) -> Any:
    """The sandbox's reading of the document: base path, resources (collections a seed can fill)
    and each operation's role."""
    return _out(principal, await platform.sandboxes.describe(principal, connector_id), request)


@router.post("/sandboxes/{connector_id}/seed", name="sandbox.seed")
async def sandbox_seed(
    connector_id: str,
    request: Request,
    platform: PlatformDep,
    principal: Annotated[Principal, require("connectors", "write")],
    seed: Annotated[dict[str, Any], Body(
        description="Collection (its path, as /customer, or its name) -> list of records.",
        examples=[SEED_EXAMPLE],
    )],
) -> Any:
    """Replace the sandbox's seed and reset it to it; the seed is stored, so resets return to it.
    A seed that does not fit the document is refused (422 ``sandbox_seed_invalid`` with a JSON
    ``pointer`` into the body) and nothing changes."""
    return _out(principal, await platform.sandboxes.seed(principal, connector_id, seed), request)


@router.post("/sandboxes/{connector_id}/reset", name="sandbox.reset")
async def sandbox_reset(
    connector_id: str, request: Request, platform: PlatformDep, principal: Annotated[Principal, require("connectors", "write")]
) -> Any:
    """Back to the stored seed: whatever calls created, changed or deleted is undone."""
    return _out(principal, await platform.sandboxes.reset(principal, connector_id), request)


# -- the sandbox's own API -------------------------------------------------------------------

hosted_router = APIRouter(tags=["sandboxes"])


@hosted_router.api_route(
    "/sandboxes/{org_id}/{connector}/api/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    name="sandbox.api",
    response_class=Response,
    # Its paths and answers are the sandboxed document's, not the platform's: described by
    # GET /v1/sandboxes/{connector}/describe, left out of the platform's own OpenAPI document.
    include_in_schema=False,
)
async def sandbox_api(org_id: str, connector: str, path: str, request: Request, platform: PlatformDep,
                 principal: CurrentPrincipal) -> Response:
    """The sandbox of ``connector`` answering as its API would, at the document's own paths (the
    document's base path included: Cin7's ``/ExternalApi/v2/customer``). Authenticate with the
    platform's API key headers (``x-fastn-access-key``, ``x-fastn-account-id``); the
    ``Authorization`` header, and any other the document asks for, go to the sandbox, which
    checks that credentials are present. Another organization's sandbox is a 404."""
    if principal.org_id != org_id:
        raise store.NotFound("sandbox", f"{org_id}/{connector}")
    principal.require("connectors", "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write")
    hosted = await platform.sandboxes.hosted(org_id, connector)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _PLATFORM_HEADERS]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hosted.app), base_url="http://sandbox") as client:
        answer = await client.request(request.method, "/" + path, params=list(request.query_params.multi_items()),
                                      headers=headers, content=await request.body())
    return Response(answer.content, status_code=answer.status_code,
                    headers={k: v for k, v in answer.headers.items() if k.lower() in _ANSWER_HEADERS})

