"""Graph checks on items the real pipeline makes from the real HPO graph.

Clean items come from the template writer (`kgsynth.generate`); the defect
injection suite (`kgsynth.verify.defects`) corrupts copies of them in the ways
generated data goes wrong and asserts each copy is rejected with the right reason
code. Independent oracles (sparse-matrix walks, breadth-first search) confirm the
vectorised pattern and shortcut checks item by item.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hpo_paths import make_paths

from kgsynth.errors import ConfigError
from kgsynth.generate import WRITERS, generate_items
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.verify import verify_items
from kgsynth.verify.defects import DEFECTS, corrupt, pattern_reach
from kgsynth.verify.index import graph_index
from kgsynth.verify.shortcut import hub_index, shortcut_bfs

@pytest.fixture(scope="module")
def full(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


@pytest.fixture(scope="module")
def index(full):
    return graph_index(full)


@pytest.fixture(scope="module")
def clean(full, tmp_path_factory):
    """Template items (MCQ and open) over 2- and 3-hop HPO paths, as `kgsynth generate` writes them."""
    out = tmp_path_factory.mktemp("items") / "items.parquet"
    generate_items(make_paths(full, 120, seed=11), full, writer=WRITERS.get("template")(None), out=out)
    return pl.read_parquet(out)


@pytest.fixture(scope="module")
def mcq(clean):
    return clean.filter(pl.col("kind") == "mcq")


def reasons_by_id(result) -> dict[str, list[str]]:
    return dict(zip(result.rejected["id"].to_list(), result.rejected["reasons"].to_list(), strict=True))


def details(result, item_id: str) -> list[str]:
    row = result.rejected.filter(pl.col("id") == item_id).row(0, named=True)
    return [v["detail"] for v in row["verdicts"] if not v["passed"]]


# --- the suite ---------------------------------------------------------------------------


def test_clean_template_items_pass(clean, full):
    result = verify_items(clean, full)
    mcq = result.accepted.filter(pl.col("kind") == "mcq")
    assert mcq.height == clean.filter(pl.col("kind") == "mcq").height > 100  # every clean MCQ item passes
    assert set(result.rejected["kind"]) <= {"open"}
    assert all(r == ["ANSWER_NOT_UNIQUE"] for r in result.rejected["reasons"].to_list())
    verdicts = mcq["verdicts"][0].to_list()
    assert {v["check"] for v in verdicts} == {"edges", "answer", "pattern", "leak", "thinking"}
    assert all(v["passed"] and v["code"] is None for v in verdicts)
    assert result.summary["accepted"] + result.summary["rejected"] == clean.height


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_is_rejected_with_its_reason_code(defect, mcq, full, index):
    bad, hubs = corrupt(mcq, index, defect)
    assert bad.height >= 10, f"{defect}: too few items to corrupt"
    result = verify_items(bad, full, hubs=hubs or None)
    expected = DEFECTS[defect].code
    reasons = reasons_by_id(result)
    missed = [i for i in bad["id"].to_list() if expected not in reasons.get(i, [])]
    assert not missed, f"{defect}: {len(missed)}/{bad.height} not rejected as {expected}, e.g. {reasons.get(missed[0])}"
    assert result.accepted.height == 0


def test_check_edges_tells_missing_flipped_and_wrong_relation(mcq, full, index):
    item = mcq.filter(pl.col("relations").list.first() == "has_phenotype").row(0, named=True)
    relabeled = {**item, "id": "relabeled", "relations": ["gene_associated_with_phenotype", *item["relations"][1:]]}
    ghost = {**item, "id": "ghost", "nodes": ["hpo:HP:9999999", *item["nodes"][1:]], "anchor_id": "hpo:HP:9999999"}
    e = index.engine
    a = e.index_of(item["anchor_id"])
    far = next(v for v in range(index.n) if e.node_type[v] == e.node_type[e.index_of(item["nodes"][1])]
               and not index.adjacent(np.array([a]), np.array([v]))[0])
    missing = {**item, "id": "missing", "nodes": [item["nodes"][0], e.node_ids[far], *item["nodes"][2:]]}
    short = {**item, "id": "short", "forward": item["forward"][:-1]}
    frame = pl.DataFrame([relabeled, ghost, missing, short], schema=mcq.schema)
    result = verify_items(frame, full, checks=["edges"])
    reasons = reasons_by_id(result)
    assert reasons["relabeled"] == ["RELATION_WRONG"] and "has_phenotype" in details(result, "relabeled")[0]
    assert reasons["ghost"] == ["EDGE_MISSING"] and "hpo:HP:9999999" in details(result, "ghost")[0]
    assert reasons["missing"] == ["EDGE_MISSING"]
    assert reasons["short"] == ["PATH_MALFORMED"] and "forward flags" in details(result, "short")[0]


def test_check_answer_catches_renamed_answers_and_wrong_types(mcq, full):
    item = mcq.row(0, named=True)
    renamed = {**item, "id": "renamed", "answer": "Something else entirely"}
    retyped = {**item, "id": "retyped", "answer_type": "gene"}
    relabeled = {**item, "id": "relabeled", "answer_label": next(o["label"] for o in item["options"] if o["node_id"] != item["answer_id"])}
    result = verify_items(pl.DataFrame([renamed, retyped, relabeled], schema=mcq.schema), full, checks=["answer"])
    reasons = reasons_by_id(result)
    assert reasons == {"renamed": ["ANSWER_NOT_TERMINAL"], "retyped": ["TYPE_MISMATCH"], "relabeled": ["ANSWER_NOT_TERMINAL"]}


def test_check_pattern_agrees_with_a_plain_walk(clean, full, index):
    result = verify_items(clean, full, checks=["pattern"])
    reasons = reasons_by_id(result)
    for item in clean.to_dicts():
        reach = pattern_reach(index, item)
        answer = index.engine.index_of(item["answer_id"])
        assert answer in reach
        if item["kind"] == "open":
            assert ("ANSWER_NOT_UNIQUE" in reasons.get(item["id"], [])) == (len(reach) > 1)
        else:
            valid = any(index.engine.index_of(o["node_id"]) in reach for o in item["options"] if o["node_id"] != item["answer_id"])
            assert ("DISTRACTOR_VALID" in reasons.get(item["id"], [])) == valid


def test_check_pattern_reports_an_unreachable_answer(mcq, full):
    item = mcq.filter(pl.col("hops") == 2).row(0, named=True)
    wrong = {**item, "id": "wrong", "relations": [item["relations"][0], "has_phenotype"]}
    result = verify_items(pl.DataFrame([wrong], schema=mcq.schema), full, checks=["pattern"])
    assert reasons_by_id(result) == {"wrong": ["ANSWER_NOT_REACHED"]}


def test_check_leak_ignores_names_inside_the_anchor_and_sees_through_case(mcq, full, index):
    item = mcq.row(0, named=True)
    anchor = item["node_names"][0]
    only_anchor = {**item, "id": "anchor", "question": f"Which {item['answer_type']} relates to {anchor.upper()}?"}
    answer = {**item, "id": "answer", "question": item["question"] + " " + item["answer"].lower().replace(" ", "_")}
    result = verify_items(pl.DataFrame([only_anchor, answer], schema=mcq.schema), full, checks=["leak"])
    assert reasons_by_id(result) == {"answer": ["ANSWER_LEAKED"]}
    # a bridge whose name only occurs inside the anchor's name is not leaked
    e = index.engine
    seizure, focal = e.index_of("hpo:HP:0001250"), e.index_of("hpo:HP:0007359")
    assert index.names[seizure] == "Seizure" and "seizure" in index.names[focal].lower()
    hidden = index.linker.mentions_any(f"Which phenotype is a kind of {index.names[focal]}?", [seizure], mask=[focal])
    assert hidden == []
    assert index.linker.mentions_any("Does SEIZURE-like activity occur?", [seizure]) == [(seizure, "seizure")]


def test_check_shortcut_agrees_with_breadth_first_search(clean, full, index):
    """With the 40 highest-degree nodes as the pruned hubs, every 3-hop item against an exact BFS."""
    degree = np.asarray(index.engine.degree)
    on_paths = {index.engine.index_of(n) for ns in clean["nodes"].to_list() for n in ns}
    top = [int(v) for v in np.argsort(-degree)[:60] if int(v) not in on_paths][:40]
    hubs = [index.engine.node_ids[v] for v in top]
    result = verify_items(clean, full, hubs=hubs, checks=["shortcut"])
    reasons = reasons_by_id(result)
    hub_set = hub_index(index, hubs)
    flagged = 0
    for item in clean.filter(pl.col("hops") >= 3).to_dicts():
        exact = shortcut_bfs(hub_set, index.engine.index_of(item["anchor_id"]), index.engine.index_of(item["answer_id"]), item["hops"])
        assert ("SHORTCUT" in reasons.get(item["id"], [])) == (exact is not None)
        flagged += exact is not None
    assert flagged > 0
    two_hop = clean.filter(pl.col("hops") == 2)["id"].to_list()
    assert not any(i in reasons for i in two_hop)  # a walk through a hub is at least 2 long


def test_check_shortcut_needs_the_removed_nodes(clean, full, tmp_path):
    with pytest.raises(ConfigError, match="hubs"):
        verify_items(clean.head(3), full, checks=["shortcut"])
    result = verify_items(clean.head(3), full)
    assert "shortcut" in result.summary["skipped"]
    hubs_json = tmp_path / "hubs.json"
    hubs_json.write_text('{"removed": [{"id": "hpo:HP:0000007", "reason": "degree"}, {"id": "hpo:nope"}]}')
    result = verify_items(clean.head(3), full, hubs=hubs_json)
    assert "shortcut" in result.summary["checks"] and result.summary["hubs"] == {"removed": 2, "not_in_snapshot": 1}


def test_check_thinking_longest_match_keeps_nested_names_apart(full, index, mcq):
    """Anchor 'Focal-onset seizure' is a kind of 'Seizure': each name links to its own node."""
    e = index.engine
    focal, seizure = "hpo:HP:0007359", "hpo:HP:0001250"
    parent = next(
        e.node_ids[int(v)] for v in np.asarray(e.indices[e.neighbors(e.index_of(seizure))])
        if index.has_entries(np.array([e.index_of(seizure)]), np.array([e.relation_index["is_a"]]), np.array([True]), np.array([int(v)]))[0]
    )
    template = mcq.row(0, named=True)
    names = [index.names[e.index_of(n)] for n in (focal, seizure, parent)]
    thinking = f"{names[0]} is a kind of {names[1]}. {names[1]} is a kind of {names[2]}. So the phenotype asked for is {names[2]}."
    item = {
        **template, "id": "nested", "kind": "open", "options": [], "answer_label": None, "negatives": [],
        "nodes": [focal, seizure, parent], "node_names": names, "node_types": ["phenotype"] * 3,
        "relations": ["is_a", "is_a"], "forward": [True, True], "hops": 2, "anchor_id": focal,
        "answer_id": parent, "answer": names[2], "answer_type": "phenotype", "bridges": [seizure],
        "question": f"Which phenotype has as a subtype a phenotype that has as a subtype {names[0]}?", "thinking": thinking,
    }
    result = verify_items(pl.DataFrame([item], schema=mcq.schema), full, checks=["thinking", "edges", "leak"])
    assert result.accepted.height == 1, result.rejected["reasons"].to_list()
    out_of_order = {**item, "id": "swapped", "thinking": f"{names[1]} is a kind of {names[2]}. {names[0]} is a kind of {names[1]}."}
    result = verify_items(pl.DataFrame([out_of_order], schema=mcq.schema), full, checks=["thinking"])
    assert reasons_by_id(result) == {"swapped": ["MISSING_STEP"]}
    assert "out of order" in details(result, "swapped")[0]


def test_check_thinking_and_leak_know_entities_named_like_common_words(mcq, full, index):
    """The gene WAS: its name is an English word, left out of the dictionary, yet a path entity."""
    e = index.engine
    was = e.index_of("hpo:NCBIGene:7454")
    span = e.neighbors(was)
    rel, fwd, nb = np.asarray(e.rel[span]), np.asarray(e.forward[span]), np.asarray(e.indices[span])
    disease = int(nb[(rel == e.relation_index["gene_associated_with_disease"]) & fwd][0])
    phenotype = int(nb[(rel == e.relation_index["gene_associated_with_phenotype"]) & fwd][0])
    ids = [e.node_ids[v] for v in (disease, was, phenotype)]
    names = [index.names[v] for v in (disease, was, phenotype)]
    item = {
        **mcq.row(0, named=True), "id": "was", "kind": "open", "options": [], "answer_label": None, "negatives": [],
        "nodes": ids, "node_names": names, "node_types": ["disease", "gene", "phenotype"],
        "relations": ["gene_associated_with_disease", "gene_associated_with_phenotype"], "forward": [False, True],
        "hops": 2, "anchor_id": ids[0], "answer_id": ids[2], "answer": names[2], "answer_type": "phenotype", "bridges": [ids[1]],
        "question": f"Which phenotype is associated with the gene that is associated with the disease {names[0]}?",
        "thinking": f"{names[0]} is associated with the gene WAS. WAS is associated with the phenotype {names[2]}.",
    }
    leaked = {**item, "id": "was-leaked", "question": item["question"].replace("?", " (the gene WAS)?")}
    result = verify_items(pl.DataFrame([item, leaked], schema=mcq.schema), full, checks=["thinking", "leak"])
    assert reasons_by_id(result) == {"was-leaked": ["BRIDGE_LEAKED"]}
