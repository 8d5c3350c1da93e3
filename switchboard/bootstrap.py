"""Creating an organization from nothing: the organization, its first API key, a first customer.

Used by ``switchboard org create``/``key create``/``customer create`` and by the first start of
``switchboard run`` on an empty data directory, which writes the three header values to
``<data dir>/dev-credentials.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import store

DEV_CREDENTIALS_FILE = "dev-credentials.json"


@dataclass(frozen=True)
class DevCredentials:
    """The values of the three headers a request needs."""

    account_id: str  # x-fastn-account-id
    access_key: str = field(repr=False)  # x-fastn-access-key: a secret, kept out of reprs and tracebacks
    tenant_id: str  # x-fastn-account-tenant-id


def create_organization(db: store.Database, name: str, *, timezone: str = "UTC") -> dict:
    """Create an organization with the default environments; returns its row."""
    org_id = store.new_id("org")
    with db.tenant(org_id) as tx:
        return store.Organizations(tx).create(org_id, name, timezone=timezone)


def create_api_key(
    db: store.Database, org_id: str, name: str, *, kind: str = "live", role_id: str = "owner", customer_id: str | None = None
) -> tuple[dict, str]:
    """Create an API key in ``org_id``; returns its row and the key (shown only now)."""
    with db.tenant(org_id) as tx:
        store.Organizations(tx).get(org_id)
        return store.ApiKeys(tx).create(org_id, name, kind=kind, role_id=role_id, customer_id=customer_id, created_by="cli")


def create_customer(db: store.Database, org_id: str, name: str, *, environment: str = "dev", customer_id: str | None = None) -> dict:
    """Create a customer of ``org_id`` in ``environment`` (id or slug)."""
    with db.tenant(org_id) as tx:
        store.Organizations(tx).get(org_id)
        return store.Customers(tx).create(org_id, name=name, environment_id=environment, customer_id=customer_id)


def bootstrap_local(db: store.Database, data_dir: Path) -> DevCredentials | None:
    """On an empty data directory, create a local organization, a Live owner key and a customer,
    and write them to ``<data_dir>/dev-credentials.json`` (mode 0600). Returns them, or None when
    the file exists already (not the first start)."""
    path = data_dir / DEV_CREDENTIALS_FILE
    if path.exists():
        return None
    org = create_organization(db, "Local organization")
    _, key = create_api_key(db, org["id"], "local development", kind="live", role_id="owner")
    customer = create_customer(db, org["id"], "Local customer", environment="dev", customer_id="local-customer")
    credentials = DevCredentials(account_id=org["id"], access_key=key, tenant_id=customer["id"])
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(credentials), handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)
    return credentials
