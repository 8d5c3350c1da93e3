"""Finding and importing an app's API description (OpenAPI 2.0/3.x).

Discovery looks in three places, in order: the packaged index of well-known public documents
(``tools/apis.json``), a local folder of documents (``ToolContext.documents``), and, when a site
is named, its well-known paths (``/openapi.json``, ``/.well-known/openapi.json``...) fetched
through the guarded client. Import is the engine's OpenAPI import (``engine.openapi``), saved and
indexed in the catalog like ``POST /v1/connectors/import``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import OpenAPIImportError
from engine.http import EgressPolicy
from engine.openapi import import_connector, load_openapi
from runtime import problems_out, stored
from tools._connectors import save_connector
from tools._context import ToolContext
from tools._registry import Tool
from tools._web import fetch
from tools.errors import ToolFailed

# Where sites commonly serve their description, tried in this order.
WELL_KNOWN_PATHS = (
    "/openapi.json", "/openapi.yaml", "/.well-known/openapi.json", "/.well-known/openapi.yaml", "/swagger.json",
    "/api/openapi.json", "/v3/api-docs", "/api-docs", "/docs/openapi.json",
)
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")
_WORD = re.compile(r"[a-z0-9]+")


@cache
def known_apis() -> tuple[dict[str, Any], ...]:
    """The packaged index of well-known public API descriptions."""
    return tuple(json.loads(resources.files("tools").joinpath("apis.json").read_text())["apis"])


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _matches(app: str, names: list[str]) -> bool:
    wanted = _words(app)
    return any(_words(name) <= wanted or wanted <= _words(name) for name in names if _words(name))


def _local_documents(folder: Path | None, app: str) -> list[dict[str, Any]]:
    """Documents of ``folder`` whose file name or ``info.title`` names ``app``."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in DOCUMENT_SUFFIXES or not path.is_file():
            continue
        title = _title(path)
        if _matches(app, [path.stem.replace("-", " "), title or ""]):
            found.append({"source": "local", "document": path.name, "title": title})
    return found


@cache
def _title_of(path: Path, mtime: float) -> str | None:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or not ("openapi" in data or "swagger" in data):
        return None
    info = data.get("info")
    return str(info.get("title")) if isinstance(info, dict) and info.get("title") else None


def _title(path: Path) -> str | None:
    return _title_of(path, path.stat().st_mtime)


def _as_openapi(body: bytes) -> dict[str, Any] | None:
    try:
        data = yaml.load(body.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) and ("openapi" in data or "swagger" in data) else None


class FindApiArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app: str = Field(min_length=1, max_length=200, description="The app's name, e.g. 'HubSpot' or 'Cin7 Core'.")
    site: str | None = Field(None, max_length=2048, pattern=r"^https?://",
                             description="The app's site or API root; its well-known description paths are tried.")


async def find_api_description(ctx: ToolContext, args: FindApiArgs) -> dict[str, Any]:
    candidates: list[dict[str, Any]] = []
    for entry in known_apis():
        if _matches(args.app, [entry["app"], *entry["names"]]):
            candidates.append({"source": "index", "title": entry["app"], "url": entry["url"],
                               "document": entry["document"]})
    candidates += _local_documents(ctx.documents, args.app)
    tried = []
    if args.site:
        root = args.site.rstrip("/")
        for path in WELL_KNOWN_PATHS:
            url = root + path
            try:
                page = await fetch(ctx, url)
            except ToolFailed as exc:
                tried.append({"url": url, "result": exc.code})
                if exc.code in ("egress_refused", "egress_denied"):
                    break  # the whole site is refused: the other paths would be too
                continue
            document = _as_openapi(page.body) if page.status == 200 else None
            tried.append({"url": url, "result": page.status if document is None else "found"})
            if document is not None:
                info = document.get("info") if isinstance(document.get("info"), dict) else {}
                candidates.append({"source": "site", "title": info.get("title"), "url": page.url})
                break
    local = ctx.documents is not None
    return {"app": args.app, "candidates": candidates, "tried": tried,
            "note": None if candidates else "no API description found; ask for the documentation URL or the "
                                            "document itself" + ("" if local else " (no local documents folder)")}


class ImportApiArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, max_length=2048, pattern=r"^https?://", description="Where the document is served.")
    document: str | None = Field(None, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                                 description="A document of the local documents folder, by file name.")
    text: str | None = Field(None, max_length=20_000_000, description="The document itself (YAML or JSON).")
    connector_id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$",
                                     description="The connector key (default: from the document's title).")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ImportApiArgs":
        if sum(x is not None for x in (self.url, self.document, self.text)) != 1:
            raise ValueError("send exactly one of url, document and text")
        return self


def _convert(ctx: ToolContext, args: ImportApiArgs) -> tuple[Any, Any]:
    """The loaded document (its ``raw`` is kept for the connector's hosted sandbox) and the import's result."""
    try:
        if args.url is not None:
            source: Any = load_openapi(args.url, egress=EgressPolicy(allow=tuple(ctx.platform.config.egress_allow)),
                                       keep_refs=True)
        elif args.document is not None:
            folder = ctx.documents
            path = folder / args.document if folder is not None else None
            if path is None or not path.is_file():
                raise ToolFailed(f"no document {args.document!r} in the local documents folder", pointer="/document",
                                 code="not_found", http_status=404)
            source = load_openapi(path, keep_refs=True)
        else:
            # Bytes, never the string: a string that looks like a path would be read from disk.
            source = load_openapi((args.text or "").encode("utf-8"), source_name="<document>", keep_refs=True)
        return source, import_connector(source, connector_id=args.connector_id)
    except OpenAPIImportError as exc:
        raise ToolFailed(f"the document cannot be imported: {exc.reason}", pointer=exc.pointer,
                         code="openapi_import_refused") from None


async def import_api(ctx: ToolContext, args: ImportApiArgs) -> dict[str, Any]:
    converted = await anyio.to_thread.run_sync(_convert, ctx, args)
    document, result = converted
    saved = await save_connector(ctx, stored(result.connector), document.raw)
    spec = result.connector
    return saved | {
        "actions": sorted(spec.actions), "auth": spec.auth.type, "events": sorted(spec.events),
        "credential_fields": list(spec.credential_fields()), "warnings": problems_out(result.warnings),
    }


TOOLS = [
    Tool("find_api_description", "Find an app's API description (OpenAPI): the index of well-known public "
         "documents, the local documents, and the well-known paths of the app's site.", FindApiArgs,
         find_api_description, ("connectors", "read")),
    Tool("import_api", "Import an OpenAPI document (by URL, local document name, or text) as a new connector "
         "draft; answers its actions, auth and the import's warnings.", ImportApiArgs, import_api,
         ("connectors", "write"), writes=True),
]
