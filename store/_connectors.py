"""Connectors: an organization's app descriptions, as numbered versions of a connector spec.

A connector is identified by ``key`` (the spec's ``id``, unique per organization). Its
versions are numbered 1, 2, 3...; each starts as a draft and may be published. A published
version is immutable: nothing here changes its spec or state again. Specs are stored as the
JSON the caller validated (``api/`` validates with the engine's ``ConnectorSpec``); the
stored spec's ``version`` is set to the version number.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from psycopg.errors import ForeignKeyViolation, UniqueViolation
from psycopg.types.json import Jsonb

from store._ids import new_id
from store._orgs import taken
from store._paging import Filters, ListQuery, Page, fetch_page
from store.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

CONNECTOR_STATUSES = ("draft", "published", "archived")
VERSION_STATES = ("draft", "published")

_SUMMARY = (
    "c.*, (SELECT max(v.version) FROM connector_versions v WHERE v.org_id = c.org_id AND v.connector_id = c.id)"
    " AS latest_version,"
    " (SELECT max(v.version) FROM connector_versions v WHERE v.org_id = c.org_id AND v.connector_id = c.id"
    " AND v.state = 'published') AS published_version"
)
_VERSION_COLUMNS = "org_id, id, connector_id, version, state, created_by, created_at, published_at"


def _spec_key(spec: dict[str, Any]) -> str:
    key = spec.get("id")
    if not isinstance(key, str) or not key:
        raise InvalidInput("connector", "spec/id", "is required")
    return key


class Connectors:
    """An organization's connectors and their versions."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    # -- connectors ------------------------------------------------------------

    def create(self, org_id: str, spec: dict[str, Any], *, created_by: str | None = None) -> dict[str, Any]:
        """Create connector ``spec["id"]`` with ``spec`` as its draft version 1.

        Returns the connector (as :meth:`get`). ``Conflict`` (field ``key``) when the
        organization has a connector with that key.
        """
        key = _spec_key(spec)
        connector_id = new_id("cnr")
        try:
            self.tx.execute(
                "INSERT INTO connectors (org_id, id, key, name, created_by) VALUES (%s, %s, %s, %s, %s)",
                (org_id, connector_id, key, spec.get("name") or key, created_by),
            )
        except UniqueViolation as exc:
            raise taken("connector", "key", key) from exc
        self._insert_version(org_id, connector_id, 1, spec, created_by)
        return self.get(org_id, connector_id)

    def get(self, org_id: str, ref: str) -> dict[str, Any]:
        """The connector with id or key ``ref``, with ``latest_version`` and ``published_version``
        (the highest published number, or None) and ``published_versions`` (all of them)."""
        row = self.tx.execute(
            f"SELECT {_SUMMARY} FROM connectors c WHERE c.org_id = %s AND (c.id = %s OR c.key = %s)",
            (org_id, ref, ref),
        ).fetchone()
        if row is None:
            raise NotFound("connector", ref)
        row["published_versions"] = [
            r["version"]
            for r in self.tx.execute(
                "SELECT version FROM connector_versions WHERE org_id = %s AND connector_id = %s AND state = 'published'"
                " ORDER BY version",
                (org_id, row["id"]),
            )
        ]
        return row

    def list(self, org_id: str, query: ListQuery, *, status: str | None = None, search: str | None = None) -> Page:
        """Connectors (sort: created_at, key, name); ``search`` matches key and name."""
        filters = Filters()
        filters.add("c.org_id = %(org)s", org=org_id)
        if status:
            if status not in CONNECTOR_STATUSES:
                raise InvalidInput("connector", "status", f"must be one of {', '.join(CONNECTOR_STATUSES)}")
            filters.add("c.status = %(status)s", status=status)
        if search:
            filters.add_search(search, "c.key", "c.name")
        sortable = {"created_at": "c.created_at", "key": "c.key", "name": "c.name"}
        return fetch_page(self.tx, "connector", "connectors c", query, sortable, filters, id_column="c.id", columns=_SUMMARY)

    def archive(self, org_id: str, ref: str) -> dict[str, Any]:
        """Mark the connector archived (its versions and connections stay)."""
        connector = self.get(org_id, ref)
        self.tx.execute(
            "UPDATE connectors SET status = 'archived', updated_at = now() WHERE org_id = %s AND id = %s",
            (org_id, connector["id"]),
        )
        return self.get(org_id, connector["id"])

    def delete(self, org_id: str, ref: str) -> None:
        """Delete the connector and its versions; ``Conflict`` while any connection uses it."""
        connector = self.get(org_id, ref)
        used = self.tx.execute(
            "SELECT count(*) AS n FROM connections WHERE org_id = %s AND connector_id = %s", (org_id, connector["id"])
        ).fetchone()["n"]
        if used:
            raise Conflict("connector", None, f"{connector['key']!r} is used by {used} connection(s); archive it instead")
        try:
            self.tx.execute("DELETE FROM connectors WHERE org_id = %s AND id = %s", (org_id, connector["id"]))
        except ForeignKeyViolation as exc:
            raise Conflict("connector", None, f"{connector['key']!r} is still in use; archive it instead") from exc

    # -- versions --------------------------------------------------------------

    def add_version(self, org_id: str, ref: str, spec: dict[str, Any], *, created_by: str | None = None) -> dict[str, Any]:
        """Add ``spec`` as the next draft version of connector ``ref``; ``spec["id"]`` must be its key."""
        connector = self._lock(org_id, ref)
        key = _spec_key(spec)
        if key != connector["key"]:
            raise InvalidInput("connector", "spec/id", f"must be the connector's key {connector['key']!r}, not {key!r}")
        number = self.tx.execute(
            "SELECT coalesce(max(version), 0) + 1 AS n FROM connector_versions WHERE org_id = %s AND connector_id = %s",
            (org_id, connector["id"]),
        ).fetchone()["n"]
        self.tx.execute(
            "UPDATE connectors SET name = %s, updated_at = now() WHERE org_id = %s AND id = %s",
            (spec.get("name") or key, org_id, connector["id"]),
        )
        return self._insert_version(org_id, connector["id"], number, spec, created_by)

    def versions(self, org_id: str, ref: str, query: ListQuery, *, state: str | None = None) -> Page:
        """The versions of connector ``ref``, without their specs (sort: version, created_at)."""
        connector = self.get(org_id, ref)
        filters = Filters()
        filters.add("org_id = %(org)s AND connector_id = %(cid)s", org=org_id, cid=connector["id"])
        if state:
            if state not in VERSION_STATES:
                raise InvalidInput("connector_version", "state", f"must be one of {', '.join(VERSION_STATES)}")
            filters.add("state = %(state)s", state=state)
        sortable = {"version": "version", "created_at": "created_at"}
        return fetch_page(self.tx, "connector_version", "connector_versions", query, sortable, filters,
                          columns=_VERSION_COLUMNS)

    def version(self, org_id: str, ref: str, number: int) -> dict[str, Any]:
        """Version ``number`` of connector ``ref``, spec included."""
        connector = self.get(org_id, ref)
        row = self.tx.execute(
            "SELECT * FROM connector_versions WHERE org_id = %s AND connector_id = %s AND version = %s",
            (org_id, connector["id"], number),
        ).fetchone()
        if row is None:
            raise NotFound("connector_version", f"{connector['key']}@{number}")
        return row

    def publish(self, org_id: str, ref: str, number: int) -> dict[str, Any]:
        """Publish draft version ``number``; ``Conflict`` when it is published already (published
        versions never change)."""
        connector = self._lock(org_id, ref)
        row = self.version(org_id, connector["id"], number)
        if row["state"] == "published":
            raise Conflict("connector_version", "state", f"version {number} is published already and cannot change")
        published = self.tx.execute(
            "UPDATE connector_versions SET state = 'published', published_at = now()"
            " WHERE org_id = %s AND id = %s AND state = 'draft' RETURNING *",
            (org_id, row["id"]),
        ).fetchone()
        self.tx.execute(
            "UPDATE connectors SET status = 'published', updated_at = now() WHERE org_id = %s AND id = %s",
            (org_id, connector["id"]),
        )
        return published

    def specs(self, org_id: str, keys: Iterable[str] | None = None, *, published_only: bool = False) -> dict[str, dict[str, Any]]:
        """The spec each connector runs with, by key: its highest published version, or (unless
        ``published_only``) its highest version when none is published. ``keys`` limits the
        connectors (default: all, archived ones excluded). Each value is the version row with its spec."""
        params: dict[str, Any] = {"org": org_id}
        condition = "c.status <> 'archived'"
        if keys is not None:
            params["keys"] = list(keys)
            condition = "c.key = ANY(%(keys)s)"
        published = "AND v.state = 'published'" if published_only else ""
        rows = self.tx.execute(
            f"SELECT DISTINCT ON (c.key) c.key, v.* FROM connectors c JOIN connector_versions v"
            f" ON v.org_id = c.org_id AND v.connector_id = c.id"
            f" WHERE c.org_id = %(org)s AND {condition} {published}"
            f" ORDER BY c.key, (v.state = 'published') DESC, v.version DESC",
            params,
        ).fetchall()
        return {row.pop("key"): row for row in rows}

    # -- internals -------------------------------------------------------------

    def _lock(self, org_id: str, ref: str) -> dict[str, Any]:
        """The connector row, locked so concurrent version numbering and publishing serialise."""
        row = self.tx.execute(
            "SELECT * FROM connectors WHERE org_id = %s AND (id = %s OR key = %s) FOR UPDATE", (org_id, ref, ref)
        ).fetchone()
        if row is None:
            raise NotFound("connector", ref)
        return row

    def _insert_version(self, org_id: str, connector_id: str, number: int, spec: dict[str, Any],
                        created_by: str | None) -> dict[str, Any]:
        try:
            return self.tx.execute(
                "INSERT INTO connector_versions (org_id, id, connector_id, version, spec, created_by)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                (org_id, new_id("cnv"), connector_id, number, Jsonb({**spec, "version": number}), created_by),
            ).fetchone()
        except UniqueViolation as exc:
            raise Conflict("connector_version", "version", f"version {number} was just created; retry") from exc
