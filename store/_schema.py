"""Migration m002 (``PLATFORM_SCHEMA``): the platform schema, the app role and row-level security.

Every tenant table has ``org_id`` and a primary key ``(org_id, id)``; references between tenant
tables are composite ``(org_id, x_id)``, so a row can never point into another organization.
Rows that belong to an end customer also carry ``customer_id``.

Isolation is enforced twice. Code scopes every query; Postgres row-level security binds each row
to the organization (and, where it applies, the customer) set for the transaction with
``set_config('app.org_id', ..., true)``. The app connects as ``switchboard_app``: a login role
that is neither a superuser, nor the owner of any table, nor exempt from RLS. The owner (who runs
migrations, key rotation and organization bootstrap from the CLI) is not bound by the policies;
that is why the tables ENABLE rather than FORCE row-level security.
"""

from __future__ import annotations

import json

APP_ROLE = "switchboard_app"

_TABLES = """
CREATE TABLE organizations (
    id            text PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone      text NOT NULL DEFAULT 'UTC',
    email_domains text[] NOT NULL DEFAULT '{}',
    auto_approve  boolean NOT NULL DEFAULT false,
    onboarding    jsonb NOT NULL DEFAULT '{}',
    plan          text NOT NULL DEFAULT 'free',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE environments (
    org_id     text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id         text NOT NULL,
    slug       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, slug)
);

CREATE TABLE customers (
    org_id          text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id              text NOT NULL,
    environment_id  text NOT NULL,
    name            text NOT NULL,
    tier            text NOT NULL DEFAULT 'free',
    residency       text NOT NULL DEFAULT 'US' CHECK (residency IN ('US', 'EU', 'APAC')),
    quota_overrides jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, environment_id) REFERENCES environments(org_id, id)
);

-- System roles have org_id NULL and are visible to every organization; custom roles belong to one.
CREATE TABLE roles (
    org_id      text REFERENCES organizations(id) ON DELETE CASCADE,
    id          text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    system      boolean NOT NULL DEFAULT false,
    permissions jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX roles_id ON roles (coalesce(org_id, ''), id);
CREATE UNIQUE INDEX roles_name ON roles (coalesce(org_id, ''), lower(name));

CREATE TABLE users (
    org_id       text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id           text NOT NULL,
    email        text NOT NULL,
    name         text NOT NULL DEFAULT '',
    role_id      text NOT NULL,
    status       text NOT NULL DEFAULT 'invited' CHECK (status IN ('invited', 'active', 'disabled')),
    oidc_subject text,
    -- An end customer's own user (End User role, signing in to the widget) belongs to it.
    customer_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX users_email ON users (org_id, lower(email));
CREATE UNIQUE INDEX users_subject ON users (org_id, oidc_subject) WHERE oidc_subject IS NOT NULL;

CREATE TABLE api_keys (
    org_id       text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id           text NOT NULL,
    name         text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('test', 'live')),
    prefix       text NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    role_id      text NOT NULL,
    customer_id  text,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id)
);

CREATE TABLE data_keys (
    org_id        text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id            text NOT NULL,
    wrapped       bytea NOT NULL,
    master_key_id text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);

CREATE TABLE secrets (
    org_id         text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id             text NOT NULL,
    environment_id text NOT NULL,
    name           text NOT NULL,
    ciphertext     bytea NOT NULL,
    created_by     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, environment_id, name),
    FOREIGN KEY (org_id, environment_id) REFERENCES environments(org_id, id) ON DELETE CASCADE
);

CREATE TABLE oauth_apps (
    org_id        text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id            text NOT NULL,
    connector_key text NOT NULL,
    client_id     text NOT NULL,
    client_secret bytea NOT NULL,
    authorize_url text,
    token_url     text,
    scopes        text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, connector_key)
);

CREATE TABLE connectors (
    org_id     text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id         text NOT NULL,
    key        text NOT NULL,
    name       text NOT NULL,
    status     text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, key)
);

CREATE TABLE connector_versions (
    org_id       text NOT NULL,
    id           text NOT NULL,
    connector_id text NOT NULL,
    version      integer NOT NULL CHECK (version > 0),
    spec         jsonb NOT NULL,
    state        text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'published')),
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, connector_id, version),
    FOREIGN KEY (org_id, connector_id) REFERENCES connectors(org_id, id) ON DELETE CASCADE
);

CREATE TABLE connections (
    org_id       text NOT NULL,
    id           text NOT NULL,
    customer_id  text NOT NULL,
    connector_id text NOT NULL,
    name         text NOT NULL DEFAULT '',
    auth_type    text NOT NULL,
    status       text NOT NULL DEFAULT 'connected'
                 CHECK (status IN ('pending', 'connected', 'needs_reconnect', 'disconnected')),
    credentials  bytea,
    expires_at   timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, connector_id) REFERENCES connectors(org_id, id)
);

CREATE TABLE oauth_states (
    org_id        text NOT NULL,
    id            text NOT NULL,
    customer_id   text NOT NULL,
    connection_id text NOT NULL,
    code_verifier bytea NOT NULL,
    redirect_uri  text NOT NULL,
    return_to     text,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, connection_id) REFERENCES connections(org_id, id) ON DELETE CASCADE
);

CREATE TABLE workflows (
    org_id     text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id         text NOT NULL,
    key        text NOT NULL,
    name       text NOT NULL,
    type       text NOT NULL DEFAULT 'standard' CHECK (type IN ('instant', 'standard', 'long')),
    draft      jsonb NOT NULL,
    status     text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, key)
);

CREATE TABLE workflow_versions (
    org_id      text NOT NULL,
    id          text NOT NULL,
    workflow_id text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    spec        jsonb NOT NULL,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, workflow_id, version),
    FOREIGN KEY (org_id, workflow_id) REFERENCES workflows(org_id, id) ON DELETE CASCADE
);

CREATE TABLE deployments (
    org_id         text NOT NULL,
    id             text NOT NULL,
    workflow_id    text NOT NULL,
    environment_id text NOT NULL,
    version        integer NOT NULL,
    deployed_by    text,
    deployed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, workflow_id, environment_id),
    FOREIGN KEY (org_id, workflow_id, version) REFERENCES workflow_versions(org_id, workflow_id, version),
    FOREIGN KEY (org_id, environment_id) REFERENCES environments(org_id, id) ON DELETE CASCADE
);

CREATE TABLE triggers (
    org_id      text NOT NULL,
    id          text NOT NULL,
    workflow_id text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('webhook', 'schedule', 'app_event')),
    config      jsonb NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, workflow_id) REFERENCES workflows(org_id, id) ON DELETE CASCADE
);

CREATE TABLE executions (
    org_id      text NOT NULL,
    id          text NOT NULL,
    customer_id text NOT NULL,
    workflow_id text NOT NULL,
    version     integer NOT NULL,
    dry_run     boolean NOT NULL DEFAULT false,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    input       jsonb NOT NULL DEFAULT '{}',
    output      jsonb,
    error       jsonb,
    trace       jsonb NOT NULL DEFAULT '[]',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, workflow_id) REFERENCES workflows(org_id, id) ON DELETE CASCADE
);

CREATE TABLE audit_log (
    org_id        text NOT NULL REFERENCES organizations(id),
    id            bigserial NOT NULL,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_type    text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
    actor_id      text NOT NULL,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text,
    customer_id   text,
    outcome       text NOT NULL CHECK (outcome IN ('success', 'error')),
    error_code    text,
    status        integer,
    detail        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_log_at ON audit_log (org_id, at DESC, id DESC);

CREATE TABLE quota_tiers (
    org_id     text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id         text NOT NULL,
    name       text NOT NULL,
    limits     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE quota_usage (
    org_id       text NOT NULL,
    customer_id  text NOT NULL,
    dimension    text NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, customer_id, dimension, window_start),
    FOREIGN KEY (org_id, customer_id) REFERENCES customers(org_id, id) ON DELETE CASCADE
);

CREATE TABLE idempotency_keys (
    org_id       text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    key          text NOT NULL,
    actor_id     text NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

-- The audit log is append-only for everyone, the owner included.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""

# Tables bound to the organization of the transaction.
ORG_TABLES = (
    "environments", "customers", "users", "api_keys", "data_keys", "secrets", "oauth_apps", "connectors",
    "connector_versions", "connections", "oauth_states", "workflows", "workflow_versions", "deployments",
    "triggers", "executions", "audit_log", "quota_tiers", "quota_usage", "idempotency_keys",
)
# Tables whose rows belong to one end customer: with a customer set for the transaction, only
# that customer's rows are visible or writable.
CUSTOMER_TABLES = ("connections", "oauth_states", "executions", "quota_usage")

_ORG = "current_setting('app.org_id', true)"
_CUSTOMER = "coalesce(current_setting('app.customer_id', true), '')"


def _policies() -> list[str]:
    statements = [
        "ALTER TABLE organizations ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant ON organizations USING (id = {_ORG}) WITH CHECK (id = {_ORG})",
        "ALTER TABLE roles ENABLE ROW LEVEL SECURITY",
        # Everyone reads the system roles; only an organization's own roles can be written.
        f"CREATE POLICY tenant_read ON roles FOR SELECT USING (org_id IS NULL OR org_id = {_ORG})",
        f"CREATE POLICY tenant_insert ON roles FOR INSERT WITH CHECK (org_id = {_ORG})",
        f"CREATE POLICY tenant_update ON roles FOR UPDATE USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG})",
        f"CREATE POLICY tenant_delete ON roles FOR DELETE USING (org_id = {_ORG})",
    ]
    for table in ORG_TABLES:
        statements.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        statements.append(f"CREATE POLICY tenant ON {table} USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG})")
    for table in CUSTOMER_TABLES:
        rule = f"({_CUSTOMER} = '' OR customer_id = {_CUSTOMER})"
        statements.append(f"CREATE POLICY customer ON {table} AS RESTRICTIVE USING {rule} WITH CHECK {rule}")
    rule = f"({_CUSTOMER} = '' OR id = {_CUSTOMER})"
    statements.append(f"CREATE POLICY customer ON customers AS RESTRICTIVE USING {rule} WITH CHECK {rule}")
    return statements


# The permission vocabulary as of m002. Later migrations may add areas or change system roles;
# this constant stays as it shipped.
AREAS_V1 = (
    "connectors", "connections", "workflows", "agents", "tools", "customers",
    "people", "keys", "secrets", "billing", "audit", "settings",
)
ACTIONS_V1 = ("read", "write", "publish", "execute")

_ALL = {area: ["read", "write"] for area in AREAS_V1} | {
    "connectors": ["read", "write", "publish"],
    "workflows": ["read", "write", "publish", "execute"],
    "agents": ["read", "write", "execute"],
    "tools": ["read", "write", "execute"],
}
_READ_ALL = {area: ["read"] for area in AREAS_V1}

SYSTEM_ROLES_V1: tuple[tuple[str, str, str, dict[str, list[str]]], ...] = (
    ("owner", "Owner", "Everything, including billing and people.", _ALL),
    ("admin", "Admin", "Everything an owner can; an organization always keeps at least one owner.", _ALL),
    (
        "developer",
        "Developer",
        "Builds connectors, workflows and agents; manages secrets.",
        _READ_ALL
        | {
            k: v
            for k, v in _ALL.items()
            if k in ("connectors", "connections", "workflows", "agents", "tools", "customers", "secrets")
        },
    ),
    (
        "operator",
        "Operator",
        "Runs and watches integrations; manages keys, secrets, people and quotas.",
        _READ_ALL
        | {
            "connections": ["read", "write"],
            "customers": ["read", "write"],
            "workflows": ["read", "execute"],
            "agents": ["read", "execute"],
            "tools": ["read", "execute"],
            "people": ["read", "write"],
            "keys": ["read", "write"],
            "secrets": ["read", "write"],
            "billing": ["read", "write"],
        },
    ),
    ("viewer", "Viewer", "Reads everything; changes nothing.", _READ_ALL),
    (
        "end_user",
        "End User",
        "One end customer: connects its own accounts and runs published workflows.",
        {area: [] for area in AREAS_V1}
        | {
            "connectors": ["read"],
            "customers": ["read"],
            "connections": ["read", "write"],
            "workflows": ["read", "execute"],
            "tools": ["read", "execute"],
        },
    ),
)


def _literal(text: str) -> str:
    # A string constant for the migration's SQL text. standard_conforming_strings is on (the default
    # since Postgres 9.1), so doubling quotes is the whole escaping; the values are this module's.
    return "'" + text.replace("'", "''") + "'"


def _seed_system_roles() -> list[str]:
    return [
        "INSERT INTO roles (org_id, id, name, description, system, permissions) VALUES "
        f"(NULL, {_literal(role_id)}, {_literal(name)}, {_literal(description)}, true, "
        f"{_literal(json.dumps(permissions))}::jsonb)"
        for role_id, name, description, permissions in SYSTEM_ROLES_V1
    ]


# Roles are cluster-wide: another database on this server (a test session's, say) may have created
# it already, or be creating it now.
_CREATE_APP_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(APP_ROLE)}) THEN
        CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$"""


