"""Generation on the real HPO graph: template items, items through a local model endpoint, resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from hpo_paths import make_paths
from llm_server import LLMServer, echo_responder

from kgsynth.errors import ConfigError, SnapshotError
from kgsynth.generate import WRITERS, generate_items
from kgsynth.generate.item import frame_to_items
from kgsynth.generate.masking import mentions, question_problem
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.llm import LLMConfig, Price
from kgsynth.sample.paths import write_paths


@pytest.fixture(scope="module")
def snapshot(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


@pytest.fixture(scope="module")
def paths(snapshot):
    return make_paths(snapshot, 60, seed=3)


def template(tmp: Path, paths, snapshot, **kw):
    return generate_items(paths, snapshot, writer=WRITERS.get("template")(None), out=tmp / "items.parquet", **kw)


def model_writer(server: LLMServer, tmp: Path, **changes):
    values = dict(
        model="test-model", base_url=server.url, cache_path=tmp / "llm_cache.sqlite", backoff_base_s=0.01,
        backoff_max_s=0.05, prices={"test-model": Price(input=1.0, output=2.0)},
    )
    values.update(changes)
    return WRITERS.get("openai")(LLMConfig(**values))


def ordered(text: str, names: list[str]) -> bool:
    """Every name appears, in this order."""
    at = 0
    for name in names:
        found = text.find(name, at)
        if found < 0:
            return False
        at = found + len(name)
    return True


def test_template_items_pass_the_graph_checks(tmp_path, paths, snapshot):
    result = template(tmp_path, paths, snapshot)
    frame = pl.read_parquet(result.out)
    items = frame_to_items(frame)  # the items table is valid against the Item contract
    assert result.items_new == len(items) == result.items_total > 80
    assert frame["id"].n_unique() == frame.height
    names = dict(zip(snapshot.nodes["id"].to_list(), snapshot.nodes["name"].to_list(), strict=True))
    for item in items:
        assert item.node_names == [names[n] for n in item.nodes]
        assert ordered(item.thinking, item.node_names)
        sentences = [s for s in re.split(r"(?<=\.) ", item.thinking)]
        for i in range(item.hops):  # one hop per sentence, both ends named in it
            assert item.node_names[i] in sentences[i] and item.node_names[i + 1] in sentences[i]
        assert question_problem(item.question, [item.node_names[0]], [[n] for n in item.node_names[1:-1]],
                                [item.answer]) is None
        assert item.answer_id == item.nodes[-1] and item.answer == item.node_names[-1]
        assert item.bridges == item.nodes[1:-1] and item.anchor_id == item.nodes[0]
        assert item.provenance.snapshot_hash == snapshot.hash and item.provenance.writer == "template"
        assert item.provenance.prompt_name == "template.v1"
        if item.kind == "mcq":
            assert len(item.options) == 4
            by_label = {o.label: o.node_id for o in item.options}
            assert by_label[item.answer_label] == item.answer_id
            assert sorted(by_label.values()) == sorted([item.answer_id, *item.negatives])
            path_negatives = paths.filter(pl.col("path_id") == item.path_id)["negatives"][0].to_list()
            assert set(item.negatives) <= set(path_negatives)  # distractors are graph negatives only
        else:
            assert item.options == [] and item.answer_label is None
    # reverse hops are worded with the inverse phrase
    down = [i for i in items if i.relations == ["has_phenotype", "is_a"] and i.forward == [True, False]]
    assert down and all(f"{i.node_names[1]} has as a subtype {i.node_names[2]}." in i.thinking for i in down)
    assert {i.hops for i in items} == {2, 3}
    stats = json.loads(result.stats_path.read_text())
    assert stats["items_total"] == len(items) and stats["writer"] == "template"
    rejected = pl.read_parquet(result.failures_path)
    assert rejected.height == sum(result.rejected.values())
    assert set(rejected["reason"]) <= {"anchor_names_bridge", "anchor_names_answer", "too_few_negatives"}


@pytest.mark.parametrize("source", ["hpo_paths", "walk", "rare-chain", "convergent"])
def test_template_items_pass_verification_text_and_graph_checks(tmp_path, paths, snapshot, source):
    from kgsynth.graph.engine import open_engine
    from kgsynth.sample import sample_paths
    from kgsynth.verify import verify_items

    if source != "hpo_paths":  # the sampling room's own samplers
        paths = sample_paths(open_engine(snapshot), source, n=60, seed=1)
    items = pl.read_parquet(template(tmp_path, paths, snapshot, min_options=2).out)
    assert items.height > 20  # sampled paths marked unique_answer false make no open item
    result = verify_items(items, snapshot, checks=["edges", "answer", "leak", "thinking"])
    assert result.rejected.height == 0, result.summary["by_reason"]
    assert result.accepted.height == items.height


def test_mcq_items_have_the_options_asked_for_unless_fewer_are_allowed(tmp_path, paths, snapshot):
    # paths with one, two and all of their hard negatives
    keep = pl.int_range(pl.len()) % 3 + 1
    paths = paths.with_columns(pl.when(keep < 3).then(pl.col("negatives").list.head(keep)).otherwise(pl.col("negatives")))
    strict = template(tmp_path / "strict", paths, snapshot, kinds=["mcq"])
    items = pl.read_parquet(strict.out)
    assert items.height > 0 and (items["options"].list.len() == 4).all()
    failures = pl.read_parquet(strict.failures_path).filter(pl.col("reason") == "too_few_negatives")
    assert failures.height == strict.rejected["too_few_negatives"] > 0
    assert failures["error"].str.contains("4 options need 3").all()

    loose = template(tmp_path / "loose", paths, snapshot, kinds=["mcq"], min_options=2)
    more = pl.read_parquet(loose.out)
    assert more.height > items.height and set(more["options"].list.len().to_list()) <= {2, 3, 4}
    assert (more["options"].list.len() < 4).any()
    assert set(items["id"]) <= set(more["id"])  # the same four-option items, plus the shorter ones
    with pytest.raises(ConfigError, match="min_options"):
        template(tmp_path / "bad", paths, snapshot, n_options=3, min_options=4)


def test_anchor_that_contains_a_bridge_name_is_skipped_with_a_reason(tmp_path, snapshot):
    ids = dict(zip(snapshot.nodes["name"].to_list(), snapshot.nodes["id"].to_list(), strict=True))
    seizure, focal = ids["Seizure"], ids["Focal-onset seizure"]
    # phenotype-anchored paths: "Focal-onset seizure" is a kind of "Seizure" (leaks), and the reverse (fine)
    leaking = {"path_id": "leak", "nodes": [focal, seizure], "relations": ["is_a"], "forward": [True]}
    fine = {"path_id": "fine", "nodes": [seizure, focal], "relations": ["is_a"], "forward": [False]}
    table = pl.DataFrame(
        [{**p, "strategy": "hand", "seed": 0, "snapshot": snapshot.hash, "negatives": [ids["Ataxia"]]} for p in (leaking, fine)]
    )
    result = template(tmp_path, table, snapshot, kinds=["open"])
    assert result.items_new == 1 and result.rejected == {"anchor_names_answer": 1}
    item = pl.read_parquet(result.out).row(0, named=True)
    assert item["path_id"] == "fine" and item["question"] == "Which phenotype is a kind of Seizure? Give its name."
    assert mentions("FOCAL-onset, seizure!", ["Focal onset seizure"]) and not mentions("Seizures", ["Seizure"])


def test_paths_with_indistinct_or_common_word_names_are_skipped(tmp_path, snapshot):
    ids = dict(zip(snapshot.nodes["name"].to_list(), snapshot.nodes["id"].to_list(), strict=True))
    hand = [
        # the phenotype and the disease are both called "Pilonidal sinus"
        ("same", ["hpo:HP:0010769", "hpo:OMIM:173000"], ["has_phenotype"], [False]),
        # the gene WAS is named by a common word
        ("word", [ids["Fever"], "hpo:NCBIGene:7454"], ["gene_associated_with_phenotype"], [False]),
    ]
    table = pl.DataFrame([
        {"path_id": p, "nodes": n, "relations": r, "forward": f, "strategy": "hand", "seed": 0,
         "snapshot": snapshot.hash, "negatives": [ids["Ataxia"]]} for p, n, r, f in hand
    ])
    result = template(tmp_path, table, snapshot, kinds=["open"])
    assert result.items_new == 0
    assert result.rejected == {"name_is_common_word": 1, "names_not_distinct": 1}


def test_runs_are_deterministic_and_the_seed_only_shuffles_options(tmp_path, paths, snapshot):
    a = pl.read_parquet(template(tmp_path / "a", paths, snapshot).out)
    b = pl.read_parquet(template(tmp_path / "b", paths, snapshot).out)
    c = pl.read_parquet(template(tmp_path / "c", paths, snapshot, seed=7).out)
    assert a.equals(b)
    assert a["id"].to_list() == c["id"].to_list()
    mcq = pl.col("kind") == "mcq"
    assert a.filter(mcq)["answer_label"].to_list() != c.filter(mcq)["answer_label"].to_list()


def test_rerun_skips_existing_items_and_extends_without_duplicates(tmp_path, paths, snapshot):
    first = template(tmp_path, paths.head(20), snapshot)
    second = template(tmp_path, paths, snapshot)
    assert second.items_existing == first.items_new
    full = template(tmp_path / "full", paths, snapshot)
    assert second.items_total == full.items_total
    assert pl.read_parquet(second.out).equals(pl.read_parquet(full.out))
    again = template(tmp_path, paths, snapshot)
    assert again.items_new == 0 and again.items_total == full.items_total


def test_parts_left_by_a_dead_run_are_folded_in(tmp_path, paths, snapshot):
    done = template(tmp_path / "done", paths, snapshot)
    frame = pl.read_parquet(done.out)
    out = tmp_path / "run" / "items.parquet"
    parts = out.parent / ".items.parquet.parts"
    parts.mkdir(parents=True)
    frame.head(30).write_parquet(parts / "part-000000-aaaa.parquet")
    frame.slice(20, 20).write_parquet(parts / "part-000001-bbbb.parquet")  # overlaps the first part
    result = generate_items(paths, snapshot, writer=WRITERS.get("template")(None), out=out)
    assert result.items_existing == 40 and result.items_total == frame.height
    assert not parts.exists()
    assert pl.read_parquet(out).equals(frame)


def test_paths_from_another_snapshot_are_refused(tmp_path, paths, snapshot):
    with pytest.raises(SnapshotError, match="sampled from snapshot"):
        template(tmp_path, paths.with_columns(pl.lit("0" * 64).alias("snapshot")), snapshot)


# --- through a model endpoint ---------------------------------------------------------


def test_writer_openai_items_through_a_local_endpoint_then_all_from_cache(tmp_path, paths, snapshot):
    subset = paths.head(12)
    with LLMServer(responder=echo_responder) as server:
        result = generate_items(subset, snapshot, writer=model_writer(server, tmp_path), out=tmp_path / "items.parquet",
                                concurrency=8, batch_size=5)
        made = server.chat_requests
        assert made == result.items_new + sum(result.rejected.values()) - _path_rejections(result)
        again = generate_items(subset, snapshot, writer=model_writer(server, tmp_path), out=tmp_path / "b.parquet")
        assert server.chat_requests == made  # the second run paid for nothing
    first, second = pl.read_parquet(result.out), pl.read_parquet(again.out)
    assert first.drop("provenance").equals(second.drop("provenance"))
    usage = second["provenance"].struct.field("usage").struct.unnest()
    assert usage["cached"].all() and (usage["cost_usd"] > 0).all()
    # the echo model copies the template drafts, so its items are the template's, with model provenance
    reference = pl.read_parquet(template(tmp_path / "t", subset, snapshot).out)
    assert sorted(first["question"].to_list()) == sorted(reference["question"].to_list())
    prov = first["provenance"].struct.unnest()
    assert set(prov["prompt_name"]) == {"thinking_mcq.v1", "thinking_open.v1"} and set(prov["model"]) == {"test-model"}
    stats = json.loads(result.stats_path.read_text())
    assert stats["usage"]["stages"]["generate"]["calls"] == made and stats["cost_usd"] > 0
    assert json.loads(again.stats_path.read_text())["usage"]["total"]["cache_hits"] == again.items_new


def _path_rejections(result) -> int:
    return sum(v for k, v in result.rejected.items() if k.startswith("anchor_") or k in ("too_few_negatives", "answer_not_unique"))


def test_open_items_of_paths_marked_not_unique_are_turned_away_before_any_call(tmp_path, paths, snapshot):
    flags = [False, True, None] * 4
    subset = paths.head(12).with_columns(pl.Series("unique_answer", flags, dtype=pl.Boolean))
    with LLMServer(responder=echo_responder) as server:
        result = generate_items(subset, snapshot, writer=model_writer(server, tmp_path), out=tmp_path / "items.parquet")
        calls = server.chat_requests
    failures = pl.read_parquet(result.failures_path)
    turned_away = failures.filter(pl.col("reason") == "answer_not_unique")
    marked = subset.filter(~pl.col("unique_answer"))
    assert sorted(turned_away["path_id"]) == sorted(marked["path_id"]) and set(turned_away["kind"]) == {"open"}
    assert not turned_away["retryable"].any() and result.rejected["answer_not_unique"] == 4
    made = pl.read_parquet(result.out)
    assert not made.filter(pl.col("kind") == "open")["path_id"].is_in(marked["path_id"].implode()).any()
    assert made.filter(pl.col("kind") == "mcq")["path_id"].is_in(marked["path_id"].implode()).any()  # MCQ still made
    assert calls == result.items_new  # no call was paid for a turned-away item
    assert json.loads(result.stats_path.read_text())["rejected"]["answer_not_unique"] == 4


def test_failed_calls_are_recorded_and_the_next_run_tries_them_again(tmp_path, paths, snapshot):
    subset = paths.head(10)
    out = tmp_path / "items.parquet"
    with LLMServer(responder=echo_responder) as server:
        server.fail_next("500", "junk", "429", "truncated")
        writer = model_writer(server, tmp_path, max_retries=0, reply_retries=0)
        first = generate_items(subset, snapshot, writer=writer, out=out, concurrency=1)
        failures = pl.read_parquet(first.failures_path)
        retryable = failures.filter(pl.col("retryable"))
        assert sorted(retryable["reason"].to_list()) == ["connection", "rate_limited", "server_error"]
        assert first.failed == {"connection": 1, "rate_limited": 1, "server_error": 1}
        # the model's junk reply is a rejection, kept in the cache: not the endpoint's fault
        assert first.rejected.get("not_json") == 1
        assert failures.filter(pl.col("reason") == "not_json")["retryable"].to_list() == [False]
        paid = server.chat_requests
        second = generate_items(subset, snapshot, writer=model_writer(server, tmp_path, max_retries=0), out=out)
        assert second.items_new == 3 and second.failed == {} and second.rejected.get("not_json") == 1
        assert server.chat_requests == paid + 3  # only the endpoint's failures were asked again
        assert pl.read_parquet(second.failures_path).filter(pl.col("retryable")).height == 0


def test_a_model_question_that_names_the_answer_is_rejected(tmp_path, paths, snapshot):
    def leaky(body: dict) -> str:
        fields = json.loads(echo_responder(body))
        answer = re.search(r'The answer is the \w+ "(.*)"\.', body["messages"][1]["content"]).group(1)
        return json.dumps({"question": f"{fields['question']} Is it {answer}?", "thinking": fields["thinking"]})

    with LLMServer(responder=leaky) as server:
        result = generate_items(paths.head(5), snapshot, writer=model_writer(server, tmp_path), out=tmp_path / "i.parquet")
    assert result.items_new == 0 and result.rejected.get("question_names_answer", 0) > 0


def test_batch_api_mode_answers_generation_through_one_batch(tmp_path, paths, snapshot):
    subset = paths.head(8)
    with LLMServer(responder=echo_responder) as server:
        writer = model_writer(server, tmp_path, batch=True, batch_poll_s=0.01)
        result = generate_items(subset, snapshot, writer=writer, out=tmp_path / "items.parquet")
        assert server.stats["batches"] == 1 and server.chat_requests == 0
    live = result.usage["stages"]["generate"]
    assert result.items_new == live["cache_hits"] == live["calls"] > 0
    usage = pl.read_parquet(result.out)["provenance"].struct.field("usage").struct.unnest()
    full_price = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert (usage["cost_usd"] - full_price / 2).abs().max() < 1e-12  # half price
    assert not (tmp_path / ".items.parquet.batch.json").exists()


def test_batch_state_file_resumes_the_submitted_batch(tmp_path):
    import asyncio

    from kgsynth.llm import LLMClient, WrittenItem
    from kgsynth.llm.batch import _submitted, run_batch

    requests = [([{"role": "user", "content": f"<<question>> Question number {i}?\n<<thinking>> " + "x" * 30}],
                 WrittenItem) for i in range(3)]
    state = tmp_path / "batch.json"
    with LLMServer(responder=echo_responder, batch_delay=0.05) as server:
        config = LLMConfig(model="m", base_url=server.url, cache_path=tmp_path / "c.sqlite", batch_poll_s=0.01)

        async def submit_then_die():
            async with LLMClient(config) as client:
                params = client.params()
                pending = {client.cache_key(m, s, params).key: (client.cache_key(m, s, params), s,
                                                                client.body(m, s, params, client.mode))
                           for m, s in requests}
                await _submitted(client, pending, "generate", state)

        async def resume():
            async with LLMClient(config) as client:
                stored = await run_batch(client, requests, stage="generate", state_path=state)
                replies = await client.complete_many(requests, stage="generate")
                return stored, replies

        asyncio.run(submit_then_die())
        assert state.exists() and server.stats["batches"] == 1
        stored, replies = asyncio.run(resume())
        assert server.stats["batches"] == 1  # the same batch was collected, not a second one paid
        assert stored == 3 and all(r.cached for r in replies) and server.chat_requests == 0
    assert not state.exists()


def test_api_key_is_not_written_to_any_output(tmp_path, paths, snapshot, monkeypatch):
    secret = "sk-kgsynth-secret-abcdef0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with LLMServer(api_key="sk-another-key") as server:
        result = generate_items(paths.head(3), snapshot, writer=model_writer(server, tmp_path),
                                out=tmp_path / "items.parquet")
    assert result.failed.get("auth", 0) > 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and secret[:16].encode() not in data, path


# --- the command ----------------------------------------------------------------------


KGSYNTH = [sys.executable, "-c", "import sys; from kgsynth.cli import main; main(sys.argv[1:])"]


def cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*KGSYNTH, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kw)


@pytest.fixture()
def run_dir(tmp_path, paths, hpo_snapshot_dir):
    (tmp_path / "snapshot").symlink_to(hpo_snapshot_dir)
    write_paths(paths, tmp_path / "paths.parquet")
    return tmp_path


def test_cli_generate_with_the_template_writer_needs_no_server_and_no_key(run_dir):
    env = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    done = cli("generate", str(run_dir / "paths.parquet"), env=env)
    assert done.returncode == 0, done.stderr
    assert "generated" in done.stderr
    assert pl.read_parquet(run_dir / "items.parquet").height > 80
    stats = json.loads((run_dir / "generate.json").read_text())
    assert stats["paths"] == 60 and stats["stopped"] is None


def test_cli_budget_stop_saves_what_it_made_and_exits_3(run_dir):
    with LLMServer(responder=echo_responder) as server:
        done = cli("generate", str(run_dir / "paths.parquet"), "--writer", "openai", "--model", "test-model",
                   "--base-url", server.url, "--price", "test-model=100,100", "--budget-usd", "0.5",
                   "--concurrency", "2", "--batch-size", "3")
    assert done.returncode == 3, done.stderr
    assert "budget reached" in done.stderr
    stats = json.loads((run_dir / "generate.json").read_text())
    items = pl.read_parquet(run_dir / "items.parquet")
    assert stats["stopped"] == "budget" and stats["remaining"] > 0
    assert 0 < items.height == stats["items_new"] and stats["cost_usd"] <= 0.5
    assert stats["usage"]["budget_reached"] is True


def test_killed_run_resumes_without_loss_duplicates_or_repaid_calls(run_dir):
    args = ["generate", str(run_dir / "paths.parquet"), "--writer", "openai", "--model", "test-model",
            "--concurrency", "2", "--batch-size", "4"]
    parts = run_dir / ".items.parquet.parts"
    with LLMServer(responder=echo_responder, latency=0.03) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url}
        proc = subprocess.Popen([*KGSYNTH, *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        saved = sum(pl.read_parquet(p).height for p in parts.glob("part-*.parquet"))
        assert saved >= 12 and not (run_dir / "items.parquet").exists()
        paid_before = server.chat_requests
        done = cli("generate", *args[1:], env={"OPENAI_BASE_URL": server.url})
        assert done.returncode == 0, done.stderr
        total_paid = server.chat_requests
    items = pl.read_parquet(run_dir / "items.parquet")
    stats = json.loads((run_dir / "generate.json").read_text())
    assert items["id"].n_unique() == items.height
    assert stats["items_existing"] == saved and stats["items_new"] == items.height - saved
    expected = items.height + sum(stats["rejected"].values()) - sum(
        v for k, v in stats["rejected"].items() if k.startswith("anchor_") or k in ("too_few_negatives", "answer_not_unique"))
    # every call answered before the kill came from the cache; at most the 2 in flight were paid twice
    assert expected <= total_paid <= expected + 2
    assert stats["usage"]["total"]["cache_hits"] >= paid_before - saved - 2
