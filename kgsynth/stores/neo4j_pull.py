"""Pull a graph that lives in Neo4j back into a snapshot, streaming in pages.

A graph kgsynth pushed carries metadata nodes (vocabulary, label and type names),
so `pull_snapshot(store)` needs nothing else and its snapshot has the same content
hash as the one pushed. Any other graph needs a mapping file (YAML or JSON) that
names the vocabulary, which labels are which node types, which relationship types
are which relations, and the property names:

```yaml
vocabulary: hpo              # a bundled vocabulary or a .ttl file
labels: {Phenotype: phenotype, Disease: disease}
relationship_types: {IS_A: is_a, HAS_PHENOTYPE: has_phenotype}
id_property: id              # optional, these are the defaults
id_prefix: "mykg:"           # prepended to ids, to namespace them
```

Nodes are read label by label with keyset pages on the id property; each page
brings its nodes' outgoing relationships along. Nodes without an id and
relationships of unmapped types or to unmapped nodes are counted in the
snapshot's `dropped`, never lost silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field, ValidationError

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError, StoreError
from kgsynth.graph.snapshot import SourceInfo, Snapshot, build_snapshot
from kgsynth.graph.vocabulary import Vocabulary, load_vocabulary
from kgsynth.stores.neo4j import (
    IDENTIFIER,
    GraphSchema,
    Neo4jConfig,
    Neo4jStore,
    connect,
    pushed_snapshots,
    quote,
)

DEFAULT_PAGE_SIZE = 5000
FIELDS = ("id", "name", "source", "source_id", "synonyms")


class PullMapping(BaseModel):
    """How a graph kgsynth did not push maps onto a snapshot."""

    vocabulary: str
    labels: dict[str, str]  # Neo4j label → node type
    relationship_types: dict[str, str]  # Neo4j relationship type → relation name
    id_property: str = "id"
    name_property: str = "name"
    source_property: str = "source"
    source_id_property: str = "source_id"
    synonyms_property: str = "synonyms"
    id_prefix: str = ""
    name: str = "neo4j"
    options: dict[str, Any] = Field(default_factory=dict)


def read_mapping(path: str | Path) -> PullMapping:
    """Read a mapping file (YAML or JSON); names are checked before any Cypher is built."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such mapping file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        mapping = PullMapping.model_validate(data)
    except yaml.YAMLError as exc:
        raise InputFormatError(f"not YAML or JSON: {exc}", file=path) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise InputFormatError(f"{error['msg']}; see the README's Neo4j section for the format", file=path,
                               field=field) from None
    return mapping


@dataclass(frozen=True)
class GraphView:
    """How kgsynth reads one Neo4j graph: names, properties, and where it came from."""

    schema: GraphSchema
    properties: dict[str, str]  # snapshot field → Neo4j property
    id_prefix: str
    name: str
    source_info: SourceInfo | None
    snapshot_hash: str | None  # the one snapshot kgsynth pushed here, if exactly one


def mapped_view(mapping: PullMapping, vocabulary: Vocabulary | None = None) -> GraphView:
    """A view from a user mapping, refusing names that are unsafe or not in the vocabulary."""
    vocabulary = vocabulary or load_vocabulary(mapping.vocabulary)
    properties = {
        "id": mapping.id_property,
        "name": mapping.name_property,
        "source": mapping.source_property,
        "source_id": mapping.source_id_property,
        "synonyms": mapping.synonyms_property,
    }
    for kind, names in (
        ("label", mapping.labels),
        ("relationship type", mapping.relationship_types),
        ("property", {v: v for v in properties.values()}),
    ):
        for name in names:
            if not IDENTIFIER.match(name):
                raise ConfigError(f"mapping: {kind} {name!r} is not a plain Neo4j identifier (letters, digits, _)")
    unknown_types = sorted(set(mapping.labels.values()) - set(vocabulary.node_types))
    if unknown_types:
        vocabulary = vocabulary.check_node_types(unknown_types)
    for relation in mapping.relationship_types.values():
        vocabulary.relation(relation)
    duplicates = {t for t in mapping.labels.values() if list(mapping.labels.values()).count(t) > 1}
    if duplicates:
        raise ConfigError(
            f"mapping: node type(s) {sorted(duplicates)} come from more than one label; map one label each"
        )
    return GraphView(
        schema=GraphSchema(
            vocabulary=vocabulary,
            labels={node_type: label for label, node_type in mapping.labels.items()},
            types={relation: rel_type for rel_type, relation in mapping.relationship_types.items()},
        ),
        properties=properties,
        id_prefix=mapping.id_prefix,
        name=mapping.name,
        source_info=None,
        snapshot_hash=None,
    )


def read_view(store: Neo4jStore, mapping: PullMapping | None = None) -> GraphView:
    """The mapping's view, or the one kgsynth's metadata nodes describe."""
    if mapping is not None:
        return mapped_view(mapping)
    pushed = pushed_snapshots(store)
    if not pushed:
        raise StoreError(
            f"Neo4j at {store.config.target} holds no kgsynth metadata (it was not loaded by `kgsynth neo4j push`); "
            "pass --mapping FILE naming its labels and relationship types (see the README's Neo4j section)"
        )
    unfinished = [p for p in pushed if p.status != "complete"]
    if unfinished:
        raise StoreError(
            f"Neo4j at {store.config.target}: the push of snapshot '{unfinished[0].name}' ({unfinished[0].hash[:12]}) "
            "did not finish; re-run `kgsynth neo4j push` to complete it first"
        )
    vocabulary = pushed[0].schema.vocabulary
    labels, types = dict(pushed[0].schema.labels), dict(pushed[0].schema.types)
    for other in pushed[1:]:
        vocabulary = vocabulary.merged(other.schema.vocabulary)
        labels.update(other.schema.labels)
        types.update(other.schema.types)
    single = pushed[0] if len(pushed) == 1 else None
    return GraphView(
        schema=GraphSchema(vocabulary=vocabulary, labels=labels, types=types),
        properties={f: f for f in FIELDS},
        id_prefix="",
        name=single.name if single else "neo4j",
        source_info=SourceInfo.model_validate_json(single.source_info) if single and single.source_info else None,
        snapshot_hash=single.hash if single else None,
    )


