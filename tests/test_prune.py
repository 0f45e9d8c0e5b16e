"""k-Shattering and the degree rule on a small real HPO graph; the shatter and sample commands."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest
from test_cli_graph import _run
from test_engine import small_hpo

from kgsynth.errors import ConfigError, OutputError
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import Snapshot, read_snapshot, write_snapshot
from kgsynth.prune import shatter, write_shatter
from kgsynth.prune.shortest import ShortestPaths, simple_adjacency
from kgsynth.sample import sample_paths
from kgsynth.sample.paths import read_paths


@pytest.fixture(scope="module")
def small_dir(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prune") / "small"
    write_snapshot(small_hpo(read_snapshot(hpo_snapshot_dir), diseases=300), out)
    return out


@pytest.fixture(scope="module")
def small(small_dir: Path) -> Snapshot:
    return read_snapshot(small_dir)


@pytest.fixture(scope="module")
def shattered(small: Snapshot):
    return shatter(small, k=20, pairs=400, seed=3, budget=30)


def test_shortest_paths_are_shortest_and_uniform(small: Snapshot) -> None:
    engine = open_engine(small)
    graph = nx.Graph(engine.to_networkx())
    finder = ShortestPaths(simple_adjacency(engine), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    sources, targets = rng.integers(0, engine.n_nodes, 60), rng.integers(0, engine.n_nodes, 60)
    for s, t, path in zip(sources, targets, finder.paths(sources, targets), strict=True):
        a, b = engine.node_ids[s], engine.node_ids[t]
        if s == t or not nx.has_path(graph, a, b):
            assert path is None
            continue
        assert path[0] == s and path[-1] == t and len(path) - 1 == nx.shortest_path_length(graph, a, b)
        assert all(graph.has_edge(engine.node_ids[u], engine.node_ids[v]) for u, v in zip(path, path[1:], strict=False))
    # one pair with several shortest paths: each is drawn about equally often
    s, t = next((s, t) for s, t in zip(sources, targets, strict=False) if s != t and len(list(nx.all_shortest_paths(graph, engine.node_ids[s], engine.node_ids[t]))) >= 3)
    everyone = [tuple(engine.index_of(x) for x in p) for p in nx.all_shortest_paths(graph, engine.node_ids[s], engine.node_ids[t])]
    drawn = finder.paths(np.full(3000, s), np.full(3000, t))
    counts = {p: 0 for p in everyone}
    for path in drawn:
        counts[tuple(path.tolist())] += 1
    assert min(counts.values()) > 0.5 * 3000 / len(everyone)


def test_rule_shortcut_removes_the_heaviest_hubs_until_loads_fall_under_1_over_k(small: Snapshot, shattered) -> None:
    hubs, before, after = shattered.hubs, shattered.report["before"], shattered.report["after"]
    assert hubs and after["max_load"] <= 1 / 20 < before["max_load"]
    assert hubs[0]["name"] in {"Autosomal recessive inheritance", "Autosomal dominant inheritance"}
    assert [h["round"] for h in hubs] == list(range(1, len(hubs) + 1))
    assert all(h["shortcut_load"] > 1 / 20 for h in hubs)
    assert after["nodes_removed"] == len(hubs) and after["nodes"] == before["nodes"] - len(hubs)
    assert after["mean_path_length"] >= before["mean_path_length"]
    assert 0 < before["share_through_removed"] <= 1


def test_pruned_snapshot_drops_hubs_and_distances_never_shrink(small: Snapshot, shattered) -> None:
    removed = {h["id"] for h in shattered.hubs}
    pruned = shattered.snapshot
    assert not removed & set(pruned.nodes["id"])
    assert not removed & (set(pruned.edges["src"]) | set(pruned.edges["dst"]))
    assert pruned.edges.height == small.edges.height - shattered.report["after"]["edges_removed"]
    parent = pruned.manifest.parent
    assert parent["hash"] == small.hash and parent["params"]["k"] == 20 and len(parent["params_hash"]) == 64
    full = nx.Graph(open_engine(small).to_networkx())
    cut = full.subgraph(set(full) - removed)
    ids = sorted(cut)
    rng = np.random.default_rng(0)
    for a, b in rng.choice(ids, size=(40, 2)):
        if nx.has_path(cut, a, b):
            assert nx.shortest_path_length(cut, a, b) >= nx.shortest_path_length(full, a, b)


def test_removed_hubs_never_appear_in_paths_sampled_on_the_pruned_graph(shattered, tmp_path: Path) -> None:
    out = write_shatter(shattered, tmp_path / "pruned")
    engine = open_engine(read_snapshot(out))
    frame = pl.concat([
        sample_paths(engine, "walk", 300, 1, hops="2-4", negatives=0),
        sample_paths(engine, "rare-chain", 100, 1, negatives=0),
        sample_paths(engine, "convergent", 100, 1, negatives=0),
    ])
    assert not {h["id"] for h in shattered.hubs} & set(frame["nodes"].explode())


def test_write_shatter_writes_snapshot_hubs_and_report_together(shattered, small: Snapshot, tmp_path: Path) -> None:
    out = write_shatter(shattered, tmp_path / "pruned")
    assert read_snapshot(out).hash == shattered.snapshot.hash
    hubs = json.loads((out / "hubs.json").read_text())
    assert hubs["parent_hash"] == small.hash and hubs["pruned_hash"] == shattered.snapshot.hash
    assert [r["id"] for r in hubs["removed"]] == [h["id"] for h in shattered.hubs]
    assert set(hubs["removed"][0]) == {"id", "name", "type", "degree", "shortcut_load", "round", "reason"}
    assert hubs["before"]["connected_pairs"] > 0 and hubs["params"]["rule"] == "shortcut"
    report = (out / "report.md").read_text()
    assert "Autosomal" in report and "| largest connected component |" in report
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a kgsynth snapshot"):
        write_shatter(shattered, busy)
    assert (busy / "notes.txt").read_text() == "mine" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_write_shatter_failing_mid_write_keeps_the_previous_output(shattered, tmp_path: Path) -> None:
    out = write_shatter(shattered, tmp_path / "pruned")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # the snapshot files are written first; a hub record that is not JSON fails after them
    bad = dataclasses.replace(shattered, hubs=[*shattered.hubs, {"id": "x", "degree": np.int64(3)}])
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_shatter(bad, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["pruned"]


def test_protected_types_and_ids_are_never_removed(small: Snapshot, shattered) -> None:
    first = shattered.hubs[0]["id"]
    kept = shatter(small, k=60, pairs=400, seed=3, budget=30, protect_ids=[first])
    assert first not in {h["id"] for h in kept.hubs} and kept.hubs
    assert kept.report["after"]["top_loads"][first] > 1 / 60  # still carries paths, yet stays
    typed = shatter(small, k=60, pairs=400, seed=3, budget=30, protect_types=["phenotype"])
    assert all(h["type"] != "phenotype" for h in typed.hubs)
    with pytest.raises(ConfigError, match="not in the graph"):
        shatter(small, protect_ids=["hpo:nope"])


def test_rule_degree_by_threshold_and_percentile_per_type(small: Snapshot) -> None:
    engine = open_engine(small)
    by_max = shatter(small, rule="degree", max_degree=150, pairs=200)
    expected = {engine.node_ids[i] for i in np.flatnonzero(engine.degree > 150)}
    assert {h["id"] for h in by_max.hubs} == expected and all("> 150" in h["reason"] for h in by_max.hubs)
    per_type = shatter(small, rule="degree", percentile=99, per_type=True, pairs=200)
    assert {h["type"] for h in per_type.hubs} >= {"phenotype", "disease"}
    with pytest.raises(ConfigError, match="exactly one"):
        shatter(small, rule="degree", pairs=200)
    with pytest.raises(ConfigError, match="takes no option"):
        shatter(small, rule="shortcut", max_degree=3)


def test_same_seed_same_hubs(small: Snapshot, shattered) -> None:
    again = shatter(small, k=20, pairs=400, seed=3, budget=30)
    assert again.hubs == shattered.hubs and again.snapshot.hash == shattered.snapshot.hash


def test_shatter_and_sample_commands(small_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pruned"
    code, err = _run(capsys, "shatter", str(small_dir), "--k", "20", "--pairs", "300", "--out", str(out))
    assert code == 0 and "shattered hpo-small" in err and "report:" in err
    assert json.loads((out / "hubs.json").read_text())["removed"]
    paths = tmp_path / "paths.parquet"
    code, err = _run(capsys, "sample", str(out), "--full", str(small_dir), "-n", "200", "--hops", "2-3", "--seed", "4", "--out", str(paths))
    assert code == 0 and "sampled 200 walk paths" in err and "by hops: 2: 100, 3: 100" in err
    frame = read_paths(paths)
    assert frame.height == 200 and set(frame["snapshot"]) == {read_snapshot(out).hash}
    pairs = tmp_path / "pairs.csv"
    pl.DataFrame({"src": frame["nodes"].list.first(), "dst": frame["nodes"].list.last()}).head(20).write_csv(pairs)
    code, err = _run(capsys, "sample", str(out), "--strategy", "between", "--pairs", str(pairs), "--out", str(tmp_path / "b.parquet"))
    assert code == 0 and "pairs: 20, with paths 20" in err
    code, err = _run(capsys, "sample", str(out), "--strategy", "walk", "--hops", "2-x", "--out", str(tmp_path / "bad.parquet"))
    assert code == 2 and "error:" in err and "'2-x'" in err and not (tmp_path / "bad.parquet").exists()
    code, err = _run(capsys, "sample", str(out), "--strategy", "between", "--pairs", str(small_dir / "manifest.json"))
    assert code == 2 and "manifest.json" in err
