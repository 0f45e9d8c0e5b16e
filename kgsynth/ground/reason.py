"""The grounded reasoning and the item it becomes.

The reasoning is the template writer's thinking path over the selected paths: one
sentence per hop in each path's order, with the relation's wording for the hop's
true direction ("Arachnodactyly is a clinical feature of Marfan syndrome."), the
first (best) path first, and one conclusion naming the gold answer. With a model,
that text is the draft the model rewrites; verification then checks every step
the rewrite states.

The item is an ordinary `kgsynth.generate.item.Item` on the first path, so
verification and export treat it like any generated item: kind "mcq" with the
dataset's own options (an option no node was linked to carries the placeholder
node id `unlinked:<label>`), or "open". The other selected paths are stated in
the thinking, where the thinking check verifies each of their steps against the
graph, and are listed in the grounded rows' `paths` column.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from kgsynth.generate.item import Item, Option, Provenance, Usage
from kgsynth.generate.prepare import NodeInfo
from kgsynth.ground.link import Linked
from kgsynth.ground.qa import QARecord
from kgsynth.llm.prompts import Prompt
from kgsynth.llm.verbalize import PathFacts, hop_sentences

UNLINKED = "unlinked:"


def thinking_text(facts: Sequence[PathFacts], template: Prompt) -> str:
    """Hop sentences of every path (a hop two paths share is said once), then the conclusion."""
    steps = dict.fromkeys(sentence for f in facts for sentence in hop_sentences(f, template))
    conclusion = template.render("conclusion", answer_type=facts[0].answer_type, answer=facts[0].answer)
    return " ".join([*steps, conclusion])


def facts_text(facts: Sequence[PathFacts], template: Prompt) -> str:
    """The facts for a model prompt: numbered chains of numbered hop sentences."""
    return "\n".join(
        f"Chain {c}:\n" + "\n".join(f"  {i}. {s}" for i, s in enumerate(hop_sentences(f, template), start=1))
        for c, f in enumerate(facts, start=1)
    )


def grounded_item_id(record: QARecord, rows: Sequence[dict[str, Any]], prompt_hash: str) -> str:
    """Stable: the same question, paths and prompt text give the same id."""
    key = json.dumps(
        [record.dataset_name, record.id_in_dataset, [[r["nodes"], r["relations"], r["forward"]] for r in rows], prompt_hash],
        separators=(",", ":"),
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def grounded_item(
    record: QARecord,
    linked: Linked,
    rows: Sequence[dict[str, Any]],
    infos: list[NodeInfo],
    thinking: str,
    *,
    prompt: Prompt,
    provenance: dict[str, Any],
    usage: Usage | None = None,
) -> Item:
    """The item on the first selected path; `infos` are that path's nodes."""
    row = rows[0]
    answer_id = row["nodes"][-1]
    options = []
    for option, link in zip(record.options, linked.options, strict=True):
        if option.label == record.answer_label:
            node_id = answer_id  # the answer option holds the node the path reached, whichever namesake
        elif link is not None and link.node_id != answer_id:
            node_id = link.node_id
        else:
            node_id = f"{UNLINKED}{option.label}"
        options.append(Option(label=option.label, text=option.text, node_id=node_id))
    return Item(
        id=grounded_item_id(record, rows, prompt.hash),
        kind="mcq" if record.options else "open",
        question=record.question,
        options=options,
        answer=infos[-1].name,
        answer_id=answer_id,
        answer_label=record.answer_label,
        answer_type=infos[-1].type,
        thinking=thinking,
        path_id=row["path_id"],
        group_id=None,
        anchor_id=row["nodes"][0],
        nodes=row["nodes"],
        node_names=[i.name for i in infos],
        node_types=[i.type for i in infos],
        relations=row["relations"],
        forward=row["forward"],
        hops=len(row["relations"]),
        bridges=[],
        negatives=[],
        distractor_source="dataset",
        provenance=Provenance(
            **provenance, strategy=row["strategy"], seed=row["seed"], prompt_name=prompt.name, prompt_hash=prompt.hash,
            usage=usage or Usage(),
        ),
    )
