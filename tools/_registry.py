"""The registry of the agents' tools, and the one path every call takes.

A :class:`Tool` is a name, a description, a Pydantic model of its arguments, the runtime
permission it needs (``connectors:write``...) and an async handler ``(ctx, args) -> dict``.
:meth:`ToolRegistry.invoke` is the only way a tool runs:

1. the arguments are validated against the tool's model (a field's JSON pointer on failure);
2. every ``before_tool_call`` hook runs (the default is :func:`tools._policy.access_policy`: role
   permission, tenant scope, credits, quota); a hook refuses by raising ``ToolRefused``, and the
   refusal is audited;
3. the handler runs; whatever it raises becomes an error result, so a run never crashes on a tool;
4. the result is scrubbed of credential-shaped fields (a last line behind handlers that never read
   credentials) and a successful write is audited.

Every outcome is JSON: the handler's dict, or ``{"error": {"code", "message", "pointer"}}``.
:meth:`ToolRegistry.as_langchain_tools` hands the same calls to a LangGraph graph as LangChain
``StructuredTool`` s whose ToolMessage content is that JSON (the dict is the message's artifact).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

import store
from engine.errors import EngineError
from runtime import ServiceError, SpecInvalid
from tools._context import ToolContext
from tools.errors import ToolArgumentsInvalid, ToolError, ToolFailed, ToolRefused, UnknownTool

log = logging.getLogger(__name__)

Handler = Callable[[ToolContext, Any], Awaitable[dict[str, Any]]]
# A hook is blocking (it may read the database): the registry runs it in a worker thread.
BeforeToolCall = Callable[[ToolContext, "Tool", BaseModel], None]

# Field names whose string values are credentials wherever they appear in a result.
SENSITIVE_FIELDS = frozenset({
    "password", "client_secret", "signing_secret", "access_token", "refresh_token", "id_token", "api_key_value",
    "secret_value", "private_key",
})
# Fields that hold a whole set of credentials: dropped from results.
CREDENTIAL_SETS = frozenset({"credentials", "secrets", "tokens"})
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Tool:
    """One tool: ``permission`` is the ``(area, action)`` of the runtime's access policy it needs;
    ``writes`` says it changes something (a successful call is audited); ``customer_arg`` names the
    argument that picks a customer (checked for tenant scope and charged to that customer's quota),
    when the tool acts for one."""

    name: str
    description: str
    args: type[BaseModel]
    handler: Handler
    permission: tuple[str, str]
    writes: bool = False
    customer_arg: str | None = None

    def schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema (what a model sees)."""
        return self.args.model_json_schema()


def _pointer(loc: Iterable[Any]) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def translate(exc: BaseException) -> ToolError:
    """A tool error for what a handler raised: the coded errors of runtime, engine and store keep
    their code, status and pointer; anything else is an internal error that says nothing of its
    cause (it is logged)."""
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, SpecInvalid):
        problems = list(exc.errors)
        first = problems[0] if problems else {"pointer": None, "reason": str(exc)}
        return ToolError(f"the {exc.kind} spec does not validate: {first['reason']}", pointer=first["pointer"], code=exc.code,
                         http_status=exc.http_status, problems=problems)
    if isinstance(exc, ServiceError | EngineError | store.StoreError):
        return ToolError(str(exc), pointer=getattr(exc, "pointer", None), code=exc.code, http_status=exc.http_status)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return ToolFailed(first["msg"], pointer=_pointer(first["loc"]))
    log.exception("tool failed unexpectedly")
    return ToolError(f"the tool failed unexpectedly ({type(exc).__name__})", code="internal_error")


