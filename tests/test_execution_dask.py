"""`kgsynth run` with `execution.runner: dask`: the same bytes as a local run, on a real local Dask cluster.

The real CLI in subprocesses; a real Prefect API (the temporary server `kgsynth run`
starts when no PREFECT_API_URL is set, in a throwaway PREFECT_HOME); a real
`distributed.LocalCluster` of 4 worker processes; the PrimeKG-like graph in tests/data
(`make_primekg_like.py --scale 0.001 --seed 7`). `sample.shard_size` and
`generate.batch_size` are small, so sampling and generation each run in 4 parts, side
by side on the workers. The model is the local OpenAI-compatible test server (echo
responder), so the tests can count what each run paid. Local runs block the import of
Prefect and Dask: `runner: local` must never need them.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import psutil
import pytest
import yaml
from llm_server import LLMServer, echo_responder

PRIMEKG_LIKE = Path(__file__).parent / "data" / "primekg" / "kg_scale0.001.csv.gz"

CLI = "from kgsynth.cli import main; main()"
# what a user without the `flows` extra has: none of these importable
WITHOUT_FLOWS = "import sys; sys.modules.update(dict.fromkeys(['prefect', 'prefect_dask', 'distributed', 'dask']))\n" + CLI

CONFIG = {
    "name": "primekg-like",
    "source": {"format": "primekg", "paths": ["kg.csv"]},
    "shatter": {"enabled": True, "pairs": 300, "budget": 20},
    "sample": {"strategy": "walk", "n": 400, "hops": "2-3", "seed": 3, "shard_size": 100},  # 4 shards
    "generate": {"batch_size": 100, "concurrency": 2, "save_every": 4},  # 4 batches
    "export": {"formats": ["parquet"]},
}
DASK = {"runner": "dask", "workers": 4}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("execution")
    (folder / "kg.csv").write_bytes(gzip.decompress(PRIMEKG_LIKE.read_bytes()))
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No Prefect API configured (so `kgsynth run` starts its own temporary one), a throwaway home."""
    home = tmp_path_factory.mktemp("prefect-home")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return clean | {
        "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # a busy CI machine
    }  # fmt: skip


@pytest.fixture(scope="module")
def model():
    with LLMServer(responder=echo_responder, latency=0.05) as server:
        yield server


def writer(model: LLMServer) -> dict[str, str]:
    return {"writer": "openai", "model": "test-model", "base_url": model.url}


@dataclass
class Reference:
    run: Path
    paid: int  # model calls the local run made


@pytest.fixture(scope="module")
def local_run(workdir: Path, env: dict[str, str], model: LLMServer) -> Reference:
    """The single-process run every dask run is compared with (Prefect and Dask not importable)."""
    before = model.chat_requests
    config = write_config(workdir, "local", generate=writer(model))
    reference = kgsynth("run", str(config), cwd=workdir, env=env, code=WITHOUT_FLOWS)
    assert reference.returncode == 0, reference.output
    return Reference(workdir / "runs" / "local", model.chat_requests - before)


def write_config(folder: Path, name: str, **sections: dict) -> Path:
    config = json.loads(json.dumps(CONFIG)) | {"name": name}
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@dataclass
class Run:
    returncode: int
    output: str
    workers: set[int] = field(default_factory=set)  # every Dask worker process seen during the run


def is_worker(process: psutil.Process) -> bool:
    return process.cmdline()[-1:] == ["--multiprocessing-fork"]  # multiprocessing's spawned children


def kgsynth(
    *args: str, cwd: Path, env: dict[str, str], code: str = CLI,
    watch: Callable[[subprocess.Popen, set[int]], None] | None = None,
) -> Run:  # fmt: skip
    """`kgsynth ARGS` in a subprocess; `watch(process, workers)` is called every 50 ms while it runs."""
    log = cwd / f"kgsynth-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=out, stderr=out)
        workers: set[int] = set()
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                workers |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True) if is_worker(c)}
            except psutil.Error:
                pass  # a child came or went while we looked
            if watch:
                watch(proc, workers)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return Run(proc.returncode, log.read_text(encoding="utf-8"), workers)


def assert_all_gone(pids: set[int]) -> None:
    """The cluster's processes end with the run (the nanny may take a few seconds to reap them)."""
    deadline = time.monotonic() + 30
    while (alive := {p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}):
        assert time.monotonic() < deadline, f"worker processes outlived the run: {sorted(alive)}"
        time.sleep(0.2)


