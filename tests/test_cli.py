"""The `switchboard` command: db subcommands in-process, `run` as a real subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

import store
from switchboard.bootstrap import DevCredentials
from switchboard.cli import cli

SWITCHBOARD_BIN = Path(sys.executable).with_name("switchboard")


def _invoke(*args: str, env: dict[str, str]) -> object:
    base = {"SWITCHBOARD_DATA": None, "SWITCHBOARD_DATABASE_URL": None, "PORT": None, "SWITCHBOARD_MODE": None}
    return CliRunner().invoke(cli, list(args), env={**base, **env})


def test_db_migrate_applies_then_reports_up_to_date(fresh_db: str) -> None:
    first = _invoke("db", "migrate", env={"DATABASE_URL": fresh_db})
    assert first.exit_code == 0, first.output
    assert "applied 1 m001_pgvector" in first.output
    second = _invoke("db", "migrate", env={"DATABASE_URL": fresh_db})
    assert second.exit_code == 0, second.output
    assert f"schema version {store.latest_version()} (already up to date)" in second.output
    assert store.current_version(fresh_db) == store.latest_version()


def test_db_status_and_url(fresh_db: str) -> None:
    status = _invoke("db", "status", env={"DATABASE_URL": fresh_db})
    assert status.exit_code == 0, status.output
    assert f"schema version 0 of {store.latest_version()}" in status.output
    url = _invoke("db", "url", env={"DATABASE_URL": fresh_db})
    assert url.output.strip() == fresh_db


def _edit_applied_migration(url: str) -> None:
    # What a database looks like to code whose m002 was edited after this database applied it.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 2", ("0" * 64,))


def test_db_status_lists_each_migration_as_applied_or_pending(fresh_db: str) -> None:
    before = _invoke("db", "status", env={"DATABASE_URL": fresh_db})
    assert before.exit_code == 0, before.output
    lines = before.output.splitlines()
    for version, migration in enumerate(store.MIGRATIONS, start=1):
        line = next(line for line in lines if migration.name in line)
        assert line.split()[0] == str(version) and "pending" in line and migration.checksum[:12] in line
    store.migrate(fresh_db, store.MIGRATIONS[:1])
    after = _invoke("db", "status", env={"DATABASE_URL": fresh_db})
    assert after.exit_code == 0, after.output
    assert "applied" in next(line for line in after.output.splitlines() if "m001_pgvector" in line)
    assert "pending" in next(line for line in after.output.splitlines() if "m002_platform" in line)
    assert f"schema version 1 of {store.latest_version()}, {store.latest_version() - 1} pending" in after.output


def test_db_status_refuses_an_edited_migration_naming_it(fresh_db: str) -> None:
    store.migrate(fresh_db)
    _edit_applied_migration(fresh_db)
    result = _invoke("db", "status", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 1
    assert "migration 2 (m002_platform) was changed after it was applied" in result.output
    assert "append-only" in result.output and "[migration_changed]" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("flags", [[], ["--no-migrate"]])
def test_run_refuses_a_database_whose_applied_migration_was_edited(fresh_db: str, flags: list[str]) -> None:
    store.migrate(fresh_db)
    _edit_applied_migration(fresh_db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=fresh_db, PORT=str(_free_port()))
    result = subprocess.run([str(SWITCHBOARD_BIN), "run", *flags], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "migration 2 (m002_platform) was changed after it was applied" in result.stderr
    assert "[migration_changed]" in result.stderr and "Traceback" not in result.stderr
    assert "Switchboard API on" not in result.stdout


def test_unreachable_database_is_one_clear_line() -> None:
    result = _invoke("db", "migrate", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.exit_code == 1
    assert "database unavailable" in result.output
    assert "[database_unavailable]" in result.output
    assert "Traceback" not in result.output


def test_invalid_settings_are_named() -> None:
    result = _invoke("db", "status", env={"PORT": "eighty"})
    assert result.exit_code == 1
    assert "invalid settings" in result.output and "PORT" in result.output


def test_production_without_database_url_is_refused() -> None:
    result = _invoke("db", "migrate", env={"SWITCHBOARD_MODE": "production", "DATABASE_URL": ""})
    assert result.exit_code == 1
    assert "DATABASE_URL is required" in result.output


def test_commands_are_registered() -> None:
    assert {"run", "serve", "db", "org", "api-key", "customer", "keys"} <= set(cli.commands)
    assert {"migrate", "status", "url"} <= set(cli.commands["db"].commands)  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_starts_embedded_postgres_and_serves_health(pg_tmp_path: Path) -> None:
    """The path `make run` takes: console script, embedded Postgres, migrations, uvicorn."""
    assert SWITCHBOARD_BIN.exists(), "install the project: pip install -e '.[dev]'"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k != "DATABASE_URL"}
    env.update(PORT=str(port), SWITCHBOARD_DATA=str(pg_tmp_path / "data"), SWITCHBOARD_LOG_FORMAT="json")
    proc = subprocess.Popen(
        [str(SWITCHBOARD_BIN), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        body = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if response.status_code == 200:
                body = response.json()
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"switchboard run exited early:\n{proc.communicate()[1]}"
        assert body == {"status": "ok", "database": "ok", "schema_version": store.latest_version()}
        # First start: the three header values are written for the README's curl.
        credentials_file = pg_tmp_path / "data" / "dev-credentials.json"
        assert credentials_file.stat().st_mode & 0o777 == 0o600
        credentials = json.loads(credentials_file.read_text())
        assert set(credentials) == {"account_id", "access_key", "tenant_id"}
        headers = {
            "x-fastn-account-id": credentials["account_id"],
            "x-fastn-access-key": credentials["access_key"],
        }
        customers = httpx.get(f"http://127.0.0.1:{port}/v1/customers", headers=headers, timeout=10).json()
        assert [c["id"] for c in customers["items"]] == [credentials["tenant_id"]]
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=60)
    assert f"Switchboard API on http://127.0.0.1:{port}" in stdout
    assert credentials["access_key"] in stdout  # printed once, for the new user
    assert credentials["access_key"] not in stderr  # never logged
    assert '"event": "Application shutdown complete."' in stderr
    # The embedded server stops with the process that started it.
    assert not (pg_tmp_path / "data" / "pg" / "postmaster.pid").exists()


def test_dev_credentials_repr_leaves_the_key_out() -> None:
    # What the first start writes for the README's curl: its repr (in a log, a traceback) must not carry the key.
    credentials = DevCredentials(account_id="org_1", access_key="sk_live_review_secret", tenant_id="local-customer")
    assert "sk_live_review_secret" not in repr(credentials)
    assert "org_1" in repr(credentials)


def test_run_on_a_busy_port_is_one_clear_error(migrated_database_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(DATABASE_URL=migrated_database_url, PORT=str(port))
        result = subprocess.run([str(SWITCHBOARD_BIN), "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_org_key_and_customer_commands_lead_to_a_working_request(fresh_db: str, pg_tmp_path: Path) -> None:
    env = {"SWITCHBOARD_DATABASE_URL": fresh_db, "SWITCHBOARD_DATA": str(pg_tmp_path)}
    created = _invoke("org", "create", "Initech", "--json", env=env)
    assert created.exit_code == 0, created.output
    org = json.loads(created.stdout)
    key = _invoke("api-key", "create", "--org", org["account_id"], "--kind", "test", "--role", "viewer", "--json", env=env)
    assert key.exit_code == 0, key.output
    assert json.loads(key.stdout)["access_key"].startswith("sk_test_")
    customer = _invoke("customer", "create", "--org", org["account_id"], "--id", "acme-1", "Acme", env=env)
    assert customer.exit_code == 0 and "acme-1" in customer.output
    duplicate = _invoke("customer", "create", "--org", org["account_id"], "--id", "acme-1", "Acme", env=env)
    assert duplicate.exit_code == 1 and "already taken" in duplicate.output
    missing = _invoke("customer", "create", "--org", "org_nope", "Acme", env=env)
    assert missing.exit_code == 1 and "organization 'org_nope' not found" in missing.output
    bad_role = _invoke("api-key", "create", "--org", org["account_id"], "--role", "emperor", env=env)
    assert bad_role.exit_code == 1 and "role 'emperor' not found" in bad_role.output
