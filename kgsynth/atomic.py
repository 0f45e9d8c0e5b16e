"""Atomic file writes: a temp file beside the target, then one rename.

Every stage output goes through here (directories through
`kgsynth.graph.snapshot.replace_dir`), so a crash never leaves a half-written file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl


def replace_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temp path beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return replace_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    return replace_file(path, lambda tmp: frame.write_parquet(tmp, compression="zstd"))