def dataset_files(run: Path) -> dict[str, bytes]:
    """The dataset's files; the card's run records (```json blocks: timings, timestamps, paths) left out."""
    files = {}
    for path in sorted((run / "dataset").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "README.md":
                data = re.sub(rb"```json\n.*?```", b"", data, flags=re.S)
            files[str(path.relative_to(run))] = data
    return files


def task_runs(home: Path) -> dict[str, str]:
    """Task run name → state type in the latest flow run, as the Prefect API recorded them (the
    temporary server's database in PREFECT_HOME)."""
    with sqlite3.connect(home / "prefect.db") as db:
        latest = "SELECT id FROM flow_run ORDER BY created DESC LIMIT 1"
        return dict(db.execute(f"SELECT name, state_type FROM task_run WHERE flow_run_id = ({latest})"))


def one_line_error(run: Run) -> str:
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in run.output, run.output
    return errors[0]


def test_runner_dask_without_the_flows_extra_or_with_a_dead_address_is_one_line(workdir, env) -> None:
    needs_extra = kgsynth("run", str(write_config(workdir, "no-extra", execution=DASK)), cwd=workdir, env=env,
                          code=WITHOUT_FLOWS)  # fmt: skip
    assert needs_extra.returncode == 2
    assert "pip install 'kgsynth[flows]'" in one_line_error(needs_extra)
    assert not (workdir / "runs" / "no-extra").exists()

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = kgsynth("run", str(write_config(workdir, "dead", execution={**DASK, "address": dead})),
                          cwd=workdir, env=env)  # fmt: skip
    assert unreachable.returncode == 2
    assert f"execution.address {dead}: no Dask scheduler reachable" in one_line_error(unreachable)
    assert not (workdir / "runs" / "dead").exists()  # nothing written

    dashboard = kgsynth("run", str(write_config(workdir, "web", execution={**DASK, "address": "http://127.0.0.1:8787"})),
                        cwd=workdir, env=env)  # fmt: skip
    assert dashboard.returncode == 2 and "line" in one_line_error(dashboard) and "execution.address" in dashboard.output


@pytest.mark.timeout(1200)
def test_dask_run_writes_the_same_bytes_as_a_local_run(workdir, env, model, local_run) -> None:
    local = local_run.run
    before = model.chat_requests
    config = write_config(workdir, "dask", generate=writer(model), execution=DASK)
    run = workdir / "runs" / "dask"

    # Ctrl-C (once) while the sampling shards run: the cluster goes with the run, finished shards stay
    interrupts: list[float] = []

    def interrupt_once_a_shard_is_saved(proc: subprocess.Popen, workers: set[int]) -> None:
        if not interrupts and list((run / "sample.shards").glob("*.npz")):
            proc.send_signal(signal.SIGINT)
            interrupts.append(time.monotonic())

    interrupted = kgsynth("run", str(config), cwd=workdir, env=env, watch=interrupt_once_a_shard_is_saved)
    assert interrupted.returncode == 130, interrupted.output
    assert len(interrupted.workers) >= 4
    assert_all_gone(interrupted.workers)
    assert json.loads((run / "sample.stamp.json").read_text())["complete"] is False
    assert not (run / "paths.parquet").exists()

    resumed = kgsynth("run", str(config), cwd=workdir, env=env)
    assert resumed.returncode == 0, resumed.output
    assert "load: up to date" in resumed.output and "shatter: up to date" in resumed.output
    assert len(resumed.workers) >= 4
    assert_all_gone(resumed.workers)
    # one Prefect API for the flow and every worker (a worker without its address would start its own)
    assert resumed.output.count("Starting temporary server") == 1
    runs = task_runs(Path(env["PREFECT_HOME"]))
    parts = {name: state for name, state in runs.items() if re.fullmatch(r"(sample|generate)\[\d+\]", name)}
    assert sorted(parts) == [f"{stage}[{i}]" for stage in ("generate", "sample") for i in range(4)]
    assert set(parts.values()) == {"COMPLETED"}

    assert (run / "paths.parquet").read_bytes() == (local / "paths.parquet").read_bytes()
    assert (run / "items.parquet").read_bytes() == (local / "items.parquet").read_bytes()
    assert pl.read_parquet(run / "items.parquet")["id"].to_list() == pl.read_parquet(local / "items.parquet")["id"].to_list()
    assert dataset_files(run) == dataset_files(local) and len(dataset_files(run)) >= 5
    assert not (run / "sample.shards").exists() and not (run / "generate.batches").exists()
    assert model.chat_requests - before == local_run.paid  # every call once, as in one process

    # the runner is not in any stage key: the local runner finds the dask run up to date
    same_but_local = write_config(workdir, "dask-as-local", generate=writer(model))
    again = kgsynth("run", str(same_but_local), "--out", str(run), cwd=workdir, env=env, code=WITHOUT_FLOWS)
    assert again.returncode == 0, again.output
    assert "0 of 7 stages ran, 7 up to date" in again.output


@pytest.mark.timeout(1200)
def test_a_worker_killed_during_a_model_call_costs_a_retry_not_the_run(workdir, env, model, local_run) -> None:
    port = int(model.url.rsplit(":", 1)[1].split("/")[0])
    killed: list[int] = []

    def kill_a_worker_waiting_for_the_model(proc: subprocess.Popen, workers: set[int]) -> None:
        for pid in sorted(workers - set(killed)):
            try:
                calling = any(
                    c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
                    for c in psutil.Process(pid).net_connections("tcp")
                )
            except psutil.Error:
                continue
            if calling and not killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    # a copy of the local run with generation to do again (and no replies cached): the local
    # runner's stamps must hold for the dask runner too
    run = workdir / "runs" / "killed"
    shutil.copytree(local_run.run, run)
    for cache in run.glob("llm_cache.sqlite*"):
        cache.unlink()
    config = write_config(workdir, "killed", generate=writer(model), execution={**DASK, "workers": 2})
    before = model.chat_requests
    result = kgsynth("run", str(config), "--out", str(run), "--force", "generate", cwd=workdir, env=env,
                     watch=kill_a_worker_waiting_for_the_model)  # fmt: skip
    paid = model.chat_requests - before

    assert result.returncode == 0, result.output
    assert all(f"{stage}: up to date" in result.output for stage in ("load", "shatter", "sample"))
    assert killed, "no worker was caught in a model call"
    assert len(result.workers) >= 3  # the nanny started a replacement
    assert_all_gone(result.workers)

    items, expected = pl.read_parquet(run / "items.parquet"), pl.read_parquet(local_run.run / "items.parquet")
    assert items["id"].to_list() == expected["id"].to_list()  # nothing lost, nothing twice
    # the same items; only provenance may say a reply came from the cache (paid before the kill)
    assert items.drop("provenance").equals(expected.drop("provenance"))
    # replies stored before the kill were not paid again: at most the calls in flight on the killed worker
    assert local_run.paid <= paid <= local_run.paid + CONFIG["generate"]["concurrency"]
