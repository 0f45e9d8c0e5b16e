"""The optional model steps of grounding, through the LLM layer (cache, retries, accounting).

- `extract`: the entities a question and its answer name, for records the
  dictionary and the embeddings left without a question entity or an answer;
- `disambiguate`: which candidate node a mention that did not link means;
- `select`: the most relevant of the paths found;
- `write`: the reasoning along the selected paths (verification then checks every
  step it states);
- `consistency`: verification's answer-consistency check (`kgsynth.ground.consistency`).

One accountant spans every step, so the budget and the usage summary cover the
whole run. Prompts are versioned files in `prompts/`. A failed call never stops
the run: the record keeps what the offline steps found, and the failure is counted.
A call the budget refuses fails the same way with reason `budget`, and every later
call is refused too (cache hits are still served), so the run winds down with the
calls in flight and `stopped == "budget"`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kgsynth.errors import BudgetExceeded
from kgsynth.llm.accounting import Accountant
from kgsynth.llm.client import CallFailed, LLMClient, Reply
from kgsynth.llm.config import LLMConfig
from kgsynth.llm.prompts import Prompt, load_prompt

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
EXTRACT, DISAMBIGUATE, SELECT, WRITE = (
    "ground_extract.v1",
    "ground_disambiguate.v1",
    "ground_select.v1",
    "ground_reasoning.v1",
)


class Extraction(BaseModel):
    question_entities: list[str] = Field(max_length=40)
    answer_entities: list[str] = Field(max_length=5)


class Pick(BaseModel):
    mention: int
    candidate: int  # 1-based; 0: none of the candidates


class Disambiguation(BaseModel):
    picks: list[Pick]


class Selection(BaseModel):
    paths: list[int]  # 1-based chain numbers, most relevant first


class Reasoning(BaseModel):
    reasoning: str = Field(min_length=20, max_length=8000)


def prompt(name: str) -> Prompt:
    return load_prompt(str(PROMPT_DIR / f"{name}.md"))


def messages(name: str, **values: object) -> list[dict[str, str]]:
    p = prompt(name)
    return [
        {"role": "system", "content": p.render("system", **values)},
        {"role": "user", "content": p.render("user", **values)},
    ]


def options_text(options: Sequence[tuple[str, str]]) -> str:
    return "Options:\n" + "\n".join(f"{label}. {text}" for label, text in options) if options else ""


class ModelSteps:
    """Runs batches of structured calls for the grounding steps, with one shared accountant."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.accountant = Accountant.for_config(config)
        self.failures: Counter[str] = Counter()  # "<step>:<reason>" → calls that failed

    @property
    def stopped(self) -> str | None:
        """"budget" once the budget refused a call, else None."""
        return "budget" if self.accountant.exhausted else None

    def run(self, requests: list[tuple[list[dict[str, Any]], type[BaseModel]]], name: str) -> list[Reply | CallFailed]:
        """Replies in order; a failed or refused call comes back as `CallFailed` and is counted under its reason."""
        if not requests:
            return []
        stage = f"ground_{name}"

        async def one(client: LLMClient, messages: list[dict[str, Any]], schema: type[BaseModel]) -> Reply | CallFailed:
            try:
                return await client.complete(messages, schema, stage=stage)
            except CallFailed as exc:
                return exc
            except BudgetExceeded as exc:
                return CallFailed("budget", str(exc))

        async def go() -> list[Reply | CallFailed]:
            async with LLMClient(self.config, accountant=self.accountant) as client:
                return list(await asyncio.gather(*(one(client, m, s) for m, s in requests)))

        from kgsynth.progress import step

        with step(f"model: {name} ({len(requests):,} calls)"):
            replies = asyncio.run(go())
        for reply in replies:
            if isinstance(reply, CallFailed):
                self.failures[f"{name}:{reply.reason}"] += 1
        return replies

    def summary(self) -> dict[str, Any]:
        return {**self.accountant.summary(), "failures": dict(sorted(self.failures.items()))}
