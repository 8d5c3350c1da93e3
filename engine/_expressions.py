"""The engine's one expression language: JSONata, inside ``{{ }}`` templates.

Why JSONata (via the pure-Python ``jsonata-python`` port) and not JMESPath:
field mapping needs to *build* values (string concatenation, object
construction, conditionals, ``$lowercase``, ``$merge``), and JMESPath is a
query language that cannot concatenate or transform. JSONata is declarative,
has no access to the host (no imports, no I/O, no attribute access), is
documented at jsonata.org, and is used the same way by other integration
platforms, so agents and people already know it.

Determinism: ``$now()``, ``$millis()`` and ``$random()`` are rebound to the
run's injected clock and seeded random source (see :func:`bind_runtime`), so
a replayed run sees the values it saw the first time. Runaway recursion
ends in a typed error. Plain dotted paths (``input.limit``) over objects are
walked directly, without JSONata's machinery, giving the same value.

Templates: any JSON value. A string that is exactly ``{{ expr }}`` becomes the
expression's value with its type (a list stays a list); a string with text
around ``{{ }}`` parts is interpolated as text; other values pass through,
dicts and lists recursively. An expression with no value (a missing field)
gives ``None``, and a mapping key whose expression has no value is left out.
"""

from __future__ import annotations

import contextvars
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import jsonata
from jsonata.jexception import JException
from jsonata.timebox import Timebox

from .errors import ExpressionError

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.DOTALL)
MAX_DEPTH = 500
TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class Runtime:
    """What nondeterministic JSONata functions read: the run's clock and random source."""

    now: Callable[[], datetime]
    random: Callable[[], float]


_DEFAULT_RUNTIME = Runtime(now=lambda: datetime.now(timezone.utc), random=random.random)
_runtime: contextvars.ContextVar[Runtime] = contextvars.ContextVar("switchboard_expr_runtime", default=_DEFAULT_RUNTIME)


def bind_runtime(runtime: Runtime) -> contextvars.Token:
    """Make ``$now``, ``$millis`` and ``$random`` read ``runtime`` in this context; returns a reset token."""
    return _runtime.set(runtime)


def reset_runtime(token: contextvars.Token) -> None:
    """Undo :func:`bind_runtime`."""
    _runtime.reset(token)


def _now(picture: str | None = None, zone: str | None = None) -> str:
    moment = _runtime.get().now().astimezone(timezone.utc)
    if picture is not None or zone is not None:
        # JSONata's $now(picture, timezone): format the run's clock as $fromMillis does.
        bindings = {"m": int(moment.timestamp() * 1000), "p": picture, "z": zone}
        return _FROM_MILLIS.evaluate({}, bindings)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _millis() -> int:
    return int(_runtime.get().now().timestamp() * 1000)


def _random() -> float:
    return _runtime.get().random()


def _shuffle(items: Any) -> Any:
    # JSONata's $shuffle with the run's seeded random source (Fisher-Yates), not the global one.
    if items is None:
        return None
    result = list(items) if isinstance(items, (list, tuple)) else [items]
    draw = _runtime.get().random
    for i in range(len(result) - 1, 0, -1):
        j = int(draw() * (i + 1))
        result[i], result[j] = result[j], result[i]
    return result


_FROM_MILLIS = jsonata.Jsonata("$fromMillis($m, $p, $z)")


class Expression:
    """A parsed JSONata expression; build with :func:`compile_expression` (cached)."""

    __slots__ = ("text", "_compiled", "_path")

    def __init__(self, text: str):
        self.text = text
        self._path = _plain_path(text)
        try:
            # Bounds are set per evaluation (see evaluate): jsonata-python's constructor-level
            # timebox counts from construction (a cached expression would "time out" seconds
            # later) and its depth counter is not reset when an evaluation raises.
            compiled = jsonata.Jsonata(text)
        except JException as exc:
            raise ExpressionError(text, f"does not parse: {exc}") from None
        except RecursionError:
            raise ExpressionError(text, "is nested too deeply") from None
        # jsonata-python walks the whole input before each evaluation to check it is JSON;
        # the engine only passes JSON values, and the walk made syncs quadratic in record count.
        compiled.set_validate_input(False)
        compiled.register_lambda("now", _now)
        compiled.register_lambda("millis", _millis)
        compiled.register_lambda("random", _random)
        compiled.register_lambda("shuffle", _shuffle)
        self._compiled = compiled

    def evaluate(self, context: Mapping[str, Any], pointer: str | None = None) -> Any:
        """Evaluate against ``context``; return the value or ``None`` when there is none.

        Raises:
            ExpressionError: naming the expression, the reason and ``pointer``.
        """
        if self._path is not None:
            found = _walk(self._path, context)
            if found is not _FALLBACK:
                return found
        # A fresh time and depth bound for this evaluation only. A runaway expression (a
        # tail-recursive loop never grows Python's stack) fails after TIMEOUT_MS; a run
        # that fails that way is the only one whose path depends on the wall clock.
        bounds = jsonata.Jsonata.Frame(None)
        Timebox(bounds, TIMEOUT_MS, MAX_DEPTH)
        try:
            return _plain(self._compiled.evaluate(context, bounds))
        except JException as exc:
            raise ExpressionError(self.text, str(exc), pointer) from None
        except RecursionError:
            raise ExpressionError(self.text, "recursed too deeply", pointer) from None
        except (ValueError, TypeError, ArithmeticError, KeyError, IndexError, AttributeError) as exc:
            # Some built-ins ($number('abc')) fail with plain Python errors in jsonata-python.
            raise ExpressionError(self.text, f"{type(exc).__name__}: {exc}", pointer) from None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


