"""/v1 routes: connectors, created from a connector spec or imported from an OpenAPI document, in
numbered versions that start as drafts and are published (published versions never change)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from fastapi import Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

import store
from api._auth import Principal, require
from api._deps import AppConfig, Db, PlatformDep
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import in_thread, tenant_tx
from api._v1._specs import SpecBody, problems_out, spec_data, stored, validated
from api.errors import OpenAPIImportRefused
from engine.errors import OpenAPIImportError
from engine.specs import ConnectorSpec

router = make_router("connectors")

ConnectorStatus = Literal["draft", "published", "archived"]
VersionState = Literal["draft", "published"]
MAX_DOCUMENT_TEXT = 20_000_000
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="A version number.")]


class ConnectorOut(BaseModel):
    id: str
    key: str = Field(description="The spec's id; unique in the organization. Workflows name connectors by it.")
    name: str
    status: ConnectorStatus
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = Field(description="The highest version number, draft or published.")
    published_version: int | None = Field(description="The highest published version (what runs use), if any.")


class ConnectorDetailOut(ConnectorOut):
    published_versions: list[int] = Field(description="Every published version number.")


class ImportWarning(BaseModel):
    pointer: str = Field(description="JSON pointer into the OpenAPI document.")
    reason: str


class ConnectorImportOut(ConnectorDetailOut):
    warnings: list[ImportWarning] = Field(description="What the import had to guess, skip or work around.")


class VersionOut(BaseModel):
    connector_id: str
    version: int
    state: VersionState
    created_by: str | None
    created_at: datetime
    published_at: datetime | None


class VersionDetailOut(VersionOut):
    spec: dict[str, Any]


class ImportIn(BaseModel):
    """An OpenAPI (or Swagger 2.0) document as text or a JSON object, or the URL it is served at."""

    model_config = ConfigDict(extra="forbid")
    # An OpenAPI document is as large as a spec: max_spec_request_bytes (api/_limits.py).
    body_limit: ClassVar[str] = "spec"
    document: str | dict[str, Any] | None = Field(None, description="The document: YAML/JSON text or an object.")
    url: str | None = Field(None, max_length=2048, pattern=r"^https?://", description="Fetched through the egress guard.")
    id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="Connector key (default: from the title).")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ImportIn":
        if (self.document is None) == (self.url is None):
            raise ValueError("send exactly one of document and url")
        if isinstance(self.document, str) and len(self.document) > MAX_DOCUMENT_TEXT:
            raise ValueError(f"document is longer than {MAX_DOCUMENT_TEXT} characters")
        return self


def _version_out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("connector_id", "version", "state", "created_by", "created_at", "published_at")} | (
        {"spec": row["spec"]} if "spec" in row else {}
    )


def _connector_spec(body: SpecBody) -> dict[str, Any]:
    return stored(validated(ConnectorSpec, spec_data(body, "connector"), "connector"))


@router.get("/connectors", name="connector.list", response_model=PageOut[ConnectorOut])
def list_connectors(
    db: Db,
    principal: Annotated[Principal, require("connectors", "read")],
    page: ListParams,
    status: ConnectorStatus | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Search in key and name.")] = None,
) -> Any:
    """Connectors of the organization (sort: created_at, key, name)."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.Connectors(tx).list(principal.org_id, page.query(), status=status, search=q), dict)


async def _create_indexed(platform: PlatformDep, db: Db, principal: Principal, spec: dict[str, Any],
                          document: dict[str, Any] | None = None) -> dict[str, Any]:
    # Embedded before the transaction opens (an embedding server may be slow); saved and indexed
    # in one transaction, so the catalog never lists a connector that was not saved.
    prepared = await platform.catalog.prepare(spec)

    def save() -> dict[str, Any]:
        with tenant_tx(db, principal) as tx:
            connector = store.Connectors(tx).create(principal.org_id, spec, created_by=principal.actor_id)
            if document is not None:
                # Kept for the connector's hosted sandbox (/v1/sandboxes), which is built from it.
                store.SandboxDocuments(tx).save_document(principal.org_id, connector["id"], document)
            platform.catalog.save(tx, principal.org_id, connector, prepared)
            return connector

    return await in_thread(save)


@router.post("/connectors", name="connector.create", response_model=ConnectorDetailOut, status_code=201)
async def create_connector(
    body: SpecBody, platform: PlatformDep, db: Db, principal: Annotated[Principal, require("connectors", "write")]
) -> Any:
    """Create a connector from a connector spec; the spec becomes draft version 1, and the
    connector and its actions join the organization's catalog (``GET /v1/catalog/search``).

    The spec's ``id`` is the connector's key (unique in the organization). A spec that does not
    validate is refused with 422 ``spec_invalid`` listing each JSON pointer in ``errors``.
    """
    spec = _connector_spec(body)
    return await _create_indexed(platform, db, principal, spec)


