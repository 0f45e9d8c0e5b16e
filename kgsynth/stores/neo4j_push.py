"""Push a snapshot into Neo4j: schema first, then batched `UNWIND $rows` transactions.

Order: the unique constraint on `:Entity(id)`, a metadata node, nodes (one query
template per label), relationships (one template per type), then a count check.
Every batch is its own transaction, retried with backoff when the connection
drops; after each commit the batch number is saved in a small resume file
(`$XDG_CACHE_HOME/kgsynth/neo4j-push/`), so a push that gave up continues where it
stopped when re-run. Writes are idempotent on ids, so a batch repeated after a
commit of unknown outcome, or a second push of the same snapshot, changes no count.

Nodes are written as "create the missing ones with both labels, then set their
properties" rather than `MERGE (n:Entity {id}) SET n:Label`: ArcadeDB's Bolt
stand-in cannot add a label inside an explicit transaction and scans on a
two-label MERGE; with one writer the two forms are the same, and the constraint
still guards against a second one.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel

from kgsynth.atomic import write_text_atomic
from kgsynth.errors import ConfigError, StoreError
from kgsynth.graph.snapshot import Snapshot
from kgsynth.stores.neo4j import (
    ENTITY_LABEL,
    META_LABEL,
    GraphSchema,
    Neo4jConfig,
    Neo4jStore,
    RetryPolicy,
    connect,
    meta_properties,
    quote,
    schema_for,
)

DEFAULT_BATCH_SIZE = 5000

SCHEMA_STATEMENTS = (
    f"CREATE CONSTRAINT kgsynth_entity_id IF NOT EXISTS FOR (n:{ENTITY_LABEL}) REQUIRE n.id IS UNIQUE",
    f"CREATE CONSTRAINT kgsynth_snapshot_hash IF NOT EXISTS FOR (m:{META_LABEL}) REQUIRE m.hash IS UNIQUE",
)


@dataclass(frozen=True)
class Batch:
    phase: str  # "nodes" or "edges"
    key: str  # node type or relation
    start: int  # row range within that type's or relation's rows
    stop: int


@dataclass
class PushReport:
    snapshot: str
    target: str
    batch_size: int
    nodes: int
    edges: int
    batches: int
    resumed_batches: int  # committed by an earlier run and skipped
    retries: int
    node_seconds: float
    edge_seconds: float
    labels: dict[str, int] = field(default_factory=dict)  # counted in the database afterwards
    types: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.node_seconds + self.edge_seconds

    @property
    def edges_per_second(self) -> float:
        return self.edges / self.edge_seconds if self.edge_seconds else 0.0


class ResumeState(BaseModel):
    """Progress of one push of one snapshot into one database."""

    snapshot: str
    target: str
    push_id: str
    batch_size: int
    done: int = 0  # batches committed, in plan order
    total: int


def node_queries(label: str) -> tuple[str, str]:
    """Create the missing nodes of one label, then set properties; the second
    returns ids that exist under another label (a type clash) instead of hiding them."""
    entity, own = quote(ENTITY_LABEL), quote(label)
    create = (
        f"UNWIND $rows AS row OPTIONAL MATCH (e:{entity} {{id: row.id}}) "
        f"WITH row WHERE e IS NULL CREATE (n:{entity}:{own} {{id: row.id}})"
    )
    update = (
        f"UNWIND $rows AS row MATCH (n:{entity} {{id: row.id}}) "
        "SET n.name = row.name, n.type = $type, n.source = row.source, n.source_id = row.source_id, "
        "n.synonyms = row.synonyms "
        f"WITH n WHERE NOT n:{own} RETURN n.id AS id, labels(n) AS labels LIMIT 3"
    )
    return create, update


def edge_query(rel_type: str) -> str:
    entity = quote(ENTITY_LABEL)
    return (
        f"UNWIND $rows AS row MATCH (s:{entity} {{id: row.src}}) MATCH (t:{entity} {{id: row.dst}}) "
        f"MERGE (s)-[r:{quote(rel_type)}]->(t) SET r.relation = $relation, r.source = row.source "
        "RETURN count(r) AS merged"
    )


def plan_batches(
    snapshot: Snapshot, batch_size: int
) -> tuple[list[Batch], dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """The fixed order of batches (so a resumed run skips exactly the committed ones)."""
    nodes = {
        key[0]: frame.select("id", "name", "source", "source_id", "synonyms")
        for key, frame in sorted(snapshot.nodes.partition_by("type", as_dict=True, maintain_order=True).items())
    }
    edges = {
        key[0]: frame.select("src", "dst", "source")
        for key, frame in sorted(snapshot.edges.partition_by("relation", as_dict=True, maintain_order=True).items())
    }
    plan = [
        Batch(phase, key, start, min(start + batch_size, frame.height))
        for phase, groups in (("nodes", nodes), ("edges", edges))
        for key, frame in groups.items()
        for start in range(0, frame.height, batch_size)
    ]
    return plan, nodes, edges


def resume_file(snapshot: Snapshot, config: Neo4jConfig, resume_dir: Path | None = None) -> Path:
    base = resume_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kgsynth" / "neo4j-push"
    key = hashlib.sha256(f"{config.target}\n{snapshot.hash}".encode()).hexdigest()[:20]
    return base / f"{key}.json"


def push_snapshot(
    target: Neo4jStore | Neo4jConfig,
    snapshot: Snapshot,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resume: bool = True,
    resume_dir: Path | None = None,
    policy: RetryPolicy | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> PushReport:
    """Load `snapshot` into Neo4j; counts are checked in the database at the end.

    Every node type and relation is checked against the snapshot's vocabulary
    before anything is sent. A lost connection is retried with backoff (`policy`);
    when that gives up, re-running the same call resumes after the last committed
    batch. `on_batch(done, total)` is called after each commit.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    schema = schema_for(snapshot.vocabulary, snapshot.nodes["type"].unique(), snapshot.edges["relation"].unique())
    plan, nodes, edges = plan_batches(snapshot, batch_size)
    store = target if isinstance(target, Neo4jStore) else connect(target)
    try:
        return _push(store, snapshot, schema, plan, nodes, edges, batch_size, resume, resume_dir, policy, on_batch)
    finally:
        if store is not target:
            store.close()


