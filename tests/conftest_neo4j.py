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
from kgsynth.stores.neo4j import Neo4jConfig, connect, pushed_snapshots
from kgsynth.stores.neo4j_push import push_snapshot

EYE = "hpo:HP:0000478"  # Abnormality of the eye
EAR = "hpo:HP:0000598"  # Abnormality of the ear


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
        empty_database(config)
        return config
    name = f"t{uuid.uuid4().hex[:12]}"
    bolt_server.create_database(name)
    return Neo4jConfig(uri=bolt_server.uri, user=USER, password=SecretStr(bolt_server.password), database=name)


def empty_database(config: Neo4jConfig) -> None:
    with connect(config) as store:
        while store.write(
            lambda tx: tx.run("MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS c").single()["c"],
            what="emptying the test database",
        ):
            pass


def hpo_slice(full: Snapshot, root: str, diseases: int, genes: int, name: str) -> Snapshot:
    """A real slice of the HPO: the phenotype subtree under `root`, the diseases and
    genes annotated with most of its terms, and every edge among these nodes."""
    edges = full.edges
    is_a = edges.filter(pl.col("relation") == "is_a")
    keep, frontier = {root}, {root}
    while frontier:
        frontier = set(is_a.filter(pl.col("dst").is_in(list(frontier)))["src"].to_list()) - keep
        keep |= frontier

    def most_annotated(relation: str, count: int) -> list[str]:
        hits = edges.filter((pl.col("relation") == relation) & pl.col("dst").is_in(list(keep)))
        ranked = hits.group_by("src").len().sort(["len", "src"], descending=[True, False])
        return ranked.head(count)["src"].to_list()

    ids = keep | set(most_annotated("has_phenotype", diseases))
    ids |= set(most_annotated("gene_associated_with_phenotype", genes))
    return build_snapshot(
        full.nodes.filter(pl.col("id").is_in(list(ids))),
        edges.filter(pl.col("src").is_in(list(ids)) & pl.col("dst").is_in(list(ids))),
        vocabulary=full.vocabulary,
        name=name,
        loader="hpo",
        source_info=full.manifest.source_info,
    )


@pytest.fixture(scope="session")
def hpo_eye_dir(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eye abnormalities (1,173 terms), 1,500 diseases, 800 genes: about 29k edges of all
    four relations. Big enough for many batches and pages, small enough to push several
    times per session; the full HPO goes through the integration test and the benchmark."""
    snapshot = hpo_slice(read_snapshot(hpo_snapshot_dir), EYE, 1500, 800, "hpo-eye")
    return write_snapshot(snapshot, tmp_path_factory.mktemp("hpo-eye") / "snapshot")


@pytest.fixture()
def hpo_eye(hpo_eye_dir: Path) -> Snapshot:
    return read_snapshot(hpo_eye_dir)


@pytest.fixture(scope="session")
def hpo_ear_dir(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ear abnormalities (307 terms), 300 diseases, 150 genes: a few thousand edges, for
    tests that push many times (faults, the command line)."""
    snapshot = hpo_slice(read_snapshot(hpo_snapshot_dir), EAR, 300, 150, "hpo-ear")
    return write_snapshot(snapshot, tmp_path_factory.mktemp("hpo-ear") / "snapshot")


@pytest.fixture()
def hpo_ear(hpo_ear_dir: Path) -> Snapshot:
    return read_snapshot(hpo_ear_dir)


@pytest.fixture(scope="session")
def eye_database(
    bolt_server: BoltServer | None, hpo_eye_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Neo4jConfig | None:
    """On the stand-in: a database holding the eye slice, pushed once for the session."""
    if bolt_server is None:
        return None
    bolt_server.create_database("eye")
    config = Neo4jConfig(uri=bolt_server.uri, user=USER, password=SecretStr(bolt_server.password), database="eye")
    push_snapshot(config, read_snapshot(hpo_eye_dir), resume_dir=tmp_path_factory.mktemp("resume"))
    return config


@pytest.fixture()
def eye_in_neo4j(eye_database: Neo4jConfig | None, hpo_eye: Snapshot, tmp_path: Path) -> Neo4jConfig:
    """The eye slice in a database. Tests using it may read, re-push and flag hubs, never
    change counts. A real Neo4j (one database, emptied by other tests) is re-filled when needed."""
    if eye_database is not None:
        return eye_database
    config = Neo4jConfig.from_env()
    with connect(config) as store:
        pushed = [(p.hash, p.status) for p in pushed_snapshots(store)]
    if pushed != [(hpo_eye.hash, "complete")]:
        empty_database(config)
        push_snapshot(config, hpo_eye, resume_dir=tmp_path)
    return config
