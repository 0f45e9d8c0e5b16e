"""Paths in words, from the relation wording of the vocabulary (`ontologies/*.ttl`).

Hop i reads "nodes[i] <phrase> nodes[i+1]", where the phrase is the relation's
forward wording when the hop follows the stored edge and its inverse wording when
it walks the edge backwards (symmetric relations read forward both ways): a
reverse hop is never the forward relation with its ends swapped.

The question describes the chain from the answer back to the anchor with nested
clauses ("Which phenotype is a kind of a phenotype that is a clinical feature of
Marfan syndrome?"), so it names the anchor and no other entity of the path.
"""

from __future__ import annotations

from dataclasses import dataclass

from kgsynth.llm.prompts import Prompt


@dataclass(frozen=True)
class PathFacts:
    """What a writer needs to know about one path; built once per path by generation."""

    names: tuple[str, ...]  # node names, anchor first, answer last
    types: tuple[str, ...]  # node type labels
    phrases: tuple[str, ...]  # per hop: reads names[i] <phrase> names[i+1]
    back_phrases: tuple[str, ...]  # per hop: reads names[i+1] <back phrase> names[i]

    @property
    def anchor(self) -> str:
        return self.names[0]

    @property
    def answer(self) -> str:
        return self.names[-1]

    @property
    def answer_type(self) -> str:
        return self.types[-1]


def hop_sentences(facts: PathFacts, template: Prompt) -> list[str]:
    return [
        template.render("step", subject=facts.names[i], phrase=facts.phrases[i], object=facts.names[i + 1])
        for i in range(len(facts.phrases))
    ]


def thinking_text(facts: PathFacts, template: Prompt) -> str:
    steps = hop_sentences(facts, template)
    conclusion = template.render("conclusion", answer_type=facts.answer_type, answer=facts.answer)
    return " ".join([*steps, conclusion])


def question_text(facts: PathFacts, kind: str, template: Prompt) -> str:
    """The question stem: the answer's type, then the chain back to the anchor as clauses."""
    k = len(facts.phrases)
    described = facts.anchor
    for i in range(k - 1):  # build outwards from the anchor: clause for node i+1
        inner = i + 1
        outer_phrase = facts.back_phrases[inner]
        type_label = facts.types[inner]
        values = {"type": type_label, "phrase": facts.back_phrases[i], "object": described}
        if outer_phrase.endswith(f" {type_label}"):  # "is associated with the disease" + "that …"
            described = template.render("clause_after_type", **values)
        else:
            described = template.render("clause", article=article(type_label), **values)
    return template.render(
        f"question_{kind}", answer_type=facts.answer_type, phrase=facts.back_phrases[k - 1], object=described
    )


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
