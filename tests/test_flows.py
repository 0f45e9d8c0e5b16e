"""The Prefect flows on the real HPO graph, offline, against Prefect's ephemeral test server.

Prefect reads its settings when first imported, so PREFECT_HOME (a temp dir) and
PREFECT_SERVER_ANALYTICS_ENABLED are set before the flows module is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from llm_server import LLMServer, echo_responder

REPO = Path(__file__).resolve().parents[1]

BASE = {
    "name": "flow-test",
    "source": {"format": "hpo"},
    "shatter": {"enabled": True, "pairs": 500, "budget": 50},
    "sample": {"strategy": "walk", "n": 80, "hops": "2-3", "seed": 5},
    "generate": {"writer": "template", "batch_size": 40},
    "export": {"formats": ["parquet"]},
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    """The flows module, imported inside an ephemeral Prefect server with a throwaway home."""
    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_HOME", str(home))
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        patch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
        patch.syspath_prepend(str(REPO))
        from prefect.testing.utilities import prefect_test_harness

        import flows.synthesize as module

        with prefect_test_harness(server_startup_timeout=180):
            yield module


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow-run")


def write_config(folder: Path, name: str, **changes: Any) -> str:
    config = json.loads(json.dumps(BASE))
    for section, values in changes.items():
        config[section] = {**config.get(section, {}), **values}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


def states(report: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {stage: outcome["state"] for stage, outcome in report.items()}


def test_synthesize_end_to_end_then_from_the_cache(synth, workdir: Path) -> None:
    config = write_config(workdir, "base")
    run_dir = str(workdir / "run")
    first = synth.synthesize(config, run_dir=run_dir)
    assert states(first) == dict.fromkeys(["load", "shatter", "sample", "generate", "verify", "difficulty", "export"], "Completed")
    assert first["shatter"]["summary"]["removed"] > 0 and (workdir / "run" / "pruned" / "hubs.json").exists()
    assert first["load"]["summary"]["nodes"] == 36853 and first["sample"]["summary"]["paths"] == 80
    dataset = Path(first["export"]["summary"]["dataset"])
    assert (dataset / "README.md").exists() and Path(first["export"]["summary"]["report"]).exists()
    items = pl.read_parquet(workdir / "run" / "items.parquet")
    assert items.height == first["generate"]["summary"]["items"] and items["id"].n_unique() == items.height

    second = synth.synthesize(config, run_dir=run_dir)
    assert states(second) == dict.fromkeys(first, "Cached")
    assert second["export"]["key"] == first["export"]["key"]

    # a later stage's parameter: only that stage runs again
    reseeded = write_config(workdir, "reseeded", export={"seed": 7})
    third = synth.synthesize(reseeded, run_dir=run_dir)
    unchanged = ["load", "shatter", "sample", "generate", "verify", "difficulty"]
    assert states(third) == {**dict.fromkeys(unchanged, "Cached"), "export": "Completed"}

    # an output deleted behind the flow's back is rebuilt, not "restored" from the cache
    (workdir / "run" / "verified" / "accepted.parquet").unlink()
    fourth = synth.synthesize(reseeded, run_dir=run_dir)
    assert fourth["verify"]["state"] == "Completed" and (workdir / "run" / "verified" / "accepted.parquet").exists()


def test_refresh_graph_reuses_an_unchanged_release(synth, workdir: Path) -> None:
    report = synth.refresh_graph(write_config(workdir, "base"), run_dir=str(workdir / "run"))
    assert states(report) == {"load": "Cached"}


# paths turned away by generation before a model is asked (kgsynth/generate/run.py)
BEFORE_ANY_CALL = ("too_few_negatives", "answer_not_unique", "names_not_distinct", "name_is_common_word", "duplicate_path")


def test_failed_model_calls_are_retried_by_the_task(synth, workdir: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with LLMServer(responder=echo_responder) as server:
        config = write_config(
            workdir, "model",
            generate={"writer": "openai", "model": "test-model", "base_url": server.url, "max_retries": 0,
                      "concurrency": 4},
        )  # fmt: skip
        server.fail_next("500")  # the first call fails, and the client is told not to retry it
        state = synth.synthesize(config, run_dir=str(workdir / "run"), backoff_seconds=0.05, return_state=True)
        report = state.result()
        requests = server.chat_requests

    assert report["generate"]["state"] == "Completed"
    assert [states(report)[s] for s in ("load", "shatter", "sample")] == ["Cached"] * 3
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    parts = {run.name: run.run_count for run in runs if run.name.startswith("generate[")}
    assert sorted(parts) == ["generate[0]", "generate[1]"]  # two batches, side by side on the thread pool
    assert sorted(parts.values()) == [1, 2]  # the batch with the failed call ran twice

    run = workdir / "run"
    stats = json.loads((run / "generate.json").read_text())
    items = pl.read_parquet(run / "items.parquet")
    assert stats["failed"] == {} and items["id"].n_unique() == items.height
    assert pl.read_parquet(run / "failures.parquet").filter(pl.col("retryable")).height == 0
    calls = (
        items.height
        + sum(stats["rejected"].values())
        - sum(v for k, v in stats["rejected"].items() if k.startswith("anchor_") or k in BEFORE_ANY_CALL)
    )
    assert requests == calls + 1  # every item paid once, plus the one call that failed


def test_deployments_have_a_weekly_schedule(synth) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.flows import load_flow_from_entrypoint

    from flows import serve

    spec = PrefectYamlModel.model_validate(yaml.safe_load((REPO / "prefect.yaml").read_text()))
    by_name = {d.name: d for d in spec.deployments}
    weekly = by_name["weekly"]
    assert weekly.entrypoint == "flows/synthesize.py:synthesize"
    assert [s.cron for s in weekly.schedules] == ["0 3 * * 1"]
    assert load_flow_from_entrypoint(str(REPO / weekly.entrypoint)).name == "synthesize"
    assert load_flow_from_entrypoint(str(REPO / by_name["refresh-graph"].entrypoint)).name == "refresh_graph"
    assert (REPO / weekly.parameters["config_path"]).exists()

    deployments = {d.name: d for d in serve.deployments(REPO / "configs" / "demo.yaml")}
    assert [s.schedule.cron for s in deployments["weekly"].schedules] == ["0 3 * * 1"]
    assert deployments["weekly"].parameters["config_path"] == str((REPO / "configs" / "demo.yaml").resolve())
    assert deployments["refresh-graph"].schedules == []
