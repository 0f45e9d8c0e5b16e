"""`between`: up to k shortest simple paths between given entity pairs, with a hop cap.

For grounding existing QA pairs (the MedReason workflow): each (source, target)
pair gets its shortest simple paths of at most `max_hops` hops, shortest first;
among paths of one length the more specific ones (lower summed log-degree of
the nodes in between) come first, ties broken by the seed.

A path of L hops is found from both ends: simple partial paths of ⌊(L-1)/2⌋ hops
from the source and of the rest minus one from the target, joined by one middle
edge. The middle edge is found per node u of the source side either by scanning
u's entries for the target side's nodes or — when u has more entries than there
are such nodes, as a hub does — by binary search for each of them, so hubs cost
no more than the small side they meet.

`paths_between` returns the table and which pairs had no path (or unknown ids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import polars as pl

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.sample import SAMPLERS
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.collect import Collected
from kgsynth.sample.frontier import gather, member, sorted_unique
from kgsynth.sample.params import MAX_HOPS, Exclude, excluded_mask

MAX_JOIN = 200_000  # partial-path combinations examined per pair and length


def paths_between(
    engine: Engine,
    pairs: Iterable[tuple[str, str]],
    k: int = 3,
    max_hops: int = 3,
    *,
    seed: int = 0,
    full: Engine | None = None,
    negatives: int = 0,
    exclude: Exclude = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """(paths table, report) for the pairs. The report lists pairs without a path
    (`no_path`) and pairs naming an id the graph lacks (`unknown`), each as (src, dst)."""
    from kgsynth.sample import sample_with_stats

    frame, stats = sample_with_stats(
        engine, "between", 0, seed, full=full, negatives=negatives, pairs=list(pairs), k=k, max_hops=max_hops, exclude=exclude
    )
    report = dict(stats.extra)
    report["paths"] = frame.height
    report["seconds"] = stats.seconds
    return frame, report


@SAMPLERS.register("between")
def sample_between(
    engine: Engine,
    n: int,
    rng: np.random.Generator,
    *,
    pairs: Iterable[tuple[str, str]],
    k: int = 3,
    max_hops: int = 3,
    exclude: Exclude = None,
    advance: Callable[[int], None] | None = None,
) -> Collected:
    """Up to k paths per pair (n is not used: every pair is searched)."""
    if not 1 <= max_hops <= MAX_HOPS:
        raise ConfigError(f"between: max_hops must be between 1 and {MAX_HOPS}, got {max_hops}")
    if k < 1:
        raise ConfigError(f"between: k must be at least 1, got {k}")
    pairs = [(str(s), str(t)) for s, t in pairs]
    excluded = excluded_mask(engine, exclude)
    blocked = excluded if excluded is not None else np.zeros(engine.n_nodes, dtype=bool)
    sources = engine.indices_of([s for s, _ in pairs])
    targets = engine.indices_of([t for _, t in pairs])
    log_degree = np.log1p(engine.degree.astype(np.float64))
    found: dict[int, list[PathBatch]] = {}
    no_path, unknown = [], []
    rejections: Counter = Counter()
    for (s_id, t_id), s, t in zip(pairs, sources.tolist(), targets.tolist(), strict=True):
        if s < 0 or t < 0 or s == t:
            unknown.append((s_id, t_id)) if s < 0 or t < 0 else no_path.append((s_id, t_id))
            rejections["unknown_id" if s < 0 or t < 0 else "same_node"] += 1
            continue
        batches = shortest_paths(engine, s, t, k, max_hops, blocked, log_degree, rng, rejections)
        if not batches:
            no_path.append((s_id, t_id))
            rejections["no_path"] += 1
        for batch in batches:
            found.setdefault(batch.hops, []).append(batch)
            if advance is not None:
                advance(batch.rows)
    result = Collected(batches=[PathBatch.concat(found[h]) for h in sorted(found)], rejections=rejections)
    result.extra = {"pairs": len(pairs), "with_paths": len(pairs) - len(no_path) - len(unknown), "no_path": no_path, "unknown": unknown}
    return result


def shortest_paths(
    engine: Engine,
    s: int,
    t: int,
    k: int,
    max_hops: int,
    blocked: np.ndarray,
    log_degree: np.ndarray,
    rng: np.random.Generator,
    rejections: Counter,
) -> list[PathBatch]:
    """Up to k simple s → t paths of at most max_hops hops, shortest (then most specific) first."""
    batches, wanted = [], k
    for length in range(1, max_hops + 1):
        ahead = (length - 1) // 2
        from_s = _partials(engine, s, ahead, blocked)
        from_t = _partials(engine, t, length - 1 - ahead, blocked)
        nodes, entries = _join(engine, from_s, from_t, rejections)
        if not len(nodes):
            continue
        simple = np.ones(len(nodes), dtype=bool)
        for i in range(length + 1):
            for j in range(i + 1, length + 1):
                simple &= nodes[:, i] != nodes[:, j]
        rejections["not_simple"] += int((~simple).sum())
        nodes, entries = nodes[simple], entries[simple]
        if not len(nodes):
            continue
        specificity = log_degree[nodes[:, 1:-1]].sum(axis=1)
        best = np.lexsort((rng.random(len(nodes)), specificity))[:wanted]
        batches.append(PathBatch(nodes[best].astype(np.int32), entries[best]))
        wanted -= len(best)
        if wanted <= 0:
            break
    return batches


def _partials(engine: Engine, start: int, depth: int, blocked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Simple walks of exactly `depth` hops from start, avoiding blocked nodes: (nodes, entries)."""
    nodes = np.array([[start]], dtype=np.int64)
    entries = np.zeros((1, 0), dtype=np.int64)
    indptr, indices = np.asarray(engine.indptr), np.asarray(engine.indices)
    for _ in range(depth):
        row, entry = gather(indptr[nodes[:, -1]], indptr[nodes[:, -1] + 1])
        step = indices[entry].astype(np.int64)
        fresh = ~blocked[step]
        for column in nodes.T:
            fresh &= step != column[row]
        if fresh.sum() > MAX_JOIN:
            break
        nodes = np.column_stack([nodes[row[fresh]], step[fresh]])
        entries = np.column_stack([entries[row[fresh]], entry[fresh]])
    return nodes, entries


