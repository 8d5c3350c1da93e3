"""Shared schemas in a connector spec: ``$defs`` and the ``$ref``s that point into it.

An imported connector keeps each schema its document reuses once, in the
connector's top-level ``$defs`` map, and its actions' and events' schemas
refer to it as ``{"$ref": "#/$defs/<name>"}`` (JSON Schema 2020-12; the
pointer is also the schema's place in the connector document itself). Only
local references are allowed in a spec: nothing is ever fetched to validate.

Code that walks a schema (samples, sandboxes, field paths) follows a
reference with :func:`deref`; code that validates with ``jsonschema`` gives
it :func:`with_defs` of the schema, a standalone JSON Schema. Shared schemas
may be recursive (a tree node whose children are tree nodes): walkers bound
their depth or keep a visited set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

DEFS_PREFIX = "#/$defs/"
# How many references in a row deref follows (a ref to a ref to ...) before giving up.
_MAX_CHAIN = 32
# Keys whose values are data, never schemas: a "$ref" in an example is not a reference.
_DATA_KEYS = frozenset({"example", "examples", "default", "enum", "const"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


def def_ref(name: str) -> str:
    """The ``$ref`` value naming the shared schema ``name``: ``#/$defs/<name>`` (escaped as a JSON pointer)."""
    return DEFS_PREFIX + name.replace("~", "~0").replace("/", "~1")


def ref_name(ref: str) -> str | None:
    """The shared schema a ``#/$defs/<name>`` reference names (None for any other reference)."""
    if not ref.startswith(DEFS_PREFIX):
        return None
    return _unescape(unquote(ref[len(DEFS_PREFIX):]).split("/", 1)[0])


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def deref(node: Any, defs: Mapping[str, Any] | None, root: Any = None) -> Any:
    """``node`` with its ``$ref`` followed: the shared schema it names, with the node's other keywords over it.

    ``#/$defs/<name>[/more]`` is looked up in ``defs`` (then in ``root``'s own
    ``$defs``); any other local pointer (``#/properties/a``) in ``root`` when
    given. A chain of references is followed to its end. A reference that
    leads nowhere, or round in a circle, gives its node without the ``$ref``
    (no constraint beyond the node's own keywords). Nodes without a ``$ref``
    are returned as they are (not copied).
    """
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if ref in seen or len(seen) >= _MAX_CHAIN:
            return siblings
        seen.add(ref)
        target = _lookup(ref, defs, root)
        if target is None:
            return siblings
        if target is True:
            target = {}
        if not isinstance(target, dict):  # false: nothing validates
            return {"not": {}, **siblings}
        node = {**target, **siblings} if siblings else target
    return node


def _lookup(ref: str, defs: Mapping[str, Any] | None, root: Any) -> Any:
    if not ref.startswith("#"):
        return None
    tokens = [_unescape(t) for t in unquote(ref[1:]).split("/")[1:]] if ref != "#" else []
    if ref.startswith(DEFS_PREFIX) and len(tokens) > 1:
        tokens = tokens[1:]  # past "$defs"
        name = tokens[0]
        own = root.get("$defs") if isinstance(root, dict) and isinstance(root.get("$defs"), dict) else {}
        if name in own:
            node: Any = own[name]
        elif defs is not None and name in defs:
            node = defs[name]
        else:
            return None
        tokens = tokens[1:]
    elif root is not None:
        node = root
    else:
        return None
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def with_defs(schema: Any, defs: Mapping[str, Any] | None) -> Any:
    """``schema`` as a standalone JSON Schema: the connector's ``$defs`` beside its own (its own win).

    Shallow (nothing is copied but the top-level mapping), so cheap to call.
    A schema without references, or no ``defs``, is returned as it is.
    """
    if not defs or not isinstance(schema, dict):
        return schema
    own = schema.get("$defs")
    merged = {**defs, **own} if isinstance(own, dict) else defs
    return {**schema, "$defs": merged}


def iter_refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(pointer, ref)`` for every ``$ref`` in a schema (not in examples, defaults, enums or consts)."""
    stack: list[tuple[Any, str, bool]] = [(node, pointer, False)]
    while stack:
        current, at, names = stack.pop()
        if isinstance(current, list):
            stack.extend((v, f"{at}/{i}", False) for i, v in reversed(list(enumerate(current))))
            continue
        if not isinstance(current, dict):
            continue
        if not names and isinstance(current.get("$ref"), str):
            yield at, current["$ref"]
        for key, value in reversed(list(current.items())):
            if names:
                stack.append((value, f"{at}/{_escape(key)}", False))
            elif key in _DATA_KEYS or key.startswith("x-"):
                continue
            else:
                stack.append((value, f"{at}/{_escape(key)}", key in _SCHEMA_MAPS))


def _escape(token: Any) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def unresolved_refs(schema: Any, defs: Mapping[str, Any] | None, pointer: str = "") -> list[tuple[str, str, str]]:
    """``(pointer, ref, why)`` for each reference in ``schema`` a connector spec cannot hold.

    Refused: a reference to anything but this document (a URL or a file:
    nothing is fetched), and a ``#/$defs/<name>`` whose name is in neither the
    connector's ``$defs`` nor the schema's own. Other local pointers are left
    to the validator, which reports them when the schema is applied.
    """
    own = schema.get("$defs") if isinstance(schema, dict) and isinstance(schema.get("$defs"), dict) else {}
    found = []
    for at, ref in iter_refs(schema, pointer):
        if not ref.startswith("#"):
            found.append((at, ref, "only local references (#/$defs/<name>) are allowed in a spec; nothing is fetched"))
            continue
        name = ref_name(ref)
        if name is not None and name not in own and (defs is None or name not in defs):
            found.append((at, ref, f"names no schema in $defs ({name!r})"))
    return found
