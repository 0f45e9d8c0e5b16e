"""The `dag` kind's plan: convergent groups of paths, plan steps, and the thinking text.

A `dag` item rests on a convergent group (two or three paths from different
anchors meeting at the answer). Its plan has one fact step per triple, each
depending on the step that established its subject (none for a leaf, which starts
from an entity the question names), and one join step depending on the last step
of every branch. Its thinking serialises the plan, MedVerse-style:

    <Plan>
    Step 1 (depends on: none): Marfan syndrome presents with which phenotype?
    Step 2 (depends on: 1): the phenotype found in step 1 is a kind of which phenotype?
    …
    Step 5 (depends on: 2, 4): which phenotype do steps 2 and 4 both lead to?
    </Plan>
    <Execution>
    Step 1: Marfan syndrome presents with Arachnodactyly.
    …
    Step 5: Steps 2 and 4 both lead to Long fingers. So the phenotype asked for is Long fingers.
    </Execution>

The text is written and read back by `kgsynth.llm.verbalize` (`serialize_plan`,
`read_plan_text`), so verification can tell a thinking text that no longer says
what its plan says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kgsynth.llm.verbalize import DraftStep

Path3 = tuple[list[str], list[str], list[bool]]  # nodes, relations, forward


class PlanReplyError(ValueError):
    """A writer's plan that cannot be turned into steps (it cites a fact the group lacks)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


# --- groups ---------------------------------------------------------------------------


def convergent_groups(rows: Iterable[dict[str, Any]]) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """(groups of rows sharing a group_id, in order of first appearance; rows without one)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for row in rows:
        if row.get("group_id") is None:
            loose.append(row)
        else:
            groups.setdefault(row["group_id"], []).append(row)
    return list(groups.values()), loose


def dag_item_id(rows: Sequence[Mapping[str, Any]], prompt_hash: str) -> str:
    """Stable: the same branches (in order), kind and prompt text always give the same id."""
    branches = [[row["nodes"], row["relations"], row["forward"]] for row in rows]
    key = json.dumps([branches, "dag", prompt_hash], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# --- steps ----------------------------------------------------------------------------


def materialize(
    drafts: Sequence[DraftStep], rows: Sequence[Mapping[str, Any]], names: Sequence[Sequence[str]],
    types: Sequence[Sequence[str]],
) -> list[dict[str, Any]]:
    """Plan steps (the items table's `plan` structs) from a writer's drafts, numbered 1, 2, … in order.

    `rows` are the group's paths, `names[b]` and `types[b]` the node names and types of branch b.
    A draft citing a fact the group does not have cannot be given a triple: PlanReplyError
    `plan_unknown_fact`.
    """
    facts = [(b, h) for b, row in enumerate(rows) for h in range(len(row["relations"]))]
    steps = []
    for i, draft in enumerate(drafts, start=1):
        base = {"step": i, "depends_on": [int(d) for d in draft.depends_on], "text": draft.text.strip()}
        if draft.fact is None:
            steps.append({**base, "kind": "join", "subject": None, "subject_name": None, "subject_type": None,
                          "relation": None, "object": rows[0]["nodes"][-1], "object_name": names[0][-1],
                          "object_type": types[0][-1], "forward": None})  # fmt: skip
            continue
        if not 1 <= draft.fact <= len(facts):
            raise PlanReplyError(
                "plan_unknown_fact", f"step {i} rests on fact {draft.fact}, but the group has facts 1-{len(facts)}"
            )
        b, h = facts[draft.fact - 1]
        row = rows[b]
        steps.append({
            **base, "kind": "fact", "subject": row["nodes"][h], "subject_name": names[b][h],
            "subject_type": types[b][h], "relation": row["relations"][h], "object": row["nodes"][h + 1],
            "object_name": names[b][h + 1], "object_type": types[b][h + 1], "forward": bool(row["forward"][h]),
        })  # fmt: skip
    return steps


def plan_branches(plan: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]] | None:
    """The plan's branches, each its fact steps from leaf to the join, when the plan is a sound DAG:
    unique ids, one join, every fact step built on at most one step that established its subject,
    no cycle and no missing step. None otherwise (verification's `plan` check says why)."""
    by_id = {int(s["step"]): s for s in plan}
    joins = [s for s in plan if s["kind"] == "join"]
    if len(by_id) != len(plan) or len(joins) != 1 or len(joins[0]["depends_on"] or ()) < 1:
        return None
    branches = []
    for end in joins[0]["depends_on"]:
        chain: list[Mapping[str, Any]] = []
        at = by_id.get(int(end))
        while at is not None:
            if at["kind"] != "fact" or any(at is seen for seen in chain) or len(at["depends_on"] or ()) > 1:
                return None
            chain.append(at)
            if not at["depends_on"]:
                break
            before = by_id.get(int(at["depends_on"][0]))
            if before is None or before["object"] != at["subject"]:
                return None
            at = before
        if not chain:
            return None
        branches.append(chain[::-1])
    return branches


def branch_path(chain: Sequence[Mapping[str, Any]]) -> Path3:
    """A branch's steps as a path: nodes (leaf's subject first), relations, directions."""
    return (
        [chain[0]["subject"], *(s["object"] for s in chain)],
        [s["relation"] for s in chain],
        [bool(s["forward"]) for s in chain],
    )


def item_paths(item: Mapping[str, Any]) -> list[Path3]:
    """The paths an item rests on: its plan's branches (a dag item with a sound plan), else its own path."""
    plan = item.get("plan") or []
    if plan:
        branches = plan_branches(plan)
        if branches:
            return [branch_path(chain) for chain in branches]
    return [(list(item["nodes"]), list(item["relations"]), list(item["forward"]))]


def stored_triple(step: Mapping[str, Any]) -> tuple[str, str, str]:
    """A fact step's triple as the graph stores it (source, relation, target)."""
    a, b = step["subject"], step["object"]
    return (a, step["relation"], b) if step["forward"] else (b, step["relation"], a)
