"""Generic edge lists (CSV, TSV or parquet, with a header) → snapshot.

Default columns: `head_id`, `head_name`, `head_type`, `relation`, `tail_id`,
`tail_name`, `tail_type`; only head_id, relation and tail_id are required. Every
column can be renamed with an option of the same name (`-O head_id=subject`). An
edge goes head → tail unless the vocabulary says otherwise (symmetric relations,
inverse names, domain and range).

A node table (`-O nodes=FILE`, columns `id`, `name`, `type`, `synonyms`, renamed
with `node_id=…` etc.; synonyms separated by `synonym_separator`, default `|`)
describes the nodes; every edge end must then be in it. Without one, nodes come
from the edge ends: the first name seen is the name, later different ones are
synonyms, and the type comes from head_type/tail_type or `default_type` (`entity`).

Node ids are `<namespace>:<id>`; the namespace defaults to the snapshot name
(`edges`), `-O namespace=` (empty) keeps ids as they are. The separator is found
from the extension (.csv, .tsv, .tab) or the header line; `-O separator=;` forces one.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError
from kgsynth.graph.snapshot import Snapshot, SourceInfo, build_snapshot
from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.loaders import LOADERS
from kgsynth.loaders.common import check_options, option_str, read_delimited, require_file, row_line, separator_for

EDGE_COLUMNS = ("head_id", "head_name", "head_type", "relation", "tail_id", "tail_name", "tail_type")
NODE_COLUMNS = {"node_id": "id", "node_name": "name", "node_type": "type", "node_synonyms": "synonyms"}
OPTIONS = (*EDGE_COLUMNS, *NODE_COLUMNS, "nodes", "synonym_separator", "namespace", "default_type", "separator")
_REQUIRED = ("head_id", "relation", "tail_id")


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return path.suffix.lower() == ".parquet" or handle.read(4) == b"PAR1"


def _location(path: Path, row: int, parquet: bool) -> dict:
    """Where a data row is: a line of a text file, or a row number of a parquet file."""
    return {"file": f"{path} (row {row + 1})" if parquet else path, "line": None if parquet else row_line(row)}


def _read(path: Path, mapping: dict[str, str], required: tuple[str, ...], separator: str | None) -> pl.DataFrame:
    """The mapped columns (renamed to their standard names) plus `_row`, the 0-based data row."""
    require_file(path)
    if _is_parquet(path):
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:  # polars raises several kinds on corrupt parquet
            raise InputFormatError(f"cannot read as parquet: {str(exc).splitlines()[0]}", file=path) from None
        missing = [mapping[name] for name in required if mapping[name] not in frame.columns]
        if missing:
            raise InputFormatError(
                f"missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}", file=path, field=missing[0]
            )
        frame = frame.select(
            pl.col(column)
            .cast(pl.List(pl.String) if name == "synonyms" and frame.schema[column] != pl.String else pl.String)
            .alias(name)
            for name, column in mapping.items()
            if column in frame.columns
        )
        for name in required:
            nulls = frame[name].is_null()
            if nulls.any():
                raise InputFormatError(
                    "empty value; every row needs one",
                    **_location(path, int(nulls.arg_max()), True),
                    field=mapping[name],
                )
        if frame.height == 0:
            raise InputFormatError("no rows", file=path)
    else:
        frame = read_delimited(
            path,
            separator=separator or separator_for(path),
            columns={column: pl.String() for column in mapping.values()},
            expected=[mapping[name] for name in required],
            non_empty=[mapping[name] for name in required],
        )
        frame = frame.rename({column: name for name, column in mapping.items() if column in frame.columns})
    return frame.with_row_index("_row")


def _conflicting_types(ends: pl.DataFrame) -> pl.DataFrame:
    """Rows whose type differs from the first type given for the same id."""
    return ends.filter(pl.col("type").is_not_null()).filter(pl.col("type") != pl.col("type").first().over("id"))


def _node_table(path: Path, options: dict, namespace: str, separator: str | None, default_type: str) -> pl.DataFrame:
    mapping = {name: option_str(option, options.get(option, name)) for option, name in NODE_COLUMNS.items()}
    table = _read(path, mapping, ("id",), separator)
    parquet = _is_parquet(path)
    repeated = table.filter(pl.col("id").is_duplicated())
    if repeated.height:
        second = repeated.row(1, named=True)
        raise InputFormatError(
            f"node id {second['id']!r} appears twice; each node needs one row",
            **_location(path, second["_row"], parquet),
            field=mapping["id"],
        )
    sep = option_str("synonym_separator", options.get("synonym_separator", "|"))
    synonyms = pl.col("synonyms") if "synonyms" in table.columns else pl.lit(None, dtype=pl.List(pl.String))
    if "synonyms" in table.columns and table.schema["synonyms"] == pl.String:
        synonyms = (
            pl.col("synonyms")
            .str.split(sep)
            .list.eval(pl.element().str.strip_chars())
            .list.eval(pl.element().filter(pl.element() != ""))
        )
    nodes = table.select(
        _namespaced(pl.col("id"), namespace).alias("id"),
        (pl.col("name") if "name" in table.columns else pl.lit(None, dtype=pl.String)).alias("name"),
        (pl.col("type") if "type" in table.columns else pl.lit(None, dtype=pl.String)).fill_null(default_type),
        pl.lit(path.name).alias("source"),
        pl.col("id").alias("source_id"),
        synonyms.alias("synonyms"),
        pl.col("_row"),
    )
    return nodes


def _namespaced(column: pl.Expr, namespace: str) -> pl.Expr:
    return pl.lit(f"{namespace}:") + column if namespace else column


@LOADERS.register("edges")
def load_edges(
    sources: list[Path],
    *,
    name: str = "edges",
    vocabulary: str | None = None,
    allow_unknown_relations: bool = False,
    **options: object,
) -> Snapshot:
    """Load one or more edge-list files (plus an optional node table) into a snapshot."""
    check_options("edges", options, OPTIONS)
    mapping = {column: option_str(column, options.get(column, column)) for column in EDGE_COLUMNS}
    namespace = option_str("namespace", options.get("namespace", name))
    default_type = option_str("default_type", options.get("default_type", "entity"))
    separator = option_str("separator", options["separator"]) if "separator" in options else None
    if separator is not None and len(separator) != 1:
        raise ConfigError(f"option 'separator' must be one character, got {separator!r}")
    files = [Path(s) for s in sources]
    if not files:
        raise SourceNotFoundError("the edges loader needs at least one edge-list file (.csv, .tsv or .parquet)")
    for path in files:
        if path.is_dir():
            raise SourceNotFoundError(f"{path}: a directory; give the edge-list files themselves")

    frames = []
    for number, path in enumerate(files):
        frame = _read(path, mapping, _REQUIRED, separator)
        frames.append(
            frame.with_columns(
                pl.lit(path.name).alias("_file"),
                pl.lit(number).alias("_file_no"),
                pl.lit(_is_parquet(path)).alias("_parquet"),
            )
        )
    rows = pl.concat(frames, how="diagonal_relaxed")
    for column in ("head_name", "head_type", "tail_name", "tail_type"):
        if column not in rows.columns:
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    ends = pl.concat(
        [
            rows.select(
                _namespaced(pl.col(f"{side}_id"), namespace).alias("id"),
                pl.col(f"{side}_id").alias("source_id"),
                pl.col(f"{side}_name").alias("name"),
                pl.col(f"{side}_type").alias("type"),
                pl.col("_file"),
                pl.col("_file_no"),
                pl.col("_parquet"),
                pl.col("_row"),
                pl.lit(side).alias("_side"),
            )
            for side in ("head", "tail")
        ]
    ).sort("_file_no", "_row", "_side")
    by_name = {p.name: p for p in files}

    def fail(row: dict, message: str, field: str) -> InputFormatError:
        return InputFormatError(message, **_location(by_name[row["_file"]], row["_row"], row["_parquet"]), field=field)

    if "nodes" in options:
        nodes_path = Path(option_str("nodes", options["nodes"]))
        nodes = _node_table(nodes_path, options, namespace, separator, default_type)
        missing = ends.join(nodes.select("id"), on="id", how="anti")
        if missing.height:
            row = missing.row(0, named=True)
            raise fail(
                row,
                f"{row['_side']} {row['source_id']!r} is not in the node table {nodes_path.name}; "
                f"{missing['id'].n_unique()} id(s) missing. Add them to the node table",
                mapping[f"{row['_side']}_id"],
            )
        clash = ends.join(nodes.select("id", pl.col("type").alias("_table_type")), on="id").filter(
            pl.col("type").is_not_null() & (pl.col("type") != pl.col("_table_type"))
        )
        if clash.height:
            row = clash.row(0, named=True)
            raise fail(
                row,
                f"{row['source_id']!r} has type {row['type']!r} here but {row['_table_type']!r} in the node table",
                mapping[f"{row['_side']}_type"],
            )
        nodes = nodes.drop("_row")
        sources_used = [*files, nodes_path]
    else:
        clash = _conflicting_types(ends)
        if clash.height:
            row = clash.row(0, named=True)
            first = ends.filter((pl.col("id") == row["id"]) & pl.col("type").is_not_null()).row(0, named=True)
            raise fail(
                row,
                f"{row['source_id']!r} has type {row['type']!r} here but {first['type']!r} on "
                f"{'row ' + str(first['_row'] + 1) if first['_parquet'] else 'line ' + str(row_line(first['_row']))} "
                f"of {first['_file']}; each id must have one type",
                mapping[f"{row['_side']}_type"],
            )
        nodes = (
            ends.group_by("id", maintain_order=True)
            .agg(
                pl.col("name").drop_nulls().first(),
                pl.col("type").drop_nulls().first().fill_null(default_type),
                pl.col("_file").first().alias("source"),
                pl.col("source_id").first(),
                pl.col("name").drop_nulls().unique(maintain_order=True).alias("synonyms"),
            )
            .with_columns(pl.col("synonyms").list.set_difference(pl.concat_list(pl.col("name").fill_null(""))))
        )
        sources_used = files

    edges = rows.select(
        _namespaced(pl.col("head_id"), namespace).alias("src"),
        _namespaced(pl.col("tail_id"), namespace).alias("dst"),
        pl.col("relation"),
        pl.col("_file").alias("source"),
    )
    return build_snapshot(
        nodes,
        edges,
        vocabulary=load_vocabulary(vocabulary or "generic"),
        name=name,
        loader="edges",
        options=dict(options),
        sources=sources_used,
        source_info=SourceInfo(name=", ".join(p.name for p in sources_used)),
        allow_unknown_relations=allow_unknown_relations,
        where=str(files[0]) if len(files) == 1 else ", ".join(map(str, files)),
    )
