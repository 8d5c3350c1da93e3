"""Determinism, record and replay: same deps give the same record; replays call nothing; divergence is typed."""

from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timezone
from typing import Any

import pytest

from engine.errors import ReplayDivergence, StepFailed, WorkflowError
from engine.specs import load_workflow
from engine.workflow import (
    Dependencies,
    FakeClock,
    Interpreter,
    Redactor,
    ReplayInvoker,
    RunRecord,
    SequentialIds,
    StaticSecrets,
    WorkflowRegistry,
)
from test_workflow_apps import MemoryApps, echo_app
from test_workflow_sync import CIN7, FLAGSHIP, HUBSPOT, apps_with

CHILD = {"id": "child", "steps": [{"id": "ping", "action": "app.echo", "input": {"n": "{{ input.n }}"}}]}
RICH = {
    "id": "rich",
    "input": {"type": "object", "properties": {"xs": {"type": "array"}}},
    "steps": [
        {"id": "stamp", "map": {"at": "{{ $now() }}", "r": "{{ $random() }}", "run": "{{ run.id }}"}},
        {"id": "auth", "action": "app.echo", "input": {"token": "Bearer {{ secrets.token }}"}},
        {"id": "each", "foreach": {"items": "{{ input.xs }}", "concurrency": 3, "steps": [
            {"id": "wait", "delay": {"seconds": "{{ item }}"}},
            {"id": "hit", "action": "app.echo",
             "input": {"x": "{{ item }}", "at": "{{ $now() }}", "r": "{{ $random() }}"}},
            {"id": "odd", "if": "item % 2 = 1",
             "then": [{"id": "sub", "call": {"workflow": "child", "input": {"n": "{{ item }}"}}}]},
        ]}},
        {"id": "tail", "map": {"count": "{{ $count(steps.each) }}", "auth": "{{ steps.auth.echo.token }}"}},
    ],
    "output": {"tail": "{{ steps.tail }}", "end": "{{ $now() }}", "each": "{{ steps.each }}"},
}
INPUT = {"xs": [3, 1, 2, 5, 4]}


def make_deps(apps: MemoryApps | None = None, **kw: Any) -> Dependencies:
    kw.setdefault("clock", FakeClock(datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)))
    kw.setdefault("ids", SequentialIds("run"))
    kw.setdefault("random", random.Random(42))
    kw.setdefault("secrets", StaticSecrets({"token": "tok-SECRET-1"}))
    kw.setdefault("workflows", WorkflowRegistry([load_workflow(CHILD)]))
    return Dependencies(invoker=apps if apps is not None else echo_app(), **kw)


def rich_apps() -> MemoryApps:
    apps = echo_app()
    apps.latency = lambda call: 7 - int(call.input.get("x", call.input.get("n", 0)) or 0)
    return apps


async def record_rich() -> tuple[Any, MemoryApps]:
    apps = rich_apps()
    result = await Interpreter(make_deps(apps)).run(load_workflow(RICH), INPUT)
    assert result.status == "succeeded", result.error
    return result, apps


def as_json(record: RunRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True)


async def test_same_deps_give_the_same_record() -> None:
    first, _ = await record_rich()
    second, _ = await record_rich()
    assert as_json(first.record) == as_json(second.record)
    # a different seed changes $random, and with it the record
    other = await Interpreter(make_deps(rich_apps(), random=random.Random(43))).run(load_workflow(RICH), INPUT)
    assert as_json(other.record) != as_json(first.record)


async def test_record_is_json_without_secret_values() -> None:
    result, _ = await record_rich()
    text = json.dumps(result.record.to_dict())
    assert "tok-SECRET-1" not in text and "Bearer [secret:token]" in text
    assert RunRecord.from_dict(json.loads(text)) == result.record
    with pytest.raises(ValueError):
        RunRecord.from_dict({"format": 99})
    with pytest.raises(ValueError, match="malformed"):
        RunRecord.from_dict({"format": 1, "run_id": "r"})


