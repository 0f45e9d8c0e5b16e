"""Writers turn one path into a question and a thinking path: by template or by model.

Both have the same interface, so generation does not know which it drives:
`prompt(kind)` names the versioned prompt (recorded on every item, part of the
item id) and `await write(kind, facts)` returns the text and its token usage.
Writers are chosen by name from `WRITERS` (`template`, `openai`). For the `dag`
kind the facts are a `PlanFacts` (one path per branch) and the written item
carries its plan: steps citing the facts they rest on, with their dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from kgsynth.llm.accounting import Accountant
from kgsynth.llm.client import CallUsage, LLMClient
from kgsynth.llm.config import LLMConfig
from kgsynth.llm.prompts import Prompt, load_prompt
from kgsynth.llm.verbalize import (
    DraftStep,
    PathFacts,
    PlanFacts,
    hop_sentences,
    plan_drafts,
    plan_question,
    plan_text,
    question_text,
    thinking_text,
)
from kgsynth.registry import Registry

TEMPLATE_PROMPT = "template.v1"
PLAN_TEMPLATE_PROMPT = "plan_template.v1"
MODEL_PROMPTS = {"mcq": "thinking_mcq.v1", "open": "thinking_open.v1", "dag": "thinking_dag.v1"}


class WrittenItem(BaseModel):
    """The structured reply a model must give for one item."""

    question: str = Field(min_length=10, max_length=2000)
    thinking: str = Field(min_length=20, max_length=8000)


class PlanStepReply(BaseModel):
    """One step of a model's plan; steps are numbered 1, 2, … in the order given."""

    fact: int | None = Field(description="The number of the fact this step states; null for the final join step.")
    depends_on: list[int] = Field(description="Numbers of the earlier steps this step builds on.")
    text: str = Field(min_length=5, max_length=1000, description="The step's sentence.")


class WrittenPlan(BaseModel):
    """The structured reply a model must give for one `dag` item."""

    question: str = Field(min_length=10, max_length=2000)
    steps: list[PlanStepReply] = Field(min_length=2, max_length=40)


@dataclass(frozen=True)
class Written:
    question: str
    thinking: str
    usage: CallUsage
    plan: tuple[DraftStep, ...] = ()  # dag items: the steps the thinking serialises


class Writer(Protocol):
    name: str
    model: str | None
    accountant: Accountant | None  # None: the writer costs nothing
    concurrency: int  # calls worth having in flight
    batch_mode: bool  # answer calls through the Batch API first (`prefetch`)

    def prompt(self, kind: str) -> Prompt: ...

    def configure(self, *, concurrency: int | None = None, budget_usd: float | None = None) -> None: ...

    async def write(self, kind: str, facts: PathFacts | PlanFacts) -> Written: ...

    async def aclose(self) -> None: ...


WRITERS: Registry[Callable[[LLMConfig | None], Writer]] = Registry("writer")


@WRITERS.register("template")
class TemplateWriter:
    """No model: verbalizes the path from the relation wording. Offline, free, deterministic."""

    name = "template"
    model = None
    accountant = None
    concurrency = 1
    batch_mode = False

    def __init__(self, config: LLMConfig | None = None) -> None:
        self.template = load_prompt(TEMPLATE_PROMPT)
        self.plan_template = load_prompt(PLAN_TEMPLATE_PROMPT)

    def prompt(self, kind: str) -> Prompt:
        return self.plan_template if kind == "dag" else self.template

    def configure(self, *, concurrency: int | None = None, budget_usd: float | None = None) -> None:
        return None  # nothing to bound and nothing to pay

    def compose(self, kind: str, facts: PathFacts | PlanFacts) -> Written:
        if isinstance(facts, PlanFacts):
            drafts = plan_drafts(facts, self.plan_template)
            return Written(plan_question(facts, self.plan_template), plan_text(facts, drafts, self.plan_template),
                           CallUsage(), tuple(drafts))  # fmt: skip
        return Written(question_text(facts, kind, self.template), thinking_text(facts, self.template), CallUsage())

    async def write(self, kind: str, facts: PathFacts | PlanFacts) -> Written:
        return self.compose(kind, facts)

    async def aclose(self) -> None:
        return None


