"""Deterministic sample instances of JSON Schemas.

``sample_from_schema`` builds a value that validates against a schema, the
same value for the same schema and seed on every run and machine: each node
draws from its own ``random.Random`` seeded by ``seed`` and the node's
position, so a change in one branch of a schema does not reshuffle the rest.

Documented values come first (``const``, ``examples``, ``example``,
``default``, ``enum``), but only when they validate: real documents carry
examples that contradict their own schemas. Strings honour the common
formats, length bounds and ``pattern`` (patterns are expanded with ``rstr``,
which samples a regular expression from a seeded ``Random``).

OpenAPI's ``readOnly`` and ``writeOnly`` are honoured through views
(``schema_view``): a request never needs a ``readOnly`` property and a
response never carries a ``writeOnly`` one, even where ``required`` lists it.

Local references are followed against the root schema: imported connectors
keep shared schemas in ``$defs`` (``{"$ref": "#/$defs/<name>"}``), and their
action schemas are given here with the connector's ``$defs`` attached
(``ConnectorSpec.standalone``). Shared schemas may be recursive: generation is
bounded by depth, and only the shared schemas a schema reaches are viewed.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import re
import string
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
import jsonschema_rs
import rstr

from .specs import deref, with_defs
from .specs._refs import ref_name

__all__ = ["is_valid", "merge_all_of", "sample_from_schema", "schema_view", "validator_for"]

# Past this nesting depth only required members are generated; past the hard
# limit nothing is (a schema whose required members recurse has no finite instance).
_SOFT_DEPTH = 8
_HARD_DEPTH = 24
_ALNUM = string.ascii_lowercase + string.digits
_FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


def validator_for(schema: Any) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator for ``schema`` that also checks formats."""
    return jsonschema.Draft202012Validator(schema, format_checker=_FORMAT_CHECKER)


# Compiled jsonschema-rs validators by the identity of a schema's parts. Schemas are never
# changed once built, and callers make fresh top-level mappings of the same parts on every call
# (``with_defs``), so the key is the identity of each top-level value (and of each shared
# schema in ``$defs``); the schema is kept with its validator, so no id in a key is reused.
_FAST_SIZE = 512
_fast: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()
_fast_lock = threading.Lock()


def _parts_key(schema: dict) -> tuple:
    return tuple(
        (name, tuple((n, id(d)) for n, d in value.items()) if name == "$defs" and isinstance(value, dict) else id(value))
        for name, value in schema.items()
    )


def _fast_validator(schema: dict) -> Any:
    key = _parts_key(schema)
    with _fast_lock:
        held = _fast.get(key)
        if held is not None:
            _fast.move_to_end(key)
            return held[1]
    try:
        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    except Exception:  # noqa: BLE001 - a schema jsonschema-rs will not compile is left to jsonschema
        validator = None
    with _fast_lock:
        _fast[key] = (schema, validator)
        if len(_fast) > _FAST_SIZE:
            _fast.popitem(last=False)
    return validator


def is_valid(instance: Any, schema: Any) -> bool:
    """True when ``instance`` validates against ``schema`` (a schema that cannot be evaluated counts as invalid).

    jsonschema-rs answers first (about ten times faster: sandboxes validate every record they
    answer with); a "no" from it, or a schema it cannot compile, is decided by jsonschema, the
    reference, so the answer never depends on where the two disagree on what is invalid.
    """
    if schema is True or schema == {}:
        return True
    if isinstance(schema, dict):
        fast = _fast_validator(schema)
        try:
            if fast is not None and fast.is_valid(instance):
                return True
        except Exception:  # noqa: BLE001 - e.g. a value jsonschema-rs cannot take; jsonschema decides
            pass
    try:
        return validator_for(schema).is_valid(instance)
    except Exception:  # noqa: BLE001 - a broken schema (or an unresolvable ref) is a "no", not a crash
        return False