async def test_replay_returns_the_same_output_without_calling_out() -> None:
    result, apps = await record_rich()
    assert len(apps.calls) == 1 + 5 + 3
    saved = RunRecord.from_dict(json.loads(json.dumps(result.record.to_dict())))
    # another clock, seed and no secrets at all: the record supplies time, randomness, results
    idle = MemoryApps()
    replay_deps = make_deps(idle, clock=FakeClock(), random=random.Random(0), secrets=StaticSecrets())
    replayed = await Interpreter(replay_deps).replay(load_workflow(RICH), saved)
    assert idle.calls == [] and replay_deps.clock.slept == []
    assert replayed.status == "succeeded" and replayed.run_id == result.run_id
    assert replayed.output == json.loads(json.dumps(Redactor_like(result.output)))
    assert as_json(replayed.record) == as_json(result.record)
    assert replayed.traces == []


def Redactor_like(value: Any) -> Any:
    redact = Redactor()
    redact.add("token", "tok-SECRET-1")
    return redact(value)


async def test_replay_with_the_real_secrets_gives_the_real_output() -> None:
    result, _ = await record_rich()
    replayed = await Interpreter(make_deps(MemoryApps())).run(load_workflow(RICH), INPUT, record=result.record)
    assert replayed.output == result.output


async def test_replay_of_a_failed_run_fails_the_same_way() -> None:
    workflow = load_workflow({"id": "f", "steps": [{"id": "ok", "action": "app.echo"},
                                                   {"id": "bad", "action": "app.fail"}]})
    failed = await Interpreter(make_deps()).run(workflow)
    assert isinstance(failed.error, StepFailed)
    replayed = await Interpreter(make_deps(MemoryApps())).replay(workflow, RunRecord.from_dict(failed.record.to_dict()))
    assert replayed.status == "failed" and isinstance(replayed.error, StepFailed)
    assert str(replayed.error) == str(failed.error) and replayed.error.cause.code == "action_failed"
    assert as_json(replayed.record) == as_json(failed.record)


def changed(mutate) -> Any:
    spec = copy.deepcopy(RICH)
    mutate(spec)
    return load_workflow(spec)


@pytest.mark.parametrize("mutate, step, seq", [
    # a call's input template changed
    (lambda s: s["steps"][1]["input"].update(extra="1"), "auth", "3"),
    # a step renamed
    (lambda s: s["steps"][0].update(id="stamp2"), "stamp2", "1"),
    # a step added in front
    (lambda s: s["steps"].insert(0, {"id": "new", "map": 1}), "new", "1"),
    # a step removed at the end: the record holds a step the replay never reached
    (lambda s: (s["steps"].pop(), s.update(output="{{ steps.each }}")), "tail", "5"),
    # a change of a map step's output (no call involved)
    (lambda s: s["steps"][3]["map"].update(more=1), "tail", "5"),
    # inside a concurrent foreach iteration
    (lambda s: s["steps"][2]["foreach"]["steps"][1]["input"].update(y=2), "each/0/hit", "4.1.3"),
])
async def test_replay_divergence_when_the_workflow_changed(mutate, step: str, seq: str) -> None:
    result, _ = await record_rich()
    with pytest.raises(ReplayDivergence) as caught:
        await Interpreter(make_deps(MemoryApps())).replay(changed(mutate), result.record)
    error = caught.value
    assert (error.run_id, error.step, error.seq) == ("run-1", step, seq)
    assert error.expected != error.recorded
    message = str(error)
    assert "'run-1'" in message and repr(step) in message and "expected" in message and "recorded" in message
    assert error.code == "replay_divergence" and error.http_status == 409 and isinstance(error, WorkflowError)


