"""The in-memory graph engine: a CSR adjacency in numpy, built from a snapshot.

Every relationship is stored once in the snapshot; the engine lists it under both
endpoints so walks can go either way, and keeps per entry the relation id and a
`forward` flag (True: walking this entry follows the stored src → dst direction),
so verbalization always knows the true direction.

Within a node's entries, the forward ones come first, then the backward ones, each
ordered by relation id and then by neighbour. So each (node, hop key) — a relation
walked one way — is one contiguous run of entries sorted by neighbour;
`group_key` / `group_start` index those runs, `key_ranges` finds them for many
nodes at once (typed hops, pattern proofs) and `has_edges` tests many
(node, key, neighbour) triples by binary search, without expanding hubs.

Arrays are cached beside the snapshot in `.engine-v<version>-<hash>/` as `.npy`
files and memory-mapped when reopened, so a second open costs well under a second.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from kgsynth.atomic import replace_directory
from kgsynth.errors import SnapshotError
from kgsynth.graph.snapshot import Snapshot

CACHE_VERSION = 3
# run_table's key column, packed in 31 bits so both tables fit int32 (half the cache they
# take as int64: compiled code reads them at random, on every hop)
RUN_KEY_MASK = (1 << 16) - 1  # the hop key (2 per relation)
HIERARCHY_RUN = 1 << 16  # flag: the run leads to nodes of the owner's type
RUN_TYPE_SHIFT = 20  # (type + 1) << this when all of a run's neighbours have that type
MAX_RELATIONS, MAX_NODE_TYPES = 1 << 15, (1 << 11) - 2
_ARRAYS = (
    "indptr",
    "indices",
    "rel",
    "forward",
    "node_type",
    "edge_src",
    "edge_dst",
    "edge_rel",
    "symmetric",
    "group_key",
    "group_start",
)


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
    symmetric: np.ndarray  # bool [relations] the relation reads the same both ways
    group_key: np.ndarray  # int64 [g] node * n_keys + hop key of each run of entries, ascending
    group_start: np.ndarray  # int64 [g + 1] first entry of each run

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        return len(self.edge_src)

    @property
    def n_keys(self) -> int:
        """Hop keys: relation r walked forward is key r, walked backward r + n_relations."""
        return 2 * len(self.relation_names)

    @cached_property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr).astype(np.int64)

    @cached_property
    def id_series(self) -> pl.Series:
        """Node ids as a polars Series, for gathering id columns without Python loops."""
        return pl.Series("id", self.node_ids, dtype=pl.String)

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

    def indices_of(self, node_ids: list[str] | pl.Series) -> np.ndarray:
        """Engine indices of many ids at once; -1 for ids not in the graph."""
        wanted = pl.DataFrame({"id": pl.Series(node_ids, dtype=pl.String)}).with_row_index("_row")
        graph = self.id_series.to_frame().with_row_index("_index")
        if len(wanted) * 8 < len(graph):  # a few ids (hubs to exclude): filter before joining
            graph = graph.filter(pl.col("id").is_in(wanted["id"].implode()))
        found = wanted.join(graph, on="id", how="left")
        return found.sort("_row")["_index"].fill_null(-1).to_numpy().astype(np.int64)

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

    def key_runs(self, nodes: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Index of the run of entries of each (node, key), -1 when the node has none."""
        wanted = np.asarray(nodes, dtype=np.int64) * self.n_keys + keys
        if not len(self.group_key):
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.group_key, wanted), len(self.group_key) - 1)
        return np.where(self.group_key[at] == wanted, at, -1)

    def key_ranges(self, nodes: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) entry ranges of each (node, key); empty (lo == hi) when there is none."""
        run = self.key_runs(nodes, keys)
        found = run >= 0
        at = np.maximum(run, 0)
        if not len(self.group_key):
            return np.zeros(len(run), dtype=np.int64), np.zeros(len(run), dtype=np.int64)
        return np.where(found, self.group_start[at], 0), np.where(found, self.group_start[at + 1], 0)

    @cached_property
    def _run_neighbour(self) -> np.ndarray:
        """run index * n_nodes + neighbour per entry: ascending, as runs are sorted by neighbour."""
        runs = np.repeat(np.arange(len(self.group_key), dtype=np.int64), np.diff(self.group_start))
        return runs * self.n_nodes + np.asarray(self.indices)

    @cached_property
    def table_dtype(self) -> type:
        """int32 when every entry and run index fits it (any graph this side of 2 billion entries)."""
        return np.int32 if max(len(self.indices), len(self.group_key)) < 2**31 - 1 else np.int64

    @cached_property
    def node_table(self) -> np.ndarray:
        """[n + 1, 2] of `table_dtype`: per node its first entry (indptr) and its first run (index
        into `run_table`), side by side so compiled code reads both in one memory access."""
        table = np.empty((self.n_nodes + 1, 2), dtype=self.table_dtype)
        table[:, 0] = self.indptr
        table[:, 1] = np.searchsorted(np.asarray(self.group_key), np.arange(self.n_nodes + 1, dtype=np.int64) * self.n_keys)
        return table

    @cached_property
    def run_table(self) -> np.ndarray:
        """[g + 1, 2] of `table_dtype`: per run its hop key and flags, and its first entry; a last row
        closes the last run. The key column holds the key (RUN_KEY_MASK), HIERARCHY_RUN when the run's
        first neighbour has the owner's own type, and (type + 1) << RUN_TYPE_SHIFT when every
        neighbour in the run has that one type (0: mixed). A node's runs sit together, so
        compiled code finds one of its keys, and what type it leads to, in a cache line or two."""
        if self.n_keys > 2 * MAX_RELATIONS or len(self.type_names) > MAX_NODE_TYPES:
            raise SnapshotError(
                f"graph has {self.n_keys // 2:,} relations and {len(self.type_names):,} node types; hard negatives and "
                f"unique answers handle up to {MAX_RELATIONS:,} relations and {MAX_NODE_TYPES:,} node types"
            )
        group_key, group_start = np.asarray(self.group_key), np.asarray(self.group_start)
        table = np.empty((len(group_key) + 1, 2), dtype=self.table_dtype)
        owner = group_key // self.n_keys
        node_type = np.asarray(self.node_type).astype(np.int64)
        neighbour_type = node_type[np.asarray(self.indices)]
        starts = group_start[:-1]
        if len(starts):
            low, high = np.minimum.reduceat(neighbour_type, starts), np.maximum.reduceat(neighbour_type, starts)
        else:
            low = high = np.zeros(0, dtype=np.int64)
        flags = np.where(neighbour_type[starts] == node_type[owner], HIERARCHY_RUN, 0)
        flags += np.where(low == high, (low + 1) << RUN_TYPE_SHIFT, 0)
        table[:-1, 0] = group_key - owner * self.n_keys + flags
        table[-1, 0] = -1
        table[:, 1] = group_start
        return table

    def runs_of(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[first, last) run indices of each node: one run per (relation, direction) it has."""
        nodes = np.asarray(nodes, dtype=np.int64)
        return np.searchsorted(self.group_key, nodes * self.n_keys), np.searchsorted(self.group_key, (nodes + 1) * self.n_keys)

    def run_entries(self, runs: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
        """The entry of each run that leads to the neighbour, -1 where there is none (or run is -1)."""
        table = self._run_neighbour
        wanted = np.maximum(runs, 0) * self.n_nodes + neighbours
        if not len(table):
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(table, wanted), len(table) - 1)
        return np.where((runs >= 0) & (table[at] == wanted), at, -1)

    def has_edges(self, nodes: np.ndarray, keys: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
        """For each (node, key, neighbour): is there such an entry? Binary search, no expansion."""
        return self.run_entries(self.key_runs(nodes, keys), neighbours) >= 0

    def owners(self, entries: np.ndarray) -> np.ndarray:
        """The node each entry is listed under."""
        return np.searchsorted(np.asarray(self.indptr), entries, side="right") - 1

    def twins(self, entries: np.ndarray) -> np.ndarray:
        """The same edges listed under their other endpoint: the entries that walk them back."""
        entries = np.asarray(entries, dtype=np.int64)
        n_rel = len(self.relation_names)
        rel = np.asarray(self.rel)[entries].astype(np.int64)
        back_key = rel + np.where(np.asarray(self.forward)[entries], n_rel, 0)
        return self.run_entries(self.key_runs(np.asarray(self.indices)[entries], back_key), self.owners(entries))

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
    edge_src = _positions(snapshot.edges["src"], id_enum)
    edge_dst = _positions(snapshot.edges["dst"], id_enum)
    edge_rel = _positions(snapshot.edges["relation"], pl.Enum(relation_names)).astype(np.int16)
    symmetric = np.array(
        [snapshot.vocabulary.relations[r].symmetric if r in snapshot.vocabulary.relations else False for r in relation_names],
        dtype=bool,
    )
    csr = _csr(len(node_ids), len(relation_names), edge_src, edge_dst, edge_rel)
    return Engine(
        snapshot_hash=snapshot.hash,
        node_ids=node_ids,
        type_names=type_names,
        relation_names=relation_names,
        node_type=node_type,
        edge_src=edge_src,
        edge_dst=edge_dst,
        edge_rel=edge_rel,
        symmetric=symmetric,
        **csr,
    )


def _positions(values: pl.Series, enum: pl.Enum) -> np.ndarray:
    """Position of each value in the enum's categories. Runs of one value (edges come
    sorted by src, then relation) are looked up once."""
    runs = values.rle().struct.unnest()
    if runs.height * 4 > len(values):
        return values.cast(enum).to_physical().to_numpy().astype(np.int32)
    first = runs["value"].cast(enum).to_physical().to_numpy().astype(np.int32)
    return np.repeat(first, runs["len"].to_numpy())


def _csr(n: int, n_rel: int, src: np.ndarray, dst: np.ndarray, rel: np.ndarray) -> dict[str, np.ndarray]:
    """Both directions of every edge, grouped per node as forward-by-relation, then backward-by-relation,
    each run sorted by neighbour.

    Snapshot edges arrive sorted by (src, relation, dst), which gives the forward
    order; the backward order (dst, relation, src) follows from it by three stable
    16-bit radix passes. The scatter positions follow from per-node counts.
    """
    m = len(src)
    forward_key = (src.astype(np.int64) * n_rel + rel) * n + dst
    by_src = np.arange(m) if np.all(forward_key[1:] >= forward_key[:-1]) else np.argsort(forward_key, kind="stable")
    by_dst = by_src[np.argsort(rel[by_src], kind="stable")]
    for shift in (0, 16):
        by_dst = by_dst[np.argsort(((dst[by_dst] >> shift) & 0xFFFF).astype(np.uint16), kind="stable")]
    out_count = np.bincount(src, minlength=n)
    in_count = np.bincount(dst, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(out_count + in_count, out=indptr[1:])
    out_first = np.concatenate([[0], np.cumsum(out_count)[:-1]])
    in_first = np.concatenate([[0], np.cumsum(in_count)[:-1]])

    heads = src[by_src]
    pos_out = indptr[heads] + (np.arange(m) - out_first[heads])
    tails = dst[by_dst]
    pos_in = indptr[tails] + out_count[tails] + (np.arange(m) - in_first[tails])

    indices = np.empty(2 * m, dtype=np.int32)
    entry_rel = np.empty(2 * m, dtype=np.int16)
    forward = np.empty(2 * m, dtype=bool)
    indices[pos_out] = dst[by_src]
    indices[pos_in] = src[by_dst]
    entry_rel[pos_out] = rel[by_src]
    entry_rel[pos_in] = rel[by_dst]
    forward[pos_out] = True
    forward[pos_in] = False

    key = entry_rel.astype(np.int64) + np.where(forward, 0, n_rel)
    boundary = np.zeros(2 * m, dtype=bool)
    boundary[indptr[:-1][out_count + in_count > 0]] = True  # a node's first entry
    boundary[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(boundary)
    owner = np.searchsorted(indptr, starts, side="right") - 1
    return {
        "indptr": indptr,
        "indices": indices,
        "rel": entry_rel,
        "forward": forward,
        "group_key": owner * (2 * n_rel) + key[starts],
        "group_start": np.concatenate([starts, [2 * m]]).astype(np.int64),
    }


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
    if (where / "meta.json").exists():  # another process wrote it meanwhile: leave it to its readers
        return
    shutil.rmtree(where, ignore_errors=True)  # our own folder without its meta (a partial copy)
    with replace_directory(where, marker="meta.json", what="engine cache") as tmp:
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
