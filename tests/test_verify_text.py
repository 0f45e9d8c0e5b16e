"""Entity-mention linking: normalization, longest match, sentences, stop words."""

from __future__ import annotations

from kgsynth.verify.text import EntityLinker, normalize, tokens_with_breaks


def linker() -> EntityLinker[str]:
    return EntityLinker.build(
        [
            ("seizure", "Seizure"),
            ("focal", "Focal-onset seizure"),
            ("focal", "Focal seizures"),
            ("ecoli", "Recurrent E. coli infections"),
            ("was", "WAS"),  # a gene symbol that is an English word
            ("osteo-p", "Osteosarcoma"),
            ("osteo-d", "Osteosarcoma"),
        ]
    )


def test_normalize_is_case_and_punctuation_blind():
    assert normalize("  Focal-ONSET, seizure_(left)!") == "focal onset seizure left"


def test_longest_name_wins_and_each_mention_knows_its_sentence():
    text = "Focal-onset seizure is a kind of Seizure. Seizures differ; FOCAL SEIZURES too."
    mentions = linker().link(text)
    assert [(m.nodes, m.sentence) for m in mentions] == [(("focal",), 0), (("seizure",), 0), (("focal",), 2)]


def test_a_sentence_break_inside_a_name_is_not_a_break():
    mentions = linker().link("Recurrent E. coli infections is a kind of Seizure.")
    assert [(m.nodes, m.sentence) for m in mentions] == [(("ecoli",), 0), (("seizure",), 0)]
    tokens, breaks = tokens_with_breaks("One. Two! three. e.g. Four")
    assert tokens == ["one", "two", "three", "e", "g", "four"]
    assert breaks == [False, True, False, False, False, True]  # a lower-case word continues the sentence


def test_a_name_ending_in_a_full_stop_does_not_end_the_sentence():
    names = EntityLinker.build([("a", "Aplasia of the vestibular nerve."), ("b", "Abnormality of the vestibular nerve")])
    mentions = names.link("Aplasia of the vestibular nerve. is a kind of Abnormality of the vestibular nerve.")
    assert [(m.nodes, m.sentence) for m in mentions] == [(("a",), 0), (("b",), 0)]


def test_common_words_are_not_mentions_and_shared_names_keep_every_node():
    mentions = linker().link("It was an Osteosarcoma.")
    assert [m.nodes for m in mentions] == [("osteo-p", "osteo-d")]
    assert linker().forms["focal"] == ("focal onset seizure", "focal seizures")
    assert "was" not in linker().forms


def test_a_masked_name_hides_only_what_lies_inside_it():
    names = EntityLinker.build([("a", "Cluster headache"), ("b", "Cluster headache, familial"), ("s", "Seizure"), ("f", "Focal-onset seizure")])
    assert names.mentions_any("Which feature of Focal-onset seizure?", ["s"], mask=["f"]) == []
    assert names.mentions_any("Which feature of Focal-onset seizure? Not seizure.", ["s"], mask=["f"]) == [("s", "seizure")]
    leaked = "Which disease presents with Cluster headache (think of CLUSTER HEADACHE, familial)?"
    assert names.mentions_any(leaked, ["b"], mask=["a"]) == [("b", "cluster headache familial")]


def test_extra_names_reach_entities_the_dictionary_leaves_out():
    mentions = linker().link("X was here. WAS is a gene.", {("was",): ("WAS-gene",)})
    assert [(m.start, m.sentence, m.nodes) for m in mentions] == [(1, 0, ("WAS-gene",)), (3, 1, ("WAS-gene",))]


def test_link_many_finds_what_link_finds_text_by_text():
    import polars as pl

    texts = [
        "Focal-onset seizure is a kind of Seizure. Seizures differ; FOCAL SEIZURES too.",
        "Recurrent E. coli infections. Seizure",
        ". Osteosarcoma!",
        "Straße, Seizure",  # not ASCII: linked one by one
        "",
        None,
        "Seizure\n\nseizure",
    ]
    assert linker().link_many(pl.Series(texts)) == [linker().link(t or "") for t in texts]
