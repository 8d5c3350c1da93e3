"""The agents' tools: thin, typed calls into ``runtime``, ``engine`` and ``store``.

* :class:`Tool` (name, description, Pydantic arguments, permission, async handler) registered
  in a :class:`ToolRegistry`; :func:`default_registry` holds every built-in tool (registered
  through :meth:`ToolRegistry.register`, as an extension's would be) and the
  :func:`access_policy` hook (role, tenant, credits, quota) that runs before every call.
* :meth:`ToolRegistry.invoke` is the one call path: JSON results, or ``{"error": {"code",
  "message", "pointer"}}`` (never an exception); :meth:`ToolRegistry.as_langchain_tools` binds the
  tools to a :class:`ToolContext` for a LangGraph graph.
* :class:`ToolContext` carries the platform, the principal, the (test) customer, the thread and the
  seams: :class:`Sandboxes`, :class:`Credits`, :class:`Approvals`, :class:`AuditHook`.

Built-in tools: search_catalog, fetch_page, find_api_description, import_api,
write_connector_draft, patch_connector_draft, validate_connector, test_connector,
write_workflow_draft, patch_workflow_draft, validate_workflow, dry_run_workflow,
list_connections, propose_mapping, request_review, publish; for onboarding (the Setup Assistant):
read_onboarding, record_onboarding, prepare_test_customer, run_workflow, embed_config
(:data:`ONBOARDING_STEPS` names the steps recorded in ``organizations.onboarding``).
"""

from tools import _connectors, _customers, _onboarding, _openapi, _web, _workflows
from tools._context import (
    Approvals,
    AuditHook,
    CreditLimit,
    Credits,
    SandboxDirectory,
    Sandboxes,
    ToolContext,
    store_audit,
)
from tools._onboarding import ONBOARDING_STEPS
from tools._openapi import known_apis
from tools._policy import access_policy
from tools._registry import Tool, ToolRegistry, scrub
from tools._web import html_text
from tools.errors import (
    ApprovalRequired,
    ToolArgumentsInvalid,
    ToolError,
    ToolFailed,
    ToolRefused,
    UnknownTool,
)


def builtin_tools() -> list[Tool]:
    """Every built-in tool, in the order a model sees them."""
    return [*_connectors.TOOLS[:1], *_web.TOOLS, *_openapi.TOOLS, *_connectors.TOOLS[1:], *_workflows.TOOLS[:4],
            *_customers.TOOLS, *_workflows.TOOLS[4:], *_onboarding.TOOLS]


def default_registry() -> ToolRegistry:
    """A registry of the built-in tools with the access policy hook."""
    registry = ToolRegistry()
    for tool in builtin_tools():
        registry.register(tool)
    registry.before_tool_call(access_policy)
    return registry


__all__ = [
    "ONBOARDING_STEPS",
    "ApprovalRequired",
    "Approvals",
    "AuditHook",
    "CreditLimit",
    "Credits",
    "SandboxDirectory",
    "Sandboxes",
    "Tool",
    "ToolArgumentsInvalid",
    "ToolContext",
    "ToolError",
    "ToolFailed",
    "ToolRefused",
    "ToolRegistry",
    "UnknownTool",
    "access_policy",
    "builtin_tools",
    "default_registry",
    "html_text",
    "known_apis",
    "scrub",
    "store_audit",
]
