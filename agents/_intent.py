"""The offline planner's reading of a builder's prompt: three shapes, parsed into an :class:`Intent`.

The shapes (any capitalisation, with or without the punctuation)::

    sync A's X to B's Y matching by F          -> kind "sync", match F, a schedule (default 15 min)
    when X happens in A, create Y in B         -> kind "event", an app_event trigger on A
    every day/hour, copy X from A to B         -> kind "copy", a schedule trigger

An app and its object may be written ``A's X``, ``X from A``/``X in A`` or ``A X`` (the object is
then the last word, unless ``apps`` names a longer app). Anything else is a :class:`Refusal` that
says why, so the planner can tell the builder what it cannot do instead of guessing. This is
pattern matching on purpose: the offline planner must be deterministic and must not pretend to
understand more than it does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

IntentKind = Literal["sync", "event", "copy"]

# The sync step polls; DESIGN.md's sketch of the flagship runs it every 15 minutes.
DEFAULT_SYNC_CRON = "*/15 * * * *"
DEFAULT_SYNC_EVERY = "15 minutes"

SHAPES = (
    "sync A's X to B's Y matching by F",
    "when X happens in A, create Y in B",
    "every day/hour, copy X from A to B",
)

_DETERMINERS = {"a", "an", "the", "all", "any", "every", "each", "my", "our", "their", "its", "new",
                "matching", "corresponding", "existing", "some"}
_FIELD_SYNONYMS = {"email address": "email", "e-mail": "email", "e-mail address": "email", "mail": "email",
                   "phone number": "phone", "telephone": "phone", "identifier": "id"}
_IRREGULAR_PLURALS = {"people": "person", "children": "child", "data": "data", "series": "series",
                      "statuses": "status", "addresses": "address", "businesses": "business"}
_EVENT_VERBS = {"created": "created", "added": "created", "made": "created", "new": "created",
                "registered": "created", "signed": "created", "updated": "updated", "changed": "updated",
                "modified": "updated", "edited": "updated", "deleted": "deleted", "removed": "deleted",
                "archived": "deleted"}
# The largest N of "every N <unit>s" that one cron field step can express.
_UNITS = {"minute": 59, "hour": 23, "day": 31, "week": 1}


@dataclass(frozen=True)
class AppObject:
    """An app and one kind of its records: ``app`` as written (``HubSpot``), ``object`` singular
    and lower case (``contact``)."""

    app: str
    object: str

    @property
    def app_id(self) -> str:
        """The app as a connector id would spell it: ``Google Sheets`` -> ``google_sheets``."""
        return _slug(self.app)


@dataclass(frozen=True)
class Trigger:
    """When the integration runs: ``schedule`` (``cron``, and ``every`` as the prompt said it) or
    ``app_event`` (``event`` such as ``contact_created`` on ``app``)."""

    kind: Literal["schedule", "app_event"]
    cron: str | None = None
    every: str | None = None
    app: str | None = None
    event: str | None = None


@dataclass(frozen=True)
class Intent:
    """What a prompt asks for: records of ``source`` go to ``target`` on ``trigger``; ``match`` is
    the field a sync matches records by (None for the other kinds)."""

    kind: IntentKind
    source: AppObject
    target: AppObject
    trigger: Trigger
    match: str | None
    prompt: str

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (response metadata, tool arguments)."""
        data = asdict(self)
        data["source"]["app_id"] = self.source.app_id
        data["target"]["app_id"] = self.target.app_id
        return data


@dataclass(frozen=True)
class Refusal:
    """A prompt the offline planner cannot act on, and ``reason``: what it would need."""

    prompt: str
    reason: str


