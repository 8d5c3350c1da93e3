"""The interpreter's step kinds, scopes, dependencies and errors, against in-memory apps."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import engine.workflow as workflow_pkg
from engine.errors import (
    ActionFailed,
    CallDepthExceeded,
    SecretNotFound,
    StepExpressionError,
    StepFailed,
    StepValueError,
    WorkflowError,
    WorkflowInputInvalid,
    WorkflowNotFound,
)
from engine.specs import load_workflow
from engine.workflow import (
    FAKE_EPOCH,
    Dependencies,
    FakeClock,
    Interpreter,
    SequentialIds,
    StaticSecrets,
    SystemClock,
    WorkflowRegistry,
    seq_key,
)
from test_workflow_apps import MemoryApps, echo_app


def wf(steps: list[dict], **extra: Any):
    return load_workflow({"id": extra.pop("id", "wf"), "steps": steps, **extra})


def deps(apps: MemoryApps | None = None, **kw: Any) -> Dependencies:
    kw.setdefault("clock", FakeClock())
    kw.setdefault("ids", SequentialIds("run"))
    kw.setdefault("random", random.Random(7))
    return Dependencies(invoker=apps or echo_app(), **kw)


async def run(workflow, input=None, apps=None, **kw):
    return await Interpreter(deps(apps, **{k: v for k, v in kw.items() if k != "trigger"})).run(
        workflow, input, trigger=kw.get("trigger"))


def test_public_surface() -> None:
    assert sorted(workflow_pkg.__all__) == sorted([
        "FAKE_EPOCH", "MAX_CALL_DEPTH", "ActionCall", "ActionInvoker", "CallRecord", "Clock", "Dependencies",
        "ErrorInfo", "FakeClock", "Interpreter", "Redactor", "ReplayInvoker", "RunRecord", "RunResult",
        "SecretProvider", "SequentialIds", "StaticSecrets", "StepRecord", "SystemClock", "TraceRecord", "TraceSink",
        "WorkflowLookup", "WorkflowRegistry", "is_subset", "new_id", "seq_key", "truthy", "validate_input",
        "DRY_RUN_HEADER", "SAFE_METHODS", "DryRunHttp", "DryRunInvoker", "synthetic_response",
        "CallTraced", "NullObserver", "RecordingObserver", "RunEvent", "RunObserver", "StepErrored", "StepFinished",
        "StepRetrying", "StepStarted", "secret_forms", "EventWait", "EventWaiter", "NoEventWaiter",
    ])
    for name in workflow_pkg.__all__:
        assert getattr(workflow_pkg, name) is not None


# -- action, map, output -------------------------------------------------------------


async def test_action_step_sees_input_trigger_secrets_and_run() -> None:
    apps = echo_app()
    workflow = wf([{"id": "send", "action": "app.echo", "paginate": False, "max_pages": 3, "input": {
        "name": "{{ input.name }}", "event": "{{ trigger.event }}", "key": "{{ secrets.api_key }}",
        "run": "{{ run.id }}/{{ run.workflow }}/{{ run.version }}", "at": "{{ run.started_at }}",
    }}])
    result = await run(workflow, {"name": "Ada"}, apps, trigger={"event": "created"},
                       secrets=StaticSecrets({"api_key": "k-123"}))
    assert result.status == "succeeded" and result.error is None
    # the secret is sent; the run's output, which echoes it, does not return it
    assert result.output == {"echo": {"name": "Ada", "event": "created", "key": "[secret:api_key]",
                                      "run": "run-1/wf/1", "at": FAKE_EPOCH.isoformat()}}
    [call] = apps.calls
    assert call.input["key"] == "k-123"
    assert (call.run_id, call.seq, call.step_id, call.step_path) == ("run-1", "2", "send", "send")
    assert (call.connector, call.action, call.paginate, call.max_pages) == ("app", "echo", False, 3)
    assert [t.seq for t in result.traces] == ["2"] and result.traces[0].step_path == "send"
    # the record names the secret but never holds its value, the trace neither
    text = json.dumps(result.record.to_dict())
    assert "k-123" not in text and "[secret:api_key]" in text
    assert result.record.secrets == ("api_key",)
    assert "k-123" not in json.dumps([t.to_dict() for t in result.traces])


async def test_map_step_and_steps_namespace() -> None:
    workflow = wf([
        {"id": "a", "map": {"n": "{{ input.n * 2 }}", "list": "{{ [1, 2] }}"}},
        {"id": "b", "map": {"sum": "{{ steps.a.n + $sum(steps.a.list) }}", "text": "n={{ steps.a.n }}"}},
    ])
    result = await run(workflow, {"n": 5})
    assert result.output == {"sum": 13, "text": "n=10"}
    assert [(s.seq, s.step_id, s.kind) for s in result.record.steps] == [("1", "a", "map"), ("2", "b", "map")]


async def test_workflow_output_template_or_last_step() -> None:
    steps = [{"id": "a", "map": {"x": 1}}, {"id": "b", "map": {"y": 2}}]
    assert (await run(wf(steps))).output == {"y": 2}
    assert (await run(wf(steps, output={"both": "{{ steps.a.x + steps.b.y }}"}))).output == {"both": 3}


# -- filter ----------------------------------------------------------------------------


async def test_filter_uses_jsonata_truthiness_and_item_name() -> None:
    workflow = wf([
        {"id": "keep", "filter": {"items": "{{ input.rows }}", "where": "row.email", "as": "row"}},
        {"id": "big", "filter": {"items": "{{ input.rows }}", "where": "{{ item.n > 1 }}"}},
    ], output={"keep": "{{ steps.keep }}", "big": "{{ steps.big }}"})
    rows = [{"email": "a@x", "n": 1}, {"email": "", "n": 2}, {"n": 3}, {"email": "b@x", "n": 0}]
    result = await run(workflow, {"rows": rows})
    assert result.output == {"keep": [rows[0], rows[3]], "big": [rows[1], rows[2]]}


@pytest.mark.parametrize("items, expected", [({"n": 1}, [{"n": 1}]), (None, []), ([], [])])
async def test_filter_single_object_and_null(items: Any, expected: list) -> None:
    workflow = wf([{"id": "f", "filter": {"items": "{{ input.items }}", "where": "true"}}])
    assert (await run(workflow, {"items": items})).output == expected


async def test_filter_items_that_are_not_a_list_fail_naming_step_and_pointer() -> None:
    workflow = wf([{"id": "f", "filter": {"items": "{{ input.items }}", "where": "true"}}])
    result = await run(workflow, {"items": "not a list"})
    assert result.status == "failed"
    assert isinstance(result.error, StepValueError)
    assert result.error.step_id == "f" and result.error.pointer == "/steps/0/filter/items"
    assert "expected a list" in str(result.error) and "'f'" in str(result.error)


# -- if ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n, branch, out", [(5, "then", "big"), (1, "else", "small"), (0, "else", "small")])
async def test_if_runs_one_branch_and_its_steps_stay_visible(n: int, branch: str, out: str) -> None:
    workflow = wf([
        {"id": "check", "if": "input.n > 2",
         "then": [{"id": "hi", "map": "big"}], "else": [{"id": "lo", "map": "small"}]},
        {"id": "after", "map": {"check": "{{ steps.check }}", "hi": "{{ steps.hi }}", "lo": "{{ steps.lo }}"}},
    ])
    result = await run(workflow, {"n": n})
    assert result.output["check"] == {"branch": branch, "output": out}
    assert result.output["hi" if branch == "then" else "lo"] == out
    assert ("lo" if branch == "then" else "hi") not in result.output  # the branch not taken left no output
    paths = [s.step_path for s in result.record.steps]
    assert paths == ["check", "check/" + ("hi" if branch == "then" else "lo"), "after"]


async def test_if_with_empty_branch() -> None:
    workflow = wf([{"id": "check", "if": "{{ false }}", "then": [{"id": "x", "map": 1}]}])
    assert (await run(workflow)).output == {"branch": "else", "output": None}


# -- foreach -----------------------------------------------------------------------------


async def test_foreach_outputs_in_item_order_with_own_scopes() -> None:
    workflow = wf([
        {"id": "base", "map": 10},
        {"id": "loop", "foreach": {"items": "{{ input.xs }}", "as": "x", "steps": [
            {"id": "double", "map": "{{ x * 2 + steps.base }}"},
            {"id": "inner", "foreach": {"items": "{{ [1, 2] }}", "as": "y", "steps": [
                {"id": "pair", "map": "{{ x & '-' & y & '-' & steps.double }}"}]}},
        ], "output": {"x": "{{ x }}", "double": "{{ steps.double }}", "pairs": "{{ steps.inner }}"}}},
        {"id": "after", "map": {"double": "{{ steps.double }}", "pair": "{{ steps.pair }}",
                                "loop": "{{ $count(steps.loop) }}"}},
    ])
    result = await run(workflow, {"xs": [1, 2, 3]})
    loop = result.record.steps[1]
    assert loop.output == [
        {"x": 1, "double": 12, "pairs": ["1-1-12", "1-2-12"]},
        {"x": 2, "double": 14, "pairs": ["2-1-14", "2-2-14"]},
        {"x": 3, "double": 16, "pairs": ["3-1-16", "3-2-16"]},
    ]
    # steps inside iterations write to the iteration, not to the run
    assert result.output == {"loop": 3}  # iteration steps are not visible outside the loop
    seqs = [(s.seq, s.step_path, s.kind) for s in result.record.steps][:8]
    assert seqs == [
        ("1", "base", "map"), ("2", "loop", "foreach"), ("2.1", "loop/0", "iteration"),
        ("2.1.1", "loop/0/double", "map"), ("2.1.2", "loop/0/inner", "foreach"),
        ("2.1.2.1", "loop/0/inner/0", "iteration"), ("2.1.2.1.1", "loop/0/inner/0/pair", "map"),
        ("2.1.2.2", "loop/0/inner/1", "iteration"),
    ]


async def test_foreach_default_output_is_last_step_and_empty_list() -> None:
    workflow = wf([{"id": "loop", "foreach": {"items": "{{ input.xs }}", "steps": [
        {"id": "a", "action": "app.echo", "input": {"v": "{{ item }}"}}]}}])
    assert (await run(workflow, {"xs": ["p", "q"]})).output == [{"echo": {"v": "p"}}, {"echo": {"v": "q"}}]
    assert (await run(workflow, {"xs": []})).output == []


async def test_foreach_concurrency_keeps_item_order_and_limit() -> None:
    apps = echo_app()
    # item i answers after (10 - i) event-loop turns: later items finish first
    apps.latency = lambda call: 10 - call.input["v"]
    workflow = wf([{"id": "loop", "foreach": {"items": "{{ input.xs }}", "concurrency": 3, "steps": [
        {"id": "a", "action": "app.echo", "input": {"v": "{{ item }}"}}]}}])
    result = await run(workflow, {"xs": list(range(8))}, apps)
    assert result.output == [{"echo": {"v": i}} for i in range(8)]
    assert apps.max_in_flight == 3
    # calls start in item order; they finish in reverse (each trace is written when its call ends)
    assert [c.seq for c in apps.calls][:3] == ["1.1.2", "1.2.2", "1.3.2"]
    assert [t.step_path for t in apps.calls[0].trace.list()][:3] == ["loop/2/a", "loop/1/a", "loop/0/a"]
    # traces come back in seq order, whatever order the calls finished in
    assert [t.seq for t in result.traces] == sorted((t.seq for t in result.traces), key=seq_key)
    assert [t.step_path for t in result.traces] == [f"loop/{i}/a" for i in range(8)]


async def test_foreach_concurrency_on_a_fake_clock() -> None:
    clock = FakeClock()
    apps = echo_app()
    apps.clock = clock
    # item i takes 8 - i (virtual) seconds: later items finish first
    apps.delay = lambda call: 8 - call.input["v"]
    workflow = wf([{"id": "loop", "foreach": {"items": "{{ input.xs }}", "concurrency": 3, "steps": [
        {"id": "a", "action": "app.echo", "input": {"v": "{{ item }}"}},
        {"id": "t", "map": "{{ $now() }}"}], "output": "{{ steps.t }}"}}])
    result = await run(workflow, {"xs": list(range(8))}, apps, clock=clock)
    assert apps.max_in_flight == 3
    # 3 at a time: items 0-2 start at 0s and end at 8, 7, 6s; 3-5 start then and all end at 11s; 6 and 7 at 13, 12s
    finished = [int(t[17:19]) for t in result.output]
    assert finished == [8, 7, 6, 11, 11, 11, 13, 12]
    assert clock.now() == FAKE_EPOCH + timedelta(seconds=13)
    assert sorted(clock.slept) == [1, 2, 3, 4, 5, 6, 7, 8]


async def test_foreach_numbering_does_not_depend_on_timing() -> None:
    workflow = wf([{"id": "loop", "foreach": {"items": "{{ input.xs }}", "concurrency": 4, "steps": [
        {"id": "a", "action": "app.echo", "input": {"v": "{{ item }}"}},
        {"id": "b", "action": "app.echo", "input": {"w": "{{ item }}"}}]}}])
    records = []
    for latency in (lambda c: c.input.get("v", 0), lambda c: 9 - c.input.get("v", c.input.get("w", 0))):
        apps = echo_app()
        apps.latency = latency
        result = await run(workflow, {"xs": list(range(6))}, apps)
        records.append(json.dumps(result.record.to_dict(), sort_keys=True))
        assert apps.max_in_flight == 4
    assert records[0] == records[1]


async def test_foreach_failure_stops_new_iterations_and_reports_lowest_item() -> None:
    apps = echo_app()
    workflow = wf([{"id": "loop", "foreach": {"items": "{{ input.xs }}", "steps": [
        {"id": "a", "action": "app.echo", "input": {"v": "{{ item }}"}},
        {"id": "check", "if": "item = 'bad'", "then": [{"id": "boom", "action": "app.fail"}]}]}}])
    result = await run(workflow, {"xs": ["ok", "bad", "later"]}, apps)
    assert result.status == "failed"
    assert isinstance(result.error, StepFailed)
    assert result.error.step_id == "boom" and result.error.step_path == "loop/1/check/boom"
    assert result.error.action == "app.fail" and isinstance(result.error.cause, ActionFailed)
    assert [c.input for c in apps.actions("app.echo")] == [{"v": "ok"}, {"v": "bad"}]
    failed = {s.step_path: s.error.code for s in result.record.steps if s.error}
    assert failed == {"loop": "step_failed", "loop/1": "step_failed", "loop/1/check": "step_failed",
                      "loop/1/check/boom": "step_failed"}
    assert result.record.status == "failed" and result.record.error.step_id == "boom"


async def test_concurrent_foreach_failure_is_the_lowest_failed_item() -> None:
    apps = echo_app()
    apps.latency = lambda call: 10 - call.input.get("v", 0)
    workflow = wf([{"id": "loop", "foreach": {"items": "{{ input.xs }}", "concurrency": 4, "steps": [
        {"id": "a", "action": "app.echo", "input": {"v": "{{ item }}"}},
        {"id": "check", "if": "item % 2 = 1", "then": [{"id": "boom", "action": "app.fail"}]}]}}])
    result = await run(workflow, {"xs": [0, 1, 2, 3, 4, 5, 6, 7]}, apps)
    assert isinstance(result.error, StepFailed) and result.error.step_path == "loop/1/check/boom"


# -- delay and clock ---------------------------------------------------------------------


async def test_delay_sleeps_on_the_injected_clock_and_now_reads_it() -> None:
    clock = FakeClock(datetime(2030, 5, 1, 12, 0, tzinfo=timezone.utc))
    workflow = wf([
        {"id": "before", "map": "{{ $now() }}"},
        {"id": "wait", "delay": {"seconds": 90}},
        {"id": "wait2", "delay": {"seconds": "{{ input.more }}"}},
        {"id": "after", "map": {"now": "{{ $now() }}", "millis": "{{ $millis() }}"}},
    ], output={"before": "{{ steps.before }}", "after": "{{ steps.after }}", "wait": "{{ steps.wait2 }}"})
    result = await run(workflow, {"more": 0.5}, clock=clock)
    assert clock.slept == [90, 0.5]
    end = datetime(2030, 5, 1, 12, 1, 30, 500000, tzinfo=timezone.utc)
    assert result.output == {"before": "2030-05-01T12:00:00.000Z",
                             "after": {"now": "2030-05-01T12:01:30.500Z", "millis": int(end.timestamp() * 1000)},
                             "wait": {"seconds": 0.5}}
    assert clock.now() == end


@pytest.mark.parametrize("seconds", ["{{ -1 }}", "{{ 'soon' }}", "{{ true }}"])
async def test_bad_delay_fails_naming_the_pointer(seconds: Any) -> None:
    result = await run(wf([{"id": "wait", "delay": {"seconds": seconds}}]))
    assert isinstance(result.error, StepValueError) and result.error.pointer == "/steps/0/delay/seconds"


async def test_system_clock_is_aware_and_sleeps() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is not None
    await clock.sleep(0)
    with pytest.raises(ValueError):
        FakeClock(datetime(2020, 1, 1))
    fake = FakeClock()
    fake.advance(60)
    assert fake.now() == FAKE_EPOCH + timedelta(minutes=1)


# -- call --------------------------------------------------------------------------------


CHILD = {"id": "child", "version": 2, "input": {"type": "object", "required": ["n"],
                                                "properties": {"n": {"type": "integer"}}},
         "steps": [{"id": "a", "map": "{{ input.n + 1 }}"},
                   {"id": "b", "action": "app.echo", "input": {"n": "{{ steps.a }}", "parent": "{{ run.parent }}"}}],
         "output": {"result": "{{ steps.b.echo.n }}", "run": "{{ run.id }}", "steps_seen": "{{ $keys(steps) }}"}}


async def test_call_step_runs_the_child_in_its_own_scope() -> None:
    apps = echo_app()
    registry = WorkflowRegistry([load_workflow(CHILD), load_workflow({**CHILD, "version": 1, "output": "old"})])
    workflow = wf([{"id": "a", "map": 41},
                   {"id": "sub", "call": {"workflow": "child", "input": {"n": "{{ steps.a }}"}}}])
    result = await run(workflow, apps=apps, workflows=registry)
    assert result.output == {"result": 42, "run": "run-1/sub", "steps_seen": ["a", "b"]}
    assert apps.calls[0].input == {"n": 42, "parent": "run-1"} and apps.calls[0].step_path == "sub/b"
    assert [(s.seq, s.step_path) for s in result.record.steps] == [
        ("1", "a"), ("2", "sub"), ("3", "sub/a"), ("4", "sub/b")]
    pinned = wf([{"id": "sub", "call": {"workflow": "child", "version": 1, "input": {"n": 1}}}])
    assert (await run(pinned, workflows=registry)).output == "old"


async def test_call_of_unknown_workflow_fails_the_run() -> None:
    workflow = wf([{"id": "sub", "call": {"workflow": "nope", "version": 3}}])
    result = await run(workflow)
    assert result.status == "failed" and isinstance(result.error, WorkflowNotFound)
    assert result.error.step_id == "sub" and result.error.workflow_id == "nope" and result.error.version == 3
    assert "'nope' version 3" in str(result.error) and result.error.http_status == 422


async def test_call_with_invalid_child_input_fails_naming_pointer() -> None:
    registry = WorkflowRegistry([load_workflow(CHILD)])
    result = await run(wf([{"id": "sub", "call": {"workflow": "child", "input": {"n": "x"}}}]), workflows=registry)
    assert isinstance(result.error, WorkflowInputInvalid) and result.error.step_id == "sub"
    assert [p.pointer for p in result.error.problems] == ["/n"]


async def test_recursive_call_stops_at_the_depth_limit() -> None:
    looping = load_workflow({"id": "again", "steps": [{"id": "me", "call": {"workflow": "again"}}]})
    result = await Interpreter(deps(workflows=WorkflowRegistry([looping])), max_call_depth=4).run(looping)
    assert isinstance(result.error, CallDepthExceeded)
    assert result.error.limit == 4 and result.error.step_id == "me"
    assert result.error.run_id == "run-1" and "deeper than 4" in str(result.error)
    assert [s.step_path for s in result.record.steps][-1] == "me/me/me/me/me"


async def test_async_workflow_lookup() -> None:
    child = load_workflow(CHILD)

    async def lookup(workflow_id: str, version: int | None):
        return child if workflow_id == "child" else None

    result = await run(wf([{"id": "sub", "call": {"workflow": "child", "input": {"n": 1}}}]), workflows=lookup)
    assert result.output["result"] == 2


# -- bad input and typed errors ------------------------------------------------------------------


async def test_input_failing_the_schema_is_refused_before_running() -> None:
    apps = echo_app()
    workflow = wf([{"id": "a", "action": "app.echo"}], input={
        "type": "object", "required": ["email", "name"],
        "properties": {"email": {"type": "string", "format": "email"},
                       "tags": {"type": "array", "items": {"type": "string"}}}})
    with pytest.raises(WorkflowInputInvalid) as caught:
        await run(workflow, {"email": "not-an-email", "tags": ["a", 3]}, apps)
    error = caught.value
    assert [p.pointer for p in error.problems] == ["/email", "/name", "/tags/1"]
    assert "/tags/1" in str(error) and "'wf'" in str(error) and error.http_status == 422
    assert error.code == "workflow_input_invalid" and isinstance(error, WorkflowError)
    assert apps.calls == []


async def test_expression_error_names_the_step_and_pointer() -> None:
    workflow = wf([
        {"id": "ok", "map": 1},
        {"id": "send", "action": "app.echo", "input": {"body": {"to": ["{{ input.a + }}"]}}},
    ])
    result = await run(workflow, {"a": 1})
    error = result.error
    assert isinstance(error, StepExpressionError)
    assert (error.step_id, error.pointer, error.workflow_id) == ("send", "/steps/1/input/body/to/0", "wf")
    assert "'send'" in str(error) and "/steps/1/input/body/to/0" in str(error)
    assert result.record.steps[-1].error.code == "step_expression_error"


async def test_evaluation_error_inside_foreach_names_the_nested_pointer() -> None:
    workflow = wf([{"id": "loop", "foreach": {"items": "{{ [1] }}", "steps": [
        {"id": "m", "map": {"x": "{{ 'a' + item }}"}}]}}])
    result = await run(workflow)
    assert isinstance(result.error, StepExpressionError)
    assert result.error.step_id == "m" and result.error.pointer == "/steps/0/foreach/steps/0/map/x"


async def test_action_failure_is_step_failed_with_the_cause() -> None:
    result = await run(wf([{"id": "a", "map": 1}, {"id": "go", "action": "app.fail"}]))
    error = result.error
    assert isinstance(error, StepFailed) and error.action == "app.fail" and error.step_id == "go"
    assert error.run_id == "run-1" and error.http_status == 502 and isinstance(error.cause, ActionFailed)
    assert "run 'run-1'" in str(error) and "app.fail" in str(error) and "503" in str(error)
    assert result.output is None and result.record.calls[0].error.code == "action_failed"
    assert result.traces[0].status == 503


async def test_missing_secret_fails_the_step() -> None:
    result = await run(wf([{"id": "a", "action": "app.echo", "input": {"k": "{{ secrets.`missing-key` }}"}}]))
    assert isinstance(result.error, StepFailed) and isinstance(result.error.cause, SecretNotFound)
    assert result.error.cause.name == "missing-key" and result.error.action is None


# -- wait (for an event) ------------------------------------------------------------------


class _Waiter:
    """Answers wait steps with ``event`` (None: the timeout passed), keeping what was asked."""

    def __init__(self, event: dict[str, Any] | None) -> None:
        self.event = event
        self.asked: list[workflow_pkg.EventWait] = []

    async def wait(self, request: workflow_pkg.EventWait) -> dict[str, Any] | None:
        self.asked.append(request)
        return self.event


WAITING = [
    {"id": "order", "map": {"id": "{{ input.order }}"}},
    {"id": "paid", "wait": {"event": "webhook", "match": {"order.id": "{{ steps.order.id }}"}, "timeout": "2h"}},
]


async def test_a_wait_step_asks_its_waiter_with_the_rendered_match_and_records_the_event() -> None:
    waiter = _Waiter({"event_id": "evt_1", "payload": {"order": {"id": 5}, "amount": 3}})
    result = await run(wf(WAITING, tier="long", output="{{ steps.paid.payload.amount }}"), {"order": 5}, waiter=waiter)
    assert result.status == "succeeded" and result.output == 3
    [asked] = waiter.asked
    assert (asked.source, asked.trigger, asked.match, asked.timeout, asked.topic) == (
        "webhook", None, {"order.id": 5}, 7200.0, "wait:2")
    # A replay answers the wait from the record, asking no waiter.
    replayed = await Interpreter(deps()).replay(wf(WAITING, tier="long", output="{{ steps.paid.payload.amount }}"),
                                                result.record)
    assert replayed.output == 3


async def test_a_wait_step_times_out_by_its_on_timeout() -> None:
    failed = await run(wf(WAITING, tier="long"), {"order": 5}, waiter=_Waiter(None))
    assert failed.error is not None and failed.error.code == "wait_timed_out" and failed.error.step_id == "paid"
    steps = [dict(WAITING[0]), {"id": "paid", "wait": {**WAITING[1]["wait"], "on_timeout": "continue"}}]
    continued = await run(wf(steps, tier="long"), {"order": 5}, waiter=_Waiter(None))
    assert continued.status == "succeeded" and continued.output == {"timed_out": True}


async def test_a_wait_step_without_a_durable_waiter_fails_saying_why() -> None:
    result = await run(wf(WAITING, tier="long"), {"order": 5})
    assert result.error is not None and result.error.code == "wait_unavailable"
    assert "durable Long execution" in str(result.error)


@pytest.mark.parametrize(("wait", "pointer"), [
    ({"match": {"not a path": 1}}, "/steps/0/wait/match"),
    ({"timeout": "soon"}, "/steps/0/wait/timeout"),
    ({"timeout": 0}, "/steps/0/wait/timeout"),
    ({"event": "email"}, "/steps/0/wait/event"),
])
def test_bad_wait_steps_are_refused_naming_the_pointer(wait: dict[str, Any], pointer: str) -> None:
    from engine.errors import SpecValidationError

    with pytest.raises(SpecValidationError) as refused:
        wf([{"id": "paid", "wait": wait}], tier="long")
    assert pointer in [problem.pointer for problem in refused.value.problems], refused.value.problems


def test_a_wait_step_outside_a_long_workflow_is_a_problem_at_its_pointer() -> None:
    from engine import check_workflow

    problems = check_workflow(wf(WAITING, tier="standard"), {})
    assert [(p.pointer, "tier: long" in p.message) for p in problems] == [("/steps/1/wait", True)]
