"""From path rows to what writers and items need: names, types, wording per hop.

Names and types come from the snapshot the paths were sampled from; they are
looked up once for every node the paths mention (path nodes and negatives), and
the wording of each (relation, direction) once per run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from kgsynth.errors import InputFormatError
from kgsynth.graph.snapshot import Snapshot
from kgsynth.llm.verbalize import PathFacts


@dataclass(frozen=True)
class NodeInfo:
    name: str
    type: str
    synonyms: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [self.name, *self.synonyms]


def node_lookup(snapshot: Snapshot, paths: pl.DataFrame) -> dict[str, NodeInfo]:
    ids = pl.concat([paths["nodes"].explode(), paths["negatives"].explode()]).drop_nulls().unique()
    table = snapshot.nodes.filter(pl.col("id").is_in(ids.implode())).select("id", "name", "type", "synonyms")
    return {
        row[0]: NodeInfo(row[1], row[2], tuple(row[3] or ()))
        for row in table.iter_rows()
    }


class Phrasebook:
    """Vocabulary wording, memoized: hop phrases by (relation, forward), type labels by type."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.vocabulary = snapshot.vocabulary
        self._phrases: dict[tuple[str, bool], tuple[str, str]] = {}
        self._labels: dict[str, str] = {}

    def phrases(self, relation: str, forward: bool) -> tuple[str, str]:
        """(reads a <phrase> b for the hop a→b, reads b <phrase> a)."""
        found = self._phrases.get((relation, forward))
        if found is None:
            rel = self.vocabulary.relation(relation)
            found = self._phrases[(relation, forward)] = (rel.phrase(forward), rel.phrase(not forward))
        return found

    def label(self, node_type: str) -> str:
        found = self._labels.get(node_type)
        if found is None:
            known = self.vocabulary.node_types.get(node_type)
            found = self._labels[node_type] = known.label if known else node_type.replace("_", " ")
        return found


def path_facts(row: dict[str, Any], nodes: dict[str, NodeInfo], book: Phrasebook) -> tuple[PathFacts, list[NodeInfo]]:
    try:
        infos = [nodes[node_id] for node_id in row["nodes"]]
    except KeyError as exc:
        raise InputFormatError(
            f"path '{row['path_id']}' names node {exc.args[0]!r}, which the snapshot lacks; "
            "give the snapshot the paths were sampled from (--snapshot)",
            field="nodes",
        ) from None
    if len(row["relations"]) != len(infos) - 1 or len(row["forward"]) != len(row["relations"]):
        raise InputFormatError(
            f"path '{row['path_id']}' has {len(infos)} nodes, {len(row['relations'])} relations and "
            f"{len(row['forward'])} directions; a path of k hops has k+1 nodes and k of each",
            field="relations",
        )
    worded = [book.phrases(r, f) for r, f in zip(row["relations"], row["forward"], strict=True)]
    facts = PathFacts(
        names=tuple(i.name for i in infos),
        types=tuple(book.label(i.type) for i in infos),
        phrases=tuple(w[0] for w in worded),
        back_phrases=tuple(w[1] for w in worded),
    )
    return facts, infos


def item_id(row: dict[str, Any], kind: str, prompt_hash: str) -> str:
    """Stable: the same path, kind and prompt text always give the same id."""
    key = json.dumps([row["nodes"], row["relations"], row["forward"], kind, prompt_hash], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:32]
