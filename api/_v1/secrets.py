"""Secrets: named values per environment that workflows read at run time. Values are write-only.

No response carries a value, so neither does a response stored for an Idempotency-Key retry. The
request models hold values as ``SecretStr`` so they do not show in a repr or a traceback.
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
from runtime import check_environment

router = make_router("secrets")

# In characters; the store also refuses values over this many bytes.
_MAX_VALUE = store.MAX_SECRET_BYTES


class SecretOut(BaseModel):
    id: str
    name: str
    environment_id: str
    has_value: bool = Field(True, description="Always true: values are write-only and never returned.")
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=store.SECRET_NAME_PATTERN.pattern, description="How workflows refer to it.")
    value: SecretStr = Field(min_length=1, max_length=_MAX_VALUE, description="Write-only.")
    environment: str = Field(min_length=1, max_length=64, description="Environment id or slug.")


class SecretValueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: SecretStr = Field(min_length=1, max_length=_MAX_VALUE, description="Write-only.")


def _reachable(tx: store.Tx, principal: Principal, secret_id: str) -> dict[str, Any]:
    """The secret, refused (403) when a Test key would reach production's."""
    row = store.Secrets(tx).get(principal.org_id, secret_id)
    check_environment(tx, principal, row["environment_id"])
    return row


@router.get("/secrets", name="secret.list", response_model=PageOut[SecretOut])
def list_secrets(
    db: Db,
    principal: Annotated[Principal, require("secrets", "read")],
    page: ListParams,
    environment: Annotated[str | None, Query(max_length=64, description="Environment id or slug.")] = None,
    q: Annotated[str | None, Query(max_length=128, description="Search in names.")] = None,
) -> Any:
    """Secrets' names and times, never values (sort: created_at, updated_at, name)."""
    with tenant_tx(db, principal) as tx:
        if environment is not None:
            check_environment(tx, principal, environment)
        result = store.Secrets(tx).list(principal.org_id, page.query(), environment=environment, search=q,
                                        hidden_environment=principal.hidden_environment)
    return page_out(result, dict)


@router.post("/secrets", name="secret.create", response_model=SecretOut, status_code=201)
def create_secret(
    body: SecretIn, db: Db, encryptor: Encryptor, principal: Annotated[Principal, require("secrets", "write")]
) -> Any:
    """Store a secret in an environment; its value is encrypted and never returned. A name an
    environment has already is 409. A Test key cannot write production's (403)."""
    with tenant_tx(db, principal) as tx:
        check_environment(tx, principal, body.environment)
        return store.Secrets(tx).create(
            principal.org_id, environment=body.environment, name=body.name, value=body.value.get_secret_value(),
            encryptor=encryptor, created_by=principal.actor_id,
        )


@router.get("/secrets/{secret_id}", name="secret.get", response_model=SecretOut)
def get_secret(secret_id: str, db: Db, principal: Annotated[Principal, require("secrets", "read")]) -> Any:
    """One secret's name and times."""
    with tenant_tx(db, principal) as tx:
        return _reachable(tx, principal, secret_id)


@router.put("/secrets/{secret_id}", name="secret.update", response_model=SecretOut)
def set_secret_value(
    secret_id: str,
    body: SecretValueIn,
    db: Db,
    encryptor: Encryptor,
    principal: Annotated[Principal, require("secrets", "write")],
) -> Any:
    """Replace a secret's value."""
    with tenant_tx(db, principal) as tx:
        _reachable(tx, principal, secret_id)
        return store.Secrets(tx).update(principal.org_id, secret_id, body.value.get_secret_value(), encryptor)


@router.delete("/secrets/{secret_id}", name="secret.delete", status_code=204)
def delete_secret(secret_id: str, db: Db, principal: Annotated[Principal, require("secrets", "write")]) -> Response:
    """Delete a secret; workflows that read it fail from their next run."""
    with tenant_tx(db, principal) as tx:
        _reachable(tx, principal, secret_id)
        store.Secrets(tx).delete(principal.org_id, secret_id)
    return Response(status_code=204)
