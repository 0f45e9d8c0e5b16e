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

import re
from collections.abc import Sequence
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
    phrase, described = chain_clause(facts, template)
    return template.render(f"question_{kind}", answer_type=facts.answer_type, phrase=phrase, object=described)


def chain_clause(facts: PathFacts, template: Prompt) -> tuple[str, str]:
    """(the last hop's back phrase, the chain from the answer back to the anchor as nested clauses)."""
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
    return facts.back_phrases[k - 1], described


# --- plans: several paths meeting at one answer (the `dag` kind) ------------------------


@dataclass(frozen=True)
class PlanFacts:
    """What a writer needs to know about a convergent group: one PathFacts per branch, each
    anchor → answer. The branches' hops are the plan's facts, numbered 1, 2, … branch by branch."""

    branches: tuple[PathFacts, ...]

    @property
    def answer(self) -> str:
        return self.branches[0].answer

    @property
    def answer_type(self) -> str:
        return self.branches[0].answer_type

    @property
    def anchors(self) -> list[str]:
        return [b.anchor for b in self.branches]

    def fact_positions(self) -> list[tuple[int, int]]:
        """(branch, hop) of fact 1, 2, …"""
        return [(b, h) for b, branch in enumerate(self.branches) for h in range(len(branch.phrases))]


@dataclass(frozen=True)
class DraftStep:
    """A plan step as a writer gives it: the fact it rests on (1-based, branch by branch; None for
    the join), the steps it depends on, and its sentence."""

    fact: int | None
    depends_on: list[int]
    text: str


def plan_question(facts: PlanFacts, template: Prompt) -> str:
    """Which <answer type> <chain of branch 1> and <chain of branch 2>? Names the anchors only."""
    clauses = [" ".join(chain_clause(branch, template)) for branch in facts.branches]
    return template.render("question_dag", answer_type=facts.answer_type, clauses=and_list(clauses))


def plan_drafts(facts: PlanFacts, template: Prompt) -> list[DraftStep]:
    """The template's plan, branch by branch: each fact step depends on the one before it in its
    branch, and the join on each branch's last step."""
    steps: list[DraftStep] = []
    ends: list[int] = []
    for branch in facts.branches:
        for h, sentence in enumerate(hop_sentences(branch, template)):
            steps.append(DraftStep(len(steps) + 1, [len(steps)] if h else [], sentence))
        ends.append(len(steps))
    steps.append(DraftStep(None, ends, join_sentence(facts, ends, template)))
    return steps


def join_sentence(facts: PlanFacts, ends: list[int], template: Prompt) -> str:
    return template.render(
        "join", steps=and_list([str(e) for e in ends]), together="both" if len(ends) == 2 else "all",
        answer=facts.answer, answer_type=facts.answer_type,
    )  # fmt: skip


def outline(facts: PlanFacts, fact: int | None, depends_on: list[int], template: Prompt) -> str:
    """A plan line: what a step looks for, naming only the question's entities."""
    if fact is None:
        return template.render(
            "outline_join", answer_type=facts.answer_type, steps=and_list([str(d) for d in depends_on]),
            together="both" if len(depends_on) == 2 else "all",
        )  # fmt: skip
    b, h = facts.fact_positions()[fact - 1]
    branch = facts.branches[b]
    target = branch.types[h + 1]
    phrase = branch.phrases[h]
    for tail in (f" the {target}", f" a {target}", f" an {target}", f" {target}"):  # "… with the gene" → "… with which gene"
        if phrase.endswith(tail):
            phrase = phrase[: -len(tail)]
            break
    if not depends_on:
        return template.render("outline_leaf", subject=branch.names[h], phrase=phrase, type=target)
    return template.render(
        "outline_next", subject_type=branch.types[h], steps=and_list([str(d) for d in depends_on]),
        phrase=phrase, type=target,
    )  # fmt: skip


# The layout of a plan's thinking text (MedVerse-style): plan lines, then the execution.
PLAN_TAGS = ("<Plan>", "</Plan>", "<Execution>", "</Execution>")
_PLAN_LINE = re.compile(r"^Step (\d+) \(depends on: (none|\d+(?:, \d+)*)\): (.*)$")
_EXEC_LINE = re.compile(r"^Step (\d+): (.*)$")


def plan_text(facts: PlanFacts, drafts: Sequence[DraftStep], template: Prompt) -> str:
    """The thinking text of a plan: steps numbered 1, 2, … in the drafts' order."""
    outlines = [outline(facts, d.fact, d.depends_on, template) if _cites(facts, d) else "?" for d in drafts]
    return serialize_plan([(i, d.depends_on, d.text) for i, d in enumerate(drafts, start=1)], outlines)


def _cites(facts: PlanFacts, draft: DraftStep) -> bool:
    return draft.fact is None or 1 <= draft.fact <= len(facts.fact_positions())


def serialize_plan(steps: Sequence[tuple[int, Sequence[int], str]], outlines: Sequence[str]) -> str:
    """(step, depends on, sentence) per step and one outline each → the plan lines, then the execution."""
    lines = [PLAN_TAGS[0]]
    for (step, depends_on, _), text in zip(steps, outlines, strict=True):
        lines.append(f"Step {step} (depends on: {', '.join(str(d) for d in depends_on) or 'none'}): {text}")
    lines += [PLAN_TAGS[1], PLAN_TAGS[2], *(f"Step {step}: {sentence}" for step, _, sentence in steps), PLAN_TAGS[3]]
    return "\n".join(lines)


@dataclass(frozen=True)
class PlanText:
    planned: list[tuple[int, list[int]]]  # (step, depends on), as the plan lines say
    executed: list[tuple[int, str]]  # (step, sentence), as the execution says
    outlines: list[str]  # what each plan line says the step looks for


def read_plan_text(text: str) -> PlanText | None:
    """The steps a thinking text plans and executes; None when it is not laid out as `serialize_plan` writes."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 4 or lines[0] != PLAN_TAGS[0] or lines[-1] != PLAN_TAGS[3]:
        return None
    try:
        middle = lines.index(PLAN_TAGS[1])
    except ValueError:
        return None
    if middle + 1 >= len(lines) or lines[middle + 1] != PLAN_TAGS[2]:
        return None
    planned, executed, outlines = [], [], []
    for line in lines[1:middle]:
        match = _PLAN_LINE.match(line)
        if match is None:
            return None
        planned.append((int(match[1]), [] if match[2] == "none" else [int(d) for d in match[2].split(", ")]))
        outlines.append(match[3])
    for line in lines[middle + 2 : -1]:
        match = _EXEC_LINE.match(line)
        if match is None:
            return None
        executed.append((int(match[1]), match[2]))
    return PlanText(planned, executed, outlines)


def and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
