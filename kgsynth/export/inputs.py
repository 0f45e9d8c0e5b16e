"""What export and the report read from a run directory.

Only `verified/accepted.parquet` is required. Everything else (the snapshot, the
pruning report, paths, generation metadata, rejections) is optional: when a part
is missing the card and the report say so in a sentence (`RunInputs.notes`)
instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kgsynth.difficulty import DifficultyResult, read_difficulty
from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.generate.item import ITEMS_SCHEMA, VERDICT_STRUCT, with_optional_columns
from kgsynth.graph.snapshot import Snapshot, read_snapshot
from kgsynth.rundir import RunDir

ACCEPTED = "accepted.parquet"
REJECTED = "rejected.parquet"
SUMMARY = "summary.json"
GENERATE = "generate.json"
HUBS = "hubs.json"

_VERDICTS = pl.List(VERDICT_STRUCT)


@dataclass
class RunInputs:
    run: RunDir
    accepted: pl.DataFrame  # items columns + `verdicts`
    rejected: pl.DataFrame | None = None  # + `reasons`
    failures: pl.DataFrame | None = None  # generation failures
    generated: int | None = None  # rows of items.parquet
    paths: int | None = None  # rows of paths.parquet
    summary: dict[str, Any] | None = None  # verified/summary.json
    generate: dict[str, Any] | None = None  # generate.json
    hubs: dict[str, Any] | None = None  # pruned/hubs.json
    snapshot: Snapshot | None = None  # the full graph
    pruned: Snapshot | None = None
    difficulty: DifficultyResult | None = None  # difficulty/ (the difficulty stage)
    notes: list[str] = field(default_factory=list)  # what is missing, in sentences


def read_run(run_dir: str | Path) -> RunInputs:
    """Read a run directory; raise only when `verified/accepted.parquet` is missing or malformed."""
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise SourceNotFoundError(f"{run.root}: no such run directory")
    accepted_path = run.verified / ACCEPTED
    if not accepted_path.exists():
        raise SourceNotFoundError(
            f"{accepted_path}: missing; export needs the verified items. Run `kgsynth verify {run.root}` first"
        )
    inputs = RunInputs(run=run, accepted=_read_items(accepted_path, extra={"verdicts": _VERDICTS}))

    rejected_path = run.verified / REJECTED
    if rejected_path.exists():
        inputs.rejected = _read_items(
            rejected_path, extra={"verdicts": _VERDICTS, "reasons": pl.List(pl.String)}
        )
    else:
        inputs.notes.append(f"No `{REJECTED}`: rejection reasons of the verification stage are unknown.")

    if run.failures.exists():
        inputs.failures = _read_parquet(run.failures)
    if run.items.exists():
        inputs.generated = pl.scan_parquet(run.items).select(pl.len()).collect().item()
    else:
        inputs.notes.append("No `items.parquet`: the number of generated items is unknown.")
    if run.paths.exists():
        inputs.paths = pl.scan_parquet(run.paths).select(pl.len()).collect().item()
    else:
        inputs.notes.append("No `paths.parquet`: the number of sampled paths is unknown.")

    inputs.summary = _read_json(run.verified / SUMMARY)
    inputs.generate = _read_json(run.root / GENERATE)
    if inputs.generate is None:
        inputs.notes.append("No `generate.json`: generation parameters were not recorded.")

    if (run.snapshot / "manifest.json").exists():
        inputs.snapshot = read_snapshot(run.snapshot)
    else:
        inputs.notes.append(
            "No `snapshot/`: the source graph is described from the items' provenance only."
        )
    if (run.pruned / "manifest.json").exists():
        inputs.pruned = read_snapshot(run.pruned)
    inputs.difficulty = read_difficulty(run.root)
    if inputs.difficulty is None:
        inputs.notes.append("No `difficulty/`: the items' difficulty was not measured (the difficulty stage, `kgsynth difficulty`).")
    inputs.hubs = _read_json(run.pruned / HUBS)
    if inputs.hubs is None and inputs.pruned is None:
        inputs.notes.append("No `pruned/`: hub pruning was not applied (paths were sampled from the full graph).")
    return inputs


def _read_items(path: Path, *, extra: dict[str, pl.DataType]) -> pl.DataFrame:
    frame = with_optional_columns(_read_parquet(path))
    missing = [c for c in ITEMS_SCHEMA if c not in frame.columns]
    if missing:
        raise InputFormatError(
            f"missing item column(s) {missing}; expected the items table of kgsynth.generate.item", file=path
        )
    columns = [pl.col(c).cast(t) for c, t in ITEMS_SCHEMA.items()]
    for column, dtype in extra.items():
        columns.append(pl.col(column).cast(dtype) if column in frame.columns else pl.lit([], dtype=dtype).alias(column))
    try:
        return frame.select(columns)
    except pl.exceptions.PolarsError as exc:
        raise InputFormatError(f"columns do not match the items schema: {exc}", file=path) from exc


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several unrelated types on corrupt files
        raise InputFormatError(f"cannot read as parquet: {exc}", file=path) from exc


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"invalid JSON: {exc}", file=path) from exc
    if not isinstance(data, dict):
        raise InputFormatError(f"expected a JSON object, got {type(data).__name__}", file=path)
    return data

