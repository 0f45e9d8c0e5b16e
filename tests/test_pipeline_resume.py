"""`kgsynth run` on the real HPO graph: killed during generation, it resumes without loss or duplicates.

The model is the local OpenAI-compatible test server (echo responder, some latency),
so generation lasts long enough to be killed in the middle of a batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from hub_server import LocalHubServer
from llm_server import LLMServer, echo_responder

from kgsynth import pipeline
from kgsynth.config import load_config
from kgsynth.rundir import RunDir

KGSYNTH = [sys.executable, "-c", "from kgsynth.cli import main; main()"]


def kgsynth(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*KGSYNTH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def hub_env(hub: LocalHubServer, home: Path) -> dict[str, str]:
    """What a user's shell would hold to publish: huggingface_hub reads these when imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_OFFLINE"))}
    return env | {
        "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.state.token, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }  # fmt: skip


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "resume.yaml"
    path.write_text(
        f"""name: resume
run_dir: run
source: {{format: hpo}}
shatter: {{enabled: false}}
sample: {{strategy: walk, n: 60, hops: 2-3, seed: 3}}
generate:
  writer: openai
  model: test-model
  base_url: {url}
  concurrency: 2
  batch_size: 30
  save_every: 8
  kinds: [mcq, open]
export: {{formats: [parquet]}}
publish: {{repo_id: tester/resume, private: true}}
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.timeout(300)
def test_run_killed_during_generation_resumes_without_duplicates(tmp_path: Path) -> None:
    with (
        LLMServer(responder=echo_responder, latency=0.03) as server,
        LocalHubServer(token=f"hf_{os.urandom(12).hex()}") as hub,
    ):
        env = hub_env(hub, tmp_path / "hf")
        config = write_config(tmp_path, server.url)
        run = tmp_path / "run"
        proc = subprocess.Popen([*KGSYNTH, "run", str(config)], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        batches = run / "generate.batches"
        deadline = time.monotonic() + 240
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not list(batches.glob("*/.items.parquet.parts/part-*"))
        ):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert list(batches.glob("*/.items.parquet.parts/part-*")), "the run was not killed during generation"
        stamp = json.loads((run / "generate.stamp.json").read_text())
        assert stamp["complete"] is False and not (run / "items.parquet").exists()
        paid_before_resume = server.chat_requests

        resumed = kgsynth("run", str(config), cwd=tmp_path, env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert "load: up to date" in resumed.stderr and "sample: up to date" in resumed.stderr
        paid = server.chat_requests
        items = pl.read_parquet(run / "items.parquet")
        assert items.height > 0 and items["id"].n_unique() == items.height
        assert not batches.exists()  # the batches' working files go once merged

        # An uninterrupted generation of the same paths, answered from the reply cache:
        # the same items, and not one more call to the model.
        pipeline.run_stage("generate", load_config(config), RunDir(run), force=True)
        fresh = pl.read_parquet(run / "items.parquet")
        assert sorted(fresh["id"].to_list()) == sorted(items["id"].to_list())
        assert server.chat_requests == paid

        # the run ended by publishing; the token stayed in the environment
        assert hub.files("tester/resume")[:2] == [".gitattributes", "README.md"]
        assert hub.file_text("tester/resume", "README.md") == (run / "dataset" / "README.md").read_text()
        assert (
            f"{hub.url}/datasets/tester/resume"
            in json.loads((run / "publish.stamp.json").read_text())["summary"]["url"]
        )
        written = [p.read_bytes() for p in run.rglob("*") if p.is_file()]
        assert not any(hub.state.token.encode() in data for data in written)
        assert hub.state.token not in resumed.stdout + resumed.stderr

    stats = json.loads((run / "generate.json").read_text())
    calls = (
        items.height
        + sum(stats["rejected"].values())
        - sum(v for k, v in stats["rejected"].items() if k.startswith("anchor_") or k in ("too_few_negatives", "answer_not_unique"))
    )
    # each answer before the kill was reused; at most the calls in flight at the kill were paid twice
    assert paid_before_resume <= paid <= calls + 2
    assert (run / "dataset" / "README.md").exists() and (run / "report" / "report.md").exists()
    assert f"report: {Path('run') / 'report' / 'report.md'}" in resumed.stderr
