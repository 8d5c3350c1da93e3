"""Tools about a customer's accounts and data: the customer's connections (never their
credentials) and field mappings proposed from the common data model (``engine.datamodel``)."""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

import store
from engine.datamodel import KINDS, suggest_mapping
from engine.samples import merge_all_of
from engine.specs import ConnectorSpec
from runtime import tenant_tx
from tools._context import ToolContext
from tools._registry import Tool
from tools.errors import ToolFailed

MAX_CONNECTIONS = 100
# What a model may see of a connection: never its credentials (the store does not return them
# here either; this list is the second line).
CONNECTION_FIELDS = ("id", "customer_id", "connector_key", "name", "auth_type", "status", "has_credentials",
                     "expires_at", "last_error", "created_at", "updated_at")


class ListConnectionsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str | None = Field(None, max_length=128, description="The customer (default: the thread's customer).")
    connector: str | None = Field(None, max_length=128, description="Only connections to this connector (key).")


async def list_connections(ctx: ToolContext, args: ListConnectionsArgs) -> dict[str, Any]:
    customer_id = args.customer_id or ctx.customer_id
    if customer_id is None:
        raise ToolFailed("name the customer whose connections to list", pointer="/customer_id", code="customer_required")

    def read() -> list[dict[str, Any]]:
        with ctx.platform.db.tenant(ctx.org_id, customer_id) as tx:
            page = store.Connections(tx).list(ctx.org_id, store.ListQuery(limit=MAX_CONNECTIONS), customer_id=customer_id,
                                              connector=args.connector,
                                              hidden_environment=ctx.principal.hidden_environment)
        return [{k: row.get(k) for k in CONNECTION_FIELDS} for row in page.items]

    return {"customer_id": customer_id, "connections": await anyio.to_thread.run_sync(read)}


class ProposeMappingArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description=f"The common data model's kind: {', '.join(KINDS)}.")
    source: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*\.[A-Za-z0-9_]+$",
                        description="connector.action whose output records are the source, e.g. hubspot.list_contacts.")
    target: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*\.[A-Za-z0-9_]+$",
                        description="connector.action whose input is the target record, e.g. cin7.create_customer.")


def _split(ref: str) -> tuple[str, str]:
    connector, _, action = ref.rpartition(".")
    return connector, action


def _record_schema(spec: ConnectorSpec, action_name: str, pointer: str) -> dict[str, Any]:
    """The schema of one source record: the output's list items when the action pages or answers a list."""
    action = spec.actions.get(action_name)
    if action is None:
        raise ToolFailed(f"connector {spec.id!r} has no action {action_name!r}", pointer=pointer, code="not_found",
                         http_status=404)
    schema = spec.deref(action.output or {})
    if action.pagination is not None and isinstance(schema, dict):
        for part in action.pagination.items.split("."):
            schema = spec.deref((schema.get("properties") or {}).get(part, {}))
    if isinstance(schema, dict) and schema.get("type") == "array":
        schema = spec.deref(schema.get("items") or {})
    return spec.standalone(schema)


async def propose_mapping(ctx: ToolContext, args: ProposeMappingArgs) -> dict[str, Any]:
    if args.kind not in KINDS:
        raise ToolFailed(f"{args.kind!r} is not a kind of the common data model ({', '.join(KINDS)})", pointer="/kind",
                         code="tool_arguments_invalid")
    (source_key, source_action), (target_key, target_action) = _split(args.source), _split(args.target)

    def specs() -> dict[str, ConnectorSpec]:
        with tenant_tx(ctx.platform.db, ctx.principal, customer=False) as tx:
            return ctx.platform.runs.specs.connectors(tx, ctx.org_id, {source_key, target_key}, published_only=False)

    found = await anyio.to_thread.run_sync(specs)
    for key, pointer in ((source_key, "/source"), (target_key, "/target")):
        if key not in found:
            raise ToolFailed(f"no connector {key!r} in this organization", pointer=pointer, code="not_found",
                             http_status=404)
    source = _record_schema(found[source_key], source_action, "/source")
    target_spec = found[target_key]
    if target_action not in target_spec.actions:
        raise ToolFailed(f"connector {target_key!r} has no action {target_action!r}", pointer="/target",
                         code="not_found", http_status=404)
    target = target_spec.standalone(target_spec.actions[target_action].input or {})
    mapping = suggest_mapping(args.kind, source, target)
    return {"kind": args.kind, "source": args.source, "target": args.target, "map": mapping,
            "required_unmapped": _required_unmapped(target_spec, target, mapping),
            "note": None if mapping else "no field of the common data model was found on both sides"}


def _required_unmapped(spec: ConnectorSpec, target: dict[str, Any], mapping: dict[str, Any]) -> list[str]:
    """The target record's required fields the mapping leaves out (the builder must say where they
    come from): the body's when the input has one, else the input's."""
    record, mapped = target, mapping
    body = (target.get("properties") or {}).get("body")
    if body is not None:
        record = merge_all_of(spec.deref(body), target.get("$defs"))
        inner = mapping.get("body")
        mapped = inner[0] if isinstance(inner, list) and inner and isinstance(inner[0], dict) else inner or {}
    heads = {key.split(".")[0] for key in mapped} if isinstance(mapped, dict) else set()
    return [name for name in record.get("required") or [] if name not in heads]


TOOLS = [
    Tool("list_connections", "List a customer's connections (which apps they connected, status; never credentials).",
         ListConnectionsArgs, list_connections, ("connections", "read"), customer_arg="customer_id"),
    Tool("propose_mapping", "Propose a field mapping from a source action's records to a target action's input "
         "through the common data model (contact, company, customer, order, product, invoice).",
         ProposeMappingArgs, propose_mapping, ("connectors", "read")),
]
