"""Expressions in runs: evaluated off the event loop, under one budget per run, never evaluating data as code."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from engine.errors import (
    ExpressionBudgetExceeded,
    ExpressionError,
    ExpressionFunctionForbidden,
    ExpressionLimitExceeded,
    StepExpressionError,
)
from engine.expressions import Evaluator, ExpressionBudget, ExpressionCache, evaluate, render
from engine.specs import load_workflow
from engine.workflow import Dependencies, Interpreter, SequentialIds
from test_workflow_apps import echo_app

RUNAWAY = "($loop := function($x){ $loop($x + 1) }; $loop(0))"  # tail-recursive: never deepens, never ends


def deps(**kw: Any) -> Dependencies:
    kw.setdefault("ids", SequentialIds("run"))
    kw.setdefault("random", random.Random(5))
    return Dependencies(invoker=echo_app(), **kw)


async def test_a_runaway_expression_fails_its_run_without_holding_up_the_loop_or_other_runs() -> None:
    budget = ExpressionBudget(seconds=1.5, evaluation_seconds=1.5)
    runaway = load_workflow({"id": "runaway", "steps": [
        {"id": "ok", "map": {"n": "{{ input.n }}"}},
        {"id": "spin", "map": {"x": "{{ " + RUNAWAY + " }}"}},
    ]})
    normal = load_workflow({"id": "normal", "steps": [
        {"id": "sum", "map": {"total": "{{ $sum(input.xs) }}", "names": "{{ $join(input.names, ', ') }}"}},
        {"id": "send", "action": "app.echo", "input": {"total": "{{ steps.sum.total }}"}},
    ]})
    finished: list[str] = []
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        # a /health-like coroutine: how late does a 10 ms sleep wake up?
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    async def timed(name: str, run: Any) -> Any:
        result = await run
        finished.append(name)
        return result

    tick = asyncio.create_task(ticker())
    bad, good = await asyncio.gather(
        timed("runaway", Interpreter(deps(budget=budget)).run(runaway, {"n": 1})),
        timed("normal", Interpreter(deps()).run(normal, {"xs": [1, 2, 3], "names": ["a", "b"]})),
    )
    done.set()
    await tick

    assert bad.status == "failed" and isinstance(bad.error, ExpressionBudgetExceeded)
    assert bad.error.code == "expression_budget_exceeded" and bad.error.step_id == "spin"
    assert bad.error.pointer == "/steps/1/map/x" and bad.error.limit in ("seconds", "evaluation_seconds")
    assert bad.record.error.code == "expression_budget_exceeded"
    assert good.succeeded and good.output == {"echo": {"total": 6}}
    # the normal run was not queued behind the runaway one, and the loop kept ticking
    # (evaluated on the loop, the runaway held it for its whole budget)
    assert finished == ["normal", "runaway"]
    assert max(lags) < budget.seconds


async def test_sizes_are_bounded_before_the_array_is_built() -> None:
    workflow = load_workflow({"id": "big", "steps": [{"id": "sort", "map": {"s": "{{ $sort([1..3000000]) }}"}}]})
    result = await Interpreter(deps()).run(workflow)
    assert isinstance(result.error, ExpressionBudgetExceeded)
    assert (result.error.limit, result.error.allowed, result.error.pointer) == ("items", 1_000_000, "/steps/0/map/s")
    with pytest.raises(ExpressionLimitExceeded) as info:
        evaluate("$pad('x', 1e9)", {})
    assert info.value.limit == "string"
    with pytest.raises(ExpressionLimitExceeded) as info:
        evaluate("($f := function($n){ $n > 1e9 ? 0 : 1 + $f($n + 1) }; $f(0))", {})
    assert info.value.limit == "depth"


async def test_the_cpu_budget_is_the_runs_total_over_all_its_evaluations() -> None:
    # each evaluation stays well within its own bound; together they go over the run's
    workflow = load_workflow({"id": "many", "steps": [{"id": "each", "foreach": {
        "items": "{{ input.xs }}", "steps": [{"id": "work", "map": "{{ $sum([1..50000]) + item }}"}]}}]})
    budget = ExpressionBudget(seconds=0.3, evaluation_seconds=30)
    result = await Interpreter(deps(budget=budget)).run(workflow, {"xs": list(range(40))})
    assert isinstance(result.error, ExpressionBudgetExceeded) and result.error.limit == "seconds"
    assert result.error.step_id == "each" or result.error.step_id == "work"
    ok = await Interpreter(deps()).run(workflow, {"xs": [1, 2]})
    assert ok.succeeded and ok.output == [1250025001, 1250025002]


async def test_eval_is_refused_at_evaluation_time() -> None:
    with pytest.raises(ExpressionFunctionForbidden) as info:
        render({"x": "{{ $eval(input.code) }}"}, {"input": {"code": "1 + 1"}})
    assert info.value.pointer == "/x" and info.value.code == "expression_function_forbidden"
    with pytest.raises(ExpressionFunctionForbidden):
        evaluate("($e := $eval; $e('2'))", {})
    # an unchecked workflow whose input carries code: the code never runs
    workflow = load_workflow({"id": "evil", "steps": [{"id": "run_it", "map": {"v": "{{ $eval(input.code) }}"}}]})
    result = await Interpreter(deps()).run(workflow, {"code": "$string($)"})
    assert isinstance(result.error, StepExpressionError) and result.error.pointer == "/steps/0/map/v"
    assert isinstance(result.error.cause, ExpressionFunctionForbidden)
    assert result.record.steps[0].error.cause_code == "expression_function_forbidden"


async def test_a_run_parses_each_expression_once_in_the_evaluators_bounded_cache() -> None:
    cache = ExpressionCache(maxsize=64)
    workflow = load_workflow({"id": "cached", "steps": [
        {"id": "each", "foreach": {"items": "{{ input.xs }}", "steps": [
            {"id": "double", "map": {"v": "{{ item * 2 }}", "s": "{{ $string(item) }}"}}]}},
    ]})
    evaluator = Evaluator(cache=cache)
    first = await Interpreter(deps(evaluator=evaluator)).run(workflow, {"xs": list(range(20))})
    assert first.succeeded and first.output[3] == {"v": 6, "s": "3"}
    parsed = {text: cache.compile(text) for text in (" item * 2 ", " $string(item) ")}
    size = len(cache)
    again = await Interpreter(deps(evaluator=evaluator)).run(workflow, {"xs": list(range(5))})
    assert again.succeeded and len(cache) == size
    assert all(cache.compile(text) is expression for text, expression in parsed.items())

    small = ExpressionCache(maxsize=2)
    a, b = small.compile("a"), small.compile("b")
    assert small.compile("a") is a
    small.compile("c")  # evicts b, the least recently used
    assert len(small) == 2 and small.compile("a") is a and small.compile("b") is not b
    with pytest.raises(ExpressionError):
        small.compile("1 +")
