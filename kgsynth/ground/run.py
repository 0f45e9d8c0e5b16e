"""`ground_qa`: existing QA pairs → linked entities → paths → verified reasoning, as a run directory.

The output directory has the run-directory layout (`kgsynth.rundir`), so
`kgsynth export DIR` publishes the accepted items like any generated ones:

| file | content |
|---|---|
| `items.parquet` | one grounded item per question that got a reasoning (items schema) |
| `paths.parquet` | the selected paths (paths schema) |
| `verified/` | `accepted.parquet`, `rejected.parquet`, `summary.json` (verification) |
| `grounded.jsonl`, `grounded.parquet` | accepted questions with MedReason's columns (`dataset_name`, `id_in_dataset`, `question`, `answer`, `reasoning`, `options`) plus the entities, paths, provenance and verdicts |
| `links.parquet` | every entity link: mention, node, method, score, candidates |
| `questions.parquet` | every question's outcome: accepted, rejected with verification's code, or lost at a stage with a reason code |
| `coverage.json`, `coverage.md` | the funnel and the losses by reason |
| `ground.json` | parameters, snapshots, counts, timings, node names embedded or read from the cache, model usage |

Each file is written atomically; a failure leaves earlier files of an older run whole.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from kgsynth.errors import ConfigError
from kgsynth.generate.item import VERDICT_STRUCT, Item, Usage, items_to_frame
from kgsynth.graph.snapshot import Snapshot
from kgsynth.ground.coverage import OUTCOME_SCHEMA, coverage, coverage_markdown
from kgsynth.ground.link import LinkConfig, Linked
from kgsynth.ground.medreason import GROUNDED, MEDREASON_COLUMNS
from kgsynth.ground.qa import QARecord
from kgsynth.llm.config import LLMConfig
from kgsynth.rundir import RunDir

DEFAULT_CHECKS = ("edges", "answer", "thinking")


class GroundConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link: LinkConfig = Field(default_factory=LinkConfig)
    k: int = Field(default=5, ge=1, description="Paths searched per (question entity, answer) pair.")
    max_hops: int = Field(default=3, ge=1, le=6, description="Hop cap of every path.")
    paths_per_question: int = Field(default=3, ge=1, description="Paths the reasoning follows.")
    max_pairs: int = Field(default=25, ge=1, description="(question entity, answer) pairs searched per question.")
    offer: int = Field(default=12, ge=1, description="Ranked paths shown to the model when it selects.")
    seed: int = 0
    writer: Literal["template", "openai"] = "template"
    select: Literal["rank", "llm"] = "rank"
    checks: list[str] = Field(default_factory=lambda: list(DEFAULT_CHECKS), description="Verification's graph checks.")
    consistency: bool = Field(default=False, description="Also have a model answer from the reasoning alone.")
    relation_check: Literal["lexicon", "model", "off"] = Field(
        default="lexicon",
        description="How each reasoning step's relation is read: the lexicon, then the model for the steps it cannot read, or off.",
    )

    def model_steps(self) -> list[str]:
        steps = [name for name, on in (
            ("link", "llm" in self.link.methods),
            ("select", self.select == "llm"),
            ("write", self.writer == "openai"),
            ("consistency", self.consistency),
            ("relation", self.relation_check == "model"),
        ) if on]
        return steps


@dataclass
class GroundResult:
    out: Path
    questions: int
    items: int
    accepted: int
    rejected: int
    coverage: dict[str, Any]
    seconds: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)  # what ground.json holds
    stopped: str | None = None  # "budget" when the budget refused a model call


@dataclass
class _Outcomes:
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)

    def lose(self, r: int, record: QARecord, stage: str, reason: str, detail: str = "", **extra: Any) -> None:
        self.rows[r] = {
            "dataset_name": record.dataset_name, "id_in_dataset": record.id_in_dataset, "status": "lost",
            "stage": stage, "reason": reason, "detail": detail, **extra,
        }


def ground_qa(
    records: Sequence[QARecord],
    full: Snapshot,
    out: str | Path,
    *,
    config: GroundConfig | None = None,
    sampled: Snapshot | None = None,
    hubs: list[str] | Path | str | None = None,
    llm: LLMConfig | None = None,
) -> GroundResult:
    """Ground every record; `sampled` is the pruned snapshot paths are searched on (default: `full`),
    `hubs` the nodes pruning removed (for the shortcut check), `llm` the model for the steps that use one."""
    from kgsynth.graph.engine import open_engine
    from kgsynth.ground.link import QALinker, refine_with_model
    from kgsynth.ground.llm import ModelSteps
    from kgsynth.ground.paths import find_paths
    from kgsynth.progress import step
    from kgsynth.verify.run import verify_items, write_verified

    started = time.perf_counter()
    config = config or GroundConfig()
    run = RunDir(Path(out))
    if full.manifest.parent:  # verification refuses a derived graph; say so before the work, not after
        raise ConfigError(
            f"snapshot '{full.name}' ({full.hash[:12]}) is a pruned graph; give the full snapshot as --snapshot "
            "and the pruned one as --pruned"
        )
    needs = config.model_steps()
    if needs and llm is None:
        raise ConfigError(f"grounding steps {', '.join(needs)} need a model: give --model and --base-url (or $OPENAI_BASE_URL)")
    if llm is not None and llm.cache_path is None:
        llm = llm.model_copy(update={"cache_path": run.llm_cache})
    steps = ModelSteps(llm) if llm is not None and needs else None
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    linker = QALinker(full, config.link)
    linker.prepare()
    engine = open_engine(sampled or full)
    seconds["setup"] = _lap(clock)  # one-off: name dictionary and trigram index, the model, engine

    clock = time.perf_counter()
    linked = linker.link(records)
    if "llm" in config.link.methods:
        refine_with_model(linker, records, linked, steps)
    seconds["link"] = _lap(clock)

    clock = time.perf_counter()
    outcomes = _Outcomes()
    for r, (record, lk) in enumerate(zip(records, linked, strict=True)):
        if not lk.question_nodes:
            outcomes.lose(r, record, "question_entity", "no_question_entity", _unlinked_detail(lk, "question"))
        elif not lk.answer_nodes:
            outcomes.lose(r, record, "answer", "answer_not_linked", _unlinked_detail(lk, "answer"))
    searchable = [lk if r not in outcomes.rows else Linked() for r, lk in enumerate(linked)]
    with step(f"searching paths of at most {config.max_hops} hops"):
        search = find_paths(engine, searchable, k=config.k, max_hops=config.max_hops, seed=config.seed, max_pairs=config.max_pairs)
    for r, (reason, detail) in search.lost.items():
        outcomes.lose(r, records[r], "path", reason, detail)
    seconds["paths"] = _lap(clock)

    clock = time.perf_counter()
    chosen = _select(records, search.paths, engine, full, config, steps)
    items, by_item = _write(records, linked, chosen, full, sampled or full, config, steps, outcomes)
    seconds["reasoning"] = _lap(clock)

    clock = time.perf_counter()
    with step(f"verifying {len(items):,} reasoning(s)"):
        result = verify_items(
            items, full, hubs=hubs, checks=config.checks, relation_check="off" if config.relation_check == "off" else "lexicon"
        )
    if config.relation_check == "model":
        from kgsynth.ground.consistency import check_relations

        result = check_relations(result, steps, full)
    if config.consistency:
        from kgsynth.ground.consistency import check_consistency

        result = check_consistency(result, steps, full)
    seconds["verify"] = _lap(clock)

    clock = time.perf_counter()
    frames = _outputs(records, linked, items, chosen, result, by_item, search, outcomes, full)
    report = coverage(frames["questions"], links=_link_counts(linked), hop_cap=config.max_hops)
    _write_outputs(run, frames, result, report, write_verified)
    seconds["write"] = _lap(clock)
    seconds["total"] = _lap(started)

    summary = {
        "questions": len(records),
        "items": len(items),
        "accepted": result.accepted.height,
        "rejected": result.rejected.height,
        "pairs_searched": search.pairs,
        "config": json.loads(config.model_dump_json()),
        "snapshot": {"name": full.name, "hash": full.hash},
        "sampled_snapshot": {"name": (sampled or full).name, "hash": (sampled or full).hash},
        "model": llm.model if llm is not None and needs else None,
        "model_usage": steps.summary() if steps is not None else None,
        "stopped": steps.stopped if steps is not None else None,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "name_embeddings": linker.embedding_stats(),
        "questions_per_second": {
            "link_and_paths": round(len(records) / max(seconds["link"] + seconds["paths"], 1e-9), 1),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from kgsynth.atomic import write_text_atomic

    write_text_atomic(run.root / "ground.json", json.dumps(summary, indent=2) + "\n")
    return GroundResult(
        out=run.root, questions=len(records), items=len(items), accepted=result.accepted.height,
        rejected=result.rejected.height, coverage=report, seconds=summary["seconds"], summary=summary,
        stopped=summary["stopped"],
    )


def _lap(since: float) -> float:
    return time.perf_counter() - since


def _unlinked_detail(lk: Linked, role: str) -> str:
    offered = [link for link in (lk.question if role == "question" else lk.answer) if not link.accepted and link.candidates]
    if not offered:
        return "no mention matched a node name or synonym"
    best = max(offered, key=lambda link: link.score)
    top = best.candidates[0]
    return f"closest: '{best.mention}' ~ '{top.name}' ({top.node_id}) at cosine {top.score:.2f}, below the accept threshold"


# --- selection and writing ----------------------------------------------------------------


def _select(records, found: dict[int, list[dict]], engine, full: Snapshot, config: GroundConfig, steps) -> dict[int, list[dict]]:
    from kgsynth.ground.select import choose, rank_paths

    ranked = {r: rank_paths(rows, engine) for r, rows in found.items()}
    if config.select != "llm":
        return {r: choose(rows, config.paths_per_question) for r, rows in ranked.items()}
    from kgsynth.generate.prepare import Phrasebook, node_lookup, path_facts
    from kgsynth.ground.llm import SELECT, Selection, messages
    from kgsynth.ground.reason import facts_text
    from kgsynth.llm.client import CallFailed
    from kgsynth.llm.prompts import load_prompt
    from kgsynth.llm.writers import TEMPLATE_PROMPT

    offered = {r: rows[: config.offer] for r, rows in ranked.items()}
    nodes = node_lookup(full, _paths_frame([row for rows in offered.values() for row in rows]))
    book, template = Phrasebook(full), load_prompt(TEMPLATE_PROMPT)
    order = sorted(offered)
    requests = [
        (
            messages(
                SELECT, question=records[r].question, answer=records[r].answer, limit=config.paths_per_question,
                paths=facts_text([path_facts(row, nodes, book)[0] for row in offered[r]], template),
            ),
            Selection,
        )
        for r in order
    ]
    replies = steps.run(requests, "select")
    return {
        r: choose(offered[r], config.paths_per_question, None if isinstance(reply, CallFailed) else reply.parsed.paths)
        for r, reply in zip(order, replies, strict=True)
    }


def _write(records, linked, chosen, full: Snapshot, sampled: Snapshot, config: GroundConfig, steps, outcomes: _Outcomes):
    """Items for every question with chosen paths; returns (items, {record: item})."""
    from kgsynth.generate.prepare import Phrasebook, node_lookup, path_facts
    from kgsynth.ground.llm import WRITE, Reasoning, messages, options_text, prompt
    from kgsynth.ground.reason import facts_text, grounded_item, thinking_text
    from kgsynth.llm.client import CallFailed
    from kgsynth.llm.prompts import load_prompt
    from kgsynth.llm.writers import TEMPLATE_PROMPT

    nodes = node_lookup(full, _paths_frame([row for rows in chosen.values() for row in rows]))
    book, template = Phrasebook(full), load_prompt(TEMPLATE_PROMPT)
    parent = sampled.manifest.parent or {}
    provenance = {
        "snapshot_name": full.name, "snapshot_hash": full.hash, "sampled_snapshot_hash": sampled.hash,
        "pruning_hash": parent.get("params_hash"), "writer": config.writer,
        "model": steps.config.model if steps is not None and config.writer == "openai" else None,
    }
    order = sorted(chosen)
    drafts = {}
    for r in order:
        worded = [path_facts(row, nodes, book) for row in chosen[r]]
        drafts[r] = ([f for f, _ in worded], worded[0][1])
    texts: dict[int, tuple[str, Usage]] = {r: (thinking_text(drafts[r][0], template), Usage()) for r in order}
    used_prompt = template
    if config.writer == "openai":
        used_prompt = prompt(WRITE)
        requests = [
            (
                messages(
                    WRITE, question=records[r].question, answer=records[r].answer,
                    options=options_text([(o.label, o.text) for o in records[r].options]),
                    facts=facts_text(drafts[r][0], template), draft=texts[r][0],
                ),
                Reasoning,
            )
            for r in order
        ]
        for r, reply in zip(order, steps.run(requests, "write"), strict=True):
            if isinstance(reply, CallFailed):
                if reply.reason == "budget":
                    outcomes.lose(r, records[r], "reasoning", "budget_reached", str(reply))
                else:
                    outcomes.lose(r, records[r], "reasoning", "model_failed", f"the reasoning call failed after its retries: {reply.reason}")
                del texts[r]
                continue
            u = reply.usage
            texts[r] = (reply.parsed.reasoning.strip(), Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
                                                             cost_usd=u.cost_usd, cached=u.cached))
    made: dict[int, Item] = {}
    for r in order:
        if r in texts:
            made[r] = grounded_item(records[r], linked[r], chosen[r], drafts[r][1], texts[r][0], prompt=used_prompt,
                                    provenance=provenance, usage=texts[r][1])
    return list(made.values()), made


def _paths_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    from kgsynth.sample.paths import PATHS_SCHEMA, conform_paths

    return conform_paths(pl.DataFrame(rows, schema=PATHS_SCHEMA)) if rows else pl.DataFrame(schema=PATHS_SCHEMA)


# --- outputs ------------------------------------------------------------------------------

_LINK_STRUCT = pl.Struct(
    {"role": pl.String, "mention": pl.String, "node_id": pl.String, "name": pl.String, "type": pl.String,
     "method": pl.String, "score": pl.Float64}
)
_PATH_STRUCT = pl.Struct(
    {"nodes": pl.List(pl.String), "node_names": pl.List(pl.String), "relations": pl.List(pl.String),
     "forward": pl.List(pl.Boolean)}
)


def _outputs(records, linked, items, chosen, result, by_item, search, outcomes: _Outcomes, full) -> dict[str, pl.DataFrame]:
    names = dict(zip(*full.nodes.select("id", "name").get_columns(), strict=True)) if items else {}
    frames = {"items": items_to_frame(items), "paths": _paths_frame([row for r in sorted(chosen) for row in chosen[r]])}

    verdict_of: dict[str, tuple[str, str | None, str]] = {}
    for row in result.accepted.select("id").iter_rows():
        verdict_of[row[0]] = ("accepted", None, "")
    for item_id, reasons, verdicts in result.rejected.select("id", "reasons", "verdicts").iter_rows():
        detail = next((v["detail"] for v in verdicts if not v["passed"]), "")
        verdict_of[item_id] = ("rejected", reasons[0] if reasons else "REJECTED", detail)

    rows = []
    for r, record in enumerate(records):
        lk = linked[r]
        base = {
            "question_entities": len(lk.question_nodes),
            "answer_id": by_item[r].answer_id if r in by_item else (lk.answer_nodes[0] if lk.answer_nodes else None),
            "paths_found": len(search.paths.get(r, ())),
        }
        if r in outcomes.rows:
            rows.append({**outcomes.rows[r], **base, "item_id": None})
            continue
        item = by_item[r]
        status, code, detail = verdict_of[item.id]
        rows.append({
            "dataset_name": record.dataset_name, "id_in_dataset": record.id_in_dataset, "status": status,
            "stage": None if status == "accepted" else "verified", "reason": code, "detail": detail,
            "item_id": item.id, **base,
        })
    frames["questions"] = pl.DataFrame(rows, schema=OUTCOME_SCHEMA)

    link_rows = [
        {"dataset_name": rec.dataset_name, "id_in_dataset": rec.id_in_dataset, **link.model_dump(exclude={"candidates"}),
         "candidates": [c.model_dump() for c in link.candidates]}
        for rec, lk in zip(records, linked, strict=True) for link in lk.all_links()
    ]
    frames["links"] = pl.DataFrame(link_rows, schema=_LINKS_SCHEMA)

    accepted = {row["id"]: row for row in result.accepted.select("id", "verdicts").iter_rows(named=True)}
    grounded = []
    for r, record in enumerate(records):
        item = by_item.get(r)
        if item is None or item.id not in accepted:
            continue
        grounded.append({
            "dataset_name": record.dataset_name,
            "id_in_dataset": record.id_in_dataset,
            "question": record.question,
            "answer": record.answer,
            "reasoning": item.thinking,
            "options": medreason_options(record),
            "item_id": item.id,
            "kind": item.kind,
            "answer_label": record.answer_label,
            "answer_id": item.answer_id,
            "answer_name": item.answer,
            "entities": [
                {k: getattr(link, k) for k in ("role", "mention", "node_id", "name", "type", "method", "score")}
                for link in [*linked[r].question, *linked[r].answer] if link.accepted
            ],
            "paths": [
                {"nodes": row["nodes"], "node_names": [names.get(n, n) for n in row["nodes"]], "relations": row["relations"],
                 "forward": row["forward"]}
                for row in chosen[r]
            ],
            "snapshot_hash": item.provenance.snapshot_hash,
            "writer": item.provenance.writer,
            "model": item.provenance.model,
            "verdicts": accepted[item.id]["verdicts"],
        })
    frames["grounded"] = pl.DataFrame(grounded, schema=_GROUNDED_SCHEMA)
    return frames


def medreason_options(record: QARecord) -> str:
    """MedReason's options text: "Answer Choices:" then one "A. text" line per option ("" when open)."""
    if not record.options:
        return ""
    return "Answer Choices:\n" + "\n".join(f"{o.label}. {o.text}" for o in record.options)


