"""Hosted sandboxes' durable half: the OpenAPI document a connector was imported from, and the
seed its sandbox resets to (migration m009, ``SANDBOXES_SCHEMA``).

A sandbox's live records are kept by the process that serves it (``runtime._sandboxes``); what
must survive a restart and agree between processes is here: the document it is built from and
the seed. A reset anywhere returns to the same records.

``connections.target`` says where a connection's calls go: ``api`` (the connector's base URL)
or ``sandbox`` (the organization's hosted sandbox of the connector, never a real account).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from store._schema import APP_ROLE

if TYPE_CHECKING:
    from store._database import Tx

CONNECTION_TARGETS = ("api", "sandbox")
# The tables m009 adds (bound to the organization).
SANDBOX_TABLES = ("connector_documents", "sandbox_seeds")

_ORG = "current_setting('app.org_id', true)"

SANDBOXES_SCHEMA = f"""
CREATE TABLE connector_documents (
    org_id       text NOT NULL,
    connector_id text NOT NULL,
    document     jsonb NOT NULL,
    checksum     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, connector_id),
    FOREIGN KEY (org_id, connector_id) REFERENCES connectors(org_id, id) ON DELETE CASCADE
);
CREATE TABLE sandbox_seeds (
    org_id       text NOT NULL,
    connector_id text NOT NULL,
    seed         jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, connector_id),
    FOREIGN KEY (org_id, connector_id) REFERENCES connectors(org_id, id) ON DELETE CASCADE
);
ALTER TABLE connector_documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON connector_documents USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
ALTER TABLE sandbox_seeds ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON sandbox_seeds USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG});
GRANT SELECT, INSERT, UPDATE, DELETE ON connector_documents, sandbox_seeds TO {APP_ROLE};
ALTER TABLE connections ADD COLUMN target text NOT NULL DEFAULT 'api' CHECK (target IN ('api', 'sandbox'));
"""


def _dumps(value: Any) -> str:
    # YAML documents may hold dates; their text is what a JSON document would say.
    return json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))


class SandboxDocuments:
    """The source documents of an organization's imported connectors, and their sandboxes' seeds."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def save_document(self, org_id: str, connector_id: str, document: dict[str, Any]) -> str:
        """Keep ``document`` (the parsed OpenAPI document) as connector ``connector_id``'s source;
        returns its checksum (sha256 of its canonical JSON)."""
        text = _dumps(document)
        checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.tx.execute(
            "INSERT INTO connector_documents (org_id, connector_id, document, checksum) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (org_id, connector_id) DO UPDATE SET document = EXCLUDED.document, checksum = EXCLUDED.checksum",
            (org_id, connector_id, Jsonb(document, dumps=_dumps), checksum),
        )
        return checksum

    def checksum(self, org_id: str, connector_id: str) -> str | None:
        """The checksum of the connector's source document; None when it was not imported from one."""
        row = self.tx.execute(
            "SELECT checksum FROM connector_documents WHERE org_id = %s AND connector_id = %s", (org_id, connector_id)
        ).fetchone()
        return row["checksum"] if row else None

    def document(self, org_id: str, connector_id: str) -> dict[str, Any] | None:
        """The connector's source document; None when it was not imported from one."""
        row = self.tx.execute(
            "SELECT document FROM connector_documents WHERE org_id = %s AND connector_id = %s", (org_id, connector_id)
        ).fetchone()
        return row["document"] if row else None

    def seed(self, org_id: str, connector_id: str) -> dict[str, Any]:
        """The seed the connector's sandbox resets to ({} when none was given)."""
        row = self.tx.execute(
            "SELECT seed FROM sandbox_seeds WHERE org_id = %s AND connector_id = %s", (org_id, connector_id)
        ).fetchone()
        return row["seed"] if row else {}

    def set_seed(self, org_id: str, connector_id: str, seed: dict[str, Any]) -> None:
        """Replace the seed of the connector's sandbox."""
        self.tx.execute(
            "INSERT INTO sandbox_seeds (org_id, connector_id, seed) VALUES (%s, %s, %s)"
            " ON CONFLICT (org_id, connector_id) DO UPDATE SET seed = EXCLUDED.seed, updated_at = now()",
            (org_id, connector_id, Jsonb(seed, dumps=_dumps)),
        )
