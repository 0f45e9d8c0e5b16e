"""Push, pull and faults against a real Bolt server (ArcadeDB, or Neo4j when NEO4J_URI is set)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import neo4j
import polars as pl
import pytest
from pydantic import SecretStr

from bolt_server import BoltServer, free_port
from kgsynth.errors import ConfigError, StoreError, UnknownRelationError
from kgsynth.graph.snapshot import Snapshot, build_snapshot, read_snapshot, write_snapshot
from kgsynth.graph.vocabulary import NodeType
from kgsynth.stores.neo4j import Neo4jConfig, RetryPolicy, connect, relationship_type
from kgsynth.stores.neo4j_pull import PullMapping, pull_snapshot, read_mapping
from kgsynth.stores.neo4j_push import push_snapshot, resume_file

pytest_plugins = ["conftest_neo4j"]


def database_counts(config: Neo4jConfig) -> tuple[dict[str, int], dict[str, int], int]:
    """Nodes per label, relationships per type and :Entity nodes, counted with a plain driver."""
    auth = (config.user, config.password.get_secret_value())
    with neo4j.GraphDatabase.driver(config.uri, auth=auth) as driver, driver.session(database=config.database) as s:
        labels = {}
        for label in ("Phenotype", "Disease", "Gene"):
            labels[label] = s.run(f"MATCH (n:{label}) RETURN count(n) AS c").single()["c"]
        types = {r["t"]: r["c"] for r in s.run("MATCH ()-[r]->() WITH type(r) AS t, count(*) AS c RETURN t, c")}
        entities = s.run("MATCH (n:Entity) RETURN count(n) AS c").single()["c"]
    return labels, types, entities


def expected_counts(snapshot: Snapshot) -> tuple[dict[str, int], dict[str, int], int]:
    counts = snapshot.manifest.counts
    labels = {snapshot.vocabulary.node_types[t].neo4j_label: n for t, n in counts.node_types.items()}
    types = {relationship_type(r): n for r, n in counts.relations.items()}
    return labels, types, counts.nodes


def test_push_matches_the_snapshot_and_a_second_push_changes_nothing(
    eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot, tmp_path: Path
) -> None:
    assert database_counts(eye_in_neo4j) == expected_counts(hpo_eye)

    node = hpo_eye.nodes.filter(hpo_eye.nodes["synonyms"].list.len() > 1).row(0, named=True)
    edge = hpo_eye.edges.row(0, named=True)
    with connect(eye_in_neo4j) as store:
        stored = store.read("MATCH (n:Entity {id: $id}) RETURN n.name AS name, n.synonyms AS synonyms, "
                            "n.source_id AS source_id, labels(n) AS labels", id=node["id"])[0]
        rel = store.read(
            "MATCH (s:Entity {id: $src})-[r]->(t:Entity {id: $dst}) RETURN type(r) AS type, r.relation AS relation",
            src=edge["src"], dst=edge["dst"],
        )
    assert stored["name"] == node["name"] and sorted(stored["synonyms"]) == node["synonyms"]
    assert sorted(stored["labels"]) == ["Entity", hpo_eye.vocabulary.node_types[node["type"]].neo4j_label]
    assert rel == [{"type": relationship_type(edge["relation"]), "relation": edge["relation"]}]

    again = push_snapshot(eye_in_neo4j, hpo_eye, batch_size=4000, resume_dir=tmp_path)
    assert database_counts(eye_in_neo4j) == expected_counts(hpo_eye)
    assert again.edges == hpo_eye.edges.height and again.resumed_batches == 0 and again.retries == 0
    assert again.types == expected_counts(hpo_eye)[1]
    assert not resume_file(hpo_eye, eye_in_neo4j, tmp_path).exists()  # a finished push leaves no resume point


def test_a_node_pushed_earlier_with_another_type_is_an_error_not_a_silent_relabel(
    neo4j_config: Neo4jConfig, hpo_ear: Snapshot, tmp_path: Path
) -> None:
    node = hpo_ear.nodes.filter(pl.col("type") == "phenotype").head(1)
    as_phenotype = build_snapshot(node, hpo_ear.edges.head(0), vocabulary=hpo_ear.vocabulary, name="a", loader="test")
    as_gene = build_snapshot(node.with_columns(type=pl.lit("gene")), hpo_ear.edges.head(0),
                             vocabulary=hpo_ear.vocabulary, name="b", loader="test")
    push_snapshot(neo4j_config, as_phenotype, resume_dir=tmp_path)
    with pytest.raises(StoreError, match=rf"node '{node['id'][0]}' already exists with labels .*Phenotype"):
        push_snapshot(neo4j_config, as_gene, resume_dir=tmp_path)
    assert database_counts(neo4j_config)[0] == {"Phenotype": 1, "Disease": 0, "Gene": 0}


def test_pull_gives_back_the_same_snapshot(eye_in_neo4j: Neo4jConfig, hpo_eye: Snapshot, tmp_path: Path) -> None:
    pulled = pull_snapshot(eye_in_neo4j, page_size=700)  # many pages, some ending mid-label
    assert pulled.hash == hpo_eye.hash
    assert pulled.manifest.counts == hpo_eye.manifest.counts
    assert pulled.manifest.loader == "neo4j" and pulled.manifest.dropped == {}
    assert pulled.manifest.source_info == hpo_eye.manifest.source_info
    assert pulled.vocabulary.relations == hpo_eye.vocabulary.relations
    written = read_snapshot(write_snapshot(pulled, tmp_path / "pulled"))
    assert written.hash == hpo_eye.hash


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("KGSYNTH_NEO4J_FULL_HPO"),
                    reason="pushing all 565k HPO relationships takes minutes; set KGSYNTH_NEO4J_FULL_HPO=1")
def test_the_full_hpo_round_trips(neo4j_config: Neo4jConfig, hpo_snapshot: Snapshot, tmp_path: Path) -> None:
    push_snapshot(neo4j_config, hpo_snapshot, resume_dir=tmp_path)
    assert database_counts(neo4j_config) == expected_counts(hpo_snapshot)
    assert pull_snapshot(neo4j_config).hash == hpo_snapshot.hash


def test_pull_with_a_mapping_reads_a_graph_kgsynth_did_not_push(neo4j_config: Neo4jConfig, tmp_path: Path) -> None:
    with connect(neo4j_config) as store:
        store.write(
            lambda tx: tx.run(
                "CREATE (a:Symptom {code: 1, label: 'Fever', alt: 'Pyrexia'}), (b:Symptom {code: 2, label: 'Pain'}), "
                "(c:Illness {code: 10, label: 'Flu'}), (d:Illness {label: 'no code'}), (x:Other {code: 99}), "
                "(c)-[:SHOWS {origin: 'clinic'}]->(a), (c)-[:SHOWS]->(b), (a)-[:BROADER]->(b), "
                "(c)-[:LIKES]->(a), (c)-[:SHOWS]->(x)"
            ).consume(),
            what="creating a user graph",
        )
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(
        "vocabulary: hpo\n"
        "labels: {Symptom: phenotype, Illness: disease}\n"
        "relationship_types: {SHOWS: has_phenotype, BROADER: is_a}\n"
        "id_property: code\nname_property: label\nsynonyms_property: alt\nsource_property: origin\n"
        "id_prefix: 'clinic:'\nname: clinic\n",
        encoding="utf-8",
    )
    pulled = pull_snapshot(neo4j_config, mapping=read_mapping(mapping_file), page_size=1)
    nodes = {r["id"]: (r["name"], r["type"], r["synonyms"]) for r in pulled.nodes.iter_rows(named=True)}
    assert nodes == {
        "clinic:1": ("Fever", "phenotype", ["Pyrexia"]),
        "clinic:2": ("Pain", "phenotype", []),
        "clinic:10": ("Flu", "disease", []),
    }
    edges = sorted((r["src"], r["relation"], r["dst"], r["source"]) for r in pulled.edges.iter_rows(named=True))
    assert edges == [
        ("clinic:1", "is_a", "clinic:2", None),
        ("clinic:10", "has_phenotype", "clinic:1", "clinic"),
        ("clinic:10", "has_phenotype", "clinic:2", None),
    ]
    assert pulled.manifest.dropped == {
        "nodes of label Illness without the id property 'code'": 1,
        "relationships of types the mapping does not name": 1,
        "relationships to nodes outside the mapped labels": 1,
    }


def test_pull_of_a_graph_without_metadata_asks_for_a_mapping(neo4j_config: Neo4jConfig) -> None:
    with pytest.raises(StoreError, match="--mapping"):
        pull_snapshot(neo4j_config)


def test_a_mapping_with_an_unsafe_label_is_refused(tmp_path: Path) -> None:
    mapping = PullMapping(vocabulary="hpo", labels={"Symptom`) DETACH DELETE (n": "phenotype"}, relationship_types={})
    closed = Neo4jConfig(uri=f"bolt://127.0.0.1:{free_port()}", password=SecretStr("x"))
    with pytest.raises(ConfigError, match="not a plain Neo4j identifier"):
        pull_snapshot(closed, mapping=mapping)


def test_unknown_relation_or_unsafe_label_is_refused_before_connecting(hpo_eye: Snapshot) -> None:
    # Nothing listens on this port: reaching it would raise StoreError, not these errors.
    closed = Neo4jConfig(uri=f"bolt://127.0.0.1:{free_port()}", password=SecretStr("x"))
    vocabulary = hpo_eye.vocabulary
    no_is_a = replace(vocabulary, relations={k: v for k, v in vocabulary.relations.items() if k != "is_a"})
    with pytest.raises(UnknownRelationError, match="is_a"):
        push_snapshot(closed, _with_vocabulary(hpo_eye, no_is_a))
    hostile = NodeType(name="gene", label="gene", neo4j_label="Gene`) DETACH DELETE (n")
    bad_label = replace(vocabulary, node_types={**vocabulary.node_types, "gene": hostile})
    with pytest.raises(ConfigError, match="Neo4j label"):
        push_snapshot(closed, _with_vocabulary(hpo_eye, bad_label))
    no_gene = replace(vocabulary, node_types={k: v for k, v in vocabulary.node_types.items() if k != "gene"})
    with pytest.raises(UnknownRelationError, match="'gene'"):
        push_snapshot(closed, _with_vocabulary(hpo_eye, no_gene))


def _with_vocabulary(snapshot: Snapshot, vocabulary) -> Snapshot:
    return Snapshot(manifest=snapshot.manifest, vocabulary=vocabulary, _nodes=snapshot.nodes, _edges=snapshot.edges)


def test_wrong_password_and_server_down_are_one_clear_error(neo4j_config: Neo4jConfig) -> None:
    planted = "planted-Secret-7f3a9c"
    wrong = neo4j_config.model_copy(update={"password": SecretStr(planted)})
    with pytest.raises(StoreError) as refused:
        connect(wrong)
    assert "refused the login" in str(refused.value) and planted not in str(refused.value)
    assert refused.value.__cause__ is None and planted not in repr(wrong)
    down = wrong.model_copy(update={"uri": f"bolt://127.0.0.1:{free_port()}"})
    with pytest.raises(StoreError, match="cannot reach Neo4j at bolt://127.0.0.1"):
        connect(down)


# --- a server killed mid-load ---------------------------------------------------------


@pytest.fixture()
def killable(bolt_server: BoltServer | None) -> BoltServer:
    if bolt_server is None:
        pytest.skip("needs the ArcadeDB stand-in: a Neo4j from NEO4J_URI is not killed by the tests")
    yield bolt_server
    if bolt_server.process is None or bolt_server.process.poll() is not None:
        bolt_server.start()  # leave a running server for the next test


def test_a_push_that_gave_up_resumes_and_a_lost_connection_is_retried(
    killable: BoltServer, neo4j_config: Neo4jConfig, hpo_ear: Snapshot, tmp_path: Path
) -> None:
    def kill_after_six(done: int, total: int) -> None:
        if done == 6:
            killable.kill()

    with pytest.raises(StoreError, match="re-run the same command to resume") as gave_up:
        push_snapshot(neo4j_config, hpo_ear, batch_size=250, resume_dir=tmp_path,
                      policy=RetryPolicy(first_delay=0.2, budget=1.0), on_batch=kill_after_six)
    assert killable.password not in str(gave_up.value)
    state = json.loads(resume_file(hpo_ear, neo4j_config, tmp_path).read_text())
    assert state["done"] == 6 and killable.password not in json.dumps(state)

    killable.start()
    restarted: list[threading.Thread] = []

    def crash_and_recover(done: int, total: int) -> None:
        if done == 10 and not restarted:  # the server dies again; this time it comes back while we retry
            killable.kill()
            restarted.append(threading.Thread(target=killable.start))
            restarted[0].start()

    report = push_snapshot(neo4j_config, hpo_ear, batch_size=250, resume_dir=tmp_path,
                           policy=RetryPolicy(first_delay=0.5, max_delay=4.0, budget=240.0),
                           on_batch=crash_and_recover)
    restarted[0].join()
    assert report.resumed_batches == 6 and report.retries >= 1
    assert database_counts(neo4j_config) == expected_counts(hpo_ear)
