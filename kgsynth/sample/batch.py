"""Sampled paths as arrays (engine indices), and their conversion to the paths table.

Samplers work on `PathBatch`es: all paths in a batch have the same hop count; rows
come in units of `per_unit` paths (1, or the 2–3 branches of a convergent group),
so quotas and de-duplication treat a group as one thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kgsynth.graph.engine import Engine

_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class PathBatch:
    nodes: np.ndarray  # int32 [rows, hops + 1], anchor first
    entries: np.ndarray  # int64 [rows, hops], CSR entry walked by each hop
    per_unit: int = 1  # consecutive rows that form one unit (a convergent group)

    @property
    def hops(self) -> int:
        return self.entries.shape[1]

    @property
    def rows(self) -> int:
        return self.nodes.shape[0]

    @property
    def units(self) -> int:
        return self.rows // self.per_unit

    def take_units(self, units: np.ndarray) -> PathBatch:
        rows = (units[:, None] * self.per_unit + np.arange(self.per_unit)).ravel()
        return PathBatch(self.nodes.take(rows, axis=0), self.entries.take(rows, axis=0), self.per_unit)

    @staticmethod
    def concat(batches: list[PathBatch]) -> PathBatch:
        return PathBatch(
            np.concatenate([b.nodes for b in batches]),
            np.concatenate([b.entries for b in batches]),
            batches[0].per_unit,
        )


def row_hash(columns: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """A 64-bit hash per row of integer columns (splitmix-style mixing, wrapping arithmetic)."""
    columns = list(columns.T) if isinstance(columns, np.ndarray) else columns
    h = np.full(len(columns[0]), 0x243F6A8885A308D3, dtype=np.uint64)
    for column in columns:
        h ^= column.view(np.uint64) if column.dtype == np.int64 else column.astype(np.int64).view(np.uint64)
        h *= _MIX
        h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return h


def unit_hash(batch: PathBatch) -> np.ndarray:
    """Identity of each unit: its anchor and the entries it walks (which fix every other node)."""
    rows = row_hash([batch.nodes[:, 0], *batch.entries.T])
    if batch.per_unit == 1:
        return rows
    return row_hash(rows.view(np.int64).reshape(batch.units, batch.per_unit))


def hop_keys(engine: Engine, entries: np.ndarray) -> np.ndarray:
    """Per hop: relation, plus n_relations when walked backwards, plus 2·n_relations when symmetric."""
    n_rel = len(engine.relation_names)
    rel = np.asarray(engine.rel)[entries].astype(np.int64)
    symmetric = np.asarray(engine.symmetric)[rel]
    backward = ~np.asarray(engine.forward)[entries]
    return rel + np.where(symmetric, 2 * n_rel, np.where(backward, n_rel, 0))


def pattern_codes(engine: Engine, batch: PathBatch) -> np.ndarray:
    """A code per row for its relation pattern: node types and hop keys.

    Exact (mixed radix) while it fits in 62 bits, a 64-bit hash beyond.
    """
    types = np.asarray(engine.node_type)[batch.nodes].astype(np.int64)
    keys = hop_keys(engine, batch.entries)
    type_base, key_base = max(len(engine.type_names), 1), 3 * max(len(engine.relation_names), 1)
    if (batch.hops + 1) * np.log2(type_base) + batch.hops * np.log2(key_base) > 62:
        return row_hash(np.concatenate([types, keys], axis=1))
    code = types[:, 0].copy()
    for hop in range(batch.hops):
        code = (code * key_base + keys[:, hop]) * type_base + types[:, hop + 1]
    return code.view(np.uint64)


def pattern_text(engine: Engine, types: list[int], keys: list[int]) -> str:
    """'disease -has_phenotype-> phenotype <-is_a- phenotype'; symmetric hops are '-r-'."""
    n_rel = len(engine.relation_names)
    parts = [engine.type_names[types[0]]]
    for key, node_type in zip(keys, types[1:], strict=True):
        name = engine.relation_names[key % n_rel]
        arrow = f"-{name}-" if key >= 2 * n_rel else (f"<-{name}-" if key >= n_rel else f"-{name}->")
        parts += [arrow, engine.type_names[node_type]]
    return " ".join(parts)


def patterns(engine: Engine, batch: PathBatch) -> pl.Series:
    """The pattern string of every row, formatted once per distinct pattern."""
    codes = pattern_codes(engine, batch)
    distinct = np.sort(pl.Series(codes).unique().to_numpy())  # a few hundred: hashing beats sorting all rows
    inverse = np.searchsorted(distinct, codes)
    first = np.empty(len(distinct), dtype=np.int64)
    first[inverse] = np.arange(len(codes))  # any row of a pattern shows it
    types = np.asarray(engine.node_type)[batch.nodes[first]]
    keys = hop_keys(engine, batch.entries[first])
    texts = [pattern_text(engine, t.tolist(), k.tolist()) for t, k in zip(types, keys, strict=True)]
    return pl.Series("pattern", texts, dtype=pl.String).gather(inverse)


def fixed_list(name: str, values: pl.Series, width: int, rows: int) -> pl.Series:
    """A list column of `rows` rows of `width` consecutive values each."""
    if not width:
        return pl.Series(name, [[]], dtype=pl.List(values.dtype)).new_from_index(0, rows)
    return values.reshape((rows, width)).cast(pl.List(values.dtype)).alias(name)


def batch_frame(
    engine: Engine,
    batch: PathBatch,
    *,
    strategy: str,
    seed: int,
    first_row: int,
    first_group: int,
) -> pl.DataFrame:
    """The paths-table columns of one batch, except negatives."""
    width = batch.hops + 1
    ids = engine.id_series.gather(batch.nodes.ravel())
    relation_names = pl.Series(engine.relation_names, dtype=pl.String)
    relations = relation_names.gather(np.asarray(engine.rel)[batch.entries.ravel()].astype(np.int64))
    forward = pl.Series(np.asarray(engine.forward)[batch.entries.ravel()])
    row = pl.int_range(first_row, first_row + batch.rows, eager=True).cast(pl.String)
    columns = {
        "path_id": (f"{strategy}-{seed}-" + row) if batch.rows else row,
        "nodes": fixed_list("nodes", ids, width, batch.rows),
        "relations": fixed_list("relations", relations, batch.hops, batch.rows),
        "forward": fixed_list("forward", forward, batch.hops, batch.rows),
        "hops": pl.Series(np.full(batch.rows, batch.hops, dtype=np.int32)),
        "pattern": patterns(engine, batch) if batch.rows else pl.Series([], dtype=pl.String),
    }
    frame = pl.DataFrame(columns)
    if batch.per_unit > 1:
        group = np.arange(batch.rows) // batch.per_unit + first_group
        frame = frame.with_columns(
            (f"{strategy}-{seed}-g" + pl.Series(group).cast(pl.String)).alias("group_id")
        )
    return frame
