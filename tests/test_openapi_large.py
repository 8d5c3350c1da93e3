"""Importing the large documents users bring first (tests/data/openapi/large): shared schemas stay shared.

The importer used to inline every ``$ref``, so a document that reuses its
schemas grew many times over (Xero Accounting: 629 KB as JSON became a 39 MB
connector). Now each shared schema is in the connector's ``$defs`` once; these
tests hold the size to at most 3x the document's, and check that the result is
a valid connector whose inputs validate through the references.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from support.documents import SPECS_DIR
import yaml
from jsonschema import Draft202012Validator

from engine.actions import validate_input
from engine.errors import ActionInputInvalid
from engine.openapi import ImportResult, dump_connector, import_connector
from engine.samples import sample_from_schema
from engine.specs import ConnectorSpec, deref, load_connector

HERE = Path(__file__).resolve().parent
LARGE = SPECS_DIR / "large"
DOCUMENTS = sorted(p.name for p in LARGE.iterdir() if p.suffix in (".json", ".yaml", ".yml"))
SIZE_LIMIT = 3.0


@functools.lru_cache(maxsize=None)
def imported(name: str) -> ImportResult:
    return import_connector(LARGE / name)


def _json_size(data: object) -> int:
    return len(json.dumps(data, separators=(",", ":"), default=str).encode())


def _document(name: str) -> dict:
    text = (LARGE / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def test_the_five_large_documents_are_here():
    assert DOCUMENTS == ["box.json", "slack_web_v2.json", "twilio_conversations_v1.json", "xero-payroll-uk.yaml",
                         "xero_accounting.yaml"]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_large_document_imports_within_three_times_its_size(name: str) -> None:
    connector = imported(name).connector
    document = _document(name)
    operations = sum(1 for item in document["paths"].values() for key in item
                     if key in {"get", "put", "post", "delete", "options", "head", "patch", "trace"})
    assert len(connector.actions) == operations
    data = json.loads(dump_connector(connector, "json"))
    ratio = _json_size(data) / _json_size(document)
    assert ratio <= SIZE_LIMIT, f"{name}: the connector is {ratio:.2f}x its document"
    # what is written to a file is a valid connector, the same one
    assert ConnectorSpec.model_validate(data) == connector
    # every reference resolves (the spec validator refuses dangling ones), and every shared schema is used
    assert connector.defs, "a document that reuses schemas keeps them in $defs"
    text = json.dumps(data)
    unused = [n for n in connector.defs if f'"#/$defs/{n}"' not in text]
    assert not unused, unused[:5]


def _ref_bodied(connector: ConnectorSpec) -> list[str]:
    """Actions whose JSON body is a reference to a shared object schema with properties."""
    names = []
    for name, action in connector.actions.items():
        body = action.input.get("properties", {}).get("body")
        if action.body_type == "json" and isinstance(body, dict) and "$ref" in body:
            target = connector.deref(body)
            if target.get("properties") or target.get("allOf"):
                names.append(name)
    return names


# Slack's and Twilio's bodies are form parameters, one schema per method; their responses share schemas.
FORM_BODIED = {"slack_web_v2.json", "twilio_conversations_v1.json"}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_sample_input_of_an_action_with_a_shared_body_validates(name: str) -> None:
    connector = imported(name).connector
    candidates = _ref_bodied(connector)
    assert bool(candidates) == (name not in FORM_BODIED), candidates[:3]
    for action_name in candidates[:3]:
        action = connector.actions[action_name]
        value = sample_from_schema(connector.standalone(action.input), seed=action_name, for_request=True)
        validate_input(connector, action_name, action, value)  # through the references
        body_schema = connector.deref(action.input["properties"]["body"])
        required = [r for r in body_schema.get("required", []) if r in value["body"]]
        if required:  # and a broken body is refused, with a pointer into it
            broken = {**value, "body": {k: v for k, v in value["body"].items() if k != required[0]}}
            with pytest.raises(ActionInputInvalid) as caught:
                validate_input(connector, action_name, action, broken)
            assert any(p.pointer == "/body" and required[0] in p.message for p in caught.value.problems)
    # responses that name shared schemas: a sample of each validates against it
    shared_outputs = [n for n, a in connector.actions.items() if a.output and "$ref" in json.dumps(a.output)]
    assert shared_outputs
    for action_name in shared_outputs[:3]:
        output = connector.standalone(connector.actions[action_name].output)
        Draft202012Validator(output).validate(sample_from_schema(output, seed=action_name))


def test_xero_invoices_keep_one_invoice_schema():
    connector = imported("xero_accounting.yaml").connector
    create = connector.actions["create_invoices"]
    body = create.input["properties"]["body"]
    assert body["$ref"].startswith("#/$defs/Invoices")
    invoices = deref(body, connector.defs)
    assert deref(invoices["properties"]["Invoices"]["items"], connector.defs)["properties"]["InvoiceID"]
    # the invoice schema is kept once, however many actions use it, and they refer to it
    assert [n for n, d in connector.defs.items() if "InvoiceID" in d.get("properties", {})] == ["Invoice"]
    users = [n for n, a in connector.actions.items() if '"#/$defs/Invoices"' in json.dumps([a.input, a.output])]
    assert len(users) >= 5
    text = dump_connector(connector, "json")
    assert load_connector(json.loads(text)) == connector


def test_cli_import_writes_the_shared_schemas(tmp_path):
    from click.testing import CliRunner

    from switchboard.cli import cli

    out = tmp_path / "payroll.json"
    done = CliRunner().invoke(cli, ["connector", "import", str(LARGE / "xero-payroll-uk.yaml"), "-o", str(out)])
    assert done.exit_code == 0, done.output
    written = json.loads(out.read_text())
    assert written["$defs"] and _json_size(written) <= SIZE_LIMIT * _json_size(_document("xero-payroll-uk.yaml"))
    assert load_connector(out) == imported("xero-payroll-uk.yaml").connector
