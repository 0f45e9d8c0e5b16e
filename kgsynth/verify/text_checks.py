"""Text checks: the question hides what it should, the thinking path follows the path.

Both link entity mentions with the snapshot's name + synonym dictionary
(`kgsynth.verify.text`), so a synonym counts as a mention and a longer name that
contains a shorter one ("Focal epilepsy" ⊃ "Epilepsy") counts as itself only.
"""

from __future__ import annotations

import numpy as np

from kgsynth.verify.batch import ItemBatch
from kgsynth.verify.checks import Context, Outcome, register
from kgsynth.verify.graph_checks import describe
from kgsynth.verify.index import GraphIndex
from kgsynth.verify.text import Mention, gc_paused, normalized_texts


@register(
    "leak",
    stage="graph",
    codes=("ANSWER_LEAKED", "BRIDGE_LEAKED"),
    description="the question names neither the answer nor a masked bridge entity, by any name or synonym",
)
def check_leak(batch: ItemBatch, ctx: Context) -> Outcome:
    index: GraphIndex = ctx.index
    linker = index.linker
    questions = normalized_texts(batch.frame["question"])
    bridge_idx = _ids_to_index(index.node_table, batch.frame["bridges"])
    answers, anchors = batch.terminal.tolist(), batch.anchor.tolist()
    failures = []
    with gc_paused():
        for row, question in enumerate(questions):
            answer, anchor = answers[row], anchors[row]
            hidden = [answer] + [b for b in bridge_idx[row] if b != anchor]
            for node, form in linker.mentions_any(question, hidden, mask=(anchor,), forms=index.forms_of, normalized=True):
                code = "ANSWER_LEAKED" if node == answer else "BRIDGE_LEAKED"
                what = "the answer" if node == answer else "bridge entity"
                failures.append((row, code, f"the question names {what} {describe(index, node)} as '{form}'"))
    return Outcome.of(len(batch), failures)


def _ids_to_index(table, lists) -> list[list[int]]:
    """A list-of-ids column as engine indices (ids the snapshot lacks are left out)."""
    long = lists.alias("ids").to_frame().with_row_index("row").explode("ids")
    long = long.join(table.rename({"id": "ids"}), on="ids", how="inner", maintain_order="left")
    out: list[list[int]] = [[] for _ in range(len(lists))]
    for row, idx in zip(long["row"].to_list(), long["idx"].to_list(), strict=True):
        out[row].append(idx)
    return out


@register(
    "thinking",
    stage="graph",
    codes=("HALLUCINATED_STEP", "MISSING_STEP"),
    description=(
        "the thinking path mentions every path entity in order and states every hop; entities it adds "
        "between them, or asserts as related without an edge, are hallucinated steps"
    ),
)
def check_thinking(batch: ItemBatch, ctx: Context) -> Outcome:
    index: GraphIndex = ctx.index
    linker = index.linker
    forms = linker.forms
    failures = []
    with gc_paused():
        texts = batch.frame["thinking"]
        linked = linker.link_many(texts)
        paths = [nodes[: hops + 1] for nodes, hops in zip(batch.nodes.tolist(), batch.hops.tolist(), strict=True)]
        for row, mentions in enumerate(linked):
            path = paths[row]
            unlisted = [node for node in path if node >= 0 and node not in forms]
            if unlisted:  # entities named like common words: link this text again, knowing them
                extra = {tuple(f.split()): (node,) for node in unlisted for f in index.forms_of(node)}
                mentions = linker.link(texts[row] or "", extra)
            for code, detail in judge_thinking(index, path, mentions):
                failures.append((row, code, detail))
    return Outcome.of(len(batch), failures)


def judge_thinking(index: GraphIndex, path: list[int], mentions: list[Mention[int]]) -> list[tuple[str, str]]:
    """(code, evidence) of the first problem of each kind; empty when the thinking follows the path."""
    where = {node: k for k, node in enumerate(path) if node >= 0}
    resolved = [_positions(m.nodes, where) for m in mentions]
    length = len(path)

    # the chain: path entities in path order (greedy, leftmost)
    matched_at: list[int] = []
    for i, positions in enumerate(resolved):
        if positions and len(matched_at) < length and len(matched_at) in positions:
            matched_at.append(i)
    start = matched_at[0] if matched_at else 0
    stop = matched_at[-1] if len(matched_at) == length else len(mentions)

    found: list[tuple[str, str]] = []
    stated = [False] * (length - 1)
    for i in range(1, len(mentions)):
        prev, cur = mentions[i - 1], mentions[i]
        if prev.sentence != cur.sentence:
            continue
        p, c = resolved[i - 1], resolved[i]
        if p and c:  # two path entities (two of them may share a name: both readings count)
            for a in p:
                for b in c:
                    if a - b == 1 or b - a == 1:
                        stated[min(a, b)] = True
            continue
        if prev.nodes == cur.nodes or found:  # one entity named twice; or already one hallucination
            continue
        off, other = (cur, prev) if p else (prev, cur)
        if start < (i if not c else i - 1) < stop:
            found.append(("HALLUCINATED_STEP", (
                f"the thinking puts {_name(index, off)}, which is not on the path, "
                f"between path entities, related to {_name(index, other)}"
            )))
        elif not _any_edge(index, off.nodes, other.nodes):
            found.append(("HALLUCINATED_STEP", (
                f"the thinking relates {_name(index, prev)} and {_name(index, cur)}, which share no edge in the graph"
            )))

    if len(matched_at) < length:
        k = len(matched_at)
        said = any(k in positions for positions in resolved)
        how = "mentioned out of order" if said else "never mentioned"
        if path[k] >= 0 and not index.forms_of(path[k]):
            how += " (its name has no letters or digits, so no text can name it)"
        found.append(("MISSING_STEP", f"path entity {k + 1} {describe(index, path[k])} is {how} in the thinking"))
    elif not all(stated):
        k = stated.index(False)
        found.append(("MISSING_STEP", (
            f"hop {k + 1} ({describe(index, path[k])} → {describe(index, path[k + 1])}) is never stated: "
            "no sentence names the two together"
        )))
    return found


def _positions(nodes: tuple[int, ...], where: dict[int, int]) -> tuple[int, ...]:
    if len(nodes) == 1:
        k = where.get(nodes[0])
        return () if k is None else (k,)
    return tuple(where[node] for node in nodes if node in where)


def _name(index: GraphIndex, mention: Mention[int]) -> str:
    return describe(index, mention.nodes[0])


def _any_edge(index: GraphIndex, left: tuple[int, ...], right: tuple[int, ...]) -> bool:
    u = np.repeat(np.array(left, dtype=np.int64), len(right))
    v = np.tile(np.array(right, dtype=np.int64), len(left))
    return bool(index.adjacent(u, v).any())