def page_query(label: str, properties: dict[str, str], first: bool) -> str:
    """One page of nodes of one label, each with its outgoing relationships."""
    p = {field: quote(name) for field, name in properties.items()}
    where = f"s.{p['id']} IS NOT NULL" if first else f"s.{p['id']} > $after"
    return (
        f"MATCH (s:{quote(label)}) WHERE {where} WITH s ORDER BY s.{p['id']} LIMIT $page "
        "OPTIONAL MATCH (s)-[r]->(t) "
        f"WITH s, collect(CASE WHEN r IS NULL THEN NULL ELSE [type(r), t.{p['id']}, r.{p['source']}] END) AS out "
        f"RETURN s.{p['id']} AS key, s.{p['name']} AS name, s.{p['source']} AS source, "
        f"s.{p['source_id']} AS source_id, s.{p['synonyms']} AS synonyms, out"
    )


def pull_snapshot(
    target: Neo4jStore | Neo4jConfig,
    *,
    mapping: PullMapping | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Snapshot:
    """Read nodes and relationships from Neo4j into a snapshot (in memory; write it with `write_snapshot`)."""
    if page_size < 1:
        raise ConfigError(f"page size must be at least 1, got {page_size}")
    view = mapped_view(mapping) if mapping is not None else None  # checked before connecting
    store = target if isinstance(target, Neo4jStore) else connect(target)
    try:
        return _pull(store, view or read_view(store), mapping, page_size)
    finally:
        if store is not target:
            store.close()


def _pull(store: Neo4jStore, view: GraphView, mapping: PullMapping | None, page_size: int) -> Snapshot:
    from kgsynth.progress import new_progress

    id_property = quote(view.properties["id"])
    prefix = view.id_prefix
    nodes: dict[str, list[Any]] = {field: [] for field in ("id", "name", "type", "source", "source_id", "synonyms")}
    edges: dict[str, list[Any]] = {field: [] for field in ("src", "rel_type", "dst", "source")}
    dropped: dict[str, int] = {}
    type_of_label = view.schema.type_of_label
    totals = {
        label: store.read(f"MATCH (n:{quote(label)}) RETURN count(n) AS c")[0]["c"] for label in sorted(type_of_label)
    }
    with new_progress() as progress:
        task = progress.add_task(f"pull ← {store.config.target}", total=sum(totals.values()))
        for label in sorted(type_of_label):
            node_type = type_of_label[label]
            missing = store.read(f"MATCH (n:{quote(label)}) WHERE n.{id_property} IS NULL RETURN count(n) AS c")[0]["c"]
            if missing:
                dropped[f"nodes of label {label} without the id property '{view.properties['id']}'"] = missing
            after: Any = None
            while True:
                rows = store.read(page_query(label, view.properties, after is None), after=after, page=page_size)
                if not rows:
                    break
                for row in rows:
                    node_id = f"{prefix}{row['key']}"
                    nodes["id"].append(node_id)
                    nodes["name"].append(_text(row["name"]))
                    nodes["type"].append(node_type)
                    nodes["source"].append(_text(row["source"]))
                    nodes["source_id"].append(_text(row["source_id"]))
                    nodes["synonyms"].append(_text_list(row["synonyms"]))
                    for rel_type, dst, source in row["out"]:
                        edges["src"].append(node_id)
                        edges["rel_type"].append(rel_type)
                        edges["dst"].append(None if dst is None else f"{prefix}{dst}")
                        edges["source"].append(_text(source))
                after = max(row["key"] for row in rows)
                progress.advance(task, len(rows))
                if len(rows) < page_size:
                    break

    node_frame = pl.DataFrame(nodes, schema={"id": pl.String, "name": pl.String, "type": pl.String,
                                             "source": pl.String, "source_id": pl.String,
                                             "synonyms": pl.List(pl.String)})
    edge_frame = pl.DataFrame(edges, schema={f: pl.String for f in edges})
    relation_of_type = view.schema.relation_of_type
    unmapped = edge_frame.filter(~pl.col("rel_type").is_in(list(relation_of_type)))
    if unmapped.height:
        dropped["relationships of types the mapping does not name"] = unmapped.height
    edge_frame = edge_frame.filter(pl.col("rel_type").is_in(list(relation_of_type)))
    inside = pl.col("dst").is_not_null() & pl.col("dst").is_in(node_frame["id"].implode())
    outside = edge_frame.filter(~inside).height
    if outside:
        dropped["relationships to nodes outside the mapped labels"] = outside
    edge_frame = edge_frame.filter(inside)
    edge_frame = edge_frame.select(
        "src", "dst", pl.col("rel_type").replace_strict(relation_of_type).alias("relation"), "source"
    )
    options: dict[str, Any] = {"target": store.config.target}
    if mapping is not None:
        options["mapping"] = json.loads(mapping.model_dump_json())
    return build_snapshot(
        node_frame,
        edge_frame,
        vocabulary=view.schema.vocabulary,
        name=view.name,
        loader="neo4j",
        options=options,
        source_info=view.source_info,
        dropped=dropped,
        where=store.config.target,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _text_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]
