"""Graph checks on the path an item rests on: edges, answer, and the question's pattern.

All three are vectorised over the batch; Python runs only to word the evidence
of items that fail.
"""

from __future__ import annotations

import numpy as np

from kgsynth.verify.batch import ItemBatch
from kgsynth.verify.checks import Context, Outcome, register
from kgsynth.verify.index import GraphIndex, member, unique_ints
from kgsynth.verify.text import normalize


def describe(index: GraphIndex, node: int, fallback: str = "?") -> str:
    if node < 0:
        return f"'{fallback}' (not in the snapshot)"
    return f"'{index.names[node]}' ({index.engine.node_ids[node]})"


def _hop_text(index: GraphIndex, u: int, v: int, relation: str, forward: bool) -> str:
    arrow = f"-[{relation}]->" if forward else f"<-[{relation}]-"
    return f"{describe(index, u)} {arrow} {describe(index, v)}"


@register(
    "edges",
    stage="graph",
    codes=("EDGE_MISSING", "DIRECTION_FLIPPED", "RELATION_WRONG", "PATH_MALFORMED"),
    description="every triple the item rests on is in the full graph, with that relation and direction",
)
def check_edges(batch: ItemBatch, ctx: Context) -> Outcome:
    index: GraphIndex = ctx.index
    u, v = batch.nodes[:, :-1], batch.nodes[:, 1:]
    rel, fwd = batch.rels, batch.fwd
    known = (u >= 0) & (v >= 0) & (rel >= 0)
    safe_u, safe_v, safe_rel = np.maximum(u, 0), np.maximum(v, 0), np.maximum(rel, 0)
    ok = known & index.has_entries(safe_u, safe_rel, fwd, safe_v)
    sym = known & index.symmetric[safe_rel] if len(index.symmetric) else np.zeros_like(known)
    ok |= sym & index.has_entries(safe_u, safe_rel, ~fwd, safe_v)
    bad_rows, bad_hops = np.nonzero(batch.hop_mask & ~ok)
    failures = []
    if len(bad_rows):
        node_ids = batch.column("nodes")
        relations = batch.column("relations")
        for row, hop in zip(bad_rows.tolist(), bad_hops.tolist(), strict=True):
            failures.append((row, *_classify_hop(index, batch, row, hop, node_ids[row], relations[row][hop])))
    return Outcome.of(len(batch), failures)


def _classify_hop(
    index: GraphIndex, batch: ItemBatch, row: int, hop: int, ids: list[str], relation: str
) -> tuple[str, str]:
    u, v = int(batch.nodes[row, hop]), int(batch.nodes[row, hop + 1])
    forward = bool(batch.fwd[row, hop])
    where = f"hop {hop + 1}"
    for node, node_id in ((u, ids[hop]), (v, ids[hop + 1])):
        if node < 0:
            return "EDGE_MISSING", f"{where}: node '{node_id}' is not in the snapshot"
    claimed = _hop_text(index, u, v, relation, forward)
    r = int(batch.rels[row, hop])
    if r < 0:
        return "RELATION_WRONG", f"{where}: relation '{relation}' does not occur in the snapshot ({claimed})"
    one = np.array([u]), np.array([r]), np.array([not forward]), np.array([v])
    if index.has_entries(*one)[0]:
        return "DIRECTION_FLIPPED", f"{where}: {claimed} is stored the other way round"
    if index.adjacent(np.array([u]), np.array([v]))[0]:
        engine = index.engine
        span = engine.neighbors(u)
        actual = sorted({engine.relation_names[x] for x in engine.rel[span][engine.indices[span] == v].tolist()})
        return "RELATION_WRONG", f"{where}: {claimed} not in the graph; they are joined by {', '.join(actual)}"
    return "EDGE_MISSING", f"{where}: {claimed} is not in the graph"


