"""The run observer: every step boundary, retry, failure and HTTP trace, in order, without secrets."""

from __future__ import annotations

import json
import random
from typing import Any

from engine.errors import ActionFailed
from engine.specs import load_workflow
from engine.workflow import (
    ActionCall,
    CallTraced,
    Dependencies,
    FakeClock,
    Interpreter,
    NullObserver,
    RecordingObserver,
    RunObserver,
    SequentialIds,
    StaticSecrets,
    StepErrored,
    StepFinished,
    StepRetrying,
    StepStarted,
    TraceRecord,
)

TOKEN = "tok-Canary-7f3a9"


class ScriptedApp:
    """An invoker that writes the traces an HTTP executor would: ``app.flaky`` answers 503 and then 200
    (a retry), ``app.broken`` answers 500 quoting the token it was sent."""

    async def invoke(self, call: ActionCall) -> Any:
        def trace(attempt: int, status: int, error: str | None = None) -> None:
            call.trace.append(TraceRecord(
                run_id=call.run_id, seq=call.seq, step_id=call.step_id, step_path=call.step_path,
                connector=call.connector, action=call.action, method="POST", url=f"https://app.test/{call.action}",
                status=status, latency_ms=1.0, attempt=attempt, error=error))

        if call.action == "flaky":
            trace(1, 503)
            trace(2, 200)
            return {"ok": call.input["n"]}
        trace(1, 500, f"server error for token {call.input['token'].upper()}")
        raise ActionFailed("app", "broken", "POST", "https://app.test/broken", 500,
                           f"bad token {call.input['token']}")


WORKFLOW = {
    "id": "watched",
    "steps": [
        {"id": "prep", "map": {"n": "{{ input.n }}"}},
        {"id": "fetch", "action": "app.flaky", "input": {"n": "{{ steps.prep.n }}"}},
        {"id": "check", "if": "steps.fetch.ok > 1", "then": [{"id": "note", "map": {"v": "{{ steps.fetch.ok }}"}}]},
        {"id": "boom", "action": "app.broken", "input": {"token": "{{ secrets.token }}"}},
    ],
}


def trace_dict(seq: str, step_id: str, action: str, attempt: int, status: int, error: str | None = None) -> dict:
    return TraceRecord(run_id="run-1", seq=seq, step_id=step_id, step_path=step_id, connector="app", action=action,
                       method="POST", url=f"https://app.test/{action}", status=status, latency_ms=1.0,
                       attempt=attempt, error=error).to_dict()


async def test_observer_is_told_every_event_in_order_without_secrets() -> None:
    observer = RecordingObserver()
    deps = Dependencies(invoker=ScriptedApp(), clock=FakeClock(), ids=SequentialIds("run"), random=random.Random(1),
                        secrets=StaticSecrets({"token": TOKEN}), observer=observer)
    result = await Interpreter(deps).run(load_workflow(WORKFLOW), {"n": 2})
    assert result.status == "failed" and result.error.step_id == "boom"
    message = result.record.error.message
    assert "[secret:token]" in message and TOKEN not in message

    assert observer.events == [
        StepStarted("run-1", "1", "prep", "prep", "map"),
        StepFinished("run-1", "1", "prep", "prep", "map", "object", 1),
        StepStarted("run-1", "2", "fetch", "fetch", "action"),
        CallTraced("run-1", "3", "fetch", trace_dict("3", "fetch", "flaky", 1, 503)),
        StepRetrying("run-1", "3", "fetch", "fetch", 2, "http_503"),
        CallTraced("run-1", "3", "fetch", trace_dict("3", "fetch", "flaky", 2, 200)),
        StepFinished("run-1", "2", "fetch", "fetch", "action", "object", 1),
        StepStarted("run-1", "4", "check", "check", "if"),
        StepStarted("run-1", "5", "note", "check/note", "map"),
        StepFinished("run-1", "5", "note", "check/note", "map", "object", 1),
        StepFinished("run-1", "4", "check", "check", "if", "object", 2),
        StepStarted("run-1", "6", "boom", "boom", "action"),
        # the trace quoted the token in capitals: redacted all the same
        CallTraced("run-1", "7", "boom", trace_dict("7", "boom", "broken", 1, 500,
                                                    "server error for token [secret:token]")),
        StepErrored("run-1", "6", "boom", "boom", "action", "step_failed", message),
    ]
    streamed = json.dumps([event.to_dict() for event in observer.events])
    assert TOKEN.lower() not in streamed.lower()
    assert [e["type"] for e in json.loads(streamed)][:4] == ["step_started", "step_finished", "step_started",
                                                             "call_traced"]
    assert observer.of_type(StepRetrying) == [observer.events[4]]


async def test_foreach_iterations_are_steps_and_a_replay_tells_the_same_steps() -> None:
    workflow = load_workflow({"id": "loop", "steps": [
        {"id": "each", "foreach": {"items": "{{ input.xs }}", "steps": [{"id": "hit", "map": "{{ item * 2 }}"}]}},
    ]})
    live, again = RecordingObserver(), RecordingObserver()
    deps = Dependencies(invoker=ScriptedApp(), ids=SequentialIds("run"), observer=live)
    result = await Interpreter(deps).run(workflow, {"xs": [1, 2]})
    assert [(type(e).__name__, e.seq, getattr(e, "kind", None)) for e in live.events] == [
        ("StepStarted", "1", "foreach"),
        ("StepStarted", "1.1", "iteration"), ("StepStarted", "1.1.1", "map"), ("StepFinished", "1.1.1", "map"),
        ("StepFinished", "1.1", "iteration"),
        ("StepStarted", "1.2", "iteration"), ("StepStarted", "1.2.1", "map"), ("StepFinished", "1.2.1", "map"),
        ("StepFinished", "1.2", "iteration"),
        ("StepFinished", "1", "foreach"),
    ]
    replay_deps = Dependencies(invoker=ScriptedApp(), observer=again)
    await Interpreter(replay_deps).replay(workflow, result.record)
    assert again.events == live.events


def test_the_default_observer_ignores_events() -> None:
    assert isinstance(Dependencies(invoker=ScriptedApp()).observer, NullObserver)
    assert isinstance(RecordingObserver(), RunObserver) and isinstance(NullObserver(), RunObserver)
