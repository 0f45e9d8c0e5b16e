"""The in-memory graph engine: a CSR adjacency in numpy, built from a snapshot.

Every relationship is stored once in the snapshot; the engine lists it under both
endpoints so walks can go either way, and keeps per entry the relation id and a
`forward` flag (True: walking this entry follows the stored src → dst direction),
so verbalization always knows the true direction.

Arrays are cached beside the snapshot in `.engine-<hash>/` as `.npy` files and
memory-mapped when reopened, so a second open costs well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from kgsynth.errors import SnapshotError
from kgsynth.graph.snapshot import Snapshot

CACHE_VERSION = 1
_ARRAYS = ("indptr", "indices", "rel", "forward", "node_type", "edge_src", "edge_dst", "edge_rel")


@dataclass
class Engine:
    snapshot_hash: str
    node_ids: list[str]  # index → namespaced id; sorted, as in nodes.parquet
    type_names: list[str]
    relation_names: list[str]
    indptr: np.ndarray  # int64 [n + 1]
    indices: np.ndarray  # int32 [2m] neighbour of each entry
    rel: np.ndarray  # int16 [2m] relation id of each entry
    forward: np.ndarray  # bool [2m] entry walks the stored direction
    node_type: np.ndarray  # int16 [n]
    edge_src: np.ndarray  # int32 [m] canonical edges as indices, snapshot order
    edge_dst: np.ndarray  # int32 [m]
    edge_rel: np.ndarray  # int16 [m]

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        return len(self.edge_src)

    @cached_property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr).astype(np.int64)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {node_id: i for i, node_id in enumerate(self.node_ids)}

    @cached_property
    def relation_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.relation_names)}

    @cached_property
    def type_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.type_names)}

    def index_of(self, node_id: str) -> int:
        try:
            return self._index[node_id]
        except KeyError:
            raise KeyError(f"node '{node_id}' is not in snapshot {self.snapshot_hash[:12]}") from None

    def has_index(self, node_id: str) -> bool:
        return node_id in self._index

    def neighbors(self, u: int) -> slice:
        return slice(int(self.indptr[u]), int(self.indptr[u + 1]))

    def has_edge(self, u: int, v: int, relation: int | None = None, forward: bool | None = None) -> bool:
        """Is there an entry u → v (with that relation id, walked in that direction)?"""
        span = self.neighbors(u)
        hit = self.indices[span] == v
        if relation is not None:
            hit &= self.rel[span] == relation
        if forward is not None:
            hit &= self.forward[span] == forward
        return bool(hit.any())

    def to_networkx(self):
        """A networkx MultiDiGraph of the stored edges (for small graphs and cross-checks)."""
        import networkx as nx

        graph = nx.MultiDiGraph()
        for i, node_id in enumerate(self.node_ids):
            graph.add_node(node_id, type=self.type_names[self.node_type[i]])
        for s, d, r in zip(self.edge_src.tolist(), self.edge_dst.tolist(), self.edge_rel.tolist(), strict=True):
            graph.add_edge(self.node_ids[s], self.node_ids[d], key=self.relation_names[r], relation=self.relation_names[r])
        return graph


def build_engine(snapshot: Snapshot) -> Engine:
    """Build the CSR arrays from a snapshot's tables (no cache involved)."""
    nodes = snapshot.nodes.select("id", "type")
    node_ids = nodes["id"].to_list()
    id_enum = pl.Enum(node_ids)
    type_names = sorted(nodes["type"].unique().to_list())
    relation_names = sorted(snapshot.edges["relation"].unique().to_list())
    node_type = nodes["type"].cast(pl.Enum(type_names)).to_physical().to_numpy().astype(np.int16)
    edges = snapshot.edges.select(
        pl.col("src").cast(id_enum).to_physical().alias("s"),
        pl.col("dst").cast(id_enum).to_physical().alias("d"),
        pl.col("relation").cast(pl.Enum(relation_names)).to_physical().alias("r"),
    )
    edge_src = edges["s"].to_numpy().astype(np.int32)
    edge_dst = edges["d"].to_numpy().astype(np.int32)
    edge_rel = edges["r"].to_numpy().astype(np.int16)
    n, m = len(node_ids), len(edge_src)

    heads = np.concatenate([edge_src, edge_dst])
    order = np.argsort(heads, kind="stable")
    indices = np.concatenate([edge_dst, edge_src])[order]
    rel = np.concatenate([edge_rel, edge_rel])[order]
    forward = np.concatenate([np.ones(m, dtype=bool), np.zeros(m, dtype=bool)])[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(heads, minlength=n), out=indptr[1:])
    return Engine(
        snapshot_hash=snapshot.hash,
        node_ids=node_ids,
        type_names=type_names,
        relation_names=relation_names,
        indptr=indptr,
        indices=indices.astype(np.int32),
        rel=rel,
        forward=forward,
        node_type=node_type,
        edge_src=edge_src,
        edge_dst=edge_dst,
        edge_rel=edge_rel,
    )


def cache_dir(snapshot: Snapshot) -> Path | None:
    if snapshot.path is None:
        return None
    return snapshot.path / f".engine-v{CACHE_VERSION}-{snapshot.hash[:16]}"


def open_engine(snapshot: Snapshot, *, use_cache: bool = True) -> Engine:
    """The engine for a snapshot: memory-mapped from its cache, or built and cached."""
    where = cache_dir(snapshot) if use_cache else None
    if where is not None and (where / "meta.json").exists():
        try:
            return _read_cache(where, snapshot)
        except (OSError, ValueError, KeyError):
            shutil.rmtree(where, ignore_errors=True)  # a damaged cache is rebuilt, never trusted
    engine = build_engine(snapshot)
    if where is not None:
        try:
            _write_cache(engine, where)
        except OSError:
            pass  # a read-only snapshot directory still works, just without the cache
    return engine


def _write_cache(engine: Engine, where: Path) -> None:
    tmp = where.parent / f".{where.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(engine, name))
        meta = {
            "version": CACHE_VERSION,
            "snapshot_hash": engine.snapshot_hash,
            "type_names": engine.type_names,
            "relation_names": engine.relation_names,
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        for stale in where.parent.glob(".engine-v*"):
            if stale != where:
                shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, where)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_cache(where: Path, snapshot: Snapshot) -> Engine:
    meta = json.loads((where / "meta.json").read_text(encoding="utf-8"))
    if meta.get("snapshot_hash") != snapshot.hash or meta.get("version") != CACHE_VERSION:
        raise ValueError("stale engine cache")
    arrays = {name: np.load(where / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    node_ids = pl.read_parquet(snapshot.path / "nodes.parquet", columns=["id"])["id"].to_list()
    if len(node_ids) + 1 != len(arrays["indptr"]):
        raise SnapshotError(f"{where}: engine cache does not match nodes.parquet")
    return Engine(
        snapshot_hash=snapshot.hash,
        node_ids=node_ids,
        type_names=meta["type_names"],
        relation_names=meta["relation_names"],
        **arrays,
    )
