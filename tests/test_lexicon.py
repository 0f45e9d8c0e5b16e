"""The relation lexicon: the bundled families and relation terms, the corpus, a user's own Turtle."""

from __future__ import annotations

from collections import Counter

import pytest
from relation_corpus import judge_made_up, judge_real, read_corpus

from kgsynth.errors import InputFormatError
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.graph.vocabulary import bundled_families, bundled_vocabularies, load_vocabulary, parse_vocabulary_text
from kgsynth.verify.index import graph_index
from kgsynth.verify.lexicon import MISSTATED, STATED, UNSURE, bundled_lexicon, lexicon_of, stem
from kgsynth.verify.text import words

FAMILIES = bundled_families()


def judge(vocabulary: str, relation: str, reading: bool, text: str):
    return lexicon_of(load_vocabulary(vocabulary)).judge(relation, reading, words(text))


def test_every_bundled_relation_has_families_the_table_declares():
    for name in bundled_vocabularies():
        for relation in load_vocabulary(name).relations.values():
            assert relation.families, (name, relation.name)
            assert set(relation.families) <= set(FAMILIES), (name, relation.name)
    assert {"negation", "neutral", "association", "causal", "therapeutic", "contraindication", "taxonomic", "part_whole"} <= set(FAMILIES)
    assert FAMILIES["association"].weak and not FAMILIES["causal"].weak


def test_the_vocabularys_own_wording_states_its_relation_and_the_other_direction_reverses_it():
    reversible = 0
    for name in bundled_vocabularies():
        lexicon = lexicon_of(load_vocabulary(name))
        for relation in load_vocabulary(name).relations.values():
            for reading in (True, False):
                assert lexicon.judge(relation.name, reading, words(relation.phrase(reading))).verdict == STATED, (name, relation.name)
            entry = lexicon.entry(relation.name)
            directed = [f for f, v in entry.voice.items() if v is not None and not FAMILIES.get(f, FAMILIES["association"]).weak]
            if not relation.symmetric and directed and relation.forward != relation.inverse:
                judged = lexicon.judge(relation.name, False, words(relation.forward))
                assert judged.verdict == MISSTATED and "wrong way round" in judged.reason, (name, relation.name, judged)
                reversible += 1
    assert reversible >= 40


@pytest.mark.parametrize(
    ("vocabulary", "relation", "reading", "text", "verdict", "reason"),
    [
        ("hpo", "gene_associated_with_phenotype", False, "is caused by the gene", MISSTATED, "asserts a causal relation ('caused by')"),
        ("hpo", "gene_associated_with_phenotype", False, "is not associated with the gene", MISSTATED, "negates it ('not')"),
        ("hpo", "gene_associated_with_phenotype", True, "not only is associated with", STATED, ""),  # a neutral phrase
        ("primekg", "indication", True, "is contraindicated in", MISSTATED, "asserts a contraindication relation"),
        ("primekg", "contraindication", True, "should not be used to treat", STATED, ""),  # the longer cue holds the "not"
        ("primekg", "indication", True, "is often treated using", MISSTATED, "wrong way round ('treated')"),  # passive
        ("primekg", "indication", False, "is often treated using", STATED, ""),
        ("primekg", "disease_phenotype_negative", True, "presents with", MISSTATED, "what the graph records as absent"),
        ("primekg", "disease_phenotype_negative", True, "does not present with", STATED, ""),
        ("umls", "isa", True, "is part of", MISSTATED, "asserts a part-whole relation ('is part of')"),
        ("umls", "part_of", True, "is a subtype of", MISSTATED, "asserts a taxonomic (subtype) relation"),
        ("umls", "part_of", True, "belongs to", STATED, ""),  # a light cue: part-whole here, taxonomic elsewhere
        ("umls", "cause_of", True, "is due to", MISSTATED, "wrong way round ('is due to')"),
        ("generic", "associated_with", True, "causes", MISSTATED, "asserts a causal relation ('causes')"),
        ("generic", "causes", True, "is associated with", STATED, ""),  # weaker, not different
        ("generic", "is_a", True, "and with it", UNSURE, ""),
    ],
)
def test_judgements_of_single_steps(vocabulary, relation, reading, text, verdict, reason):
    judged = judge(vocabulary, relation, reading, text)
    assert judged.verdict == verdict and reason in judged.reason


def test_stems_equate_inflections_only():
    assert {stem(w) for w in ("causes", "caused", "causing", "cause")} == {"caus"}
    assert stem("expresses") == stem("expressed") == stem("express") == "express"
    assert stem("is") == "is" and stem("contraindicated") != stem("indicated")


def test_lead_and_trail_count_only_when_they_can():
    lexicon = lexicon_of(load_vocabulary("hpo"))
    assert lexicon.judge("is_a", True, words("is a kind of"), lead=words("It is not true that")).verdict == MISSTATED
    assert lexicon.judge("is_a", True, words("and"), trail=words("are not related")).verdict == MISSTATED
    assert lexicon.judge("is_a", True, words("is a kind of"), trail=words("which is not rare")).verdict == STATED


# --- the corpus -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus():
    sentences = read_corpus()
    kinds = Counter((s.vocabulary, s.kind) for s in sentences)
    assert {v for v, _ in kinds} == {"hpo", "primekg", "umls", "generic"}
    assert all(kinds[(v, k)] for v in ("hpo", "primekg", "umls", "generic") for k in ("paraphrase", "misstatement", "negation"))
    return sentences


