"""Connector tools: search the catalog, write or patch a draft, validate it, test its actions on a
sandbox. Drafts are the store's connector versions (each edit a new draft version; published
versions never change), saved and indexed in the catalog in one transaction as the API does."""

from __future__ import annotations

import re
from typing import Any, Literal

import anyio
import jsonpatch
from pydantic import BaseModel, ConfigDict, Field

import store
from engine import check_connector
from engine.specs import ConnectorSpec
from runtime import MAX_QUERY_LENGTH, MAX_RESULTS, ServiceError, SpecInvalid, build_executor, tenant_tx, validated
from runtime import stored as stored_spec
from tools._context import ToolContext
from tools._registry import Tool
from tools.errors import ToolFailed

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class JsonPatchOp(BaseModel):
    """One RFC 6902 operation."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str = Field(description="JSON pointer into the spec.")
    value: Any = None
    from_: str | None = Field(None, alias="from")

    def as_op(self) -> dict[str, Any]:
        op: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op in ("add", "replace", "test"):
            op["value"] = self.value
        if self.op in ("move", "copy"):
            op["from"] = self.from_
        return op


def apply_patch(document: dict[str, Any], ops: list[JsonPatchOp]) -> dict[str, Any]:
    """``document`` with ``ops`` applied (a new object); ``ToolFailed`` naming the failing operation."""
    result = document
    for n, op in enumerate(ops):
        try:
            result = jsonpatch.apply_patch(result, [op.as_op()], in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ToolFailed(f"patch operation {n} ({op.op} {op.path}) cannot be applied: {exc}",
                             pointer=f"/patch/{n}", code="patch_failed") from None
    return result


def connector_spec(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` validated as a connector spec, as stored; ``SpecInvalid`` with JSON pointers otherwise."""
    return stored_spec(validated(ConnectorSpec, data, "connector"))