def parse_intent(prompt: str, *, apps: Iterable[str] = ()) -> Intent | Refusal:
    """Parse ``prompt`` into an :class:`Intent`, or say in a :class:`Refusal` why it cannot.

    ``apps`` are app names the caller knows (the connector catalog's); they let a name of several
    words (``Google Sheets rows``) be told from its object, and give the app its catalog spelling.
    Never raises for any string.
    """
    known = sorted({a.strip() for a in apps if a.strip()}, key=len, reverse=True)
    text = _normalise(prompt)
    if not text:
        return Refusal(prompt, "the prompt is empty")
    schedule, rest = _take_schedule(text)
    if isinstance(schedule, str):
        return Refusal(prompt, schedule)
    try:
        if match := _SYNC.match(rest) or _KEEP_IN_SYNC.match(rest):
            return _sync(prompt, match, schedule, known)
        if _SYNC_WITHOUT_MATCH.match(rest):
            return Refusal(prompt, "a sync needs the field to match records by: add 'matching by <field>'")
        if match := _EVENT.match(rest):
            if schedule is not None:
                raise _Refuse("an event-triggered integration runs when the event happens, not on a schedule")
            return _event(prompt, match, known)
        if match := _WHEN_OTHER.match(rest):
            raise _Refuse(f"on an event it can only create a record ('create Y in B'), not {match['action']!r}")
        if match := _COPY.match(rest):
            if schedule is None:
                raise _Refuse("a copy needs a schedule: start with 'every day,' or 'every hour,'")
            return _copy(prompt, match, schedule, known)
    except _Refuse as refused:
        return Refusal(prompt, str(refused))
    return Refusal(prompt, "it is none of the shapes: " + "; ".join(f"'{s}'" for s in SHAPES))


class _Refuse(Exception):
    """Internal: a shape matched but a part of it cannot be used."""


# --- the shapes --------------------------------------------------------------------------------
_MATCH_CLAUSE = r",?\s+(?:and\s+)?(?:(?:matching|matched|match)(?:\s+(?:them|records|on))?\s+)?(?:by|on|using|via)\s+(?P<field>[\w .-]+?)"
_SYNC = re.compile(rf"^sync\s+(?P<src>.+?)\s+(?:to|with|into)\s+(?P<dst>.+?){_MATCH_CLAUSE}$", re.I)
_KEEP_IN_SYNC = re.compile(rf"^keep\s+(?P<src>.+?)\s+in\s+sync\s+with\s+(?P<dst>.+?){_MATCH_CLAUSE}$", re.I)
_SYNC_WITHOUT_MATCH = re.compile(r"^(?:sync\s+.+\s+(?:to|with|into)\s+.+|keep\s+.+\s+in\s+sync\s+with\s+.+)$", re.I)
_EVENT = re.compile(
    r"^(?:when|whenever|each\s+time|every\s+time|if)\s+(?P<event>.+?)\s*,?\s+(?:then\s+)?"
    r"(?:create|add|make)\s+(?P<dst>.+)$", re.I)
_WHEN_OTHER = re.compile(r"^(?:when|whenever|each\s+time|every\s+time|if)\s+.+?,\s*(?:then\s+)?(?P<action>\w+)\b.*$", re.I)
_COPY = re.compile(r"^(?:copy|send|push|export|replicate)\s+(?P<src>.+?)\s+(?:to|into)\s+(?P<dst>.+)$", re.I)


def _sync(prompt: str, match: re.Match, schedule: Trigger | None, known: list[str]) -> Intent:
    source = _app_object(match["src"], known, role="source")
    target = _app_object(match["dst"], known, role="target", default_object=source.object)
    _distinct(source, target)
    trigger = schedule or Trigger("schedule", cron=DEFAULT_SYNC_CRON, every=DEFAULT_SYNC_EVERY)
    return Intent("sync", source, target, trigger, _field(match["field"]), prompt)


def _event(prompt: str, match: re.Match, known: list[str]) -> Intent:
    source, verb = _event_phrase(match["event"], known)
    target = _app_object(match["dst"], known, role="target")
    _distinct(source, target)
    trigger = Trigger("app_event", app=source.app, event=f"{_slug(source.object)}_{verb}")
    return Intent("event", source, target, trigger, None, prompt)


def _copy(prompt: str, match: re.Match, schedule: Trigger, known: list[str]) -> Intent:
    source = _app_object(match["src"], known, role="source")
    target = _app_object(match["dst"], known, role="target", default_object=source.object)
    _distinct(source, target)
    return Intent("copy", source, target, schedule, None, prompt)


