"""How to reach a model and what it may cost: one pydantic model for CLI, flows and rooms.

The API key is never part of the config: it is read from the environment variable
named by `api_key_env` (default `OPENAI_API_KEY`) when the client starts, so it
cannot end up in a config dump, a log or an output file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from kgsynth.errors import ConfigError

StructuredMode = Literal["auto", "json_schema", "json_object", "text"]


class Price(BaseModel):
    """USD per one million tokens."""

    input: float = Field(ge=0, description="USD per million prompt tokens.")
    output: float = Field(ge=0, description="USD per million completion tokens.")


# List prices (USD / 1M tokens, standard tier) when this table was written; override
# with `prices` in the config or `--price MODEL=IN,OUT` when they change.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4o": Price(input=2.50, output=10.00),
    "gpt-4.1-nano": Price(input=0.10, output=0.40),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-5-nano": Price(input=0.05, output=0.40),
    "gpt-5-mini": Price(input=0.25, output=2.00),
    "gpt-5": Price(input=1.25, output=10.00),
}


class LLMConfig(BaseModel):
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else the OpenAI API
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(default=32, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    reply_retries: int = Field(default=1, ge=0)  # asks again (another seed) after a reply that does not parse
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    http: Literal["auto", "aiohttp", "httpx"] = "auto"  # the SDK's transport; auto: aiohttp when installed
    structured: StructuredMode = "auto"  # auto: json_schema, falling back to json_object, then text
    temperature: float | None = 0.2
    max_tokens: int = Field(default=1024, ge=1)
    seed: int | None = None  # sent to the server when set (OpenAI, vLLM honour it)
    cache_path: Path | None = None  # sqlite reply cache; None: no cache
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    budget_usd: float | None = Field(default=None, ge=0)
    batch: bool = False  # use the Batch API (half price, hours of latency) where a stage allows it
    batch_discount: float = Field(default=0.5, ge=0, le=1)
    batch_poll_s: float = Field(default=30.0, gt=0)
    batch_completion_window: str = "24h"

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def api_key(self) -> str:
        """The key from the environment; local servers get a placeholder they ignore."""
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.resolved_base_url():
            return "no-key"  # llama.cpp, vLLM, Ollama and LM Studio accept any key by default
        raise ConfigError(
            f"no API key: set ${self.api_key_env}, or point --base-url at a local "
            "OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio)"
        )

    def price(self) -> Price | None:
        """The model's price: an exact entry, else the longest entry the name starts with."""
        if self.model in self.prices:
            return self.prices[self.model]
        prefixes = [name for name in self.prices if self.model.startswith(name)]
        return self.prices[max(prefixes, key=len)] if prefixes else None


def parse_price(text: str) -> tuple[str, Price]:
    """`MODEL=IN,OUT` (USD per 1M input and output tokens) from the command line."""
    model, sep, rest = text.partition("=")
    parts = rest.split(",")
    try:
        if not sep or not model or len(parts) != 2:
            raise ValueError
        return model, Price(input=float(parts[0]), output=float(parts[1]))
    except ValueError:
        raise ConfigError(f"--price expects MODEL=IN,OUT in USD per 1M tokens, e.g. gpt-4o-mini=0.15,0.6; got {text!r}") from None
