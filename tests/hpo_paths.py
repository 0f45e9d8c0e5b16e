"""Paths over the real HPO graph for generation tests and the LLM benchmark.

A path follows a relation pattern from a random anchor, hop by hop through the
engine (so `forward` flags are the engine's own); its hard negatives are nodes of
the answer's type near the answer (siblings under the bridge's neighbours) that the
pattern provably cannot reach from the anchor.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from kgsynth.graph.engine import Engine, open_engine
from kgsynth.graph.snapshot import Snapshot
from kgsynth.sample.paths import PATHS_SCHEMA

# disease presents with P1, P1 is a kind of P2
TWO_HOP = (("has_phenotype", True), ("is_a", True))
# disease presents with P1, P1 has as a subtype P2 (a reverse hop)
TWO_HOP_DOWN = (("has_phenotype", True), ("is_a", False))
# disease presents with P1, P1 is associated with the gene G, G is associated with the disease D2
THREE_HOP = (("has_phenotype", True), ("gene_associated_with_phenotype", False), ("gene_associated_with_disease", True))


def _steps(engine: Engine, u: int, rel: int, forward: bool) -> np.ndarray:
    span = engine.neighbors(u)
    mask = (engine.rel[span] == rel) & (engine.forward[span] == forward)
    return np.asarray(engine.indices[span][mask])


def _reachable(engine: Engine, anchor: int, pattern: list[tuple[int, bool]]) -> set[int]:
    frontier = {anchor}
    for rel, forward in pattern:
        frontier = {int(v) for u in frontier for v in _steps(engine, u, rel, forward)}
    return frontier


def make_paths(snapshot: Snapshot, n: int, *, seed: int = 0, patterns=(TWO_HOP, TWO_HOP_DOWN, THREE_HOP),
               negatives: int = 5) -> pl.DataFrame:
    engine = open_engine(snapshot)
    rng = np.random.default_rng(seed)
    anchors = np.flatnonzero(engine.node_type == engine.type_index["disease"])
    rows, seen = [], set()
    attempts = 0
    while len(rows) < n and attempts < n * 200:
        attempts += 1
        pattern = patterns[len(rows) % len(patterns)]
        coded = [(engine.relation_index[r], f) for r, f in pattern]
        walk = [int(rng.choice(anchors))]
        for rel, forward in coded:
            options = _steps(engine, walk[-1], rel, forward)
            options = options[~np.isin(options, walk)]
            if not len(options):
                break
            walk.append(int(rng.choice(options)))
        if len(walk) != len(pattern) + 1 or tuple(walk) in seen:
            continue
        reach = _reachable(engine, walk[0], coded)
        answer_type = engine.node_type[walk[-1]]
        near = {int(v) for b in walk[1:-1] for u in engine.indices[engine.neighbors(b)] for v in engine.indices[engine.neighbors(int(u))]}
        pool = [v for v in sorted(near) if engine.node_type[v] == answer_type and v not in reach and v not in walk]
        if len(pool) < negatives:
            continue
        seen.add(tuple(walk))
        chosen = rng.choice(pool, size=negatives, replace=False)
        ids = [engine.node_ids[i] for i in walk]
        rows.append({
            "path_id": hashlib.sha256("|".join(ids).encode()).hexdigest()[:16],
            "nodes": ids,
            "relations": [r for r, _ in pattern],
            "forward": [f for _, f in pattern],
            "hops": len(pattern),
            "pattern": " ".join(f"{r}{'>' if f else '<'}" for r, f in pattern),
            "strategy": "test_walk",
            "seed": seed,
            "negatives": [engine.node_ids[int(i)] for i in chosen],
            "group_id": None,
            "snapshot": snapshot.hash,
        })
    return pl.DataFrame(rows, schema=PATHS_SCHEMA)
