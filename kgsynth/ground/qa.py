"""Reading an existing QA set: JSONL, CSV/TSV, parquet or a local Hugging Face dataset.

A column mapping says where the question, the options and the answer are. Options
may be one column (a {label: text} dict, a list, their JSON text, or MedReason's
"A. …\\nB. …" text) or several columns (`opa,opb,opc,opd`, labelled A, B, …). The
answer may be an option label ("B", "(B)", "B."), an option's text, MedReason's
"(B) text", or, with `answer_index_base`, an option index. Rows that cannot be
read raise `InputFormatError` naming the file, row and field: a wrong mapping
should stop the run before any work is done.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.loaders.common import decode_line, require_file

_OPTION_LINE = re.compile(r"^\s*\(?([A-Za-z])\s*[\.\):]\s*(.+?)\s*$")
_LABELLED_ANSWER = re.compile(r"^\s*\(?([A-Za-z])\s*[\.\):]\s*(.*?)\s*$", re.DOTALL)
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_ID_COLUMNS = ("id", "id_in_dataset")  # MedReason's names
_SOURCE_COLUMN = "dataset_name"


class ColumnMap(BaseModel):
    """Where each field of a QA row lives in the input table."""

    question: str = "question"
    options: list[str] = Field(default_factory=lambda: ["options"])  # one column, or one per option
    answer: str = "answer"
    id: str | None = None  # default: an `id` or `id_in_dataset` column, else the 0-based row number
    source: str | None = None  # a column naming each row's dataset; default: `dataset_name` if present
    answer_index_base: int | None = None  # 0 or 1: integer answers are option indices


class QAOption(BaseModel):
    label: str
    text: str


class QARecord(BaseModel):
    """One question of the input set, normalised."""

    dataset_name: str
    id_in_dataset: str
    question: str
    options: list[QAOption] = Field(default_factory=list)  # empty for open questions
    answer: str  # the gold answer's text
    answer_label: str | None = None  # its option label, for multiple-choice questions
    row: int  # 1-based row number in the input, for messages


def read_qa(
    path: str | Path,
    columns: ColumnMap | None = None,
    *,
    dataset_name: str | None = None,
    split: str | None = None,
) -> list[QARecord]:
    """Read and normalise every row of a QA set (see the module docstring for the forms)."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such QA file or dataset directory")
    columns = columns or ColumnMap()
    name = dataset_name or path.stem
    records = []
    seen: dict[str, int] = {}
    for index, (row_no, row) in enumerate(_rows(path, split)):
        record = _record(row, row_no, index, columns, name, path)
        key = f"{record.dataset_name}\x00{record.id_in_dataset}"
        if key in seen:
            raise InputFormatError(
                f"id {record.id_in_dataset!r} repeats row {seen[key]}; ids must be unique within a dataset "
                "(map another column with --id-col, or leave it out to number rows)",
                file=path,
                line=row_no,
                field=columns.id,
            )
        seen[key] = row_no
        records.append(record)
    if not records:
        raise InputFormatError("no QA rows", file=path)
    return records


# --- rows from each format ---------------------------------------------------------------


