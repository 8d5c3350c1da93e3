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
a replayed run sees the values it saw the first time. Plain dotted paths
(``input.limit``, ``steps.list.items[0].id``) over objects are walked
directly, without JSONata's machinery, giving the same value; expressions
of JSONata's common subset (paths, literals, ``&``, comparisons, conditions,
blocks and ``:=``, array and object constructors, ``$trim``, ``$join``,
``$merge`` and a few more) run as closures compiled from the parsed tree
(:mod:`engine._compiled`), about six times faster, handing anything else
back to jsonata-python. ``SWITCHBOARD_EXPRESSIONS_VERIFY=1`` checks every
compiled result against jsonata-python's (the test suite passes so).

Bounds: every evaluation runs under an :class:`ExpressionBudget` (CPU time,
nesting depth, array and string sizes), checked from inside the evaluator at
every node it evaluates, so a runaway expression (a self-recursive function,
``$sort([1..3000000])``) ends in :class:`~engine.errors.ExpressionLimitExceeded`
instead of running on. A run shares one :class:`ExpressionMeter` between all
its evaluations, so the CPU bound is the run's total. :meth:`Evaluator.run`
evaluates off the event loop (in a worker thread) whenever an evaluation is
more than a plain path, so even a slow evaluation does not stall other
coroutines; the checks above make it stop within its budget.

Data never becomes code: ``$eval`` (JSONata's only function that parses a
string as an expression) is refused at evaluation time with
:class:`~engine.errors.ExpressionFunctionForbidden`, and :func:`references`
lets checkers find it (and other names) in a parsed expression beforehand.

Templates: any JSON value. A string that is exactly ``{{ expr }}`` becomes the
expression's value with its type (a list stays a list); a string with text
around ``{{ }}`` parts is interpolated as text; other values pass through,
dicts and lists recursively. An expression with no value (a missing field)
gives ``None``, and a mapping key whose expression has no value is left out.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import jsonata
from jsonata.jexception import JException
from jsonata.parser import Parser

from ._compiled import Fallback, compile_subset
from .errors import ExpressionError, ExpressionFunctionForbidden, ExpressionLimitExceeded

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.DOTALL)

# The defaults of ExpressionBudget.
MAX_DEPTH = 500
TIMEOUT_MS = 5_000
RUN_SECONDS = 30.0
MAX_ITEMS = 1_000_000
MAX_TOTAL_ITEMS = 10_000_000
MAX_STRING = 10_000_000
CACHE_SIZE = 4096
# JSONata functions that evaluate data as an expression. jsonata-python's function list
# (Jsonata.register_functions) has one: $eval. Regexes are literals in the expression text.
FORBIDDEN_FUNCTIONS = frozenset({"eval"})
# How many evaluated nodes between two readings of the thread's CPU clock (a system call).
_CHECK_EVERY = 64


@dataclass(frozen=True)
class ExpressionBudget:
    """What expression evaluation may use; a run's evaluations share one budget.

    Args:
        seconds: CPU seconds all the evaluations of one run may use together.
        evaluation_seconds: CPU seconds one evaluation may use.
        max_depth: how deeply one evaluation may nest (recursion included).
        max_items: the longest array or sequence an evaluation may produce (``[1..3000000]``
            is refused before it is built).
        max_total_items: the array lengths one evaluation produces, summed: a bound on the
            memory its intermediate results hold.
        max_string: the longest string an evaluation may produce.

    Exceeding any bound raises :class:`~engine.errors.ExpressionLimitExceeded`
    (in a run: :class:`~engine.errors.ExpressionBudgetExceeded`). CPU time is the
    evaluating thread's, so a loaded machine does not use up a budget.
    """

    seconds: float = RUN_SECONDS
    evaluation_seconds: float = TIMEOUT_MS / 1000
    max_depth: int = MAX_DEPTH
    max_items: int = MAX_ITEMS
    max_total_items: int = MAX_TOTAL_ITEMS
    max_string: int = MAX_STRING


class ExpressionMeter:
    """The CPU time a run's evaluations have used, against its :class:`ExpressionBudget`.

    Shared by every evaluation of one run, from any thread. :meth:`cancel` makes
    evaluations in progress stop at their next check (a cancelled run's worker
    threads do not run on).
    """

    def __init__(self, budget: ExpressionBudget | None = None):
        self.budget = budget if budget is not None else ExpressionBudget()
        self.spent = 0.0
        self.cancelled = False
        self._lock = threading.Lock()

    def charge(self, seconds: float) -> bool:
        """Add ``seconds`` of CPU time; True when the run's total is now over budget."""
        with self._lock:
            self.spent += seconds
            return self.spent > self.budget.seconds

    def cancel(self) -> None:
        """Stop the evaluations of this meter at their next check."""
        self.cancelled = True


