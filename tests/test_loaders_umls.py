"""UMLS loader on a tiny hand-made RRF set (tests/data/umls): names, types, the MRREL
direction convention, inverse-name folding, options, and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError, UnknownRelationError
from kgsynth.loaders import load

UMLS = Path(__file__).parent / "data" / "umls"


@pytest.fixture(scope="module")
def snapshot():
    return load("umls", [UMLS])


def _triples(snapshot) -> set[tuple[str, str, str]]:
    return {(s.removeprefix("umls:"), r, d.removeprefix("umls:")) for s, d, r, _ in snapshot.edges.iter_rows()}


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "umls"
    shutil.copytree(UMLS, target)
    return target


def test_mrrel_reads_cui2_rel_cui1(snapshot):
    """`C0011849|…|CHD|C0011860|…|isa|…` says "C0011860 isa C0011849": the edge runs CUI2 → CUI1.

    Its mirror row (`C0011860|…|PAR|C0011849|…|inverse_isa|…`) is the same
    relationship under the inverse name, so both give one `isa` edge.
    """
    edges = snapshot.edges
    isa = edges.filter(pl.col("relation") == "isa")
    assert isa.select("src", "dst").rows() == [("umls:C0011860", "umls:C0011849")]
    assert "inverse_isa" not in set(edges["relation"]) and "PAR" not in set(edges["relation"])


def test_inverse_names_fold_into_one_edge_per_relationship(snapshot):
    assert _triples(snapshot) == {
        ("C0011860", "isa", "C0011849"),  # SNOMEDCT_US isa / inverse_isa pair
        ("C0011860", "CHD", "C0011849"),  # MSH CHD / PAR pair, no RELA
        ("C0025598", "may_treat", "C0011860"),  # metformin may treat type 2 diabetes
        ("C0007222", "has_finding_site", "C0018787"),  # from "heart finding_site_of cardiovascular diseases"
        ("C0011849", "RO", "C0020538"),  # symmetric, listed both ways, kept once with src < dst
    }
    sources = dict(zip(snapshot.edges["relation"], snapshot.edges["source"], strict=True))
    assert sources["may_treat"] == "MED-RT" and sources["CHD"] == "MSH"


def test_names_synonyms_and_semantic_types(snapshot):
    nodes = {row["id"]: row for row in snapshot.nodes.iter_rows(named=True)}
    assert set(nodes) == {f"umls:{c}" for c in ("C0011849", "C0011860", "C0025598", "C0020538", "C0018787", "C0007222")}
    diabetes = nodes["umls:C0011849"]
    assert diabetes["name"] == "Diabetes Mellitus"
    assert diabetes["synonyms"] == ["DM - Diabetes mellitus"]  # not the suppressed or the French string
    assert nodes["umls:C0011860"]["name"] == "Type 2 diabetes mellitus"  # TS=P, STT=PF, ISPREF=Y beats file order
    metformin = nodes["umls:C0025598"]
    assert metformin["type"] == "Organic Chemical"  # T109 before T121
    assert (metformin["source"], metformin["source_id"]) == ("UMLS", "C0025598")
    assert nodes["umls:C0018787"]["type"] == "Body Part, Organ, or Organ Component"


def test_skipped_rows_are_counted_by_reason(snapshot):
    dropped = snapshot.manifest.dropped
    assert dropped["MRCONSO.RRF: atoms not in ENG"] == 2
    assert dropped["MRCONSO.RRF: suppressed atoms (SUPPRESS not N)"] == 1
    assert dropped["MRREL.RRF: relations not kept"] == 1  # mapped_to
    assert dropped["MRREL.RRF: relationships within one concept"] == 1
    assert dropped["MRREL.RRF: suppressed rows (SUPPRESS not N)"] == 1
    assert dropped["MRREL.RRF: rows whose concept has no kept atom (language, source or suppression filters)"] == 1
    assert dropped["MRSTY.RRF: further semantic types of a concept (the lowest TUI is its node type)"] == 1
    assert sum(v for k, v in dropped.items() if k.startswith("MRREL")) + snapshot.manifest.counts.edges == 13


def test_languages_sources_suppression_and_relation_options():
    both = load("umls", [UMLS], languages=["ENG", "FRE"])
    assert ("C9999999", "isa", "C0011849") in _triples(both)
    names = dict(zip(both.nodes["id"], both.nodes["synonyms"], strict=True))
    assert "Diabète" in names["umls:C0011849"]

    french_first = load("umls", [UMLS], languages="FRE,ENG")
    assert french_first.nodes.filter(pl.col("id") == "umls:C0011849")["name"][0] == "Diabète"

    msh = load("umls", [UMLS], sabs="MSH")
    assert {r for _, r, _ in _triples(msh)} == {"CHD", "RO"}
    assert msh.nodes.filter(pl.col("id") == "umls:C0011860")["name"][0] == "Diabetes Mellitus, Type 2"

    kept = load("umls", [UMLS], drop_suppressed="false")
    assert ("C0025598", "may_treat", "C0020538") in _triples(kept)

    only_isa = load("umls", [UMLS], relations="inverse_isa")
    assert _triples(only_isa) == {("C0011860", "isa", "C0011849")}


def test_relation_option_checks_names_and_all_needs_known_relations():
    with pytest.raises(UnknownRelationError, match="made_up.*known: CHD"):
        load("umls", [UMLS], relations="made_up")
    with pytest.raises(UnknownRelationError, match="'mapped_to'"):
        load("umls", [UMLS], relations="all")
    everything = load("umls", [UMLS], relations="all", allow_unknown_relations=True)
    assert ("C0011849", "mapped_to", "C0007222") not in _triples(everything)
    assert ("C0007222", "mapped_to", "C0011849") in _triples(everything)
    with pytest.raises(ConfigError, match="unknown option\\(s\\) language for loader 'umls'; known: drop_suppressed"):
        load("umls", [UMLS], language="ENG")
    with pytest.raises(ConfigError, match="'languages' needs at least one"):
        load("umls", [UMLS], languages="")
    assert load("umls", [UMLS], languages="ENG,ENG").hash == load("umls", [UMLS]).hash


def test_missing_files_and_wrong_names(tmp_path):
    with pytest.raises(SourceNotFoundError, match="needs MRSTY.RRF"):
        load("umls", [UMLS / "MRCONSO.RRF", UMLS / "MRREL.RRF"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputFormatError, match="not a UMLS file"):
        load("umls", [tmp_path / "notes.txt"])
    folder = _copy(tmp_path)
    (folder / "MRREL.RRF").write_text("")
    with pytest.raises(InputFormatError, match="MRREL.RRF: file is empty"):
        load("umls", [folder])


def test_malformed_rows_name_file_line_and_field(tmp_path):
    folder = _copy(tmp_path)
    lines = (folder / "MRCONSO.RRF").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace("|ENG|", "|ENG|extra|", 1)
    (folder / "MRCONSO.RRF").write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputFormatError, match="20 fields where the header has 19") as error:
        load("umls", [folder])
    assert (error.value.file, error.value.line) == (str(folder / "MRCONSO.RRF"), 3)

    folder = _copy(tmp_path / "b")
    raw = (folder / "MRCONSO.RRF").read_bytes().replace("Diabète".encode(), "Diab\xe8te".encode("latin-1"))
    (folder / "MRCONSO.RRF").write_bytes(raw)
    with pytest.raises(InputFormatError, match="not UTF-8") as error:
        load("umls", [folder])
    assert error.value.line == 4


def test_relationship_to_an_unknown_concept_is_dangling(tmp_path):
    folder = _copy(tmp_path)
    text = (folder / "MRREL.RRF").read_text(encoding="utf-8").replace("C0018787", "C0000000")
    (folder / "MRREL.RRF").write_text(text, encoding="utf-8")
    with pytest.raises(InputFormatError, match="C0000000 is not a concept of MRCONSO.RRF") as error:
        load("umls", [folder])
    assert (error.value.line, error.value.field) == (7, "CUI2")


def test_concept_without_semantic_type_and_truncated_file(tmp_path):
    folder = _copy(tmp_path)
    lines = (folder / "MRSTY.RRF").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "MRSTY.RRF").write_text("".join(line for line in lines if "C0018787" not in line), encoding="utf-8")
    with pytest.raises(InputFormatError, match="concept C0018787 \\('Heart'\\) has no semantic type"):
        load("umls", [folder])

    folder = _copy(tmp_path / "b")
    text = (folder / "MRREL.RRF").read_text(encoding="utf-8")
    (folder / "MRREL.RRF").write_text(text[: text.rindex("|R13|")], encoding="utf-8")
    with pytest.raises(InputFormatError, match="8 of 17 fields.*truncated") as error:
        load("umls", [folder])
    assert (error.value.line, error.value.field) == (13, "RUI")
