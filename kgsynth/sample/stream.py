"""Shards → one paths table, streamed: the merge every runner shares, so every runner writes the same bytes.

Shards are merged in index order. A unit (a path, or a convergent group) already
written by an earlier shard is dropped — only its 8-byte hash is remembered — and
the units so lost are drawn again by refill shards, numbered after the last base
shard, until each hop count has its number back. Paths get their ids here, in
file order, so ids never depend on how the shards were made. Rows are written as
parquet row groups of a fixed size, so the file's bytes do not depend on how the
work was cut either.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numba import njit

from kgsynth.graph.engine import Engine
from kgsynth.sample.batch import PathBatch, batch_frame, unit_hash
from kgsynth.sample.collect import first_occurrences
from kgsynth.sample.frontier import member
from kgsynth.sample.paths import ROW_GROUP_ROWS
from kgsynth.sample.shards import Shard

REFILL_ROUNDS = 4
_BUCKET_SHIFT = np.uint64(56)  # 256 buckets by the hash's top byte


class SeenUnits:
    """Hashes of the units written so far, as sorted arrays in 256 buckets by top byte:
    8 bytes a unit. Lookups and inserts walk a bucket and the (sorted) new hashes side by
    side, once, so a shard costs one sequential pass over what was written, and adding a
    shard's hashes copies one small bucket at a time (binary searches into the whole set
    took a second per million hashes at 40 million)."""

    def __init__(self) -> None:
        self._buckets = [np.zeros(0, dtype=np.uint64) for _ in range(256)]

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets)

    def fresh(self, hashes: np.ndarray) -> np.ndarray:
        """True for each hash that is neither seen before nor repeated earlier in `hashes`."""
        ordered = np.sort(hashes)
        fresh = first_occurrences(hashes, ordered)
        known = np.zeros(len(ordered), dtype=bool)
        for bucket, lo, hi in _bucket_bounds(ordered):
            if len(self._buckets[bucket]):
                known[lo:hi] = _sorted_member(ordered[lo:hi], self._buckets[bucket])
        if known.any():  # few (repeats across shards are rare): look them up in the batch
            fresh &= ~member(hashes, np.unique(ordered[known]))
        return fresh

    def add(self, hashes: np.ndarray) -> None:
        ordered = np.sort(hashes)
        for bucket, lo, hi in _bucket_bounds(ordered):
            self._buckets[bucket] = _sorted_merge(self._buckets[bucket], ordered[lo:hi])


def _bucket_bounds(ordered: np.ndarray) -> list[tuple[int, int, int]]:
    """(bucket, lo, hi) of every non-empty bucket of sorted hashes."""
    bounds = np.searchsorted(ordered >> _BUCKET_SHIFT, np.arange(257, dtype=np.uint64)).tolist()
    return [(b, lo, hi) for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)) if hi > lo]


@njit(cache=True, nogil=True)
def _sorted_member(queries: np.ndarray, values: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """For sorted queries: is each in the sorted values? One pass over both."""
    found = np.zeros(len(queries), dtype=np.bool_)
    at = 0
    for i in range(len(queries)):
        while at < len(values) and values[at] < queries[i]:
            at += 1
        found[i] = at < len(values) and values[at] == queries[i]
    return found


@njit(cache=True, nogil=True)
def _sorted_merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The sorted union (with repeats) of two sorted arrays."""
    out = np.empty(len(a) + len(b), dtype=a.dtype)
    i = j = 0
    for k in range(len(out)):
        if j >= len(b) or (i < len(a) and a[i] <= b[j]):
            out[k] = a[i]
            i += 1
        else:
            out[k] = b[j]
            j += 1
    return out


@dataclass
class MergeStats:
    """What the merged file holds (counted as it is written), and the shards' own figures added up."""

    produced: int = 0
    by_hops: Counter = field(default_factory=Counter)
    by_pattern: Counter = field(default_factory=Counter)
    negatives_total: int = 0
    paths_without_negatives: int = 0
    unique_answers: int = 0
    not_unique_answers: int = 0
    shards: int = 0
    refill_shards: int = 0  # shards drawn to replace units an earlier shard already had
    rejections: Counter = field(default_factory=Counter)  # the samplers' reasons, and "duplicate"
    shortfall: Counter = field(default_factory=Counter)  # hop count ("any", "unique_answer") → units not found
    seconds: Counter = field(default_factory=Counter)  # sample, negatives, unique_answer, table (rows built, written)
    extra: dict = field(default_factory=dict)  # strategy-specific figures

    def add_shard(self, shard: Shard, *, refill: bool) -> None:
        self.shards += 1
        self.rejections.update(shard.rejections)
        if not refill:  # a refill shard asks for more than it needs: what it missed is not missing
            self.shortfall.update(shard.shortfall)
        self.seconds.update(shard.seconds)
        self.extra.update(shard.extra)


