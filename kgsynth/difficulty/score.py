"""Features and model answers → one difficulty per item: a score, a level and a rank.

`feature_score` (0 easy … 1 hard) is the weighted mean of four parts, each in
[0, 1]: `steps` (min(steps − 1, 5) / 5: more triples to chain), `rarity` (rarer
entities), `distractors` (distractor hardness: close to the answer, sharing its
neighbours; left out for items without options) and `shortcut` (0 when the full
graph joins anchor and answer more directly than the item, else 1). Weights are
the run configuration's `difficulty.weights`.

`accuracy` is the share of answering models that chose the right option (null
when no model answered the item). `score` is the empirical difficulty,
1 − accuracy, where models answered, else the feature score (`source` says which).
Items are ranked by (score, feature score, id): the curriculum order, ties broken
by the feature score and then the item id. `level` cuts that ranking into thirds:
easy, medium, hard.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

LEVELS = ("easy", "medium", "hard")


def feature_parts(features: pl.DataFrame) -> pl.DataFrame:
    """The four parts of the feature score, each in [0, 1] (distractors null without options)."""
    return features.select(
        "id",
        ((pl.min_horizontal(pl.col("steps") - 1, 5)) / 5).cast(pl.Float64).alias("steps"),
        pl.col("rarity").clip(0, 1).alias("rarity"),
        pl.col("distractor_hardness").alias("distractors"),
        pl.when(pl.col("shortcut")).then(0.0).otherwise(1.0).alias("shortcut"),
    )


def feature_score(features: pl.DataFrame, weights: Mapping[str, float]) -> pl.Series:
    """Weighted mean of the parts that are known, per item."""
    parts = feature_parts(features)
    names = [n for n, w in weights.items() if w > 0]
    total = pl.sum_horizontal([pl.col(n).is_not_null().cast(pl.Float64) * weights[n] for n in names])
    weighted = pl.sum_horizontal([pl.col(n).fill_null(0.0) * weights[n] for n in names])
    return parts.select((weighted / total).alias("feature_score"))["feature_score"]


def accuracy(answers: pl.DataFrame) -> pl.DataFrame:
    """Per item: `accuracy` (share of models right) and `models` (how many answered)."""
    return answers.group_by("id").agg(
        pl.col("correct").cast(pl.Float64).mean().alias("accuracy"), pl.len().cast(pl.Int32).alias("models")
    )


def score_items(features: pl.DataFrame, answers: pl.DataFrame, weights: Mapping[str, float]) -> pl.DataFrame:
    """Features plus feature_score, accuracy, models, score, source, rank (0 = easiest) and level."""
    scored = features.with_columns(feature_score(features, weights))
    scored = scored.join(accuracy(answers), on="id", how="left").with_columns(pl.col("models").fill_null(0))
    scored = scored.with_columns(
        pl.when(pl.col("accuracy").is_not_null()).then(1 - pl.col("accuracy")).otherwise(pl.col("feature_score")).alias("score"),
        pl.when(pl.col("accuracy").is_not_null()).then(pl.lit("models")).otherwise(pl.lit("features")).alias("source"),
    )
    n = scored.height
    ranked = scored.sort(["score", "feature_score", "id"]).with_row_index("rank")
    level = (pl.col("rank") * len(LEVELS) // max(n, 1)).cast(pl.Int32)
    return ranked.with_columns(
        pl.col("rank").cast(pl.Int64), level.replace_strict(list(range(len(LEVELS))), list(LEVELS)).alias("level")
    )
