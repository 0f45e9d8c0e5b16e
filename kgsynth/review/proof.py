"""Why each distractor is wrong, shown to the reviewer as a proof over the full graph.

A distractor x of an item whose path is anchor -r1-> v1 … -rh-> answer is wrong when
no walk anchor -r1-> · … -rh-> x exists in the full graph, reading the pattern as
verification does (the path's node type at each position; a symmetric relation's
hop goes either way). The proof splits at the last hop: the set F of nodes that the
first h−1 hops reach from the anchor, and the set P of x's neighbours by the last
hop's relation; x is wrong exactly when F and P do not meet. Both sets are small
for one item, and the page shows their sizes and a few members, so a reviewer can
follow the argument, or see at once a distractor that the graph says is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kgsynth.graph.engine import Engine, open_engine
from kgsynth.graph.snapshot import Snapshot
from kgsynth.sample.frontier import gather, sorted_unique
from kgsynth.sample.negatives import flip_key

WORK_MAX = 5_000_000  # neighbour entries one item's proof may gather (a hub path of PrimeKG stays under it)
EXAMPLES = 3


@dataclass
class Claim:
    """One distractor's status: "proven" (not reachable), "reached" (the graph says it is right)
    or "unknown" (not decidable here), with the sentence the page shows."""

    node_id: str
    status: str
    text: str
    neighbours: int | None = None  # |P|
    examples: list[str] = field(default_factory=list)  # a few of P, or the witness when reached


@dataclass
class Proof:
    reached: int | None  # |F|: nodes the first h−1 hops reach from the anchor
    reached_examples: list[str]
    claims: list[Claim]
    ends: int | None = None  # open items: nodes the whole pattern reaches (1 means a unique answer)
    ends_examples: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class ProofGraph:
    """The full graph's engine and node names, opened once per app."""

    engine: Engine
    names: list[str]
    snapshot_hash: str

    @classmethod
    def open(cls, snapshot: Snapshot) -> ProofGraph:
        engine = open_engine(snapshot)
        return cls(engine=engine, names=snapshot.nodes["name"].to_list(), snapshot_hash=snapshot.hash)

    def describe(self, node: int) -> str:
        return f"{self.names[node]} ({self.engine.node_ids[node]})"

    def prove(self, item: dict[str, Any]) -> Proof:
        engine = self.engine
        index = engine.relation_index
        hops = len(item["relations"])
        unknown = [r for r in item["relations"] if r not in index]
        anchor = item["nodes"][0]
        if unknown or not engine.has_index(anchor) or hops == 0:
            why = f"relation {unknown[0]!r} is not in the full graph" if unknown else f"anchor {anchor} is not in the full graph"
            return Proof(None, [], [Claim(x, "unknown", why) for x in item["negatives"]], note=why)
        n_rel = len(engine.relation_names)
        keys = []
        for relation, forward in zip(item["relations"], item["forward"], strict=True):
            r = index[relation]
            key = r if forward else r + n_rel
            keys.append((key, int(flip_key(np.array([key]), n_rel)[0]) if engine.symmetric[r] else -1))
        types = [engine.type_index.get(t, -1) for t in item["node_types"]]

        frontier, work = np.array([engine.index_of(anchor)], dtype=np.int64), 0
        for hop in range(hops - 1):
            frontier, spent = self._step(frontier, keys[hop], types[hop + 1])
            work += spent
            if work > WORK_MAX:
                note = f"the pattern's first {hops - 1} hops fan out past {WORK_MAX:,} graph entries; verification's pattern check decides these"
                return Proof(None, [], [Claim(x, "unknown", note) for x in item["negatives"]], note=note)
        proof = Proof(reached=len(frontier), reached_examples=self._examples(frontier, prefer=item["nodes"][hops - 1]), claims=[])
        last, end_type = keys[-1], types[-1]
        back = tuple(int(flip_key(np.array([k]), n_rel)[0]) for k in last)
        for node_id in item["negatives"]:
            proof.claims.append(self._claim(node_id, frontier, back, types[hops - 1], end_type, item))
        if item["kind"] == "open":
            ends, _ = self._step(frontier, last, end_type)
            proof.ends, proof.ends_examples = len(ends), self._examples(ends, prefer=item["answer_id"])
        return proof

    def _claim(
        self, node_id: str, frontier: np.ndarray, back: tuple[int, int], before_type: int, end_type: int, item: dict[str, Any]
    ) -> Claim:
        engine = self.engine
        if not engine.has_index(node_id):
            return Claim(node_id, "unknown", f"{node_id} is not in the full graph")
        x = engine.index_of(node_id)
        relation = item["relations"][-1]
        if int(engine.node_type[x]) != end_type:
            shown = engine.type_names[int(engine.node_type[x])]
            return Claim(node_id, "proven", f"it is a {shown}, and the question asks for a {item['node_types'][-1]}")
        neighbours, _ = self._step(np.array([x]), back, before_type)
        meet = neighbours[np.isin(neighbours, frontier)]
        if len(meet):
            witness = self.describe(int(meet[0]))
            return Claim(
                node_id, "reached",
                f"the graph reaches it: the anchor's pattern arrives at {witness}, which is linked to it by {relation}",
                len(neighbours), [witness],
            )
        shown = self._examples(neighbours)
        return Claim(
            node_id, "proven",
            f"its {len(neighbours):,} neighbour(s) by {relation} of type {item['node_types'][-2]} "
            f"(e.g. {', '.join(shown) if shown else 'none'}) are none of the nodes the first "
            f"{len(item['relations']) - 1} hop(s) reach from the anchor",
            len(neighbours), shown,
        )

    def _step(self, nodes: np.ndarray, keys: tuple[int, int], node_type: int) -> tuple[np.ndarray, int]:
        """Nodes of `node_type` one hop (by either key; -1 for none) from `nodes`, and the entries read."""
        engine = self.engine
        reached, work = [], 0
        for key in keys:
            if key < 0:
                continue
            lo, hi = engine.key_ranges(nodes, np.full(len(nodes), key, dtype=np.int64))
            _, entries = gather(lo, hi)
            work += len(entries)
            found = np.asarray(engine.indices)[entries].astype(np.int64)
            reached.append(found[np.asarray(engine.node_type)[found] == node_type])
        return (sorted_unique(np.concatenate(reached)) if reached else np.empty(0, dtype=np.int64)), work

    def _examples(self, nodes: np.ndarray, prefer: str | None = None) -> list[str]:
        picked = [int(n) for n in nodes[:EXAMPLES]]
        if prefer is not None and self.engine.has_index(prefer):
            p = self.engine.index_of(prefer)
            if p in nodes and p not in picked:
                picked = [p, *picked[: EXAMPLES - 1]]
        return [self.describe(n) for n in picked]