@router.post(
    "/connectors/import", name="connector.import", response_model=ConnectorImportOut, status_code=201,
    openapi_extra={"x-idempotent": True},
)
async def import_connector(
    body: ImportIn, platform: PlatformDep, db: Db, settings: AppConfig,
    principal: Annotated[Principal, require("connectors", "write")],
) -> Any:
    """Create a connector from an OpenAPI 2.0/3.0/3.1 document (draft version 1), with the import's warnings.

    ``url`` is fetched through the SSRF guard (private and loopback addresses are refused unless
    the operator's egress allow-list names them) without following redirects. External ``$ref``
    files are never read. The document is kept: the connector gets a hosted sandbox built from it
    (``/v1/sandboxes/{connector}``), which test-environment connections can target.
    """
    document, result = await in_thread(_convert, body, settings)
    spec = stored(result.connector)
    connector = await _create_indexed(platform, db, principal, spec, document.raw)
    return connector | {"warnings": problems_out(result.warnings)}


def _convert(body: ImportIn, settings: Any) -> Any:
    """The import's result for ``body`` (blocking: a fetch, a parse, a conversion)."""
    from engine.http import EgressPolicy
    from engine.openapi import import_connector as convert
    from engine.openapi import load_openapi

    try:
        # keep_refs: schemas the document reuses stay shared ($defs), so a large document stays its size
        if body.url is not None:
            document = load_openapi(body.url, egress=EgressPolicy(allow=tuple(settings.egress_allow)), keep_refs=True)
        elif isinstance(body.document, str):
            # Bytes, never the string: a string that looks like a path would be read from disk.
            document = load_openapi(body.document.encode("utf-8"), source_name="<document>", keep_refs=True)
        else:
            document = load_openapi(body.document or {}, source_name="<document>", keep_refs=True)
        return document, convert(document, connector_id=body.id)
    except OpenAPIImportError as exc:
        raise OpenAPIImportRefused(exc.pointer, exc.reason) from None


@router.get("/connectors/{connector_id}", name="connector.get", response_model=ConnectorDetailOut)
def get_connector(connector_id: str, db: Db, principal: Annotated[Principal, require("connectors", "read")]) -> Any:
    """One connector (by id or key) with its latest and published version numbers."""
    with tenant_tx(db, principal) as tx:
        return store.Connectors(tx).get(principal.org_id, connector_id)


@router.delete("/connectors/{connector_id}", name="connector.delete", status_code=204)
def delete_connector(
    connector_id: str,
    platform: PlatformDep,
    db: Db,
    principal: Annotated[Principal, require("connectors", "write")],
    archive: Annotated[bool, Query(description="Archive instead of deleting: versions and connections stay.")] = False,
) -> Response:
    """Delete a connector with its versions (409 while connections use it), or archive it.
    Either way it leaves the catalog."""
    with tenant_tx(db, principal) as tx:
        connectors = store.Connectors(tx)
        if archive:
            connector = connectors.archive(principal.org_id, connector_id)
        else:
            connector = connectors.get(principal.org_id, connector_id)
            connectors.delete(principal.org_id, connector_id)
        platform.catalog.remove(tx, principal.org_id, connector["key"])
    return Response(status_code=204)


@router.get("/connectors/{connector_id}/versions", name="connector_version.list", response_model=PageOut[VersionOut])
def list_versions(
    connector_id: str,
    db: Db,
    principal: Annotated[Principal, require("connectors", "read")],
    page: ListParams,
    state: VersionState | None = None,
) -> Any:
    """The versions of a connector, without specs (sort: version, created_at; default newest first)."""
    with tenant_tx(db, principal) as tx:
        result = store.Connectors(tx).versions(principal.org_id, connector_id, page.query("-version"), state=state)
    return page_out(result, _version_out)


@router.post(
    "/connectors/{connector_id}/versions", name="connector_version.create", response_model=VersionDetailOut,
    status_code=201,
)
async def create_version(
    connector_id: str, body: SpecBody, platform: PlatformDep, db: Db,
    principal: Annotated[Principal, require("connectors", "write")],
) -> Any:
    """Add the next draft version; the spec's ``id`` must be the connector's key. The catalog
    then describes the connector by this version (re-indexed in the same transaction)."""
    spec = _connector_spec(body)
    prepared = await platform.catalog.prepare(spec)

    def save() -> dict[str, Any]:
        with tenant_tx(db, principal) as tx:
            connectors = store.Connectors(tx)
            version = connectors.add_version(principal.org_id, connector_id, spec, created_by=principal.actor_id)
            connector = connectors.get(principal.org_id, version["connector_id"])
            platform.catalog.save(tx, principal.org_id, connector, prepared, version["version"])
            return _version_out(version)

    return await in_thread(save)


@router.get(
    "/connectors/{connector_id}/versions/{version}", name="connector_version.get", response_model=VersionDetailOut
)
def get_version(
    connector_id: str, version: VersionNumber, db: Db, principal: Annotated[Principal, require("connectors", "read")]
) -> Any:
    """One version of a connector, spec included."""
    with tenant_tx(db, principal) as tx:
        return _version_out(store.Connectors(tx).version(principal.org_id, connector_id, version))


@router.post(
    "/connectors/{connector_id}/versions/{version}/publish", name="connector_version.publish",
    response_model=VersionDetailOut,
)
def publish_version(
    connector_id: str, version: VersionNumber, db: Db, principal: Annotated[Principal, require("connectors", "publish")]
) -> Any:
    """Publish a draft version: runs use the highest published version. Published versions are
    immutable; publishing one again is a 409."""
    with tenant_tx(db, principal) as tx:
        return _version_out(store.Connectors(tx).publish(principal.org_id, connector_id, version))
