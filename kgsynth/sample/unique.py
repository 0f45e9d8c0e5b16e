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
from kgsynth.sample import kernels
from kgsynth.sample.batch import PathBatch, unit_hash
from kgsynth.sample.collect import Collected
from kgsynth.sample.frontier import member as member_of
from kgsynth.sample.kernels import NOT_UNIQUE, UNIQUE, UNKNOWN
from kgsynth.sample.negatives import cached_full_index, path_arrays, proof_graph

__all__ = ["NOT_UNIQUE", "UNIQUE", "UNKNOWN", "keep_unique", "unique_answers", "unique_column"]


def unique_answers(
    engine: Engine,
    full: Engine,
    batch: PathBatch,
    *,
    budget: int = 20_000,
    chunk: int = 65_536,
    views: dict | None = None,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per path of the batch (sampled on `engine`): UNIQUE, NOT_UNIQUE or UNKNOWN, judged on `full`.

    A capped look first (a few neighbours per node, a few nodes per position: two ends
    found there settle it), the exact expansion within `budget` for the rest, a wider
    capped look for those over it. `views` keeps per-graph arrays across calls on the
    same `engine`; `advance` hears how many paths each finished chunk held.
    """
    verdict = np.full(batch.rows, UNKNOWN, dtype=np.int8)
    if not batch.rows:
        return verdict
    views = {} if views is None else views
    proof = proof_graph(full)
    to_full = cached_full_index(engine, full, views)
    for start in range(0, batch.rows, chunk):
        stop = min(start + chunk, batch.rows)

        def run(lo: int, hi: int, start: int = start) -> None:  # on a thread: the arrays too are made there
            _, _, anchors, keys0, keys1, types = path_arrays(engine, full, batch, slice(start + lo, start + hi), to_full)
            kernels.unique_rows(proof, anchors, keys0, keys1, types, budget, verdict[start + lo : start + hi])

        kernels.on_threads(run, stop - start)
        if advance is not None:
            advance(stop - start)
    return verdict


def unique_column(verdict: np.ndarray | None, rows: int) -> pl.Series:
    """The nullable boolean `unique_answer` column (all null when nothing was judged)."""
    nulls = pl.Series("unique_answer", [None], dtype=pl.Boolean).new_from_index(0, rows)
    if verdict is None:
        return nulls
    return pl.Series("unique_answer", verdict == UNIQUE).zip_with(pl.Series(verdict != UNKNOWN), nulls)


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


