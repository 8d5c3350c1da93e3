"""The chat model a setting names, built by one factory for every graph.

Settings (``SWITCHBOARD_MODEL``):

* ``offline`` (the default): :class:`~agents._offline.OfflineChatModel`, deterministic, no key.
* ``openai:<model>``: langchain-openai's ``ChatOpenAI``; a base URL points it at any
  OpenAI-compatible server (vLLM, llama.cpp, Ollama...).
* ``litellm:<provider/model>``: langchain-litellm's ``ChatLiteLLM`` over litellm, which reads the
  provider's own key variables unless a key is given.

langchain-openai and litellm are imported only when chosen: litellm alone costs seconds and
hundreds of megabytes, and ``import agents`` must stay cheap for the API and the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from agents._offline import OfflineChatModel
from agents._planner import Plan
from agents.errors import ModelSettingInvalid, ModelUnavailable

Provider = Literal["offline", "openai", "litellm"]
PROVIDERS: tuple[Provider, ...] = ("offline", "openai", "litellm")
DEFAULT_MODEL_TIMEOUT = 120.0
DEFAULT_MODEL_RETRIES = 2
# An OpenAI-compatible server of one's own (vLLM, llama.cpp, Ollama) usually checks no key, but the
# openai client refuses to start without one.
NO_KEY = "no-key"


@dataclass(frozen=True)
class ModelSetting:
    """Which chat model to use and how to reach it.

    ``provider`` and ``model`` come from the setting text (:meth:`parse`); ``base_url`` and
    ``api_key`` are the endpoint and key (None: the library's own environment variables);
    ``timeout`` is seconds per request and ``max_retries`` the library's retries.
    """

    provider: Provider = "offline"
    model: str = ""
    base_url: str | None = None
    api_key: SecretStr | None = field(default=None, repr=False)
    timeout: float = DEFAULT_MODEL_TIMEOUT
    max_retries: int = DEFAULT_MODEL_RETRIES

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        base_url: str | None = None,
        api_key: str | SecretStr | None = None,
        timeout: float = DEFAULT_MODEL_TIMEOUT,
        max_retries: int = DEFAULT_MODEL_RETRIES,
    ) -> ModelSetting:
        """Parse ``offline``, ``openai:<model>`` or ``litellm:<provider/model>``.

        Raises :class:`ModelSettingInvalid` (a ``ValueError``) naming the setting and what is wrong.
        """
        value = text.strip()
        provider, sep, model = value.partition(":")
        provider, model = provider.strip().lower(), model.strip()
        if provider == "offline":
            if sep and model:
                raise ModelSettingInvalid(text, "'offline' takes no model name")
            return cls("offline", "", None, None, timeout, max_retries)
        if provider not in PROVIDERS or not sep:
            raise ModelSettingInvalid(text, "expected 'offline', 'openai:<model>' or 'litellm:<provider/model>'")
        if not model or any(ch.isspace() for ch in model):
            raise ModelSettingInvalid(text, f"'{provider}:' needs a model name without spaces")
        if provider == "litellm" and ("/" not in model or model.startswith("/") or model.endswith("/")):
            raise ModelSettingInvalid(text, "litellm models are named '<provider>/<model>', e.g. 'litellm:openai/gpt-4o-mini'")
        if timeout <= 0:
            raise ModelSettingInvalid(text, f"timeout must be positive, got {timeout}")
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        return cls(provider, model, base_url or None, key, timeout, max_retries)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """The setting as text (``offline``, ``openai:gpt-4o-mini``): never carries the key."""
        return self.provider if self.provider == "offline" else f"{self.provider}:{self.model}"

    def __str__(self) -> str:
        return self.name


def chat_model(
    setting: ModelSetting | str = "offline",
    *,
    plan: Plan | None = None,
    apps: Sequence[str] = (),
) -> BaseChatModel:
    """The chat model ``setting`` names, ready for ``bind_tools``.

    ``plan`` and ``apps`` are for the offline model (the graph's table of steps and the catalog's
    app names); other models ignore them. Raises :class:`ModelSettingInvalid` for a bad setting
    and :class:`ModelUnavailable` when the model's package or key is missing.
    """
    if isinstance(setting, str):
        setting = ModelSetting.parse(setting)
    if setting.provider == "offline":
        return OfflineChatModel(plan=plan or Plan(), apps=tuple(apps))
    if setting.provider == "openai":
        return _openai(setting)
    return _litellm(setting)


def _openai(setting: ModelSetting) -> BaseChatModel:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as error:
        raise ModelUnavailable(setting.name, f"langchain-openai is not installed ({error.name})") from None
    key = setting.api_key.get_secret_value() if setting.api_key else os.environ.get("OPENAI_API_KEY")
    base_url = setting.base_url or os.environ.get("OPENAI_BASE_URL")
    if not key:
        if not base_url:
            raise ModelUnavailable(setting.name, "no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a server of your own")
        key = NO_KEY
    return ChatOpenAI(
        model=setting.model,
        base_url=base_url,
        api_key=SecretStr(key),
        timeout=setting.timeout,
        max_retries=setting.max_retries,
        # Usage in streams too: langchain-openai leaves it off for a custom base URL, and tokens
        # are counted from it.
        stream_usage=True,
    )


def _litellm(setting: ModelSetting) -> BaseChatModel:
    # litellm fetches its model price list from the internet on import unless told not to
    # (DESIGN.md rule 6: no default path touches the internet); its bundled copy is enough here.
    # setdefault: an operator who wants the live list can still say so.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    try:
        import litellm
        from langchain_litellm import ChatLiteLLM
    except ImportError as error:
        raise ModelUnavailable(setting.name, f"langchain-litellm is not installed ({error.name})") from None
    # litellm prints help banners to stdout on every error; the platform's output is its logs.
    litellm.suppress_debug_info = True
    return ChatLiteLLM(
        model=setting.model,
        api_base=setting.base_url,
        api_key=setting.api_key.get_secret_value() if setting.api_key else None,
        request_timeout=setting.timeout,
        max_retries=setting.max_retries,
        stream_options={"include_usage": True},
    )


def is_model_error(error: BaseException) -> bool:
    """Whether ``error`` was raised by the openai or litellm client (by its class's module, so
    neither library is imported to ask)."""
    return any(cls.__module__.split(".")[0] in ("openai", "litellm") for cls in type(error).__mro__)


@contextmanager
def model_errors(setting: ModelSetting | str) -> Iterator[None]:
    """Translate the openai and litellm errors raised in the block into :class:`ModelUnavailable`.

    The reason names the error class and HTTP status only: providers echo part of a wrong key in
    their messages, and a key must never reach a log, a trace or the builder.
    """
    try:
        yield
    except Exception as error:
        if not is_model_error(error):
            raise
        status = getattr(error, "status_code", None)
        reason = type(error).__name__ + (f" (HTTP {status})" if status else "")
        raise ModelUnavailable(str(setting), reason) from None
