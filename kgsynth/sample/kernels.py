"""Compiled kernels (numba) for hard negatives and unique answers: one path at a time.

The array-at-a-time versions paid for every step with a sort or a binary search
over the whole graph (a run's key among millions); a path's proof touches a few
hundred entries. Here each path does all of its work in a loop: candidates drawn
on the sampling graph, filtered, ranked, checked for distance and proven on the
full graph, round after round until it has its negatives. Node sets are bitsets
(16 KB for 129k nodes, so they stay in cache) cleared by their members after use,
and a node's run of one hop key is found among that node's few runs only.

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

from kgsynth.graph.engine import HIERARCHY_RUN, RUN_KEY_MASK, RUN_TYPE_SHIFT

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53

UNKNOWN, NOT_UNIQUE, UNIQUE = -1, 0, 1
QUICK_CAP = 8  # neighbours per node and nodes per position in the first, capped look
CAP = 64  # the same in the second look, for paths over the exact search's budget
COUSIN_DEPTH = 3  # levels up a hierarchy a cousin may share its ancestor
LANES = 21  # per-lane scratch rows the candidate draws use
DRAW_LANES = 128  # lanes drawn side by side (paths of a group times tries)
BLOCK = 1024  # paths drawn for, then proven, together
GROUP = 64  # paths whose proofs are prepared together

# status of a candidate handed to the proof (prove_candidates)
DROPPED, SATISFIES, PROVEN = -1, 0, 1
PROOFS_PER_NEGATIVE = 2  # candidates a round may prove per negative a path lacks

_jit = njit(cache=True, nogil=True)


# --- random numbers: one splitmix64 stream per path ---


@_jit
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@_jit
def _seed_stream(states, at, seed, row):
    states[at] = _mix(np.uint64(seed) ^ _mix(np.uint64(row) * _GOLDEN + _GOLDEN))


@_jit
def _below(states, stream, n):
    """A uniform integer in [0, n) from states[stream] (an index, not a view: no reference counting)."""
    states[stream] += _GOLDEN
    at = int(float(_mix(states[stream]) >> np.uint64(11)) * _TO_UNIT * n)
    return at if at < n else n - 1


# --- graph access. A graph is a tuple (node_table, run_table, indices, node_type, n_keys):
# Engine.node_table / run_table, the CSR's neighbours and the node types; a sampling graph
# adds (symmetric, by_type_ptr, by_type_nbr, n_types) for drawing candidates. ---

_KEY = RUN_KEY_MASK  # run_table's key column without its flags


@_jit
def _run_range(g, node, key):
    """[lo, hi) entries of node under one hop key (empty for key -1 or a node without that run)."""
    if key < 0:
        return 0, 0
    node_table, run_table = g[0], g[1]
    for run in range(node_table[node, 1], node_table[node + 1, 1]):
        found = run_table[run, 0] & _KEY
        if found >= key:  # a node's runs ascend by key
            return (run_table[run, 1], run_table[run + 1, 1]) if found == key else (0, 0)
    return 0, 0


@_jit
def _hierarchy(flags):
    return flags & HIERARCHY_RUN != 0


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


# --- candidates on the sampling graph ---


@_jit
def _hop_keys(s, key):
    """The hop keys that repeat a hop of this key: itself, plus the other direction if symmetric."""
    n_rel = s[4] // 2
    return key, (_flip(key, n_rel) if s[5][key % n_rel] else -1)


@_jit
def _pick_entry(s, states, stream, node):
    """A uniform entry of node and its hop key; (-1, -1) when it has none."""
    node_table, run_table = s[0], s[1]
    lo, hi = node_table[node, 0], node_table[node + 1, 0]
    if hi == lo:
        return -1, -1
    entry = lo + _below(states, stream, hi - lo)
    run = node_table[node, 1]
    while run_table[run + 1, 1] <= entry:
        run += 1
    return entry, run_table[run, 0] & _KEY


# Candidates are drawn in lanes: one lane per try of each path of a group, each lane drawing
# from its path's own stream (states[owner[t]]), so a path's draws do not depend on the
# group it was drawn with. Every step goes over all lanes before the next: the lanes'
# memory reads are independent and overlap instead of waiting one after another.


@_jit
def _neighbours(s, states, owner, node, key, other, m, out, lanes):
    """out[t] for t < m: a uniform neighbour of node[t] through the runs of key[t] and other[t],
    -1 where there is none (or node[t] is -1)."""
    lo1, hi1, lo2, hi2 = lanes[0], lanes[1], lanes[2], lanes[3]
    node_table, run_table = s[0], s[1]
    for t in range(m):  # every node's row, then every node's runs, then every pick
        if node[t] >= 0:
            lo1[t], hi1[t] = node_table[node[t], 1], node_table[node[t] + 1, 1]
    for t in range(m):
        first, end = (lo1[t], hi1[t]) if node[t] >= 0 else (0, 0)
        lo1[t], hi1[t], lo2[t], hi2[t] = 0, 0, 0, 0
        bound = max(key[t], other[t])
        for run in range(first, end):
            flags = run_table[run, 0] & _KEY
            if flags > bound:  # a node's runs ascend by key
                break
            if flags == key[t]:
                lo1[t], hi1[t] = run_table[run, 1], run_table[run + 1, 1]
            elif flags == other[t]:
                lo2[t], hi2[t] = run_table[run, 1], run_table[run + 1, 1]
    indices = s[2]
    for t in range(m):
        first = hi1[t] - lo1[t]
        total = first + hi2[t] - lo2[t]
        if total == 0:
            out[t] = -1
            continue
        at = _below(states, owner[t], total)
        out[t] = indices[lo1[t] + at] if at < first else indices[lo2[t] + at - first]


@_jit
def _siblings(s, states, owner, node, m, out, lanes):
    """out[t]: x with node[t] -r-> p <-r- x for a random entry (node[t], p): same relation, same direction."""
    parent, key, other = lanes[4], lanes[5], lanes[6]
    n_rel = s[4] // 2
    for t in range(m):
        entry, hop = _pick_entry(s, states, owner[t], node[t])
        parent[t] = entry
        if entry >= 0:
            forward, symmetric = _hop_keys(s, hop)
            key[t], other[t] = _reverse(forward, symmetric, n_rel)
    indices = s[2]
    for t in range(m):
        if parent[t] >= 0:
            parent[t] = indices[parent[t]]
    _neighbours(s, states, owner, parent, key, other, m, out, lanes)


@_jit
def _cousins(s, states, owner, node, m, out, lanes):
    """out[t]: x under a common ancestor 1..COUSIN_DEPTH levels up, through one of node[t]'s runs
    to nodes of its own type (node -r-> … -r-> g <-r- … <-r- x); -1 where it has none."""
    node_table, run_table, indices = s[0], s[1], s[2]
    current, key, other, up, climbing, step, who = lanes[4], lanes[5], lanes[6], lanes[7], lanes[8], lanes[9], lanes[12]
    for t in range(m):
        first, last = node_table[node[t], 1], node_table[node[t] + 1, 1]
        present = np.int64(0)
        for run in range(first, last):
            present += _hierarchy(run_table[run, 0])
        if present == 0:
            current[t], up[t] = -1, 0
            continue
        stream = owner[t]
        nth = _below(states, stream, present)
        run = first
        while True:
            if _hierarchy(run_table[run, 0]):
                if nth == 0:
                    break
                nth -= 1
            run += 1
        lo, hi = run_table[run, 1], run_table[run + 1, 1]
        current[t] = lo + _below(states, stream, hi - lo)
        up[t] = 1 + _below(states, stream, np.int64(COUSIN_DEPTH))
        key[t], other[t] = _hop_keys(s, run_table[run, 0] & _KEY)
    for t in range(m):
        if current[t] >= 0:
            current[t] = indices[current[t]]
    n_rel = s[4] // 2
    for level in range(2 * COUSIN_DEPTH - 1):  # up to COUSIN_DEPTH - 1 more levels up, then as many down
        if level == COUSIN_DEPTH - 1:
            for t in range(m):
                key[t], other[t] = _reverse(key[t], other[t], n_rel)
        height = level + 2 if level < COUSIN_DEPTH - 1 else level - COUSIN_DEPTH + 2
        n = 0
        for t in range(m):
            if up[t] >= height:
                climbing[n] = t
                n += 1
        for j in range(n):
            t = climbing[j]
            step[j], lanes[10][j], lanes[11][j], who[j] = current[t], key[t], other[t], owner[t]
        _neighbours(s, states, who, step, lanes[10], lanes[11], np.int64(n), step, lanes)
        for j in range(n):
            current[climbing[j]] = step[j]
    for t in range(m):
        out[t] = current[t]


@_jit
def _distance_walks(s, states, owner, nodes, rows, m, out, lanes, walked):
    """out[t]: the end of another simple walk as long as path rows[t]'s, from its anchor, the last
    hop onto its answer's type; a pick landing on its own walk is drawn once more; -1 when it fails."""
    node_table, indices, by_type_ptr, by_type_nbr, n_types = s[0], s[2], s[6], s[7], s[8]
    hops = nodes.shape[1] - 1
    lo, count = lanes[0], lanes[1]
    for t in range(m):
        out[t] = nodes[rows[t], 0]
        walked[t, 0] = out[t]
    for step in range(hops):
        last = step == hops - 1
        for t in range(m):
            current = out[t]
            if current < 0:
                count[t] = 0
            elif last:
                at = current * n_types + s[3][nodes[rows[t], hops]]
                lo[t], count[t] = by_type_ptr[at], by_type_ptr[at + 1] - by_type_ptr[at]
            else:
                lo[t] = node_table[current, 0]
                count[t] = node_table[current + 1, 0] - lo[t]
        for t in range(m):
            if count[t] == 0:
                out[t] = -1
                continue
            for attempt in range(2):
                if attempt and count[t] < 2:
                    out[t] = -1
                    break
                offset = lo[t] + _below(states, owner[t], count[t])
                node = by_type_nbr[offset] if last else indices[offset]
                clash = False
                for j in range(step + 1):
                    clash |= walked[t, j] == node
                if not clash:
                    out[t] = node
                    walked[t, step + 1] = node
                    break
                if attempt:
                    out[t] = -1


