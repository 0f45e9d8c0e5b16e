"""Uniformly random shortest paths between many node pairs at once.

Each batch of pairs runs a bidirectional breadth-first search on the simple,
undirected graph (relations and directions set aside; what matters for
shortcuts is which nodes connect). Levels are sparse matrices, one row per pair,
holding the number of shortest paths (σ) to each node; a level is the previous
one times the adjacency matrix, minus the two levels before it, so scipy's
sparse product does the counting. The side whose frontier has fewer entries to
expand grows next. When the two frontiers meet, a meeting node is drawn with
weight σ_s(v)·σ_t(v) and the path is traced back to both ends, choosing each
predecessor with weight σ: a uniform draw among all shortest paths.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kgsynth.graph.engine import Engine

MAX_LEVELS = 64


def simple_adjacency(engine: Engine) -> sp.csr_matrix:
    """0/1 adjacency of the undirected graph without loops or parallel edges."""
    n = engine.n_nodes
    matrix = sp.csr_matrix(
        (np.ones(len(engine.indices), dtype=np.float64), np.array(engine.indices), np.array(engine.indptr)),
        shape=(n, n),
    )
    matrix.sum_duplicates()
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix


class ShortestPaths:
    """Draws shortest paths in the graph minus the nodes removed so far."""

    def __init__(self, adjacency: sp.csr_matrix, rng: np.random.Generator, batch: int = 64) -> None:
        self.adjacency = adjacency
        self.alive = np.ones(adjacency.shape[0], dtype=bool)
        self.rng = rng
        self.batch = batch
        self._live = adjacency

    def remove(self, nodes: np.ndarray) -> None:
        self.alive[nodes] = False
        self._live = (self.adjacency @ sp.diags(self.alive.astype(np.float64))).tocsr()
        self._live.eliminate_zeros()

    def paths(self, sources: np.ndarray, targets: np.ndarray) -> list[np.ndarray | None]:
        """A uniformly drawn shortest path (nodes, source first) per pair; None when disconnected."""
        found: list[np.ndarray | None] = []
        for start in range(0, len(sources), self.batch):
            found += self._batch(sources[start : start + self.batch], targets[start : start + self.batch])
        return found

    def _batch(self, sources: np.ndarray, targets: np.ndarray) -> list[np.ndarray | None]:
        size, n = len(sources), self.adjacency.shape[0]
        rows = np.arange(size)
        found: list[np.ndarray | None] = [None] * size
        active = self.alive[sources] & self.alive[targets] & (sources != targets)
        if not active.any():
            return found
        one = np.ones(size)
        levels = {
            "s": [sp.csr_matrix((one, (rows, sources)), shape=(size, n))],
            "t": [sp.csr_matrix((one, (rows, targets)), shape=(size, n))],
        }
        degree = np.diff(self._live.indptr).astype(np.float64)
        while active.any() and len(levels["s"]) + len(levels["t"]) < MAX_LEVELS:
            keep = sp.diags(active.astype(np.float64))
            work = {side: float((keep @ (levels[side][-1] != 0)) @ degree @ one) for side in ("s", "t")}
            side = "s" if work["s"] <= work["t"] else "t"
            frontier = keep @ levels[side][-1]
            grown = (frontier @ self._live).tocsr()
            for seen in levels[side][-2:]:
                grown = grown - grown.multiply(seen != 0)
            grown.eliminate_zeros()
            levels[side].append(grown.tocsr())
            meet = levels["s"][-1].multiply(levels["t"][-1]).tocsr()
            met = active & (np.diff(meet.indptr) > 0)
            stuck = active & (np.diff(levels[side][-1].indptr) == 0) & ~met
            for row, path in zip(np.flatnonzero(met), self._trace(np.flatnonzero(met), meet, levels), strict=True):
                found[row] = path
            active &= ~(met | stuck)
        return found

    def _trace(self, rows: np.ndarray, meet: sp.csr_matrix, levels: dict[str, list[sp.csr_matrix]]) -> list[np.ndarray]:
        """Draw a meeting node per row, then walk back to the source and to the target."""
        if not len(rows):
            return []
        middle = _weighted_pick(meet, rows, self.rng)
        halves = []
        for side in ("s", "t"):
            current, steps = middle, [middle]
            for level in reversed(levels[side][:-1]):
                current = self._predecessor(rows, current, level)
                steps.append(current)
            halves.append(np.stack(steps, axis=1))
        to_source, to_target = halves
        return [np.concatenate([a[::-1], b[1:]]) for a, b in zip(to_source, to_target, strict=True)]

    def _predecessor(self, rows: np.ndarray, current: np.ndarray, level: sp.csr_matrix) -> np.ndarray:
        """Per row, a neighbour of `current` on the given level, weighted by its σ."""
        live = self._live
        lo, hi = live.indptr[current], live.indptr[current + 1]
        count = hi - lo
        owner = np.repeat(np.arange(len(rows)), count)
        entry = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count - lo, count)
        neighbour = live.indices[entry]
        sigma = np.asarray(level[rows[owner], neighbour]).ravel()
        return _segment_pick(owner, neighbour, sigma, len(rows), self.rng)


def _weighted_pick(matrix: sp.csr_matrix, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, a column drawn with weight equal to the stored value."""
    lo, hi = matrix.indptr[rows], matrix.indptr[rows + 1]
    count = hi - lo
    owner = np.repeat(np.arange(len(rows)), count)
    entry = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count - lo, count)
    return _segment_pick(owner, matrix.indices[entry], matrix.data[entry], len(rows), rng)


def _segment_pick(owner: np.ndarray, value: np.ndarray, weight: np.ndarray, groups: int, rng: np.random.Generator) -> np.ndarray:
    """One value per group (every group non-empty with some positive weight), drawn by weight."""
    order = np.lexsort((value, owner))  # a fixed order, so draws do not depend on storage order
    owner, value, weight = owner[order], value[order], weight[order]
    cumulative = np.cumsum(weight)
    first = np.searchsorted(owner, np.arange(groups))
    last = np.searchsorted(owner, np.arange(groups), side="right") - 1
    before = np.where(first > 0, cumulative[np.maximum(first - 1, 0)], 0.0)
    target = before + rng.random(groups) * (cumulative[last] - before)
    at = np.clip(np.searchsorted(cumulative, target, side="right"), first, last)
    positive = np.maximum.accumulate(np.where(weight > 0, np.arange(len(weight)), -1))
    return value[positive[at]].astype(np.int64)
