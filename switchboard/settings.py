"""Process settings: one pydantic-settings class, read from the environment.

Every setting has an environment variable with the ``SWITCHBOARD_`` prefix. Two
platform conventions are honoured as well: ``DATABASE_URL`` and ``PORT`` (the
prefixed spelling wins when both are set), and the data directory is
``SWITCHBOARD_DATA``.

Per-run dependencies (clock, HTTP client, credentials) are not settings; they are
injected into the engine by whoever runs it.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from switchboard.errors import ConfigurationError

if TYPE_CHECKING:
    from agents import ModelSetting
    from runtime import CreditRates

DEFAULT_DATA_DIR = Path(".switchboard")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_HTTP_TIMEOUT = 30.0
DEFAULT_HTTP_CONNECT_TIMEOUT = 10.0
# Request bodies: most routes take small JSON objects; spec routes take whole connector, workflow
# and OpenAPI documents (the largest public OpenAPI documents are about 2 MB as JSON, more as YAML).
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
DEFAULT_MAX_SPEC_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 256 * 1024

# Values that ship in examples and compose files; production refuses them as secrets.
DEFAULT_SECRETS = frozenset({"", "changethis", "changeme", "secret", "password", "postgres", "switchboard"})

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$")


class Settings(BaseSettings):
    """All process settings. Construct with keyword arguments (tests) or from the environment.

    Raises ``pydantic.ValidationError`` for malformed values and
    ``switchboard.errors.ConfigurationError`` when ``mode="production"`` and a required
    value is missing or is a default secret.
    """

    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_",
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    # Fields of type SecretStr that production refuses when missing or default. Locally the master
    # key is generated into a 0600 file instead.
    SECRETS_REQUIRED_IN_PRODUCTION: ClassVar[tuple[str, ...]] = ("master_key",)

    mode: Literal["local", "production"] = "local"
    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        validation_alias=AliasChoices("SWITCHBOARD_DATA", "SWITCHBOARD_DATA_DIR", "data_dir"),
        description="Directory for local state; the embedded Postgres lives in <data_dir>/pg.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("SWITCHBOARD_DATABASE_URL", "DATABASE_URL", "database_url"),
        repr=False,  # carries a password
        description="Postgres 15+ with pgvector; unset means the embedded server under data_dir.",
    )
    host: str = DEFAULT_HOST
    port: int = Field(
        DEFAULT_PORT,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("SWITCHBOARD_PORT", "PORT", "port"),
        description="0 picks a free port.",
    )
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        None, description="Default: console in local mode, json in production."
    )
    egress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts and CIDRs the SSRF guard lets through (comma-separated in the environment).",
    )
    http_timeout: float = Field(DEFAULT_HTTP_TIMEOUT, gt=0, description="Seconds for a whole outbound request.")
    http_connect_timeout: float = Field(DEFAULT_HTTP_CONNECT_TIMEOUT, gt=0, description="Seconds to connect.")
    max_request_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BYTES, ge=1024, description="Largest request body accepted (413 beyond), except on spec routes."
    )
    max_spec_request_bytes: int = Field(
        DEFAULT_MAX_SPEC_REQUEST_BYTES,
        ge=1024,
        description="Largest request body accepted by routes that take a spec or an OpenAPI document "
        "(connector create and import, connector versions, workflow create, draft and validate).",
    )
    max_event_bytes: int = Field(
        DEFAULT_MAX_EVENT_BYTES, ge=1024, description="Largest event payload a webhook trigger accepts and stores "
        "(413 beyond; at most max_request_bytes in effect)."
    )
    retry_delay_scale: float = Field(
        1.0, ge=0, le=1, description="Multiplies every wait between retries of connector calls (backoff, honoured "
        "Retry-After, durable reschedules). Tests set 0 so that nothing sleeps; traces record the unscaled waits.")
    run_deadline_seconds: float = Field(300.0, gt=0, description="Wall-clock limit of an inline (Instant) run.")
    standard_deadline_seconds: float = Field(900.0, gt=0, description="Wall-clock limit of a Standard execution.")
    long_deadline_seconds: float = Field(86400.0, gt=0, description="Wall-clock limit of a Long execution.")
    worker_id: str | None = Field(
        None, description="This worker's name for DBOS (default: the host name). A restarted worker resumes the "
        "executions its predecessor with the same id left unfinished; give concurrent workers different ids.")
    worker_concurrency: int = Field(8, ge=1, le=1000, description="Executions one worker runs at once.")
    worker_poll_seconds: float = Field(0.1, gt=0, le=60, description="How often an idle worker looks at the queue.")
    schedule_poll_seconds: float = Field(1.0, gt=0, le=60, description="How often each worker looks for due "
                                         "schedules (a slot fires at most this late; each fires once across workers).")
    alert_poll_seconds: float = Field(5.0, gt=0, le=3600, description="How often each worker looks for due alert "
                                      "rules (each rule is evaluated once per interval across workers).")
    notification_poll_seconds: float = Field(1.0, gt=0, le=60, description="How often each worker looks for due "
                                             "notification deliveries.")
    retention_days: float | None = Field(
        30.0, gt=0, description="Executions (with their traces), events and notification deliveries older than this "
        "many days are pruned by the workers and by `switchboard prune`; unset (empty) keeps everything.")
    retention_poll_seconds: float = Field(3600.0, gt=0, description="How often each worker prunes.")
    durable_schema: str = Field("dbos", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                                description="Schema of DBOS's tables in the platform database.")
    heartbeat_seconds: float = Field(10.0, gt=0, description="How often a process renews its lease.")
    lease_seconds: float = Field(
        60.0, gt=0, description="A process whose lease is older is taken for gone: its inline executions are failed.")
    expression_budget_seconds: float = Field(
        30.0, gt=0, description="CPU seconds all the expression evaluations of one run may use together "
        "(one evaluation: at most 5 s, or this when it is less)."
    )

    master_key: SecretStr | None = Field(
        None,
        repr=False,
        description="Master key (base64 of 32 bytes) that wraps the data keys; required in production. "
        "Locally, without it, a key is generated into master_key_file.",
    )
    master_key_file: Path | None = Field(
        None, description="Keyring file of master keys; default <data_dir>/master-key.json (mode 0600)."
    )
    app_database_url: str | None = Field(
        None,
        repr=False,
        description="Connection for the app role that row-level security binds; default: DATABASE_URL "
        "with user switchboard_app and app_database_password.",
    )
    app_database_password: SecretStr | None = Field(
        None, repr=False, description="Password set on the switchboard_app role by `db migrate`."
    )
    oidc_issuer: str | None = Field(None, description="OIDC issuer whose JWTs console users present as Bearer tokens.")
    oidc_audience: str | None = Field(None, description="Expected `aud` of those JWTs.")
    oidc_jwks_url: str | None = Field(None, description="JWKS URL; default: the jwks_uri of <issuer>/.well-known/openid-configuration.")
    oidc_org_claim: str = Field("org_id", description="JWT claim naming the organization (else x-fastn-account-id).")
    public_url: str | None = Field(None, description="Base URL the platform is reached at (OAuth redirect URIs).")
    embedder: str = Field(
        "offline",
        pattern=r"^(offline|openai:[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199})$",
        description="Embeddings of the connector catalog: `offline` (WordLlama, bundled in its wheel: no download) "
        "or `openai:<model>` (an OpenAI-compatible /embeddings at OPENAI_BASE_URL, through the egress guard).",
    )

    # The agents' chat model. Parsed by agents.ModelSetting (imported only when a model other than
    # the default is named, so `import switchboard` stays free of LangChain).
    model: str = Field(
        "offline",
        description="Chat model of the agents: offline (deterministic, no key), openai:<model> or "
        "litellm:<provider/model>.",
    )
    documents_dir: Path | None = Field(
        None,
        description="A folder of API documents (OpenAPI, Swagger) the agents' discovery searches by app name; unset: "
        "the documents the repository ships (tests/data/openapi), when it is there.",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("SWITCHBOARD_OPENAI_BASE_URL", "OPENAI_BASE_URL", "openai_base_url"),
        description="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama) for openai:<model> chat and "
        "openai:<model> embeddings; unset: https://api.openai.com/v1. A private address must be in the egress allow-list.",
    )
    openai_api_key: SecretStr | None = Field(
        None,
        repr=False,
        validation_alias=AliasChoices("SWITCHBOARD_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"),
        description="API key for openai:<model> (chat and embeddings).",
    )
    litellm_api_base: str | None = Field(
        None, description="Endpoint for litellm:<provider/model>; unset: the provider's own."
    )
    litellm_api_key: SecretStr | None = Field(
        None, repr=False, description="API key for litellm:<provider/model>; unset: litellm reads the provider's variable."
    )
    model_timeout: float = Field(120.0, gt=0, description="Seconds one chat model request may take.")
    agent_credit_rates: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Credits per 1,000 tokens by model, beside (or replacing) the built-in table, as JSON: '
        '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}. Models are named without the provider; a dated '
        "variant takes the rate of the longest name it starts with. The offline model costs nothing.",
    )
    agent_credit_default_rate: dict[str, float] | None = Field(
        None, description='Credits per 1,000 tokens of a model no rate names, as JSON {"input": x, "output": y}; '
        "unset: the built-in default (2.5 and 10).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("model")
    @classmethod
    def _model_setting(cls, value: str) -> str:
        value = value.strip()
        if value.lower() != "offline":
            from agents import ModelSetting  # raises ModelSettingInvalid, a ValueError

            ModelSetting.parse(value)
        return value

    @model_validator(mode="after")
    def _credit_rates(self) -> Settings:
        self.credit_rates()  # raises ValueError naming the rate that is wrong
        return self

    @field_validator("openai_base_url", "litellm_api_base", mode="before")
    @classmethod
    def _empty_endpoint_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("openai_base_url", "litellm_api_base")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_url_is_unset(cls, value: Any) -> Any:
        # `DATABASE_URL= make run` is a common way to "unset" it; treat blank as absent.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and "://" in value:
            scheme = urlsplit(value).scheme
            if scheme not in ("postgres", "postgresql"):
                raise ValueError(f"scheme must be postgresql://, got {scheme}://")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute_dir(cls, value: Path) -> Path:
        # Resolved once so a later chdir cannot move the database.
        return value.expanduser().resolve()

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _split_allow_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("egress_allow")
    @classmethod
    def _hosts_or_networks(cls, entries: list[str]) -> list[str]:
        cleaned = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            if not _is_network(entry) and not _HOSTNAME.match(entry):
                raise ValueError(f"{entry!r} is neither a host name, an IP address nor a CIDR network")
            cleaned.append(entry)
        return cleaned

    @model_validator(mode="after")
    def _production_guard(self) -> Settings:
        if self.log_format is None:
            object.__setattr__(self, "log_format", "json" if self.mode == "production" else "console")
        if self.mode != "production":
            return self
        problems: list[str] = []
        if self.database_url is None:
            problems.append("DATABASE_URL is required (the embedded Postgres is for local use)")
        elif _url_password(self.database_url) in DEFAULT_SECRETS:
            problems.append("DATABASE_URL has an empty or default password")
        if self.app_database_url is None and self.app_database_password is None:
            problems.append(
                "SWITCHBOARD_APP_DATABASE_PASSWORD (or SWITCHBOARD_APP_DATABASE_URL) is required for the app role"
            )
        elif self.app_database_password is not None and self.app_database_password.get_secret_value() in DEFAULT_SECRETS:
            problems.append("SWITCHBOARD_APP_DATABASE_PASSWORD must be set to a non-default value")
        for name in self.SECRETS_REQUIRED_IN_PRODUCTION:
            secret = getattr(self, name)
            if secret is None or (isinstance(secret, SecretStr) and secret.get_secret_value() in DEFAULT_SECRETS):
                problems.append(f"SWITCHBOARD_{name.upper()} must be set to a non-default value")
        if problems:
            raise ConfigurationError(self.mode, tuple(problems))
        return self

    def agent_documents(self) -> Path | None:
        """The folder of API documents the agents search: ``documents_dir``, else the repository's."""
        if self.documents_dir is not None:
            return self.documents_dir
        shipped = Path(__file__).resolve().parents[1] / "tests" / "data" / "openapi"
        return shipped if shipped.is_dir() else None

    def model_setting(self) -> "ModelSetting":
        """The agents' :class:`agents.ModelSetting`, with the endpoint and key of its provider."""
        from agents import ModelSetting

        setting = ModelSetting.parse(self.model, timeout=self.model_timeout)
        if setting.provider == "openai":
            base_url, key = self.openai_base_url, self.openai_api_key
        elif setting.provider == "litellm":
            base_url, key = self.litellm_api_base, self.litellm_api_key
        else:
            return setting
        return ModelSetting.parse(self.model, base_url=base_url, api_key=key, timeout=self.model_timeout)

    def credit_rates(self) -> "CreditRates":
        """The rates agents' model calls are priced by (:class:`runtime.CreditRates`)."""
        from runtime import CreditRates

        return CreditRates.with_overrides(self.agent_credit_rates, self.agent_credit_default_rate)

    @property
    def master_key_path(self) -> Path:
        """Where the local master keyring lives."""
        return self.master_key_file or self.data_dir / "master-key.json"

    @property
    def pg_data_dir(self) -> Path:
        """Directory of the embedded Postgres cluster (used only without ``database_url``)."""
        return self.data_dir / "pg"


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def _url_password(url: str) -> str:
    if "://" in url:
        return urlsplit(url).password or ""
    # key=value conninfo
    match = re.search(r"(?:^|\s)password\s*=\s*'?([^'\s]*)", url)
    return match.group(1) if match else ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first call.

    Raises what ``Settings()`` raises. Tests and commands that need different values
    construct ``Settings(...)`` directly instead of clearing this cache.
    """
    return Settings()
