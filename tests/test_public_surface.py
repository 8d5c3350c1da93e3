"""The curated public surface of the engine's packages is a contract: these names, and only these."""

import importlib

import pytest

SURFACES = {
    "engine": {"ActionCheck", "ConnectorCheckReport", "Due", "EngineError", "Schedule", "check_connector", "check_workflow", "sample_input"},
    "engine.expressions": {"FORBIDDEN_FUNCTIONS", "Evaluator", "Expression", "ExpressionBudget", "ExpressionCache",
                           "ExpressionMeter", "Runtime", "as_text", "bind_runtime", "check_template",
                           "compile_expression", "evaluate", "is_template", "quote_field", "references", "render",
                           "reset_runtime", "shared_cache", "template_parts"},
    "engine.actions": {"RAW_REQUEST", "RAW_REQUEST_INPUT", "ActionExecutor", "InputValidators", "ActionResponse", "Page", "PreparedRequest",
                       "build_raw_request", "build_request", "effective_base_url", "paginate", "retry_policy_of",
                       "validate_input"},
    "engine.datamodel": {"KINDS", "model_schema", "schema_paths", "suggest_mapping", "validate_record"},
    "engine.specs": {
        "ActionSpec", "ActionStep", "ApiKeyAuth", "ApiKeyPlacement", "AppEventTrigger", "AuthSpec", "BasicAuth",
        "BearerAuth", "CallSpec", "CallStep", "ConcurrencySpec", "ConnectorSpec", "DailySchedule", "DelaySpec", "DelayStep", "EventSpec", "FilterSpec",
        "FilterStep", "ForeachSpec", "ForeachStep", "Idempotency", "IfStep", "ManualTrigger", "MapStep", "MonthlySchedule", "NoAuth", "OAuth2Auth",
        "Pagination", "RateLimitSpec", "RetrySpec", "SCHEMA_MODELS", "STEP_KINDS", "ScheduleTrigger", "Step", "SyncMatch", "SyncSpec", "SyncStep",
        "SyncTarget", "TriggerSpec", "WaitSpec", "WaitStep", "WebhookSignature", "WebhookTrigger", "WeeklySchedule", "WorkflowSpec", "deref", "iter_steps",
        "json_pointer", "load_connector", "load_connectors_dir", "load_model", "load_workflow", "parse_document",
        "spec_json_schema", "with_defs", "write_json_schemas",
    },
}


@pytest.mark.parametrize("module", sorted(SURFACES))
def test_exported_names(module):
    mod = importlib.import_module(module)
    assert set(mod.__all__) == SURFACES[module]
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_engine_imports_nothing_above_it():
    # DESIGN.md: engine/ imports nothing of the other packages.
    import pathlib
    import re

    root = pathlib.Path(importlib.import_module("engine").__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(from|import)\s+(api|store|switchboard|agents|tools)\b", line)
    ]
    assert offenders == []


def test_api_surface() -> None:
    import api

    assert sorted(api.__all__) == [
        "ApiError",
        "OidcVerifier",
        "coded_error_response",
        "create_app",
        "install_error_handlers",
        "problem_response",
    ]


def test_runtime_surface() -> None:
    import runtime

    assert sorted(runtime.__all__) == sorted(name for name in dir(runtime) if not name.startswith("_") and name not in (
        "errors",)), "runtime.__all__ lists exactly what the package exports"
    assert {"Platform", "Principal", "Runs", "build_engine", "replay_record", "tenant_tx", "Worker", "DurableQueue",
            "Dispatcher", "Webhooks", "recover_events", "system_principal"} <= set(runtime.__all__)
    # One system principal: the webhook dispatcher and the durable worker act through the same one.
    assert runtime.system_principal.__module__ == "runtime._access"
    for name in runtime.__all__:
        value = getattr(runtime, name)
        assert name.isupper() or value.__module__.startswith("runtime"), name


def test_agents_surface() -> None:
    import agents

    assert set(agents.__all__) == {
        "GRAPHS", "PROVIDERS", "SHAPES", "AgentError", "AppObject", "CallUsage", "CreditMeter", "CreditsExhausted", "ConnectorRequest", "Decision",
        "GraphUnavailable", "Intent", "ModelSetting", "ModelSettingInvalid", "ModelUnavailable", "OfflineChatModel",
        "Plan", "PlanError", "PlanState", "PlanStep", "Refusal", "ReviewAnswerInvalid", "TokenUsage", "ToolResult", "Trigger", "UnknownGraph",
        "build_graph", "call_usage", "chat_model", "is_model_error", "model_errors", "next_step", "parse_intent",
        "read_request", "usage_callbacks", "Recommended", "Route", "recommended_prompts", "route_of", "review_answer",
        # threads
        "MAX_MESSAGE_CHARS", "TERMINAL_EVENTS", "ContextFactory", "GraphFactory", "RunCallbacks", "RunNotActive", "ThreadBusy",
        "ThreadError", "ThreadEvent", "ThreadNotInterrupted", "Threads", "default_context", "message_data",
    }
    assert agents.GRAPHS == ("home", "setup_assistant", "connector_agent", "integration_agent")
    for name in agents.__all__:
        assert getattr(agents, name) is not None


def test_tools_surface() -> None:
    import tools

    assert set(tools.__all__) == {
        "ONBOARDING_STEPS", "ApprovalRequired", "Approvals", "AuditHook", "CreditLimit", "Credits", "SandboxDirectory", "Sandboxes", "Tool",
        "ToolArgumentsInvalid", "ToolContext", "ToolError", "ToolFailed", "ToolRefused", "ToolRegistry", "UnknownTool",
        "access_policy", "builtin_tools", "default_registry", "html_text", "known_apis", "scrub", "store_audit",
    }
    assert tools.default_registry().names() == [
        "search_catalog", "fetch_page", "find_api_description", "import_api", "write_connector_draft",
        "patch_connector_draft", "validate_connector", "test_connector", "write_workflow_draft", "patch_workflow_draft",
        "validate_workflow", "dry_run_workflow", "list_connections", "propose_mapping", "request_review", "publish",
        "read_onboarding", "record_onboarding", "prepare_test_customer", "run_workflow", "embed_config",
    ]


def test_prompts_surface() -> None:
    import prompts

    assert set(prompts.__all__) == {"ROLES", "Prompt", "PromptError", "load"}
    assert prompts.ROLES == ("home", "setup_assistant", "connector_agent", "integration_agent")
