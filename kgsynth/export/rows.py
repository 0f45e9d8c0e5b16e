"""Dataset rows and their explicit `Features`, one pair per configuration.

- `default`: everything an item knows, with the path as typed nodes and edges
  and the provenance needed to trace a row back to the graph;
- `sft`: chat `messages` (user question, assistant answer with the thinking path
  inside `<think>…</think>`), the conversational format TRL's SFTTrainer reads;
- `mcq`: question, options and the answer letter, for evaluation harnesses;
  (`sft`, `mcq` and `dag` rows carry the item's `difficulty` level; the default
  configuration its whole `difficulty` record, from the difficulty stage);
- `dag`: `dag` items only: the plan as structured steps (id, dependencies, the
  triple each rests on, its sentence), the serialised plan text, and chat
  `messages` with the plan inside `<think>…</think>`;
- `medreason`: MedReason's six text columns, for a run written by `kgsynth ground`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from datasets import Features, List, Value

from kgsynth.generate.plan import stored_triple
from kgsynth.ground.medreason import MEDREASON_COLUMNS

_STR = Value("string")

NODE = {"id": _STR, "name": _STR, "type": _STR}
# One hop in path order: source → target. `direction` says whether the hop follows
# the stored edge ("forward": the triple is source-relation-target) or walks it
# backwards ("inverse": the triple is target-relation-source).
EDGE = {"source": _STR, "relation": _STR, "target": _STR, "direction": _STR}
# One step of a dag item's plan: a fact (subject -relation-> object, `direction` as in EDGE) or the join
# (no subject or relation; its object is the answer).
PLAN_STEP = {
    "step": Value("int32"),
    "kind": _STR,
    "depends_on": List(Value("int32")),
    "subject": NODE,
    "relation": _STR,
    "object": NODE,
    "direction": _STR,
    "text": _STR,
}

# How hard an item is (kgsynth.difficulty): the score and level, where they came from, and the features.
DIFFICULTY = {
    "score": Value("float64"),
    "level": _STR,
    "source": _STR,
    "feature_score": Value("float64"),
    "accuracy": Value("float64"),
    "models": Value("int32"),
    "hops": Value("int32"),
    "steps": Value("int32"),
    "branches": Value("int32"),
    "answer_degree": Value("int64"),
    "anchor_degree": Value("int64"),
    "rarity": Value("float64"),
    "distractor_distance": Value("int32"),
    "distractor_overlap": Value("float64"),
    "distractor_hardness": Value("float64"),
    "anchor_distance": Value("int32"),
    "shortcut": Value("bool"),
}

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
        "plan": List(PLAN_STEP),
        "difficulty": DIFFICULTY,
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
        "difficulty": _STR,
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
        "difficulty": _STR,
    }
)

DAG_FEATURES = Features(
    {
        "id": _STR,
        "question": _STR,
        "options": List({"label": _STR, "text": _STR}),
        "answer": _STR,
        "answer_id": _STR,
        "answer_label": _STR,
        "hops": Value("int32"),  # hops of each branch
        "branches": Value("int32"),
        "steps": Value("int32"),  # fact steps: the triples the plan rests on
        "plan": List(PLAN_STEP),
        "plan_text": _STR,  # the plan, then its execution: what the assistant says inside <think>
        "difficulty": _STR,
        "messages": List({"role": _STR, "content": _STR}),
    }
)

MEDREASON_FEATURES = Features({column: _STR for column in MEDREASON_COLUMNS})  # in MedReason's order

FEATURES = {
    "default": DEFAULT_FEATURES, "sft": SFT_FEATURES, "mcq": MCQ_FEATURES, "dag": DAG_FEATURES,
    "medreason": MEDREASON_FEATURES,
}


def stored_triples(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The graph triples an item rests on, each as stored (src, relation, dst): its path's, or its plan's."""
    if item.get("plan"):
        return [stored_triple(s) for s in item["plan"] if s["kind"] == "fact"]
    nodes, triples = item["nodes"], []
    for i, (relation, forward) in enumerate(zip(item["relations"], item["forward"], strict=True)):
        a, b = nodes[i], nodes[i + 1]
        triples.append((a, relation, b) if forward else (b, relation, a))
    return triples


