"""Samplers on a small real graph (HPO diseases, phenotypes, genes), cross-checked with networkx."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest
from test_engine import small_hpo

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine, open_engine
from kgsynth.graph.snapshot import Snapshot, build_snapshot, read_snapshot, write_snapshot
from kgsynth.sample import sample_paths, sample_with_stats
from kgsynth.sample.between import paths_between
from kgsynth.sample.paths import PATHS_SCHEMA, read_paths, write_paths
from kgsynth.sample.pattern import parse_template


@pytest.fixture(scope="module")
def small(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    out = tmp_path_factory.mktemp("sample") / "small"
    write_snapshot(small_hpo(read_snapshot(hpo_snapshot_dir), diseases=200), out)
    return read_snapshot(out)


@pytest.fixture(scope="module")
def engine(small: Snapshot) -> Engine:
    return open_engine(small)


@pytest.fixture(scope="module")
def graph(engine: Engine) -> nx.MultiDiGraph:
    return engine.to_networkx()


@pytest.fixture(scope="module")
def pruned(small: Snapshot, tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, list[str]]:
    """The small graph without its 5 highest-degree nodes (a stand-in for a shattered graph)."""
    from kgsynth.graph.stats import degrees

    hubs = degrees(small).sort(["degree", "id"], descending=[True, False]).head(5)["id"].to_list()
    nodes = small.nodes.filter(~pl.col("id").is_in(hubs))
    edges = small.edges.filter(~pl.col("src").is_in(hubs) & ~pl.col("dst").is_in(hubs))
    out = tmp_path_factory.mktemp("sample") / "pruned"
    write_snapshot(build_snapshot(nodes, edges, vocabulary=small.vocabulary, name="pruned", loader="test"), out)
    return read_snapshot(out), hubs


def check_paths(frame: pl.DataFrame, graph: nx.MultiDiGraph, symmetric: set[str] = frozenset()) -> None:
    """Every hop is an edge with the stated relation and direction; no node repeats; pattern matches."""
    assert frame.schema == pl.Schema(PATHS_SCHEMA)
    for row in frame.iter_rows(named=True):
        nodes, relations, forward = row["nodes"], row["relations"], row["forward"]
        assert len(set(nodes)) == len(nodes), row
        assert len(relations) == len(forward) == len(nodes) - 1 == row["hops"]
        for i, (relation, along) in enumerate(zip(relations, forward, strict=True)):
            a, b = (nodes[i], nodes[i + 1]) if along else (nodes[i + 1], nodes[i])
            assert graph.has_edge(a, b, key=relation), (a, relation, b, row)
        types = [graph.nodes[n]["type"] for n in nodes]
        words = row["pattern"].split()
        assert words[0::2] == types
        for word, relation, along in zip(words[1::2], relations, forward, strict=True):
            if relation in symmetric:
                assert word == f"-{relation}-"
            else:
                assert word == (f"-{relation}->" if along else f"<-{relation}-")


def reach(graph: nx.MultiDiGraph, anchor: str, relations: list[str], forward: list[bool]) -> set[str]:
    """Nodes reachable from the anchor by walks following the relations and directions (repeats allowed)."""
    frontier = {anchor}
    for relation, along in zip(relations, forward, strict=True):
        step = set()
        for u in frontier:
            edges = graph.out_edges(u, keys=True) if along else graph.in_edges(u, keys=True)
            step |= {(v if along else w) for w, v, key in ((e[0], e[1], e[2]) for e in edges) if key == relation}
        frontier = step
    return frontier


def check_negatives(frame: pl.DataFrame, full: nx.MultiDiGraph) -> int:
    checked = 0
    for row in frame.iter_rows(named=True):
        if not row["negatives"]:
            continue
        reachable = reach(full, row["nodes"][0], row["relations"], row["forward"])
        answer_type = full.nodes[row["nodes"][-1]]["type"]
        for negative in row["negatives"]:
            assert negative not in reachable, row
            assert negative not in row["nodes"]
            assert full.nodes[negative]["type"] == answer_type
            checked += 1
    return checked


def test_sampler_walk_hops_are_edges_and_quotas_hold(engine: Engine, graph: nx.MultiDiGraph) -> None:
    frame, stats = sample_with_stats(engine, "walk", 600, 3, hops="2-4", negatives=2)
    check_paths(frame, graph)
    assert frame.height == 600 and stats.by_hops == {2: 200, 3: 200, 4: 200}
    assert frame["path_id"].n_unique() == 600 and set(frame["snapshot"]) == {engine.snapshot_hash}
    assert frame.select(pl.col("nodes").list.concat(pl.col("relations")).alias("k"))["k"].n_unique() == 600


def test_sampler_walk_typed_start_end_and_relation_lists(engine: Engine, graph: nx.MultiDiGraph) -> None:
    frame = sample_paths(
        engine, "walk", 200, 1, hops=3, start_types=["gene"], end_types=["disease"], deny_relations=["is_a"], negatives=0
    )
    check_paths(frame, graph)
    assert frame.height == 200
    assert all(graph.nodes[n[0]]["type"] == "gene" and graph.nodes[n[-1]]["type"] == "disease" for n in frame["nodes"])
    assert "is_a" not in set(frame["relations"].explode())
    only = sample_paths(engine, "walk", 100, 1, hops=2, relations=["is_a"], negatives=0)
    assert set(only["relations"].explode()) == {"is_a"}


def test_sampler_walk_spreads_anchors(engine: Engine) -> None:
    frame = sample_paths(engine, "walk", 2000, 5, hops=2, start_types=["disease"], negatives=0)
    anchors = frame["nodes"].list.first().value_counts()["count"]
    diseases = int((engine.node_type == engine.type_index["disease"]).sum())
    assert anchors.len() == diseases  # every start node gets used
    assert anchors.max() <= 3 * 2000 / diseases  # and none dominates


def test_sampler_walk_excludes_hubs(engine: Engine, pruned: tuple[Snapshot, list[str]]) -> None:
    _, hubs = pruned
    frame = sample_paths(engine, "walk", 500, 2, hops="2-3", exclude=hubs, negatives=0)
    assert not set(frame["nodes"].explode()) & set(hubs)


def test_same_seed_same_file_other_seed_other_paths(engine: Engine, tmp_path: Path) -> None:
    a = write_paths(sample_paths(engine, "walk", 300, 11, hops="2-3"), tmp_path / "a.parquet")
    b = write_paths(sample_paths(engine, "walk", 300, 11, hops="2-3"), tmp_path / "b.parquet")
    assert a.read_bytes() == b.read_bytes()
    assert read_paths(a).equals(read_paths(b))
    other = sample_paths(engine, "walk", 300, 12, hops="2-3")
    assert not other["nodes"].equals(read_paths(a)["nodes"])


def test_sampler_pattern_follows_the_template(engine: Engine, graph: nx.MultiDiGraph) -> None:
    template = "disease -has_phenotype-> phenotype <-gene_associated_with_phenotype- gene"
    frame = sample_paths(engine, "pattern", 150, 4, patterns=[template, "phenotype -is_a-> phenotype -is_a-> *"], negatives=2)
    check_paths(frame, graph)
    assert frame["pattern"].value_counts().sort("pattern")["count"].to_list() == [75, 75]
    assert set(frame["pattern"]) == {template, "phenotype -is_a-> phenotype -is_a-> phenotype"}


def test_pattern_syntax_errors_say_how_to_write_one() -> None:
    with pytest.raises(ConfigError, match="-relation->"):
        parse_template("drug =indication=> disease")
    with pytest.raises(ConfigError, match="alternating"):
        parse_template("drug -indication->")
    assert parse_template("a|b -r1|r2- *").hops[0].forward is None


def test_sampler_rare_chain_prefers_long_chains_from_rare_nodes(engine: Engine, graph: nx.MultiDiGraph) -> None:
    frame, stats = sample_with_stats(engine, "rare-chain", 150, 6, min_hops=3, max_hops=5, negatives=1)
    check_paths(frame, graph)
    assert frame.height == 150 and frame["hops"].min() >= 3 and frame["hops"].max() <= 5
    median = float(np.median(engine.degree[engine.degree > 0]))
    anchors = engine.indices_of(frame["nodes"].list.first())
    assert np.all(engine.degree[anchors] <= median)


def test_sampler_convergent_groups_meet_at_one_answer(engine: Engine, graph: nx.MultiDiGraph) -> None:
    frame = sample_paths(engine, "convergent", 120, 8, branches=3, hops="1-2", answer_types=["disease"], negatives=2)
    check_paths(frame, graph)
    assert frame.height == 120
    for group in frame.partition_by("group_id"):
        assert group.height == 3
        assert group["nodes"].list.last().n_unique() == 1
        inner = group["nodes"].list.head(group["hops"][0]).explode()
        assert inner.n_unique() == inner.len()  # branches share only the answer
        assert graph.nodes[group["nodes"][0][-1]]["type"] == "disease"


def test_sampler_between_finds_shortest_paths_like_networkx(engine: Engine, graph: nx.MultiDiGraph) -> None:
    rng = np.random.default_rng(0)
    ids = np.array(engine.node_ids)
    pairs = [tuple(p) for p in rng.choice(ids[engine.degree > 0], size=(25, 2))]
    pairs.append(("hpo:missing", ids[0]))
    frame, report = paths_between(engine, pairs, k=4, max_hops=3, seed=1)
    check_paths(frame, graph)
    simple = nx.Graph(graph)
    for s, t in pairs[:-1]:
        mine = frame.filter((pl.col("nodes").list.first() == s) & (pl.col("nodes").list.last() == t))
        if s == t or not nx.has_path(simple, s, t) or nx.shortest_path_length(simple, s, t) > 3:
            assert mine.height == 0
            continue
        shortest = nx.shortest_path_length(simple, s, t)
        assert mine.height >= 1 and mine["hops"].min() == shortest
        assert mine["hops"].is_sorted() or mine.height <= 4
    assert report["unknown"] == [("hpo:missing", ids[0])]
    assert report["with_paths"] + len(report["no_path"]) + len(report["unknown"]) == report["pairs"] == 26


def test_hard_negatives_never_satisfy_the_pattern_in_the_full_graph(
    engine: Engine, graph: nx.MultiDiGraph, pruned: tuple[Snapshot, list[str]]
) -> None:
    snapshot, hubs = pruned
    frame, stats = sample_with_stats(open_engine(snapshot), "walk", 400, 9, hops="2-4", full=engine, negatives=3)
    assert not set(frame["nodes"].explode()) & set(hubs)
    assert check_negatives(frame, graph) >= 200
    assert stats.paths_without_negatives == int((frame["negatives"].list.len() == 0).sum())
    assert frame["negatives"].list.len().max() == 3


def test_sampling_a_graph_without_that_type_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="unknown start type 'drug'"):
        sample_paths(engine, "walk", 10, start_types=["drug"])
    with pytest.raises(ConfigError, match="unknown sampler 'nope'"):
        sample_paths(engine, "nope", 10)
    with pytest.raises(ConfigError, match="hop counts"):
        sample_paths(engine, "walk", 10, hops="0-2")
    with pytest.raises(ConfigError, match=r"takes no option\(s\) \['max_hops'\].*start_types"):
        sample_paths(engine, "walk", 10, max_hops=3)
