"""The `plan` check: a `dag` item's plan judged as a graph.

Every fact step's triple must be in the full graph with its stored direction
(the `edges` check's codes and evidence), the dependencies must name steps the
plan has and form a DAG, every fact step must build on the step that established
its subject, every leaf must start from an entity the question names, the join
must depend on two or more branches that all end at the answer, every step must
lead to the join, and the thinking text must serialise exactly this plan. The
other graph checks then judge each branch of a sound plan as a path.

Items of other kinds have no plan and pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from kgsynth.llm.verbalize import read_plan_text
from kgsynth.verify.batch import ItemBatch
from kgsynth.verify.checks import Context, Outcome, register
from kgsynth.verify.graph_checks import classify_triple, describe
from kgsynth.verify.index import GraphIndex
from kgsynth.verify.text import normalize

Step = Mapping[str, Any]


@register(
    "plan",
    stage="graph",
    codes=(
        "PLAN_MALFORMED", "PLAN_DANGLING_DEPENDENCY", "PLAN_CYCLE", "EDGE_MISSING", "DIRECTION_FLIPPED",
        "RELATION_WRONG", "PLAN_STEP_UNCHAINED", "PLAN_LEAF_NOT_IN_QUESTION", "PLAN_NOT_CONVERGENT",
        "PLAN_JOIN_MISSES_ANSWER", "PLAN_STEP_UNUSED", "PLAN_TEXT_MISMATCH",
    ),
    description=(
        "a dag item's plan is a DAG of steps over triples of the full graph (stored direction), each built on the "
        "step that found its subject, its leaves entities the question names, its join two or more branches ending "
        "at the answer, no step unused, and the thinking text says exactly this plan"
    ),
    judges="items",
)  # fmt: skip
def check_plan(batch: ItemBatch, ctx: Context) -> Outcome:
    index: GraphIndex = ctx.index
    items = batch.items
    n = items.height
    planned = np.flatnonzero(((items["kind"] == "dag") | (items["plan"].list.len() > 0)).to_numpy()) if n else []
    if not len(planned):
        return Outcome.passing(n)
    chosen = items[planned.tolist()].select("question", "answer_id", "thinking", "plan")
    missing = _missing_triples(index, chosen["plan"])
    unnamed = _unnamed_leaves(index, chosen)
    failures = []
    for at, (row, item) in enumerate(zip(planned.tolist(), chosen.iter_rows(named=True), strict=True)):
        for code, detail in judge_plan(index, item, missing.get(at, []), unnamed.get(at, set())):
            failures.append((row, code, detail))
    return Outcome.of(n, failures)


def judge_plan(
    index: GraphIndex, item: Mapping[str, Any], missing: Sequence[tuple[str, str]] = (), unnamed: set[int] = frozenset()
) -> list[tuple[str, str]]:
    """(code, evidence) of the first problem of each kind; `missing` are the problems of its triples,
    `unnamed` the leaf steps whose subject the question does not name."""
    plan: list[Step] = list(item["plan"] or [])
    if not plan:
        return [("PLAN_MALFORMED", "a dag item without a plan")]
    found: list[tuple[str, str]] = []
    by_id = {int(s["step"]): s for s in plan}
    joins = [s for s in plan if s["kind"] == "join"]
    malformed = _malformed(plan, by_id, joins)
    if malformed:
        found.append(("PLAN_MALFORMED", malformed))
    dangling = [(int(s["step"]), d) for s in plan for d in s["depends_on"] or () if d not in by_id]
    if dangling:
        step, dep = dangling[0]
        found.append(("PLAN_DANGLING_DEPENDENCY", f"step {step} depends on step {dep}, which the plan does not have"))
    cycle = _cycle(by_id)
    if cycle:
        found.append(("PLAN_CYCLE", "steps " + " → ".join(map(str, cycle)) + " depend on each other in a cycle"))
    found += list(missing)
    for s in plan:
        deps = [by_id[d] for d in s["depends_on"] or () if d in by_id]
        if s["kind"] != "fact" or not deps:
            continue
        if len(deps) > 1:
            found.append(("PLAN_STEP_UNCHAINED", f"step {s['step']} depends on steps {_ids(deps)}; a fact step builds on "
                          "the one step that found its subject"))  # fmt: skip
            break
        if deps[0]["object"] != s["subject"]:
            found.append(("PLAN_STEP_UNCHAINED", (
                f"step {s['step']} starts from {_node(index, s['subject'], s['subject_name'])}, but step "
                f"{deps[0]['step']}, which it depends on, found {_node(index, deps[0]['object'], deps[0]['object_name'])}"
            )))
            break
    for s in plan:
        if int(s["step"]) in unnamed:
            found.append(("PLAN_LEAF_NOT_IN_QUESTION", (
                f"step {s['step']} depends on nothing but starts from {_node(index, s['subject'], s['subject_name'])}, "
                "which the question does not name"
            )))
            break
    if len(joins) == 1:
        join = joins[0]
        ends = [by_id[d] for d in join["depends_on"] or () if d in by_id]
        if len(join["depends_on"] or ()) < 2:
            found.append(("PLAN_NOT_CONVERGENT", f"the join (step {join['step']}) depends on {len(join['depends_on'] or ())} "
                          "step(s); branches converge only when it joins two or more"))  # fmt: skip
        wrong = [e for e in ends if e["object"] != item["answer_id"]] + ([join] if join["object"] != item["answer_id"] else [])
        if wrong:
            at = wrong[0]
            found.append(("PLAN_JOIN_MISSES_ANSWER", (
                f"the join rests on step {at['step']}, which ends at {_node(index, at['object'], at['object_name'])}, "
                f"not at the answer {_node(index, item['answer_id'], None)}"
            )))
        used = _ancestors(by_id, int(join["step"]))
        unused = [s for s in plan if int(s["step"]) not in used]
        if unused:
            found.append(("PLAN_STEP_UNUSED", f"step(s) {_ids(unused)} lead to no conclusion: the join does not depend "
                          "on them, directly or through other steps"))  # fmt: skip
    text = _text_problem(plan, item["thinking"])
    if text:
        found.append(("PLAN_TEXT_MISMATCH", text))
    return found


def _malformed(plan: Sequence[Step], by_id: dict[int, Step], joins: Sequence[Step]) -> str:
    if len(by_id) != len(plan):
        return "two steps share an id"
    if len(joins) != 1:
        return f"{len(joins)} join steps; a plan ends in exactly one"
    for s in plan:
        triple = (s["subject"], s["relation"], s["forward"])
        if s["kind"] == "fact" and any(x is None for x in triple):
            return f"fact step {s['step']} lacks its triple (subject, relation or direction)"
        if s["kind"] == "join" and any(x is not None for x in triple):
            return f"the join (step {s['step']}) rests on a triple; it only joins branches"
        if s["kind"] not in ("fact", "join"):
            return f"step {s['step']} is of unknown kind '{s['kind']}'"
    return ""


def _cycle(by_id: Mapping[int, Step]) -> list[int]:
    """One cycle of the dependencies (its step ids, first repeated last), or [] when there is none."""
    state: dict[int, int] = {}  # 1: on the current walk, 2: done
    for start in by_id:
        if state.get(start):
            continue
        stack: list[tuple[int, list[int]]] = [(start, [d for d in by_id[start]["depends_on"] or () if d in by_id])]
        walk = [start]
        state[start] = 1
        while stack:
            step, pending = stack[-1]
            if not pending:
                state[step] = 2
                stack.pop()
                walk.pop()
                continue
            nxt = pending.pop()
            if state.get(nxt) == 1:
                return walk[walk.index(nxt):] + [nxt]
            if not state.get(nxt):
                state[nxt] = 1
                walk.append(nxt)
                stack.append((nxt, [d for d in by_id[nxt]["depends_on"] or () if d in by_id]))
    return []


def _ancestors(by_id: Mapping[int, Step], start: int) -> set[int]:
    seen, todo = {start}, [start]
    while todo:
        for d in by_id[todo.pop()]["depends_on"] or ():
            if d in by_id and d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def _text_problem(plan: Sequence[Step], thinking: str | None) -> str:
    read = read_plan_text(thinking or "")
    if read is None:
        return "the thinking is not laid out as a plan (<Plan> lines with dependencies, then <Execution> with one step each)"
    planned = [(int(s["step"]), [int(d) for d in s["depends_on"] or ()]) for s in plan]
    executed = [(int(s["step"]), s["text"]) for s in plan]
    for what, said, meant in (("plan line", read.planned, planned), ("execution line", read.executed, executed)):
        if said != meant:
            at = next((i for i, (a, b) in enumerate(zip(said, meant, strict=False)) if a != b), min(len(said), len(meant)))
            if at >= min(len(said), len(meant)):
                return f"the thinking has {len(said)} {what}s for a plan of {len(meant)} steps"
            return f"{what} {at + 1} of the thinking says {said[at]!r} where the plan has {meant[at]!r}"
    return ""


def _missing_triples(index: GraphIndex, plans: pl.Series) -> dict[int, list[tuple[str, str]]]:
    """Per item (position in `plans`): the first problem of each kind among its fact steps' triples,
    looked up in bulk like the edges check."""
    long = (
        plans.alias("s").to_frame().with_row_index("at").explode("s").drop_nulls("s").unnest("s")
        .filter((pl.col("kind") == "fact") & pl.col("subject").is_not_null() & pl.col("relation").is_not_null()
                & pl.col("forward").is_not_null())
    )  # fmt: skip
    if not long.height:
        return {}
    table = index.node_table
    u = _index_of(long["subject"], table)
    v = _index_of(long["object"], table)
    relations = index.engine.relation_names
    rel_index = {name: i for i, name in enumerate(relations)}
    r = np.array([rel_index.get(x, -1) for x in long["relation"].to_list()], dtype=np.int64)
    fwd = long["forward"].to_numpy().astype(bool)
    known = (u >= 0) & (v >= 0) & (r >= 0)
    su, sv, sr = np.maximum(u, 0), np.maximum(v, 0), np.maximum(r, 0)
    ok = known & index.has_entries(su, sr, fwd, sv)
    if len(index.symmetric):
        ok |= known & index.symmetric[sr] & index.has_entries(su, sr, ~fwd, sv)
    out: dict[int, list[tuple[str, str]]] = {}
    rows = long.select("at", "step", "subject", "relation", "object").rows()
    for i in np.flatnonzero(~ok).tolist():
        at, step, subject, relation, obj = rows[i]
        code, detail = classify_triple(index, int(u[i]), int(v[i]), int(r[i]), bool(fwd[i]), (subject, relation, obj), f"step {step}")
        found = out.setdefault(int(at), [])
        if all(c != code for c, _ in found):
            found.append((code, detail))
    return out


def _index_of(ids: pl.Series, table: pl.DataFrame) -> np.ndarray:
    joined = pl.DataFrame({"id": ids}).join(table, on="id", how="left", maintain_order="left")
    return joined["idx"].fill_null(-1).to_numpy().astype(np.int64)


def _unnamed_leaves(index: GraphIndex, chosen: pl.DataFrame) -> dict[int, set[int]]:
    """Per item (position in `chosen`): the leaf steps (fact steps depending on nothing) whose subject
    the question does not name, by any name or synonym."""
    leaves = (
        chosen.select("question", "plan").with_row_index("at").explode("plan").drop_nulls("plan")
        .with_columns(pl.col("plan").struct.field("step", "kind", "subject", "depends_on"))
        .filter((pl.col("kind") == "fact") & (pl.col("depends_on").list.len() == 0) & pl.col("subject").is_not_null())
    )  # fmt: skip
    nodes = _index_of(leaves["subject"], index.node_table).tolist()
    questions = [normalize(q or "") for q in chosen["question"].to_list()]
    out: dict[int, set[int]] = {}
    for at, step, node in zip(leaves["at"].to_list(), leaves["step"].to_list(), nodes, strict=True):
        if node < 0 or not index.linker.mentions_any(questions[at], [node], forms=index.forms_of, normalized=True):
            out.setdefault(at, set()).add(int(step))
    return out


def _node(index: GraphIndex, node_id: str | None, name: str | None) -> str:
    found = _index_of(pl.Series([node_id], dtype=pl.String), index.node_table)[0] if node_id else -1
    return describe(index, int(found), f"{name or node_id}")


def _ids(steps: Sequence[Step]) -> str:
    return ", ".join(str(s["step"]) for s in steps)
