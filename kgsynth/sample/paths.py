"""The paths table: what samplers write and generation reads (`paths.parquet`).

One row per path. `nodes` has the anchor first and the answer last; `relations`
and `forward` have one entry per hop (`forward[i]` is True when hop i walks the
stored edge nodes[i] → nodes[i+1], False when it walks it backwards).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kgsynth.errors import InputFormatError, SourceNotFoundError

PATHS_SCHEMA: dict[str, pl.DataType] = {
    "path_id": pl.String(),
    "nodes": pl.List(pl.String()),
    "relations": pl.List(pl.String()),
    "forward": pl.List(pl.Boolean()),
    "hops": pl.Int32(),
    "pattern": pl.String(),  # e.g. "disease -has_phenotype-> phenotype <-is_a- phenotype"
    "strategy": pl.String(),
    "seed": pl.Int64(),
    "negatives": pl.List(pl.String()),  # hard negatives for the answer (node ids)
    "group_id": pl.String(),  # convergent paths meeting at one answer share it; else null
    "snapshot": pl.String(),  # hash of the snapshot sampled from
    # the pattern from the anchor reaches the answer only (in the full graph); null: not judged
    "unique_answer": pl.Boolean(),
}


def conform_paths(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast to the paths schema, adding absent optional columns as nulls."""
    required = ("path_id", "nodes", "relations", "forward", "strategy", "seed", "snapshot")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputFormatError(f"paths table lacks column(s) {missing}")
    columns = []
    for column, dtype in PATHS_SCHEMA.items():
        if column in frame.columns:
            columns.append(pl.col(column).cast(dtype))
        elif column == "hops":
            columns.append(pl.col("relations").list.len().cast(dtype).alias("hops"))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(column))
    return frame.select(columns)


def write_paths(frame: pl.DataFrame, out: str | Path) -> Path:
    """Write atomically (temp file, then rename).

    pyarrow's writer, with its dictionary encoding of the repeated ids, is several
    times faster than polars' here for list-of-string columns.
    """
    import pyarrow.parquet as pq

    from kgsynth.atomic import replace_file

    table = conform_paths(frame).to_arrow()
    return replace_file(Path(out), lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_paths(path: str | Path) -> pl.DataFrame:
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such paths file (make one with `kgsynth sample`)")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        raise InputFormatError(f"cannot read as parquet: {exc}", file=path) from exc
    try:
        return conform_paths(frame)
    except InputFormatError as exc:
        raise InputFormatError(str(exc), file=path) from None
