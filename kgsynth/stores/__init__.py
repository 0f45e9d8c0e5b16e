"""Graph stores behind one small protocol: where a graph lives, and how to read it.

Two stores: `memory`, the embedded default (a snapshot directory opened as the
in-memory CSR engine), and `neo4j` (a Neo4j database through the official
driver, see `kgsynth.stores.neo4j`). Either hands back a snapshot and samples
paths into the same paths table, so `kgsynth sample --store neo4j` and the
default differ only in where the graph work runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import polars as pl

from kgsynth.graph.snapshot import Snapshot
from kgsynth.registry import Registry


@runtime_checkable
class GraphStore(Protocol):
    name: str

    def snapshot(self) -> Snapshot:
        """The whole graph as a snapshot."""
        ...

    def sample_paths(self, strategy: str = "walk", *, n: int, seed: int, **params: Any) -> pl.DataFrame:
        """A paths table (`kgsynth.sample.paths.PATHS_SCHEMA`); `exclude` names hubs to avoid."""
        ...

    def close(self) -> None: ...


STORES: Registry[Callable[..., GraphStore]] = Registry("store")


@STORES.register("memory")
@dataclass
class MemoryStore:
    """A snapshot directory; sampling runs on its in-memory engine."""

    path: Path
    name: str = "memory"

    def snapshot(self) -> Snapshot:
        from kgsynth.graph.snapshot import read_snapshot

        return read_snapshot(self.path)

    def sample_paths(self, strategy: str = "walk", *, n: int, seed: int, **params: Any) -> pl.DataFrame:
        from kgsynth.graph.engine import open_engine
        from kgsynth.sample import sample_paths

        return sample_paths(open_engine(self.snapshot()), strategy, n, seed, **params)

    def close(self) -> None:
        pass


@STORES.register("neo4j")
@dataclass
class Neo4jGraphStore:
    """A Neo4j database (settings from NEO4J_* or `config`); `mapping` for graphs kgsynth did not push."""

    config: Any = None  # kgsynth.stores.neo4j.Neo4jConfig; None: from the environment
    mapping: Any = None  # kgsynth.stores.neo4j_pull.PullMapping
    name: str = "neo4j"
    _store: Any = field(default=None, repr=False)

    def _open(self):
        from kgsynth.stores.neo4j import connect

        if self._store is None:
            self._store = connect(self.config)
        return self._store

    def snapshot(self) -> Snapshot:
        from kgsynth.stores.neo4j_pull import pull_snapshot

        return pull_snapshot(self._open(), mapping=self.mapping)

    def sample_paths(self, strategy: str = "walk", *, n: int, seed: int, **params: Any) -> pl.DataFrame:
        from kgsynth.stores.neo4j_sample import sample_paths_cypher

        if "exclude" in params:  # the in-memory samplers' name for the hubs to avoid
            params["hubs"] = params.pop("exclude")
        return sample_paths_cypher(self._open(), strategy, n=n, seed=seed, mapping=self.mapping, **params)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def open_store(name: str, **options: Any) -> GraphStore:
    """A store by name: `memory` (path=SNAPSHOT_DIR) or `neo4j` (config=…, mapping=…)."""
    return STORES.get(name)(**options)