def sample_from_schema(
    schema: Any,
    *,
    seed: str = "",
    required_only: bool = False,
    for_request: bool = False,
) -> Any:
    """Return an instance of ``schema``, deterministic for the same ``seed``.

    ``required_only`` leaves out optional object properties (and makes arrays
    as short as ``minItems`` allows); ``for_request`` builds a request body, so
    ``readOnly`` properties are left out, otherwise a response, so
    ``writeOnly`` ones are. The result validates against
    ``schema_view(schema, for_request=for_request)``; for documents whose
    schemas contradict themselves it is the closest attempt.
    """
    view = schema_view(schema, for_request=for_request)
    generator = _Generator(view, seed=seed, required_only=required_only, for_request=for_request)
    return generator.generate(view, "", 0, hint="")


# -- views -----------------------------------------------------------------


def schema_view(schema: Any, *, for_request: bool) -> Any:
    """A copy of ``schema`` as seen by a request (``for_request=True``) or a response.

    In a request view ``readOnly`` properties are no longer required (they may
    still be sent, and are ignored); in a response view ``writeOnly`` ones are
    not. Everything else is kept, and ``nullable: true`` (OpenAPI 3.0) becomes
    a type array with ``"null"``. Of the root's ``$defs``, only those the
    schema refers to (directly or not) are viewed and kept: a connector's
    ``$defs`` may hold hundreds of schemas an action never uses.
    """
    flag = "readOnly" if for_request else "writeOnly"
    memo: dict[int, Any] = {}
    defs = schema.get("$defs") if isinstance(schema, dict) and isinstance(schema.get("$defs"), dict) else None
    pending: list[str] = []
    reached: set[str] = set()

    def note(ref: Any) -> None:
        name = ref_name(ref) if defs is not None and isinstance(ref, str) else None
        if name is not None and name in defs and name not in reached:
            reached.add(name)
            pending.append(name)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        if id(node) in memo:
            return memo[id(node)]
        out: dict[str, Any] = {}
        memo[id(node)] = out
        note(node.get("$ref"))
        for key, value in node.items():
            if key in ("example", "examples", "default", "enum", "const") or key.startswith("x-"):
                out[key] = value
            elif key == "$defs" and node is schema and defs is not None:
                continue  # the reached ones are viewed below
            elif key in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"):
                out[key] = {k: walk(v) for k, v in value.items()} if isinstance(value, dict) else value
            else:
                out[key] = walk(value)
        if out.pop("nullable", False) is True:
            _add_null(out)
        props = out.get("properties")
        if isinstance(props, dict) and isinstance(out.get("required"), list):
            skipped = {k for k, v in props.items() if isinstance(v, dict) and v.get(flag) is True}
            if skipped:
                out["required"] = [r for r in out["required"] if r not in skipped]
        return out

    view = walk(schema)
    if defs is not None and isinstance(view, dict):
        viewed: dict[str, Any] = {}
        while pending:
            name = pending.pop()
            viewed[name] = walk(defs[name])
        view["$defs"] = dict(sorted(viewed.items()))
    return view


def _add_null(node: dict) -> None:
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        node["type"] = [*kind, "null"]
    elif "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]


# -- allOf -----------------------------------------------------------------


def merge_all_of(schema: Any, defs: Mapping[str, Any] | None = None, _depth: int = 0) -> Any:
    """``schema`` with its ``allOf`` branches folded into one schema (recursively at the top level only).

    Properties are merged by name, ``required`` united, bounds tightened and
    types intersected; where branches disagree on anything else the first
    wins. The result is a convenient approximation for reading a schema's
    shape; validate against the original. With ``defs`` (a connector's shared
    schemas), ``schema`` and its branches are followed through their ``$ref``.
    """
    if defs is not None:
        schema = deref(schema, defs)
    if not isinstance(schema, dict) or "allOf" not in schema or _depth > _HARD_DEPTH:
        return schema
    base = {k: v for k, v in schema.items() if k != "allOf"}
    merged: dict[str, Any] = {}
    for part in [base, *schema["allOf"]]:
        merged = _merge(merged, merge_all_of(part, defs, _depth + 1) if isinstance(part, dict) else {})
    return merged