@_jit
def _place(cand, owner, at, drawn, m):
    for t in range(m):
        cand[owner[t], at[t]] = drawn[t]


@_jit
def _family_lanes(rows, slots, n_paths, tries, family_tries, family, cand, owner, path, at):
    """The lanes of one family: family_tries[slot, family] (at most `tries`) per path, each lane's
    slot in cand in `at`; the family's other slots are left -1 (none). Returns the number of lanes."""
    m = 0
    for q in range(n_paths):
        slot = slots[q]
        first, n = family * tries, min(family_tries[slot, family], tries)
        for i in range(n):
            owner[m], path[m], at[m] = slot, rows[q], first + i
            m += 1
        for i in range(n, tries):
            cand[slot, first + i] = -1
    return m


@_jit
def _draw_group(s, states, nodes, last_keys, rows, slots, n_paths, tries, family_tries, cand, lanes, walked):
    """Candidates for the paths rows[:n_paths] (streams states[slots[q]]) into cand[slots[q], :4 * tries],
    `tries` slots per family in the order the selection ranks ties: distance, siblings, cousins,
    last hop from a sibling of the bridge. A path draws family_tries[slots[q], f] of family f
    (at most `tries`); the slots it leaves are -1 (none)."""
    hops = nodes.shape[1] - 1
    owner, path, source, drawn, at = lanes[13], lanes[14], lanes[15], lanes[16], lanes[20]
    m = _family_lanes(rows, slots, n_paths, tries, family_tries, np.int64(0), cand, owner, path, at)
    _distance_walks(s, states, owner, nodes, path, m, drawn, lanes, walked)
    _place(cand, owner, at, drawn, m)
    m = _family_lanes(rows, slots, n_paths, tries, family_tries, np.int64(1), cand, owner, path, at)
    for t in range(m):
        source[t] = nodes[path[t], hops]
    _siblings(s, states, owner, source, m, drawn, lanes)
    _place(cand, owner, at, drawn, m)
    m = _family_lanes(rows, slots, n_paths, tries, family_tries, np.int64(2), cand, owner, path, at)
    for t in range(m):
        source[t] = nodes[path[t], hops]
    _cousins(s, states, owner, source, m, drawn, lanes)
    _place(cand, owner, at, drawn, m)
    m = _family_lanes(rows, slots, n_paths, tries, family_tries, np.int64(3), cand, owner, path, at)
    if hops < 2:
        for t in range(m):
            drawn[t] = -1
    else:
        for t in range(m):
            source[t] = nodes[path[t], hops - 1]
        _siblings(s, states, owner, source, m, lanes[17], lanes)
        for t in range(m):
            lanes[18][t], lanes[19][t] = _hop_keys(s, last_keys[path[t]])
        _neighbours(s, states, owner, lanes[17], lanes[18], lanes[19], m, drawn, lanes)
    _place(cand, owner, at, drawn, m)


# --- node sets: bitsets small enough to stay in cache, cleared by their members after use ---


@_jit
def _has(bits, v):
    return (bits[v >> 6] >> np.uint64(v & 63)) & np.uint64(1) != np.uint64(0)


@_jit
def _add(bits, v):
    bits[v >> 6] |= np.uint64(1) << np.uint64(v & 63)


@_jit
def _clear(bits, members, n):
    for j in range(n):
        bits[members[j] >> 6] = np.uint64(0)


