"""SHORTCUT: the anchor and the answer must not be closer, through a node pruning removed.

Paths are sampled on the pruned graph, where hubs are gone; in the full graph a
hub may join the anchor and the answer in fewer hops than the item has, so the
question would not really need its hops. There is such a walk of length L < hops
through a hub exactly when some hubs H1, H2 (possibly the same) satisfy

    d'(anchor, H1) + d(H1, H2) + d'(H2, answer) <= hops - 1

where d' counts only walks whose inner nodes are not hubs (H1 is the first hub of
the walk, H2 the last) and d is the full-graph distance between hubs. d' never
expands a hub's huge neighbourhood, so it stays cheap; hub-to-hub distances up to 2
are precomputed once per hub set with sparse products. Items longer than that
allows (hops > 5) fall back to a plain breadth-first search per item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.verify.batch import ItemBatch
from kgsynth.verify.checks import Context, Outcome, register
from kgsynth.verify.graph_checks import describe
from kgsynth.verify.index import GraphIndex, unique_ints

HUB_DISTANCES = 2  # hub-to-hub distances precomputed (enough for items of up to 5 hops)


@dataclass
class HubIndex:
    index: GraphIndex
    hubs: np.ndarray  # engine indices of the removed nodes present in the graph
    missing: list[str]  # removed ids the snapshot does not have

    @cached_property
    def is_hub(self) -> np.ndarray:
        mask = np.zeros(self.index.n, dtype=bool)
        mask[self.hubs] = True
        return mask

    @cached_property
    def _hub_neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR over all nodes: the hubs adjacent to each node (as engine indices)."""
        e = self.index.engine
        src = np.asarray(e.edge_src, dtype=np.int64)
        dst = np.asarray(e.edge_dst, dtype=np.int64)
        to_hub = self.is_hub[dst]
        from_hub = self.is_hub[src]
        node = np.concatenate([src[to_hub], dst[from_hub]])
        hub = np.concatenate([dst[to_hub], src[from_hub]])
        keys = unique_ints(node * self.index.n + hub)
        node, hub = keys // self.index.n, keys % self.index.n
        indptr = np.zeros(self.index.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(node, minlength=self.index.n), out=indptr[1:])
        return indptr, hub

    @cached_property
    def _hub_reach(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """For d = 1..HUB_DISTANCES: CSR over hubs of the hubs within d steps (full graph)."""
        import scipy.sparse as sp

        indptr, hub = self._hub_neighbours
        n, nh = self.index.n, len(self.hubs)
        compact = np.full(n, -1, dtype=np.int64)
        compact[self.hubs] = np.arange(nh)
        rows = np.repeat(np.arange(n), np.diff(indptr))
        near = sp.csr_matrix((np.ones(len(hub), dtype=np.int32), (rows, compact[hub])), shape=(n, nh))
        one = near[self.hubs].astype(bool)  # hub → hub edges
        two = (one + (near.T @ near).astype(bool)).astype(bool)
        out = []
        for matrix in (one, two)[:HUB_DISTANCES]:
            matrix = sp.csr_matrix(matrix)
            out.append((matrix.indptr.astype(np.int64), self.hubs[matrix.indices]))
        return out

    def hub_near(self, owner: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indptr, hub = self._hub_neighbours
        return _gather(indptr, hub, owner, nodes)

    def hub_reach(self, distance: int, owner: np.ndarray, hubs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indptr, targets = self._hub_reach[distance - 1]
        compact = np.searchsorted(self.hubs, hubs)
        return _gather(indptr, targets, owner, compact)

    def plain_near(self, owner: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-hub neighbours (any relation, either way) of non-hub nodes."""
        e = self.index.engine
        got_owner, got = _gather(e.indptr, e.indices, owner, nodes)
        keep = ~self.is_hub[got]
        keys = unique_ints(got_owner[keep] * self.index.n + got[keep])
        return keys // self.index.n, keys % self.index.n


_HUBS: dict[tuple[str, str], HubIndex] = {}


def hub_index(index: GraphIndex, hubs: list[str] | Path | str) -> HubIndex:
    """Resolve removed node ids (or a hubs.json whose `removed[].id` lists them).

    Kept for the process (one hub set at a time), so its hub-to-hub distances are
    computed once per pruning, not once per call.
    """
    import hashlib

    import polars as pl

    ids = sorted(set(read_hub_ids(hubs) if isinstance(hubs, (str, Path)) else hubs))
    key = (index.snapshot.hash, hashlib.sha256("\n".join(ids).encode()).hexdigest())
    if key not in _HUBS:
        found = pl.DataFrame({"id": ids}, schema={"id": pl.String}).join(index.node_table, on="id", how="left")
        missing = found.filter(pl.col("idx").is_null())["id"].to_list()
        present = unique_ints(found["idx"].drop_nulls().to_numpy().astype(np.int64))
        _HUBS.clear()
        _HUBS[key] = HubIndex(index=index, hubs=present, missing=missing)
    return _HUBS[key]


def read_hub_ids(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such hubs file (the pruning stage writes pruned/hubs.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"not valid JSON: {exc}", file=path) from None
    removed = data.get("removed") if isinstance(data, dict) else None
    if not isinstance(removed, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in removed):
        raise InputFormatError(
            'expected {"removed": [{"id": "..."}, ...]} as written by the pruning stage', file=path, field="removed"
        )
    return [r["id"] for r in removed]


@register(
    "shortcut",
    stage="graph",
    codes=("SHORTCUT",),
    description="anchor and answer are not joined, through a node pruning removed, by a path shorter than the item",
)
def check_shortcut(batch: ItemBatch, ctx: Context) -> Outcome:
    hubs: HubIndex | None = ctx.hubs
    n = len(batch)
    if hubs is None or not len(hubs.hubs):
        return Outcome.passing(n)
    found = shortcut_lengths(hubs, batch.anchor, batch.terminal, batch.hops)
    failures = []
    for row in np.nonzero(found[:, 0] >= 0)[0].tolist():
        length, via = int(found[row, 0]), int(found[row, 1])
        index = hubs.index
        failures.append(
            (
                row,
                "SHORTCUT",
                f"{describe(index, int(batch.anchor[row]))} and {describe(index, int(batch.terminal[row]))} are "
                f"{length} hops apart through removed node {describe(index, via)}; the item has {int(batch.hops[row])}",
            )
        )
    return Outcome.of(n, failures)


def shortcut_lengths(hubs: HubIndex, anchor: np.ndarray, answer: np.ndarray, hops: np.ndarray) -> np.ndarray:
    """[n, 2]: (length, a hub on it) of the shortest walk through a hub shorter than `hops`, else -1."""
    n = len(anchor)
    best = np.full((n, 2), -1, dtype=np.int64)
    usable = (anchor >= 0) & (answer >= 0) & (hops >= 3)  # a walk through a hub has length >= 2
    quick = usable & (hops <= HUB_DISTANCES + 3)
    rows = np.nonzero(quick)[0]
    if len(rows):
        _vectorised(hubs, rows, anchor, answer, hops, best)
    for row in np.nonzero(usable & ~quick)[0].tolist():
        found = shortcut_bfs(hubs, int(anchor[row]), int(answer[row]), int(hops[row]))
        if found is not None:
            best[row] = found
    return best


def _vectorised(hubs: HubIndex, rows: np.ndarray, anchor, answer, hops, best) -> None:
    limit = hops[rows] - 1  # longest walk that is still a shortcut, per row
    side = []
    for start in (anchor, answer):
        # (row, hub, distance) with every inner node a non-hub, distance <= hops - 2
        found_r, found_h, found_d = [], [], []
        owner, nodes = rows, start[rows]
        for depth in range(int(limit.max()) - 1):
            alive = depth + 1 <= hops[owner] - 2
            owner, nodes = owner[alive], nodes[alive]
            if not len(owner):
                break
            r, h = hubs.hub_near(owner, nodes)
            found_r.append(r)
            found_h.append(h)
            found_d.append(np.full(len(r), depth + 1))
            deeper = depth + 2 <= hops[owner] - 2
            owner, nodes = hubs.plain_near(owner[deeper], nodes[deeper])
        side.append(_min_distance(hubs.index.n, found_r, found_h, found_d))
    (fr, fh, fd), (br, bh, bd) = side
    candidates = [(fr, fh, fd, fh)]  # H1 == H2
    for distance in range(1, HUB_DISTANCES + 1):
        room = np.nonzero(hops[fr] - 1 - fd - 1 >= distance)[0]  # leaves a step for the answer side
        at, h2 = hubs.hub_reach(distance, np.arange(len(room)), fh[room])
        picked = room[at]
        candidates.append((fr[picked], h2, fd[picked] + distance, fh[picked]))
    n = hubs.index.n
    b_keys = br * n + bh
    order = np.argsort(b_keys)
    b_keys, bd_sorted = b_keys[order], bd[order]
    for r, h2, d, h1 in candidates:
        if not len(r) or not len(b_keys):
            continue
        keys = r * n + h2
        at = np.minimum(np.searchsorted(b_keys, keys), len(b_keys) - 1)
        match = b_keys[at] == keys
        total = d + bd_sorted[at]
        ok = match & (total <= hops[r] - 1)
        for row, length, via in zip(r[ok].tolist(), total[ok].tolist(), h1[ok].tolist(), strict=True):
            if best[row, 0] < 0 or length < best[row, 0]:
                best[row] = (length, via)


def _min_distance(n: int, rows: list, hubs: list, dist: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    r, h, d = np.concatenate(rows), np.concatenate(hubs), np.concatenate(dist)
    order = np.lexsort((d, r * n + h))
    keys = (r * n + h)[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    pick = order[first]
    return r[pick], h[pick], d[pick]


def shortcut_bfs(hubs: HubIndex, anchor: int, answer: int, hops: int) -> tuple[int, int] | None:
    """Exact search for one item: min over hubs H of d(anchor, H) + d(H, answer), if < hops."""
    dist_a = _bfs(hubs.index, anchor, hops - 2)
    dist_b = _bfs(hubs.index, answer, hops - 2)
    total = dist_a[hubs.hubs] + dist_b[hubs.hubs]
    if not len(total) or total.min() > hops - 1:
        return None
    at = int(np.argmin(total))
    return int(total[at]), int(hubs.hubs[at])


def _bfs(index: GraphIndex, start: int, depth: int) -> np.ndarray:
    e = index.engine
    far = np.iinfo(np.int64).max // 4
    dist = np.full(index.n, far, dtype=np.int64)
    dist[start] = 0
    frontier = np.array([start], dtype=np.int64)
    for d in range(1, depth + 1):
        _, reached = _gather(e.indptr, e.indices, np.zeros(len(frontier), dtype=np.int64), frontier)
        reached = unique_ints(reached)
        reached = reached[dist[reached] == far]
        dist[reached] = d
        frontier = reached
    return dist


def _gather(indptr: np.ndarray, values: np.ndarray, owner: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, value) for every CSR value in the rows `nodes`."""
    lo = np.asarray(indptr[nodes], dtype=np.int64)
    counts = np.asarray(indptr[nodes + 1], dtype=np.int64) - lo
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    at = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, counts)
    return np.repeat(owner, counts), np.asarray(values[at], dtype=np.int64)
