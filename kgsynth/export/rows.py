"""Dataset rows and their explicit `Features`, one pair per configuration.

- `default`: everything an item knows, with the path as typed nodes and edges
  and the provenance needed to trace a row back to the graph;
- `sft`: chat `messages` (user question, assistant answer with the thinking path
  inside `<think>…</think>`), the conversational format TRL's SFTTrainer reads;
- `mcq`: question, options and the answer letter, for evaluation harnesses;
- `medreason`: MedReason's six text columns, for a run written by `kgsynth ground`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from datasets import Features, List, Value

from kgsynth.ground.medreason import MEDREASON_COLUMNS

_STR = Value("string")

NODE = {"id": _STR, "name": _STR, "type": _STR}
# One hop in path order: source → target. `direction` says whether the hop follows
# the stored edge ("forward": the triple is source-relation-target) or walks it
# backwards ("inverse": the triple is target-relation-source).
EDGE = {"source": _STR, "relation": _STR, "target": _STR, "direction": _STR}

DEFAULT_FEATURES = Features(
    {
        "id": _STR,
        "kind": _STR,
        "question": _STR,
        "options": List({"label": _STR, "text": _STR, "node_id": _STR}),
        "answer": _STR,
        "answer_id": _STR,
        "answer_label": _STR,
        "answer_type": _STR,
        "thinking": _STR,
        "hops": Value("int32"),
        "anchor": NODE,
        "path_nodes": List(NODE),
        "path_edges": List(EDGE),
        "path_id": _STR,
        "path_signature": _STR,
        "group_id": _STR,
        "masked_bridges": List(NODE),
        "distractors": List({"id": _STR, "name": _STR, "source": _STR}),
        "verdicts": List({"check": _STR, "passed": Value("bool"), "code": _STR, "detail": _STR}),
        "provenance": {
            "snapshot_name": _STR,
            "snapshot_hash": _STR,
            "sampled_snapshot_hash": _STR,
            "pruning_hash": _STR,
            "strategy": _STR,
            "seed": Value("int64"),
            "writer": _STR,
            "model": _STR,
            "prompt_name": _STR,
            "prompt_hash": _STR,
            "usage": {
                "prompt_tokens": Value("int64"),
                "completion_tokens": Value("int64"),
                "cost_usd": Value("float64"),
                "cached": Value("bool"),
            },
        },
    }
)

SFT_FEATURES = Features(
    {
        "id": _STR,
        "kind": _STR,
        "hops": Value("int32"),
        "messages": List({"role": _STR, "content": _STR}),
    }
)

MCQ_FEATURES = Features(
    {
        "id": _STR,
        "question": _STR,
        "options": List({"label": _STR, "text": _STR}),
        "answer": _STR,  # the option letter
        "answer_text": _STR,
        "hops": Value("int32"),
    }
)

MEDREASON_FEATURES = Features({column: _STR for column in MEDREASON_COLUMNS})  # in MedReason's order

FEATURES = {"default": DEFAULT_FEATURES, "sft": SFT_FEATURES, "mcq": MCQ_FEATURES, "medreason": MEDREASON_FEATURES}


def stored_triples(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The graph triples a path rests on, each as stored (src, relation, dst)."""
    nodes, triples = item["nodes"], []
    for i, (relation, forward) in enumerate(zip(item["relations"], item["forward"], strict=True)):
        a, b = nodes[i], nodes[i + 1]
        triples.append((a, relation, b) if forward else (b, relation, a))
    return triples


def path_signature(item: dict[str, Any]) -> str:
    """Identifies the set of triples a path rests on, whichever way it is walked."""
    text = "\n".join("\t".join(t) for t in sorted(set(stored_triples(item))))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_row(item: dict[str, Any]) -> dict[str, Any]:
    """A row of the default configuration from an accepted-items record (a dict)."""
    path_nodes = [
        {"id": i, "name": n, "type": t}
        for i, n, t in zip(item["nodes"], item["node_names"], item["node_types"], strict=True)
    ]
    by_id = {node["id"]: node for node in path_nodes}
    option_names = {o["node_id"]: o["text"] for o in item["options"]}
    edges = [
        {
            "source": item["nodes"][i],
            "relation": relation,
            "target": item["nodes"][i + 1],
            "direction": "forward" if forward else "inverse",
        }
        for i, (relation, forward) in enumerate(zip(item["relations"], item["forward"], strict=True))
    ]
    return {
        "id": item["id"],
        "kind": item["kind"],
        "question": item["question"],
        "options": item["options"],
        "answer": item["answer"],
        "answer_id": item["answer_id"],
        "answer_label": item["answer_label"],
        "answer_type": item["answer_type"],
        "thinking": item["thinking"],
        "hops": item["hops"],
        "anchor": by_id.get(item["anchor_id"], {"id": item["anchor_id"], "name": None, "type": None}),
        "path_nodes": path_nodes,
        "path_edges": edges,
        "path_id": item["path_id"],
        "path_signature": path_signature(item),
        "group_id": item["group_id"],
        "masked_bridges": [by_id.get(b, {"id": b, "name": None, "type": None}) for b in item["bridges"]],
        "distractors": [
            {"id": n, "name": option_names.get(n), "source": item["distractor_source"]} for n in item["negatives"]
        ],
        "verdicts": item["verdicts"],
        "provenance": item["provenance"],
    }


def sft_row(row: dict[str, Any]) -> dict[str, Any]:
    """Chat messages from a default row: the thinking path goes inside <think>…</think>."""
    user = row["question"]
    answer = row["answer"]
    if row["kind"] == "mcq" and row["options"]:
        user += "\n\n" + "\n".join(f"{o['label']}. {o['text']}" for o in row["options"])
        answer = f"{row['answer_label']}. {row['answer']}"
    return {
        "id": row["id"],
        "kind": row["kind"],
        "hops": row["hops"],
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": f"<think>\n{row['thinking']}\n</think>\n\n{answer}"},
        ],
    }


def mcq_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "question": row["question"],
        "options": [{"label": o["label"], "text": o["text"]} for o in row["options"]],
        "answer": row["answer_label"],
        "answer_text": row["answer"],
        "hops": row["hops"],
    }


def is_mcq(row: dict[str, Any]) -> bool:
    return row["kind"] == "mcq" and bool(row["options"]) and row["answer_label"] is not None
