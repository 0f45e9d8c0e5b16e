"""Helpers every loader shares: path checks and text-file sanity checks."""

from __future__ import annotations

from pathlib import Path

from kgsynth.errors import InputFormatError, SourceNotFoundError


def require_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SourceNotFoundError(f"{path}: cannot be read ({exc.strerror})") from exc
    if path.stat().st_size == 0:
        raise InputFormatError("file is empty", file=path)
    return path


def decode_line(raw: bytes, path: Path, line_no: int) -> str:
    """Decode one line as UTF-8, naming the file and line when it is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[max(exc.start - 10, 0) : exc.end + 10]
        raise InputFormatError(
            f"not UTF-8 at byte {exc.start} ({bad!r}); re-encode the file as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`)",
            file=path,
            line=line_no,
        ) from None


def first_bad_utf8_line(path: Path) -> tuple[int, int, bytes] | None:
    """Scan a file for the first line that is not valid UTF-8: (line, byte offset, bytes)."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return line_no, exc.start, raw[max(exc.start - 10, 0) : exc.end + 10]
    return None
