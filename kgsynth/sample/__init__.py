"""Path samplers and hard-negative selection.

`sample_paths(engine, strategy, n, seed, **params)` is the one entry point: the
strategy (registered by name in `SAMPLERS`) draws paths on `engine` — usually the
pruned graph — and every path gets hard negatives proven on `full`, the unpruned
graph. Same engine, strategy, parameters and seed give the identical table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kgsynth.config import DEFAULT_SHARD_SIZE
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
    shards: int = 0  # base and refill shards drawn
    refill_shards: int = 0  # shards drawn to replace units an earlier shard already had

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def import_strategies() -> None:
    for module in STRATEGY_MODULES:
        __import__(f"kgsynth.sample.{module}")


# Samplers that search inputs they are given (entity pairs) exhaustively: n does not
# apply, so they run as one shard and nothing is drawn again to replace a repeat.
EXHAUSTIVE = frozenset({"between"})


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


@dataclass
class SampleProgress:
    """Callbacks with the number of paths just sampled, proven and written (for progress bars)."""

    sampled: Callable[[int], None] | None = None
    proven: Callable[[int], None] | None = None
    written: Callable[[int], None] | None = None


@dataclass
class SampleRun:
    """One sampling run, cut into shards: what every runner (in process, parts of a stage, tasks
    on a cluster) makes and merges the same way. Build it with `plan_sample`."""

    engine: Engine
    full: Engine
    strategy: str
    n: int
    seed: int
    negatives: int
    unique_answer: bool
    shard_size: int
    params: dict[str, Any]

    @property
    def quotas(self) -> list[int]:
        return shard_quotas(self.strategy, self.n, self.shard_size)

    def shard(self, index: int, n: int | None = None, *, views: dict | None = None, progress: SampleProgress | None = None) -> Any:
        """Shard `index` (`kgsynth.sample.shards.Shard`): a base shard of the plan, or with n, a refill shard."""
        from kgsynth.sample.shards import ShardProgress, sample_shard

        progress = progress or SampleProgress()
        return sample_shard(
            self.engine, SAMPLERS.get(self.strategy), self.quotas[index] if n is None else n, self.seed, index,
            full=self.full, negatives=self.negatives, unique_answer=self.unique_answer, views=views,
            progress=ShardProgress(sampled=progress.sampled, proven=progress.proven), **self.params,
        )  # fmt: skip

    def merge(self, shards: Iterable[Any], write: Callable[[pl.DataFrame], None], *, progress: SampleProgress | None = None) -> SampleStats:
        """Merge shards in order into `write` (units repeated across shards drawn again), with the run's figures."""
        from kgsynth.sample.stream import merge_shards

        progress = progress or SampleProgress()
        views: dict = {}

        def refill(index: int, n: int) -> Any:
            return self.shard(index, n, views=views, progress=SampleProgress(proven=progress.proven))

        merged = merge_shards(
            shards, self.engine, self.full, strategy=self.strategy, seed=self.seed, write=write,
            refill=None if self.strategy in EXHAUSTIVE else refill, next_index=len(self.quotas), written=progress.written,
        )  # fmt: skip
        return SampleStats(
            strategy=self.strategy, seed=self.seed, requested=self.n, produced=merged.produced,
            by_hops=dict(sorted(merged.by_hops.items())), by_pattern=dict(merged.by_pattern.most_common()),
            rejections=dict(sorted((+merged.rejections).items())), shortfall=dict(+merged.shortfall),
            negatives_wanted=self.negatives, paths_without_negatives=merged.paths_without_negatives if self.negatives else 0,
            negatives_total=merged.negatives_total, unique_answers=merged.unique_answers,
            not_unique_answers=merged.not_unique_answers,
            seconds={key: merged.seconds[key] for key in ("sample", "negatives", "unique_answer", "table")},
            extra=merged.extra, shards=merged.shards, refill_shards=merged.refill_shards,
        )  # fmt: skip


def shard_quotas(strategy: str, n: int, shard_size: int = DEFAULT_SHARD_SIZE) -> list[int]:
    """Paths asked of each base shard of a run."""
    from kgsynth.sample.shards import shard_quotas as quotas

    return [n] if strategy in EXHAUSTIVE else quotas(n, shard_size)


def plan_sample(
    engine: Engine,
    strategy: str = "walk",
    n: int = 1000,
    seed: int = 0,
    *,
    full: Engine | None = None,
    negatives: int = 3,
    unique_answer: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    **params: Any,
) -> SampleRun:
    """A sampling run, its options checked before any work is done."""
    from kgsynth.errors import ConfigError

    import_strategies()
    sampler = SAMPLERS.get(strategy)
    _check_options(strategy, sampler, params)
    if seed < 0:
        raise ConfigError(f"seed must be 0 or more, got {seed}")
    if shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    return SampleRun(engine, full or engine, strategy, n, seed, negatives, unique_answer, shard_size, params)


def sample_with_stats(
    engine: Engine,
    strategy: str = "walk",
    n: int = 1000,
    seed: int = 0,
    *,
    full: Engine | None = None,
    negatives: int = 3,
    unique_answer: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: SampleProgress | None = None,
    **params: Any,
) -> tuple[pl.DataFrame, SampleStats]:
    """`sample_paths` plus the run's figures: counts by hop and pattern, rejections, timings.

    The table is held in memory: for runs of millions of paths use `sample_to_file`,
    which streams the same rows to disk.
    """
    run = plan_sample(
        engine, strategy, n, seed, full=full, negatives=negatives, unique_answer=unique_answer, shard_size=shard_size, **params
    )
    frames: list[pl.DataFrame] = []
    views: dict = {}
    stats = run.merge((run.shard(i, views=views, progress=progress) for i in range(len(run.quotas))), frames.append, progress=progress)
    from kgsynth.sample.paths import empty_paths

    frame = pl.concat(frames) if frames else empty_paths()
    return frame, stats


def sample_to_file(
    engine: Engine,
    out: str | Path,
    strategy: str = "walk",
    n: int = 1000,
    seed: int = 0,
    *,
    full: Engine | None = None,
    negatives: int = 3,
    unique_answer: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: SampleProgress | None = None,
    **params: Any,
) -> SampleStats:
    """Sample straight into a paths file, one shard at a time: memory stays flat whatever n is
    (8 bytes a path to remember what was written, plus one shard). Same rows and the same
    bytes as `write_paths(sample_paths(...))`; nothing is left at `out` if it fails."""
    from kgsynth.sample.paths import PathsWriter

    run = plan_sample(
        engine, strategy, n, seed, full=full, negatives=negatives, unique_answer=unique_answer, shard_size=shard_size, **params
    )
    views: dict = {}
    with PathsWriter(out) as writer:
        return run.merge((run.shard(i, views=views, progress=progress) for i in range(len(run.quotas))), writer.write, progress=progress)


def _check_options(strategy: str, sampler: Sampler, params: dict[str, Any]) -> None:
    import inspect

    from kgsynth.errors import ConfigError

    accepted = set(inspect.signature(sampler).parameters) - {"engine", "n", "rng", "advance"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(f"the {strategy} sampler takes no option(s) {unknown}; it takes: {', '.join(sorted(accepted))}")
