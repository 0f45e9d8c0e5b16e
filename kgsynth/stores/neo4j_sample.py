"""Path sampling inside Neo4j: the `walk` and `pattern` strategies as Cypher.

For graphs that only live in Neo4j. Cypher does the graph work: one batched
`UNWIND $walkers` query per hop for a few hundred walkers at a time, which lists
each walker's allowed neighbours in a fixed order and returns only the one picked.
The pick is ⌊u·count⌋ for a number u the walker brings from
`numpy.random.default_rng(seed)`: Cypher's `rand()` cannot be seeded, so this is
what makes Neo4j sampling reproducible (same seed, same graph, same paths).
Start nodes are drawn the same way from the sorted candidate ids. Hubs are
avoided through a node flag (`kgsynth_hub`, set from the k-Shattering output
given as `hubs`): no path starts at, passes through or ends at one.

The result is a paths table (`kgsynth.sample.paths.PATHS_SCHEMA`), the same
`paths.parquet` the in-memory samplers write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kgsynth.errors import ConfigError
from kgsynth.sample.params import HopSpec, hub_ids, parse_hops
from kgsynth.sample.pattern import parse_template
from kgsynth.sample.paths import PATHS_SCHEMA, conform_paths
from kgsynth.stores.neo4j import HUB_PROPERTY, Neo4jConfig, Neo4jStore, connect, quote
from kgsynth.stores.neo4j_pull import GraphView, PullMapping, mapped_view, read_view

STRATEGIES = ("walk", "pattern")
NOT_HUB = f"coalesce(b.{quote(HUB_PROPERTY)}, false) = false"
ROW_COLUMNS = ("path_id", "nodes", "relations", "forward", "hops", "pattern", "strategy", "seed", "snapshot")


@dataclass(frozen=True)
class Step:
    """One hop: the relationship types it may follow and the labels it may reach."""

    rel_types: tuple[str, ...]
    direction: str  # "out" (stored direction), "in" (against it) or "any"
    symmetric: tuple[str, ...]  # types that match either way round whatever the direction
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What a walker does: start on one of `anchors` (labels), then take `steps`."""

    anchors: tuple[str, ...]
    steps: tuple[Step, ...]


def _labels(view: GraphView, node_types: Iterable[str] | None) -> tuple[str, ...]:
    if node_types is None:
        return tuple(sorted(view.schema.type_of_label))
    return tuple(sorted({view.schema.label(t) for t in node_types}))  # UnknownRelationError if not in the vocabulary


def _step(view: GraphView, relations: Iterable[str] | None, forward: bool | None, node_types) -> Step:
    names = sorted(view.schema.types) if relations is None else sorted(set(relations))
    rel_types = tuple(view.schema.rel_type(r) for r in names)  # UnknownRelationError if not in the vocabulary
    symmetric = tuple(view.schema.types[r] for r in names if view.schema.vocabulary.relations[r].symmetric)
    direction = "any" if forward is None else "out" if forward else "in"
    return Step(rel_types=rel_types, direction=direction, symmetric=symmetric, labels=_labels(view, node_types))


def pattern_plan(text: str, view: GraphView) -> Plan:
    """A template in the in-memory `pattern` sampler's syntax (`kgsynth.sample.pattern`),
    e.g. `disease -has_phenotype-> phenotype <-is_a- phenotype`, checked against the vocabulary."""
    template = parse_template(text)
    steps = tuple(
        _step(view, hop.relations, hop.forward, template.types[i + 1]) for i, hop in enumerate(template.hops)
    )
    return Plan(anchors=_labels(view, template.types[0]), steps=steps)


def walk_plan(view: GraphView, hops: int, relations: Iterable[str] | None, start_types: Iterable[str] | None) -> Plan:
    step = _step(view, relations, None, None)
    if not step.rel_types:
        raise ConfigError("a walk needs at least one relation to follow")
    return Plan(anchors=_labels(view, start_types), steps=(step,) * hops)


@dataclass
class Walker:
    eids: list[str]
    ids: list[str]
    types: list[str]
    relations: list[str] = field(default_factory=list)
    forward: list[bool] = field(default_factory=list)


def _mark_hubs(store: Neo4jStore, view: GraphView, hub_ids: list[str]) -> int:
    """Set the hub flag on exactly these nodes, clearing it elsewhere; returns how many were found."""
    flag, id_property = quote(HUB_PROPERTY), quote(view.properties["id"])
    raw = sorted({i.removeprefix(view.id_prefix) for i in hub_ids})
    marked = 0
    for label in sorted(view.schema.type_of_label):
        node = f"(n:{quote(label)})"
        store.write(  # SET … = null, not REMOVE: the stand-in ignores REMOVE inside a transaction
            lambda tx, n=node: tx.run(f"MATCH {n} WHERE n.{flag} IS NOT NULL SET n.{flag} = null").consume(),
            what="clearing hub flags",
        )
        for start in range(0, len(raw), 10_000):
            marked += store.write(
                lambda tx, n=node, ids=raw[start : start + 10_000]: tx.run(
                    f"MATCH {n} WHERE n.{id_property} IN $ids SET n.{flag} = true RETURN count(n) AS c", ids=ids
                ).single()["c"],
                what="setting hub flags",
            )
    return marked


