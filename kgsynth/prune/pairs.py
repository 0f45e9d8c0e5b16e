"""The sampled node pairs and their current shortest paths, kept up to date as hubs go.

The shortcut load of a node is the share of the sampled pairs whose (uniformly
drawn) shortest path passes through it, endpoints not counted. When a node is
removed only the pairs whose path ran through it draw a new one: every other
pair's path survives, keeps its length (distances never shrink) and so remains a
uniform draw among the shortest paths that are left. Pairs that lose an
endpoint leave the sample.
"""

from __future__ import annotations

import numpy as np

from kgsynth.prune.shortest import ShortestPaths


class PairPaths:
    def __init__(self, finder: ShortestPaths, sources: np.ndarray, targets: np.ndarray, n_nodes: int) -> None:
        self.finder = finder
        self.sources = sources
        self.targets = targets
        self.n_nodes = n_nodes
        self.paths: list[np.ndarray | None] = finder.paths(sources, targets)
        self.live = np.ones(len(sources), dtype=bool)  # both endpoints still in the graph
        self.through = np.zeros(n_nodes, dtype=np.int64)  # pairs whose path has the node inside
        for path in self.paths:
            if path is not None:
                self.through[path[1:-1]] += 1

    @property
    def connected(self) -> int:
        return sum(1 for live, path in zip(self.live, self.paths, strict=True) if live and path is not None)

    def loads(self) -> np.ndarray:
        """Share of connected pairs whose path runs through each node."""
        return self.through / max(self.connected, 1)

    def remove(self, nodes: np.ndarray) -> int:
        """Take nodes out of the graph; re-draw the paths that used them. Returns pairs re-drawn."""
        gone = np.zeros(self.n_nodes, dtype=bool)
        gone[nodes] = True
        self.finder.remove(nodes)
        self.live &= ~(gone[self.sources] | gone[self.targets])
        redo = []
        for i, path in enumerate(self.paths):
            if path is None:
                continue
            if not self.live[i] or gone[path[1:-1]].any():
                self.through[path[1:-1]] -= 1
                self.paths[i] = None
                if self.live[i]:
                    redo.append(i)
        redo = np.asarray(redo, dtype=np.int64)
        for i, path in zip(redo, self.finder.paths(self.sources[redo], self.targets[redo]), strict=True):
            self.paths[i] = path
            if path is not None:
                self.through[path[1:-1]] += 1
        return len(redo)

    def lengths(self) -> np.ndarray:
        """Hop counts of the current paths of live, connected pairs."""
        return np.array([len(p) - 1 for live, p in zip(self.live, self.paths, strict=True) if live and p is not None], dtype=np.int64)

    def snapshot(self) -> list[np.ndarray | None]:
        return list(self.paths)


def draw_pairs(candidates: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """count pairs of distinct nodes drawn uniformly from the candidates."""
    sources = rng.choice(candidates, size=count)
    offset = rng.integers(1, len(candidates), size=count)
    position = np.searchsorted(candidates, sources)
    targets = candidates[(position + offset) % len(candidates)]
    return sources.astype(np.int64), targets.astype(np.int64)
