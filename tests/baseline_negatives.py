"""REFERENCE ONLY: a frozen copy of today's hard negatives and unique answers (commit dba06ec).

kgsynth.sample.negatives / unique / frontier as they were before the compiled kernels
(kgsynth.sample.kernels) replaced them, kept verbatim (imports merged) so that
tests/test_negatives_kernels.py can compare old and new on the same paths and the
same candidates, and bench/bench_negatives.py can time them side by side.
Never import this from the package, and do not "fix" it: it is the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.walks import build_view, type_mask, walk

# --- kgsynth/sample/frontier.py ---
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


# --- kgsynth/sample/negatives.py ---

@dataclass
class Negatives:
    counts: np.ndarray  # int64 negatives per path
    nodes: np.ndarray  # int64 full-graph indices, paths concatenated




def hard_negatives(
    engine: Engine,
    full: Engine,
    batch: PathBatch,
    k: int,
    rng: np.random.Generator,
    *,
    attempts: int = 2,
    rounds: int = 4,
    budget: int = 5_000,
    views: dict | None = None,
    chunk: int = 4096,
) -> Negatives:
    """Up to k proven hard negatives per path of the batch (sampled on `engine`, proven on `full`).

    Each family draws k + attempts candidates per path, of which the 2k with the
    fewest ways in are tried; paths still short of k get up to `rounds` - 1 more
    rounds, each drawing twice as many as the one before (still trying 2k: the
    proofs, not the draws, are what costs).
    """
    rows = batch.rows
    if k <= 0 or not rows:
        return Negatives(np.zeros(rows, dtype=np.int64), np.zeros(0, dtype=np.int64))
    views = {} if views is None else views
    to_full = full_index(engine, full)
    found_row, found_node = [], []
    todo, tries = np.arange(rows), k + attempts
    for _ in range(rounds):
        for start in range(0, len(todo), chunk):
            these = todo[start : start + chunk]
            part = PathBatch(batch.nodes[these], batch.entries[these])
            row, node = _proven(engine, full, to_full, part, tries, 2 * k, rng, budget, views)
            found_row.append(these[row])
            found_node.append(node)
        have = _distinct_count(np.concatenate(found_row), np.concatenate(found_node), rows, full.n_nodes)
        todo, tries = np.flatnonzero(have < k), 2 * tries
        if not len(todo):
            break
    row, node = np.concatenate(found_row), np.concatenate(found_node)
    keep = _first_of_each(row, node, full.n_nodes)
    row, node = row[keep], node[keep]
    order = np.lexsort((rng.random(len(row)), row))
    row, node = row[order], node[order]
    chosen = np.arange(len(row)) - np.searchsorted(row, row, side="left") < k
    return Negatives(counts=np.bincount(row[chosen], minlength=rows).astype(np.int64), nodes=node[chosen].astype(np.int64))


def _proven(
    engine: Engine,
    full: Engine,
    to_full: np.ndarray,
    batch: PathBatch,
    tries: int,
    per_row: int,
    rng: np.random.Generator,
    budget: int,
    views: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """Proven negatives (path row, full-graph node) for one slice of paths, so memory stays bounded."""
    row, node, distance_family = _candidates(engine, batch, tries, rng, views)
    answer_type = np.asarray(engine.node_type)[batch.nodes[:, -1]]
    ok = (node >= 0) & (np.asarray(engine.node_type)[np.maximum(node, 0)] == answer_type[row])
    for column in batch.nodes.T:
        ok &= node != column[row]
    row, node, distance_family = row[ok], node[ok], distance_family[ok]
    keep = _first_of_each(row, node, engine.n_nodes)
    row, node, distance_family = row[keep], node[keep], distance_family[keep]
    keys = full_keys(engine, full, batch.entries)
    keep = _fewest_ways_in(full, keys, row, to_full[node], per_row)
    row, node, distance_family = row[keep], node[keep], distance_family[keep]

    if distance_family.any():
        near = np.zeros(len(row), dtype=bool)
        near[distance_family] = _within(engine, row[distance_family], batch.nodes[:, 0], node[distance_family], batch.hops - 1, budget)
        row, node = row[~near], node[~near]

    node_full = to_full[node]
    types = full_types(engine, full, batch.nodes)
    satisfied = _satisfies(full, to_full[batch.nodes[:, 0]], keys, types, row, node_full, budget)
    return row[~satisfied], node_full[~satisfied]


def _fewest_ways_in(full: Engine, keys: tuple[np.ndarray, np.ndarray], row: np.ndarray, node: np.ndarray, per_row: int) -> np.ndarray:
    """Positions of at most `per_row` candidates per path: those with the fewest entries the
    path's last hop could arrive by. They are the cheapest to prove, and the likeliest to hold."""
    back = _reverse(full, (keys[0][:, -1], keys[1][:, -1]))
    ways = np.zeros(len(row), dtype=np.int64)
    for key in back:
        lo, hi = ranges(full, node, key[row])
        ways += hi - lo
    order = np.lexsort((ways, row))
    ranked = np.arange(len(order)) - np.searchsorted(row[order], row[order], side="left")
    return np.sort(order[ranked < per_row])


