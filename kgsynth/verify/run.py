"""`verify_items`: every item judged against the full graph, every rejection with its reasons.

Stages run in order and each sees only the items the earlier ones accepted:

1. graph: the deterministic checks (edges, answer, pattern, leak, shortcut,
   thinking, which also reads each step's relation with the relation lexicon;
   plan, for `dag` items); all of them run on every item, so a rejected item
   lists every reason, not just the first. Path checks judge each branch of a
   `dag` item's plan and give the item one verdict;
2. llm: with `relation_check="model"`, a model reads the step sentences the
   lexicon could not; then a model answers from the thinking path alone (both
   when `llm` is given);
3. decontamination: n-gram overlap with benchmark questions (when `benchmarks`);
4. dedup: exact text, same triples, near-duplicate embeddings (when `dedup`).

`write_verified` writes `accepted.parquet`, `rejected.parquet` and `summary.json`
into a directory, atomically.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kgsynth.atomic import replace_directory
from kgsynth.errors import ConfigError
from kgsynth.generate.item import VERDICT_STRUCT, Item, items_to_frame
from kgsynth.graph.snapshot import Snapshot
from kgsynth.verify.batch import conform_items, path_batch, split_malformed
from kgsynth.verify.checks import CHECKS, STAGES, Context, Outcome, load_checks, names_for
from kgsynth.verify.dedup import DedupConfig, run_dedup
from kgsynth.verify.index import graph_index
from kgsynth.verify.text import gc_paused

ACCEPTED = "accepted.parquet"
REJECTED = "rejected.parquet"
SUMMARY = "summary.json"
VERDICTS = pl.List(VERDICT_STRUCT)
# A later stage's answer: (check, positions among the items it was given or None for all, outcome).
Judged = tuple[str, np.ndarray | None, Outcome]


@dataclass
class VerifyResult:
    accepted: pl.DataFrame  # items columns + verdicts
    rejected: pl.DataFrame  # items columns + verdicts + reasons
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Ledger:
    """Verdicts gathered stage by stage: one long table, grouped per item at the end."""

    n: int
    parts: list[pl.DataFrame] = field(default_factory=list)
    stage_of: dict[str, str] = field(default_factory=dict)
    judged: Counter = field(default_factory=Counter)  # check → items judged
    rejected_at: np.ndarray = field(init=False)  # row → index of the first stage that rejected it, or -1

    def __post_init__(self) -> None:
        self.rejected_at = np.full(self.n, -1, dtype=np.int64)

    def add(self, check: str, stage: str, rows: np.ndarray, outcome: Outcome) -> None:
        extra_rows = rows[[r for r, _, _ in outcome.extra]] if outcome.extra else np.zeros(0, dtype=np.int64)
        self.parts.append(
            pl.DataFrame(
                {
                    "_row": np.concatenate([rows, extra_rows]),
                    "check": [check] * (len(rows) + len(extra_rows)),
                    "code": outcome.code + [code for _, code, _ in outcome.extra],
                    "detail": outcome.detail + [detail for _, _, detail in outcome.extra],
                },
                schema={"_row": pl.Int64, "check": pl.String, "code": pl.String, "detail": pl.String},
            )
        )
        self.stage_of[check] = stage
        self.judged[check] += len(rows)
        failed = rows[~outcome.passed]
        fresh = failed[self.rejected_at[failed] < 0]
        self.rejected_at[fresh] = STAGES.index(stage)

    def alive(self) -> np.ndarray:
        return np.flatnonzero(self.rejected_at < 0)

    def long(self) -> pl.DataFrame:
        schema = {"_row": pl.Int64, "check": pl.String, "code": pl.String, "detail": pl.String}
        return pl.concat(self.parts) if self.parts else pl.DataFrame(schema=schema)

    def table(self) -> pl.DataFrame:
        return (
            self.long()
            .with_columns(pl.col("code").is_null().alias("passed"))
            .with_row_index("_order")
            .sort("_row", "_order")
            .group_by("_row", maintain_order=True)
            .agg(pl.struct("check", "passed", "code", "detail").alias("verdicts"))
        )


@dataclass
class _Run:
    """One verification under way: its inputs, verdicts so far, and what was chosen, skipped and timed."""

    full: Snapshot
    frame: pl.DataFrame  # the items, conformed
    framed: pl.DataFrame  # the same with `_row`
    ledger: _Ledger
    graph_checks: list[str]
    skipped: dict[str, str]
    started: float
    hub_index: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    usage: dict | None = None  # model usage of the llm stage

    def judge_alive(self, stage: str, judge: Callable[[pl.DataFrame], Iterable[Judged]]) -> None:
        """Run a later stage on the items no earlier stage rejected; `judge` gets those items."""
        clock = time.perf_counter()
        alive = self.ledger.alive()
        for check, positions, outcome in judge(_take(self.frame, alive)):
            self.ledger.add(check, stage, alive if positions is None else alive[positions], outcome)
            if outcome.usage is not None:
                self.usage = merge_usage(self.usage, outcome.usage)
        self.timings[stage] = time.perf_counter() - clock


def merge_usage(first: dict | None, second: dict) -> dict:
    """Two model-usage summaries (`Accountant.summary`) of one model as one: stages side by side."""
    if first is None:
        return second
    stages = {name: dict(usage) for name, usage in first["stages"].items()}
    for name, usage in second["stages"].items():
        mine = stages.setdefault(name, {key: 0 for key in usage})
        for key, value in usage.items():
            mine[key] = mine.get(key, 0) + value
    total = {key: sum(usage.get(key, 0) for usage in stages.values()) for key in first["total"]}
    return {**first, "budget_reached": first["budget_reached"] or second["budget_reached"], "stages": dict(sorted(stages.items())), "total": total}


def verify_items(
    items: pl.DataFrame | Sequence[Item],
    full: Snapshot,
    *,
    hubs: list[str] | Path | str | None = None,
    checks: list[str] | None = None,
    llm=None,
    dedup: DedupConfig | None = None,
    benchmarks: Sequence[Path | str] = (),
    params: dict[str, Any] | None = None,
    relation_check: str = "lexicon",
) -> VerifyResult:
    """Judge items against the full, unpruned snapshot; see the module docstring.

    `hubs`: ids pruning removed, or a hubs.json (`removed[].id`); without it the
    shortcut check cannot run and is listed under `skipped` in the summary.
    `checks`: graph checks to run by name (default: all). `llm`: an
    `LLMConfig` (kgsynth.llm.config) for the answer-consistency check.
    `params`: `decontamination_ngram` (words per n-gram, default 8).
    `relation_check`: how the thinking check reads what each step says about its
    relation: `lexicon` (default; steps it cannot read pass), `model` (those steps
    go to the `llm` model, check `relation_model`), or `off`.
    """
    started = time.perf_counter()
    _require_full(full)
    _require_relation_check(relation_check, llm)
    frame = items if isinstance(items, pl.DataFrame) else items_to_frame(list(items))
    frame = conform_items(frame)
    params = dict(params or {})
    load_checks()
    graph_checks, skipped = _graph_checks(checks, hubs)
    if "plan" in graph_checks and not ((frame["kind"] == "dag") | (frame["plan"].list.len() > 0)).any():
        graph_checks.remove("plan")
        skipped["plan"] = "no dag items"

    ledger = _Ledger(frame.height)
    run = _Run(full, frame, frame.with_row_index("_row"), ledger, graph_checks, skipped, started)
    clock = time.perf_counter()
    index = graph_index(full)
    run.timings["index"] = time.perf_counter() - clock
    good, bad = split_malformed(run.framed)
    if bad.height:
        ledger.add(
            "edges",
            "graph",
            bad["_row"].to_numpy().astype(np.int64),
            Outcome(code=["PATH_MALFORMED"] * bad.height, detail=bad["malformed"].to_list()),
        )

    clock, cpu_clock = time.perf_counter(), time.process_time()
    if hubs is not None:
        from kgsynth.verify.shortcut import hub_index as make_hub_index

        run.hub_index = make_hub_index(index, hubs)
    batch = path_batch(good.drop("_row"), index)
    rows = good["_row"].to_numpy().astype(np.int64)
    context = Context(index=index, hubs=run.hub_index, relation_check=relation_check)
    with gc_paused():  # the checks allocate many small objects next to the index's millions
        for name in graph_checks:
            check_started, cpu_started = time.perf_counter(), time.process_time()
            check = CHECKS.get(name)
            outcome = check.run(batch, context)
            if check.judges == "paths":
                outcome = outcome.per_item(batch.unit, len(rows))
            ledger.add(name, "graph", rows, outcome)
            run.timings[f"check:{name}"] = time.perf_counter() - check_started
            run.cpu[f"check:{name}"] = time.process_time() - cpu_started
    run.timings["graph"] = time.perf_counter() - clock
    run.cpu["graph"] = time.process_time() - cpu_clock

    if llm is not None:
        run.judge_alive("llm", lambda alive: _model_checks(alive, llm, index, relation_check))
    else:
        skipped["llm_consistency"] = "no model given"
    if relation_check != "model" and "thinking" in graph_checks:
        skipped["relation_model"] = f"relation_check is '{relation_check}'" + (": steps the lexicon cannot read pass" if relation_check == "lexicon" else "")

    if benchmarks:
        from kgsynth.verify.decontam import run_decontamination

        run.judge_alive(
            "decontamination",
            lambda alive: [("decontamination", None, run_decontamination(alive, benchmarks, params))],
        )
    else:
        skipped["decontamination"] = "no benchmark files given"

    if dedup is not None:
        run.judge_alive("dedup", lambda alive: run_dedup(alive, dedup))
    else:
        skipped["dedup"] = "de-duplication not enabled"

    with gc_paused():
        return _assemble(run)


def _model_checks(alive: pl.DataFrame, llm, index, relation_check: str) -> list[Judged]:
    """The llm stage: the relation model (when asked for) first, then answer consistency on what it kept."""
    from kgsynth.verify.llm_check import run_llm_check

    judged: list[Judged] = []
    keep = None
    if relation_check == "model":
        from kgsynth.verify.relation_model import run_relation_model

        outcome = run_relation_model(alive, llm, index)
        judged.append(("relation_model", None, outcome))
        keep = np.flatnonzero(outcome.passed)
    judged.append(("llm_consistency", keep, run_llm_check(alive if keep is None else _take(alive, keep), llm, index)))
    return judged


def _require_relation_check(mode: str, llm) -> None:
    from kgsynth.verify.relation import MODES

    if mode not in MODES:
        raise ConfigError(f"relation_check '{mode}' is not one of {', '.join(MODES)}")
    if mode == "model" and llm is None:
        raise ConfigError(
            "relation_check 'model' asks the judge model about the step sentences the lexicon cannot read: "
            "give a model (verify.llm_judge, --llm-model), or use relation_check 'lexicon'"
        )


def _assemble(run: _Run) -> VerifyResult:
    """Accepted and rejected tables with their verdicts, and the summary."""
    verdicts = run.ledger.table()
    judged = run.framed.join(verdicts, on="_row", how="left", maintain_order="left").with_columns(
        pl.col("verdicts").fill_null(pl.lit([], dtype=VERDICTS))
    )
    failed = pl.col("verdicts").list.eval(pl.element().struct.field("passed").not_()).list.any()
    accepted = judged.filter(~failed).drop("_row")
    rejected = (
        judged.filter(failed)
        .with_columns(
            pl.col("verdicts")
            .list.eval(pl.element().filter(~pl.element().struct.field("passed")).struct.field("code"))
            .list.unique(maintain_order=True)
            .alias("reasons")
        )
        .drop("_row")
    )
    summary = _summary(run, accepted, rejected)
    summary["seconds"]["total"] = round(time.perf_counter() - run.started, 3)
    return VerifyResult(accepted=accepted, rejected=rejected, summary=summary)


def _take(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    return frame[rows.tolist()] if len(rows) else frame.clear()


def _require_full(snapshot: Snapshot) -> None:
    parent = snapshot.manifest.parent
    if parent:
        raise ConfigError(
            f"snapshot '{snapshot.name}' ({snapshot.hash[:12]}) is derived from {parent.get('hash', 'another snapshot')!s:.12}"
            " (pruned); verification always uses the full, unpruned graph. Pass the snapshot it was pruned from"
        )


def _graph_checks(checks: list[str] | None, hubs) -> tuple[list[str], dict[str, str]]:
    available = names_for("graph")
    skipped: dict[str, str] = {}
    if checks is None:
        chosen = list(available)
        if hubs is None:
            chosen.remove("shortcut")
            skipped["shortcut"] = "no removed nodes given (--hubs / hubs=)"
        return chosen, skipped
    chosen = []
    for name in checks:
        check = CHECKS.get(name)  # unknown names: ConfigError listing the known ones
        if check.stage != "graph":
            raise ConfigError(
                f"check '{name}' belongs to the {check.stage} stage; enable it with its own option "
                "(llm=, benchmarks=, dedup=), `checks` chooses graph checks"
            )
        if name not in chosen:
            chosen.append(name)
    if "shortcut" in chosen and hubs is None:
        raise ConfigError("the shortcut check needs the nodes pruning removed: pass hubs= (or --hubs pruned/hubs.json)")
    for name in available:
        if name not in chosen:
            skipped[name] = "not selected"
    return chosen, skipped


def _summary(run: _Run, accepted: pl.DataFrame, rejected: pl.DataFrame) -> dict[str, Any]:
    ledger, full, hub_index = run.ledger, run.full, run.hub_index
    reasons = rejected["reasons"].explode().drop_nulls().value_counts(sort=True)
    by_reason = dict(zip(reasons["reasons"].to_list(), reasons["count"].to_list(), strict=True))
    stages = ledger.rejected_at[ledger.rejected_at >= 0]
    long = ledger.long()
    failed = long.filter(pl.col("code").is_not_null())
    codes = failed.group_by("check", "code").len()
    items_failed = failed.group_by("check").agg(pl.col("_row").n_unique().alias("n"))
    by_check: dict[str, dict[str, Any]] = {
        check: {"stage": ledger.stage_of[check], "judged": judged, "failed": 0, "codes": {}}
        for check, judged in ledger.judged.items()
    }
    for check, count in items_failed.iter_rows():
        by_check[check]["failed"] = count
    for check, code, count in codes.sort("len", descending=True).iter_rows():
        by_check[check]["codes"][code] = count
    graph_seconds = run.timings.get("graph", 0.0)
    return {
        "snapshot": {"name": full.name, "hash": full.hash},
        "items": run.frame.height,
        "accepted": accepted.height,
        "rejected": rejected.height,
        "by_reason": by_reason,
        "by_stage": {stage: int((stages == i).sum()) for i, stage in enumerate(STAGES)},
        "by_check": by_check,
        "checks": run.graph_checks + [c for c in by_check if c not in run.graph_checks],
        "skipped": run.skipped,
        "hubs": None if hub_index is None else {"removed": len(hub_index.hubs) + len(hub_index.missing), "not_in_snapshot": len(hub_index.missing)},
        "snapshot_mismatch": _mismatch(full, accepted, rejected),
        "seconds": {k: round(v, 3) for k, v in run.timings.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in run.cpu.items()},
        "graph_items_per_second": round(run.frame.height / graph_seconds, 1) if graph_seconds > 0 else None,
        "usage": run.usage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _mismatch(full: Snapshot, *frames: pl.DataFrame) -> int:
    """Items whose provenance names another full graph (verification still used `full`)."""
    hashes = pl.concat([f.select(pl.col("provenance").struct.field("snapshot_hash").alias("h")) for f in frames])
    return int(hashes.filter(pl.col("h").is_not_null() & (pl.col("h") != full.hash)).height)


def write_verified(result: VerifyResult, out_dir: str | Path) -> Path:
    """Write accepted.parquet, rejected.parquet and summary.json; the directory appears whole or not at all."""
    out = Path(out_dir)
    with replace_directory(out, marker=SUMMARY, what="verification output") as tmp:
        result.accepted.write_parquet(tmp / ACCEPTED, compression="zstd")
        result.rejected.write_parquet(tmp / REJECTED, compression="zstd")
        (tmp / SUMMARY).write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
    return out
