"""The snapshot: the one on-disk graph format every stage reads.

A snapshot is a directory:

- `nodes.parquet`  id, name, type, source, source_id, synonyms (list of str)
- `edges.parquet`  src, dst, relation, source; each relationship once, in its
  canonical direction (domain → range; symmetric relations with src < dst)
- `vocabulary.ttl` the relations and node types the snapshot uses (RDF)
- `manifest.json`  format version, counts, source files with sha256, loader and
  options, source licence/attribution, and a content hash of nodes and edges

The content hash covers only nodes and edges (sorted, canonical), so the same
graph reached by different routes (a loader, a Neo4j round trip) has the same hash.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, Field, ValidationError

from kgsynth.atomic import replace_directory
from kgsynth.errors import InputFormatError, SnapshotError, SourceNotFoundError
from kgsynth.graph.vocabulary import Vocabulary, parse_vocabulary_text

FORMAT_VERSION = 1

NODE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "name": pl.String(),
    "type": pl.String(),
    "source": pl.String(),
    "source_id": pl.String(),
    "synonyms": pl.List(pl.String()),
}
EDGE_SCHEMA: dict[str, pl.DataType] = {
    "src": pl.String(),
    "dst": pl.String(),
    "relation": pl.String(),
    "source": pl.String(),
}
FILES = ("nodes.parquet", "edges.parquet", "vocabulary.ttl", "manifest.json")


class SourceFile(BaseModel):
    path: str
    sha256: str
    bytes: int


class SourceInfo(BaseModel):
    """What a dataset card needs to credit the source graph."""

    name: str
    version: str | None = None
    license: str | None = None  # an SPDX id or a licence URL
    attribution: str | None = None
    url: str | None = None


class Counts(BaseModel):
    nodes: int
    edges: int
    node_types: dict[str, int]
    relations: dict[str, int]


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    name: str
    hash: str
    loader: str
    options: dict[str, Any] = Field(default_factory=dict)
    sources: list[SourceFile] = Field(default_factory=list)
    source_info: SourceInfo | None = None
    vocabulary: str
    counts: Counts
    dropped: dict[str, int] = Field(default_factory=dict)  # rows skipped on purpose, by reason
    parent: dict[str, Any] | None = None  # for derived snapshots (pruning): parent hash, parameters
    created: str = ""


@dataclass
class Snapshot:
    """A graph snapshot. Tables are read lazily when opened from disk."""

    manifest: Manifest
    vocabulary: Vocabulary
    path: Path | None = None
    _nodes: pl.DataFrame | None = field(default=None, repr=False)
    _edges: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def hash(self) -> str:
        return self.manifest.hash

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def nodes(self) -> pl.DataFrame:
        if self._nodes is None:
            self._nodes = _read_table(self._require_path() / "nodes.parquet", NODE_SCHEMA)
        return self._nodes

    @property
    def edges(self) -> pl.DataFrame:
        if self._edges is None:
            self._edges = _read_table(self._require_path() / "edges.parquet", EDGE_SCHEMA)
        return self._edges

    def _require_path(self) -> Path:
        if self.path is None:
            raise SnapshotError("snapshot has no tables and no directory to read them from")
        return self.path


# --- building ------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 22) -> SourceFile:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            size += len(block)
    return SourceFile(path=str(path), sha256=digest.hexdigest(), bytes=size)


def build_snapshot(
    nodes: pl.DataFrame,
    edges: pl.DataFrame,
    *,
    vocabulary: Vocabulary,
    name: str,
    loader: str,
    options: dict[str, Any] | None = None,
    sources: Iterable[Path] | Iterable[SourceFile] = (),
    source_info: SourceInfo | None = None,
    dropped: dict[str, int] | None = None,
    allow_unknown_relations: bool = False,
    parent: dict[str, Any] | None = None,
    where: str = "",
    repeats: str = "edge rows repeating a relationship already kept",
) -> Snapshot:
    """Validate and canonicalize loader output into a snapshot (in memory).

    `edges.src` and `edges.dst` hold node ids, or, when their dtype is an integer,
    row positions in `nodes` (large loaders already know them and skip a string
    lookup per edge). A relation named by a vocabulary relation's `inverse_name`
    (`inverse_isa`, `may_be_treated_by`) is stored as that relation, reversed.

    Each relationship is kept once; the rows repeating one are counted in
    `manifest.dropped` under `repeats`. Raises `InputFormatError` for ids with two
    types, for edges whose endpoints are not nodes and for edges whose node types fit
    their relation's domain and range in neither direction, and
    `UnknownRelationError` for relations the vocabulary lacks (unless
    `allow_unknown_relations`, which adds generic wording).
    """
    by_position = "src" in edges.columns and edges.schema["src"].is_integer()
    nodes = _conform(nodes, NODE_SCHEMA, "nodes", where)
    edges = _conform(edges, EDGE_SCHEMA, "edges", where, keep_dtype=("src", "dst") if by_position else ())
    nodes = nodes.with_columns(
        pl.col("name").fill_null(pl.col("source_id")).fill_null(pl.col("id")),
        pl.col("source_id").fill_null(pl.col("id")),
        pl.col("synonyms").fill_null(pl.lit([], dtype=pl.List(pl.String()))).list.unique().list.sort(),
    )
    if nodes["id"].null_count() or nodes["type"].null_count():
        raise InputFormatError("nodes must all have an id and a type", file=where or None, field="id/type")
    if edges["src"].null_count() or edges["dst"].null_count() or edges["relation"].null_count():
        raise InputFormatError("edges must all have src, dst and relation", file=where or None)

    conflicting = nodes.group_by("id").agg(pl.col("type").unique().sort()).filter(pl.col("type").list.len() > 1)
    if conflicting.height:
        row = conflicting.sort("id").row(0, named=True)
        raise InputFormatError(
            f"node id '{row['id']}' has two types ({', '.join(row['type'])}); "
            f"{conflicting.height} id(s) conflict in all. Each id must have exactly one type",
            file=where or None,
            field="type",
        )
    # A stable sort keeps the first of repeated rows for an id, as the loader listed them.
    ordered = nodes.with_row_index("_row").sort("id", maintain_order=True)
    first = ordered["id"].ne_missing(ordered["id"].shift(1)).fill_null(True)
    nodes = ordered.filter(first).drop("_row")
    if by_position:
        position = np.empty(len(ordered), dtype=np.int64)
        position[ordered["_row"].to_numpy()] = first.cast(pl.Int64).cum_sum().to_numpy() - 1
        src, dst = (_positions_from_rows(edges[c], position, edges, where) for c in ("src", "dst"))
    else:
        src, dst = (_positions_from_ids(edges[c], nodes["id"], edges, where) for c in ("src", "dst"))

    given = edges.height
    edges, relation_counts, vocabulary = _canonical_edges(
        src, dst, edges, nodes, vocabulary, allow_unknown_relations=allow_unknown_relations, where=where
    )
    type_counts = nodes["type"].value_counts().sort("type")
    counts = Counts(
        nodes=nodes.height,
        edges=edges.height,
        node_types=dict(zip(type_counts["type"].to_list(), type_counts["count"].to_list(), strict=True)),
        relations=relation_counts,
    )
    source_files = [s if isinstance(s, SourceFile) else sha256_file(Path(s)) for s in sources]
    manifest = Manifest(
        name=name,
        hash=_digest(nodes, edges),
        loader=loader,
        options=options or {},
        sources=source_files,
        source_info=source_info,
        vocabulary=vocabulary.name,
        counts=counts,
        dropped={k: v for k, v in {**(dropped or {}), repeats: given - edges.height}.items() if v},
        parent=parent,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return Snapshot(manifest=manifest, vocabulary=vocabulary, _nodes=nodes, _edges=edges)


def _conform(
    frame: pl.DataFrame, schema: dict[str, pl.DataType], what: str, where: str, keep_dtype: tuple[str, ...] = ()
) -> pl.DataFrame:
    """The schema's columns in order; `keep_dtype` columns and categorical edge columns are not cast."""
    missing = [c for c in ("id", "type") if what == "nodes" and c not in frame.columns]
    missing += [c for c in ("src", "dst", "relation") if what == "edges" and c not in frame.columns]
    if missing:
        raise InputFormatError(f"{what} table lacks column(s) {missing}", file=where or None)
    columns = []
    for column, dtype in schema.items():
        if column not in frame.columns:
            columns.append(pl.lit(None, dtype=dtype).alias(column))
        elif column in keep_dtype or (what == "edges" and isinstance(frame.schema[column], pl.Categorical | pl.Enum)):
            columns.append(pl.col(column))
        else:
            columns.append(pl.col(column).cast(dtype))
    return frame.select(columns)


