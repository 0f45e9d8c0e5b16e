"""Generation: paths → items (thinking path, question, options, answer), resumable.

`generate_items` walks every (path, kind) whose item id is not in the output yet,
has the writer word it, checks the question masks the path's bridges, and writes
finished items in batches. Paths that cannot make an item are turned away before
any model call: an MCQ with fewer usable hard negatives than `min_options` needs
(`too_few_negatives`), an open
question whose path is marked `unique_answer` false (`answer_not_unique`: its
pattern reaches other nodes than the answer, so verification would reject it).
A `dag` item is made from each convergent group (paths sharing a `group_id`: the
`convergent` sampler's), its distractors from the hard negatives of all its
branches (one that fails any branch's pattern fails the question); paths without
a group make none (`not_convergent`).
Beside the items it writes `failures.parquet` (one row
per item not made in this run, with a reason code; calls the endpoint failed are
tried again by the next run, while a reply the model got wrong — not JSON, the
wrong shape, cut at max_tokens — is a rejection, kept in the reply cache) and
`generate.json` (counts, usage and cost).

A run that reaches its budget stops cleanly: calls in flight finish, everything
finished is saved, and `GenerateResult.stopped == "budget"`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kgsynth.atomic import write_parquet_atomic, write_text_atomic
from kgsynth.errors import BudgetExceeded, ConfigError, SnapshotError
from kgsynth.generate.masking import (
    anchor_problem,
    normalize,
    path_problem,
    question_problem,
)
from kgsynth.generate.prepare import (
    NodeInfo,
    Phrasebook,
    item_id,
    node_lookup,
    path_facts,
)
from kgsynth.generate.kinds import ITEM_KINDS, check_kinds
from kgsynth.generate.plan import PlanReplyError, convergent_groups, dag_item_id, materialize
from kgsynth.generate.store import ItemStore, sidecar
from kgsynth.graph.snapshot import Snapshot
from kgsynth.llm.client import CallFailed
from kgsynth.llm.verbalize import PathFacts, PlanFacts
from kgsynth.llm.writers import Writer
from kgsynth.sample.paths import conform_paths

DEFAULT_KINDS = ("mcq", "open")
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FAILURES_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "path_id": pl.String(),
    "kind": pl.String(),
    "reason": pl.String(),  # a short code: rate_limited, not_json, question_names_bridge, too_few_negatives, not_convergent, …
    "error": pl.String(),
    "attempts": pl.Int32(),
    "retryable": pl.Boolean(),  # a re-run tries it again (a failed call), or not (a rejected path)
    "at": pl.String(),
}


@dataclass
class GenerateResult:
    out: Path
    failures_path: Path
    stats_path: Path
    items_total: int  # items in the output file after this run
    items_new: int  # made by this run
    items_existing: int  # already present, skipped
    failed: dict[str, int]  # calls that failed, by reason (retried by the next run)
    rejected: dict[str, int]  # paths or replies that cannot make an item, by reason
    usage: dict[str, Any]  # the writer's accounting summary for this run
    cost_usd: float
    stopped: str | None  # None, or "budget"
    remaining: int  # (path, kind) pairs not attempted because the run stopped
    elapsed_s: float
    stats: dict[str, Any] = field(default_factory=dict)  # what generate.json holds


@dataclass
class _Task:
    row: dict[str, Any]  # the path (a dag item: its first branch)
    kind: str
    id: str
    facts: PathFacts | PlanFacts
    infos: list[NodeInfo]
    negatives: list[str]  # the distractors its options will hold (mcq, dag)
    group: list[dict[str, Any]] | None = None  # a dag item's branches
    branch_infos: list[list[NodeInfo]] | None = None


def generate_items(
    paths: pl.DataFrame,
    snapshot: Snapshot,
    *,
    writer: Writer,
    out: Path,
    kinds: Sequence[str] = DEFAULT_KINDS,
    seed: int = 0,
    batch_size: int = 256,
    full_snapshot: Snapshot | None = None,
    budget_usd: float | None = None,
    concurrency: int | None = None,
    n_options: int = 4,
    min_options: int | None = None,
) -> GenerateResult:
    """Make items for every path and kind not yet in `out`; see the module docstring.

    MCQ items have `n_options` options, or as many as the path's usable hard
    negatives allow but never fewer than `min_options` (default: `n_options`).
    """
    return asyncio.run(
        agenerate_items(
            paths, snapshot, writer=writer, out=out, kinds=kinds, seed=seed, batch_size=batch_size,
            full_snapshot=full_snapshot, budget_usd=budget_usd, concurrency=concurrency, n_options=n_options,
            min_options=min_options,
        )
    )


async def agenerate_items(
    paths: pl.DataFrame,
    snapshot: Snapshot,
    *,
    writer: Writer,
    out: Path,
    kinds: Sequence[str] = DEFAULT_KINDS,
    seed: int = 0,
    batch_size: int = 256,
    full_snapshot: Snapshot | None = None,
    budget_usd: float | None = None,
    concurrency: int | None = None,
    n_options: int = 4,
    min_options: int | None = None,
) -> GenerateResult:
    """`generate_items` for callers already inside an event loop."""
    started, cpu_started = time.perf_counter(), time.process_time()
    out = Path(out)
    kinds = check_kinds(kinds)
    if n_options < 2 or n_options > len(LABELS):
        raise ConfigError(f"n_options must be between 2 and {len(LABELS)}, got {n_options}")
    min_options = n_options if min_options is None else min_options
    if not 2 <= min_options <= n_options:
        raise ConfigError(f"min_options must be between 2 and the number of options ({n_options}), got {min_options}")
    paths = conform_paths(paths)
    _check_snapshot(paths, snapshot)
    writer.configure(concurrency=concurrency, budget_usd=budget_usd)
    provenance = _provenance_base(snapshot, full_snapshot, writer)

    store = ItemStore(out)
    store.consolidate()  # a run that died left parts: fold them in first
    existing = store.existing_ids()
    nodes = node_lookup(snapshot, paths)
    book = Phrasebook(snapshot)
    run = _Run(writer, store, batch_size, seed, n_options, provenance)

    tasks: list[_Task] = []
    seen: set[str] = set()
    already = 0
    rows = list(paths.iter_rows(named=True))
    worded: dict[str, tuple[PathFacts, list[NodeInfo]]] = {}
    for row in rows:
        facts, infos = worded[row["path_id"]] = path_facts(row, nodes, book)
        problem = path_problem([i.name for i in infos]) or anchor_problem(
            [infos[0].name], [i.names for i in infos[1:-1]], infos[-1].names
        )
        for kind in kinds:
            if ITEM_KINDS.get(kind).unit != "path":
                continue
            iid = item_id(row, kind, writer.prompt(kind).hash)
            if iid in existing:
                already += 1
                continue
            if iid in seen:
                run.reject(iid, row, kind, "duplicate_path", "the same path appears twice in the paths table")
                continue
            seen.add(iid)
            negatives = _distractors(row, infos, nodes, n_options) if kind == "mcq" else []
            if problem:
                run.reject(iid, row, kind, problem, f"path names: {' → '.join(i.name for i in infos)}")
            elif kind == "mcq" and len(negatives) < min_options - 1:
                run.reject(iid, row, kind, "too_few_negatives",
                           f"{len(negatives)} usable hard negative(s); {min_options} options need {min_options - 1}")
            elif kind == "open" and row["unique_answer"] is False:
                run.reject(iid, row, kind, "answer_not_unique",
                           "the path's pattern from its anchor reaches other nodes than the answer (unique_answer false)")
            else:
                tasks.append(_Task(row, kind, iid, facts, infos, negatives))
    if "dag" in kinds:
        for task in _dag_tasks(rows, worded, nodes, writer, run, existing, seen, n_options, min_options):
            if task is None:
                already += 1
            else:
                tasks.append(task)

    prefetch = getattr(writer, "prefetch", None)  # writers that can use the Batch API have it
    try:
        if tasks and prefetch is not None and writer.batch_mode:
            await prefetch([(t.kind, t.facts) for t in tasks], out.parent / f".{out.name}.batch.json")
        await run.execute(tasks, nodes, concurrency or writer.concurrency)
    finally:
        run.flush()
        total = store.consolidate()
        await writer.aclose()

    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    usage = writer.accountant.summary() if writer.accountant is not None else {}
    result = GenerateResult(
        out=out,
        failures_path=sidecar(out, "failures.parquet"),
        stats_path=sidecar(out, "generate.json"),
        items_total=total,
        items_new=run.made,
        items_existing=already,
        failed=dict(sorted(run.failed.items())),
        rejected=dict(sorted(run.rejected.items())),
        usage=usage,
        cost_usd=float(usage.get("total", {}).get("cost_usd", 0.0)) if usage else 0.0,
        stopped=run.stopped,
        remaining=len(tasks) - run.attempted,
        elapsed_s=round(elapsed, 3),
    )
    result.stats = _stats(result, paths, kinds, writer, provenance, seed, cpu, store)
    write_parquet_atomic(pl.DataFrame(run.failure_rows, schema=FAILURES_SCHEMA), result.failures_path)
    _write_json(result.stats, result.stats_path)
    return result


class _Run:
    """The mutable state of one generation run, shared by its workers."""

    def __init__(self, writer: Writer, store: ItemStore, batch_size: int, seed: int, n_options: int,
                 provenance: dict[str, Any]) -> None:
        self.writer = writer
        self.store = store
        self.batch_size = batch_size
        self.seed = seed
        self.n_options = n_options
        self.provenance = provenance
        self.buffer: list[dict[str, Any]] = []
        self.failure_rows: list[dict[str, Any]] = []
        self.failed: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.made = 0
        self.attempted = 0
        self.stopped: str | None = None

    def reject(self, iid: str, row: dict[str, Any], kind: str, reason: str, error: str) -> None:
        self.rejected[reason] += 1
        self._failure(iid, row, kind, reason, error, 0, retryable=False)

    def _failure(self, iid, row, kind, reason, error, attempts, *, retryable: bool) -> None:
        self.failure_rows.append({
            "item_id": iid, "path_id": row["path_id"], "kind": kind, "reason": reason, "error": error,
            "attempts": attempts, "retryable": retryable, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })

    def flush(self) -> None:
        if self.buffer:
            self.store.append(self.buffer)
            self.buffer = []

    async def execute(self, tasks: list[_Task], nodes: dict[str, NodeInfo], concurrency: int) -> None:
        from kgsynth.progress import new_progress

        queue: Iterator[_Task] = iter(tasks)
        with new_progress() as progress:
            bar = progress.add_task(f"generating ({self.writer.name})", total=len(tasks))

            async def worker() -> None:
                for task in queue:
                    if self.stopped:
                        return
                    self.attempted += 1
                    await self._one(task, nodes)
                    progress.advance(bar)

            await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))

    async def _one(self, task: _Task, nodes: dict[str, NodeInfo]) -> None:
        try:
            written = await self.writer.write(task.kind, task.facts)
        except BudgetExceeded:
            self.stopped = "budget"
            self.attempted -= 1
            return
        except CallFailed as exc:
            if exc.final:  # the model's own unusable answer (cached), or a prompt too long for its context
                self.rejected[exc.reason] += 1
                self._failure(task.id, task.row, task.kind, exc.reason, str(exc), exc.attempts, retryable=False)
            else:
                self.failed[exc.reason] += 1
                self._failure(task.id, task.row, task.kind, exc.reason, str(exc), exc.attempts, retryable=True)
            return
        problem = _question_problem(task, written.question)
        if problem:
            self.rejected[problem] += 1
            self._failure(task.id, task.row, task.kind, problem, f"question: {written.question[:300]}", 1,
                          retryable=False)
            return
        try:
            row = self._row(task, written, nodes)
        except PlanReplyError as exc:
            self.rejected[exc.reason] += 1
            self._failure(task.id, task.row, task.kind, exc.reason, str(exc), 1, retryable=False)
            return
        self.buffer.append(row)
        self.made += 1
        if len(self.buffer) >= self.batch_size:
            self.flush()

    def _row(self, task: _Task, written, nodes: dict[str, NodeInfo]) -> dict[str, Any]:
        row, infos, negatives = task.row, task.infos, task.negatives
        answer_id = row["nodes"][-1]
        options: list[dict[str, str]] = []
        answer_label = None
        plan: list[dict[str, Any]] = []
        bridges = row["nodes"][1:-1]
        if task.group is not None:
            plan = materialize(written.plan, task.group, [[i.name for i in b] for b in task.branch_infos],
                               [[i.type for i in b] for b in task.branch_infos])
            bridges = list(dict.fromkeys(n for branch in task.group for n in branch["nodes"][1:-1]))
        if ITEM_KINDS.get(task.kind).options:
            choices = [answer_id, *negatives]
            random.Random(f"{self.seed}:{task.id}").shuffle(choices)
            options = [
                {"label": LABELS[i], "text": nodes[node_id].name, "node_id": node_id} for i, node_id in enumerate(choices)
            ]
            answer_label = LABELS[choices.index(answer_id)]
        prompt = self.writer.prompt(task.kind)
        usage = written.usage
        return {
            "id": task.id,
            "kind": task.kind,
            "question": written.question,
            "options": options,
            "answer": infos[-1].name,
            "answer_id": answer_id,
            "answer_label": answer_label,
            "answer_type": infos[-1].type,
            "thinking": written.thinking,
            "path_id": row["path_id"],
            "group_id": row["group_id"],
            "anchor_id": row["nodes"][0],
            "nodes": row["nodes"],
            "node_names": [i.name for i in infos],
            "node_types": [i.type for i in infos],
            "relations": row["relations"],
            "forward": row["forward"],
            "hops": len(row["relations"]),
            "bridges": bridges,
            "negatives": negatives,
            "distractor_source": "graph_hard_negative",
            "provenance": {
                **self.provenance,
                "strategy": row["strategy"],
                "seed": row["seed"],
                "prompt_name": prompt.name,
                "prompt_hash": prompt.hash,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cost_usd": usage.cost_usd,
                    "cached": usage.cached,
                },
            },
            "plan": plan,
        }


def _dag_tasks(rows, worded, nodes, writer: Writer, run: _Run, existing: set[str], seen: set[str],
               n_options: int, min_options: int) -> Iterator[_Task | None]:
    """One task per convergent group not made yet (None for one already in the output); rejections for
    paths without a group and for groups that cannot make a question."""
    groups, loose = convergent_groups(rows)
    if rows and not groups:
        raise ConfigError(
            "item kind 'dag' needs convergent groups (paths sharing a group_id): sample with strategy "
            "'convergent' (e.g. sample: {strategy: convergent, params: {branches: 2}})"
        )
    prompt_hash = writer.prompt("dag").hash
    for row in loose:
        run.reject(dag_item_id([row], prompt_hash), row, "dag", "not_convergent",
                   "the path has no group_id: a dag item needs paths from different anchors meeting at one answer")
    for group in groups:
        iid = dag_item_id(group, prompt_hash)
        if iid in existing:
            yield None
            continue
        if iid in seen:
            run.reject(iid, group[0], "dag", "duplicate_path", "the same group appears twice in the paths table")
            continue
        seen.add(iid)
        branch_infos = [worded[row["path_id"]][1] for row in group]
        answers = {row["nodes"][-1] for row in group}
        everyone = list({n: i for row, infos in zip(group, branch_infos, strict=True)
                         for n, i in zip(row["nodes"], infos, strict=True)}.values())  # fmt: skip
        bridges = [i.names for infos in branch_infos for i in infos[1:-1]]
        problem = (
            "group_incomplete" if len(group) < 2 else "group_answers_differ" if len(answers) > 1 else
            path_problem([i.name for i in everyone])
            or next((p for infos in branch_infos if (p := anchor_problem([infos[0].name], bridges, infos[-1].names))), None)
        )  # fmt: skip
        pool = {"nodes": [n for row in group for n in row["nodes"]], "negatives": _interleaved([r["negatives"] for r in group])}
        negatives = _distractors(pool, everyone, nodes, n_options)
        if problem:
            shown = " | ".join(" → ".join(i.name for i in infos) for infos in branch_infos)
            run.reject(iid, group[0], "dag", problem, f"branches: {shown}")
        elif len(negatives) < min_options - 1:
            run.reject(iid, group[0], "dag", "too_few_negatives",
                       f"{len(negatives)} usable hard negative(s) in the group; {min_options} options need {min_options - 1}")
        else:
            facts = PlanFacts(tuple(worded[row["path_id"]][0] for row in group))
            yield _Task(group[0], "dag", iid, facts, branch_infos[0], negatives, group, branch_infos)


def _interleaved(lists: list[list[str] | None]) -> list[str]:
    """Hard negatives of several branches, one from each in turn, so every branch lends distractors."""
    out: list[str] = []
    lists = [list(x or ()) for x in lists]
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return list(dict.fromkeys(out))


def _question_problem(task: _Task, question: str) -> str | None:
    """The masking rule: every anchor named (a dag item has one per branch), no bridge, not the answer."""
    branches = task.branch_infos or [task.infos]
    bridges = [i.names for infos in branches for i in infos[1:-1]]
    for infos in branches:
        problem = question_problem(question, infos[0].names, bridges, infos[-1].names)
        if problem:
            return problem
    return None


def _distractors(row: dict[str, Any], infos: list[NodeInfo], nodes: dict[str, NodeInfo], n_options: int) -> list[str]:
    """The path's hard negatives that can stand as options: known, off the path, named unlike the answer."""
    taken = {normalize(i.name) for i in infos}
    on_path = set(row["nodes"])
    chosen: list[str] = []
    for node_id in row["negatives"] or ():
        info = nodes.get(node_id)
        if info is None or node_id in on_path:
            continue
        key = normalize(info.name)
        if not key or key in taken:
            continue
        taken.add(key)
        chosen.append(node_id)
        if len(chosen) == n_options - 1:
            break
    return chosen


