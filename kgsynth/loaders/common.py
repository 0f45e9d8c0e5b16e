"""Helpers every loader shares: options, path checks, and delimited-text reading
that turns any malformed input into one error naming the file, line and field."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError

_CHUNK = 1 << 24
_TRAILING = "_trailing"  # the empty field after a line's final separator (UMLS RRF)
_LAST_MISSING = "_last_field_missing"


# --- options -------------------------------------------------------------------------


def check_options(loader: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse option names the loader does not know, listing the ones it does."""
    known = sorted(known)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for loader '{loader}'; known: {', '.join(known) or '(none)'}"
        )


def option_list(name: str, value: Any) -> list[str]:
    """A list option: a list, or one value (the CLI gives `-O k=a,b` as a list, `-O k=a` as a string)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ConfigError(f"option '{name}' expects a comma-separated list of names, got {value!r}")


def option_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
        return value.lower() in {"true", "yes", "1"}
    raise ConfigError(f"option '{name}' expects true or false, got {value!r}")


def option_str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(f"option '{name}' expects a single value, got {value!r}")


# --- files ---------------------------------------------------------------------------


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
        raise _not_utf8(path, line_no, exc.start, raw[max(exc.start - 10, 0) : exc.end + 10]) from None


def _not_utf8(path: Path, line: int, offset: int, snippet: bytes) -> InputFormatError:
    return InputFormatError(
        f"not UTF-8 at byte {offset} of the line ({snippet!r}); re-encode the file as UTF-8 "
        "(e.g. `iconv -f latin1 -t utf-8`)",
        file=path,
        line=line,
    )


def first_bad_utf8_line(path: Path) -> tuple[int, int, bytes] | None:
    """The first line that is not valid UTF-8: (line, byte offset in the line, bytes around it)."""
    line_base, carry = 1, b""
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_CHUNK)
            data = carry + block
            # Decode whole lines only, so no multi-byte character is split across blocks.
            cut = data.rfind(b"\n") + 1 if block else len(data)
            region, carry = data[:cut], data[cut:]
            try:
                region.decode("utf-8")
            except UnicodeDecodeError as exc:
                line_start = region.rfind(b"\n", 0, exc.start) + 1
                return (
                    line_base + region.count(b"\n", 0, exc.start),
                    exc.start - line_start,
                    region[max(exc.start - 10, line_start) : exc.end + 10],
                )
            line_base += region.count(b"\n")
            if not block:
                return None


def count_lines(path: Path) -> int:
    """Number of lines, counting a last line without a newline."""
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


# --- delimited text ------------------------------------------------------------------


def separator_for(path: Path) -> str:
    """Tab for .tsv/.tab, comma for .csv; otherwise whichever the header line has more of."""
    suffix = Path(path).suffix.lower()
    if suffix in {".tsv", ".tab"}:
        return "\t"
    if suffix == ".csv":
        return ","
    with open(path, "rb") as handle:
        header = handle.readline()
    return "\t" if header.count(b"\t") > header.count(b",") else ","


def _split(line: str, separator: str, quoting: bool) -> list[str]:
    if not quoting:
        return line.split(separator)
    return next(csv.reader([line], delimiter=separator), [])


def read_header(path: Path, separator: str, required: Iterable[str], *, quoting: bool = True) -> list[str]:
    """The column names on line 1; an error naming the first missing required column."""
    with open(path, "rb") as handle:
        raw = handle.readline()
    header = _split(decode_line(raw, path, 1).rstrip("\r\n"), separator, quoting)
    missing = [c for c in required if c not in header]
    if missing:
        found = ", ".join(repr(c) for c in header[:12]) + (" …" if len(header) > 12 else "")
        hint = ""
        if len(header) == 1:
            other = "\t" if separator != "\t" else ","
            if other in raw.decode("utf-8", "replace"):
                named = "tab-separated" if other == "\t" else "comma-separated"
                hint = f"; that is one column: is the file {named}? This reader expects {_name(separator)}"
        raise InputFormatError(
            f"missing column(s) {', '.join(missing)}; found {found}{hint}", file=path, line=1, field=missing[0]
        )
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise InputFormatError(f"column {duplicated[0]!r} appears twice in the header", file=path, line=1)
    return header


def _name(separator: str) -> str:
    return {"\t": "tabs", ",": "commas", "|": "pipes"}.get(separator, repr(separator))


def check_last_line(path: Path, separator: str, header: list[str], *, quoting: bool = True) -> None:
    """A file cut short mid-row (a failed download) ends without a newline and with too few fields."""
    with open(path, "rb") as handle:
        handle.seek(max(path.stat().st_size - (1 << 16), 0))
        tail = handle.read()
    if tail.endswith(b"\n"):
        return
    last = tail[tail.rfind(b"\n") + 1 :].decode("utf-8", "replace").rstrip("\r")
    fields = _split(last, separator, quoting)
    if len(fields) < len(header):
        missing = header[len(fields) :]
        raise InputFormatError(
            f"the file ends mid-row: the last line has {len(fields)} of {len(header)} fields "
            f"(no {', '.join(missing)}) and no final newline, so the file looks truncated; "
            "download or copy it again",
            file=path,
            line=count_lines(path),
            field=missing[0],
        )


def diagnose(
    path: Path,
    separator: str,
    header: list[str],
    *,
    integers: Iterable[str] = (),
    quoting: bool = True,
    has_header: bool = True,
) -> InputFormatError | None:
    """Walk the file row by row to find the first malformed line (slow; used after a fast read failed)."""
    bad = first_bad_utf8_line(path)
    if bad is not None:
        return _not_utf8(path, *bad)
    columns = {name: i for i, name in enumerate(header)}
    integer_at = [(name, columns[name]) for name in integers if name in columns]
    with open(path, encoding="utf-8", newline="") as handle:
        if quoting:
            rows: Iterable[tuple[int, list[str]]] = _csv_rows(handle, separator)
        else:
            rows = enumerate((line.rstrip("\r\n").split(separator) for line in handle), start=1)
        for line_no, row in rows:
            if line_no == 1 and has_header:
                continue
            if len(row) != len(header):
                return field_count_error(path, line_no, len(row), header, separator.join(row))
            for name, i in integer_at:
                value = row[i].strip()
                if not value.lstrip("-").isdigit():
                    return InputFormatError(f"expected an integer, got {value!r}", file=path, line=line_no, field=name)
    return None


def _csv_rows(handle: Iterable[str], separator: str) -> Iterator[tuple[int, list[str]]]:
    """(the line a row starts on, its fields): a quoted value may hold line breaks."""
    reader = csv.reader(handle, delimiter=separator)
    end = 0
    for row in reader:
        yield end + 1, row
        end = reader.line_num


def field_count_error(path: Path, line: int, count: int, header: list[str], text: str) -> InputFormatError:
    """A line with more or fewer fields than the header, naming the first missing column or the
    last column the extra fields follow."""
    named = [c for c in header if c != _TRAILING]
    if count < len(header):
        missing = [c for c in header[count:] if c != _TRAILING]
        if not missing:  # every named field is there; only the line's final separator is not
            return InputFormatError(
                f"the line lacks its final separator (every line of this format ends with one): "
                f"{_shorten(text, from_end=True)}",
                file=path,
                line=line,
                field=named[-1],
            )
        return InputFormatError(
            f"{count} fields where the header has {len(header)} (no {', '.join(missing)}): {_shorten(text)}; "
            "a row cut short or a lost separator: restore the missing fields",
            file=path,
            line=line,
            field=missing[0],
        )
    return InputFormatError(
        f"{count} fields where the header has {len(header)}, {count - len(header)} more after the last column "
        f"{named[-1]}: {_shorten(text, from_end=True)}; a separator inside an unquoted value does this "
        "(quote the value) or a stray one at the end of the line (remove it)",
        file=path,
        line=line,
        field=named[-1],
    )


def _shorten(text: str, limit: int = 80, *, from_end: bool = False) -> str:
    if len(text) <= limit:
        return repr(text)
    return repr("…" + text[-limit:] if from_end else text[:limit] + "…")


def read_delimited(
    path: Path,
    *,
    separator: str,
    columns: Mapping[str, pl.DataType],
    expected: Iterable[str] = (),
    non_empty: Iterable[str] = (),
    quoting: bool = True,
    trailing_separator: bool = False,
    has_header: bool = True,
    header: list[str] | None = None,
) -> pl.DataFrame:
    """Read `columns` of a delimited text file with polars; on any malformation, one precise error.

    `columns` maps the wanted column names to dtypes (absent ones are skipped); the
    header must name every `expected` column, and `non_empty` columns must have a value in every row.
    Without a header line, `header` names the fields. `trailing_separator`: every
    line ends with the separator (UMLS RRF).
    """
    require_file(path)
    if has_header:
        header = read_header(path, separator, expected, quoting=quoting)
    assert header is not None
    check_last_line(path, separator, header + ([""] if trailing_separator else []), quoting=quoting)
    names = header + ([_TRAILING] if trailing_separator else [])
    schema = {name: columns.get(name, pl.String()) for name in names}
    wanted = [c for c in columns if c in header]
    # polars fills the missing trailing fields of a short row with nulls, so a null last field marks
    # the rows whose lines are worth a look.
    last_missing = [pl.col(names[-1]).is_null().alias(_LAST_MISSING)] if quoting else []
    try:
        frame = (
            pl.scan_csv(
                path,
                separator=separator,
                has_header=has_header,
                new_columns=None if has_header else names,
                schema=schema,
                quote_char='"' if quoting else None,
                truncate_ragged_lines=False,
            )
            .select(*wanted, *last_missing)
            # A projected read stops at the last wanted field and never sees extra ones; a read of
            # every field raises on them. Unquoted files have their separators counted instead.
            .collect(optimizations=pl.QueryOptFlags(projection_pushdown=not quoting))
        )
    except pl.exceptions.PolarsError as exc:
        # The vectorised search for a ragged line first: the walk takes seconds per 100 MB.
        error = _ragged_line(path, separator, names, skip=int(has_header), quoting=quoting) or diagnose(
            path,
            separator,
            names if not has_header else header,
            integers=[c for c, t in columns.items() if t.is_integer()],
            quoting=quoting,
            has_header=has_header,
        )
        if error is None:
            raise InputFormatError(f"cannot be read: {str(exc).splitlines()[0]}", file=path) from None
        raise error from None
    offset = 2 if has_header else 1
    if quoting:
        _check_short_rows(path, separator, names, frame[_LAST_MISSING], skip=offset - 1)
        frame = frame.drop(_LAST_MISSING)
    else:
        _check_field_counts(path, separator, names, skip=offset - 1)
    for column in non_empty:
        if frame[column].null_count():
            row = int(frame[column].is_null().arg_max())
            raise InputFormatError(
                "empty value; every row needs one (a missing field or a short row)",
                file=path,
                line=row + offset,
                field=column,
            )
    if frame.height == 0:
        raise InputFormatError("no rows after the header line", file=path)
    return frame


def _raw_lines(path: Path) -> pl.LazyFrame:
    """The file's lines as text (`line`) with their 0-based number (`_row`)."""
    return pl.scan_csv(
        path, has_header=False, separator="\x00", quote_char=None, schema={"line": pl.String()}
    ).with_row_index("_row")


