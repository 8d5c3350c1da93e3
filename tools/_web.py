"""Reading the web for the agents: one page fetched through the platform's guarded HTTP client
(SSRF guard, timeouts, size limit) and its HTML reduced to text with selectolax (Lexbor)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from engine.errors import EngineError
from tools._context import ToolContext
from tools._registry import Tool
from tools.errors import ToolFailed

# What a model reads of one page: enough for a product site or an API reference's overview.
MAX_TEXT_CHARS = 20_000
MAX_LINKS = 60
# Elements that carry no readable content.
_NOISE = ("script", "style", "noscript", "svg", "template", "iframe", "head")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True)
class Page:
    """A fetched page: final URL, status, content type, title, text, links (absolute)."""

    url: str
    status: int
    content_type: str
    title: str | None
    text: str
    links: list[dict[str, str]]
    body: bytes


def html_text(html: str, base_url: str) -> tuple[str | None, str, list[dict[str, str]]]:
    """The title, readable text and links (``{"text", "url"}``, absolute, first ``MAX_LINKS``) of an HTML document."""
    tree = HTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else None
    links = []
    for anchor in tree.css("a[href]"):
        href = anchor.attributes.get("href") or ""
        if href.startswith(("#", "javascript:", "mailto:")):
            continue
        links.append({"text": anchor.text(strip=True)[:120], "url": urljoin(base_url, href)})
        if len(links) >= MAX_LINKS:
            break
    tree.strip_tags(list(_NOISE))
    root = tree.body or tree.root
    text = root.text(separator="\n", strip=True) if root is not None else ""
    return title, _BLANK_LINES.sub("\n\n", text).strip(), links


async def fetch(ctx: ToolContext, url: str) -> Page:
    """GET ``url`` through the platform's guarded client. Raises ``ToolFailed`` naming why."""
    try:
        response = await ctx.platform.http.request("GET", url, headers={"accept": "text/html,application/json,*/*"})
    except EngineError as exc:
        raise ToolFailed(f"could not fetch {url}: {exc}", pointer="/url", code=exc.code) from None
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    final = str(response.url)
    if "html" in content_type:
        title, text, links = html_text(response.text, final)
    else:
        title, text, links = None, response.text if _textual(content_type) else "", []
    return Page(final, response.status_code, content_type, title, text, links, response.content)


def _textual(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type.endswith(("json", "yaml", "xml")) or not content_type


class FetchPageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, pattern=r"^https?://", description="The page to read (http or https).")


async def fetch_page(ctx: ToolContext, args: FetchPageArgs) -> dict[str, Any]:
    page = await fetch(ctx, args.url)
    return {
        "url": page.url, "status": page.status, "content_type": page.content_type, "title": page.title,
        "text": page.text[:MAX_TEXT_CHARS], "truncated": len(page.text) > MAX_TEXT_CHARS, "links": page.links,
    }


TOOLS = [
    Tool("fetch_page", "Read a web page (a company's site, an API's documentation) as text with its title and "
         "links. Private and internal addresses are refused.", FetchPageArgs, fetch_page, ("tools", "execute")),
]