def _grants() -> list[str]:
    statements = [
        # The database's name is known only where the migration runs.
        f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP_ROLE}', current_database()); END $$",
        f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
    ]
    for table in ("organizations", "roles", *ORG_TABLES):
        privileges = "SELECT, INSERT" if table == "audit_log" else "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    statements.append(f"GRANT USAGE ON SEQUENCE audit_log_id_seq TO {APP_ROLE}")
    # /health reads the schema version as the app.
    statements.append(f"GRANT SELECT ON schema_migrations TO {APP_ROLE}")
    return statements


# Migration m002 as one SQL text: the platform tables, the RLS policies, the system roles, the app
# role and its grants. Text rather than code so that its checksum covers every statement it runs:
# editing any of them (or the data above they are built from) changes the checksum, and a database
# that applied the old text refuses to start.
PLATFORM_SCHEMA = _TABLES + "".join(
    statement + ";\n" for statement in (*_policies(), *_seed_system_roles(), _CREATE_APP_ROLE, *_grants())
)


# Migration m004: durable executions. Statuses gain queued, timeout and cancelled, and succeeded
# becomes completed; each execution records its tier and what triggered it; an inline execution
# records the process running it (``owner``), so that one left running by a lost process can be
# found and marked failed. ``runtime_processes`` is each platform process's lease: a row per
# process, its host and pid, renewed by a heartbeat. It is the platform's, not a tenant's: only the
# owner role reads and writes it (the sweep spans organizations).
DURABLE_EXECUTIONS = """
ALTER TABLE executions DROP CONSTRAINT executions_status_check;
UPDATE executions SET status = 'completed' WHERE status = 'succeeded';
ALTER TABLE executions ADD CONSTRAINT executions_status_check
    CHECK (status IN ('queued', 'running', 'completed', 'failed', 'timeout', 'cancelled'));
ALTER TABLE executions ADD COLUMN tier text NOT NULL DEFAULT 'instant'
    CHECK (tier IN ('instant', 'standard', 'long'));
ALTER TABLE executions ADD COLUMN triggered_by text NOT NULL DEFAULT 'manual'
    CHECK (triggered_by IN ('webhook', 'schedule', 'app_event', 'manual', 'mcp', 'agent'));
ALTER TABLE executions ADD COLUMN owner text;
ALTER TABLE executions ADD COLUMN updated_at timestamptz;
CREATE INDEX executions_unfinished ON executions (status, started_at) WHERE status IN ('queued', 'running');
CREATE TABLE runtime_processes (
    id           text PRIMARY KEY,
    kind         text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
"""

# Overlap, cancel and re-run (m006): an execution re-run from its failed step names the original;
# a durable one remembers its queue partition (a sweep that hands it over again uses the same);
# runs waiting their turn are found by workflow and customer.
EXECUTION_CONTROL = """
ALTER TABLE executions ADD COLUMN rerun_of text;
ALTER TABLE executions ADD COLUMN queue_partition text;
CREATE INDEX executions_turns ON executions (org_id, customer_id, workflow_id, started_at, id)
    WHERE status IN ('queued', 'running') AND NOT dry_run;
"""
