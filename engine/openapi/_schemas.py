"""OpenAPI schema dialects -> plain JSON Schema (draft 2020-12).

OpenAPI 2.0 and 3.0 schemas are an extended subset of an old JSON Schema draft
(``nullable``, boolean ``exclusiveMinimum``, ``type: file``, ``example``); 3.1
schemas are 2020-12 already but real 3.1 documents still carry 3.0 habits
(Resend mixes ``nullable`` with type arrays). Everything the engine does with a
schema (input validation, sandbox responses, sample generation) uses
``jsonschema.Draft202012Validator``, so every schema leaves the document layer
in that dialect and is checked against its metaschema; a keyword that still
fails the check is dropped with a warning rather than failing the import.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ..errors import Problem
from ._refs import join

_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
# OpenAPI-only keywords with no JSON Schema meaning; dropped so the output is plain JSON Schema.
_DROP = frozenset({"nullable", "x-nullable", "discriminator", "xml", "externalDocs", "$schema", "$id", "example"})
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
    "unevaluatedProperties", "unevaluatedItems", "additionalItems",
)
_MAX_REPAIRS = 50
# what Draft202012Validator.check_schema uses, built once
_META = Draft202012Validator(Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def to_json_schema(schema: Any) -> dict | bool:
    """Rewrite one OpenAPI schema (refs already inlined) as a draft 2020-12 JSON Schema; returns a new object."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or key.startswith("x-"):
            continue
        if key in _SCHEMA_MAPS:
            if isinstance(value, dict):
                out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            if isinstance(value, list):
                out[key] = [to_json_schema(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = to_json_schema(value) if isinstance(value, (dict, bool)) else {}
        elif key == "items":
            if isinstance(value, list):  # draft-4 tuple form
                out["prefixItems"] = [to_json_schema(sub) for sub in value]
            else:
                out["items"] = to_json_schema(value)
        elif key == "required":
            if isinstance(value, list):
                out["required"] = list(dict.fromkeys(str(v) for v in value))
        else:
            out[key] = value
    if "examples" in out and not isinstance(out["examples"], list):
        out.pop("examples")  # a media-type style examples map leaked into a schema
    if "example" in schema and "examples" not in out:
        out["examples"] = [schema["example"]]
    _fix_types(out)
    _fix_exclusive(out, "exclusiveMinimum", "minimum")
    _fix_exclusive(out, "exclusiveMaximum", "maximum")
    if schema.get("nullable") is True or schema.get("x-nullable") is True:
        out = _nullable(out)
    return out


def _fix_types(out: dict) -> None:
    declared = out.get("type")
    if declared is None:
        return
    names = declared if isinstance(declared, list) else [declared]
    kept: list[str] = []
    for name in names:
        if name == "file":  # Swagger 2.0 upload
            kept.append("string")
            out.setdefault("format", "binary")
        elif name in _TYPES and name not in kept:
            kept.append(name)
    if not kept:
        out.pop("type")
    else:
        out["type"] = kept[0] if len(kept) == 1 else kept


def _fix_exclusive(out: dict, exclusive: str, bound: str) -> None:
    value = out.get(exclusive)
    if isinstance(value, bool):
        if value and isinstance(out.get(bound), (int, float)):
            out[exclusive] = out.pop(bound)
        else:
            out.pop(exclusive)


def _nullable(out: dict) -> dict:
    declared = out.get("type")
    if isinstance(declared, str):
        out["type"] = [declared, "null"] if declared != "null" else "null"
    elif isinstance(declared, list):
        if "null" not in declared:
            out["type"] = [*declared, "null"]
    else:
        # no type to widen (allOf/oneOf/...): allow null beside whatever it is
        return {"anyOf": [out, {"type": "null"}]}
    if isinstance(out.get("enum"), list) and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def checked(schema: Any, pointer: str, warnings: list[Problem]) -> dict | bool:
    """Convert ``schema`` (see :func:`to_json_schema`) and make it pass the 2020-12 metaschema.

    Each keyword that fails the metaschema is removed and reported as a warning
    at ``pointer`` plus the keyword's path inside the schema.
    """
    out = to_json_schema(schema)
    if isinstance(out, bool) or _valid(json.dumps(out, sort_keys=True)):
        return out
    for _ in range(_MAX_REPAIRS):
        error = best_match(_META.iter_errors(out))
        if error is None:
            return out
        path = list(error.absolute_path)
        if not path:
            warnings.append(Problem(pointer, f"schema is not valid JSON Schema ({error.message}); replaced by {{}}"))
            return {}
        parent: Any = out
        for part in path[:-1]:
            parent = parent[part]
        where = join(pointer, *path)
        warnings.append(Problem(where, f"dropped: not valid JSON Schema ({_short(error.message)})"))
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, list):
            parent[path[-1]] = {}
    warnings.append(Problem(pointer, "schema could not be repaired into valid JSON Schema; replaced by {}"))
    return {}


@lru_cache(maxsize=4096)
def _valid(schema_json: str) -> bool:
    # Checking against the 2020-12 metaschema dominates import time for large documents
    # (its $dynamicRef is slow); the same schemas recur across loads of one document.
    return _META.is_valid(json.loads(schema_json))


def _short(text: str, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unrequire(schema: Any, flag: str) -> Any:
    """A copy of ``schema`` where properties marked ``flag`` (``readOnly``/``writeOnly``) are no longer required.

    OpenAPI: a required read-only property is required in responses only, a
    write-only one in requests only. The properties themselves stay (a request
    MAY carry a read-only one: Cin7 updates a customer by sending its read-only
    ID), only the requirement goes.
    """
    if isinstance(schema, list):
        return [unrequire(item, flag) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: unrequire(sub, flag) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS or key in _SCHEMA_ONE or key == "items":
            out[key] = unrequire(value, flag)
        else:
            out[key] = value
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    flagged = {name for name, sub in properties.items() if isinstance(sub, dict) and sub.get(flag) is True}
    if flagged and isinstance(out.get("required"), list):
        out["required"] = [name for name in out["required"] if name not in flagged]
        if not out["required"]:
            del out["required"]
    return out
