"""Where stage work runs: in this process, or as Prefect tasks on a Dask cluster.

Stages stay plain functions over parts (`kgsynth.pipeline`); a runner only decides
where each stage, part and combining step executes. Sharding and merging are
deterministic, so every runner writes the same bytes, and the runner is not part of
any stage key: a run made by one runner is up to date for the other.

`runner: local` (the default) is `pipeline.run_stage` in this process and never
imports Prefect. `runner: dask` runs the `synthesize` flow (`kgsynth.execution.flow`),
importing Prefect and prefect-dask only then.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kgsynth.errors import ConfigError
from kgsynth.execution.cluster import ExecutionError, check_scheduler

if TYPE_CHECKING:
    from kgsynth.config import RunConfig
    from kgsynth.pipeline import StageResult
    from kgsynth.rundir import RunDir

__all__ = ["ExecutionError", "flow_module", "run_flow"]


def flow_module() -> ModuleType:
    """`kgsynth.execution.flow`, or a one-line error when the `flows` extra is not installed."""
    try:
        import prefect  # noqa: F401
        import prefect_dask  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"execution.runner: dask needs Prefect and prefect-dask ({exc.name or 'a module'} is not installed); "
            f"pip install 'kgsynth[flows]'"
        ) from None
    from kgsynth.execution import flow

    return flow


def run_flow(config_file: Path, config: RunConfig, run: RunDir, force: set[str]) -> list[StageResult]:
    """The `synthesize` flow for `kgsynth run`: every stage, its work on the configured cluster."""
    from kgsynth.pipeline import StageResult

    if config.execution.address:
        check_scheduler(config.execution.address)  # before Prefect starts or anything is written
    flow = flow_module()
    from kgsynth.execution.runners import prefect_api

    with prefect_api():
        report = flow.synthesize(str(config_file), run_dir=str(run.root), force=sorted(force))
    results = []
    for outcome in report.values():
        result = StageResult.model_validate({k: v for k, v in outcome.items() if k != "state"})
        # a stage answered from Prefect's cache ran in an earlier flow run: nothing ran now
        results.append(result.model_copy(update={"skipped": result.skipped or outcome["state"] == "Cached"}))
    return results
