"""Empirical difficulty: the share of answering models that get a multiple-choice item right
from the question and its options alone (no thinking path).

Every call goes through the LLM layer (`kgsynth.llm`: any OpenAI-compatible
endpoint, the run's reply cache, retries, token and cost accounting); the prompt is
the versioned file `prompts/difficulty_answer.v1.md`. With the models' temperature
0 and a recorded seed, and every reply cached, a re-run gives the same answers and
sends nothing. A reply that is not an option counts as wrong (its reason is kept);
a call the endpoint could not answer after the retries fails the stage, so the next
run asks again (what was answered comes from the cache).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

from kgsynth.errors import LLMError
from kgsynth.llm.client import CallFailed, LLMClient, Reply
from kgsynth.llm.config import LLMConfig
from kgsynth.llm.prompts import Prompt, load_prompt

PROMPT = Path(__file__).resolve().parent / "prompts" / "difficulty_answer.v1.md"
STAGE = "difficulty"
ANSWERS_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "model": pl.String(),
    "answer": pl.String(),  # the option label the reply chose (null: none)
    "correct": pl.Boolean(),
    "error": pl.String(),  # why a reply chose nothing: not_json, schema_mismatch, max_tokens, not_an_option, …
}
_LABEL = re.compile(r"^\W*(?:option\s+)?([A-Za-z])\b", re.I)


class ChosenOption(BaseModel):
    """What an answering model must reply."""

    answer: str = Field(max_length=300, description="The letter of the one option you choose.")


def answer_prompt() -> Prompt:
    return load_prompt(str(PROMPT))


def messages_for(item: dict[str, Any], prompt: Prompt) -> list[dict[str, str]]:
    """Question and options only: never the thinking path, never the answer."""
    options = "\n".join(f"{o['label']}. {o['text']}" for o in item["options"])
    return [
        {"role": "system", "content": prompt.render("system")},
        {"role": "user", "content": prompt.render("user", question=item["question"], options=options)},
    ]


def chosen_label(reply: str, options: Sequence[dict[str, str]]) -> str | None:
    """The option a reply picks: a leading letter that is an option's ("B", "b)", "Option B"), or an
    option's text in full; None otherwise."""
    from kgsynth.verify.text import normalize

    labels = {o["label"].upper() for o in options}
    text = (reply or "").strip()
    match = _LABEL.match(text)
    if match and match[1].upper() in labels:
        return match[1].upper()
    said = normalize(text)
    return next((o["label"] for o in options if said and normalize(o["text"]) == said), None)


@dataclass
class Answered:
    answers: pl.DataFrame  # ANSWERS_SCHEMA: one row per (item, model)
    usage: dict[str, dict] = field(default_factory=dict)  # model → the LLM layer's usage summary


def ask_models(items: pl.DataFrame, models: Sequence[LLMConfig]) -> Answered:
    """Every model answers every item that has options; see the module docstring."""
    prompt = answer_prompt()
    chosen = [row for row in items.select("id", "question", "options", "answer_label").iter_rows(named=True) if row["options"]]
    requests = [(messages_for(row, prompt), ChosenOption) for row in chosen]
    rows: list[dict[str, Any]] = []
    usage: dict[str, dict] = {}
    failed: Counter[str] = Counter()
    for config in models:
        replies, usage[config.model] = asyncio.run(_answers(config, requests)) if requests else ([], {})
        for row, reply in zip(chosen, replies, strict=True):
            if isinstance(reply, CallFailed):
                if not reply.final:
                    failed[f"{config.model}: {reply.reason}"] += 1
                    continue
                label, error = None, reply.reason
            else:
                label = chosen_label(reply.parsed.answer, row["options"])  # type: ignore[attr-defined]
                error = None if label else "not_an_option"
            rows.append({"id": row["id"], "model": config.model, "answer": label,
                         "correct": label is not None and label == row["answer_label"], "error": error})  # fmt: skip
    if failed:
        shown = ", ".join(f"{what} {n}" for what, n in sorted(failed.items()))
        raise LLMError(
            f"difficulty: {sum(failed.values())} answering call(s) failed after the client's retries ({shown}); "
            "the answers received are cached, so running the stage again asks only for these"
        )
    return Answered(pl.DataFrame(rows, schema=ANSWERS_SCHEMA), usage)


async def _answers(config: LLMConfig, requests: list) -> tuple[list[Reply | CallFailed], dict]:
    """One model's replies in request order (failures in place), with a bar, and its usage summary."""
    from kgsynth.progress import new_progress

    async with LLMClient(config) as client:
        with new_progress() as progress:
            bar = progress.add_task(f"difficulty: {config.model} answers", total=len(requests))

            async def one(messages, schema) -> Reply | CallFailed:
                try:
                    reply: Reply | CallFailed = await client.complete(messages, schema, stage=STAGE)
                except CallFailed as exc:
                    reply = exc
                progress.advance(bar)
                return reply

            replies = list(await asyncio.gather(*(one(m, s) for m, s in requests)))
        return replies, client.accountant.summary()
