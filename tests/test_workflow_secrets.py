"""Secrets are usable only where they are sent, and never come back: not in outputs, records, traces or events."""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine import check_workflow
from engine.actions import ActionExecutor
from engine.auth import Authenticator, OAuth2Client, StaticCredentials
from engine.http import EgressPolicy, HttpClient
from engine.specs import load_connector, load_workflow
from engine.workflow import Dependencies, Interpreter, RecordingObserver, SequentialIds, StaticSecrets
from support.servers import serve_app
from test_workflow_apps import MemoryApps, echo_app

NOTE = "Canary-Note/7Qx+z9"  # a workflow secret
KEY = "canary-KEY-4b1d93e2"  # the connection's API key


def forms(value: str) -> list[str]:
    """The forms a leaky API might send a value back in (written here, independently of the engine)."""
    raw = value.encode()
    b64, url64 = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return [value, value.upper(), value.lower(), value.swapcase(), b64, b64.rstrip("="), url64, url64.rstrip("="),
            urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value), binascii.hexlify(raw).decode(),
            binascii.hexlify(raw).decode().upper()]


def leaked(text: str) -> list[str]:
    """Forms of either canary found in ``text`` (case-insensitively, the strictest reading)."""
    folded = text.lower()
    found = [f for value in (NOTE, KEY) for f in forms(value) if f.lower() in folded]
    # and inside a longer base64 text at any alignment, as in HTTP Basic credentials
    for value in (NOTE, KEY):
        for prefix in ("u:", "us:", "usr:"):
            encoded = base64.b64encode((prefix + value).encode()).decode()
            if encoded.lower() in folded:
                found.append(encoded)
    return found


def echo_every_form(note: str, key: str) -> dict[str, Any]:
    return {
        "note_forms": forms(note), "key_forms": forms(key),
        "basic": base64.b64encode(f"user:{key}".encode()).decode(),
        "sentence": f"you sent {note.upper()} with key {key}",
    }


async def leaky(request: Request):
    body = await request.json()
    return JSONResponse(echo_every_form(body["note"], request.headers["x-key"]))


async def leaky_error(request: Request):
    body = await request.json()
    return JSONResponse({"error": echo_every_form(body["note"], request.headers["x-key"])}, status_code=401)


APP = Starlette(routes=[Route("/leak", leaky, methods=["POST"]), Route("/leak_error", leaky_error, methods=["POST"])])
CONNECTOR = {
    "id": "leaky", "base_url": "https://leaky.example",
    "auth": {"type": "api_key", "keys": [{"credential": "key", "in": "header", "name": "X-Key"}]},
    "actions": {
        "leak": {"method": "POST", "path": "/leak", "body": "{{ input.body }}"},
        "leak_error": {"method": "POST", "path": "/leak_error", "body": "{{ input.body }}"},
    },
}


@pytest.fixture(scope="module")
def base_url():
    with serve_app(APP) as url:
        yield url


@pytest.mark.parametrize("action", ["leak", "leak_error"])
async def test_a_canary_secret_and_key_echoed_in_every_form_appear_nowhere(base_url, action) -> None:
    workflow = load_workflow({"id": "canary", "steps": [
        # transformed before it is sent: legal (it is sent), and the echo of the transform is caught too
        {"id": "send", "action": f"leaky.{action}", "paginate": False,
         "input": {"body": {"note": "{{ secrets.note }}", "shout": "{{ $uppercase(secrets.note) }}"}}},
        {"id": "reuse", "map": {"again": "{{ $lowercase(steps.send.sentence) }}", "all": "{{ steps.send }}"}},
    ], "output": {"send": "{{ steps.send }}", "reuse": "{{ steps.reuse }}"}})
    assert check_workflow(workflow, {"leaky": load_connector(CONNECTOR)}) == []
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)))
    observer = RecordingObserver()
    try:
        auth = Authenticator(StaticCredentials({"leaky": {"key": KEY}}), OAuth2Client(http))
        executor = ActionExecutor({"leaky": load_connector(CONNECTOR)}, http=http, auth=auth,
                                  base_urls={"leaky": base_url}, trace_bodies=True)
        deps = Dependencies(invoker=executor, ids=SequentialIds("run"), secrets=StaticSecrets({"note": NOTE}),
                            observer=observer)
        result = await Interpreter(deps).run(workflow)
    finally:
        await http.aclose()
    if action == "leak":
        assert result.succeeded
        assert result.output["send"]["note_forms"][0] == "[secret:note]"
        assert result.output["send"]["key_forms"][0] == "[redacted]"
    else:
        assert result.status == "failed" and result.error.code == "step_failed"
    seen = {
        "output": json.dumps(result.output), "record": json.dumps(result.record.to_dict()),
        "traces": json.dumps([t.to_dict() for t in result.traces]), "error": str(result.record.error),
        "events": json.dumps([e.to_dict() for e in observer.events]),
    }
    assert {where: leaked(text) for where, text in seen.items()} == {where: [] for where in seen}
    assert result.traces and result.traces[0].response_body is not None  # bodies were traced, and scrubbed


