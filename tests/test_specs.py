"""Spec models: validation with JSON pointers, YAML and JSON input, exported JSON Schemas."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from engine.errors import SpecValidationError
from engine.specs import (
    ApiKeyAuth,
    ConnectorSpec,
    OAuth2Auth,
    SyncStep,
    WorkflowSpec,
    load_connector,
    load_workflow,
    parse_document,
    spec_json_schema,
)

ROOT = Path(__file__).resolve().parents[1]

CIN7 = {
    "id": "cin7",
    "base_url": "https://inventory.dearsystems.com/ExternalApi/v2",
    "auth": {
        "type": "api_key",
        "keys": [
            {"credential": "account_id", "in": "header", "name": "api-auth-accountid"},
            {"credential": "application_key", "in": "header", "name": "api-auth-applicationkey"},
        ],
    },
    "actions": {
        "list_customers": {
            "method": "GET",
            "path": "/customer",
            "query": {"Page": "{{ input.Page }}", "Limit": "{{ input.Limit }}"},
            "pagination": {"style": "page", "items": "CustomerList", "page_param": "Page", "size_param": "Limit", "size": 100},
        },
        "get_customer": {"method": "GET", "path": "/customer/{id}", "path_params": {"id": "{{ input.id }}"}},
    },
}


def test_connector_loads_and_reports_credential_fields():
    spec = load_connector(CIN7)
    assert isinstance(spec.auth, ApiKeyAuth)
    assert spec.auth.credential_fields() == ["account_id", "application_key"]
    assert spec.actions["list_customers"].method == "GET"
    assert spec.action("get_customer").path_placeholders() == ["id"]
    with pytest.raises(KeyError, match="known: get_customer, list_customers"):
        spec.action("nope")


def test_yaml_and_json_give_the_same_spec(tmp_path):
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CIN7))
    (tmp_path / "c.json").write_text(json.dumps(CIN7))
    assert load_connector(tmp_path / "c.yaml") == load_connector(tmp_path / "c.json")


@pytest.mark.parametrize(
    "patch, pointer, reason",
    [
        ({"base_url": "ftp://x"}, "/base_url", "absolute http"),
        ({"id": "Has Spaces"}, "/id", "pattern"),
        ({"auth": {"type": "api_key", "keys": [{"in": "body", "name": "k", "credential": "c"}]}}, "/auth/keys/0/in", "header"),
        ({"auth": {"type": "oauth2", "token_url": "https://t"}}, "/auth", "authorize_url is required"),
        ({"auth": {"type": "magic"}}, "/auth", "magic"),
        ({"actions": {"a": {"method": "GET", "path": "/x/{id}"}}}, "/actions/a", "path placeholders"),
        ({"actions": {"a": {"method": "GET", "path": "x"}}}, "/actions/a/path", "start with '/'"),
        ({"actions": {"a": {"method": "GET", "path": "/x", "pagination": {"style": "cursor", "items": "results"}}}},
         "/actions/a/pagination", "needs next, cursor_param"),
        ({"events": {"e": {"kind": "polling"}}}, "/events/e", "needs 'action'"),
        ({"events": {"e": {"kind": "polling", "action": "list_customers"}}}, "/events/e", "needs 'key'"),
        ({"events": {"e": {"kind": "polling", "action": "nope", "key": "SaleID", "cursor": "Updated"}}},
         "/events/e/action", "unknown action 'nope'"),
        ({"events": {"e": {"kind": "polling", "action": "list_customers", "key": "ID", "cursor": "LastModifiedOn",
                           "cursor_param": "Since"}}}, "/events/e/cursor_param", "takes no input 'Since'"),
        ({"events": {"e": {"kind": "polling", "action": "list_customers", "key": "ID", "cursor": "LastModifiedOn",
                           "interval": "soon"}}}, "/events/e/interval", "not an interval"),
    ],
)
def test_invalid_connector_names_pointer_and_reason(patch, pointer, reason):
    with pytest.raises(SpecValidationError) as info:
        load_connector({**CIN7, **patch})
    pointers = [p.pointer for p in info.value.problems]
    assert pointer in pointers, info.value
    assert reason in str(info.value)
    assert info.value.http_status == 422 and info.value.code == "spec_validation_failed"


def test_workflow_steps_are_told_apart_by_their_kind_key():
    spec = load_workflow(
        {
            "id": "flow",
            "trigger": {"kind": "schedule", "cron": "*/15 * * * *"},
            "steps": [
                {"id": "contacts", "action": "hubspot.list_contacts"},
                {
                    "id": "sync",
                    "sync": {
                        "source": "{{ steps.contacts.items }}",
                        "target": {"list": "cin7.list_customers", "create": "cin7.create_customer"},
                        "match": {"source": "properties.email", "target": "Contacts.Email"},
                        "map": {"Name": "{{ source.properties.firstname }}"},
                    },
                },
                {"id": "check", "if": "steps.sync.created > 0", "then": [{"id": "note", "map": {"ok": True}}]},
            ],
        }
    )
    assert isinstance(spec.steps[1], SyncStep)
    assert spec.connectors() == {"hubspot", "cin7"}


@pytest.mark.parametrize(
    "doc, pointer, reason",
    [
        ({"id": "w", "steps": []}, "/steps", "at least 1"),
        ({"id": "w", "steps": [{"id": "a", "map": 1, "action": "x.y"}]}, "/steps/0", "exactly one of"),
        ({"id": "w", "steps": [{"id": "a", "action": "x.y", "paginate": "maybe"}]}, "/steps/0/paginate", "boolean"),
        ({"id": "w", "steps": [{"id": "a", "if": "true", "then": [{"id": "b", "mapp": 1}]}]}, "/steps/0/then/0", "exactly one of"),
        ({"id": "w", "steps": [{"id": "a", "map": 1}, {"id": "a", "map": 2}]}, "", "more than once"),
        ({"id": "w", "trigger": {"kind": "schedule", "cron": "61 * * * *"}, "steps": [{"id": "a", "map": 1}]}, "/trigger/cron", "cron"),
        ({"id": "w", "trigger": {"kind": "schedule", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "steps": [{"id": "a", "map": 1}]},
         "/trigger/timezone", "unknown time zone"),
        ({"id": "w", "steps": [{"id": "a", "foreach": {"items": "x", "concurrency": 0, "steps": [{"id": "b", "map": 1}]}}]},
         "/steps/0/foreach/concurrency", "greater than or equal to 1"),
    ],
)
def test_invalid_workflow_names_pointer_and_reason(doc, pointer, reason):
    with pytest.raises(SpecValidationError) as info:
        load_workflow(doc)
    assert pointer in [p.pointer for p in info.value.problems], info.value
    assert reason in str(info.value)


def test_unparsable_and_missing_documents_are_clear(tmp_path):
    with pytest.raises(SpecValidationError, match="not valid YAML or JSON"):
        parse_document("a: [1, 2", "x.yaml")
    with pytest.raises(SpecValidationError, match="cannot read"):
        load_workflow(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SpecValidationError, match="expected a mapping"):
        load_workflow(tmp_path / "list.yaml")


def test_exported_json_schemas_are_current_and_valid():
    for kind, model in (("connector", ConnectorSpec), ("workflow", WorkflowSpec)):
        schema = spec_json_schema(kind)
        Draft202012Validator.check_schema(schema)
        on_disk = json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text())
        assert on_disk == schema, f"schemas/{kind}.schema.json is stale: run `switchboard schema --write schemas`"


def test_exported_schema_accepts_what_the_model_accepts():
    schema = spec_json_schema("connector")
    Draft202012Validator(schema).validate(CIN7)
    oauth = OAuth2Auth(authorize_url="https://a", token_url="https://t", scopes=["x"])
    assert oauth.credential_fields()[:2] == ["client_id", "client_secret"]


@pytest.mark.parametrize("schema, reason", [({"type": 5}, "/type"), ({"type": "string", "pattern": "\\p{L}"}, "regex")])
def test_schemas_inside_specs_must_be_json_schemas(schema, reason):
    with pytest.raises(SpecValidationError) as info:
        load_workflow({"id": "w", "input": schema, "steps": [{"id": "a", "map": 1}]})
    assert info.value.problems[0].pointer == "/input" and reason in str(info.value)
    with pytest.raises(SpecValidationError) as info:
        load_connector({**CIN7, "actions": {"a": {"method": "GET", "path": "/x", "output": schema}}})
    assert info.value.problems[0].pointer == "/actions/a/output"


async def test_an_unresolvable_ref_is_a_typed_error_not_a_crash():
    from engine.actions import build_request
    from engine.errors import ActionInputInvalid

    spec = load_connector({**CIN7, "actions": {"a": {"method": "GET", "path": "/x", "input": {"$ref": "#/nowhere"}}}})
    with pytest.raises(ActionInputInvalid, match="cannot be applied"):
        build_request(spec, "a", {})


# -- shared schemas: $defs and #/$defs references ----------------------------------

SHARED = {**CIN7, "$defs": {"Customer": {"type": "object", "required": ["Name"], "properties": {
    "Name": {"type": "string"}, "Parent": {"$ref": "#/$defs/Customer"}}}},
    "actions": {"create_customer": {"method": "POST", "path": "/customer", "body": "{{ input.body }}",
                                    "input": {"type": "object", "properties": {"body": {"$ref": "#/$defs/Customer"}}},
                                    "output": {"$ref": "#/$defs/Customer"}}}}


def test_a_connector_may_share_schemas_in_defs():
    from engine.actions import build_request
    from engine.errors import ActionInputInvalid

    spec = load_connector(SHARED)
    assert set(spec.defs) == {"Customer"}
    assert spec.model_dump(by_alias=True, exclude_none=True)["$defs"] == SHARED["$defs"]
    assert build_request(spec, "create_customer", {"body": {"Name": "a", "Parent": {"Name": "b"}}}).json == {
        "Name": "a", "Parent": {"Name": "b"}}
    with pytest.raises(ActionInputInvalid) as caught:
        build_request(spec, "create_customer", {"body": {"Name": "a", "Parent": {}}})
    assert [p.pointer for p in caught.value.problems] == ["/body/Parent"]
    # the exported JSON Schema knows the field, and connectors without it are unchanged
    assert "$defs" in spec_json_schema("connector")["properties"]
    plain = load_connector(CIN7)
    assert plain.defs is None and "$defs" not in plain.model_dump(by_alias=True, exclude_none=True)


@pytest.mark.parametrize("where, ref, pointer, reason", [
    ("input", "#/$defs/Nobody", "/actions/create_customer/input/properties/body/$ref", "names no schema in $defs"),
    ("output", "https://example.org/customer.json", "/actions/create_customer/output/$ref", "only local references"),
    ("defs", "#/$defs/Gone", "/$defs/Customer/properties/Parent/$ref", "names no schema in $defs"),
])
def test_references_must_resolve_inside_the_spec(where, ref, pointer, reason):
    spec = json.loads(json.dumps(SHARED))
    if where == "input":
        spec["actions"]["create_customer"]["input"]["properties"]["body"] = {"$ref": ref}
    elif where == "output":
        spec["actions"]["create_customer"]["output"] = {"$ref": ref}
    else:
        spec["$defs"]["Customer"]["properties"]["Parent"] = {"$ref": ref}
    with pytest.raises(SpecValidationError) as info:
        load_connector(spec)
    assert [(p.pointer, reason in p.message, ref in p.message) for p in info.value.problems] == [(pointer, True, True)]


def test_shared_schemas_must_be_json_schemas():
    with pytest.raises(SpecValidationError) as info:
        load_connector({**SHARED, "$defs": {**SHARED["$defs"], "Bad": {"type": "widget"}}})
    assert info.value.problems[0].pointer == "/$defs" and "$defs/Bad" in info.value.problems[0].message


def test_deref_follows_chains_siblings_and_stops_at_circles():
    from engine.specs import deref, with_defs

    defs = {"A": {"$ref": "#/$defs/B"}, "B": {"type": "string", "description": "b"},
            "Loop": {"$ref": "#/$defs/Loop2"}, "Loop2": {"$ref": "#/$defs/Loop"},
            "Obj": {"properties": {"x/y": {"type": "integer"}}}}
    assert deref({"$ref": "#/$defs/A", "description": "mine"}, defs) == {"type": "string", "description": "mine"}
    assert deref({"$ref": "#/$defs/Obj/properties/x~1y"}, defs) == {"type": "integer"}
    assert deref({"$ref": "#/$defs/Loop", "title": "t"}, defs) == {"title": "t"}
    assert deref({"$ref": "#/$defs/Missing"}, defs) == {}
    plain = {"type": "object"}
    assert deref(plain, defs) is plain and with_defs(plain, None) is plain
    own = {"$defs": {"B": {"type": "integer"}}, "$ref": "#/$defs/B"}
    assert deref(own, defs, root=own) == {"type": "integer", "$defs": {"B": {"type": "integer"}}}
    assert with_defs(own, defs)["$defs"]["B"] == {"type": "integer"} and "A" in with_defs(own, defs)["$defs"]


def test_example_connectors_have_no_defs_and_load_unchanged():
    for path in sorted((ROOT / "examples" / "connectors").glob("*.yaml")):
        spec = load_connector(path)
        assert spec.defs is None and "$defs" not in spec.model_dump(by_alias=True, exclude_none=True)

