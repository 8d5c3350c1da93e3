"""Connector catalog search: recall@5 over the labelled queries, and query latency.

Usage::

    .venv/bin/python bench/catalog.py [--repeat 5] [--embedder offline] [--misses]

An embedded Postgres (or ``DATABASE_URL``'s server, in a database of its own) is migrated, one
organization gets the connectors of ``tests/data/catalog/connectors.yaml`` (the repository's
example connectors and OpenAPI documents), each saved and indexed as the API does it
(``store.Connectors`` and ``runtime.Catalog`` in one transaction), and every query of
``tests/data/catalog/queries.yaml`` is searched.

Printed:

* ``recall@5``: the share of queries whose labelled entry is among the first five results (the
  issue's bar: at least 0.9 with the offline embedder); ``--misses`` lists the others.
* latency of one search, p50 and p95 over ``--repeat`` rounds of every query: ``search`` is the
  whole use case (embed the query, one tenant transaction, the hybrid SQL, ranking), ``sql`` its
  query alone; the baseline is the plain SQL search the connector list already offers (``ILIKE``
  on key and name, ``store.Connectors.list``), measured in the same run, same transactions.
  Ratios only mean something within one run.

``tests/test_bench_smoke.py`` runs it with ``--repeat 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's directory comes first on sys.path; the repository and the tests'
# support package (the labelled set) are what it needs.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))

import store  # noqa: E402
from runtime._catalog import Catalog  # noqa: E402
from runtime._embeddings import build_embedder  # noqa: E402
from support.catalog import connector_spec, queries, recall_at, sources  # noqa: E402
from switchboard import bootstrap  # noqa: E402


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


async def _run(conninfo: str, args: argparse.Namespace) -> int:
    store.migrate(conninfo)
    catalog = Catalog(build_embedder(args.embedder))
    labelled = queries()
    with store.Database.from_conn_string(store.app_conninfo(conninfo)) as db:
        org = bootstrap.create_organization(db, "Catalog bench")["id"]
        started = time.perf_counter()
        entries = 0
        for source in sources():
            spec = connector_spec(source)
            prepared = await catalog.prepare(spec)
            with db.tenant(org) as tx:
                connector = store.Connectors(tx).create(org, spec)
                entries += catalog.save(tx, org, connector, prepared)
        indexed = time.perf_counter() - started
        print(f"indexed: {len(sources())} connectors, {entries} entries in {indexed:.2f} s ({catalog.embedder.name})")

        results = []
        search_times: list[float] = []
        sql_times: list[float] = []
        base_times: list[float] = []
        for round_ in range(args.repeat):
            for item in labelled:
                t0 = time.perf_counter()
                vector = await catalog.query_vector(item.query)
                with db.tenant(org) as tx:
                    t1 = time.perf_counter()
                    hits = catalog.search(tx, org, item.query, vector, limit=5)
                    t2 = time.perf_counter()
                search_times.append(time.perf_counter() - t0)
                sql_times.append(t2 - t1)
                t3 = time.perf_counter()
                with db.tenant(org) as tx:
                    store.Connectors(tx).list(org, store.ListQuery(limit=5), search=item.query)
                base_times.append(time.perf_counter() - t3)
                if round_ == 0:
                    results.append((item, [hit.ref for hit in hits]))

    recall, misses = recall_at(results, 5)
    print(f"queries: {len(labelled)}")
    if args.misses:
        for miss in misses:
            print(f"  miss: {miss}")
    search, sql, base = _percentiles(search_times), _percentiles(sql_times), _percentiles(base_times)
    print(f"search (embed + tx + query + rank): p50 {search[0] * 1e3:.2f} ms, p95 {search[1] * 1e3:.2f} ms")
    print(f"search sql alone:                   p50 {sql[0] * 1e3:.2f} ms, p95 {sql[1] * 1e3:.2f} ms")
    print(f"baseline (tx + ILIKE list):         p50 {base[0] * 1e3:.2f} ms, p95 {base[1] * 1e3:.2f} ms")
    print(f"ratio p50: {search[0] / base[0]:.2f} (search/baseline), p95: {search[1] / base[1]:.2f}")
    print(f"recall@5: {recall:.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds of every query for the latency figures")
    parser.add_argument("--embedder", default="offline", help="offline (the default); openai:<model> needs a server")
    parser.add_argument("--misses", action="store_true", help="list the queries whose entry is not in the top 5")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"bench_catalog_{uuid.uuid4().hex[:12]}"
        url = store.create_database(external, name)
        try:
            return asyncio.run(_run(url, args))
        finally:
            store.drop_database(external, name)
    path = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    embedded = store.start_embedded(path / "pg")
    try:
        return asyncio.run(_run(embedded.conninfo, args))
    finally:
        embedded.stop()
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