@dataclass(frozen=True)
class Runtime:
    """What an evaluation reads from its run: the clock, the random source, the meter and the cache.

    ``meter`` None gives each evaluation a budget of its own (the defaults);
    ``cache`` None uses the process's shared :class:`ExpressionCache`.
    """

    now: Callable[[], datetime]
    random: Callable[[], float]
    meter: ExpressionMeter | None = None
    cache: "ExpressionCache | None" = None


_DEFAULT_RUNTIME = Runtime(now=lambda: datetime.now(timezone.utc), random=random.random)
_runtime: contextvars.ContextVar[Runtime] = contextvars.ContextVar("switchboard_expr_runtime", default=_DEFAULT_RUNTIME)
# Set while Evaluator.run tries an evaluation inline: anything beyond a plain path must go to a thread.
_inline_only: contextvars.ContextVar[bool] = contextvars.ContextVar("switchboard_expr_inline_only", default=False)


class _NeedsThread(Exception):
    """Raised inside an inline attempt when an expression needs JSONata's evaluator."""


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


class _Bounds:
    """The checks of one evaluation, called by jsonata-python at the entry and exit of every node.

    A tripped bound is remembered: JSONata turns some exceptions into its own
    (``and``/``or``) or retries around them (``$replace``), so every later node
    raises again and the evaluation ends with the bound that tripped first.
    """

    __slots__ = ("meter", "budget", "depth", "ticks", "total", "started", "last", "tripped", "forbidden")

    def __init__(self, meter: ExpressionMeter):
        self.meter = meter
        self.budget = meter.budget
        self.depth = 0
        self.ticks = 0
        self.total = 0
        self.started = self.last = time.thread_time()
        self.tripped: tuple[str, float, str] | None = None
        self.forbidden: str | None = None

    def entry(self, expr: Any, input: Any, env: Any) -> None:
        if self.tripped is not None:
            raise JException("D1012", -1, 0)
        if not env.is_parallel_call:
            self.depth += 1
            if self.depth > self.budget.max_depth:
                self.trip("depth", self.budget.max_depth, "Stack overflow: the evaluation nests too deeply "
                          "(a non-terminating recursive function?)")
        # the first node checks too: a run whose earlier evaluations used up its budget stops here
        if not self.ticks % _CHECK_EVERY:
            self.check_time()
        self.ticks += 1

    def exit(self, expr: Any, input: Any, env: Any, result: Any) -> None:
        if not env.is_parallel_call:
            self.depth -= 1
        if isinstance(result, list):
            size = len(result)  # a range ([1..n]) is lazy: its length is known before it is built
            if size > self.budget.max_items:
                self.trip("items", self.budget.max_items, f"an array of {size} items")
            self.total += size
            if self.total > self.budget.max_total_items:
                self.trip("total_items", self.budget.max_total_items, "arrays of more items than that in all")
        elif isinstance(result, str) and len(result) > self.budget.max_string:
            self.trip("string", self.budget.max_string, f"a string of {len(result)} characters")

    def check_time(self) -> None:
        now = time.thread_time()
        over = self.meter.charge(now - self.last)
        self.last = now
        if self.meter.cancelled:
            self.trip("cancelled", 0, "the run was cancelled")
        if over:
            self.trip("seconds", self.budget.seconds, "the run's expressions used more CPU time than that")
        if now - self.started > self.budget.evaluation_seconds:
            self.trip("evaluation_seconds", self.budget.evaluation_seconds,
                      "this evaluation ran longer than that (an infinite loop?)")

    def finish(self) -> None:
        """Charge the rest of the evaluation's CPU time to the meter."""
        self.meter.charge(time.thread_time() - self.last)

    def trip(self, limit: str, allowed: float, detail: str) -> None:
        if self.tripped is None:
            self.tripped = (limit, allowed, detail)
        raise JException("D1012", -1, 0)

    def refuse(self, name: str) -> Callable[..., Any]:
        def refused(*args: Any) -> Any:
            self.forbidden = self.forbidden or name
            raise JException("D3120", -1, name)
        return refused


_active = threading.local()  # the _Bounds of the evaluation running in this thread


