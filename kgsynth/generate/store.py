"""The items file, written in batches so a crash loses at most the batch in flight.

Each finished batch becomes a parquet part in a hidden `.<items>.parts/` directory
beside the output (temp file, then rename). At the end of a run, and at the start
of the next one if a run died, the parts and the existing items file are merged,
de-duplicated by item id and sorted, and the result replaces the items file
atomically; only then are the parts removed. A re-run reads the ids present and
skips them, so nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from kgsynth.atomic import write_parquet_atomic
from kgsynth.errors import InputFormatError
from kgsynth.generate.item import ITEMS_SCHEMA, with_optional_columns


def sidecar(out: Path, name: str) -> Path:
    """`failures.parquet` / `generate.json` beside `items.parquet`; `<stem>.<name>` beside other names."""
    return out.parent / (name if out.stem == "items" else f"{out.stem}.{name}")


class ItemStore:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.parts = out.parent / f".{out.name}.parts"

    def _read(self, path: Path) -> pl.DataFrame:
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:  # polars raises several types for a damaged file
            raise InputFormatError(f"cannot read items: {exc}; move it away to start afresh", file=path) from exc
        frame = with_optional_columns(frame)
        missing = [c for c in ITEMS_SCHEMA if c not in frame.columns]
        if missing:
            raise InputFormatError(
                f"not an items table (lacks {missing}); choose another --out or move it away", file=path
            )
        return frame.select(list(ITEMS_SCHEMA)).cast(ITEMS_SCHEMA)

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []

    def existing_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in ([self.out] if self.out.exists() else []) + self._part_files():
            ids.update(pl.read_parquet(path, columns=["id"])["id"].to_list())
        return ids

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        n = len(self._part_files())
        write_parquet_atomic(pl.DataFrame(rows, schema=ITEMS_SCHEMA), self.parts / f"part-{n:06d}-{uuid.uuid4().hex[:8]}.parquet")

    def consolidate(self) -> int:
        """Merge parts into the items file; return the number of items it holds."""
        parts = self._part_files()
        if not parts:
            if self.parts.is_dir():
                shutil.rmtree(self.parts, ignore_errors=True)
            return pl.scan_parquet(self.out).select(pl.len()).collect().item() if self.out.exists() else 0
        frames = ([self._read(self.out)] if self.out.exists() else []) + [self._read(p) for p in parts]
        merged = pl.concat(frames).unique("id", keep="first", maintain_order=True).sort(["path_id", "kind", "id"])
        write_parquet_atomic(merged, self.out)
        shutil.rmtree(self.parts, ignore_errors=True)
        return merged.height