@WRITERS.register("openai")
class OpenAIWriter:
    """A model behind any OpenAI-compatible endpoint rewrites the template drafts."""

    name = "openai"

    def __init__(self, config: LLMConfig | None = None) -> None:
        self.config = config or LLMConfig()
        self.model = self.config.model
        self.accountant = Accountant.for_config(self.config)
        self.drafts = TemplateWriter()
        self.prompts = {kind: load_prompt(name) for kind, name in MODEL_PROMPTS.items()}
        self._client: LLMClient | None = None

    @property
    def client(self) -> LLMClient:
        """Made on first use inside the running event loop; `aclose` lets a later loop make a new one."""
        if self._client is None:
            self._client = LLMClient(self.config, accountant=self.accountant)
        return self._client

    @property
    def concurrency(self) -> int:
        return self.config.concurrency

    @property
    def batch_mode(self) -> bool:
        return self.config.batch

    def configure(self, *, concurrency: int | None = None, budget_usd: float | None = None) -> None:
        if concurrency is not None and self._client is None:
            self.config = self.config.model_copy(update={"concurrency": concurrency})
        if budget_usd is not None:
            self.accountant.set_budget(budget_usd)

    def prompt(self, kind: str) -> Prompt:
        return self.prompts[kind]

    def schema(self, kind: str) -> type[BaseModel]:
        return WrittenPlan if kind == "dag" else WrittenItem

    def messages(self, kind: str, facts: PathFacts | PlanFacts) -> list[dict[str, str]]:
        if isinstance(facts, PlanFacts):
            return self._plan_messages(facts)
        prompt = self.prompts[kind]
        draft = self.drafts.compose(kind, facts)
        facts_text = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(hop_sentences(facts, self.drafts.template)))
        values = {
            "anchor": facts.anchor,
            "answer": facts.answer,
            "answer_type": facts.answer_type,
            "facts": facts_text,
            "question": draft.question,
            "thinking": draft.thinking,
        }
        return [
            {"role": "system", "content": prompt.render("system", **values)},
            {"role": "user", "content": prompt.render("user", **values)},
        ]

    def _plan_messages(self, facts: PlanFacts) -> list[dict[str, str]]:
        import json

        prompt = self.prompts["dag"]
        template = self.drafts.plan_template
        draft = self.drafts.compose("dag", facts)
        numbered, number = [], 0
        for b, branch in enumerate(facts.branches, start=1):
            numbered.append(f"Branch {b}, from {branch.anchor}:")
            for sentence in hop_sentences(branch, template):
                number += 1
                numbered.append(f"{number}. {sentence}")
        steps = [{"fact": d.fact, "depends_on": d.depends_on, "text": d.text} for d in draft.plan]
        values = {
            "anchors": "; ".join(f'"{a}"' for a in facts.anchors),
            "answer": facts.answer,
            "answer_type": facts.answer_type,
            "facts": "\n".join(numbered),
            "question": draft.question,
            "plan": json.dumps(steps, ensure_ascii=False),
        }
        return [
            {"role": "system", "content": prompt.render("system", **values)},
            {"role": "user", "content": prompt.render("user", **values)},
        ]

    async def write(self, kind: str, facts: PathFacts | PlanFacts) -> Written:
        reply = await self.client.complete(self.messages(kind, facts), self.schema(kind), stage="generate")
        if isinstance(facts, PlanFacts):
            plan: WrittenPlan = reply.parsed  # type: ignore[assignment]
            drafts = [DraftStep(s.fact, list(s.depends_on), s.text.strip()) for s in plan.steps]
            thinking = plan_text(facts, drafts, self.drafts.plan_template)
            return Written(plan.question.strip(), thinking, reply.usage, tuple(drafts))
        parsed: WrittenItem = reply.parsed  # type: ignore[assignment]
        return Written(parsed.question.strip(), parsed.thinking.strip(), reply.usage)

    async def prefetch(self, tasks: Sequence[tuple[str, PathFacts | PlanFacts]], state_path: Path) -> int:
        """Batch API mode: answer all these calls through one batch into the cache first."""
        from kgsynth.llm.batch import run_batch

        requests = [(self.messages(kind, facts), self.schema(kind)) for kind, facts in tasks]
        return await run_batch(self.client, requests, stage="generate", state_path=state_path)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
