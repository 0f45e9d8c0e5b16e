"""RDF/OWL loader on a hand-made OWL file (tests/data/rdf/tiny.owl) and Turtle written in the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError, UnknownRelationError
from kgsynth.loaders import load

OWL_FILE = Path(__file__).parent / "data" / "rdf" / "tiny.owl"
EX = "http://example.org/onto#"
TURTLE = """@prefix ex: <http://example.org/onto#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:Insulin a owl:Class ; rdfs:label "insulin" .
ex:Glucose a owl:Class ; rdfs:label "glucose" .
ex:Insulin ex:regulates ex:Glucose .
"""


@pytest.fixture(scope="module")
def snapshot():
    return load("rdf", [OWL_FILE])


def _triples(snapshot) -> set[tuple[str, str, str]]:
    return {(s.removeprefix(EX), r, d.removeprefix(EX)) for s, d, r, _ in snapshot.edges.iter_rows()}


def test_subclass_restriction_and_assertion_edges(snapshot):
    assert _triples(snapshot) == {
        ("Diabetes", "subclass_of", "Disease"),
        ("IsletOfLangerhans", "part_of", "Pancreas"),  # someValuesFrom, named by the property's label
        ("patient42", "has_phenotype", "Diabetes"),  # object property assertion, hasPhenotype in snake case
    }
    assert set(snapshot.edges["source"]) == {"tiny.owl"}
    # the annotation property and subClassOf owl:Thing make no edge; the latter is counted
    assert sum(snapshot.manifest.dropped.values()) == 1


def test_labels_synonyms_and_types(snapshot):
    nodes = {row["id"].removeprefix(EX): row for row in snapshot.nodes.iter_rows(named=True)}
    assert set(nodes) == {"Diabetes", "Disease", "IsletOfLangerhans", "Pancreas", "Patient", "patient42"}
    diabetes = nodes["Diabetes"]
    assert diabetes["name"] == "diabetes mellitus"  # skos:prefLabel before rdfs:label
    assert diabetes["synonyms"] == ["DM", "diabetes", "sugar disease"]
    assert nodes["Disease"]["name"] == "disease" and nodes["Disease"]["synonyms"] == []  # French label left out
    assert diabetes["type"] == "class"
    assert nodes["patient42"]["type"] == "patient"  # the label of its rdf:type class
    assert (diabetes["source"], diabetes["source_id"]) == ("tiny.owl", EX + "Diabetes")


def test_language_option_picks_the_label():
    french = load("rdf", [OWL_FILE], language="fr")
    assert french.nodes.filter(french.nodes["id"] == EX + "Disease")["name"][0] == "maladie"
    with pytest.raises(ConfigError, match="unknown option\\(s\\) lang for loader 'rdf'; known: language"):
        load("rdf", [OWL_FILE], lang="fr")


def test_unknown_relation_needs_a_fallback_or_a_vocabulary(tmp_path):
    path = tmp_path / "small.ttl"
    path.write_text(TURTLE, encoding="utf-8")
    with pytest.raises(UnknownRelationError, match="'regulates'.*known: associated_with"):
        load("rdf", [path])
    fallback = load("rdf", [path], allow_unknown_relations=True)
    assert fallback.vocabulary.relations["regulates"].fallback
    vocabulary = tmp_path / "mine.ttl"
    vocabulary.write_text(
        """@prefix kg: <https://w3id.org/kgsynth/vocab#> .
<https://w3id.org/kgsynth/relation/regulates> a kg:Relation ; kg:name "regulates" ;
    kg:forward "regulates" ; kg:inverse "is regulated by" .
""",
        encoding="utf-8",
    )
    own = load("rdf", [path], vocabulary=str(vocabulary))
    assert own.vocabulary.relations["regulates"].phrase(False) == "is regulated by"
    assert _triples(own) == {("Insulin", "regulates", "Glucose")}


def test_several_files_and_a_directory(tmp_path):
    (tmp_path / "small.ttl").write_text(TURTLE.replace("ex:regulates", "ex:partOf"), encoding="utf-8")
    (tmp_path / "tiny.owl").write_bytes(OWL_FILE.read_bytes())
    (tmp_path / "notes.md").write_text("not RDF")
    both = load("rdf", [tmp_path])
    assert ("Insulin", "part_of", "Glucose") in _triples(both)
    assert both.manifest.counts.nodes == 8
    assert [s.path for s in both.manifest.sources] == [str(tmp_path / "small.ttl"), str(tmp_path / "tiny.owl")]


def test_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.ttl"
    path.write_text(TURTLE + "ex:Insulin ex:regulates .\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match="cannot parse as turtle") as error:
        load("rdf", [path])
    assert error.value.line == 7
    xml = tmp_path / "bad.owl"
    xml.write_text(OWL_FILE.read_text(encoding="utf-8").replace("</owl:Class>", "</owl:Klass>", 1), encoding="utf-8")
    with pytest.raises(InputFormatError, match="cannot parse as xml") as error:
        load("rdf", [xml])
    assert error.value.line == 25


def test_non_utf8_empty_and_missing_files(tmp_path):
    path = tmp_path / "latin.ttl"
    path.write_bytes(TURTLE.replace('"glucose"', '"gluc\xf4se"').encode("latin-1"))
    with pytest.raises(InputFormatError, match="not UTF-8") as error:
        load("rdf", [path])
    assert error.value.line == 5
    (tmp_path / "empty.ttl").write_text("")
    with pytest.raises(InputFormatError, match="empty"):
        load("rdf", [tmp_path / "empty.ttl"])
    (tmp_path / "prefixes.ttl").write_text("@prefix ex: <http://example.org/> .\n")
    with pytest.raises(InputFormatError, match="no triples"):
        load("rdf", [tmp_path / "prefixes.ttl"])
    with pytest.raises(SourceNotFoundError):
        load("rdf", [tmp_path / "absent.ttl"])
    with pytest.raises(SourceNotFoundError, match="no RDF files"):
        load("rdf", [tmp_path / "sub" if (tmp_path / "sub").mkdir() is None else tmp_path])
