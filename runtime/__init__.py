"""The use cases every caller shares: routes, the agents' tools, MCP, workers and the CLI.

* Access: :class:`Principal`, the customer ceiling of bound credentials, the environment scope of
  Test keys, tenant transactions (:func:`tenant_tx`) and resolving API keys and console users.
* Runs: :class:`Runs` plans, authorizes, charges, loads credentials, executes and records a
  workflow run; :func:`build_engine` is the one way the engine is assembled.
* Credentials and connections: connecting (API keys, OAuth 2.0), reading and refreshing
  credentials, the engine's credential provider, connection tests and OAuth callbacks.
* Quotas: :class:`Quotas` charges API calls and events without a request.
* Catalog: :class:`Catalog` indexes saved connectors and their actions (embeddings and full
  text) and searches them, the organization's own first; :func:`build_embedder` picks the
  :class:`Embedder` (``offline`` WordLlama, or ``openai:<model>``).

A :class:`Platform` (built once per process by ``switchboard``) holds the seams and the services.
Arrows point down: runtime imports ``engine`` and ``store``, never ``api`` or ``switchboard``.
"""

from runtime._access import (
    ACCESS_KEY_HEADER,
    ACCOUNT_HEADER,
    CUSTOMER_CEILING,
    PRODUCTION,
    TENANT_HEADER,
    Principal,
    authenticate_key,
    authenticate_user,
    check_environment,
    customer_ceiling,
    tenant_scope,
    tenant_tx,
)
from runtime._catalog import (
    MAX_QUERY_LENGTH,
    MAX_RESULTS,
    Catalog,
    CatalogHit,
    PreparedIndex,
    check_query,
)
from runtime._embeddings import Embedder, OfflineEmbedder, OpenAIEmbedder, build_embedder
from runtime._connections import CallbackResult, ConnectionService, ConnectionTest
from runtime._credentials import (
    ConnectionCredentials,
    Connector,
    OAuthSetup,
    connection_for_run,
    connector_for_connections,
    create_connection,
    credential_values,
    credentials_for_connection,
    oauth_auth,
    oauth_setup,
    start_oauth,
)
from runtime._engine import Engine, build_engine, build_executor, placeholders, static_credentials
from runtime._platform import RUN_DEADLINE_SECONDS, Config, Platform, TokenVerifier, utc_now
from runtime._quotas import Quotas
from runtime._runs import (
    RECORD_FORMAT,
    RunOutcome,
    RunPlan,
    Runs,
    Started,
    Transactions,
    replay_offline,
    replay_record,
)
from runtime._specs import SpecCache, loaded, problems_out, stored, validated
from runtime.errors import BadHeader, EmbeddingFailed, Forbidden, RunRefused, ServiceError, SpecInvalid, Unauthenticated

__all__ = [
    "ACCESS_KEY_HEADER",
    "ACCOUNT_HEADER",
    "CUSTOMER_CEILING",
    "MAX_QUERY_LENGTH",
    "MAX_RESULTS",
    "PRODUCTION",
    "RECORD_FORMAT",
    "RUN_DEADLINE_SECONDS",
    "TENANT_HEADER",
    "BadHeader",
    "CallbackResult",
    "Catalog",
    "CatalogHit",
    "Config",
    "ConnectionCredentials",
    "ConnectionService",
    "ConnectionTest",
    "Connector",
    "EmbeddingFailed",
    "Embedder",
    "Engine",
    "Forbidden",
    "OAuthSetup",
    "OfflineEmbedder",
    "OpenAIEmbedder",
    "Platform",
    "PreparedIndex",
    "Principal",
    "Quotas",
    "RunOutcome",
    "RunPlan",
    "RunRefused",
    "Runs",
    "ServiceError",
    "SpecCache",
    "SpecInvalid",
    "Started",
    "TokenVerifier",
    "Transactions",
    "Unauthenticated",
    "authenticate_key",
    "authenticate_user",
    "build_embedder",
    "build_engine",
    "build_executor",
    "check_environment",
    "check_query",
    "connection_for_run",
    "connector_for_connections",
    "create_connection",
    "credential_values",
    "credentials_for_connection",
    "customer_ceiling",
    "loaded",
    "oauth_auth",
    "oauth_setup",
    "placeholders",
    "problems_out",
    "replay_offline",
    "replay_record",
    "start_oauth",
    "static_credentials",
    "stored",
    "tenant_scope",
    "tenant_tx",
    "utc_now",
    "validated",
]
