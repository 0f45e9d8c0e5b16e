"""The Prefect machinery of a run: its API, the task runner for a config's `execution` section,
and what a submitted task ended as.

`local`: the flow's own thread pool (parts side by side in the flow's process).
`dask`: `prefect_dask.DaskTaskRunner` on the scheduler at `execution.address`, or on
a local cluster of `execution.workers` processes that lives exactly as long as the
flow's stages: it is closed when they end, fail or are interrupted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings
from prefect.states import State
from prefect.task_runners import TaskRunner

from kgsynth.config import ExecutionConfig
from kgsynth.execution.cluster import (
    CONNECT_TIMEOUT_S,
    ExecutionError,
    api_problem,
    check_scheduler,
    local_cluster_options,
)


# Prefect's own default (20 s) is often too short for a busy machine that also starts a cluster.
API_STARTUP_TIMEOUT_S = 90


@contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API a flow started here and all its workers report to: PREFECT_API_URL when
    set, else a temporary server for the duration of the block (what Prefect would start
    itself, but started here so a failure to start is one clear error)."""
    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    timeout = max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), API_STARTUP_TIMEOUT_S)
    try:
        server.start(timeout=timeout)
    except RuntimeError:
        raise ExecutionError(
            f"the temporary Prefect server did not answer within {timeout} s; start one (`prefect server start`) "
            f"and set PREFECT_API_URL to it, or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        ) from None
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        _send_queued_reports()
        server.stop()


def _send_queued_reports() -> None:
    """Logs and events still queued go to the API before it stops (else: 'Error logging to API')."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=10)


@contextmanager
def open_runner(execution: ExecutionConfig) -> Iterator[TaskRunner[Any]]:
    """The task runner to submit a flow's tasks to (call inside a flow run)."""
    context = FlowRunContext.get()
    assert context is not None, "open_runner is called inside a flow run"
    if execution.runner == "local":
        yield context.task_runner
        return
    from prefect_dask import DaskTaskRunner

    if execution.address:
        check_scheduler(execution.address)
        runner = DaskTaskRunner(address=execution.address, client_kwargs={"timeout": f"{CONNECT_TIMEOUT_S}s"})
    else:
        runner = DaskTaskRunner(
            cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_options(execution.workers)
        )
    # Each task carries the flow's settings to its worker; without the API's address there,
    # every worker process would start a temporary Prefect server of its own.
    api = str(context.client.api_url)
    with temporary_settings({PREFECT_API_URL: api}), runner:
        try:
            client = runner.client  # connect (or start the local cluster) now, before a stage begins
        except (OSError, TimeoutError) as exc:
            where = execution.address or "a local cluster"
            raise ExecutionError(f"execution: cannot reach {where}: {exc}") from None
        answers = client.run(api_problem, api)
        problems = {worker: why for worker, why in answers.items() if why}
        if problems:
            worker, why = next(iter(problems.items()))
            raise ExecutionError(
                f"{len(problems)} of {len(answers)} Dask workers cannot reach the Prefect "
                f"API at {api} (worker {worker}: {why}); start a Prefect server they can reach "
                f"(`prefect server start --host 0.0.0.0`) and set PREFECT_API_URL=http://THIS-HOST:4200/api"
            )
        yield runner


def outcome(future: PrefectFuture[Any], label: str) -> State:
    """The final state of a submitted task; work the cluster lost for good is an ExecutionError naming it."""
    on_dask = getattr(future, "wrapped_future", None)
    if on_dask is not None:
        try:
            on_dask.result()  # the task's State, unless Dask itself gave up (workers died, cluster gone)
        except Exception as exc:  # noqa: BLE001 - distributed raises KilledWorker, CancelledError, comm errors
            raise ExecutionError(
                f"{label}: lost on the Dask cluster ({type(exc).__name__}: {exc}); what it finished is kept, "
                f"run again to continue"
            ) from None
    future.wait()
    return future.state
