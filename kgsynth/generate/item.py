"""The item record: what generation writes, verification judges and export publishes.

An item carries its evidence: the path's triples (ids, names, types, relations,
true directions), the snapshot hash, the sampler and seed, the prompt name and hash
and the model, so a dataset row can be traced to the graph without re-running.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ItemKind = Literal["mcq", "open", "dag"]


class Option(BaseModel):
    label: str  # "A", "B", …
    text: str  # node name as shown
    node_id: str


class PlanStep(BaseModel):
    """One step of a `dag` item's plan: a fact resting on one triple, or the join.

    A fact step reads `subject <relation> object`, walking the stored edge when
    `forward` is true and against it otherwise; `depends_on` lists the steps it
    builds on (the one that established its subject; none for a leaf, which starts
    from an entity the question names). The join step has no triple: it depends on
    the last step of every branch and concludes at `object`, the answer.
    """

    step: int  # 1, 2, …: the id other steps' depends_on refer to
    kind: Literal["fact", "join"]
    subject: str | None = None  # node id (fact steps)
    subject_name: str | None = None
    subject_type: str | None = None
    relation: str | None = None
    object: str  # node id: what the step establishes (the answer, for the join)
    object_name: str
    object_type: str
    forward: bool | None = None
    depends_on: list[int] = Field(default_factory=list)
    text: str  # the step's sentence in the execution


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False


class Provenance(BaseModel):
    snapshot_name: str
    snapshot_hash: str  # the full (unpruned) graph's hash when known
    sampled_snapshot_hash: str  # the (possibly pruned) snapshot the path was sampled from
    pruning_hash: str | None = None  # hash of the pruning parameters, if pruned
    strategy: str
    seed: int
    writer: str  # "template" or "openai"
    model: str | None = None
    prompt_name: str
    prompt_hash: str
    usage: Usage = Field(default_factory=Usage)


class Item(BaseModel):
    id: str  # stable: hash of path, kind and prompt
    kind: ItemKind
    question: str
    options: list[Option] = Field(default_factory=list)  # empty for open items
    answer: str  # the answer's name
    answer_id: str  # node id of the answer (the path's last node)
    answer_label: str | None = None  # option label of the answer (mcq)
    answer_type: str  # node type the question asks for
    thinking: str  # the thinking path
    path_id: str
    group_id: str | None = None
    anchor_id: str  # the path's first node
    nodes: list[str]  # node ids, anchor first, answer last
    node_names: list[str]
    node_types: list[str]
    relations: list[str]  # one per hop
    forward: list[bool]  # one per hop: True follows the stored edge direction
    hops: int
    bridges: list[str] = Field(default_factory=list)  # ids of intermediate nodes masked in the question
    negatives: list[str] = Field(default_factory=list)  # distractor node ids (graph hard negatives)
    distractor_source: str = "graph_hard_negative"
    provenance: Provenance
    plan: list[PlanStep] = Field(default_factory=list)  # dag items: the plan the thinking serialises


class Verdict(BaseModel):
    """The result of one check on one item."""

    check: str  # name of the check in the checks registry
    passed: bool
    code: str | None = None  # reason code when failed, e.g. "EDGE_MISSING"
    detail: str = ""  # human-readable evidence


# --- the items table -----------------------------------------------------------------
# Items cross room doors as parquet; these two functions are the only converters.

import polars as pl  # noqa: E402

_OPTION = pl.Struct({"label": pl.String, "text": pl.String, "node_id": pl.String})
_USAGE = pl.Struct(
    {"prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "cost_usd": pl.Float64, "cached": pl.Boolean}
)
_PROVENANCE = pl.Struct(
    {
        "snapshot_name": pl.String,
        "snapshot_hash": pl.String,
        "sampled_snapshot_hash": pl.String,
        "pruning_hash": pl.String,
        "strategy": pl.String,
        "seed": pl.Int64,
        "writer": pl.String,
        "model": pl.String,
        "prompt_name": pl.String,
        "prompt_hash": pl.String,
        "usage": _USAGE,
    }
)
PLAN_STEP = pl.Struct(
    {
        "step": pl.Int32,
        "kind": pl.String,
        "subject": pl.String,
        "subject_name": pl.String,
        "subject_type": pl.String,
        "relation": pl.String,
        "object": pl.String,
        "object_name": pl.String,
        "object_type": pl.String,
        "forward": pl.Boolean,
        "depends_on": pl.List(pl.Int32),
        "text": pl.String,
    }
)
VERDICT_STRUCT = pl.Struct({"check": pl.String, "passed": pl.Boolean, "code": pl.String, "detail": pl.String})

ITEMS_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "kind": pl.String(),
    "question": pl.String(),
    "options": pl.List(_OPTION),
    "answer": pl.String(),
    "answer_id": pl.String(),
    "answer_label": pl.String(),
    "answer_type": pl.String(),
    "thinking": pl.String(),
    "path_id": pl.String(),
    "group_id": pl.String(),
    "anchor_id": pl.String(),
    "nodes": pl.List(pl.String),
    "node_names": pl.List(pl.String),
    "node_types": pl.List(pl.String),
    "relations": pl.List(pl.String),
    "forward": pl.List(pl.Boolean),
    "hops": pl.Int32(),
    "bridges": pl.List(pl.String),
    "negatives": pl.List(pl.String),
    "distractor_source": pl.String(),
    "provenance": _PROVENANCE,
    "plan": pl.List(PLAN_STEP),
}
# Columns later releases added: tables written before them read as if they were empty.
OPTIONAL_COLUMNS: dict[str, pl.Expr] = {"plan": pl.lit([], dtype=pl.List(PLAN_STEP))}


def with_optional_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every optional items column it lacks added, empty."""
    missing = [expr.alias(name) for name, expr in OPTIONAL_COLUMNS.items() if name not in frame.columns]
    return frame.with_columns(missing) if missing else frame


def items_to_frame(items: list[Item]) -> pl.DataFrame:
    return pl.DataFrame([item.model_dump() for item in items], schema=ITEMS_SCHEMA)


def frame_to_items(frame: pl.DataFrame) -> list[Item]:
    return [Item.model_validate(row) for row in frame.select(list(ITEMS_SCHEMA)).iter_rows(named=True)]
