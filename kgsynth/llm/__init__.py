"""The one place that talks to a model, and the offline template writer beside it.

`LLMClient(config).complete(messages, Schema, stage=…)` is the call every room
uses (structured output, sqlite cache, retries, token and cost accounting, budget);
`complete_all` is its synchronous front door. Writers (`WRITERS`: `template`,
`openai`) turn a path into a question and a thinking path.
"""

from kgsynth.llm.accounting import Accountant, StageUsage
from kgsynth.llm.client import CallFailed, CallUsage, LLMClient, Reply, complete_all
from kgsynth.llm.config import DEFAULT_PRICES, LLMConfig, Price, parse_price
from kgsynth.llm.prompts import Prompt, load_prompt
from kgsynth.llm.verbalize import PathFacts
from kgsynth.llm.writers import WRITERS, OpenAIWriter, TemplateWriter, Writer, Written, WrittenItem

__all__ = [
    "DEFAULT_PRICES",
    "WRITERS",
    "Accountant",
    "CallFailed",
    "CallUsage",
    "LLMClient",
    "LLMConfig",
    "OpenAIWriter",
    "PathFacts",
    "Price",
    "Prompt",
    "Reply",
    "StageUsage",
    "TemplateWriter",
    "Writer",
    "Written",
    "WrittenItem",
    "complete_all",
    "load_prompt",
    "parse_price",
]
