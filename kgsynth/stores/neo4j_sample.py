"""Path sampling inside Neo4j: the `walk` and `pattern` strategies as Cypher.

For graphs that only live in Neo4j. Cypher does the graph work: one batched
`UNWIND $walkers` query per hop for a few hundred walkers at a time, which lists
each walker's allowed neighbours in a fixed order and returns only the one picked.
The pick is ⌊u·count⌋ for a number u the walker brings from
`numpy.random.default_rng(seed)`: Cypher's `rand()` cannot be seeded, so this is
what makes Neo4j sampling reproducible (same seed, same graph, same paths).
Start nodes are drawn the same way from the sorted candidate ids. Hubs are
avoided through a node flag (`kgsynth_hub`, set by `mark_hubs` from the
k-Shattering output): no path starts at, passes through or ends at one.

The result is a paths table (`kgsynth.sample.paths.PATHS_SCHEMA`), the same
`paths.parquet` the in-memory samplers write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kgsynth.errors import ConfigError
from kgsynth.sample.params import HopSpec, hub_ids, parse_hops
from kgsynth.sample.paths import PATHS_SCHEMA, conform_paths
from kgsynth.stores.neo4j import HUB_PROPERTY, Neo4jConfig, Neo4jStore, connect, quote
from kgsynth.stores.neo4j_pull import GraphView, PullMapping, mapped_view, read_view

STRATEGIES = ("walk", "pattern")
_HOP = re.compile(r"^(<-|-)([^<>\s-][^<>\s]*?)(->|-)$")
NOT_HUB = f"coalesce(b.{quote(HUB_PROPERTY)}, false) = false"
ROW_COLUMNS = ("path_id", "nodes", "relations", "forward", "hops", "pattern", "strategy", "seed", "snapshot")


@dataclass(frozen=True)
class Step:
    """One hop: the relations it may follow, in which direction, to which node type."""

    relations: tuple[str, ...]
    direction: str  # "out" (stored direction), "in" (against it) or "any"
    node_type: str | None  # None: any type


@dataclass(frozen=True)
class Pattern:
    anchors: tuple[str, ...]  # node types a path may start at; empty: any
    steps: tuple[Step, ...]


def parse_pattern(text: str, view: GraphView) -> Pattern:
    """Parse `disease -has_phenotype-> phenotype <-is_a- phenotype` (`*` for any type;
    `-rel-` for either direction) and check every name against the graph's vocabulary."""
    tokens = text.split()
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        raise ConfigError(
            f"pattern {text!r}: expected 'TYPE -relation-> TYPE <-relation- TYPE …' (types and hops alternating)"
        )
    types = [None if t == "*" else t for t in tokens[0::2]]
    for node_type in types:
        if node_type is not None:
            view.schema.label(node_type)  # UnknownRelationError listing the known types
    steps = []
    for hop, node_type in zip(tokens[1::2], types[1:], strict=True):
        match = _HOP.match(hop)
        if match is None or (match.group(1) == "<-" and match.group(3) == "->"):
            raise ConfigError(f"pattern {text!r}: {hop!r} is not a hop; write -relation->, <-relation- or -relation-")
        relation = match.group(2)
        view.schema.rel_type(relation)  # UnknownRelationError listing the known relations
        direction = "in" if match.group(1) == "<-" else "out" if match.group(3) == "->" else "any"
        if view.schema.vocabulary.relations[relation].symmetric:
            direction = "any"  # stored once per pair, either way round
        steps.append(Step(relations=(relation,), direction=direction, node_type=node_type))
    return Pattern(anchors=(types[0],) if types[0] else (), steps=tuple(steps))


@dataclass
class Walker:
    eids: list[str]
    ids: list[str]
    types: list[str]
    relations: list[str] = field(default_factory=list)
    forward: list[bool] = field(default_factory=list)


def mark_hubs(target: Neo4jStore | Neo4jConfig, hub_ids: Iterable[str], *, mapping: PullMapping | None = None) -> int:
    """Set the hub flag on exactly these nodes (clearing it elsewhere); returns how many were found."""
    store = target if isinstance(target, Neo4jStore) else connect(target)
    try:
        view = mapped_view(mapping) if mapping is not None else read_view(store)
        return _mark_hubs(store, view, list(hub_ids))
    finally:
        if store is not target:
            store.close()


