"""Writers turn one path into a question and a thinking path: by template or by model.

Both have the same interface, so generation does not know which it drives:
`prompt(kind)` names the versioned prompt (recorded on every item, part of the
item id) and `await write(kind, facts)` returns the text and its token usage.
Writers are chosen by name from `WRITERS` (`template`, `openai`).
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
from kgsynth.llm.verbalize import PathFacts, hop_sentences, question_text, thinking_text
from kgsynth.registry import Registry

TEMPLATE_PROMPT = "template.v1"
MODEL_PROMPTS = {"mcq": "thinking_mcq.v1", "open": "thinking_open.v1"}


class WrittenItem(BaseModel):
    """The structured reply a model must give for one item."""

    question: str = Field(min_length=10, max_length=2000)
    thinking: str = Field(min_length=20, max_length=8000)


@dataclass(frozen=True)
class Written:
    question: str
    thinking: str
    usage: CallUsage


class Writer(Protocol):
    name: str
    model: str | None
    accountant: Accountant | None  # None: the writer costs nothing
    concurrency: int  # calls worth having in flight
    batch_mode: bool  # answer calls through the Batch API first (`prefetch`)

    def prompt(self, kind: str) -> Prompt: ...

    def configure(self, *, concurrency: int | None = None, budget_usd: float | None = None) -> None: ...

    async def write(self, kind: str, facts: PathFacts) -> Written: ...

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

    def prompt(self, kind: str) -> Prompt:
        return self.template

    def configure(self, *, concurrency: int | None = None, budget_usd: float | None = None) -> None:
        return None  # nothing to bound and nothing to pay

    def compose(self, kind: str, facts: PathFacts) -> Written:
        return Written(question_text(facts, kind, self.template), thinking_text(facts, self.template), CallUsage())

    async def write(self, kind: str, facts: PathFacts) -> Written:
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

    def messages(self, kind: str, facts: PathFacts) -> list[dict[str, str]]:
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

    async def write(self, kind: str, facts: PathFacts) -> Written:
        reply = await self.client.complete(self.messages(kind, facts), WrittenItem, stage="generate")
        parsed: WrittenItem = reply.parsed  # type: ignore[assignment]
        return Written(parsed.question.strip(), parsed.thinking.strip(), reply.usage)

    async def prefetch(self, tasks: Sequence[tuple[str, PathFacts]], state_path: Path) -> int:
        """Batch API mode: answer all these calls through one batch into the cache first."""
        from kgsynth.llm.batch import run_batch

        requests = [(self.messages(kind, facts), WrittenItem) for kind, facts in tasks]
        return await run_batch(self.client, requests, stage="generate", state_path=state_path)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
