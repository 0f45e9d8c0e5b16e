"""The checks registry and what a check returns.

A check judges a whole batch at once and returns, per item, passed or a reason code
with human-readable evidence. Checks are chosen by name (`--check edges`); each has
a stage, and stages run in order (graph, llm, decontamination, dedup): an item
rejected at one stage is not paid for at the next.

A graph check judges paths (`judges="paths"`: a batch row is one path, and a `dag`
item rests on one per branch; `Outcome.per_item` folds their verdicts into the
item's) or whole items (`judges="items"`: the `plan` check). What each reason code
means is in `kgsynth.verify.codes.REASON_CODES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from kgsynth.registry import Registry

STAGES = ("graph", "llm", "decontamination", "dedup")


@dataclass
class Outcome:
    """One verdict per item: `code[i]` is None when item i passed.

    A check that finds problems of different kinds in one item reports the first as
    the item's verdict and the others in `extra` (row, code, detail), one per code,
    so the item's reasons list every kind of problem.
    """

    code: list[str | None]
    detail: list[str]
    extra: list[tuple[int, str, str]] = field(default_factory=list)
    usage: dict | None = None  # model usage (kgsynth.llm accounting summary) of a check that calls a model

    @classmethod
    def passing(cls, n: int) -> Outcome:
        return cls(code=[None] * n, detail=[""] * n)

    @classmethod
    def of(cls, n: int, failures: Iterable[tuple[int, str, str]]) -> Outcome:
        """From (row, code, detail) failures, in any order."""
        outcome = cls.passing(n)
        seen: set[tuple[int, str]] = set()
        for row, code, detail in failures:
            if (row, code) in seen:
                continue
            seen.add((row, code))
            if outcome.code[row] is None:
                outcome.code[row] = code
                outcome.detail[row] = detail
            else:
                outcome.extra.append((row, code, detail))
        return outcome

    @property
    def passed(self) -> np.ndarray:
        return np.array([c is None for c in self.code], dtype=bool)

    def per_item(self, unit: np.ndarray, n: int) -> Outcome:
        """The verdicts of paths folded into their items' (`unit[row]`): each kind of problem once,
        the first path's first; an item with no path to judge passes with a note saying so."""
        failures = [(int(unit[row]), row, 0, code, detail)
                    for row, (code, detail) in enumerate(zip(self.code, self.detail, strict=True)) if code]
        failures += [(int(unit[row]), row, 1 + k, code, detail) for k, (row, code, detail) in enumerate(self.extra)]
        failures.sort(key=lambda f: f[:3])
        folded = Outcome.of(n, [(item, code, detail) for item, _, _, code, detail in failures])
        for item in sorted(set(range(n)) - set(unit.tolist())):
            folded.detail[item] = "no path to judge: the item's plan is not a sound DAG (see the plan check)"
        folded.usage = self.usage
        return folded


@dataclass(frozen=True)
class Check:
    name: str
    stage: str
    codes: tuple[str, ...]  # the reason codes it can give
    run: Callable[..., Outcome]  # graph checks: run(batch, context) -> Outcome
    description: str = ""
    judges: Literal["paths", "items"] = "paths"  # graph checks: one verdict per batch row, or per item


@dataclass
class Context:
    """What graph checks may read besides the batch."""

    index: Any  # GraphIndex of the full snapshot
    hubs: Any = None  # HubIndex, or None when no pruning was given
    relation_check: str = "lexicon"  # what step sentences' relations are checked with: lexicon, model, off


CHECKS: Registry[Check] = Registry("check")


def register(
    name: str, stage: str, codes: tuple[str, ...], description: str, judges: Literal["paths", "items"] = "paths"
) -> Callable:
    """Decorator: register a check function under `name`."""

    def add(run: Callable[..., Outcome]) -> Callable[..., Outcome]:
        CHECKS.register(name)(Check(name=name, stage=stage, codes=codes, run=run, description=description, judges=judges))
        return run

    return add


def load_checks() -> None:
    """Import the modules that register checks."""
    from kgsynth.verify import (  # noqa: F401
        decontam,
        dedup,
        graph_checks,
        llm_check,
        plan_checks,
        relation_model,
        shortcut,
        text_checks,
    )


def names_for(stage: str) -> list[str]:
    load_checks()
    return [name for name in CHECKS.names() if CHECKS.get(name).stage == stage]
