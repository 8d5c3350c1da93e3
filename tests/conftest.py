"""Session-wide fixtures: one real Postgres for the whole test session.

Without ``DATABASE_URL`` an embedded pgserver starts in a temporary directory; with it, a fresh
uniquely named database is created on that server and dropped at the end. Put fixtures for one
area in its test modules or in ``tests/support/``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import store
from support.platform import app_database, client, running_platform


def pytest_configure(config: pytest.Config) -> None:
    # No test waits for real between retries of connector calls (platforms and worker processes
    # started by tests read it); tests assert on the delays recorded in attempts and traces.
    os.environ.setdefault("SWITCHBOARD_RETRY_DELAY_SCALE", "0")
    config.addinivalue_line(
        "markers", "prism: checks requests with Stoplight Prism (needs node and npx; skips without them)"
    )


@pytest.fixture
def pg_tmp_path() -> Iterator[Path]:
    """A temporary directory an embedded Postgres may live in, removed afterwards.

    Not pytest's ``tmp_path``: as root, pgserver runs Postgres as a separate ``pgserver`` user that
    must traverse the parents, and every pytest session resets ``/tmp/pytest-of-<user>`` to 0700.
    """
    path = Path(tempfile.mkdtemp(prefix="switchboard-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Conninfo of an empty database for this test session (not migrated)."""
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"switchboard_test_{uuid.uuid4().hex[:12]}"
        url = store.create_database(external, name)
        yield url
        store.drop_database(external, name)
        return
    path = Path(tempfile.mkdtemp(prefix="switchboard-test-"))
    embedded = store.start_embedded(path / "pg")
    try:
        yield embedded.conninfo
    finally:
        embedded.stop()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    """``database_url`` with every migration applied."""
    store.migrate(database_url)
    return database_url


@pytest.fixture(scope="module")
def platform(migrated_database_url: str) -> Iterator[str]:
    """The platform API served over real HTTP on 127.0.0.1 for one test module; yields its base URL.

    Modules that need other settings (an OIDC issuer, a fake clock) define their own."""
    with running_platform(migrated_database_url) as (url, _settings):
        yield url


@pytest.fixture(scope="module")
def db(migrated_database_url: str) -> Iterator[store.Database]:
    """A pool as the app role, the one the API uses, for setting up tenants."""
    with app_database(migrated_database_url) as database:
        yield database


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[str]:
    """An empty database of its own on the session's server (not migrated), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = store.create_database(database_url, name)
    yield url
    store.drop_database(database_url, name)


@pytest.fixture(scope="module")
def http(platform: str) -> Iterator[httpx.Client]:
    """A client of the module's ``platform``."""
    with client(platform) as c:
        yield c
