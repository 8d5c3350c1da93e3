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
from ..specs._refs import def_ref, deref, iter_refs, ref_name
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


def unrequire(schema: Any, flag: str, shared: "SharedSchemas | None" = None) -> Any:
    """A copy of ``schema`` where properties marked ``flag`` (``readOnly``/``writeOnly``) are no longer required.

    OpenAPI: a required read-only property is required in responses only, a
    write-only one in requests only. The properties themselves stay (a request
    MAY carry a read-only one: Cin7 updates a customer by sending its read-only
    ID), only the requirement goes. With ``shared``, a reference to a shared
    schema that requires such a property (itself or below) is pointed at that
    schema's view (see :meth:`SharedSchemas.view`); other references stay.
    """
    if isinstance(schema, list):
        return [unrequire(item, flag, shared) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: unrequire(sub, flag, shared) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS or key in _SCHEMA_ONE or key == "items":
            out[key] = unrequire(value, flag, shared)
        elif key == "$ref" and shared is not None and isinstance(value, str):
            out[key] = shared.view(value, flag)
        else:
            out[key] = value
    flagged = _flagged(schema, flag, shared.defs if shared is not None else None)
    if flagged and isinstance(out.get("required"), list):
        out["required"] = [name for name in out["required"] if name not in flagged]
        if not out["required"]:
            del out["required"]
    return out


def _flagged(schema: dict, flag: str, defs: dict | None) -> set[str]:
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    return {name for name, sub in properties.items()
            if isinstance(target := deref(sub, defs), dict) and target.get(flag) is True}


class SharedSchemas:
    """The shared schemas of an imported connector (``$defs``), and their request and response views.

    A view of a shared schema is the schema with :func:`unrequire` applied,
    kept beside it as ``<name>.request`` (``readOnly`` properties not
    required) or ``<name>.response`` (``writeOnly`` ones); it is made only for
    schemas that need it, those requiring a flagged property themselves or
    through the schemas they refer to. Everything else is shared as it is.
    """

    _SUFFIX = {"readOnly": "request", "writeOnly": "response"}

    def __init__(self, defs: dict[str, Any]):
        self.defs: dict[str, Any] = dict(defs)
        self._base = frozenset(defs)
        self._needs: dict[str, frozenset[str]] = {}
        self._views: dict[tuple[str, str], str] = {}

    def view(self, ref: str, flag: str) -> str:
        """The reference to use for ``ref`` in the ``flag`` view: ``ref`` itself, or its view's."""
        name = ref_name(ref)
        if name is None or name not in self._base or name not in self._needing(flag):
            return ref
        key = (name, flag)
        if key not in self._views:
            view_name, index = f"{name}.{self._SUFFIX[flag]}", 2
            while view_name in self.defs:
                view_name, index = f"{name}.{self._SUFFIX[flag]}_{index}", index + 1
            self._views[key] = view_name
            self.defs[view_name] = {}  # taken before it is made: the schema may refer to itself
            self.defs[view_name] = unrequire(self.defs[name], flag, self)
        return def_ref(self._views[key])

    def _needing(self, flag: str) -> frozenset[str]:
        """Names of the shared schemas whose view differs: they require a flagged property, or refer to one that does."""
        if flag not in self._needs:
            base = {name: self.defs[name] for name in self._base}
            referrers: dict[str, set[str]] = {}
            needing: set[str] = set()
            for name, schema in base.items():
                for _, ref in iter_refs(schema):
                    target = ref_name(ref)
                    if target is not None:
                        referrers.setdefault(target, set()).add(name)
                if _requires_flagged(schema, flag, self.defs):
                    needing.add(name)
            queue = list(needing)
            while queue:
                for referrer in referrers.get(queue.pop(), ()):
                    if referrer not in needing:
                        needing.add(referrer)
                        queue.append(referrer)
            self._needs[flag] = frozenset(needing)
        return self._needs[flag]

    def reachable(self, schemas: list[Any]) -> dict[str, Any]:
        """The shared schemas (views included) that ``schemas`` refer to, directly or not, sorted by name."""
        seen: set[str] = set()
        queue = [ref for schema in schemas for _, ref in iter_refs(schema)]
        while queue:
            name = ref_name(queue.pop())
            if name is not None and name in self.defs and name not in seen:
                seen.add(name)
                queue.extend(ref for _, ref in iter_refs(self.defs[name]))
        return {name: self.defs[name] for name in sorted(seen)}


def _requires_flagged(schema: Any, flag: str, defs: dict) -> bool:
    """Whether ``schema``, not following its references, requires a property marked ``flag``."""
    if isinstance(schema, list):
        return any(_requires_flagged(item, flag, defs) for item in schema)
    if not isinstance(schema, dict):
        return False
    required = schema.get("required")
    if isinstance(required, list) and required and set(required) & _flagged(schema, flag, defs):
        return True
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            if any(_requires_flagged(sub, flag, defs) for sub in value.values()):
                return True
        elif (key in _SCHEMA_LISTS or key in _SCHEMA_ONE or key == "items") and _requires_flagged(value, flag, defs):
            return True
    return False
