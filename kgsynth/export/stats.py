"""Figures about a run that the dataset card and the quality report both show."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from kgsynth.export.inputs import RunInputs
from kgsynth.export.splits import SplitPlan


@dataclass
class Stage:
    name: str
    what: str  # what is counted, e.g. "items"
    entered: int | None
    kept: int | None

    @property
    def rate(self) -> float | None:
        if self.entered is None or self.kept is None or self.entered == 0:
            return None
        return self.kept / self.entered


@dataclass
class DifficultyStats:
    """What the card and the report say about the items' difficulty (the difficulty stage's output)."""

    levels: dict[str, dict[str, int]]  # "accepted" or split → level → items
    weights: dict[str, float]
    feature_by_hops: dict[int, float]  # hops → mean feature score
    models: list[dict[str, Any]]  # per answering model: model, items, correct, accuracy, …
    accuracy_by_hops: dict[str, dict[int, float]]  # model, and "all models" → hops → share right
    accuracy_by_level: dict[str, dict[str, float]]  # model, and "all models" → feature level → share right
    items_by_hops: dict[int, int]  # answered items per hops
    items_by_level: dict[str, int]  # answered items per feature level


@dataclass
class RunStats:
    stages: list[Stage]
    rejections: dict[str, dict[str, int]]  # stage → reason code → count
    hops: dict[str, dict[int, int]]  # "accepted"/"rejected"/split name → hops → count
    relations: dict[str, int]  # relation → hops using it (accepted items)
    graph_relations: dict[str, int]  # relation → edges in the full graph
    node_types: dict[str, int]  # node type → path nodes of that type (accepted items)
    node_roles: dict[str, dict[str, int]]  # "anchor"/"bridge"/"answer" → node type → path nodes
    answer_degrees: list[int]  # degree in the full graph of each distinct answer node
    hubs: list[dict[str, Any]]  # removed hubs, highest degree first
    pruning_effect: list[list[Any]]  # [figure, before, after] from hubs.json, when recorded
    usage: pl.DataFrame  # writer, model, items, prompt_tokens, completion_tokens, cost_usd, cached
    strategies: dict[str, list[int]]  # sampler → seeds
    prompts: dict[str, list[str]]  # prompt name → prompt hashes
    checks: list[str]  # verification checks seen in the verdicts
    notes: list[str] = field(default_factory=list)
    difficulty: DifficultyStats | None = None


def run_stats(inputs: RunInputs, plan: SplitPlan | None = None) -> RunStats:
    accepted = inputs.accepted
    rejected = inputs.rejected
    judged = pl.concat([accepted, rejected.drop("reasons")]) if rejected is not None else accepted

    stages = [Stage("sample", "paths", None, inputs.paths)]
    failures = inputs.failures.height if inputs.failures is not None else 0
    generated = inputs.generated
    stages.append(Stage("generate", "items", None if generated is None else generated + failures, generated))
    judged_count = accepted.height + rejected.height if rejected is not None else None
    stages.append(Stage("verify", "items", judged_count, accepted.height))
    if plan is not None:
        stages.append(Stage("export", "items", accepted.height, len(plan.split_of)))

    hops = {"accepted": _by_key(accepted["hops"].to_list())}
    if rejected is not None:
        hops["rejected"] = _by_key(rejected["hops"].to_list())
    if plan is not None:
        by_id = dict(zip(accepted["id"].to_list(), accepted["hops"].to_list(), strict=True))
        for split in plan.counts():
            hops[split] = _by_key([by_id[i] for i, s in plan.split_of.items() if s == split])

    graph_relations: dict[str, int] = {}
    answer_degrees: list[int] = []
    if inputs.snapshot is not None:
        from kgsynth.graph.stats import degrees

        graph_relations = dict(inputs.snapshot.manifest.counts.relations)
        answers = accepted.select(pl.col("answer_id").unique().alias("id"))
        answer_degrees = sorted(degrees(inputs.snapshot).join(answers, on="id")["degree"].to_list())

    hubs = sorted((inputs.hubs or {}).get("removed", []), key=lambda h: -int(h.get("degree") or 0))
    return RunStats(
        stages=stages,
        rejections=_rejections(inputs, plan),
        hops=hops,
        relations=_by_count(accepted["relations"].explode().drop_nulls().to_list()),
        graph_relations=graph_relations,
        node_types=_by_count(accepted["node_types"].explode().drop_nulls().to_list()),
        node_roles=_node_roles(accepted["node_types"].to_list()),
        answer_degrees=answer_degrees,
        hubs=hubs,
        pruning_effect=_pruning_effect(inputs.hubs or {}),
        usage=_usage(judged),
        strategies=_grouped(judged, "strategy", "seed"),
        prompts=_grouped(judged, "prompt_name", "prompt_hash"),
        checks=sorted(set(judged["verdicts"].explode().struct.field("check").drop_nulls().to_list())),
        notes=list(inputs.notes),
        difficulty=difficulty_stats(inputs, plan),
    )


ALL_MODELS = "all models"


def difficulty_stats(inputs: RunInputs, plan: SplitPlan | None) -> DifficultyStats | None:
    """Levels per split, the feature score by hops, and the answering models' accuracy by hops and by
    feature level (thirds of the feature score: independent of the models, so it tests the features)."""
    from kgsynth.difficulty import LEVELS

    measured = inputs.difficulty
    if measured is None:
        return None
    scores = measured.scores.filter(pl.col("id").is_in(inputs.accepted["id"].implode()))
    ranked = scores.sort("feature_score", "id").with_row_index("at")
    feature_level = ranked.select(
        "id", "hops",
        (pl.col("at") * len(LEVELS) // max(ranked.height, 1)).cast(pl.Int32)
        .replace_strict(list(range(len(LEVELS))), list(LEVELS)).alias("feature_level"),
    )  # fmt: skip
    levels = {"accepted": _count(scores["level"].to_list(), LEVELS)}
    if plan is not None:
        level_of = dict(zip(scores["id"].to_list(), scores["level"].to_list(), strict=True))
        for split in plan.counts():
            levels[split] = _count([level_of.get(i) for i, s in plan.split_of.items() if s == split], LEVELS)
    answers = measured.answers.join(feature_level, on="id", how="inner")
    by_hops: dict[str, dict[int, float]] = {}
    by_level: dict[str, dict[str, float]] = {}
    for name, part in [(ALL_MODELS, answers), *((m["model"], answers.filter(pl.col("model") == m["model"])) for m in measured.summary["models"])]:
        if not part.height:
            continue
        hops = part.group_by("hops").agg(pl.col("correct").mean()).sort("hops")
        by_hops[name] = dict(zip(hops["hops"].to_list(), hops["correct"].to_list(), strict=True))
        grouped = dict(part.group_by("feature_level").agg(pl.col("correct").mean()).iter_rows())
        by_level[name] = {lvl: grouped[lvl] for lvl in LEVELS if lvl in grouped}
    answered = answers.unique("id")
    feature = scores.group_by("hops").agg(pl.col("feature_score").mean()).sort("hops")
    return DifficultyStats(
        levels=levels,
        weights=dict(measured.summary.get("weights") or {}),
        feature_by_hops=dict(zip(feature["hops"].to_list(), feature["feature_score"].to_list(), strict=True)),
        models=list(measured.summary.get("models") or []),
        accuracy_by_hops=by_hops,
        accuracy_by_level=by_level,
        items_by_hops=_by_key(answered["hops"].to_list()),
        items_by_level=_count(answered["feature_level"].to_list(), LEVELS),
    )


def _count(values: list, order) -> dict[str, int]:
    counted = Counter(values)
    return {key: counted[key] for key in order if counted[key]}


def _by_key(values: list[int]) -> dict[int, int]:
    return dict(sorted(Counter(values).items()))


def _by_count(values: list[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


_EFFECT = (  # key in hubs.json "before"/"after", label, format
    ("nodes", "nodes", "{:,}"),
    ("largest_component", "largest connected component", "{:,}"),
    ("mean_path_length", "mean shortest-path length (sampled pairs)", "{:.2f}"),
    ("max_load", "largest share of shortest paths through one node", "{:.1%}"),
    ("share_through_removed", "share of shortest paths through the removed hubs", "{:.1%}"),
)


def _pruning_effect(hubs: dict[str, Any]) -> list[list[Any]]:
    """The shattering report's before/after figures that `kgsynth shatter` records in hubs.json."""
    before, after = hubs.get("before") or {}, hubs.get("after") or {}

    def shown(value: Any, fmt: str) -> str | None:
        return None if value is None else fmt.format(value)

    return [
        [label, shown(before.get(key), fmt), shown(after.get(key), fmt)]
        for key, label, fmt in _EFFECT
        if key in before or key in after
    ]


