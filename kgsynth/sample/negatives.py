"""Hard negatives: nodes that look like the answer but provably are not.

For a path a -r1-> … -rh-> t, a hard negative is a node x of t's type, off the
path, that comes from one of two places in the sampling graph:

- distance: the end of another h-hop walk from the anchor, kept only when its
  shortest distance from a is exactly h (so it sits where the answer sits);
- siblings: a node sharing a parent with the answer (t -r-> p <-r- x, same
  relation), or reached by the path's last hop from a sibling of the bridge;
- cousins: a node under the same ancestor 1–3 levels up a hierarchy of the
  answer's own type (t -r-> … -r-> g <-r- … <-r- x, e.g. is_a). A pattern such
  as disease -> phenotype <- disease -> phenotype reaches most nodes near the
  answer, so the nearby families rarely survive the proof; a cousin is as
  plausible but often outside the pattern's reach.

and that does not satisfy the path's relation pattern from the anchor in the full
graph: no walk a -r1-> v1 … -rh-> x exists there at all (walks may even repeat
nodes, so this is stronger than "no simple path"). The proof is a meet-in-the-
middle search per path, expanding the cheaper side each step; a path whose search
exceeds the work budget gets no negatives from it rather than an unproven one.

The work runs path by path in compiled code (kgsynth.sample.kernels), pieces of
a batch on several threads; each path draws from its own random stream (the
call's seed and its row), so a seed gives the same negatives however the batch
is split, ordered or scheduled. Paths are taken in the order of their answers:
paths that share an answer draw from the same neighbourhood and prove the same
candidates, which are then still in cache (a sixth less time on 3-hop walks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.sample import kernels
from kgsynth.sample.batch import PathBatch


@dataclass
class Negatives:
    counts: np.ndarray  # int64 negatives per path
    nodes: np.ndarray  # int64 full-graph indices, paths concatenated


def negatives_column(full: Engine, negatives: Negatives) -> pl.Series:
    """The negatives as a list column: rows padded to the longest with nulls, which are then dropped."""
    rows, width = len(negatives.counts), int(negatives.counts.max()) if len(negatives.counts) else 0
    if not width:
        return pl.Series("negatives", [[]], dtype=pl.List(pl.String)).new_from_index(0, rows)
    slot = np.arange(len(negatives.nodes)) - np.repeat(np.cumsum(negatives.counts) - negatives.counts, negatives.counts)
    padded = np.full(rows * width, -1, dtype=np.int64)
    padded[np.repeat(np.arange(rows), negatives.counts) * width + slot] = negatives.nodes
    index = pl.Series(padded).replace(-1, None)
    ids = full.id_series.gather(index)
    return ids.reshape((rows, width)).cast(pl.List(pl.String)).list.drop_nulls().alias("negatives")


def hard_negatives(
    engine: Engine,
    full: Engine,
    batch: PathBatch,
    k: int,
    rng: np.random.Generator,
    *,
    attempts: int = 5,
    rounds: int = 4,
    budget: int = 5_000,
    views: dict | None = None,
    advance: Callable[[int], None] | None = None,
) -> Negatives:
    """Up to k proven hard negatives per path of the batch (sampled on `engine`, proven on `full`).

    Each family draws k + attempts candidates per path, of which the 2k with the
    fewest ways in are tried, in random order until k are proven (the ranking matters:
    a random 2k of the same pool leaves a fifth of paths short); paths still short of k
    get up to `rounds` - 1 more rounds, among those not tried in an earlier round, each
    family drawing twice as many as the round before, except a family none of whose
    candidates tried for that path was proven, which keeps its first number; the last
    round is only for paths with at least one negative by then. A path whose anchor side alone is over the budget draws
    nothing (no candidate of it could be proven). `views` keeps per-graph arrays across
    calls on the same `engine`; `advance` hears how many paths each finished piece held
    (from the threads doing the work).
    """
    rows = batch.rows
    counts = np.zeros(rows, dtype=np.int64)
    if k <= 0 or not rows:
        if advance is not None and rows:
            advance(rows)
        return Negatives(counts, np.zeros(0, dtype=np.int64))
    views = {} if views is None else views
    sampling, proof = sampling_graph(engine, views), proof_graph(full)
    to_full = cached_full_index(engine, full, views)
    seed = int(rng.integers(0, 2**63 - 1))
    chosen = np.full((rows, k), -1, dtype=np.int64)
    order = np.lexsort((batch.nodes[:, 0], batch.nodes[:, -1]))  # by answer, then anchor

    def run(lo: int, hi: int) -> None:  # on a thread: the arrays too are made there
        picked = order[lo:hi]
        part_counts, part = np.zeros(hi - lo, dtype=np.int64), np.full((hi - lo, k), -1, dtype=np.int64)
        nodes, last_keys, anchors, keys0, keys1, types = path_arrays(engine, full, batch, picked, to_full)
        kernels.hard_negatives_rows(
            sampling, proof, nodes, last_keys, anchors, keys0, keys1, types, to_full,
            picked, seed, k, attempts, rounds, budget, part_counts, part,
        )
        counts[picked], chosen[picked] = part_counts, part
        if advance is not None:
            advance(hi - lo)

    kernels.on_threads(run, rows)
    return Negatives(counts=counts, nodes=chosen[np.arange(k) < counts[:, None]])


def path_arrays(
    engine: Engine, full: Engine, batch: PathBatch, rows: slice | np.ndarray, to_full: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The rows (a slice or row numbers) as the kernels take them: sampling-graph nodes and the key
    of each path's last hop, and in the full graph's numbering the anchors, each hop's keys (and
    second key of symmetric hops) and types."""
    nodes = np.require(batch.nodes[rows], dtype=np.int32, requirements=["C", "W"])
    entries = batch.entries[rows]
    last = entries[:, -1]
    last_keys = np.asarray(engine.rel)[last].astype(np.int64) + np.where(np.asarray(engine.forward)[last], 0, len(engine.relation_names))
    keys0, keys1 = full_keys(engine, full, entries)
    types = full_types(engine, full, nodes)
    anchors = np.ascontiguousarray(to_full[nodes[:, 0]], dtype=np.int64)
    return nodes, last_keys, anchors, np.ascontiguousarray(keys0), np.ascontiguousarray(keys1), np.ascontiguousarray(types)


