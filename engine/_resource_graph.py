"""The resource graph a connector's paths describe, and the ids that flow along it.

``connector test`` has to address records it made: ``get_employee`` needs the
``EmployeeID`` that ``create_employee`` answered, wrapped as
``{"employee": {"employeeID": ...}}``. Three pieces do that:

* :func:`path_slots` reads each path parameter as a slot of a **collection**:
  the path before it with every parameter blanked (``{ConversationSid}`` in
  ``/Conversations/{ConversationSid}/Messages`` and ``{Sid}`` in
  ``/Conversations/{Sid}`` are both slots of ``/Conversations``), so a record is
  found under every path that names its collection, whatever the parameter is
  called there.
* :func:`find_id` takes a record's id out of an answer, whatever its envelope
  (``employee``, ``data``, a list) and casing (``employeeID``, ``sid``, ``ID``).
* :class:`ResourceGraph` orders the calls (parents created before children,
  reads, updates, deletes in reverse) and :class:`IdBook` remembers which id
  each collection has, falling back to a match by name when a parameter's own
  prefix is not a collection anything creates or lists
  (``/StatutoryLeaves/Summary/{EmployeeID}`` takes an ``/Employees`` id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .specs import ConnectorSpec

_PARAM = re.compile(r"\{([^{}]+)\}")
# A parameter called only this names no collection by itself (``/Benefits/{id}``).
_GENERIC = frozenset({"id", "sid", "key", "uuid", "guid", "name", "code", "slug"})
_ID_SUFFIXES = ("id", "sid", "key", "uuid", "guid")
_GENERIC_IDS = ("id", "sid", "uuid", "guid", "key")
# Envelope members that hold paging or errors, never the record (Twilio's meta carries ``key: "conversations"``).
NOT_RECORDS = frozenset({"meta", "metadata", "links", "link", "pagination", "paging", "page", "next", "problem",
                          "problems", "errors", "error", "warnings", "responsemetadata", "self"})
_ENVELOPES = ("data", "result", "results", "item", "items", "record", "records", "entity", "entries", "value",
              "values", "resource", "object", "body", "response")
_MAX_DEPTH = 4


def norm(name: str) -> str:
    """A name compared loosely: lower case, letters and digits only (``employee_id`` == ``EmployeeID``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def singular(name: str) -> str:
    """``Employees`` -> ``employee``, ``Categories`` -> ``category``, ``CustomerList`` -> ``customer`` (normalised)."""
    low = norm(name)
    for suffix, replacement in (("list", ""), ("ies", "y"), ("sses", "ss"), ("s", "")):
        if low.endswith(suffix) and len(low) > len(suffix) + 1 and not (suffix == "s" and low.endswith("ss")):
            return low[: -len(suffix)] + replacement
    return low


def shape(path: str) -> str:
    """A path with every parameter blanked: ``/Conversations/{Sid}`` -> ``/Conversations/{}``."""
    return _PARAM.sub("{}", path.rstrip("/") or "/")


@dataclass(frozen=True)
class Slot:
    """One path parameter and the collection whose records it addresses (by shape)."""

    param: str
    collection: str


def path_slots(path: str) -> list[Slot]:
    """Every path parameter of ``path`` with its collection, outermost first."""
    return [Slot(m.group(1), shape(path[: m.start()]).rstrip("/") or "/") for m in _PARAM.finditer(path)]


def collection_name(collection: str) -> str:
    """The last literal segment of a collection shape (``/Services/{}/Conversations`` -> ``Conversations``)."""
    literals = [s for s in collection.split("/") if s and "{" not in s]
    return literals[-1] if literals else ""


def id_keys(hints: tuple[str, ...] = (), name: str = "") -> list[str]:
    """Normalised field names that hold a record's id, most telling first.

    ``hints`` are the path parameters that address the record (``EmployeeID``,
    ``Sid``); ``name`` its collection's name (``Employees``).
    """
    keys = [norm(h) for h in hints]
    one = singular(name) if name else ""
    if one:
        keys += [one + suffix for suffix in _ID_SUFFIXES]
    keys += list(_GENERIC_IDS)
    return list(dict.fromkeys(k for k in keys if k))


def words(name: str) -> list[str]:
    """The words of an identifier, lower case: ``payRunCalendarID`` -> ``["pay", "run", "calendar", "id"]``."""
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]


