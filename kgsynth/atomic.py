"""Atomic writes: a temp file or directory beside the target, then one rename.

Every stage output goes through here, so a write that fails never leaves a
half-written file or directory, nor a temp one beside it. (A process killed
mid-write can leave a `.name.tmp-*` beside the target; the target itself is
either the old output or the new one.)
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from kgsynth.errors import OutputError


def beside(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:8]}"


def replace_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temp path beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = beside(path, "tmp")
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
def replace_directory(out: str | Path, *, marker: str, what: str) -> Iterator[Path]:
    """Yield an empty temp directory beside `out`; when the block ends it replaces `out` whole.

    An existing, non-empty `out` is replaced only when it holds `marker` (the file
    every such output has): a folder of other files is refused before anything is
    written, never deleted. If the block raises, the temp directory is removed and
    `out` (if any) is left as it was.
    """
    out = Path(out)
    if out.is_dir() and not (out / marker).exists() and any(out.iterdir()):
        raise OutputError(f"{out}: exists and is not a kgsynth {what} (no {marker}); refusing to replace it — choose an empty or new folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give a folder for the {what}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = beside(out, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        try:
            _replace_dir(tmp, out)
        except OSError as exc:
            raise OutputError(f"{out}: cannot be replaced ({exc.strerror or exc}); write the {what} to a new folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, target: Path) -> None:
    """Move a finished directory into place, keeping the old one until the swap is done."""
    old = None
    if target.exists():
        old = beside(target, "old")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
