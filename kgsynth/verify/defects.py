"""Defect injection: corrupted copies of clean items, to measure what verification catches.

Each defect copies an item and breaks it the way generated data goes wrong — a
wrong answer, a hop told backwards, an invented or a skipped step, a hop told as
another relation or negated, a leaked name, a distractor that is also right, a
shortcut through a pruned hub — and names the reason code verification must give it. The test suite and `bench/bench_verify.py`
run every defect over clean items of the real pipeline and count what is caught.

Thinking paths are rewritten in the template writer's wording (`template.v1`), so a
corrupted item differs from its clean original only by the defect. `PLAN_DEFECTS`
break the plans of `dag` items (a missing edge, a flipped step, a cycle, an unused
step, a dangling dependency), re-serialising the thinking so the text still says
exactly the broken plan.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from kgsynth.verify.index import GraphIndex
from kgsynth.verify.text import normalize

Item = dict[str, Any]


@dataclass(frozen=True)
class Defect:
    make: Callable[[Item, GraphIndex, random.Random], Item | None]  # None: does not apply to this item
    code: str  # the reason code verification must give
    description: str


def _template():
    from kgsynth.llm.prompts import load_prompt

    return load_prompt("template.v1")


def _step(subject: str, phrase: str, obj: str) -> str:
    return _template().render("step", subject=subject, phrase=phrase, object=obj)


def _conclusion(index: GraphIndex, item: Item) -> str:
    node_type = index.snapshot.vocabulary.node_types.get(item["answer_type"])
    label = node_type.label if node_type else item["answer_type"]
    return _template().render("conclusion", answer_type=label, answer=item["answer"])


def thinking_for(index: GraphIndex, item: Item, names: list[str], relations: list[str], forward: list[bool]) -> str:
    """A template thinking path for these names and hops."""
    vocab = index.snapshot.vocabulary
    steps = [_step(names[i], vocab.relation(r).phrase(f), names[i + 1]) for i, (r, f) in enumerate(zip(relations, forward, strict=True))]
    return " ".join([*steps, _conclusion(index, item)])


_ADJACENCY: dict[tuple[str, str, bool], Any] = {}


def _adjacency(index: GraphIndex, relation: str, forward: bool):
    import scipy.sparse as sp

    key = (index.snapshot.hash, relation, forward)
    if key not in _ADJACENCY:
        e = index.engine
        mask = np.asarray(e.edge_rel) == e.relation_index[relation]
        src, dst = np.asarray(e.edge_src)[mask], np.asarray(e.edge_dst)[mask]
        if not forward:
            src, dst = dst, src
        _ADJACENCY[key] = sp.csr_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(index.n, index.n))
    return _ADJACENCY[key]


def pattern_reach(index: GraphIndex, item: Item) -> set[int]:
    """Nodes the item's relation pattern reaches from its anchor, by sparse matrices.

    Deliberately a second implementation, independent of the `pattern` check.
    """
    e = index.engine
    frontier = np.array([e.index_of(item["anchor_id"])])
    types = np.asarray(e.node_type)
    for k, (relation, forward) in enumerate(zip(item["relations"], item["forward"], strict=True)):
        ways = [forward, not forward] if index.snapshot.vocabulary.relation(relation).symmetric else [forward]
        found = np.concatenate([_adjacency(index, relation, way)[frontier].indices for way in ways])
        want = types[e.index_of(item["nodes"][k + 1])]
        frontier = np.array(sorted(set(found[types[found] == want].tolist())), dtype=np.int64)
    return set(frontier.tolist())


def _distinct(index: GraphIndex, item: Item, v: int) -> bool:
    """v is off the path and has a name that links to it and to no path entity."""
    e = index.engine
    path = [e.index_of(n) for n in item["nodes"]]
    taken = {f for p in path for f in index.forms_of(p)}
    forms = index.linker.forms.get(v, ())
    return v not in path and bool(forms) and not taken & set(forms)


def _named_node(index: GraphIndex, rng: random.Random, item: Item, node_type: str) -> int:
    """A node of that type, off the path, whose name tells it apart from the path's entities."""
    e = index.engine
    candidates = np.flatnonzero(np.asarray(e.node_type) == e.type_index[node_type])
    while True:
        v = int(candidates[rng.randrange(len(candidates))])
        if _distinct(index, item, v):
            return v


