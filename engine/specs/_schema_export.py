"""JSON Schema export of the spec models (files in ``schemas/`` and ``switchboard schema``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._connector import ConnectorSpec
from ._workflow import WorkflowSpec

SCHEMA_MODELS = {"connector": ConnectorSpec, "workflow": WorkflowSpec}
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def spec_json_schema(kind: str) -> dict[str, Any]:
    """Return the JSON Schema of one spec kind (``connector`` or ``workflow``).

    Raises:
        KeyError: for an unknown kind.
    """
    model = SCHEMA_MODELS[kind]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"https://switchboard.dev/schemas/{kind}.json", **schema}


def write_json_schemas(directory: str | Path) -> list[Path]:
    """Write ``<kind>.schema.json`` for every spec kind into ``directory``; return the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in SCHEMA_MODELS:
        path = out / f"{kind}.schema.json"
        path.write_text(json.dumps(spec_json_schema(kind), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
