"""The paths table: what samplers write and generation reads (`paths.parquet`).

One row per path. `nodes` has the anchor first and the answer last; `relations`
and `forward` have one entry per hop (`forward[i]` is True when hop i walks the
stored edge nodes[i] → nodes[i+1], False when it walks it backwards).
"""

from __future__ import annotations

import os
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


ROW_GROUP_ROWS = 1 << 17  # rows per parquet row group: fixed, so a file's bytes never depend on how it was cut


def empty_paths() -> pl.DataFrame:
    return pl.DataFrame(schema=PATHS_SCHEMA)


class PathsWriter:
    """A paths file written row group by row group into a temp file beside it, renamed into
    place on close (removed on error): memory stays at one row group whatever the file's size.

    pyarrow's writer, with its dictionary encoding of the repeated ids, is several
    times faster than polars' here for list-of-string columns. Rows reach it as
    polars' own string views (no copy: converting them to plain arrow strings cost
    as much as writing them); the file stores plain parquet strings (no arrow
    schema), which every reader takes.
    """

    def __init__(self, out: str | Path) -> None:
        import pyarrow.parquet as pq

        from kgsynth.atomic import beside

        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = beside(self.out, "tmp")
        self.schema = _arrow(empty_paths()).schema
        self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd", store_schema=False)
        self._pending: list = []
        self._pending_rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        """Append rows (already in the paths schema)."""
        table = _arrow(frame)
        self._pending.append(table if table.schema == self.schema else table.cast(self.schema))
        self._pending_rows += frame.height
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        import pyarrow as pa

        table = pa.concat_tables(self._pending)
        whole = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP_ROWS
        if whole:
            self._writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
        rest = table.slice(whole)
        self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> Path:
        if self._pending:
            self._flush(final=True)
        self._writer.close()
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> PathsWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _arrow(frame: pl.DataFrame):  # -> pyarrow.Table
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


def write_paths(frame: pl.DataFrame, out: str | Path) -> Path:
    """Write a paths table atomically, in the same row groups as a streamed sample."""
    with PathsWriter(out) as writer:
        writer.write(conform_paths(frame))
    return Path(out)


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
