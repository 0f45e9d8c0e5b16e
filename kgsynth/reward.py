"""The path reward for RL: how much of an item's path a model's reasoning states.

    reward = (path entities named + hops stated) / (path entities + hops)

An entity counts when the reasoning names it (by its name, or any synonym when a
snapshot is given). A hop counts when its two entities are named next to each
other in one sentence, in either order ("Marfan syndrome presents with
Arachnodactyly."), and no sentence that names them so misstates the hop's relation
(verification's relation lexicon, `kgsynth.verify.lexicon`: "Arachnodactyly causes
Marfan syndrome", "Marfan syndrome does not present with Arachnodactyly" earn
nothing for the hop). Matching is whole-word, case- and punctuation-insensitive and
longest-first, as in verification: writing "Focal seizure" does not earn the
entity "Seizure". The score is entity and edge level, never token overlap, so
copying the question or padding the answer earns nothing.

`item` may be an `Item`, a row of the items table (`nodes`, `node_names`, and
`relations` + `forward` for the relation check) or a row of the exported dataset
(`path_nodes`: [{id, name, type}], and `path_edges`: [{source, relation, target,
direction}]). Without the relations, hops are credited on the names alone. The
lexicon is the snapshot's vocabulary's when a snapshot is given, else that of
`vocabulary` (a bundled name, a .ttl file or a `Vocabulary`), else every bundled
vocabulary's. `path_rewards` has the signature TRL's GRPOTrainer expects of a
reward function (it reads `path_edges` when the dataset passes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from kgsynth.errors import InputFormatError
from kgsynth.generate.item import Item
from kgsynth.graph.snapshot import Snapshot
from kgsynth.graph.vocabulary import Vocabulary
from kgsynth.verify.lexicon import MISSTATED, RelationLexicon
from kgsynth.verify.relation import StepReader, path_positions, path_steps
from kgsynth.verify.text import EntityLinker, linker_for_names


@dataclass(frozen=True)
class PathRewardDetail:
    entities: list[bool]  # per path entity, anchor first: named in the reasoning
    edges: list[bool]  # per hop: its two entities named together in one sentence, its relation not misstated
    reward: float
    misstated: list[bool] = field(default_factory=list)  # per hop: a sentence naming its two entities misstates its relation


def path_reward(
    reasoning_text: str,
    item: Item | Mapping[str, Any],
    *,
    snapshot: Snapshot | None = None,
    vocabulary: Vocabulary | str | Path | None = None,
) -> float:
    """The share of the item's path entities and edges the reasoning states, in [0, 1]."""
    return path_reward_detail(reasoning_text, item, snapshot=snapshot, vocabulary=vocabulary).reward


def path_reward_detail(
    reasoning_text: str,
    item: Item | Mapping[str, Any],
    *,
    snapshot: Snapshot | None = None,
    vocabulary: Vocabulary | str | Path | None = None,
) -> PathRewardDetail:
    """Which entities and hops the reasoning states, and the reward."""
    ids, names = _path_of(item)
    hops = _hops_of(item, len(ids))
    if snapshot is not None:
        from kgsynth.verify.index import graph_index

        index = graph_index(snapshot)
        linker: EntityLinker = index.linker
        keys = [index.engine.index_of(node) if index.engine.has_index(node) else node for node in ids]
    else:
        linker = linker_for_names({node: [name] for node, name in zip(ids, names, strict=True)})
        keys = list(ids)
    text = reasoning_text or ""
    mentions = linker.link(text)
    resolved = path_positions(mentions, keys)

    entities = [False] * len(ids)
    for positions in resolved:
        for k in positions:
            entities[k] = True
    edges = [False] * (len(ids) - 1)
    for i in range(1, len(mentions)):
        if mentions[i].sentence != mentions[i - 1].sentence:
            continue
        for a in resolved[i - 1]:
            for b in resolved[i]:
                if abs(a - b) == 1:
                    edges[min(a, b)] = True
    misstated = [False] * len(edges)
    if hops is not None and any(edges):
        reader = StepReader(_lexicon(snapshot, vocabulary), text, mentions)
        for step in path_steps(reader, keys, *hops, positions=resolved):
            if step.judgement.verdict == MISSTATED:
                misstated[step.hop] = True
        edges = [said and not wrong for said, wrong in zip(edges, misstated, strict=True)]
    total = len(entities) + len(edges)
    reward = (sum(entities) + sum(edges)) / total if total else 0.0
    return PathRewardDetail(entities=entities, edges=edges, reward=reward, misstated=misstated)


