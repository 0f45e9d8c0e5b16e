"""`dag` items on the real HPO graph: plans from convergent groups, written offline and through a
model endpoint, verified as graphs, corrupted plans rejected with their codes, exported."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from llm_server import LLMServer

from kgsynth.errors import ConfigError
from kgsynth.generate import ITEM_KINDS, WRITERS, generate_items
from kgsynth.generate.item import frame_to_items
from kgsynth.generate.masking import mentions
from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.llm import LLMConfig, Price
from kgsynth.llm.verbalize import read_plan_text
from kgsynth.sample import sample_paths
from kgsynth.verify import CHECKS, load_checks, verify_items
from kgsynth.verify.codes import REASON_CODES
from kgsynth.verify.defects import PLAN_DEFECTS, corrupt, pattern_reach
from kgsynth.verify.index import graph_index

KGSYNTH = [sys.executable, "-c", "from kgsynth.cli import main; main()"]


@pytest.fixture(scope="module")
def snapshot(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


@pytest.fixture(scope="module")
def groups(snapshot):
    """Convergent groups of two paths of 1-2 hops, as the sampler draws them (with hard negatives)."""
    engine = open_engine(snapshot)
    return sample_paths(engine, "convergent", n=80, seed=2, hops="1-2", full=engine)


@pytest.fixture(scope="module")
def dag_items(tmp_path_factory, groups, snapshot):
    out = tmp_path_factory.mktemp("dag") / "items.parquet"
    result = generate_items(groups, snapshot, writer=WRITERS.get("template")(None), out=out, kinds=["dag"])
    return result, pl.read_parquet(out)


@pytest.fixture(scope="module")
def index(snapshot):
    return graph_index(snapshot)


def test_kind_dag_items_are_plans_over_every_branch_of_a_group(dag_items, groups):
    result, items = dag_items
    frame_to_items(items)  # valid against the Item contract
    n_groups = groups["group_id"].n_unique()
    assert items.height + sum(result.rejected.values()) == n_groups and items.height >= 25
    by_group = {g: rows for g, rows in groups.group_by("group_id", maintain_order=True)}
    for item in items.iter_rows(named=True):
        assert item["kind"] == "dag"
        branches = by_group[(item["group_id"],)]
        plan = item["plan"]
        facts = [s for s in plan if s["kind"] == "fact"]
        join = plan[-1]
        # one fact step per triple of every branch, in branch order, then the join
        assert len(facts) == branches["hops"].sum() and join["kind"] == "join" and len(plan) == len(facts) + 1
        assert [(s["subject"], s["relation"], s["object"], s["forward"]) for s in facts] == [
            (r["nodes"][h], r["relations"][h], r["nodes"][h + 1], r["forward"][h])
            for r in branches.iter_rows(named=True) for h in range(r["hops"])
        ]
        leaves = [s for s in facts if not s["depends_on"]]
        assert [s["subject"] for s in leaves] == [r["nodes"][0] for r in branches.iter_rows(named=True)]
        assert {by["object"] for by in facts if by["step"] in join["depends_on"]} == {item["answer_id"]}
        assert len(join["depends_on"]) == branches.height == 2
        # the thinking serialises the plan: plan lines with dependencies, then one execution line per step
        read = read_plan_text(item["thinking"])
        assert read is not None
        assert read.planned == [(s["step"], list(s["depends_on"])) for s in plan]
        assert read.executed == [(s["step"], s["text"]) for s in plan]
        plan_lines = item["thinking"].split("</Plan>")[0]
        for s in facts:  # a fact's sentence names both its entities; the plan lines never name what steps find
            assert s["subject_name"] in s["text"] and s["object_name"] in s["text"]
            if s["depends_on"]:
                assert not mentions(plan_lines, [s["subject_name"]]) or s["subject_name"] in {x["subject_name"] for x in leaves}
        assert not mentions(plan_lines, [item["answer"]])
        # the question names every anchor, no bridge of any branch, and not the answer
        assert all(mentions(item["question"], [s["subject_name"]]) for s in leaves)
        assert not mentions(item["question"], [item["answer"]])
        bridges = [s["object_name"] for s in facts if s["object"] != item["answer_id"]]
        assert not any(mentions(item["question"], [b]) for b in bridges)
        # options: the answer and distractors from the branches' hard negatives
        assert len(item["options"]) == 4 and item["answer_label"] in "ABCD"
        negatives = {n for r in branches.iter_rows(named=True) for n in r["negatives"] or []}
        assert set(item["negatives"]) <= negatives and len(item["negatives"]) == 3
        assert sorted(o["node_id"] for o in item["options"]) == sorted([item["answer_id"], *item["negatives"]])
        assert item["provenance"]["prompt_name"] == "plan_template.v1"


def test_kind_dag_template_items_pass_verification(dag_items, snapshot):
    _, items = dag_items
    result = verify_items(items, snapshot)
    assert result.rejected.height == 0, result.summary["by_reason"]
    assert result.accepted.height == items.height
    checks = {v["check"] for v in result.accepted["verdicts"][0]}
    assert checks == {"edges", "answer", "pattern", "leak", "thinking", "plan"}


def test_kind_dag_needs_convergent_groups(tmp_path, snapshot):
    walks = sample_paths(open_engine(snapshot), "walk", n=10, seed=1)
    with pytest.raises(ConfigError, match="strategy 'convergent'"):
        generate_items(walks, snapshot, writer=WRITERS.get("template")(None), out=tmp_path / "i.parquet", kinds=["dag"])


def test_kind_dag_beside_path_kinds_turns_loose_paths_away(tmp_path, groups, snapshot):
    loose = sample_paths(open_engine(snapshot), "walk", n=6, seed=1)
    mixed = pl.concat([groups.head(6), loose], how="vertical_relaxed")
    result = generate_items(mixed, snapshot, writer=WRITERS.get("template")(None), out=tmp_path / "i.parquet",
                            kinds=["mcq", "dag"], min_options=2)  # fmt: skip
    items = pl.read_parquet(result.out)
    failures = pl.read_parquet(result.failures_path)
    assert set(failures.filter(pl.col("reason") == "not_convergent")["path_id"]) == set(loose["path_id"])
    assert items.filter(pl.col("kind") == "dag").height >= 1 and items.filter(pl.col("kind") == "mcq").height >= 1


@pytest.mark.parametrize("defect", sorted(PLAN_DEFECTS))
def test_check_plan_rejects_a_corrupted_plan_with_its_code(defect, dag_items, snapshot, index):
    _, items = dag_items
    bad, _ = corrupt(items, index, defect, seed=5)
    assert bad.height >= 10
    assert all(read_plan_text(t) is not None for t in bad["thinking"])  # the text still says the (broken) plan
    result = verify_items(bad, snapshot)
    assert result.accepted.height == 0, f"{defect}: {result.accepted.height} corrupted plans accepted"
    code = PLAN_DEFECTS[defect].code
    for row in result.rejected.iter_rows(named=True):
        plan_verdict = next(v for v in row["verdicts"] if v["check"] == "plan")
        assert plan_verdict["code"] == code, (defect, plan_verdict)
        assert code in row["reasons"]


def test_check_plan_rejects_a_thinking_text_that_says_another_plan(dag_items, snapshot):
    _, items = dag_items
    swapped = items.with_columns(  # the execution's first sentence changed, the plan kept
        pl.col("thinking").str.replace(r"<Execution>\nStep 1: [^\n]*", "<Execution>\nStep 1: Nothing follows from here.")
    )
    reordered = items.with_columns(pl.col("thinking").str.replace(r"\(depends on: none\)", "(depends on: 2)"))
    for bad in (swapped, reordered):
        result = verify_items(bad, snapshot, checks=["plan"])
        assert result.accepted.height == 0
        assert all(r == ["PLAN_TEXT_MISMATCH"] for r in result.rejected["reasons"].to_list())


def test_check_plan_judges_leaves_join_and_malformed_plans(dag_items, snapshot):
    _, items = dag_items
    rows = items.head(6).to_dicts()
    first = rows[0]
    # a leaf the question does not name: the question's anchor replaced by another name
    leaf = next(s for s in first["plan"] if not s["depends_on"])
    unnamed = {**first, "question": first["question"].replace(leaf["subject_name"], "something")}
    # a join that depends on one branch only; a branch ending elsewhere than the answer; no join at all
    plan = [dict(s) for s in rows[1]["plan"]]
    plan[-1]["depends_on"] = plan[-1]["depends_on"][:1]
    single = {**rows[1], "plan": plan}
    off = {**rows[2], "answer_id": rows[2]["negatives"][0]}
    nojoin = {**rows[3], "plan": rows[3]["plan"][:-1]}
    empty = {**rows[4], "plan": []}
    frame = pl.DataFrame([unnamed, single, off, nojoin, empty], schema=items.schema)
    result = verify_items(frame, snapshot, checks=["plan"])
    plan_codes = [next(v["code"] for v in r["verdicts"] if v["check"] == "plan") for r in result.rejected.iter_rows(named=True)]
    by_id = dict(zip(result.rejected["id"].to_list(), plan_codes, strict=True))
    assert by_id[unnamed["id"]] == "PLAN_LEAF_NOT_IN_QUESTION"
    assert by_id[off["id"]] == "PLAN_JOIN_MISSES_ANSWER"
    assert by_id[nojoin["id"]] == "PLAN_MALFORMED" and by_id[empty["id"]] == "PLAN_MALFORMED"
    single_reasons = result.rejected.filter(pl.col("id") == single["id"])["reasons"][0].to_list()
    assert "PLAN_NOT_CONVERGENT" in single_reasons and "PLAN_STEP_UNUSED" in single_reasons


def test_dag_distractor_is_valid_only_when_every_branch_reaches_it(dag_items, snapshot, index):
    """A node one branch's pattern reaches is still a wrong answer; one every branch reaches is not."""
    _, items = dag_items
    engine = index.engine
    one_branch = both = 0
    for item in items.iter_rows(named=True):
        facts = [s for s in item["plan"] if s["kind"] == "fact"]
        branches = []
        for leaf in (s for s in facts if not s["depends_on"]):
            chain, at = [leaf], leaf
            while (nxt := next((s for s in facts if s["depends_on"] == [at["step"]]), None)) is not None:
                chain.append(nxt)
                at = nxt
            branches.append({"anchor_id": leaf["subject"], "nodes": [leaf["subject"], *(s["object"] for s in chain)],
                             "relations": [s["relation"] for s in chain], "forward": [s["forward"] for s in chain]})
        reach = [pattern_reach(index, b) for b in branches]
        answer = engine.index_of(item["answer_id"])
        shared = sorted(set.intersection(*reach) - {answer})
        partial = sorted(reach[0] - set.union(*reach[1:]) - {answer})
        for node, expect in ((partial[:1], True), (shared[:1], False)):
            if not node:
                continue
            for slots in (1, 2):  # the node in one option, or in two (one branch reaching it twice is still one)
                options = [dict(o) for o in item["options"]]
                for slot in [o for o in options if o["node_id"] != item["answer_id"]][:slots]:
                    slot["node_id"], slot["text"] = engine.node_ids[node[0]], index.names[node[0]]
                frame = pl.DataFrame([{**item, "options": options}], schema=items.schema)
                verdicts = verify_items(frame, snapshot, checks=["pattern"])
                assert (verdicts.accepted.height == 1) is expect, (item["id"], expect, slots)
            if not expect:
                assert verdicts.rejected["reasons"][0].to_list() == ["DISTRACTOR_VALID"]
            one_branch += expect
            both += not expect
        if one_branch >= 3 and both >= 3:
            break
    assert one_branch >= 3 and both >= 3


