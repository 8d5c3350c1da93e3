"""A server killed (SIGKILL) in the middle of concurrent writes leaves no change without its audit
entry, and an Idempotency-Key retried after the restart replays a committed creation instead of
being refused as in progress or creating twice.

The API runs in a child process that is killed at an arbitrary point while several clients
create secrets and workflows and publish them; the checks run on what the database holds.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import store
from support.platform import Tenant, make_tenant
from support.serve_process import platform_process

ROUNDS = 5
WRITERS = 6


@dataclass
class Attempt:
    """A request that was sent (or about to be) when the server died."""

    method: str
    path: str
    body: dict[str, Any] | None
    key: str
    kind: str  # secret | workflow | publish
    name: str  # the secret's name or the workflow's key


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="switchboard-crash-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _workflow(key: str) -> dict[str, Any]:
    return {"spec": {"id": key, "steps": [{"id": "a", "map": {"n": "{{ 1 + 1 }}"}}]}}


def _writer(url: str, tenant: Tenant, prefix: str, attempts: list[Attempt], done: threading.Semaphore) -> None:
    """Create secrets and workflows (publishing each) with Idempotency-Keys until the server dies."""
    with httpx.Client(base_url=url, timeout=30, headers=tenant.headers()) as http:
        for n in range(10_000):
            name = f"{prefix}_{n}"
            try:
                if n % 2 == 0:
                    attempt = Attempt("POST", "/v1/secrets", {"name": name, "value": "v", "environment": "dev"},
                                      f"k-{name}", "secret", name)
                    attempts.append(attempt)
                    http.post(attempt.path, json=attempt.body, headers={"Idempotency-Key": attempt.key})
                else:
                    key = name.replace("_", "-")
                    attempt = Attempt("POST", "/v1/workflows", _workflow(key), f"k-{name}", "workflow", key)
                    attempts.append(attempt)
                    created = http.post(attempt.path, json=attempt.body, headers={"Idempotency-Key": attempt.key})
                    if created.status_code == 201:
                        publish = Attempt("POST", f"/v1/workflows/{key}/publish", None, f"p-{name}", "publish", key)
                        attempts.append(publish)
                        http.post(publish.path, headers={"Idempotency-Key": publish.key})
            except httpx.TransportError:
                return
            finally:
                done.release()


def _kill_mid_writes(url: str, pid: int, tenant: Tenant, round_: int, attempts: list[Attempt]) -> None:
    done = threading.Semaphore(0)
    threads = [
        threading.Thread(target=_writer, args=(url, tenant, f"r{round_}w{w}", attempts, done), daemon=True)
        for w in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    # Kill after an arbitrary number of requests, while every writer is busy.
    for _ in range(random.randint(WRITERS * 2, WRITERS * 8)):
        done.acquire()
    os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(60)


def _committed(db: store.Database, org_id: str) -> dict[str, Any]:
    with db.tenant(org_id) as tx:
        secrets = {r["name"]: r["id"] for r in tx.execute("SELECT id, name FROM secrets WHERE org_id = %s", (org_id,))}
        workflows = {r["key"]: r["id"] for r in tx.execute("SELECT id, key FROM workflows WHERE org_id = %s", (org_id,))}
        versions: dict[str, int] = {}
        for r in tx.execute(
            "SELECT workflow_id, count(*) AS n FROM workflow_versions WHERE org_id = %s GROUP BY workflow_id", (org_id,)
        ):
            versions[r["workflow_id"]] = r["n"]
        audit: dict[tuple[str, str], int] = {}
        for r in tx.execute(
            "SELECT action, resource_id, count(*) AS n FROM audit_log WHERE org_id = %s AND outcome = 'success'"
            " GROUP BY action, resource_id",
            (org_id,),
        ):
            audit[(r["action"], r["resource_id"])] = r["n"]
    return {"secrets": secrets, "workflows": workflows, "versions": versions, "audit": audit}


def test_no_change_without_its_audit_entry_and_retries_replay_after_sigkill(
    migrated_database_url: str, db: store.Database, data_dir: Path
) -> None:
    tenant = make_tenant(db, "Crashes", customers=0)
    attempts: list[Attempt] = []
    for round_ in range(ROUNDS):
        with platform_process(migrated_database_url, data_dir) as (url, proc):
            _kill_mid_writes(url, proc.pid, tenant, round_, attempts)
            proc.wait(30)

    state = _committed(db, tenant.org_id)
    assert state["secrets"] and state["workflows"], "the writers made no change before the kills"
    unaudited = [f"secret {name}" for name, id_ in state["secrets"].items() if ("secret.create", id_) not in state["audit"]]
    unaudited += [f"workflow {key}" for key, id_ in state["workflows"].items()
                  if ("workflow.create", id_) not in state["audit"]]
    # Publishing is audited under the path's workflow reference (here its key).
    unaudited += [f"publish of {key}" for key, id_ in state["workflows"].items()
                  if state["versions"].get(id_, 0) > state["audit"].get(("workflow.publish", key), 0)]
    assert unaudited == [], f"committed without an audit entry: {unaudited}"

    # Every request sent is retried with its key: a committed one is replayed, the others run now.
    with platform_process(migrated_database_url, data_dir) as (url, _proc), \
            httpx.Client(base_url=url, timeout=30, headers=tenant.headers()) as http:
        for attempt in attempts:
            committed_before = _committed(db, tenant.org_id)
            retried = http.request(attempt.method, attempt.path, json=attempt.body, headers={"Idempotency-Key": attempt.key})
            assert retried.status_code == 201, (attempt, retried.text)
            replayed = retried.headers.get("Idempotent-Replayed") == "true"
            if attempt.kind == "secret":
                exists = attempt.name in committed_before["secrets"]
                assert replayed == exists, (attempt, retried.headers)
                if exists:
                    assert retried.json()["id"] == committed_before["secrets"][attempt.name]
            elif attempt.kind == "workflow":
                exists = attempt.name in committed_before["workflows"]
                assert replayed == exists, (attempt, retried.headers)
                if exists:
                    assert retried.json()["id"] == committed_before["workflows"][attempt.name]
            else:
                workflow_id = committed_before["workflows"][attempt.name]
                published = committed_before["versions"].get(workflow_id, 0)
                assert replayed == (published > 0), (attempt, retried.headers)
                assert retried.json()["version"] == 1
        after = _committed(db, tenant.org_id)
        assert all(n == 1 for n in after["versions"].values()), "a retried publish published again"
