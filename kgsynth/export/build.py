"""Accepted items → `DatasetDict`s: the default configuration plus `sft` and `mcq`, `dag`
(plans of `dag` items) when there are any, and `medreason` (MedReason's six columns) for
a run written by `kgsynth ground`.

All configurations share one split plan, so an item is in the same split in every
configuration and training on `sft/train` never sees an answer from `mcq/test`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo, Features

from kgsynth.errors import ConfigError, InputFormatError
from kgsynth.export.inputs import RunInputs, read_run
from kgsynth.export.rows import FEATURES, dag_row, default_row, is_dag, is_mcq, mcq_row, sft_row
from kgsynth.export.splits import SPLITS, SplitKey, SplitPlan, plan_splits
from kgsynth.ground.medreason import read_medreason_rows
from kgsynth.review.figures import expert_rejected
from kgsynth.review.store import read_reviews

LEFT_OUT_REVIEW = "rejected by an expert reviewer (--drop-rejected)"


@dataclass
class Prepared:
    """Everything export needs: the run's inputs, the split plan and the rows of each split."""

    inputs: RunInputs
    plan: SplitPlan
    rows: dict[str, list[dict[str, Any]]]  # split → default rows, sorted by id
    medreason: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id → MedReason row (grounded runs)
    reviews: pl.DataFrame | None = None  # expert reviews (review/reviews.parquet), when exported
    drop_rejected: bool = False  # items an expert rejected are left out (plan.left_out says which)

    def config_names(self) -> list[str]:
        rows = [r for split in self.rows.values() for r in split]
        names = ["default", "sft"]
        names += ["mcq"] if any(is_mcq(r) for r in rows) else []
        names += ["dag"] if any(is_dag(r) for r in rows) else []
        return [*names, "medreason"] if self.medreason else names

    def config(self, name: str) -> DatasetDict:
        if name == "medreason":  # grounded rows, each in the split of its item
            to_row, keep = (lambda r: self.medreason[r["id"]]), (lambda r: r["id"] in self.medreason)
        else:
            to_row, keep = _CONFIGS[name]
        features = FEATURES[name]
        splits = {}
        for split, rows in self.rows.items():
            kept = [to_row(r) for r in rows if keep(r)]
            if kept:
                splits[split] = _dataset(kept, features, split)
        return DatasetDict(splits)

    def configs(self) -> dict[str, DatasetDict]:
        return {name: self.config(name) for name in self.config_names()}


_CONFIGS = {
    "default": (lambda r: r, lambda r: True),
    "sft": (sft_row, lambda r: True),
    "mcq": (mcq_row, is_mcq),
    "dag": (dag_row, is_dag),
}


def prepare(
    run_dir: str | Path,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    hop_split: Mapping[str, Sequence[int]] | None = None,
    drop_rejected: bool = False,
) -> Prepared:
    """Read the run and plan the splits. With `drop_rejected`, items an expert rejected
    (`kgsynth review export`) are left out after planning, so reviews never move other
    items between splits."""
    inputs = read_run(run_dir)
    if inputs.accepted.height == 0:
        raise InputFormatError(
            "no accepted items: there is nothing to export. "
            f"`kgsynth report {inputs.run.root}` shows why the items were rejected",
            file=inputs.run.verified / "accepted.parquet",
        )
    rows = [default_row(item) for item in inputs.accepted.to_arrow().to_pylist()]
    keys = [SplitKey(r["id"], r["answer_id"], r["path_signature"], r["hops"]) for r in rows]
    plan = plan_splits(keys, ratios=ratios, seed=seed, hop_split=hop_split)
    reviews = read_reviews(inputs.run.root)
    if drop_rejected:
        if reviews is None:
            raise ConfigError(
                f"--drop-rejected: {inputs.run.root} has no review/reviews.parquet; "
                f"write it with `kgsynth review export {inputs.run.root}`"
            )
        for item_id in sorted(expert_rejected(reviews)):
            if plan.split_of.pop(item_id, None) is not None:
                plan.left_out[item_id] = LEFT_OUT_REVIEW
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row in sorted(rows, key=lambda r: r["id"]):
        split = plan.split_of.get(row["id"])
        if split is not None:
            by_split[split].append(row)
    return Prepared(
        inputs=inputs,
        plan=plan,
        rows={s: rs for s, rs in by_split.items() if rs},
        medreason=read_medreason_rows(inputs.run.root),
        reviews=reviews,
        drop_rejected=drop_rejected,
    )


def build_dataset(
    run_dir: str | Path,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    hop_split: Mapping[str, Sequence[int]] | None = None,
) -> DatasetDict:
    """The default configuration: one row per accepted item, with its path and provenance."""
    return prepare(run_dir, ratios=ratios, seed=seed, hop_split=hop_split).config("default")


def build_configs(
    run_dir: str | Path,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    hop_split: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, DatasetDict]:
    """The configurations "default", "sft", (when there are multiple-choice items) "mcq", (when there
    are dag items) "dag" and (for a grounded run) "medreason"."""
    return prepare(run_dir, ratios=ratios, seed=seed, hop_split=hop_split).configs()


def _dataset(rows: list[dict[str, Any]], features: Features, split: str) -> Dataset:
    """Rows → Dataset through Arrow directly: every feature is a plain value, struct or list,
    so `datasets`' per-example encoding (the slow path of `Dataset.from_list`) changes nothing."""
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    return Dataset(table, info=DatasetInfo(features=features), split=split)
