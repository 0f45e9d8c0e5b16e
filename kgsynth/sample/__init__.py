"""Path samplers and hard-negative selection.

`sample_paths(engine, strategy, n, seed, **params)` is the one entry point: the
strategy (registered by name in `SAMPLERS`) draws paths on `engine` — usually the
pruned graph — and every path gets hard negatives proven on `full`, the unpruned
graph. Same engine, strategy, parameters and seed give the identical table.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from kgsynth.graph.engine import Engine
from kgsynth.registry import Registry

Sampler = Callable[..., Any]  # (engine, n, rng, *, advance, **params) -> collect.Collected
SAMPLERS: Registry[Sampler] = Registry("sampler")

STRATEGY_MODULES = ("walk", "pattern", "between", "rare_chain", "convergent")


@dataclass
class SampleStats:
    """What a sampling run produced and turned away, for the CLI summary and run reports."""

    strategy: str
    seed: int
    requested: int
    produced: int = 0
    by_hops: dict[int, int] = field(default_factory=dict)
    by_pattern: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    shortfall: dict[int | str, int] = field(default_factory=dict)  # hop count ("any") → units not found
    negatives_wanted: int = 0
    paths_without_negatives: int = 0
    negatives_total: int = 0
    unique_answers: int = 0  # paths whose answer is proven the only end of their pattern
    not_unique_answers: int = 0  # paths proven to have other ends (no open question)
    seconds: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific figures

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def import_strategies() -> None:
    for module in STRATEGY_MODULES:
        __import__(f"kgsynth.sample.{module}")


def sample_paths(
    engine: Engine,
    strategy: str = "walk",
    n: int = 1000,
    seed: int = 0,
    *,
    full: Engine | None = None,
    negatives: int = 3,
    unique_answer: bool = False,
    **params: Any,
) -> pl.DataFrame:
    """The paths table (`kgsynth.sample.paths.PATHS_SCHEMA`) for n paths of `strategy`.

    Each path's `unique_answer` says whether its pattern from the anchor reaches
    its answer only, on `full` (null when not judged: with `negatives=0`, or past
    the search budget). `unique_answer=True` keeps only paths proven so, for open
    questions, drawing more to make up the number.
    """
    frame, _ = sample_with_stats(
        engine, strategy, n, seed, full=full, negatives=negatives, unique_answer=unique_answer, **params
    )
    return frame


def sample_with_stats(
    engine: Engine,
    strategy: str = "walk",
    n: int = 1000,
    seed: int = 0,
    *,
    full: Engine | None = None,
    negatives: int = 3,
    unique_answer: bool = False,
    advance: Callable[[int], None] | None = None,
    **params: Any,
) -> tuple[pl.DataFrame, SampleStats]:
    """`sample_paths` plus the run's figures: counts by hop and pattern, rejections, timings."""
    from kgsynth.sample.batch import PathBatch, batch_frame
    from kgsynth.sample.negatives import hard_negatives, negatives_column
    from kgsynth.sample.paths import conform_paths
    from kgsynth.sample.unique import NOT_UNIQUE, UNIQUE, keep_unique, unique_answers, unique_column

    import_strategies()
    sampler = SAMPLERS.get(strategy)
    _check_options(strategy, sampler, params)
    stats = SampleStats(strategy=strategy, seed=seed, requested=n, negatives_wanted=negatives)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    collected = sampler(engine, n, rng, advance=advance, **params)
    stats.seconds["sample"] = time.perf_counter() - started
    stats.rejections = dict(sorted(Counter(collected.rejections).items()))
    stats.shortfall = {"any" if hops is None else hops: need for hops, need in collected.shortfall.items()}
    stats.extra = dict(collected.extra)
    batches, verdicts = collected.batches, None
    if unique_answer:
        tick = time.perf_counter()
        batches, verdicts, turned_away, missing = keep_unique(
            engine, full or engine, collected, lambda more: sampler(engine, more, rng, advance=None, **params)
        )
        for reason, count in turned_away.items():
            stats.rejections[reason] = stats.rejections.get(reason, 0) + count
        if missing:
            stats.shortfall["unique_answer"] = missing
        stats.seconds["unique_answer"] = time.perf_counter() - tick

    by_hops: dict[int, list[tuple[PathBatch, np.ndarray | None]]] = {}
    for at, batch in enumerate(batches):
        by_hops.setdefault(batch.hops, []).append((batch, None if verdicts is None else verdicts[at]))
    frames = []
    row = group = 0
    started = time.perf_counter()
    negative_seconds = 0.0
    views: dict = {}  # hop views for negative candidates, shared across hop counts
    unique_seconds = 0.0
    for hops in sorted(by_hops):
        batch = PathBatch.concat([b for b, _ in by_hops[hops]])
        frame = batch_frame(engine, batch, strategy=strategy, seed=seed, first_row=row, first_group=group)
        tick = time.perf_counter()
        proven = hard_negatives(engine, full or engine, batch, negatives, rng, views=views)
        negative_seconds += time.perf_counter() - tick
        tick = time.perf_counter()
        if verdicts is not None:
            verdict = np.concatenate([v for _, v in by_hops[hops]])
        else:  # judged alongside the negatives, on the same graph; skipped when no negatives are asked
            verdict = unique_answers(engine, full or engine, batch) if negatives else None
        unique_seconds += time.perf_counter() - tick
        frame = frame.with_columns(negatives_column(full or engine, proven), unique_column(verdict, batch.rows))
        stats.paths_without_negatives += int((proven.counts == 0).sum()) if negatives else 0
        stats.negatives_total += int(proven.counts.sum())
        if verdict is not None:
            stats.unique_answers += int((verdict == UNIQUE).sum())
            stats.not_unique_answers += int((verdict == NOT_UNIQUE).sum())
        frames.append(frame)
        row += batch.rows
        group += batch.units
    stats.seconds["negatives"] = negative_seconds
    stats.seconds["unique_answer"] = stats.seconds.get("unique_answer", 0.0) + unique_seconds
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    frame = conform_paths(
        frame.with_columns(pl.lit(strategy).alias("strategy"), pl.lit(seed, dtype=pl.Int64).alias("seed"), pl.lit(engine.snapshot_hash).alias("snapshot"))
        if frames
        else _empty_frame()
    )
    stats.seconds["table"] = time.perf_counter() - started - negative_seconds - unique_seconds
    stats.produced = frame.height
    if frame.height:
        stats.by_hops = {int(k): int(v) for k, v in frame["hops"].value_counts().sort("hops").iter_rows()}
        counts = frame["pattern"].value_counts(sort=True)
        stats.by_pattern = dict(zip(counts["pattern"].to_list(), counts["count"].to_list(), strict=True))
    return frame, stats


def _check_options(strategy: str, sampler: Sampler, params: dict[str, Any]) -> None:
    import inspect

    from kgsynth.errors import ConfigError

    accepted = set(inspect.signature(sampler).parameters) - {"engine", "n", "rng", "advance"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(f"the {strategy} sampler takes no option(s) {unknown}; it takes: {', '.join(sorted(accepted))}")


def _empty_frame() -> pl.DataFrame:
    from kgsynth.sample.paths import PATHS_SCHEMA

    return pl.DataFrame(schema=PATHS_SCHEMA)
