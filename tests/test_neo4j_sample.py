"""Cypher sampling (walk, pattern) on a pushed HPO slice: valid, hub-free, reproducible paths."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import ConfigError, UnknownRelationError
from kgsynth.graph.snapshot import Snapshot
from kgsynth.graph.stats import degrees
from kgsynth.sample.paths import PATHS_SCHEMA, read_paths, write_paths
from kgsynth.stores import GraphStore, open_store
from kgsynth.stores.neo4j import HUB_PROPERTY, Neo4jConfig, connect
from kgsynth.stores.neo4j_pull import PullMapping
from kgsynth.stores.neo4j_sample import sample_paths_cypher

pytest_plugins = ["conftest_neo4j"]


def check_paths(paths: pl.DataFrame, snapshot: Snapshot) -> None:
    """Every hop is a stored edge walked in the stated direction; no node repeats; patterns name the types."""
    stored = set(snapshot.edges.select("src", "relation", "dst").iter_rows())
    type_of = dict(snapshot.nodes.select("id", "type").iter_rows())
    assert paths.height and list(paths.columns) == list(PATHS_SCHEMA)
    for row in paths.iter_rows(named=True):
        nodes, relations, forward = row["nodes"], row["relations"], row["forward"]
        assert len(nodes) == len(relations) + 1 == row["hops"] + 1 == len(forward) + 1
        assert len(set(nodes)) == len(nodes)
        for a, relation, b, fwd in zip(nodes, relations, nodes[1:], forward, strict=False):
            assert ((a, relation, b) if fwd else (b, relation, a)) in stored
        words = row["pattern"].split()
        assert words[0::2] == [type_of[n] for n in nodes]
        assert row["snapshot"] == snapshot.hash and row["path_id"]


def test_walks_are_valid_reproducible_and_split_over_hop_counts(eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot) -> None:
    hubs = degrees(hpo_eye).sort("degree", descending=True).head(25)["id"].to_list()
    paths = sample_paths_cypher(eye_in_neo4j, "walk", n=40, seed=11, hops="2-3", hubs=hubs)
    check_paths(paths, hpo_eye)
    assert paths["hops"].value_counts().sort("hops").rows() == [(2, 20), (3, 20)]
    assert paths["strategy"].unique().to_list() == ["walk"] and paths["seed"].unique().to_list() == [11]
    assert paths["path_id"].n_unique() == 40
    assert paths.select("nodes", "relations", "forward").unique().height == 40
    assert sample_paths_cypher(eye_in_neo4j, "walk", n=40, seed=11, hops="2-3").equals(paths)
    other = sample_paths_cypher(eye_in_neo4j, "walk", n=40, seed=12, hops="2-3")
    assert not other["nodes"].equals(paths["nodes"])


def test_walks_follow_only_the_named_relations_from_the_named_types(
    eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot
) -> None:
    paths = sample_paths_cypher(eye_in_neo4j, "walk", n=20, seed=3, hops=2, hubs=[],
                                relations=["has_phenotype", "is_a"], start_types=["disease"])
    check_paths(paths, hpo_eye)
    assert set(paths["relations"].explode().to_list()) <= {"has_phenotype", "is_a"}
    assert {p.split()[0] for p in paths["pattern"]} == {"disease"}


def test_patterns_match_types_relations_and_directions(
    eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot, tmp_path: Path
) -> None:
    pattern = "gene -gene_associated_with_phenotype-> phenotype <-has_phenotype- disease"
    paths = sample_paths_cypher(eye_in_neo4j, "pattern", n=25, seed=5, patterns=pattern, hubs=[])
    check_paths(paths, hpo_eye)
    assert paths.height == 25 and set(paths["pattern"]) == {pattern}
    assert paths["forward"].to_list() == [[True, False]] * 25
    assert read_paths(write_paths(paths, tmp_path / "paths.parquet")).equals(paths)


def test_hubs_are_flagged_in_the_database_and_never_on_a_path(
    eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot, tmp_path: Path
) -> None:
    hubs = degrees(hpo_eye).sort("degree", descending=True).head(25)["id"].to_list()
    hubs_json = tmp_path / "hubs.json"
    hubs_json.write_text(json.dumps({"removed": [{"id": h, "reason": "k-shattering"} for h in hubs]}))
    avoided = sample_paths_cypher(eye_in_neo4j, "walk", n=40, seed=1, hops=3, hubs=hubs_json)
    check_paths(avoided, hpo_eye)
    assert not set(avoided["nodes"].explode().to_list()) & set(hubs)
    with connect(eye_in_neo4j) as store:
        flagged = store.read(f"MATCH (n:Entity) WHERE n.{HUB_PROPERTY} = true RETURN n.id AS id")
    assert sorted(r["id"] for r in flagged) == sorted(hubs)
    kept = sample_paths_cypher(eye_in_neo4j, "walk", n=20, seed=2, hops=3)  # hubs=None keeps the flags
    assert not set(kept["nodes"].explode().to_list()) & set(hubs)
    free = sample_paths_cypher(eye_in_neo4j, "walk", n=40, seed=1, hops=3, hubs=[])
    assert set(free["nodes"].explode().to_list()) & set(hubs)  # the busiest nodes are hard to miss


def test_templates_split_n_and_allow_alternatives(eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot) -> None:
    templates = ["disease|gene -*-> phenotype -is_a-> phenotype", "phenotype <-has_phenotype- disease"]
    paths = sample_paths_cypher(eye_in_neo4j, "pattern", n=21, seed=9, patterns=templates, hubs=[])
    check_paths(paths, hpo_eye)
    first, second = paths.head(11), paths.tail(10)
    assert {p.split()[0] for p in first["pattern"]} <= {"disease", "gene"}
    assert set(first["relations"].list.get(1)) == {"is_a"} and set(second["pattern"]) == {templates[1]}


def test_names_outside_the_vocabulary_are_refused(eye_in_neo4j: Neo4jConfig) -> None:
    with pytest.raises(UnknownRelationError, match="treats"):
        sample_paths_cypher(eye_in_neo4j, "pattern", n=5, seed=0, patterns="disease -treats-> phenotype")
    with pytest.raises(UnknownRelationError, match="drug"):
        sample_paths_cypher(eye_in_neo4j, "pattern", n=5, seed=0, patterns="drug -has_phenotype-> phenotype")
    with pytest.raises(UnknownRelationError, match="IS_A"):
        sample_paths_cypher(eye_in_neo4j, "walk", n=5, seed=0, relations=["IS_A`]-() DETACH DELETE (n"])
    with pytest.raises(ConfigError, match="does not take end_types, max_per_pattern"):
        sample_paths_cypher(eye_in_neo4j, "walk", n=5, seed=0, end_types=["gene"], max_per_pattern=0.1)
    with pytest.raises(ConfigError, match="should be -relation->"):
        sample_paths_cypher(eye_in_neo4j, "pattern", n=5, seed=0, patterns="disease <-has_phenotype-> phenotype")


def test_store_neo4j_reads_and_samples_through_the_protocol(eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot) -> None:
    store = open_store("neo4j", config=eye_in_neo4j)
    try:
        assert isinstance(store, GraphStore) and store.snapshot().hash == hpo_eye.hash
        hubs = degrees(hpo_eye).sort("degree", descending=True).head(10)["id"].to_list()
        paths = store.sample_paths("walk", n=12, seed=4, hops=2, exclude=hubs)  # the in-memory samplers' words
        check_paths(paths, hpo_eye)
        assert not set(paths["nodes"].explode().to_list()) & set(hubs)
    finally:
        store.close()


def test_store_memory_reads_and_samples_through_the_protocol(hpo_eye_dir: Path, hpo_eye: Snapshot) -> None:
    store = open_store("memory", path=hpo_eye_dir)
    assert isinstance(store, GraphStore) and store.snapshot().hash == hpo_eye.hash
    hubs = degrees(hpo_eye).sort("degree", descending=True).head(10)["id"].to_list()
    paths = store.sample_paths("walk", n=12, seed=4, hops=2, exclude=hubs)
    check_paths(paths, hpo_eye)
    assert not set(paths["nodes"].explode().to_list()) & set(hubs)


def test_sampling_a_mapped_graph_kgsynth_did_not_push(neo4j_config: Neo4jConfig) -> None:
    with connect(neo4j_config) as store:
        store.write(
            lambda tx: tx.run(
                "CREATE (a:Symptom {code: 'S1'}), (b:Symptom {code: 'S2'}), (c:Illness {code: 'I1'}), "
                "(x:Other {code: 'X'}), (c)-[:SHOWS]->(a), (c)-[:SHOWS]->(b), (a)-[:BROADER]->(b), (x)-[:SHOWS]->(a)"
            ).consume(),
            what="creating a user graph",
        )
    mapping = PullMapping(vocabulary="hpo", labels={"Symptom": "phenotype", "Illness": "disease"},
                          relationship_types={"SHOWS": "has_phenotype", "BROADER": "is_a"}, id_prefix="u:",
                          id_property="code", name="clinic")
    paths = sample_paths_cypher(neo4j_config, "walk", n=10, seed=0, hops=2, mapping=mapping, max_attempts=400)
    assert set(paths["nodes"].explode().to_list()) <= {"u:S1", "u:S2", "u:I1"}  # never the unmapped node
    assert paths.height == 6 and set(paths["snapshot"]) == {"neo4j:clinic"}  # the triangle's six simple 2-hop paths


def test_a_symmetric_relation_matches_either_stored_direction(neo4j_config: Neo4jConfig) -> None:
    with connect(neo4j_config) as store:
        store.write(
            lambda tx: tx.run(
                "CREATE (a:Medicine {id: 'a'}), (b:Medicine {id: 'b'}), (c:Medicine {id: 'c'}), "
                "(a)-[:INTERACTS]->(b), (c)-[:INTERACTS]->(a)"
            ).consume(),
            what="creating a user graph",
        )
    mapping = PullMapping(vocabulary="primekg", labels={"Medicine": "drug"},
                          relationship_types={"INTERACTS": "drug_drug"}, name="ddi")
    template = "drug -drug_drug-> drug -drug_drug-> drug"
    paths = sample_paths_cypher(neo4j_config, "pattern", n=5, seed=0, patterns=template, mapping=mapping,
                                max_attempts=200)
    assert sorted(paths["nodes"].to_list()) == [["b", "a", "c"], ["c", "a", "b"]]
    assert set(paths["pattern"]) == {"drug -drug_drug- drug -drug_drug- drug"}


def test_cypher_paths_get_hard_negatives_and_unique_answers_from_the_snapshot(
    eye_in_neo4j: Neo4jConfig, hpo_eye_dir: Path, hpo_eye: Snapshot, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from kgsynth.cli import main
    from kgsynth.generate import WRITERS, generate_items
    from kgsynth.verify import verify_items

    for name, value in (("NEO4J_URI", eye_in_neo4j.uri), ("NEO4J_USER", eye_in_neo4j.user),
                        ("NEO4J_PASSWORD", eye_in_neo4j.password.get_secret_value()),
                        ("NEO4J_DATABASE", eye_in_neo4j.database or "")):
        monkeypatch.setenv(name, value)
    out = tmp_path / "paths.parquet"
    argv = ["neo4j", "sample", "-n", "40", "--seed", "4", "--hops", "2-3", "--snapshot", str(hpo_eye_dir), "--out", str(out)]
    try:
        main(argv)
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    summary = " ".join(capsys.readouterr().err.split())
    assert "hard negatives:" in summary and "unique answer (open questions):" in summary
    paths = read_paths(out)
    check_paths(paths, hpo_eye)
    assert (paths["negatives"].list.len() > 0).mean() > 0.5 and paths["unique_answer"].null_count() == 0
    bare = sample_paths_cypher(eye_in_neo4j, "walk", n=40, seed=4, hops="2-3")
    assert bare.drop("negatives", "unique_answer").equals(paths.drop("negatives", "unique_answer"))
    assert bare["negatives"].list.len().sum() == 0  # without a snapshot: none

    items = generate_items(paths, hpo_eye, writer=WRITERS.get("template")(None), out=tmp_path / "items.parquet", min_options=2)
    made = pl.read_parquet(items.out)
    assert made.filter(pl.col("kind") == "mcq").height > 15
    assert items.rejected.get("too_few_negatives", 0) < 20
    result = verify_items(made, hpo_eye, checks=["edges", "answer", "pattern"])
    assert result.rejected.height == 0, result.summary["by_reason"]  # no valid distractor, no open item with other answers
