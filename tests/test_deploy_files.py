"""docker-compose.yml and the Dockerfile, checked as data since no Docker engine runs here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from switchboard.cli import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services(compose: dict) -> None:
    assert set(compose["services"]) == {"postgres", "api", "worker"}
    assert set(compose["volumes"]) == {"pgdata"}


def test_postgres_has_pgvector_and_a_healthcheck(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    assert re.fullmatch(r"pgvector/pgvector:pg1[5-9]", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_api_is_built_here_and_talks_to_postgres(compose: dict) -> None:
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert "8000:8000" in api["ports"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = api["environment"]
    # Compose substitutes ${...} before anyone parses the URL.
    url = urlsplit(re.sub(r"\$\{[^}]*\}", "secret", env["DATABASE_URL"]))
    assert (url.scheme, url.hostname, url.port, url.path) == ("postgresql", "postgres", 5432, "/switchboard")
    assert env["SWITCHBOARD_MODE"] == "production"
    assert "/health" in " ".join(api["healthcheck"]["test"])


def test_worker_shares_the_image(compose: dict) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert (worker["build"], worker["image"]) == (api["build"], api["image"])
    assert worker["environment"]["DATABASE_URL"] == api["environment"]["DATABASE_URL"]


def test_commands_exist_or_are_opt_in(compose: dict) -> None:
    for name, service in compose["services"].items():
        command = service.get("command")
        if not command or command[0] != "switchboard":
            continue
        assert command[1] in cli.commands or service.get("profiles"), (
            f"service {name} runs `switchboard {command[1]}`, which does not exist; keep it behind a profile"
        )


def test_dockerfile_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert "pip install ." in dockerfile
    includes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE))
    for pattern in includes:
        package = pattern.rstrip("*")
        if (ROOT / package).is_dir():
            assert package in copied, f"Dockerfile does not copy package {package}/"
