"""Graph checks on the paths an item rests on: edges, answer, and the question's pattern.

All three are vectorised over the batch; Python runs only to word the evidence
of items that fail. A batch row is one path: an item's own, or one branch of a
`dag` item's plan (`ItemBatch.unit` says whose). A dag item's triples are checked
by the `plan` check, step by step, so `edges` skips its branches; its distractor
is valid only when every branch's pattern reaches it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kgsynth.generate.kinds import ITEM_KINDS
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
    bad_rows, bad_hops = np.nonzero(batch.hop_mask & ~ok & ~batch.branch[:, None])
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
    return classify_triple(index, u, v, int(batch.rels[row, hop]), bool(batch.fwd[row, hop]),
                           (ids[hop], relation, ids[hop + 1]), f"hop {hop + 1}")  # fmt: skip


def classify_triple(
    index: GraphIndex, u: int, v: int, r: int, forward: bool, named: tuple[str, str, str], where: str
) -> tuple[str, str]:
    """Why u -r-> v (walked `forward` or not) is not in the graph: (code, evidence). `named` is the
    triple as the item spells it (subject id, relation, object id); -1 marks what the graph lacks."""
    relation = named[1]
    for node, node_id in ((u, named[0]), (v, named[2])):
        if node < 0:
            return "EDGE_MISSING", f"{where}: node '{node_id}' is not in the snapshot"
    claimed = _hop_text(index, u, v, relation, forward)
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
    wrong_type = (batch.answer_type != batch.types[batch.rows, batch.hops]) | (batch.answer_type < 0)
    wrong_claims = ((batch.claimed_types != batch.types) & (batch.nodes >= 0)).any(axis=1)
    suspects = np.flatnonzero(_answer_suspects(index, batch) | wrong_type | wrong_claims)
    frame = batch.frame[suspects.tolist()] if len(suspects) else batch.frame.clear()
    failures = []
    for row, item in zip(suspects.tolist(), frame.iter_rows(named=True), strict=True):
        end_id = item["nodes"][-1]
        end = int(batch.terminal[row])
        if item["answer_id"] != end_id:
            failures.append((row, "ANSWER_NOT_TERMINAL", f"answer_id '{item['answer_id']}' is not the path's end node {describe(index, end, end_id)}"))
            continue
        if end >= 0 and not _names_node(index, item["answer"], end):
            failures.append((row, "ANSWER_NOT_TERMINAL", f"answer text '{item['answer']}' does not name the end node {describe(index, end)}"))
            continue
        if item["kind"] in OPTION_KINDS:
            problem = _option_problem(item["options"], item["answer_label"], end_id)
            if problem:
                failures.append((row, "ANSWER_NOT_TERMINAL", problem))
                continue
        if end >= 0 and wrong_type[row]:
            actual = engine.type_names[int(batch.types[row, batch.hops[row]])]
            failures.append((row, "TYPE_MISMATCH", f"the question asks for a '{item['answer_type']}' but {describe(index, end)} is a '{actual}'"))
            continue
        if wrong_claims[row]:
            k = int(np.nonzero((batch.claimed_types[row] != batch.types[row]) & (batch.nodes[row] >= 0))[0][0])
            actual = engine.type_names[int(batch.types[row, k])]
            failures.append((row, "TYPE_MISMATCH", f"node {k + 1} {describe(index, int(batch.nodes[row, k]))} is a '{actual}', the item says '{item['node_types'][k]}'"))
    return Outcome.of(len(batch), failures)


OPTION_KINDS = [name for name in ITEM_KINDS.names() if ITEM_KINDS.get(name).options]  # multiple choice


def _answer_suspects(index: GraphIndex, batch: ItemBatch) -> np.ndarray:
    """Items that may fail the answer check, found in bulk; each is then judged one by one.

    Clears an item only when its answer id is the path's end, its answer text is the
    end node's name (lower-cased words; synonyms and rarer case foldings go to the
    one-by-one test), and, for a multiple-choice item, exactly one option holds the
    answer, under the answer's label, with no node twice.
    """
    frame = batch.frame
    end = np.maximum(batch.terminal, 0)
    words_of = lambda column: column.str.to_lowercase().str.extract_all(r"[^\W_]+").list.join(" ")  # noqa: E731
    named = pl.DataFrame({"answer": frame["answer"].fill_null(""), "name": index.node_info["name"].gather(end)})
    same_name = named.select(words_of(pl.col("answer")) == words_of(pl.col("name")))["answer"].to_numpy()
    suspect = (frame["answer_id"] != frame["nodes"].list.last()).fill_null(True).to_numpy() | ~same_name | (batch.terminal < 0)
    mcq = frame["kind"].is_in(OPTION_KINDS).to_numpy()
    options = (
        frame.select(pl.int_range(pl.len()).alias("row"), "answer_id", "answer_label", "options")
        .explode("options")
        .with_columns(pl.col("options").struct.field("node_id").alias("node"), pl.col("options").struct.field("label").alias("label"))
        .group_by("row")
        .agg(
            (pl.col("node") == pl.col("answer_id")).sum().alias("holders"),
            ((pl.col("node") == pl.col("answer_id")) & (pl.col("label") == pl.col("answer_label"))).sum().alias("labelled"),
            (pl.col("node").n_unique() == pl.col("node").len()).alias("distinct"),
        )
        .sort("row")
    )
    fine = ((options["holders"] == 1) & (options["labelled"] == 1) & options["distinct"]).fill_null(False).to_numpy()
    suspect[options["row"].to_numpy()] |= mcq[options["row"].to_numpy()] & ~fine
    return suspect


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

    # the path itself shows the pattern reaches the answer when all its hops are in the graph
    # (nodes along it have the types the pattern asks for, being the graph's own)
    answer_reached = usable & _path_holds(index, batch)
    # distractors need a search: every option other than the answer
    opt_rows, opt_cols = np.nonzero(batch.options >= 0)
    cand_node = batch.options[opt_rows, opt_cols]
    keep = (cand_node != batch.terminal[opt_rows]) & answer_reached[opt_rows]
    cand_row, cand_node = opt_rows[keep], cand_node[keep]
    reached = np.zeros(len(cand_row), dtype=bool)
    open_counts = np.zeros(n, dtype=np.int64)
    open_examples: dict[int, list[int]] = {}

    searched = np.zeros(n, dtype=bool)
    searched[cand_row] = True
    f_rows, f_nodes, b_owner, b_nodes = _meet(index, batch, searched, cand_row, cand_node, end_type)
    hit = member(cand_row[b_owner] * index.n + b_nodes, unique_ints(f_rows * index.n + f_nodes))
    reached[b_owner[hit]] = True
    if batch.branch.any():
        reached = _every_branch(index, batch, cand_row, cand_node, reached)

    open_rows = np.nonzero(answer_reached & is_open)[0]
    for h in np.unique(batch.hops[open_rows]).tolist():
        rows = open_rows[batch.hops[open_rows] == h]
        counted, examples = _count_ends(index, batch, rows, batch.anchor[rows], 0, h, cap=OPEN_CAP)
        open_counts[rows] = counted[rows]
        open_examples.update(examples)

    failures = []
    for row in np.nonzero(usable & ~answer_reached)[0].tolist():
        failures.append((row, "ANSWER_NOT_REACHED", f"the pattern from {describe(index, int(batch.anchor[row]))} does not reach the answer {describe(index, int(batch.terminal[row]))}"))
    for at in np.nonzero(reached)[0].tolist():
        row = int(cand_row[at])
        failures.append((row, "DISTRACTOR_VALID", f"distractor {describe(index, int(cand_node[at]))} also satisfies the question's pattern from {describe(index, int(batch.anchor[row]))}"))
    for row in np.nonzero(usable & is_open & (open_counts > 1))[0].tolist():
        shown = ", ".join(describe(index, x) for x in open_examples.get(row, []) if x != batch.terminal[row])
        failures.append((row, "ANSWER_NOT_UNIQUE", f"the open question's pattern from {describe(index, int(batch.anchor[row]))} reaches other nodes than the answer, e.g. {shown}"))
    return Outcome.of(n, sorted(failures, key=lambda f: f[0]))


def _every_branch(
    index: GraphIndex, batch: ItemBatch, cand_row: np.ndarray, cand_node: np.ndarray, reached: np.ndarray
) -> np.ndarray:
    """A distractor of an item resting on several paths is valid only when every path's pattern
    reaches it; marked once per item, at its first candidate. A node in two options of one path
    counts once for it (else two hits on one branch would pass for two branches)."""
    keys = batch.unit[cand_row].astype(np.int64) * index.n + cand_node
    distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    once = np.zeros(len(reached), dtype=bool)
    once[np.unique(cand_row.astype(np.int64) * index.n + cand_node, return_index=True)[1]] = True
    hits = np.bincount(inverse, weights=reached & once, minlength=len(distinct))
    paths = np.bincount(batch.unit, minlength=int(batch.unit.max()) + 1)
    valid = np.zeros(len(reached), dtype=bool)
    valid[first[hits == paths[distinct // index.n]]] = True
    return valid


OPEN_CAP = 8  # frontier nodes per item kept while looking for a second answer (then 64, 512, all)
OPEN_CAP_MAX = 512


def _meet(
    index: GraphIndex,
    batch: ItemBatch,
    usable: np.ndarray,
    cand_row: np.ndarray,
    cand_node: np.ndarray,
    end_type: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bidirectional search per item: forward from the anchor, backward from every candidate.

    Each step, each item grows the side that costs fewer neighbour entries to expand
    (the sum of the frontier's degrees under that hop's relation), until the two
    sides meet at the same position. Returns the forward pairs (row, node) and the
    backward pairs (candidate, node) at the meeting position.
    """
    n = len(batch)
    ahead = np.zeros(n, dtype=np.int64)  # forward pairs sit at position ahead[row]
    behind = batch.hops.copy()  # backward pairs sit at position behind[row]
    rows = np.nonzero(usable)[0]
    f_rows, f_nodes = rows, batch.anchor[rows]
    typed = index.engine.node_type[cand_node] == end_type[cand_row]
    b_owner, b_nodes = np.nonzero(typed)[0], cand_node[typed]
    pending = usable & (ahead < behind)
    while pending.any():
        f_live = pending[f_rows]
        b_live = pending[cand_row[b_owner]]
        f_work = _work(index, batch, f_rows[f_live], f_nodes[f_live], ahead[f_rows[f_live]], backwards=False)
        b_rows = cand_row[b_owner[b_live]]
        b_work = _work(index, batch, b_rows, b_nodes[b_live], behind[b_rows] - 1, backwards=True)
        forward = pending & (np.bincount(f_rows[f_live], weights=f_work, minlength=n) <= np.bincount(b_rows, weights=b_work, minlength=n))
        backward = pending & ~forward

        grow = forward[f_rows]
        new_rows, new_nodes = _walk(index, batch, f_rows[grow], f_nodes[grow], ahead[f_rows[grow]], backwards=False)
        f_rows, f_nodes = np.concatenate([f_rows[~grow], new_rows]), np.concatenate([f_nodes[~grow], new_nodes])
        ahead[forward] += 1

        grow = backward[cand_row[b_owner]]
        hop = behind[cand_row[b_owner[grow]]] - 1
        new_owner, new_nodes = _walk(index, batch, b_owner[grow], b_nodes[grow], hop, backwards=True, owner_rows=cand_row)
        b_owner, b_nodes = np.concatenate([b_owner[~grow], new_owner]), np.concatenate([b_nodes[~grow], new_nodes])
        behind[backward] -= 1
        pending &= ahead < behind
    return f_rows, f_nodes, b_owner, b_nodes


