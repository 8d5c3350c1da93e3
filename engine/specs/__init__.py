"""Spec models: connectors, workflows and triggers, as validated data."""

from ._auth import ApiKeyAuth, ApiKeyPlacement, AuthSpec, BasicAuth, BearerAuth, NoAuth, OAuth2Auth
from ._connector import ActionSpec, ConnectorSpec, EventSpec, Idempotency, Pagination, RateLimitSpec, WebhookSignature
from ._refs import deref, with_defs
from ._loading import json_pointer, load_connector, load_connectors_dir, load_model, load_workflow, parse_document
from ._schema_export import SCHEMA_MODELS, spec_json_schema, write_json_schemas
from ._workflow import (
    STEP_KINDS,
    ActionStep,
    AppEventTrigger,
    CallSpec,
    CallStep,
    ConcurrencySpec,
    DailySchedule,
    DelaySpec,
    DelayStep,
    FilterSpec,
    FilterStep,
    ForeachSpec,
    ForeachStep,
    IfStep,
    ManualTrigger,
    MapStep,
    MonthlySchedule,
    RetrySpec,
    ScheduleTrigger,
    Step,
    SyncMatch,
    SyncSpec,
    SyncStep,
    SyncTarget,
    TriggerSpec,
    WaitSpec,
    WaitStep,
    WebhookTrigger,
    WeeklySchedule,
    WorkflowSpec,
    iter_steps,
)

__all__ = [
    "ActionSpec", "ActionStep", "ApiKeyAuth", "ApiKeyPlacement", "AppEventTrigger", "AuthSpec", "BasicAuth",
    "BearerAuth", "CallSpec", "CallStep", "ConcurrencySpec", "ConnectorSpec", "DailySchedule", "DelaySpec", "DelayStep", "EventSpec", "FilterSpec",
    "FilterStep", "ForeachSpec", "ForeachStep", "Idempotency", "IfStep", "ManualTrigger", "MapStep", "MonthlySchedule", "NoAuth", "OAuth2Auth",
    "Pagination", "RateLimitSpec", "RetrySpec", "SCHEMA_MODELS", "STEP_KINDS", "ScheduleTrigger", "Step", "SyncMatch", "SyncSpec", "SyncStep",
    "SyncTarget", "TriggerSpec", "WaitSpec", "WaitStep", "WebhookSignature", "WebhookTrigger", "WeeklySchedule", "WorkflowSpec", "deref", "iter_steps", "json_pointer",
    "load_connector", "load_connectors_dir", "load_model", "load_workflow", "parse_document", "spec_json_schema",
    "with_defs", "write_json_schemas",
]
