"""Model checks of grounded reasoning, paid through grounding's own model steps.

The reasoning's steps are read with the relation lexicon by verification's thinking
check like any item's (`RELATION_MISSTATED`); `check_relations` has the model read
the steps the lexicon could not (verification's `relation_model` check, stage
`ground_relation`), and `check_consistency` has it answer from the reasoning alone.

Verification's `llm_consistency` check (`kgsynth.verify.llm_check`) makes its calls
with an accountant of its own, so its requests would be missing from ground.json's
usage and would not count against the run's budget. Grounding therefore runs the
same check here: the same prompt and scoring, for the items the graph checks
accepted, through `ModelSteps` (stage `ground_consistency`). Its verdicts join
verification's result as check `llm_consistency` of stage `llm`, so the tables and
summary.json's counts read as if verification had run it (the usage is in ground.json,
not in summary.json's `usage`): a wrong answer is
`ANSWER_INCONSISTENT`, a failed or budget-refused call `LLM_UNAVAILABLE` (a re-run
asks again; the replies already paid for come from the cache).
"""

from __future__ import annotations

import time

import polars as pl

from kgsynth.generate.item import VERDICT_STRUCT
from kgsynth.graph.snapshot import Snapshot
from kgsynth.ground.llm import ModelSteps
from kgsynth.verify.run import VerifyResult

CHECK, STAGE = "llm_consistency", "llm"


def check_consistency(result: VerifyResult, steps: ModelSteps, full: Snapshot) -> VerifyResult:
    """`result` with every accepted item asked once more: can a model reach its answer from the reasoning alone?"""
    from kgsynth.verify.index import graph_index
    from kgsynth.verify.llm_check import ReadAnswer, judge_reply, messages_for

    started = time.perf_counter()
    items = result.accepted.to_dicts()
    if not items:
        return result
    replies = steps.run([(messages_for(item), ReadAnswer) for item in items], "consistency")
    index = graph_index(full)  # built by verification just before, kept for the process
    verdicts = []
    for item, reply in zip(items, replies, strict=True):
        code, detail = judge_reply(item, reply, index) or (None, None)
        verdicts.append({"check": CHECK, "passed": code is None, "code": code, "detail": detail})
    return _merged(result, verdicts, time.perf_counter() - started)


RELATION_CHECK = "relation_model"


def check_relations(result: VerifyResult, steps: ModelSteps, full: Snapshot) -> VerifyResult:
    """`result` with the model asked about each accepted reasoning's steps the relation lexicon could not read;
    a step it says misstates the graph's relation rejects the item as `RELATION_MISSTATED`."""
    from kgsynth.verify.index import graph_index
    from kgsynth.verify.relation_model import run_relation_model

    started = time.perf_counter()
    if not result.accepted.height:
        return result
    outcome = run_relation_model(result.accepted, None, graph_index(full), ask=lambda requests: (steps.run(requests, "relation"), None))
    verdicts = [
        {"check": RELATION_CHECK, "passed": code is None, "code": code, "detail": detail}
        for code, detail in zip(outcome.code, outcome.detail, strict=True)
    ]
    return _merged(result, verdicts, time.perf_counter() - started, check=RELATION_CHECK)


def _merged(result: VerifyResult, verdicts: list[dict], seconds: float, check: str = CHECK) -> VerifyResult:
    passed = pl.Series([v["passed"] for v in verdicts], dtype=pl.Boolean)
    judged = result.accepted.with_columns(
        pl.concat_list(pl.col("verdicts"), pl.Series([[v] for v in verdicts], dtype=pl.List(VERDICT_STRUCT))).alias("verdicts")
    )
    failed = [v for v in verdicts if not v["passed"]]
    newly = judged.filter(~passed).with_columns(pl.Series("reasons", [[v["code"]] for v in failed], dtype=pl.List(pl.String)))
    accepted = judged.filter(passed)
    rejected = pl.concat([result.rejected, newly.select(result.rejected.columns)]) if newly.height else result.rejected

    summary = dict(result.summary)
    codes: dict[str, int] = {}
    for v in failed:
        codes[v["code"]] = codes.get(v["code"], 0) + 1
    by_reason = dict(summary.get("by_reason", {}))
    for code, count in codes.items():
        by_reason[code] = by_reason.get(code, 0) + count
    summary.update(
        accepted=accepted.height,
        rejected=rejected.height,
        by_reason=dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        by_stage={**summary.get("by_stage", {}), STAGE: summary.get("by_stage", {}).get(STAGE, 0) + len(failed)},
        by_check={**summary.get("by_check", {}), check: {"stage": STAGE, "judged": len(verdicts), "failed": len(failed), "codes": codes}},
        checks=[*summary.get("checks", []), check],
        skipped={k: v for k, v in summary.get("skipped", {}).items() if k != check},
        seconds={**summary.get("seconds", {}), STAGE: round(summary.get("seconds", {}).get(STAGE, 0) + seconds, 3)},
    )
    return VerifyResult(accepted=accepted, rejected=rejected, summary=summary)
