"""Fixtures for the Neo4j tests (registered with `pytest_plugins = ["conftest_neo4j"]`).

By default a real Bolt server (ArcadeDB, see `bolt_server.py`) is started once per
session on free loopback ports with a random password. With `NEO4J_URI` set (and
NEO4J_USER / NEO4J_PASSWORD / NEO4J_DATABASE), the same tests run against that
Neo4j instead; its database is emptied before each test, so point them at a
throw-away instance.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from pydantic import SecretStr

from bolt_server import USER, BoltServer
from kgsynth.graph.snapshot import Snapshot, build_snapshot, read_snapshot, write_snapshot
from kgsynth.stores.neo4j import Neo4jConfig

EYE = "hpo:HP:0000478"  # Abnormality of the eye: the root of the HPO slice the tests push


@pytest.fixture(scope="session")
def bolt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoltServer | None]:
    if os.environ.get("NEO4J_URI"):
        yield None
        return
    server = BoltServer(root=tmp_path_factory.mktemp("arcadedb"), password=f"kgsynth-{secrets.token_hex(12)}")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def neo4j_config(bolt_server: BoltServer | None) -> Neo4jConfig:
    """An empty database for one test."""
    if bolt_server is None:
        config = Neo4jConfig.from_env()
        _empty(config)
        return config
    name = f"t{uuid.uuid4().hex[:12]}"
    bolt_server.create_database(name)
    return Neo4jConfig(uri=bolt_server.uri, user=USER, password=SecretStr(bolt_server.password), database=name)


def _empty(config: Neo4jConfig) -> None:
    from kgsynth.stores.neo4j import connect

    with connect(config) as store:
        while store.write(
            lambda tx: tx.run("MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS c").single()["c"],
            what="emptying the test database",
        ):
            pass


@pytest.fixture(scope="session")
def hpo_eye_dir(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real slice of the HPO: the eye-abnormality subtree (1,173 terms), the 1,500
    diseases and 800 genes annotated with most of them, and every edge among these
    (about 29k of all four relations). Big enough for many batches, small enough to
    push several times per test session; the full HPO is pushed by the integration
    test and the benchmark."""
    full = read_snapshot(hpo_snapshot_dir)
    edges = full.edges
    is_a = edges.filter(pl.col("relation") == "is_a")
    keep, frontier = {EYE}, {EYE}
    while frontier:
        frontier = set(is_a.filter(pl.col("dst").is_in(list(frontier)))["src"].to_list()) - keep
        keep |= frontier

    def most_annotated(relation: str, count: int) -> list[str]:
        hits = edges.filter((pl.col("relation") == relation) & pl.col("dst").is_in(list(keep)))
        ranked = hits.group_by("src").len().sort(["len", "src"], descending=[True, False])
        return ranked.head(count)["src"].to_list()

    ids = keep | set(most_annotated("has_phenotype", 1500)) | set(most_annotated("gene_associated_with_phenotype", 800))
    snapshot = build_snapshot(
        full.nodes.filter(pl.col("id").is_in(list(ids))),
        edges.filter(pl.col("src").is_in(list(ids)) & pl.col("dst").is_in(list(ids))),
        vocabulary=full.vocabulary,
        name="hpo-eye",
        loader="hpo",
        source_info=full.manifest.source_info,
    )
    return write_snapshot(snapshot, tmp_path_factory.mktemp("hpo-eye") / "snapshot")


@pytest.fixture()
def hpo_eye(hpo_eye_dir: Path) -> Snapshot:
    return read_snapshot(hpo_eye_dir)