# --- through a model endpoint ---------------------------------------------------------


def plan_responder(change=None):
    """A model that returns the draft question and plan from the prompt, after `change(steps)`."""

    def respond(body):
        text = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        question = re.search(r"^<<question>> (.*)$", text, re.M)[1]
        steps = json.loads(re.search(r"^<<plan>> (.*)$", text, re.M)[1])
        return json.dumps({"question": question, "steps": change(steps) if change else steps})

    return respond


def model_writer(server, tmp: Path):
    return WRITERS.get("openai")(LLMConfig(
        model="test-model", base_url=server.url, cache_path=tmp / "llm_cache.sqlite", backoff_base_s=0.01,
        backoff_max_s=0.05, prices={"test-model": Price(input=1.0, output=2.0)},
    ))  # fmt: skip


def test_writer_openai_writes_dag_plans_with_a_json_schema_then_from_cache(tmp_path, groups, snapshot):
    subset = groups.head(16)
    with LLMServer(responder=plan_responder()) as server:
        result = generate_items(subset, snapshot, writer=model_writer(server, tmp_path), out=tmp_path / "a.parquet", kinds=["dag"])
        calls = server.chat_requests
        formats = [b.get("response_format") for b in server.requests]
        again = generate_items(subset, snapshot, writer=model_writer(server, tmp_path), out=tmp_path / "b.parquet", kinds=["dag"])
        assert server.chat_requests == calls  # all from the reply cache
    assert calls == result.items_new >= 5
    schema = formats[0]["json_schema"]
    assert formats[0]["type"] == "json_schema" and schema["name"] == "WrittenPlan"
    step = schema["schema"]["$defs"]["PlanStepReply"]
    assert set(step["required"]) == {"fact", "depends_on", "text"} and step["additionalProperties"] is False
    items = pl.read_parquet(result.out)
    assert set(items["provenance"].struct.field("prompt_name")) == {"thinking_dag.v1"}
    reference = pl.read_parquet(generate_items(subset, snapshot, writer=WRITERS.get("template")(None),
                                               out=tmp_path / "t.parquet", kinds=["dag"]).out)
    assert sorted(items["thinking"].to_list()) == sorted(reference["thinking"].to_list())
    assert verify_items(items, snapshot).rejected.height == 0
    assert pl.read_parquet(again.out).drop("provenance").equals(items.drop("provenance"))


