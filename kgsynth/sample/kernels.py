"""Compiled kernels (numba) for hard negatives and unique answers: one path at a time.

The array-at-a-time versions paid for every step with a sort or a binary search
over the whole graph (a run's key among millions); a path's proof touches a few
hundred entries. Here each path does all of its work in a loop: candidates drawn
on the sampling graph, filtered, ranked, checked for distance and proven on the
full graph, round after round until it has its negatives. Node sets are marks in
per-worker arrays (a fresh stamp per set, so nothing is ever cleared), and a
node's run of one hop key is found among that node's few runs only.

The rules are those of kgsynth.sample.negatives and kgsynth.sample.unique, down
to the work counted against the budgets, so the same candidates get the same
verdicts (tests/test_negatives_kernels.py holds them to the array code they
replace). Randomness is a counter-based stream per path (splitmix64 of the call's
seed and the path's row), so results depend neither on chunking nor on threads.

Every function is `nogil`: callers run slices of a batch on threads of their own.
`cache=True` keeps the machine code beside this file (or in numba's user cache
when the install is read-only), so only the first run pays the compile.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53

UNKNOWN, NOT_UNIQUE, UNIQUE = -1, 0, 1
HIERARCHY_RUN = 1 << 32  # kgsynth.graph.engine.HIERARCHY_RUN
QUICK_CAP = 8  # neighbours per node and nodes per position in the first, capped look
CAP = 64  # the same in the second look, for paths over the exact search's budget
COUSIN_DEPTH = 3  # levels up a hierarchy a cousin may share its ancestor

# status of a candidate handed to the proof (prove_candidates)
DROPPED, SATISFIES, PROVEN = -1, 0, 1

_jit = njit(cache=True, nogil=True)


# --- random numbers: one splitmix64 stream per path ---


@_jit
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@_jit
def _seed_stream(state, seed, row):
    state[0] = _mix(np.uint64(seed) ^ _mix(np.uint64(row) * _GOLDEN + _GOLDEN))


@_jit
def _below(state, n):
    """A uniform integer in [0, n)."""
    state[0] += _GOLDEN
    at = int(float(_mix(state[0]) >> np.uint64(11)) * _TO_UNIT * n)
    return at if at < n else n - 1


# --- graph access. A graph is a tuple (node_table, run_table, indices, node_type, n_keys):
# Engine.node_table / run_table, the CSR's neighbours and the node types; a sampling graph
# adds (symmetric, by_type_ptr, by_type_nbr, n_types) for drawing candidates. ---

_KEY = (1 << 32) - 1  # run_table's key column without its HIERARCHY_RUN flag


@_jit
def _run_range(g, node, key):
    """[lo, hi) entries of node under one hop key (empty for key -1 or a node without that run)."""
    if key < 0:
        return 0, 0
    node_table, run_table = g[0], g[1]
    for run in range(node_table[node, 1], node_table[node + 1, 1]):
        if run_table[run, 0] & _KEY == key:
            return run_table[run, 1], run_table[run + 1, 1]
    return 0, 0


@_jit
def _flip(key, n_rel):
    if key < 0:
        return -1
    return key - n_rel if key >= n_rel else key + n_rel


@_jit
def _reverse(key, other, n_rel):
    """The same hops walked the other way (a symmetric pair stays as it is)."""
    if other >= 0:
        return key, other
    return _flip(key, n_rel), -1


@_jit
def _stamp(counter):
    counter[0] += 1
    return counter[0]


# --- candidates on the sampling graph ---


@_jit
def _hop_keys(s, key):
    """The hop keys that repeat a hop of this key: itself, plus the other direction if symmetric."""
    n_rel = s[4] // 2
    return key, (_flip(key, n_rel) if s[5][key % n_rel] else -1)


@_jit
def _pick_entry(s, state, node):
    """A uniform entry of node and its hop key; (-1, -1) when it has none."""
    node_table, run_table = s[0], s[1]
    lo, hi = node_table[node, 0], node_table[node + 1, 0]
    if hi == lo:
        return -1, -1
    entry = lo + _below(state, hi - lo)
    run = node_table[node, 1]
    while run_table[run + 1, 1] <= entry:
        run += 1
    return entry, run_table[run, 0] & _KEY


@_jit
def _random_neighbour(s, state, node, key, other):
    """A uniform neighbour of node through the runs of key and other, -1 where there is none."""
    if node < 0:
        return -1
    a, b = _run_range(s, node, key)
    c, d = _run_range(s, node, other)
    total = b - a + d - c
    if total == 0:
        return -1
    at = _below(state, total)
    return s[2][a + at] if at < b - a else s[2][c + at - (b - a)]


@_jit
def _sibling(s, state, node):
    """x with node -r-> p <-r- x for a random entry (node, p): same relation, same direction."""
    entry, key = _pick_entry(s, state, node)
    if entry < 0:
        return -1
    key, other = _hop_keys(s, key)
    key, other = _reverse(key, other, s[4] // 2)
    return _random_neighbour(s, state, s[2][entry], key, other)


@_jit
def _cousin(s, state, node):
    """x under a common ancestor 1..COUSIN_DEPTH levels up, through one of the node's runs to
    nodes of its own type (node -r-> … -r-> g <-r- … <-r- x); -1 where it has none."""
    node_table, run_table = s[0], s[1]
    first, last = node_table[node, 1], node_table[node + 1, 1]
    present = 0
    for run in range(first, last):
        present += run_table[run, 0] >= HIERARCHY_RUN
    if present == 0:
        return -1
    nth = _below(state, present)
    run = first
    while True:
        if run_table[run, 0] >= HIERARCHY_RUN:
            if nth == 0:
                break
            nth -= 1
        run += 1
    lo, hi = run_table[run, 1], run_table[run + 1, 1]
    entry = lo + _below(state, hi - lo)
    up = 1 + _below(state, COUSIN_DEPTH)
    key, other = _hop_keys(s, run_table[run, 0] & _KEY)
    current = s[2][entry]
    for _ in range(1, up):
        current = _random_neighbour(s, state, current, key, other)
    key, other = _reverse(key, other, s[4] // 2)
    for _ in range(up):
        current = _random_neighbour(s, state, current, key, other)
    return current


@_jit
def _distance_walk(s, state, nodes, answer_type, walked):
    """The end of another simple walk as long as the path from its anchor, its last hop onto the
    answer's type; a pick landing on the walk itself is drawn once more; -1 when it fails."""
    node_table, indices, by_type_ptr, by_type_nbr, n_types = s[0], s[2], s[6], s[7], s[8]
    hops = len(nodes) - 1
    current = nodes[0]
    walked[0] = current
    for step in range(hops):
        if step == hops - 1:
            lo = by_type_ptr[current * n_types + answer_type]
            count = by_type_ptr[current * n_types + answer_type + 1] - lo
        else:
            lo = node_table[current, 0]
            count = node_table[current + 1, 0] - lo
        if count == 0:
            return -1
        picked = -1
        for attempt in range(2):
            if attempt and count < 2:
                break
            offset = lo + _below(state, count)
            node = by_type_nbr[offset] if step == hops - 1 else indices[offset]
            clash = False
            for j in range(step + 1):
                clash |= walked[j] == node
            if not clash:
                picked = node
                break
        if picked < 0:
            return -1
        walked[step + 1] = picked
        current = picked
    return current


