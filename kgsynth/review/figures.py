"""What expert reviews say about a dataset: the figures the dataset card shows.

An item counts as rejected by the experts when any reviewer's current decision on
it is "reject" (the rule `kgsynth export --drop-rejected` drops by); skips are not
decisions. The accepted share comes with a Wilson score interval, and agreement
between two reviewers is Cohen's kappa over the items both decided.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

import polars as pl

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Agreement:
    reviewers: tuple[str, str]
    items: int  # decided by both
    observed: float  # share of those with the same decision
    kappa: float | None  # None when chance agreement is 1 (both gave one decision only)


@dataclass
class ReviewFigures:
    reviewers: list[str]
    decisions: int  # accept/reject decisions on items of the dataset
    items_reviewed: int  # dataset items with at least one decision
    items_rejected: int  # of those, rejected by at least one reviewer
    interval: tuple[float, float]  # 95% Wilson interval of the accepted share
    per_reviewer: list[tuple[str, int, int]]  # reviewer, items decided, accepted
    agreement: list[Agreement]
    verifier_rejected: tuple[int, int] = (0, 0)  # verification-rejected items reviewed, of which experts accepted
    samples: list[str] = field(default_factory=list)  # stratified samples the reviews were made through
    skipped: int = 0

    @property
    def accepted_share(self) -> float | None:
        return None if not self.items_reviewed else (self.items_reviewed - self.items_rejected) / self.items_reviewed


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (sensible at 0, 1 and small n)."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the edges, where rounding would miss
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def cohen_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items; None when chance agreement is 1."""
    if len(first) != len(second) or not first:
        raise ValueError("two equally long, non-empty label lists are needed")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    labels = set(first) | set(second)
    chance = sum((first.count(label) / n) * (second.count(label) / n) for label in labels)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


def expert_rejected(reviews: pl.DataFrame) -> set[str]:
    """Items any reviewer currently rejects."""
    return set(reviews.filter(pl.col("decision") == "reject")["item_id"].to_list())


def review_figures(reviews: pl.DataFrame, dataset_ids: Collection[str], verifier_rejected_ids: Collection[str] = ()) -> ReviewFigures:
    """Figures over the items of the dataset (`dataset_ids`); reviews of other items are counted apart."""
    dataset_ids = set(dataset_ids)
    decided = reviews.filter(pl.col("decision") != "skip")
    on_dataset = decided.filter(pl.col("item_id").is_in(list(dataset_ids)))
    items = on_dataset.group_by("item_id").agg((pl.col("decision") == "reject").any().alias("rejected"))
    reviewed, rejected = items.height, int(items["rejected"].sum())
    per_reviewer = [
        (name, n, accepted)
        for name, n, accepted in on_dataset.group_by("reviewer")
        .agg(pl.len().alias("n"), (pl.col("decision") == "accept").sum().alias("accepted"))
        .sort("reviewer")
        .iter_rows()
    ]
    names = [name for name, _, _ in per_reviewer]
    agreement = []
    by_reviewer = {name: dict(zip(*on_dataset.filter(pl.col("reviewer") == name).select("item_id", "decision"), strict=True)) for name in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(by_reviewer[a]) & set(by_reviewer[b]))
            if not shared:
                continue
            first = [by_reviewer[a][x] for x in shared]
            second = [by_reviewer[b][x] for x in shared]
            observed = sum(x == y for x, y in zip(first, second, strict=True)) / len(shared)
            agreement.append(Agreement((a, b), len(shared), observed, cohen_kappa(first, second)))
    verifier = decided.filter(pl.col("item_id").is_in(list(set(verifier_rejected_ids))))
    verifier_items = verifier.group_by("item_id").agg((pl.col("decision") == "reject").any().alias("rejected"))
    return ReviewFigures(
        reviewers=names,
        decisions=on_dataset.height,
        items_reviewed=reviewed,
        items_rejected=rejected,
        interval=wilson_interval(reviewed - rejected, reviewed),
        per_reviewer=per_reviewer,
        agreement=agreement,
        verifier_rejected=(verifier_items.height, int(verifier_items.height - verifier_items["rejected"].sum())),
        samples=sorted(set(reviews["sample"].drop_nulls().to_list())),
        skipped=reviews.filter((pl.col("decision") == "skip") & pl.col("item_id").is_in(list(dataset_ids))).height,
    )
