"""Where each stage of a run puts its output; every box of the data flow is a file.

`kgsynth run` and the Prefect flow write this layout; `kgsynth export RUN_DIR` and
`kgsynth report RUN_DIR` read it. Each stage writes atomically, so any stage can be
re-run, resumed or inspected alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def snapshot(self) -> Path:  # the full graph (verification always uses it)
        return self.root / "snapshot"

    @property
    def pruned(self) -> Path:  # pruned snapshot + hubs.json + shatter report
        return self.root / "pruned"

    @property
    def paths(self) -> Path:
        return self.root / "paths.parquet"

    @property
    def items(self) -> Path:  # + failures.parquet and generate.json beside it
        return self.root / "items.parquet"

    @property
    def failures(self) -> Path:
        return self.root / "failures.parquet"

    @property
    def llm_cache(self) -> Path:
        return self.root / "llm_cache.sqlite"

    @property
    def verified(self) -> Path:  # accepted.parquet, rejected.parquet, summary.json
        return self.root / "verified"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def report(self) -> Path:
        return self.root / "report"