async def test_replay_divergence_names_expected_and_recorded_call() -> None:
    result, _ = await record_rich()
    with pytest.raises(ReplayDivergence) as caught:
        await Interpreter(make_deps(MemoryApps())).replay(
            changed(lambda s: s["steps"][1]["input"].update(token="{{ secrets.token }}")), result.record)
    error = caught.value
    assert error.expected == {"call": "app.echo", "step_path": "auth", "input": {"token": "[secret:token]"}}
    assert error.recorded == {"call": "app.echo", "step_path": "auth", "input": {"token": "Bearer [secret:token]"}}
    assert '"Bearer [secret:token]"' in str(error) and "tok-SECRET-1" not in str(error)


async def test_replay_divergence_when_the_input_changed() -> None:
    result, _ = await record_rich()
    with pytest.raises(ReplayDivergence) as caught:
        await Interpreter(make_deps(MemoryApps())).run(load_workflow(RICH), {"xs": [3, 1]}, record=result.record)
    error = caught.value
    assert (error.run_id, error.step) == ("run-1", "(input)")
    assert error.expected == {"xs": [3, 1]} and error.recorded == INPUT
    assert "[3, 1]" in str(error) and "[3, 1, 2, 5, 4]" in str(error)


async def test_replay_divergence_for_another_workflow_trigger_or_run_id() -> None:
    result, _ = await record_rich()
    interpreter = Interpreter(make_deps(MemoryApps()))
    with pytest.raises(ReplayDivergence, match=r"\(workflow\)"):
        await interpreter.replay(load_workflow({**RICH, "id": "other"}), result.record)
    with pytest.raises(ReplayDivergence, match=r"\(trigger\)"):
        await interpreter.run(load_workflow(RICH), INPUT, trigger={"x": 1}, record=result.record)
    with pytest.raises(ReplayDivergence, match=r"\(run id\)"):
        await interpreter.run(load_workflow(RICH), INPUT, run_id="run-9", record=result.record)


async def test_replay_invoker_refuses_extra_calls() -> None:
    workflow = load_workflow({"id": "one", "steps": [{"id": "a", "action": "app.echo"}]})
    result = await Interpreter(make_deps()).run(workflow)
    twice = load_workflow({"id": "one", "steps": [{"id": "a", "action": "app.echo"},
                                                  {"id": "b", "action": "app.echo"}]})
    with pytest.raises(ReplayDivergence) as caught:
        await Interpreter(make_deps(MemoryApps())).replay(twice, result.record)
    assert caught.value.step == "b" and caught.value.recorded is None
    invoker = ReplayInvoker(result.record)
    assert invoker.has_step("1") and not invoker.has_step("2")


async def test_flagship_sync_replays_and_is_deterministic() -> None:
    records = []
    for _ in range(2):
        apps = apps_with(HUBSPOT, CIN7)
        result = await Interpreter(make_deps(apps)).run(load_workflow(FLAGSHIP))
        records.append(result.record)
    assert as_json(records[0]) == as_json(records[1])
    idle = MemoryApps()
    replayed = await Interpreter(make_deps(idle)).replay(load_workflow(FLAGSHIP), records[0])
    assert idle.calls == [] and replayed.output == records[0].output
    assert [c.step_path for c in records[0].calls] == [
        "contacts", "sync_customers/list", "sync_customers/update/0", "sync_customers/create/2"]
    assert [c.seq for c in records[0].calls] == ["2", "4", "5", "6"]


async def test_a_record_of_another_version_diverges():
    from engine.errors import ReplayDivergence
    from engine.specs import load_workflow
    from engine.workflow import Dependencies, Interpreter

    class Never:
        async def invoke(self, call):
            raise AssertionError("no calls")

    v1 = load_workflow({"id": "w", "version": 1, "steps": [{"id": "a", "map": {"x": 1}}]})
    result = await Interpreter(Dependencies(invoker=Never())).run(v1, {})
    v2 = load_workflow({"id": "w", "version": 2, "steps": [{"id": "a", "map": {"x": 1}}]})
    with pytest.raises(ReplayDivergence, match="workflow version"):
        await Interpreter(Dependencies(invoker=Never())).replay(v2, result.record)