_MAX_KEYS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_MIN_KEYS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key == "properties" and isinstance(mine, dict) and isinstance(value, dict):
            props = dict(mine)
            for name, sub in value.items():
                if name in props and isinstance(props[name], dict) and isinstance(sub, dict):
                    props[name] = _merge(merge_all_of(props[name]), merge_all_of(sub))
                else:
                    props[name] = sub
            out[key] = props
        elif key == "required" and isinstance(mine, list) and isinstance(value, list):
            out[key] = [*mine, *[r for r in value if r not in mine]]
        elif key == "type":
            left = [mine] if isinstance(mine, str) else list(mine)
            right = [value] if isinstance(value, str) else list(value)
            both = [t for t in left if t in right or (t == "number" and "integer" in right)]
            both = ["integer" if t == "number" and "integer" in right else t for t in both]
            out[key] = (both[0] if len(both) == 1 else both) if both else value
        elif key in _MAX_KEYS and _is_number(mine) and _is_number(value):
            out[key] = max(mine, value)
        elif key in _MIN_KEYS and _is_number(mine) and _is_number(value):
            out[key] = min(mine, value)
        elif key == "enum" and isinstance(mine, list) and isinstance(value, list):
            common = [v for v in mine if v in value]
            out[key] = common or mine
        elif key in ("items", "additionalProperties") and isinstance(mine, dict) and isinstance(value, dict):
            out[key] = _merge(merge_all_of(mine), merge_all_of(value))
        elif key == "additionalProperties" and value is False:
            out[key] = False
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- generation --------------------------------------------------------------


