"""A model reads the step sentences the relation lexicon could not (verify's relation_check: model).

The lexicon (`kgsynth.verify.lexicon`) decides most steps: the template writer's are
one of the relation's own wordings, and free text that asserts another relation, the
wrong direction or a negation uses words it knows. A step whose words it cannot read
("Marfan syndrome, and with it arachnodactyly") passes the graph stage as `unsure`;
with this check on, the judge model is asked about that sentence and the graph's
fact(s) between its two entities only (prompt `prompts/relation_check.v1.md`,
through the LLM layer: reply cache, retries, accounting). A sentence it says
misstates the fact rejects the item as `RELATION_MISSTATED`; a failed call as
`LLM_UNAVAILABLE` (a re-run asks again, the rest comes from the cache). Every
verdict the model gave is recorded in the item's verdict detail. Items without an
unsure step cost no call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, Field

from kgsynth.verify.checks import Outcome, register
from kgsynth.verify.graph_checks import describe
from kgsynth.verify.index import GraphIndex
from kgsynth.verify.lexicon import UNSURE
from kgsynth.verify.relation import CODE, Fact
from kgsynth.verify.text import gc_paused

PROMPT = Path(__file__).resolve().parent / "prompts" / "relation_check.v1.md"
STAGE = "verify_relation"


class RelationVerdict(BaseModel):
    """What the model must reply."""

    verdict: Literal["states", "misstates", "unclear"]
    wording: str = Field(default="", max_length=300, description="The words of the sentence that relate the two entities.")


@dataclass(frozen=True)
class UnsureStep:
    row: int  # among the items given
    sentence: str
    subject: str
    object: str
    facts: str  # the graph's fact(s) in words


def unsure_steps(frame: pl.DataFrame, index: GraphIndex) -> list[UnsureStep]:
    """The steps of the items' thinking the lexicon could not read, one per distinct sentence and pair."""
    from kgsynth.verify.batch import path_batch, split_malformed
    from kgsynth.verify.text_checks import linked_thinking, step_readers

    good, _ = split_malformed(frame.with_row_index("_row"))  # malformed items were rejected already
    batch = path_batch(good.drop("_row"), index)  # a dag item's steps are read branch by branch
    rows = good["_row"].to_list()
    out: list[UnsureStep] = []
    with gc_paused():
        for at, (reader, steps) in enumerate(step_readers(index, batch, *linked_thinking(index, batch))):
            row = rows[int(batch.unit[at])]
            seen = set()
            for step in steps:
                if step.judgement.verdict != UNSURE:
                    continue
                item = UnsureStep(
                    row, reader.sentence(step.index), _name(index, step.facts[0].subject), _name(index, step.facts[0].object),
                    "; ".join(_fact_text(index, f) for f in step.facts),
                )
                if (item.sentence, item.subject, item.object) not in seen:
                    seen.add((item.sentence, item.subject, item.object))
                    out.append(item)
    return out


def _name(index: GraphIndex, node) -> str:
    return index.names[node] if node is not None and node >= 0 else "?"


def _fact_text(index: GraphIndex, fact: Fact) -> str:
    wording = index.lexicon.entry(fact.relation).wording[fact.reading]
    return f"{_name(index, fact.subject)} {wording} {_name(index, fact.object)} (relation {fact.relation})"


def messages_for(step: UnsureStep) -> list[dict[str, str]]:
    from kgsynth.llm.prompts import load_prompt

    prompt = load_prompt(str(PROMPT))
    return [
        {"role": "system", "content": prompt.render("system")},
        {"role": "user", "content": prompt.render("user", sentence=step.sentence, subject=step.subject, object=step.object, facts=step.facts)},
    ]


@register(
    "relation_model",
    stage="llm",
    codes=(CODE, "LLM_UNAVAILABLE"),
    description=(
        "a model reads the step sentences the relation lexicon could not (verify relation_check: model) "
        "and says whether each states the graph's relation between its two entities"
    ),
)
def run_relation_model(frame: pl.DataFrame, llm, index: GraphIndex, ask=None) -> Outcome:
    """`llm`: an `LLMConfig`; `ask(requests) -> (replies, usage)` replaces the call (grounding pays
    through its own model steps)."""
    steps = unsure_steps(frame, index)
    if not steps:
        return Outcome.passing(frame.height)
    requests = [(messages_for(step), RelationVerdict) for step in steps]
    if ask is None:
        from kgsynth.llm.client import complete_all

        replies, usage = complete_all(llm, requests, stage=STAGE)
    else:
        replies, usage = ask(requests)
    outcome = Outcome.of(frame.height, judge_replies(steps, replies))
    for step, reply in zip(steps, replies, strict=True):  # the model's verdict on every step it was asked about
        if outcome.code[step.row] is None:
            said = f'the model reads "{step.sentence}" as: {reply.parsed.verdict}{_wording(reply)}'
            outcome.detail[step.row] = f"{outcome.detail[step.row]}; {said}" if outcome.detail[step.row] else said
    outcome.usage = usage
    return outcome


def judge_replies(steps: list[UnsureStep], replies: list) -> list[tuple[int, str, str]]:
    """(row, code, detail) of each step the model says misstates its fact, or whose call failed."""
    from kgsynth.llm.client import CallFailed

    failures = []
    for step, reply in zip(steps, replies, strict=True):
        if isinstance(reply, CallFailed):
            said = "the run's budget was reached before this call" if reply.reason == "budget" else f"the model call failed: {reply.reason}"
            failures.append((step.row, "LLM_UNAVAILABLE", f'reading "{step.sentence}": {said}'))
        elif reply.parsed.verdict == "misstates":
            failures.append((step.row, CODE, f'the thinking says "{step.sentence}"; a model says it misstates the graph\'s fact: {step.facts}{_wording(reply)}'))
    return failures


def _wording(reply) -> str:
    wording = (reply.parsed.wording or "").strip()
    return f" (its wording: '{wording}')" if wording else ""
