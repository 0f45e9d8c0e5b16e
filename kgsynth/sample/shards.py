"""Sampling in shards: the unit of streaming, of resuming and of work on a cluster.

A run of n paths is cut into shards of `shard_size` paths (the last one smaller).
Shard i draws with its own random stream, seeded by (seed, i), so any shard can be
made alone, in any process, in any order, and it is the same shard every time.
A shard holds its paths as engine arrays (nodes, CSR entries), one batch per hop
count, with their proven hard negatives and unique-answer verdicts: about 60 bytes
a path, against several hundred once ids and patterns are spelled out as strings.
`kgsynth.sample.stream` merges shards, in order, into one paths file.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kgsynth.errors import SnapshotError
from kgsynth.graph.engine import Engine
from kgsynth.sample.batch import PathBatch

Advance = Callable[[int], None]


@dataclass
class ShardProgress:
    """Callbacks with the number of paths just sampled / proven (for progress bars)."""

    sampled: Advance | None = None
    proven: Advance | None = None


@dataclass
class Shard:
    """One shard's paths as arrays, a batch per hop count (ascending), and what drawing them cost."""

    index: int
    batches: list[PathBatch]
    negative_counts: list[np.ndarray]  # per batch: int64 negatives per path
    negative_nodes: list[np.ndarray]  # per batch: int64 full-graph indices, paths concatenated
    unique: list[np.ndarray | None]  # per batch: int8 verdicts (kgsynth.sample.unique), None when not judged
    rejections: Counter = field(default_factory=Counter)
    shortfall: dict[int | str, int] = field(default_factory=dict)  # hop count ("any", "unique_answer") → units
    seconds: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(batch.rows for batch in self.batches)


def shard_quotas(n: int, shard_size: int) -> list[int]:
    """Paths asked of each shard: full shards of `shard_size`, then the rest (always one shard)."""
    if n <= 0:
        return [n]
    full, rest = divmod(n, shard_size)
    return [shard_size] * full + ([rest] if rest else [])


def shard_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of shard `index`: independent of every other shard's."""
    return np.random.default_rng([index, seed])


def sample_shard(
    engine: Engine,
    sampler: Callable[..., Any],
    n: int,
    seed: int,
    index: int,
    *,
    full: Engine | None = None,
    negatives: int = 3,
    unique_answer: bool = False,
    views: dict | None = None,
    progress: ShardProgress | None = None,
    **params: Any,
) -> Shard:
    """Shard `index` of a run: n paths from `sampler` with the shard's own stream, their hard
    negatives (drawn on `engine`, proven on `full`) and unique-answer verdicts."""
    from kgsynth.sample.negatives import hard_negatives
    from kgsynth.sample.unique import keep_unique, unique_answers

    progress = progress or ShardProgress()
    proven_on = full or engine
    rng = shard_rng(seed, index)
    started = time.perf_counter()
    collected = sampler(engine, n, rng, advance=progress.sampled, **params)
    shard = Shard(index=index, batches=[], negative_counts=[], negative_nodes=[], unique=[])
    shard.seconds["sample"] = time.perf_counter() - started
    shard.rejections.update(collected.rejections)
    shard.shortfall = {"any" if hops is None else hops: need for hops, need in collected.shortfall.items()}
    shard.extra = dict(collected.extra)
    batches, verdicts = collected.batches, None
    if unique_answer:
        tick = time.perf_counter()
        batches, verdicts, turned_away, missing = keep_unique(
            engine, proven_on, collected, lambda more: sampler(engine, more, rng, advance=None, **params)
        )
        shard.rejections.update(turned_away)
        if missing:
            shard.shortfall["unique_answer"] = missing
        shard.seconds["unique_answer"] = time.perf_counter() - tick

    by_hops: dict[int, list[int]] = {}
    for at, batch in enumerate(batches):
        by_hops.setdefault(batch.hops, []).append(at)
    views = {} if views is None else views
    for hops in sorted(by_hops):
        batch = PathBatch.concat([batches[at] for at in by_hops[hops]])
        tick = time.perf_counter()
        proven = hard_negatives(engine, proven_on, batch, negatives, rng, views=views, advance=progress.proven)
        shard.seconds["negatives"] = shard.seconds.get("negatives", 0.0) + time.perf_counter() - tick
        tick = time.perf_counter()
        if verdicts is not None:
            verdict = np.concatenate([verdicts[at] for at in by_hops[hops]]).astype(np.int8)
        elif negatives:  # judged alongside the negatives, on the same graph; skipped when none are asked
            verdict = unique_answers(engine, proven_on, batch).astype(np.int8)
        else:
            verdict = None
        shard.seconds["unique_answer"] = shard.seconds.get("unique_answer", 0.0) + time.perf_counter() - tick
        shard.batches.append(batch)
        shard.negative_counts.append(np.asarray(proven.counts, dtype=np.int64))
        shard.negative_nodes.append(np.asarray(proven.nodes, dtype=np.int64))
        shard.unique.append(verdict)
    return shard


# --- shards on disk (a stage in parts keeps each finished shard, so a killed run resumes) ---


def save_shard(shard: Shard, path: Path) -> Path:
    """One .npz per shard, written atomically."""
    from kgsynth.atomic import replace_file

    arrays: dict[str, np.ndarray] = {}
    for i, batch in enumerate(shard.batches):
        arrays[f"nodes_{i}"] = batch.nodes
        arrays[f"entries_{i}"] = batch.entries
        arrays[f"negative_counts_{i}"] = shard.negative_counts[i]
        arrays[f"negative_nodes_{i}"] = shard.negative_nodes[i]
        if shard.unique[i] is not None:
            arrays[f"unique_{i}"] = shard.unique[i]
    meta = {
        "index": shard.index,
        "batches": len(shard.batches),
        "per_unit": [batch.per_unit for batch in shard.batches],
        "rejections": dict(shard.rejections),
        "shortfall": [[key, value] for key, value in shard.shortfall.items()],
        "seconds": shard.seconds,
        "extra": shard.extra,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=_jsonable).encode(), dtype=np.uint8)

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        tmp.write_bytes(buffer.getvalue())

    return replace_file(path, write)


def load_shard(path: Path) -> Shard:
    try:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            batches, counts, nodes, unique = [], [], [], []
            for i in range(meta["batches"]):
                batches.append(PathBatch(data[f"nodes_{i}"], data[f"entries_{i}"], meta["per_unit"][i]))
                counts.append(data[f"negative_counts_{i}"])
                nodes.append(data[f"negative_nodes_{i}"])
                unique.append(data[f"unique_{i}"] if f"unique_{i}" in data else None)
    except (OSError, ValueError, KeyError) as exc:
        raise SnapshotError(f"{path}: unreadable sampling shard ({exc}); run the sample stage again") from None
    return Shard(
        index=meta["index"], batches=batches, negative_counts=counts, negative_nodes=nodes, unique=unique,
        rejections=Counter(meta["rejections"]), shortfall={key: value for key, value in meta["shortfall"]},
        seconds=meta["seconds"], extra=meta["extra"],
    )  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a shard's figures")