def _push(
    store: Neo4jStore,
    snapshot: Snapshot,
    schema: GraphSchema,
    plan: list[Batch],
    nodes: dict[str, pl.DataFrame],
    edges: dict[str, pl.DataFrame],
    batch_size: int,
    resume: bool,
    resume_dir: Path | None,
    policy: RetryPolicy | None,
    on_batch: Callable[[int, int], None] | None,
) -> PushReport:
    from kgsynth.progress import console, new_progress

    config = store.config
    retries = 0

    def note_retry(attempt: int, delay: float, error: str) -> None:
        nonlocal retries
        retries += 1
        console.print(f"[yellow]Neo4j: {error}; retry {attempt} in {delay:.1f}s[/]", highlight=False)

    for statement in SCHEMA_STATEMENTS:
        store.write(lambda tx, q=statement: tx.run(q).consume(), what="creating constraints", policy=policy,
                    on_retry=note_retry)

    state_path = resume_file(snapshot, config, resume_dir)
    state = _start_or_resume(store, snapshot, schema, state_path, batch_size, len(plan), resume, policy, note_retry)
    resumed = state.done
    node_queries_by_type = {t: node_queries(schema.labels[t]) for t in nodes}
    edge_query_by_relation = {r: edge_query(schema.types[r]) for r in edges}

    def write_nodes(tx, node_type: str, rows: list[dict[str, Any]]) -> None:
        create, update = node_queries_by_type[node_type]
        tx.run(create, rows=rows).consume()
        clashes = tx.run(update, rows=rows, type=node_type).data()
        if clashes:
            clash = clashes[0]
            raise StoreError(
                f"Neo4j at {config.target}: node '{clash['id']}' already exists with labels {clash['labels']}, "
                f"but this snapshot says it is a {node_type} (:{schema.labels[node_type]}); push into an empty "
                "database or delete the old node"
            )

    def write_edges(tx, relation: str, rows: list[dict[str, Any]]) -> None:
        merged = tx.run(edge_query_by_relation[relation], rows=rows, relation=relation).single()["merged"]
        if merged != len(rows):
            raise StoreError(
                f"Neo4j at {config.target}: {len(rows) - merged} of {len(rows)} '{relation}' relationships name a node "
                "that is not in the database (was it deleted during the push?); re-run the push"
            )

    timings = {"nodes": 0.0, "edges": 0.0}
    total_rows = snapshot.nodes.height + snapshot.edges.height
    with new_progress() as progress:
        task = progress.add_task(f"push → {config.target}", total=total_rows)
        for index, batch in enumerate(plan):
            if index < state.done:
                progress.advance(task, batch.stop - batch.start)
                continue
            groups = nodes if batch.phase == "nodes" else edges
            rows = groups[batch.key].slice(batch.start, batch.stop - batch.start).to_dicts()
            writer = write_nodes if batch.phase == "nodes" else write_edges
            started = time.perf_counter()
            store.write(
                lambda tx, w=writer, k=batch.key, r=rows: w(tx, k, r),
                what=f"pushing batch {index + 1}/{len(plan)} ({batch.phase} {batch.key}); progress is saved, "
                "re-run the same command to resume",
                policy=policy,
                on_retry=note_retry,
            )
            timings[batch.phase] += time.perf_counter() - started
            state.done = index + 1
            _save_state(state_path, state)
            progress.advance(task, batch.stop - batch.start)
            if on_batch is not None:
                on_batch(state.done, len(plan))

    labels, types = count_in_database(store, schema)
    short = [
        f":{schema.labels[t]} {labels[schema.labels[t]]:,} < {n:,}"
        for t, n in snapshot.manifest.counts.node_types.items()
        if labels[schema.labels[t]] < n
    ] + [
        f":{schema.types[r]} {types[schema.types[r]]:,} < {n:,}"
        for r, n in snapshot.manifest.counts.relations.items()
        if types[schema.types[r]] < n
    ]
    if short:
        raise StoreError(
            f"Neo4j at {config.target} holds fewer items than the snapshot after the push: {'; '.join(short)}"
        )
    store.write(
        lambda tx: tx.run(
            f"MATCH (m:{quote(META_LABEL)} {{hash: $hash}}) SET m.status = 'complete', m.pushed_at = $now",
            hash=snapshot.hash,
            now=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        ).consume(),
        what="marking the push complete",
        policy=policy,
    )
    state_path.unlink(missing_ok=True)
    return PushReport(
        snapshot=snapshot.hash,
        target=config.target,
        batch_size=batch_size,
        nodes=snapshot.nodes.height,
        edges=snapshot.edges.height,
        batches=len(plan),
        resumed_batches=resumed,
        retries=retries,
        node_seconds=timings["nodes"],
        edge_seconds=timings["edges"],
        labels={schema.labels[t]: labels[schema.labels[t]] for t in nodes},
        types={schema.types[r]: types[schema.types[r]] for r in edges},
    )