class _SizeGuarded(jsonata.Jsonata.JNativeFunction):
    """A built-in whose result size follows from its arguments, refused before it is built.

    The exit check sees every result, but ``$pad('', 1e9)`` would allocate a
    gigabyte first; these functions are checked on their arguments instead.
    """

    def __init__(self, name: str, signature: str, size: Callable[[Sequence[Any]], int]):
        super().__init__(name, signature, jsonata.functions.Functions, name)
        self._size = size

    def call(self, input: Any, args: Sequence[Any] | None) -> Any:
        bounds = getattr(_active, "bounds", None)
        if bounds is not None and args:
            try:
                size = self._size(args)
            except (TypeError, ValueError, OverflowError):
                size = 0  # let the function report its own argument errors
            if size > bounds.budget.max_string:
                bounds.trip("string", bounds.budget.max_string, f"${self.function_name} would build a string "
                            f"of {size} characters")
        return super().call(input, args)


def _padded_size(args: Sequence[Any]) -> int:
    width = args[1] if len(args) > 1 else None
    return abs(int(width)) if isinstance(width, (int, float)) and not isinstance(width, bool) else 0


def _replaced_size(args: Sequence[Any]) -> int:
    text, pattern, replacement = (list(args) + [None, None, None])[:3]
    if not (isinstance(text, str) and isinstance(pattern, str) and isinstance(replacement, str)) or not pattern:
        return 0  # a regex or function replacement: each result is checked as it is built
    return len(text) + text.count(pattern) * max(len(replacement) - len(pattern), 0)


_GUARDED = (_SizeGuarded("pad", "<s-ns?:s>", _padded_size),
            _SizeGuarded("replace", "<s-(sf)(sf)n?:s>", _replaced_size))


class Expression:
    """A parsed JSONata expression; get one from :func:`compile_expression` or an :class:`ExpressionCache`."""

    __slots__ = ("text", "_compiled", "_path", "_fast")

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
        for function in _GUARDED:
            compiled.register_function(function.function_name, function)
        self._compiled = compiled
        # The common subset as closures (see engine._compiled); None leaves it all to jsonata-python.
        self._fast = compile_subset(
            compiled.ast, compiled.environment, compiled.output_convert_nulls)

    @property
    def is_plain_path(self) -> bool:
        """True when the expression is a path walked without JSONata's evaluator (cheap, no side effects)."""
        return self._path is not None

    def references(self) -> Iterator[tuple[str, str]]:
        """The names the expression mentions, as ``(kind, value)``: ``("name", "secrets")`` for a field,
        ``("variable", "eval")`` for ``$eval``, ``("string", "secrets")`` for a string literal."""
        return references(self._compiled.ast)

    def evaluate(self, context: Mapping[str, Any], pointer: str | None = None) -> Any:
        """Evaluate against ``context``; return the value or ``None`` when there is none.

        The evaluation runs under the bound runtime's meter (see :func:`bind_runtime`),
        or under a default :class:`ExpressionBudget` of its own.

        Raises:
            ExpressionLimitExceeded: the evaluation went over its budget.
            ExpressionFunctionForbidden: it called ``$eval``.
            ExpressionError: any other failure, naming the expression, the reason and ``pointer``.
        """
        if self._path is not None:
            found = _walk(self._path, context)
            if found is not _FALLBACK:
                return found
        if _inline_only.get():
            raise _NeedsThread
        meter = _runtime.get().meter or ExpressionMeter()
        if self._fast is not None:
            found = self._evaluate_fast(context, meter, pointer)
            if found is not _FALLBACK:
                return found
        bounds = _Bounds(meter)
        frame = jsonata.Jsonata.Frame(None)
        frame.set_evaluate_entry_callback(bounds.entry)
        frame.set_evaluate_exit_callback(bounds.exit)
        for name in FORBIDDEN_FUNCTIONS:
            # bound in the evaluation's own frame, so it shadows JSONata's built-in
            frame.bind(name, jsonata.Jsonata.JLambda(bounds.refuse(name)))
        outer = getattr(_active, "bounds", None)
        _active.bounds = bounds
        try:
            return _plain(self._compiled.evaluate(context, frame))
        except JException as exc:
            self._raise_tripped(bounds, pointer)
            raise ExpressionError(self.text, str(exc), pointer) from None
        except RecursionError:
            raise ExpressionLimitExceeded(self.text, "depth", meter.budget.max_depth,
                                          "Stack overflow: Python's own recursion limit", pointer) from None
        except (ValueError, TypeError, ArithmeticError, KeyError, IndexError, AttributeError) as exc:
            self._raise_tripped(bounds, pointer)
            # Some built-ins ($number('abc')) fail with plain Python errors in jsonata-python.
            raise ExpressionError(self.text, f"{type(exc).__name__}: {exc}", pointer) from None
        finally:
            _active.bounds = outer
            bounds.finish()

    def _evaluate_fast(self, context: Any, meter: ExpressionMeter, pointer: str | None) -> Any:
        # The compiled form's work is bounded by the data's size (no loops, no recursion of its
        # own), so the run's meter is read before and charged after, not at every node.
        budget = meter.budget
        if meter.cancelled:
            raise ExpressionLimitExceeded(self.text, "cancelled", 0, "the run was cancelled", pointer)
        if meter.spent > budget.seconds:
            raise ExpressionLimitExceeded(self.text, "seconds", budget.seconds,
                                          "the run's expressions used more CPU time than that", pointer)
        started = time.thread_time()
        try:
            result = self._fast.evaluate(context)
        except Fallback:
            return _FALLBACK
        finally:
            meter.charge(time.thread_time() - started)
        if isinstance(result, list) and len(result) > budget.max_items:
            raise ExpressionLimitExceeded(self.text, "items", budget.max_items, f"an array of {len(result)} items",
                                          pointer)
        if isinstance(result, str) and len(result) > budget.max_string:
            raise ExpressionLimitExceeded(self.text, "string", budget.max_string,
                                          f"a string of {len(result)} characters", pointer)
        result = _plain(result)
        if _VERIFY:
            self._verify(context, result)
        return result

    def _verify(self, context: Any, result: Any) -> None:
        # SWITCHBOARD_EXPRESSIONS_VERIFY=1: every compiled result is checked against jsonata-python's.
        fast, self._fast = self._fast, None
        try:
            expected = self.evaluate(context)
        except ExpressionError as exc:
            raise AssertionError(f"compiled {self.text!r} gave {result!r}; jsonata-python raised {exc}") from None
        finally:
            self._fast = fast
        if json.dumps(expected, sort_keys=True, default=repr) != json.dumps(result, sort_keys=True, default=repr):
            raise AssertionError(f"compiled {self.text!r} gave {result!r}; jsonata-python gave {expected!r}")

    def _raise_tripped(self, bounds: _Bounds, pointer: str | None) -> None:
        if bounds.forbidden is not None:
            raise ExpressionFunctionForbidden(self.text, bounds.forbidden, pointer) from None
        if bounds.tripped is not None:
            limit, allowed, detail = bounds.tripped
            raise ExpressionLimitExceeded(self.text, limit, allowed, detail, pointer) from None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


