"""Reading QA sets: every input form, column mappings, answers given as labels, text or indices."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.ground.qa import ColumnMap, read_qa

DATA = Path(__file__).parent / "data" / "qa_hpo.jsonl"


def test_jsonl_with_dict_list_and_open_options():
    records = read_qa(DATA)
    assert len(records) == 10
    first = records[0]
    assert first.dataset_name == "qa_hpo" and first.id_in_dataset == "q1"
    assert [o.label for o in first.options] == ["A", "B", "C", "D"]
    assert (first.answer_label, first.answer) == ("A", "Marfan syndrome")
    by_id = {r.id_in_dataset: r for r in records}
    assert by_id["q4"].options[1].label == "B" and by_id["q4"].answer_label == "B"  # list options, answer by text
    assert by_id["q5"].answer == "Huntington disease"  # MedReason's "(A) text"
    assert by_id["q7"].options == [] and by_id["q7"].answer == "Intellectual disability"


def test_csv_with_option_columns_and_index_answers(tmp_path: Path):
    path = tmp_path / "medmcqa.csv"
    pl.DataFrame(
        {
            "question": ["Which gene is mutated in Marfan syndrome?", "Which gene is mutated in cystic fibrosis?"],
            "opa": ["FBN1", "HTT"],
            "opb": ["CFTR", "CFTR"],
            "cop": [0, 1],
            "subject": ["genetics", "genetics"],
        }
    ).write_csv(path)
    columns = ColumnMap(options=["opa", "opb"], answer="cop", source="subject", answer_index_base=0)
    records = read_qa(path, columns)
    assert [(r.answer_label, r.answer) for r in records] == [("A", "FBN1"), ("B", "CFTR")]
    assert [r.id_in_dataset for r in records] == ["0", "1"]
    assert records[0].dataset_name == "genetics"


def test_parquet_and_medreason_option_text(tmp_path: Path):
    path = tmp_path / "medreason.parquet"
    pl.DataFrame(
        {
            "dataset_name": ["medqa"],
            "id_in_dataset": [7],
            "question": ["Which gene is mutated in Marfan syndrome?"],
            "options": ["Answer Choices:\nA. FBN1\nB. CFTR"],
            "answer": ["FBN1"],
        }
    ).write_parquet(path)
    record = read_qa(path, ColumnMap(id="id_in_dataset"))[0]
    assert record.dataset_name == "medqa" and record.id_in_dataset == "7"
    assert [(o.label, o.text) for o in record.options] == [("A", "FBN1"), ("B", "CFTR")]


def test_hugging_face_dataset_directory(tmp_path: Path):
    import datasets

    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    for row in rows:  # Arrow needs one type per column: options as JSON text
        row["options"] = json.dumps(row["options"])
    out = tmp_path / "hf"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(out))
    records = read_qa(out, dataset_name="mine")
    assert len(records) == 10 and records[1].answer == "FBN1" and records[1].dataset_name == "mine"
    with pytest.raises(InputFormatError, match="choose a split"):
        read_qa(out, split="test")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "Q?", "options": {"A": "x"}, "answer": "C"}', "neither an option label"),
        ('{"question": "Q?", "options": {"A": "x"}, "answer": 1}', "--answer-index-base"),
        ('{"question": "", "options": null, "answer": "x"}', "empty question"),
        ('{"quest": "Q?", "answer": "x"}', "no column 'question'"),
        ('{"question": "Q?", "options": "{broken", "answer": "x"}', "look like JSON"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, line: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "Fine?", "options": null, "answer": "x"}\n' + line + "\n")
    with pytest.raises(InputFormatError, match=message) as caught:
        read_qa(path)
    assert "bad.jsonl" in str(caught.value) and "line 2" in str(caught.value)


def test_repeated_ids_and_missing_files(tmp_path: Path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": 1, "question": "A?", "answer": "x"}\n{"id": 1, "question": "B?", "answer": "y"}\n')
    with pytest.raises(InputFormatError, match="repeats row 1"):
        read_qa(path, ColumnMap(id="id", options=[]))
    with pytest.raises(SourceNotFoundError):
        read_qa(tmp_path / "absent.jsonl")