class _Generator:
    def __init__(self, root: Any, *, seed: str, required_only: bool, for_request: bool):
        self.root = root
        self.defs = root.get("$defs") if isinstance(root, dict) and isinstance(root.get("$defs"), dict) else None
        self.seed = seed
        self.nesting = 0
        self.open: set[tuple[str, int]] = set()
        self.required_only = required_only
        self.skip_flag = "readOnly" if for_request else "writeOnly"

    def rng(self, path: str) -> random.Random:
        return random.Random(f"{self.seed}\x1f{path}")

    def _nested(self, schema: Any, path: str, depth: int, hint: str) -> Any:
        # allOf and oneOf/anyOf branches are generated at their schema's depth; their nesting is counted apart
        self.nesting += 1
        try:
            return self.generate(schema, path, depth, hint)
        finally:
            self.nesting -= 1

    def valid(self, instance: Any, schema: Any) -> bool:
        """``is_valid`` for a part of the root schema: its references resolve against the root's ``$defs``."""
        return is_valid(instance, with_defs(schema, self.defs) if schema is not self.root else schema)

    def generate(self, schema: Any, path: str, depth: int, hint: str) -> Any:
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str):
            return self._generate(schema, path, depth, hint)
        # A shared schema met again at the same depth was reached through its own allOf or
        # oneOf (A: oneOf [A, B]): expanding it once more makes no progress.
        if (ref, depth) in self.open:
            return None
        self.open.add((ref, depth))
        try:
            return self._generate(schema, path, depth, hint)
        finally:
            self.open.discard((ref, depth))

    def _generate(self, schema: Any, path: str, depth: int, hint: str) -> Any:
        if schema is True or not isinstance(schema, dict):
            return _text_sample(hint, self.rng(path))
        schema = self._deref(schema)
        if not isinstance(schema, dict):
            return _text_sample(hint, self.rng(path))
        for candidate in _documented_values(schema):
            if self.valid(candidate, schema):
                return copy.deepcopy(candidate)
        if ("allOf" in schema or "oneOf" in schema or "anyOf" in schema) and self.nesting > _HARD_DEPTH:
            return None  # shared schemas can be made of themselves (A: oneOf [A, B]): no finite end
        if "allOf" in schema:
            merged = merge_all_of(schema, self.defs)
            value = self._nested(merged, path, depth, hint)
            return value if self.valid(value, schema) else self._retry(schema, merged, path, depth, hint, value)
        branches = schema.get("oneOf") or schema.get("anyOf")
        if isinstance(branches, list) and branches:
            return self._branches(schema, branches, path, depth, hint)
        kinds = _types(schema)
        kind = next((k for k in kinds if k != "null"), "null")
        if depth > _HARD_DEPTH:
            return None if "null" in kinds else {} if kind == "object" else [] if kind == "array" else None
        return self._make(kind, schema, path, depth, hint)

    def _retry(self, schema, merged, path, depth, hint, first):
        # a merged allOf can miss what a branch says; try a few other seeds
        for attempt in range(1, 4):
            value = self._nested(merged, f"{path}#{attempt}", depth, hint)
            if self.valid(value, schema):
                return value
        return first

    def _branches(self, schema: dict, branches: list, path: str, depth: int, hint: str) -> Any:
        base = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
        first = None
        for index, branch in enumerate(branches):
            if not isinstance(branch, dict) or (branch.get("$ref"), depth) in self.open:
                continue
            branch = self._deref(branch)
            # a branch that is only "null" is a last resort: samples should show data
            if _types(branch) == ["null"] and index < len(branches) - 1:
                continue
            value = self._nested(merge_all_of({"allOf": [base, branch]}, self.defs), f"{path}|{index}", depth, hint)
            if first is None:
                first = value
            if self.valid(value, schema):
                return value
            if "oneOf" in schema:
                others = [b for i, b in enumerate(branches) if i != index and isinstance(b, dict)]
                separated = _separate(value, branch, others, self)
                if separated is not None and self.valid(separated, schema):
                    return separated
        return first

    def _make(self, kind: str, schema: dict, path: str, depth: int, hint: str) -> Any:
        rng = self.rng(path)
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth, hint)
        if kind == "string":
            return _string(schema, rng, hint)
        if kind == "integer":
            return _integer(schema, rng)
        if kind == "number":
            return _number(schema, rng)
        if kind == "boolean":
            return rng.random() < 0.5
        return None

    def _object(self, schema: dict, path: str, depth: int) -> dict:
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        only_required = self.required_only or depth >= _SOFT_DEPTH
        out: dict[str, Any] = {}
        for name, sub in props.items():
            # a flagged property is left out unless another branch (allOf) requires it after all
            if isinstance(sub, dict) and sub.get(self.skip_flag) is True and name not in required:
                continue
            if name in required or not only_required:
                out[name] = self.generate(sub, f"{path}/{name}", depth + 1, name)
        extra = schema.get("additionalProperties")
        for name in required:
            if name not in out:
                sub = extra if isinstance(extra, dict) else {}
                out[name] = self.generate(sub, f"{path}/{name}", depth + 1, name)
        wanted = schema.get("minProperties", 0)
        if not props and isinstance(extra, dict) and not only_required:
            wanted = max(wanted, 1)
        counter = 0
        while len(out) < wanted and counter < 100:
            counter += 1
            spare = next((n for n in props if n not in out), None)
            if spare is not None:
                out[spare] = self.generate(props[spare], f"{path}/{spare}", depth + 1, spare)
            elif extra is not False:
                key = f"key{counter}"
                out[key] = self.generate(extra if isinstance(extra, dict) else {"type": "string"}, f"{path}/{key}", depth + 1, key)
            else:
                break
        return out

    def _array(self, schema: dict, path: str, depth: int, hint: str) -> list:
        items = schema.get("items")
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        if self.required_only or depth >= _SOFT_DEPTH or items is False:
            count = low
        else:
            count = max(low, 1)
        if isinstance(high, int):
            count = min(count, high)
        count = max(count, len(prefix)) if not self.required_only else count
        out: list[Any] = []
        seen: set[str] = set()
        attempts = 0
        while len(out) < count and attempts < count + 20:
            index = len(out)
            sub = prefix[index] if index < len(prefix) else (items if isinstance(items, dict) else {})
            value = self.generate(sub, f"{path}/{index}~{attempts}" if attempts >= count else f"{path}/{index}", depth + 1, hint)
            attempts += 1
            if schema.get("uniqueItems"):
                key = json.dumps(value, sort_keys=True, default=str)
                if key in seen:
                    continue
                seen.add(key)
            out.append(value)
        return out

    def _deref(self, schema: dict) -> Any:
        return deref(schema, self.defs, self.root)