def _check_snapshot(paths: pl.DataFrame, snapshot: Snapshot) -> None:
    hashes = set(paths["snapshot"].drop_nulls().unique().to_list())
    if hashes - {snapshot.hash}:
        shown = ", ".join(sorted(h[:12] for h in hashes))
        raise SnapshotError(
            f"the paths were sampled from snapshot {shown}, not from {snapshot.name} ({snapshot.hash[:12]}); "
            "give the snapshot they came from (--snapshot)"
        )


def _provenance_base(snapshot: Snapshot, full: Snapshot | None, writer: Writer) -> dict[str, Any]:
    parent = snapshot.manifest.parent or {}
    full_hash = full.hash if full is not None else parent.get("hash") or parent.get("snapshot_hash") or snapshot.hash
    return {
        "snapshot_name": (full or snapshot).name,
        "snapshot_hash": full_hash,
        "sampled_snapshot_hash": snapshot.hash,
        "pruning_hash": parent.get("params_hash"),
        "writer": writer.name,
        "model": writer.model,
    }


def _stats(result: GenerateResult, paths: pl.DataFrame, kinds, writer: Writer, provenance, seed, cpu, store) -> dict:
    items_usage = {}
    if result.out.exists():
        usage = pl.read_parquet(result.out, columns=["provenance"]).select(
            pl.col("provenance").struct.field("usage").alias("u")
        ).unnest("u")
        items_usage = {
            "prompt_tokens": int(usage["prompt_tokens"].sum()),
            "completion_tokens": int(usage["completion_tokens"].sum()),
            "cost_usd": float(usage["cost_usd"].sum()),
            "from_cache": int(usage["cached"].sum()),
        }
    return {
        "writer": writer.name,
        "model": writer.model,
        "prompts": {kind: {"name": writer.prompt(kind).name, "hash": writer.prompt(kind).hash} for kind in kinds},
        "kinds": list(kinds),
        "seed": seed,
        "snapshot_hash": provenance["snapshot_hash"],
        "sampled_snapshot_hash": provenance["sampled_snapshot_hash"],
        "paths": paths.height,
        "items_total": result.items_total,
        "items_new": result.items_new,
        "items_existing": result.items_existing,
        "failed": result.failed,
        "rejected": result.rejected,
        "stopped": result.stopped,
        "remaining": result.remaining,
        "usage": result.usage,
        "cost_usd": result.cost_usd,
        "items_usage": items_usage,
        "elapsed_s": result.elapsed_s,
        "cpu_s": round(cpu, 3),
        "out": str(result.out),
        "failures": str(result.failures_path),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _write_json(data: dict[str, Any], path: Path) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