def _rows(path: Path, split: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.is_dir():
        yield from enumerate(_hf_rows(path, split), start=1)
        return
    require_file(path)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        yield from _json_rows(path)
    elif suffix in {".csv", ".tsv"}:
        yield from _csv_rows(path, separator="\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        import polars as pl

        try:
            frame = pl.read_parquet(path)
        except Exception as exc:  # polars raises several error kinds for a bad file
            raise InputFormatError(f"cannot read as parquet: {exc}", file=path) from exc
        yield from enumerate(frame.iter_rows(named=True), start=1)
    else:
        raise InputFormatError(
            f"unknown QA file type {suffix!r}; expected .jsonl, .json, .csv, .tsv, .parquet "
            "or a Hugging Face dataset directory",
            file=path,
        )


def _json_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
    if head.startswith(b"["):  # a JSON array rather than JSON lines
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputFormatError(f"not valid JSON: {exc}", file=path) from None
        for row_no, row in enumerate(rows, start=1):
            yield row_no, _require_object(row, path, row_no)
        return
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = decode_line(raw, path, line_no).strip()
            if not text:
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"not valid JSON ({exc.msg} at column {exc.colno})", file=path, line=line_no) from None
            yield line_no, _require_object(row, path, line_no)


def _require_object(row: Any, path: Path, line: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InputFormatError(f"expected a JSON object per row, got {type(row).__name__}", file=path, line=line)
    return row


def _csv_rows(path: Path, separator: str) -> Iterator[tuple[int, dict[str, Any]]]:
    import polars as pl

    try:
        frame = pl.read_csv(path, separator=separator, infer_schema=False, encoding="utf8")
    except Exception as exc:
        raise InputFormatError(f"cannot read as {'TSV' if separator == chr(9) else 'CSV'}: {exc}", file=path) from exc
    # +2: the header is line 1 (records with embedded newlines make this approximate)
    yield from enumerate(frame.iter_rows(named=True), start=2)


def _hf_rows(path: Path, split: str | None) -> Iterator[dict[str, Any]]:
    import datasets

    if any((path / marker).exists() for marker in _HF_MARKERS):
        loaded = datasets.load_from_disk(str(path))
    else:  # a directory of data files laid out as on the Hub
        try:
            loaded = datasets.load_dataset(str(path))
        except Exception as exc:  # datasets raises many kinds for an unreadable directory
            raise InputFormatError(f"not a Hugging Face dataset directory: {exc}", file=path) from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        chosen = split or ("train" if "train" in splits else splits[0] if len(splits) == 1 else None)
        if chosen not in loaded:
            raise InputFormatError(
                f"choose a split with --split; this dataset has {', '.join(splits)}", file=path
            )
        loaded = loaded[chosen]
    elif split:
        raise InputFormatError(f"--split {split!r} given, but this dataset has no splits", file=path)
    yield from loaded


# --- one row → one record ----------------------------------------------------------------


def _record(row: dict[str, Any], row_no: int, index: int, columns: ColumnMap, name: str, path: Path) -> QARecord:
    def field(column: str) -> Any:
        if column not in row:
            raise InputFormatError(
                f"no column {column!r}; columns are {', '.join(map(repr, row))}. "
                "Map yours with --question-col/--options-col/--answer-col/--id-col",
                file=path,
                line=row_no,
                field=column,
            )
        return row[column]

    question = _text(field(columns.question))
    if not question:
        raise InputFormatError("empty question", file=path, line=row_no, field=columns.question)
    options = _options(columns, field, path, row_no)
    answer_label, answer = _answer(field(columns.answer), options, columns, path, row_no)
    id_column = columns.id or next((c for c in _ID_COLUMNS if c in row), None)
    source_column = columns.source or (_SOURCE_COLUMN if _SOURCE_COLUMN in row else None)
    source = _text(field(source_column)) if source_column else ""
    return QARecord(
        dataset_name=source or name,
        id_in_dataset=_text(field(id_column)) if id_column else str(index),
        question=question,
        options=options,
        answer=answer,
        answer_label=answer_label,
        row=row_no,
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _options(columns: ColumnMap, field, path: Path, row_no: int) -> list[QAOption]:
    if not columns.options:
        return []
    if len(columns.options) > 1:
        texts = [_text(field(c)) for c in columns.options]
        return [QAOption(label=chr(ord("A") + i), text=t) for i, t in enumerate(texts) if t]
    value = field(columns.options[0])
    if isinstance(value, str):
        stripped = value.strip()
        if stripped in {"", "null", "None"}:  # how JSON and pandas exports write "no options"
            return []
        if stripped.startswith(("{", "[")):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise InputFormatError(
                    f"options look like JSON but do not parse ({exc.msg}): {stripped[:80]!r}",
                    file=path,
                    line=row_no,
                    field=columns.options[0],
                ) from None
        else:
            return _options_from_text(stripped, path, row_no, columns.options[0])
    if value is None:
        return []
    if isinstance(value, dict):
        pairs = [(str(k).strip(), _text(v)) for k, v in value.items() if v is not None]
    elif isinstance(value, (list, tuple)):
        pairs = [(chr(ord("A") + i), _text(v)) for i, v in enumerate(value)]
    else:
        raise InputFormatError(
            f"options must be a dict, a list or 'A. …' lines, got {type(value).__name__} {value!r}",
            file=path,
            line=row_no,
            field=columns.options[0],
        )
    return [QAOption(label=label, text=text) for label, text in pairs if text]


def _options_from_text(text: str, path: Path, row_no: int, column: str) -> list[QAOption]:
    """MedReason's options text: an optional "Answer Choices:" line, then "A. …" lines."""
    options = []
    for line in text.splitlines():
        match = _OPTION_LINE.match(line)
        if match:
            options.append(QAOption(label=match.group(1).upper(), text=match.group(2)))
        elif line.strip() and not line.strip().endswith(":"):
            raise InputFormatError(
                f"cannot read option line {line.strip()[:80]!r}; expected 'A. text' lines",
                file=path,
                line=row_no,
                field=column,
            )
    return options


def _answer(
    value: Any, options: list[QAOption], columns: ColumnMap, path: Path, row_no: int
) -> tuple[str | None, str]:
    if not options:
        text = _text(value)
        if not text:
            raise InputFormatError("empty answer", file=path, line=row_no, field=columns.answer)
        return None, text
    by_label = {o.label.upper(): o for o in options}
    if isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, str) and value.strip().isdigit()):
        if columns.answer_index_base is None:
            raise InputFormatError(
                f"answer {value!r} is a number; pass --answer-index-base 0 or 1 if it indexes the options",
                file=path,
                line=row_no,
                field=columns.answer,
            )
        index = int(value) - columns.answer_index_base
        if not 0 <= index < len(options):
            raise InputFormatError(
                f"answer index {value!r} is outside the {len(options)} options", file=path, line=row_no, field=columns.answer
            )
        return options[index].label, options[index].text
    text = _text(value)
    bare = text.strip("().: ").upper()
    if bare in by_label:
        return bare, by_label[bare].text
    folded = text.casefold()
    for option in options:
        if option.text.casefold() == folded:
            return option.label, option.text
    match = _LABELLED_ANSWER.match(text)
    if match and match.group(1).upper() in by_label:
        option = by_label[match.group(1).upper()]
        if option.text.casefold() == match.group(2).casefold():
            return option.label, option.text
    labels = ", ".join(o.label for o in options)
    raise InputFormatError(
        f"answer {text[:80]!r} is neither an option label ({labels}) nor an option's text",
        file=path,
        line=row_no,
        field=columns.answer,
    )

