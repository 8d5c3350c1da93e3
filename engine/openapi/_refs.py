"""JSON pointers and ``$ref`` resolution for OpenAPI documents.

Resolution inlines every reference to document structure (path items,
parameters, request bodies, responses). References to schemas are inlined too,
unless the resolver keeps them (``keep_schema_refs``, what the connector
import uses): then a schema reference becomes ``{"$ref": "#/$defs/<name>"}``
and the schema it points at is kept once, under that name, in
:meth:`Resolver.shared_schemas`, so a document that reuses its schemas
does not multiply them. Three things real documents do are handled here:

* cycles (a tree node whose children are tree nodes): when inlining, the
  recursive occurrence is cut and replaced by a schema that says so, so
  nothing loops; kept references need no cut;
* dangling local references: a warning naming the pointer of the ``$ref``, and
  an empty schema (anything goes) in its place;
* references to other files: followed only when the file exists next to the
  document (a relative path on the local disk); anything else, including URLs,
  is refused before any work is done, naming the reference and where it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from ..errors import OpenAPIImportError, Problem
from ..specs._refs import def_ref

# Keys whose values are data, not document structure: a "$ref" inside them is
# an example payload, not a reference.
_DATA_KEYS = frozenset({"example", "default", "enum", "const"})
# ...unless the key is a name inside a map of named things: `responses: {default: ...}`
# is the default response, `properties: {default: ...}` a property called "default".
_NAME_MAPS = frozenset({"responses", "properties", "patternProperties", "schemas", "definitions", "$defs",
                        "parameters", "headers", "securitySchemes", "requestBodies", "callbacks", "links"})


def _is_data(key: str, pointer: str) -> bool:
    if key.startswith("x-"):
        return True
    return key in _DATA_KEYS and unescape(pointer.rsplit("/", 1)[-1]) not in _NAME_MAPS

# Keys next to a $ref that 3.0 and 2.0 formally ignore but that documents use
# on purpose; 3.1 keeps every sibling.
_LEGACY_SIBLINGS = frozenset({"description", "summary", "nullable", "readOnly", "writeOnly", "deprecated", "title"})
# Where a document's own schemas live: a reference to one keeps its name.
_COMPONENT = re.compile(r"^/(?:components/schemas|definitions|\$defs)/([^/]+)$")


def escape(token: Any) -> str:
    """Escape one reference token for a JSON pointer (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """Undo :func:`escape` (order matters: ``~1`` before ``~0``)."""
    return token.replace("~1", "/").replace("~0", "~")


def join(pointer: str, *tokens: Any) -> str:
    """Append tokens to a JSON pointer."""
    return pointer + "".join("/" + escape(t) for t in tokens)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """Return the node at ``pointer`` (``""`` or ``"#..."`` forms accepted); raise ``KeyError`` naming the pointer."""
    pointer = unquote(pointer[1:] if pointer.startswith("#") else pointer)
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise KeyError(f"not a JSON pointer: {pointer!r}")
    node = document
    for raw in pointer[1:].split("/"):
        token = unescape(raw)
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(f"nothing at {pointer}")
    return node


def iter_refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(pointer_of_the_ref_object, ref_value)`` for every ``$ref`` in ``node``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield pointer, ref
        for key, value in node.items():
            if _is_data(key, pointer):
                continue
            yield from iter_refs(value, join(pointer, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_refs(value, join(pointer, index))


def jsonable(node: Any) -> Any:
    """A copy of parsed YAML that JSON can hold: keys as strings (YAML reads ``200:`` as an int), dates as ISO text."""
    if isinstance(node, dict):
        return {_key(k): jsonable(v) for k, v in node.items()}
    if isinstance(node, list):
        return [jsonable(v) for v in node]
    if isinstance(node, (str, int, float, bool)) or node is None:
        return node
    if hasattr(node, "isoformat"):
        return node.isoformat()
    if isinstance(node, bytes):
        return node.decode("utf-8", "replace")
    return str(node)


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if hasattr(key, "isoformat"):
        return key.isoformat()
    return str(key)


def parse_text(text: str, source: str) -> Any:
    """Parse JSON or YAML text; raise :class:`OpenAPIImportError` when it is neither."""
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        if "&" in text:
            _check_alias_expansion(text, loader, source)
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader
    except (json.JSONDecodeError, yaml.YAMLError, ValueError) as exc:
        reason = str(exc).replace("\n", " ")
        raise OpenAPIImportError(source, "", f"not valid YAML or JSON: {reason}") from None


MAX_EXPANDED_NODES = 2_000_000


def _check_alias_expansion(text: str, loader: Any, source: str) -> None:
    """Refuse YAML whose aliases expand past MAX_EXPANDED_NODES (a "billion laughs" document).

    PyYAML shares aliased nodes, so loading is cheap, but everything that walks the
    result (reference resolution, copies) pays the expanded size. The expansion is
    counted on the node graph, each node once.
    """
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a cycle counts once
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        sizes[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
        return sizes[id(node)]

    root = yaml.compose(text, Loader=loader)
    if root is not None and size(root) > MAX_EXPANDED_NODES:
        raise OpenAPIImportError(source, "", f"the document's YAML aliases expand to more than {MAX_EXPANDED_NODES} "
                                             "nodes; refusing it")


class Resolver:
    """Resolves the ``$ref``s of one document (and the local files it points at).

    References are inlined; with ``keep_schema_refs``, those inside schemas are
    kept as ``#/$defs/<name>`` instead (see :meth:`shared_schemas`).

    ``base_dir`` is the directory of the document on disk, or None when the
    document did not come from a file (then every external reference is refused).
    Problems found while resolving (dangling references) go to ``warnings``.
    """

    def __init__(self, document: dict, *, source: str, base_dir: Path | None, version: str,
                 keep_schema_refs: bool = False):
        self.source = source
        self.base_dir = base_dir
        self.keep_all_siblings = not version.startswith(("2", "3.0"))
        self.keep_schema_refs = keep_schema_refs
        self.warnings: list[Problem] = []
        self._seen_warnings: set[tuple[str, str]] = set()
        # document key "" is the main document; others are resolved file paths
        self._documents: dict[str, Any] = {"": document}
        # (keep_schema_refs, document, pointer) -> resolved: the two modes resolve differently
        self._memo: dict[tuple[bool, str, str], Any] = {}
        # kept schema references: (document, pointer) -> name, and the names still to resolve
        self._names: dict[tuple[str, str], str] = {}
        self._taken: set[str] = set()
        self._pending: list[tuple[str, str, str]] = []

    @property
    def has_external(self) -> bool:
        """Whether the document refers to other files (known after :meth:`check_external`)."""
        return len(self._documents) > 1

    # -- external files ------------------------------------------------------
    def check_external(self) -> None:
        """Refuse, before any other work, a document whose external references cannot be followed."""
        self._check_external_refs("", self._documents[""], set())

    def _check_external_refs(self, doc_key: str, document: Any, visited: set[str]) -> None:
        visited.add(doc_key)
        for at, ref in iter_refs(document):
            if ref.startswith("#"):
                continue
            target = self._external_path(doc_key, at, ref)
            key = str(target)
            if key not in visited:
                self._check_external_refs(key, self._load_external(key, at, ref), visited)

    def _external_path(self, doc_key: str, at: str, ref: str) -> Path:
        where = at if not doc_key else f"{doc_key}#{at}"
        file_part = ref.split("#", 1)[0]
        parts = urlsplit(file_part)
        if parts.scheme or parts.netloc:
            raise OpenAPIImportError(
                self.source, where,
                f"$ref {ref!r} points at another document by URL; only local references and files next to the "
                "document are followed (download the referenced documents beside it, or bundle them into one file)",
            )
        if self.base_dir is None:
            raise OpenAPIImportError(
                self.source, where,
                f"$ref {ref!r} points at another file, but this document was not read from a file, so there is "
                "nothing to resolve it against (import it from its file path, or bundle it into one document)",
            )
        base = Path(doc_key).parent if doc_key else self.base_dir
        target = (base / unquote(file_part)).resolve()
        root = Path(self.base_dir).resolve()
        # Documents come from users and agents: a $ref must not read files outside the
        # document's own folder (../../etc/passwd, /home/x/.env, a symlink out).
        if Path(unquote(file_part)).is_absolute() or not target.is_relative_to(root):
            raise OpenAPIImportError(
                self.source, where,
                f"$ref {ref!r} points outside the document's folder; only files beside the document or below it "
                "are followed",
            )
        if not target.is_file():
            raise OpenAPIImportError(
                self.source, where,
                f"$ref {ref!r} points at the file {target}, which does not exist (external references are "
                "resolved relative to the document; put the referenced files there or bundle the document)",
            )
        return target

    def _load_external(self, key: str, at: str, ref: str) -> Any:
        if key not in self._documents:
            try:
                text = Path(key).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise OpenAPIImportError(self.source, at, f"$ref {ref!r}: cannot read {key}: {exc}") from None
            self._documents[key] = jsonable(parse_text(text, key))
        return self._documents[key]

    # -- inlining --------------------------------------------------------------
    def warn(self, pointer: str, message: str) -> None:
        """Record a warning once per (pointer, message)."""
        if (pointer, message) not in self._seen_warnings:
            self._seen_warnings.add((pointer, message))
            self.warnings.append(Problem(pointer, message))

    def resolve(self, node: Any, pointer: str, doc_key: str = "") -> Any:
        """Return ``node`` (found at ``pointer`` in document ``doc_key``) with its ``$ref``s resolved.

        Every reference is inlined, except, when the resolver keeps schema
        references, those met inside a schema (below a ``schema`` key).
        """
        value, _ = self._resolve(node, pointer, doc_key, (), False, self.keep_schema_refs)
        return value

    def resolve_at(self, pointer: str) -> Any:
        """The node at ``pointer`` of the main document, every ref inlined; raise ``KeyError`` when there is none."""
        node = resolve_pointer(self._documents[""], pointer)
        return self._resolve(node, pointer, "", (), False, False)[0]

    def shared_schemas(self) -> dict[str, tuple[str, Any]]:
        """The schemas kept references point at: ``name -> (where, schema with its own refs kept)``.

        ``where`` is the schema's pointer in the document (``file#pointer`` for
        another file). Resolving one may name more, which are resolved too.
        """
        out: dict[str, tuple[str, Any]] = {}
        while self._pending:
            name, doc_key, pointer = self._pending.pop()
            node = resolve_pointer(self._documents[doc_key], pointer)
            where = pointer if not doc_key else f"{doc_key}#{pointer}"
            out[name] = (where, self._resolve(node, pointer, doc_key, (), True, True)[0])
        return out

    def _resolve(self, node: Any, pointer: str, doc_key: str, stack: tuple, in_schema: bool,
                 keep: bool) -> tuple[Any, bool]:
        """Resolve refs below ``node``; the flag says whether a cycle was cut (such results are not memoised)."""
        if isinstance(node, list):
            out, cut = [], False
            for index, item in enumerate(node):
                value, was_cut = self._resolve(item, join(pointer, index), doc_key, stack, in_schema, keep)
                out.append(value)
                cut = cut or was_cut
            return out, cut
        if not isinstance(node, dict):
            return node, False
        ref = node.get("$ref")
        if isinstance(ref, str):
            if keep and in_schema:
                return self._keep(node, ref, pointer, doc_key, stack), False
            return self._follow(node, ref, pointer, doc_key, stack, in_schema, keep)
        out, cut = {}, False
        for key, value in node.items():
            if _is_data(key, pointer):
                out[key] = value
                continue
            # below a "schema" key of document structure (parameter, media type, header) is a schema
            child_in_schema = in_schema or key == "schema"
            out[key], was_cut = self._resolve(value, join(pointer, key), doc_key, stack, child_in_schema, keep)
            cut = cut or was_cut
        return out, cut

    def _target(self, ref: str, pointer: str, doc_key: str) -> tuple[str, str]:
        if ref.startswith("#"):
            return doc_key, unquote(ref[1:])
        _, _, fragment = ref.partition("#")
        path = self._external_path(doc_key, pointer, ref)
        self._load_external(str(path), pointer, ref)
        return str(path), unquote(fragment)

    def _follow(self, node: dict, ref: str, pointer: str, doc_key: str, stack: tuple, in_schema: bool,
                keep: bool) -> tuple[Any, bool]:
        target_doc, target_pointer = self._target(ref, pointer, doc_key)
        key = (target_doc, target_pointer)
        where = pointer if not doc_key else f"{doc_key}#{pointer}"
        if key in stack:
            return self._cut(ref, target_doc, target_pointer), True
        if (keep, *key) in self._memo:
            resolved, cut = self._memo[(keep, *key)], False
        else:
            try:
                target = resolve_pointer(self._documents[target_doc], target_pointer)
            except KeyError:
                self.warn(where, f"$ref {ref!r} points at nothing (dangling reference); "
                                 "an empty schema is used instead")
                return {}, False
            resolved, cut = self._resolve(target, target_pointer, target_doc, stack + (key,), in_schema, keep)
            if not cut:
                self._memo[(keep, *key)] = resolved
        siblings = self._siblings(node)
        if siblings and isinstance(resolved, dict):
            resolved_siblings, sibling_cut = self._resolve(siblings, pointer, doc_key, stack, in_schema, keep)
            resolved = {**resolved, **resolved_siblings}
            cut = cut or sibling_cut
        return resolved, cut

    def _siblings(self, node: dict) -> dict:
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if siblings and not self.keep_all_siblings:
            siblings = {k: v for k, v in siblings.items() if k in _LEGACY_SIBLINGS}
        return siblings

    def _keep(self, node: dict, ref: str, pointer: str, doc_key: str, stack: tuple) -> Any:
        """A schema reference kept as ``#/$defs/<name>``; the schema it names is queued to be resolved once."""
        target_doc, target_pointer = self._target(ref, pointer, doc_key)
        key = (target_doc, target_pointer)
        name = self._names.get(key)
        if name is None:
            try:
                resolve_pointer(self._documents[target_doc], target_pointer)
            except KeyError:
                where = pointer if not doc_key else f"{doc_key}#{pointer}"
                self.warn(where, f"$ref {ref!r} points at nothing (dangling reference); "
                                 "an empty schema is used instead")
                return {}
            name = self._names[key] = self._new_name(target_doc, target_pointer)
            self._pending.append((name, target_doc, target_pointer))
        out: dict[str, Any] = {"$ref": def_ref(name)}
        siblings = self._siblings(node)
        if siblings:
            resolved, _ = self._resolve(siblings, pointer, doc_key, stack, True, True)
            out.update(resolved)
        return out

    def _new_name(self, doc_key: str, pointer: str) -> str:
        """A readable, unique ``$defs`` name: the component's own name where there is one."""
        match = _COMPONENT.match(pointer)
        if match:
            base = unescape(match.group(1))
        else:
            tokens = [unescape(t) for t in pointer.split("/")[1:] if t]
            tokens = [t for t in tokens if t not in ("components", "schemas", "definitions", "$defs", "properties",
                                                     "items", "content", "schema", "paths")]
            base = "_".join(tokens[-2:])
            if doc_key:
                base = Path(doc_key).stem + (f"_{base}" if base else "")
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("_") or "schema"
        name, index = base, 2
        while name in self._taken:
            name, index = f"{base}_{index}", index + 1
        self._taken.add(name)
        return name

    def _cut(self, ref: str, doc_key: str, pointer: str) -> dict:
        cut: dict[str, Any] = {"description": f"recursive reference to {ref} (not expanded further)"}
        try:
            target = resolve_pointer(self._documents[doc_key], pointer)
        except KeyError:
            return cut
        if isinstance(target, dict) and isinstance(target.get("type"), (str, list)):
            cut["type"] = target["type"]
        return cut
