"""Prompt templates: one per agent role, each rendered with exactly the variables it declares."""

from __future__ import annotations

import pytest

import prompts
from prompts import Prompt, PromptError


@pytest.mark.parametrize("role", prompts.ROLES)
def test_each_role_renders_with_its_declared_variables(role: str) -> None:
    prompt = prompts.load(role)
    assert prompt.variables, f"{role} declares no variables"
    values = {name: f"<{name}-value>" for name in prompt.variables}
    text = prompt.render(**values)
    for value in values.values():
        assert value in text
    assert "{" not in text and "}" not in text


@pytest.mark.parametrize("role", prompts.ROLES)
def test_each_role_states_the_rules(role: str) -> None:
    text = prompts.load(role).template.lower()
    assert "approval" in text and "secret" in text


@pytest.mark.parametrize("role", prompts.ROLES)
def test_a_missing_variable_is_refused(role: str) -> None:
    prompt = prompts.load(role)
    values = {name: "x" for name in prompt.variables}
    dropped = sorted(values)[0]
    del values[dropped]
    with pytest.raises(PromptError, match=f"missing variables: {dropped}"):
        prompt.render(**values)


def test_an_unknown_variable_is_refused() -> None:
    prompt = prompts.load("home")
    with pytest.raises(PromptError, match="unknown variables: extra"):
        prompt.render(**{name: "x" for name in prompt.variables}, extra="y")


def test_a_template_and_its_declaration_must_agree() -> None:
    with pytest.raises(PromptError, match="never uses: unused"):
        Prompt("t", {"used": "", "unused": ""}, "hello {used}").render(used="a", unused="b")
    with pytest.raises(PromptError, match="undeclared variables: other"):
        Prompt("t", {"used": ""}, "hello {used} {other}").render(used="a")
