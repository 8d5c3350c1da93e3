"""Each package's errors module: one root, every class with a code and an HTTP status, and a module
docstring that draws the whole hierarchy (every class named), so a reader sees every error a package
can raise in one place."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = ["api.errors", "engine.errors", "runtime.errors", "store.errors", "switchboard.errors"]


def _errors(module_name: str) -> list[type[BaseException]]:
    module = importlib.import_module(module_name)
    return [value for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module_name]


@pytest.mark.parametrize("module_name", MODULES)
def test_the_docstring_names_every_error_class(module_name: str) -> None:
    doc = importlib.import_module(module_name).__doc__ or ""
    assert [cls.__name__ for cls in _errors(module_name) if cls.__name__ not in doc] == []


@pytest.mark.parametrize("module_name", MODULES)
def test_one_root_and_every_error_has_a_code_and_a_status(module_name: str) -> None:
    classes = _errors(module_name)
    roots = [cls for cls in classes if not any(issubclass(cls, other) for other in classes if other is not cls)]
    assert len(roots) == 1, [cls.__name__ for cls in roots]
    for cls in classes:
        assert isinstance(cls.code, str) and cls.code, cls.__name__
        assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599, cls.__name__


def test_an_instance_status_wins_over_its_class() -> None:
    from api.errors import coded_error_response
    from engine.errors import StepFailed, UpstreamTimeout

    failed = StepFailed("run-1", "fetch", "fetch", "crm.list", UpstreamTimeout("GET", "https://crm.example/x", 3, "timed out"))
    response = coded_error_response(failed)
    assert response is not None and response.status_code == failed.http_status != StepFailed.http_status