@register(
    "answer",
    stage="graph",
    codes=("ANSWER_NOT_TERMINAL", "TYPE_MISMATCH"),
    description="the answer is the path's end node, under its name, with the type the question asks for",
)
def check_answer(batch: ItemBatch, ctx: Context) -> Outcome:
    index: GraphIndex = ctx.index
    engine = index.engine
    terminal = batch.terminal
    ids = batch.column("nodes")
    answer_ids = batch.column("answer_id")
    answers = batch.column("answer")
    labels = batch.column("answer_label")
    options = batch.column("options")
    kinds = batch.column("kind")
    answer_types = batch.column("answer_type")
    failures = []
    wrong_type = (batch.answer_type != batch.types[batch.rows, batch.hops]) | (batch.answer_type < 0)
    wrong_claims = ((batch.claimed_types != batch.types) & (batch.nodes >= 0)).any(axis=1)
    for row in range(len(batch)):
        end_id = ids[row][-1]
        end = int(terminal[row])
        if answer_ids[row] != end_id:
            failures.append((row, "ANSWER_NOT_TERMINAL", f"answer_id '{answer_ids[row]}' is not the path's end node {describe(index, end, end_id)}"))
            continue
        if end >= 0 and not _names_node(index, answers[row], end):
            failures.append((row, "ANSWER_NOT_TERMINAL", f"answer text '{answers[row]}' does not name the end node {describe(index, end)}"))
            continue
        if kinds[row] == "mcq":
            problem = _option_problem(options[row], labels[row], end_id)
            if problem:
                failures.append((row, "ANSWER_NOT_TERMINAL", problem))
                continue
        if end >= 0 and wrong_type[row]:
            actual = engine.type_names[int(batch.types[row, batch.hops[row]])]
            failures.append((row, "TYPE_MISMATCH", f"the question asks for a '{answer_types[row]}' but {describe(index, end)} is a '{actual}'"))
            continue
        if wrong_claims[row]:
            k = int(np.nonzero((batch.claimed_types[row] != batch.types[row]) & (batch.nodes[row] >= 0))[0][0])
            claimed = batch.frame["node_types"][row][k]
            actual = engine.type_names[int(batch.types[row, k])]
            failures.append((row, "TYPE_MISMATCH", f"node {k + 1} {describe(index, int(batch.nodes[row, k]))} is a '{actual}', the item says '{claimed}'"))
    return Outcome.of(len(batch), failures)


def _names_node(index: GraphIndex, text: str, node: int) -> bool:
    wanted = normalize(text or "")
    return wanted == normalize(index.names[node]) or wanted in index.linker.forms.get(node, ())


def _option_problem(options: list[dict], label: str | None, answer_id: str) -> str:
    holders = [o for o in options if o["node_id"] == answer_id]
    if len(holders) != 1:
        return f"{len(holders)} options hold the answer node '{answer_id}' (expected exactly one)"
    if holders[0]["label"] != label:
        return f"answer_label '{label}' but the answer node is option '{holders[0]['label']}'"
    seen = [o["node_id"] for o in options]
    if len(set(seen)) != len(seen):
        return "two options hold the same node"
    return ""


@register(
    "pattern",
    stage="graph",
    codes=("ANSWER_NOT_REACHED", "DISTRACTOR_VALID", "ANSWER_NOT_UNIQUE"),
    description=(
        "following the question's relation pattern from the anchor in the full graph reaches the answer "
        "and no distractor; an open question's pattern reaches the answer only"
    ),
)
def check_pattern(batch: ItemBatch, ctx: Context) -> Outcome:
    index: GraphIndex = ctx.index
    n = len(batch)
    usable = (batch.nodes >= 0).sum(axis=1) == batch.hops + 1
    usable &= ((batch.rels >= 0) | ~batch.hop_mask).all(axis=1)
    is_open = np.array([k == "open" for k in batch.column("kind")], dtype=bool)
    end_type = batch.types[batch.rows, batch.hops]

    # candidates: the terminal node and every other option, per item
    cand_row = [batch.rows]
    cand_node = [batch.terminal]
    opt_rows, opt_cols = np.nonzero(batch.options >= 0)
    opt_nodes = batch.options[opt_rows, opt_cols]
    others = opt_nodes != batch.terminal[opt_rows]
    cand_row.append(opt_rows[others])
    cand_node.append(opt_nodes[others])
    cand_row = np.concatenate(cand_row)
    cand_node = np.concatenate(cand_node)
    keep = usable[cand_row]
    cand_row, cand_node = cand_row[keep], cand_node[keep]
    reached = np.zeros(len(cand_row), dtype=bool)
    open_counts = np.zeros(n, dtype=np.int64)
    open_examples: dict[int, list[int]] = {}

    for h in np.unique(batch.hops[usable]).tolist():
        rows = np.nonzero(usable & (batch.hops == h))[0]
        # meet in the middle, always growing the smaller side (as bidirectional search does)
        f_rows, f_nodes, ahead = rows, batch.anchor[rows], 0
        mine = np.nonzero(batch.hops[cand_row] == h)[0]
        typed = index.engine.node_type[cand_node[mine]] == end_type[cand_row[mine]]
        b_owner, b_nodes, behind = mine[typed], cand_node[mine[typed]], h
        while ahead < behind:
            if len(f_rows) <= len(b_owner):
                f_rows, f_nodes = _walk(index, batch, f_rows, f_nodes, ahead, backwards=False)
                ahead += 1
            else:
                behind -= 1
                b_owner, b_nodes = _walk(index, batch, b_owner, b_nodes, behind, backwards=True, owner_rows=cand_row)
        hit = member(cand_row[b_owner] * index.n + b_nodes, f_rows * index.n + f_nodes)
        reached[b_owner[hit]] = True

        open_rows = rows[is_open[rows]]
        counted, examples = _count_ends(index, batch, open_rows, batch.anchor[open_rows], 0, h, cap=OPEN_CAP)
        for row, ends in counted.items():
            open_counts[row] = ends
        open_examples.update(examples)

    failures = []
    answer_reached = np.zeros(n, dtype=bool)
    first = np.arange(len(cand_row)) < usable.sum()  # the terminal candidates come first
    answer_reached[cand_row[first & reached]] = True
    for row in np.nonzero(usable & ~answer_reached)[0].tolist():
        failures.append((row, "ANSWER_NOT_REACHED", f"the pattern from {describe(index, int(batch.anchor[row]))} does not reach the answer {describe(index, int(batch.terminal[row]))}"))
    valid = np.nonzero(~first & reached)[0]
    for at in valid.tolist():
        row = int(cand_row[at])
        failures.append((row, "DISTRACTOR_VALID", f"distractor {describe(index, int(cand_node[at]))} also satisfies the question's pattern from {describe(index, int(batch.anchor[row]))}"))
    for row in np.nonzero(usable & is_open & (open_counts > 1))[0].tolist():
        shown = ", ".join(describe(index, x) for x in open_examples.get(row, []) if x != batch.terminal[row])
        failures.append((row, "ANSWER_NOT_UNIQUE", f"the open question's pattern from {describe(index, int(batch.anchor[row]))} reaches other nodes than the answer, e.g. {shown}"))
    return Outcome.of(n, sorted(failures, key=lambda f: f[0]))


