"""``switchboard org|key|customer create``: from nothing to a working ``curl``.

Each command starts the database (embedded unless DATABASE_URL), migrates, and works as the app
role, so row-level security applies to the CLI exactly as to the API.
"""

from __future__ import annotations

import json

import click

from switchboard.commands import load_settings


def _emit(as_json: bool, data: dict, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def _store_errors():
    import store

    return store.StoreError


@click.group("org")
def org() -> None:
    """Organizations (accounts)."""


@org.command("create")
@click.argument("name")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--key/--no-key", "with_key", default=True, show_default=True, help="Also create a Live owner API key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def org_create(name: str, timezone: str, with_key: bool, as_json: bool) -> None:
    """Create an organization with environments dev, staging and production (and an owner key)."""
    from switchboard import bootstrap
    from switchboard.platform_db import open_platform

    settings = load_settings()
    with open_platform(settings) as (db, _, _):
        try:
            organization = bootstrap.create_organization(db, name, timezone=timezone)
            key = bootstrap.create_api_key(db, organization["id"], "owner key")[1] if with_key else None
        except _store_errors() as exc:
            raise click.ClickException(str(exc)) from exc
    data = {"account_id": organization["id"], "name": organization["name"]}
    text = f"organization {organization['id']} ({organization['name']})"
    if key:
        data["access_key"] = key
        text += f"\nLive owner API key (shown once): {key}"
    _emit(as_json, data, text)


@click.group("key")
def key() -> None:
    """API keys."""


@key.command("create")
@click.option("--org", "org_id", required=True, help="Organization id (x-fastn-account-id).")
@click.option("--name", default="cli key", show_default=True)
@click.option("--kind", type=click.Choice(["live", "test"]), default="live", show_default=True)
@click.option("--role", "role_id", default="owner", show_default=True, help="Role id: owner, admin, developer, ...")
@click.option("--customer", "customer_id", default=None, help="Bind the key to one end customer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def key_create(org_id: str, name: str, kind: str, role_id: str, customer_id: str | None, as_json: bool) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from switchboard import bootstrap
    from switchboard.platform_db import open_platform

    settings = load_settings()
    with open_platform(settings) as (db, _, _):
        try:
            row, secret = bootstrap.create_api_key(db, org_id, name, kind=kind, role_id=role_id, customer_id=customer_id)
        except _store_errors() as exc:
            raise click.ClickException(str(exc)) from exc
    _emit(
        as_json,
        {"id": row["id"], "account_id": org_id, "access_key": secret, "kind": kind, "role": role_id},
        f"API key {row['id']} ({kind}, role {role_id}), shown once:\n{secret}",
    )


@click.group("customer")
def customer() -> None:
    """End customers (tenants of an organization)."""


@customer.command("create")
@click.option("--org", "org_id", required=True, help="Organization id (x-fastn-account-id).")
@click.option("--id", "customer_id", default=None, help="Your own id for the customer (default: generated).")
@click.option("--environment", default="production", show_default=True, help="Environment id or slug.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("name")
def customer_create(org_id: str, customer_id: str | None, environment: str, as_json: bool, name: str) -> None:
    """Create an end customer; its id is the x-fastn-account-tenant-id header value."""
    from switchboard import bootstrap
    from switchboard.platform_db import open_platform

    settings = load_settings()
    with open_platform(settings) as (db, _, _):
        try:
            row = bootstrap.create_customer(db, org_id, name, environment=environment, customer_id=customer_id)
        except _store_errors() as exc:
            raise click.ClickException(str(exc)) from exc
    _emit(as_json, {"tenant_id": row["id"], "account_id": org_id, "name": name}, f"customer {row['id']} ({name})")
