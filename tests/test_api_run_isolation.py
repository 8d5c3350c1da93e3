"""A pathological expression in one tenant's run is stopped by that run's budget, and does not hold up
the server: /health and another organization's run are answered while it spins. (Its evaluation runs
in the platform's expression threads, never on the event loop, and is metered as it goes.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import store
from support.platform import Tenant, client, make_tenant, running_platform
from support.seed import UNLIMITED

BUDGET = 2.0  # expression_budget_seconds of the platform under test
RUNAWAY = "($loop := function($x){ $loop($x + 1) }; $loop(0))"  # tail-recursive: never deepens, never ends


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    with running_platform(migrated_database_url, expression_budget_seconds=BUDGET) as (url, _settings):
        yield url


def _published(http: Any, tenant: Tenant, spec: dict[str, Any]) -> None:
    assert http.post("/v1/workflows", headers=tenant.headers(), json={"spec": spec}).status_code == 201
    assert http.post(f"/v1/workflows/{spec['id']}/publish", headers=tenant.headers()).status_code == 201
    assert http.put(f"/v1/billing/customers/{tenant.customers[0]}/overrides", headers=tenant.headers(),
                    json=UNLIMITED).status_code == 200


def test_a_runaway_expression_is_stopped_by_its_budget_and_holds_up_no_one(platform: str, db: store.Database) -> None:
    acme, globex = make_tenant(db, "Spinner"), make_tenant(db, "Bystander")
    with client(platform) as http:
        _published(http, acme, {"id": "runaway", "tier": "instant", "steps": [{"id": "spin", "map": {"v": "{{ " + RUNAWAY + " }}"}}]})
        _published(http, globex, {"id": "quick", "tier": "instant", "input": {"type": "object"},
                                  "steps": [{"id": "sum", "map": {"total": "{{ $sum(input.xs) }}"}}],
                                  "output": "{{ steps.sum.total }}"})

    outcome: dict[str, Any] = {}

    def spin() -> None:
        with client(platform) as own:
            started = time.monotonic()
            outcome["response"] = own.post("/v1/workflows/runaway/runs", headers=acme.headers(acme.customers[0]),
                                           json={"input": {}})
            outcome["seconds"] = time.monotonic() - started

    spinner = threading.Thread(target=spin)
    spinner.start()
    health: list[float] = []
    others: list[tuple[float, Any]] = []
    with client(platform) as http:
        time.sleep(0.3)  # let the runaway start evaluating
        while spinner.is_alive() and len(health) < 200:
            started = time.monotonic()
            assert http.get("/health").status_code == 200
            health.append(time.monotonic() - started)
            started = time.monotonic()
            other = http.post("/v1/workflows/quick/runs", headers=globex.headers(globex.customers[0]),
                              json={"input": {"xs": [1, 2, 3]}})
            others.append((time.monotonic() - started, other.json()))
    spinner.join(timeout=120)

    response = outcome["response"]
    assert response.status_code == 201, response.text
    execution = response.json()
    assert execution["status"] == "failed"
    assert "expression_budget_exceeded" in (execution["error"]["code"], execution["error"].get("cause"))
    assert health and others, "nothing was asked while the runaway ran"
    assert all(run["status"] == "completed" and run["output"] == 6 for _, run in others)
    # Each answer came well within the runaway's own budget, though it was spinning all along.
    assert max(health) < BUDGET and max(seconds for seconds, _ in others) < BUDGET