def _path_holds(index: GraphIndex, batch: ItemBatch) -> np.ndarray:
    """Per item: every hop is an entry of the graph (symmetric relations either way)."""
    u, v, rel = np.maximum(batch.nodes[:, :-1], 0), np.maximum(batch.nodes[:, 1:], 0), np.maximum(batch.rels, 0)
    ok = index.has_entries(u, rel, batch.fwd, v)
    if len(index.symmetric):
        ok |= index.symmetric[rel] & index.has_entries(u, rel, ~batch.fwd, v)
    return (ok | ~batch.hop_mask).all(axis=1)


def _work(index: GraphIndex, batch: ItemBatch, rows: np.ndarray, nodes: np.ndarray, hop: np.ndarray, *, backwards: bool) -> np.ndarray:
    """Neighbour entries each (row, node) would expand into at that hop."""
    rel = batch.rels[rows, hop]
    fwd = batch.fwd[rows, hop] ^ backwards
    work = index.degree_of(nodes, rel, fwd)
    sym = index.symmetric[rel] if len(index.symmetric) else np.zeros(len(rel), dtype=bool)
    work[sym] += index.degree_of(nodes[sym], rel[sym], ~fwd[sym])
    return work


def _count_ends(
    index: GraphIndex, batch: ItemBatch, rows: np.ndarray, nodes: np.ndarray, start: int, h: int, *, cap: int | None
) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Distinct end nodes per item (exact, or at least 2) of walking hops start..h-1,
    and up to 4 of them for items with more than one.

    Two ends are enough to call an open answer not unique, so frontiers are first
    cut to `cap` nodes per item; items that then reach fewer than two ends but were
    cut are walked again with 8 times the cap, and past `OPEN_CAP_MAX` in full.
    """
    start_rows, start_nodes = rows, nodes
    cut = np.zeros(len(batch), dtype=bool)
    for k in range(start, h):
        rows, nodes = _walk(index, batch, rows, nodes, k, backwards=False, limit=cap, cut=cut)
        if cap is not None:
            keep = _rank_in_run(rows) < cap
            cut[rows[~keep]] = True
            rows, nodes = rows[keep], nodes[keep]
    counts = np.bincount(rows, minlength=len(batch))
    shown = (_rank_in_run(rows) < 4) & (counts[rows] > 1)
    examples: dict[int, list[int]] = {}
    for row, node in zip(rows[shown].tolist(), nodes[shown].tolist(), strict=True):
        examples.setdefault(row, []).append(node)
    again = cut & (counts < 2)
    if again.any():
        pick = again[start_rows]
        wider = None if cap is None or cap >= OPEN_CAP_MAX else cap * 8
        exact, exact_examples = _count_ends(index, batch, start_rows[pick], start_nodes[pick], start, h, cap=wider)
        counts[again] = exact[again]
        examples.update(exact_examples)
    return counts, examples


def _rank_in_run(rows: np.ndarray) -> np.ndarray:
    """0, 1, 2, … within each run of equal values of a sorted array."""
    if not len(rows):
        return rows
    at = np.arange(len(rows))
    starts = np.where(np.r_[True, rows[1:] != rows[:-1]], at, 0)
    return at - np.maximum.accumulate(starts)


def _walk(
    index: GraphIndex,
    batch: ItemBatch,
    owner: np.ndarray,
    nodes: np.ndarray,
    hop: int | np.ndarray,
    *,
    backwards: bool,
    owner_rows: np.ndarray | None = None,
    limit: int | None = None,
    cut: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One hop of each item's pattern from a set of (owner, node) pairs, deduplicated.

    `owner` is an item row, or (with `owner_rows`) an index into `owner_rows`.
    Symmetric relations are walked both ways; the node reached must have the type
    the path has at that position. `hop` is one hop for all pairs or one per pair.
    With `limit`, each node contributes at most that many neighbours and
    `cut[owner]` marks owners that lost some.
    """
    rows = owner if owner_rows is None else owner_rows[owner]
    hop = np.broadcast_to(np.asarray(hop, dtype=np.int64), owner.shape)
    rel = batch.rels[rows, hop]
    fwd = batch.fwd[rows, hop] ^ backwards
    sym = index.symmetric[rel] if len(index.symmetric) else np.zeros(len(rel), dtype=bool)
    ask = np.concatenate([np.arange(len(owner)), np.flatnonzero(sym)])
    ask_rel, ask_fwd = rel[ask], np.concatenate([fwd, ~fwd[sym]])
    got_at, got = index.neighbours(ask, nodes[ask], ask_rel, ask_fwd, limit=limit)
    if limit is not None and cut is not None:
        cut[owner[ask[index.degree_of(nodes[ask], ask_rel, ask_fwd) > limit]]] = True
    got_owner = owner[got_at]
    want_type = batch.types[rows[got_at], hop[got_at] + (0 if backwards else 1)]
    ok = index.engine.node_type[got] == want_type
    keys = unique_ints(got_owner[ok] * index.n + got[ok])
    return keys // index.n, keys % index.n
