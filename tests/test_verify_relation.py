"""Verification reads what each step says about its relation (issue 14): RELATION_MISSTATED.

Items come from the real pipeline over the real HPO graph; the issue's example is
the path Spinocerebellar ataxia 17 → Impaired pursuit initiation and maintenance →
DARS2, whose template thinking says "… is associated with the gene DARS2".
"""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
from hpo_paths import THREE_HOP, TWO_HOP, TWO_HOP_DOWN, make_paths
from llm_server import LLMServer

from kgsynth.errors import ConfigError
from kgsynth.generate import WRITERS, generate_items
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.llm.config import LLMConfig
from kgsynth.sample.paths import PATHS_SCHEMA
from kgsynth.verify import verify_items
from kgsynth.verify.index import graph_index
from kgsynth.verify.lexicon import MISSTATED, STATED, lexicon_of
from kgsynth.verify.text import words

DISEASE, PHENOTYPE, GENE = "Spinocerebellar ataxia 17", "Impaired pursuit initiation and maintenance", "DARS2"


@pytest.fixture(scope="module")
def full(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


@pytest.fixture(scope="module")
def issue_item(full, tmp_path_factory) -> dict:
    """The issue's item, as `kgsynth generate` writes it with the template writer."""
    nodes = full.nodes
    ids = {name: nodes.filter(pl.col("name") == name)["id"][0] for name in (DISEASE, PHENOTYPE, GENE)}
    row = {
        "path_id": "issue14", "nodes": [ids[DISEASE], ids[PHENOTYPE], ids[GENE]],
        "relations": ["has_phenotype", "gene_associated_with_phenotype"], "forward": [True, False], "hops": 2,
        "pattern": "", "strategy": "test", "seed": 0, "negatives": [], "group_id": None, "snapshot": full.hash,
    }
    out = tmp_path_factory.mktemp("issue") / "items.parquet"
    generate_items(pl.DataFrame([row], schema=PATHS_SCHEMA), full, writer=WRITERS.get("template")(None), out=out, kinds=["open"])
    frame = pl.read_parquet(out)
    item = frame.row(0, named=True)
    SCHEMA.update(frame.schema)
    assert item["thinking"] == (
        f"{DISEASE} presents with {PHENOTYPE}. {PHENOTYPE} is associated with the gene {GENE}. So the gene asked for is {GENE}."
    )
    return item


SCHEMA: dict = {}  # the items table's, set by the fixture


def variants(item: dict, thinking: dict[str, str]) -> pl.DataFrame:
    """Copies of the item with other thinking, keyed by id."""
    return pl.DataFrame([{**item, "id": key, "thinking": text} for key, text in thinking.items()], schema=SCHEMA)


def verdicts(result) -> dict[str, list[tuple[str, str]]]:
    """id → failed (check, code) pairs."""
    out = {}
    for row in result.rejected.iter_rows(named=True):
        out[row["id"]] = [(v["check"], v["code"]) for v in row["verdicts"] if not v["passed"]]
    return out


def detail(result, item_id: str, code: str = "RELATION_MISSTATED") -> str:
    row = result.rejected.filter(pl.col("id") == item_id).row(0, named=True)
    return next(v["detail"] for v in row["verdicts"] if v["code"] == code)


def test_the_issues_example_is_rejected_with_the_sentence_quoted(issue_item, full):
    caused = issue_item["thinking"].replace("is associated with the gene", "is caused by the gene")
    frame = variants(issue_item, {"clean": issue_item["thinking"], "caused": caused})
    result = verify_items(frame, full, checks=["edges", "answer", "thinking"])
    assert result.accepted["id"].to_list() == ["clean"]
    assert verdicts(result) == {"caused": [("thinking", "RELATION_MISSTATED")]}
    said = detail(result, "caused")
    assert f'the thinking says "{PHENOTYPE} is caused by the gene {GENE}."' in said
    assert "asserts a causal relation ('caused by')" in said
    assert f"the graph has '{PHENOTYPE}' (hpo:HP:0007668) is associated with the gene '{GENE}'" in said
    assert said.startswith("hop 2:") and "(gene_associated_with_phenotype)" in said
    # relation_check off: the check is what catches it
    assert verify_items(frame, full, checks=["thinking"], relation_check="off").accepted.height == 2


@pytest.mark.parametrize(
    ("key", "step", "why"),
    [
        ("negated", f"{PHENOTYPE} is not associated with the gene {GENE}.", "negates it ('not')"),
        ("contracted", f"{PHENOTYPE} isn't associated with the gene {GENE}.", "negates it ('isn t')"),
        ("lead", f"It is not true that {PHENOTYPE} is associated with the gene {GENE}.", "negates it ('not')"),
        ("trail", f"{PHENOTYPE} and {GENE} are not related.", "negates it ('not')"),
        ("causes", f"{GENE} causes {PHENOTYPE}.", "asserts a causal relation ('causes')"),
        ("taxonomic", f"{PHENOTYPE} is a kind of {GENE}.", "asserts a taxonomic (subtype) relation ('is a kind of')"),
        ("treats", f"{GENE} is used to treat {PHENOTYPE}.", "asserts a therapeutic relation ('used to treat')"),
        ("feature", f"{PHENOTYPE} is a clinical feature of {GENE}.", "asserts a clinical presentation (feature) relation"),
    ],
)
def test_check_thinking_rejects_a_hop_told_as_another_or_no_relation(issue_item, full, key, step, why):
    thinking = issue_item["thinking"].replace(f"{PHENOTYPE} is associated with the gene {GENE}.", step)
    result = verify_items(variants(issue_item, {key: thinking}), full, checks=["thinking"])
    assert verdicts(result) == {key: [("thinking", "RELATION_MISSTATED")]}
    assert why in detail(result, key)


@pytest.mark.parametrize(
    ("key", "first", "second"),
    [
        ("backwards", f"{PHENOTYPE} presents with {DISEASE}.", None),
        ("symptom", f"{DISEASE} is a symptom of {PHENOTYPE}.", None),
        ("absent", f"{DISEASE} does not present with {PHENOTYPE}.", None),
    ],
)
def test_check_thinking_rejects_the_first_hop_backwards_or_negated(issue_item, full, key, first, second):
    thinking = issue_item["thinking"].replace(f"{DISEASE} presents with {PHENOTYPE}.", first)
    result = verify_items(variants(issue_item, {key: thinking}), full, checks=["thinking"])
    assert verdicts(result) == {key: [("thinking", "RELATION_MISSTATED")]}
    assert detail(result, key).startswith("hop 1:")


def test_check_thinking_accepts_paraphrases_and_weaker_wording(issue_item, full):
    paraphrases = {
        "linked": f"{DISEASE} is characterized by {PHENOTYPE}. {PHENOTYPE} has been linked to variants in {GENE}.",
        "feature": f"{PHENOTYPE} is a typical feature of {DISEASE}. {GENE} is associated with {PHENOTYPE}.",
        "patients": f"Patients with {DISEASE} often show {PHENOTYPE}, which is associated with the gene {GENE}.",
        "weaker": f"{DISEASE} is associated with {PHENOTYPE}. {PHENOTYPE} correlates with {GENE}.",
        "unsure": f"{DISEASE}, and with it {PHENOTYPE}. {PHENOTYPE} goes together with the gene {GENE}.",
    }
    conclusion = f" So the gene asked for is {GENE}."
    result = verify_items(variants(issue_item, {k: v + conclusion for k, v in paraphrases.items()}), full, checks=["thinking", "edges", "answer"])
    assert verdicts(result) == {}
    assert result.summary["skipped"]["relation_model"].startswith("relation_check is 'lexicon'")


def test_template_items_over_real_paths_are_never_misstated(full, tmp_path):
    out = tmp_path / "items.parquet"
    paths = make_paths(full, 450, seed=23, patterns=(TWO_HOP, TWO_HOP_DOWN, THREE_HOP), negatives=3)
    generate_items(paths, full, writer=WRITERS.get("template")(None), out=out)
    items = pl.read_parquet(out)
    assert items.height > 700 and set(items["relations"].explode()) == {"has_phenotype", "is_a", "gene_associated_with_phenotype", "gene_associated_with_disease"}
    assert any(False in f for f in items["forward"].to_list())  # hops walked against the stored edge too
    result = verify_items(items, full, checks=["thinking"])
    assert "RELATION_MISSTATED" not in result.summary["by_reason"]
    assert result.summary["by_check"]["thinking"]["failed"] == 0


def test_a_step_off_the_path_is_read_against_every_relation_between_its_entities(issue_item, full):
    index = graph_index(full)
    e = index.engine
    disease = e.index_of(issue_item["nodes"][0])
    span = e.neighbors(disease)
    other = next(
        int(v) for v, r, f in zip(e.indices[span].tolist(), e.rel[span].tolist(), e.forward[span].tolist(), strict=True)
        if r == e.relation_index["has_phenotype"] and f and index.names[int(v)] != PHENOTYPE and int(v) in index.linker.forms
    )
    name = index.names[other]
    frame = variants(issue_item, {
        "also": f"{issue_item['thinking']} {DISEASE} also presents with {name}.",
        "kind": f"{issue_item['thinking']} {DISEASE} is a kind of {name}.",
    })
    result = verify_items(frame, full, checks=["thinking"])
    assert verdicts(result) == {"kind": [("thinking", "RELATION_MISSTATED")]}
    assert detail(result, "kind").startswith("a step off the path:") and f"presents with '{name}'" in detail(result, "kind")


def test_relation_check_takes_lexicon_model_or_off(issue_item, full):
    frame = variants(issue_item, {"x": issue_item["thinking"]})
    with pytest.raises(ConfigError, match="relation_check 'nope' is not one of lexicon, model, off"):
        verify_items(frame, full, relation_check="nope")
    with pytest.raises(ConfigError, match="relation_check 'model' asks the judge model"):
        verify_items(frame, full, relation_check="model")


def test_an_older_snapshots_vocabulary_reads_text_with_the_bundled_terms():
    """A snapshot loaded before the lexicon terms existed carries only forward/inverse wording."""
    from dataclasses import replace

    vocabulary = load_vocabulary("hpo")
    bare = replace(vocabulary, relations={
        n: replace(r, paraphrases=(), inverse_paraphrases=(), families=()) for n, r in vocabulary.relations.items()
    })
    assert not bare.relations["has_phenotype"].families
    lexicon = lexicon_of(bare)
    assert lexicon.entry("has_phenotype").families == {"presentation", "causal"}
    assert lexicon.judge("has_phenotype", True, words("can cause")).verdict == STATED
    renamed = replace(bare, relations={"has_phenotype": replace(bare.relations["has_phenotype"], forward="shows the phenotype")})
    assert lexicon_of(renamed).entry("has_phenotype").families == {"presentation"}  # other wording: not the bundled relation
    assert lexicon_of(renamed).judge("has_phenotype", True, words("can cause")).verdict == MISSTATED


# --- the model check -------------------------------------------------------------------------------


def judge_model(body: dict) -> str:
    """A model: relation questions are answered by the sentence's verb; answer questions by the last sentence."""
    user = body["messages"][-1]["content"]
    if "Fact(s) from the graph" in user:
        sentence = re.search(r"^Sentence: (.*)$", user, re.M).group(1)
        verdict = "misstates" if "opposes" in sentence else "states"
        return json.dumps({"verdict": verdict, "wording": "opposes" if verdict == "misstates" else "goes together with"})
    named = re.search(r"asked for is (.+?)\.\s*(?:Reply|$)", user.split("Reasoning:", 1)[1], re.S).group(1).strip()
    return json.dumps({"answer": named})


def test_check_relation_model_asks_only_about_the_steps_the_lexicon_cannot_read(issue_item, full, tmp_path):
    step = f"{PHENOTYPE} is associated with the gene {GENE}."
    frame = variants(issue_item, {
        "template": issue_item["thinking"],
        "together": issue_item["thinking"].replace(step, f"{PHENOTYPE} goes together with the gene {GENE}."),
        "opposes": issue_item["thinking"].replace(step, f"{PHENOTYPE} opposes the gene {GENE}."),
        "caused": issue_item["thinking"].replace(step, f"{PHENOTYPE} is caused by the gene {GENE}."),
    })
    with LLMServer(responder=judge_model) as server:
        config = LLMConfig(model="judge", base_url=server.url, cache_path=tmp_path / "cache.sqlite", backoff_base_s=0.01)
        result = verify_items(frame, full, checks=["thinking"], llm=config, relation_check="model")
        asked = [r for r in server.requests if "Fact(s) from the graph" in r["messages"][-1]["content"]]
        assert len(asked) == 2  # the two unsure steps; template text and the lexicon's rejection cost nothing
        question = asked[0]["messages"][-1]["content"]
        assert f"{PHENOTYPE} is associated with the gene {GENE} (relation gene_associated_with_phenotype)" in question
        assert DISEASE not in question  # that sentence and that triple only
        assert verdicts(result) == {
            "opposes": [("relation_model", "RELATION_MISSTATED")],
            "caused": [("thinking", "RELATION_MISSTATED")],
        }
        assert "a model says it misstates" in detail(result, "opposes")
        accepted = {row["id"]: {v["check"]: v["detail"] for v in row["verdicts"]} for row in result.accepted.iter_rows(named=True)}
        assert accepted["together"]["relation_model"] == (
            f'the model reads "{PHENOTYPE} goes together with the gene {GENE}." as: states (its wording: \'goes together with\')'
        )
        assert accepted["template"]["relation_model"] == ""
        assert result.summary["by_check"]["relation_model"] == {"stage": "llm", "judged": 3, "failed": 1, "codes": {"RELATION_MISSTATED": 1}}
        assert set(result.summary["usage"]["stages"]) == {"verify", "verify_relation"}
        calls = server.chat_requests
        again = verify_items(frame, full, checks=["thinking"], llm=config, relation_check="model")
        assert server.chat_requests == calls and again.summary["usage"]["stages"]["verify_relation"]["cache_hits"] == 2

        server.fail_next("401")
        failed = verify_items(frame.filter(pl.col("id") == "together"), full, checks=["thinking"], relation_check="model",
                              llm=LLMConfig(model="judge2", base_url=server.url, max_retries=0))
        assert verdicts(failed) == {"together": [("relation_model", "LLM_UNAVAILABLE")]}


def test_the_verify_command_takes_relation_check(issue_item, hpo_snapshot_dir, tmp_path, capsys):
    from test_cli_graph import _run

    misstated = variants(issue_item, {"caused": issue_item["thinking"].replace("is associated with the gene", "is caused by the gene")})
    misstated.write_parquet(tmp_path / "items.parquet")
    common = ["verify", str(tmp_path / "items.parquet"), "--snapshot", str(hpo_snapshot_dir)]
    code, err = _run(capsys, *common, "-o", str(tmp_path / "lexicon"))
    assert code == 0, err
    rejected = pl.read_parquet(tmp_path / "lexicon" / "rejected.parquet")
    assert rejected["reasons"].list.contains("RELATION_MISSTATED").all() and rejected.height == 1
    code, err = _run(capsys, *common, "--relation-check", "off", "-o", str(tmp_path / "off"))
    reasons = pl.read_parquet(tmp_path / "off" / "rejected.parquet")["reasons"].explode().drop_nulls()
    assert code == 0 and "RELATION_MISSTATED" not in reasons.to_list()
    code, err = _run(capsys, *common, "--relation-check", "model", "-o", str(tmp_path / "model"))
    assert code == 2 and "llm" in err.lower() and not (tmp_path / "model").exists()
