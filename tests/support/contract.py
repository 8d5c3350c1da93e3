"""Support for the contract test (schemathesis against the running platform)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis

import store
from api import create_app
from switchboard.settings import Settings

# Fixed, so a failing case found in CI comes back on a developer's machine.
CONTRACT_SEED = 20240603


def api_document() -> dict[str, Any]:
    """The OpenAPI document the platform serves at ``/openapi.json``, as JSON values.

    Built from the app without starting it (no database), so tests can be collected per
    operation before any server runs; the contract test checks that the served one is equal.
    """
    return json.loads(json.dumps(create_app(Settings()).openapi()))


def contract_config(*, max_examples: int, seed: int = CONTRACT_SEED) -> schemathesis.Config:
    """A bounded, reproducible schemathesis configuration.

    Positive and negative cases; the examples and coverage phases add documented examples and
    boundary values; no stateful phase, no shrinking, no example database (a run does not depend
    on what an earlier one left behind).
    """
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "suppress-health-check": ["all"],
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )


def unlimited_quotas(db: store.Database, org_id: str, customer_id: str) -> None:
    """Lift every quota of one customer, so hundreds of generated requests reach the handlers
    rather than a 429 after the Free plan's 20 calls a minute (quotas have their own tests)."""
    overrides = {dimension: {"limit": None, "mode": "hard"} for dimension in store.DIMENSIONS}
    with db.tenant(org_id) as tx:
        store.Customers(tx).update(org_id, customer_id, {"quota_overrides": overrides})