@_jit
def _bitset(n):
    return np.zeros((n >> 6) + 1, dtype=np.uint64)


@_jit
def _run_ranges(g, nodes, start, stop, key, lo, hi):
    """lo[j], hi[j] = the run of key of nodes[j], for j in [start, stop): every node's row first,
    then every run, so the reads of different nodes overlap instead of waiting in turn."""
    node_table, run_table = g[0], g[1]
    if key < 0:
        for j in range(start, stop):
            lo[j], hi[j] = 0, 0
        return
    for j in range(start, stop):
        lo[j], hi[j] = node_table[nodes[j], 1], node_table[nodes[j] + 1, 1]
    for j in range(start, stop):
        a, b = 0, 0
        for run in range(lo[j], hi[j]):
            found = run_table[run, 0] & _KEY
            if found >= key:  # a node's runs ascend by key
                if found == key:
                    a, b = run_table[run, 1], run_table[run + 1, 1]
                break
        lo[j], hi[j] = a, b


@_jit
def _key_spans(g, nodes, size, key0, key1, lo, hi, run_type):
    """For each of nodes[:size]: its runs of key0 and key1 at [2j] and [2j + 1] of lo, hi and
    run_type (the one type the run leads to, -1 for several or no run). Rows first, then runs."""
    node_table, run_table = g[0], g[1]
    bound = max(key0, key1)
    for j in range(size):
        lo[2 * j], hi[2 * j] = node_table[nodes[j], 1], node_table[nodes[j] + 1, 1]
    for j in range(size):
        first, end = lo[2 * j], hi[2 * j]
        lo[2 * j], hi[2 * j], lo[2 * j + 1], hi[2 * j + 1] = 0, 0, 0, 0
        run_type[2 * j], run_type[2 * j + 1] = -1, -1
        for run in range(first, end):
            flags = run_table[run, 0]
            key = flags & _KEY
            if key > bound:  # a node's runs ascend by key
                break
            if key == key0:
                at = 2 * j
            elif key == key1:
                at = 2 * j + 1
            else:
                continue
            lo[at], hi[at], run_type[at] = run_table[run, 1], run_table[run + 1, 1], (flags >> RUN_TYPE_SHIFT) - 1


# --- sets on the full graph ---


@_jit
def _expand(g, buf, size, keys0, keys1, types, budget, bits, spare, spans, keep_last, weigh_only_last):
    """Expand buf[:size] through len(keys0) typed hops (keys0[i] and keys1[i], type types[i]).

    Returns (size, over budget): the final set in buf[:size]; with keep_last its members stay
    set in `bits` (the caller clears them), otherwise `bits` is left empty. Work is counted
    as the array code counted it: all entries of a layer's ranges, added before that layer
    expands; over the budget, nothing further expands. A run whose neighbours all have one
    type is taken or skipped whole; one node's one run needs no de-duplication (a run lists
    a neighbour once). With weigh_only_last, the last layer's work is counted but not expanded
    (is the expansion over the budget? buf then holds the layer before).
    """
    indices, node_type = g[2], g[3]
    lo, hi, run_type = spans[0], spans[1], spans[2]
    spent = 0
    marked = False
    for i in range(len(keys0)):
        _key_spans(g, buf, np.int64(size), keys0[i], keys1[i], lo, hi, run_type)
        work = 0
        for j in range(2 * size):
            work += hi[j] - lo[j]
        spent += work
        if spent > budget:
            return 0, True
        want = types[i]
        last = i == len(keys0) - 1
        if last and weigh_only_last:
            return size, False
        n = 0
        marked = not (size == 1 and keys1[i] < 0)
        if not marked:  # straight into buf: its one node is no longer needed
            whole = run_type[0] == want
            for e in range(lo[0], hi[0]):
                v = indices[e]
                if whole or (run_type[0] < 0 and node_type[v] == want):
                    buf[n] = v
                    n += 1
            size = n
            continue
        for j in range(2 * size):
            if run_type[j] >= 0 and run_type[j] != want:
                continue
            whole = run_type[j] == want
            for e in range(lo[j], hi[j]):
                v = np.int64(indices[e])
                if (whole or node_type[v] == want) and not _has(bits, v):
                    _add(bits, v)
                    spare[n] = v
                    n += 1
        if not (last and keep_last):
            _clear(bits, spare, np.int64(n))
        for j in range(n):
            buf[j] = spare[j]
        size = n
    if keep_last and not marked:
        for j in range(size):
            _add(bits, buf[j])
    return size, False


@_jit
def _distinct(buf, size, bits):
    """buf[:size] without repeats (first occurrences, in order); returns the new size."""
    n = 0
    for j in range(size):
        if not _has(bits, buf[j]):
            _add(bits, buf[j])
            buf[n] = buf[j]
            n += 1
    _clear(bits, buf, np.int64(n))
    return n


@_jit
def _in_run(indices, lo, hi, neighbour):
    """Is neighbour among indices[lo:hi] (a run, sorted by neighbour)?"""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < neighbour:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and indices[lo] == neighbour


@_jit
def _grow_work(g, f_buf, f_size, key, grown, enough, rows_scratch):
    """Extend grown[0], the middle hop's growth work summed over f_buf[:grown[1]], until it
    reaches `enough` or covers all f_size members. Rows first, then runs, 16 members at a time."""
    node_table, run_table = g[0], g[1]
    while grown[1] < f_size and grown[0] < enough:
        start = grown[1]
        stop = min(start + 16, f_size)
        for j in range(start, stop):
            rows_scratch[j - start] = node_table[f_buf[j], 1]
        work = 0
        for j in range(start, stop):
            for run in range(rows_scratch[j - start], node_table[f_buf[j] + 1, 1]):
                found = run_table[run, 0] & _KEY
                if found >= key:  # a node's runs ascend by key
                    if found == key:
                        work += run_table[run + 1, 1] - run_table[run, 1]
                    break
        grown[0] += work
        grown[1] = stop


@_jit
def _build_grown(g, f_buf, f_size, key, grown_bits, lo, hi):
    """Every entry of the hop `key` from f_buf[:f_size] into grown_bits."""
    indices = g[2]
    _run_ranges(g, f_buf, np.int64(0), f_size, key, lo, hi)
    for j in range(f_size):
        for e in range(lo[j], hi[j]):
            _add(grown_bits, np.int64(indices[e]))


@_jit
def _grow_if_cheap(g, f_buf, f_size, key, per_row, grown, grown_bits, budget, spans, b_ahead):
    """Grow the anchor's side by the middle hop `key` into grown_bits, once per path and key, when f
    has fewer members than the candidates' sides still to meet it (b_ahead) and the growth's
    entries are few; grown[2] becomes 1 (built) or 0 (tried, not built)."""
    if key < 0 or grown[2] >= 0 or f_size >= b_ahead:
        return
    rows = max(per_row, 1)
    grown[2] = 0
    _grow_work(g, f_buf, f_size, key, grown, min(budget * rows, 8 * b_ahead) + 1, spans[2])
    if grown[1] == f_size and grown[0] <= budget * rows:
        _build_grown(g, f_buf, f_size, key, grown_bits, spans[0], spans[1])
        grown[2] = 1


