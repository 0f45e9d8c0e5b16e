"""The coverage report: how far each question got, and why the others stopped.

Every question ends in exactly one outcome row (`questions.parquet`): accepted,
or lost at a stage with a reason code. The report counts the funnel (questions →
a linked question entity → a linked answer → a path within the hop cap → a
written reasoning → a verified reasoning) and the losses at each stage by reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import polars as pl

# (stage, what reaching it means); a question lost at a stage reached none after it
FUNNEL = (
    ("question_entity", "had a linked question entity"),
    ("answer", "had a linked answer"),
    ("path", "had a path within the hop cap"),
    ("reasoning", "had a written reasoning"),
    ("verified", "had a verified reasoning"),
)
STAGES = tuple(stage for stage, _ in FUNNEL)

# reason codes of losses before verification (verification's own codes follow for the last stage)
REASONS = {
    "no_question_entity": "no entity of the question linked to a node (of the allowed types)",
    "only_answer_in_question": "the question names no entity besides the answer",
    "answer_not_linked": "the gold answer names no node (of the answer type)",
    "entity_pruned": "the question entities or the answer are not in the sampled (pruned) graph",
    "no_path_within_hops": "no path within the hop cap joins a question entity to the answer",
    "model_failed": "the model call writing the reasoning failed after its retries",
    "budget_reached": "the run's budget was reached before the reasoning was written",
}

OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "dataset_name": pl.String(),
    "id_in_dataset": pl.String(),
    "status": pl.String(),  # accepted, rejected (by verification) or lost (before it)
    "stage": pl.String(),  # the first stage not reached; null when accepted
    "reason": pl.String(),  # reason code; verification's first code for rejected items
    "detail": pl.String(),
    "item_id": pl.String(),
    "question_entities": pl.Int32(),
    "answer_id": pl.String(),
    "paths_found": pl.Int32(),
}


def coverage(outcomes: pl.DataFrame, *, links: dict[str, int], hop_cap: int) -> dict[str, Any]:
    """The report as plain JSON: the funnel, losses by stage and reason, links by method."""
    total = outcomes.height
    lost_at = Counter(outcomes.filter(pl.col("stage").is_not_null())["stage"].to_list())
    funnel = []
    remaining = total
    for stage, meaning in FUNNEL:
        remaining -= lost_at.get(stage, 0)
        funnel.append({"stage": stage, "meaning": meaning, "questions": remaining, "share": _share(remaining, total)})
    losses: dict[str, dict[str, int]] = {}
    for stage, reason in outcomes.filter(pl.col("stage").is_not_null()).select("stage", "reason").iter_rows():
        by_reason = losses.setdefault(stage, {})
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return {
        "questions": total,
        "hop_cap": hop_cap,
        "funnel": funnel,
        "losses": {stage: dict(sorted(losses[stage].items(), key=lambda kv: -kv[1])) for stage in STAGES if stage in losses},
        "reasons": {code: text for code, text in REASONS.items() if any(code in v for v in losses.values())},
        "links": links,
    }


def coverage_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Grounding coverage",
        "",
        f"{report['questions']:,} questions; paths of at most {report['hop_cap']} hops.",
        "",
        "| stage | questions | share |",
        "|---|---:|---:|",
        f"| read | {report['questions']:,} | 100.0% |",
    ]
    lines += [f"| {row['meaning']} | {row['questions']:,} | {row['share'] * 100:.1f}% |" for row in report["funnel"]]
    if report["losses"]:
        lines += ["", "## Losses", "", "| stage | reason | questions |", "|---|---|---:|"]
        for stage, reasons in report["losses"].items():
            for reason, count in reasons.items():
                text = report["reasons"].get(reason)
                lines.append(f"| {stage} | `{reason}`{f' ({text})' if text else ''} | {count:,} |")
    if report["links"]:
        lines += ["", "## Entity links", "", "| method | links |", "|---|---:|"]
        lines += [f"| {method} | {count:,} |" for method, count in report["links"].items()]
    return "\n".join(lines) + "\n"


def _share(part: int, total: int) -> float:
    return round(part / total, 4) if total else 0.0
