"""The expression language: JSONata in {{ }} templates, safe and deterministic."""

from datetime import datetime, timezone

import pytest

from engine.errors import ExpressionError
from engine.expressions import Runtime, bind_runtime, check_template, evaluate, quote_field, render, reset_runtime

CTX = {"input": {"limit": 5, "name": "Ada", "tags": ["a", "b"], "$.xgafv": "2"}, "steps": {"s": {"items": [{"e": "A@X.io"}]}}}


def test_whole_template_keeps_the_type_and_mixed_template_is_text():
    assert render("{{ input.limit }}", CTX) == 5
    assert render("{{ input.tags }}", CTX) == ["a", "b"]
    assert render("Hi {{ input.name }} x{{ input.limit }}", CTX) == "Hi Ada x5"
    assert render({"q": ["{{ input.limit + 1 }}", "lit"]}, CTX) == {"q": [6, "lit"]}
    assert render("{{ input.absent }}", CTX) is None
    assert render({"a": "{{ input.absent }}", "b": None, "c": "{{ input.limit }}"}, CTX) == {"b": None, "c": 5}
    assert render("[{{ input.absent }}]", CTX) == "[]"


def test_functions_and_odd_field_names():
    assert render("{{ steps.s.items.$lowercase(e) }}", CTX) == "a@x.io"
    assert render("{{ input." + quote_field("$.xgafv") + " }}", CTX) == "2"
    assert evaluate("$merge([{'a': 1}, {'b': 2}])", {}) == {"a": 1, "b": 2}


def test_errors_name_the_expression_and_the_pointer():
    with pytest.raises(ExpressionError) as info:
        render({"a": {"b": "{{ 1 + }}"}}, CTX)
    assert info.value.pointer == "/a/b" and "1 +" in str(info.value)
    with pytest.raises(ExpressionError, match="at /x"):
        render({"x": "{{ $nosuchfunction(1) }}"}, CTX)
    assert check_template({"ok": "{{ a }}", "bad": ["{{ ( }}"]}) == [("/bad/0", check_template("{{ ( }}")[0][1])]


def test_clock_and_random_come_from_the_bound_runtime():
    token = bind_runtime(Runtime(now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), random=lambda: 0.5))
    try:
        assert render("{{ $now() }}", {}) == "2026-01-02T03:04:05.000Z"
        assert render("{{ $random() }}", {}) == 0.5
        assert render("{{ $millis() }}", {}) == 1767323045000
    finally:
        reset_runtime(token)


def test_no_host_access():
    # JSONata has no way to reach Python: attribute-like paths are just missing fields.
    assert render("{{ __class__ }}", {"x": 1}) is None
    assert render("{{ input.__class__.__mro__ }}", CTX) is None


def test_builtin_failures_are_expression_errors():
    with pytest.raises(ExpressionError, match=r"\$number"):
        render({"n": "{{ $number('abc') }}"}, {})


def test_bounds_are_per_evaluation():
    # Many failed evaluations of one (cached) expression must not poison later ones.
    for _ in range(300):
        with pytest.raises(ExpressionError):
            evaluate("$number(x)", {"x": "abc"})
    assert evaluate("$number(x)", {"x": "5"}) == 5
    with pytest.raises(ExpressionError, match="Stack overflow"):
        evaluate("($f := function($n){ $n > 100000 ? 0 : 1 + $f($n+1) }; $f(0))", {})


@pytest.mark.parametrize("text, data", [
    ("input.limit", {"input": {"limit": 5}}),
    ("input.x.y", {"input": {"x": None}}),
    ("input.x", {"input": {"x": {"a": [1]}}}),
    ("a.b", {"a": [{"b": 1}, {"b": 2}]}),
    ("a.b", {"a": {"b": [1]}}),
    ("a.b.c", {"a": [{"b": {"c": 1}}]}),
    ("a", {"a": False}),
    ("a.b", {"a": "text"}),
    ("a", {"a": 0}),
    ("a.b", {}),
])
def test_plain_paths_give_what_jsonata_gives(text, data):
    import jsonata

    assert evaluate(text, data) == jsonata.Jsonata(text).evaluate(data)


def test_now_with_a_picture_and_shuffle_follow_the_run():
    import random

    token = bind_runtime(Runtime(now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), random=random.Random(3).random))
    try:
        assert render("{{ $now('[Y0001]-[M01]-[D01]') }} {{ $now('[H01]:[m01]', '+0100') }}", {}) == "2026-01-02 04:04"
        first = render("{{ $shuffle([1,2,3,4,5,6,7,8]) }}", {})
    finally:
        reset_runtime(token)
    token = bind_runtime(Runtime(now=lambda: datetime(2026, 1, 2, tzinfo=timezone.utc), random=random.Random(3).random))
    try:
        assert render("{{ $shuffle([1,2,3,4,5,6,7,8]) }}", {}) == first and sorted(first) == [1, 2, 3, 4, 5, 6, 7, 8]
    finally:
        reset_runtime(token)