def test_writer_openai_dag_plans_the_model_breaks_are_caught(tmp_path, groups, snapshot):
    subset = groups.head(10)

    def cite_nothing(steps):  # a step citing a fact the group lacks cannot be given a triple
        return [{**steps[0], "fact": 99}, *steps[1:]]

    def cycle(steps):  # the first leaf depends on the join
        return [{**steps[0], "depends_on": [len(steps)]}, *steps[1:]]

    with LLMServer(responder=plan_responder(cite_nothing)) as server:
        unknown = generate_items(subset, snapshot, writer=model_writer(server, tmp_path), out=tmp_path / "u.parquet", kinds=["dag"])
    assert unknown.items_total == 0 and unknown.rejected.get("plan_unknown_fact", 0) >= 3
    assert set(pl.read_parquet(unknown.failures_path)["reason"]) >= {"plan_unknown_fact"}
    with LLMServer(responder=plan_responder(cycle)) as server:
        cyclic = generate_items(subset, snapshot, writer=model_writer(server, tmp_path / "c"), out=tmp_path / "c.parquet", kinds=["dag"])
    items = pl.read_parquet(cyclic.out)
    assert items.height >= 3
    result = verify_items(items, snapshot)
    assert result.accepted.height == 0 and all("PLAN_CYCLE" in r for r in result.rejected["reasons"].to_list())


