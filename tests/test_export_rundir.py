"""A run directory for the export tests, made by the real stages on the real HPO graph.

Hubs are pruned by k-Shattering (`kgsynth.prune.shatter`), paths sampled from the
pruned graph by the `walk` sampler (1–5 hops, hard negatives from the full graph),
verbalized by the `openai` writer against the local OpenAI-compatible test
endpoint (so items carry real token usage and cost), and judged by `verify_items`
against the full graph with the removed hubs given to the shortcut check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from llm_server import LLMServer, echo_responder

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.generate import WRITERS, generate_items
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.llm import LLMConfig, Price
from kgsynth.prune import shatter, write_shatter
from kgsynth.rundir import RunDir
from kgsynth.sample import sample_paths
from kgsynth.sample.paths import write_paths
from kgsynth.verify import verify_items, write_verified

N_PATHS = 150
SAMPLE_SEED = 5
MODEL = "test-model"


def build_run_dir(root: Path, snapshot_dir: Path) -> Path:
    """Write a complete run directory under `root` from the HPO snapshot at `snapshot_dir`."""
    run = RunDir(root)
    root.mkdir(parents=True)
    run.snapshot.symlink_to(snapshot_dir, target_is_directory=True)
    full = read_snapshot(run.snapshot)
    write_shatter(shatter(full, k=50, pairs=300, seed=0, budget=30), run.pruned)
    pruned = read_snapshot(run.pruned)
    paths = sample_paths(open_engine(pruned), "walk", n=N_PATHS, seed=SAMPLE_SEED, hops="1-5", full=open_engine(full))
    write_paths(paths, run.paths)
    config = LLMConfig(model=MODEL, cache_path=run.llm_cache, backoff_base_s=0.01, backoff_max_s=0.05,
                       prices={MODEL: Price(input=1.0, output=2.0)})
    with LLMServer(responder=echo_responder) as server:
        writer = WRITERS.get("openai")(config.model_copy(update={"base_url": server.url}))
        generate_items(paths, pruned, writer=writer, out=run.items, concurrency=8, full_snapshot=full)
    result = verify_items(pl.read_parquet(run.items), full, hubs=run.pruned / "hubs.json")
    write_verified(result, run.verified)
    from kgsynth.difficulty import difficulty_dir, measure_difficulty, write_difficulty

    write_difficulty(measure_difficulty(result.accepted, full), difficulty_dir(root))
    return root


@pytest.fixture(scope="session")
def export_run(hpo_snapshot_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared run directory (built once per session, whichever module asks first)."""
    root = tmp_path_factory.getbasetemp() / "export-run"
    if not root.exists():
        build_run_dir(root, hpo_snapshot_dir)
    return root


# --- reading the run directory -----------------------------------------------------------


def test_read_run_reads_every_part(export_run: Path) -> None:
    from kgsynth.export.inputs import read_run

    inputs = read_run(export_run)
    summary = json.loads((export_run / "verified" / "summary.json").read_text())
    assert inputs.accepted.height == summary["accepted"] > 40
    assert inputs.rejected is not None and inputs.rejected.height == summary["rejected"] > 0
    assert inputs.failures is not None and inputs.failures.height > 0
    assert inputs.generated == inputs.accepted.height + inputs.rejected.height
    assert inputs.paths == N_PATHS
    assert inputs.generate is not None and inputs.generate["model"] == MODEL
    assert inputs.summary == summary
    assert inputs.snapshot is not None and inputs.snapshot.manifest.source_info is not None
    assert inputs.hubs == json.loads((export_run / "pruned" / "hubs.json").read_text())
    assert inputs.pruned is not None and inputs.pruned.hash == inputs.hubs["pruned_hash"]
    assert len(inputs.hubs["removed"]) > 0
    assert inputs.notes == []


def test_missing_accepted_items_is_a_clear_error(tmp_path: Path) -> None:
    from kgsynth.export.inputs import read_run

    (tmp_path / "verified").mkdir()
    with pytest.raises(SourceNotFoundError, match=r"verified/accepted\.parquet.*kgsynth verify"):
        read_run(tmp_path)


def test_accepted_items_with_wrong_columns_name_the_file(tmp_path: Path) -> None:
    from kgsynth.export.inputs import read_run

    (tmp_path / "verified").mkdir()
    pl.DataFrame({"id": ["a"], "question": ["q"]}).write_parquet(tmp_path / "verified" / "accepted.parquet")
    with pytest.raises(InputFormatError, match=r"accepted\.parquet.*missing item column"):
        read_run(tmp_path)


def test_optional_parts_missing_become_statements(export_run: Path, tmp_path: Path) -> None:
    from kgsynth.export.inputs import read_run

    bare = tmp_path / "bare"
    (bare / "verified").mkdir(parents=True)
    shutil.copy(export_run / "verified" / "accepted.parquet", bare / "verified")
    inputs = read_run(bare)
    assert inputs.rejected is None and inputs.snapshot is None and inputs.hubs is None
    text = " ".join(inputs.notes)
    for part in ("rejected.parquet", "items.parquet", "paths.parquet", "generate.json", "snapshot/", "pruned/"):
        assert part in text


def test_a_run_with_no_accepted_item_is_refused_by_export_but_reported(
    export_run: Path, tmp_path: Path
) -> None:
    from kgsynth.export import export_dataset, write_report

    empty = tmp_path / "empty"
    shutil.copytree(export_run, empty)
    accepted = pl.read_parquet(empty / "verified" / "accepted.parquet")
    accepted.clear().write_parquet(empty / "verified" / "accepted.parquet")
    with pytest.raises(InputFormatError, match=r"accepted\.parquet: no accepted items"):
        export_dataset(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert write_report(empty, tmp_path / "report").exists()