def _node_roles(paths: list[list[str]]) -> dict[str, dict[str, int]]:
    roles: dict[str, Counter] = {"anchor": Counter(), "bridge": Counter(), "answer": Counter()}
    for types in paths:
        roles["anchor"][types[0]] += 1
        roles["answer"][types[-1]] += 1
        roles["bridge"].update(types[1:-1])
    return {role: dict(counter.most_common()) for role, counter in roles.items()}


def _rejections(inputs: RunInputs, plan: SplitPlan | None) -> dict[str, dict[str, int]]:
    """Reason codes by stage: generation failures, each verification stage, export.

    An item rejected for several reasons counts once under each.
    """
    by_stage: dict[str, Counter] = {}
    failures = inputs.failures
    if failures is not None and failures.height:
        reasons = (
            failures["reason"].cast(pl.String).fill_null("UNSPECIFIED").to_list()
            if "reason" in failures.columns
            else ["UNSPECIFIED"] * failures.height
        )
        by_stage["generate"] = Counter(reasons)
    if inputs.rejected is not None:
        # verify's summary.json says which stage (graph, llm, decontamination, dedup) each check belongs to
        stage_of = {check: info.get("stage", check) for check, info in
                    ((inputs.summary or {}).get("by_check") or {}).items() if isinstance(info, dict)}
        for verdicts, reasons in zip(
            inputs.rejected["verdicts"].to_list(), inputs.rejected["reasons"].to_list(), strict=True
        ):
            failed = [v for v in verdicts or [] if not v["passed"]]
            if failed:
                for v in failed:
                    stage = f"verify: {stage_of.get(v['check'], v['check'])}"
                    by_stage.setdefault(stage, Counter())[v["code"] or "UNSPECIFIED"] += 1
            else:
                for reason in reasons or ["UNSPECIFIED"]:
                    by_stage.setdefault("verify", Counter())[reason] += 1
    if plan is not None and plan.left_out:
        by_stage["export"] = Counter(plan.left_out.values())
    return {stage: dict(counter.most_common()) for stage, counter in by_stage.items()}


def _usage(items: pl.DataFrame) -> pl.DataFrame:
    prov = items.select(pl.col("provenance").struct.unnest()).select(
        "writer",
        pl.col("model").fill_null("—"),
        pl.col("usage").struct.field("prompt_tokens"),
        pl.col("usage").struct.field("completion_tokens"),
        pl.col("usage").struct.field("cost_usd"),
        pl.col("usage").struct.field("cached"),
    )
    return (
        prov.group_by("writer", "model")
        .agg(
            pl.len().alias("items"),
            pl.col("prompt_tokens").sum(),
            pl.col("completion_tokens").sum(),
            pl.col("cost_usd").sum(),
            pl.col("cached").sum().alias("cached"),
        )
        .sort("writer", "model")
    )


def _grouped(items: pl.DataFrame, key: str, value: str) -> dict[str, list]:
    pairs = items.select(pl.col("provenance").struct.field(key), pl.col("provenance").struct.field(value)).unique()
    grouped: dict[str, list] = {}
    for k, v in sorted(pairs.iter_rows(), key=lambda kv: (str(kv[0]), str(kv[1]))):
        grouped.setdefault(k, []).append(v)
    return grouped