def pick_id_field(fields: Any, hints: tuple[str, ...] = (), name: str = "") -> str | None:
    """The field among ``fields`` that holds the record's id, or None.

    First a field named like :func:`id_keys` (``employeeID`` for ``EmployeeID``).
    Failing that, an id-like field (its last word ``id``, ``sid``, ``key``...) whose
    words all appear in a hint (``statutoryLeaveID`` for ``StatutorySickLeaveID``),
    or the only id-like field when it shares a word with a hint
    (``payrollCalendarID`` for ``PayRunCalendarID``).
    """
    fields = [f for f in fields if isinstance(f, str)]
    by_norm: dict[str, str] = {}
    for member in fields:
        by_norm.setdefault(norm(member), member)
    for key in id_keys(hints, name):
        if key in by_norm:
            return by_norm[key]
    id_like = [f for f in fields if words(f) and words(f)[-1] in _ID_SUFFIXES and len(words(f)) >= 2]
    hint_words = [set(words(h)) for h in hints]
    for wanted in hint_words:
        fitting = [f for f in id_like if set(words(f)) <= wanted]
        if fitting:
            return max(fitting, key=lambda f: len(words(f)))
    if len(id_like) == 1 and any(len(set(words(id_like[0])) & wanted) >= 2 for wanted in hint_words):
        return id_like[0]
    return None


def find_id(body: Any, hints: tuple[str, ...] = (), name: str = "") -> tuple[Any, str] | None:
    """The id of the (first) record in ``body`` and the JSON pointer where it was found, or None.

    The record may sit in an envelope (``{"employee": {...}}``, ``{"data": {...}}``,
    ``{"conversations": [...], "meta": {...}}``) or a list; its id field is
    matched case- and separator-insensitively against :func:`id_keys`. Members
    that carry paging or errors are never searched, and an envelope member named
    after the resource or a usual envelope name is searched first.
    """
    found = _search(body, hints, name, _preferred(name), "", 0)
    return (found[0], found[1]) if found is not None else None


def _preferred(name: str) -> tuple[str, ...]:
    one = singular(name) if name else ""
    return tuple(n for n in (norm(name), one, one + "s") if n) + _ENVELOPES


def _search(node: Any, hints: tuple[str, ...], name: str, preferred: tuple[str, ...], pointer: str,
            depth: int) -> tuple[Any, str, dict, str] | None:
    """(id, its pointer, the record holding it, the record's pointer), or None."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(node, list):
        first = next((item for item in node if isinstance(item, (dict, list))), None)
        return _search(first, hints, name, preferred, pointer + "/0", depth + 1) if first is not None else None
    if not isinstance(node, dict):
        return None
    member = pick_id_field([m for m in node if _is_id(node[m])], hints, name)
    if member is not None:
        return node[member], f"{pointer}/{_escape(member)}", node, pointer
    children = [m for m in node if isinstance(node[m], (dict, list)) and norm(str(m)) not in NOT_RECORDS]
    rank = {n: i for i, n in enumerate(preferred)}
    children.sort(key=lambda m: (rank.get(norm(str(m)), len(rank)), 0 if isinstance(node[m], list) else 1))
    for member in children:
        found = _search(node[member], hints, name, preferred, f"{pointer}/{_escape(member)}", depth + 1)
        if found is not None:
            return found
    return None


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and value != ""


def _escape(member: Any) -> str:
    return str(member).replace("~", "~0").replace("/", "~1")


def param_names_collection(param: str, name: str) -> bool:
    """True when a parameter called ``param`` names a record of a collection called ``name``.

    ``EmployeeID``, ``employee_id``, ``employeeId`` and ``Employee`` all name an
    ``Employees`` record; ``ConversationSid`` a ``Conversations`` one and
    ``ChatServiceSid`` a ``Services`` one. A bare
    ``id`` or ``Sid`` names nothing by itself.
    """
    low, one = norm(param), singular(name)
    if not one or low in _GENERIC:
        return False
    # a qualified name ends with the collection's (``ChatServiceSid`` names a ``Services`` record)
    return low in (one, norm(name)) or any(low.endswith(one + suffix) for suffix in _ID_SUFFIXES)


@dataclass
class ResourceGraph:
    """Collections, creates and the call order of one connector's actions."""

    connector: ConnectorSpec
    collections: set[str] = field(default_factory=set)
    creates: dict[str, str] = field(default_factory=dict)  # action -> collection it creates in
    lists: dict[str, str] = field(default_factory=dict)  # action -> collection it lists
    hints: dict[str, tuple[str, ...]] = field(default_factory=dict)  # collection -> parameters naming its records

    def __post_init__(self) -> None:
        named: dict[str, list[str]] = {}
        for action in self.connector.actions.values():
            for slot in path_slots(action.path):
                self.collections.add(slot.collection)
                named.setdefault(slot.collection, [])
                if slot.param not in named[slot.collection]:
                    named[slot.collection].append(slot.param)
        self.hints = {c: tuple(p) for c, p in named.items()}
        listed = {shape(a.path) for a in self.connector.actions.values() if a.method == "GET"}
        for name, action in self.connector.actions.items():
            where = shape(action.path)
            if action.method == "POST" and where in self.collections | listed:
                self.creates[name] = where
            elif action.method == "GET" and where in self.collections:
                self.lists[name] = where

    def order(self) -> list[str]:
        """Creates (parents before children), then reads, then other writes, then deletes (children first)."""
        actions = self.connector.actions

        def rank(name: str) -> tuple[int, int, str, str]:
            action = actions[name]
            depth = len(path_slots(action.path))
            if name in self.creates:
                return (0, depth, shape(action.path), name)
            if action.method == "DELETE":
                # children (longer paths: /web_links/{id}/trash) before their parents (/web_links/{id})
                return (4, -len(action.path.strip("/").split("/")), _reverse_key(action.path), name)
            if action.method == "GET":
                return (1, depth, action.path, name)
            if action.method in ("PUT", "PATCH"):
                return (3, depth, action.path, name)
            return (2, depth, action.path, name)

        return sorted(actions, key=rank)

    def candidates(self, slot: Slot) -> list[str]:
        """Collections whose id may fill ``slot``: its own first, then those its parameter names."""
        out = [slot.collection]
        if norm(slot.param) not in _GENERIC:
            out += sorted((c for c, params in self.hints.items() if slot.param in params and c != slot.collection),
                          key=lambda c: (c.count("{}"), c))
        out += sorted((c for c in self.collections if param_names_collection(slot.param, collection_name(c))
                       and not c.endswith("{}")), key=lambda c: (c.count("{}"), c))
        return list(dict.fromkeys(out))


