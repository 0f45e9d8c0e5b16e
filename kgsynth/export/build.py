"""Accepted items → `DatasetDict`s: the default configuration plus `sft` and `mcq`, `dag`
(plans of `dag` items) when there are any, and `medreason` (MedReason's six columns) for
a run written by `kgsynth ground`.

All configurations share one split plan, so an item is in the same split in every
configuration and training on `sft/train` never sees an answer from `mcq/test`.

With the difficulty stage's output, every row carries its difficulty; `curriculum`
orders the train split of every configuration from easy to hard (by score, ties by
the feature score, then the item id; the other splits stay in id order), and
`stratify="difficulty"` gives each split every difficulty level in its ratio.
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
from kgsynth.export.rows import FEATURES, dag_row, default_row, is_dag, is_mcq, level, mcq_row, sft_row
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
    curriculum: bool = False  # the train split is ordered easy to hard

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
    curriculum: bool = False,
    stratify: str = "none",
) -> Prepared:
    """Read the run and plan the splits. With `drop_rejected`, items an expert rejected
    (`kgsynth review export`) are left out after planning, so reviews never move other
    items between splits. `curriculum` and `stratify` (see the module docstring) need
    the difficulty stage's output."""
    if stratify not in STRATA:
        raise ConfigError(f"stratify {stratify!r}: choose from {', '.join(STRATA)}")
    inputs = read_run(run_dir)
    if inputs.accepted.height == 0:
        raise InputFormatError(
            "no accepted items: there is nothing to export. "
            f"`kgsynth report {inputs.run.root}` shows why the items were rejected",
            file=inputs.run.verified / "accepted.parquet",
        )
    rows = [default_row(item) for item in inputs.accepted.to_arrow().to_pylist()]
    _add_difficulty(rows, inputs, needed=curriculum or stratify != "none")
    keys = [
        SplitKey(r["id"], r["answer_id"], r["path_signature"], r["hops"], level(r) if stratify == "difficulty" else None)
        for r in rows
    ]  # fmt: skip
    plan = plan_splits(keys, ratios=ratios, seed=seed, hop_split=hop_split, stratify=stratify != "none")
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
    if curriculum:
        by_split["train"].sort(key=curriculum_key)
    return Prepared(
        inputs=inputs,
        plan=plan,
        rows={s: rs for s, rs in by_split.items() if rs},
        medreason=read_medreason_rows(inputs.run.root),
        reviews=reviews,
        drop_rejected=drop_rejected,
        curriculum=curriculum,
    )


STRATA = ("none", "difficulty")


def curriculum_key(row: dict[str, Any]) -> tuple[float, float, str]:
    """Easy to hard: the difficulty score, ties broken by the feature score, then by the item id."""
    d = row["difficulty"]
    return (d["score"], d["feature_score"], row["id"])


def _add_difficulty(rows: list[dict[str, Any]], inputs: RunInputs, *, needed: bool) -> None:
    """Each row's difficulty record from the difficulty stage's output (None where it was not measured)."""
    from kgsynth.export.rows import DIFFICULTY

    measured = inputs.difficulty
    if measured is None:
        if needed:
            raise ConfigError(
                f"--curriculum and --stratify difficulty need the items' difficulty: run `kgsynth difficulty "
                f"{inputs.run.root}` (or the difficulty stage of `kgsynth run`) first"
            )
        return
    scores = measured.scores.select([c for c in DIFFICULTY if c in measured.scores.columns] + ["id"])
    # six decimals: JSON lines keep ten digits, so every format holds the same numbers
    scores = scores.with_columns(pl.selectors.float().round(6))
    by_id = {r.pop("id"): r for r in scores.to_dicts()}
    missing = [r["id"] for r in rows if r["id"] not in by_id]
    if missing and needed:
        raise ConfigError(
            f"{len(missing):,} accepted item(s) have no difficulty (it was measured on other items): run "
            f"`kgsynth difficulty {inputs.run.root}` again"
        )
    if missing:
        inputs.notes.append(f"{len(missing):,} accepted item(s) have no difficulty: it was measured before they were verified.")
    for row in rows:
        row["difficulty"] = by_id.get(row["id"])


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
