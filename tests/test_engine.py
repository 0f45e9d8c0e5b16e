"""The CSR engine on the real HPO graph: entries, hop keys, lookups, cache, networkx cross-check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kgsynth.graph.engine import Engine, build_engine, cache_dir, open_engine
from kgsynth.graph.snapshot import Snapshot, build_snapshot, read_snapshot, write_snapshot
from kgsynth.graph.vocabulary import Vocabulary


def small_hpo(snapshot: Snapshot, diseases: int = 150) -> Snapshot:
    """A small real graph: some HPO diseases, their phenotypes and genes, and the is_a and gene links among those."""
    edges = snapshot.edges
    chosen = edges.filter(pl.col("relation") == "has_phenotype").select("src").unique().sort("src").head(diseases)
    kept = edges.filter(pl.col("src").is_in(chosen["src"].to_list()) | pl.col("dst").is_in(chosen["src"].to_list()))
    ids = pl.concat([kept["src"], kept["dst"]]).unique()
    inner = edges.filter(pl.col("relation").is_in(["is_a", "gene_associated_with_phenotype"]) & pl.col("src").is_in(ids.to_list()) & pl.col("dst").is_in(ids.to_list()))
    kept = pl.concat([kept, inner]).unique()
    ids = pl.concat([kept["src"], kept["dst"]]).unique()
    nodes = snapshot.nodes.filter(pl.col("id").is_in(ids.to_list()))
    return build_snapshot(nodes, kept, vocabulary=snapshot.vocabulary, name="hpo-small", loader="test")


@pytest.fixture(scope="module")
def small_dir(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("engine") / "small"
    write_snapshot(small_hpo(read_snapshot(hpo_snapshot_dir)), out)
    return out


@pytest.fixture(scope="module")
def hpo_engine(hpo_snapshot_dir: Path) -> Engine:
    return open_engine(read_snapshot(hpo_snapshot_dir))


def test_every_entry_is_a_stored_edge_walked_one_way(hpo_engine: Engine) -> None:
    e = hpo_engine
    assert len(e.indices) == 2 * e.n_edges
    owner = np.repeat(np.arange(e.n_nodes), e.degree)
    fwd = np.asarray(e.forward)
    src = np.where(fwd, owner, e.indices)
    dst = np.where(fwd, e.indices, owner)
    entries = np.sort(np.stack([src, e.rel.astype(np.int64), dst], axis=1).view("i8,i8,i8").ravel())
    edges = np.stack([e.edge_src.astype(np.int64), e.edge_rel.astype(np.int64), e.edge_dst.astype(np.int64)], axis=1)
    edges = np.sort(edges.view("i8,i8,i8").ravel())
    assert np.array_equal(entries[0::2], edges) and np.array_equal(entries[1::2], edges)


def test_runs_are_grouped_by_key_and_sorted_by_neighbour(hpo_engine: Engine) -> None:
    e = hpo_engine
    n_rel = len(e.relation_names)
    owner = np.repeat(np.arange(e.n_nodes, dtype=np.int64), e.degree)
    key = e.rel.astype(np.int64) + np.where(e.forward, 0, n_rel)
    composite = (owner * e.n_keys + key) * e.n_nodes + e.indices
    assert np.all(np.diff(composite) > 0)
    lo, hi = e.key_ranges(owner[:1000], key[:1000])
    assert np.all((lo <= np.arange(1000)) & (np.arange(1000) < hi))


def test_has_edges_and_twins_agree_with_a_scan(hpo_engine: Engine) -> None:
    e = hpo_engine
    rng = np.random.default_rng(0)
    entries = rng.integers(0, len(e.indices), 500)
    owners = e.owners(entries)
    n_rel = len(e.relation_names)
    keys = e.rel[entries].astype(np.int64) + np.where(e.forward[entries], 0, n_rel)
    assert e.has_edges(owners, keys, e.indices[entries]).all()
    other = rng.integers(0, e.n_nodes, 500)
    expected = [e.has_edge(int(u), int(v), int(r), bool(f)) for u, v, r, f in zip(owners, other, e.rel[entries], e.forward[entries], strict=False)]
    assert e.has_edges(owners, keys, other).tolist() == expected
    twins = e.twins(entries)
    assert np.array_equal(e.owners(twins), e.indices[entries])
    assert np.array_equal(e.indices[twins], owners)
    assert np.array_equal(e.rel[twins], e.rel[entries])
    assert np.array_equal(e.forward[twins], ~e.forward[entries])


def test_neighbours_match_networkx_on_a_small_real_graph(small_dir: Path) -> None:
    snapshot = read_snapshot(small_dir)
    engine = build_engine(snapshot)
    graph = engine.to_networkx()
    assert graph.number_of_edges() == snapshot.edges.height == engine.n_edges
    for u in range(0, engine.n_nodes, 7):
        node = engine.node_ids[u]
        mine = sorted(
            (engine.node_ids[v], engine.relation_names[r], bool(f))
            for v, r, f in zip(engine.indices[engine.neighbors(u)], engine.rel[engine.neighbors(u)], engine.forward[engine.neighbors(u)], strict=False)
        )
        theirs = sorted(
            [(v, d["relation"], True) for _, v, d in graph.out_edges(node, data=True)]
            + [(v, d["relation"], False) for v, _, d in graph.in_edges(node, data=True)]
        )
        assert mine == theirs


def test_cache_is_memory_mapped_and_rebuilt_when_damaged(small_dir: Path) -> None:
    snapshot = read_snapshot(small_dir)
    first = open_engine(snapshot)
    where = cache_dir(snapshot)
    assert (where / "meta.json").exists()
    again = open_engine(read_snapshot(small_dir))
    assert isinstance(again.indices, np.memmap)
    assert np.array_equal(again.indices, first.indices) and again.node_ids == first.node_ids
    meta = json.loads((where / "meta.json").read_text())
    (where / "meta.json").write_text(json.dumps({**meta, "snapshot_hash": "0" * 64}))
    rebuilt = open_engine(read_snapshot(small_dir))
    assert not isinstance(rebuilt.indices, np.memmap)
    assert np.array_equal(rebuilt.group_key, first.group_key)
    assert json.loads((where / "meta.json").read_text())["snapshot_hash"] == snapshot.hash
    (where / "meta.json").unlink()  # a cache folder that lost its meta (a partial copy) is replaced whole
    open_engine(read_snapshot(small_dir))
    assert json.loads((where / "meta.json").read_text())["snapshot_hash"] == snapshot.hash
    assert isinstance(open_engine(read_snapshot(small_dir)).indices, np.memmap)
    assert [p.name for p in small_dir.iterdir() if p.name.startswith("..")] == []  # no temp folders left


def test_indices_of_many_ids_marks_unknown_ones(small_dir: Path) -> None:
    engine = open_engine(read_snapshot(small_dir))
    ids = [engine.node_ids[5], "hpo:nope", engine.node_ids[0]]
    assert engine.indices_of(ids).tolist() == [5, -1, 0]


def test_a_graph_without_edges_still_opens() -> None:
    nodes = pl.DataFrame({"id": ["x:1", "x:2"], "type": ["thing", "thing"]})
    edges = pl.DataFrame(schema={"src": pl.String, "dst": pl.String, "relation": pl.String})
    engine = build_engine(build_snapshot(nodes, edges, vocabulary=Vocabulary(name="empty"), name="empty", loader="test"))
    assert engine.degree.tolist() == [0, 0]
    assert engine.key_ranges(np.array([0, 1]), np.array([0, 0]))[0].tolist() == [0, 0]


def test_run_table_packs_each_runs_key_and_type_into_int32(small_dir: Path) -> None:
    from kgsynth.graph.engine import RUN_KEY_MASK, RUN_TYPE_SHIFT

    engine = open_engine(read_snapshot(small_dir))
    table = engine.run_table
    assert table.dtype == np.int32 and engine.node_table.dtype == np.int32
    owner = np.asarray(engine.group_key) // engine.n_keys
    assert ((table[:-1, 0] & RUN_KEY_MASK) == np.asarray(engine.group_key) - owner * engine.n_keys).all()
    first_neighbour_type = np.asarray(engine.node_type)[np.asarray(engine.indices)[table[:-1, 1]]]
    run_type = (table[:-1, 0] >> RUN_TYPE_SHIFT) - 1
    assert ((run_type == -1) | (run_type == first_neighbour_type)).all() and (run_type >= 0).any()


def test_hard_negatives_name_the_limit_a_graph_with_too_many_node_types_passes() -> None:
    from kgsynth.errors import SnapshotError
    from kgsynth.graph.engine import MAX_NODE_TYPES

    count = MAX_NODE_TYPES + 1
    nodes = pl.DataFrame({"id": [f"x:{i}" for i in range(count)], "type": [f"t{i}" for i in range(count)]})
    edges = pl.DataFrame({"src": ["x:0"], "dst": ["x:1"], "relation": ["linked_to"]})
    snapshot = build_snapshot(nodes, edges, vocabulary=Vocabulary(name="empty"), name="many", loader="test", allow_unknown_relations=True)
    engine = build_engine(snapshot)
    with pytest.raises(SnapshotError, match=f"{count:,} node types.*up to .* {MAX_NODE_TYPES:,} node types"):
        engine.run_table
