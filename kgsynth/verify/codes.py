"""Every reason code verification can give, with what it means.

The checks registry says which check gives which codes (`Check.codes`); this table
says what each code means, in one sentence a reader of `rejected.parquet`, the
dataset card or the documentation site can act on. A test fails when a registered
check declares a code that has no description here.
"""

from __future__ import annotations

REASON_CODES: dict[str, str] = {
    # edges (and, for a dag item's plan steps, plan)
    "EDGE_MISSING": "a triple the item rests on is not in the full graph (or names a node the graph lacks)",
    "DIRECTION_FLIPPED": "a triple the item rests on is in the graph, but stored the other way round",
    "RELATION_WRONG": "the two nodes of a triple are joined in the graph, but by another relation (or the relation does not occur)",
    "PATH_MALFORMED": "the item's path lists disagree (nodes, relations, directions, types, hops, anchor) or hold nulls",
    # answer
    "ANSWER_NOT_TERMINAL": "the answer (id, name, or option label) is not the node the path ends at",
    "TYPE_MISMATCH": "the question asks for another node type than the answer's, or the item misstates a node's type",
    # pattern
    "ANSWER_NOT_REACHED": "following the question's relation pattern from the anchor in the full graph does not reach the answer",
    "DISTRACTOR_VALID": "a distractor also satisfies the question's pattern (for a dag item: every branch's), so it is a right answer too",
    "ANSWER_NOT_UNIQUE": "an open question's pattern reaches other nodes than the answer, so it has several right answers",
    # leak
    "ANSWER_LEAKED": "the question names the answer, by its name or a synonym",
    "BRIDGE_LEAKED": "the question names an intermediate entity it should describe instead, by its name or a synonym",
    # shortcut
    "SHORTCUT": "anchor and answer are joined, through a hub pruning removed, by a walk shorter than the item's path",
    # thinking (and relation_model)
    "HALLUCINATED_STEP": "the thinking adds an entity between path entities, or relates two entities the graph does not join",
    "MISSING_STEP": "the thinking skips a path entity, names it out of order, or never states a hop",
    "RELATION_MISSTATED": "a thinking step names the right two entities but asserts another relation, the wrong direction, or its negation",
    # llm_consistency
    "ANSWER_INCONSISTENT": "a model answering from the thinking path alone does not reach the gold answer",
    "LLM_UNAVAILABLE": "the judge model gave no usable reply, so the item could not be judged",
    # decontamination, dedup
    "CONTAMINATED": "the question shares a word n-gram with a question of a benchmark file",
    "DUPLICATE_EXACT": "the same normalized question and options as an earlier item",
    "DUPLICATE_PATH": "the same kind of question over the same triples as an earlier item",
    "DUPLICATE_NEAR": "the question's embedding is within the cosine threshold of an earlier item's",
    # plan (dag items)
    "PLAN_MALFORMED": "the plan is not a list of numbered steps with one join: steps share an id, a fact step lacks its triple, "
    "a join has one, or there is not exactly one join step",
    "PLAN_DANGLING_DEPENDENCY": "a step depends on a step id the plan does not have",
    "PLAN_CYCLE": "the steps' dependencies form a cycle, so the plan is not a directed acyclic graph",
    "PLAN_STEP_UNCHAINED": "a fact step depends on a step that did not establish its subject (or on more than one step)",
    "PLAN_LEAF_NOT_IN_QUESTION": "a step that depends on nothing starts from an entity the question does not name",
    "PLAN_NOT_CONVERGENT": "the join depends on fewer than two steps, so no branches converge",
    "PLAN_JOIN_MISSES_ANSWER": "a branch the join depends on ends at another entity than the answer",
    "PLAN_STEP_UNUSED": "a step the join does not depend on, directly or through other steps",
    "PLAN_TEXT_MISMATCH": "the thinking text does not serialise the plan: its steps, dependencies or sentences differ",
}


def describe_code(code: str) -> str:
    """The meaning of a reason code; unknown codes say so rather than fail (old runs, other tools)."""
    return REASON_CODES.get(code, "no description recorded for this code")