# --- registries and codes ----------------------------------------------------------------


def test_kind_mcq_items_have_lettered_options_holding_the_answer_once(tmp_path, groups, snapshot):
    result = generate_items(groups.head(20), snapshot, writer=WRITERS.get("template")(None), out=tmp_path / "i.parquet",
                            kinds=["mcq"], min_options=2)  # fmt: skip
    items = pl.read_parquet(result.out)
    assert items.height >= 5 and set(items["kind"]) == {"mcq"} and ITEM_KINDS.get("mcq").options
    for item in items.iter_rows(named=True):
        labels = [o["label"] for o in item["options"]]
        assert labels == list("ABCD"[: len(labels)]) and [o["node_id"] for o in item["options"]].count(item["answer_id"]) == 1
        assert item["plan"] == []


def test_kind_open_items_come_only_from_paths_not_marked_ambiguous(tmp_path, groups, snapshot):
    marked = groups.head(20).with_columns(pl.Series("unique_answer", [True, False] * 10))
    result = generate_items(marked, snapshot, writer=WRITERS.get("template")(None), out=tmp_path / "i.parquet", kinds=["open"])
    items = pl.read_parquet(result.out)
    assert not ITEM_KINDS.get("open").options and items.height >= 5
    assert set(items["path_id"]) <= set(marked.filter(pl.col("unique_answer"))["path_id"])
    assert all(o == [] for o in items["options"].to_list()) and result.rejected["answer_not_unique"] == 10


