"""`switchboard connector import` + `connector test`: every document of tests/data/openapi, imported, passes against its sandbox."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine import check_connector
from engine.http import EgressPolicy, HttpClient
from engine.openapi import import_connector
from support.sandbox import SPECS_DIR, load_spec, running_sandbox
from switchboard.cli import cli
from runtime import build_executor

REFUSED = {"oai-petstore-separate-extref-v2.json"}
DOCUMENTS = sorted(
    p.name for p in SPECS_DIR.glob("*") if p.suffix in {".yaml", ".yml", ".json"} and p.name not in REFUSED
)


@pytest.mark.parametrize("name", DOCUMENTS)
async def test_every_action_of_every_imported_document_passes_against_its_sandbox(name):
    document = load_spec(name)
    connector = import_connector(document).connector
    with running_sandbox(document) as server:
        http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
        try:
            executor = build_executor({connector.id: connector}, http, credentials=None, base_urls={connector.id: server.base_url})
            report = await check_connector(connector, executor)
        finally:
            await http.aclose()
    summary = report.summary()
    assert summary["actions"] == len(connector.actions) > 0
    assert summary["failed"] == [], json.dumps(summary["failed"], indent=1)


def test_cli_import_then_test_reports_json(tmp_path):
    out = tmp_path / "cin7.yaml"
    imported = CliRunner().invoke(cli, ["connector", "import", str(SPECS_DIR / "cin7-core-v2-subset.yaml"), "-o", str(out), "--id", "cin7"])
    assert imported.exit_code == 0, imported.output
    assert "imported cin7: 6 actions, auth api_key" in imported.output
    with running_sandbox("cin7-core-v2-subset.yaml") as server:
        tested = CliRunner().invoke(cli, ["connector", "test", str(out), "--base-url", server.base_url, "--json"])
        assert tested.exit_code == 0, tested.output
        assert json.loads(tested.stdout) == {"actions": 6, "passed": 6, "drift": [], "failed": [], "categories": {}, "notes": []}
        # Real credentials from a file are used instead of placeholders; a wrong base URL fails clearly.
        creds = tmp_path / "creds.json"
        creds.write_text(json.dumps({"account_id": "acct-1", "application_key": "key-1"}))
        with_creds = CliRunner().invoke(cli, ["connector", "test", str(out), "--base-url", server.base_url, "--credentials", str(creds)])
        assert with_creds.exit_code == 0 and "cin7: 6 actions: 6 passed, 0 drift, 0 failed" in with_creds.output
        wrong = CliRunner().invoke(cli, ["connector", "test", str(out), "--base-url", server.origin + "/nope", "--json"])
        assert wrong.exit_code == 1
        report = json.loads(wrong.stdout)
        assert report["passed"] == 0 and all("404" in f["reason"] for f in report["failed"])
        assert report["categories"] == {"status": 6}, report["failed"]


def test_cli_import_refuses_clearly_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "c.yaml"
    out.write_text("keep me\n")
    refused = CliRunner().invoke(cli, ["connector", "import", str(SPECS_DIR / "oai-petstore-separate-extref-v2.json"), "-o", str(out)])
    assert refused.exit_code == 1
    assert "parameters.json" in refused.output and "openapi_import_failed" in refused.output
    assert out.read_text() == "keep me\n"
    missing = CliRunner().invoke(cli, ["connector", "import", str(tmp_path / "absent.yaml")])
    assert missing.exit_code == 1 and "absent.yaml" in missing.output


def test_cli_schema_prints_both_kinds():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert set(printed) == {"connector", "workflow"} and printed["workflow"]["title"] == "WorkflowSpec"