OPEN_CAP = 8  # frontier nodes per item kept while looking for a second answer


def _count_ends(
    index: GraphIndex, batch: ItemBatch, rows: np.ndarray, nodes: np.ndarray, start: int, h: int, *, cap: int | None
) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Distinct end nodes per item of walking hops start..h-1 (exact, or at least 2).

    Two ends are enough to call an open answer not unique, so frontiers are first
    cut to `cap` nodes per item; items that then reach fewer than two ends but were
    cut are walked again in full.
    """
    start_rows, start_nodes = rows, nodes
    cut = np.zeros(len(batch), dtype=bool)
    for k in range(start, h):
        rows, nodes = _walk(index, batch, rows, nodes, k, backwards=False, limit=cap, cut=cut)
        if cap is not None:
            first = np.searchsorted(rows, rows, side="left")
            keep = np.arange(len(rows)) - first < cap
            cut[rows[~keep]] = True
            rows, nodes = rows[keep], nodes[keep]
    counts: dict[int, int] = {}
    examples: dict[int, list[int]] = {}
    if len(rows):
        bounds = np.flatnonzero(np.diff(rows)) + 1
        for chunk_rows, chunk_nodes in zip(np.split(rows, bounds), np.split(nodes, bounds), strict=True):
            counts[int(chunk_rows[0])] = len(chunk_nodes)
            examples[int(chunk_rows[0])] = chunk_nodes[:4].tolist()
    again = cut.copy()
    again[[r for r, c in counts.items() if c >= 2]] = False
    if again.any():
        pick = again[start_rows]
        exact, exact_examples = _count_ends(index, batch, start_rows[pick], start_nodes[pick], start, h, cap=None)
        counts.update(exact)
        examples.update(exact_examples)
    return counts, examples


def _walk(
    index: GraphIndex,
    batch: ItemBatch,
    owner: np.ndarray,
    nodes: np.ndarray,
    hop: int,
    *,
    backwards: bool,
    owner_rows: np.ndarray | None = None,
    limit: int | None = None,
    cut: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One hop of each item's pattern from a set of (owner, node) pairs, deduplicated.

    `owner` is an item row, or (with `owner_rows`) an index into `owner_rows`.
    Symmetric relations are walked both ways; the node reached must have the type
    the path has at that position. With `limit`, each node contributes at most
    that many neighbours and `cut[owner]` marks owners that lost some.
    """
    rows = owner if owner_rows is None else owner_rows[owner]
    rel = batch.rels[rows, hop]
    fwd = batch.fwd[rows, hop] ^ backwards
    sym = index.symmetric[rel] if len(index.symmetric) else np.zeros(len(rel), dtype=bool)
    ask_owner = np.concatenate([owner, owner[sym]])
    ask_nodes = np.concatenate([nodes, nodes[sym]])
    ask_rel = np.concatenate([rel, rel[sym]])
    ask_fwd = np.concatenate([fwd, ~fwd[sym]])
    got_owner, got = index.neighbours(ask_owner, ask_nodes, ask_rel, ask_fwd, limit=limit)
    if limit is not None and cut is not None:
        cut[ask_owner[index.degree_of(ask_nodes, ask_rel, ask_fwd) > limit]] = True
    got_rows = got_owner if owner_rows is None else owner_rows[got_owner]
    want_type = batch.types[got_rows, hop if backwards else hop + 1]
    ok = index.engine.node_type[got] == want_type
    keys = unique_ints(got_owner[ok] * index.n + got[ok])
    return keys // index.n, keys % index.n
