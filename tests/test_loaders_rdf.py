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


OBO = "http://purl.obolibrary.org/obo/"
GO_UBERON_OWL = """<?xml version="1.0"?>
<rdf:RDF xmlns="http://purl.obolibrary.org/obo/go-uberon-slim.owl#"
     xml:base="http://purl.obolibrary.org/obo/go-uberon-slim.owl"
     xmlns:obo="http://purl.obolibrary.org/obo/"
     xmlns:owl="http://www.w3.org/2002/07/owl#"
     xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
     xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">
    <owl:Ontology rdf:about="http://purl.obolibrary.org/obo/go-uberon-slim.owl"/>
    <owl:ObjectProperty rdf:about="http://purl.obolibrary.org/obo/BFO_0000050">
        <rdfs:label>part of</rdfs:label>
    </owl:ObjectProperty>
    <owl:ObjectProperty rdf:about="http://purl.obolibrary.org/obo/RO_0002211">
        <rdfs:label>regulates</rdfs:label>
    </owl:ObjectProperty>
    <owl:ObjectProperty rdf:about="http://purl.obolibrary.org/obo/RO_0002215">
        <rdfs:label>capable of</rdfs:label>
    </owl:ObjectProperty>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0016020"><rdfs:label>membrane</rdfs:label></owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0043231">
        <rdfs:label>intracellular membrane-bounded organelle</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0005739">
        <rdfs:subClassOf rdf:resource="http://purl.obolibrary.org/obo/GO_0043231"/>
        <rdfs:label>mitochondrion</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0031966">
        <owl:equivalentClass>
            <owl:Class>
                <owl:intersectionOf rdf:parseType="Collection">
                    <rdf:Description rdf:about="http://purl.obolibrary.org/obo/GO_0016020"/>
                    <owl:Restriction>
                        <owl:onProperty rdf:resource="http://purl.obolibrary.org/obo/BFO_0000050"/>
                        <owl:someValuesFrom rdf:resource="http://purl.obolibrary.org/obo/GO_0005739"/>
                    </owl:Restriction>
                </owl:intersectionOf>
            </owl:Class>
        </owl:equivalentClass>
        <rdfs:label>mitochondrial membrane</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0065007">
        <rdfs:label>biological regulation</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0006119">
        <rdfs:label>oxidative phosphorylation</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0002082">
        <owl:equivalentClass>
            <owl:Class>
                <owl:intersectionOf rdf:parseType="Collection">
                    <rdf:Description rdf:about="http://purl.obolibrary.org/obo/GO_0065007"/>
                    <owl:Restriction>
                        <owl:onProperty rdf:resource="http://purl.obolibrary.org/obo/RO_0002211"/>
                        <owl:someValuesFrom rdf:resource="http://purl.obolibrary.org/obo/GO_0006119"/>
                    </owl:Restriction>
                </owl:intersectionOf>
            </owl:Class>
        </owl:equivalentClass>
        <rdfs:label>regulation of oxidative phosphorylation</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0005737"><rdfs:label>cytoplasm</rdfs:label></owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/GO_0044444">
        <owl:equivalentClass>
            <owl:Restriction>
                <owl:onProperty rdf:resource="http://purl.obolibrary.org/obo/BFO_0000050"/>
                <owl:someValuesFrom rdf:resource="http://purl.obolibrary.org/obo/GO_0005737"/>
            </owl:Restriction>
        </owl:equivalentClass>
        <rdfs:label>cytoplasmic part</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/UBERON_0000948"><rdfs:label>heart</rdfs:label></owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/UBERON_0002385">
        <rdfs:label>muscle tissue</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/UBERON_0002349">
        <rdfs:subClassOf>
            <owl:Restriction>
                <owl:onProperty rdf:resource="http://purl.obolibrary.org/obo/BFO_0000050"/>
                <owl:someValuesFrom rdf:resource="http://purl.obolibrary.org/obo/UBERON_0000948"/>
            </owl:Restriction>
        </rdfs:subClassOf>
        <rdfs:label>myocardium</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/UBERON_0001133">
        <owl:equivalentClass>
            <owl:Class>
                <owl:intersectionOf rdf:parseType="Collection">
                    <rdf:Description rdf:about="http://purl.obolibrary.org/obo/UBERON_0002385"/>
                    <owl:Restriction>
                        <owl:onProperty rdf:resource="http://purl.obolibrary.org/obo/BFO_0000050"/>
                        <owl:someValuesFrom rdf:resource="http://purl.obolibrary.org/obo/UBERON_0000948"/>
                    </owl:Restriction>
                    <owl:Restriction>
                        <owl:onProperty rdf:resource="http://purl.obolibrary.org/obo/RO_0002215"/>
                        <owl:allValuesFrom rdf:resource="http://purl.obolibrary.org/obo/GO_0006119"/>
                    </owl:Restriction>
                </owl:intersectionOf>
            </owl:Class>
        </owl:equivalentClass>
        <rdfs:label>cardiac muscle tissue</rdfs:label>
    </owl:Class>
    <owl:Class rdf:about="http://purl.obolibrary.org/obo/UBERON_0000479">
        <owl:equivalentClass>
            <owl:Class>
                <owl:unionOf rdf:parseType="Collection">
                    <rdf:Description rdf:about="http://purl.obolibrary.org/obo/UBERON_0002385"/>
                    <rdf:Description rdf:about="http://purl.obolibrary.org/obo/UBERON_0002349"/>
                </owl:unionOf>
            </owl:Class>
        </owl:equivalentClass>
        <rdfs:label>tissue</rdfs:label>
    </owl:Class>
</rdf:RDF>
"""


def test_equivalent_class_definitions_give_genus_and_restriction_edges(tmp_path):
    path = tmp_path / "go-uberon-slim.owl"
    path.write_text(GO_UBERON_OWL, encoding="utf-8")
    # RO's 'regulates' is not in the generic vocabulary
    snapshot = load("rdf", [path], allow_unknown_relations=True)
    triples = {(s.removeprefix(OBO), r, d.removeprefix(OBO)) for s, d, r, _ in snapshot.edges.iter_rows()}
    assert triples == {
        ("GO_0005739", "subclass_of", "GO_0043231"),  # plain subClassOf
        ("UBERON_0002349", "part_of", "UBERON_0000948"),  # subClassOf ∃part_of.heart
        # mitochondrial membrane ≡ membrane ⊓ ∃part_of.mitochondrion
        ("GO_0031966", "subclass_of", "GO_0016020"),
        ("GO_0031966", "part_of", "GO_0005739"),
        # regulation of oxidative phosphorylation ≡ biological regulation ⊓ ∃regulates.oxidative phosphorylation
        ("GO_0002082", "subclass_of", "GO_0065007"),
        ("GO_0002082", "regulates", "GO_0006119"),
        ("GO_0044444", "part_of", "GO_0005737"),  # cytoplasmic part ≡ ∃part_of.cytoplasm
        # cardiac muscle tissue ≡ muscle tissue ⊓ ∃part_of.heart ⊓ ∀capable_of.…
        ("UBERON_0001133", "subclass_of", "UBERON_0002385"),
        ("UBERON_0001133", "part_of", "UBERON_0000948"),  # the ∀ part makes no edge
    }
    names = dict(snapshot.nodes.select("id", "name").iter_rows())
    assert names[OBO + "GO_0031966"] == "mitochondrial membrane"
    # the ∀ restriction inside the intersection and the union under equivalentClass are counted, not lost
    assert sum(snapshot.manifest.dropped.values()) == 2
