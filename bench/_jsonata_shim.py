"""A pytest plugin that runs the engine's expressions on a Rust JSONata instead of jsonata-python.

Usage (issue 8: does a Rust-backed JSONata pass the repository's expression tests?)::

    SWITCHBOARD_JSONATA_ENGINE=jsonatapy PYTHONPATH=$PWD .venv/bin/pytest -p bench._jsonata_shim tests/...
    SWITCHBOARD_JSONATA_ENGINE=jsonata-rs PYTHONPATH=$PWD:/path/to/rs .venv/bin/pytest -p bench._jsonata_shim ...

``jsonata-rs`` installs itself as the import name ``jsonata``, the same as jsonata-python, so it
cannot share an environment with it: unpack its wheel and rename the package to ``_jsonata_rs``
(``bench/jsonata_engines.py`` says how); the shim imports it under that name.

The plugin replaces ``jsonata.Jsonata`` before the engine is imported, so every ``Expression``
(and the module-level ``$fromMillis`` helper) is compiled and evaluated by the Rust engine. The
adapter maps each jsonata-python hook the engine uses onto what the Rust package offers, the way
a switch would, and nothing more (a missing hook shows up as a failing test, not a workaround):

* ``register_lambda`` (``$now``, ``$millis``, ``$random``, ``$shuffle``): the package's way to
  replace a built-in with a Python callable.
* ``register_function`` (the engine's size guards on ``$pad``/``$replace``): the engine's own
  guard runs, then the Rust built-in does the work (a separately compiled ``$pad(...)``).
* ``frame.bind("eval", refusal)``: ``$eval`` is replaced by a dispatcher that calls the current
  evaluation's binding.
* The per-node entry/exit callbacks (CPU meter, cancellation, depth, array and string sizes):
  no Rust package calls back per node. What each offers instead is applied per evaluation:
  a timeout (the smaller of the evaluation's bound and what the run has left), a recursion
  depth and, for jsonatapy, a sequence length; the run's meter is checked before the evaluation
  and charged after it (by the engine, as before). Their errors trip the engine's bound of the
  same kind, so they surface as ``ExpressionLimitExceeded`` as jsonata-python's would.
* ``.ast`` (static checks: ``references()`` finds ``$eval``/``secrets``): neither package
  exposes a parse tree, so jsonata-python's parser still provides it, lazily.
* Errors: the Rust engine's code and message, as a ``JException`` (what the engine catches).
"""

from __future__ import annotations

if __name__ == "__main__":  # `make bench` runs every bench/*.py; this one is a pytest plugin
    print("bench/_jsonata_shim.py is a pytest plugin (-p bench._jsonata_shim); see its docstring")
    raise SystemExit(0)

import os
import threading
from collections.abc import Callable
from typing import Any

import jsonata
from jsonata.jexception import JException

ENGINE = os.environ.get("SWITCHBOARD_JSONATA_ENGINE", "jsonatapy")
# jsonatapy's compiled expressions are "unsendable" (PyO3 panics when another thread evaluates
# one) and the engine shares parsed expressions between its worker threads. 1: compile once per
# thread (what a switch would have to do), to see what fails beyond that.
PER_THREAD = os.environ.get("SWITCHBOARD_JSONATA_PER_THREAD") == "1"
_ORIGINAL = jsonata.Jsonata
_current = threading.local()  # the Frame of the evaluation running in this thread


class RustError(JException):
    """A Rust engine's error, carried as the JException the engine catches (its code and message)."""

    def __init__(self, code: str, message: str):
        super().__init__(code, -1)
        self.code, self.message = code, message
        self.args = (message,)

    def __str__(self) -> str:
        return self.message


