"""Prefect flows over the library's stage functions: `synthesize` and `refresh_graph`.

The library never imports Prefect; this module only wires `kgsynth.pipeline`'s
stages as tasks. Each task's cache key is the stage's content hash (snapshot hash,
config section, upstream file hashes, prompt hash), and cache records are stored
inside the run directory, so they vanish with it. A stage whose outputs are not up
to date ignores the cache (`refresh_cache`), so a deleted output is rebuilt rather
than "restored". Stages that talk to a server get retries with exponential backoff.

Run it locally:   python flows/synthesize.py configs/demo.yaml
Serve weekly:     python -m flows.serve configs/demo.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import Task, exponential_backoff

from kgsynth import pipeline
from kgsynth.config import RunConfig, load_config
from kgsynth.errors import KgsynthError, LLMError, PublishError, StoreError
from kgsynth.rundir import RunDir

RETRIES = 3
BACKOFF_SECONDS = 10.0


def _cache_key(context: Any, parameters: dict[str, Any]) -> str:
    name = parameters["name"]
    return f"kgsynth-{name}-{pipeline.stage_key(name, parameters['config'], parameters['run'])}"


def _transient(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Retry server trouble and unexpected errors, never a mistake in the input or config."""
    try:
        state.result()
    except (StoreError, LLMError, PublishError):
        return True
    except KgsynthError:
        return False
    except Exception:  # noqa: BLE001 - an unforeseen error (a dropped connection) deserves another try
        return True
    return False


@task(cache_key_fn=_cache_key, persist_result=True)
def stage(name: str, config: RunConfig, run: RunDir, force: bool = False) -> pipeline.StageResult:
    """One pipeline stage (the same function `kgsynth run` calls)."""
    return pipeline.run_stage(name, config, run, force=force)


@task(cache_key_fn=_cache_key, persist_result=True)
def finish(name: str, config: RunConfig, run: RunDir, begun: pipeline.Begun) -> pipeline.StageResult:
    """Combine the parts of a stage and mark it done; cached under the stage's own key."""
    return pipeline.finish_stage(name, config, run, begun)


@task(cache_policy=NO_CACHE)
def part(name: str, config: RunConfig, run: RunDir, index: int) -> dict[str, Any]:
    """One part of a stage (a generation batch): resumes by itself, so it needs no cache."""
    return pipeline.run_part(name, config, run, index)


def _retry_options(name: str, config: RunConfig, backoff: float) -> dict[str, Any]:
    if not pipeline.is_network_stage(name, config):
        return {"retries": 0}
    return {
        "retries": RETRIES,
        "retry_delay_seconds": exponential_backoff(backoff_factor=backoff),
        "retry_jitter_factor": 0.2,
        "retry_condition_fn": _transient,
    }


def _run_stage(name: str, config: RunConfig, run: RunDir, force: bool, backoff: float) -> State:
    """A stage as one cached task, or, for a stage in parts that must run, its parts side by side."""
    storage = run.root.resolve() / ".prefect-results"
    current = not force and pipeline.is_current(name, config, run)
    if pipeline.get_stage(name).parts is None or current:
        task_ = stage.with_options(
            name=name, task_run_name=name, result_storage=storage, refresh_cache=not current,
            **_retry_options(name, config, backoff),
        )  # fmt: skip
        return task_(name, config, run, force=force, return_state=True)
    begun = pipeline.begin_stage(name, config, run, force=force)
    assert isinstance(begun, pipeline.Begun)  # not current, so it has to run
    part_task = part.with_options(
        name=f"{name}-part", task_run_name=f"{name}[{{index}}]", **_retry_options(name, config, backoff)
    )
    futures = [part_task.submit(name, config, run, i) for i in range(begun.parts)]
    for future in futures:
        future.result()  # raises the first part that failed for good
    finish_task = finish.with_options(name=name, task_run_name=name, result_storage=storage, refresh_cache=True)
    return finish_task(name, config, run, begun, return_state=True)


def _run_stages(
    names: list[str], config: RunConfig, run: RunDir, force: set[str], backoff: float
) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for name in names:
        state = _run_stage(name, config, run, name in force, backoff)
        result: pipeline.StageResult = state.result()  # raises when the stage failed for good
        report[name] = {"state": state.name, **result.model_dump(mode="json")}
    return report


@flow(name="synthesize", task_runner=ThreadPoolTaskRunner(max_workers=4))
def synthesize(
    config_path: str,
    run_dir: str | None = None,
    force: list[str] | None = None,
    backoff_seconds: float = BACKOFF_SECONDS,
) -> dict[str, dict[str, Any]]:
    """The whole pipeline from one run configuration; returns each stage's state and summary."""
    config = load_config(config_path)
    run = RunDir(Path(run_dir) if run_dir else config.default_run_dir())
    forced = set(force or [])
    pipeline.check_force(forced)
    return _run_stages(pipeline.planned_stages(config), config, run, forced, backoff_seconds)


@flow(name="refresh_graph")
def refresh_graph(
    config_path: str, run_dir: str | None = None, backoff_seconds: float = BACKOFF_SECONDS
) -> dict[str, dict[str, Any]]:
    """Load the configured source release into the run's snapshot (and Neo4j when configured)."""
    config = load_config(config_path)
    run = RunDir(Path(run_dir) if run_dir else config.default_run_dir())
    names = [n for n in pipeline.planned_stages(config) if n in {"load", "neo4j"}]
    return _run_stages(names, config, run, set(), backoff_seconds)


if __name__ == "__main__":
    for stage_name, outcome in synthesize(sys.argv[1] if len(sys.argv) > 1 else "configs/demo.yaml").items():
        print(f"{stage_name}: {outcome['state']} ({outcome['seconds']:.1f}s)")
