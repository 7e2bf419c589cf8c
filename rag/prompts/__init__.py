"""Prompts are files in this package's folder (``rag/prompts/*.txt``), rendered strictly.

A prompt is a text file with ``{{ name }}`` placeholders. ``render_prompt(name, **values)``
fills them and fails with a ``PromptError`` naming the variable when one is missing, when a
value is given that the prompt does not use (a misspelling would otherwise go unnoticed), or
when the file does not exist. Nothing else is interpreted: no loops, no conditionals, no
escaping. Files are read once and cached. This module does not know what the prompts say.

The files sit beside this module so that they are package data: an installed wheel carries them,
and ``rag`` finds them from any working directory.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from rag.errors import RagError

PROMPTS_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_STRAY_BRACES = re.compile(r"\{\{|\}\}")


class PromptError(RagError):
    """A prompt file is missing or cannot be rendered with the values given."""


@lru_cache(maxsize=64)
def load_prompt(name: str, directory: Path = PROMPTS_DIR) -> str:
    """The template text of ``directory/<name>.txt``, trailing newlines removed."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise PromptError(f"prompt names are lower-case words, got {name!r}")
    path = directory / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PromptError(f"cannot read prompt {name!r} at {path}: {e.strerror or e}") from None
    return text.rstrip("\n")


def prompt_variables(template: str) -> set[str]:
    """The variable names ``template`` uses."""
    return set(_PLACEHOLDER.findall(template))


def render_template(template: str, values: dict[str, object], name: str = "prompt") -> str:
    """``template`` with every ``{{ var }}`` replaced by ``str(values[var])``; strict both ways."""
    needed = prompt_variables(template)
    missing = sorted(needed - values.keys())
    if missing:
        raise PromptError(
            f"{name}: missing variable {missing[0]!r} (needs {', '.join(sorted(needed))})"
        )
    unused = sorted(values.keys() - needed)
    if unused:
        raise PromptError(
            f"{name}: unknown variable {unused[0]!r} (uses {', '.join(sorted(needed))})"
        )
    if _STRAY_BRACES.search(_PLACEHOLDER.sub("", template)):
        raise PromptError(f"{name}: malformed placeholder (expected {{{{ name }}}})")
    # One pass over the template, so a value that itself contains "{{ x }}" is left alone.
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def render_prompt(name: str, directory: Path = PROMPTS_DIR, **values: object) -> str:
    """The prompt file ``name`` rendered with ``values`` (see ``render_template``)."""
    return render_template(load_prompt(name, directory), values, name)
