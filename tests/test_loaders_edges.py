"""Generic edge-list loader: CSV/TSV/parquet, column mapping, node table, bad input."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError, UnknownRelationError
from kgsynth.loaders import load

EDGES = pl.DataFrame(
    {
        "head_id": ["DB1", "D1", "DB1", "DB2", "G1"],
        "head_name": ["aspirin", "pain", "ASA", "ibuprofen", None],
        "head_type": ["drug", "disease", "drug", "drug", "gene"],
        "relation": ["treats", "treated_by", "interacts_with", "interacts_with", "associated_with"],
        "tail_id": ["D1", "DB2", "DB2", "DB1", "D1"],
        "tail_name": ["pain", "ibuprofen", "ibuprofen", "aspirin", "pain"],
        "tail_type": ["disease", "drug", "drug", "drug", "disease"],
    }
)
EXPECTED = {
    ("edges:DB1", "treats", "edges:D1"),
    ("edges:DB2", "treats", "edges:D1"),  # "D1 treated_by DB2", stored under the kept name
    ("edges:DB1", "interacts_with", "edges:DB2"),  # symmetric, listed both ways, kept once
    ("edges:D1", "associated_with", "edges:G1"),
}


def _triples(snapshot) -> set[tuple[str, str, str]]:
    return set(snapshot.edges.select("src", "relation", "dst").iter_rows())


def _csv(tmp_path: Path, frame: pl.DataFrame = EDGES, name: str = "edges.csv", **kwargs) -> Path:
    path = tmp_path / name
    frame.write_csv(path, **kwargs)
    return path


def test_csv_with_default_columns(tmp_path):
    snapshot = load("edges", [_csv(tmp_path)])
    assert _triples(snapshot) == EXPECTED
    nodes = {row["id"]: row for row in snapshot.nodes.iter_rows(named=True)}
    assert nodes["edges:DB1"]["name"] == "aspirin" and nodes["edges:DB1"]["synonyms"] == ["ASA"]
    assert nodes["edges:G1"]["name"] == "G1" and nodes["edges:G1"]["type"] == "gene"
    assert (nodes["edges:D1"]["source"], nodes["edges:D1"]["source_id"]) == ("edges.csv", "D1")
    assert set(snapshot.edges["source"]) == {"edges.csv"}
    assert snapshot.manifest.dropped == {"edge rows repeating a relationship already kept": 1}


def test_tsv_parquet_and_sniffed_separator_give_the_same_edges(tmp_path):
    assert _triples(load("edges", [_csv(tmp_path, name="e.tsv", separator="\t")])) == EXPECTED
    EDGES.write_parquet(tmp_path / "e.parquet")
    assert _triples(load("edges", [tmp_path / "e.parquet"])) == EXPECTED
    assert _triples(load("edges", [_csv(tmp_path, name="e.list", separator="\t")])) == EXPECTED
    assert _triples(load("edges", [_csv(tmp_path, name="e.txt", separator=";")], separator=";")) == EXPECTED


def test_column_mapping_namespace_and_default_type(tmp_path):
    frame = EDGES.select(
        pl.col("head_id").alias("subject"), pl.col("relation").alias("predicate"), pl.col("tail_id").alias("object")
    )
    snapshot = load(
        "edges",
        [_csv(tmp_path, frame)],
        head_id="subject",
        relation="predicate",
        tail_id="object",
        namespace="",
        default_type="thing",
    )
    assert {(s, r, d) for s, r, d in _triples(snapshot)} == {
        (s.removeprefix("edges:"), r, d.removeprefix("edges:")) for s, r, d in EXPECTED
    }
    assert set(snapshot.nodes["type"]) == {"thing"}
    with pytest.raises(InputFormatError, match="missing column\\(s\\) subject") as error:
        load("edges", [_csv(tmp_path)], head_id="subject")
    assert (error.value.line, error.value.field) == (1, "subject")


def test_node_table_gives_names_types_and_synonyms(tmp_path):
    nodes = pl.DataFrame(
        {
            "id": ["DB1", "DB2", "D1", "G1"],
            "name": ["Aspirin", "Ibuprofen", "Pain", "PTGS2"],
            "type": ["drug", "drug", "disease", "gene"],
            "synonyms": ["acetylsalicylic acid| ASA", "", None, "COX2"],
        }
    )
    nodes.write_csv(tmp_path / "nodes.csv")
    edges = _csv(tmp_path, EDGES.drop("head_type", "tail_type", "head_name", "tail_name"))
    snapshot = load("edges", [edges], nodes=str(tmp_path / "nodes.csv"))
    assert _triples(snapshot) == EXPECTED
    rows = {row["id"]: row for row in snapshot.nodes.iter_rows(named=True)}
    assert rows["edges:DB1"]["synonyms"] == ["ASA", "acetylsalicylic acid"]
    assert rows["edges:G1"]["name"] == "PTGS2" and rows["edges:D1"]["synonyms"] == []
    assert snapshot.manifest.sources[-1].path == str(tmp_path / "nodes.csv")

    nodes.filter(pl.col("id") != "G1").write_csv(tmp_path / "fewer.csv")
    with pytest.raises(InputFormatError, match="'G1' is not in the node table fewer.csv") as error:
        load("edges", [edges], nodes=str(tmp_path / "fewer.csv"))
    assert (error.value.line, error.value.field) == (6, "head_id")

    pl.concat([nodes, nodes.head(1)]).write_csv(tmp_path / "twice.csv")
    with pytest.raises(InputFormatError, match="node id 'DB1' appears twice") as error:
        load("edges", [edges], nodes=str(tmp_path / "twice.csv"))
    assert error.value.line == 6

    typed = _csv(tmp_path, EDGES.with_columns(pl.lit("drug").alias("tail_type")), name="typed.csv")
    with pytest.raises(InputFormatError, match="'D1' has type 'drug' here but 'disease' in the node table") as error:
        load("edges", [typed], nodes=str(tmp_path / "nodes.csv"))
    assert (error.value.line, error.value.field) == (2, "tail_type")


def test_one_id_with_two_types_names_the_line(tmp_path):
    frame = EDGES.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("chemical")).otherwise(pl.col("head_type")).alias("head_type")
    )
    with pytest.raises(InputFormatError, match="'DB2' has type 'chemical' here but 'drug' on line 3") as error:
        load("edges", [_csv(tmp_path, frame)])
    assert (error.value.line, error.value.field) == (5, "head_type")


def test_unknown_relation_lists_the_known_ones(tmp_path):
    frame = EDGES.with_columns(pl.lit("inhibits").alias("relation"))
    with pytest.raises(UnknownRelationError, match="'inhibits'.*known: associated_with, causes"):
        load("edges", [_csv(tmp_path, frame)])
    snapshot = load("edges", [_csv(tmp_path, frame)], allow_unknown_relations=True)
    assert snapshot.vocabulary.relations["inhibits"].fallback


def test_malformed_text_files(tmp_path):
    path = _csv(tmp_path, name="edges.csv", separator="\t")
    with pytest.raises(InputFormatError, match="one column: is the file tab-separated"):
        load("edges", [path])

    text = _csv(tmp_path).read_text(encoding="utf-8")
    path = tmp_path / "short.csv"
    path.write_text(text.rstrip("\n")[:-12], encoding="utf-8")
    with pytest.raises(InputFormatError, match="looks truncated") as error:
        load("edges", [path])
    assert error.value.line == 6

    path = tmp_path / "latin.csv"
    path.write_bytes(text.replace("ibuprofen", "ibuprof\u00e8n").encode("latin-1"))
    with pytest.raises(InputFormatError, match="not UTF-8") as error:
        load("edges", [path])
    assert error.value.line == 3

    path = tmp_path / "gap.csv"
    lines = text.splitlines(keepends=True)
    lines[2] = ",,drug,interacts_with,DB2,ibuprofen,drug\n"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputFormatError, match="empty value") as error:
        load("edges", [path])
    assert (error.value.line, error.value.field) == (3, "head_id")


def test_parquet_problems_name_the_row(tmp_path):
    EDGES.drop("relation").write_parquet(tmp_path / "no_relation.parquet")
    with pytest.raises(InputFormatError, match="missing column\\(s\\) relation"):
        load("edges", [tmp_path / "no_relation.parquet"])
    EDGES.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise(pl.col("tail_id")).alias("tail_id")
    ).write_parquet(tmp_path / "gap.parquet")
    with pytest.raises(InputFormatError, match="row 3.*empty value") as error:
        load("edges", [tmp_path / "gap.parquet"])
    assert error.value.field == "tail_id"
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputFormatError, match="cannot read as parquet"):
        load("edges", [tmp_path / "broken.parquet"])


def test_empty_missing_and_unknown_option(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputFormatError, match="file is empty"):
        load("edges", [tmp_path / "empty.csv"])
    (tmp_path / "header.csv").write_text("head_id,relation,tail_id\n")
    with pytest.raises(InputFormatError, match="no rows"):
        load("edges", [tmp_path / "header.csv"])
    with pytest.raises(SourceNotFoundError):
        load("edges", [tmp_path / "absent.csv"])
    with pytest.raises(SourceNotFoundError, match="needs at least one"):
        load("edges", [])
    with pytest.raises(ConfigError, match="unknown option\\(s\\) subject for loader 'edges'"):
        load("edges", [_csv(tmp_path)], subject="s")
    with pytest.raises(ConfigError, match="one character"):
        load("edges", [_csv(tmp_path)], separator="::")
