"""Row-level security, table by table: as the app role with one tenant set for the transaction,
SQL can neither read nor change nor create another tenant's rows.

Rows are written as the owner (who is not bound by the policies), one of every table for each of
two organizations with two customers each; then every statement runs as ``switchboard_app``.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

import store
from store._schema import CUSTOMER_TABLES as M002_CUSTOMER_TABLES
from store._schema import ORG_TABLES as M002_ORG_TABLES
from store._schema_events import EVENT_TABLES
from store.errors import OutsideTenantScope
from support.platform import make_tenant


def _seed(conn: psycopg.Connection, org: str) -> None:
    q = conn.execute
    q("INSERT INTO organizations (id, name) VALUES (%s, %s)", (org, org))
    q("INSERT INTO environments (org_id, id, slug, name) VALUES (%s, 'env', 'dev', 'Dev')", (org,))
    for customer in ("c1", "c2"):
        q("INSERT INTO customers (org_id, id, environment_id, name) VALUES (%s, %s, 'env', %s)", (org, customer, customer))
    q("INSERT INTO users (org_id, id, email, role_id) VALUES (%s, 'u', %s, 'owner')", (org, f"a@{org}.test"))
    q("INSERT INTO roles (org_id, id, name, permissions) VALUES (%s, 'r', 'custom', '{}')", (org,))
    q(
        "INSERT INTO api_keys (org_id, id, name, kind, prefix, key_hash, role_id) VALUES (%s, 'k', 'k', 'live', 'sk', %s, 'owner')",
        (org, f"hash-{org}"),
    )
    q("INSERT INTO data_keys (org_id, id, wrapped, master_key_id) VALUES (%s, 'dk', 'x', 'mk')", (org,))
    q("INSERT INTO secrets (org_id, id, environment_id, name, ciphertext) VALUES (%s, 's', 'env', 'TOKEN', 'x')", (org,))
    q("INSERT INTO oauth_apps (org_id, id, connector_key, client_id, client_secret) VALUES (%s, 'o', 'hub', 'id', 'x')", (org,))
    q("INSERT INTO connectors (org_id, id, key, name) VALUES (%s, 'cn', 'hub', 'Hub')", (org,))
    q("INSERT INTO connector_versions (org_id, id, connector_id, version, spec) VALUES (%s, 'cv', 'cn', 1, '{}')", (org,))
    q("INSERT INTO connector_documents (org_id, connector_id, document, checksum) VALUES (%s, 'cn', '{}', 'x')", (org,))
    q("INSERT INTO sandbox_seeds (org_id, connector_id, seed) VALUES (%s, 'cn', '{}')", (org,))
    q("INSERT INTO workflows (org_id, id, key, name, draft) VALUES (%s, 'w', 'w', 'W', '{}')", (org,))
    q("INSERT INTO workflow_versions (org_id, id, workflow_id, version, spec) VALUES (%s, 'wv', 'w', 1, '{}')", (org,))
    q("INSERT INTO deployments (org_id, id, workflow_id, environment_id, version) VALUES (%s, 'd', 'w', 'env', 1)", (org,))
    q("INSERT INTO triggers (org_id, id, workflow_id, kind) VALUES (%s, 't', 'w', 'webhook')", (org,))
    q("INSERT INTO quota_tiers (org_id, id, name) VALUES (%s, 'qt', 'gold')", (org,))
    q("INSERT INTO rate_limits (org_id, rate_key, tat, seen) VALUES (%s, 'hub:c1', 0, 0)", (org,))
    q("INSERT INTO idempotency_keys (org_id, key, actor_id, method, path, request_hash, status) VALUES (%s, 'i', 'k', 'POST', '/', 'h', 201)", (org,))
    q(
        "INSERT INTO audit_log (org_id, actor_type, actor_id, action, resource_type, outcome) VALUES (%s, 'system', 's', 'x.y', 'x', 'success')",
        (org,),
    )
    q("INSERT INTO threads (org_id, id, graph, actor_type, actor_id) VALUES (%s, 'th', 'home', 'user', 'u')", (org,))
    q("INSERT INTO thread_runs (org_id, id, thread_id, kind, input, actor_type, actor_id)"
      " VALUES (%s, 'tr', 'th', 'message', '{}', 'user', 'u')", (org,))
    q("INSERT INTO thread_events (org_id, run_id, seq, type, data) VALUES (%s, 'tr', 1, 'done', '{}')", (org,))
    for customer in ("c1", "c2"):
        connection = f"conn-{customer}"
        q(
            "INSERT INTO connections (org_id, id, customer_id, connector_id, auth_type) VALUES (%s, %s, %s, 'cn', 'api_key')",
            (org, connection, customer),
        )
        q(
            "INSERT INTO oauth_states (org_id, id, customer_id, connection_id, code_verifier, redirect_uri, expires_at)"
            " VALUES (%s, %s, %s, %s, 'x', 'http://r', now())",
            (org, f"st-{customer}", customer, connection),
        )
        q(
            "INSERT INTO executions (org_id, id, customer_id, workflow_id, version, status) VALUES (%s, %s, %s, 'w', 1, 'completed')",
            (org, f"ex-{customer}", customer),
        )
        q(
            "INSERT INTO quota_usage (org_id, customer_id, dimension, window_start, count) VALUES (%s, %s, 'api_calls_per_day', now(), 1)",
            (org, customer),
        )
        q(
            "INSERT INTO events (org_id, id, customer_id, environment_id, source, trigger_id, workflow_id, webhook_id, status)"
            " VALUES (%s, %s, %s, 'env', 'webhook', 't', 'w', %s, 'received')",
            (org, f"ev-{customer}", customer, f"msg-{customer}"),
        )
        q(
            "INSERT INTO polls (org_id, id, workflow_id, environment_id, customer_id, connector, event, cursor)"
            " VALUES (%s, %s, 'w', 'env', %s, 'hub', 'contact_changed', '2030-01-01')",
            (org, f"pol-{customer}", customer),
        )
        q(
            "INSERT INTO poll_records (org_id, poll_id, customer_id, record_id, version) VALUES (%s, %s, %s, 'r1', 'v1')",
            (org, f"pol-{customer}", customer),
        )
        q(
            "INSERT INTO agent_usage (org_id, id, run_id, thread_id, customer_id, model, provider, counted, input_tokens,"
            " output_tokens, credits) VALUES (%s, %s, 'run', 'thr', %s, 'gpt-4o-mini', 'openai', 'reported', 10, 5, 0.0045)",
            (org, f"use-{customer}", customer),
        )
        q(
            "INSERT INTO event_waits (org_id, id, customer_id, execution_id, topic, source) VALUES (%s, %s, %s, %s, 'w1', 'webhook')",
            (org, f"wait-{customer}", customer, f"ex-{customer}"),
        )
        q(
            "INSERT INTO app_subscriptions (org_id, id, workflow_id, environment_id, customer_id, connector, event, token_hash)"
            " VALUES (%s, %s, 'w', 'env', %s, 'hub', 'contact_created', 'h')",
            (org, f"sub-{customer}", customer),
        )
    # Alerts and notifications (m014): organization rows; a delivery names an event of the first customer.
    q("INSERT INTO alert_rules (org_id, id, name, metric, threshold, window_seconds, interval_seconds)"
      " VALUES (%s, 'ar', 'r', 'error_rate', 0.5, 60, 60)", (org,))
    q("INSERT INTO alerts (org_id, id, rule_id, status, metric, operator, threshold, fired_at)"
      " VALUES (%s, 'al', 'ar', 'firing', 'error_rate', '>', 0.5, now())", (org,))
    q("INSERT INTO notification_endpoints (org_id, id, url, event_types, secret)"
      " VALUES (%s, 'ne', 'https://example.com', '{alert.fired}', 'x')", (org,))
    q("INSERT INTO notification_deliveries (org_id, id, endpoint_id, event_id, event_type, body, next_attempt_at)"
      " VALUES (%s, 'nd', 'ne', 'ev-c1', 'alert.fired', '{}', now())", (org,))
    q("INSERT INTO notification_attempts (org_id, delivery_id, attempt, at, status) VALUES (%s, 'nd', 1, now(), 'failed')",
      (org,))


# The tables of later migrations join m002's lists (which are part of m002's text and stay as shipped).
POLL_TABLES = ("polls", "poll_records")
AGENT_TABLES = ("agent_usage",)
WAIT_TABLES = ("event_waits", "app_subscriptions")
ORG_TABLES = (*M002_ORG_TABLES, *EVENT_TABLES, *POLL_TABLES, *WAIT_TABLES, *store.SANDBOX_TABLES, *store.THREAD_TABLES, *AGENT_TABLES,
              "rate_limits", *store.ALERT_TABLES)
CUSTOMER_TABLES = (*M002_CUSTOMER_TABLES, *EVENT_TABLES, *POLL_TABLES, *AGENT_TABLES, *WAIT_TABLES)


@pytest.fixture(scope="module")
def orgs(migrated_database_url: str) -> Iterator[tuple[str, str]]:
    suffix = store.new_id("rls")
    a, b = f"orgA_{suffix}", f"orgB_{suffix}"
    with psycopg.connect(migrated_database_url, autocommit=True) as owner:
        with owner.transaction():
            _seed(owner, a)
            _seed(owner, b)
    yield a, b


@pytest.fixture(scope="module")
def app(migrated_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(store.app_conninfo(migrated_database_url), autocommit=True) as conn:
        yield conn


def _as(conn: psycopg.Connection, org: str, customer: str = "") -> None:
    conn.execute("SELECT set_config('app.org_id', %s, true), set_config('app.customer_id', %s, true)", (org, customer))


ALL_TABLES = ("organizations", *ORG_TABLES)
# Ledgers the app only adds to: the audit log and the agent usage (what a model call cost).
APPEND_ONLY = ("audit_log", "agent_usage")


@pytest.mark.parametrize("table", ALL_TABLES)
def test_a_tenant_reads_only_its_own_rows(app: psycopg.Connection, orgs: tuple[str, str], table: str) -> None:
    a, b = orgs
    column = "id" if table == "organizations" else "org_id"
    with app.transaction():
        _as(app, a)
        seen = {row[0] for row in app.execute(f"SELECT {column} FROM {table} WHERE {column} IN (%s, %s)", (a, b))}
    assert seen == {a}


@pytest.mark.parametrize("table", ALL_TABLES)
def test_a_tenant_cannot_change_or_delete_another_tenants_rows(
    app: psycopg.Connection, orgs: tuple[str, str], table: str
) -> None:
    a, b = orgs
    column = "id" if table == "organizations" else "org_id"
    with app.transaction():
        _as(app, a)
        if table in APPEND_ONLY:
            # Append-only: the app role has no UPDATE or DELETE at all.
            for statement in (f"DELETE FROM {table} WHERE org_id = %s", f"UPDATE {table} SET org_id = org_id WHERE org_id = %s"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    with app.transaction():
                        app.execute(statement, (a,))
            return
        assert app.execute(f"UPDATE {table} SET {column} = {column} WHERE {column} = %s", (b,)).rowcount == 0
        if table != "organizations":
            # Moving one's own row into another tenant is refused by the policy's WITH CHECK.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with app.transaction():
                    app.execute(f"UPDATE {table} SET org_id = %s WHERE org_id = %s", (b, a))
        assert app.execute(f"DELETE FROM {table} WHERE {column} = %s", (b,)).rowcount == 0


@pytest.mark.parametrize("table", ORG_TABLES)
def test_a_tenant_cannot_insert_rows_for_another(app: psycopg.Connection, orgs: tuple[str, str], table: str) -> None:
    a, b = orgs
    with app.transaction():
        _as(app, a)
        # Copy one of our own rows, relabelled as the other tenant's.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with app.transaction():
                app.execute(
                    f"INSERT INTO {table} SELECT (jsonb_populate_record(NULL::{table},"
                    f" to_jsonb(x) || jsonb_build_object('org_id', %s::text))).* FROM {table} x"
                    f" WHERE x.org_id = %s LIMIT 1",
                    (b, a),
                )


@pytest.mark.parametrize("table", (*CUSTOMER_TABLES, "customers"))
def test_a_customer_scope_sees_only_that_customer(app: psycopg.Connection, orgs: tuple[str, str], table: str) -> None:
    a, _ = orgs
    column = "id" if table == "customers" else "customer_id"
    with app.transaction():
        _as(app, a, "c1")
        seen = {row[0] for row in app.execute(f"SELECT {column} FROM {table} WHERE org_id = %s", (a,))}
        assert seen == {"c1"}
        if table not in APPEND_ONLY:
            assert app.execute(f"DELETE FROM {table} WHERE org_id = %s AND {column} = 'c2'", (a,)).rowcount == 0
    with app.transaction():
        _as(app, a)
        both = {row[0] for row in app.execute(f"SELECT {column} FROM {table} WHERE org_id = %s", (a,))}
    assert both == {"c1", "c2"}


def test_system_roles_are_shared_but_read_only(app: psycopg.Connection, orgs: tuple[str, str]) -> None:
    a, b = orgs
    with app.transaction():
        _as(app, a)
        ids = {row[0] for row in app.execute("SELECT id FROM roles WHERE org_id IS NULL OR org_id IN (%s, %s)", (a, b))}
        assert {"owner", "admin", "developer", "operator", "viewer", "end_user"} <= ids
        assert "r" in ids  # a's custom role
        assert app.execute("SELECT count(*) FROM roles WHERE org_id = %s", (b,)).fetchone()[0] == 0
        assert app.execute("UPDATE roles SET name = 'x' WHERE org_id IS NULL").rowcount == 0
        assert app.execute("DELETE FROM roles WHERE org_id IS NULL").rowcount == 0


def test_without_a_tenant_nothing_is_visible(app: psycopg.Connection, orgs: tuple[str, str]) -> None:
    for table in ALL_TABLES:
        assert app.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_the_tenant_setting_ends_with_the_transaction(migrated_database_url: str, orgs: tuple[str, str]) -> None:
    a, _ = orgs
    with store.Database.from_conn_string(store.app_conninfo(migrated_database_url), max_size=1) as db:
        with db.tenant(a) as tx:
            assert tx.execute("SELECT count(*) AS n FROM customers").fetchone()["n"] == 2
        # The same pooled connection, outside any tenant transaction: nothing.
        with db._pool.connection() as conn:
            assert conn.execute("SELECT count(*) AS n FROM customers").fetchone()["n"] == 0


def test_the_audit_log_is_append_only_even_for_the_owner(migrated_database_url: str, orgs: tuple[str, str]) -> None:
    a, _ = orgs
    with psycopg.connect(migrated_database_url, autocommit=True) as owner:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner.execute("UPDATE audit_log SET action = 'x' WHERE org_id = %s", (a,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner.execute("DELETE FROM audit_log WHERE org_id = %s", (a,))
        assert owner.execute("SELECT count(*) FROM audit_log WHERE org_id = %s", (a,)).fetchone()[0] == 1


def test_rows_outside_the_transactions_customer_are_refused_in_sql(db: store.Database) -> None:
    tenant = make_tenant(db, "Scoped")
    first, second = tenant.customers
    with pytest.raises(OutsideTenantScope) as refused, db.tenant(tenant.org_id, first) as tx:
        store.Customers(tx).create(tenant.org_id, name="Elsewhere", environment_id="dev")
    assert refused.value.http_status == 403 and refused.value.resource == "customers"
    with pytest.raises(OutsideTenantScope), db.tenant(tenant.org_id, first) as tx:
        store.Executions(tx).start(tenant.org_id, customer_id=second, workflow_id="wf_x", version=1, dry_run=True, input={})
    # Another organization's row fails the permissive policy, whose refusal names no policy.
    with pytest.raises(OutsideTenantScope) as refused, db.tenant(tenant.org_id) as tx:
        store.Environments(tx).create("org_000000000000000000000000", "qa", "QA")
    assert refused.value.resource == "environments"
