"""Sample instances of JSON Schemas: valid, deterministic, honouring what the schema documents."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime

import jsonschema
import pytest
from support.sandbox import SPECS_DIR, load_spec

import engine.samples
from engine.samples import merge_all_of, sample_from_schema, schema_view

VALIDATOR = jsonschema.Draft202012Validator
FORMATS = VALIDATOR.FORMAT_CHECKER
LOADABLE = sorted(p.name for p in SPECS_DIR.iterdir()
                  if p.suffix in (".yaml", ".yml", ".json") and p.name != "oai-petstore-separate-extref-v2.json")


def assert_valid(value, schema, for_request: bool) -> None:
    view = schema_view(schema, for_request=for_request)
    errors = list(VALIDATOR(view, format_checker=FORMATS).iter_errors(value))
    assert not errors, f"{errors[0].message} at {list(errors[0].absolute_path)}"


def _inline(document, node):
    # engine.openapi leaves the $ref of a "default" response in place (reported); resolve it the same way
    if isinstance(node, list):
        return [_inline(document, v) for v in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        return {**document.schema(node["$ref"][1:]), **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: v if k in ("example", "examples", "enum", "const", "default") else _inline(document, v) for k, v in node.items()}


def _schemas(name: str):
    document = load_spec(name)
    for operation in document.operations + document.webhooks:
        where = f"{operation.method} {operation.path}"
        for parameter in operation.parameters:
            yield f"{where} param {parameter.name}", parameter.schema, True
        if operation.request_body is not None:
            yield f"{where} body", operation.request_body.schema, True
        for status, response in operation.responses.items():
            if response.schema is not None:
                yield f"{where} {status}", _inline(document, response.schema), False
    components = document.raw.get("components", {}).get("schemas") or document.raw.get("definitions") or {}
    prefix = "/components/schemas/" if "components" in document.raw else "/definitions/"
    for key in components:
        yield f"{prefix}{key}", document.schema(prefix + key.replace("~", "~0").replace("/", "~1")), False


def test_public_surface() -> None:
    assert sorted(engine.samples.__all__) == ["merge_all_of", "sample_from_schema", "schema_view"]


@pytest.mark.parametrize("name", LOADABLE)
def test_every_schema_of_every_document_gets_a_valid_sample(name: str) -> None:
    count = 0
    for label, schema, for_request in _schemas(name):
        for required_only in (False, True):
            value = sample_from_schema(schema, seed=label, required_only=required_only, for_request=for_request)
            assert_valid(value, schema, for_request)
            assert sample_from_schema(schema, seed=label, required_only=required_only, for_request=for_request) == value
            count += 1
    assert count > 0 or name == "oai-non-oauth-scopes-v3.1.json", "that one declares no schema at all"


def test_documented_values_win_when_they_are_valid() -> None:
    assert sample_from_schema({"type": "string", "const": "fixed"}) == "fixed"
    assert sample_from_schema({"type": "integer", "examples": [42, 7]}) == 42
    assert sample_from_schema({"type": "string", "example": "ex", "default": "def"}) == "ex"
    assert sample_from_schema({"type": "string", "default": "def"}) == "def"
    assert sample_from_schema({"type": ["string", "null"], "enum": [None, "b", "c"]}) == "b"
    # an example that contradicts its own schema is ignored
    assert isinstance(sample_from_schema({"type": "string", "example": 12345}), str)
    assert sample_from_schema({"type": "integer", "minimum": 10, "example": 3}) >= 10


def test_formats_bounds_and_patterns() -> None:
    assert "@" in sample_from_schema({"type": "string", "format": "email"})
    uuid.UUID(sample_from_schema({"type": "string", "format": "uuid"}))
    date.fromisoformat(sample_from_schema({"type": "string", "format": "date"}))
    datetime.fromisoformat(sample_from_schema({"type": "string", "format": "date-time"}).replace("Z", "+00:00"))
    assert sample_from_schema({"type": "string", "format": "uri"}).startswith("https://")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", sample_from_schema({"type": "string", "format": "ipv4"}))
    assert len(sample_from_schema({"type": "string", "minLength": 3, "maxLength": 3})) == 3
    assert len(sample_from_schema({"type": "string", "minLength": 40})) >= 40
    assert re.fullmatch(r"JS[0-9a-fA-F]{32}", sample_from_schema({"type": "string", "pattern": "^JS[0-9a-fA-F]{32}$"}))
    value = sample_from_schema({"type": "integer", "minimum": 5, "maximum": 9})
    assert 5 <= value <= 9
    assert sample_from_schema({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2}) == 1
    assert sample_from_schema({"type": "number", "multipleOf": 0.5, "minimum": 1, "maximum": 1.4}) == 1
    assert len(sample_from_schema({"type": "array", "items": {"type": "string"}, "minItems": 3})) == 3
    unique = sample_from_schema({"type": "array", "items": {"type": "boolean"}, "minItems": 2, "uniqueItems": True})
    assert sorted(unique) == [False, True]


def test_composition_nullable_and_objects() -> None:
    merged = sample_from_schema({"allOf": [
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
        {"type": "object", "required": ["b"], "properties": {"b": {"type": "integer", "minimum": 3}}},
    ]}, required_only=True)
    assert set(merged) == {"a", "b"} and merged["b"] >= 3
    one = {"oneOf": [{"type": "object", "required": ["kind"], "properties": {"kind": {"const": "x"}}},
                     {"type": "object", "required": ["kind"], "properties": {"kind": {"const": "y"}}}]}
    assert sample_from_schema(one) == {"kind": "x"}
    assert sample_from_schema({"anyOf": [{"type": "null"}, {"type": "integer"}]}) is not None
    assert sample_from_schema({"type": "string", "nullable": True}) is not None
    assert sample_from_schema({"type": "null"}) is None
    schema = {"type": "object", "required": ["id", "name"], "properties": {
        "id": {"type": "string", "readOnly": True}, "name": {"type": "string"},
        "password": {"type": "string", "writeOnly": True}, "note": {"type": "string"}}}
    assert set(sample_from_schema(schema, for_request=True)) == {"name", "password", "note"}
    assert set(sample_from_schema(schema)) == {"id", "name", "note"}
    assert set(sample_from_schema(schema, required_only=True)) == {"id", "name"}
    assert sample_from_schema({"type": "object", "additionalProperties": {"type": "integer"}}) != {}
    assert merge_all_of({"allOf": [{"required": ["a"]}, {"required": ["b"], "maxLength": 3}, {"maxLength": 2}]}) == \
        {"required": ["a", "b"], "maxLength": 2}


def test_overlapping_one_of_branches_are_told_apart() -> None:
    # 1Password's cursor request: two branches of optional properties accept the same objects
    schema = {"oneOf": [{"properties": {"cursor": {"type": "string", "example": "abc"}}},
                        {"properties": {"limit": {"type": "number", "minimum": 1}, "start_time": {"type": "string"}}}]}
    for required_only in (False, True):
        value = sample_from_schema(schema, for_request=True, required_only=required_only)
        assert VALIDATOR(schema).is_valid(value), value


def test_deterministic_per_seed() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"},
                                               "id": {"type": "string", "format": "uuid"}}}
    assert sample_from_schema(schema, seed="a") == sample_from_schema(schema, seed="a")
    assert sample_from_schema(schema, seed="a") != sample_from_schema(schema, seed="b")


def test_views_only_relax_required() -> None:
    schema = {"type": "object", "required": ["id", "secret", "name"], "properties": {
        "id": {"readOnly": True}, "secret": {"writeOnly": True}, "name": {"type": "string", "nullable": True}}}
    assert schema_view(schema, for_request=True)["required"] == ["secret", "name"]
    assert schema_view(schema, for_request=False)["required"] == ["id", "name"]
    assert schema_view(schema, for_request=False)["properties"]["name"]["type"] == ["string", "null"]
    assert schema["required"] == ["id", "secret", "name"], "the input is not changed"


def test_shared_schemas_by_reference_recursive_ones_included() -> None:
    defs = {
        "Node": {"type": "object", "required": ["name", "children"], "properties": {
            "name": {"type": "string", "minLength": 3}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            "kind": {"$ref": "#/$defs/Kind"}}},
        "Kind": {"allOf": [{"$ref": "#/$defs/Base"}, {"enum": ["leaf", "branch"]}]},
        "Base": {"type": "string"},
        "Shape": {"oneOf": [{"$ref": "#/$defs/Circle"}, {"$ref": "#/$defs/Square"}]},
        "Circle": {"type": "object", "properties": {"r": {"type": "number"}}},
        "Square": {"type": "object", "properties": {"side": {"type": "number"}}},
        "Unused": {"type": "object", "required": ["x"], "properties": {"x": {"readOnly": True}}},
    }
    schema = {"type": "object", "required": ["tree", "shape"], "$defs": defs,
              "properties": {"tree": {"$ref": "#/$defs/Node"}, "shape": {"$ref": "#/$defs/Shape"}}}
    for required_only in (False, True):
        value = sample_from_schema(schema, seed="t", required_only=required_only)
        VALIDATOR(schema).validate(value)
        assert len(value["tree"]["name"]) >= 3
    # a view keeps only the shared schemas the schema reaches
    assert set(schema_view(schema, for_request=True)["$defs"]) == {"Node", "Kind", "Base", "Shape", "Circle", "Square"}
    assert merge_all_of({"$ref": "#/$defs/Kind"}, defs) == {"type": "string", "enum": ["leaf", "branch"]}


def test_a_schema_made_of_itself_ends() -> None:
    schema = {"$defs": {"A": {"oneOf": [{"$ref": "#/$defs/A"}, {"allOf": [{"$ref": "#/$defs/A"}]}]}},
              "$ref": "#/$defs/A"}
    sample_from_schema(schema, seed="x")  # returns (whatever it is): no schema instance exists to find
