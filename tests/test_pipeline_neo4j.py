"""The pipeline with a graph store: the snapshot is pushed to a real Bolt server and paths
are sampled there with Cypher; credentials come from the environment only."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from bolt_server import USER, BoltServer

from kgsynth import pipeline
from kgsynth.config import load_config
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.rundir import RunDir

pytest_plugins = ["conftest_neo4j"]


@pytest.fixture()
def ear_source(hpo_ear_dir: Path, tmp_path: Path) -> Path:
    """The HPO ear slice as a plain edge list and node table, the way a user's own graph arrives."""
    snapshot = read_snapshot(hpo_ear_dir)
    snapshot.edges.select(pl.col("src").alias("head_id"), "relation", pl.col("dst").alias("tail_id")).write_csv(
        tmp_path / "edges.csv"
    )
    snapshot.nodes.select("id", "name", "type").write_csv(tmp_path / "nodes.csv")
    return tmp_path


def test_push_then_sample_with_cypher(ear_source: Path, neo4j_config, bolt_server: BoltServer | None,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    if bolt_server is None:
        pytest.skip("runs against the session's own Bolt server")
    password = neo4j_config.password.get_secret_value()
    monkeypatch.setenv("EAR_NEO4J_USER", USER)
    monkeypatch.setenv("EAR_NEO4J_PASSWORD", password)
    config_path = ear_source / "ear.yaml"
    config_path.write_text(
        f"""name: ear
source:
  format: edges
  paths: [edges.csv]
  vocabulary: hpo
  options: {{nodes: nodes.csv, namespace: ""}}
neo4j:
  uri: {neo4j_config.uri}
  database: {neo4j_config.database}
  user_env: EAR_NEO4J_USER
  password_env: EAR_NEO4J_PASSWORD
shatter: {{enabled: false}}
sample: {{source: neo4j, strategy: walk, n: 40, hops: 2-3, seed: 1}}
""",
        encoding="utf-8",
    )
    config = load_config(config_path)
    run = RunDir(ear_source / "run")
    assert pipeline.planned_stages(config)[:3] == ["load", "neo4j", "sample"]
    assert pipeline.is_network_stage("neo4j", config) and pipeline.is_network_stage("sample", config)

    pipeline.run_stage("load", config, run)
    snapshot = read_snapshot(run.snapshot)
    pushed = pipeline.run_stage("neo4j", config, run)
    assert pushed.summary["nodes"] == snapshot.manifest.counts.nodes
    assert pushed.summary["edges"] == snapshot.manifest.counts.edges
    assert pipeline.run_stage("neo4j", config, run).skipped

    sampled = pipeline.run_stage("sample", config, run)
    paths = pl.read_parquet(run.paths)
    assert sampled.summary["paths"] == paths.height > 0
    stored = set(snapshot.edges.select("src", "relation", "dst").iter_rows())
    for row in paths.iter_rows(named=True):
        assert 2 <= row["hops"] <= 3 and row["snapshot"] == snapshot.hash
        for a, relation, b, forward in zip(
            row["nodes"], row["relations"], row["nodes"][1:], row["forward"], strict=False
        ):
            assert ((a, relation, b) if forward else (b, relation, a)) in stored

    # hard negatives are proven on the snapshot for Cypher-sampled paths too, so their MCQ items are made
    assert sampled.summary["without_negatives"] < paths.height
    assert paths["negatives"].list.len().sum() > 0 and paths["unique_answer"].is_not_null().any()

    # the rest of the pipeline takes the Cypher-sampled paths like any others
    results = {r.stage: r for r in pipeline.run_pipeline(config, run)}
    assert [results[s].skipped for s in ("load", "neo4j", "sample")] == [True, True, True]
    assert results["generate"].summary["items"] > 0 and results["verify"].summary["accepted"] > 0
    assert (pl.read_parquet(run.items)["kind"] == "mcq").sum() > 0  # without negatives there would be none
    assert (run.dataset / "README.md").exists()

    # the password is read from the environment and written nowhere in the run directory
    for path in run.root.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".md", ".txt"}:
            assert password not in path.read_text(encoding="utf-8", errors="replace")
    assert json.loads((run.root / "neo4j.stamp.json").read_text())["params"]["password_env"] == "EAR_NEO4J_PASSWORD"