def _check_field_counts(path: Path, separator: str, header: list[str], *, skip: int) -> None:
    """Every line of an unquoted file has the same number of fields (a projected polars read
    does not notice extra or missing separators)."""
    error = _ragged_line(path, separator, header, skip=skip, quoting=False)
    if error is not None:
        raise error


def _ragged_line(path: Path, separator: str, header: list[str], *, skip: int, quoting: bool) -> InputFormatError | None:
    """The first line whose field count differs from the header's, by a vectorised count of
    separators; in a quoted file only the lines where that count is off are parsed, to discount
    quoted separators. None when there is none, or when a NUL byte, bad UTF-8 or a quoted line
    break keeps lines from being rows (the line-by-line walk settles those)."""
    separators = pl.col("line").str.count_matches(separator, literal=True).fill_null(0)
    off = _raw_lines(path).filter((separators != len(header) - 1) & (pl.col("_row") >= skip))
    try:
        query = (off if quoting else off.head(1)).select("_row", "line", separators.alias("_count"))
        lines = query.collect(engine="streaming")
    except pl.exceptions.PolarsError:
        # the lines cannot be read as text: a quoted file's caller walks it; an unquoted one is walked here
        return None if quoting else diagnose(path, separator, header, quoting=False, has_header=skip > 0)
    for row, line, count in lines.iter_rows():
        line = (line or "").rstrip("\r")
        if quoting and '"' in line:
            if line.count('"') % 2:
                return None
            count = len(_split(line, separator, True)) - 1
        if count != len(header) - 1:
            return field_count_error(path, row + 1, count + 1, header, line)
    return None


