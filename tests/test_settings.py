"""Settings: environment names, validation, and the production guard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from switchboard import ConfigurationError, Settings, get_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_") or name in ("DATABASE_URL", "PORT"):
            monkeypatch.delenv(name)


def test_defaults_are_local_and_loopback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.mode == "local"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.database_url is None
    assert settings.data_dir == tmp_path.resolve() / ".switchboard"
    assert settings.pg_data_dir == settings.data_dir / "pg"
    assert settings.log_format == "console"
    assert settings.egress_allow == []


def test_platform_variables_are_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db:5432/app")
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("SWITCHBOARD_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SWITCHBOARD_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.database_url == "postgresql://app:pw@db:5432/app"
    assert settings.port == 9001
    assert settings.data_dir == tmp_path / "data"
    assert settings.log_level == "DEBUG"


def test_prefixed_spelling_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("SWITCHBOARD_PORT", "9002")
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@one/x")
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql://a@two/x")
    settings = Settings()
    assert settings.port == 9002
    assert settings.database_url == "postgresql://a@two/x"


def test_blank_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "  ")
    assert Settings().database_url is None


def test_egress_allow_list_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_EGRESS_ALLOW", " 127.0.0.1, 10.0.0.0/8 ,sandbox.local,,::1,*.internal.example")
    assert Settings().egress_allow == ["127.0.0.1", "10.0.0.0/8", "sandbox.local", "::1", "*.internal.example"]


@pytest.mark.parametrize("entry", ["http://evil.example", "10.0.0.0/33", "bad host", "a/b"])
def test_egress_allow_rejects_garbage(monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    monkeypatch.setenv("SWITCHBOARD_EGRESS_ALLOW", entry)
    with pytest.raises(ValidationError, match="egress_allow"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("SWITCHBOARD_MODE", "staging"),
        ("SWITCHBOARD_LOG_LEVEL", "chatty"),
        ("SWITCHBOARD_LOG_FORMAT", "xml"),
        ("SWITCHBOARD_HTTP_TIMEOUT", "0"),
        ("DATABASE_URL", "mysql://root@db/x"),
    ],
)
def test_malformed_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_production_requires_a_database_url() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(mode="production")
    assert info.value.code == "configuration_invalid"
    assert any("DATABASE_URL is required" in p for p in info.value.problems)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://switchboard@db/switchboard",
        "postgresql://switchboard:postgres@db/switchboard",
        "postgresql://switchboard:changethis@db/switchboard",
        "host=db user=app password=postgres dbname=app",
    ],
)
def test_production_refuses_default_database_passwords(url: str) -> None:
    with pytest.raises(ConfigurationError, match="default password"):
        Settings(mode="production", database_url=url)


def test_production_accepts_real_values() -> None:
    master = "q0Yk3mB9v1r2T8u4W6x7Z0a1b2c3d4e5f6g7h8i9j0k="
    settings = Settings(
        mode="production",
        database_url="postgresql://app:Xq9-long-secret@db/app",
        master_key=master,
        app_database_password="Yp4-another-secret",
    )
    assert settings.log_format == "json"
    assert "Xq9-long-secret" not in repr(settings)
    assert master not in repr(settings)


def test_production_requires_the_master_key_and_the_app_role_password() -> None:
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_MASTER_KEY") as info:
        Settings(mode="production", database_url="postgresql://app:Xq9-long-secret@db/app")
    assert "SWITCHBOARD_APP_DATABASE_PASSWORD" in str(info.value)
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_APP_DATABASE_PASSWORD must be set to a non-default"):
        Settings(
            mode="production",
            database_url="postgresql://app:Xq9-long-secret@db/app",
            master_key="q0Yk3mB9v1r2T8u4W6x7Z0a1b2c3d4e5f6g7h8i9j0k=",
            app_database_password="changeme",
        )


def test_production_guard_covers_declared_secrets() -> None:
    class WithSecret(Settings):
        SECRETS_REQUIRED_IN_PRODUCTION: ClassVar[tuple[str, ...]] = ("encryption_key",)
        encryption_key: SecretStr | None = None
        app_database_url: str | None = "postgresql://switchboard_app:Zz8-secret@db/app"

    good_url = "postgresql://app:Xq9-long-secret@db/app"
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_ENCRYPTION_KEY"):
        WithSecret(mode="production", database_url=good_url)
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_ENCRYPTION_KEY"):
        WithSecret(mode="production", database_url=good_url, encryption_key="changethis")
    assert WithSecret(mode="production", database_url=good_url, encryption_key="k" * 32).encryption_key
    # Local mode tolerates the missing secret.
    assert WithSecret().encryption_key is None


def test_get_settings_is_cached() -> None:
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_switchboard_public_surface() -> None:
    import switchboard

    assert sorted(switchboard.__all__) == ["ConfigurationError", "Settings", "SwitchboardError", "get_settings"]


@pytest.fixture
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_model_is_offline_by_default(no_model_env: None) -> None:
    setting = Settings().model_setting()
    assert (setting.provider, setting.name, setting.api_key) == ("offline", "offline", None)


def test_openai_reads_the_openai_variables(monkeypatch: pytest.MonkeyPatch, no_model_env: None) -> None:
    monkeypatch.setenv("SWITCHBOARD_MODEL", "openai:qwen2.5")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-settings-canary")
    monkeypatch.setenv("SWITCHBOARD_MODEL_TIMEOUT", "30")
    settings = Settings()
    setting = settings.model_setting()
    assert (setting.provider, setting.model, setting.base_url, setting.timeout) == (
        "openai", "qwen2.5", "http://127.0.0.1:8001/v1", 30.0)
    assert setting.api_key is not None and setting.api_key.get_secret_value() == "sk-settings-canary"
    assert "sk-settings-canary" not in repr(settings) + repr(setting) + str(setting)


def test_litellm_has_its_own_endpoint_and_ignores_the_openai_ones(monkeypatch: pytest.MonkeyPatch, no_model_env: None) -> None:
    monkeypatch.setenv("SWITCHBOARD_MODEL", "litellm:anthropic/claude-sonnet-4")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    setting = Settings().model_setting()
    assert (setting.provider, setting.model, setting.base_url, setting.api_key) == (
        "litellm", "anthropic/claude-sonnet-4", None, None)
    monkeypatch.setenv("SWITCHBOARD_LITELLM_API_BASE", "http://127.0.0.1:4000")
    assert Settings().model_setting().base_url == "http://127.0.0.1:4000"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [("SWITCHBOARD_MODEL", "gpt-4o", "expected 'offline'"),
     ("SWITCHBOARD_MODEL", "litellm:gpt-4o", "<provider>/<model>"),
     ("OPENAI_BASE_URL", "localhost:8001", "http(s) URL"),
     ("SWITCHBOARD_MODEL_TIMEOUT", "0", "greater than 0")],
)
def test_bad_model_settings_are_refused(monkeypatch: pytest.MonkeyPatch, no_model_env: None, env: str, value: str,
                                        message: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings()
