"""build_snapshot: canonical direction, inverse names, de-duplication, integer endpoints,
validation, the content hash, and atomic writing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import InputFormatError, OutputError, SnapshotError, UnknownRelationError
from kgsynth.graph.snapshot import (
    Snapshot,
    build_snapshot,
    content_hash,
    read_snapshot,
    verify_hash,
    write_snapshot,
)
from kgsynth.graph.vocabulary import Relation, Vocabulary

VOCABULARY = Vocabulary(
    name="test",
    relations={
        "treats": Relation(
            "treats",
            "treats",
            "treats",
            "is treated by",
            domain=("drug",),
            range=("disease",),
            inverse_name="treated_by",
        ),
        "interacts": Relation("interacts", "interacts", "interacts with", "interacts with", symmetric=True),
        "is_a": Relation("is_a", "is a", "is a kind of", "has as a subtype"),
    },
)
NODES = pl.DataFrame(
    {
        "id": ["d:2", "x:1", "x:2", "d:1"],
        "name": ["flu", "aspirin", None, "pain"],
        "type": ["disease", "drug", "drug", "disease"],
        "synonyms": [["influenza", "influenza"], None, ["b"], []],
    }
)


def _build(edges: pl.DataFrame, nodes: pl.DataFrame = NODES, **kwargs) -> Snapshot:
    return build_snapshot(nodes, edges, vocabulary=VOCABULARY, name="t", loader="test", **kwargs)


def _edges(rows: list[tuple[str, str, str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["src", "dst", "relation", "source"], orient="row")


def test_direction_inverse_names_and_duplicates():
    snapshot = _build(
        _edges(
            [
                ("d:1", "x:1", "treats", "b"),  # range → domain: reversed
                ("x:1", "d:1", "treats", "a"),  # the same relationship; the smaller source wins
                ("d:2", "x:2", "treated_by", "c"),  # inverse name: stored as x:2 treats d:2
                ("x:2", "x:1", "interacts", None),  # symmetric: src < dst
                ("x:1", "x:2", "interacts", "z"),
                ("d:2", "d:1", "is_a", None),  # no domain or range: as given
            ]
        )
    )
    assert snapshot.edges.rows() == [
        ("d:2", "d:1", "is_a", None),
        ("x:1", "x:2", "interacts", "z"),  # a source beats none
        ("x:1", "d:1", "treats", "a"),
        ("x:2", "d:2", "treats", "c"),
    ]
    assert snapshot.manifest.counts.relations == {"interacts": 1, "is_a": 1, "treats": 2}
    assert sorted(snapshot.vocabulary.relations) == ["interacts", "is_a", "treats"]
    nodes = snapshot.nodes
    assert nodes["id"].to_list() == ["d:1", "d:2", "x:1", "x:2"]
    assert nodes.filter(pl.col("id") == "x:2")["name"][0] == "x:2"  # a missing name falls back to the id
    assert nodes.filter(pl.col("id") == "d:2")["synonyms"][0].to_list() == ["influenza"]


def test_integer_endpoints_are_node_rows_and_give_the_same_snapshot():
    by_id = _edges([("x:1", "d:1", "treats", "s"), ("x:2", "x:1", "interacts", "s")])
    by_row = pl.DataFrame(
        {"src": [1, 2], "dst": [3, 1], "relation": ["treats", "interacts"], "source": ["s", "s"]},
        schema_overrides={"relation": pl.Categorical, "source": pl.Categorical},
    )
    assert _build(by_row).hash == _build(by_id).hash
    # a node listed twice: both rows stand for the same node
    doubled = pl.concat([NODES, NODES.head(2)])
    assert _build(by_row.with_columns(pl.Series("src", [5, 2])), doubled).hash == _build(by_id).hash
    with pytest.raises(InputFormatError, match="node row 9 of 4") as error:
        _build(by_row.with_columns(pl.Series("dst", [9, 1])))
    assert error.value.field == "dst"


def test_validation_errors(tmp_path):
    with pytest.raises(InputFormatError, match="points at 'x:9', which is not a node; 1 edge") as error:
        _build(_edges([("x:1", "x:9", "interacts", None)]), where="edges.csv")
    assert (error.value.file, error.value.field) == ("edges.csv", "dst")
    with pytest.raises(InputFormatError, match="node id 'x:1' has two types \\(disease, drug\\)"):
        _build(_edges([]), pl.concat([NODES, pl.DataFrame({"id": ["x:1"], "type": ["disease"]})], how="diagonal"))
    with pytest.raises(InputFormatError, match="joins a drug and a drug, but 'treats' goes from drug to disease"):
        _build(_edges([("x:1", "x:2", "treats", None)]))
    with pytest.raises(UnknownRelationError, match="unknown relation\\(s\\) 'cures'.*known: interacts, is_a, treats"):
        _build(_edges([("x:1", "d:1", "cures", None)]))
    fallback = _build(_edges([("x:1", "d:1", "cures", None)]), allow_unknown_relations=True)
    assert fallback.vocabulary.relations["cures"].fallback
    with pytest.raises(InputFormatError, match="edges must all have src, dst and relation"):
        _build(_edges([("x:1", None, "interacts", None)]))


def test_hash_survives_a_round_trip_and_catches_edits(tmp_path):
    snapshot = _build(_edges([("x:1", "d:1", "treats", "s"), ("x:2", "x:1", "interacts", None)]))
    assert snapshot.hash == content_hash(snapshot.nodes.reverse(), snapshot.edges.reverse())
    write_snapshot(snapshot, tmp_path / "snap")
    again = read_snapshot(tmp_path / "snap")
    verify_hash(again)
    assert again.vocabulary.relations["treats"].inverse_name == "treated_by"
    again.edges.head(1).write_parquet(tmp_path / "snap" / "edges.parquet")
    with pytest.raises(SnapshotError, match="content hash"):
        verify_hash(read_snapshot(tmp_path / "snap"))


def test_a_failed_write_leaves_the_old_snapshot_and_no_debris(tmp_path):
    out = tmp_path / "snap"
    good = _build(_edges([("x:1", "d:1", "treats", "s")]))
    write_snapshot(good, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = Snapshot(manifest=good.manifest, vocabulary=good.vocabulary)  # no tables, no directory
    with pytest.raises(SnapshotError):
        write_snapshot(broken, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a kgsynth snapshot .*refusing"):
        write_snapshot(good, tmp_path / "notes")


def test_read_snapshot_reports_missing_parts(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no such snapshot directory"):
        read_snapshot(tmp_path / "absent")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "manifest.json").write_text("{}")
    with pytest.raises(SnapshotError, match="missing nodes.parquet"):
        read_snapshot(tmp_path / "half")