class _Jsonatapy:
    def __init__(self) -> None:
        import jsonatapy

        self.module = jsonatapy
        self.errors = (ValueError,)

    timeout_codes, depth_codes, items_codes = ("D1012",), ("D1011",), ("D2015",)

    def compile(self, text: str) -> Any:
        return self.module.compile(text)

    def override(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        compiled.register_override(name, fn)

    def evaluate(self, compiled: Any, data: Any, bindings: dict | None, timeout_ms: int | None,
                 depth: int | None, items: int | None) -> Any:
        return compiled.evaluate(data, bindings, timeout=timeout_ms, max_stack_depth=depth,
                                 max_sequence_length=items)

    def code(self, exc: Exception) -> str:
        text = str(exc)
        head = text.split(":", 1)[0].strip()
        if head == "Parse error":
            head = text.split(":", 2)[1].strip()
        return head if len(head) == 5 and head[1:].isdigit() else "?"


class _JsonataRs:
    def __init__(self) -> None:
        import _jsonata_rs

        self.module = _jsonata_rs
        self.errors = (_jsonata_rs.JsonataError,)

    timeout_codes, depth_codes, items_codes = ("TIMEOUT", "D1012"), ("STACK_OVERFLOW", "D1011"), ()

    def compile(self, text: str) -> Any:
        return self.module.Jsonata(text)

    def override(self, compiled: Any, name: str, fn: Callable[..., Any]) -> None:
        compiled.register_function(name, fn)  # a registered function shadows the built-in

    def evaluate(self, compiled: Any, data: Any, bindings: dict | None, timeout_ms: int | None,
                 depth: int | None, items: int | None) -> Any:
        # bounds are a setting of the compiled expression, not of one call (the engine shares
        # parsed expressions between threads; a switch would have to compile per budget)
        if timeout_ms is not None:
            compiled.set_runtime_bounds(timeout_ms, depth or 10_000)
        return compiled.evaluate(data, bindings)

    def code(self, exc: Exception) -> str:
        return getattr(exc, "code", "?")


BACKEND = {"jsonatapy": _Jsonatapy, "jsonata-rs": _JsonataRs}[ENGINE]()


def _translated(exc: Exception) -> RustError:
    return RustError(BACKEND.code(exc), f"[{ENGINE}] {exc}")


_builtins: dict[str, Any] = {}


def _rust_builtin(name: str, args: list[Any]) -> Any:
    """The Rust engine's own built-in ``$name`` applied to ``args`` (for guarded overrides)."""
    key = f"{name}/{len(args)}"
    compiled = _builtins.get(key)
    if compiled is None:
        params = ", ".join(f"$a{i}" for i in range(len(args)))
        compiled = _builtins[key] = BACKEND.compile(f"${name}({params})")
    try:
        return BACKEND.evaluate(compiled, None, {f"a{i}": a for i, a in enumerate(args)}, None, None, None)
    except BACKEND.errors as exc:
        raise _translated(exc) from None


def _native_call(self: Any, input: Any, args: Any) -> Any:
    # With the shim, jsonata-python's evaluator never runs, so a JNativeFunction's call (reached
    # through the engine's _SizeGuarded after its check) means "the engine's built-in": Rust's.
    return _rust_builtin(self.function_name, list(args or []))


class RustJsonata:
    """``jsonata.Jsonata`` backed by the selected Rust engine (see the module docstring)."""

    Frame = _ORIGINAL.Frame
    JLambda = _ORIGINAL.JLambda
    JNativeFunction = _ORIGINAL.JNativeFunction

    def __init__(self, text: str):
        self.text = text
        self._overrides: list[tuple[str, Callable[..., Any]]] = [("eval", self._eval)]
        self._threads: dict[int, Any] = {}
        self._first = self._compile()
        self._ast: Any = None

    def _compile(self) -> Any:
        try:
            compiled = BACKEND.compile(self.text)
        except BACKEND.errors as exc:
            raise _translated(exc) from None
        for name, fn in self._overrides:
            BACKEND.override(compiled, name, fn)
        self._threads[threading.get_ident()] = compiled
        return compiled

    @property
    def _compiled(self) -> Any:
        if not PER_THREAD:
            return self._first
        return self._threads.get(threading.get_ident()) or self._compile()

    def _override(self, name: str, fn: Callable[..., Any]) -> None:
        self._overrides.append((name, fn))
        for compiled in self._threads.values():
            BACKEND.override(compiled, name, fn)

    @property
    def ast(self) -> Any:
        if self._ast is None:
            self._ast = _ORIGINAL(self.text).ast
        return self._ast

    def set_validate_input(self, validate: bool) -> None:
        pass  # the Rust engines convert the input to their own values in any case

    def register_lambda(self, name: str, fn: Callable[..., Any]) -> None:
        self._override(name, fn)

    def register_function(self, name: str, function: Any) -> None:
        self._override(name, lambda *args: function.call(None, list(args)))

    def _eval(self, *args: Any) -> Any:
        frame = getattr(_current, "frame", None)
        binding = frame.bindings.get("eval") if frame is not None else None
        if binding is None:
            raise NotImplementedError("shim: the engine always binds $eval; no built-in to fall back on")
        return binding.call(None, list(args))

    def evaluate(self, data: Any, frame: Any = None) -> Any:
        bindings = None
        bounds = None
        if isinstance(frame, dict):  # evaluate(data, {"name": value}): variable bindings
            # the engine's None is "no value" (jsonata-python binds it as undefined); the Rust
            # engines would bind null, which optional arguments refuse ($now's zone)
            bindings, frame = {k: v for k, v in frame.items() if v is not None}, None
        elif frame is not None:
            entry = frame.bindings.get("__evaluate_entry")
            bounds = getattr(entry, "__self__", None)  # the engine's per-evaluation _Bounds
            bindings = {k: v for k, v in frame.bindings.items() if not k.startswith("__") and k != "eval"} or None
        timeout_ms = depth = items = None
        if bounds is not None:
            budget = bounds.budget
            bounds.check_time()  # a run whose earlier evaluations used its budget stops here
            left = min(budget.evaluation_seconds, budget.seconds - bounds.meter.spent)
            timeout_ms, depth, items = max(1, int(left * 1000)), budget.max_depth, budget.max_items
        outer = getattr(_current, "frame", None)
        _current.frame = frame
        try:
            return BACKEND.evaluate(self._compiled, data, bindings, timeout_ms, depth, items)
        except BACKEND.errors as exc:
            code = BACKEND.code(exc)
            if bounds is not None and bounds.forbidden is None and bounds.tripped is None:
                if code in BACKEND.timeout_codes:
                    run_left = budget.seconds - bounds.meter.spent
                    if run_left < budget.evaluation_seconds:
                        bounds.trip("seconds", budget.seconds, f"[{ENGINE}] the run's expressions used more CPU time than that")
                    bounds.trip("evaluation_seconds", budget.evaluation_seconds, f"[{ENGINE}] {exc}")
                if code in BACKEND.depth_codes:
                    bounds.trip("depth", budget.max_depth, f"[{ENGINE}] Stack overflow: {exc}")
                if code in BACKEND.items_codes:
                    bounds.trip("items", budget.max_items, f"[{ENGINE}] {exc}")
            raise _translated(exc) from None
        finally:
            _current.frame = outer


jsonata.Jsonata = RustJsonata
_ORIGINAL.JNativeFunction.call = _native_call
