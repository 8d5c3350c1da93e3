"""The command line refuses bad input in one line that names what and where, and sends nothing first."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
import yaml
from click.testing import CliRunner

from support.sandbox import SPECS_DIR, running_sandbox
from switchboard.cli import cli
from test_flagship import CONNECTORS, WORKFLOW


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def cin7():
    with running_sandbox("cin7-core-v2-subset.yaml") as server:
        yield server


def test_a_typo_in_a_later_step_is_refused_before_the_first_step_writes(tmp_path, cin7):
    flow = tmp_path / "w.yaml"
    flow.write_text(yaml.safe_dump({"id": "w", "steps": [
        {"id": "make", "action": "cin7.create_customer", "input": {"body": {"Name": "N", "Currency": "USD"}}},
        {"id": "read", "action": "cin7.list_customerz"},
        {"id": "use", "map": {"x": "{{ steps.nosuch.items }}", "y": "{{ $$$ ((( }}"}}]}))
    result = invoke("workflow", "run", str(flow), "--connectors", str(CONNECTORS), "--base-url", f"cin7={cin7.base_url}")
    assert result.exit_code == 1
    assert "/steps/1/action: connector 'cin7' has no action 'list_customerz'" in result.output
    assert "/steps/2/map/x: refers to step 'nosuch'" in result.output and "/steps/2/map/y: expression" in result.output
    assert httpx.get(cin7.admin_url + "/state").json()["collections"]["/customer"] == []


@pytest.mark.parametrize("args, needle", [
    (["--input", "[1, 2]"], "must be a JSON object"),
    (["--input", "{nope"], "not JSON"),
    (["--base-url", "cin7=http://127.0.0.1:99999"], "not a valid URL"),
    (["--base-url", "cin7=http://[::1"], "not a valid URL"),
    (["--base-url", "cin7=ftp://x"], "http(s) URL"),
])
def test_workflow_run_usage_errors(args, needle):
    result = invoke("workflow", "run", str(WORKFLOW), "--connectors", str(CONNECTORS), *args)
    assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output


def test_credentials_and_secrets_files_are_checked(tmp_path):
    base = ["workflow", "run", str(WORKFLOW), "--connectors", str(CONNECTORS)]
    cases = {
        "flat.yaml": ("account_id: a\napplication_key: b\n", "no connector 'account_id'"),
        "list.yaml": ("cin7: [1, 2]\n", "must map credential names"),
        "empty.yaml": ("", "non-empty mapping"),
        "latin1.yaml": (b"cin7: {k: \xe9}\n", "not UTF-8"),
    }
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        result = invoke(*base, "--credentials", str(path))
        assert result.exit_code == 2 and needle in result.output, (name, result.output)
    (tmp_path / "s.yaml").write_text("- a\n")
    assert "non-empty mapping" in invoke(*base, "--secrets", str(tmp_path / "s.yaml")).output


def test_connector_test_checks_its_base_url_and_credentials(tmp_path):
    doc = str(SPECS_DIR / "cin7-core-v2-subset.yaml")
    for url in ("notaurl", "http://", "http://127.0.0.1:99999/v2", "http://h/v2?x=1"):
        result = invoke("connector", "test", doc, "--base-url", url)
        assert result.exit_code == 2 and "--base-url" in result.output, url
    (tmp_path / "c.yaml").write_text("cin7: {account_id: a}\n")
    result = invoke("connector", "test", doc, "--base-url", "http://127.0.0.1:9/v2", "--credentials", str(tmp_path / "c.yaml"))
    assert result.exit_code == 2 and "'account_id': ..." in result.output


def test_connectors_dir_with_an_openapi_document_or_a_duplicate(tmp_path):
    shutil.copy(SPECS_DIR / "cin7-core-v2-subset.yaml", tmp_path / "cin7.yaml")
    result = invoke("workflow", "run", str(WORKFLOW), "--connectors", str(tmp_path))
    assert result.exit_code == 1 and "OpenAPI document" in result.output and "connector import" in result.output
    (tmp_path / "cin7.yaml").unlink()
    shutil.copy(CONNECTORS / "cin7.yaml", tmp_path / "a.yaml")
    shutil.copy(CONNECTORS / "cin7.yaml", tmp_path / "b.yaml")
    result = invoke("workflow", "run", str(WORKFLOW), "--connectors", str(tmp_path))
    assert result.exit_code == 1 and "also defined in" in result.output and "a.yaml" in result.output


def test_yaml_errors_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "w.yaml").write_text("id: w\nsteps: [\n")
    result = invoke("workflow", "run", str(tmp_path / "w.yaml"), "--connectors", str(CONNECTORS))
    assert result.exit_code == 1
    (line,) = [l for l in result.output.splitlines() if l.startswith("Error:")]
    assert "w.yaml" in line and "line" in line and "column" in line


def test_run_record_and_replay(tmp_path):
    seed = {"/crm/v3/objects/contacts": [{"id": "1", "properties": {"email": "a@x.test", "firstname": "A"},
                                          "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}]}
    record = tmp_path / "deep" / "er" / "record.json"
    with running_sandbox("hubspot-crm-contacts-v3.json", seed=seed) as hubspot, running_sandbox("cin7-core-v2-subset.yaml") as cin7:
        ran = invoke("workflow", "run", str(WORKFLOW), "--connectors", str(CONNECTORS), "--base-url", f"hubspot={hubspot.base_url}",
                     "--base-url", f"cin7={cin7.base_url}", "--record", str(record))
        assert ran.exit_code == 0, ran.output
    # The sandboxes are gone: a replay answers from the record alone.
    replayed = invoke("workflow", "replay", str(WORKFLOW), "--record", str(record))
    assert replayed.exit_code == 0, replayed.output
    assert '"created": 1' in replayed.output
    data = json.loads(record.read_text())
    data["input"] = {"page_size": 7}
    record.write_text(json.dumps(data))
    diverged = invoke("workflow", "replay", str(WORKFLOW), "--record", str(record))
    assert diverged.exit_code == 1 and "diverged" in diverged.output and "contacts" in diverged.output


def test_steps_read_the_trigger_payload(tmp_path):
    flow = tmp_path / "t.yaml"
    flow.write_text(yaml.safe_dump({"id": "t", "trigger": {"kind": "webhook"},
                                    "steps": [{"id": "echo", "map": {"who": "{{ trigger.user.name }}"}}]}))
    result = invoke("workflow", "run", str(flow), "--connectors", str(CONNECTORS), "--trigger", '{"user": {"name": "ada"}}', "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == {"who": "ada"}
    assert invoke("workflow", "run", str(flow), "--connectors", str(CONNECTORS), "--trigger", "{").exit_code == 2