def _candidates(
    engine: Engine, batch: PathBatch, attempts: int, rng: np.random.Generator, views: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(path row, candidate node, from the distance family?) for `attempts` tries per family."""
    rows, hops = batch.rows, batch.hops
    rep = np.repeat(np.arange(rows), attempts)
    found_row, found_node = [], []

    # distance: other walks of the same length from the anchor, ending on the answer's type
    answer_type = np.asarray(engine.node_type)[batch.nodes[:, -1]]
    if "any" not in views:
        views["any"] = build_view(engine)
    anywhere = views["any"]
    for node_type in sorted(set(answer_type.tolist())):
        these = rep[answer_type[rep] == node_type]
        last = views.get(("type", node_type))
        if last is None:
            mask = type_mask(engine, [engine.type_names[node_type]])
            last = views[("type", node_type)] = build_view(engine, neighbour_types=mask)
        walked = walk([anywhere] * (hops - 1) + [last], batch.nodes[these, 0], rng, tries=2)
        found_row.append(these[walked.rows])
        found_node.append(walked.nodes[-1].astype(np.int64))
    distance_count = sum(len(r) for r in found_row)

    # siblings of the answer under a shared parent
    found_row.append(rep)
    found_node.append(_sibling(engine, batch.nodes[rep, -1], rng))
    # cousins of the answer in a hierarchy of its own type
    found_row.append(rep)
    found_node.append(_cousin(engine, batch.nodes[rep, -1], rng, views))
    # the last hop taken from a sibling of the bridge
    if hops >= 2:
        bridge_sibling = _sibling(engine, batch.nodes[rep, -2], rng)
        last_key = _entry_keys(engine, batch.entries[rep, -1])
        found_row.append(rep)
        found_node.append(_random_neighbour(engine, bridge_sibling, last_key, rng))
    row = np.concatenate(found_row)
    node = np.concatenate(found_node)
    distance_family = np.zeros(len(row), dtype=bool)
    distance_family[:distance_count] = True
    return row, node, distance_family


def _entry_keys(engine: Engine, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hop keys that repeat each entry's hop: its own key, plus the other direction if symmetric."""
    n_rel = len(engine.relation_names)
    rel = np.asarray(engine.rel)[entries].astype(np.int64)
    key = rel + np.where(np.asarray(engine.forward)[entries], 0, n_rel)
    other = np.where(np.asarray(engine.symmetric)[rel], flip_key(key, n_rel), -1)
    return key, other


def _reverse(engine: Engine, keys: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the same hops walked the other way (a symmetric pair stays as it is)."""
    n_rel = len(engine.relation_names)
    key, other = keys
    return np.where(other >= 0, key, flip_key(key, n_rel)), other


def _random_neighbour(
    engine: Engine, node: np.ndarray, keys: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """A uniform neighbour through the given keys, -1 where there is none (or node is -1)."""
    present = node >= 0
    spans = hop_ranges(engine, np.maximum(node, 0), keys)
    (lo1, hi1), (lo2, hi2) = spans
    size1 = np.where(present, hi1 - lo1, 0)
    size2 = np.where(present & (keys[1] >= 0), hi2 - lo2, 0)
    total = size1 + size2
    offset = (rng.random(len(node)) * total).astype(np.int64)
    entry = np.where(offset < size1, lo1 + offset, lo2 + offset - size1)
    picked = np.asarray(engine.indices)[np.minimum(entry, len(engine.indices) - 1)].astype(np.int64)
    return np.where(total > 0, picked, -1)


def _sibling(engine: Engine, node: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x with node -r-> p <-r- x for a random entry (node, p): same relation, same direction."""
    indptr = np.asarray(engine.indptr)
    degree = indptr[node + 1] - indptr[node]
    entry = indptr[node] + (rng.random(len(node)) * degree).astype(np.int64)
    entry = np.minimum(entry, len(engine.indices) - 1)
    parent = np.where(degree > 0, np.asarray(engine.indices)[entry], -1).astype(np.int64)
    return _random_neighbour(engine, parent, _reverse(engine, _entry_keys(engine, entry)), rng)


def _cousin(engine: Engine, node: np.ndarray, rng: np.random.Generator, views: dict, depth: int = 3) -> np.ndarray:
    """x under a common ancestor 1..depth levels up: node -r-> … -r-> g <-r- … <-r- x, where r is
    drawn among the node's relations to nodes of its own type (-1 where it has none)."""
    if not len(engine.group_key):
        return np.full(len(node), -1, dtype=np.int64)
    if "hierarchy runs" not in views:
        owner_type = np.asarray(engine.node_type)[engine.group_key // engine.n_keys]
        first_neighbour = np.asarray(engine.indices)[engine.group_start[:-1]]
        views["hierarchy runs"] = np.r_[0, np.cumsum(np.asarray(engine.node_type)[first_neighbour] == owner_type)]
    counted = views["hierarchy runs"]  # runs to nodes of the owner's own type, before each run
    first, last = engine.runs_of(node)
    present = counted[last] - counted[first]
    nth = counted[first] + (rng.random(len(node)) * present).astype(np.int64)
    run = np.clip(np.searchsorted(counted, nth, side="right") - 1, 0, len(engine.group_key) - 1)
    lo, hi = engine.group_start[run], engine.group_start[run + 1]
    entry = np.minimum(lo + (rng.random(len(node)) * (hi - lo)).astype(np.int64), len(engine.indices) - 1)
    up = rng.integers(1, depth + 1, len(node))
    keys = _entry_keys(engine, entry)
    current = np.where(present > 0, np.asarray(engine.indices)[entry], -1).astype(np.int64)
    for level in range(2, depth + 1):
        climbed = _random_neighbour(engine, current, keys, rng)
        current = np.where(up >= level, climbed, current)
    back = _reverse(engine, keys)
    for level in range(1, depth + 1):
        descended = _random_neighbour(engine, current, back, rng)
        current = np.where(up >= level, descended, current)
    return current


def _distinct_count(row: np.ndarray, node: np.ndarray, rows: int, n_nodes: int) -> np.ndarray:
    """Distinct nodes found per row (a node proven in two rounds counts once)."""
    keep = _first_of_each(row, node, n_nodes)
    return np.bincount(row[keep], minlength=rows)


def _first_of_each(row: np.ndarray, node: np.ndarray, n_nodes: int) -> np.ndarray:
    """Positions of the first occurrence of each (row, node), in their original order."""
    keys = row.astype(np.int64) * n_nodes + node
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = order[np.r_[True, ordered[1:] != ordered[:-1]]] if len(keys) else order
    return np.sort(first)


def full_index(engine: Engine, full: Engine) -> np.ndarray:
    if full is engine:
        return np.arange(engine.n_nodes, dtype=np.int64)
    index = full.indices_of(engine.id_series)
    if (index < 0).any():
        missing = engine.node_ids[int(np.flatnonzero(index < 0)[0])]
        raise ConfigError(
            f"the full graph lacks node '{missing}' of the sampled graph; pass the unpruned snapshot "
            "this one was pruned from"
        )
    return index


def full_types(engine: Engine, full: Engine, nodes: np.ndarray) -> np.ndarray:
    """Each path position's node type in the full engine's numbering (-1: a type the full graph lacks)."""
    to_full = np.array([full.type_index.get(name, -1) for name in engine.type_names], dtype=np.int64)
    return to_full[np.asarray(engine.node_type)[nodes].astype(np.int64)]


def flip_key(key: np.ndarray, n_rel: int) -> np.ndarray:
    """The key walking the same entries from their other end (-1 stays -1)."""
    return np.where(key < 0, -1, np.where(key >= n_rel, key - n_rel, key + n_rel))


def full_keys(engine: Engine, full: Engine, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each hop's keys in the full engine's numbering (relation ids differ after pruning)."""
    names = engine.relation_names
    to_full = np.array([full.relation_index.get(name, -1) for name in names], dtype=np.int64)
    rel = to_full[np.asarray(engine.rel)[entries].astype(np.int64)]
    if (rel < 0).any():
        raise ConfigError("the full graph lacks a relation of the sampled graph; pass the unpruned parent snapshot")
    n_rel = len(full.relation_names)
    key = rel + np.where(np.asarray(engine.forward)[entries], 0, n_rel)
    other = np.where(np.asarray(full.symmetric)[rel], flip_key(key, n_rel), -1)
    return key, other


def _satisfies(
    full: Engine,
    anchors: np.ndarray,
    keys: tuple[np.ndarray, np.ndarray],
    types: np.ndarray,
    cand_row: np.ndarray,
    cand_node: np.ndarray,
    budget: int,
) -> np.ndarray:
    """Per candidate: does some walk anchor -hop1-> … -hop_h-> candidate exist (or is it unproven)?

    The walk is read as verification reads it (kgsynth.verify.graph_checks
    check_pattern): a symmetric hop goes either way, and the node at each position
    has the path's type there (`types`, [rows, hops + 1]).
    keys: [rows, hops] arrays of hop keys (and the second key of symmetric hops).
    The first h//2 hops are expanded as sets from the anchor, the last ones as
    sets back from the candidate, and the hop in between is tested whichever way
    is cheapest for each candidate, so a hub on one side costs no more than the
    small side it meets. Work beyond the budget leaves the candidate unproven.
    """
    rows, hops = keys[0].shape
    n_cand = len(cand_row)
    n_rel = len(full.relation_names)
    ahead = hops // 2
    back_keys = _reverse(full, keys)
    forward_hops = [(keys[0][:, i], keys[1][:, i]) for i in range(ahead)]
    f_group, f_node, f_failed = expand_sets(full, np.arange(rows), anchors, forward_hops, budget, [types[:, i + 1] for i in range(ahead)])
    back_hops = [(back_keys[0][cand_row, i], back_keys[1][cand_row, i]) for i in range(hops - 1, ahead, -1)]
    back_types = [types[cand_row, i] for i in range(hops - 1, ahead, -1)]
    b_group, b_node, b_failed = expand_sets(full, np.arange(n_cand), cand_node, back_hops, budget, back_types)

    f_first = np.searchsorted(f_group, np.arange(rows + 1))
    f_size = np.diff(f_first)
    f_members = f_group * full.n_nodes + f_node  # sorted: groups come out sorted
    b_first = np.searchsorted(b_group, np.arange(n_cand + 1))
    b_size = np.diff(b_first)
    b_row = cand_row[b_group]

    per_row = np.bincount(cand_row, minlength=rows)
    met = np.zeros(n_cand, dtype=bool)
    over = np.zeros(n_cand, dtype=bool)
    mid = (keys[0][:, ahead], keys[1][:, ahead])
    # each middle key paired with its own reverse: a symmetric hop's two keys are each
    # other's reverse, and pairing a key with itself would test one direction twice
    back_mid = (flip_key(mid[0], n_rel), flip_key(mid[1], n_rel))
    for key, back_key in zip(mid, back_mid, strict=True):
        # Three ways to test the middle hop; each candidate takes the cheapest:
        # scan the candidate side's entries back into the anchor side (its own cost),
        # grow the anchor side by the hop once for all candidates of the path (shared),
        # or look up every (anchor-side, candidate-side) node pair by binary search.
        b_lo, b_hi = ranges(full, b_node, back_key[b_row])
        scan_back = np.bincount(b_group, weights=b_hi - b_lo, minlength=n_cand)
        f_lo, f_hi = ranges(full, f_node, key[f_group])
        grow = np.bincount(f_group, weights=f_hi - f_lo, minlength=rows)
        shared = grow[cand_row] / np.maximum(per_row[cand_row], 1)
        probe = f_size[cand_row].astype(np.float64) * b_size
        cost = np.stack([scan_back, shared, probe])
        way = np.argmin(cost, axis=0)
        over |= (cost.min(axis=0) > budget) | ((way == 1) & (grow[cand_row] > budget * np.maximum(per_row[cand_row], 1)))
        live = ~over & (b_size > 0) & (key[cand_row] >= 0)

        take = (live & (way == 0))[b_group]
        owner, entry = gather(np.where(take, b_lo, 0), np.where(take, b_hi, 0))
        hit = member(b_row[owner] * full.n_nodes + np.asarray(full.indices)[entry], f_members)
        met[b_group[owner[hit]]] = True

        rows_grown = np.zeros(rows, dtype=bool)
        rows_grown[cand_row[live & (way == 1)]] = True
        take = rows_grown[f_group]
        g_group, g_node = expand(full, f_group, [(f_lo, f_hi)], take)
        grown = g_group * full.n_nodes + g_node
        take = (live & (way == 1))[b_group]
        hit = take & member(b_row * full.n_nodes + b_node, grown)
        met[b_group[hit]] = True

        probing = np.flatnonzero(live & (way == 2))
        pair_cand, at = gather(f_first[cand_row[probing]], f_first[cand_row[probing] + 1])
        pair_cand, pair_u = probing[pair_cand], f_node[at]
        owner, at = gather(b_first[pair_cand], b_first[pair_cand + 1])
        hit = full.has_edges(pair_u[owner], key[cand_row[pair_cand[owner]]], b_node[at])
        met[pair_cand[owner[hit]]] = True
    return met | over | f_failed[cand_row] | b_failed


def expand_sets(
    engine: Engine,
    group: np.ndarray,
    start: np.ndarray,
    hops: list[tuple[np.ndarray, np.ndarray] | None],
    budget: int,
    types: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes reached from `start` by exactly these hops (keys per group, or None for any entry),
    keeping after hop i only nodes of type `types[i][group]` when types are given.

    Returns the (group, node) pairs sorted by group, and which groups ran over budget.
    """
    n_groups = len(group)
    f_group, f_node = group.astype(np.int64), start.astype(np.int32)
    spent = np.zeros(n_groups, dtype=np.int64)
    failed = np.zeros(n_groups, dtype=bool)
    for i, keys in enumerate(hops):
        spans = hop_ranges(engine, f_node, None if keys is None else (keys[0][f_group], keys[1][f_group]))
        spent += range_work(spans, f_group, n_groups)
        failed |= spent > budget
        f_group, f_node = expand(engine, f_group, spans, ~failed[f_group])
        if types is not None:
            typed = np.asarray(engine.node_type)[f_node] == types[i][f_group]
            f_group, f_node = f_group[typed], f_node[typed]
    return f_group, f_node, failed


def _within(engine: Engine, rows: np.ndarray, anchors: np.ndarray, nodes: np.ndarray, radius: int, budget: int) -> np.ndarray:
    """Per candidate (row, node): is it within `radius` hops of its row's anchor (or unknown)?

    Balls of radius ⌈r/2⌉ around each anchor (once per row) and ⌊r/2⌋ around each
    candidate must not meet.
    """
    if radius <= 0:
        return anchors[rows] == nodes
    a_group, a_node, a_failed = _ball(engine, anchors, (radius + 1) // 2, budget)
    x_group, x_node, x_failed = _ball(engine, nodes, radius // 2, budget)
    meet = contains(rows[x_group], x_node, a_group, a_node, engine.n_nodes)
    near = np.zeros(len(nodes), dtype=bool)
    near[x_group[meet]] = True
    return near | x_failed | a_failed[rows]


def _ball(engine: Engine, start: np.ndarray, radius: int, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (group, node) within `radius` hops of each start node, and the groups over budget."""
    groups = len(start)
    ball_group, ball_node = np.arange(groups, dtype=np.int64), start.astype(np.int32)
    f_group, f_node = ball_group, ball_node
    spent = np.zeros(groups, dtype=np.int64)
    failed = np.zeros(groups, dtype=bool)
    for _ in range(radius):
        spans = hop_ranges(engine, f_node, None)
        spent += range_work(spans, f_group, groups)
        failed |= spent > budget
        f_group, f_node = expand(engine, f_group, spans, ~failed[f_group])
        fresh = ~contains(f_group, f_node, ball_group, ball_node, engine.n_nodes)
        f_group, f_node = f_group[fresh], f_node[fresh]
        ball_group = np.concatenate([ball_group, f_group])
        ball_node = np.concatenate([ball_node, f_node])
    return ball_group, ball_node, failed


# --- kgsynth/sample/unique.py (verdicts only) ---

UNKNOWN, NOT_UNIQUE, UNIQUE = -1, 0, 1
QUICK_CAP = 8  # neighbours per node and nodes per position in the first, capped look
CAP = 64  # the same in the second look, for paths over the exact search's budget


def unique_answers(
    engine: Engine, full: Engine, batch: PathBatch, *, budget: int = 20_000, chunk: int = 8192
) -> np.ndarray:
    """Per path of the batch (sampled on `engine`): UNIQUE, NOT_UNIQUE or UNKNOWN, judged on `full`."""
    verdict = np.full(batch.rows, UNKNOWN, dtype=np.int8)
    if not batch.rows:
        return verdict
    to_full = full_index(engine, full)
    for start in range(0, batch.rows, chunk):
        rows = slice(start, start + chunk)
        anchors = to_full[batch.nodes[rows, 0]]
        keys = full_keys(engine, full, batch.entries[rows])
        types = full_types(engine, full, batch.nodes[rows])
        verdict[rows] = _judge(full, anchors, keys, types, budget)
    return verdict




def _judge(full: Engine, anchors: np.ndarray, keys: tuple[np.ndarray, np.ndarray], types: np.ndarray, budget: int) -> np.ndarray:
    """Most answers are not unique and two ends show it cheaply: a small capped look first,
    the exact expansion only for the rest, a wider capped look for those over budget."""
    rows, hops = keys[0].shape
    steps = [(keys[0][:, i], keys[1][:, i]) for i in range(hops)]
    wanted = [types[:, i + 1] for i in range(hops)]
    verdict = np.full(rows, UNKNOWN, dtype=np.int8)
    verdict[_capped_ends(full, anchors, steps, wanted, cap=QUICK_CAP) >= 2] = NOT_UNIQUE
    rest = np.flatnonzero(verdict == UNKNOWN)
    steps = [(k[rest], o[rest]) for k, o in steps]
    wanted = [t[rest] for t in wanted]
    ends, _, failed = expand_sets(full, np.arange(len(rest)), anchors[rest], steps, budget, wanted)
    count = np.bincount(ends, minlength=len(rest))
    verdict[rest] = np.where(failed, UNKNOWN, np.where(count == 1, UNIQUE, NOT_UNIQUE))
    if failed.any():
        over = np.flatnonzero(failed)
        seen = _capped_ends(full, anchors[rest[over]], [(k[over], o[over]) for k, o in steps], [t[over] for t in wanted], cap=CAP)
        verdict[rest[over[seen >= 2]]] = NOT_UNIQUE
    return verdict


def _capped_ends(
    full: Engine, anchors: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray]], wanted: list[np.ndarray], *, cap: int
) -> np.ndarray:
    """Distinct ends reached through a frontier of at most `cap` nodes, each giving at most `cap`
    neighbours: a lower bound on the true count, enough to prove two ends."""
    n = len(anchors)
    group, node = np.arange(n, dtype=np.int64), anchors.astype(np.int32)
    for (key, other), node_type in zip(steps, wanted, strict=True):
        spans = [(lo, np.minimum(hi, lo + cap)) for lo, hi in hop_ranges(full, node, (key[group], other[group]))]
        group, node = expand(full, group, spans, np.ones(len(group), dtype=bool))
        typed = np.asarray(full.node_type)[node] == node_type[group]
        group, node = group[typed], node[typed]
        rank = np.arange(len(group)) - np.searchsorted(group, group, side="left")
        group, node = group[rank < cap], node[rank < cap]
    return np.bincount(group, minlength=n)
