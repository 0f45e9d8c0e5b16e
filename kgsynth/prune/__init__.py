"""Hub pruning: k-Shattering and the simpler degree rules.

`shatter(snapshot, k=…, pairs=…, seed=…)` samples node pairs, draws a uniformly
random shortest path for each, and removes hubs by the chosen rule (see
`kgsynth.prune.rules`). It returns the pruned snapshot (in memory; its manifest's
`parent` names the full graph and the parameters), the removed nodes with their
reasons, and before/after figures. `write_shatter` writes all of it atomically.

Pruning decides what we ask, never what counts as true: samplers run on the
pruned graph, verification and hard negatives on the full one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kgsynth.atomic import replace_directory
from kgsynth.errors import ConfigError, SnapshotError
from kgsynth.graph.engine import Engine, open_engine
from kgsynth.graph.snapshot import Snapshot, build_snapshot, write_snapshot_files
from kgsynth.prune.pairs import PairPaths, draw_pairs
from kgsynth.prune.rules import RULES, Removal
from kgsynth.prune.shortest import ShortestPaths, simple_adjacency

DEFAULT_K = 50.0
DEFAULT_PAIRS = 2000
DEFAULT_BUDGET = 200


@dataclass
class ShatterResult:
    snapshot: Snapshot  # the pruned graph
    hubs: list[dict[str, Any]]  # removed nodes: id, name, type, degree, shortcut_load, round, reason
    report: dict[str, Any]  # parameters and before/after figures
    params: dict[str, Any] = field(default_factory=dict)

    def hubs_json(self) -> dict[str, Any]:
        parent = self.snapshot.manifest.parent or {}
        return {
            "parent_hash": parent.get("hash"),
            "parent_name": parent.get("name"),
            "pruned_hash": self.snapshot.hash,
            "params": self.params,
            "params_hash": parent.get("params_hash"),
            "removed": self.hubs,
            "before": self.report["before"],
            "after": self.report["after"],
        }


def shatter(
    snapshot: Snapshot,
    *,
    k: float = DEFAULT_K,
    pairs: int = DEFAULT_PAIRS,
    seed: int = 0,
    budget: int = DEFAULT_BUDGET,
    protect_types: Iterable[str] = (),
    protect_ids: Iterable[str] = (),
    rule: str = "shortcut",
    engine: Engine | None = None,
    advance: Callable[[Removal], None] | None = None,
    **rule_params: Any,
) -> ShatterResult:
    """Prune hubs from a snapshot by `rule`; see the module docstring."""
    chosen_rule = RULES.get(rule)
    accepted = set(inspect.signature(chosen_rule).parameters) - {"engine", "pairs", "budget", "protected", "advance", "_"}
    unknown = sorted(set(rule_params) - accepted)
    if unknown:
        raise ConfigError(f"the {rule} rule takes no option(s) {unknown}; it takes: {sorted(accepted - {'k'}) or 'none'}")
    if pairs < 10:
        raise ConfigError(f"--pairs must be at least 10, got {pairs}")
    if budget < 0:
        raise ConfigError(f"--budget must not be negative, got {budget}")
    engine = engine or open_engine(snapshot)
    protect_types, protect_ids = sorted(set(protect_types)), sorted(set(protect_ids))
    protected = _protected(engine, protect_types, protect_ids)
    params = {"rule": rule, "k": k, "pairs": pairs, "seed": seed, "budget": budget,
              "protect_types": protect_types, "protect_ids": protect_ids, **rule_params}

    rng = np.random.default_rng(seed)
    adjacency = simple_adjacency(engine)
    candidates = np.flatnonzero(np.diff(adjacency.indptr) > 0)
    if len(candidates) < 2:
        raise ConfigError("the graph has fewer than two connected nodes; nothing to prune")
    sources, targets = draw_pairs(candidates, pairs, rng)
    sampled = PairPaths(ShortestPaths(adjacency, rng), sources, targets, engine.n_nodes)
    before_paths = sampled.snapshot()
    before = _figures(engine, adjacency, sampled, np.zeros(engine.n_nodes, dtype=bool))

    options = {"k": k} if "k" in accepted else {}
    removals = chosen_rule(engine, sampled, budget=budget, protected=protected, advance=advance, **options, **rule_params)

    gone = np.zeros(engine.n_nodes, dtype=bool)
    gone[[r.node for r in removals]] = True
    after = _figures(engine, adjacency, sampled, gone)
    through_removed = sum(1 for p in before_paths if p is not None and gone[p[1:-1]].any())
    before["share_through_removed"] = through_removed / max(before["connected_pairs"], 1)
    after["nodes_removed"] = int(gone.sum())
    after["edges_removed"] = int((gone[engine.edge_src] | gone[engine.edge_dst]).sum())
    after["pairs_dropped"] = int((~sampled.live).sum())
    hubs = _records(snapshot, engine, removals)
    pruned = _pruned(snapshot, [h["id"] for h in hubs], params)
    report = {"params": params, "before": before, "after": after, "parent": {"name": snapshot.name, "hash": snapshot.hash}}
    return ShatterResult(snapshot=pruned, hubs=hubs, report=report, params=params)


def write_shatter(result: ShatterResult, out_dir: str | Path) -> Path:
    """The pruned snapshot plus hubs.json and report.md, replacing out_dir only when all are written."""
    from kgsynth.prune.report import report_markdown

    out = Path(out_dir)
    with replace_directory(out, marker="manifest.json", what="snapshot") as tmp:
        write_snapshot_files(result.snapshot, tmp)
        (tmp / "hubs.json").write_text(json.dumps(result.hubs_json(), indent=2) + "\n", encoding="utf-8")
        (tmp / "report.md").write_text(report_markdown(result), encoding="utf-8")
    result.snapshot.path = out
    return out


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _protected(engine: Engine, types: list[str], ids: list[str]) -> np.ndarray:
    from kgsynth.sample.params import node_set
    from kgsynth.sample.walks import type_mask

    protected = type_mask(engine, types, what="protected type")[engine.node_type] if types else np.zeros(engine.n_nodes, bool)
    if ids:
        protected[node_set(engine, ids, what="--protect-id")] = True
    return protected


def _figures(engine: Engine, adjacency, sampled: PairPaths, gone: np.ndarray) -> dict[str, Any]:
    from scipy.sparse.csgraph import connected_components

    lengths = sampled.lengths()
    keep = np.flatnonzero(~gone)
    _, labels = connected_components(adjacency[keep][:, keep], directed=False)
    histogram = np.bincount(lengths) if len(lengths) else np.zeros(0, dtype=np.int64)
    load = sampled.loads()
    top = np.argsort(-load, kind="stable")[:5]
    return {
        "nodes": int(len(keep)),
        "largest_component": int(np.bincount(labels).max()) if len(labels) else 0,
        "pairs": int(sampled.live.sum()),
        "connected_pairs": int(len(lengths)),
        "mean_path_length": float(lengths.mean()) if len(lengths) else None,
        "path_lengths": {int(h): int(c) for h, c in enumerate(histogram) if c},
        "max_load": float(load.max()) if len(load) else 0.0,
        "top_loads": {engine.node_ids[i]: round(float(load[i]), 4) for i in top if load[i] > 0},
    }


def _records(snapshot: Snapshot, engine: Engine, removals: list[Removal]) -> list[dict[str, Any]]:
    if not removals:
        return []
    ids = [engine.node_ids[r.node] for r in removals]
    names = dict(snapshot.nodes.filter(pl.col("id").is_in(ids)).select("id", "name").iter_rows())
    return [
        {
            "id": node_id,
            "name": names.get(node_id),
            "type": engine.type_names[engine.node_type[r.node]],
            "degree": int(engine.degree[r.node]),
            "shortcut_load": round(r.load, 6),
            "round": r.round,
            "reason": r.reason,
        }
        for node_id, r in zip(ids, removals, strict=True)
    ]


def _pruned(snapshot: Snapshot, removed: list[str], params: dict[str, Any]) -> Snapshot:
    manifest = snapshot.manifest
    nodes = snapshot.nodes.filter(~pl.col("id").is_in(removed))
    edges = snapshot.edges.filter(~pl.col("src").is_in(removed) & ~pl.col("dst").is_in(removed))
    return build_snapshot(
        nodes,
        edges,
        vocabulary=snapshot.vocabulary,
        name=f"{manifest.name}-shattered",
        loader="shatter",
        options=params,
        sources=manifest.sources,
        source_info=manifest.source_info,
        allow_unknown_relations=True,
        parent={"hash": snapshot.hash, "name": manifest.name, "params": params, "params_hash": params_hash(params)},
    )
