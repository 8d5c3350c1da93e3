"""openapi-spec-validator's findings, as warnings with JSON pointers.

The validator is run first on every document; what it finds does not stop the
import by itself (real documents are rarely valid), it is reported. The
refusals (no paths, external files, wrong version) are decided elsewhere.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from openapi_spec_validator.shortcuts import get_validator_cls

from ..errors import Problem
from ._refs import join

_MAX_FINDINGS = 200


def validation_warnings(raw: dict, *, source_path: Path | None, cacheable: bool) -> list[Problem]:
    """Run openapi-spec-validator over ``raw``; return one :class:`Problem` per finding (at most 200).

    ``source_path`` is the document's file, so references to files beside it
    resolve; ``cacheable`` says the result depends on ``raw`` alone (no other
    files), so a document loaded again in this process is not validated again.
    """
    if cacheable:
        return list(_cached(json.dumps(raw, sort_keys=True)))
    return _findings(raw, source_path)


@lru_cache(maxsize=32)
def _cached(raw_json: str) -> tuple[Problem, ...]:
    # Validation is the slowest part of an import (seconds for Resend's document).
    return tuple(_findings(json.loads(raw_json), None))


def _findings(raw: dict, source_path: Path | None) -> list[Problem]:
    try:
        cls = get_validator_cls(raw)
    except Exception as exc:  # the version check already passed; this is the validator's own detection
        return [Problem("", f"openapi-spec-validator cannot tell the version: {exc}")]
    # The base URI lets the validator follow references to files next to the document
    # (they were checked to exist); without a file, there is nothing to resolve against.
    base_uri = source_path.as_uri() if source_path is not None else ""
    problems: list[Problem] = []
    try:
        for error in cls(raw, base_uri=base_uri).iter_errors():
            problems.append(_problem(error))
            if len(problems) >= _MAX_FINDINGS:
                problems.append(Problem("", f"more than {_MAX_FINDINGS} validation findings; the rest are not listed"))
                break
    except Exception as exc:  # noqa: BLE001 - a crash inside the validator must not stop the import
        # The validator raises (rather than reports) on some broken documents, e.g. a
        # dangling $ref in a place it resolves; the resolver reports those precisely.
        problems.append(Problem("", f"openapi-spec-validator stopped early: {type(exc).__name__}: {_short(str(exc))}"))
    return problems


def _problem(error: ValidationError) -> Problem:
    pointer = join("", *error.absolute_path) if error.absolute_path else ""
    inner = _explain(error)
    message = inner.message
    where = join("", *inner.absolute_path)
    if where and where != pointer:
        message += f" (at {where})"
    return Problem(pointer, f"invalid per openapi-spec-validator: {_short(message)}")


def _explain(error: ValidationError) -> ValidationError:
    """The sub-error that says what is wrong.

    oneOf/anyOf failures ("... is not valid under any of the given schemas") say
    nothing useful by themselves. Their leaf sub-errors that only show a branch
    was not meant (an enum or const mismatch on a tag such as ``in``, a missing
    ``$ref`` of the Reference-object alternative, unexpected properties) are set
    aside; of the rest, the one in the most deeply nested branch is the most
    specific (e.g. "'required' is a required property" for a path parameter).
    """
    leaves: list[tuple[int, ValidationError]] = []

    def walk(err: ValidationError, depth: int) -> None:
        if err.context:
            for sub in err.context:
                walk(sub, depth + 1)
        else:
            leaves.append((depth, err))

    walk(error, 0)
    useful = [(d, e) for d, e in leaves if not _wrong_branch(e)]
    if not useful or not error.context:
        return error
    deepest = max(d for d, _ in useful)
    return best_match([e for d, e in useful if d == deepest]) or error


def _wrong_branch(error: ValidationError) -> bool:
    if error.validator == "required" and "'$ref'" in error.message:
        return True
    return error.validator in ("enum", "const", "additionalProperties")


def _short(text: Any, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."
