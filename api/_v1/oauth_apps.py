"""OAuth apps: the organization's managed client id and secret per connector.

Reading needs ``connectors:read``, changing needs ``connectors:write``. The client secret is
write-only: responses say ``has_client_secret`` and never carry it (nor does a response stored
for an Idempotency-Key retry). Authorize and token URLs override the connector spec's and must be
https, or http on a loopback host (422 naming the field).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

import store
from api._auth import Principal, require
from api._deps import Db, Encryptor
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import tenant_tx

router = make_router("oauth apps")

_CONNECTOR = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class OAuthAppOut(BaseModel):
    id: str
    connector: str = Field(description="The connector id (key) this client is for.")
    client_id: str
    has_client_secret: bool = Field(True, description="Always true: the secret is write-only and never returned.")
    authorize_url: str | None
    token_url: str | None
    scopes: list[str]
    created_at: datetime
    updated_at: datetime


class OAuthAppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str = Field(pattern=_CONNECTOR, description="The connector id (key).")
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr = Field(min_length=1, max_length=4096, description="Write-only.")
    authorize_url: str | None = Field(None, max_length=2048, description="Overrides the connector spec's.")
    token_url: str | None = Field(None, max_length=2048, description="Overrides the connector spec's.")
    scopes: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=100)


class OAuthAppPatch(BaseModel):
    """Send only what changes; null for a URL goes back to the connector spec's."""

    model_config = ConfigDict(extra="forbid")
    client_id: str | None = Field(None, min_length=1, max_length=512)
    client_secret: SecretStr | None = Field(None, min_length=1, max_length=4096, description="Write-only.")
    authorize_url: str | None = Field(None, max_length=2048)
    token_url: str | None = Field(None, max_length=2048)
    scopes: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(None, max_length=100)


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "connector": row["connector_key"]}


@router.get("/oauth-apps", name="oauth_app.list", response_model=PageOut[OAuthAppOut])
def list_oauth_apps(
    db: Db,
    principal: Annotated[Principal, require("connectors", "read")],
    page: ListParams,
    connector: Annotated[str | None, Query(max_length=100, description="Connector id (key).")] = None,
) -> Any:
    """OAuth apps without their secrets (sort: created_at, updated_at, connector)."""
    with tenant_tx(db, principal) as tx:
        result = store.OAuthApps(tx).list(principal.org_id, page.query(), connector_key=connector)
    return page_out(result, _out)


@router.post("/oauth-apps", name="oauth_app.create", response_model=OAuthAppOut, status_code=201)
def create_oauth_app(
    body: OAuthAppIn, db: Db, encryptor: Encryptor, principal: Annotated[Principal, require("connectors", "write")]
) -> Any:
    """Register the OAuth client for a connector (one per connector: 409 for a second)."""
    with tenant_tx(db, principal) as tx:
        row = store.OAuthApps(tx).create(
            principal.org_id, connector_key=body.connector, client_id=body.client_id,
            client_secret=body.client_secret.get_secret_value(), encryptor=encryptor,
            authorize_url=body.authorize_url, token_url=body.token_url, scopes=body.scopes,
        )
    return _out(row)


@router.get("/oauth-apps/{app_id}", name="oauth_app.get", response_model=OAuthAppOut)
def get_oauth_app(app_id: str, db: Db, principal: Annotated[Principal, require("connectors", "read")]) -> Any:
    """One OAuth app without its secret."""
    with tenant_tx(db, principal) as tx:
        return _out(store.OAuthApps(tx).get(principal.org_id, app_id))


@router.patch("/oauth-apps/{app_id}", name="oauth_app.update", response_model=OAuthAppOut)
def update_oauth_app(
    app_id: str,
    patch: OAuthAppPatch,
    db: Db,
    encryptor: Encryptor,
    principal: Annotated[Principal, require("connectors", "write")],
) -> Any:
    """Change the client id or secret, the URLs or the scopes. The connector cannot change."""
    changes = patch.model_dump(exclude_unset=True)
    if isinstance(patch.client_secret, SecretStr):
        changes["client_secret"] = patch.client_secret.get_secret_value()
    with tenant_tx(db, principal) as tx:
        return _out(store.OAuthApps(tx).update(principal.org_id, app_id, changes, encryptor))


@router.delete("/oauth-apps/{app_id}", name="oauth_app.delete", status_code=204)
def delete_oauth_app(app_id: str, db: Db, principal: Annotated[Principal, require("connectors", "write")]) -> Response:
    """Delete an OAuth app."""
    with tenant_tx(db, principal) as tx:
        store.OAuthApps(tx).delete(principal.org_id, app_id)
    return Response(status_code=204)