def _mark_hubs(store: Neo4jStore, view: GraphView, hub_ids: list[str]) -> int:
    flag, id_property = quote(HUB_PROPERTY), quote(view.properties["id"])
    raw = sorted({i.removeprefix(view.id_prefix) for i in hub_ids})
    marked = 0
    for label in sorted(view.schema.type_of_label):
        node = f"(n:{quote(label)})"
        store.write(lambda tx, n=node: tx.run(f"MATCH {n} WHERE n.{flag} IS NOT NULL REMOVE n.{flag}").consume(),
                    what="clearing hub flags")
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
    pattern: str | None = None,
    hubs: str | Path | Iterable[str] | None = None,
    relations: Iterable[str] | None = None,
    start_types: Iterable[str] | None = None,
    mapping: PullMapping | None = None,
    max_attempts: int | None = None,
    batch: int = 256,
) -> pl.DataFrame:
    """Sample up to `n` distinct paths in Neo4j (fewer when `max_attempts` walkers,
    default 20·n, do not find them).

    `walk`: random simple walks of `hops` hops (a count or a range like "2-4"; n is
    split evenly over the counts) from nodes of `start_types`, along `relations`
    (default: all). `pattern`: paths matching `pattern`, e.g.
    "disease -has_phenotype-> phenotype <-is_a- phenotype". `hubs`: a hubs.json from
    `kgsynth shatter` or node ids to flag as hubs first (None keeps the flags in the
    database). Names are checked against the graph's vocabulary before any is used.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown Neo4j sampling strategy '{strategy}'; known: {', '.join(STRATEGIES)}")
    if n < 0 or batch < 1:
        raise ConfigError(f"need n ≥ 0 and batch ≥ 1; got n={n}, batch={batch}")
    if strategy == "pattern" and not pattern:
        raise ConfigError("the pattern strategy needs a pattern, e.g. 'disease -has_phenotype-> phenotype'")
    hop_list = parse_hops(hops)
    hub_list = hub_ids(hubs) if isinstance(hubs, str | Path) else None if hubs is None else list(hubs)
    store = target if isinstance(target, Neo4jStore) else connect(target)
    try:
        view = mapped_view(mapping) if mapping is not None else read_view(store)
        if strategy == "pattern":
            plans = [(parse_pattern(pattern or "", view), n)]
        else:
            walked = tuple(sorted(set(relations))) if relations is not None else tuple(sorted(view.schema.types))
            if not walked:
                raise ConfigError("a walk needs at least one relation to follow")
            for relation in walked:
                view.schema.rel_type(relation)  # UnknownRelationError listing the known relations
            anchors = tuple(sorted(set(start_types))) if start_types is not None else ()
            for node_type in anchors:
                view.schema.label(node_type)
            quotas = [n // len(hop_list) + (i < n % len(hop_list)) for i in range(len(hop_list))]
            plans = [
                (Pattern(anchors=anchors, steps=(Step(walked, "any", None),) * h), quota)
                for h, quota in zip(hop_list, quotas, strict=True)
            ]
        if hub_list is not None:
            _mark_hubs(store, view, hub_list)
        rng = np.random.default_rng(seed)
        rows: list[dict[str, Any]] = []
        for plan, quota in plans:
            rows += _sample(store, view, strategy, plan, quota, rng, max_attempts or 20 * max(quota, 1), batch)
        for i, row in enumerate(rows):
            row.update(path_id=f"{strategy}-{seed}-{i}", seed=seed)
        frame = pl.DataFrame(rows, schema={c: PATHS_SCHEMA[c] for c in ROW_COLUMNS})
        return conform_paths(frame)
    finally:
        if store is not target:
            store.close()


def _sample(
    store: Neo4jStore,
    view: GraphView,
    strategy: str,
    plan: Pattern,
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
            size = min(batch, max_attempts - attempts)
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


def _anchors(store: Neo4jStore, view: GraphView, node_types: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(element id, node id, type) of every non-hub node that may start a path, sorted by id."""
    id_property = quote(view.properties["id"])
    labels = sorted(view.schema.label(t) for t in node_types) if node_types else sorted(view.schema.type_of_label)
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
        labels=sorted(view.schema.type_of_label),
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
        walker.types.append(min(type_of_label[label] for label in labels if label in type_of_label))
        walker.relations.append(relation_of_type[rel_type])
        walker.forward.append(bool(forward))
        alive.append(walker)
    return alive


def step_query(view: GraphView, step: Step) -> str:
    """Per walker: the allowed neighbours, ordered by (type, direction, id), and the pick at ⌊u·count⌋."""
    schema = view.schema
    rel_types = "|".join(quote(schema.rel_type(r)) for r in step.relations)
    left, right = {"out": ("-", "->"), "in": ("<-", "-"), "any": ("-", "-")}[step.direction]
    target = f"(b:{quote(schema.label(step.node_type))})" if step.node_type else "(b)"
    id_property = quote(view.properties["id"])
    return (
        "UNWIND $walkers AS w MATCH (a) WHERE elementId(a) = w.f "
        f"MATCH (a){left}[r:{rel_types}]{right}{target} "
        f"WHERE {NOT_HUB} AND b.{id_property} IS NOT NULL AND NOT elementId(b) IN w.visited "
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