def path_rewards(
    completions: Sequence[Any],
    path_nodes: Sequence[Sequence[Mapping[str, Any]]],
    path_edges: Sequence[Sequence[Mapping[str, Any]]] | None = None,
    **_: Any,
) -> list[float]:
    """A TRL reward function over the exported dataset's `path_nodes` (and `path_edges`) columns.

    `completions` are strings, or chat messages whose last message is the model's.
    """
    edges = path_edges if path_edges is not None else [None] * len(path_nodes)
    return [
        path_reward(_text(c), {"path_nodes": nodes, **({"path_edges": hops} if hops is not None else {})})
        for c, nodes, hops in zip(completions, path_nodes, edges, strict=True)
    ]


def _lexicon(snapshot: Snapshot | None, vocabulary: Vocabulary | str | Path | None) -> RelationLexicon:
    from kgsynth.verify.lexicon import bundled_lexicon

    if snapshot is not None:
        from kgsynth.verify.index import graph_index

        return graph_index(snapshot).lexicon
    if vocabulary is None:
        return bundled_lexicon()
    if isinstance(vocabulary, Vocabulary):
        return _vocabulary_lexicon(vocabulary)
    return _named_lexicon(str(vocabulary))


@lru_cache(maxsize=8)
def _named_lexicon(name: str) -> RelationLexicon:
    from kgsynth.graph.vocabulary import load_vocabulary
    from kgsynth.verify.lexicon import lexicon_of

    return lexicon_of(load_vocabulary(name))


_LEXICONS: dict[int, tuple[Vocabulary, RelationLexicon]] = {}


def _vocabulary_lexicon(vocabulary: Vocabulary) -> RelationLexicon:
    """A vocabulary's lexicon, built once per vocabulary object (a reward is called per completion)."""
    from kgsynth.verify.lexicon import lexicon_of

    found = _LEXICONS.get(id(vocabulary))
    if found is None or found[0] is not vocabulary:
        found = _LEXICONS[id(vocabulary)] = (vocabulary, lexicon_of(vocabulary))
    return found[1]


def _hops_of(item: Item | Mapping[str, Any], n_nodes: int) -> tuple[list[str], list[bool]] | None:
    """The path's (relations, forward flags), when the item has them."""
    if isinstance(item, Item):
        relations, forward = list(item.relations), list(item.forward)
    elif item.get("path_edges") is not None:
        edges = list(item["path_edges"])
        relations, forward = [e["relation"] for e in edges], [e.get("direction") != "inverse" for e in edges]
    elif item.get("relations") is not None and item.get("forward") is not None:
        relations, forward = list(item["relations"]), list(item["forward"])
    else:
        return None
    if len(relations) != n_nodes - 1 or len(forward) != len(relations):
        raise InputFormatError(
            f"the item's path has {n_nodes} nodes but {len(relations)} relations and {len(forward)} directions "
            "(expected one relation and one direction per hop)",
            field="relations",
        )
    return relations, forward


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content") or "")
    raise InputFormatError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")


def _path_of(item: Item | Mapping[str, Any]) -> tuple[list[str], list[str]]:
    if isinstance(item, Item):
        return list(item.nodes), list(item.node_names)
    if "path_nodes" in item:
        nodes = list(item["path_nodes"])
        return [n["id"] for n in nodes], [n["name"] for n in nodes]
    if "nodes" in item and "node_names" in item:
        return list(item["nodes"]), list(item["node_names"])
    raise InputFormatError(
        "an item needs its path: `nodes` and `node_names` (items table) or `path_nodes` (exported dataset); "
        f"got keys {sorted(item)[:12]}",
        field="nodes",
    )
