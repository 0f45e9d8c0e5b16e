"""An items table as numpy arrays over engine indices, for vectorised checks.

Paths are padded to the longest hop count in the batch: `nodes[i, k]` is the k-th
node of item i (-1 past its end or when the id is not in the snapshot), `rels[i, k]`
and `fwd[i, k]` describe hop k. Items whose lists disagree in length are split off
first (`malformed`): they cannot be checked hop by hop and are rejected as such.

A row is one path an item rests on (`path_batch`): a plain item's own path, or
one branch of a `dag` item's plan, leaf to answer, with that branch's step
sentences (and the join's) as its thinking. `unit[i]` is the item row i belongs
to, so checks of paths are folded back into one verdict per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl

from kgsynth.generate.item import ITEMS_SCHEMA, with_optional_columns
from kgsynth.generate.plan import branch_path, plan_branches
from kgsynth.verify.index import GraphIndex


@dataclass
class ItemBatch:
    frame: pl.DataFrame  # the items (ITEMS_SCHEMA columns), row i ↔ index i of every array
    nodes: np.ndarray  # int64 [n, H + 1]
    rels: np.ndarray  # int64 [n, H]; -1 past the end or for a relation the snapshot lacks
    fwd: np.ndarray  # bool [n, H]
    hops: np.ndarray  # int64 [n]
    types: np.ndarray  # int64 [n, H + 1] type of each path node in the graph (-1: unknown node)
    claimed_types: np.ndarray  # int64 [n, H + 1] type index of item.node_types (-1: unknown type)
    answer: np.ndarray  # int64 [n] engine index of answer_id (-1: not in the snapshot)
    answer_type: np.ndarray  # int64 [n] type index of answer_type (-1: unknown type)
    options: np.ndarray  # int64 [n, O] engine index of each option's node (-1: padding/unknown)
    unit: np.ndarray = field(default=None)  # int64 [n]: the item (row of `items`) each path belongs to
    branch: np.ndarray = field(default=None)  # bool [n]: the row is a branch of a dag item's plan
    items: pl.DataFrame = field(default=None)  # one row per item (the frame the paths were taken from)

    def __post_init__(self) -> None:
        n = self.frame.height
        if self.unit is None:
            self.unit = np.arange(n, dtype=np.int64)
        if self.branch is None:
            self.branch = np.zeros(n, dtype=bool)
        if self.items is None:
            self.items = self.frame

    def __len__(self) -> int:
        return self.frame.height

    @cached_property
    def rows(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.int64)

    @property
    def anchor(self) -> np.ndarray:
        return self.nodes[:, 0]

    @cached_property
    def terminal(self) -> np.ndarray:
        return self.nodes[self.rows, self.hops]

    @cached_property
    def hop_mask(self) -> np.ndarray:
        return np.arange(self.rels.shape[1])[None, :] < self.hops[:, None]

    def column(self, name: str) -> list:
        return self.frame[name].to_list()


def split_malformed(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(well-formed items, items with inconsistent path lists and a `malformed` reason column)."""
    n_nodes = pl.col("nodes").list.len()
    n_rels = pl.col("relations").list.len()
    problem = (
        pl.when(pl.col("nodes").is_null() | pl.col("relations").is_null() | pl.col("forward").is_null())
        .then(pl.lit("nodes, relations or forward is missing"))
        .when(n_rels < 1)
        .then(pl.lit("the path has no hops"))
        .when(n_nodes != n_rels + 1)
        .then(pl.format("{} nodes for {} relations (expected one more node than relations)", n_nodes, n_rels))
        .when(pl.col("forward").list.len() != n_rels)
        .then(pl.format("{} forward flags for {} relations", pl.col("forward").list.len(), n_rels))
        .when(pl.col("node_types").list.len() != n_nodes)
        .then(pl.format("{} node types for {} nodes", pl.col("node_types").list.len(), n_nodes))
        .when(pl.col("hops").is_not_null() & (pl.col("hops") != n_rels))
        .then(pl.format("hops says {} but the path has {} relations", pl.col("hops"), n_rels))
        .when(pl.col("nodes").list.first() != pl.col("anchor_id"))
        .then(pl.format("anchor_id {} is not the path's first node {}", pl.col("anchor_id"), pl.col("nodes").list.first()))
        .when(
            pl.col("nodes").list.eval(pl.element().is_null()).list.any()
            | pl.col("relations").list.eval(pl.element().is_null()).list.any()
            | pl.col("forward").list.eval(pl.element().is_null()).list.any()
        )
        .then(pl.lit("the path has null entries"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("malformed")
    )
    marked = frame.with_columns(problem)
    good = marked.filter(pl.col("malformed").is_null()).drop("malformed")
    bad = marked.filter(pl.col("malformed").is_not_null())
    return good, bad


def make_batch(frame: pl.DataFrame, index: GraphIndex) -> ItemBatch:
    """Arrays for well-formed items (see `split_malformed`)."""
    n = frame.height
    hops = frame["relations"].list.len().to_numpy().astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    width = int(hops.max()) if n else 0
    engine = index.engine

    nodes = _padded(frame, "nodes", width + 1, _lookup(index.node_table))
    rels = _padded(frame, "relations", width, _enum(engine.relation_names))
    fwd = _padded(frame, "forward", width, None).astype(bool)
    claimed = _padded(frame, "node_types", width + 1, _enum(engine.type_names))
    types = np.where(nodes >= 0, engine.node_type[np.maximum(nodes, 0)], -1).astype(np.int64)

    answer = _flat(frame["answer_id"], _lookup(index.node_table))
    answer_type = _flat(frame["answer_type"], _enum(engine.type_names))
    option_ids = frame.select(pl.col("options").list.eval(pl.element().struct.field("node_id")).alias("o"))
    widest = int(option_ids["o"].list.len().max() or 0) if n else 0
    options = _padded(option_ids, "o", widest, _lookup(index.node_table))
    return ItemBatch(
        frame=frame,
        nodes=nodes,
        rels=rels,
        fwd=fwd,
        hops=hops,
        types=types,
        claimed_types=claimed,
        answer=answer,
        answer_type=answer_type,
        options=options,
    )


def path_batch(items: pl.DataFrame, index: GraphIndex) -> ItemBatch:
    """Arrays over every path the (well-formed) items rest on: see the module docstring."""
    paths, unit, branch = expand_plans(items)
    batch = make_batch(paths, index)
    batch.unit, batch.branch, batch.items = unit, branch, items
    return batch


def expand_plans(items: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """(one row per path, the item of each, whether it is a dag branch). A dag item whose plan is not
    a sound DAG has no branch rows: the `plan` check rejects it and says why."""
    n = items.height
    planned = (items["plan"].list.len() > 0).to_numpy() if n else np.zeros(0, dtype=bool)
    if not planned.any():
        return items, np.arange(n, dtype=np.int64), np.zeros(n, dtype=bool)
    plain = np.flatnonzero(~planned)
    rows: list[dict[str, Any]] = []
    owners: list[int] = []
    for at, item in zip(np.flatnonzero(planned).tolist(), items.filter(pl.Series(planned)).iter_rows(named=True), strict=True):
        chains = plan_branches(item["plan"]) or []
        join = next((s for s in item["plan"] if s["kind"] == "join"), None)
        for chain in chains:
            nodes, relations, forward = branch_path(chain)
            rows.append({
                **item, "nodes": nodes, "relations": relations, "forward": forward, "hops": len(chain),
                "node_names": [chain[0]["subject_name"], *(s["object_name"] for s in chain)],
                "node_types": [chain[0]["subject_type"], *(s["object_type"] for s in chain)],
                "anchor_id": nodes[0], "bridges": nodes[1:-1], "plan": [],
                "thinking": " ".join([*(s["text"] for s in chain), *([join["text"]] if join else [])]),
            })  # fmt: skip
            owners.append(at)
    branches = pl.DataFrame(rows, schema=ITEMS_SCHEMA) if rows else items.clear()
    paths = pl.concat([items[plain.tolist()] if len(plain) else items.clear(), branches])
    unit = np.concatenate([plain, np.array(owners, dtype=np.int64)]).astype(np.int64)
    branch = np.concatenate([np.zeros(len(plain), dtype=bool), np.ones(len(owners), dtype=bool)])
    return paths, unit, branch


def conform_items(frame: pl.DataFrame) -> pl.DataFrame:
    """The items columns in schema order and types (extra columns are dropped)."""
    from kgsynth.errors import InputFormatError

    frame = with_optional_columns(frame)
    missing = [c for c in ITEMS_SCHEMA if c not in frame.columns]
    if missing:
        raise InputFormatError(f"items table lacks column(s) {missing}; expected the items schema of kgsynth generate")
    return frame.select([pl.col(c).cast(t) for c, t in ITEMS_SCHEMA.items()])


# --- helpers ---------------------------------------------------------------------------


def _lookup(table: pl.DataFrame):
    def apply(values: pl.Series) -> np.ndarray:
        joined = pl.DataFrame({"id": values}).join(table, on="id", how="left", maintain_order="left")
        return joined["idx"].fill_null(-1).to_numpy().astype(np.int64)

    return apply


def _enum(names: list[str]):
    table = pl.DataFrame({"id": names, "idx": np.arange(len(names), dtype=np.int64)}, schema={"id": pl.String, "idx": pl.Int64})
    return _lookup(table)


def _flat(values: pl.Series, encode) -> np.ndarray:
    return encode(values.cast(pl.String)) if len(values) else np.zeros(0, dtype=np.int64)


def _padded(frame: pl.DataFrame, column: str, width: int, encode) -> np.ndarray:
    """A list column as an [n, width] array, -1 (or False) past each list's end."""
    n = frame.height
    out = np.full((n, width), -1, dtype=np.int64)
    if n == 0 or width == 0:
        return out
    long = frame.select(pl.col(column)).with_row_index("row").explode(column).drop_nulls(column)
    long = long.with_columns(pl.int_range(pl.len()).over("row").alias("pos"))
    values = long[column]
    encoded = encode(values) if encode is not None else values.cast(pl.Int64).to_numpy()
    out[long["row"].to_numpy().astype(np.int64), long["pos"].to_numpy().astype(np.int64)] = encoded
    return out