MISPLACED = "secrets may only be used in action inputs"


def test_check_workflow_allows_secrets_only_where_they_are_sent_and_refuses_eval() -> None:
    workflow = load_workflow({"id": "w", "steps": [
        {"id": "ok", "action": "app.echo", "input": {"k": "{{ $base64encode(secrets.a) }}", "l": "{{ secrets['b'] }}"}},
        {"id": "m", "map": {"up": "{{ $uppercase(secrets.a) }}", "look": "{{ $lookup($, 'secrets') }}",
                            "odd": "x {{ `secrets`.a }}", "root": "{{ $.secrets.a }}", "fine": "{{ input.secrets_n }}"}},
        {"id": "f", "filter": {"items": "{{ input.xs }}", "where": "item = secrets.a"}},
        {"id": "i", "if": "$keys(secrets)", "then": [
            {"id": "c", "call": {"workflow": "child", "input": {"s": "{{ $split(secrets.a, '') }}"}}}]},
        {"id": "e", "foreach": {"items": "{{ $each(secrets, function($v){ $v }) }}", "steps": [
            {"id": "inner", "action": "app.echo", "input": {"k": "{{ secrets.a }}", "code": "{{ $eval(item) }}"}}]}},
        {"id": "s", "sync": {"source": "{{ input.xs }}", "target": {
            "list": "app.list", "create": "app.create", "list_input": {"k": "{{ secrets.a }}"},
            "create_input": {"body": "{{ fields }}", "auth": "{{ secrets.a }}"}},
            "match": {"source": "email", "target": "email"}, "map": {"e": "{{ $substring(secrets.a, 0, 3) }}"}}},
        {"id": "d", "delay": {"seconds": "{{ $length(secrets.a) }}"}},
    ], "output": "{{ $string(secrets) }}"})
    problems = [(p.pointer, p.message) for p in check_workflow(workflow, {}) if "unknown connector" not in p.message]
    assert [p for p, m in problems if m.startswith(MISPLACED)] == [
        "/steps/1/map/up", "/steps/1/map/look", "/steps/1/map/odd", "/steps/1/map/root", "/steps/2/filter/where",
        "/steps/3/if", "/steps/3/then/0/call/input/s", "/steps/4/foreach/items", "/steps/5/sync/map/e",
        "/steps/6/delay/seconds", "/output",
    ]
    assert [p for p, m in problems if "$eval is not allowed" in m] == ["/steps/4/foreach/steps/0/input/code"]
    assert len(problems) == 12


async def test_an_unchecked_workflow_cannot_read_secrets_outside_action_inputs() -> None:
    apps = MemoryApps()
    apps.crm("crm", "people", records=[])
    workflow = load_workflow({"id": "sneaky", "steps": [
        {"id": "m", "map": {"up": "{{ $uppercase(secrets.note) }}", "all": "{{ $string($) }}",
                            "look": "{{ $lookup($, 'secrets') }}"}},
        {"id": "s", "sync": {"source": "{{ input.people }}", "target": {
            "list": "crm.list_people", "create": "crm.create_people",
            "create_input": {"body": "{{ fields }}", "token": "{{ secrets.note }}"}},
            "match": {"source": "email", "target": "email"},
            "map": {"email": "{{ source.email }}", "leak": "{{ secrets.note }}"}}},
    ], "output": {"m": "{{ steps.m }}", "b64": "{{ $base64encode(secrets.note) }}"}})
    result = await Interpreter(Dependencies(invoker=apps, secrets=StaticSecrets({"note": NOTE}))).run(
        workflow, {"people": [{"email": "a@x.test"}]})
    assert result.succeeded
    assert "up" not in result.output["m"] and "look" not in result.output["m"] and "b64" not in result.output
    assert "secrets" not in json.loads(result.output["m"]["all"])
    [create] = apps.actions("crm.create_people")
    assert create.input["token"] == NOTE  # sent, where it belongs
    assert create.input["body"] == {"email": "a@x.test"}  # the map saw no secrets
    assert leaked(json.dumps(result.output)) == [] and leaked(json.dumps(result.record.to_dict())) == []


async def test_secret_values_are_redacted_from_the_output_in_any_case_and_encoding() -> None:
    workflow = load_workflow({"id": "echo", "steps": [
        {"id": "send", "action": "app.echo", "input": {"b64": "{{ $base64encode(secrets.note) }}",
                                                       "up": "{{ $uppercase(secrets.note) }}",
                                                       "url": "{{ $encodeUrlComponent(secrets.note) }}"}},
    ]})
    result = await Interpreter(Dependencies(invoker=echo_app(), secrets=StaticSecrets({"note": NOTE}))).run(workflow)
    assert result.output == {"echo": {"b64": "[secret:note]", "up": "[secret:note]", "url": "[secret:note]"}}
    assert leaked(json.dumps(result.record.to_dict())) == []
