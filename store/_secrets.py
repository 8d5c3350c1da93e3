"""Secrets: named values workflows read at run time, one set per environment, encrypted at rest.

A value is encrypted with the organization's data key under purpose ``secret:<id>``, so a
ciphertext copied onto another secret (or into another organization) does not decrypt. Rows this
repository returns never hold the value or its ciphertext; only ``values_for_run`` decrypts, for
the engine.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from psycopg.errors import UniqueViolation

from store._ids import new_id
from store._orgs import Environments, taken
from store._paging import Filters, ListQuery, Page, fetch_page
from store.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from store._crypto import Encryptor
    from store._database import Tx

# Names are what a workflow writes after ``secrets.``, so they are identifiers.
SECRET_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Values are tokens, keys and passwords, not documents.
MAX_SECRET_BYTES = 64 * 1024

_PUBLIC_COLUMNS = "org_id, id, environment_id, name, created_by, created_at, updated_at"


def secret_purpose(secret_id: str) -> str:
    """The encryption purpose of secret ``secret_id``'s value."""
    return f"secret:{secret_id}"


def _check_value(value: Any) -> bytes:
    # The reason never quotes the value: it is a secret even when it is malformed.
    if not isinstance(value, str):
        raise InvalidInput("secret", "value", "must be a string")
    data = value.encode("utf-8")
    if not data:
        raise InvalidInput("secret", "value", "must not be empty")
    if len(data) > MAX_SECRET_BYTES:
        raise InvalidInput("secret", "value", f"is longer than {MAX_SECRET_BYTES} bytes")
    return data


class Secrets:
    """An organization's secrets. Methods that write take the ``Encryptor`` (``store._crypto``)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def create(
        self,
        org_id: str,
        *,
        environment: str,
        name: str,
        value: str,
        encryptor: Encryptor,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """Store secret ``name`` in ``environment`` (id or slug); returns its metadata row.

        Raises ``InvalidInput`` (``name`` or ``value``), ``NotFound`` for an unknown environment and
        ``Conflict`` (``name``) when the environment has a secret of that name.
        """
        if not isinstance(name, str) or not SECRET_NAME_PATTERN.match(name):
            raise InvalidInput("secret", "name", f"must match {SECRET_NAME_PATTERN.pattern}")
        data = _check_value(value)
        env = Environments(self.tx).get(org_id, environment)
        secret_id = new_id("sec")
        ciphertext = encryptor.encrypt(self.tx, org_id, data, secret_purpose(secret_id))
        try:
            return self.tx.execute(
                f"INSERT INTO secrets (org_id, id, environment_id, name, ciphertext, created_by)"
                f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_PUBLIC_COLUMNS}",
                (org_id, secret_id, env["id"], name, ciphertext, created_by),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("secret", "name", name) from exc

    def update(self, org_id: str, secret_id: str, value: str, encryptor: Encryptor) -> dict[str, Any]:
        """Replace the value of ``secret_id``; returns its metadata row (``NotFound`` when absent)."""
        data = _check_value(value)
        self.get(org_id, secret_id)
        ciphertext = encryptor.encrypt(self.tx, org_id, data, secret_purpose(secret_id))
        return self.tx.execute(
            f"UPDATE secrets SET ciphertext = %s, updated_at = now() WHERE org_id = %s AND id = %s RETURNING {_PUBLIC_COLUMNS}",
            (ciphertext, org_id, secret_id),
        ).fetchone()

    def get(self, org_id: str, secret_id: str) -> dict[str, Any]:
        """The metadata of ``secret_id`` (never its value)."""
        row = self.tx.execute(
            f"SELECT {_PUBLIC_COLUMNS} FROM secrets WHERE org_id = %s AND id = %s", (org_id, secret_id)
        ).fetchone()
        if row is None:
            raise NotFound("secret", secret_id)
        return row

    def list(
        self, org_id: str, query: ListQuery, *, environment: str | None = None, search: str | None = None,
        hidden_environment: str | None = None,
    ) -> Page:
        """Metadata of secrets, filtered by ``environment`` (id or slug) and a name substring, leaving
        out those of environment ``hidden_environment`` (a slug)."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if environment:
            env = Environments(self.tx).get(org_id, environment)
            filters.add("environment_id = %(env)s", env=env["id"])
        if hidden_environment:
            filters.add("environment_id NOT IN (SELECT e.id FROM environments e WHERE e.org_id = %(org)s"
                        " AND e.slug = %(hidden_env)s)", hidden_env=hidden_environment)
        if search:
            filters.add_search(search, "name")
        sortable = {"created_at": "created_at", "updated_at": "updated_at", "name": "name"}
        return fetch_page(self.tx, "secret", "secrets", query, sortable, filters, columns=_PUBLIC_COLUMNS)

    def delete(self, org_id: str, secret_id: str) -> None:
        """Delete ``secret_id`` (``NotFound`` when absent)."""
        deleted = self.tx.execute(
            "DELETE FROM secrets WHERE org_id = %s AND id = %s RETURNING id", (org_id, secret_id)
        ).fetchone()
        if deleted is None:
            raise NotFound("secret", secret_id)

    def values_for_run(self, org_id: str, environment_id: str, encryptor: Encryptor) -> dict[str, str]:
        """Every secret of environment ``environment_id`` (id or slug), decrypted: ``{name: value}``.

        For the engine only: the result must not be logged, traced or returned. Raises
        ``NotFound`` for an unknown environment and ``DecryptionFailed`` for a damaged value.
        """
        env = Environments(self.tx).get(org_id, environment_id)
        rows = self.tx.execute(
            "SELECT id, name, ciphertext FROM secrets WHERE org_id = %s AND environment_id = %s ORDER BY name",
            (org_id, env["id"]),
        ).fetchall()
        return {
            row["name"]: encryptor.decrypt(self.tx, org_id, bytes(row["ciphertext"]), secret_purpose(row["id"])).decode("utf-8")
            for row in rows
        }
