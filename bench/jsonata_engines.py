"""JSONata engines compared on the flagship sync's mapping: microseconds per record (issue 8).

Usage::

    .venv/bin/python bench/jsonata_engines.py [--records 10000] [--repeats 3]

Times, per record, the five expressions the flagship sync
(``examples/hubspot-contacts-to-cin7.yaml``) evaluates for each source record: the three
``map`` templates (``Name``, ``Currency``, ``Contacts``) and the two match expressions
(``properties.email`` on the contact, ``Contacts.Email`` on the customer). Records are shaped
like ``bench/sync.py``'s ``contact(i)`` (source) and ``customer(i)`` (target); the map's context
is ``{"source", "target", "input"}``, as the sync step builds it. Every engine parses each
expression once and evaluates it for every record; the baseline is jsonata-python, measured in
the same run (``set_validate_input(False)``, as ``engine/_expressions.py`` sets), and each Rust
engine's ``ratio`` is its time over the baseline's (below 1 is faster).

Choices, and why:

* Only the engines are measured, not the engine's ``Expression`` wrapper (its budget callbacks,
  plain-path walk and result normalisation): the question is what swapping the evaluator would
  buy. ``engine`` (what a run pays: the engine's plain-path walk, its compiled subset of JSONata,
  ``engine._compiled``, and jsonata-python under the budget callbacks for the rest) is printed
  too, as the figure a switch would be compared with in practice.
* Before timing, every engine's results for the first 200 records must equal jsonata-python's;
  an engine that disagrees is reported, not timed.
* Engines run in a rotating order, ``--repeats`` times; the median per engine is printed.
* A missing engine prints ``not installed``. ``jsonata-rs`` installs itself under the import
  name ``jsonata`` (jsonata-python's), so it cannot share an environment: unpack its wheel and
  rename the package directory to ``_jsonata_rs`` on ``PYTHONPATH``, e.g.
  ``pip download --no-deps jsonata-rs && unzip jsonata_rs-*.whl -d rs && mv rs/jsonata rs/_jsonata_rs``.

Conformance (do they pass the repository's tests?) is ``bench/_jsonata_shim.py``, a pytest
plugin that runs the engine's expressions on a Rust engine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and bench/ holds engine.py,
# which would shadow the engine package. The package is what we want.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

WORKFLOW = ROOT / "examples" / "hubspot-contacts-to-cin7.yaml"
CHECKED = 200


def contact(i: int) -> dict[str, Any]:
    props = {"email": f"person{i}@example.com", "firstname": f"First{i}", "lastname": f"Last{i}",
             "phone": f"+1 555 {i:07d}"}
    return {"id": str(100000 + i), "properties": props, "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z", "archived": False}


def customer(i: int) -> dict[str, Any]:
    # bench/sync.py's customer(i), without importing it (it pulls in httpx and the sandboxes)
    import uuid

    name = f"First{i} Last{i}"
    return {"ID": str(uuid.UUID(int=i + 1)), "Name": name, "Currency": "USD",
            "Contacts": [{"Name": name, "Email": f"person{i}@example.com", "Phone": f"+1 555 {i:07d}", "Default": True}]}


def expressions() -> list[tuple[str, str, str]]:
    """``(name, text, context)`` of the sync's per-record expressions; context is map, source or target."""
    from engine.expressions import template_parts

    sync = next(step["sync"] for step in yaml.safe_load(WORKFLOW.read_text())["steps"] if "sync" in step)
    found = [(f"map.{key}", template_parts(value)[0].strip(), "map") for key, value in sync["map"].items()]
    found.append(("match.source", sync["match"]["source"], "source"))
    found.append(("match.target", sync["match"]["target"], "target"))
    return found


# An engine: compile(text) -> evaluate(data) -> value.
Engine = Callable[[str], Callable[[Any], Any]]


def jsonata_python() -> Engine:
    import jsonata

    def compile(text: str) -> Callable[[Any], Any]:
        compiled = jsonata.Jsonata(text)
        compiled.set_validate_input(False)
        return compiled.evaluate
    return compile


def engine_wrapper() -> Engine:
    # What a run pays: the engine's path walk, its compiled subset (engine._compiled), else jsonata-python.
    from engine.expressions import ExpressionCache

    cache = ExpressionCache()

    def compile(text: str) -> Callable[[Any], Any]:
        return cache.compile(text).evaluate
    return compile


def jsonatapy() -> Engine:
    import jsonatapy as module

    def compile(text: str) -> Callable[[Any], Any]:
        return module.compile(text).evaluate
    return compile


def jsonata_rs() -> Engine:
    import _jsonata_rs as module

    def compile(text: str) -> Callable[[Any], Any]:
        return module.Jsonata(text).evaluate
    return compile


ENGINES: dict[str, Callable[[], Engine]] = {"jsonata-python": jsonata_python, "engine": engine_wrapper,
                                            "jsonatapy": jsonatapy, "jsonata-rs": jsonata_rs}


def normalised(value: Any) -> Any:
    # jsonata-python returns its own list type in places, and 5.0 where others give 5
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalised(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def run(compiled: list[tuple[Callable[[Any], Any], str]], records: list[dict[str, Any]]) -> list[Any]:
    out = []
    for record in records:
        for evaluate, context in compiled:
            out.append(evaluate(record[context]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    texts = expressions()
    records = []
    for i in range(args.records):
        source, target = contact(i), customer(i)
        records.append({"source": source, "target": target,
                        "map": {"source": source, "target": target, "input": {}}})

    available: dict[str, list[tuple[Callable[[Any], Any], str]]] = {}
    for name, factory in ENGINES.items():
        try:
            engine = factory()
        except ImportError as exc:
            print(f"{name:15s} not installed ({exc})")
            continue
        try:
            available[name] = [(engine(text), context) for _, text, context in texts]
        except Exception as exc:  # an engine that cannot parse the flagship is reported, not timed
            print(f"{name:15s} does not parse the flagship's expressions: {type(exc).__name__}: {exc}")

    expected = normalised(run(available["jsonata-python"], records[:CHECKED]))
    for name in list(available):
        try:
            got = normalised(run(available[name], records[:CHECKED]))
        except Exception as exc:
            print(f"{name:15s} fails on the flagship's records: {type(exc).__name__}: {exc}")
            del available[name]
            continue
        if got != expected:
            bad = next(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
            label = texts[bad % len(texts)][0]
            print(f"{name:15s} differs from jsonata-python on {label}: {got[bad]!r} != {expected[bad]!r}")
            del available[name]

    times: dict[str, list[float]] = {name: [] for name in available}
    names = list(available)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            started = time.perf_counter()
            run(available[name], records)
            times[name].append(time.perf_counter() - started)

    print(f"\n{args.records} records x {len(texts)} expressions ({', '.join(t[0] for t in texts)}), "
          f"median of {args.repeats}")
    print(f"{'engine':15s} {'us/record':>10s} {'ratio':>7s}")
    base = statistics.median(times["jsonata-python"])
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:15s} {median / args.records * 1e6:10.1f} {median / base:7.3f}")


if __name__ == "__main__":
    main()