def test_corpus_with_made_up_names_catches_misstatements_and_keeps_paraphrases(corpus):
    tally = judge_made_up(corpus, per_sentence=2)
    assert tally.count("misstated") > 900 and tally.count("stated") > 700
    assert tally.caught >= 0.99, tally.wrong[:10]
    assert tally.falsely_rejected <= 0.01, tally.wrong[:10]
    for kind in ("misstatement", "reversed", "negation"):
        assert tally.count("misstated", MISSTATED, kind) >= 0.99 * tally.count("misstated", kind=kind), kind


def test_corpus_with_real_hpo_names_as_verification_reads_them(corpus, hpo_snapshot_dir):
    index = graph_index(read_snapshot(hpo_snapshot_dir))
    tally = judge_real(corpus, index, per_sentence=2)
    assert tally.count("misstated") > 500 and tally.count("stated") > 300
    assert tally.caught >= 0.99, tally.wrong[:10]
    assert tally.falsely_rejected <= 0.01, tally.wrong[:10]
    assert tally.unlinked <= 0.02 * (tally.count("misstated") + tally.count("stated"))


# --- a user's own Turtle ----------------------------------------------------------------------

USER_TTL = """
@prefix kg:   <https://w3id.org/kgsynth/vocab#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .

<https://example.org/rel/regulates> a kg:Relation ;
    kg:name "regulates" ; rdfs:label "regulates" ;
    kg:forward "regulates" ; kg:inverse "is regulated by" ;
    kg:family "regulation" ;
    kg:paraphrase "controls the expression of" ;
    kg:symmetric false .

<https://example.org/rel/associated_with> a kg:Relation ;
    kg:name "associated_with" ; rdfs:label "associated with" ;
    kg:forward "is associated with" ; kg:inverse "is associated with" ;
    kg:symmetric true .

<https://example.org/family/regulation> a kg:RelationFamily ;
    kg:name "regulation" ; rdfs:label "regulation" ;
    kg:cue "regulates", "upregulates", "downregulates" ;
    kg:inverseCue "regulated by", "upregulated by" .

<https://example.org/family/causal> a kg:RelationFamily ;
    kg:name "causal" ; kg:cue "precipitates" .
"""


def test_a_users_turtle_adds_relations_families_and_cues(tmp_path):
    path = tmp_path / "mine.ttl"
    path.write_text(USER_TTL, encoding="utf-8")
    vocabulary = load_vocabulary(path)
    assert vocabulary.relations["regulates"].paraphrases == ("controls the expression of",)
    again = parse_vocabulary_text(vocabulary.to_turtle(), "mine")  # what a snapshot carries
    assert again.relations == vocabulary.relations and again.families == vocabulary.families
    lexicon = lexicon_of(again)
    assert lexicon.judge("regulates", True, words("upregulates")).verdict == STATED
    assert lexicon.judge("regulates", False, words("is upregulated by")).verdict == STATED
    assert lexicon.judge("regulates", True, words("is upregulated by")).verdict == MISSTATED
    assert lexicon.judge("regulates", True, words("controls the expression of")).verdict == STATED
    assert lexicon.judge("regulates", True, words("causes")).verdict == MISSTATED
    # the bundled causal family keeps its cues and gains the user's
    assert "precipitates" in lexicon.families["causal"].cues and "leads to" in lexicon.families["causal"].cues
    judged = lexicon.judge("associated_with", True, words("precipitates"))
    assert judged.verdict == MISSTATED and "causal" in judged.reason
    assert lexicon.judge("associated_with", True, words("upregulates")).verdict == MISSTATED


def test_the_bundled_lexicon_pools_relations_of_one_name():
    lexicon = bundled_lexicon()
    # has_phenotype is "presents with" in HPO and "has the phenotype" in the generic vocabulary
    assert lexicon.judge("has_phenotype", True, words("presents with")).verdict == STATED
    assert lexicon.judge("has_phenotype", True, words("has the phenotype")).verdict == STATED
    # a name no vocabulary knows gets generic wording: only negation and reversal of it are read
    assert lexicon.judge("binds_to", True, words("is related by binds to to")).verdict == STATED
    assert lexicon.judge("binds_to", True, words("does not bind")).verdict == MISSTATED


def test_a_family_no_one_declares_is_a_clear_error():
    text = USER_TTL.replace('kg:family "regulation"', 'kg:family "regulaton"')
    with pytest.raises(InputFormatError, match="relation 'regulates' names relation family 'regulaton' that no kg:RelationFamily declares"):
        lexicon_of(parse_vocabulary_text(text, "mine"))


def test_a_relation_no_cue_describes_keeps_its_direction():
    text = USER_TTL.replace('kg:family "regulation" ;', "").replace('kg:paraphrase "controls the expression of" ;', "").replace('kg:forward "regulates" ; kg:inverse "is regulated by"', 'kg:forward "frobnicates" ; kg:inverse "is frobnicated by"')
    lexicon = lexicon_of(parse_vocabulary_text(text, "mine"))
    assert lexicon.entry("regulates").families == {"relation:regulates"}
    assert lexicon.judge("regulates", True, words("frobnicates")).verdict == STATED
    assert lexicon.judge("regulates", False, words("frobnicates")).verdict == MISSTATED
    judged = lexicon.judge("associated_with", True, words("frobnicates"))
    assert judged.verdict == MISSTATED and "asserts a regulates relation" in judged.reason