def _check_short_rows(path: Path, separator: str, header: list[str], last_missing: pl.Series, *, skip: int) -> None:
    """Refuse rows with fewer fields than the header. polars reads them with nulls for the missing
    fields, like an empty last field, so only the lines of rows whose last field is null are looked at."""
    if not last_missing.any():
        return
    lines = _maybe_short_lines(path, separator, len(header), last_missing, skip=skip)
    if lines is None:
        error = diagnose(path, separator, header, has_header=skip > 0)
        if error is not None:
            raise error
        return
    for row, line in lines.iter_rows():
        count = len(_split((line or "").rstrip("\r"), separator, True))
        if count < len(header):
            raise field_count_error(path, row + 1, count, header, line or "")


def _maybe_short_lines(path: Path, separator: str, fields: int, wanted: pl.Series, *, skip: int) -> pl.DataFrame | None:
    """The lines (`_row`, `line`) of the data rows flagged in `wanted` that may have fewer than
    `fields` fields. None when data rows are not lines (line breaks inside quoted values) or a
    NUL byte stops polars: the line-by-line walk settles those."""
    if count_lines(path) != len(wanted) + skip:
        return None
    count = pl.col("line").str.count_matches(separator, literal=True) + 1
    quoted = pl.col("line").str.contains('"', literal=True)
    try:
        # Without quotes the separators count the fields exactly; a quoted value may hide some.
        return (
            _raw_lines(path)
            .filter(pl.col("_row").is_in((wanted.arg_true() + skip).implode()))
            .filter(quoted | (count < fields).fill_null(True))
            .collect(engine="streaming")
        )
    except pl.exceptions.PolarsError:
        return None


def row_line(row: int, *, has_header: bool = True) -> int:
    """The file line of data row `row` (0-based), for files without line breaks inside fields."""
    return row + (2 if has_header else 1)
