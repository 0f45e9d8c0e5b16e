"""Vectorized walks over the engine's CSR: every walk advances one hop at a time as arrays.

A `View` is the part of the CSR a hop may use: entries filtered by relation, hop
direction, neighbour type and excluded nodes, re-packed as a CSR of its own so a
uniform pick is one random offset per row. Picks that revisit a node (or land on
one to avoid) are redrawn a few times; rows that still fail are dropped (or, for
chains, simply stop).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine

AVOID_SHARE = 0.1  # excluded nodes reached by at most this share of entries are avoided, not filtered


@dataclass
class View:
    """A CSR over a subset of the engine's entries."""

    indptr: np.ndarray  # int64 [n + 1]
    indices: np.ndarray  # int32 neighbour of each view entry
    entry: np.ndarray | None  # int64 engine entry of each view entry; None: the engine's own CSR
    cumweight: np.ndarray | None = None  # float64 [entries + 1] for weighted picks; None: uniform
    avoid: np.ndarray | None = None  # bool per node: picks landing here are redrawn, like revisits
    degree: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.degree = np.diff(self.indptr)

    def engine_entry(self, position: np.ndarray) -> np.ndarray:
        return position if self.entry is None else self.entry[position]


def relation_mask(engine: Engine, names: str | Collection[str] | None, *, what: str = "relation") -> np.ndarray:
    """Boolean mask over relation ids for the given names (None: all)."""
    return _name_mask(engine.relation_names, engine.relation_index, names, what)


def type_mask(engine: Engine, names: str | Collection[str] | None, *, what: str = "node type") -> np.ndarray:
    """Boolean mask over node type ids for the given names (None: all)."""
    return _name_mask(engine.type_names, engine.type_index, names, what)


def _name_mask(known: list[str], index: dict[str, int], names: str | Collection[str] | None, what: str) -> np.ndarray:
    if names is None:
        return np.ones(len(known), dtype=bool)
    mask = np.zeros(len(known), dtype=bool)
    for name in [names] if isinstance(names, str) else names:
        if name not in index:
            raise ConfigError(f"unknown {what} '{name}'; this graph has: {', '.join(known)}")
        mask[index[name]] = True
    return mask