def _codes(column: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes into the sorted distinct values of a string or categorical column; null sorts last."""
    if isinstance(column.dtype, pl.Categorical | pl.Enum):
        physical = column.to_physical()
        first = physical.arg_unique()
        present = physical.gather(first)
        names_present = column.gather(first).cast(pl.String).to_list()
        names = sorted(n for n in names_present if n is not None)
        lookup = np.zeros(int(present.max() or 0) + 1, dtype=np.int32)
        at = {n: i for i, n in enumerate(names)}
        for phys, n in zip(present.to_list(), names_present, strict=True):
            if phys is not None:
                lookup[phys] = at[n]
        if not column.null_count():
            return lookup[physical.to_numpy()], names
        return np.where(physical.is_null().to_numpy(), len(names), lookup[physical.fill_null(0).to_numpy()]), names
    names = column.drop_nulls().unique().sort().to_list()
    return column.cast(pl.Enum(names)).to_physical().cast(pl.Int32).fill_null(len(names)).to_numpy(), names


def _dangling(edges: pl.DataFrame, bad: np.ndarray, column: str, shown: str, where: str) -> InputFormatError:
    row = edges.row(int(np.flatnonzero(bad)[0]), named=True)
    return InputFormatError(
        f"edge ({row['src']}, {row['relation']}, {row['dst']}) points at {shown}, which is not a node; "
        f"{int(bad.sum())} edge(s) dangle in all. Add the nodes or drop those edges",
        file=where or None,
        field=column,
    )


def _positions_from_ids(ends: pl.Series, ids: pl.Series, edges: pl.DataFrame, where: str) -> np.ndarray:
    """Node positions (in sorted id order) of edge endpoints given as ids."""
    position = ends.cast(pl.Enum(ids.to_list()), strict=False).to_physical()
    bad = position.is_null().to_numpy()
    if bad.any():
        missing = ends.filter(pl.Series(bad))[0]
        raise _dangling(edges, bad, ends.name, f"'{missing}'", where)
    return position.cast(pl.Int64).to_numpy()


def _positions_from_rows(ends: pl.Series, position: np.ndarray, edges: pl.DataFrame, where: str) -> np.ndarray:
    """Node positions (in sorted id order) of edge endpoints given as rows of the loader's node table."""
    rows = ends.to_numpy()
    bad = (rows < 0) | (rows >= len(position))
    if bad.any():
        raise _dangling(edges, bad, ends.name, f"node row {rows[bad][0]} of {len(position)}", where)
    if (position == np.arange(len(position))).all():  # the loader listed each node once, sorted by id
        return rows
    return position[rows]


def _canonical_edges(
    src: np.ndarray,
    dst: np.ndarray,
    edges: pl.DataFrame,
    nodes: pl.DataFrame,
    vocabulary: Vocabulary,
    *,
    allow_unknown_relations: bool,
    where: str,
) -> tuple[pl.DataFrame, dict[str, int], Vocabulary]:
    """Edges as ids, each relationship once in its canonical direction, sorted; counts; the vocabulary used."""
    given_code, given_names = _codes(edges["relation"])
    canonical = vocabulary.canonical_names()
    stored = [canonical.get(r, (r, False)) for r in given_names]
    relations = sorted({r for r, _ in stored})
    vocabulary = vocabulary.check_relations(relations, allow_unknown=allow_unknown_relations, where=where)
    node_type, type_names = _codes(nodes["type"])
    vocabulary = vocabulary.check_node_types(type_names)

    # A relation given by its inverse name is reversed first.
    code = np.array([relations.index(r) for r, _ in stored], dtype=np.int32)[given_code]
    if any(f for _, f in stored):
        flip = np.array([f for _, f in stored], dtype=bool)[given_code]
        src, dst = np.where(flip, dst, src), np.where(flip, src, dst)
    swap = _swap(src, dst, code, relations, node_type, type_names, vocabulary, nodes, where)
    src, dst = np.where(swap, dst, src), np.where(swap, src, dst)

    order = _unique_triples(
        src, code, dst, _codes(edges["source"])[0], n_nodes=nodes.height, n_relations=len(relations)
    )
    ids = nodes["id"]
    kept_code = code[order]
    relation_counts = np.bincount(kept_code, minlength=len(relations))
    frame = pl.DataFrame(
        {
            "src": ids.gather(src[order]),
            "dst": ids.gather(dst[order]),
            "relation": pl.Series(relations, dtype=pl.String).gather(kept_code),
            "source": edges["source"].gather(order).cast(pl.String),
        }
    )
    counts = {r: int(n) for r, n in zip(relations, relation_counts, strict=True) if n}
    return frame, counts, vocabulary.subset(list(counts), type_names)


def _swap(
    src: np.ndarray,
    dst: np.ndarray,
    code: np.ndarray,
    relations: list[str],
    node_type: np.ndarray,
    type_names: list[str],
    vocabulary: Vocabulary,
    nodes: pl.DataFrame,
    where: str,
) -> np.ndarray:
    """Which edges to reverse: symmetric relations go src < dst, others domain → range.

    An edge whose endpoint types fit the relation's domain and range in neither
    direction is an error; a relation without a domain (or range) accepts any type there.
    """
    n_types = len(type_names)
    type_index = {t: i for i, t in enumerate(type_names)}
    # action[relation, src type, dst type]: 0 keep, 1 reverse, 2 misfit, 3 symmetric (order by id)
    action = np.zeros((len(relations), n_types, n_types), dtype=np.int8)
    for i, name in enumerate(relations):
        rel = vocabulary.relations[name]
        domain = np.zeros(n_types, dtype=bool)
        range_ = np.zeros(n_types, dtype=bool)
        domain[[type_index[t] for t in rel.domain if t in type_index] if rel.domain else slice(None)] = True
        range_[[type_index[t] for t in rel.range if t in type_index] if rel.range else slice(None)] = True
        forward_ok = np.outer(domain, range_)
        backward_ok = forward_ok.T
        action[i] = np.where(forward_ok, 0, np.where(backward_ok, 1, 2))
        if rel.symmetric:
            action[i][forward_ok | backward_ok] = 3
    src_type, dst_type = node_type[src], node_type[dst]
    chosen = action.reshape(-1)[(code * n_types + src_type) * n_types + dst_type]
    misfit = chosen == 2
    if misfit.any():
        at = int(np.flatnonzero(misfit)[0])
        rel = vocabulary.relations[relations[code[at]]]
        ids = nodes["id"]
        raise InputFormatError(
            f"edge ({ids[int(src[at])]}, {rel.name}, {ids[int(dst[at])]}) joins a {type_names[src_type[at]]} "
            f"and a {type_names[dst_type[at]]}, but '{rel.name}' goes from {' or '.join(rel.domain) or 'any type'} "
            f"to {' or '.join(rel.range) or 'any type'}; {int(misfit.sum())} edge(s) do not fit. Fix the node "
            "types or pass a vocabulary (--vocabulary FILE.ttl) whose domain and range allow them",
            file=where or None,
            field="relation",
        )
    return (chosen == 1) | ((chosen == 3) & (src > dst))


def _unique_triples(
    src: np.ndarray, code: np.ndarray, dst: np.ndarray, source: np.ndarray, *, n_nodes: int, n_relations: int
) -> np.ndarray:
    """Row numbers of one edge per (src, relation, dst), sorted by that triple.

    Codes follow the sorted ids, relation names and sources, so this is the
    (src, relation, dst) string order. Of repeated triples the row with the
    smallest source wins, so the result does not depend on row order.
    """
    source_bits = max(int(source.max(initial=0)), 1).bit_length()
    if n_nodes * n_nodes * max(n_relations, 1) < 2 ** (63 - source_bits):
        # One int64 per row: (src, relation, dst, source) packed in sort order.
        key = (((src.astype(np.int64) * n_relations + code) * n_nodes + dst) << source_bits) | source
        ranked = pl.DataFrame({"key": key}).with_row_index("row").sort("key")
        triple = ranked["key"].to_numpy() >> source_bits
        new = np.empty(len(triple), dtype=bool)
        new[:1] = True
        np.not_equal(triple[1:], triple[:-1], out=new[1:])
    else:
        ranked = pl.DataFrame({"s": src, "r": code, "d": dst, "source": source}).with_row_index("row")
        ranked = ranked.sort(["s", "r", "d", "source"])
        s, r, d = (ranked[c].to_numpy() for c in ("s", "r", "d"))
        new = np.ones(len(s), dtype=bool)
        new[1:] = (s[1:] != s[:-1]) | (r[1:] != r[:-1]) | (d[1:] != d[:-1])
    order = ranked["row"].to_numpy()
    return order if new.all() else order[new]


def content_hash(nodes: pl.DataFrame, edges: pl.DataFrame) -> str:
    """sha256 over the canonical (sorted) node and edge columns, independent of file layout."""
    return _digest(nodes.sort("id"), edges.sort(["src", "relation", "dst"]))


def _digest(nodes: pl.DataFrame, edges: pl.DataFrame) -> str:
    """sha256 of nodes sorted by id and edges sorted by (src, relation, dst)."""
    import pyarrow as pa

    digest = hashlib.sha256(f"kgsynth-snapshot-v{FORMAT_VERSION}".encode())

    def feed_strings(array: pa.Array) -> None:
        array = array.cast(pa.large_string())
        filled = array.fill_null("\x00") if array.null_count else array  # nulls hash unlike empty strings
        _, offsets_buf, data_buf = filled.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64)[filled.offset : filled.offset + len(filled) + 1]
        start, stop = int(offsets[0]), int(offsets[-1])
        digest.update((offsets - start).tobytes())
        if data_buf is not None:
            digest.update(memoryview(data_buf)[start:stop])

    for frame, columns in ((nodes, list(NODE_SCHEMA)), (edges, list(EDGE_SCHEMA))):
        digest.update(f"{frame.height}".encode())
        for column in columns:
            digest.update(column.encode())
            array = frame[column].to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string, no view cast
            if isinstance(array, pa.ChunkedArray):
                array = array.combine_chunks()
            if column == "synonyms":
                lengths = frame[column].list.len().fill_null(0).to_numpy().astype(np.int64)
                digest.update(lengths.tobytes())
                feed_strings(frame[column].explode().drop_nulls().to_arrow(compat_level=pl.CompatLevel.oldest()))
            else:
                feed_strings(array)
    return digest.hexdigest()


