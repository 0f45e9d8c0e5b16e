"""The bundled vocabularies and the vocabulary model: wording, inverse names, symmetry, RDF round trip."""

from __future__ import annotations

import pytest

from kgsynth.errors import InputFormatError, SourceNotFoundError, UnknownRelationError
from kgsynth.graph.vocabulary import bundled_vocabularies, load_vocabulary, parse_vocabulary_text


def test_every_bundled_vocabulary_parses_with_complete_wording():
    assert {"generic", "hpo", "primekg", "umls"} <= set(bundled_vocabularies())
    for name in bundled_vocabularies():
        vocabulary = load_vocabulary(name)
        assert vocabulary.relations, name
        for relation in vocabulary.relations.values():
            assert relation.forward and relation.inverse and relation.label
            if relation.symmetric:
                assert relation.forward == relation.inverse and relation.inverse_name is None
            for end in (*relation.domain, *relation.range):
                assert end in vocabulary.node_types, (name, relation.name, end)


def test_primekg_has_all_thirty_relations_and_readable_wording():
    vocabulary = load_vocabulary("primekg")
    assert len(vocabulary.relations) == 30 and len(vocabulary.node_types) == 10
    same_type = [r for r in vocabulary.relations.values() if r.domain == r.range]
    assert all(r.symmetric for r in same_type) and len(same_type) == 10
    effect = vocabulary.relations["drug_effect"]
    assert f"Aspirin {effect.phrase(True)} tinnitus" == "Aspirin can cause the side effect tinnitus"
    assert f"Tinnitus {effect.phrase(False)} aspirin" == "Tinnitus is a side effect of aspirin"


def test_inverse_names_map_to_the_kept_relation_and_survive_turtle():
    vocabulary = load_vocabulary("umls")
    names = vocabulary.canonical_names()
    assert names["inverse_isa"] == ("isa", True) and names["isa"] == ("isa", False)
    assert names["PAR"] == ("CHD", True) and names["RB"] == ("RN", True)
    assert names["may_be_treated_by"] == ("may_treat", True)
    assert names["RO"] == ("RO", False) and vocabulary.relations["RO"].symmetric
    again = parse_vocabulary_text(vocabulary.to_turtle(), "umls")
    assert again.relations == vocabulary.relations


def test_unknown_names_and_bad_files(tmp_path):
    vocabulary = load_vocabulary("generic")
    with pytest.raises(UnknownRelationError, match="unknown relation\\(s\\) 'binds' for vocabulary 'generic'; known: "):
        vocabulary.check_relations(["binds", "part_of"], allow_unknown=False, where="x.csv")
    relaxed = vocabulary.check_relations(["binds"], allow_unknown=True)
    assert relaxed.relations["binds"].fallback and "binds" not in vocabulary.relations
    with pytest.raises(SourceNotFoundError, match="no vocabulary named 'nope'; bundled: generic"):
        load_vocabulary("nope")
    bad = tmp_path / "bad.ttl"
    bad.write_text("this is not turtle")
    with pytest.raises(InputFormatError, match="cannot parse vocabulary"):
        load_vocabulary(bad)