def _start_or_resume(
    store: Neo4jStore,
    snapshot: Snapshot,
    schema: GraphSchema,
    state_path: Path,
    batch_size: int,
    total: int,
    resume: bool,
    policy: RetryPolicy | None,
    on_retry: Callable[[int, float, str], None],
) -> ResumeState:
    """Resume only when the database still carries the same unfinished push."""
    meta = quote(META_LABEL)
    previous = _load_state(state_path) if resume else None
    if previous is not None and previous.batch_size == batch_size and previous.total == total:
        rows = store.read(f"MATCH (m:{meta} {{hash: $hash}}) RETURN m.push_id AS push_id, m.status AS status",
                          hash=snapshot.hash)
        if rows and rows[0]["push_id"] == previous.push_id and rows[0]["status"] == "loading":
            return previous
    state = ResumeState(
        snapshot=snapshot.hash, target=store.config.target, push_id=uuid.uuid4().hex, batch_size=batch_size, total=total
    )
    properties = meta_properties(snapshot, schema)
    store.write(
        lambda tx: tx.run(
            f"MERGE (m:{meta} {{hash: $hash}}) SET m.name = $p.name, m.vocabulary = $p.vocabulary, "
            "m.labels = $p.labels, m.types = $p.types, m.source_info = $p.source_info, m.counts = $p.counts, "
            "m.status = 'loading', m.push_id = $push_id",
            hash=snapshot.hash,
            p=properties,
            push_id=state.push_id,
        ).consume(),
        what="writing the snapshot's metadata node",
        policy=policy,
        on_retry=on_retry,
    )
    _save_state(state_path, state)
    return state


def _load_state(path: Path) -> ResumeState | None:
    try:
        return ResumeState.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no file or a damaged one: start over (writes are idempotent)


def _save_state(path: Path, state: ResumeState) -> None:
    write_text_atomic(path, state.model_dump_json())


def count_in_database(store: Neo4jStore, schema: GraphSchema) -> tuple[dict[str, int], dict[str, int]]:
    """Nodes per label and relationships per type, as the database counts them."""
    labels = {
        label: store.read(f"MATCH (n:{quote(label)}) RETURN count(n) AS c")[0]["c"] for label in schema.labels.values()
    }
    types = {
        rel_type: store.read(f"MATCH ()-[r:{quote(rel_type)}]->() RETURN count(r) AS c")[0]["c"]
        for rel_type in schema.types.values()
    }
    return labels, types