# --- reading and writing -------------------------------------------------------------


def write_snapshot(snapshot: Snapshot, out: str | Path) -> Path:
    """Write atomically: a temp directory beside `out`, then a rename.

    An existing snapshot at `out` is replaced only once the new one is complete; a
    directory that is not a snapshot is never overwritten.
    """
    out = Path(out)
    with replace_directory(out, marker="manifest.json", what="snapshot") as tmp:
        write_snapshot_files(snapshot, tmp)
    snapshot.path = out
    return out


def write_snapshot_files(snapshot: Snapshot, folder: Path) -> None:
    """The snapshot's files into an existing directory; callers make it atomic (`replace_directory`)."""
    snapshot.nodes.write_parquet(folder / "nodes.parquet", compression="zstd")
    snapshot.edges.write_parquet(folder / "edges.parquet", compression="zstd")
    snapshot.vocabulary.write(folder / "vocabulary.ttl")
    (folder / "manifest.json").write_text(snapshot.manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_snapshot(path: str | Path) -> Snapshot:
    """Open a snapshot directory; tables load on first use."""
    path = Path(path)
    if not path.is_dir():
        raise SourceNotFoundError(f"{path}: no such snapshot directory (make one with `kgsynth load`)")
    missing = [f for f in FILES if not (path / f).exists()]
    if missing:
        raise SnapshotError(f"{path}: not a complete snapshot, missing {', '.join(missing)}")
    try:
        manifest = Manifest.model_validate_json((path / "manifest.json").read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path / 'manifest.json'}: invalid manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise SnapshotError(
            f"{path}: snapshot format {manifest.format_version}, this kgsynth reads {FORMAT_VERSION}; "
            "re-run `kgsynth load`"
        )
    vocabulary = parse_vocabulary_text((path / "vocabulary.ttl").read_text(encoding="utf-8"), manifest.vocabulary)
    return Snapshot(manifest=manifest, vocabulary=vocabulary, path=path)


def verify_hash(snapshot: Snapshot) -> None:
    actual = content_hash(snapshot.nodes, snapshot.edges)
    if actual != snapshot.hash:
        raise SnapshotError(
            f"{snapshot.path}: content hash {actual[:12]} differs from the manifest's {snapshot.hash[:12]}; "
            "the files were changed after loading"
        )


def _read_table(path: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises ComputeError/OSError variants on corrupt files
        raise SnapshotError(f"{path}: cannot read parquet: {exc}") from exc
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise SnapshotError(f"{path}: missing column(s) {missing}")
    return frame


def manifest_json(snapshot: Snapshot) -> dict[str, Any]:
    return json.loads(snapshot.manifest.model_dump_json())