_SKIPPED_FIELDS = frozenset({"_outer_instance", "_jsonata_lambda", "environment", "input", "position", "bp", "lbp"})


def references(node: Any) -> Iterator[tuple[str, str]]:
    """Every ``(type, value)`` of the ``name``, ``variable`` and ``string`` nodes of a parsed JSONata AST."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend(current)
            continue
        if not isinstance(current, Parser.Symbol) or id(current) in seen:
            continue
        seen.add(id(current))
        if current.type in ("name", "variable", "string") and isinstance(current.value, str):
            yield current.type, current.value
        for key, value in vars(current).items():
            if key not in _SKIPPED_FIELDS and isinstance(value, (Parser.Symbol, list, tuple)):
                stack.append(value)


_FALLBACK = object()
_VERIFY = os.environ.get("SWITCHBOARD_EXPRESSIONS_VERIFY") == "1"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEXED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[\s*(-?\d{1,9})\s*\]")
_KEYWORDS = frozenset({"and", "or", "in", "true", "false", "null", "function"})


def _plain_path(text: str) -> tuple[str | tuple[str, int], ...] | None:
    """The steps of an expression that is only a dotted path (``input.limit``, ``a.items[0].id``), else None.

    A step is a field name, or ``(name, index)`` for ``name[index]``.
    """
    steps: list[str | tuple[str, int]] = []
    for part in text.strip().split("."):
        if _IDENTIFIER.fullmatch(part) and part not in _KEYWORDS:
            steps.append(part)
            continue
        indexed = _INDEXED.fullmatch(part.strip()) if part == part.strip() else None
        if indexed is None or indexed.group(1) in _KEYWORDS:
            return None
        steps.append((indexed.group(1), int(indexed.group(2))))
    return tuple(steps)


def _walk(path: tuple[str | tuple[str, int], ...], context: Any) -> Any:
    """A plain path evaluated over nested objects, as JSONata would; ``_FALLBACK`` where JSONata's
    sequence rules could apply (a list on the way), so JSONata decides those.

    A list reached through objects only is the value itself, as JSONata gives it (``results``
    of a page): it is returned without JSONata's walk over every record in it."""
    node = context
    for step in path:
        if not isinstance(node, Mapping):
            return _FALLBACK if isinstance(node, (list, tuple)) else None
        if isinstance(step, str):
            node = node.get(step)
            if node is None:
                return None
            continue
        name, index = step
        items = node.get(name)
        if items is None:
            return None
        # name[i] over an array of objects picks one, as JSONata does; anything else
        # (a single value, nested arrays, a null item) follows JSONata's sequence rules
        if not isinstance(items, list):
            return _FALLBACK
        if not -len(items) <= index < len(items):
            return None
        node = items[index]
        if not isinstance(node, Mapping):
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


