"""Support for the contract test (schemathesis against the running platform)."""

from __future__ import annotations

import copy
import json
from typing import Any

import schemathesis

import store
from switchboard.app import create_app
from api._auth import ACCESS_KEY_HEADER, ACCOUNT_HEADER, TENANT_HEADER
from switchboard.settings import Settings

# Fixed, so a failing case found in CI comes back on a developer's machine.
CONTRACT_SEED = 20240603


def api_document() -> dict[str, Any]:
    """The OpenAPI document the platform serves at ``/openapi.json``, as JSON values.

    Built from the app without starting it (no database), so tests can be collected per
    operation before any server runs; the contract test checks that the served one is equal.
    """
    return json.loads(json.dumps(create_app(Settings()).openapi()))


# The auth headers, documented as header parameters of every operation. The contract test
# sends a tenant's real values with every request instead of generated ones.
AUTH_HEADERS = frozenset({ACCESS_KEY_HEADER, ACCOUNT_HEADER, TENANT_HEADER, "authorization"})


def without_auth_parameters(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` whose operations do not declare the auth headers.

    Only for generating cases: values generated for these headers would be replaced by the
    tenant's before sending, and drawing them (filtered header text, four per case) costs more
    than the rest of a case. The responses and their schemas are untouched.
    """
    document = copy.deepcopy(document)
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    p
                    for p in operation["parameters"]
                    if not (p.get("in") == "header" and p.get("name", "").lower() in AUTH_HEADERS)
                ]
    return document


def contract_config(*, max_examples: int, coverage: bool = False, seed: int = CONTRACT_SEED) -> schemathesis.Config:
    """A bounded, reproducible schemathesis configuration.

    Positive and negative cases, ``max_examples`` per operation in the fuzzing phase, plus the
    documented examples. ``coverage`` adds schemathesis' coverage phase (boundary values of every
    parameter: some 20-150 more requests per operation, too many for every test run). No stateful
    phase, no shrinking, no example database (a run does not depend on what an earlier one left).
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
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"enabled": False}},
        }
    )


def unlimited_quotas(db: store.Database, org_id: str, customer_id: str) -> None:
    """Lift every quota of one customer, so hundreds of generated requests reach the handlers
    rather than a 429 after the Free plan's 20 calls a minute (quotas have their own tests)."""
    overrides = {dimension: {"limit": None, "mode": "hard"} for dimension in store.DIMENSIONS}
    with db.tenant(org_id) as tx:
        store.Customers(tx).update(org_id, customer_id, {"quota_overrides": overrides})
