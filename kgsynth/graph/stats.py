"""Degree figures of a snapshot, shared by `kgsynth info` and reports."""

from __future__ import annotations

import polars as pl

from kgsynth.graph.snapshot import Snapshot


def degrees(snapshot: Snapshot) -> pl.DataFrame:
    """id, name, type, degree (both directions) for every node."""
    ends = pl.concat([snapshot.edges.select(pl.col("src").alias("id")), snapshot.edges.select(pl.col("dst").alias("id"))])
    counted = ends.group_by("id").len("degree")
    return (
        snapshot.nodes.select("id", "name", "type")
        .join(counted, on="id", how="left")
        .with_columns(pl.col("degree").fill_null(0).cast(pl.Int64))
    )


def degree_table(snapshot: Snapshot, top: int = 20) -> tuple[dict[str, float | int], pl.DataFrame]:
    table = degrees(snapshot)
    d = table["degree"]
    summary: dict[str, float | int] = {
        "mean": float(d.mean() or 0.0),
        "median": float(d.median() or 0.0),
        "p99": float(d.quantile(0.99) or 0.0),
        "max": int(d.max() or 0),
        "isolated": int((d == 0).sum()),
    }
    return summary, table.sort(["degree", "id"], descending=[True, False]).head(top)
