"""The stages after the graph checks (model, decontamination, dedup), outputs and the CLI."""

from __future__ import annotations

import json
import re
import shutil

import polars as pl
import pytest
from hpo_paths import make_paths
from llm_server import LLMServer, _text_tokens

from kgsynth.cli import main
from kgsynth.errors import ConfigError, InputFormatError
from kgsynth.generate import WRITERS, generate_items
from kgsynth.generate.item import frame_to_items
from kgsynth.graph.snapshot import build_snapshot, read_snapshot
from kgsynth.llm.config import LLMConfig
from kgsynth.verify import DedupConfig, verify_items, write_verified


@pytest.fixture(scope="module")
def full(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


@pytest.fixture(scope="module")
def items(full, tmp_path_factory):
    out = tmp_path_factory.mktemp("items") / "items.parquet"
    generate_items(make_paths(full, 24, seed=5), full, writer=WRITERS.get("template")(None), out=out, kinds=["mcq"])
    return pl.read_parquet(out)


def reasons_by_id(result) -> dict[str, list[str]]:
    return dict(zip(result.rejected["id"].to_list(), result.rejected["reasons"].to_list(), strict=True))


# --- model check ---------------------------------------------------------------------


def reader(body: dict) -> str:
    """A 'model' that answers from the reasoning alone: the entity its last sentence names."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    reasoning = user.split("Reasoning:", 1)[1]
    named = re.search(r"asked for is (.+?)\.\s*(?:Reply|$)", reasoning, re.S).group(1).strip()
    options = dict((text, label) for label, text in re.findall(r"^([A-Z])\. (.+)$", user, re.M))
    return json.dumps({"answer": options.get(named, named)})


def test_check_llm_consistency_rejects_thinking_that_leads_elsewhere(items, full, tmp_path):
    good = items.row(0, named=True)
    other = next(o for o in good["options"] if o["node_id"] != good["answer_id"])
    elsewhere = {**good, "id": "elsewhere", "thinking": good["thinking"].rsplit("So the", 1)[0] + f"So the phenotype asked for is {other['text']}."}
    frame = pl.concat([items.head(3), pl.DataFrame([elsewhere], schema=items.schema)])
    with LLMServer(responder=reader) as server:
        config = LLMConfig(model="judge", base_url=server.url, cache_path=tmp_path / "cache.sqlite", backoff_base_s=0.01)
        result = verify_items(frame, full, llm=config)
        assert server.chat_requests == 4
        assert reasons_by_id(result) == {"elsewhere": ["ANSWER_INCONSISTENT"]}
        assert result.summary["by_stage"]["llm"] == 1 and result.accepted.height == 3
        # what the model cost is in the summary, counted as the server saw it
        usage = result.summary["usage"]["total"]
        assert usage["calls"] == usage["requests"] == server.chat_requests == 4
        assert usage["prompt_tokens"] == sum(_text_tokens("".join(m["content"] for m in r["messages"])) for r in server.requests)
        again = verify_items(frame, full, llm=config).summary["usage"]["total"]
        assert (again["calls"], again["cache_hits"], server.chat_requests) == (0, 4, 4)
        sent = json.dumps(server.requests)
        assert good["answer_label"] + ". " in sent  # options are shown …
        assert "answer_label" not in sent  # … the gold answer is not
        # graph rejections are never paid for
        broken = {**good, "id": "broken", "answer_id": other["node_id"]}
        verify_items(pl.DataFrame([broken], schema=items.schema), full, llm=config)
        assert server.chat_requests == 4


def test_llm_failures_reject_the_item_for_a_rerun(items, full, tmp_path):
    with LLMServer(responder=reader) as server:
        server.fail_next("401")
        config = LLMConfig(model="judge", base_url=server.url, max_retries=0)
        result = verify_items(items.head(1), full, llm=config)
    assert result.rejected["reasons"].to_list() == [["LLM_UNAVAILABLE"]]


# --- decontamination -----------------------------------------------------------------


def test_check_decontamination_reports_the_benchmark_record(items, full, tmp_path):
    leaked = items.row(1, named=True)["question"]
    words = leaked.split()
    bench = tmp_path / "medqa.jsonl"
    bench.write_text(
        json.dumps({"question": "A 45-year-old man presents with chest pain. What is the diagnosis?"}) + "\n"
        + json.dumps({"question": "Consider this: " + " ".join(words[2:12]) + " and more."}) + "\n"
    )
    lines = tmp_path / "other.txt"
    lines.write_text("nothing in common here\n")
    result = verify_items(items, full, benchmarks=[bench, lines])
    contaminated = result.rejected.filter(pl.col("reasons").list.contains("CONTAMINATED"))
    assert items.row(1, named=True)["id"] in contaminated["id"].to_list()
    detail = next(v["detail"] for v in contaminated.row(0, named=True)["verdicts"] if v["code"] == "CONTAMINATED")
    assert "medqa.jsonl record 2" in detail
    assert result.summary["by_stage"]["decontamination"] == contaminated.height


def test_benchmark_files_are_read_in_many_formats_and_bad_ones_named(tmp_path):
    from kgsynth.verify.decontam import read_benchmark

    (tmp_path / "a.csv").write_text("id,question\n1,What gene causes it?\n")
    pl.DataFrame({"prompt": ["Which drug treats it?"]}).write_parquet(tmp_path / "b.parquet")
    (tmp_path / "c.json").write_text(json.dumps({"data": [{"query": "Is it inherited?"}]}))
    assert read_benchmark(tmp_path / "a.csv") == [(2, "What gene causes it?")]
    assert read_benchmark(tmp_path / "b.parquet") == [(1, "Which drug treats it?")]
    assert read_benchmark(tmp_path / "c.json") == [(1, "Is it inherited?")]
    (tmp_path / "d.jsonl").write_text('{"question": "ok"}\n{"answer": "no question"}\n')
    with pytest.raises(InputFormatError, match=r"d.jsonl, line 2: record 2 has no question field"):
        read_benchmark(tmp_path / "d.jsonl")


# --- dedup ---------------------------------------------------------------------------


def dedup_cases(items):
    a, b = items.row(0, named=True), items.row(1, named=True)
    copy = {**a, "id": "copy", "question": a["question"].upper() + "!!"}
    reworded = {**b, "id": "reworded", "question": "In other words: " + b["question"]}
    return a, b, pl.concat([items, pl.DataFrame([copy, reworded], schema=items.schema)])


def test_check_dedup_exact_keeps_the_first_of_equal_texts(items, full):
    a, _, frame = dedup_cases(items)
    result = verify_items(frame, full, dedup=DedupConfig(near=False, path=False))
    assert reasons_by_id(result) == {"copy": ["DUPLICATE_EXACT"]}
    assert a["id"] in result.accepted["id"].to_list()


def test_check_dedup_path_catches_the_same_triples_reworded(items, full):
    a, b, frame = dedup_cases(items)
    result = verify_items(frame, full, dedup=DedupConfig(near=False))
    reasons = reasons_by_id(result)
    assert reasons == {"copy": ["DUPLICATE_EXACT"], "reworded": ["DUPLICATE_PATH"]}
    assert result.summary["by_stage"]["dedup"] == 2
    open_twin = {**b, "id": "open-twin", "kind": "open", "options": [], "answer_label": None}
    result = verify_items(pl.concat([frame, pl.DataFrame([open_twin], schema=items.schema)]), full, dedup=DedupConfig(near=False), checks=["edges"])
    assert "open-twin" not in reasons_by_id(result)  # another kind of question on the same path is kept


def test_check_dedup_near_uses_sentence_embeddings_offline(items, full, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a, b = items.row(0, named=True), items.row(1, named=True)
    near = {**a, "id": "near", "question": a["question"].replace("Which", "What", 1), "nodes": b["nodes"], "relations": b["relations"], "forward": b["forward"]}
    near.update({k: b[k] for k in ("node_names", "node_types", "anchor_id", "answer_id", "answer", "answer_type", "answer_label", "options", "bridges", "negatives", "thinking", "hops")})
    frame = pl.DataFrame([a, near], schema=items.schema)
    result = verify_items(frame, full, dedup=DedupConfig(threshold=0.95), checks=["edges"])
    assert reasons_by_id(result) == {"near": ["DUPLICATE_NEAR"]}
    detail = result.rejected.row(0, named=True)["verdicts"][-1]["detail"]
    assert a["id"] in detail and "cosine" in detail


# --- outputs, inputs, CLI --------------------------------------------------------------


def test_write_verified_writes_three_files_atomically(items, full, tmp_path):
    broken = {**items.row(0, named=True), "id": "broken", "answer_type": "gene"}
    result = verify_items(frame_to_items(pl.concat([items, pl.DataFrame([broken], schema=items.schema)])), full)
    out = write_verified(result, tmp_path / "verified")
    accepted = pl.read_parquet(out / "accepted.parquet")
    rejected = pl.read_parquet(out / "rejected.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert accepted.height == items.height and rejected["id"].to_list() == ["broken"]
    assert rejected["reasons"].to_list() == [["TYPE_MISMATCH"]]
    assert summary["by_reason"] == {"TYPE_MISMATCH": 1} and summary["by_stage"]["graph"] == 1
    assert summary["by_check"]["answer"] == {"stage": "graph", "judged": items.height + 1, "failed": 1, "codes": {"TYPE_MISMATCH": 1}}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    from kgsynth.export.inputs import read_run  # the export room reads what we wrote

    assert read_run(tmp_path).accepted.height == items.height


def test_pruned_snapshots_are_refused(full, items):
    pruned = build_snapshot(
        full.nodes, full.edges.head(1000), vocabulary=full.vocabulary, name="pruned", loader="hpo",
        parent={"hash": full.hash, "removed": 3},
    )
    with pytest.raises(ConfigError, match="full, unpruned"):
        verify_items(items, pruned)


def test_cli_verify_run_directory(items, full, hpo_snapshot_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    items.write_parquet(run / "items.parquet")
    shutil.copytree(hpo_snapshot_dir, run / "snapshot")
    (run / "pruned").mkdir()
    (run / "pruned" / "hubs.json").write_text(json.dumps({"removed": [{"id": "hpo:HP:0000007"}]}))
    main(["verify", str(run)])
    summary = json.loads((run / "verified" / "summary.json").read_text())
    assert summary["items"] == items.height and "shortcut" in summary["checks"]
    err = capsys.readouterr().err
    assert "accepted" in err and str(run / "verified") in err.replace("\n", "")
    with pytest.raises(SystemExit) as done:
        main(["verify", str(run / "nope.parquet"), "--snapshot", str(run / "snapshot")])
    assert done.value.code == 2 and "no such items file" in capsys.readouterr().err


def test_missing_columns_are_named(full):
    with pytest.raises(InputFormatError, match="lacks column"):
        verify_items(pl.DataFrame({"id": ["x"]}), full)
