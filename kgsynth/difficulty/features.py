"""Graph features of how hard an item is, measured on the full graph.

Per item (a `dag` item over all its branches):

- `hops` (per branch) and `steps` (triples the item rests on), `branches`;
- `answer_degree`, `anchor_degree` (the least connected anchor) and `rarity`: the
  mean over the item's entities of 1 − log(1 + degree) / log(1 + largest degree),
  near 1 for rare entities, near 0 for hubs;
- distractor hardness: `distractor_distance`, the fewest hops between the answer
  and a distractor in the full graph (1, 2, or 3 meaning three or more), and
  `distractor_overlap`, the largest share of neighbours a distractor has in common
  with the answer (Jaccard); `distractor_hardness` averages, over the
  distractors, closeness (1, ½, 0 for distance 1, 2, 3+) and overlap;
- `anchor_distance`, the fewest hops from an anchor to the answer in the full
  graph, any relation, either direction (at most the item's hops), and `shortcut`:
  whether that is fewer than the item's hops, so the answer can be reached without
  the reasoning the item asks for.

Neighbour sets are read once per node from the engine's CSR arrays and kept for
the run; the walks are bounded breadth-first searches that grow the cheaper side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl

from kgsynth.generate.item import with_optional_columns
from kgsynth.generate.plan import item_paths
from kgsynth.graph.engine import Engine

FEATURES_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "kind": pl.String(),
    "hops": pl.Int32(),
    "steps": pl.Int32(),
    "branches": pl.Int32(),
    "answer_degree": pl.Int64(),
    "anchor_degree": pl.Int64(),
    "rarity": pl.Float64(),
    "distractor_distance": pl.Int32(),  # null: no distractors (open items)
    "distractor_overlap": pl.Float64(),
    "distractor_hardness": pl.Float64(),
    "anchor_distance": pl.Int32(),
    "shortcut": pl.Boolean(),
}
FAR = 3  # distractor distances are counted up to here ("3" reads "3 or more")
CLOSENESS = {1: 1.0, 2: 0.5, FAR: 0.0}


class Neighbourhood:
    """Distinct neighbours of nodes (either direction, any relation), read once each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sets: dict[int, np.ndarray] = {}

    def of(self, node: int) -> np.ndarray:
        found = self._sets.get(node)
        if found is None:
            e = self.engine
            found = self._sets[node] = np.unique(e.indices[e.indptr[node] : e.indptr[node + 1]]).astype(np.int64)
        return found

    def distance_within(self, a: int, z: int, limit: int) -> int | None:
        """The fewest hops between a and z if at most `limit`, else None (bidirectional, cheaper side first)."""
        if a == z:
            return 0
        sides = [({a}, {a}), ({z}, {z})]  # (frontier, seen) from each end
        for depth in range(1, limit + 1):
            cost = [sum(int(self.engine.degree[u]) for u in frontier) for frontier, _ in sides]
            grow = 0 if cost[0] <= cost[1] else 1
            frontier, seen = sides[grow]
            reached = np.unique(np.concatenate([self.of(u) for u in frontier])) if frontier else np.empty(0, np.int64)
            fresh = set(reached.tolist()) - seen
            if fresh & sides[1 - grow][1]:
                return depth
            if not fresh:
                return None
            sides[grow] = (fresh, seen | fresh)
        return None


def item_features(items: pl.DataFrame, engine: Engine) -> pl.DataFrame:
    """One row of FEATURES_SCHEMA per item (items-table columns; verdicts and others are ignored)."""
    near = Neighbourhood(engine)
    degree = engine.degree
    log_top = math.log1p(int(degree.max())) if len(degree) else 1.0
    index_of = engine.index_of
    rows: list[dict[str, Any]] = []
    columns = ["id", "kind", "nodes", "relations", "forward", "hops", "answer_id", "negatives", "plan"]
    for item in with_optional_columns(items).select(columns).iter_rows(named=True):
        paths = item_paths(item)
        answer = index_of(item["answer_id"])
        anchors = [index_of(nodes[0]) for nodes, _, _ in paths]
        entities = list(dict.fromkeys(index_of(n) for nodes, _, _ in paths for n in nodes))
        distances = [
            near.distance_within(anchor, answer, len(relations) - 1) for anchor, (_, relations, _) in zip(anchors, paths, strict=True)
        ]
        reach = [len(r) if d is None else d for d, (_, r, _) in zip(distances, paths, strict=True)]
        row = {
            "id": item["id"],
            "kind": item["kind"],
            "hops": item["hops"],
            "steps": sum(len(r) for _, r, _ in paths),
            "branches": len(paths),
            "answer_degree": int(degree[answer]),
            "anchor_degree": int(min(degree[a] for a in anchors)),
            "rarity": float(np.mean([1 - math.log1p(int(degree[e])) / log_top for e in entities])) if log_top else 0.0,
            "anchor_distance": int(min(reach)),
            "shortcut": any(d is not None for d in distances),
        }
        row.update(distractor_features(near, answer, (index_of(n) for n in item["negatives"] or [])))
        rows.append(row)
    return pl.DataFrame(rows, schema=FEATURES_SCHEMA)


def distractor_features(near: Neighbourhood, answer: int, distractors: Iterable[int]) -> dict[str, Any]:
    """Distance (capped at FAR), neighbour overlap and hardness of an answer's distractors."""
    mine = near.of(answer)
    found = []
    for d in distractors:
        theirs = near.of(d)
        shared = len(np.intersect1d(mine, theirs, assume_unique=True))
        union = len(mine) + len(theirs) - shared
        distance = 1 if np.searchsorted(mine, d) < len(mine) and mine[np.searchsorted(mine, d)] == d else 2 if shared else FAR
        overlap = shared / union if union else 0.0
        found.append((distance, overlap))
    if not found:
        return {"distractor_distance": None, "distractor_overlap": None, "distractor_hardness": None}
    return {
        "distractor_distance": min(d for d, _ in found),
        "distractor_overlap": max(o for _, o in found),
        "distractor_hardness": float(np.mean([(CLOSENESS[d] + o) / 2 for d, o in found])),
    }