def sample_paths_cypher(
    target: Neo4jStore | Neo4jConfig,
    strategy: str = "walk",
    *,
    n: int,
    seed: int,
    hops: HopSpec = "2-4",
    patterns: str | Iterable[str] | None = None,
    hubs: str | Path | Iterable[str] | None = None,
    relations: Iterable[str] | None = None,
    start_types: Iterable[str] | None = None,
    mapping: PullMapping | None = None,
    max_attempts: int | None = None,
    batch: int = 256,
    **unsupported: Any,
) -> pl.DataFrame:
    """Sample up to `n` distinct paths in Neo4j (fewer when `max_attempts` walkers
    per part, default 20 per path wanted, do not find them).

    `walk`: random simple walks of `hops` hops (a count or a range like "2-4"; n is
    split evenly over the counts) from nodes of `start_types`, along `relations`
    (default: all). `pattern`: walks following `patterns`, templates in the syntax
    of the in-memory `pattern` sampler (n split evenly over them). `hubs`: a
    hubs.json from `kgsynth shatter` or node ids to flag as hubs first (None keeps
    the flags in the database). Every name is checked against the graph's
    vocabulary before it reaches Cypher text.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown Neo4j sampling strategy '{strategy}'; known: {', '.join(STRATEGIES)}")
    if unsupported:  # options of the in-memory samplers that Cypher sampling does not have
        raise ConfigError(
            f"Neo4j sampling does not take {', '.join(sorted(unsupported))}; it takes hops, patterns, relations, "
            "start_types, hubs (exclude), mapping, max_attempts and batch"
        )
    if n < 0 or batch < 1:
        raise ConfigError(f"need n ≥ 0 and batch ≥ 1; got n={n}, batch={batch}")
    templates = [patterns] if isinstance(patterns, str) else list(patterns or [])
    if strategy == "pattern" and not templates:
        raise ConfigError("the pattern strategy needs a template, e.g. 'disease -has_phenotype-> phenotype'")
    hop_list = parse_hops(hops)
    hub_list = hub_ids(hubs) if isinstance(hubs, str | Path) else None if hubs is None else list(hubs)
    store = target if isinstance(target, Neo4jStore) else connect(target)
    try:
        view = mapped_view(mapping) if mapping is not None else read_view(store)
        if strategy == "pattern":
            plans = [pattern_plan(t, view) for t in templates]
        else:
            plans = [walk_plan(view, h, relations, start_types) for h in hop_list]
        if hub_list is not None:
            _mark_hubs(store, view, hub_list)
        rng = np.random.default_rng(seed)
        rows: list[dict[str, Any]] = []
        for i, plan in enumerate(plans):
            quota = n // len(plans) + (i < n % len(plans))
            rows += _sample(store, view, strategy, plan, quota, rng, max_attempts or 20 * max(quota, 1), batch)
        for i, row in enumerate(rows):
            row.update(path_id=f"{strategy}-{seed}-{i}", seed=seed)
        return conform_paths(pl.DataFrame(rows, schema={c: PATHS_SCHEMA[c] for c in ROW_COLUMNS}))
    finally:
        if store is not target:
            store.close()


def _sample(
    store: Neo4jStore,
    view: GraphView,
    strategy: str,
    plan: Plan,
    n: int,
    rng: np.random.Generator,
    max_attempts: int,
    batch: int,
) -> list[dict[str, Any]]:
    from kgsynth.progress import new_progress

    anchors = _anchors(store, view, plan.anchors)
    rows: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    attempts = 0
    with new_progress() as progress:
        task = progress.add_task(f"sample {strategy} ({len(plan.steps)} hops) in Neo4j", total=n)
        while anchors and len(rows) < n and attempts < max_attempts:
            # Walk about as many as the yield so far says are needed, not always `batch`.
            rate = len(rows) / attempts if attempts else 0.5
            size = min(batch, max_attempts - attempts, max(16, int(1.2 * (n - len(rows)) / max(rate, 0.05)) + 1))
            attempts += size
            picks = rng.integers(len(anchors), size=size)
            walkers = [Walker(eids=[anchors[i][0]], ids=[anchors[i][1]], types=[anchors[i][2]]) for i in picks]
            for step in plan.steps:
                walkers = _advance(store, view, walkers, step, rng)
                if not walkers:
                    break
            for walker in walkers:
                key = (tuple(walker.ids), tuple(walker.relations), tuple(walker.forward))
                if key in seen or len(rows) >= n:
                    continue
                seen.add(key)
                rows.append(_path_row(walker, strategy, view))
                progress.advance(task)
    return rows


def _anchors(store: Neo4jStore, view: GraphView, labels: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(element id, node id, type) of every non-hub node that may start a path, sorted by id."""
    id_property = quote(view.properties["id"])
    found: list[tuple[str, str, str]] = []
    for label in labels:
        after: Any = None
        while True:
            where = f"n.{id_property} IS NOT NULL" if after is None else f"n.{id_property} > $after"
            page = store.read(
                f"MATCH (n:{quote(label)}) WHERE {where} AND coalesce(n.{quote(HUB_PROPERTY)}, false) = false "
                f"RETURN n.{id_property} AS key, elementId(n) AS eid ORDER BY key LIMIT 10000",
                after=after,
            )
            found.extend((r["eid"], f"{view.id_prefix}{r['key']}", view.schema.type_of_label[label]) for r in page)
            if len(page) < 10000:
                break
            after = max(r["key"] for r in page)
    return sorted(found, key=lambda a: a[1])


