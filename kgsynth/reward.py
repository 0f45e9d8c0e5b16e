"""The path reward for RL: how much of an item's path a model's reasoning states.

    reward = (path entities named + hops stated) / (path entities + hops)

An entity counts when the reasoning names it (by its name, or any synonym when a
snapshot is given). A hop counts when its two entities are named next to each
other in one sentence, in either order ("Marfan syndrome presents with
Arachnodactyly."). Matching is whole-word, case- and punctuation-insensitive and
longest-first, as in verification: writing "Focal seizure" does not earn the
entity "Seizure". The score is entity and edge level, never token overlap, so
copying the question or padding the answer earns nothing.

`item` may be an `Item`, a row of the items table (`nodes`, `node_names`) or a
row of the exported dataset (`path_nodes`: [{id, name, type}]).
`path_rewards` has the signature TRL's GRPOTrainer expects of a reward function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kgsynth.errors import InputFormatError
from kgsynth.generate.item import Item
from kgsynth.graph.snapshot import Snapshot
from kgsynth.verify.text import EntityLinker, linker_for_names


@dataclass(frozen=True)
class PathRewardDetail:
    entities: list[bool]  # per path entity, anchor first: named in the reasoning
    edges: list[bool]  # per hop: its two entities named together in one sentence
    reward: float


def path_reward(reasoning_text: str, item: Item | Mapping[str, Any], *, snapshot: Snapshot | None = None) -> float:
    """The share of the item's path entities and edges the reasoning states, in [0, 1]."""
    return path_reward_detail(reasoning_text, item, snapshot=snapshot).reward


def path_reward_detail(
    reasoning_text: str, item: Item | Mapping[str, Any], *, snapshot: Snapshot | None = None
) -> PathRewardDetail:
    """Which entities and hops the reasoning states, and the reward."""
    ids, names = _path_of(item)
    if snapshot is not None:
        from kgsynth.verify.index import graph_index

        index = graph_index(snapshot)
        linker: EntityLinker = index.linker
        keys = [index.engine.index_of(node) if index.engine.has_index(node) else node for node in ids]
    else:
        linker = linker_for_names({node: [name] for node, name in zip(ids, names, strict=True)})
        keys = list(ids)
    where: dict[Any, list[int]] = {}
    for k, key in enumerate(keys):
        where.setdefault(key, []).append(k)
    mentions = linker.link(reasoning_text or "")
    resolved = [sorted({k for node in m.nodes for k in where.get(node, ())}) for m in mentions]

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
    total = len(entities) + len(edges)
    reward = (sum(entities) + sum(edges)) / total if total else 0.0
    return PathRewardDetail(entities=entities, edges=edges, reward=reward)


def path_rewards(completions: Sequence[Any], path_nodes: Sequence[Sequence[Mapping[str, Any]]], **_: Any) -> list[float]:
    """A TRL reward function over the exported dataset's `path_nodes` column.

    `completions` are strings, or chat messages whose last message is the model's.
    """
    return [path_reward(_text(c), {"path_nodes": nodes}) for c, nodes in zip(completions, path_nodes, strict=True)]


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
