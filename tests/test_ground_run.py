"""Grounding end to end on the real HPO graph: paths, reasoning, verification, coverage, outputs, CLI."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import polars as pl
import pytest

from kgsynth.graph.snapshot import build_snapshot, read_snapshot, write_snapshot
from kgsynth.ground.link import LinkConfig
from kgsynth.ground.qa import QARecord, read_qa
from kgsynth.ground.run import MEDREASON_COLUMNS, GroundConfig, ground_qa

sys.path.insert(0, str(Path(__file__).parent))

DATA = Path(__file__).parent / "data" / "qa_hpo.jsonl"
OFFLINE = GroundConfig(link=LinkConfig(methods=["dictionary"]))


@pytest.fixture(scope="module")
def grounded(hpo_snapshot_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ground") / "run"
    ground_qa(read_qa(DATA), read_snapshot(hpo_snapshot_dir), out, config=OFFLINE)
    return out


def test_coverage_counts_every_question_once_with_its_reason(grounded: Path):
    report = json.loads((grounded / "coverage.json").read_text())
    assert report["questions"] == 10
    funnel = {row["stage"]: row["questions"] for row in report["funnel"]}
    assert funnel == {"question_entity": 9, "answer": 8, "path": 8, "reasoning": 8, "verified": 8}
    assert report["losses"] == {"question_entity": {"no_question_entity": 1}, "answer": {"answer_not_linked": 1}}
    outcomes = pl.read_parquet(grounded / "questions.parquet")
    lost = {row["id_in_dataset"]: row["reason"] for row in outcomes.filter(pl.col("status") == "lost").iter_rows(named=True)}
    assert lost == {"q8": "no_question_entity", "q9": "answer_not_linked"}
    assert outcomes.filter(pl.col("status") == "accepted").height == 8
    assert "| had a verified reasoning | 8 | 80.0% |" in (grounded / "coverage.md").read_text()


def test_grounded_rows_are_medreason_compatible_and_follow_true_directions(grounded: Path, hpo_snapshot_dir: Path):
    rows = [json.loads(line) for line in (grounded / "grounded.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(set(MEDREASON_COLUMNS) <= set(row) for row in rows)
    by_id = {row["id_in_dataset"]: row for row in rows}
    q1 = by_id["q1"]
    assert q1["dataset_name"] == "qa_hpo" and q1["answer"] == "Marfan syndrome"
    assert q1["options"].startswith("Answer Choices:\nA. Marfan syndrome\nB. Cystic fibrosis")
    assert q1["reasoning"].endswith("So the disease asked for is Marfan syndrome.")
    assert "is a clinical feature of Marfan syndrome." in q1["reasoning"]  # relation label, phenotype → disease read backwards
    assert by_id["q2"]["reasoning"].endswith("So the gene asked for is FBN1.")

    edges = read_snapshot(hpo_snapshot_dir).edges
    stored = set(zip(edges["src"].to_list(), edges["relation"].to_list(), edges["dst"].to_list(), strict=True))
    for row in rows:
        assert 1 <= len(row["paths"]) <= 3
        for path in row["paths"]:
            assert len(path["relations"]) <= 3 and path["nodes"][-1] == row["answer_id"]
            for i, (rel, fwd) in enumerate(zip(path["relations"], path["forward"], strict=True)):
                a, b = path["nodes"][i], path["nodes"][i + 1]
                assert ((a, rel, b) if fwd else (b, rel, a)) in stored
        assert {e["method"] for e in row["entities"]} == {"dictionary"}
        assert all(v["passed"] for v in row["verdicts"])


def test_the_run_directory_is_what_export_reads(grounded: Path):
    from kgsynth.export.inputs import read_run
    from kgsynth.generate.item import frame_to_items

    inputs = read_run(grounded)
    assert inputs.accepted.height == 8 and inputs.generated == 8
    items = {item.question: item for item in frame_to_items(inputs.accepted)}
    q2 = next(item for q, item in items.items() if q.startswith("Mutations in which gene"))
    assert q2.kind == "mcq" and q2.answer_label == "B" and q2.answer_id == "hpo:NCBIGene:2200"
    assert [o.node_id for o in q2.options][1] == "hpo:NCBIGene:2200"
    open_item = next(item for q, item in items.items() if "phenylketonuria" in q)
    assert open_item.kind == "open" and open_item.answer_id == "hpo:HP:0001249"
    links = pl.read_parquet(grounded / "links.parquet")
    assert {"dictionary"} == set(links["method"].to_list())
    assert set(links["role"].to_list()) == {"question", "answer", "option"}


def test_paths_within_the_hop_cap_and_on_the_pruned_graph(hpo_snapshot_dir: Path, tmp_path: Path):
    full = read_snapshot(hpo_snapshot_dir)
    chorea_cftr = QARecord(dataset_name="t", id_in_dataset="far", question="Which gene is linked to chorea?",
                           answer="CFTR", options=[], row=1)
    records = [*read_qa(DATA)[6:7], chorea_cftr]  # q7: phenylketonuria → intellectual disability
    result = ground_qa(records, full, tmp_path / "one", config=OFFLINE.model_copy(update={"max_hops": 1}))
    assert result.coverage["losses"] == {"path": {"no_path_within_hops": 1}}

    # what pruning does: a hub removed from the graph paths are searched on (verification keeps the full graph)
    nodes = full.nodes.filter(pl.col("id") != "hpo:HP:0001249")
    edges = full.edges.filter((pl.col("src") != "hpo:HP:0001249") & (pl.col("dst") != "hpo:HP:0001249"))
    pruned = build_snapshot(nodes, edges, vocabulary=full.vocabulary, name="pruned", loader="test",
                            parent={"hash": full.hash, "params_hash": "test"})
    write_snapshot(pruned, tmp_path / "pruned")
    result = ground_qa(records[:1], full, tmp_path / "two", config=OFFLINE, sampled=read_snapshot(tmp_path / "pruned"))
    assert result.coverage["losses"] == {"path": {"entity_pruned": 1}}
    outcome = pl.read_parquet(tmp_path / "two" / "questions.parquet").row(0, named=True)
    assert "hpo:HP:0001249" in outcome["detail"]


def _llm_responder(mode: str):
    """A model that rewrites the draft faithfully, skips its first step, or invents one."""

    def respond(body: dict) -> str:
        user = body["messages"][-1]["content"]
        draft = re.search(r"^<<reasoning>> (.*)$", user, re.MULTILINE).group(1)
        sentences = re.split(r"(?<=\.) ", draft)
        if mode == "skip":
            sentences = sentences[1:]
        elif mode == "invent":
            sentences.insert(1, "Arachnodactyly is a clinical feature of Cystic fibrosis.")
        return json.dumps({"reasoning": " ".join(sentences)})

    return respond


@pytest.mark.parametrize(("mode", "code"), [("faithful", None), ("skip", "MISSING_STEP"), ("invent", "HALLUCINATED_STEP")])
def test_model_reasoning_is_verified_step_by_step(hpo_snapshot_dir: Path, tmp_path: Path, mode: str, code: str | None):
    from llm_server import LLMServer

    from kgsynth.llm.config import LLMConfig

    record = read_qa(DATA)[0]  # arachnodactyly, ectopia lentis, aortic root aneurysm → Marfan syndrome
    config = OFFLINE.model_copy(update={"writer": "openai", "paths_per_question": 1})
    with LLMServer(responder=_llm_responder(mode)) as server:
        result = ground_qa([record], read_snapshot(hpo_snapshot_dir), tmp_path / mode, config=config,
                           llm=LLMConfig(model="local", base_url=server.url))
    outcome = pl.read_parquet(tmp_path / mode / "questions.parquet").row(0, named=True)
    assert outcome["reason"] == code
    assert outcome["status"] == ("accepted" if code is None else "rejected")
    item = pl.read_parquet(tmp_path / mode / "items.parquet").row(0, named=True)
    assert item["provenance"]["writer"] == "openai" and item["provenance"]["prompt_name"] == "ground_reasoning.v1"
    assert result.summary["model_usage"]["stages"]["ground_write"]["calls"] == 1


@pytest.mark.parametrize(("said", "status"), [("A", "accepted"), ("B", "rejected")])
def test_answer_consistency_asks_the_model_to_answer_from_the_reasoning(hpo_snapshot_dir: Path, tmp_path: Path, said: str, status: str):
    from llm_server import LLMServer

    from kgsynth.llm.config import LLMConfig

    asked = []

    def respond(body: dict) -> str:
        asked.append(body["messages"][-1]["content"])
        return json.dumps({"answer": said})

    record = read_qa(DATA)[0]  # gold answer: A. Marfan syndrome
    with LLMServer(responder=respond) as server:
        ground_qa([record], read_snapshot(hpo_snapshot_dir), tmp_path / said, config=OFFLINE.model_copy(update={"consistency": True}),
                  llm=LLMConfig(model="local", base_url=server.url))
    outcome = pl.read_parquet(tmp_path / said / "questions.parquet").row(0, named=True)
    assert outcome["status"] == status and outcome["reason"] == (None if said == "A" else "ANSWER_INCONSISTENT")
    assert len(asked) == 1 and "So the disease asked for is Marfan syndrome." in asked[0]


def test_cli_grounds_offline_and_rejects_bad_input(hpo_snapshot_dir: Path, tmp_path: Path):
    from kgsynth.cli import main

    out = tmp_path / "cli"
    main(["ground", str(DATA), "--snapshot", str(hpo_snapshot_dir), "--out", str(out), "--link", "dictionary", "--limit", "3"])
    assert json.loads((out / "ground.json").read_text())["accepted"] == 3
    main(["export", str(out), "--format", "jsonl"])
    assert list((out / "dataset").rglob("*.jsonl"))

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Which gene?", "options": {"A": "FBN1"}, "answer": "Z"}\n')
    with pytest.raises(SystemExit) as exited:
        main(["ground", str(bad), "--snapshot", str(hpo_snapshot_dir), "--out", str(tmp_path / "bad"), "--link", "dictionary"])
    assert exited.value.code == 2 and not (tmp_path / "bad").exists()

    # the relation reading: off still grounds; model needs a model; a wrong word is one line
    main(["ground", str(DATA), "--snapshot", str(hpo_snapshot_dir), "--out", str(tmp_path / "off"), "--link", "dictionary",
          "--limit", "3", "--relation-check", "off"])
    assert json.loads((tmp_path / "off" / "ground.json").read_text())["accepted"] == 3
    for value in ("model", "bogus"):
        with pytest.raises(SystemExit) as exited:
            main(["ground", str(DATA), "--snapshot", str(hpo_snapshot_dir), "--out", str(tmp_path / value), "--link", "dictionary",
                  "--relation-check", value])
        assert exited.value.code == 2 and not (tmp_path / value).exists()


def _write_and_answer(body: dict) -> str:
    """A model that rewrites the draft faithfully and, asked to answer, names what the reasoning concludes."""
    user = body["messages"][-1]["content"]
    if "<<reasoning>>" in user:
        return _llm_responder("faithful")(body)
    return json.dumps({"answer": re.search(r"asked for is (.*)\.\n", user).group(1)})


def test_every_model_call_is_counted_in_usage_and_priced(hpo_snapshot_dir: Path, tmp_path: Path):
    from llm_server import LLMServer, _text_tokens

    from kgsynth.llm.config import LLMConfig, Price

    replies = []

    def respond(body: dict) -> str:
        replies.append(_write_and_answer(body))
        return replies[-1]

    config = OFFLINE.model_copy(update={"writer": "openai", "consistency": True, "paths_per_question": 1})
    with LLMServer(responder=respond) as server:
        result = ground_qa(read_qa(DATA), read_snapshot(hpo_snapshot_dir), tmp_path / "run", config=config,
                           llm=LLMConfig(model="local", base_url=server.url, prices={"local": Price(input=1.0, output=2.0)}))
        sent = list(server.requests)
    usage = json.loads((tmp_path / "run" / "ground.json").read_text())["model_usage"]
    asked = [body for body in sent if "<<reasoning>>" not in body["messages"][-1]["content"]]
    assert len(sent) == 16 and len(asked) == 8  # 8 reasonings written, then each answered from the reasoning alone
    assert usage["total"]["requests"] == len(sent) and usage["total"]["calls"] == len(sent)
    assert usage["stages"]["ground_consistency"]["requests"] == len(asked)
    prompt_tokens = sum(_text_tokens("".join(m["content"] for m in body["messages"])) for body in sent)
    completion_tokens = sum(_text_tokens(text) for text in replies)
    assert (usage["total"]["prompt_tokens"], usage["total"]["completion_tokens"]) == (prompt_tokens, completion_tokens)
    assert usage["total"]["cost_usd"] == pytest.approx((prompt_tokens * 1.0 + completion_tokens * 2.0) / 1e6)
    assert result.stopped is None and result.accepted == 8

    summary = json.loads((tmp_path / "run" / "verified" / "summary.json").read_text())
    assert summary["by_check"]["llm_consistency"] == {"stage": "llm", "judged": 8, "failed": 0, "codes": {}}
    assert "llm_consistency" in summary["checks"] and "llm_consistency" not in summary["skipped"]
    accepted = pl.read_parquet(tmp_path / "run" / "verified" / "accepted.parquet")
    assert all(v[-1] == {"check": "llm_consistency", "passed": True, "code": None, "detail": None} for v in accepted["verdicts"].to_list())


def test_a_budget_stop_during_consistency_is_reported_and_nothing_is_lost(hpo_snapshot_dir: Path, tmp_path: Path):
    from llm_server import LLMServer

    from kgsynth.cli import main

    out = tmp_path / "budget"
    # each call reserves its worst case (1,024 completion tokens at $1/1M) before any reply: two fit in $0.0025
    with LLMServer(responder=_write_and_answer) as server, pytest.raises(SystemExit) as exited:
        main(["ground", str(DATA), "--snapshot", str(hpo_snapshot_dir), "--out", str(out), "--link", "dictionary",
              "--consistency", "--model", "local", "--base-url", server.url, "--price", "local=0,1", "--budget-usd", "0.0025"])
    assert exited.value.code == 3
    ground = json.loads((out / "ground.json").read_text())
    usage = ground["model_usage"]
    assert ground["stopped"] == "budget" and usage["budget_reached"]
    assert usage["total"]["requests"] == server.chat_requests == 2
    assert usage["failures"] == {"consistency:budget": 6}

    outcomes = pl.read_parquet(out / "questions.parquet")
    assert outcomes.filter(pl.col("status") == "accepted").height == 2
    refused = outcomes.filter(pl.col("reason") == "LLM_UNAVAILABLE")
    assert refused.height == 6 and all("budget" in d for d in refused["detail"].to_list())
    summary = json.loads((out / "verified" / "summary.json").read_text())
    assert (summary["accepted"], summary["rejected"], summary["by_reason"]) == (2, 6, {"LLM_UNAVAILABLE": 6})


def test_a_budget_stop_while_writing_loses_the_unwritten_questions_with_a_reason(hpo_snapshot_dir: Path, tmp_path: Path):
    from llm_server import LLMServer

    from kgsynth.llm.config import LLMConfig, Price

    config = OFFLINE.model_copy(update={"writer": "openai"})
    with LLMServer(responder=_write_and_answer) as server:
        result = ground_qa(read_qa(DATA), read_snapshot(hpo_snapshot_dir), tmp_path / "run", config=config,
                           llm=LLMConfig(model="local", base_url=server.url, prices={"local": Price(input=0, output=1)}, budget_usd=0.0025))
    assert result.stopped == "budget" and result.summary["model_usage"]["total"]["requests"] == server.chat_requests == 2
    assert result.coverage["losses"]["reasoning"] == {"budget_reached": 6} and result.accepted == 2


def test_export_adds_the_medreason_configuration(grounded: Path, tmp_path: Path):
    from datasets import load_dataset

    from kgsynth.cli import main

    main(["export", str(grounded), "--out", str(tmp_path / "dataset"), "--format", "parquet"])
    medreason = load_dataset(str(tmp_path / "dataset"), "medreason")
    default = load_dataset(str(tmp_path / "dataset"), "default")
    assert all(columns == list(MEDREASON_COLUMNS) for columns in medreason.column_names.values())
    assert sum(d.num_rows for d in medreason.values()) == 8  # every verified question, in the split of its item
    assert {s: d.num_rows for s, d in medreason.items()} == {s: d.num_rows for s, d in default.items()}
    rows = {row["id_in_dataset"]: row for d in medreason.values() for row in d}
    jsonl = {row["id_in_dataset"]: row for row in map(json.loads, (grounded / "grounded.jsonl").read_text().splitlines())}
    assert rows == {key: {c: row[c] for c in MEDREASON_COLUMNS} for key, row in jsonl.items()}
