"""Pruning rules: which nodes to remove, each with the reason it was removed.

- `shortcut` (k-Shattering): repeatedly remove the node carrying the largest
  share of the sampled shortest paths, re-drawing the paths it carried, until no
  node carries more than 1/k of them or the removal budget is spent.
- `degree`: remove every node whose degree is above `max_degree`, or above the
  `percentile`-th percentile of degrees (of its own node type with `per_type`).

Protected nodes are never removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.prune.pairs import PairPaths
from kgsynth.registry import Registry


@dataclass
class Removal:
    node: int
    load: float  # share of sampled shortest paths through the node when it was removed
    round: int
    reason: str


Rule = Callable[..., list[Removal]]
RULES: Registry[Rule] = Registry("pruning rule")


@RULES.register("shortcut")
def shortcut_rule(
    engine: Engine,
    pairs: PairPaths,
    *,
    k: float,
    budget: int,
    protected: np.ndarray,
    advance: Callable[[Removal], None] | None = None,
) -> list[Removal]:
    """Greedy k-Shattering: take out the heaviest shortcut until every load is at most 1/k."""
    if k <= 1:
        raise ConfigError(f"--k must be greater than 1 (a node may carry at most 1/k of the paths), got {k}")
    limit = 1.0 / k
    removals: list[Removal] = []
    for round_ in range(1, budget + 1):
        load = pairs.loads()
        load[protected] = -1.0
        node = int(np.argmax(load))
        if load[node] <= limit:
            break
        removal = Removal(node, float(load[node]), round_, f"shortcut load {load[node]:.2%} > 1/k = {limit:.2%}")
        removals.append(removal)
        pairs.remove(np.array([node]))
        if advance is not None:
            advance(removal)
    return removals


@RULES.register("degree")
def degree_rule(
    engine: Engine,
    pairs: PairPaths,
    *,
    budget: int,
    protected: np.ndarray,
    max_degree: int | None = None,
    percentile: float | None = None,
    per_type: bool = False,
    advance: Callable[[Removal], None] | None = None,
    **_: object,
) -> list[Removal]:
    """Every node above a degree threshold (highest degree first, at most `budget`)."""
    if (max_degree is None) == (percentile is None):
        raise ConfigError("the degree rule needs exactly one of --max-degree or --percentile")
    if percentile is not None and not 0 < percentile < 100:
        raise ConfigError(f"--percentile must be between 0 and 100, got {percentile}")
    degree = engine.degree
    threshold = np.full(engine.n_nodes, float(max_degree if max_degree is not None else 0))
    scope = np.zeros(engine.n_nodes, dtype=np.int64) if not per_type else np.asarray(engine.node_type).astype(np.int64)
    if percentile is not None:
        for group in np.unique(scope):
            members = scope == group
            threshold[members] = np.percentile(degree[members], percentile)
    over = (degree > threshold) & ~protected
    chosen = np.flatnonzero(over)
    chosen = chosen[np.lexsort((chosen, -degree[chosen]))][:budget]
    load = pairs.loads()
    removals = []
    for node in chosen.tolist():
        where = f" of {engine.type_names[engine.node_type[node]]}" if per_type else ""
        what = f"the {percentile:g}th percentile{where} ({threshold[node]:g})" if percentile is not None else f"{max_degree}"
        removals.append(Removal(node, float(load[node]), 1, f"degree {degree[node]} > {what}"))
    pairs.remove(chosen)
    if advance is not None:
        for removal in removals:
            advance(removal)
    return removals