def build_view(
    engine: Engine,
    *,
    keys: np.ndarray | None = None,
    neighbour_types: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> View:
    """The entries a hop may take.

    keys: bool mask over hop keys (relation r walked forward is key r, backward
      r + n_relations; see `Engine.n_keys`), None for all;
    neighbour_types: bool mask over type ids of the node stepped onto;
    excluded: bool mask over nodes never stepped onto;
    weight: float per node, the chance of stepping onto it (proportional).

    Excluded nodes that few entries lead to (hubs are few) are not filtered out —
    re-packing the CSR costs more than redrawing the rare pick that lands on one.
    """
    avoid = None
    if excluded is not None and excluded.any() and engine.degree[excluded].sum() <= AVOID_SHARE * len(engine.indices):
        avoid, excluded = excluded, None
    keep = None
    if keys is not None and not keys.all():
        n_rel = len(engine.relation_names)
        keep = keys[engine.rel.astype(np.int64) + np.where(engine.forward, 0, n_rel)]
    if neighbour_types is not None and not neighbour_types.all():
        ok = neighbour_types[engine.node_type[engine.indices]]
        keep = ok if keep is None else keep & ok
    if excluded is not None and excluded.any():
        # entries out of an excluded node stay: walks never stand on one to use them
        ok = ~excluded[engine.indices]
        keep = ok if keep is None else keep & ok
    if keep is None:
        view = View(indptr=np.asarray(engine.indptr), indices=np.asarray(engine.indices), entry=None)
    else:
        entry = np.flatnonzero(keep)
        kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        view = View(indptr=kept_before[np.asarray(engine.indptr)], indices=np.asarray(engine.indices)[entry], entry=entry)
    if weight is not None:
        view.cumweight = np.concatenate([[0.0], np.cumsum(weight[view.indices], dtype=np.float64)])
    view.avoid = avoid
    return view


@dataclass
class Walked:
    """Walk results: node columns (anchor first) and the view positions taken per hop."""

    nodes: list[np.ndarray]  # hops + 1 arrays of int32, one per position
    positions: list[np.ndarray]  # hops arrays of int64 view positions
    length: np.ndarray  # int32 hops actually taken per row
    rows: np.ndarray  # int64 index into `starts` of each returned row
    dead_end: int = 0  # rows that reached a node with no usable entry
    stuck: int = 0  # rows whose every redraw stepped onto a node already on the path (or one to avoid)


def walk(
    views: Sequence[View],
    starts: np.ndarray,
    rng: np.random.Generator,
    *,
    tries: int = 6,
    keep_partial: bool = False,
) -> Walked:
    """Simple walks of len(views) hops from `starts`, hop i taking `views[i]`.

    Rows that cannot continue are dropped, or with `keep_partial` kept with the
    hops they managed (their later columns hold -1).
    """
    nodes = [np.asarray(starts, dtype=np.int32)]
    positions: list[np.ndarray] = []
    rows = len(starts)
    active = np.arange(rows)  # with keep_partial: the rows still walking
    failed = np.zeros(rows, dtype=bool)  # without: rows that failed a hop, dropped at the end
    dead_end = stuck = 0
    for view in views:
        if keep_partial:
            node, position, dead, clash = _step(view, [column[active] for column in nodes], rng, tries)
            dead_end += int(dead.sum())
            stuck += int(clash.sum())
            ok = ~(dead | clash)
            active = active[ok]
            nodes.append(np.full(rows, -1, dtype=np.int32))
            positions.append(np.full(rows, -1, dtype=np.int64))
            nodes[-1][active] = node[ok]
            positions[-1][active] = position[ok]
            continue
        node, position, dead, clash = _step(view, nodes, rng, tries)
        dead_end += int((dead & ~failed).sum())
        stuck += int((clash & ~failed).sum())
        bad = dead | clash
        if bad.any():
            # failed rows walk on from where they stood (their steps are ignored), so the
            # arrays are compacted once at the end rather than after every hop
            failed |= bad
            node = np.where(bad, nodes[-1], node)
        nodes.append(node)
        positions.append(position)
    if keep_partial:
        length = np.sum([column >= 0 for column in nodes[1:]], axis=0, dtype=np.int32) if views else np.zeros(rows, np.int32)
        return Walked(nodes=nodes, positions=positions, length=length, rows=np.arange(rows), dead_end=dead_end, stuck=stuck)
    kept = np.flatnonzero(~failed)
    if len(kept) < rows:
        nodes = [column.take(kept) for column in nodes]
        positions = [column.take(kept) for column in positions]
    length = np.full(len(kept), len(views), dtype=np.int32)
    return Walked(nodes=nodes, positions=positions, length=length, rows=kept, dead_end=dead_end, stuck=stuck)


def _step(
    view: View, path: list[np.ndarray], rng: np.random.Generator, tries: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One hop from the last node of every row: (node, view position, dead-end mask, stuck mask).

    `take` rather than fancy indexing throughout: on these 1-D gathers it is 2× faster.
    """
    current = path[-1]
    lo = view.indptr.take(current)
    count = view.degree.take(current)
    if view.cumweight is not None:  # entries of zero weight cannot be taken
        count = np.where(view.cumweight.take(lo + count) > view.cumweight.take(lo), count, 0)
    dead = count == 0
    # The first draw covers every row without gathering: most rows succeed at once.
    position = _pick(view, lo, count, rng)
    if dead.any():  # no entry to take: point at any valid one, the row is dropped anyway
        position[dead] = 0
    node = view.indices.take(position) if len(view.indices) else position.astype(np.int32)
    clash = node == path[0]
    for column in path[1:]:
        clash |= node == column
    if view.avoid is not None:
        clash |= view.avoid.take(node)
    clash |= dead
    # A row with one entry that clashed would redraw the same entry: it is stuck already.
    pending = np.flatnonzero(clash)
    pending = pending[count.take(pending) > 1]
    for _ in range(tries - 1):
        if not len(pending):
            break
        picked = _pick(view, lo.take(pending), count.take(pending), rng)
        candidate = view.indices.take(picked)
        again = view.avoid.take(candidate) if view.avoid is not None else np.zeros(len(pending), dtype=bool)
        for column in path:
            again |= candidate == column.take(pending)
        settled = pending[~again]
        node[settled] = candidate[~again]
        position[settled] = picked[~again]
        clash[settled] = False
        pending = pending[again]
    return node, position, dead, clash & ~dead


def _pick(view: View, lo: np.ndarray, count: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random entry in [lo, lo + count) per row: uniform, or by the view's weights."""
    draw = rng.random(len(lo))
    if view.cumweight is None:
        return lo + (draw * count).astype(np.int64)
    base = view.cumweight.take(lo)
    target = base + draw * (view.cumweight.take(lo + count) - base)
    position = np.searchsorted(view.cumweight, target, side="right") - 1
    return np.clip(position, lo, lo + count - 1)


def pick_starts(
    eligible: np.ndarray, uses: np.ndarray, size: int, rng: np.random.Generator, prior: np.ndarray | None = None
) -> np.ndarray:
    """`size` start nodes from `eligible`, each weighted by prior / (1 + times already used)."""
    used = uses.take(eligible)
    if prior is None and (not len(used) or used.min() == used.max()):
        return eligible.take(rng.integers(0, len(eligible), size))  # equal weights: a uniform draw
    weight = 1.0 / (1.0 + used)
    if prior is not None:
        weight = weight * prior.take(eligible)
    counts = rng.multinomial(size, weight / weight.sum())
    return rng.permutation(np.repeat(eligible, counts))