def test_every_reason_code_of_every_check_has_a_description():
    load_checks()
    codes = {code for name in CHECKS.names() for code in CHECKS.get(name).codes}
    assert not codes - set(REASON_CODES), f"codes without a description in kgsynth.verify.codes: {codes - set(REASON_CODES)}"
    assert all(len(text) > 20 for text in REASON_CODES.values())


# --- the pipeline ---------------------------------------------------------------------------


DAG_CONFIG = """\
name: hpo-dag
source: {format: hpo}
shatter: {enabled: true, k: 32, seed: 0}
sample: {strategy: convergent, n: 240, hops: 1-2, seed: 0, params: {branches: 3}}
generate: {writer: template, kinds: [dag], seed: 0, batch_size: 7}
export: {seed: 0, formats: [parquet]}
"""


def test_kgsynth_run_with_kinds_dag_makes_verified_dag_items_and_exports_them(tmp_path, hpo_snapshot_dir):
    config = tmp_path / "dag.yaml"
    config.write_text(DAG_CONFIG)
    run_dir = tmp_path / "run"
    done = subprocess.run([*KGSYNTH, "run", str(config), "--out", str(run_dir)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    items = pl.read_parquet(run_dir / "items.parquet")
    summary = json.loads((run_dir / "verified" / "summary.json").read_text())
    assert items.height >= 30 and set(items["kind"]) == {"dag"}
    # batches of 7 paths never cut a group of 3 branches: every item has all three
    assert all(sum(1 for s in p if not s["depends_on"] and s["kind"] == "fact") == 3 for p in items["plan"].to_list())
    assert summary["accepted"] == items.height and summary["rejected"] == 0, summary["by_reason"]
    import datasets

    dag = datasets.load_dataset(str(run_dir / "dataset"), "dag")
    rows = sum(d.num_rows for d in dag.values())
    assert rows == items.height
    row = dag["train"][0]
    assert row["branches"] == 3 and row["plan"][-1]["kind"] == "join" and row["plan_text"].startswith("<Plan>")
    assert row["messages"][1]["content"].startswith("<think>\n<Plan>")
    assert "### Reasoning plans (`dag`)" in (run_dir / "dataset" / "README.md").read_text()
    default = datasets.load_dataset(str(run_dir / "dataset"), "default")["train"][0]
    assert len(default["path_edges"]) == sum(1 for s in default["plan"] if s["kind"] == "fact")
