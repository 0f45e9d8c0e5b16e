"""Path → item: thinking paths, multiple-choice and open-ended questions.

`generate_items(paths, snapshot, writer=WRITERS.get("template")(None), out=…)`
writes `items.parquet` (resumable, in batches), `failures.parquet` and
`generate.json` beside it.
"""

from kgsynth.generate.run import FAILURES_SCHEMA, KINDS, GenerateResult, agenerate_items, generate_items
from kgsynth.llm.writers import WRITERS

__all__ = ["FAILURES_SCHEMA", "KINDS", "WRITERS", "GenerateResult", "agenerate_items", "generate_items"]