def proof_graph(engine: Engine) -> tuple:
    """The engine's arrays as the kernels read a graph (read-only views, one compiled signature)."""
    return (
        kernels.frozen(engine.node_table, engine.table_dtype),
        kernels.frozen(engine.run_table, engine.table_dtype),
        kernels.frozen(engine.indices, np.int32),
        kernels.frozen(engine.node_type, np.int16),
        engine.n_keys,
    )


def sampling_graph(engine: Engine, views: dict) -> tuple:
    """The proof graph plus what drawing candidates needs: which relations are symmetric, and
    each node's neighbours grouped by type. Built once per engine and kept in `views`."""
    if "kernel graph" not in views:
        n_types = max(len(engine.type_names), 1)
        by_type_ptr, by_type_nbr = kernels.by_neighbour_type(
            kernels.frozen(engine.indptr, np.int64), kernels.frozen(engine.indices, np.int32),
            kernels.frozen(engine.node_type, np.int16), n_types,
        )
        views["kernel graph"] = proof_graph(engine) + (
            kernels.frozen(engine.symmetric, np.bool_),
            kernels.frozen(by_type_ptr, engine.table_dtype),
            kernels.frozen(by_type_nbr, np.int32),
            n_types,
        )
    return views["kernel graph"]


def cached_full_index(engine: Engine, full: Engine, views: dict) -> np.ndarray:
    """full_index, kept in `views` (which belong to `engine`) for the full graph's snapshot."""
    key = ("full index", full.snapshot_hash)
    if key not in views:
        views[key] = kernels.frozen(full_index(engine, full), np.int64)
    return views[key]


def _cousin(engine: Engine, node: np.ndarray, rng: np.random.Generator, views: dict) -> np.ndarray:
    """One hierarchy cousin (or -1) of each node: the cousin family on its own."""
    out = np.empty(len(node), dtype=np.int64)
    kernels.cousins_of(sampling_graph(engine, views), np.asarray(node, dtype=np.int64), int(rng.integers(0, 2**63 - 1)), out)
    return out


def full_index(engine: Engine, full: Engine) -> np.ndarray:
    if full is engine:
        return np.arange(engine.n_nodes, dtype=np.int64)
    index = full.indices_of(engine.id_series)
    if (index < 0).any():
        missing = engine.node_ids[int(np.flatnonzero(index < 0)[0])]
        raise ConfigError(
            f"the full graph lacks node '{missing}' of the sampled graph; pass the unpruned snapshot "
            "this one was pruned from"
        )
    return index


def full_types(engine: Engine, full: Engine, nodes: np.ndarray) -> np.ndarray:
    """Each path position's node type in the full engine's numbering (-1: a type the full graph lacks)."""
    to_full = np.array([full.type_index.get(name, -1) for name in engine.type_names], dtype=np.int64)
    return to_full[np.asarray(engine.node_type)[nodes].astype(np.int64)]


def flip_key(key: np.ndarray, n_rel: int) -> np.ndarray:
    """The key walking the same entries from their other end (-1 stays -1)."""
    return np.where(key < 0, -1, np.where(key >= n_rel, key - n_rel, key + n_rel))


def full_keys(engine: Engine, full: Engine, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each hop's keys in the full engine's numbering (relation ids differ after pruning)."""
    names = engine.relation_names
    to_full = np.array([full.relation_index.get(name, -1) for name in names], dtype=np.int64)
    rel = to_full[np.asarray(engine.rel)[entries].astype(np.int64)]
    if (rel < 0).any():
        raise ConfigError("the full graph lacks a relation of the sampled graph; pass the unpruned parent snapshot")
    n_rel = len(full.relation_names)
    key = rel + np.where(np.asarray(engine.forward)[entries], 0, n_rel)
    other = np.where(np.asarray(full.symmetric)[rel], flip_key(key, n_rel), -1)
    return key, other
