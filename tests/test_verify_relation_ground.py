"""Grounding's reasoning is read for its relations too (issue 14): by the lexicon, and by the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from llm_server import LLMServer

from kgsynth.graph.snapshot import read_snapshot
from kgsynth.ground.consistency import check_relations
from kgsynth.ground.link import LinkConfig
from kgsynth.ground.llm import ModelSteps
from kgsynth.ground.qa import read_qa
from kgsynth.ground.run import GroundConfig, ground_qa
from kgsynth.llm.config import LLMConfig
from kgsynth.verify import verify_items

DATA = Path(__file__).parent / "data" / "qa_hpo.jsonl"
WRITER = GroundConfig(link=LinkConfig(methods=["dictionary"]), writer="openai", paths_per_question=1)


def rewriter(change):
    """A model that rewrites grounding's draft reasoning with `change` applied to its first sentence,
    and answers relation questions: 'misstates' when the sentence says 'goes against'."""

    def respond(body: dict) -> str:
        user = body["messages"][-1]["content"]
        if "Fact(s) from the graph" in user:
            sentence = re.search(r"^Sentence: (.*)$", user, re.M).group(1)
            return json.dumps({"verdict": "misstates" if "goes against" in sentence else "states", "wording": ""})
        draft = re.search(r"^<<reasoning>> (.*)$", user, re.MULTILINE).group(1)
        first, rest = draft.split(". ", 1)
        return json.dumps({"reasoning": f"{change(first)}. {rest}"})

    return respond


@pytest.mark.parametrize(
    ("key", "change", "status", "reason"),
    [
        ("faithful", lambda s: s, "accepted", None),
        ("negated", lambda s: s.replace(" is a clinical feature of ", " is not a clinical feature of "), "rejected", "RELATION_MISSTATED"),
        ("subtype", lambda s: s.replace(" is a clinical feature of ", " is a subtype of "), "rejected", "RELATION_MISSTATED"),
    ],
)
def test_grounded_reasoning_that_misstates_a_relation_is_rejected(hpo_snapshot_dir, tmp_path, key, change, status, reason):
    record = read_qa(DATA)[0]  # arachnodactyly, ectopia lentis, aortic root aneurysm → Marfan syndrome
    with LLMServer(responder=rewriter(change)) as server:
        ground_qa([record], read_snapshot(hpo_snapshot_dir), tmp_path / key, config=WRITER, llm=LLMConfig(model="local", base_url=server.url))
    outcome = pl.read_parquet(tmp_path / key / "questions.parquet").row(0, named=True)
    assert (outcome["status"], outcome["reason"]) == (status, reason)
    if reason:
        rejected = pl.read_parquet(tmp_path / key / "verified" / "rejected.parquet").row(0, named=True)
        said = next(v["detail"] for v in rejected["verdicts"] if v["code"] == reason)
        assert "is a clinical feature of 'Marfan syndrome'" in said and said.startswith("hop 1: the thinking says")


def test_check_relations_asks_grounding_model_about_unsure_steps_and_counts_it(hpo_snapshot_dir, tmp_path):
    full = read_snapshot(hpo_snapshot_dir)
    record = read_qa(DATA)[0]
    runs = {"against": " goes against ", "along": " goes along with "}
    with LLMServer(responder=rewriter(lambda s: s)) as server:
        for key, verb in runs.items():
            server.responder = rewriter(lambda s, verb=verb: s.replace(" is a clinical feature of ", verb))
            ground_qa([record], full, tmp_path / key, config=WRITER, llm=LLMConfig(model="local", base_url=server.url))
        items = pl.concat([pl.read_parquet(tmp_path / key / "items.parquet").with_columns(pl.lit(key).alias("id")) for key in runs])
        result = verify_items(items, full, checks=["edges", "answer", "thinking"])
        assert result.accepted.height == 2  # the lexicon cannot read either wording: both pass the graph stage
        steps = ModelSteps(LLMConfig(model="local", base_url=server.url, cache_path=tmp_path / "cache.sqlite"))
        checked = check_relations(result, steps, full)
    assert checked.accepted["id"].to_list() == ["along"]
    rejected = checked.rejected.filter(pl.col("id") == "against").row(0, named=True)
    assert rejected["reasons"] == ["RELATION_MISSTATED"]
    assert checked.summary["by_check"]["relation_model"] == {"stage": "llm", "judged": 2, "failed": 1, "codes": {"RELATION_MISSTATED": 1}}
    assert checked.summary["rejected"] == 1 and checked.summary["by_reason"]["RELATION_MISSTATED"] == 1
    usage = steps.summary()["stages"]["ground_relation"]
    assert usage["calls"] == 2  # one unsure step per reasoning, nothing else asked
