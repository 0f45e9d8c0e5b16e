"""Path → item: thinking paths, multiple-choice and open-ended questions.

`generate_items(paths, snapshot, writer=WRITERS.get("template")(None), out=…)`
writes `items.parquet` (resumable, in batches), `failures.parquet` and
`generate.json` beside it.
"""

from kgsynth.generate.kinds import ITEM_KINDS
from kgsynth.generate.run import DEFAULT_KINDS, FAILURES_SCHEMA, GenerateResult, agenerate_items, generate_items
from kgsynth.llm.writers import WRITERS

__all__ = [
    "DEFAULT_KINDS",
    "FAILURES_SCHEMA",
    "ITEM_KINDS",
    "WRITERS",
    "GenerateResult",
    "agenerate_items",
    "generate_items",
]
