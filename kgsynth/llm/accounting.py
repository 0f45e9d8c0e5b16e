"""Token and cost accounting per stage, and the budget ceiling.

Before each paid call the client reserves the call's estimated cost; the reply
replaces the estimate with the real cost. A call whose estimate would take
spent + reserved past the budget is refused with `BudgetExceeded`, and so is every
call after it, so a run winds down with the calls in flight and stops cleanly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from kgsynth.errors import BudgetExceeded, ConfigError
from kgsynth.llm.config import LLMConfig, Price


@dataclass
class StageUsage:
    calls: int = 0  # model replies paid for in this run
    cache_hits: int = 0  # replies served from the cache (not paid again)
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    failures: int = 0  # calls that ended without a valid reply
    junk_replies: int = 0  # replies that did not parse or were cut at max_tokens (each asked again or recorded)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0  # what the cache hits cost when they were first paid

    def add(self, other: StageUsage) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


class Accountant:
    def __init__(
        self,
        model: str,
        price: Price | None,
        *,
        budget_usd: float | None = None,
        max_tokens: int = 1024,
        batch_discount: float = 0.5,
    ) -> None:
        if budget_usd is not None and price is None:
            raise ConfigError(
                f"a budget needs a price for model '{model}': add it to the price table "
                f"(--price {model}=IN,OUT in USD per 1M tokens; 0,0 for a local server)"
            )
        self.model = model
        self.price = price
        self.budget_usd = budget_usd
        self.max_tokens = max_tokens
        self.batch_discount = batch_discount
        self.stages: dict[str, StageUsage] = {}
        self.reserved = 0.0
        self.exhausted = False
        self.modes: Counter[str] = Counter()  # paid replies by the structured-output mode that produced them

    @classmethod
    def for_config(cls, config: LLMConfig) -> Accountant:
        return cls(
            config.model,
            config.price(),
            budget_usd=config.budget_usd,
            max_tokens=config.max_tokens,
            batch_discount=config.batch_discount,
        )

    def set_budget(self, budget_usd: float) -> None:
        if self.price is None:
            raise ConfigError(
                f"a budget needs a price for model '{self.model}': add it to the price table "
                f"(--price {self.model}=IN,OUT in USD per 1M tokens; 0,0 for a local server)"
            )
        self.budget_usd = budget_usd

    def stage(self, name: str) -> StageUsage:
        usage = self.stages.get(name)
        if usage is None:
            usage = self.stages[name] = StageUsage()
        return usage

    def cost(self, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float:
        if self.price is None:
            return 0.0
        cost = (prompt_tokens * self.price.input + completion_tokens * self.price.output) / 1e6
        return cost * self.batch_discount if batch else cost

    @property
    def spent_usd(self) -> float:
        return sum(s.cost_usd for s in self.stages.values())

    def _expected_completion(self) -> int:
        calls = sum(s.calls for s in self.stages.values())
        if not calls:
            return self.max_tokens
        mean = sum(s.completion_tokens for s in self.stages.values()) / calls
        return min(self.max_tokens, int(2 * mean) + 1)

    def reserve(self, prompt_chars: int, *, batch: bool = False) -> float:
        """Hold the estimated cost of one call; raise `BudgetExceeded` when it would not fit."""
        if self.budget_usd is None:
            return 0.0
        estimate = self.cost(prompt_chars // 3 + 1, self._expected_completion(), batch=batch)
        if self.exhausted or self.spent_usd + self.reserved + estimate > self.budget_usd:
            self.exhausted = True
            raise BudgetExceeded(
                f"budget of ${self.budget_usd:.4f} reached: spent ${self.spent_usd:.4f}, "
                f"${self.reserved:.4f} in flight, next call ~${estimate:.5f}"
            )
        self.reserved += estimate
        return estimate

    def release(self, estimate: float) -> None:
        self.reserved = max(0.0, self.reserved - estimate)

    def total(self) -> StageUsage:
        total = StageUsage()
        for usage in self.stages.values():
            total.add(usage)
        return total

    def summary(self) -> dict:
        """Plain JSON: per stage and in total, plus the price and budget used."""
        return {
            "model": self.model,
            "price_per_1m": self.price.model_dump() if self.price else None,
            "budget_usd": self.budget_usd,
            "budget_reached": self.exhausted,
            "modes": dict(sorted(self.modes.items())),
            "stages": {name: asdict(usage) for name, usage in sorted(self.stages.items())},
            "total": asdict(self.total()),
        }
