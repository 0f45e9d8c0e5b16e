"""Filling quotas: draw candidate units in rounds until each hop count has its share.

Stratification happens here, the same for every strategy: the requested number
is split across hop counts, and optional caps bound how many units one relation
pattern or one answer type may take. Duplicates (same nodes and entries) are
dropped. Every unit turned away is counted under a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kgsynth.graph.engine import Engine
from kgsynth.sample.batch import PathBatch, pattern_codes, unit_hash
from kgsynth.sample.frontier import member

# draw(hops, units) → (candidate batches, one per hop count, rejections while drawing them)
Draw = Callable[[int | None, int], tuple[list[PathBatch], Counter]]


@dataclass
class Quotas:
    hops: dict[int | None, int]  # hop count (None: any) → units wanted
    max_per_pattern: int | None = None
    max_per_answer_type: int | None = None


@dataclass
class Collected:
    batches: list[PathBatch]
    rejections: Counter = field(default_factory=Counter)
    shortfall: dict[int | None, int] = field(default_factory=dict)  # hop count → units not found
    extra: dict = field(default_factory=dict)  # strategy-specific figures


def split_hops(n: int, hops: list[int], weights: list[float] | None = None) -> dict[int, int]:
    """n split over hop counts in proportion to weights (equal by default), largest remainder."""
    weights = list(weights) if weights is not None else [1.0] * len(hops)
    share = np.asarray(weights, dtype=np.float64)
    share = share / share.sum() * n
    counts = np.floor(share).astype(np.int64)
    for i in np.argsort(-(share - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    return {h: int(c) for h, c in zip(hops, counts, strict=True)}


def share_cap(value: float | int | None, n: int) -> int | None:
    """A cap given as a count (≥ 1) or as a share of n (< 1)."""
    if value is None:
        return None
    return max(1, int(np.ceil(value * n))) if value < 1 else int(value)


@dataclass
class _Cap:
    """At most `limit` units per code; codes are computed from each unit's first path."""

    limit: int
    code: Callable[[Engine, PathBatch], np.ndarray]
    reason: str
    counts: Counter = field(default_factory=Counter)

    def admit(self, engine: Engine, lead: PathBatch) -> tuple[np.ndarray, np.ndarray]:
        """(mask of units within the cap, their codes), counting earlier admissions."""
        code = self.code(engine, lead)
        order = np.argsort(code, kind="stable")
        sorted_code = code[order]
        starts = np.flatnonzero(np.r_[True, sorted_code[1:] != sorted_code[:-1]])
        run_length = np.diff(np.r_[starts, len(code)])
        rank = np.empty(len(code), dtype=np.int64)
        rank[order] = np.arange(len(code)) - np.repeat(starts, run_length)
        before = np.array([self.counts[int(c)] for c in sorted_code[starts]], dtype=np.int64)
        already = np.empty(len(code), dtype=np.int64)
        already[order] = np.repeat(before, run_length)
        return already + rank < self.limit, code

    def count(self, codes: np.ndarray) -> None:
        for c, k in Counter(codes.tolist()).items():
            self.counts[c] += k


def _answer_type(engine: Engine, lead: PathBatch) -> np.ndarray:
    return np.asarray(engine.node_type)[lead.nodes[:, -1]].astype(np.uint64)


def collect(
    engine: Engine,
    quotas: Quotas,
    draw: Draw,
    *,
    accepted: Callable[[PathBatch], None] | None = None,
    advance: Callable[[int], None] | None = None,
    max_rounds: int = 40,
    max_round_units: int = 1 << 21,
) -> Collected:
    """Draw rounds per hop count until its quota is met or draws stop yielding."""
    result = Collected(batches=[])
    caps = [
        _Cap(limit, code, reason)
        for limit, code, reason in (
            (quotas.max_per_pattern, pattern_codes, "pattern_quota"),
            (quotas.max_per_answer_type, _answer_type, "answer_type_quota"),
        )
        if limit is not None
    ]
    seen: dict[int, np.ndarray] = {}  # hop count → hashes of units already taken
    for hops, wanted in quotas.hops.items():
        need, factor, idle = wanted, 1.15, 0  # a first round that usually suffices
        for _ in range(max_rounds):
            if need <= 0 or idle >= 3:
                break
            size = min(max_round_units, int(need * factor) + 16)
            batches, rejected = draw(hops, size)
            result.rejections.update(rejected)
            taken = 0
            for batch in batches:
                known = seen.get(batch.hops, np.zeros(0, dtype=np.uint64))
                keep, codes, hashes = _admit(engine, batch, known, caps, result.rejections)
                keep = keep[: need - taken]
                if not len(keep):
                    continue
                for cap, code in zip(caps, codes, strict=True):
                    cap.count(code[: len(keep)])
                if taken + len(keep) < need:  # another round will need to know these
                    seen[batch.hops] = np.sort(np.concatenate([known, hashes[keep]]))
                batch = batch.take_units(keep)
                result.batches.append(batch)
                taken += len(keep)
                if accepted is not None:
                    accepted(batch)
                if advance is not None:
                    advance(len(keep) * batch.per_unit)
            need -= taken
            if taken:
                factor, idle = min(64.0, 1.1 * size / taken), 0
            else:  # nothing new: search wider before giving up (small graphs near exhaustion)
                factor, idle = min(4096.0, 4 * max(factor, 8.0)), idle + 1
        if need > 0:
            result.shortfall[hops] = need
    return result


def _admit(
    engine: Engine, batch: PathBatch, seen: np.ndarray, caps: list[_Cap], rejections: Counter
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Units of a candidate batch that are new and within the caps (in draw order), their cap
    codes, and every unit's hash."""
    if not batch.units:
        return np.zeros(0, dtype=np.int64), [np.zeros(0, np.uint64) for _ in caps], np.zeros(0, np.uint64)
    hashes = unit_hash(batch)
    fresh = first_occurrences(hashes)
    if len(seen):
        fresh &= ~member(hashes, seen)
    rejections["duplicate"] += int((~fresh).sum())
    keep = np.flatnonzero(fresh)
    codes = []
    for cap in caps:
        lead = keep * batch.per_unit
        within, code = cap.admit(engine, PathBatch(batch.nodes[lead], batch.entries[lead]))
        rejections[cap.reason] += int((~within).sum())
        keep = keep[within]
        codes = [c[within] for c in codes] + [code[within]]
    return keep, codes, hashes


def first_occurrences(hashes: np.ndarray, ordered: np.ndarray | None = None) -> np.ndarray:
    """True for the first unit with each hash (`ordered`: the hashes sorted, if the caller has them).

    A sort finds the repeated hashes (a few per cent); a 4 MB bitmap of their low
    bits picks out the units that may carry one, and only those are ordered.
    numpy's SIMD sort (numpy 2) is twice as fast as polars' here.
    """
    ordered = np.sort(hashes) if ordered is None else ordered
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    first = np.ones(len(hashes), dtype=bool)
    if not len(repeated):
        return first
    low = np.uint64((1 << 22) - 1)
    marked = np.zeros(1 << 22, dtype=bool)
    marked[(repeated & low).astype(np.intp)] = True
    rows = np.flatnonzero(marked.take((hashes & low).astype(np.intp)))
    sub = hashes.take(rows)
    order = np.argsort(sub, kind="stable")
    first[rows] = False
    first[rows[order[np.r_[True, sub[order][1:] != sub[order][:-1]]]]] = True
    return first
