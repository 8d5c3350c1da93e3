"""The chat model factory: both real-model paths against a fake OpenAI-compatible server over real
HTTP, token usage, error translation, the setting's parsing, and lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool

from agents import (
    ModelSetting,
    ModelSettingInvalid,
    ModelUnavailable,
    OfflineChatModel,
    TokenUsage,
    chat_model,
    model_errors,
)
from support.fake_openai import FakeOpenAI, Reply, ScriptedCall
from support.servers import serve_app

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-canary-7f3a"


@tool
def find_customer(email: str) -> dict:
    """Find a customer by email."""
    return {"id": "cus_1", "email": email, "name": "Ada Lovelace"}


@pytest.fixture(scope="module")
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture(scope="module")
def fake_url(fake: FakeOpenAI):
    with serve_app(fake.app) as url:
        yield url


@pytest.fixture
def server(fake: FakeOpenAI, fake_url: str) -> FakeOpenAI:
    fake.replies.clear()
    fake.requests.clear()
    return fake


def setting_for(path: str, url: str) -> ModelSetting:
    text = {"openai": "openai:fake-gpt", "litellm": "litellm:openai/fake-gpt"}[path]
    return ModelSetting.parse(text, base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def run_tool_loop(model, prompt: str, usage: TokenUsage, *, stream: bool) -> tuple[list, list[list[AIMessageChunk]]]:
    """The smallest tool-calling loop: call the model, run its tool calls, send the results back,
    until it answers without a tool call. Returns the messages and each streamed turn's chunks."""
    bound = model.bind_tools([find_customer])
    messages: list = [HumanMessage(prompt)]
    turns: list[list[AIMessageChunk]] = []
    for _ in range(4):
        if stream:
            chunks = list(bound.stream(messages, config={"callbacks": [usage]}))
            turns.append(chunks)
            merged = chunks[0]
            for chunk in chunks[1:]:
                merged = merged + chunk
            answer = AIMessage(content=merged.content, tool_calls=merged.tool_calls,
                               usage_metadata=merged.usage_metadata, response_metadata=merged.response_metadata)
        else:
            answer = bound.invoke(messages, config={"callbacks": [usage]})
        messages.append(answer)
        if not answer.tool_calls:
            return messages, turns
        for call in answer.tool_calls:
            result = find_customer.invoke(call["args"])
            messages.append(ToolMessage(json.dumps(result), tool_call_id=call["id"], name=call["name"]))
    raise AssertionError("the loop did not end")


def script(server: FakeOpenAI) -> None:
    server.enqueue(
        Reply(tool_calls=(ScriptedCall("find_customer", {"email": "ada@example.com"}, id="call_abc123"),),
              prompt_tokens=41, completion_tokens=17),
        Reply(content="Found Ada Lovelace, customer cus_1.", prompt_tokens=73, completion_tokens=9),
    )


@pytest.mark.parametrize("path", ["openai", "litellm"])
def test_a_streamed_tool_call_and_answer_through_the_factory(path: str, server: FakeOpenAI, fake_url: str) -> None:
    script(server)
    usage = TokenUsage()
    messages, turns = run_tool_loop(chat_model(setting_for(path, fake_url)), "Who is ada@example.com?", usage, stream=True)

    call_turn, answer_turn = turns
    # The arguments arrived in pieces over several chunks and were put back together.
    assert sum(1 for c in call_turn for t in c.tool_call_chunks if t.get("args")) > 1
    assert messages[1].tool_calls == [
        {"name": "find_customer", "args": {"email": "ada@example.com"}, "id": "call_abc123", "type": "tool_call"}]
    assert messages[-1].content == "Found Ada Lovelace, customer cus_1."
    assert sum(1 for c in answer_turn if c.content) > 1

    assert [(c.input_tokens, c.output_tokens, c.counted) for c in usage.calls] == [(41, 17, "reported"), (73, 9, "reported")]
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (114, 26, 140)

    first, second = server.requests
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["model"] == "fake-gpt"
    assert [t["function"]["name"] for t in first["tools"]] == ["find_customer"]
    assert first["tools"][0]["function"]["parameters"]["properties"]["email"]["type"] == "string"
    assistant, tool_reply = second["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call_abc123"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"email": "ada@example.com"}
    assert tool_reply["role"] == "tool" and tool_reply["tool_call_id"] == "call_abc123"
    assert json.loads(tool_reply["content"])["id"] == "cus_1"


