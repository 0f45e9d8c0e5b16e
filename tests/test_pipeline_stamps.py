"""Stage stamps: a stage is skipped exactly when its inputs and parameters are unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_export_rundir import export_run  # noqa: F401 (a fixture)

from kgsynth import pipeline
from kgsynth.config import load_config
from kgsynth.errors import ConfigError
from kgsynth.rundir import RunDir

OBO = """format-version: 1.2
data-version: hp/releases/2024-01-01

[Term]
id: HP:0000001
name: All

[Term]
id: HP:0000118
name: Phenotypic abnormality
is_a: HP:0000001 ! All

[Term]
id: HP:0000152
name: Abnormality of head or neck
is_a: HP:0000118 ! Phenotypic abnormality
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, RunDir]:
    release = tmp_path / "release"
    release.mkdir()
    (release / "hp.obo").write_text(OBO, encoding="utf-8")
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\nsource:\n  format: hpo\n  paths: [release/hp.obo]\n", encoding="utf-8")
    return config, RunDir(tmp_path / "run")


def test_load_runs_once_then_is_skipped(tiny: tuple[Path, RunDir]) -> None:
    config_path, run = tiny
    config = load_config(config_path)
    first = pipeline.run_stage("load", config, run)
    assert not first.skipped and first.summary["nodes"] == 3 and first.summary["edges"] == 2
    stamp = json.loads((run.root / "load.stamp.json").read_text())
    assert stamp["complete"] and stamp["key"] == first.key and list(stamp["inputs"]) == ["0:hp.obo"]
    assert pipeline.is_current("load", config, run)
    second = pipeline.run_stage("load", config, run)
    assert second.skipped and second.key == first.key and second.summary == first.summary


def test_changed_source_or_parameter_reruns(tiny: tuple[Path, RunDir]) -> None:
    config_path, run = tiny
    config = load_config(config_path)
    first = pipeline.run_stage("load", config, run)
    obo = config.source.paths[0]
    obo.write_text(OBO + "\n[Term]\nid: HP:0000234\nname: Abnormality of the head\nis_a: HP:0000152\n")
    assert not pipeline.is_current("load", config, run)
    changed = pipeline.run_stage("load", config, run)
    assert not changed.skipped and changed.key != first.key and changed.summary["nodes"] == 4
    renamed = config.model_copy(update={"source": config.source.model_copy(update={"name": "other"})})
    assert pipeline.stage_key("load", renamed, run) != changed.key
    assert not pipeline.run_stage("load", renamed, run).skipped


def test_force_and_missing_output_rerun(tiny: tuple[Path, RunDir]) -> None:
    config_path, run = tiny
    config = load_config(config_path)
    pipeline.run_stage("load", config, run)
    assert not pipeline.run_stage("load", config, run, force=True).skipped
    (run.snapshot / "edges.parquet").unlink()  # one file of an output folder
    assert not pipeline.is_current("load", config, run)
    assert not pipeline.run_stage("load", config, run).skipped
    assert (run.snapshot / "edges.parquet").exists()
    (run.snapshot / ".engine-cache").mkdir()  # hidden caches inside an output do not count
    assert pipeline.is_current("load", config, run)


def test_interrupted_stage_is_redone_from_scratch(tiny: tuple[Path, RunDir]) -> None:
    """A stamp left with complete=false (a killed run) never counts as done."""
    config_path, run = tiny
    config = load_config(config_path)
    pipeline.run_stage("load", config, run)
    stamp_file = run.root / "load.stamp.json"
    stamp = json.loads(stamp_file.read_text())
    stamp["complete"] = False
    stamp_file.write_text(json.dumps(stamp))
    (run.snapshot / "stray.txt").write_text("half-written")
    assert not pipeline.is_current("load", config, run)
    assert not pipeline.run_stage("load", config, run).skipped
    assert not (run.snapshot / "stray.txt").exists()


def test_unreadable_stamp_means_rerun(tiny: tuple[Path, RunDir]) -> None:
    config_path, run = tiny
    config = load_config(config_path)
    pipeline.run_stage("load", config, run)
    (run.root / "load.stamp.json").write_text("{not json")
    assert not pipeline.run_stage("load", config, run).skipped


