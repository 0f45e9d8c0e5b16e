"""Rows with more or fewer fields than the header, in PrimeKG kg.csv and generic edge lists:
an error naming the file, line and field, through the library and through `kgsynth load` (exit 2,
one line, no traceback); an empty last field or a quoted separator is no such row."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from kgsynth.errors import InputFormatError
from kgsynth.loaders import load

PRIMEKG_LIKE = Path(__file__).parent / "data" / "primekg" / "kg_scale0.001.csv.gz"  # make_primekg_like.py --scale 0.001 --seed 7
BAD_LINE = 57  # 1-based, a data row in the middle of the file


@pytest.fixture(scope="module")
def kg_lines() -> list[str]:
    """A real PrimeKG-format kg.csv (2,668 rows) from the shared generator, as lines."""
    return gzip.decompress(PRIMEKG_LIKE.read_bytes()).decode("utf-8").splitlines(keepends=True)


def _write(folder: Path, lines: list[str], name: str = "kg.csv") -> Path:
    path = folder / name
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _edit(lines: list[str], line: int, edit) -> list[str]:
    cells = lines[line - 1].rstrip("\n").split(",")
    return [*lines[: line - 1], ",".join(edit(cells)) + "\n", *lines[line:]]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from kgsynth.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize(
    "edit,field,message",
    [
        (lambda cells: [*cells, "CTD"], "y_source", "13 fields where the header has 12, 1 more after the last column"),
        (lambda cells: [*cells, ""], "y_source", "13 fields where the header has 12"),
        (lambda cells: cells[:-1], "y_source", r"11 fields where the header has 12 \(no y_source\)"),
        (lambda cells: cells[:9], "y_type", r"9 fields where the header has 12 \(no y_type, y_name, y_source\)"),
    ],
    ids=["extra-field", "trailing-separator", "one-short", "three-short"],
)
def test_primekg_row_with_the_wrong_field_count_names_line_and_field(tmp_path, kg_lines, edit, field, message):
    path = _write(tmp_path, _edit(kg_lines, BAD_LINE, edit))
    with pytest.raises(InputFormatError, match=message) as error:
        load("primekg", [path])
    assert (error.value.file, error.value.line, error.value.field) == (str(path), BAD_LINE, field)


def test_cli_refuses_the_ragged_row_in_one_line_with_exit_two(tmp_path, kg_lines):
    for name, edit, field in (
        ("extra", lambda cells: [*cells, "CTD"], "y_source"),
        ("short", lambda cells: cells[:-2], "y_name"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        path = _write(folder, _edit(kg_lines, BAD_LINE, edit))
        result = _cli("load", "-f", "primekg", str(path), "--out", str(folder / "snapshot"), cwd=folder)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {path}, line {BAD_LINE}, field '{field}':")
        assert not (folder / "snapshot").exists()


def test_quoted_comma_in_a_name_is_one_field(tmp_path, kg_lines):
    # Line 2 is the first row of its x node, which takes its name from there.
    lines = _edit(kg_lines, 2, lambda cells: [*cells[:5], f'"{cells[5]}, 1,2-dichloro"', *cells[6:]])
    snapshot = load("primekg", [_write(tmp_path, lines)])
    assert snapshot.manifest.counts.edges * 2 == len(lines) - 1
    assert snapshot.nodes["name"].str.ends_with(", 1,2-dichloro").sum() == 1

    short = _edit(lines, BAD_LINE + 1, lambda cells: [f'"{cells[0]}"', *cells[1:-1]])
    with pytest.raises(InputFormatError, match="no y_source") as error:
        load("primekg", [_write(tmp_path, short, "short.csv")])
    assert (error.value.line, error.value.field) == (BAD_LINE + 1, "y_source")

    # The separators counted on line 2 are one too many, but one is quoted: the extra field is further on.
    extra = _edit(lines, BAD_LINE + 1, lambda cells: [*cells, "CTD"])
    with pytest.raises(InputFormatError, match="13 fields where the header has 12") as error:
        load("primekg", [_write(tmp_path, extra, "extra.csv")])
    assert (error.value.line, error.value.field) == (BAD_LINE + 1, "y_source")

    # A quoted line break: lines are not rows, and the walk numbers the row by the line it starts on.
    broken = _edit(extra, 3, lambda cells: [*cells[:5], f'"{cells[5]}\nsecond line"', *cells[6:]])
    with pytest.raises(InputFormatError, match="13 fields where the header has 12") as error:
        load("primekg", [_write(tmp_path, broken, "broken.csv")])
    assert (error.value.line, error.value.field) == (BAD_LINE + 2, "y_source")


EDGES = [
    "head_id,relation,tail_id,tail_type\n",
    "HP:0001250,associated_with,MONDO:0005027,disease\n",
    "MONDO:0005027,associated_with,HGNC:1100,\n",  # an empty last field: allowed
    '"CHEBI:15365, acetylsalicylic acid",associated_with,MONDO:0005027,\n',
    "HGNC:1100,associated_with,HP:0001250,\n",
]


def test_edge_list_empty_last_field_loads_but_a_short_or_long_row_does_not(tmp_path):
    snapshot = load("edges", [_write(tmp_path, EDGES, "edges.csv")])
    assert snapshot.manifest.counts.edges == 4

    short = [*EDGES[:3], "HGNC:1100,associated_with,HP:0001250\n", *EDGES[3:]]
    with pytest.raises(InputFormatError, match=r"3 fields where the header has 4 \(no tail_type\)") as error:
        load("edges", [_write(tmp_path, short, "short.csv")])
    assert (error.value.line, error.value.field) == (4, "tail_type")

    long = [*EDGES[:2], "HP:0001250,associated_with,MONDO:0005027,disease,extra\n", *EDGES[2:]]
    with pytest.raises(InputFormatError, match="5 fields where the header has 4") as error:
        load("edges", [_write(tmp_path, long, "long.csv")])
    assert (error.value.line, error.value.field) == (3, "tail_type")


def test_edge_list_with_a_line_break_inside_a_quoted_value_still_finds_the_short_row(tmp_path):
    lines = [*EDGES[:2], '"HGNC:1100",associated_with,"MONDO:0005027\n(epilepsy)",\n', *EDGES[2:]]
    snapshot = load("edges", [_write(tmp_path, lines, "edges.csv")])
    assert snapshot.manifest.counts.edges == 5

    lines.append("HP:0001250,associated_with\n")
    with pytest.raises(InputFormatError, match="2 fields where the header has 4") as error:
        load("edges", [_write(tmp_path, lines, "short.csv")])
    assert (error.value.line, error.value.field) == (8, "tail_id")


def test_unquoted_files_a_nul_byte_does_not_hide_a_short_row_nor_a_lost_final_separator(tmp_path):
    """UMLS RRF is read unquoted: when polars cannot read the lines as text, the line walk still finds the row."""
    import polars as pl

    from kgsynth.loaders.common import read_delimited

    nul = tmp_path / "nul.tsv"
    nul.write_bytes(b"a\tb\tc\n1\t2\t3\n4\t\x005\t6\n7\t8\n")
    with pytest.raises(InputFormatError, match="2 fields where the header has 3") as error:
        read_delimited(nul, separator="\t", columns={"a": pl.String(), "c": pl.String()}, quoting=False)
    assert (error.value.line, error.value.field) == (4, "c")

    rrf = tmp_path / "MRSTY.RRF"
    rrf.write_text("C0001|T047|B2.2.1.2.1|Disease or Syndrome|AT1|256|\nC0002|T047|B2.2.1.2.1|Disease or Syndrome|AT2|256\n")
    header = ["CUI", "TUI", "STN", "STY", "ATUI", "CVF"]
    with pytest.raises(InputFormatError, match="lacks its final separator") as error:
        read_delimited(rrf, separator="|", columns={"CUI": pl.String()}, quoting=False, trailing_separator=True,
                       has_header=False, header=header)
    assert (error.value.line, error.value.field) == (2, "CVF")