def path_signature(item: dict[str, Any]) -> str:
    """Identifies the set of triples an item rests on, whichever way they are walked."""
    text = "\n".join("\t".join(t) for t in sorted(set(stored_triples(item))))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_row(item: dict[str, Any]) -> dict[str, Any]:
    """A row of the default configuration from an accepted-items record (a dict). A dag item's
    `path_nodes` and `path_edges` are those of its whole plan (every branch), its `plan` the steps."""
    plan = [plan_step(s) for s in item.get("plan") or []]
    if plan:
        nodes = [n for s in plan if s["kind"] == "fact" for n in (s["subject"], s["object"])]
        path_nodes = list({n["id"]: n for n in nodes}.values())
        edges = [{"source": s["subject"]["id"], "relation": s["relation"], "target": s["object"]["id"],
                  "direction": s["direction"]} for s in plan if s["kind"] == "fact"]  # fmt: skip
    else:
        path_nodes = [
            {"id": i, "name": n, "type": t}
            for i, n, t in zip(item["nodes"], item["node_names"], item["node_types"], strict=True)
        ]
        edges = [
            {
                "source": item["nodes"][i],
                "relation": relation,
                "target": item["nodes"][i + 1],
                "direction": "forward" if forward else "inverse",
            }
            for i, (relation, forward) in enumerate(zip(item["relations"], item["forward"], strict=True))
        ]
    by_id = {node["id"]: node for node in path_nodes}
    option_names = {o["node_id"]: o["text"] for o in item["options"]}
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
        "plan": plan,
        "difficulty": None,  # filled from the difficulty stage by export
        "provenance": item["provenance"],
    }


def plan_step(step: dict[str, Any]) -> dict[str, Any]:
    """An items-table plan step as the dataset's PLAN_STEP."""
    fact = step["kind"] == "fact"
    return {
        "step": step["step"],
        "kind": step["kind"],
        "depends_on": list(step["depends_on"] or []),
        "subject": {"id": step["subject"], "name": step["subject_name"], "type": step["subject_type"]} if fact else None,
        "relation": step["relation"],
        "object": {"id": step["object"], "name": step["object_name"], "type": step["object_type"]},
        "direction": ("forward" if step["forward"] else "inverse") if fact else None,
        "text": step["text"],
    }


def sft_row(row: dict[str, Any]) -> dict[str, Any]:
    """Chat messages from a default row: the thinking path goes inside <think>…</think>."""
    user = row["question"]
    answer = row["answer"]
    if row["options"] and row["answer_label"] is not None:
        user += "\n\n" + "\n".join(f"{o['label']}. {o['text']}" for o in row["options"])
        answer = f"{row['answer_label']}. {row['answer']}"
    return {
        "id": row["id"],
        "kind": row["kind"],
        "hops": row["hops"],
        "difficulty": level(row),
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": f"<think>\n{row['thinking']}\n</think>\n\n{answer}"},
        ],
    }


def dag_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the dag configuration from a default row of a dag item."""
    branches = sum(1 for s in row["plan"] if s["kind"] == "fact" and not s["depends_on"])
    return {
        "id": row["id"],
        "question": row["question"],
        "options": [{"label": o["label"], "text": o["text"]} for o in row["options"]],
        "answer": row["answer"],
        "answer_id": row["answer_id"],
        "answer_label": row["answer_label"],
        "hops": row["hops"],
        "branches": branches,
        "steps": sum(1 for s in row["plan"] if s["kind"] == "fact"),
        "plan": row["plan"],
        "plan_text": row["thinking"],
        "difficulty": level(row),
        "messages": sft_row(row)["messages"],
    }


def is_dag(row: dict[str, Any]) -> bool:
    return row["kind"] == "dag" and bool(row["plan"])


def mcq_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "question": row["question"],
        "options": [{"label": o["label"], "text": o["text"]} for o in row["options"]],
        "answer": row["answer_label"],
        "answer_text": row["answer"],
        "hops": row["hops"],
        "difficulty": level(row),
    }


def level(row: dict[str, Any]) -> str | None:
    """The row's difficulty level (easy, medium, hard), or None when it was not measured."""
    return row["difficulty"]["level"] if row.get("difficulty") else None


def is_mcq(row: dict[str, Any]) -> bool:
    return row["kind"] == "mcq" and bool(row["options"]) and row["answer_label"] is not None
