"""The embedded Postgres: instances side by side, clean stop, recovery from a killed holder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest

import store


def _data_directory(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return row[0]


def test_second_instance_runs_beside_the_first(pg_tmp_path: Path, database_url: str) -> None:
    second = store.start_embedded(pg_tmp_path / "pg")
    try:
        assert second.conninfo != database_url
        assert _data_directory(second.conninfo) == str(pg_tmp_path.resolve() / "pg")
        assert store.migrate(second.conninfo) == list(range(1, store.latest_version() + 1))
        assert store.current_version(database_url) in (0, store.latest_version())
    finally:
        second.stop()
    assert not (pg_tmp_path / "pg" / "postmaster.pid").exists()
    # The session's server is untouched by the other one stopping.
    _data_directory(database_url)


def test_restart_keeps_data_and_ignores_handles_of_killed_processes(pg_tmp_path: Path) -> None:
    pgdata = pg_tmp_path / "pg"
    first = store.start_embedded(pgdata)
    store.migrate(first.conninfo)
    first.stop()
    assert not (pgdata / "postmaster.pid").exists()

    # A holder killed without its atexit hook leaves its pid behind; it must not keep the server up.
    dead = subprocess.Popen(["true"])
    dead.wait()
    (pgdata / ".handle_pids.json").write_text(json.dumps([dead.pid]))

    again = store.start_embedded(pgdata)
    try:
        assert store.current_version(again.conninfo) == store.latest_version()
    finally:
        again.stop()
    assert not (pgdata / "postmaster.pid").exists()


def test_unusable_directory_is_a_typed_error(pg_tmp_path: Path) -> None:
    blocker = pg_tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(store.EmbeddedPostgresError) as info:
        store.start_embedded(blocker / "sub" / "pg")
    assert info.value.code == "embedded_postgres_failed"
    assert info.value.data_dir == (blocker / "sub" / "pg").resolve()


def test_resolve_prefers_database_url(pg_tmp_path: Path) -> None:
    conninfo, embedded = store.resolve_conninfo("postgresql://u@db.example/x", pg_tmp_path / "pg")
    assert (conninfo, embedded) == ("postgresql://u@db.example/x", None)
    assert not (pg_tmp_path / "pg").exists()