def merge_shards(
    shards: Iterable[Shard],
    engine: Engine,
    full: Engine,
    *,
    strategy: str,
    seed: int,
    write: Callable[[pl.DataFrame], None],
    refill: Callable[[int, int], Shard] | None = None,
    next_index: int = 0,
    written: Callable[[int], None] | None = None,
) -> MergeStats:
    """Write the shards' new units in order; then refill shards (index `next_index` on, drawing
    the given number of paths) make up the units dropped as repeats, hop count by hop count."""
    stats = MergeStats()
    seen = SeenUnits()
    lost: Counter = Counter()  # hop count → units dropped as repeats
    per_unit = 1
    row = group = 0

    def emit(shard: Shard, at: int, keep: np.ndarray) -> None:
        nonlocal row, group
        batch = shard.batches[at]
        rows = (keep[:, None] * batch.per_unit + np.arange(batch.per_unit)).ravel()
        counts = shard.negative_counts[at]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        step = max(1, ROW_GROUP_ROWS // batch.per_unit) * batch.per_unit
        for lo in range(0, len(rows), step):
            these = rows[lo : lo + step]
            tick = time.perf_counter()
            part_counts = counts.take(these)
            take = _ranges(offsets.take(these), part_counts)
            verdict = shard.unique[at]
            frame = paths_frame(
                engine, full, PathBatch(batch.nodes.take(these, axis=0), batch.entries.take(these, axis=0), batch.per_unit),
                part_counts, shard.negative_nodes[at].take(take), None if verdict is None else verdict.take(these),
                strategy=strategy, seed=seed, first_row=row, first_group=group,
            )  # fmt: skip
            write(frame)
            _count(stats, frame, part_counts, None if verdict is None else verdict.take(these))
            row += len(these)
            group += len(these) // batch.per_unit
            stats.seconds["table"] += time.perf_counter() - tick
            if written is not None:
                written(len(these))

    def take(shard: Shard, wanted: Counter | None) -> None:
        nonlocal per_unit
        stats.add_shard(shard, refill=wanted is not None)
        for at, batch in enumerate(shard.batches):
            per_unit = batch.per_unit
            hashes = unit_hash(batch)
            fresh = seen.fresh(hashes)
            keep = np.flatnonzero(fresh)
            if wanted is None:
                lost[batch.hops] += batch.units - len(keep)
                stats.rejections["duplicate"] += batch.units - len(keep)
            else:
                keep = keep[: max(wanted[batch.hops], 0)]
                wanted[batch.hops] -= len(keep)
            seen.add(hashes.take(keep))
            emit(shard, at, keep)

    for shard in shards:
        take(shard, None)
        next_index = max(next_index, shard.index + 1)
    for _ in range(REFILL_ROUNDS if refill is not None else 0):
        if not +lost:
            break
        units = sum((+lost).values())
        stats.refill_shards += 1
        shard = refill(next_index, int(units * per_unit * 1.25) + 16 * per_unit)
        next_index += 1
        take(shard, lost)
    stats.shortfall.update(+lost if refill is not None else Counter())
    return stats


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions start..start+count-1 of every range, concatenated."""
    total = int(counts.sum())
    first = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(first - starts, counts)


def _count(stats: MergeStats, frame: pl.DataFrame, counts: np.ndarray, verdict: np.ndarray | None) -> None:
    from kgsynth.sample.unique import NOT_UNIQUE, UNIQUE

    stats.produced += frame.height
    if not frame.height:
        return
    stats.by_hops[int(frame["hops"][0])] += frame.height
    patterns = frame["pattern"].value_counts()
    stats.by_pattern.update(dict(zip(patterns["pattern"].to_list(), patterns["count"].to_list(), strict=True)))
    stats.negatives_total += int(counts.sum())
    stats.paths_without_negatives += int((counts == 0).sum())
    if verdict is not None:
        stats.unique_answers += int((verdict == UNIQUE).sum())
        stats.not_unique_answers += int((verdict == NOT_UNIQUE).sum())


def paths_frame(
    engine: Engine,
    full: Engine,
    batch: PathBatch,
    negative_counts: np.ndarray,
    negative_nodes: np.ndarray,
    verdict: np.ndarray | None,
    *,
    strategy: str,
    seed: int,
    first_row: int,
    first_group: int,
) -> pl.DataFrame:
    """Rows of the paths table for one batch, ids numbered from `first_row` (and `first_group`)."""
    from kgsynth.sample.negatives import Negatives, negatives_column
    from kgsynth.sample.paths import conform_paths
    from kgsynth.sample.unique import unique_column

    frame = batch_frame(engine, batch, strategy=strategy, seed=seed, first_row=first_row, first_group=first_group)
    return conform_paths(
        frame.with_columns(
            negatives_column(full, Negatives(negative_counts, negative_nodes)),
            unique_column(verdict, batch.rows),
            pl.lit(strategy).alias("strategy"),
            pl.lit(seed, dtype=pl.Int64).alias("seed"),
            pl.lit(engine.snapshot_hash).alias("snapshot"),
        )
    )
