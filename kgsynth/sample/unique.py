"""Is a path's answer the only node its pattern reaches from the anchor?

An open question ("which phenotype … ?") has one right answer only when walking
the path's relation pattern from its anchor in the full graph ends on one node.
This reads the pattern exactly as verification does (kgsynth.verify.graph_checks
check_pattern): a symmetric hop goes either way, every position keeps only nodes
of the path's type there, and walks may revisit nodes. So a path marked unique
never has its open item rejected ANSWER_NOT_UNIQUE, and one marked not unique
always would be.

Each path's end set is expanded exactly within a work budget. A path over budget
gets a second, cheaper look through a capped frontier (a few neighbours per node,
a few nodes per position): two distinct ends found there prove it not unique;
otherwise it stays unknown (null), never guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import polars as pl

from kgsynth.graph.engine import Engine
from kgsynth.sample.batch import PathBatch, unit_hash
from kgsynth.sample.collect import Collected
from kgsynth.sample.frontier import expand, hop_ranges
from kgsynth.sample.frontier import member as member_of
from kgsynth.sample.negatives import expand_sets, full_index, full_keys, full_types

UNKNOWN, NOT_UNIQUE, UNIQUE = -1, 0, 1
QUICK_CAP = 8  # neighbours per node and nodes per position in the first, capped look
CAP = 64  # the same in the second look, for paths over the exact search's budget


def unique_answers(
    engine: Engine, full: Engine, batch: PathBatch, *, budget: int = 20_000, chunk: int = 8192
) -> np.ndarray:
    """Per path of the batch (sampled on `engine`): UNIQUE, NOT_UNIQUE or UNKNOWN, judged on `full`."""
    verdict = np.full(batch.rows, UNKNOWN, dtype=np.int8)
    if not batch.rows:
        return verdict
    to_full = full_index(engine, full)
    for start in range(0, batch.rows, chunk):
        rows = slice(start, start + chunk)
        anchors = to_full[batch.nodes[rows, 0]]
        keys = full_keys(engine, full, batch.entries[rows])
        types = full_types(engine, full, batch.nodes[rows])
        verdict[rows] = _judge(full, anchors, keys, types, budget)
    return verdict


def unique_column(verdict: np.ndarray | None, rows: int) -> pl.Series:
    """The nullable boolean `unique_answer` column (all null when nothing was judged)."""
    nulls = pl.Series("unique_answer", [None], dtype=pl.Boolean).new_from_index(0, rows)
    if verdict is None:
        return nulls
    return pl.Series("unique_answer", verdict == UNIQUE).zip_with(pl.Series(verdict != UNKNOWN), nulls)


def _judge(full: Engine, anchors: np.ndarray, keys: tuple[np.ndarray, np.ndarray], types: np.ndarray, budget: int) -> np.ndarray:
    """Most answers are not unique and two ends show it cheaply: a small capped look first,
    the exact expansion only for the rest, a wider capped look for those over budget."""
    rows, hops = keys[0].shape
    steps = [(keys[0][:, i], keys[1][:, i]) for i in range(hops)]
    wanted = [types[:, i + 1] for i in range(hops)]
    verdict = np.full(rows, UNKNOWN, dtype=np.int8)
    verdict[_capped_ends(full, anchors, steps, wanted, cap=QUICK_CAP) >= 2] = NOT_UNIQUE
    rest = np.flatnonzero(verdict == UNKNOWN)
    steps = [(k[rest], o[rest]) for k, o in steps]
    wanted = [t[rest] for t in wanted]
    ends, _, failed = expand_sets(full, np.arange(len(rest)), anchors[rest], steps, budget, wanted)
    count = np.bincount(ends, minlength=len(rest))
    verdict[rest] = np.where(failed, UNKNOWN, np.where(count == 1, UNIQUE, NOT_UNIQUE))
    if failed.any():
        over = np.flatnonzero(failed)
        seen = _capped_ends(full, anchors[rest[over]], [(k[over], o[over]) for k, o in steps], [t[over] for t in wanted], cap=CAP)
        verdict[rest[over[seen >= 2]]] = NOT_UNIQUE
    return verdict


def _capped_ends(
    full: Engine, anchors: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray]], wanted: list[np.ndarray], *, cap: int
) -> np.ndarray:
    """Distinct ends reached through a frontier of at most `cap` nodes, each giving at most `cap`
    neighbours: a lower bound on the true count, enough to prove two ends."""
    n = len(anchors)
    group, node = np.arange(n, dtype=np.int64), anchors.astype(np.int32)
    for (key, other), node_type in zip(steps, wanted, strict=True):
        spans = [(lo, np.minimum(hi, lo + cap)) for lo, hi in hop_ranges(full, node, (key[group], other[group]))]
        group, node = expand(full, group, spans, np.ones(len(group), dtype=bool))
        typed = np.asarray(full.node_type)[node] == node_type[group]
        group, node = group[typed], node[typed]
        rank = np.arange(len(group)) - np.searchsorted(group, group, side="left")
        group, node = group[rank < cap], node[rank < cap]
    return np.bincount(group, minlength=n)


def keep_unique(
    engine: Engine, full: Engine, first: Collected, draw: Callable[[int], Collected], *, max_rounds: int = 8
) -> tuple[list[PathBatch], list[np.ndarray], Counter, int]:
    """Only units whose every path has a proven unique answer, drawing more rounds to make up the number.

    Each hop count keeps the quota the first draw brought it, so hop counts whose
    answers are rarely unique are not crowded out by the others. Later draws are
    sized for the hop count furthest behind, by the share that passed so far,
    and stop when a round brings nothing new (a strategy such as `between` finds
    the same paths again). Returns the kept batches, their verdicts, the units
    turned away by reason (with the later draws' own rejections) and how many
    units are still missing.
    """
    target: Counter = Counter()
    for batch in first.batches:
        target[batch.hops] += batch.units
    kept: list[PathBatch] = []
    verdicts: list[np.ndarray] = []
    rejections: Counter = Counter()
    seen = np.zeros(0, dtype=np.uint64)
    drawn: Counter = Counter()
    have: Counter = Counter()
    collected = first
    for round_ in range(max_rounds):
        fresh_units = 0
        for batch in collected.batches:
            hashes = unit_hash(batch)
            fresh = ~member_of(hashes, seen)
            hashes, batch = hashes[fresh], batch.take_units(np.flatnonzero(fresh))
            seen = np.sort(np.concatenate([seen, hashes]))
            verdict = unique_answers(engine, full, batch).reshape(batch.units, batch.per_unit)
            good = (verdict == UNIQUE).all(axis=1)
            rejections["answer_not_unique"] += int((verdict == NOT_UNIQUE).any(axis=1).sum())
            rejections["answer_unproven"] += int((~good & ~(verdict == NOT_UNIQUE).any(axis=1)).sum())
            take = np.flatnonzero(good)[: max(target[batch.hops] - have[batch.hops], 0)]
            kept.append(batch.take_units(take))
            verdicts.append(verdict[take].ravel())
            have[batch.hops] += len(take)
            drawn[batch.hops] += batch.units
            fresh_units += batch.units
        if round_:
            rejections.update(collected.rejections)
        behind = {h: target[h] - have[h] for h in target if have[h] < target[h]}
        if not behind or not fresh_units or round_ == max_rounds - 1:
            break
        # a draw gives each hop count about its share of the total; size it for the one furthest behind
        total = sum(target.values())
        size = max(need / max(have[h] / max(drawn[h], 1), 1 / 64) * total / target[h] for h, need in behind.items())
        per_unit = first.batches[0].per_unit  # the sampler counts paths; a convergent unit has several
        collected = draw(min(int(size * 1.2) + 16, 64 * total) * per_unit)
    missing = sum(max(target[h] - have[h], 0) for h in target)
    return kept, verdicts, +rejections, missing