_WRONG_VALUES: tuple[Any, ...] = (0, "x", True, [], {})


def _separate(value: Any, own: dict, others: list[dict], generator: _Generator) -> Any:
    """``value`` changed so that it fails every other ``oneOf`` branch while still passing its own, or None.

    Branches that constrain nothing but the types of optional properties overlap
    completely (1Password's cursor request): an object valid under one is valid
    under all. Giving a property that only another branch declares a value that
    branch rejects is the one way such a ``oneOf`` can be satisfied.
    """
    if not isinstance(value, dict):
        return None
    valid, defs = generator.valid, generator.defs
    own_props = merge_all_of(own, defs).get("properties") or {}
    result = dict(value)
    for other in others:
        if not valid(result, other):
            continue
        other_props = merge_all_of(other, defs).get("properties") or {}
        for name, sub in other_props.items():
            if name in own_props or not isinstance(sub, dict):
                continue
            wrong = next((w for w in _WRONG_VALUES if not valid(w, sub)), None)
            if wrong is None:
                continue
            candidate = {**result, name: wrong}
            if valid(candidate, own) and not valid(candidate, other):
                result = candidate
                break
        else:
            return None
    return result


def _documented_values(schema: dict) -> list[Any]:
    values: list[Any] = []
    if "const" in schema:
        values.append(schema["const"])
    examples = schema.get("examples")
    if isinstance(examples, list):
        values.extend(examples)
    if "example" in schema:
        values.append(schema["example"])
    if "default" in schema:
        values.append(schema["default"])
    enum = schema.get("enum")
    if isinstance(enum, list):
        # prefer a real value over null, which many documents append to nullable enums
        values.extend([v for v in enum if v is not None] + [v for v in enum if v is None])
    return values


def _types(schema: dict) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        kinds = [kind]
    elif isinstance(kind, list) and kind:
        kinds = sorted((k for k in kind if isinstance(k, str)), key=lambda k: k == "null")
    elif any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties", "patternProperties")):
        kinds = ["object"]
    elif any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")):
        kinds = ["array"]
    elif any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        kinds = ["number"]
    else:
        kinds = ["string"]
    if schema.get("nullable") is True and "null" not in kinds:
        kinds.append("null")
    return kinds


# -- scalars -----------------------------------------------------------------


def _alnum(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(length))


def _date(rng: random.Random) -> str:
    return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "email": lambda r: f"user.{_alnum(r, 6)}@example.com",
    "idn-email": lambda r: f"user.{_alnum(r, 6)}@example.com",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "date": _date,
    "date-time": lambda r: f"{_date(r)}T{_time(r)}",
    "time": _time,
    "uri": lambda r: f"https://example.com/{_alnum(r, 8)}",
    "url": lambda r: f"https://example.com/{_alnum(r, 8)}",
    "iri": lambda r: f"https://example.com/{_alnum(r, 8)}",
    "uri-reference": lambda r: f"/{_alnum(r, 8)}",
    "uri-template": lambda r: f"https://example.com/{_alnum(r, 8)}",
    "hostname": lambda r: f"{_alnum(r, 8)}.example.com",
    "idn-hostname": lambda r: f"{_alnum(r, 8)}.example.com",
    "ipv4": lambda r: f"192.0.2.{r.randint(1, 254)}",
    "ipv6": lambda r: f"2001:db8::{r.randint(1, 65535):x}",
    "byte": lambda r: base64.b64encode(_alnum(r, 9).encode()).decode(),
    "binary": lambda r: _alnum(r, 12),
    "password": lambda r: _alnum(r, 12),
    "duration": lambda r: f"PT{r.randint(1, 59)}M",
    "json-pointer": lambda r: f"/{_alnum(r, 6)}",
    "regex": lambda r: "^[a-z]+$",
}


