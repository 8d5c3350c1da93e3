"""The Platform: what every caller of the runtime shares, built once per process by the shell
(``switchboard``) and handed to the API, workers and tools.

It holds the seams (database pool, encryptor, outbound HTTP client, clock, OIDC verifier), the
configuration the use cases read (:class:`Config`) and the services built on them (``runs``,
``connections``, ``quotas``, ``webhooks``, and the ``dispatcher`` stored events run through), so
a route, a tool and a worker run the same code with the same caches.
``connections``, ``quotas``, ``catalog``), so a route, a tool and a worker run the same code with the same
caches.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import store
from engine.expressions import Evaluator, ExpressionBudget, ExpressionCache
from engine.http import HttpClient
from runtime._credits import CreditRates
from runtime._embeddings import Embedder

if TYPE_CHECKING:
    from runtime._events import Dispatcher

# An inline run holds a request open; longer work belongs to durable executions.
RUN_DEADLINE_SECONDS = 300.0
# A Standard execution's limit (issue: 15 minutes by default).
STANDARD_DEADLINE_SECONDS = 900.0
# A Long execution's limit.
LONG_DEADLINE_SECONDS = 24 * 3600.0
# Process leases: how often a process renews its lease, and how old a lease may get before the
# process is taken for gone (its inline runs are then failed by the next sweep).
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 60.0
# Threads that evaluate workflow expressions off the event loop; each run's budget bounds its share.
EXPRESSION_THREADS = 4


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


class TokenVerifier(Protocol):
    """Verifies a console user's bearer token (the API's OIDC verifier)."""

    def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims; raises a coded error (401, 503) when it is refused."""
        ...

    def close(self) -> None:
        """Release what the verifier holds."""
        ...


@dataclass(frozen=True)
class Config:
    """What the use cases and the API read from the process settings (the shell fills it in)."""

    mode: str = "local"
    egress_allow: tuple[str, ...] = ()
    public_url: str | None = None
    oidc_org_claim: str = "org_id"
    run_deadline: float = RUN_DEADLINE_SECONDS
    standard_deadline: float = STANDARD_DEADLINE_SECONDS
    long_deadline: float = LONG_DEADLINE_SECONDS
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    lease_seconds: float = LEASE_SECONDS
    durable_schema: str = "dbos"
    expression_budget: ExpressionBudget = field(default_factory=ExpressionBudget)
    max_request_bytes: int = 1 << 20
    max_spec_request_bytes: int = 16 << 20
    max_event_bytes: int = 256 << 10
    # What agents' model calls cost in credits (runtime._credits).
    credit_rates: CreditRates = field(default_factory=CreditRates)
    # Multiplies the durable sleep before a rescheduled call (Retry-After beyond the step's cap):
    # tests set 0, as for the HTTP client's retry waits (``Settings.retry_delay_scale``).
    retry_delay_scale: float = 1.0
    # Activity older than this many days is pruned (runtime._retention); None keeps everything.
    retention_days: float | None = 30.0


@dataclass
class Platform:
    """The process's shared parts and the services over them."""

    db: store.Database
    encryptor: store.Encryptor
    http: HttpClient
    conninfo: str = ""  # the owner's conninfo (migrations, /health)
    clock: Callable[[], datetime] = utc_now
    oidc: TokenVerifier | None = None
    config: Config = field(default_factory=Config)
    # The catalog's embedder (default: the offline one, loaded on first use).
    embedder: Embedder | None = None

    def __post_init__(self) -> None:
        # Imported here: the services import this module for the type.
        from runtime._catalog import Catalog
        from runtime._credits import AgentCredits
        from runtime._connections import ConnectionService
        from runtime._durable import DurableQueue
        from runtime._events import BackgroundDispatcher
        from runtime._embeddings import OfflineEmbedder
        from runtime._quotas import Quotas
        from runtime._runs import Runs
        from runtime._sandboxes import SandboxService
        from runtime._subscriptions import Subscriptions
        from runtime._webhooks import Webhooks

        # One expression cache and thread pool for the process: each expression text is parsed
        # once, and evaluations never run on the event loop the API answers on.
        self.evaluator = Evaluator(
            cache=ExpressionCache(),
            executor=ThreadPoolExecutor(max_workers=EXPRESSION_THREADS, thread_name_prefix="expressions"),
        )
        # This process, as inline executions record their owner (see runtime._leases).
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.durable = DurableQueue(self)
        self.quotas = Quotas(self.db, self.clock)
        # Agents' model calls: the credit ledger and what each organization has left (tools.Credits).
        self.credits = AgentCredits(self.db, self.clock, self.config.credit_rates)
        self.runs = Runs(self)
        self.connections = ConnectionService(self)
        # Hosted sandboxes of imported connectors (live records kept in this process).
        self.sandboxes = SandboxService(self)
        self.webhooks = Webhooks(self)
        # Deliveries of webhook-style app events to their subscriptions (runtime._subscriptions).
        self.subscriptions = Subscriptions(self)
        # Where stored events go to start their runs (through ``runs.start``, so their tier decides
        # inline or queued); any ``Dispatcher`` may replace it.
        self.dispatcher: Dispatcher = BackgroundDispatcher(self)
        self.catalog = Catalog(self.embedder or OfflineEmbedder())

    def close(self) -> None:
        """Stop the expression threads and the durable queue's client (the shell closes the pool,
        HTTP client and OIDC it opened)."""
        if self.evaluator.executor is not None:
            self.evaluator.executor.shutdown(wait=False, cancel_futures=True)
        self.durable.close()
