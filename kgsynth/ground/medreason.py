"""MedReason's column layout: the first columns of grounded.jsonl/parquet, and the
`medreason` configuration `kgsynth export` adds for a grounded run.

MedReason (UCSC-VLAA/MedReason) has one row per question with six text columns:
`dataset_name`, `id_in_dataset`, `question`, `answer`, `reasoning` and `options`
("Answer Choices:" then one "A. text" line per option). A grounded run's
configuration has exactly those, so it concatenates with MedReason's own data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kgsynth.errors import InputFormatError

MEDREASON_COLUMNS = ("dataset_name", "id_in_dataset", "question", "answer", "reasoning", "options")
GROUNDED = "grounded.parquet"


def read_medreason_rows(run_root: str | Path) -> dict[str, dict[str, Any]]:
    """Item id → MedReason row, from the run's grounded.parquet; empty when the run was not grounded."""
    import polars as pl

    path = Path(run_root) / GROUNDED
    if not path.exists():
        return {}
    try:
        frame = pl.read_parquet(path, columns=["item_id", *MEDREASON_COLUMNS])
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputFormatError(
            f"cannot be read as grounding output ({str(exc).splitlines()[0]}); re-run `kgsynth ground` to write it again",
            file=path,
        ) from None
    return {row.pop("item_id"): row for row in frame.iter_rows(named=True)}