# --- schedules ---------------------------------------------------------------------------------
_EVERY = r"(?:every|each|once\s+(?:a|an|per|every))\s+(?:(?P<n>\d+|other)\s+)?(?P<unit>minute|hour|day|week|month|year|night|morning)s?"
_ADVERB = r"(?P<adverb>hourly|daily|nightly|weekly|monthly)"
_SCHEDULE_AT_START = re.compile(rf"^(?:{_EVERY}|{_ADVERB})\s*,?\s*", re.I)
_SCHEDULE_AT_END = re.compile(rf"\s*,?\s+(?:{_EVERY}|{_ADVERB})$", re.I)


def _take_schedule(text: str) -> tuple[Trigger | str | None, str]:
    """The schedule clause at the start or end of ``text`` (a Trigger, or a reason it cannot be
    used) and the text without it."""
    for pattern in (_SCHEDULE_AT_START, _SCHEDULE_AT_END):
        if found := pattern.search(text):
            rest = (text[: found.start()] + text[found.end():]).strip(" ,")
            return _schedule(found), rest
    return None, text


def _schedule(found: re.Match) -> Trigger | str:
    adverb = (found["adverb"] or "").lower()
    unit = {"hourly": "hour", "daily": "day", "nightly": "day", "weekly": "week", "monthly": "month"}.get(
        adverb, (found["unit"] or "").lower())
    unit = {"night": "day", "morning": "day"}.get(unit, unit)
    raw_n = (found["n"] or "1").lower()
    n = 2 if raw_n == "other" else int(raw_n)
    if unit in ("month", "year"):
        return f"schedules by the {unit} are not supported: say every N minutes, hours, days or a week"
    if n < 1 or n > _UNITS[unit] or (unit == "week" and n != 1):
        return f"'every {n} {unit}s' cannot be a schedule: use 1-{_UNITS[unit]} {unit}s" if unit != "week" \
            else "only 'every week' is supported for weeks"
    every = unit if n == 1 else f"{n} {unit}s"
    cron = {
        "minute": "* * * * *" if n == 1 else f"*/{n} * * * *",
        "hour": "0 * * * *" if n == 1 else f"0 */{n} * * *",
        "day": "0 0 * * *" if n == 1 else f"0 0 */{n} * *",
        "week": "0 0 * * 1",
    }[unit]
    return Trigger("schedule", cron=cron, every=every)


# --- apps, objects, fields ---------------------------------------------------------------------
_POSSESSIVE = re.compile(r"^(?P<app>.+?)'s?\s+(?P<object>.+)$")
_PREPOSITION = re.compile(r"^(?P<object>.+?)\s+(?:from|in|of|on|at)\s+(?P<app>.+)$", re.I)
_AS = re.compile(r"^(?P<app>.+?)\s+as\s+(?P<object>.+)$", re.I)


def _app_object(phrase: str, known: list[str], *, role: str, default_object: str | None = None) -> AppObject:
    words = _strip_determiners(phrase)
    if not words:
        raise _Refuse(f"the {role} names no app")
    text = " ".join(words)
    if re.search(r"\b(?:and|or)\b|&|,", text, re.I):
        raise _Refuse(f"the {role} {text!r} names more than one thing: one app and one object per prompt")
    if (found := _POSSESSIVE.match(text)) and "'" in text:
        return _checked(found["app"], found["object"], known, role)
    for pattern in (_AS, _PREPOSITION):
        if found := pattern.match(text):
            return _checked(found["app"], found["object"], known, role)
    if app := _known_prefix(text, known):
        rest = text[len(app):].strip()
        if rest:
            return _checked(app, rest, known, role)
        if default_object:
            return AppObject(app, default_object)
        raise _Refuse(f"the {role} {text!r} names an app but not what kind of record")
    if len(words) == 1:
        if default_object:
            return AppObject(_app_name(words[0], known), default_object)
        raise _Refuse(f"the {role} {text!r} needs both an app and a kind of record (e.g. 'HubSpot contacts')")
    return _checked(" ".join(words[:-1]), words[-1], known, role)