def scrub(value: Any) -> Any:
    """``value`` without credential-shaped fields: credential sets dropped, secret strings redacted."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in CREDENTIAL_SETS and isinstance(item, dict):
                continue
            if key in SENSITIVE_FIELDS and isinstance(item, str) and "{{" not in item:
                out[key] = REDACTED
            else:
                out[key] = scrub(item)
        return out
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


class ToolRegistry:
    """Tools by name, the hooks that run before each call, and the call path (see the module)."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._hooks: list[BeforeToolCall] = []

    def register(self, tool: Tool) -> Tool:
        """Add ``tool`` (built-in tools and extensions alike); a second tool of one name is refused."""
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def before_tool_call(self, hook: BeforeToolCall) -> BeforeToolCall:
        """Add a policy hook; it runs before every call and refuses by raising ``ToolRefused``."""
        self._hooks.append(hook)
        return hook

    def names(self) -> list[str]:
        """The registered tool names, in registration order."""
        return list(self._tools)

    def get(self, name: str) -> Tool:
        """The tool ``name``; ``UnknownTool`` otherwise."""
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(name) from None

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    async def invoke(self, ctx: ToolContext, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """Call tool ``name`` with ``arguments`` for ``ctx``: its JSON result, or
        ``{"error": {...}}``. Never raises for anything the tool or the hooks do."""
        try:
            tool = self.get(name)
        except UnknownTool as exc:
            return exc.as_result()
        try:
            args = tool.args.model_validate(arguments or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            return ToolArgumentsInvalid(f"{first['msg']}", pointer=_pointer(first["loc"])).as_result()
        try:
            for hook in self._hooks:
                await anyio.to_thread.run_sync(hook, ctx, tool, args)
        except ToolRefused as refused:
            await self._audit(ctx, tool, "error", refused, refused=True)
            return refused.as_result()
        except Exception as exc:  # a hook that fails refuses: a policy never fails open
            error = translate(exc)
            refused = ToolRefused(error.message, code=error.code, http_status=error.http_status)
            await self._audit(ctx, tool, "error", refused, refused=True)
            return refused.as_result()
        try:
            result = await tool.handler(ctx, args)
        except Exception as exc:
            error = translate(exc)
            if tool.writes:
                await self._audit(ctx, tool, "error", error)
            return error.as_result()
        if tool.writes:
            await self._audit(ctx, tool, "success", None)
        # JSON, as a model reads it: datetimes as ISO 8601 text.
        return to_jsonable_python(scrub(result))

    async def _audit(self, ctx: ToolContext, tool: Tool, outcome: str, error: ToolError | None, *,
                     refused: bool = False) -> None:
        # The audit log's outcomes are success and error; a refusal is an error whose detail says
        # the policy refused it (the tool never ran).
        try:
            await anyio.to_thread.run_sync(lambda: ctx.audit(
                ctx, tool.name, outcome=outcome, error_code=error.code if error else None,
                status=error.http_status if error else None,
                detail={"permission": ":".join(tool.permission), "refused": refused},
            ))
        except Exception:
            # The answer to the model stands; a lost audit entry is an operator's problem, logged.
            log.exception("could not audit tool call %s", tool.name)

    def as_langchain_tools(self, ctx: ToolContext, names: Iterable[str] | None = None) -> list[Any]:
        """The tools (all, or ``names``) bound to ``ctx`` as LangChain ``StructuredTool`` s. Each
        returns ``(json_text, result)`` (``response_format="content_and_artifact"``): the model
        reads the JSON, errors included; a graph reads the dict from the ToolMessage's artifact."""
        from langchain_core.tools import StructuredTool

        def bind(tool: Tool) -> Any:
            async def call(**kwargs: Any) -> tuple[str, dict[str, Any]]:
                result = await self.invoke(ctx, tool.name, kwargs)
                return json.dumps(result, default=str), result

            # The schema as a dict: LangChain passes the arguments through unvalidated, and the
            # registry validates them, so a bad argument is the same readable error on every path.
            return StructuredTool.from_function(
                coroutine=call, name=tool.name, description=tool.description, args_schema=tool.schema(),
                response_format="content_and_artifact",
            )

        chosen = [self.get(n) for n in names] if names is not None else list(self)
        return [bind(tool) for tool in chosen]
