"""The common data model: a shared vocabulary for field mapping.

Six kinds of record (contact, company, customer, order, product, invoice) as
JSON Schemas. Each property lists ``x-aliases``: the paths under which apps
commonly keep it (``properties.email`` in HubSpot, ``Contacts.Email`` in
Cin7). Mapping goes through the model: a source field and a target field
that are aliases of the same model property are proposed as a pair, so an
agent (or a person) starts from a mapping instead of a blank page.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from ..errors import Problem, SpecValidationError
from ..expressions import quote_field
from ..specs import deref

KINDS = ("contact", "company", "customer", "order", "product", "invoice")


@lru_cache(maxsize=None)
def model_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind of record.

    Raises:
        KeyError: for a kind outside :data:`KINDS`.
    """
    if kind not in KINDS:
        raise KeyError(f"unknown data model kind {kind!r} (known: {', '.join(KINDS)})")
    text = resources.files(__package__).joinpath("schemas", f"{kind}.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_record(kind: str, record: Any) -> None:
    """Check a record against the model.

    Raises:
        SpecValidationError: naming each invalid field by JSON pointer.
    """
    validator = Draft202012Validator(model_schema(kind))
    problems = [
        Problem("/" + "/".join(str(p) for p in e.absolute_path), e.message)
        for e in sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        raise SpecValidationError(kind, problems)


def schema_paths(schema: dict[str, Any], prefix: str = "", depth: int = 0,
                 defs: dict[str, Any] | None = None, *, writable: bool = False) -> list[str]:
    """Dotted paths of the scalar fields of a JSON Schema; an array of objects adds ``name.field``.

    ``$ref``s to shared schemas are followed: against ``defs`` (a connector's
    ``$defs``), else the root schema's own ``$defs``. Paths stop at depth 5,
    so recursive schemas end. An open object (``additionalProperties``, no
    ``properties``) is ``name.*``. ``writable``: leave out ``readOnly`` fields
    (a target's, which the app sets itself).
    """
    out: list[str] = []
    if defs is None and depth == 0 and isinstance(schema, dict) and isinstance(schema.get("$defs"), dict):
        defs = schema["$defs"]
    schema = deref(schema, defs)
    if depth > 4 or not isinstance(schema, dict):
        return out
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        sub = deref(sub, defs)
        if not isinstance(sub, dict) or (writable and sub.get("readOnly")):
            continue
        kind = sub.get("type")
        items = deref(sub.get("items"), defs)
        if "properties" in sub:
            out += schema_paths(sub, path + ".", depth + 1, defs, writable=writable)
        elif kind == "object" and sub.get("additionalProperties") not in (None, False):
            # An open object (HubSpot's ``properties``): any ``name.field`` may be there.
            out.append(path + ".*")
        elif kind == "object":
            out += schema_paths(sub, path + ".", depth + 1, defs, writable=writable)
        elif kind == "array" and isinstance(items, dict) and "properties" in items:
            out += schema_paths(items, path + ".", depth + 1, defs, writable=writable)
        else:
            out.append(path)
    return out


def _find(paths: list[str], aliases: list[str]) -> str | None:
    # An exact alias wins; then a path that ends with an alias (``properties.email``).
    lowered = {p.lower(): p for p in paths}
    for alias in aliases:
        if alias.lower() in lowered:
            return lowered[alias.lower()]
    for alias in aliases:
        for path in paths:
            if path.lower().endswith("." + alias.lower()):
                return path
    # An alias inside an open object of the schema (``properties.email`` under ``properties.*``).
    for alias in aliases:
        head, _, rest = alias.rpartition(".")
        for path in paths:
            if head and (path.lower() == head.lower() + ".*" or path.lower().endswith("." + head.lower() + ".*")):
                return path[:-1] + rest
    return None


def suggest_mapping(kind: str, source_schema: dict[str, Any], target_schema: dict[str, Any], *, source_var: str = "source") -> dict[str, Any]:
    """Propose a ``map`` template from source records to target records of one model kind.

    Returns a template whose keys are target fields and whose values are
    ``{{ source.path }}`` expressions; a target field inside an array of
    objects (``Contacts.Email``) becomes a one-element list. Fields without a
    counterpart on both sides are left out.
    """
    model = model_schema(kind)
    source_paths = schema_paths(source_schema)
    target_paths = schema_paths(target_schema, writable=True)
    mapping: dict[str, Any] = {}
    def ref(path: str) -> str:
        return source_var + "." + ".".join(quote_field(p) for p in path.split("."))

    props = model["properties"]
    for name, prop in props.items():
        if name == "id":
            continue  # identities belong to each app; matching, not mapping, relates them
        aliases = prop.get("x-aliases") or []
        source = _find(source_paths, aliases)
        target = _find(target_paths, aliases)
        if not target:
            continue
        if source:
            expression = "{{ " + ref(source) + " }}"
        elif name == "full_name" and "first_name" in props and "last_name" in props:
            # A full name the source keeps in two parts (HubSpot's firstname and lastname).
            first = _find(source_paths, props["first_name"].get("x-aliases") or [])
            last = _find(source_paths, props["last_name"].get("x-aliases") or [])
            if not (first and last):
                continue
            expression = "{{ $trim($join([" + ref(first) + ", " + ref(last) + "], ' ')) }}"
        else:
            continue
        head, _, rest = target.partition(".")
        if rest:
            holder = mapping.setdefault(head, [{}])
            if isinstance(holder, list) and isinstance(holder[0], dict):
                holder[0].setdefault(rest, expression)
        else:
            mapping.setdefault(head, expression)
    return mapping
