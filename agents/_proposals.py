"""What a company's website implies it should integrate: the Setup Assistant's offline reading.

Deterministic on purpose (the ``offline`` model's side of the Setup Assistant): the site's text is
split into sentences; an app is *mentioned* when a sentence names one of the known apps (the
packaged index of public API descriptions and the organization's own connectors); the kinds of
records the company keeps in it are the common data model's kinds (contact, company, customer,
order, product, invoice) named in the same sentences. Use cases pair two mentioned apps whose
kinds fit one of :data:`PAIRINGS`, phrased in the shapes the Integration Agent's offline planner
builds, and every proposal quotes the sentences it rests on. A site that mentions fewer than two
apps gets no use case, and :class:`Proposal` says why instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agents._intent import Intent, parse_intent

# Words that name a kind of record, singular and plural (the last word of a phrase is enough).
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "contact": ("contact", "contacts", "lead", "leads", "prospect", "prospects"),
    "company": ("company", "companies", "organisation", "organisations", "organization", "organizations"),
    "customer": ("customer", "customers", "client", "clients", "buyer", "buyers"),
    "order": ("order", "orders", "sales order", "sales orders"),
    "product": ("product", "products", "inventory", "stock", "sku", "skus"),
    "invoice": ("invoice", "invoices", "bill", "bills"),
}
# Categories a sentence may give an app, with the kinds such an app keeps when the sentence names none.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "crm": ("contact", "company"),
    "inventory": ("product", "order"),
    "accounting": ("invoice",),
    "e-commerce": ("order", "product", "customer"),
    "email": (),
    "sms": (),
}
_CATEGORY_WORDS = {"crm": "crm", "customer relationship": "crm", "inventory management": "inventory",
                   "warehouse": "inventory", "accounting": "accounting", "bookkeeping": "accounting",
                   "online store": "e-commerce", "webshop": "e-commerce", "e-commerce": "e-commerce",
                   "newsletter": "email", "transactional email": "email", "text message": "sms", "sms": "sms"}
# Which record of one app becomes which record of another, in order of preference, with the shape
# and the field records are matched by (None: a copy, nothing to match).
PAIRINGS: tuple[tuple[str, str, str, str | None], ...] = (
    ("contact", "customer", "sync", "email"),
    ("company", "customer", "sync", "name"),
    ("customer", "contact", "sync", "email"),
    ("order", "invoice", "copy", None),
    ("contact", "contact", "sync", "email"),
    ("customer", "customer", "sync", "email"),
)
MAX_USE_CASES = 4
MAX_EVIDENCE = 3
# Sentences end at their punctuation or a blank line; a single line break (an HTML source's
# wrapping, or one element after another) does not end one.
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n+")


@dataclass(frozen=True)
class Page:
    """A page read from the site: its URL, title and readable text."""

    url: str
    title: str | None
    text: str


@dataclass
class AppMention:
    """An app the site names: ``name`` as written there, ``aliases`` it is known by, the record
    ``kinds`` and ``categories`` the sentences give it, and ``evidence`` (quotes with their URL)."""

    name: str
    aliases: tuple[str, ...]
    kinds: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    evidence: list[dict[str, str]] = field(default_factory=list)
    first_seen: int = 0


@dataclass(frozen=True)
class UseCase:
    """One proposed integration: ``prompt`` in a shape the Integration Agent builds, the apps and
    kinds it joins, and ``why`` (the quotes it rests on)."""

    title: str
    prompt: str
    source_app: str
    source_kind: str
    target_app: str
    target_kind: str
    shape: str
    why: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)


@dataclass(frozen=True)
class Proposal:
    """What the site implies: the apps it mentions, the use cases, and ``note`` when there are none."""

    apps: list[AppMention]
    use_cases: list[UseCase]
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {"apps": [asdict(app) for app in self.apps], "use_cases": [u.as_dict() for u in self.use_cases],
                "note": self.note}


def sentences(pages: Sequence[Page]) -> list[tuple[str, str]]:
    """Every sentence of ``pages`` with its page URL, in reading order."""
    out = []
    for page in pages:
        for sentence in _SENTENCE.split(page.text):
            sentence = " ".join(sentence.split())
            if len(sentence) > 2:
                out.append((page.url, sentence))
    return out


def _phrase(words: Iterable[str]) -> re.Pattern[str]:
    alternatives = sorted({w for w in words if w}, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in alternatives) + r")(?![\w-])", re.I)


def mentions(pages: Sequence[Page], apps: Mapping[str, Sequence[str]]) -> list[AppMention]:
    """The apps of ``apps`` (an id -> its aliases) that ``pages`` name, in order of first mention.

    Each is named as the site writes its shortest alias found, so ``Cin7 Core`` and ``Cin7`` are one
    app called ``Cin7``.
    """
    found: dict[str, AppMention] = {}
    kind_patterns = {kind: _phrase(words) for kind, words in KIND_WORDS.items()}
    category_pattern = _phrase(_CATEGORY_WORDS)
    for position, (url, sentence) in enumerate(sentences(pages)):
        for app_id, aliases in apps.items():
            hits = _phrase(aliases).findall(sentence)
            if not hits:
                continue
            written = min(hits, key=len)
            mention = found.get(app_id)
            if mention is None:
                mention = found[app_id] = AppMention(written, tuple(aliases), first_seen=position)
            elif len(written) < len(mention.name):
                mention.name = written
            if len(mention.evidence) < MAX_EVIDENCE:
                mention.evidence.append({"url": url, "quote": sentence})
            for kind, pattern in kind_patterns.items():
                if pattern.search(sentence) and kind not in mention.kinds:
                    mention.kinds.append(kind)
            for word in category_pattern.findall(sentence):
                category = _CATEGORY_WORDS[word.lower()]
                if category not in mention.categories:
                    mention.categories.append(category)
    for mention in found.values():
        if not mention.kinds:
            mention.kinds = [kind for category in mention.categories for kind in CATEGORIES[category]]
    return sorted(found.values(), key=lambda m: m.first_seen)


def _plural(kind: str) -> str:
    return {"company": "companies"}.get(kind, kind + "s")


def _prompt(source: AppMention, source_kind: str, target: AppMention, target_kind: str, shape: str,
            match: str | None) -> str:
    if shape == "sync":
        return f"Sync {source.name} {_plural(source_kind)} to {target.name} {_plural(target_kind)}, matching by {match}"
    if shape == "event":
        return f"When a {source_kind} is created in {source.name}, create a {target_kind} in {target.name}"
    return f"Every day, copy {_plural(source_kind)} from {source.name} to {target.name}"


def propose(pages: Sequence[Page], apps: Mapping[str, Sequence[str]]) -> Proposal:
    """The apps ``pages`` mention and the use cases joining them, best first (at most
    :data:`MAX_USE_CASES`); each use case's prompt is one the offline intent parser reads."""
    found = mentions(pages, apps)
    if len(found) < 2:
        named = ", ".join(m.name for m in found) or "none"
        return Proposal(found, [], note=f"an integration joins two apps, and the site names {len(found)} "
                                        f"of the apps known here ({named}); name the apps you use to go on")
    known = [m.name for m in found]
    candidates: list[tuple[tuple[int, int, int], UseCase]] = []
    for rank, (source_kind, target_kind, shape, match) in enumerate(PAIRINGS):
        for source in found:
            for target in found:
                if source is target or source_kind not in source.kinds or target_kind not in target.kinds:
                    continue
                prompt = _prompt(source, source_kind, target, target_kind, shape, match)
                if not isinstance(parse_intent(prompt, apps=known), Intent):
                    continue
                title = f"{source.name} {_plural(source_kind)} -> {target.name} {_plural(target_kind)}"
                why = [*source.evidence[:2], *target.evidence[:2]]
                candidates.append(((rank, source.first_seen, target.first_seen),
                                   UseCase(title, prompt, source.name, source_kind, target.name, target_kind, shape, why)))
    candidates.sort(key=lambda c: c[0])
    chosen = [use_case for _, use_case in candidates[:MAX_USE_CASES]]
    # The best sync also as an event: create the record the moment it appears instead of on a schedule.
    if chosen and chosen[0].shape == "sync" and len(chosen) < MAX_USE_CASES + 1:
        best = chosen[0]
        source = next(m for m in found if m.name == best.source_app)
        target = next(m for m in found if m.name == best.target_app)
        prompt = _prompt(source, best.source_kind, target, best.target_kind, "event", None)
        if isinstance(parse_intent(prompt, apps=known), Intent):
            chosen.insert(1, UseCase(f"new {best.source_kind} in {source.name} -> {target.name} {best.target_kind}",
                                     prompt, best.source_app, best.source_kind, best.target_app, best.target_kind,
                                     "event", best.why))
    chosen = chosen[:MAX_USE_CASES]
    note = None if chosen else "the apps the site names keep no two kinds of records that one integration joins"
    return Proposal(found, chosen, note)
