"""How hard each verified item is: graph features, and optionally answering models.

    result = measure_difficulty(accepted, full_snapshot, models=[LLMConfig(model=…, cache_path=…)])
    write_difficulty(result, run_dir / "difficulty")

`difficulty/difficulty.parquet` has one row per accepted item (features, feature
score, model accuracy, score, level, rank) and `answers.parquet` each model's
answer; `difficulty.json` the weights, models, their accuracy and usage. Export
reads them for the `difficulty` column, `--curriculum` and `--stratify difficulty`.
"""

from kgsynth.difficulty.run import (
    DIFFICULTY_DIR,
    DifficultyResult,
    difficulty_dir,
    measure_difficulty,
    read_difficulty,
    write_difficulty,
)
from kgsynth.difficulty.score import LEVELS

__all__ = [
    "DIFFICULTY_DIR",
    "LEVELS",
    "DifficultyResult",
    "difficulty_dir",
    "measure_difficulty",
    "read_difficulty",
    "write_difficulty",
]