@_jit
def _draw_candidates(s, state, nodes, last_key, tries, out, walked):
    """`tries` candidates per family into out[:4 * tries] (-1: none), in the order the
    selection ranks ties: distance, siblings, cousins, last hop from a sibling of the bridge.
    last_key: the key the path's last hop walked."""
    hops = len(nodes) - 1
    answer = nodes[hops]
    answer_type = s[3][answer]
    for t in range(tries):
        out[t] = _distance_walk(s, state, nodes, answer_type, walked)
    for t in range(tries):
        out[tries + t] = _sibling(s, state, answer)
    for t in range(tries):
        out[2 * tries + t] = _cousin(s, state, answer)
    key, other = _hop_keys(s, last_key)
    for t in range(tries):
        out[3 * tries + t] = -1 if hops < 2 else _random_neighbour(s, state, _sibling(s, state, nodes[hops - 1]), key, other)
    return 4 * tries


# --- sets on the full graph ---


@_jit
def _expand(g, buf, size, keys0, keys1, types, budget, mark, counter, spare, lo, hi):
    """Expand buf[:size] through len(keys0) typed hops (keys0[i] and keys1[i], type types[i]).

    Returns (size, over budget, stamp): the final set in buf[:size], marked with stamp in
    mark. Work is counted as the array code counted it: all entries of a layer's ranges,
    added before that layer expands; over the budget, nothing further expands.
    """
    indices, node_type = g[2], g[3]
    spent = 0
    stamp = -1
    for i in range(len(keys0)):
        work = 0
        for j in range(size):
            a, b = _run_range(g, buf[j], keys0[i])
            c, d = _run_range(g, buf[j], keys1[i])
            lo[2 * j], hi[2 * j], lo[2 * j + 1], hi[2 * j + 1] = a, b, c, d
            work += b - a + d - c
        spent += work
        if spent > budget:
            return 0, True, -1
        stamp = _stamp(counter)
        want = types[i]
        n = 0
        for j in range(2 * size):
            for e in range(lo[j], hi[j]):
                v = indices[e]
                if node_type[v] == want and mark[v] != stamp:
                    mark[v] = stamp
                    spare[n] = v
                    n += 1
        buf[:n] = spare[:n]
        size = n
    if stamp < 0:
        stamp = _stamp(counter)
        for j in range(size):
            mark[buf[j]] = stamp
    return size, False, stamp


