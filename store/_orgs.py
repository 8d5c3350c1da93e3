"""Organizations, their environments and their customers (the builder's end users)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from store._ids import CLIENT_ID_PATTERN, new_id
from store._paging import Filters, ListQuery, Page, fetch_page
from store._schedules import Schedules
from psycopg.errors import ForeignKeyViolation, UniqueViolation

from store.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

DEFAULT_ENVIRONMENTS = (("dev", "Development"), ("staging", "Staging"), ("production", "Production"))
RESIDENCIES = ("US", "EU", "APAC")


ORG_SETTINGS = ("name", "timezone", "email_domains", "auto_approve")


def taken(resource: str, field: str, value: Any) -> Conflict:
    """The error for a unique ``field`` whose ``value`` another row of this tenant has."""
    return Conflict(resource, field, f"{value!r} is already taken")


class Organizations:
    """The organization of the current transaction (row-level security shows no other)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(self, org_id: str, name: str, *, timezone: str = "UTC", plan: str = "free") -> dict[str, Any]:
        """Create organization ``org_id`` (the transaction must be scoped to it) with the default
        environments dev, staging and production. Returns the organization row."""
        row = self.tx.execute(
            "INSERT INTO organizations (id, name, timezone, plan) VALUES (%s, %s, %s, %s) RETURNING *",
            (org_id, name, timezone, plan),
        ).fetchone()
        environments = Environments(self.tx)
        for slug, label in DEFAULT_ENVIRONMENTS:
            environments.create(org_id, slug, label)
        return row

    def get(self, org_id: str) -> dict[str, Any]:
        """The organization; ``NotFound`` when it does not exist or is not this transaction's."""
        row = self.tx.execute("SELECT * FROM organizations WHERE id = %s", (org_id,)).fetchone()
        if row is None:
            raise NotFound("organization", org_id)
        return row

    def update(self, org_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the general settings named in ``ORG_SETTINGS``; returns the updated row."""
        unknown = set(changes) - set(ORG_SETTINGS) - {"onboarding"}
        if unknown:
            raise InvalidInput("organization", sorted(unknown)[0], "is not a setting")
        if not changes:
            return self.get(org_id)
        assignments = ", ".join(f"{column} = %({column})s" for column in changes)
        params = {k: Jsonb(v) if k == "onboarding" else v for k, v in changes.items()}
        row = self.tx.execute(
            f"UPDATE organizations SET {assignments}, updated_at = now() WHERE id = %(_id)s RETURNING *",
            {**params, "_id": org_id},
        ).fetchone()
        if row is None:
            raise NotFound("organization", org_id)
        if "timezone" in changes:
            Schedules(self.tx).sync(org_id)  # wall-clock schedules read in the organization's zone move with it
        return row


class Environments:
    """An organization's environments (dev, staging, production, and any added)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(self, org_id: str, slug: str, name: str) -> dict[str, Any]:
        """Add environment ``slug``; ``Conflict`` if the organization has one already."""
        try:
            return self.tx.execute(
                "INSERT INTO environments (org_id, id, slug, name) VALUES (%s, %s, %s, %s) RETURNING *",
                (org_id, new_id("env"), slug, name),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("environment", "slug", slug) from exc

    def get(self, org_id: str, ref: str) -> dict[str, Any]:
        """The environment with id or slug ``ref``."""
        row = self.tx.execute(
            "SELECT * FROM environments WHERE org_id = %s AND (id = %s OR slug = %s)", (org_id, ref, ref)
        ).fetchone()
        if row is None:
            raise NotFound("environment", ref)
        return row

    def list(self, org_id: str, query: ListQuery) -> Page:
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        return fetch_page(self.tx, "environment", "environments", query, {"created_at": "created_at", "slug": "slug"}, filters)

    def delete(self, org_id: str, ref: str) -> None:
        """Delete an environment that no customer, deployment or secret uses (``Conflict`` otherwise:
        deleting one must not take stored secrets with it)."""
        environment = self.get(org_id, ref)
        secrets = self.tx.execute(
            "SELECT count(*) AS n FROM secrets WHERE org_id = %s AND environment_id = %s", (org_id, environment["id"])
        ).fetchone()["n"]
        if secrets:
            raise Conflict("environment", None, f"{ref!r} still has {secrets} secret(s); delete them first")
        try:
            self.tx.execute("DELETE FROM environments WHERE org_id = %s AND id = %s", (org_id, environment["id"]))
        except ForeignKeyViolation as exc:
            raise Conflict("environment", None, f"{ref!r} still has customers or deployments") from exc


class Customers:
    """End customers of an organization; each lives in one environment."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(
        self,
        org_id: str,
        *,
        name: str,
        environment_id: str,
        customer_id: str | None = None,
        tier: str = "free",
        residency: str = "US",
        metadata: dict[str, Any] | None = None,
        quota_overrides: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a customer; ``customer_id`` may be the builder's own id (``CLIENT_ID_PATTERN``)."""
        if customer_id is not None and not CLIENT_ID_PATTERN.match(customer_id):
            raise InvalidInput("customer", "id", f"must match {CLIENT_ID_PATTERN.pattern}")
        if residency not in RESIDENCIES:
            raise InvalidInput("customer", "residency", f"must be one of {', '.join(RESIDENCIES)}")
        environment = Environments(self.tx).get(org_id, environment_id)
        customer_id = customer_id or new_id("cus")
        try:
            row = self.tx.execute(
                "INSERT INTO customers (org_id, id, environment_id, name, tier, residency, metadata, quota_overrides) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    org_id, customer_id, environment["id"], name, tier, residency,
                    Jsonb(metadata or {}), Jsonb(quota_overrides or {}),
                ),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("customer", "id", customer_id) from exc
        Schedules(self.tx).sync(org_id, customer_id=customer_id)  # the workflows scheduled in its environment
        return row

    def get(self, org_id: str, customer_id: str) -> dict[str, Any]:
        row = self.tx.execute(
            "SELECT * FROM customers WHERE org_id = %s AND id = %s", (org_id, customer_id)
        ).fetchone()
        if row is None:
            raise NotFound("customer", customer_id)
        return row

    def list(
        self,
        org_id: str,
        query: ListQuery,
        *,
        environment_id: str | None = None,
        tier: str | None = None,
        residency: str | None = None,
        status: str | None = None,
        search: str | None = None,
        hidden_environment: str | None = None,
    ) -> Page:
        """Customers, filtered; those of environment ``hidden_environment`` (a slug) left out."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if hidden_environment:
            filters.add("environment_id NOT IN (SELECT e.id FROM environments e WHERE e.org_id = %(org)s"
                        " AND e.slug = %(hidden_env)s)", hidden_env=hidden_environment)
        if environment_id:
            environment = Environments(self.tx).get(org_id, environment_id)
            filters.add("environment_id = %(env)s", env=environment["id"])
        if tier:
            filters.add("tier = %(tier)s", tier=tier)
        if residency:
            filters.add("residency = %(residency)s", residency=residency)
        if status:
            filters.add("status = %(status)s", status=status)
        if search:
            filters.add_search(search, "name", "id")
        sortable = {"created_at": "created_at", "name": "name", "id": "id"}
        return fetch_page(self.tx, "customer", "customers", query, sortable, filters)

    def update(self, org_id: str, customer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change ``name``, ``tier``, ``residency``, ``status``, ``metadata`` or ``quota_overrides``."""
        allowed = {"name", "tier", "residency", "status", "metadata", "quota_overrides"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput("customer", sorted(unknown)[0], "cannot be changed")
        if "residency" in changes and changes["residency"] not in RESIDENCIES:
            raise InvalidInput("customer", "residency", f"must be one of {', '.join(RESIDENCIES)}")
        if not changes:
            return self.get(org_id, customer_id)
        params = {k: Jsonb(v) if k in ("metadata", "quota_overrides") else v for k, v in changes.items()}
        assignments = ", ".join(f"{column} = %({column})s" for column in changes)
        row = self.tx.execute(
            f"UPDATE customers SET {assignments}, updated_at = now() WHERE org_id = %(_org)s AND id = %(_id)s RETURNING *",
            {**params, "_org": org_id, "_id": customer_id},
        ).fetchone()
        if row is None:
            raise NotFound("customer", customer_id)
        if "status" in changes:
            Schedules(self.tx).sync(org_id, customer_id=customer_id)  # a suspended customer's schedules stop
        return row

    def delete(self, org_id: str, customer_id: str) -> None:
        """Delete a customer and everything that is theirs (connections, executions, usage)."""
        self.tx.execute("DELETE FROM api_keys WHERE org_id = %s AND customer_id = %s", (org_id, customer_id))
        deleted = self.tx.execute(
            "DELETE FROM customers WHERE org_id = %s AND id = %s RETURNING id", (org_id, customer_id)
        ).fetchone()
        if deleted is None:
            raise NotFound("customer", customer_id)
