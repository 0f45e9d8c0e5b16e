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
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field, ValidationError

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
) -> Snapshot:
    """Validate and canonicalize loader output into a snapshot (in memory).

    Raises `InputFormatError` for ids with two types and for edges whose endpoints
    are not nodes, and `UnknownRelationError` for relations the vocabulary lacks
    (unless `allow_unknown_relations`, which adds generic wording).
    """
    nodes = _conform(nodes, NODE_SCHEMA, "nodes", where)
    edges = _conform(edges, EDGE_SCHEMA, "edges", where)
    nodes = nodes.with_columns(
        pl.col("name").fill_null(pl.col("source_id")).fill_null(pl.col("id")),
        pl.col("source_id").fill_null(pl.col("id")),
        pl.col("synonyms").fill_null(pl.lit([], dtype=pl.List(pl.String()))).list.unique().list.sort(),
    )
    if nodes["id"].null_count() or nodes["type"].null_count():
        raise InputFormatError("nodes must all have an id and a type", file=where or None, field="id/type")
    if edges["src"].null_count() or edges["dst"].null_count() or edges["relation"].null_count():
        raise InputFormatError("edges must all have src, dst and relation", file=where or None)

    conflicting = (
        nodes.group_by("id").agg(pl.col("type").unique().sort()).filter(pl.col("type").list.len() > 1)
    )
    if conflicting.height:
        row = conflicting.sort("id").row(0, named=True)
        raise InputFormatError(
            f"node id '{row['id']}' has two types ({', '.join(row['type'])}); "
            f"{conflicting.height} id(s) conflict in all. Each id must have exactly one type",
            file=where or None,
            field="type",
        )
    nodes = nodes.sort("id").unique("id", keep="first", maintain_order=True)

    vocabulary = vocabulary.check_relations(
        edges["relation"].unique().to_list(), allow_unknown=allow_unknown_relations, where=where
    ).check_node_types(nodes["type"].unique().to_list())

    edges = _orient(edges, nodes.select("id", "type"), vocabulary, where)
    edges = edges.unique(["src", "relation", "dst"], keep="first").sort(["src", "relation", "dst"])

    vocabulary = vocabulary.subset(edges["relation"].unique().to_list(), nodes["type"].unique().to_list())
    source_files = [s if isinstance(s, SourceFile) else sha256_file(Path(s)) for s in sources]
    manifest = Manifest(
        name=name,
        hash=content_hash(nodes, edges),
        loader=loader,
        options=options or {},
        sources=source_files,
        source_info=source_info,
        vocabulary=vocabulary.name,
        counts=_counts(nodes, edges),
        dropped={k: v for k, v in (dropped or {}).items() if v},
        parent=parent,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return Snapshot(manifest=manifest, vocabulary=vocabulary, _nodes=nodes, _edges=edges)


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType], what: str, where: str) -> pl.DataFrame:
    missing = [c for c in ("id", "type") if what == "nodes" and c not in frame.columns]
    missing += [c for c in ("src", "dst", "relation") if what == "edges" and c not in frame.columns]
    if missing:
        raise InputFormatError(f"{what} table lacks column(s) {missing}", file=where or None)
    columns = []
    for column, dtype in schema.items():
        if column in frame.columns:
            columns.append(pl.col(column).cast(dtype))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(column))
    return frame.select(columns)


def _orient(edges: pl.DataFrame, node_types: pl.DataFrame, vocabulary: Vocabulary, where: str) -> pl.DataFrame:
    """Check endpoints exist, then put each edge in its relation's canonical direction."""
    typed = edges.join(
        node_types.rename({"id": "src", "type": "src_type"}), on="src", how="left"
    ).join(node_types.rename({"id": "dst", "type": "dst_type"}), on="dst", how="left")
    dangling = typed.filter(pl.col("src_type").is_null() | pl.col("dst_type").is_null())
    if dangling.height:
        row = dangling.row(0, named=True)
        missing = row["src"] if row["src_type"] is None else row["dst"]
        raise InputFormatError(
            f"edge ({row['src']}, {row['relation']}, {row['dst']}) points at '{missing}', which is "
            f"not a node; {dangling.height} edge(s) dangle in all. Add the nodes or drop those edges",
            file=where or None,
            field="src" if row["src_type"] is None else "dst",
        )
    rules = pl.DataFrame(
        {
            "relation": list(vocabulary.relations),
            "symmetric": [r.symmetric for r in vocabulary.relations.values()],
            "domain": [list(r.domain) for r in vocabulary.relations.values()],
            "range": [list(r.range) for r in vocabulary.relations.values()],
        },
        schema={"relation": pl.String, "symmetric": pl.Boolean, "domain": pl.List(pl.String), "range": pl.List(pl.String)},
    )
    typed = typed.join(rules, on="relation", how="left")
    forward_ok = pl.col("domain").list.contains(pl.col("src_type")) & pl.col("range").list.contains(pl.col("dst_type"))
    backward_ok = pl.col("domain").list.contains(pl.col("dst_type")) & pl.col("range").list.contains(pl.col("src_type"))
    swap = pl.when(pl.col("symmetric")).then(pl.col("src") > pl.col("dst")).otherwise(~forward_ok & backward_ok)
    typed = typed.with_columns(swap.fill_null(False).alias("_swap"))
    return typed.select(
        pl.when(pl.col("_swap")).then(pl.col("dst")).otherwise(pl.col("src")).alias("src"),
        pl.when(pl.col("_swap")).then(pl.col("src")).otherwise(pl.col("dst")).alias("dst"),
        pl.col("relation"),
        pl.col("source"),
    )


def _counts(nodes: pl.DataFrame, edges: pl.DataFrame) -> Counts:
    by_type = nodes["type"].value_counts().sort("type")
    by_relation = edges["relation"].value_counts().sort("relation")
    return Counts(
        nodes=nodes.height,
        edges=edges.height,
        node_types=dict(zip(by_type["type"].to_list(), by_type["count"].to_list(), strict=True)),
        relations=dict(zip(by_relation["relation"].to_list(), by_relation["count"].to_list(), strict=True)),
    )


def content_hash(nodes: pl.DataFrame, edges: pl.DataFrame) -> str:
    """sha256 over the canonical (sorted) node and edge columns, independent of file layout."""
    import numpy as np
    import pyarrow as pa

    digest = hashlib.sha256(f"kgsynth-snapshot-v{FORMAT_VERSION}".encode())
    nodes = nodes.sort("id")
    edges = edges.sort(["src", "relation", "dst"])

    def feed_strings(array: pa.Array) -> None:
        array = array.cast(pa.large_string())
        filled = array.fill_null("\x00")  # nulls hash differently from empty strings
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
            array = frame[column].to_arrow()
            if isinstance(array, pa.ChunkedArray):
                array = array.combine_chunks()
            if column == "synonyms":
                lengths = frame[column].list.len().fill_null(0).to_numpy().astype(np.int64)
                digest.update(lengths.tobytes())
                feed_strings(frame[column].explode().drop_nulls().to_arrow())
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
    if out.exists() and not (out / "manifest.json").exists() and any(out.iterdir()):
        raise SnapshotError(f"{out}: exists and is not a snapshot; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        snapshot.nodes.write_parquet(tmp / "nodes.parquet", compression="zstd")
        snapshot.edges.write_parquet(tmp / "edges.parquet", compression="zstd")
        snapshot.vocabulary.write(tmp / "vocabulary.ttl")
        (tmp / "manifest.json").write_text(snapshot.manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    snapshot.path = out
    return out


def replace_dir(new: Path, target: Path) -> None:
    """Move a finished directory into place, keeping the old one until the swap is done."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