@_jit
def _has_entry(g, node, key, neighbour):
    lo, end = _run_range(g, node, key)
    indices = g[2]
    hi = end
    while lo < hi:  # a run is sorted by neighbour
        mid = (lo + hi) >> 1
        if indices[mid] < neighbour:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and indices[lo] == neighbour


@_jit
def _middle(g, f_buf, f_size, f_mark, f_stamp, b_buf, b_size, key, per_row, grown, grown_mark, counter, budget):
    """(over budget, met) for the middle hop between the anchor side f and the candidate side b.

    The cost model is the array code's: scan b's entries back into f, grow f by the hop
    once per path (`grown` caches [work, stamp] per path and key), or test every pair by
    binary search; the cheapest decides, and over the budget the candidate stays unproven.
    """
    back_key = _flip(key, g[4] // 2)
    indices = g[2]
    scan_back = 0.0
    for j in range(b_size):
        a, b = _run_range(g, b_buf[j], back_key)
        scan_back += b - a
    if grown[0] < 0:
        work = 0
        for j in range(f_size):
            a, b = _run_range(g, f_buf[j], key)
            work += b - a
        grown[0] = work
    rows = max(per_row, 1)
    shared = grown[0] / rows
    probe = float(f_size) * float(b_size)
    way, cost = 0, scan_back
    if shared < cost:
        way, cost = 1, shared
    if probe < cost:
        way, cost = 2, probe
    if cost > budget or (way == 1 and grown[0] > budget * rows):
        return True, False
    if b_size == 0 or key < 0:
        return False, False
    if way == 0:
        for j in range(b_size):
            a, b = _run_range(g, b_buf[j], back_key)
            for e in range(a, b):
                if f_mark[indices[e]] == f_stamp:
                    return False, True
        return False, False
    if way == 1:
        if grown[1] < 0:
            grown[1] = _stamp(counter)
            for j in range(f_size):
                a, b = _run_range(g, f_buf[j], key)
                for e in range(a, b):
                    grown_mark[indices[e]] = grown[1]
        for j in range(b_size):
            if grown_mark[b_buf[j]] == grown[1]:
                return False, True
        return False, False
    for i in range(f_size):
        for j in range(b_size):
            if _has_entry(g, f_buf[i], key, b_buf[j]):
                return False, True
    return False, False


# --- the ball test on the sampling graph (distance family) ---


@_jit
def _ball(s, start, radius, budget, mark, counter, buf, spare, anchor_mark, anchor_stamp):
    """Mark every node within `radius` of start (all entries). Returns (stamp, over budget, met):
    met when anchor_stamp >= 0 and a node of the ball carries it in anchor_mark."""
    node_table, indices = s[0], s[2]
    stamp = _stamp(counter)
    mark[start] = stamp
    if anchor_stamp >= 0 and anchor_mark[start] == anchor_stamp:
        return stamp, False, True
    buf[0] = start
    size, spent = 1, 0
    for _ in range(radius):
        for j in range(size):
            spent += node_table[buf[j] + 1, 0] - node_table[buf[j], 0]
        if spent > budget:
            return stamp, True, False
        n = 0
        for j in range(size):
            for e in range(node_table[buf[j], 0], node_table[buf[j] + 1, 0]):
                v = indices[e]
                if mark[v] != stamp:
                    mark[v] = stamp
                    if anchor_stamp >= 0 and anchor_mark[v] == anchor_stamp:
                        return stamp, False, True
                    spare[n] = v
                    n += 1
        buf[:n] = spare[:n]
        size = n
    return stamp, False, False


# --- scratch space of one worker ---


@_jit
def _scratch(n_full, n_sampling):
    """Marks and buffers for one worker: full-graph marks (anchor side, candidate side, two grown
    sets), sampling-graph marks (candidate de-duplication, anchor ball, candidate ball), buffers."""
    full_marks = np.zeros((4, n_full), dtype=np.int32)
    sampling_marks = np.zeros((3, n_sampling), dtype=np.int32)
    buffers = np.empty((4, n_full + 1), dtype=np.int32)
    sampling_buffers = np.empty((2, n_sampling + 1), dtype=np.int32)
    ranges = np.empty((2, 2 * n_full + 2), dtype=np.int64)
    counter = np.zeros(1, dtype=np.int64)
    return full_marks, sampling_marks, buffers, sampling_buffers, ranges, counter


@_jit
def _renew_marks(scratch):
    """Between paths: start the stamps over before they could overflow the int32 marks."""
    if scratch[5][0] > 1 << 30:
        scratch[0][:] = 0
        scratch[1][:] = 0
        scratch[5][0] = 0


@_jit
def _path_sides(keys0, keys1, types, n_rel):
    """The path's hops split as the proof walks them: the first h//2 forward from the anchor,
    the last ones back from the candidate (reversed keys, the type of the position reached)."""
    hops = len(keys0)
    ahead = hops // 2
    f0, f1, ft = keys0[:ahead].copy(), keys1[:ahead].copy(), types[1 : ahead + 1].copy()
    behind = hops - ahead - 1
    b0 = np.empty(behind, dtype=np.int64)
    b1 = np.empty(behind, dtype=np.int64)
    bt = np.empty(behind, dtype=np.int64)
    for j in range(behind):
        i = hops - 1 - j
        b0[j], b1[j] = _reverse(keys0[i], keys1[i], n_rel)
        bt[j] = types[i]
    return f0, f1, ft, b0, b1, bt


@_jit
def _prove_path(
    s, g, nodes, anchor_full, keys0, keys1, types, to_full,
    cand, n_cand, distance_tries, per_row, budget, scratch, path_state, status, proven,
):
    """Filter, rank and prove one path's candidates (sampling-graph nodes cand[:n_cand], the first
    `distance_tries` from the distance family). Writes status per candidate (DROPPED, SATISFIES,
    PROVEN) and the proven full-graph nodes into `proven`; returns how many.

    path_state caches per path across rounds: [forward size, forward over budget, forward stamp,
    anchor-ball stamp, anchor ball over budget, grown work key0, grown stamp key0, grown work
    key1, grown stamp key1]; -2 where not yet computed.
    """
    full_marks, sampling_marks, buffers, sampling_buffers, ranges, counter = scratch
    hops = len(nodes) - 1
    n_rel = g[4] // 2
    answer_type = s[3][nodes[hops]]
    # answer's type, off the path, distinct (first occurrence kept)
    seen = sampling_marks[0]
    stamp = _stamp(counter)
    for j in range(len(nodes)):
        seen[nodes[j]] = stamp
    kept = np.empty(n_cand, dtype=np.int64)
    n_kept = 0
    for j in range(n_cand):
        status[j] = DROPPED
        x = cand[j]
        if x < 0 or s[3][x] != answer_type or seen[x] == stamp:
            continue
        seen[x] = stamp
        kept[n_kept] = j
        n_kept += 1
    # the fewest ways in by the last hop, ties in candidate order
    last0, last1 = _reverse(keys0[hops - 1], keys1[hops - 1], n_rel)
    ways = np.empty(n_kept, dtype=np.int64)
    for i in range(n_kept):
        x = to_full[cand[kept[i]]]
        a, b = _run_range(g, x, last0)
        c, d = _run_range(g, x, last1)
        ways[i] = b - a + d - c
    chosen = np.empty(n_kept, dtype=np.int64)
    n_chosen = 0
    for i in range(n_kept):
        rank = 0
        for j in range(n_kept):
            if ways[j] < ways[i] or (ways[j] == ways[i] and j < i):
                rank += 1
        if rank < per_row:
            chosen[n_chosen] = kept[i]
            n_chosen += 1
    # the distance family: its shortest distance from the anchor must be the path's length
    radius = hops - 1
    alive = np.empty(n_chosen, dtype=np.int64)
    n_alive = 0
    for i in range(n_chosen):
        j = chosen[i]
        if j < distance_tries:
            x = cand[j]
            if radius <= 0:
                near = x == nodes[0]
            else:
                if path_state[3] == -2:
                    a_stamp, a_over, _ = _ball(
                        s, nodes[0], (radius + 1) // 2, budget, sampling_marks[1], counter,
                        sampling_buffers[0], sampling_buffers[1], sampling_marks[1], -1,
                    )
                    path_state[3], path_state[4] = a_stamp, a_over
                _, x_over, met = _ball(
                    s, x, radius // 2, budget, sampling_marks[2], counter,
                    sampling_buffers[0], sampling_buffers[1], sampling_marks[1], path_state[3],
                )
                near = path_state[4] == 1 or x_over or met
            if near:
                continue
        alive[n_alive] = j
        n_alive += 1
    if not n_alive:
        return 0
    f0, f1, ft, b0, b1, bt = _path_sides(keys0, keys1, types, n_rel)
    ahead = len(f0)
    f_buf = buffers[0]
    if path_state[0] == -2:
        f_buf[0] = anchor_full
        size, over, f_stamp = _expand(g, f_buf, 1, f0, f1, ft, budget, full_marks[0], counter, buffers[1], ranges[0], ranges[1])
        path_state[0], path_state[1], path_state[2] = size, over, f_stamp
        path_state[5:9] = -1  # the middle hop's growth: computed when first needed, then kept
    f_size, f_over, f_stamp = path_state[0], path_state[1] == 1, path_state[2]
    grown0 = path_state[5:7]
    grown1 = path_state[7:9]
    b_buf = buffers[2]
    n_proven = 0
    for i in range(n_alive):
        j = alive[i]
        status[j] = SATISFIES
        if f_over:
            continue
        b_buf[0] = to_full[cand[j]]
        b_size, b_over, _ = _expand(g, b_buf, 1, b0, b1, bt, budget, full_marks[1], counter, buffers[3], ranges[0], ranges[1])
        if b_over:
            continue
        over0, met0 = _middle(g, f_buf, f_size, full_marks[0], f_stamp, b_buf, b_size, keys0[ahead], n_alive, grown0, full_marks[2], counter, budget)
        if over0 or met0:
            continue
        over1, met1 = _middle(g, f_buf, f_size, full_marks[0], f_stamp, b_buf, b_size, keys1[ahead], n_alive, grown1, full_marks[3], counter, budget)
        if over1 or met1:
            continue
        status[j] = PROVEN
        proven[n_proven] = to_full[cand[j]]
        n_proven += 1
    return n_proven


@_jit
def hard_negatives_rows(
    s, g, nodes, last_keys, anchors_full, keys0, keys1, types, to_full,
    first_row, seed, k, attempts, rounds, budget, counts, out,
):
    """Up to k proven hard negatives for each path of a slice (row first_row + i of the batch):
    each round draws tries = (k + attempts) * 2**round per family, proves the 2k with the
    fewest ways in, and a path stops once it has k distinct; k of those found are kept, in
    random order. counts[i] and out[i, :counts[i]] receive them (full-graph indices)."""
    rows, hops = nodes.shape[0], nodes.shape[1] - 1
    scratch = _scratch(len(g[0]) - 1, len(s[0]) - 1)
    most = (k + attempts) << (rounds - 1)
    cand = np.empty(4 * most, dtype=np.int64)
    status = np.empty(4 * most, dtype=np.int64)
    proven = np.empty(4 * most, dtype=np.int64)
    found = np.empty(3 * k + 2 * k * rounds, dtype=np.int64)
    walked = np.empty(hops + 1, dtype=np.int64)
    state = np.zeros(1, dtype=np.uint64)
    path_state = np.empty(9, dtype=np.int64)
    for i in range(rows):
        _seed_stream(state, seed, first_row + i)
        _renew_marks(scratch)
        path_state[:] = -2
        n_found = 0
        tries = k + attempts
        for _ in range(rounds):
            n_cand = _draw_candidates(s, state, nodes[i], last_keys[i], tries, cand, walked)
            n_proven = _prove_path(
                s, g, nodes[i], anchors_full[i], keys0[i], keys1[i], types[i], to_full,
                cand, n_cand, tries, 2 * k, budget, scratch, path_state, status, proven,
            )
            for j in range(n_proven):
                fresh = True
                for m in range(n_found):
                    if found[m] == proven[j]:
                        fresh = False
                        break
                if fresh:
                    found[n_found] = proven[j]
                    n_found += 1
            if n_found >= k:
                break
            tries *= 2
        take = min(k, n_found)
        for j in range(take):  # a uniform choice of k, in random order
            m = j + _below(state, n_found - j)
            found[j], found[m] = found[m], found[j]
            out[i, j] = found[j]
        counts[i] = take


@_jit
def prove_candidates(
    s, g, nodes, anchors_full, keys0, keys1, types, to_full,
    cand_start, cand, distance_count, per_row, budget, status,
):
    """The proof alone, for candidates drawn elsewhere (path i: cand[cand_start[i]:cand_start[i + 1]],
    the first distance_count[i] from the distance family): status per candidate."""
    scratch = _scratch(len(g[0]) - 1, len(s[0]) - 1)
    path_state = np.empty(9, dtype=np.int64)
    width = 1
    for i in range(len(cand_start) - 1):
        width = max(width, cand_start[i + 1] - cand_start[i])
    proven = np.empty(width, dtype=np.int64)
    part = np.empty(width, dtype=np.int64)
    for i in range(len(cand_start) - 1):
        lo, hi = cand_start[i], cand_start[i + 1]
        _renew_marks(scratch)
        path_state[:] = -2
        _prove_path(
            s, g, nodes[i], anchors_full[i], keys0[i], keys1[i], types[i], to_full,
            cand[lo:hi], hi - lo, distance_count[i], per_row, budget, scratch, path_state, part, proven,
        )
        status[lo:hi] = part[: hi - lo]


@_jit
def candidates_rows(s, nodes, last_keys, first_row, seed, tries, out):
    """The first round's candidates of each path as drawn, before any filter: out[i, :4 * tries]."""
    walked = np.empty(nodes.shape[1], dtype=np.int64)
    state = np.zeros(1, dtype=np.uint64)
    for i in range(nodes.shape[0]):
        _seed_stream(state, seed, first_row + i)
        _draw_candidates(s, state, nodes[i], last_keys[i], tries, out[i], walked)


@_jit
def cousins_of(s, nodes, seed, out):
    """One cousin (or -1) of each node."""
    state = np.zeros(1, dtype=np.uint64)
    for i in range(len(nodes)):
        _seed_stream(state, seed, i)
        out[i] = _cousin(s, state, nodes[i])


# --- unique answers ---


@_jit
def _capped_ends(g, anchor, keys0, keys1, types, cap, buf, spare):
    """Distinct ends reached through a frontier of at most `cap` nodes (the lowest indices), each
    giving at most `cap` entries per run: a lower bound on the true count, enough to prove two."""
    indices, node_type = g[2], g[3]
    buf[0] = anchor
    size = 1
    for i in range(len(keys0)):
        n = 0
        for j in range(size):
            for key in (keys0[i], keys1[i]):
                a, b = _run_range(g, buf[j], key)
                for e in range(a, min(b, a + cap)):
                    v = indices[e]
                    if node_type[v] == types[i]:
                        spare[n] = v
                        n += 1
        picked = np.sort(spare[:n])
        size = 0
        for j in range(n):
            if size == cap:
                break
            if j == 0 or picked[j] != picked[j - 1]:
                buf[size] = picked[j]
                size += 1
    return size


@_jit
def unique_rows(g, anchors, keys0, keys1, types, budget, verdict):
    """Per path: UNIQUE, NOT_UNIQUE or UNKNOWN. A capped look first (two ends found settle it),
    the exact expansion within the budget for the rest, a wider capped look for those over it."""
    n_full = len(g[0]) - 1
    rows, hops = keys0.shape
    mark = np.zeros(n_full, dtype=np.int64)
    counter = np.zeros(1, dtype=np.int64)
    buf = np.empty(n_full + 1, dtype=np.int64)
    spare = np.empty(max(n_full + 1, 2 * CAP * CAP), dtype=np.int64)
    lo = np.empty(2 * n_full + 2, dtype=np.int64)
    hi = np.empty(2 * n_full + 2, dtype=np.int64)
    for i in range(rows):
        t = types[i, 1:]
        if _capped_ends(g, anchors[i], keys0[i], keys1[i], t, QUICK_CAP, buf, spare) >= 2:
            verdict[i] = NOT_UNIQUE
            continue
        buf[0] = anchors[i]
        size, over, _ = _expand(g, buf, 1, keys0[i], keys1[i], t, budget, mark, counter, spare, lo, hi)
        if not over:
            verdict[i] = UNIQUE if size == 1 else NOT_UNIQUE
        elif _capped_ends(g, anchors[i], keys0[i], keys1[i], t, CAP, buf, spare) >= 2:
            verdict[i] = NOT_UNIQUE
        else:
            verdict[i] = UNKNOWN


# --- per-graph arrays ---


@_jit
def by_neighbour_type(indptr, indices, node_type, n_types):
    """Each node's neighbours grouped by their type: node u's neighbours of type t are
    nbr[ptr[u * n_types + t] : ptr[u * n_types + t + 1]] (one per entry, as the CSR lists them)."""
    n = len(indptr) - 1
    ptr = np.zeros(n * n_types + 1, dtype=np.int64)
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            ptr[u * n_types + node_type[indices[e]] + 1] += 1
    for j in range(1, len(ptr)):
        ptr[j] += ptr[j - 1]
    nbr = np.empty(len(indices), dtype=np.int32)
    at = ptr[:-1].copy()
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            slot = u * n_types + node_type[indices[e]]
            nbr[at[slot]] = indices[e]
            at[slot] += 1
    return ptr, nbr


# --- Python side ---


def frozen(array: np.ndarray, dtype: type) -> np.ndarray:
    """A read-only, C-contiguous ndarray of that dtype (copied only when it differs): memory-mapped
    and freshly built engines then reach the kernels with the same types, compiled once."""
    view = np.ascontiguousarray(np.asarray(array), dtype=dtype).view()
    view.flags.writeable = False
    return view


ROWS_PER_THREAD = 2048  # fewer rows than this per thread are not worth a thread


def on_threads(run: Callable[[int, int], None], rows: int) -> None:
    """run(lo, hi) over consecutive slices of range(rows), one thread each (as many as numba may
    use: NUMBA_NUM_THREADS). The kernels release the GIL and draw per row, so the split changes
    nothing in the result."""
    parts = max(1, min(numba.config.NUMBA_NUM_THREADS, rows // ROWS_PER_THREAD))
    bounds = [rows * i // parts for i in range(parts + 1)]
    if parts == 1:
        run(0, rows)
        return
    with ThreadPoolExecutor(parts) as pool:
        for done in [pool.submit(run, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]:
            done.result()
