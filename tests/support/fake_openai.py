"""A fake OpenAI-compatible server: ``POST /v1/chat/completions`` answers scripted replies in the
real wire format, so the real-model path (langchain-openai, litellm) is tested without the internet.

Non-streamed requests get a ``chat.completion`` object. Streamed ones (``"stream": true``) get
server-sent events, ``data: {chat.completion.chunk}`` lines ending ``data: [DONE]``, the way
OpenAI sends them: the role first, content in pieces, each tool call's id and name in its first
chunk and its arguments JSON split over the following ones, ``finish_reason`` in the last choice
chunk, and, when ``stream_options.include_usage`` is set, a last chunk with no choices and the
``usage``. Every request body is kept in :attr:`FakeOpenAI.requests` for assertions.

A request with no scripted reply left gets a 400 ``invalid_request_error`` whose message echoes the
bearer key, as real providers echo part of a wrong key: tests use it to check that errors are
translated without leaking the key.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class ScriptedCall:
    """One tool call the fake model makes."""

    name: str
    arguments: dict[str, Any]
    id: str = "call_1"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: text, tool calls, or both, and the usage the server reports for it."""

    content: str = ""
    tool_calls: tuple[ScriptedCall, ...] = ()
    prompt_tokens: int = 10
    completion_tokens: int = 5


@dataclass
class FakeOpenAI:
    """The fake server's state; serve :attr:`app` (e.g. with ``support.servers.serve_app``)."""

    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Pieces of text and of arguments JSON per chunk: small, so every call spans several chunks.
    piece: int = 7

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies, answered in order, one per request."""
        self.replies.extend(replies)

    @property
    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if not self.replies:
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return JSONResponse(
                {"error": {"message": f"no scripted reply left (key {key})", "type": "invalid_request_error",
                           "param": None, "code": None}},
                status_code=400,
            )
        reply = self.replies.popleft()
        model = body.get("model", "fake")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._chunks(reply, model, include_usage), media_type="text/event-stream")
        return JSONResponse(_completion(reply, model))

    def _chunks(self, reply: Reply, model: str, include_usage: bool) -> Iterator[str]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data = {
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for piece in _pieces(reply.content, self.piece):
            yield chunk({"content": piece})
        for index, call in enumerate(reply.tool_calls):
            yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                         "function": {"name": call.name, "arguments": ""}}]})
            for piece in _pieces(json.dumps(call.arguments), self.piece):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if include_usage:
            usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": None, "choices": [], "usage": _usage(reply)}
            yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in reply.tool_calls
        ]
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": _usage(reply),
    }


def _usage(reply: Reply) -> dict[str, int]:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i: i + size] for i in range(0, len(text), size)]