_FALLBACK = object()
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = frozenset({"and", "or", "in", "true", "false", "null", "function"})


def _plain_path(text: str) -> tuple[str, ...] | None:
    """The field names of an expression that is only a dotted path (``input.limit``), else None."""
    parts = text.strip().split(".")
    if all(_IDENTIFIER.fullmatch(p) and p not in _KEYWORDS for p in parts):
        return tuple(parts)
    return None


def _walk(path: tuple[str, ...], context: Any) -> Any:
    """A plain path evaluated over nested objects, as JSONata would; ``_FALLBACK`` where JSONata's
    sequence rules could apply (a list on the way or at the end), so JSONata decides those."""
    node = context
    for name in path:
        if not isinstance(node, Mapping):
            return _FALLBACK if isinstance(node, (list, tuple)) else None
        node = node.get(name)
        if node is None:
            return None
    if isinstance(node, (list, tuple)):
        return _FALLBACK
    return node


def _plain(value: Any) -> Any:
    # jsonata-python returns its own sequence and function types in places;
    # templates hand values to JSON bodies, so normalise to JSON types.
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if callable(value):
        return None
    return value


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> Expression:
    """Parse ``text`` once; later calls with the same text reuse the parse."""
    return Expression(text.strip())


def evaluate(text: str, context: Mapping[str, Any], pointer: str | None = None) -> Any:
    """Evaluate a bare expression (no ``{{ }}``) against ``context``."""
    return compile_expression(text).evaluate(context, pointer)


def is_template(value: Any) -> bool:
    """True when ``value`` is a string holding at least one ``{{ }}`` part."""
    return isinstance(value, str) and "{{" in value and _TEMPLATE.search(value) is not None


def render(template: Any, context: Mapping[str, Any], pointer: str = "") -> Any:
    """Render a template value against ``context`` (see the module docstring for the rules).

    Raises:
        ExpressionError: naming the failing expression and its JSON pointer in the template.
    """
    if isinstance(template, str):
        if "{{" not in template:
            return template
        whole = _WHOLE.match(template)
        if whole and "{{" not in whole.group(1):
            return _evaluate_at(whole.group(1), context, pointer)
        return _TEMPLATE.sub(lambda m: as_text(_evaluate_at(m.group(1), context, pointer)), template)
    if isinstance(template, Mapping):
        # As in JSONata's own object constructors, a key whose expression has no
        # value is left out (a contact without a phone sends no Phone); a literal
        # null in the template stays.
        rendered = {}
        for key, value in template.items():
            out = render(value, context, f"{pointer}/{_escape(key)}")
            if out is not None or not is_template(value):
                rendered[key] = out
        return rendered
    if isinstance(template, list):
        return [render(v, context, f"{pointer}/{i}") for i, v in enumerate(template)]
    return template


def _evaluate_at(text: str, context: Mapping[str, Any], pointer: str) -> Any:
    try:
        expression = compile_expression(text)
    except ExpressionError as exc:
        raise ExpressionError(exc.expression, exc.reason, pointer or "/") from None
    return expression.evaluate(context, pointer or "/")


def as_text(value: Any) -> str:
    """A value as template text: JSON for objects and lists, ``true``/``false``, ``3`` for ``3.0``, ``""`` for no value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def check_template(template: Any, pointer: str = "") -> list[tuple[str, str]]:
    """Parse every expression in ``template`` without evaluating; return ``(pointer, reason)`` failures."""
    failures: list[tuple[str, str]] = []
    if isinstance(template, str):
        for match in _TEMPLATE.finditer(template):
            try:
                compile_expression(match.group(1))
            except ExpressionError as exc:
                failures.append((pointer or "/", exc.reason))
    elif isinstance(template, Mapping):
        for k, v in template.items():
            failures += check_template(v, f"{pointer}/{_escape(k)}")
    elif isinstance(template, list):
        for i, v in enumerate(template):
            failures += check_template(v, f"{pointer}/{i}")
    return failures


def quote_field(name: str) -> str:
    """Quote a field name for a JSONata path when it is not a plain identifier (e.g. ``$.xgafv``)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    return "`" + name.replace("`", "") + "`"