def _text_sample(hint: str, rng: random.Random) -> str:
    word = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:24]
    return f"{word or 'sample'}-{_alnum(rng, 6)}"


def _fit(text: str, low: int, high: int | None, rng: random.Random) -> str:
    if len(text) < low:
        text += _alnum(rng, low - len(text))
    if high is not None and len(text) > high:
        text = text[:high]
    return text


def _string(schema: dict, rng: random.Random, hint: str) -> str:
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    high = int(high) if _is_number(high) else None
    pattern = schema.get("pattern")
    fmt = schema.get("format")
    if isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
            generator = rstr.Rstr(rng)
            for _ in range(20):
                text = generator.xeger(pattern)
                if compiled.search(text) and len(text) >= low and (high is None or len(text) <= high):
                    return text
        except (re.error, ValueError, TypeError, IndexError, OverflowError):
            pass
    if isinstance(fmt, str) and fmt in _FORMATS:
        text = _FORMATS[fmt](rng)
        if len(text) >= low and (high is None or len(text) <= high):
            return text
    text = _text_sample(hint, rng)
    if high is not None and len(text) > high:
        text = _alnum(rng, max(low, min(high, 8)))
    return _fit(text, low, high, rng)


def _bounds(schema: dict, step: float) -> tuple[float, float]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    ex_low = schema.get("exclusiveMinimum")
    ex_high = schema.get("exclusiveMaximum")
    # OpenAPI 3.0 spells exclusivity as booleans next to minimum/maximum
    if ex_low is True and _is_number(low):
        ex_low, low = low, None
    if ex_high is True and _is_number(high):
        ex_high, high = high, None
    lo = low if _is_number(low) else None
    hi = high if _is_number(high) else None
    if _is_number(ex_low):
        lo = max(lo, ex_low + step) if lo is not None else ex_low + step
    if _is_number(ex_high):
        hi = min(hi, ex_high - step) if hi is not None else ex_high - step
    if lo is None:
        lo = 1 if hi is None or hi >= 1 else hi - 99
    if hi is None:
        hi = lo + 99
    return lo, hi


def _integer(schema: dict, rng: random.Random) -> int:
    lo, hi = _bounds(schema, 1)
    lo, hi = math.ceil(lo), math.floor(hi)
    multiple = schema.get("multipleOf")
    if _is_number(multiple) and multiple > 0:
        first, last = math.ceil(lo / multiple), math.floor(hi / multiple)
        if first <= last:
            return int(rng.randint(first, min(last, first + 99)) * multiple)
    return rng.randint(lo, min(hi, lo + 999)) if lo <= hi else lo


def _number(schema: dict, rng: random.Random) -> float | int:
    multiple = schema.get("multipleOf")
    lo, hi = _bounds(schema, 0.01)
    if _is_number(multiple) and multiple > 0:
        first, last = math.ceil(lo / multiple), math.floor(hi / multiple)
        if first <= last:
            value = rng.randint(first, min(last, first + 99)) * multiple
            return int(value) if float(value).is_integer() else round(value, 10)
    if lo > hi:
        return lo
    value = round(rng.uniform(lo, min(hi, lo + 999)), 2)
    return min(max(value, lo), hi)
