"""PrimeKG loader: doubled rows collapse to exactly half, canonical direction, both layouts, bad input.

`tests/data/primekg/kg.csv` is the output of
`python ../shared/tools/make_primekg_like.py --scale 0.0002 --seed 7`: PrimeKG's
exact columns, node types and 30 relation names, every relationship listed twice.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError, UnknownRelationError
from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.loaders import load

KG = Path(__file__).parent / "data" / "primekg" / "kg.csv"
ROWS = pl.read_csv(KG, infer_schema=False)


@pytest.fixture(scope="module")
def snapshot():
    return load("primekg", [KG])


def _lines(path: Path = KG) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(tmp_path: Path, lines: list[str], name: str = "kg.csv") -> Path:
    path = tmp_path / name
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_doubled_rows_collapse_to_exactly_half(snapshot):
    counts = snapshot.manifest.counts
    assert counts.edges * 2 == ROWS.height
    assert sum(snapshot.manifest.dropped.values()) == ROWS.height // 2
    assert counts.nodes == ROWS["x_index"].n_unique()
    per_relation = dict(ROWS.group_by("relation").len().iter_rows())
    assert counts.relations == {r: n // 2 for r, n in per_relation.items()}
    assert len(counts.relations) == 30


def test_node_ids_types_and_names(snapshot):
    nodes = snapshot.nodes
    first = ROWS.row(0, named=True)
    node = nodes.filter(pl.col("id") == f"primekg:{first['x_type']}:{first['x_id']}").row(0, named=True)
    assert (node["name"], node["type"], node["source"], node["source_id"]) == (
        first["x_name"],
        first["x_type"],
        first["x_source"],
        first["x_id"],
    )
    assert set(nodes["type"]) == set(load_vocabulary("primekg").node_types)
    assert snapshot.vocabulary.node_types["gene/protein"].neo4j_label == "GeneProtein"


def test_every_relation_of_the_vocabulary_matches_the_real_names():
    vocabulary = load_vocabulary("primekg")
    assert set(vocabulary.relations) == set(ROWS["relation"])
    indication = vocabulary.relations["indication"]
    assert (indication.domain, indication.range) == (("drug",), ("disease",))
    assert indication.phrase(True) == "is indicated for" and indication.phrase(False) == "can be treated with"
    assert vocabulary.relations["protein_protein"].symmetric


def test_edges_point_domain_to_range_and_symmetric_ones_low_to_high(snapshot):
    vocabulary = snapshot.vocabulary
    types = snapshot.nodes.select("id", "type")
    typed = snapshot.edges.join(types.rename({"id": "src", "type": "src_type"}), on="src").join(
        types.rename({"id": "dst", "type": "dst_type"}), on="dst"
    )
    for row in typed.iter_rows(named=True):
        relation = vocabulary.relations[row["relation"]]
        if relation.symmetric:
            assert row["src"] < row["dst"]
        else:
            assert (row["src_type"], row["dst_type"]) == (relation.domain[0], relation.range[0])


def test_display_relation_is_the_edge_source(snapshot):
    sources = set(snapshot.edges.filter(pl.col("relation") == "drug_protein")["source"])
    assert sources and sources <= {"target", "enzyme", "transporter", "carrier"}
    assert set(snapshot.edges.filter(pl.col("relation") == "indication")["source"]) == {"indication"}


def test_split_layout_and_one_direction_give_the_same_graph(tmp_path, snapshot):
    nodes = (
        ROWS.select(
            pl.col("x_index").alias("node_index"),
            pl.col("x_id").alias("node_id"),
            pl.col("x_type").alias("node_type"),
            pl.col("x_name").alias("node_name"),
            pl.col("x_source").alias("node_source"),
        )
        .unique("node_index")
        .sort(pl.col("node_index").cast(pl.Int64), descending=True)
    )
    nodes.write_csv(tmp_path / "nodes.csv")
    ROWS.select("relation", "display_relation", "x_index", "y_index").write_csv(tmp_path / "edges.csv")
    assert load("primekg", [tmp_path]).hash == snapshot.hash

    # Only the first direction of each relationship: some nodes then appear only as y.
    half = ROWS.head(ROWS.height // 2)
    assert half["y_index"].is_in(half["x_index"].implode()).not_().any()
    half.write_csv(tmp_path / "half.csv")
    assert load("primekg", [tmp_path / "half.csv"]).hash == snapshot.hash


def test_missing_column_names_line_one_and_the_field(tmp_path):
    lines = _lines()
    lines[0] = lines[0].replace("x_index", "x_idx")
    with pytest.raises(InputFormatError) as error:
        load("primekg", [_write(tmp_path, lines)])
    assert (error.value.line, error.value.field) == (1, "x_index")
    assert "x_idx" in str(error.value)


def test_tab_separated_file_gets_a_delimiter_hint(tmp_path):
    path = tmp_path / "kg.csv"
    ROWS.write_csv(path, separator="\t")
    with pytest.raises(InputFormatError, match="one column: is the file tab-separated"):
        load("primekg", [path])


def test_non_utf8_byte_names_its_line(tmp_path):
    data = KG.read_bytes().split(b"\n")
    data[4] = data[4].replace(b"GP", b"G\xe9P", 1)
    path = tmp_path / "kg.csv"
    path.write_bytes(b"\n".join(data))
    with pytest.raises(InputFormatError, match="not UTF-8") as error:
        load("primekg", [path])
    assert error.value.line == 5


def test_truncated_download_names_the_last_line_and_missing_fields(tmp_path):
    lines = _lines()
    last = lines[-1]
    lines[-1] = last[: [i for i, c in enumerate(last) if c == ","][8]]  # cut mid-row, after 9 of 12 fields
    with pytest.raises(InputFormatError, match="9 of 12 fields.*looks truncated") as error:
        load("primekg", [_write(tmp_path, lines)])
    assert (error.value.line, error.value.field) == (len(lines), "y_type")


def test_short_rows_shifted_fields_and_bad_integers_name_their_line(tmp_path):
    for edit, field in (
        (lambda cells: cells[:7] + ["", "", "", "", ""], "y_index"),
        (lambda cells: cells[:5] + ["GP4", " unquoted comma"] + cells[6:], "y_source"),
        (lambda cells: cells[:2] + ["seven"] + cells[3:], "x_index"),
    ):
        lines = _lines()
        cells = lines[9].rstrip("\n").split(",")
        lines[9] = ",".join(edit(cells)) + "\n"
        with pytest.raises(InputFormatError) as error:
            load("primekg", [_write(tmp_path, lines)])
        assert error.value.line == 10
        assert error.value.field == field


def test_one_index_with_two_types_names_the_line(tmp_path):
    lines = _lines()
    cells = lines[30].split(",")
    cells[4] = "drug" if cells[4] != "drug" else "disease"
    lines[30] = ",".join(cells)
    with pytest.raises(InputFormatError, match="each index must name one node") as error:
        load("primekg", [_write(tmp_path, lines)])
    assert (error.value.line, error.value.field) == (31, "x_index")


def test_one_type_and_id_at_two_indices_is_refused(tmp_path):
    frame = ROWS.with_columns(
        pl.when(pl.col("x_index") == "1").then(pl.lit("137262")).otherwise(pl.col("x_id")).alias("x_id"),
        pl.when(pl.col("y_index") == "1").then(pl.lit("137262")).otherwise(pl.col("y_id")).alias("y_id"),
    )
    frame.write_csv(tmp_path / "kg.csv")
    with pytest.raises(InputFormatError, match="each \\(type, id\\) must have one index") as error:
        load("primekg", [tmp_path / "kg.csv"])
    assert error.value.field == "x_id"


def test_dangling_edge_in_the_split_layout_names_the_edges_line(tmp_path):
    ROWS.select(
        pl.col("x_index").alias("node_index"),
        pl.col("x_id").alias("node_id"),
        pl.col("x_type").alias("node_type"),
        pl.col("x_name").alias("node_name"),
        pl.col("x_source").alias("node_source"),
    ).unique("node_index").filter(pl.col("node_index") != "5").write_csv(tmp_path / "nodes.csv")
    edges = ROWS.select("relation", "display_relation", "x_index", "y_index")
    edges.write_csv(tmp_path / "edges.csv")
    with pytest.raises(InputFormatError, match="is not a node") as error:
        load("primekg", [tmp_path / "nodes.csv", tmp_path / "edges.csv"])
    first = edges.with_row_index().filter((pl.col("x_index") == "5") | (pl.col("y_index") == "5"))["index"][0]
    assert error.value.line == first + 2
    assert error.value.file == str(tmp_path / "edges.csv")


def test_relation_between_the_wrong_types_is_refused(tmp_path):
    frame = ROWS.with_columns(
        pl.when(pl.col("relation") == "indication")
        .then(pl.lit("molfunc_protein"))
        .otherwise(pl.col("relation"))
        .alias("relation")
    )
    frame.write_csv(tmp_path / "kg.csv")
    with pytest.raises(InputFormatError, match="'molfunc_protein' goes from gene/protein"):
        load("primekg", [tmp_path / "kg.csv"])


def test_unknown_relation_lists_the_known_ones_unless_a_fallback_is_allowed(tmp_path):
    frame = ROWS.with_columns(
        pl.when(pl.col("relation") == "indication")
        .then(pl.lit("treats"))
        .otherwise(pl.col("relation"))
        .alias("relation")
    )
    frame.write_csv(tmp_path / "kg.csv")
    with pytest.raises(UnknownRelationError, match="'treats'.*known: anatomy_anatomy"):
        load("primekg", [tmp_path / "kg.csv"])
    snapshot = load("primekg", [tmp_path / "kg.csv"], allow_unknown_relations=True)
    assert snapshot.vocabulary.relations["treats"].fallback


def test_empty_unreadable_and_misnamed_sources(tmp_path):
    (tmp_path / "kg.csv").write_text("")
    with pytest.raises(InputFormatError, match="empty"):
        load("primekg", [tmp_path / "kg.csv"])
    (tmp_path / "kg.csv").write_text(_lines()[0])
    with pytest.raises(InputFormatError, match="no rows"):
        load("primekg", [tmp_path / "kg.csv"])
    with pytest.raises(SourceNotFoundError, match="no such file"):
        load("primekg", [tmp_path / "missing.csv"])
    with pytest.raises(SourceNotFoundError, match="no kg.csv"):
        load("primekg", [tmp_path / "empty_dir" if (tmp_path / "empty_dir").mkdir() is None else tmp_path])
    with pytest.raises(SourceNotFoundError, match="needs nodes.csv"):
        load("primekg", [tmp_path / "edges.csv"])


def test_unknown_option_is_refused():
    with pytest.raises(ConfigError, match="unknown option\\(s\\) colour for loader 'primekg'"):
        load("primekg", [KG], colour="blue")
