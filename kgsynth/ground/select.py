"""Choosing, among the paths found for one question, the few the reasoning follows.

All chosen paths end at the same answer node (the reasoning concludes one answer).
Offline ranking: fewest hops first; among equals, the path through the least
connected intermediate nodes (a specific link says more than a generic hub), then
one path per question entity before any entity gets a second. With a model, the
ranked list (up to `offer` paths) is shown as numbered fact chains and the model
picks; picks it cannot make (bad numbers, another answer node, a failed call) fall
back to the ranking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kgsynth.graph.engine import Engine

PathRow = dict[str, Any]  # a row of the paths table (kgsynth.sample.paths)


def rank_paths(paths: Sequence[PathRow], engine: Engine) -> list[PathRow]:
    """Every path, best first (see the module docstring)."""

    def generality(row: PathRow) -> float:
        inner = row["nodes"][1:-1]
        return sum(math.log1p(int(engine.degree[engine.index_of(n)])) for n in inner if engine.has_index(n))

    ordered = sorted(paths, key=lambda r: (len(r["relations"]), generality(r), r["nodes"], r["relations"]))
    first, rest, anchors = [], [], set()
    for row in ordered:
        (rest if row["nodes"][0] in anchors else first).append(row)
        anchors.add(row["nodes"][0])
    return first + rest


def choose(ranked: Sequence[PathRow], limit: int, picks: Sequence[int] | None = None) -> list[PathRow]:
    """Up to `limit` paths ending where the first one ends: the model's picks (1-based
    numbers into `ranked`) when usable, else the ranking."""
    chosen: list[PathRow] = []
    for number in picks or ():
        if 1 <= number <= len(ranked) and ranked[number - 1] not in chosen:
            chosen.append(ranked[number - 1])
    if not chosen:
        chosen = list(ranked)
    terminal = chosen[0]["nodes"][-1]
    return [row for row in chosen if row["nodes"][-1] == terminal][:limit]