def _reverse_key(path: str) -> str:
    # deletes of siblings run in the reverse of their creation order (which sorts by path)
    return "".join(chr(0x10FFFF - ord(ch)) for ch in path)


@dataclass
class KnownId:
    """An id and where it came from (``create_employee /employee/employeeID``), with the record that holds it."""

    value: Any
    source: str
    created: bool
    record: dict | None = None
    action: str = ""
    pointer: str = ""

    def for_param(self, param: str, name: str) -> KnownId:
        """The field of the same record that ``param`` names, when it names another than the id.

        Paths that name one collection at the same place may mean different
        fields of its records (Box: ``/metadata_templates/{template_id}`` and
        ``/metadata_templates/{scope}/{template_key}/schema``).
        """
        if self.record is None:
            return self
        member = pick_id_field([m for m in self.record if _is_id(self.record[m])], (param,), name)
        if member is None or self.record[member] == self.value:
            return self
        return KnownId(self.record[member], f"{self.action} {self.pointer}/{_escape(member)}", self.created,
                       self.record, self.action, self.pointer)


class IdBook:
    """The id each collection has during a check, and why a collection has none."""

    def __init__(self, graph: ResourceGraph):
        self.graph = graph
        self.ids: dict[str, KnownId] = {}
        self.misses: dict[str, str] = {}  # collection -> why no id (``create_employee failed: status 422``)

    def remember(self, collection: str, body: Any, action: str, *, created: bool) -> KnownId | None:
        """Take the record id out of ``action``'s answer for ``collection``; a created id wins over a listed one."""
        current = self.ids.get(collection)
        if current is not None and (current.created or not created):
            return None
        name = collection_name(collection)
        found = _search(body, self.graph.hints.get(collection, ()), name, _preferred(name), "", 0)
        if found is None:
            self.misses.setdefault(collection, f"{action} answered without a recognisable id")
            return None
        known = KnownId(found[0], f"{action} {found[1]}", created, found[2], action, found[3])
        self.ids[collection] = known
        return known

    def pin(self, collection: str, value: Any, action: str) -> None:
        """Keep ``value`` as the collection's id: ``action`` made records under it, so a listed id must not move them."""
        if collection not in self.ids:
            self.ids[collection] = KnownId(value, f"the sample {action} created records under", True)

    def missed(self, collection: str, why: str) -> None:
        self.misses.setdefault(collection, why)

    def lookup(self, slot: Slot) -> KnownId | None:
        """The id for ``slot``: its collection's, else one of a collection its parameter names."""
        for collection in self.graph.candidates(slot):
            if collection in self.ids:
                return self.ids[collection].for_param(slot.param, collection_name(collection))
        return None

    def why_missing(self, slot: Slot) -> str:
        """Why no id is known for ``slot`` (for the ``no_id`` category)."""
        for collection in self.graph.candidates(slot):
            if collection in self.misses:
                return f"{collection}: {self.misses[collection]}"
        return f"nothing creates or lists {slot.collection}"