@pytest.mark.parametrize("path", ["openai", "litellm"])
def test_a_non_streamed_tool_call_and_answer(path: str, server: FakeOpenAI, fake_url: str) -> None:
    script(server)
    usage = TokenUsage()
    messages, _ = run_tool_loop(chat_model(setting_for(path, fake_url)), "Who is ada@example.com?", usage, stream=False)
    assert messages[1].tool_calls[0]["args"] == {"email": "ada@example.com"}
    assert messages[-1].content == "Found Ada Lovelace, customer cus_1."
    assert (usage.input_tokens, usage.output_tokens) == (114, 26)
    assert not any(r.get("stream") for r in server.requests)


@pytest.mark.parametrize("path", ["openai", "litellm"])
def test_a_provider_error_becomes_model_unavailable_without_the_key(path: str, server: FakeOpenAI, fake_url: str) -> None:
    setting = setting_for(path, fake_url)
    model = chat_model(setting)
    with pytest.raises(ModelUnavailable) as raised:
        with model_errors(setting):
            model.invoke("hello")
    assert raised.value.code == "model_unavailable" and raised.value.http_status == 503
    assert raised.value.model == setting.name
    assert "HTTP 400" in raised.value.reason
    assert KEY not in str(raised.value) and raised.value.__cause__ is None


def test_other_errors_pass_through_model_errors() -> None:
    with pytest.raises(KeyError):
        with model_errors("offline"):
            raise KeyError("x")


def test_offline_is_the_default_and_counts_no_tokens() -> None:
    model = chat_model()
    assert isinstance(model, OfflineChatModel)
    usage = TokenUsage()
    answer = model.invoke("Summarize my inbox", config={"callbacks": [usage]})
    assert answer.response_metadata["model_provider"] == "offline"
    assert [(c.model, c.input_tokens, c.output_tokens, c.counted) for c in usage.calls] == [("offline", 0, 0, "offline")]


@pytest.mark.parametrize(
    ("text", "provider", "model"),
    [("offline", "offline", ""), (" OFFLINE ", "offline", ""), ("openai:gpt-4o-mini", "openai", "gpt-4o-mini"),
     ("litellm:anthropic/claude-sonnet-4", "litellm", "anthropic/claude-sonnet-4"),
     ("litellm:openai/gpt-4o", "litellm", "openai/gpt-4o")],
)
def test_settings_parse(text: str, provider: str, model: str) -> None:
    setting = ModelSetting.parse(text)
    assert (setting.provider, setting.model) == (provider, model)


@pytest.mark.parametrize("text", ["", "gpt-4o", "anthropic:claude", "openai:", "openai:gpt 4", "litellm:gpt-4o",
                                  "litellm:/gpt", "offline:x"])
def test_bad_settings_are_refused(text: str) -> None:
    with pytest.raises(ModelSettingInvalid) as raised:
        ModelSetting.parse(text)
    assert raised.value.setting == text and raised.value.http_status == 422


def test_the_key_stays_out_of_the_settings_text() -> None:
    setting = ModelSetting.parse("openai:gpt-4o-mini", api_key=KEY, base_url="http://127.0.0.1:1/v1")
    assert KEY not in repr(setting) and KEY not in str(setting)


def test_openai_without_key_or_server_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelUnavailable, match="OPENAI_API_KEY"):
        chat_model("openai:gpt-4o-mini")


def test_a_server_of_ones_own_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = chat_model(ModelSetting.parse("openai:llama3", base_url="http://127.0.0.1:11434/v1"))
    assert model.openai_api_base == "http://127.0.0.1:11434/v1"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_agents_imports_neither_litellm_nor_openai() -> None:
    modules = _modules_after("import agents, switchboard\nagents.chat_model('offline')")
    assert "litellm" not in modules and "langchain_litellm" not in modules
    assert "openai" not in modules and "langchain_openai" not in modules


def test_the_shell_does_not_import_the_agents_stack_and_the_api_no_model_client() -> None:
    # `switchboard --help` and settings stay light; the API serves the threads, so it imports the
    # agents, but a model client only when a model other than offline is chosen.
    modules = _modules_after("import switchboard\nswitchboard.Settings()")
    assert not {"agents", "langchain_core", "litellm", "openai"} & modules
    modules = _modules_after("import switchboard, api\nswitchboard.Settings()")
    assert not {"litellm", "openai", "langchain_openai", "langchain_litellm"} & modules


def test_choosing_openai_does_not_import_litellm() -> None:
    modules = _modules_after("import agents\nagents.chat_model(agents.ModelSetting.parse('openai:m', api_key='k'))")
    assert "langchain_openai" in modules and "litellm" not in modules
