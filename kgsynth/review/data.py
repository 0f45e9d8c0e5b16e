"""What the review app shows: a run's verified items, read once, in queue order.

Items are verification's accepted items followed by its rejected ones, as the run
wrote them; the app never changes them. Each gets the facts the queue filters on
(configuration, split, hops, relation pattern, verdict), where the split is the one
`kgsynth export` assigns with the run's export parameters.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError
from kgsynth.export.inputs import ACCEPTED, RunInputs, read_run
from kgsynth.export.rows import is_mcq, path_signature
from kgsynth.export.splits import SPLITS, SplitKey, plan_splits
from kgsynth.export.writer import EXPORT_RECORD
from kgsynth.review.proof import ProofGraph
from kgsynth.rundir import RunDir

NO_SPLIT = "none"  # rejected by verification, or left out of the splits
FILTERS = ("config", "split", "hops", "pattern", "verdict", "reviewed")
REVIEWED = ("no", "yes", "accept", "reject", "skip")


@dataclass(frozen=True)
class QueueFilter:
    config: str | None = None  # "mcq" or "open"
    split: str | None = None  # train, validation, test, none
    hops: int | None = None
    pattern: str | None = None
    verdict: str | None = None  # accepted, rejected, or a rejection reason code
    reviewed: str | None = None  # by the current reviewer: no, yes, accept, reject, skip

    @classmethod
    def parse(cls, params: dict[str, str]) -> QueueFilter:
        values = {k: (params.get(k) or "").strip() or None for k in FILTERS}
        hops = values.pop("hops")
        if hops is not None and not hops.isdigit():
            raise ConfigError(f"filter hops: expected a whole number, got {hops!r}")
        if values["reviewed"] not in (None, *REVIEWED):
            raise ConfigError(f"filter reviewed: expected one of {', '.join(REVIEWED)}, got {values['reviewed']!r}")
        if values["config"] not in (None, "mcq", "open"):
            raise ConfigError(f"filter config: expected mcq or open, got {values['config']!r}")
        return cls(hops=int(hops) if hops is not None else None, **values)

    def params(self) -> dict[str, str]:
        return {k: str(v) for k in FILTERS if (v := getattr(self, k)) is not None}

    @property
    def static(self) -> tuple:
        return (self.config, self.split, self.hops, self.pattern, self.verdict)


@dataclass(frozen=True)
class Sample:
    """A stratified sample over (hops, pattern) of the accepted items, in review order."""

    n: int
    seed: int
    positions: np.ndarray

    @property
    def label(self) -> str:
        return f"n={self.n} seed={self.seed}"


@dataclass
class ReviewData:
    run: RunDir
    items: pl.DataFrame  # item columns, verdicts, reasons, status, split, pattern; row = position
    ids: dict[str, int]  # item id → position
    graph: ProofGraph | None
    export_params: dict[str, Any]
    sample: Sample | None = None
    notes: list[str] = field(default_factory=list)
    _masks: OrderedDict = field(default_factory=OrderedDict, repr=False)  # filter → mask, the 64 latest
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # requests run on a thread pool

    @cached_property
    def order(self) -> np.ndarray:
        """Positions in review order: the sample's order, or the run's."""
        return self.sample.positions if self.sample is not None else np.arange(self.items.height)

    @cached_property
    def rank(self) -> np.ndarray:
        """rank[position] = index in `order`, -1 outside the sample."""
        rank = np.full(self.items.height, -1, dtype=np.int64)
        rank[self.order] = np.arange(len(self.order))
        return rank

    def item(self, item_id: str) -> dict[str, Any] | None:
        at = self.ids.get(item_id)
        return None if at is None else self.items.row(at, named=True)

    def queue(self, flt: QueueFilter, decisions: dict[str, str]) -> np.ndarray:
        """Positions in review order that pass the filter (`decisions`: the reviewer's, item id → decision)."""
        order = self.order
        kept = order[self._mask(flt)[order]]
        if flt.reviewed is None:
            return kept
        done = np.zeros(self.items.height, dtype=bool)
        wanted = None if flt.reviewed in ("no", "yes") else flt.reviewed
        at = [self.ids[i] for i, d in decisions.items() if i in self.ids and (wanted is None or d == wanted)]
        done[np.asarray(at, dtype=np.int64)] = True
        return kept[~done[kept]] if flt.reviewed == "no" else kept[done[kept]]

    def neighbours(self, queue: np.ndarray, position: int) -> tuple[int | None, int | None, int | None]:
        """(previous, next, index in queue or None) of an item within a filtered queue."""
        ranks = self.rank[queue]
        mine = self.rank[position]
        if mine < 0:  # not in the sample: the queue starts over
            return None, (int(queue[0]) if len(queue) else None), None
        lo = int(np.searchsorted(ranks, mine, side="left"))
        hi = int(np.searchsorted(ranks, mine, side="right"))
        previous = int(queue[lo - 1]) if lo > 0 else None
        following = int(queue[hi]) if hi < len(queue) else None
        return previous, following, (lo if hi > lo else None)

    def _mask(self, flt: QueueFilter) -> np.ndarray:
        key = flt.static
        with self._lock:
            mask = self._masks.get(key)
        if mask is None:
            conditions = []
            if flt.config == "mcq":
                conditions.append(pl.col("in_mcq"))
            elif flt.config == "open":
                conditions.append(pl.col("kind") == "open")
            if flt.split is not None:
                conditions.append(pl.col("split") == flt.split)
            if flt.hops is not None:
                conditions.append(pl.col("hops") == flt.hops)
            if flt.pattern is not None:
                conditions.append(pl.col("pattern") == flt.pattern)
            if flt.verdict in ("accepted", "rejected"):
                conditions.append(pl.col("status") == flt.verdict)
            elif flt.verdict is not None:
                conditions.append(pl.col("reasons").list.contains(flt.verdict))
            if conditions:
                mask = self.items.select(pl.all_horizontal(conditions).alias("m"))["m"].to_numpy()
            else:
                mask = np.ones(self.items.height, dtype=bool)
            with self._lock:
                self._masks[key] = mask
                if len(self._masks) > 64:
                    self._masks.popitem(last=False)
        return mask

    def choices(self) -> dict[str, list]:
        """The values each filter can take, for the queue page's menus."""
        frame = self.items
        return {
            "config": ["mcq", "open"],
            "split": [*SPLITS, NO_SPLIT],
            "hops": sorted(frame["hops"].unique().to_list()),
            "pattern": frame["pattern"].value_counts(sort=True)["pattern"].to_list(),
            "verdict": ["accepted", "rejected", *sorted(frame["reasons"].explode().drop_nulls().unique().to_list())],
            "reviewed": list(REVIEWED),
        }


def load_review_data(run_dir: str | Path, *, sample: int | None = None, seed: int = 0) -> ReviewData:
    """Read a run's verified items (and the full graph, for distractor proofs)."""
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise SourceNotFoundError(f"{run.root}: no such run directory")
    if not (run.verified / ACCEPTED).exists():
        raise SourceNotFoundError(
            f"{run.verified / ACCEPTED}: missing; the review app shows verified items. "
            f"Run `kgsynth verify {run.root}` (or `kgsynth run CONFIG`) first"
        )
    inputs = read_run(run.root)
    frames = [inputs.accepted.with_columns(pl.lit("accepted").alias("status"), pl.lit([], dtype=pl.List(pl.String)).alias("reasons"))]
    if inputs.rejected is not None:
        frames.append(inputs.rejected.with_columns(pl.lit("rejected").alias("status")).select(frames[0].columns))
    items = pl.concat(frames, how="vertical")
    if items.height == 0:
        raise InputFormatError("no verified items: both accepted and rejected are empty, nothing to review", file=run.verified)
    duplicated = items.filter(pl.col("id").is_duplicated())
    if duplicated.height:
        raise InputFormatError(
            f"item id {duplicated['id'][0]!r} appears twice among accepted and rejected items; re-run `kgsynth verify`",
            file=run.verified,
        )
    graph = ProofGraph.open(inputs.snapshot) if inputs.snapshot is not None else None
    export_params = _export_params(run)
    items = items.with_columns(
        pl.Series("split", _splits(inputs, export_params), dtype=pl.String),
        pl.Series("in_mcq", [is_mcq(r) for r in items.select("kind", "options", "answer_label").iter_rows(named=True)]),
        _patterns(items, inputs, graph),
    )
    return ReviewData(
        run=run,
        items=items,
        ids={item_id: i for i, item_id in enumerate(items["id"].to_list())},
        graph=graph,
        export_params=export_params,
        notes=[n for n in inputs.notes if "snapshot" in n],
        sample=stratified_sample(items, sample, seed) if sample is not None else None,
    )


def stratified_sample(items: pl.DataFrame, n: int, seed: int) -> Sample:
    """n accepted items spread over (hops, pattern) strata in proportion to their sizes
    (largest remainder; ties by the seed), drawn at random within each, in a seeded order."""
    if n < 1:
        raise ConfigError(f"--sample must be at least 1, got {n}")
    accepted = items.with_row_index("_pos").filter(pl.col("status") == "accepted")
    if accepted.height == 0:
        raise ConfigError("--sample draws from the accepted items, and this run has none")
    rng = np.random.default_rng(seed)
    strata = accepted.group_by("hops", "pattern").agg(pl.col("_pos")).sort("hops", "pattern")
    sizes = np.array([len(p) for p in strata["_pos"]], dtype=np.int64)
    n = min(n, int(sizes.sum()))
    quota = n * sizes / sizes.sum()
    take = np.floor(quota).astype(np.int64)
    short = n - int(take.sum())
    if short:
        order = np.lexsort((rng.random(len(sizes)), -(quota - take)))  # largest remainder first, random among ties
        take[order[:short]] += 1
    picked = [rng.choice(np.asarray(positions), size=k, replace=False) for positions, k in zip(strata["_pos"], take, strict=True) if k]
    positions = np.concatenate(picked).astype(np.int64)
    rng.shuffle(positions)  # a reviewer who stops early has still seen a fair slice
    return Sample(n=n, seed=seed, positions=positions)


def _export_params(run: RunDir) -> dict[str, Any]:
    """The split parameters of the run's last export (defaults when it was not exported yet)."""
    params: dict[str, Any] = {"ratios": (0.8, 0.1, 0.1), "seed": 0, "hop_split": None, "from": "defaults"}
    record = run.dataset / EXPORT_RECORD
    if record.exists():
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            params = {
                "ratios": tuple(float(data["ratios"][s]) for s in SPLITS),
                "seed": int(data["seed"]),
                "hop_split": data.get("hop_split"),
                "from": str(record),
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFormatError(f"cannot read the export parameters: {exc}", file=record) from exc
    return params


def _splits(inputs: RunInputs, params: dict[str, Any]) -> list[str]:
    """Each item's split as `kgsynth export` would assign it; rejected items have none."""
    accepted = inputs.accepted.select("id", "answer_id", "nodes", "relations", "forward", "hops")
    keys = [SplitKey(r["id"], r["answer_id"], path_signature(r), r["hops"]) for r in accepted.iter_rows(named=True)]
    plan = plan_splits(keys, ratios=params["ratios"], seed=params["seed"], hop_split=params["hop_split"])
    rejected = inputs.rejected.height if inputs.rejected is not None else 0
    return [plan.split_of.get(k.item_id, NO_SPLIT) for k in keys] + [NO_SPLIT] * rejected


def _patterns(items: pl.DataFrame, inputs: RunInputs, graph: ProofGraph | None) -> pl.Series:
    """The relation pattern of each item, written as the samplers write it."""
    if graph is not None:
        from kgsynth.sample.batch import pattern_text

        engine = graph.engine
        n_rel = len(engine.relation_names)
        shapes = items.select("node_types", "relations", "forward")
        texts: dict[tuple, str] = {}
        out = []
        for types, relations, forward in shapes.iter_rows():
            shape = (tuple(types), tuple(relations), tuple(forward))
            text = texts.get(shape)
            if text is None:
                if all(t in engine.type_index for t in types) and all(r in engine.relation_index for r in relations):
                    keys = []
                    for r, f in zip(relations, forward, strict=True):
                        i = engine.relation_index[r]
                        keys.append(i + 2 * n_rel if engine.symmetric[i] else (i if f else i + n_rel))
                    text = pattern_text(engine, [engine.type_index[t] for t in types], keys)
                else:
                    text = "(not in the full graph)"
                texts[shape] = text
            out.append(text)
        return pl.Series("pattern", out, dtype=pl.String)
    run = inputs.run
    if run.paths.exists():
        paths = pl.read_parquet(run.paths, columns=["path_id", "pattern"]).unique("path_id")
        return items.select("path_id").join(paths, on="path_id", how="left")["pattern"].fill_null("(unknown)")
    return pl.Series("pattern", ["(unknown)"] * items.height, dtype=pl.String)