def test_unknown_stage_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"--force 'sampel': no such stage; stages: load"):
        pipeline.check_force({"sampel"})


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: demo\nsource: {format: hpo}\nsample: {hops: x}\n")
    done = subprocess.run(
        [sys.executable, "-c", "from kgsynth.cli import main; main()", "run", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "bad.yaml, line 3: sample.hops: expected 'MIN-MAX' like 2-4, got 'x'" in done.stderr
    assert "Traceback" not in done.stderr


def test_hops_reach_each_sampler_in_its_own_words() -> None:
    from kgsynth.sample import SAMPLERS, import_strategies
    from kgsynth.stores.neo4j_sample import sample_paths_cypher

    import_strategies()
    assert pipeline.hop_params(SAMPLERS.get("walk"), (2, 4), "walk") == {"hops": [2, 3, 4]}
    assert pipeline.hop_params(SAMPLERS.get("rare-chain"), (3, 5), "rare-chain") == {"min_hops": 3, "max_hops": 5}
    assert pipeline.hop_params(SAMPLERS.get("between"), (1, 3), "between") == {"max_hops": 3}
    assert pipeline.hop_params(sample_paths_cypher, (2, 3), "walk") == {"hops": [2, 3]}
    assert pipeline.hop_params(SAMPLERS.get("pattern"), None, "pattern") == {}
    with pytest.raises(ConfigError, match="sample.hops: the 'pattern' strategy does not take a hop range"):
        pipeline.hop_params(SAMPLERS.get("pattern"), (2, 3), "pattern")


def test_batch_records_add_up_counts_but_not_settings() -> None:
    first = {
        "seed": 5,
        "items_new": 3,
        "failed": {"rate_limited": 1},
        "writer": "openai",
        "usage": {"price_per_1m": {"input": 0.15, "output": 0.6}, "total": {"calls": 2, "cost_usd": 0.5}},
    }
    second = {
        "seed": 5,
        "items_new": 4,
        "failed": {"timeout": 2},
        "writer": "openai",
        "usage": {"price_per_1m": {"input": 0.15, "output": 0.6}, "total": {"calls": 3, "cost_usd": 0.25}},
    }
    assert pipeline.merge_stats([first, second]) == {
        "seed": 5,
        "items_new": 7,
        "failed": {"rate_limited": 1, "timeout": 2},
        "writer": "openai",
        "usage": {"price_per_1m": {"input": 0.15, "output": 0.6}, "total": {"calls": 5, "cost_usd": 0.75}},
    }


def test_export_stage_takes_expert_reviews(export_run: Path, tmp_path: Path) -> None:
    import shutil

    import polars as pl

    from kgsynth.config import RunConfig
    from kgsynth.review.store import ReviewStore, export_reviews

    root = tmp_path / "run"
    shutil.copytree(export_run, root, symlinks=True)
    run = RunDir(root)
    config = RunConfig.model_validate({"name": "reviewed", "source": {"format": "hpo"}, "export": {"drop_rejected": True}})
    with pytest.raises(ConfigError, match="no review/reviews.parquet"):
        pipeline.run_stage("export", config, run)
    accepted = pl.read_parquet(run.verified / "accepted.parquet")["id"].to_list()
    store = ReviewStore.of_run(root)
    store.save("ann", accepted[0], "reject", "wrong_answer")
    store.save("ann", accepted[1], "accept")
    export_reviews(root)
    first = pipeline.run_stage("export", config, run)
    card = (run.dataset / "README.md").read_text()
    assert not first.skipped and first.summary["rows"] == len(accepted) - 1 and "Expert review" in card
    assert pipeline.run_stage("export", config, run).skipped
    store.save("ann", accepted[2], "reject", "wrong_answer")  # a new decision, exported: the stage runs again
    export_reviews(root)
    assert pipeline.run_stage("export", config, run).summary["rows"] == len(accepted) - 2