def _join(
    engine: Engine, from_s: tuple[np.ndarray, np.ndarray], from_t: tuple[np.ndarray, np.ndarray], rejections: Counter
) -> tuple[np.ndarray, np.ndarray]:
    """Whole paths: a source partial, one middle edge u → w, a target partial turned around."""
    s_nodes, s_entries = from_s
    t_nodes, t_entries = from_t
    ends_u = sorted_unique(s_nodes[:, -1])
    ends_w = sorted_unique(t_nodes[:, -1])
    u, w, middle = _edges_between(engine, ends_u, ends_w)
    if not len(middle):
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64)
    s_order = np.argsort(s_nodes[:, -1], kind="stable")
    t_order = np.argsort(t_nodes[:, -1], kind="stable")
    s_lo = np.searchsorted(s_nodes[s_order, -1], u)
    s_hi = np.searchsorted(s_nodes[s_order, -1], u, side="right")
    t_lo = np.searchsorted(t_nodes[t_order, -1], w)
    t_hi = np.searchsorted(t_nodes[t_order, -1], w, side="right")
    combos = (s_hi - s_lo) * (t_hi - t_lo)
    if combos.sum() > MAX_JOIN:
        rejections["join_capped"] += 1
        keep = np.cumsum(combos) <= MAX_JOIN
        u, w, middle, s_lo, s_hi, t_lo, t_hi, combos = (a[keep] for a in (u, w, middle, s_lo, s_hi, t_lo, t_hi, combos))
    edge, s_at = gather(s_lo, s_hi)  # every source partial ending at u, per middle edge
    pick, t_at = gather(t_lo[edge], t_hi[edge])  # times every target partial ending at w
    edge, s_at = edge[pick], s_at[pick]
    s_rows, t_rows = s_order[s_at], t_order[t_at]
    back = t_entries[t_rows][:, ::-1]
    back = engine.twins(back.ravel()).reshape(back.shape) if back.size else back
    nodes = np.column_stack([s_nodes[s_rows], t_nodes[t_rows][:, ::-1]])
    entries = np.column_stack([s_entries[s_rows], middle[edge], back])
    return nodes, entries


def _edges_between(engine: Engine, us: np.ndarray, ws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every entry u → w with u in us and w in ws (both sorted, distinct): (u, w, entry)."""
    indptr = np.asarray(engine.indptr)
    degree = indptr[us + 1] - indptr[us]
    scan = degree <= len(ws)
    owner, entry = gather(indptr[us[scan]], indptr[us[scan] + 1])
    neighbour = np.asarray(engine.indices)[entry].astype(np.int64)
    hit = member(neighbour, ws)
    u_parts, w_parts, e_parts = [us[scan][owner[hit]]], [neighbour[hit]], [entry[hit]]
    hubs = us[~scan]
    if len(hubs):
        # every run (relation, direction) of each hub, probed for every w
        hub_of, run = gather(*engine.runs_of(hubs))
        w = np.tile(ws, len(run))
        found = engine.run_entries(np.repeat(run, len(ws)), w)
        hit = found >= 0
        u_parts.append(hubs[np.repeat(hub_of, len(ws))[hit]])
        w_parts.append(w[hit])
        e_parts.append(found[hit])
    return np.concatenate(u_parts), np.concatenate(w_parts), np.concatenate(e_parts)
