"""Atomic writes: a temp file or directory beside the target, then one rename.

Every stage output goes through here, so a crash or a failed write never leaves a
half-written file or directory, nor a stray temp one beside it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl


def _beside(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:8]}"


def replace_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temp path beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, "tmp")
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


@contextmanager
def replace_directory(out: str | Path) -> Iterator[Path]:
    """Yield an empty temp directory beside `out`; when the block ends it replaces `out` whole.

    If the block raises, the temp directory is removed and `out` (if any) is left as it was.
    Callers decide beforehand whether an existing `out` may be replaced.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(out, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, target: Path) -> None:
    """Move a finished directory into place, keeping the old one until the swap is done."""
    old = None
    if target.exists():
        old = _beside(target, "old")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