def wrong_answer(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    option = next((o for o in item["options"] if o["node_id"] != item["answer_id"]), None)
    if option is None:
        return None
    return {**item, "answer": option["text"], "answer_id": option["node_id"], "answer_label": option["label"]}


def flipped_direction(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    vocab = index.snapshot.vocabulary
    k = next((i for i, r in enumerate(item["relations"]) if not vocab.relation(r).symmetric), None)
    if k is None:
        return None
    forward = list(item["forward"])
    forward[k] = not forward[k]
    return {**item, "forward": forward, "thinking": thinking_for(index, item, item["node_names"], item["relations"], forward)}


def hallucinated_step(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    w = _named_node(index, rng, item, item["node_types"][1])
    names = list(item["node_names"])
    names[1] = index.names[w]
    return {**item, "thinking": thinking_for(index, item, names, item["relations"], item["forward"])}


def inserted_step(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    e = index.engine
    span = e.neighbors(e.index_of(item["nodes"][0]))
    same = np.asarray(e.indices[span])[np.asarray(e.rel[span]) == e.relation_index[item["relations"][0]]]
    near = [int(v) for v in same if _distinct(index, item, int(v))]
    if not near:
        return None
    w = index.names[rng.choice(near)]
    names = item["node_names"]
    phrase = index.snapshot.vocabulary.relation(item["relations"][0]).phrase(item["forward"][0])
    clean = thinking_for(index, item, names, item["relations"], item["forward"])
    extra = f"{_step(names[0], phrase, w)} {_step(w, 'is related to', names[1])}"
    return {**item, "thinking": clean.replace(_step(names[0], phrase, names[1]), extra, 1)}


def skipped_step(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    if item["hops"] < 2:
        return None
    vocab = index.snapshot.vocabulary
    names, relations, forward = item["node_names"], item["relations"], item["forward"]
    merged = _step(names[0], vocab.relation(relations[0]).phrase(forward[0]), names[2])
    tail = [_step(names[i], vocab.relation(relations[i]).phrase(forward[i]), names[i + 1]) for i in range(2, len(relations))]
    return {**item, "thinking": " ".join([merged, *tail, _conclusion(index, item)])}


def leaked_bridge(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    if item["hops"] < 2 or item["nodes"][1] not in (item["bridges"] or []):
        return None
    return {**item, "question": item["question"].replace("?", f" (think of {item['node_names'][1]})?", 1)}


def leaked_answer_synonym(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    own = normalize(item["answer"])
    synonyms = [f for f in index.linker.forms.get(index.engine.index_of(item["answer_id"]), ()) if f != own]
    if not synonyms:
        return None
    shouted = rng.choice(synonyms).upper().replace(" ", "-")  # case and punctuation must not hide it
    return {**item, "question": item["question"].replace("?", f", e.g. {shouted}?", 1)}


def valid_distractor(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    if not item["options"]:
        return None
    others = sorted(pattern_reach(index, item) - {index.engine.index_of(item["answer_id"])})
    if not others:
        return None
    v = rng.choice(others)
    options = [dict(o) for o in item["options"]]
    slot = next(o for o in options if o["node_id"] != item["answer_id"])
    slot["node_id"], slot["text"] = index.engine.node_ids[v], index.names[v]
    return {**item, "options": options}


def shortcut(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    if item["hops"] < 3:
        return None
    e = index.engine
    a, z = e.index_of(item["anchor_id"]), e.index_of(item["answer_id"])
    common = set(np.asarray(e.indices[e.neighbors(a)]).tolist()) & set(np.asarray(e.indices[e.neighbors(z)]).tolist())
    common -= {e.index_of(n) for n in item["nodes"]}
    if not common:
        return None
    return {**item, "_hub": e.node_ids[min(common)]}


# phrases that assert a relation of one family, read subject-first: (family, phrase)
_OTHER_RELATIONS = (
    ("causal", "is caused by"), ("causal", "causes"), ("taxonomic", "is a kind of"), ("part_whole", "is part of"),
    ("therapeutic", "treats"), ("contraindication", "is contraindicated in"), ("prevention", "prevents"),
    ("presentation", "presents with"),
)


def _with_phrase(index: GraphIndex, item: Item, k: int, phrase: str) -> str:
    """The item's template thinking with hop k told with `phrase`."""
    vocab = index.snapshot.vocabulary
    names, relations, forward = item["node_names"], item["relations"], item["forward"]
    steps = [_step(names[i], phrase if i == k else vocab.relation(r).phrase(f), names[i + 1]) for i, (r, f) in enumerate(zip(relations, forward, strict=True))]
    return " ".join([*steps, _conclusion(index, item)])


def misstated_relation(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    k = rng.randrange(item["hops"])
    families = index.lexicon.entry(item["relations"][k]).families
    phrases = [p for family, p in _OTHER_RELATIONS if family not in families]
    return {**item, "thinking": _with_phrase(index, item, k, rng.choice(phrases))} if phrases else None


def negated_relation(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    k = rng.randrange(item["hops"])
    relation = index.snapshot.vocabulary.relation(item["relations"][k])
    if index.lexicon.entry(relation.name).negative:
        return None
    first, *rest = relation.phrase(item["forward"][k]).split(" ")
    if first in {"is", "are", "can", "may", "has", "does", "was"}:
        negated = " ".join([first, "not", *rest])
    else:  # "presents with" -> "does not present with"
        negated = " ".join(["does not", first[:-1] if first.endswith("s") and not first.endswith("ss") else first, *rest])
    return {**item, "thinking": _with_phrase(index, item, k, negated)}


DEFECTS: dict[str, Defect] = {
    "wrong_answer": Defect(wrong_answer, "ANSWER_NOT_TERMINAL", "the answer is a distractor, not the path's end"),
    "flipped_direction": Defect(flipped_direction, "DIRECTION_FLIPPED", "one hop claimed (and told) against its stored direction"),
    "hallucinated_step": Defect(hallucinated_step, "HALLUCINATED_STEP", "the thinking swaps the bridge for another entity"),
    "inserted_step": Defect(inserted_step, "HALLUCINATED_STEP", "the thinking adds an entity between the anchor and the bridge"),
    "skipped_step": Defect(skipped_step, "MISSING_STEP", "two hops told as one; the bridge never appears"),
    "leaked_bridge": Defect(leaked_bridge, "BRIDGE_LEAKED", "the question names the masked bridge"),
    "leaked_answer_synonym": Defect(leaked_answer_synonym, "ANSWER_LEAKED", "the question names the answer by a synonym, in other case and punctuation"),
    "valid_distractor": Defect(valid_distractor, "DISTRACTOR_VALID", "a distractor the question's pattern also reaches"),
    "shortcut": Defect(shortcut, "SHORTCUT", "anchor and answer share a neighbour that pruning removed"),
    "misstated_relation": Defect(misstated_relation, "RELATION_MISSTATED", "one hop told as another kind of relation (causes, is a kind of, treats, …)"),
    "negated_relation": Defect(negated_relation, "RELATION_MISSTATED", "one hop told negated (is not associated with, does not present with)"),
}


def corrupt(items: pl.DataFrame, index: GraphIndex, defect: str, *, seed: int = 0) -> tuple[pl.DataFrame, list[str]]:
    """Corrupted copies (ids prefixed with the defect) of every item the defect applies to,
    and the ids of removed nodes to pass as `hubs` (for `shortcut`)."""
    make = {**DEFECTS, **PLAN_DEFECTS}[defect].make
    rng = random.Random(seed)
    rows, hubs = [], []
    for item in items.to_dicts():
        bad = make(item, index, rng)
        if bad is None:
            continue
        hub = bad.pop("_hub", None)
        if hub is not None:
            hubs.append(hub)
        rows.append({**bad, "id": f"{defect}:{item['id']}"})
    return pl.DataFrame(rows, schema=items.schema), hubs


# --- plans of dag items ------------------------------------------------------------------


def _replan(item: Item, plan: list[dict[str, Any]], outlines: dict[int, str]) -> Item:
    """The item with this plan and a thinking text that serialises it (so only the defect differs)."""
    from kgsynth.llm.verbalize import serialize_plan

    steps = [(s["step"], s["depends_on"], s["text"]) for s in plan]
    return {**item, "plan": plan, "thinking": serialize_plan(steps, [outlines.get(s["step"], "?") for s in plan])}


def _outlines(item: Item) -> dict[int, str]:
    from kgsynth.llm.verbalize import read_plan_text

    read = read_plan_text(item["thinking"])
    return {step: text for (step, _), text in zip(read.planned, read.outlines, strict=True)} if read else {}


def _fact_text(index: GraphIndex, step: dict[str, Any]) -> str:
    phrase = index.snapshot.vocabulary.relation(step["relation"]).phrase(step["forward"])
    return _step(step["subject_name"], phrase, step["object_name"])


def plan_missing_edge(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    """A branch's bridge swapped for a node of its type joined to neither neighbour: two steps the graph lacks."""
    plan = [dict(s) for s in item.get("plan") or []]
    by_id = {s["step"]: s for s in plan}
    after = next((s for s in plan if s["kind"] == "fact" and s["depends_on"] and s["depends_on"][0] in by_id), None)
    if after is None:
        return None
    before = by_id[after["depends_on"][0]]
    e = index.engine
    ends = np.array([e.index_of(before["subject"]), e.index_of(after["object"])])
    candidates = np.flatnonzero(np.asarray(e.node_type) == e.type_index[after["subject_type"]])
    for _ in range(200):
        w = int(candidates[rng.randrange(len(candidates))])
        if w in ends.tolist() or index.adjacent(ends, np.array([w, w])).any() or not index.linker.forms.get(w):
            continue
        before.update(object=e.node_ids[w], object_name=index.names[w])
        after.update(subject=e.node_ids[w], subject_name=index.names[w])
        before["text"], after["text"] = _fact_text(index, before), _fact_text(index, after)
        return _replan(item, plan, _outlines(item))
    return None


def plan_flipped_step(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    """One fact step claimed (and told) against its stored direction."""
    vocab = index.snapshot.vocabulary
    plan = [dict(s) for s in item.get("plan") or []]
    facts = [s for s in plan if s["kind"] == "fact" and not vocab.relation(s["relation"]).symmetric]
    if not facts:
        return None
    step = rng.choice(facts)
    step["forward"] = not step["forward"]
    step["text"] = _fact_text(index, step)
    return _replan(item, plan, _outlines(item))


def plan_cycle(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    """A leaf made to depend on the join, which (through its branch) depends on it."""
    plan = [dict(s, depends_on=list(s["depends_on"])) for s in item.get("plan") or []]
    join = next((s for s in plan if s["kind"] == "join"), None)
    leaf = next((s for s in plan if s["kind"] == "fact" and not s["depends_on"]), None)
    if join is None or leaf is None:
        return None
    leaf["depends_on"] = [join["step"]]
    return _replan(item, plan, _outlines(item))


def plan_unused_step(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    """A true fact about an anchor added before the join, which nothing depends on."""
    plan = [dict(s) for s in item.get("plan") or []]
    join = next((s for s in plan if s["kind"] == "join"), None)
    leaf = next((s for s in plan if s["kind"] == "fact" and not s["depends_on"]), None)
    if join is None or leaf is None:
        return None
    e = index.engine
    u = e.index_of(leaf["subject"])
    span = e.neighbors(u)
    near, rels, ways = np.asarray(e.indices[span]), np.asarray(e.rel[span]), np.asarray(e.forward[span])
    on_plan = {e.index_of(s["object"]) for s in plan} | {e.index_of(s["subject"]) for s in plan if s["subject"]}
    choices = [k for k, v in enumerate(near.tolist()) if v not in on_plan and index.linker.forms.get(v)]
    if not choices:
        return None
    k = rng.choice(choices)
    v, relation, forward = int(near[k]), e.relation_names[int(rels[k])], bool(ways[k])
    outlines = _outlines(item)
    extra = {
        "step": join["step"], "kind": "fact", "subject": leaf["subject"], "subject_name": leaf["subject_name"],
        "subject_type": leaf["subject_type"], "relation": relation, "object": e.node_ids[v], "object_name": index.names[v],
        "object_type": e.type_names[int(e.node_type[v])], "forward": forward, "depends_on": [],
    }  # fmt: skip
    extra["text"] = _fact_text(index, extra)
    outlines[join["step"] + 1] = outlines.get(join["step"], "?")
    outlines[join["step"]] = f"{leaf['subject_name']} is related to which {extra['object_type']}?"
    join["step"] += 1
    return _replan(item, [*(s for s in plan if s is not join), extra, join], outlines)


def plan_dangling_dependency(item: Item, index: GraphIndex, rng: random.Random) -> Item | None:
    """The join made to depend also on a step the plan does not have."""
    plan = [dict(s, depends_on=list(s["depends_on"])) for s in item.get("plan") or []]
    join = next((s for s in plan if s["kind"] == "join"), None)
    if join is None:
        return None
    join["depends_on"].append(max(s["step"] for s in plan) + 7)
    return _replan(item, plan, _outlines(item))


PLAN_DEFECTS: dict[str, Defect] = {
    "plan_missing_edge": Defect(plan_missing_edge, "EDGE_MISSING", "a branch's bridge swapped for an unconnected node"),
    "plan_flipped_step": Defect(plan_flipped_step, "DIRECTION_FLIPPED", "one step claimed (and told) against its stored direction"),
    "plan_cycle": Defect(plan_cycle, "PLAN_CYCLE", "a leaf step made to depend on the join"),
    "plan_unused_step": Defect(plan_unused_step, "PLAN_STEP_UNUSED", "a true extra step that the join does not depend on"),
    "plan_dangling_dependency": Defect(plan_dangling_dependency, "PLAN_DANGLING_DEPENDENCY", "the join depends on a step the plan lacks"),
}