def _link_counts(linked: list[Linked]) -> dict[str, int]:
    counts = Counter(link.method if link.accepted else f"{link.method} (candidates only)" for lk in linked for link in lk.all_links())
    return dict(sorted(counts.items()))


def _write_outputs(run: RunDir, frames: dict[str, pl.DataFrame], result, report: dict[str, Any], write_verified) -> None:
    from kgsynth.atomic import write_parquet_atomic, write_text_atomic

    write_parquet_atomic(frames["items"], run.items)
    write_parquet_atomic(frames["paths"], run.paths)
    write_verified(result, run.verified)
    write_parquet_atomic(frames["links"], run.root / "links.parquet")
    write_parquet_atomic(frames["questions"], run.root / "questions.parquet")
    write_parquet_atomic(frames["grounded"], run.root / GROUNDED)
    write_text_atomic(run.root / "grounded.jsonl", "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in frames["grounded"].to_dicts()))
    write_text_atomic(run.root / "coverage.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(run.root / "coverage.md", coverage_markdown(report))


_LINKS_SCHEMA: dict[str, pl.DataType] = {
    "dataset_name": pl.String(), "id_in_dataset": pl.String(), "role": pl.String(), "mention": pl.String(),
    "node_id": pl.String(), "name": pl.String(), "type": pl.String(), "method": pl.String(), "score": pl.Float64(),
    "alternatives": pl.List(pl.String), "option": pl.String(),
    "candidates": pl.List(pl.Struct({"node_id": pl.String, "name": pl.String, "type": pl.String, "score": pl.Float64})),
}
_GROUNDED_SCHEMA: dict[str, pl.DataType] = {
    **{c: pl.String() for c in MEDREASON_COLUMNS},
    "item_id": pl.String(), "kind": pl.String(), "answer_label": pl.String(), "answer_id": pl.String(),
    "answer_name": pl.String(), "entities": pl.List(_LINK_STRUCT), "paths": pl.List(_PATH_STRUCT),
    "snapshot_hash": pl.String(), "writer": pl.String(), "model": pl.String(),
    "verdicts": pl.List(VERDICT_STRUCT),
}
