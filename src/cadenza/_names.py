"""The one rule for agent and team names, how a model string names its provider, the one way a near miss is
suggested, and the one way validation errors are put into words."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from pydantic import ValidationError

__all__ = ("NAME_PATTERN", "closest", "did_you_mean", "name_problem", "provider_of", "suggest", "summarise_validation")

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$"
"""Agent and team names: a letter, then letters, digits, '_' or '-', at most 64 in all.

Names appear in plans, schemas (as enums), logs and file paths, so they stay plain ASCII.
"""
_NAME = re.compile(NAME_PATTERN)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid agent or team name, or None when it is."""
    if _NAME.fullmatch(name):
        return None
    return f"{name!r} is not a valid name: start with a letter, then letters, digits, '_' or '-' (at most 64)"


def provider_of(model: str) -> str:
    """``anthropic`` of ``anthropic:claude-haiku-4-5``."""
    return model.partition(":")[0]


def suggest(word: str, known: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` when a known word is close, else ``""``."""
    return did_you_mean(closest(word, known))


def closest(word: str, known: Sequence[str]) -> str | None:
    """The known word nearest ``word``, if one is near enough to be what was meant."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return close[0] if close else None


def did_you_mean(guess: str | None) -> str:
    """``" (did you mean 'x'?)"`` for a ``guess``, ``""`` for none: the one way a near miss is put into words."""
    return f" (did you mean {guess!r}?)" if guess else ""


def summarise_validation(exc: ValidationError, *, root: str = "(root)", limit: int = 5) -> str:
    """``path: message; path: message`` for the first ``limit`` errors, saying how many more there are."""
    errors = exc.errors()
    shown = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in errors[:limit])
    return shown + (f" (and {len(errors) - limit} more)" if len(errors) > limit else "")
