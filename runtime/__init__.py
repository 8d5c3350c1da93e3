"""The use cases every caller shares: routes, the agents' tools, MCP, workers and the CLI.

* Access: :class:`Principal`, the customer ceiling of bound credentials, the environment scope of
  Test keys, tenant transactions (:func:`tenant_tx`) and resolving API keys and console users.
* Runs: :class:`Runs` plans, authorizes, charges, loads credentials, executes and records a
  workflow run; :func:`build_engine` is the one way the engine is assembled.
* Credentials and connections: connecting (API keys, OAuth 2.0), reading and refreshing
  credentials, the engine's credential provider, connection tests and OAuth callbacks.
* Quotas: :class:`Quotas` charges API calls and events without a request.
* Agent credits: :class:`AgentCredits` (``Platform.credits``) prices each model call by
  :class:`CreditRates` and records it in the usage ledger, and tells what an organization has
  left this period (it is the ``tools.Credits`` seam).
* Durable executions: :meth:`Runs.start` is every trigger's entry point (Instant runs inline,
  Standard and Long are queued); :class:`DurableQueue` hands executions to DBOS, :class:`Worker`
  runs them (each connector call a durable step, :class:`DurableInvoker`), and
  :class:`ProcessLease` fails the inline executions of processes that are gone. ``Worker`` and
  ``DurableInvoker`` import DBOS, so they load on first use.
* Events and webhooks: :class:`Webhooks` verifies a delivery (Standard Webhooks, HubSpot v3),
  stores its event and hands it to the platform's :class:`Dispatcher` (by default a
  :class:`BackgroundDispatcher`, which starts the run with :meth:`Runs.start`, so the workflow's
  tier decides inline or queued); :func:`recover_events` dispatches what a crash left behind.
* Schedules: every worker runs a :class:`Scheduler`, which fires each due slot of each
  customer's scheduled deployments exactly once across workers (queued through
  :meth:`Runs.start`), and catches up a missed window with one run.
* Rate limits: a connector's declared ``rate_limit`` holds per connection across every process
  (:class:`SharedRateLimits`, its schedule in Postgres).
* Alerts, notifications, insights and retention: every worker runs an :class:`AlertEvaluator`
  (each due rule evaluated once per interval across workers; firing and resolving stored as
  platform events), a :class:`Notifier` (platform events delivered to organizations' endpoints,
  signed per Standard Webhooks, retried on the :class:`DeliveryRetry` schedule kept in the rows)
  and a :class:`Pruner` (Activity older than the retention, in batches); :func:`customer_insights`
  is the widget's summary of one customer.
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
    SYSTEM_PERMISSIONS,
    TENANT_HEADER,
    Principal,
    authenticate_key,
    authenticate_user,
    check_customer,
    check_environment,
    customer_ceiling,
    system_principal,
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
from runtime._credits import DEFAULT_CREDIT_RATE, DEFAULT_CREDIT_RATES, AgentCredits, CreditRate, CreditRates
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
from runtime._events import BackgroundDispatcher, Dispatcher, recover_events
from runtime._alerts import AlertEvaluator
from runtime._insights import customer_insights
from runtime._notifications import DEFAULT_DELIVERY_RETRY, DeliveryRetry, Notifier, delivery_body, sign_delivery
from runtime._polling import Poller
from runtime._retention import Pruner
from runtime._subscriptions import APP_EVENTS_PREFIX, Subscriber, Subscriptions
from runtime._schedules import Scheduler
from runtime._rate_limits import SharedRateLimits
from runtime._signatures import (
    HUBSPOT_V3,
    SIGNATURE_SCHEMES,
    STANDARD_WEBHOOKS,
    Delivery,
    new_standard_secret,
    sign_hubspot_v3,
    standard_secret_problem,
)
from runtime._webhooks import Receipt, Webhooks, filter_problem, secret_purpose
from runtime._sandboxes import SANDBOX_ORIGIN, HostedSandbox, SandboxRoute, SandboxService
from runtime._engine import Engine, build_engine, build_executor, placeholders, static_credentials
from runtime._durable import QUEUE_NAME, DurableQueue, idempotency_key, partition_key
from runtime._leases import ProcessLease, pid_alive
from runtime._platform import (
    LONG_DEADLINE_SECONDS,
    RUN_DEADLINE_SECONDS,
    STANDARD_DEADLINE_SECONDS,
    Config,
    Platform,
    TokenVerifier,
    utc_now,
)
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
from runtime.errors import (
    BadHeader,
    EmbeddingFailed,
    EventRefused,
    Forbidden,
    PayloadInvalid,
    PayloadTooLarge,
    PollFailed,
    RunRefused,
    SandboxSeedInvalid,
    SandboxTargetRefused,
    SandboxUnavailable,
    ServiceError,
    SignatureInvalid,
    SpecInvalid,
    Unauthenticated,
)

# Loaded on first use: they import DBOS (half a second), which only workers need.
_WORKER_NAMES = ("DurableInvoker", "Worker")


def __getattr__(name: str) -> object:
    if name in _WORKER_NAMES:
        from runtime import _worker

        return getattr(_worker, name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WORKER_NAMES])


__all__ = [
    "ACCESS_KEY_HEADER",
    "ACCOUNT_HEADER",
    "CUSTOMER_CEILING",
    "DEFAULT_CREDIT_RATE",
    "DEFAULT_CREDIT_RATES",
    "HUBSPOT_V3",
    "LONG_DEADLINE_SECONDS",
    "MAX_QUERY_LENGTH",
    "MAX_RESULTS",
    "PRODUCTION",
    "QUEUE_NAME",
    "RECORD_FORMAT",
    "RUN_DEADLINE_SECONDS",
    "SIGNATURE_SCHEMES",
    "STANDARD_DEADLINE_SECONDS",
    "STANDARD_WEBHOOKS",
    "SYSTEM_PERMISSIONS",
    "TENANT_HEADER",
    "AgentCredits",
    "BackgroundDispatcher",
    "BadHeader",
    "CallbackResult",
    "Catalog",
    "CatalogHit",
    "Config",
    "ConnectionCredentials",
    "ConnectionService",
    "ConnectionTest",
    "Connector",
    "CreditRate",
    "CreditRates",
    "Delivery",
    "Dispatcher",
    "DurableInvoker",
    "DurableQueue",
    "EmbeddingFailed",
    "Embedder",
    "Engine",
    "EventRefused",
    "Forbidden",
    "OAuthSetup",
    "PayloadInvalid",
    "PayloadTooLarge",
    "PollFailed",
    "Poller",
    "Pruner",
    "AlertEvaluator",
    "DEFAULT_DELIVERY_RETRY",
    "DeliveryRetry",
    "Notifier",
    "customer_insights",
    "delivery_body",
    "sign_delivery",
    "APP_EVENTS_PREFIX",
    "Subscriber",
    "Subscriptions",
    "OfflineEmbedder",
    "OpenAIEmbedder",
    "Platform",
    "PreparedIndex",
    "Principal",
    "ProcessLease",
    "Quotas",
    "Receipt",
    "RunOutcome",
    "RunPlan",
    "RunRefused",
    "SANDBOX_ORIGIN",
    "HostedSandbox",
    "SandboxRoute",
    "SandboxSeedInvalid",
    "SandboxService",
    "SandboxTargetRefused",
    "SandboxUnavailable",
    "Runs",
    "Scheduler",
    "ServiceError",
    "SharedRateLimits",
    "SignatureInvalid",
    "SpecCache",
    "SpecInvalid",
    "Started",
    "TokenVerifier",
    "Transactions",
    "Unauthenticated",
    "Webhooks",
    "Worker",
    "authenticate_key",
    "authenticate_user",
    "build_embedder",
    "build_engine",
    "build_executor",
    "check_customer",
    "check_environment",
    "check_query",
    "connection_for_run",
    "connector_for_connections",
    "create_connection",
    "credential_values",
    "credentials_for_connection",
    "customer_ceiling",
    "filter_problem",
    "idempotency_key",
    "loaded",
    "new_standard_secret",
    "oauth_auth",
    "oauth_setup",
    "partition_key",
    "pid_alive",
    "placeholders",
    "problems_out",
    "recover_events",
    "replay_offline",
    "replay_record",
    "secret_purpose",
    "sign_hubspot_v3",
    "standard_secret_problem",
    "start_oauth",
    "static_credentials",
    "stored",
    "system_principal",
    "tenant_scope",
    "tenant_tx",
    "utc_now",
    "validated",
]