def _version_out(connector: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
    return {"connector": connector["key"], "connector_id": connector["id"], "version": version["version"],
            "state": version["state"], "name": connector["name"]}


async def save_connector(ctx: ToolContext, spec: dict[str, Any], document: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save ``spec`` (validated, as stored) as the next draft of its connector, creating the connector
    at version 1 when the organization has none of that key; indexed in the catalog in the same
    transaction (the embeddings computed before it opens). ``document``: the OpenAPI document it was
    imported from, kept for the connector's hosted sandbox (as ``POST /v1/connectors/import`` does)."""
    catalog = ctx.platform.catalog
    prepared = await catalog.prepare(spec)

    def save() -> dict[str, Any]:
        with tenant_tx(ctx.platform.db, ctx.principal) as tx:
            connectors = store.Connectors(tx)
            org_id = ctx.org_id
            try:
                connectors.get(org_id, spec["id"])
            except store.NotFound:
                connector = connectors.create(org_id, spec, created_by=ctx.principal.actor_id)
                if document is not None:
                    store.SandboxDocuments(tx).save_document(org_id, connector["id"], document)
                catalog.save(tx, org_id, connector, prepared)
                return _version_out(connector, connectors.version(org_id, connector["id"], 1))
            version = connectors.add_version(org_id, spec["id"], spec, created_by=ctx.principal.actor_id)
            connector = connectors.get(org_id, version["connector_id"])
            if document is not None:
                store.SandboxDocuments(tx).save_document(org_id, connector["id"], document)
            catalog.save(tx, org_id, connector, prepared, version["version"])
            return _version_out(connector, version)

    return await anyio.to_thread.run_sync(save)


async def sandbox_route(ctx: ToolContext, keys: list[str]) -> tuple[Any, dict[str, str]]:
    """The HTTP client and base URLs that reach ``keys``' sandboxes: the context's directory first
    (sandboxes served over HTTP), else the platform's hosted sandbox of each connector imported from
    a document (reached in-process, the egress guard unchanged). A key with neither is left out."""
    base_urls = {key: url for key in keys if (url := ctx.sandboxes.base_url(ctx.org_id, key)) is not None}
    hosted = []
    for key in sorted(set(keys) - set(base_urls)):
        try:
            await ctx.platform.sandboxes.hosted(ctx.org_id, key)
        except (store.NotFound, ServiceError):
            continue
        hosted.append(key)
    if not hosted:
        return ctx.platform.http, base_urls
    route = await ctx.platform.sandboxes.route(ctx.org_id, hosted)
    return route.http, {**base_urls, **route.base_urls}


def latest_version(ctx: ToolContext, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The connector ``ref`` (key or id) and its latest version, spec included. Blocking (SQL).
    ``NotFound`` for a connector of another organization, like a missing one."""
    with tenant_tx(ctx.platform.db, ctx.principal) as tx:
        connectors = store.Connectors(tx)
        connector = connectors.get(ctx.org_id, ref)
        if connector["latest_version"] is None:
            raise ToolFailed(f"connector {connector['key']!r} has no version", pointer="/connector", code="not_found",
                             http_status=404)
        return connector, connectors.version(ctx.org_id, connector["id"], connector["latest_version"])


# -- catalog ---------------------------------------------------------------------------------------


class SearchCatalogArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_QUERY_LENGTH, pattern=r"\S",
                       description="What to find, in words: 'create a customer in Cin7'.")
    limit: int = Field(10, ge=1, le=min(MAX_RESULTS, 50), description="How many results.")


async def search_catalog(ctx: ToolContext, args: SearchCatalogArgs) -> dict[str, Any]:
    catalog = ctx.platform.catalog
    vector = await catalog.query_vector(args.query)

    def search() -> list[dict[str, Any]]:
        with tenant_tx(ctx.platform.db, ctx.principal, customer=False) as tx:
            return [hit.as_dict() for hit in catalog.search(tx, ctx.org_id, args.query, vector, limit=args.limit)]

    items = await anyio.to_thread.run_sync(search)
    return {"query": args.query.strip(), "embedder": catalog.embedder.name, "items": items}


# -- drafts ----------------------------------------------------------------------------------------


class WriteConnectorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any] = Field(description="A whole connector spec; its id is the connector key.")


async def write_connector_draft(ctx: ToolContext, args: WriteConnectorArgs) -> dict[str, Any]:
    return await save_connector(ctx, connector_spec(args.spec))


class PatchConnectorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str = Field(min_length=1, max_length=128, description="Connector key or id.")
    patch: list[JsonPatchOp] = Field(min_length=1, max_length=200, description="RFC 6902 operations on the latest version's spec.")


async def patch_connector_draft(ctx: ToolContext, args: PatchConnectorArgs) -> dict[str, Any]:
    connector, version = await anyio.to_thread.run_sync(latest_version, ctx, args.connector)
    patched = apply_patch(version["spec"], args.patch)
    if patched.get("id") != connector["key"]:
        raise ToolFailed(f"the spec's id must stay {connector['key']!r}", pointer="/patch", code="spec_invalid")
    saved = await save_connector(ctx, connector_spec(patched))
    return saved | {"patched_from": version["version"], "changed": [op.path for op in args.patch]}


class ValidateConnectorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str | None = Field(None, max_length=128, description="A saved connector (key or id): its latest version.")
    spec: dict[str, Any] | None = Field(None, description="Or a spec to check without saving it.")


async def validate_connector(ctx: ToolContext, args: ValidateConnectorArgs) -> dict[str, Any]:
    if (args.connector is None) == (args.spec is None):
        raise ToolFailed("send exactly one of connector and spec", pointer="/connector", code="tool_arguments_invalid")
    data = args.spec
    version = None
    row = None
    if data is None:
        _, row = await anyio.to_thread.run_sync(latest_version, ctx, args.connector)
        data, version = row["spec"], row["version"]
    try:
        # A saved version is parsed once per process (the runs' cache): a large API's spec takes
        # seconds to check, and the agents validate, test and map the same version in a row.
        spec = (await anyio.to_thread.run_sync(ctx.platform.runs.specs.parsed, ctx.org_id, row) if row is not None
                else validated(ConnectorSpec, data, "connector"))
    except SpecInvalid as exc:
        return {"valid": False, "version": version, "problems": exc.errors}
    return {"valid": True, "version": version, "problems": [], "connector": spec.id, "actions": sorted(spec.actions),
            "events": sorted(spec.events)}


class TestConnectorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str = Field(min_length=1, max_length=128, description="Connector key or id: its latest version is tested.")
    sample: int | None = Field(None, ge=1, le=10_000, description="Test about this many actions (whole resources, "
                                                                   "in path order) instead of all: for very large APIs.")


def sampled(spec: ConnectorSpec, size: int) -> tuple[ConnectorSpec, list[str]]:
    """``spec`` with the actions of whole resources (actions grouped by their path's first segment,
    groups in path order) until at least ``size`` actions, and the resources kept. A resource is
    kept whole so its creates still give ids to its reads, updates and deletes."""
    groups: dict[str, list[str]] = {}
    for name, action in sorted(spec.actions.items(), key=lambda item: (item[1].path, item[0])):
        # The first segment that names something: not a version (v1, 2.0) nor an API prefix.
        segments = [p for p in action.path.strip("/").split("/")
                    if p and not re.fullmatch(r"v?\d+(?:\.\d+)*|api|rest", p, re.I)]
        head = segments[0] if segments else "/"
        groups.setdefault(head, []).append(name)
    kept: list[str] = []
    resources: list[str] = []
    for head, names in groups.items():
        if len(kept) >= size:
            break
        kept += names
        resources.append(head)
    return spec.model_copy(update={"actions": {n: spec.actions[n] for n in kept}}), resources


async def test_connector(ctx: ToolContext, args: TestConnectorArgs) -> dict[str, Any]:
    connector, row = await anyio.to_thread.run_sync(latest_version, ctx, args.connector)
    key = connector["key"]
    http, base_urls = await sandbox_route(ctx, [key])
    if key not in base_urls:
        raise ToolFailed(f"connector {key!r} has no sandbox to test against; import it from its API description "
                         "so the platform serves one", pointer="/connector", code="no_sandbox", http_status=409)
    spec = await anyio.to_thread.run_sync(ctx.platform.runs.specs.parsed, ctx.org_id, row)
    if ctx.sandboxes.base_url(ctx.org_id, key) is None:
        # A hosted sandbox starts from its seed: the previous test's creates and deletes would
        # make this one's results incomparable (a retest after a patch must see the same data).
        await ctx.platform.sandboxes.reset(ctx.principal, key)
    # Placeholder credentials of the right shape: a sandbox checks their presence, never their value.
    executor = build_executor({key: spec}, http, base_urls=base_urls)
    total = len(spec.actions)
    sample = None
    if args.sample is not None and args.sample < total:
        spec, resources = sampled(spec, args.sample)
        sample = {"tested": len(spec.actions), "of": total, "resources": resources}
    report = await check_connector(spec, executor)
    return {"connector": key, "version": row["version"], **report.summary(), "sample": sample}


TOOLS = [
    Tool("search_catalog", "Search the connector catalog (the organization's connectors first) for connectors "
         "and actions, by meaning and by words.", SearchCatalogArgs, search_catalog, ("connectors", "read")),
    Tool("write_connector_draft", "Save a whole connector spec as the next draft version of its connector "
         "(creating the connector if new).", WriteConnectorArgs, write_connector_draft, ("connectors", "write"),
         writes=True),
    Tool("patch_connector_draft", "Change a connector's latest spec with JSON Patch operations and save the "
         "result as the next draft version.", PatchConnectorArgs, patch_connector_draft, ("connectors", "write"),
         writes=True),
    Tool("validate_connector", "Check a connector spec (a saved connector's latest version, or a spec) and list "
         "each problem with its JSON pointer.", ValidateConnectorArgs, validate_connector, ("connectors", "read")),
    Tool("test_connector", "Call every action of a connector's latest version on its sandbox and report which "
         "pass, drift from the documented schema, or fail and why.", TestConnectorArgs, test_connector,
         ("connectors", "write")),
]
