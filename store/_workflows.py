"""Workflows: drafts, immutable published versions, deployments to environments, triggers and executions.

A workflow is identified by ``key`` (its spec's ``id``, unique per organization) and holds one
editable ``draft``. Publishing copies the draft into version 1, 2, 3...; versions never change
afterwards. A deployment says which version runs in an environment (one per workflow and
environment). Triggers are stored configuration attached to a workflow. Executions are runs for
one customer; they belong to that customer, so row-level security shows a customer-bound
transaction only its own.

Specs are stored as the JSON the caller validated (``api/`` validates them with the engine).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.errors import ForeignKeyViolation, UniqueViolation
from psycopg.types.json import Jsonb

from store._ids import new_id
from store._orgs import Environments, taken
from store._paging import CUSTOMERS_OF_ENVIRONMENT, Filters, ListQuery, Page, add_time_range, fetch_page
from store._schedules import Schedules
from store.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

WORKFLOW_STATUSES = ("draft", "published", "archived")
WORKFLOW_TYPES = ("instant", "standard", "long")
TRIGGER_KINDS = ("webhook", "schedule", "app_event")
EXECUTION_STATUSES = ("queued", "running", "completed", "failed", "timeout", "cancelled")
# How an execution may end (``Executions.finish``).
FINISHED_STATUSES = ("completed", "failed", "timeout", "cancelled")
EXECUTION_TIERS = ("instant", "standard", "long")
TRIGGERED_BY = ("webhook", "schedule", "app_event", "manual", "mcp", "agent")
# Executions record version 0 when they ran the draft (dry runs only).
DRAFT_VERSION = 0

_SUMMARY = (
    "w.*, (SELECT max(v.version) FROM workflow_versions v WHERE v.org_id = w.org_id AND v.workflow_id = w.id)"
    " AS latest_version"
)
_VERSION_COLUMNS = "org_id, id, workflow_id, version, created_by, created_at"
_EXECUTION_SUMMARY = (
    "org_id, id, customer_id, workflow_id, version, dry_run, status, tier, triggered_by, input, output, error,"
    " started_at, finished_at, rerun_of, escalations"
)
# Still to run or running: what an overlap limit counts, and what can be cancelled.
UNFINISHED_STATUSES = ("queued", "running")
# The error a cancelled execution records, and the one a coalesced run records.
CANCELLED = "cancelled"
COALESCED = "coalesced"
_EXECUTION_DETAIL = _EXECUTION_SUMMARY + ", trace"


# What jsonb cannot hold: NUL and unpaired surrogates (JSON escapes allow both; Postgres refuses them).
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """``value`` (JSON data) with each character jsonb cannot hold replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE_TEXT.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def _check(resource: str, field: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidInput(resource, field, f"must be one of {', '.join(allowed)}")


def _spec_key(spec: dict[str, Any]) -> str:
    key = spec.get("id")
    if not isinstance(key, str) or not key:
        raise InvalidInput("workflow", "spec/id", "is required")
    return key


def _without_version(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "version"}


class Workflows:
    """An organization's workflows: drafts, versions and deployments."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    # -- workflows and drafts --------------------------------------------------

    def create(self, org_id: str, spec: dict[str, Any], *, created_by: str | None = None) -> dict[str, Any]:
        """Create workflow ``spec["id"]`` with ``spec`` as its draft; ``Conflict`` (field ``key``) when taken."""
        key = _spec_key(spec)
        tier = spec.get("tier", "standard")
        _check("workflow", "spec/tier", tier, WORKFLOW_TYPES)
        workflow_id = new_id("wf")
        try:
            self.tx.execute(
                "INSERT INTO workflows (org_id, id, key, name, type, draft, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (org_id, workflow_id, key, spec.get("name") or key, tier, Jsonb(spec), created_by),
            )
        except UniqueViolation as exc:
            raise taken("workflow", "key", key) from exc
        return self.get(org_id, workflow_id)

    def get(self, org_id: str, ref: str) -> dict[str, Any]:
        """The workflow with id or key ``ref``, its draft, ``latest_version`` (None before the
        first publish) and ``deployments`` (environment id, slug and version)."""
        row = self.tx.execute(
            f"SELECT {_SUMMARY} FROM workflows w WHERE w.org_id = %s AND (w.id = %s OR w.key = %s)", (org_id, ref, ref)
        ).fetchone()
        if row is None:
            raise NotFound("workflow", ref)
        row["deployments"] = self.deployments(org_id, row["id"])
        return row

    def list(self, org_id: str, query: ListQuery, *, status: str | None = None, type: str | None = None,
             search: str | None = None) -> Page:
        """Workflows without their drafts (sort: created_at, updated_at, key, name); ``search`` matches key and name."""
        _check("workflow", "status", status, WORKFLOW_STATUSES)
        _check("workflow", "type", type, WORKFLOW_TYPES)
        filters = Filters()
        filters.add("w.org_id = %(org)s", org=org_id)
        if status:
            filters.add("w.status = %(status)s", status=status)
        if type:
            filters.add("w.type = %(type)s", type=type)
        if search:
            filters.add_search(search, "w.key", "w.name")
        sortable = {"created_at": "w.created_at", "updated_at": "w.updated_at", "key": "w.key", "name": "w.name"}
        return fetch_page(self.tx, "workflow", "workflows w", query, sortable, filters, id_column="w.id", columns=_SUMMARY)

    def replace_draft(self, org_id: str, ref: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Replace the draft; ``spec["id"]`` must stay the workflow's key. Versions are untouched."""
        workflow = self._lock(org_id, ref)
        key = _spec_key(spec)
        if key != workflow["key"]:
            raise InvalidInput("workflow", "spec/id", f"must be the workflow's key {workflow['key']!r}, not {key!r}")
        tier = spec.get("tier", "standard")
        _check("workflow", "spec/tier", tier, WORKFLOW_TYPES)
        self.tx.execute(
            "UPDATE workflows SET draft = %s, name = %s, type = %s, updated_at = now() WHERE org_id = %s AND id = %s",
            (Jsonb(spec), spec.get("name") or key, tier, org_id, workflow["id"]),
        )
        return self.get(org_id, workflow["id"])

    def archive(self, org_id: str, ref: str) -> dict[str, Any]:
        """Mark the workflow archived: it keeps its versions and history but no longer runs or deploys."""
        workflow = self._lock(org_id, ref)
        self.tx.execute(
            "UPDATE workflows SET status = 'archived', updated_at = now() WHERE org_id = %s AND id = %s",
            (org_id, workflow["id"]),
        )
        Schedules(self.tx).sync(org_id, workflow_id=workflow["id"])  # an archived workflow no longer runs
        return self.get(org_id, workflow["id"])

    def delete(self, org_id: str, ref: str) -> None:
        """Delete the workflow with its versions, triggers and executions; ``Conflict`` while deployed."""
        workflow = self._lock(org_id, ref)
        deployed = self.deployments(org_id, workflow["id"])
        if deployed:
            where = ", ".join(d["environment_slug"] for d in deployed)
            raise Conflict("workflow", None, f"{workflow['key']!r} is deployed to {where}; undeploy it first or archive it")
        self.tx.execute("DELETE FROM workflows WHERE org_id = %s AND id = %s", (org_id, workflow["id"]))

    # -- versions --------------------------------------------------------------

    def publish(self, org_id: str, ref: str, *, created_by: str | None = None) -> dict[str, Any]:
        """Copy the draft into the next version (1, 2, ...) and return that version, spec included.

        ``Conflict`` when the workflow is archived, or when the draft is what the latest version holds.
        """
        workflow = self._lock(org_id, ref)
        if workflow["status"] == "archived":
            raise Conflict("workflow", "status", f"{workflow['key']!r} is archived")
        latest = self.tx.execute(
            "SELECT version, spec FROM workflow_versions WHERE org_id = %s AND workflow_id = %s ORDER BY version DESC LIMIT 1",
            (org_id, workflow["id"]),
        ).fetchone()
        if latest is not None and _without_version(latest["spec"]) == _without_version(workflow["draft"]):
            raise Conflict("workflow", "draft", f"the draft is unchanged since version {latest['version']}")
        number = (latest["version"] if latest else 0) + 1
        try:
            row = self.tx.execute(
                "INSERT INTO workflow_versions (org_id, id, workflow_id, version, spec, created_by)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                (org_id, new_id("wfv"), workflow["id"], number, Jsonb({**workflow["draft"], "version": number}), created_by),
            ).fetchone()
        except UniqueViolation as exc:
            raise Conflict("workflow_version", "version", f"version {number} was just published; retry") from exc
        self.tx.execute(
            "UPDATE workflows SET status = 'published', updated_at = now() WHERE org_id = %s AND id = %s",
            (org_id, workflow["id"]),
        )
        return row

    def versions(self, org_id: str, ref: str, query: ListQuery) -> Page:
        """The published versions of workflow ``ref``, without specs (sort: version, created_at)."""
        workflow = self._row(org_id, ref)
        filters = Filters()
        filters.add("org_id = %(org)s AND workflow_id = %(wid)s", org=org_id, wid=workflow["id"])
        sortable = {"version": "version", "created_at": "created_at"}
        return fetch_page(self.tx, "workflow_version", "workflow_versions", query, sortable, filters, columns=_VERSION_COLUMNS)

    def version(self, org_id: str, ref: str, number: int) -> dict[str, Any]:
        """Version ``number`` of workflow ``ref``, spec included."""
        workflow = self._row(org_id, ref)
        row = self.tx.execute(
            "SELECT * FROM workflow_versions WHERE org_id = %s AND workflow_id = %s AND version = %s",
            (org_id, workflow["id"], number),
        ).fetchone()
        if row is None:
            raise NotFound("workflow_version", f"{workflow['key']}@{number}")
        return row

    def version_for(self, org_id: str, ref: str, environment_id: str) -> dict[str, Any] | None:
        """The version that runs in ``environment_id``: the one deployed there, else the latest
        published; None when the workflow has no version."""
        workflow = self._row(org_id, ref)
        return self.tx.execute(
            "SELECT v.* FROM workflow_versions v LEFT JOIN deployments d ON d.org_id = v.org_id"
            " AND d.workflow_id = v.workflow_id AND d.environment_id = %s AND d.version = v.version"
            " WHERE v.org_id = %s AND v.workflow_id = %s ORDER BY (d.id IS NOT NULL) DESC, v.version DESC LIMIT 1",
            (environment_id, org_id, workflow["id"]),
        ).fetchone()

    # -- deployments -----------------------------------------------------------

    def deploy(self, org_id: str, ref: str, environment: str, number: int, *, deployed_by: str | None = None) -> dict[str, Any]:
        """Make version ``number`` the one that runs in ``environment`` (id or slug); returns the deployment."""
        workflow = self._lock(org_id, ref)
        if workflow["status"] == "archived":
            raise Conflict("workflow", "status", f"{workflow['key']!r} is archived")
        self.version(org_id, workflow["id"], number)
        env = Environments(self.tx).get(org_id, environment)
        self.tx.execute(
            "INSERT INTO deployments (org_id, id, workflow_id, environment_id, version, deployed_by)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (org_id, workflow_id, environment_id)"
            " DO UPDATE SET version = EXCLUDED.version, deployed_by = EXCLUDED.deployed_by, deployed_at = now()",
            (org_id, new_id("dep"), workflow["id"], env["id"], number, deployed_by),
        )
        Schedules(self.tx).sync(org_id, workflow_id=workflow["id"])
        return next(d for d in self.deployments(org_id, workflow["id"]) if d["environment_id"] == env["id"])

    def deployments(self, org_id: str, workflow_id: str) -> list[dict[str, Any]]:
        """The deployments of workflow ``workflow_id`` (an id), by environment slug."""
        return self.tx.execute(
            "SELECT d.id, d.workflow_id, d.environment_id, e.slug AS environment_slug, d.version, d.deployed_by,"
            " d.deployed_at FROM deployments d JOIN environments e ON e.org_id = d.org_id AND e.id = d.environment_id"
            " WHERE d.org_id = %s AND d.workflow_id = %s ORDER BY e.slug",
            (org_id, workflow_id),
        ).fetchall()

    def undeploy(self, org_id: str, ref: str, environment: str) -> None:
        """Remove the deployment of workflow ``ref`` from ``environment``; ``NotFound`` when there is none."""
        workflow = self._lock(org_id, ref)
        env = Environments(self.tx).get(org_id, environment)
        gone = self.tx.execute(
            "DELETE FROM deployments WHERE org_id = %s AND workflow_id = %s AND environment_id = %s RETURNING id",
            (org_id, workflow["id"], env["id"]),
        ).fetchone()
        if gone is None:
            raise NotFound("deployment", f"{workflow['key']}@{env['slug']}")

    # -- internals -------------------------------------------------------------

    def _row(self, org_id: str, ref: str) -> dict[str, Any]:
        row = self.tx.execute(
            "SELECT * FROM workflows WHERE org_id = %s AND (id = %s OR key = %s)", (org_id, ref, ref)
        ).fetchone()
        if row is None:
            raise NotFound("workflow", ref)
        return row

    def _lock(self, org_id: str, ref: str) -> dict[str, Any]:
        row = self.tx.execute(
            "SELECT * FROM workflows WHERE org_id = %s AND (id = %s OR key = %s) FOR UPDATE", (org_id, ref, ref)
        ).fetchone()
        if row is None:
            raise NotFound("workflow", ref)
        return row


class Triggers:
    """Triggers attached to workflows: stored configuration (``config`` is the caller's, validated upstream)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(self, org_id: str, workflow_ref: str, kind: str, config: dict[str, Any], *, enabled: bool = True,
               trigger_id: str | None = None) -> dict[str, Any]:
        """Attach a trigger of ``kind`` to workflow ``workflow_ref`` (id or key)."""
        _check("trigger", "kind", kind, TRIGGER_KINDS)
        workflow = Workflows(self.tx)._row(org_id, workflow_ref)
        try:
            row = self.tx.execute(
                "INSERT INTO triggers (org_id, id, workflow_id, kind, config, enabled) VALUES (%s, %s, %s, %s, %s, %s)"
                " RETURNING *",
                (org_id, trigger_id or new_id("trg"), workflow["id"], kind, Jsonb(config), enabled),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("trigger", "id", trigger_id) from exc
        if kind == "schedule":
            Schedules(self.tx).sync(org_id, workflow_id=workflow["id"])
        return row

    def get(self, org_id: str, trigger_id: str) -> dict[str, Any]:
        row = self.tx.execute("SELECT * FROM triggers WHERE org_id = %s AND id = %s", (org_id, trigger_id)).fetchone()
        if row is None:
            raise NotFound("trigger", trigger_id)
        return row

    def list(self, org_id: str, query: ListQuery, *, workflow_ref: str | None = None, kind: str | None = None,
             enabled: bool | None = None) -> Page:
        """Triggers (sort: created_at, updated_at), optionally of one workflow (id or key)."""
        _check("trigger", "kind", kind, TRIGGER_KINDS)
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if workflow_ref:
            filters.add("workflow_id = %(wid)s", wid=Workflows(self.tx)._row(org_id, workflow_ref)["id"])
        if kind:
            filters.add("kind = %(kind)s", kind=kind)
        if enabled is not None:
            filters.add("enabled = %(enabled)s", enabled=enabled)
        return fetch_page(self.tx, "trigger", "triggers", query, {"created_at": "created_at", "updated_at": "updated_at"}, filters)

    def update(self, org_id: str, trigger_id: str, *, config: dict[str, Any] | None = None,
               enabled: bool | None = None) -> dict[str, Any]:
        """Replace the config and/or switch the trigger on or off."""
        self.get(org_id, trigger_id)
        row = self.tx.execute(
            "UPDATE triggers SET config = coalesce(%s, config), enabled = coalesce(%s, enabled), updated_at = now()"
            " WHERE org_id = %s AND id = %s RETURNING *",
            (Jsonb(config) if config is not None else None, enabled, org_id, trigger_id),
        ).fetchone()
        if row["kind"] == "schedule":
            Schedules(self.tx).sync(org_id, workflow_id=row["workflow_id"])
        return row

    def delete(self, org_id: str, trigger_id: str) -> None:
        gone = self.tx.execute(
            "DELETE FROM triggers WHERE org_id = %s AND id = %s RETURNING id", (org_id, trigger_id)
        ).fetchone()
        if gone is None:
            raise NotFound("trigger", trigger_id)


class Executions:
    """Runs of workflows for customers. A customer-bound transaction sees only that customer's."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def start(self, org_id: str, *, customer_id: str, workflow_id: str, version: int, dry_run: bool,
              input: Any, tier: str = "instant", triggered_by: str = "manual", trigger: Any = None,
              status: str = "running", owner: str | None = None, rerun_of: str | None = None,
              queue_partition: str | None = None, coalesce: bool = False) -> dict[str, Any]:
        """Record a run: ``running`` inline in process ``owner`` (see ``fail_orphaned``), ``queued``
        inline in ``owner`` (waiting its turn, see ``take_turn``), or ``queued`` for a durable
        worker (no owner; ``queue_partition`` is the durable queue's partition it waits in).
        ``version`` 0 means the draft; ``trigger`` is what fired it (a webhook's payload), kept for
        the worker that runs it (see ``claim``), not returned; ``rerun_of`` the execution it re-runs.

        With ``coalesce``, when another run of the workflow for the customer is already ``queued``,
        this one is recorded ``cancelled`` (error code ``coalesced``, ``into`` naming that run)
        instead: the check and the insert are serialized per workflow and customer."""
        _check("execution", "tier", tier, EXECUTION_TIERS)
        _check("execution", "triggered_by", triggered_by, TRIGGERED_BY)
        _check("execution", "status", status, ("queued", "running"))
        error = None
        if coalesce:
            self._lock_turns(org_id, customer_id, workflow_id)
            waiting = self.tx.execute(
                "SELECT id FROM executions WHERE org_id = %s AND customer_id = %s AND workflow_id = %s"
                " AND status = 'queued' AND NOT dry_run ORDER BY started_at, id LIMIT 1",
                (org_id, customer_id, workflow_id),
            ).fetchone()
            if waiting is not None:
                status = "cancelled"
                error = {"code": COALESCED, "step": None, "into": waiting["id"],
                         "message": f"coalesced into execution {waiting['id']}, which was already waiting to run"}
        try:
            return self.tx.execute(
                "INSERT INTO executions (org_id, id, customer_id, workflow_id, version, dry_run, status, input, tier,"
                " triggered_by, trigger, owner, rerun_of, queue_partition, error, finished_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " CASE WHEN %s = 'cancelled' THEN now() END)"
                f" RETURNING {_EXECUTION_DETAIL}",
                (org_id, new_id("exe"), customer_id, workflow_id, version, dry_run, status, Jsonb(input), tier,
                 triggered_by, Jsonb(trigger) if trigger is not None else None, owner, rerun_of, queue_partition,
                 Jsonb(error) if error is not None else None, status),
            ).fetchone()
        except ForeignKeyViolation as exc:
            raise NotFound("customer", customer_id) from exc

    def _lock_turns(self, org_id: str, customer_id: str, workflow_id: str) -> None:
        # Serializes, per workflow and customer, the decisions that count runs (coalescing, turns),
        # for the rest of the transaction.
        self.tx.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 10))",
                        (f"{org_id}/{customer_id}/{workflow_id}",))

    def take_turn(self, org_id: str, execution_id: str, limit: int) -> dict[str, Any]:
        """Start execution ``execution_id`` (``queued`` inline, waiting its turn) when fewer than
        ``limit`` runs of its workflow for its customer are ahead of it: running, or queued before
        it (by start time, then id). Returns its row: ``running`` when it got its turn, still
        ``queued`` when it must wait, or finished (cancelled while it waited). Raises ``NotFound``.

        Decisions are serialized per workflow and customer, so at most ``limit`` runs hold a turn."""
        row = self.tx.execute(
            "SELECT customer_id, workflow_id FROM executions WHERE org_id = %s AND id = %s", (org_id, execution_id)
        ).fetchone()
        if row is None:
            raise NotFound("execution", execution_id)
        self._lock_turns(org_id, row["customer_id"], row["workflow_id"])
        self.tx.execute(
            "UPDATE executions e SET status = 'running', updated_at = now() WHERE e.org_id = %(org)s AND e.id = %(id)s"
            " AND e.status = 'queued' AND (SELECT count(*) FROM executions o WHERE o.org_id = e.org_id"
            " AND o.customer_id = e.customer_id AND o.workflow_id = e.workflow_id AND o.id <> e.id AND NOT o.dry_run"
            " AND (o.status = 'running' OR (o.status = 'queued' AND (o.started_at, o.id) < (e.started_at, e.id))))"
            " < %(limit)s",
            {"org": org_id, "id": execution_id, "limit": limit},
        )
        return self.get(org_id, execution_id)

    def cancel(self, org_id: str, execution_id: str, *, by: str | None = None) -> dict[str, Any]:
        """Mark a ``queued`` or ``running`` execution ``cancelled`` (error code ``cancelled``) and
        return it; whoever runs it stops (see ``runtime.Runs.cancel``). Raises ``NotFound`` and
        ``Conflict`` (409) for a finished execution."""
        error = {"code": CANCELLED, "step": None, "message": f"cancelled by {by}" if by else "cancelled"}
        row = self.tx.execute(
            "UPDATE executions SET status = 'cancelled', error = %s, finished_at = now(), updated_at = now()"
            f" WHERE org_id = %s AND id = %s AND status IN ('queued', 'running') RETURNING {_EXECUTION_DETAIL}, owner",
            (Jsonb(error), org_id, execution_id),
        ).fetchone()
        if row is None:
            current = self.get(org_id, execution_id)
            raise Conflict("execution", "status", f"execution {execution_id!r} is {current['status']}; "
                                                    "only a queued or running execution can be cancelled")
        return row

    def cancelled_among(self, org_id: str, execution_ids: list[str]) -> list[str]:
        """Which of ``execution_ids`` are ``cancelled`` (a runner in another process asks)."""
        rows = self.tx.execute(
            "SELECT id FROM executions WHERE org_id = %s AND id = ANY(%s) AND status = 'cancelled'",
            (org_id, list(execution_ids)),
        ).fetchall()
        return sorted(row["id"] for row in rows)

    def control(self, org_id: str, execution_id: str) -> dict[str, Any]:
        """What running, cancelling and re-running an execution need beyond ``get``: its ``trigger``,
        ``owner``, ``queue_partition`` and run ``record``. Raises ``NotFound``."""
        row = self.tx.execute(
            f"SELECT {_EXECUTION_DETAIL}, trigger, owner, queue_partition, record FROM executions"
            " WHERE org_id = %s AND id = %s", (org_id, execution_id)
        ).fetchone()
        if row is None:
            raise NotFound("execution", execution_id)
        return row

    def claim(self, org_id: str, execution_id: str) -> dict[str, Any]:
        """Mark a queued execution ``running`` (a durable worker took it; again after a recovery:
        a running one stays running). Returns the row with its ``trigger``, whatever its status, so
        a worker that finds it finished or cancelled leaves it be. Raises ``NotFound``."""
        row = self.tx.execute(
            "UPDATE executions SET status = CASE WHEN status = 'queued' THEN 'running' ELSE status END,"
            f" updated_at = now() WHERE org_id = %s AND id = %s RETURNING {_EXECUTION_DETAIL}, trigger, carried",
            (org_id, execution_id),
        ).fetchone()
        if row is None:
            raise NotFound("execution", execution_id)
        return row

    def escalate(self, org_id: str, execution_id: str, *, from_tier: str, to_tier: str, reason: str,
                 carried: list[dict[str, Any]] | None = None, queue_partition: str | None = None) -> dict[str, Any]:
        """Move a ``running`` execution of tier ``from_tier`` to ``to_tier`` (it timed out and its
        workflow escalates) and append ``{"from", "to", "at", "reason"}`` to its ``escalations``.
        ``queue_partition`` (an Instant run handed to a durable worker): it becomes ``queued`` there,
        without an owner, with ``carried`` the calls it completed. Conditional on the tier, so a
        repeat after a lost worker changes nothing; returns the row as it is then. Raises
        ``NotFound``."""
        _check("execution", "tier", to_tier, EXECUTION_TIERS)
        entry = {"from": from_tier, "to": to_tier, "reason": reason}
        self.tx.execute(
            "UPDATE executions SET tier = %s, escalations = escalations || jsonb_build_array(%s::jsonb"
            " || jsonb_build_object('at', now())),"
            " status = CASE WHEN %s::text IS NULL THEN status ELSE 'queued' END,"
            " owner = CASE WHEN %s::text IS NULL THEN owner END,"
            " queue_partition = coalesce(%s, queue_partition), carried = coalesce(%s, carried), updated_at = now()"
            " WHERE org_id = %s AND id = %s AND tier = %s AND status = 'running'",
            (to_tier, Jsonb(entry), queue_partition, queue_partition, queue_partition,
             Jsonb(_storable(carried)) if carried is not None else None, org_id, execution_id, from_tier),
        )
        return self.get(org_id, execution_id)

    def finish(self, org_id: str, execution_id: str, *, status: str, output: Any = None, error: Any = None,
               trace: list[Any] | None = None, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record the outcome of a run: ``completed``, ``failed``, ``timeout`` or ``cancelled``, its
        output or error, its trace and its run record (what a replay needs; not returned by
        ``get``, see ``record``).

        They hold what third-party APIs answered, so text jsonb cannot store (a NUL, an unpaired
        surrogate) is replaced by U+FFFD rather than leave the run unrecorded.
        """
        _check("execution", "status", status, FINISHED_STATUSES)
        output, error, trace, record = _storable(output), _storable(error), _storable(trace), _storable(record)
        # A cancelled execution stays cancelled (its runner may finish the call it was in); it
        # keeps the trace and record of what it did before it stopped.
        row = self.tx.execute(
            "UPDATE executions SET status = CASE WHEN status = 'cancelled' THEN status ELSE %s END,"
            " output = CASE WHEN status = 'cancelled' THEN NULL ELSE %s END,"
            " error = CASE WHEN status = 'cancelled' THEN error ELSE %s END, trace = %s, record = %s,"
            " finished_at = coalesce(finished_at, now()),"
            f" updated_at = now() WHERE org_id = %s AND id = %s RETURNING {_EXECUTION_DETAIL}",
            (status, Jsonb(output), Jsonb(error) if error is not None else None, Jsonb(trace or []),
             Jsonb(record) if record is not None else None, org_id, execution_id),
        ).fetchone()
        if row is None:
            raise NotFound("execution", execution_id)
        return row

    def get(self, org_id: str, execution_id: str) -> dict[str, Any]:
        """One execution with its trace (without its run record)."""
        row = self.tx.execute(
            f"SELECT {_EXECUTION_DETAIL} FROM executions WHERE org_id = %s AND id = %s", (org_id, execution_id)
        ).fetchone()
        if row is None:
            raise NotFound("execution", execution_id)
        return row

    def record(self, org_id: str, execution_id: str) -> dict[str, Any] | None:
        """The run record stored with execution ``execution_id`` (None for one still running, or
        recorded before records were kept). Raises ``NotFound``."""
        row = self.tx.execute(
            "SELECT record FROM executions WHERE org_id = %s AND id = %s", (org_id, execution_id)
        ).fetchone()
        if row is None:
            raise NotFound("execution", execution_id)
        return row["record"]

    def list(self, org_id: str, query: ListQuery, *, workflow_ref: str | None = None, status: str | None = None,
             dry_run: bool | None = None, customer_id: str | None = None,
             hidden_environment: str | None = None, version: int | None = None, triggered_by: str | None = None,
             started_from: datetime | None = None, started_to: datetime | None = None) -> Page:
        """Executions without traces (sort: started_at), leaving out the customers of environment
        ``hidden_environment`` (a slug). ``started_from`` (inclusive) and ``started_to`` (exclusive)
        bound ``started_at``; ``InvalidInput`` (field ``from``) when the range is empty."""
        _check("execution", "status", status, EXECUTION_STATUSES)
        _check("execution", "triggered_by", triggered_by, TRIGGERED_BY)
        filters = Filters()
        add_time_range(filters, "execution", "started_at", started_from, started_to)
        if version is not None:
            filters.add("version = %(version)s", version=version)
        if triggered_by:
            filters.add("triggered_by = %(triggered_by)s", triggered_by=triggered_by)
        filters.add("org_id = %(org)s", org=org_id)
        if workflow_ref:
            # A filter, not a lookup: an unknown workflow lists nothing.
            filters.add(
                "workflow_id IN (SELECT w.id FROM workflows w WHERE w.org_id = %(org)s AND (w.id = %(wref)s OR w.key = %(wref)s))",
                wref=workflow_ref,
            )
        if status:
            filters.add("status = %(status)s", status=status)
        if dry_run is not None:
            filters.add("dry_run = %(dry)s", dry=dry_run)
        if customer_id:
            filters.add("customer_id = %(customer)s", customer=customer_id)
        if hidden_environment:
            filters.add("customer_id NOT IN " + CUSTOMERS_OF_ENVIRONMENT, hidden_env=hidden_environment)
        return fetch_page(self.tx, "execution", "executions", query, {"started_at": "started_at"}, filters,
                          columns=_EXECUTION_SUMMARY)
