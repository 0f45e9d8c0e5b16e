"""Answer consistency: a model answers the question from the thinking path alone.

This is the check earlier pipelines relied on; here it runs after the graph
checks, so only items that passed them are paid for. Calls go through the LLM
layer (`kgsynth.llm`: any OpenAI-compatible endpoint, reply cache, retries, cost
accounting); the prompt is the versioned file `prompts/answer_check.v1.md`. An item
whose call failed after the retries is rejected as `LLM_UNAVAILABLE`, so a re-run
(answered from the cache for everything else) tries it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

from kgsynth.verify.checks import Outcome, register
from kgsynth.verify.index import GraphIndex
from kgsynth.verify.text import normalize

PROMPT = Path(__file__).resolve().parent / "prompts" / "answer_check.v1.md"


class ReadAnswer(BaseModel):
    """What the model must reply."""

    answer: str = Field(description="The option label (multiple choice) or the entity name the reasoning leads to.")


def messages_for(item: dict[str, Any]) -> list[dict[str, str]]:
    """The prompt for one item: question, options and thinking, never the gold answer."""
    from kgsynth.llm.prompts import load_prompt

    prompt = load_prompt(str(PROMPT))
    options = "\n".join(f"{o['label']}. {o['text']}" for o in item.get("options") or [])
    section = "user_mcq" if item.get("options") else "user_open"  # mcq and dag items have options
    return [
        {"role": "system", "content": prompt.render("system")},
        {"role": "user", "content": prompt.render(section, question=item["question"], options=options, thinking=item["thinking"])},
    ]


def consistent(item: dict[str, Any], reply: str, forms: tuple[str, ...]) -> bool:
    """Does the model's reply pick the gold answer?"""
    said = normalize(reply)
    if not said:
        return False
    if item.get("options"):
        label = normalize(item.get("answer_label") or "")
        gold = next((normalize(o["text"]) for o in item.get("options") or [] if o["label"] == item.get("answer_label")), "")
        return said in {label, gold, f"{label} {gold}", f"option {label}", f"option {label} {gold}"}
    padded = f" {said} "
    return any(said == form or f" {form} " in padded for form in forms)


@register(
    "llm_consistency",
    stage="llm",
    codes=("ANSWER_INCONSISTENT", "LLM_UNAVAILABLE"),
    description="a model answering from the thinking path alone reaches the gold answer",
)
def run_llm_check(frame: pl.DataFrame, llm, index: GraphIndex) -> Outcome:
    """`llm`: an `LLMConfig` (kgsynth.llm.config) naming the model and endpoint."""
    from kgsynth.llm.client import complete_all

    items = frame.to_dicts()
    if not items:
        return Outcome.passing(0)
    replies, usage = complete_all(llm, [(messages_for(item), ReadAnswer) for item in items], stage="verify")
    failures = [
        (row, *problem)
        for row, (item, reply) in enumerate(zip(items, replies, strict=True))
        if (problem := judge_reply(item, reply, index)) is not None
    ]
    outcome = Outcome.of(len(items), failures)
    outcome.usage = usage
    return outcome


def judge_reply(item: dict[str, Any], reply, index: GraphIndex) -> tuple[str, str] | None:
    """(code, detail) when the model's reply (a `Reply` or a `CallFailed`) does not reach the gold answer."""
    from kgsynth.llm.client import CallFailed

    if isinstance(reply, CallFailed):
        said = "the run's budget was reached before this call" if reply.reason == "budget" else f"the model call failed: {reply.reason}"
        return "LLM_UNAVAILABLE", said
    said = reply.parsed.answer
    if consistent(item, said, answer_forms(index, item)):
        return None
    gold = item.get("answer_label") or item["answer"]
    return "ANSWER_INCONSISTENT", f"from the thinking alone the model answered '{said}', the gold answer is '{gold}'"


def answer_forms(index: GraphIndex, item: dict[str, Any]) -> tuple[str, ...]:
    """The answer's name and the graph's synonyms for it, normalized: what a reply may say."""
    forms = [normalize(item["answer"])]
    if index.engine.has_index(item["answer_id"]):
        forms += index.linker.forms.get(index.engine.index_of(item["answer_id"]), ())
    return tuple(f for f in forms if f)
