"""Decontamination: items whose question shares a word n-gram with a benchmark question.

Benchmark files are the user's (MedQA, PubMedQA, MMLU medical subsets, …) in
JSONL, JSON, CSV, parquet or plain text (one question per line). From records the
question is the first of the fields `question`, `query`, `prompt`, `input`,
`problem`, `instruction`, `text`. Text is normalized as everywhere in
verification (casefold, punctuation to spaces); a question shorter than n words
is compared whole. Every match is reported with the file, the record and the
shared words.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.verify.checks import Outcome, register
from kgsynth.verify.text import words

QUESTION_FIELDS = ("question", "query", "prompt", "input", "problem", "instruction", "text")
DEFAULT_NGRAM = 8


def read_benchmark(path: str | Path) -> list[tuple[int, str]]:
    """(record number from 1, question text) of a benchmark file."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such benchmark file")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if suffix in (".jsonl", ".ndjson"):
        records = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((i, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"not a JSON line: {exc.msg}: {line[:60]!r}", file=path, line=i) from None
        return _questions(path, records)
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"not valid JSON: {exc.msg}", file=path, line=exc.lineno) from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        return _questions(path, list(enumerate(data, start=1)))
    if suffix in (".csv", ".parquet"):
        try:
            frame = pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
        except Exception as exc:  # polars raises several types for unreadable files
            raise InputFormatError(f"cannot read as {suffix[1:]}: {exc}", file=path) from None
        column = next((c for c in QUESTION_FIELDS if c in frame.columns), None)
        if column is None:
            raise InputFormatError(f"no question column; expected one of {', '.join(QUESTION_FIELDS)}", file=path)
        offset = 2 if suffix == ".csv" else 1  # csv: line numbers after the header
        return [(i + offset, str(q)) for i, q in enumerate(frame[column].to_list()) if q]
    raise InputFormatError(f"unknown benchmark format '{suffix}'; use .jsonl, .json, .csv, .parquet or .txt", file=path)


def _questions(path: Path, records: list[tuple[int, Any]]) -> list[tuple[int, str]]:
    out = []
    for number, record in records:
        if isinstance(record, str):
            out.append((number, record))
            continue
        if not isinstance(record, dict):
            raise InputFormatError(f"record {number} is a {type(record).__name__}, expected an object", file=path, line=number)
        field = next((f for f in QUESTION_FIELDS if isinstance(record.get(f), str)), None)
        if field is None:
            raise InputFormatError(
                f"record {number} has no question field; expected one of {', '.join(QUESTION_FIELDS)}",
                file=path,
                line=number,
            )
        out.append((number, record[field]))
    return out


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    if len(tokens) < n:
        return [tuple(tokens)] if tokens else []
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@register(
    "decontamination",
    stage="decontamination",
    codes=("CONTAMINATED",),
    description="the question shares a word n-gram with a question of a benchmark file the user named",
)
def run_decontamination(frame: pl.DataFrame, benchmarks: Sequence[str | Path], params: dict[str, Any]) -> Outcome:
    n = int(params.get("decontamination_ngram", DEFAULT_NGRAM))
    seen: dict[tuple[str, ...], tuple[str, int]] = {}
    for path in benchmarks:
        for number, question in read_benchmark(path):
            for gram in ngrams(words(question), n):
                seen.setdefault(gram, (Path(path).name, number))
    failures = []
    for row, question in enumerate(frame["question"].fill_null("").to_list()):
        for gram in ngrams(words(question), n):
            where = seen.get(gram)
            if where is not None:
                failures.append((row, "CONTAMINATED", f"shares '{' '.join(gram)}' with {where[0]} record {where[1]}"))
                break
    return Outcome.of(frame.height, failures)
