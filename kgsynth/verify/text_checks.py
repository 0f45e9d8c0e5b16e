"""Text checks: the question hides what it should, the thinking path follows the path.

Both link entity mentions with the snapshot's name + synonym dictionary
(`kgsynth.verify.text`), so a synonym counts as a mention and a longer name that
contains a shorter one ("Focal epilepsy" ⊃ "Epilepsy") counts as itself only.
The thinking check also reads what each step sentence says about the relation
between its two entities (`kgsynth.verify.relation`, with the relation lexicon).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kgsynth.verify.batch import ItemBatch
from kgsynth.verify.checks import Context, Outcome, register
from kgsynth.verify.graph_checks import describe
from kgsynth.verify.index import GraphIndex
from kgsynth.verify.lexicon import MISSTATED
from kgsynth.verify.relation import CODE as RELATION_MISSTATED
from kgsynth.verify.relation import Step, StepReader, engine_facts, path_positions, path_steps, plainly_stated
from kgsynth.verify.text import Mention, WordIds, gc_paused, normalized_texts


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
    codes=("HALLUCINATED_STEP", "MISSING_STEP", RELATION_MISSTATED),
    description=(
        "the thinking path mentions every path entity in order and states every hop; entities it adds "
        "between them, or asserts as related without an edge, are hallucinated steps; a step whose words "
        "assert another relation than the graph's (causes for is associated with, treats for is "
        "contraindicated in, a subtype for a part), the wrong direction, or its negation is misstated"
    ),
)
def check_thinking(batch: ItemBatch, ctx: Context) -> Outcome:
    index: GraphIndex = ctx.index
    failures = []
    relations = ctx.relation_check != "off"
    with gc_paused():
        linked, ids = linked_thinking(index, batch)
        if relations:
            readers = step_readers(index, batch, linked, ids)
        for row, (path, mentions, positions) in enumerate(linked):
            for code, detail in judge_thinking(index, path, mentions, positions):
                failures.append((row, code, detail))
            if relations:
                reader, steps = readers[row]
                for step in steps:
                    if step.judgement.verdict == MISSTATED:
                        failures.append((row, RELATION_MISSTATED, misstated_detail(index, reader, step)))
                        break
    return Outcome.of(len(batch), failures)


def linked_thinking(index: GraphIndex, batch: ItemBatch) -> tuple[list[tuple[list[int], list[Mention[int]], list[tuple[int, ...]]]], WordIds]:
    """Per item: its path (engine indices), the entity mentions of its thinking, and the path
    positions each mention may name; and the thinking texts' words as token ids."""
    linker = index.linker
    forms = linker.forms
    texts = batch.frame["thinking"]
    paths = [nodes[: hops + 1] for nodes, hops in zip(batch.nodes.tolist(), batch.hops.tolist(), strict=True)]
    out = []
    linked, ids = linker.link_many(texts, word_ids=True)
    for row, mentions in enumerate(linked):
        path = paths[row]
        unlisted = [node for node in path if node >= 0 and node not in forms]
        if unlisted:  # entities named like common words: link this text again, knowing them
            extra = {tuple(f.split()): (node,) for node in unlisted for f in index.forms_of(node)}
            mentions = linker.link(texts[row] or "", extra)
        out.append((path, mentions, path_positions(mentions, path)))
    return out, ids


def step_readers(index: GraphIndex, batch: ItemBatch, linked, ids: WordIds) -> list[tuple[StepReader[int] | None, Iterator[Step[int]]]]:
    """Per item: a reader of its thinking's steps, and the steps the lexicon does not find stated
    (hops against their triple, other pairs against every relation between them; see
    `kgsynth.verify.relation`), lazily; no reader and no steps for template text."""
    texts = batch.frame["thinking"].fill_null("").to_list()
    names, forward = batch.column("relations"), batch.column("forward")
    facts = engine_facts(index)
    lexicon, wording_ids = index.lexicon, index.wording_ids
    out = []
    for row, (path, mentions, positions) in enumerate(linked):
        usable, base = ids.usable[row], ids.starts[row]
        if usable and plainly_stated(mentions, positions, names[row], forward[row], ids.ids, base, wording_ids):
            out.append((None, ()))
            continue
        reader = StepReader(lexicon, texts[row], mentions, ids=ids.ids if usable else None, base=base, wording_ids=wording_ids)
        out.append((reader, path_steps(reader, path, names[row], forward[row], facts, positions)))
    return out


def misstated_detail(index: GraphIndex, reader: StepReader[int], step: Step[int]) -> str:
    fact = step.facts[0]
    entry = index.lexicon.entry(fact.relation)
    subject = fact.subject if fact.subject is not None else step.first.nodes[0]
    obj = fact.object if fact.object is not None else step.second.nodes[0]
    where = f"hop {step.hop + 1}" if step.hop is not None else "a step off the path"
    return (
        f'{where}: the thinking says "{reader.sentence(step.index)}", which {step.judgement.reason}; the graph has '
        f"{describe(index, subject)} {entry.wording[fact.reading]} {describe(index, obj)} ({fact.relation})"
    )


def judge_thinking(
    index: GraphIndex, path: list[int], mentions: list[Mention[int]], resolved: list[tuple[int, ...]] | None = None
) -> list[tuple[str, str]]:
    """(code, evidence) of the first problem of each kind; empty when the thinking follows the path.
    `resolved`: `path_positions(mentions, path)`, when already known."""
    resolved = resolved if resolved is not None else path_positions(mentions, path)
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


def _name(index: GraphIndex, mention: Mention[int]) -> str:
    return describe(index, mention.nodes[0])


def _any_edge(index: GraphIndex, left: tuple[int, ...], right: tuple[int, ...]) -> bool:
    u = np.repeat(np.array(left, dtype=np.int64), len(right))
    v = np.tile(np.array(right, dtype=np.int64), len(left))
    return bool(index.adjacent(u, v).any())
