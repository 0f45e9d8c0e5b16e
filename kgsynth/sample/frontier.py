"""Set-at-a-time graph expansion for many small searches at once.

A frontier is a pair of arrays (group, node): each group is one search (a path's
anchor, a candidate answer). Expanding it gathers every entry of every node in
one pass, optionally restricted per element to one or two hop keys, then
de-duplicates (group, node). Callers weigh the work first (`range_work`) and cut
off searches over their budget, so one hub cannot stall a million small searches.
"""

from __future__ import annotations

import numpy as np

from kgsynth.graph.engine import Engine


def ranges(engine: Engine, node: np.ndarray, key: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Entry ranges of each node: all its entries (key None) or those of one hop key (-1: none)."""
    if key is None:
        indptr = np.asarray(engine.indptr)
        return indptr[node], indptr[node + 1]
    lo, hi = engine.key_ranges(node, np.maximum(key, 0))
    return lo, np.where(key >= 0, hi, lo)


def gather(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, entry) for every entry in the ranges [lo, hi), owner indexing the ranges."""
    count = hi - lo
    total = int(count.sum())
    owner = np.repeat(np.arange(len(lo)), count)
    first = np.cumsum(count) - count
    entry = np.arange(total, dtype=np.int64) - np.repeat(first - lo, count)
    return owner, entry


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique without its slow hashing path for plain integer arrays)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """For each value: is it in `sorted_set` (ascending)?"""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def unique_pairs(group: np.ndarray, node: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(group, node) pairs without repeats, sorted by group then node."""
    keys = sorted_unique(group.astype(np.int64) * n_nodes + node)
    return keys // n_nodes, (keys % n_nodes).astype(np.int32)


def hop_ranges(engine: Engine, node: np.ndarray, keys: tuple[np.ndarray, np.ndarray] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The entry ranges one hop may take from each node: all entries, or those of up to two keys."""
    if keys is None:
        return [ranges(engine, node, None)]
    return [ranges(engine, node, keys[0]), ranges(engine, node, keys[1])]


def range_work(spans: list[tuple[np.ndarray, np.ndarray]], group: np.ndarray, n_groups: int) -> np.ndarray:
    """Entries each group would gather from these ranges."""
    work = np.zeros(n_groups, dtype=np.int64)
    for lo, hi in spans:
        work += np.bincount(group, weights=hi - lo, minlength=n_groups).astype(np.int64)
    return work


def expand(
    engine: Engine, group: np.ndarray, spans: list[tuple[np.ndarray, np.ndarray]], take: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The de-duplicated (group, neighbour) pairs reached from the elements where `take` is True."""
    owners, entries = [], []
    for lo, hi in spans:
        owner, entry = gather(np.where(take, lo, 0), np.where(take, hi, 0))
        owners.append(owner)
        entries.append(entry)
    owner = np.concatenate(owners)
    return unique_pairs(group[owner], np.asarray(engine.indices)[np.concatenate(entries)], engine.n_nodes)


def contains(group: np.ndarray, node: np.ndarray, set_group: np.ndarray, set_node: np.ndarray, n_nodes: int) -> np.ndarray:
    """For each (group, node): is it in the set of (set_group, set_node) pairs?"""
    members = np.sort(set_group.astype(np.int64) * n_nodes + set_node)
    return member(group.astype(np.int64) * n_nodes + node, members)
