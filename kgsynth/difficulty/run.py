"""The difficulty stage: accepted items → `difficulty/` (scores, answers, record), atomically."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kgsynth.atomic import replace_directory
from kgsynth.config import DIFFICULTY_WEIGHTS
from kgsynth.difficulty.empirical import ANSWERS_SCHEMA, Answered, answer_prompt, ask_models
from kgsynth.difficulty.features import item_features
from kgsynth.difficulty.score import LEVELS, score_items
from kgsynth.errors import InputFormatError
from kgsynth.graph.snapshot import Snapshot
from kgsynth.llm.config import LLMConfig

DIFFICULTY_DIR = "difficulty"
SCORES = "difficulty.parquet"
ANSWERS = "answers.parquet"
RECORD = "difficulty.json"


@dataclass
class DifficultyResult:
    scores: pl.DataFrame  # one row per item: features, feature_score, accuracy, models, score, source, rank, level
    answers: pl.DataFrame  # one row per (item, model): ANSWERS_SCHEMA
    summary: dict[str, Any]


def difficulty_dir(run_root: str | Path) -> Path:
    return Path(run_root) / DIFFICULTY_DIR


def measure_difficulty(
    items: pl.DataFrame,
    full: Snapshot,
    *,
    models: Sequence[LLMConfig] = (),
    weights: Mapping[str, float] = DIFFICULTY_WEIGHTS,
) -> DifficultyResult:
    """Features on the full graph for every item, the models' answers for every item with options, and
    the scores (`kgsynth.difficulty.score`). The same items, graph, models and cached replies give the
    same result."""
    from kgsynth.graph.engine import open_engine
    from kgsynth.progress import step

    started, cpu = time.perf_counter(), time.process_time()
    with step(f"difficulty: graph features of {items.height:,} items"):
        features = item_features(items, open_engine(full))
    answered = Answered(pl.DataFrame(schema=ANSWERS_SCHEMA))
    if models:
        answered = ask_models(items, models)
    scores = score_items(features, answered.answers, weights)
    prompt = answer_prompt()
    summary = {
        "items": scores.height,
        "snapshot_hash": full.hash,
        "weights": dict(weights),
        "levels": {level: int((scores["level"] == level).sum()) for level in LEVELS},
        "source": dict(scores["source"].value_counts().iter_rows()),
        "models": [_model_summary(config, answered) for config in models],
        "prompt": {"name": prompt.name, "hash": prompt.hash} if models else None,
        "usage": answered.usage,
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
    }
    return DifficultyResult(scores, answered.answers, summary)


def _model_summary(config: LLMConfig, answered: Answered) -> dict[str, Any]:
    mine = answered.answers.filter(pl.col("model") == config.model)
    errors = mine.filter(pl.col("error").is_not_null())["error"].value_counts()
    return {
        "model": config.model,
        "base_url": config.resolved_base_url(),
        "seed": config.seed,
        "temperature": config.temperature,
        "items": mine.height,
        "correct": int(mine["correct"].sum()),
        "accuracy": round(float(mine["correct"].mean()), 4) if mine.height else None,
        "no_option": dict(errors.iter_rows()),
    }


def write_difficulty(result: DifficultyResult, out_dir: str | Path) -> Path:
    """difficulty.parquet, answers.parquet and difficulty.json; the directory appears whole or not at all."""
    out = Path(out_dir)
    with replace_directory(out, marker=RECORD, what="difficulty output") as tmp:
        result.scores.write_parquet(tmp / SCORES, compression="zstd")
        result.answers.write_parquet(tmp / ANSWERS, compression="zstd")
        (tmp / RECORD).write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
    return out


def read_difficulty(run_root: str | Path) -> DifficultyResult | None:
    """A run's difficulty output, or None when the stage has not run."""
    folder = difficulty_dir(run_root)
    if not (folder / RECORD).exists():
        return None
    try:
        scores = pl.read_parquet(folder / SCORES)
        answers = pl.read_parquet(folder / ANSWERS)
        summary = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except Exception as exc:  # polars and json raise several types for a damaged file
        raise InputFormatError(f"cannot read the difficulty output: {exc}; run `kgsynth difficulty` again", file=folder) from exc
    return DifficultyResult(scores, answers, summary)
