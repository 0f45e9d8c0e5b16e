"""The template writer: path wording from the vocabulary, true directions, masked questions."""

from __future__ import annotations

import asyncio

import pytest

from kgsynth.errors import ConfigError
from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.llm import WRITERS, PathFacts, TemplateWriter, load_prompt
from kgsynth.llm.verbalize import article


def facts_for(names, types, hops) -> PathFacts:
    vocabulary = load_vocabulary("hpo")
    rels = [vocabulary.relation(r) for r, _ in hops]
    return PathFacts(
        names=tuple(names),
        types=tuple(types),
        phrases=tuple(r.phrase(f) for r, (_, f) in zip(rels, hops, strict=True)),
        back_phrases=tuple(r.phrase(not f) for r, (_, f) in zip(rels, hops, strict=True)),
    )


def write(kind: str, facts: PathFacts):
    return asyncio.run(TemplateWriter().write(kind, facts))


def test_forward_and_reverse_hops_use_their_own_wording():
    facts = facts_for(
        ["Marfan syndrome", "Arachnodactyly", "Long fingers"],
        ["disease", "phenotype", "phenotype"],
        [("has_phenotype", True), ("is_a", False)],
    )
    written = write("mcq", facts)
    assert written.thinking == (
        "Marfan syndrome presents with Arachnodactyly. "
        "Arachnodactyly has as a subtype Long fingers. "
        "So the phenotype asked for is Long fingers."
    )
    # the reverse hop is worded with the inverse phrase, never as "Arachnodactyly is a kind of Long fingers"
    assert "Arachnodactyly is a kind of" not in written.thinking
    assert written.question == "Which phenotype is a kind of a phenotype that is a clinical feature of Marfan syndrome?"


def test_question_names_only_the_anchor_and_merges_typed_phrases():
    facts = facts_for(
        ["Marfan syndrome", "Ectopia lentis", "FBN1", "Weill-Marchesani syndrome"],
        ["disease", "phenotype", "gene", "disease"],
        [("has_phenotype", True), ("gene_associated_with_phenotype", False), ("gene_associated_with_disease", True)],
    )
    written = write("open", facts)
    assert written.question == (
        "Which disease is associated with the gene that is associated with the phenotype that is a clinical "
        "feature of Marfan syndrome? Give its name."
    )
    for hidden in ("Ectopia lentis", "FBN1", "Weill-Marchesani"):
        assert hidden not in written.question
    sentences = written.thinking.split(". ")
    assert sentences[1] == "Ectopia lentis is associated with the gene FBN1"


def test_one_hop_question():
    facts = facts_for(["Marfan syndrome", "Arachnodactyly"], ["disease", "phenotype"], [("has_phenotype", True)])
    assert write("mcq", facts).question == "Which phenotype is a clinical feature of Marfan syndrome?"
    assert article("abnormality") == "an" and article("phenotype") == "a"


def test_writer_template_is_registered_free_and_versioned():
    assert {"template", "openai"} <= set(WRITERS.names())
    writer = WRITERS.get("template")(None)
    assert writer.accountant is None and writer.model is None
    prompt = writer.prompt("mcq")
    assert prompt.name == "template.v1" and len(prompt.hash) == 64
    assert write("mcq", facts_for(["A b", "C d"], ["disease", "phenotype"], [("has_phenotype", True)])).usage.cost_usd == 0


def test_prompts_are_versioned_files_with_sections():
    for name in ("thinking_mcq.v1", "thinking_open.v1", "template.v1"):
        prompt = load_prompt(name)
        assert prompt.sections and prompt.name == name
    with pytest.raises(ConfigError, match="bundled"):
        load_prompt("no_such_prompt.v9")
    with pytest.raises(ConfigError, match="needs"):
        load_prompt("thinking_mcq.v1").render("user", facts="x")
