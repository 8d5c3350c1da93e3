"""Text embeddings for the connector catalog, behind one seam (:class:`Embedder`).

Two kinds, picked by one setting (``SWITCHBOARD_EMBEDDER``):

* ``offline`` (the default): WordLlama's ``l2_supercat`` static token embeddings at 256
  dimensions, whose weights and tokenizer ship inside the ``wordllama`` wheel. Nothing is
  downloaded: the model is loaded with downloads disabled, from the package's own directory.
* ``openai:<model>``: an OpenAI-compatible ``POST {base}/embeddings`` (OpenAI, vLLM, Ollama,
  llama.cpp...), sent through the platform's guarded HTTP client, so the SSRF guard and its
  allow-list apply to it as to every other outbound call.

An embedder's ``name`` is stored with every vector it made: vectors of different models are
never compared.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

from runtime.errors import EmbeddingFailed

if TYPE_CHECKING:
    from engine.http import HttpClient

OFFLINE = "offline"
OFFLINE_MODEL = "l2_supercat"
OFFLINE_DIMENSIONS = 256
OPENAI_PREFIX = "openai:"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
# Inputs per request: OpenAI accepts up to 2048; smaller batches keep one failure cheap.
OPENAI_BATCH = 256
# What an embedder setting looks like: "offline" or "openai:<model>".
EMBEDDER_PATTERN = r"^(offline|openai:[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199})$"


class Embedder(Protocol):
    """Turns texts into vectors of one fixed size. ``name`` identifies the model (stored with
    each vector); ``dimensions`` is the vector size once known (None before the first call of an
    embedder that learns it from its server)."""

    name: str

    @property
    def dimensions(self) -> int | None: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order. Raises ``EmbeddingFailed``."""
        ...


def _normalized(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0 or not math.isfinite(norm):
        return [float(v) for v in vector]
    return [float(v) / norm for v in vector]


class OfflineEmbedder:
    """WordLlama's bundled model: loaded on first use (about a second), then ~20 µs a text."""

    name = f"wordllama:{OFFLINE_MODEL}:{OFFLINE_DIMENSIONS}"

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return OFFLINE_DIMENSIONS

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from pathlib import Path

                import wordllama

                # The wheel ships weights/<model>_256.safetensors and tokenizers/<model>_tokenizer_config.json.
                # WordLlama.load looks for the tokenizer in the package's "tokenizer" (singular)
                # directory and then under cache_dir/"tokenizers": naming the package directory as
                # the cache finds both files there, and disable_download makes a missing file an
                # error rather than a request to the model hub.
                package = Path(wordllama.__file__).parent
                try:
                    self._model = wordllama.WordLlama.load(
                        config=OFFLINE_MODEL, dim=OFFLINE_DIMENSIONS, cache_dir=package, disable_download=True
                    )
                except (FileNotFoundError, ValueError) as exc:
                    raise EmbeddingFailed(self.name, f"the bundled model did not load: {exc}") from None
            return self._model

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """:meth:`embed` for callers without an event loop (the bench, the CLI)."""
        if not texts:
            return []
        model = self._load()
        return [_normalized(row) for row in model.embed(list(texts), norm=True).tolist()]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit vectors of ``texts``, computed off the event loop."""
        return await anyio.to_thread.run_sync(self.embed_sync, texts)


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint, called through the platform's guarded client."""

    def __init__(self, http: HttpClient, model: str, *, base_url: str | None = None, api_key: str | None = None) -> None:
        self.http = http
        self.model = model
        self.name = f"{OPENAI_PREFIX}{model}"
        self.base_url = (base_url or DEFAULT_OPENAI_BASE_URL).rstrip("/")
        self._api_key = api_key
        self._dimensions: int | None = None

    @property
    def dimensions(self) -> int | None:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of ``texts`` from ``{base_url}/embeddings``, in batches, normalized to unit length."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), OPENAI_BATCH):
            vectors += await self._batch(list(texts[start:start + OPENAI_BATCH]))
        return vectors

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        from engine.errors import EngineError

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        url = f"{self.base_url}/embeddings"
        try:
            response = await self.http.request(
                "POST", url, json={"model": self.model, "input": texts}, headers=headers,
                sensitive_headers=("authorization",),
            )
        except EngineError as exc:  # egress refused, timeout, unreachable: the engine's coded errors
            raise EmbeddingFailed(self.name, f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise EmbeddingFailed(self.name, f"{url} answered {response.status_code}")
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [[float(v) for v in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingFailed(self.name, f"{url} answered an unreadable body ({type(exc).__name__})") from None
        if len(vectors) != len(texts):
            raise EmbeddingFailed(self.name, f"{url} returned {len(vectors)} vectors for {len(texts)} inputs")
        sizes = {len(v) for v in vectors}
        if len(sizes) != 1 or (self._dimensions is not None and sizes != {self._dimensions}):
            raise EmbeddingFailed(self.name, f"{url} returned vectors of sizes {sorted(sizes)}")
        self._dimensions = sizes.pop()
        return [_normalized(v) for v in vectors]


def build_embedder(setting: str, http: HttpClient | None = None, *, base_url: str | None = None,
                   api_key: str | None = None) -> Embedder:
    """The embedder a setting names: ``offline`` or ``openai:<model>`` (``http``, ``base_url`` and
    ``api_key`` serve the latter). Raises ``ValueError`` for anything else."""
    if not re.fullmatch(EMBEDDER_PATTERN, setting):
        raise ValueError(f"embedder must be 'offline' or 'openai:<model>', not {setting!r}")
    if setting == OFFLINE:
        return OfflineEmbedder()
    if http is None:
        raise ValueError("an openai embedder needs the platform's HTTP client")
    return OpenAIEmbedder(http, setting[len(OPENAI_PREFIX):], base_url=base_url, api_key=api_key)