@_jit
def _meets_grown(g, last_runs, at, want, grown_bits):
    """Does a candidate's side one hop back (the runs the group found, members of type `want`) meet
    the grown set? Read straight from the runs, stopping at the first member in it."""
    indices, node_type = g[2], g[3]
    for side in (0, 3):
        lo, hi, run_type = last_runs[side, at], last_runs[side + 1, at], last_runs[side + 2, at]
        if run_type >= 0 and run_type != want:
            continue
        for e in range(lo, hi):
            v = np.int64(indices[e])
            if (run_type == want or node_type[v] == want) and _has(grown_bits, v):
                return True
    return False


@_jit
def _middle(g, f_buf, f_size, f_bits, b_buf, b_size, key, per_row, grown, grown_bits, budget, spans, b_ahead):
    """(over budget, met) for the middle hop between the anchor side f (members set in f_bits)
    and the candidate side b.

    The array code chose the cheapest of three ways to meet: scan b's entries back into f
    (work: those entries), grow f by the hop once per path (its entries shared by the path's
    candidates), or test every pair by binary search (f times b); over the budget the
    candidate stayed unproven. Each way finds the same meeting, so what matters of that choice
    is only whether the cheapest is over the budget: here any way within it is taken. The
    growth first, when f has fewer members than the candidates' sides still to meet it
    (b_ahead: each member costs the same look-up of its runs) and its entries are few;
    else the scan; the growth again when the other two are over. (`grown` keeps [work so
    far, members summed, state: -1 untried, 0 tried, 1 built] per path and key; the grown
    set goes into grown_bits.)
    """
    if key < 0:  # no second key: nothing to scan, grow or meet
        return False, False
    indices = g[2]
    lo, hi = spans[0], spans[1]
    rows = max(per_row, 1)
    _grow_if_cheap(g, f_buf, f_size, key, per_row, grown, grown_bits, budget, spans, b_ahead)
    if grown[2] > 0:  # grown for this path: within the budget, and the cheapest test
        for j in range(b_size):
            if _has(grown_bits, b_buf[j]):
                return False, True
        return False, False
    back_key = _flip(key, g[4] // 2)
    scan_back = 0
    start, step = 0, 8
    while start < b_size and scan_back <= budget:
        stop = min(start + step, b_size)
        _run_ranges(g, b_buf, np.int64(start), np.int64(stop), back_key, lo, hi)
        for j in range(start, stop):
            scan_back += hi[j] - lo[j]
        start, step = stop, min(2 * step, 64)
    if scan_back <= budget:
        for j in range(b_size):
            for e in range(lo[j], hi[j]):
                if _has(f_bits, np.int64(indices[e])):
                    return False, True
        return False, False
    if f_size * b_size <= budget:
        _run_ranges(g, f_buf, np.int64(0), f_size, key, lo, hi)
        for i in range(f_size):
            if hi[i] > lo[i]:
                for j in range(b_size):
                    if _in_run(indices, lo[i], hi[i], b_buf[j]):
                        return False, True
        return False, False
    _grow_work(g, f_buf, f_size, key, grown, budget * rows + 1, spans[2])
    if grown[0] > budget * rows:
        return True, False
    _build_grown(g, f_buf, f_size, key, grown_bits, lo, hi)
    grown[2] = 1
    for j in range(b_size):
        if _has(grown_bits, b_buf[j]):
            return False, True
    return False, False


# --- the ball test on the sampling graph (distance family) ---


@_jit
def _ball(s, start, radius, budget, bits, members, anchor_bits, against_anchor):
    """Every node within `radius` of start (all entries) into members and bits. Returns
    (members, over budget, met): met when against_anchor and a node of the ball is set in
    anchor_bits (the search stops there). The caller clears bits by the members."""
    node_table, indices = s[0], s[2]
    _add(bits, start)
    members[0] = start
    n = 1
    if against_anchor and _has(anchor_bits, start):
        return n, False, True
    layer, spent = 0, 0
    for _ in range(radius):
        end = n
        for j in range(layer, end):
            spent += node_table[members[j] + 1, 0] - node_table[members[j], 0]
        if spent > budget:
            return n, True, False
        for j in range(layer, end):
            for e in range(node_table[members[j], 0], node_table[members[j] + 1, 0]):
                v = np.int64(indices[e])
                if not _has(bits, v):
                    _add(bits, v)
                    members[n] = v
                    n += 1
                    if against_anchor and _has(anchor_bits, v):
                        return n, False, True
        layer = end
    return n, False, False


# --- scratch space of one worker ---


@_jit
def _scratch(n_full, n_sampling):
    """Bitsets and buffers for one worker: full-graph sets (anchor side, de-duplication, two grown
    sets), sampling-graph sets (candidates seen, anchor ball, candidate ball), node buffers,
    ball members and entry ranges."""
    full_bits = np.zeros((4, (n_full >> 6) + 1), dtype=np.uint64)
    sampling_bits = np.zeros((3, (n_sampling >> 6) + 1), dtype=np.uint64)
    buffers = np.empty((4, n_full + 1), dtype=np.int64)
    members = np.empty((2, n_sampling + 1), dtype=np.int64)
    spans = np.empty((3, 2 * n_full + 2), dtype=np.int64)
    return full_bits, sampling_bits, buffers, members, spans


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
def _group_work(width, per_row):
    """Arrays one group of GROUP paths fills while its proofs are prepared: per kept candidate its
    owner, position, full-graph node, ways in, and the runs its last hop arrives by (first
    entry, end and type, for each of the hop's two keys); per path its chosen candidates."""
    flat = np.empty((10, GROUP * width), dtype=np.int64)
    chosen = np.empty((GROUP, max(per_row, 1)), dtype=np.int64)
    counts = np.empty((2, GROUP), dtype=np.int64)
    return flat, chosen, counts


@_jit
def _prove_group(
    s, g, to_full, nodes, anchors_full, keys0, keys1, types, rows, slots, n_paths,
    cand, n_cand, distance_tries, per_row, budget, scratch, work, status, proven, n_proven, need, states,
):
    """Filter, rank and prove the candidates of up to GROUP paths: path q's data is row rows[q] of
    nodes/anchors/keys/types, its candidates cand[slots[q], :n_cand] (the first distance_tries
    from the distance family), its results status[slots[q]] (DROPPED, SATISFIES, PROVEN) and
    proven[slots[q], :n_proven[slots[q]]] (full-graph nodes; n_proven -1: none, and none ever will
    be, the anchor's side being over the budget). A path's proofs stop once need[slots[q]] are
    proven; with streams in `states` its chosen candidates are tried in a random order drawn from
    states[slots[q]], else in candidate order. Leaves the scratch bitsets empty.

    The candidates' ways in are found over the whole group at once (rows, then runs), so the
    reads of different paths overlap; the rest goes path by path. (Touching what the proofs
    read first, group-wide, cost more than it saved.)
    """
    full_bits, sampling_bits, buffers, members, spans = scratch
    flat, chosen, counts = work
    owner, position, full_node, ways = flat[0], flat[1], flat[2], flat[3]
    last_runs = flat[4:10]  # lo, hi, type of the last hop's first key's run, then of its second's
    n_rel = g[4] // 2
    node_table, run_table = g[0], g[1]
    # the answer's type, off the path, distinct (first occurrence kept)
    seen = sampling_bits[0]
    n_flat = 0
    for q in range(n_paths):
        path, slot = nodes[rows[q]], slots[q]
        answer_type = s[3][path[len(path) - 1]]
        for j in range(len(path)):
            _add(seen, np.int64(path[j]))
        counts[0, q] = n_flat
        for j in range(n_cand):
            status[slot, j] = DROPPED
            x = cand[slot, j]
            if x < 0 or s[3][x] != answer_type or _has(seen, x):
                continue
            _add(seen, x)
            owner[n_flat], position[n_flat] = q, j
            n_flat += 1
        for j in range(len(path)):
            seen[path[j] >> 6] = np.uint64(0)
        for at in range(counts[0, q], n_flat):
            seen[cand[slot, position[at]] >> 6] = np.uint64(0)
    # the fewest ways in by the last hop: full-graph node, its row, its runs, in passes
    for at in range(n_flat):
        full_node[at] = to_full[cand[slots[owner[at]], position[at]]]
    for at in range(n_flat):
        last_runs[0, at], last_runs[1, at] = node_table[full_node[at], 1], node_table[full_node[at] + 1, 1]
    hops = keys0.shape[1]
    for at in range(n_flat):
        row = rows[owner[at]]
        last0, last1 = _reverse(keys0[row, hops - 1], keys1[row, hops - 1], n_rel)
        first, end = last_runs[0, at], last_runs[1, at]
        for side in range(6):
            last_runs[side, at] = 0 if side % 3 < 2 else -1
        bound = max(last0, last1)
        for run in range(first, end):
            flags = run_table[run, 0]
            key = flags & _KEY
            if key > bound:  # a node's runs ascend by key
                break
            side = 0 if key == last0 else (3 if key == last1 else -1)
            if side >= 0:
                last_runs[side, at], last_runs[side + 1, at] = run_table[run, 1], run_table[run + 1, 1]
                last_runs[side + 2, at] = (flags >> RUN_TYPE_SHIFT) - 1
        ways[at] = last_runs[1, at] - last_runs[0, at] + last_runs[4, at] - last_runs[3, at]
    # per path: the per_row fewest (ties in candidate order), back in candidate order
    for q in range(n_paths):
        first, end = counts[0, q], (counts[0, q + 1] if q + 1 < n_paths else n_flat)
        best = chosen[q]
        n_best = 0
        for at in range(first, end):
            if n_best == per_row and (per_row == 0 or ways[best[per_row - 1]] <= ways[at]):
                continue
            i = min(n_best, per_row - 1)
            while i > 0 and ways[best[i - 1]] > ways[at]:
                best[i] = best[i - 1]
                i -= 1
            best[i] = at
            n_best = min(n_best + 1, per_row)
        for i in range(1, n_best):
            i2 = i
            while i2 > 0 and best[i2 - 1] > best[i2]:
                best[i2 - 1], best[i2] = best[i2], best[i2 - 1]
                i2 -= 1
        counts[1, q] = n_best
    # per path: the distance test, then the proofs
    for q in range(n_paths):
        row, slot = rows[q], slots[q]
        if len(states):  # a uniform order: the first need[slot] proven are then a uniform choice of them
            for i in range(counts[1, q] - 1, 0, -1):
                m = _below(states, slot, i + 1)
                chosen[q, i], chosen[q, m] = chosen[q, m], chosen[q, i]
        n_proven[slot] = _prove_chosen(
            s, g, to_full, nodes[row], anchors_full[row], keys0[row], keys1[row], types[row],
            cand[slot], position, chosen[q], counts[1, q], distance_tries, budget, scratch, status[slot], proven[slot],
            ways, last_runs, need[slot],
        )


@_jit
def _too_near(s, nodes, x, budget, scratch, anchor_ball):
    """Is x (a distance-family candidate) within the path's length of the anchor less one? The
    anchor's ball is made on the first call (anchor_ball: [members, over budget], -1 not yet made);
    the caller clears it."""
    full_bits, sampling_bits, buffers, members, spans = scratch
    radius = len(nodes) - 2
    if radius <= 0:
        return x == nodes[0]
    if anchor_ball[0] < 0:
        size, over, _ = _ball(
            s, np.int64(nodes[0]), (radius + 1) // 2, budget, sampling_bits[1], members[0], sampling_bits[1], np.bool_(False)
        )
        anchor_ball[0], anchor_ball[1] = size, over
    if anchor_ball[1]:
        return True
    size, near, met = _ball(s, np.int64(x), radius // 2, budget, sampling_bits[2], members[1], sampling_bits[1], np.bool_(True))
    _clear(sampling_bits[2], members[1], size)
    return near or met


@_jit
def _settle_near(s, nodes, cand, position, chosen, n_chosen, distance_tries, budget, scratch, anchor_ball, near):
    """The distance test for every chosen candidate not tested yet; returns how many of them are kept."""
    kept = 0
    for i in range(n_chosen):
        j = position[chosen[i]]
        if near[i] < 0 and j < distance_tries:
            near[i] = _too_near(s, nodes, cand[j], budget, scratch, anchor_ball)
            kept += 1 - near[i]
    return kept


@_jit
def _prove_chosen(
    s, g, to_full, nodes, anchor_full, keys0, keys1, types, cand, position, chosen, n_chosen, distance_tries, budget,
    scratch, status, proven, ways, last_runs, need,
):
    """One path's chosen candidates (cand[position[chosen[i]]]) in turn until `need` are proven: those
    of the distance family whose shortest distance from the anchor is under the path's length are
    dropped, the rest proven. Returns how many were proven negative (written to `proven`), or -1
    when the anchor's side alone is over the budget: no candidate of this path can ever be proven.
    ways and last_runs: what the group found for each candidate (the candidate side's first hop
    back reads those runs).

    Work is counted as when every chosen candidate is tested: the growth of the anchor's side may
    cost the budget once per candidate kept after the distance test. Until a growth would go over
    what the candidates kept so far allow, the candidates not reached yet need no distance test.
    """
    full_bits, sampling_bits, buffers, members, spans = scratch
    n_rel = g[4] // 2
    anchor_ball = np.full(2, -1, dtype=np.int64)
    f0, f1, ft, b0, b1, bt = _path_sides(keys0, keys1, types, n_rel)
    ahead = len(f0)
    f_buf, b_buf = buffers[0], buffers[2]
    f_size, f_over = np.int64(-1), False  # the anchor's side, expanded for the first candidate proven
    grown = np.zeros(6, dtype=np.int64)  # [work so far, members summed, built] of the middle hop's growth, per key
    grown[2], grown[5] = -1, -1
    n_proven = 0
    indices, node_type = g[2], g[3]
    near = np.full(n_chosen, -1, dtype=np.int64)  # per chosen: -1 not tested yet, 0 kept, 1 too near
    kept, untested = 0, 0  # candidates known to be kept (a lower bound of those kept in all), distance ones not tested
    b_ahead = 0  # members of the candidates' sides still to meet the anchor's (their ways in, or one)
    for i in range(n_chosen):
        if position[chosen[i]] < distance_tries:
            untested += 1
        else:
            near[i] = 0
            kept += 1
        b_ahead += ways[chosen[i]] if len(b0) else 1
    for i in range(n_chosen):
        if n_proven >= need:
            break
        at = chosen[i]
        j = position[at]
        b_ahead -= ways[at] if len(b0) else 1
        if near[i] < 0:
            near[i] = _too_near(s, nodes, cand[j], budget, scratch, anchor_ball)
            kept += 1 - near[i]
            untested -= 1
        if near[i]:
            continue
        status[j] = SATISFIES
        if f_size < 0:
            f_buf[0] = anchor_full
            f_size, f_over = _expand(
                g, f_buf, np.int64(1), f0, f1, ft, budget, full_bits[0], buffers[1], spans, np.bool_(True), np.bool_(False)
            )
        if f_over:
            continue
        middle = ahead  # the hop whose meeting is still open (ahead + 1: key0's found none)
        if len(b0) == 1:  # one hop back: the runs the group found, their sizes the work
            if ways[at] > budget:
                continue
            # with the anchor's side grown by the middle hop, a test of the runs themselves settles
            # the candidate, no copy of its side needed (its size counted as its ways in)
            _grow_if_cheap(g, f_buf, f_size, keys0[ahead], np.int64(kept), grown[0:3], full_bits[2], budget, spans, b_ahead + ways[at])
            if grown[2] > 0:
                if _meets_grown(g, last_runs, at, bt[0], full_bits[2]):
                    continue
                middle += 1
                _grow_if_cheap(g, f_buf, f_size, keys1[ahead], np.int64(kept), grown[3:6], full_bits[3], budget, spans, b_ahead + ways[at])
                if keys1[ahead] < 0 or grown[5] > 0:
                    if keys1[ahead] >= 0 and _meets_grown(g, last_runs, at, bt[0], full_bits[3]):
                        continue
                    status[j] = PROVEN
                    proven[n_proven] = to_full[cand[j]]
                    n_proven += 1
                    continue
            b_size = 0
            for side in (0, 3):
                lo, hi, run_type = last_runs[side, at], last_runs[side + 1, at], last_runs[side + 2, at]
                if run_type >= 0 and run_type != bt[0]:
                    continue
                for e in range(lo, hi):
                    v = indices[e]
                    if run_type == bt[0] or node_type[v] == bt[0]:
                        b_buf[b_size] = v
                        b_size += 1
            if b1[0] >= 0:  # two runs of a symmetric hop may share members
                b_size = _distinct(b_buf, b_size, full_bits[1])
        else:
            b_buf[0] = to_full[cand[j]]
            b_size, b_over = _expand(g, b_buf, np.int64(1), b0, b1, bt, budget, full_bits[1], buffers[3], spans, np.bool_(False), np.bool_(False))
            if b_over:
                continue
        negative = True
        for side in range(middle - ahead, 2):
            key = keys0[ahead] if side == 0 else keys1[ahead]
            over, met = _middle(
                g, f_buf, f_size, full_bits[0], b_buf, b_size, key, np.int64(kept), grown[3 * side : 3 * side + 3],
                full_bits[2 + side], budget, spans, b_ahead + b_size,
            )
            if over and untested:  # over what the candidates known to be kept allow: count them all
                kept += _settle_near(s, nodes, cand, position, chosen, n_chosen, distance_tries, budget, scratch, anchor_ball, near)
                untested = 0
                over, met = _middle(
                    g, f_buf, f_size, full_bits[0], b_buf, b_size, key, np.int64(kept), grown[3 * side : 3 * side + 3],
                    full_bits[2 + side], budget, spans, b_ahead + b_size,
                )
            if over or met:
                negative = False
                break
        if negative:
            status[j] = PROVEN
            proven[n_proven] = to_full[cand[j]]
            n_proven += 1
    if anchor_ball[0] > 0:
        _clear(sampling_bits[1], members[0], anchor_ball[0])
    if f_over:
        return -1
    if f_size > 0:
        _clear(full_bits[0], f_buf, f_size)
    for key in range(2):
        if grown[3 * key + 2] > 0:
            grown_bits = full_bits[2 + key]
            for word in range(len(grown_bits)):
                grown_bits[word] = np.uint64(0)
    return n_proven


@_jit
def _hopeless(g, anchor_full, keys0, keys1, types, budget, scratch):
    """Is the anchor's side of the path's proof alone over the budget? Then no candidate of it can be
    proven, and drawing any is wasted."""
    full_bits, sampling_bits, buffers, members, spans = scratch
    f0, f1, ft, b0, b1, bt = _path_sides(keys0, keys1, types, g[4] // 2)
    buffers[0][0] = anchor_full
    _, over = _expand(g, buffers[0], np.int64(1), f0, f1, ft, budget, full_bits[0], buffers[1], spans, np.bool_(False), np.bool_(True))
    return over


@_jit
def _remember_tried(work, cand, slots, n_paths, tried, n_tried):
    """Keep the candidates a group's proofs just tried (proven, satisfying, too near or over budget):
    a verdict does not change, so a later round that draws one again skips it."""
    flat, chosen, counts = work
    position = flat[1]
    for q in range(n_paths):
        slot = slots[q]
        for i in range(counts[1, q]):
            tried[slot, n_tried[slot]] = cand[slot, position[chosen[q, i]]]
            n_tried[slot] += 1


@_jit
def _tally_families(status, slots, n_paths, tries, family_tries, family_tried, family_proven, first_tries, next_tries):
    """Count each family's proofs per path and set what each family draws next round: next_tries,
    except a family other than distance none of whose candidates tried for this path was proven,
    which keeps drawing first_tries. (On the PrimeKG-like graph a path whose siblings all failed in
    round 1 proves ~15% of those it tries later, one whose siblings proved ~50%; distance walks
    prove ~50% either way. Their draws go where proofs succeed.)"""
    for q in range(n_paths):
        slot = slots[q]
        for j in range(4 * tries):
            verdict = status[slot, j]
            if verdict != DROPPED:
                family_tried[slot, j // tries] += 1
                family_proven[slot, j // tries] += verdict == PROVEN
        family_tries[slot, 0] = next_tries
        for f in range(1, 4):
            failing = family_tried[slot, f] > 0 and family_proven[slot, f] == 0
            family_tries[slot, f] = first_tries if failing else next_tries


@_jit
def _forget_tried(cand, todo, n_todo, n_cand, tried, n_tried):
    """Candidates of an earlier round's proofs drawn again become -1 (none), so the 2k tried
    this round are new ones."""
    for at in range(n_todo):
        slot = todo[at]
        for j in range(n_cand):
            x = cand[slot, j]
            for m in range(n_tried[slot]):
                if tried[slot, m] == x:
                    cand[slot, j] = -1
                    break


@_jit
def hard_negatives_rows(
    s, g, nodes, last_keys, anchors_full, keys0, keys1, types, to_full,
    row_ids, seed, k, attempts, rounds, budget, counts, out,
):
    """Up to k proven hard negatives for each path of a slice (path i is row row_ids[i] of the
    batch, which seeds its stream): each round draws tries = (k + attempts) * 2**round per family (a family none of whose
    candidates tried for the path was proven keeps drawing k + attempts), takes the 2k with
    the fewest ways in among those no earlier round tried (a verdict does not change) and
    proves them in random order until the path has k (so the k are a uniform choice of
    those the 2k hold), and a path with none by the round before the last stops there;
    the k are kept in random order. A path whose
    anchor side alone is over the budget draws nothing. counts[i] and out[i, :counts[i]]
    receive them (full-graph indices).

    Paths go in blocks, each round drawing for the whole block before proving any: the
    draws read the sampling graph, the proofs mostly the full one, and each stays in cache
    longer than when the two alternate path by path.
    """
    rows, hops = nodes.shape[0], nodes.shape[1] - 1
    scratch = _scratch(len(g[0]) - 1, len(s[0]) - 1)
    most = (k + attempts) << (rounds - 1)
    work = _group_work(4 * most, PROOFS_PER_NEGATIVE * k)
    block = min(rows, BLOCK)
    cand = np.empty((block, 4 * most), dtype=np.int64)
    status = np.empty((block, 4 * most), dtype=np.int64)
    proven = np.empty((block, PROOFS_PER_NEGATIVE * k), dtype=np.int64)
    n_proven = np.zeros(block, dtype=np.int64)
    states = np.zeros(block, dtype=np.uint64)
    found = np.empty((block, 3 * k + PROOFS_PER_NEGATIVE * k * rounds), dtype=np.int64)
    n_found = np.zeros(block, dtype=np.int64)
    tried = np.empty((block, max(PROOFS_PER_NEGATIVE * k * rounds, 1)), dtype=np.int64)  # sampling-graph nodes, earlier rounds
    n_tried = np.zeros(block, dtype=np.int64)
    need = np.empty(block, dtype=np.int64)  # negatives a path still lacks
    todo = np.empty(block, dtype=np.int64)
    todo_rows = np.empty(block, dtype=np.int64)
    group_rows = np.empty(max(GROUP, DRAW_LANES), dtype=np.int64)
    group_slots = np.empty(max(GROUP, DRAW_LANES), dtype=np.int64)
    width = max(DRAW_LANES, most)
    lanes = np.empty((LANES, width), dtype=np.int64)
    walked = np.empty((width, hops + 1), dtype=np.int64)
    family_tries = np.empty((block, 4), dtype=np.int64)
    family_tried = np.empty((block, 4), dtype=np.int64)
    family_proven = np.empty((block, 4), dtype=np.int64)
    for start in range(0, rows, block):
        size = min(block, rows - start)
        n_todo = 0
        for j in range(size):
            _seed_stream(states, j, seed, row_ids[start + j])
            n_found[j] = 0
            n_tried[j] = 0
            for f in range(4):
                family_tries[j, f] = k + attempts
                family_tried[j, f], family_proven[j, f] = 0, 0
            i = start + j
            if not _hopeless(g, anchors_full[i], keys0[i], keys1[i], types[i], budget, scratch):
                todo[n_todo] = j
                n_todo += 1
        tries = k + attempts
        for round_ in range(rounds):
            for at in range(n_todo):
                todo_rows[at] = start + todo[at]
                need[todo[at]] = k - n_found[todo[at]]
            paths_per_draw = max(1, DRAW_LANES // tries)
            for first in range(0, n_todo, paths_per_draw):
                n = min(paths_per_draw, n_todo - first)
                for q in range(n):
                    group_rows[q], group_slots[q] = todo_rows[first + q], todo[first + q]
                _draw_group(s, states, nodes, last_keys, group_rows, group_slots, np.int64(n), tries, family_tries, cand, lanes, walked)
            if round_:
                _forget_tried(cand, todo, n_todo, np.int64(4 * tries), tried, n_tried)
            for first in range(0, n_todo, GROUP):
                n = min(GROUP, n_todo - first)
                for q in range(n):
                    group_rows[q], group_slots[q] = todo_rows[first + q], todo[first + q]
                _prove_group(
                    s, g, to_full, nodes, anchors_full, keys0, keys1, types, group_rows, group_slots,
                    np.int64(n), cand, np.int64(4 * tries), tries, np.int64(PROOFS_PER_NEGATIVE * k), budget, scratch, work, status, proven, n_proven,
                    need, states,
                )
                if round_ < rounds - 1:
                    _remember_tried(work, cand, group_slots, np.int64(n), tried, n_tried)
                    _tally_families(
                        status, group_slots, np.int64(n), tries, family_tries, family_tried, family_proven,
                        np.int64(k + attempts), 2 * tries,
                    )
            still = 0
            for at in range(n_todo):
                j = todo[at]
                for p in range(n_proven[j]):
                    fresh = True
                    for m in range(n_found[j]):
                        if found[j, m] == proven[j, p]:
                            fresh = False
                            break
                    if fresh:
                        found[j, n_found[j]] = proven[j, p]
                        n_found[j] += 1
                # n_proven -1: hopeless, whatever is drawn. The last round only for paths with one
                # already: of those with none after three rounds 3% get k in a fourth, and they
                # are the costliest to draw and prove for (a fifth of all the time)
                if n_found[j] < k and n_proven[j] >= 0 and (n_found[j] > 0 or round_ < rounds - 2):
                    todo[still] = j
                    still += 1
            n_todo = still
            if not n_todo:
                break
            tries *= 2
        for j in range(size):
            i = start + j
            take = min(k, n_found[j])
            for p in range(take):  # a uniform choice of k, in random order
                m = p + _below(states, j, n_found[j] - p)
                found[j, p], found[j, m] = found[j, m], found[j, p]
                out[i, p] = found[j, p]
            counts[i] = take


@_jit
def prove_candidates(
    s, g, nodes, anchors_full, keys0, keys1, types, to_full,
    cand_start, cand, distance_count, per_row, budget, status,
):
    """The proof alone, for candidates drawn elsewhere (path i: cand[cand_start[i]:cand_start[i + 1]],
    the first distance_count[i] from the distance family): status per candidate."""
    scratch = _scratch(len(g[0]) - 1, len(s[0]) - 1)
    width = 1
    for i in range(len(cand_start) - 1):
        width = max(width, cand_start[i + 1] - cand_start[i])
    work = _group_work(width, per_row)
    padded = np.full((1, width), -1, dtype=np.int64)
    part = np.empty((1, width), dtype=np.int64)
    proven = np.empty((1, max(per_row, 1)), dtype=np.int64)
    n_proven = np.zeros(1, dtype=np.int64)
    one = np.zeros(1, dtype=np.int64)
    for i in range(len(cand_start) - 1):
        lo, hi = cand_start[i], cand_start[i + 1]
        for j in range(width):
            padded[0, j] = cand[lo + j] if j < hi - lo else -1
        one[0] = i
        _prove_group(
            s, g, to_full, nodes, anchors_full, keys0, keys1, types, one, np.zeros(1, dtype=np.int64), np.int64(1),
            padded, np.int64(width), distance_count[i], per_row, budget, scratch, work, part, proven, n_proven,
            np.full(1, per_row, dtype=np.int64), np.zeros(0, dtype=np.uint64),
        )
        for j in range(hi - lo):
            status[lo + j] = part[0, j]


@_jit
def candidates_rows(s, nodes, last_keys, first_row, seed, tries, out):
    """The first round's candidates of each path as drawn, before any filter: out[i, :4 * tries]."""
    rows = nodes.shape[0]
    states = np.zeros(rows, dtype=np.uint64)
    order = np.arange(rows)
    for i in range(rows):
        _seed_stream(states, i, seed, first_row + i)
    lanes = np.empty((LANES, rows * tries), dtype=np.int64)
    walked = np.empty((rows * tries, nodes.shape[1]), dtype=np.int64)
    family_tries = np.full((rows, 4), tries, dtype=np.int64)
    _draw_group(s, states, nodes, last_keys, order, order, np.int64(rows), tries, family_tries, out, lanes, walked)


@_jit
def cousins_of(s, nodes, seed, out):
    """One cousin (or -1) of each node."""
    n = len(nodes)
    states = np.zeros(n, dtype=np.uint64)
    for i in range(n):
        _seed_stream(states, i, seed, i)
    lanes = np.empty((LANES, n), dtype=np.int64)
    _cousins(s, states, np.arange(n), nodes, np.int64(n), out, lanes)


# --- unique answers ---


@_jit
def _capped_ends(g, anchor, keys0, keys1, types, cap, buf, spare, spans):
    """Are there two distinct ends through a frontier of at most `cap` nodes (the lowest indices),
    each giving at most `cap` entries per run? (A lower bound on the true count: enough to prove
    two.) The frontier is kept sorted as it is gathered; the last hop stops at a second end."""
    indices, node_type = g[2], g[3]
    lo, hi, run_type = spans[0], spans[1], spans[2]
    buf[0] = anchor
    size = 1
    hops = len(keys0)
    for i in range(hops):
        _key_spans(g, buf, np.int64(size), keys0[i], keys1[i], lo, hi, run_type)
        n = 0  # spare[:n]: the lowest distinct typed neighbours so far, ascending
        for j in range(2 * size):
            if run_type[j] >= 0 and run_type[j] != types[i]:
                continue
            for e in range(lo[j], min(hi[j], lo[j] + cap)):
                v = np.int64(indices[e])
                if not (run_type[j] == types[i] or node_type[v] == types[i]):
                    continue
                if i == hops - 1:
                    if n and spare[0] != v:
                        return True
                    spare[0], n = v, 1
                    continue
                if n == cap and spare[n - 1] <= v:
                    continue
                at = min(n, cap - 1)
                while at > 0 and spare[at - 1] > v:
                    at -= 1
                if at < n and spare[at] == v or at > 0 and spare[at - 1] == v:
                    continue
                for m in range(min(n, cap - 1), at, -1):
                    spare[m] = spare[m - 1]
                spare[at] = v
                n = min(n + 1, cap)
        for j in range(n):
            buf[j] = spare[j]
        size = n
    return False


@_jit
def unique_rows(g, anchors, keys0, keys1, types, budget, verdict):
    """Per path: UNIQUE, NOT_UNIQUE or UNKNOWN. A capped look first (two ends found settle it),
    the exact expansion within the budget for the rest, a wider capped look for those over it."""
    n_full = len(g[0]) - 1
    rows, hops = keys0.shape
    bits = _bitset(n_full)
    buf = np.empty(n_full + 1, dtype=np.int64)
    spare = np.empty(max(n_full + 1, 2 * CAP * CAP), dtype=np.int64)
    spans = np.empty((3, 2 * n_full + 2), dtype=np.int64)
    for i in range(rows):
        t = types[i, 1:]
        if _capped_ends(g, anchors[i], keys0[i], keys1[i], t, np.int64(QUICK_CAP), buf, spare, spans):
            verdict[i] = NOT_UNIQUE
            continue
        buf[0] = anchors[i]
        size, over = _expand(g, buf, np.int64(1), keys0[i], keys1[i], t, budget, bits, spare, spans, np.bool_(False), np.bool_(False))
        if not over:
            verdict[i] = UNIQUE if size == 1 else NOT_UNIQUE
        elif _capped_ends(g, anchors[i], keys0[i], keys1[i], t, np.int64(CAP), buf, spare, spans):
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
ROWS_PER_PIECE = 8192  # at most, so the threads finish close together


def on_threads(run: Callable[[int, int], None], rows: int) -> None:
    """run(lo, hi) over consecutive pieces of range(rows), taken in turn by as many threads as numba
    may use (NUMBA_NUM_THREADS): a thread done early takes the next piece rather than wait for a
    slower one. The kernels release the GIL and draw per row, so the split changes nothing in
    the result."""
    threads = max(1, min(numba.config.NUMBA_NUM_THREADS, rows // ROWS_PER_THREAD))
    piece = max(ROWS_PER_THREAD, min(ROWS_PER_PIECE, -(-rows // (4 * threads))))
    pieces = iter(range(0, rows, piece))  # next() on it is atomic under the GIL

    def work() -> None:
        for lo in pieces:
            run(lo, min(lo + piece, rows))

    if threads == 1:
        work()
        return
    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(work) for _ in range(threads)]:
            done.result()