def _advance(store: Neo4jStore, view: GraphView, walkers: list[Walker], step: Step, rng) -> list[Walker]:
    """One hop for every walker; those with nowhere new to go drop out.

    Each walker brings a uniform number u from the seeded generator; Cypher lists
    its allowed neighbours in a fixed order and takes the one at ⌊u·count⌋. Only
    the picks travel back, and the choice is the seed's, not `rand()`'s.
    """
    draws = rng.random(len(walkers))
    rows = store.read(
        step_query(view, step),
        walkers=[{"i": i, "f": w.eids[-1], "visited": w.eids, "u": float(draws[i])} for i, w in enumerate(walkers)],
        labels=list(step.labels),
        symmetric=list(step.symmetric),
    )
    picks = {row["i"]: row["pick"] for row in rows}
    type_of_label, relation_of_type = view.schema.type_of_label, view.schema.relation_of_type
    alive = []
    for i, walker in enumerate(walkers):
        if i not in picks:
            continue
        eid, key, labels, rel_type, forward = picks[i]
        walker.eids.append(eid)
        walker.ids.append(f"{view.id_prefix}{key}")
        walker.types.append(min(type_of_label[label] for label in labels if label in step.labels))
        walker.relations.append(relation_of_type[rel_type])
        walker.forward.append(bool(forward))
        alive.append(walker)
    return alive


def step_query(view: GraphView, step: Step) -> str:
    """Per walker: the allowed neighbours, ordered by (type, direction, id), and the pick at ⌊u·count⌋.

    The relationship is matched either way round and its direction filtered, so
    symmetric relations (stored once per pair) match in both directions."""
    rel_types = "|".join(quote(t) for t in step.rel_types)
    direction = {
        "out": "AND (startNode(r) = a OR type(r) IN $symmetric) ",
        "in": "AND (endNode(r) = a OR type(r) IN $symmetric) ",
        "any": "",
    }[step.direction]
    id_property = quote(view.properties["id"])
    return (
        "UNWIND $walkers AS w MATCH (a) WHERE elementId(a) = w.f "
        f"MATCH (a)-[r:{rel_types}]-(b) "
        f"WHERE {NOT_HUB} AND b.{id_property} IS NOT NULL AND NOT elementId(b) IN w.visited {direction}"
        "AND any(label IN labels(b) WHERE label IN $labels) "
        "WITH w, b, type(r) AS type, startNode(r) = a AS forward "
        f"ORDER BY w.i, type, forward, b.{id_property} "
        f"WITH w, collect([elementId(b), b.{id_property}, labels(b), type, forward]) AS options "
        "RETURN w.i AS i, options[toInteger(floor(w.u * size(options)))] AS pick"
    )


def _path_row(walker: Walker, strategy: str, view: GraphView) -> dict[str, Any]:
    relations = view.schema.vocabulary.relations
    parts = [walker.types[0]]
    for relation, forward, node_type in zip(walker.relations, walker.forward, walker.types[1:], strict=True):
        arrow = f"-{relation}-" if relations[relation].symmetric else f"-{relation}->" if forward else f"<-{relation}-"
        parts += [arrow, node_type]
    return {
        "path_id": "",
        "nodes": walker.ids,
        "relations": walker.relations,
        "forward": walker.forward,
        "hops": len(walker.relations),
        "pattern": " ".join(parts),
        "strategy": strategy,
        "seed": 0,
        "snapshot": view.snapshot_hash or f"neo4j:{view.name}",
    }