def _checked(app: str, obj: str, known: list[str], role: str) -> AppObject:
    app_words, obj_words = _strip_determiners(app), _strip_determiners(obj)
    if not app_words or not obj_words:
        raise _Refuse(f"the {role} needs both an app and a kind of record")
    if len(obj_words) > 3:
        raise _Refuse(f"the {role} record kind {' '.join(obj_words)!r} is not one kind of record")
    return AppObject(_app_name(" ".join(app_words), known), _singular(" ".join(obj_words)))


def _event_phrase(phrase: str, known: list[str]) -> tuple[AppObject, str]:
    """``a contact is created in HubSpot`` -> (HubSpot contact, "created")."""
    text = " ".join(_strip_determiners(phrase))
    found = re.match(
        r"^(?P<subject>.+?)\s+(?:is|are|gets|get|was|were|has\s+been|have\s+been)\s+(?P<verb>\w+)"
        r"(?:\s+up)?(?:\s+(?:in|on|to|into|at|from)\s+(?P<app>.+))?$", text, re.I)
    if found is None:
        found = re.match(r"^(?P<subject>.+?)\s+(?P<verb>appears|arrives|shows\s+up|signs\s+up)"
                         r"(?:\s+(?:in|on|at)\s+(?P<app>.+))?$", text, re.I)
    if found is None:
        # "a new contact in HubSpot": the new thing is the event.
        if re.match(r"^(?:a|an)?\s*new\b", phrase.strip(), re.I) and (where := _PREPOSITION.match(text)):
            return _checked(where["app"], where["object"], known, "event"), "created"
        raise _Refuse(f"the event {phrase.strip()!r} is not of the form 'a X is created in A'")
    verb_word = found["verb"].lower().split()[0]
    verb = _EVENT_VERBS.get(verb_word, "created" if verb_word in ("appears", "arrives", "shows") else verb_word)
    if not re.fullmatch(r"[a-z]+", verb) or not (verb.endswith("ed") or verb in ("won", "lost", "paid", "sent", "made")):
        raise _Refuse(f"{found['verb']!r} is not an event (say 'is created', 'is updated' or 'is deleted')")
    if found["app"]:
        source = _checked(found["app"], found["subject"], known, "event")
    else:
        source = _app_object(found["subject"], known, role="event")
    return source, verb


def _known_prefix(text: str, known: list[str]) -> str | None:
    lowered = text.lower()
    for app in known:
        if lowered == app.lower() or lowered.startswith(app.lower() + " "):
            return app
    return None


def _app_name(name: str, known: list[str]) -> str:
    for app in known:
        if app.lower() == name.lower() or _slug(app) == _slug(name):
            return app
    return name


def _distinct(source: AppObject, target: AppObject) -> None:
    if source.app_id == target.app_id:
        raise _Refuse(f"source and target are the same app ({source.app}): it connects two different apps")


def _field(text: str) -> str:
    words = _strip_determiners(text)
    phrase = " ".join(words).lower()
    phrase = re.sub(r"\s+(?:field|fields|property|column)$", "", phrase)
    if not phrase:
        raise _Refuse("the match field is empty")
    if re.search(r"\b(?:and|or)\b|,", phrase):
        raise _Refuse(f"it matches by one field, not {phrase!r}")
    phrase = _FIELD_SYNONYMS.get(phrase, phrase)
    return re.sub(r"[^a-z0-9]+", "_", phrase).strip("_")


def _singular(phrase: str) -> str:
    words = phrase.lower().split()
    last = words[-1]
    if last in _IRREGULAR_PLURALS:
        last = _IRREGULAR_PLURALS[last]
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith("sses") or re.search(r"(?:x|z|ch|sh)es$", last):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith(("ss", "us", "is")):
        last = last[:-1]
    return " ".join([*words[:-1], last])


def _strip_determiners(text: str) -> list[str]:
    words = text.strip(" ,.").split()
    while words and words[0].lower() in _DETERMINERS:
        words = words[1:]
    return words


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _normalise(prompt: str) -> str:
    text = prompt.replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(?:please|pls|can you|could you|i want to|i'd like to|i would like to)\s+", "", text, flags=re.I)
    return text.rstrip(" .!?")
