"""Prefect flows over the library's stage functions: `synthesize` and `refresh_graph`.

This module and `kgsynth.execution.runners` are the only ones in the package that
import Prefect. They are imported by `flows/synthesize.py` (the deployments' entry
point) and, lazily, by `kgsynth run` when the config says `execution.runner: dask`.
Living inside the package, the tasks are importable on every Dask worker that has
kgsynth installed.

Each task's cache key is the stage's content hash (snapshot hash, config section,
upstream file hashes, prompt hash), and cache records are stored inside the run
directory, so they vanish with it. A stage whose outputs are not up to date ignores
the cache (`refresh_cache`), so a deleted output is rebuilt rather than "restored".
Stages that talk to a server get retries with exponential backoff.

Where the tasks run is the config's `execution` section (`kgsynth.execution.runners`):
`local` on the flow's thread pool, `dask` on a Dask cluster; there the flow's process
only decides which stages are up to date, writes 'started' stamps and waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.futures import PrefectFuture, wait
from prefect.states import State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import Task, exponential_backoff

from kgsynth import pipeline
from kgsynth.config import RunConfig, load_config
from kgsynth.errors import KgsynthError, LLMError, PublishError, StoreError
from kgsynth.execution.runners import open_runner, outcome
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
    """One part of a stage (a sampling shard, a generation batch): resumes by itself, so it needs no cache."""
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


def _run_stage(runner: TaskRunner, name: str, config: RunConfig, run: RunDir, force: bool, backoff: float) -> State:
    """A stage as one cached task, or, for a stage in parts that must run, its parts side by side.

    Parts go to the runner. Other tasks run in the flow's process with the local runner, and with
    the dask runner when there is nothing to do but confirm a stage is up to date.
    """
    storage = run.root / ".prefect-results"
    local = config.execution.runner == "local"
    current = not force and pipeline.is_current(name, config, run)
    common = {"name": name, "config": config, "run": run}
    if pipeline.get_stage(name).parts is None or current:
        task_ = stage.with_options(
            name=name, task_run_name=name, result_storage=storage, refresh_cache=not current,
            **_retry_options(name, config, backoff),
        )  # fmt: skip
        return _execute(runner, task_, {**common, "force": force}, name, here=local or current)
    begun = pipeline.begin_stage(name, config, run, force=force)
    assert isinstance(begun, pipeline.Begun)  # not current, so it has to run
    part_task = part.with_options(
        name=f"{name}-part", task_run_name=f"{name}[{{index}}]", **_retry_options(name, config, backoff)
    )
    futures: list[PrefectFuture[Any]] = [runner.submit(part_task, {**common, "index": i}) for i in range(begun.parts)]
    wait(futures)  # every part ends (and keeps what it made) before a failure stops the stage
    for index, future in enumerate(futures):
        outcome(future, f"{name}[{index}]").result()  # raises the first part that failed for good
    finish_task = finish.with_options(name=name, task_run_name=name, result_storage=storage, refresh_cache=True)
    return _execute(runner, finish_task, {**common, "begun": begun}, name, here=local)


def _execute(runner: TaskRunner, task_: Task[..., Any], parameters: dict[str, Any], label: str, here: bool) -> State:
    """A task's final state: run in this process (`here`) or on the runner."""
    if here:
        return task_(**parameters, return_state=True)
    return outcome(runner.submit(task_, parameters), label)


def run_stages(
    names: list[str], config: RunConfig, run: RunDir, force: set[str], backoff: float
) -> dict[str, dict[str, Any]]:
    """Each stage in order on the runner the config's `execution` section names; each one's state and summary."""
    report: dict[str, dict[str, Any]] = {}
    with open_runner(config.execution) as runner:
        for name in names:
            state = _run_stage(runner, name, config, run, name in force, backoff)
            result: pipeline.StageResult = state.result()  # raises when the stage failed for good
            report[name] = {"state": state.name, **result.model_dump(mode="json")}
    return report


def _open(config_path: str, run_dir: str | None) -> tuple[RunConfig, RunDir]:
    """Absolute paths, so a worker on another machine (sharing the storage) finds the same files."""
    config = load_config(Path(config_path).resolve())
    return config, RunDir((Path(run_dir) if run_dir else config.default_run_dir()).resolve())


@flow(name="synthesize", task_runner=ThreadPoolTaskRunner(max_workers=4))
def synthesize(
    config_path: str,
    run_dir: str | None = None,
    force: list[str] | None = None,
    backoff_seconds: float = BACKOFF_SECONDS,
) -> dict[str, dict[str, Any]]:
    """The whole pipeline from one run configuration; returns each stage's state and summary."""
    config, run = _open(config_path, run_dir)
    forced = set(force or [])
    pipeline.check_force(forced)
    return run_stages(pipeline.planned_stages(config), config, run, forced, backoff_seconds)


@flow(name="refresh_graph")
def refresh_graph(
    config_path: str, run_dir: str | None = None, backoff_seconds: float = BACKOFF_SECONDS
) -> dict[str, dict[str, Any]]:
    """Load the configured source release into the run's snapshot (and Neo4j when configured)."""
    config, run = _open(config_path, run_dir)
    names = [n for n in pipeline.planned_stages(config) if n in {"load", "neo4j"}]
    return run_stages(names, config, run, set(), backoff_seconds)
