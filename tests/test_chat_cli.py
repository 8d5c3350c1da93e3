"""``switchboard chat``: the terminal client of the threads API.

The end-to-end test is the issue's acceptance: the server that ``switchboard run`` starts on an empty
data directory (embedded Postgres, first-start credentials, no model key), ``switchboard chat --yes``
with the flagship prompt, and then, through the API, a test customer whose HubSpot and Cin7
connections point at seeded hosted sandboxes runs the published workflow twice: Cin7 ends in the
expected state and the second run changes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from switchboard.cli import cli
from switchboard.commands.chat import Event, parse_sse

ROOT = Path(__file__).resolve().parents[1]
SWITCHBOARD_BIN = Path(sys.executable).parent / "switchboard"
FLAGSHIP = "Sync HubSpot contacts to Cin7 customers, matching by email"


def test_sse_lines_are_parsed_into_events() -> None:
    lines = [": ping", "event: token", "id: 1", 'data: {"delta": "he"}', "", "event: done", "id: 2",
             'data: {"status":', 'data:  "completed"}', "", "data: not json", ""]
    assert list(parse_sse(iter(lines))) == [
        Event(1, "token", {"delta": "he"}), Event(2, "done", {"status": "completed"}),
        Event(None, "message", {"text": "not json"}),
    ]


def _invoke(*args: str, env: dict[str, str]) -> object:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_missing_credentials_are_one_clear_error(tmp_path: Path) -> None:
    result = _invoke("chat", "hello", "--url", "http://127.0.0.1:9", env={"SWITCHBOARD_DATA": str(tmp_path),
                                                                           "SWITCHBOARD_ACCOUNT_ID": "",
                                                                           "SWITCHBOARD_ACCESS_KEY": ""})
    assert result.exit_code == 1
    assert "no credentials" in result.output and "dev-credentials.json" in result.output


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"account_id": "org_x", "access_key": "sk_test_x", "tenant_id": "c"}))
    result = _invoke("chat", "hello", "--url", f"http://127.0.0.1:{port}", "--credentials", str(creds),
                     env={"SWITCHBOARD_DATA": str(tmp_path)})
    assert result.exit_code == 1
    assert f"cannot reach http://127.0.0.1:{port}" in result.output
    assert "sk_test_x" not in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(pg_tmp_path: Path) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """``switchboard run`` as ``make run`` starts it: an empty data directory, embedded Postgres, no
    key, no model setting. Yields its URL, the chat's environment and the API headers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "OPENAI_")) and k != "DATABASE_URL"}
    env.update(PORT=str(port), SWITCHBOARD_DATA=str(pg_tmp_path / "data"), SWITCHBOARD_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([str(SWITCHBOARD_BIN), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"switchboard run exited early:\n{proc.communicate()[1][-3000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "switchboard run did not become healthy"
            time.sleep(0.1)
        credentials = json.loads((pg_tmp_path / "data" / "dev-credentials.json").read_text())
        headers = {"x-fastn-account-id": credentials["account_id"], "x-fastn-access-key": credentials["access_key"],
                   "x-fastn-account-tenant-id": credentials["tenant_id"]}
        yield url, env, headers
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _finished(http: httpx.Client, headers: dict[str, str], started: httpx.Response) -> dict:
    assert started.status_code in (201, 202), started.text
    execution_id = started.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        execution = http.get(f"/v1/executions/{execution_id}", headers=headers).json()
        if execution["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return execution
        time.sleep(0.1)


def test_chat_builds_the_flagship_on_the_server_of_make_run(served: tuple[str, dict[str, str], dict[str, str]]) -> None:
    # The README's seed files, so that what it shows stays true.
    seeds = ROOT / "tests" / "data" / "seeds"
    hubspot_seed = json.loads((seeds / "hubspot-contacts.json").read_text())
    cin7_seed = json.loads((seeds / "cin7-customers.json").read_text())
    url, env, headers = served
    chat = subprocess.run([str(SWITCHBOARD_BIN), "chat", "--yes", FLAGSHIP], env=env, capture_output=True, text=True,
                          timeout=300)
    assert chat.returncode == 0, chat.stdout[-3000:] + chat.stderr[-3000:]
    out = chat.stdout
    for shown in ("→ import_api", "→ dry_run_workflow", "review: workflow hubspot-contacts-to-cin7-customers",
                  "approved (--yes)", "run completed"):
        assert shown in out, out[-4000:]
    assert headers["x-fastn-access-key"] not in out + chat.stderr

    with httpx.Client(base_url=url, timeout=60) as http:
        workflow = http.get("/v1/workflows/hubspot-contacts-to-cin7-customers", headers=headers)
        assert workflow.status_code == 200 and workflow.json()["latest_version"] == 1, workflow.text
        # The test customer (the first start's) connects both apps to the organization's seeded sandboxes.
        for key, seed in (("hubspot", hubspot_seed), ("cin7", cin7_seed)):
            seeded = http.post(f"/v1/sandboxes/{key}/seed", headers=headers, json=seed)
            assert seeded.status_code == 200, seeded.text
            connection = http.post("/v1/connections", headers=headers, json={"connector": key, "target": "sandbox"})
            assert connection.status_code == 201, connection.text
        outputs = []
        for _ in range(2):
            started = http.post("/v1/workflows/hubspot-contacts-to-cin7-customers/runs", headers=headers,
                                json={"input": {"currency": "GBP"}})
            execution = _finished(http, headers, started)
            assert execution["status"] == "completed", execution
            outputs.append(execution["output"])
        state = http.get("/v1/sandboxes/cin7/state", headers=headers).json()["collections"]["/customer"]
    customers = {c["Name"]: c for c in state}
    assert set(customers) == {"Ada Lovelace", "Bob Builder", "Carol Jones", "Dan Brown", "Zed Unrelated"}
    assert customers["Ada Lovelace"]["Currency"] == "GBP"
    assert customers["Ada Lovelace"]["Contacts"] == [{"Email": "ada@example.com", "Phone": "+44 1"}]
    assert outputs[0] == {"created": 2, "updated": 1, "unchanged": 1, "skipped": 1}, outputs[0]
    # The second run found everything in place.
    assert outputs[1] == {"created": 0, "updated": 0, "unchanged": 4, "skipped": 1}, outputs[1]
