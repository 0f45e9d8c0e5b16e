"""Paths from each question's entities to its answer, on the sampled (pruned) graph.

Every (question entity, answer node) pair of every question goes to the `between`
sampler in one call: up to `k` paths per pair within the hop cap, each with its
true hop directions. A question whose entities or answer pruning removed, or whose
pairs no path within the cap joins, gets a reason code instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kgsynth.graph.engine import Engine
from kgsynth.ground.link import Linked


@dataclass
class PathSearch:
    paths: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # record → path rows
    lost: dict[int, tuple[str, str]] = field(default_factory=dict)  # record → (reason, detail)
    pairs: int = 0  # distinct pairs searched


def question_pairs(linked: Linked, max_pairs: int) -> list[tuple[str, str]]:
    """(question entity, answer node) pairs in the order the question names its entities."""
    answers = linked.answer_nodes
    pairs = [(q, a) for q in linked.question_nodes for a in answers if q != a]
    return pairs[:max_pairs]


def find_paths(
    engine: Engine, linked: Sequence[Linked], *, k: int, max_hops: int, seed: int, max_pairs: int
) -> PathSearch:
    """Paths for every record that has question entities and an answer (see the module docstring)."""
    from kgsynth.sample.between import paths_between

    search = PathSearch()
    wanted: dict[int, list[tuple[str, str]]] = {}
    for r, lk in enumerate(linked):
        pairs = question_pairs(lk, max_pairs)
        inside = [(q, a) for q, a in pairs if engine.has_index(q) and engine.has_index(a)]
        if pairs and not inside:
            gone = sorted({n for pair in pairs for n in pair if not engine.has_index(n)})
            search.lost[r] = ("entity_pruned", f"not in the sampled graph: {', '.join(gone[:5])}")
        elif inside:
            wanted[r] = inside
    unique = list(dict.fromkeys(pair for pairs in wanted.values() for pair in pairs))
    search.pairs = len(unique)
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if unique:
        frame, _ = paths_between(engine, unique, k=k, max_hops=max_hops, seed=seed)
        for row in frame.iter_rows(named=True):
            found.setdefault((row["nodes"][0], row["nodes"][-1]), []).append(row)
    for r, pairs in wanted.items():
        rows = [row for pair in pairs for row in found.get(pair, ())]
        if rows:
            search.paths[r] = rows
        else:
            search.lost[r] = ("no_path_within_hops", f"{len(pairs)} pair(s), none joined within {max_hops} hops")
    return search
