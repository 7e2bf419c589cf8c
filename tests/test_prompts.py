"""Prompts are files rendered strictly: missing, unknown and malformed variables are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import RagError
from rag.prompts import (
    PROMPTS_DIR,
    PromptError,
    load_prompt,
    prompt_variables,
    render_prompt,
    render_template,
)


def test_values_fill_every_placeholder() -> None:
    assert render_template("Hi {{ name }}, {{name}}!", {"name": "Ada"}) == "Hi Ada, Ada!"


def test_a_missing_variable_is_an_error_naming_it() -> None:
    with pytest.raises(PromptError, match="missing variable 'question'"):
        render_template("{{ passages }}\n{{ question }}", {"passages": "[1] x"}, "answer")


def test_an_unknown_variable_is_an_error_naming_it() -> None:
    with pytest.raises(PromptError, match="unknown variable 'questoin'"):
        render_template("{{ question }}", {"question": "q", "questoin": "typo"})


def test_a_malformed_placeholder_is_an_error() -> None:
    with pytest.raises(PromptError, match="malformed placeholder"):
        render_template("{{ question }} and {{ oops", {"question": "q"})


def test_values_are_not_rendered_again() -> None:
    # An article that happens to contain "{{ question }}" stays literal.
    assert render_template("{{ text }}", {"text": "{{ question }}"}) == "{{ question }}"


def test_a_missing_prompt_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="'nope'"):
        load_prompt("nope", tmp_path)
    with pytest.raises(PromptError):
        load_prompt("../etc/passwd", tmp_path)
    assert issubclass(PromptError, RagError)


def test_prompt_files_live_in_a_directory_that_can_be_swapped(tmp_path: Path) -> None:
    (tmp_path / "greet.txt").write_text("Hello {{ who }}\n", encoding="utf-8")
    assert render_prompt("greet", tmp_path, who="world") == "Hello world"


@pytest.mark.parametrize(
    ("name", "variables"),
    [
        ("system", {"not_found", "max_sentences"}),
        ("answer", {"passages", "question", "not_found", "max_sentences"}),
        ("passage", {"n", "title", "date", "text"}),
        ("rewrite", {"history", "question"}),
    ],
)
def test_the_shipped_prompts_use_exactly_these_variables(name: str, variables: set[str]) -> None:
    assert (PROMPTS_DIR / f"{name}.txt").is_file()
    assert prompt_variables(load_prompt(name)) == variables


def test_the_system_prompt_asks_for_citations_and_a_fixed_refusal() -> None:
    text = render_prompt("system", not_found="I don't know.", max_sentences=3)
    assert "[1]" in text and "I don't know." in text and "only" in text