class ExpressionCache:
    """Parsed expressions by text, at most ``maxsize`` of them (least recently used go first).

    Safe to share between threads and runs: a workflow's expressions are parsed
    once, however many runs and iterations evaluate them.
    """

    def __init__(self, maxsize: int = CACHE_SIZE):
        if maxsize < 1:
            raise ValueError("an expression cache holds at least one expression")
        self.maxsize = maxsize
        self._items: OrderedDict[str, Expression] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, text: str) -> Expression:
        """The parsed ``text``; parses it on first use.

        Raises:
            ExpressionError: ``text`` does not parse (not cached: it fails again next time).
        """
        with self._lock:
            found = self._items.get(text)
            if found is not None:
                self._items.move_to_end(text)
                return found
        expression = Expression(text.strip())  # outside the lock: parsing may take a while
        with self._lock:
            self._items[text] = expression
            if len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return expression

    def __len__(self) -> int:
        return len(self._items)


# The cache of callers that bind none (see Runtime.cache): module-level functions,
# connector templates, checks. A run binds the one its Dependencies name.
_SHARED_CACHE = ExpressionCache()


def shared_cache() -> ExpressionCache:
    """The process's shared :class:`ExpressionCache` (what :func:`compile_expression` uses)."""
    return _SHARED_CACHE


T = TypeVar("T")


class Evaluator:
    """Runs expression work for runs: off the event loop unless it is only plain paths.

    Args:
        cache: parsed expressions by text; the process's shared cache by default.
        executor: the threads evaluations run in; the event loop's default executor by default.

    :meth:`run` first tries ``fn`` inline with every JSONata evaluation refused;
    plain paths (``input.limit``) need none and finish at once. Otherwise it runs
    ``fn`` again, in a worker thread, in a copy of the caller's context (the bound
    runtime: clock, random source, meter). That is sound because ``fn`` renders
    templates, which have no side effects before their first JSONata evaluation.
    The GIL still lets the event loop run between the worker's bytecodes, and the
    meter's checks stop the worker within its budget.
    """

    def __init__(self, cache: ExpressionCache | None = None, executor: Executor | None = None):
        self.cache = cache if cache is not None else _SHARED_CACHE
        self.executor = executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, inline when it evaluates only plain paths, else in a worker thread.

        Cancelling the caller cancels the bound meter, so the worker stops at its next check.
        """
        token = _inline_only.set(True)
        try:
            return fn(*args)
        except _NeedsThread:
            pass
        finally:
            _inline_only.reset(token)
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, context.run, fn, *args)
        except asyncio.CancelledError:
            meter = context.get(_runtime).meter
            if meter is not None:
                meter.cancel()
            raise


def compile_expression(text: str) -> Expression:
    """Parse ``text`` once; later calls with the same text reuse the parse (the bound runtime's cache)."""
    cache = _runtime.get().cache
    return (cache if cache is not None else _SHARED_CACHE).compile(text)


def evaluate(text: str, context: Mapping[str, Any], pointer: str | None = None) -> Any:
    """Evaluate a bare expression (no ``{{ }}``) against ``context``."""
    return compile_expression(text).evaluate(context, pointer)


def template_parts(text: str) -> list[str]:
    """The expressions inside the ``{{ }}`` parts of a template string, in order."""
    return [match.group(1) for match in _TEMPLATE.finditer(text)] if "{{" in text else []


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
        return compile_expression(text).evaluate(context, pointer or "/")
    except ExpressionError as exc:
        if exc.pointer is None:
            raise exc.at(pointer or "/") from None
        raise


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
