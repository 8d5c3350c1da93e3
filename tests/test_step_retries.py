"""Retries per workflow step, inline: the default policy (3 attempts, 5 s then 10 s), a step's own
``retry`` settings (validated with a JSON pointer), the errors that are never retried, and a
``Retry-After`` beyond the step's cap failing an inline run with ``action_retry_later``.

A real app on 127.0.0.1 answers from a script; the HTTP client's sleep is injected and records the
waits, so nothing here sleeps: the tests assert the attempts and the delays recorded in traces and
in the observer's ``StepRetrying`` events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from engine.actions import ActionExecutor, retry_policy_of
from engine.auth import Authenticator, OAuth2Client, StaticCredentials
from engine.errors import ActionFailed, ActionRetryLater, SpecValidationError
from engine.http import DEFAULT_STEP_RETRY_POLICY, EgressPolicy, HttpClient
from engine.specs import RetrySpec, load_connector, load_workflow
from engine.workflow import Dependencies, Interpreter, RecordingObserver, StepRetrying
from support.servers import serve_app


class Script:
    """What the app answers next per path ((status, headers) pairs; then 200), and what it received."""

    def __init__(self) -> None:
        self.replies: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.received: list[str] = []


def scripted_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{name}", methods=["GET", "POST"])
    async def answer(name: str, request: Request) -> Response:
        script.received.append(f"{request.method} /{name}")
        queue = script.replies.get(name) or []
        status, headers = queue.pop(0) if queue else (200, {})
        return Response(content=b'{"ok": true}', status_code=status, headers=headers, media_type="application/json")

    return app


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[Script, str]]:
    script = Script()
    with serve_app(scripted_app(script)) as url:
        yield script, url


@pytest.fixture
def script(app: tuple[Script, str]) -> Script:
    app[0].replies.clear()
    app[0].received.clear()
    return app[0]


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def run(app: tuple[Script, str]) -> AsyncIterator[Any]:
    sleeps = Sleeps()
    # The rate limiter holds a connection for a 429's Retry-After on its own clock: not waited for here.
    http = HttpClient(egress=EgressPolicy(allow=("127.0.0.1",)), sleep=sleeps, rate_sleep=Sleeps())
    connector = load_connector({
        "id": "app", "base_url": app[1],
        "actions": {"read": {"method": "GET", "path": "/read"}, "create": {"method": "POST", "path": "/create"}},
    })
    executor = ActionExecutor({"app": connector}, http=http, auth=Authenticator(StaticCredentials({"app": {}}), OAuth2Client(http)))

    async def go(step: dict[str, Any]) -> Any:
        observer = RecordingObserver()
        workflow = load_workflow({"id": "w", "steps": [{"id": "call", **step}]})
        result = await Interpreter(Dependencies(invoker=executor, observer=observer)).run(workflow)
        return result, observer.of_type(StepRetrying), sleeps.calls

    yield go
    await http.aclose()


async def test_the_default_policy_makes_3_attempts_waiting_5_then_10_seconds(run: Any, script: Script) -> None:
    script.replies["read"] = [(503, {}), (502, {})]
    result, retrying, slept = await run({"action": "app.read"})
    assert result.succeeded
    assert [(t.attempt, t.status, t.retry_delay) for t in result.traces] == [(1, 503, None), (2, 502, 5.0), (3, 200, 10.0)]
    assert [(e.attempt, e.error_code, e.delay) for e in retrying] == [(2, "http_503", 5.0), (3, "http_502", 10.0)]
    assert slept == [5.0, 10.0]


async def test_after_3_failed_attempts_the_step_fails_with_the_last_answer(run: Any, script: Script) -> None:
    script.replies["read"] = [(500, {})] * 4
    result, _, slept = await run({"action": "app.read"})
    assert not result.succeeded and isinstance(result.error.__cause__, ActionFailed)
    assert result.error.__cause__.status == 500
    assert len(result.traces) == 3 and slept == [5.0, 10.0] and len(script.received) == 3


async def test_a_step_overrides_attempts_delay_factor_and_cap(run: Any, script: Script) -> None:
    script.replies["read"] = [(503, {})] * 4
    retry = {"max_attempts": 5, "delay": 1, "factor": 3, "max_delay": 5}
    result, retrying, slept = await run({"action": "app.read", "retry": retry})
    assert result.succeeded and [e.delay for e in retrying] == [1.0, 3.0, 5.0, 5.0] == slept
    assert [t.retry_delay for t in result.traces] == [None, 1.0, 3.0, 5.0, 5.0]


async def test_max_attempts_1_turns_retries_off(run: Any, script: Script) -> None:
    script.replies["read"] = [(503, {})]
    result, retrying, slept = await run({"action": "app.read", "retry": {"max_attempts": 1}})
    assert not result.succeeded and len(result.traces) == 1 and retrying == [] and slept == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_a_4xx_a_repeat_cannot_fix_is_not_retried(run: Any, script: Script, status: int) -> None:
    script.replies["read"] = [(status, {})]
    result, retrying, slept = await run({"action": "app.read"})
    assert not result.succeeded and result.error.__cause__.status == status
    assert len(result.traces) == 1 and retrying == [] and slept == [] and script.received == ["GET /read"]


@pytest.mark.parametrize("status", [408, 425, 429])
async def test_408_425_429_are_retried_even_for_a_post(run: Any, script: Script, status: int) -> None:
    script.replies["create"] = [(status, {})]
    result, retrying, slept = await run({"action": "app.create"})
    assert result.succeeded and [e.error_code for e in retrying] == [f"http_{status}"] and slept == [5.0]


async def test_an_expression_error_sends_nothing_and_is_not_retried(run: Any, script: Script) -> None:
    result, retrying, slept = await run({"action": "app.read", "input": {"x": "{{ $number('not a number') }}"}})
    assert not result.succeeded and result.error.code == "step_expression_error"
    assert script.received == [] and retrying == [] and slept == []


async def test_a_retry_after_within_the_cap_is_the_wait(run: Any, script: Script) -> None:
    script.replies["read"] = [(429, {"Retry-After": "42"})]
    result, retrying, slept = await run({"action": "app.read"})
    assert result.succeeded and [e.delay for e in retrying] == [42.0] == slept


async def test_a_retry_after_beyond_the_cap_fails_an_inline_run_with_action_retry_later(run: Any, script: Script) -> None:
    script.replies["read"] = [(429, {"Retry-After": "120"})]
    result, retrying, slept = await run({"action": "app.read", "retry": {"max_delay": 60}})
    error = result.error.__cause__
    assert not result.succeeded and isinstance(error, ActionRetryLater)
    assert (error.code, error.http_status, error.retry_after, error.max_delay, error.attempts) == (
        "action_retry_later", 503, 120.0, 60.0, 1)
    assert "retry after 120 s" in str(error)
    # nobody waited: the run ended at once, after the one attempt
    assert slept == [] and retrying == [] and len(result.traces) == 1
    record = result.record.to_dict()
    assert [c["error"]["code"] for c in record["calls"]] == ["action_retry_later"]


def test_the_default_step_settings_are_the_http_layers_step_policy() -> None:
    assert retry_policy_of(None) == retry_policy_of(RetrySpec()) == DEFAULT_STEP_RETRY_POLICY
    policy = DEFAULT_STEP_RETRY_POLICY
    assert (policy.max_attempts, policy.base_delay, policy.factor, policy.max_delay, policy.max_retry_after) == (
        3, 5.0, 2.0, 60.0, 60.0)


@pytest.mark.parametrize(("retry", "pointer"), [
    ({"max_attempts": 0}, "/steps/0/retry/max_attempts"),
    ({"max_attempts": 11}, "/steps/0/retry/max_attempts"),
    ({"delay": -1}, "/steps/0/retry/delay"),
    ({"factor": 0.5}, "/steps/0/retry/factor"),
    ({"max_delay": 0}, "/steps/0/retry/max_delay"),
    ({"delay": 10, "max_delay": 5}, "/steps/0/retry"),
    ({"attempts": 2}, "/steps/0/retry/attempts"),
])
def test_bad_retry_settings_name_their_json_pointer(retry: dict[str, Any], pointer: str) -> None:
    with pytest.raises(SpecValidationError) as info:
        load_workflow({"id": "w", "steps": [{"id": "call", "action": "app.read", "retry": retry}]})
    assert [p.pointer for p in info.value.problems] == [pointer], info.value.problems


def test_a_sync_step_takes_retry_settings_too() -> None:
    spec = load_workflow({"id": "w", "steps": [{"id": "s", "retry": {"max_attempts": 2}, "sync": {
        "source": "{{ input.rows }}", "target": {"list": "app.read", "create": "app.create"},
        "match": {"source": "id", "target": "id"}, "map": {"id": "{{ source.id }}"}}}]})
    assert spec.steps[0].retry == RetrySpec(max_attempts=2)
