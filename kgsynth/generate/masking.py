"""Bridge-entity masking: a question names its anchor and no other entity of the path.

Names are compared as whole words after casefolding and turning punctuation into
spaces, the normalization verification uses. The rule is deliberately stricter
than verification's longest-match linking: a bridge name inside the anchor's name
("Epilepsy" in "Focal epilepsy") counts as a leak here, so items that pass this
check pass verification's. A path whose anchor name already contains a bridge or
the answer cannot be asked about without leaking, and one whose entities share a
name or are named by common words cannot be stated checkably: both are skipped
before any call.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def _padded(names: Iterable[str]) -> list[str]:
    return [f" {n} " for n in {normalize(name) for name in names} if n]


def mentions(text: str, names: Iterable[str]) -> bool:
    """Does the text name any of these (whole words, case and punctuation ignored)?"""
    haystack = f" {normalize(text)} "
    return any(name in haystack for name in _padded(names))


def path_problem(names: list[str]) -> str | None:
    """Reason code when a path's entity names cannot be told apart in text.

    Two entities with one name ("Pilonidal sinus" the phenotype and the disease)
    make a hop that reads as a tautology; a name made only of common words (the
    genes WAS, CAT, SET) is a word, not a mention, to verification's linker.
    """
    keys = [normalize(name) for name in names]
    if len(set(keys)) < len(keys):
        return "names_not_distinct"
    stop = _common_words()
    if any(all(word in stop for word in key.split()) for key in keys):
        return "name_is_common_word"
    return None


@functools.cache
def _common_words() -> frozenset[str]:
    from kgsynth.verify.text import COMMON_WORDS  # verification's list, so both rooms agree

    return COMMON_WORDS


def anchor_problem(anchor: list[str], bridges: list[list[str]], answer: list[str]) -> str | None:
    """Reason code when the anchor's own names contain a bridge's or the answer's name."""
    text = " | ".join(anchor)
    if mentions(text, answer):
        return "anchor_names_answer"
    if any(mentions(text, names) for names in bridges):
        return "anchor_names_bridge"
    return None


def question_problem(question: str, anchor: list[str], bridges: list[list[str]], answer: list[str]) -> str | None:
    """Reason code when a question fails the masking rule, else None."""
    if not mentions(question, anchor):
        return "question_lacks_anchor"
    if mentions(question, answer):
        return "question_names_answer"
    if any(mentions(question, names) for names in bridges):
        return "question_names_bridge"
    return None
