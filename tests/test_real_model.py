"""The contract with a real model: llama.cpp's llama-server serving SmolLM2-135M-Instruct.

Asserts what must hold whatever a tiny model writes: every (path, kind) ends as an
item or a failures row with a reason, a re-run is answered from the reply cache
with zero requests (the server decodes no token), and the judge's verdict is
recorded on every item it read. Not the quality of the items.

The server is found in the per-machine cache (`kgsynth llm-server prepare` builds
it, ~9 minutes on 2 cores); without it these tests are skipped, as on CI.
"""

from __future__ import annotations

import polars as pl
import pytest
from hpo_paths import make_paths

from kgsynth.generate import WRITERS, generate_items
from kgsynth.graph.snapshot import read_snapshot
from kgsynth.llm import LLMConfig
from kgsynth.llm import local_server as ls

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        ls.find_binary() is None,
        reason=f"llama-server is not built at {ls.binary_path()}; `kgsynth llm-server prepare` builds it once per machine",
    ),
]

PATHS = 6  # two kinds each: a dozen model calls, about a minute on 2 shared cores


@pytest.fixture(scope="module")
def server():
    with ls.running_server(parallel=2) as running:
        yield running


@pytest.fixture(scope="module")
def snapshot(hpo_snapshot_dir):
    return read_snapshot(hpo_snapshot_dir)


def model_config(server: ls.LocalServer, cache) -> LLMConfig:
    return LLMConfig(model=server.model, base_url=server.url, api_key_env="KGSYNTH_TEST_NO_KEY", cache_path=cache,
                     concurrency=2, max_tokens=320, timeout_s=300, max_retries=1, seed=0)  # fmt: skip


def decoded(server: ls.LocalServer) -> float:
    """Tokens the server has read and written so far (its own counters)."""
    metrics = ls.server_metrics(server.root_url)
    return metrics["llamacpp:prompt_tokens_total"] + metrics["llamacpp:tokens_predicted_total"]


@pytest.fixture(scope="module")
def generated(server, snapshot, tmp_path_factory):
    work = tmp_path_factory.mktemp("real-model")
    paths = make_paths(snapshot, PATHS, seed=11)
    config = model_config(server, work / "cache.sqlite")
    result = generate_items(paths, snapshot, writer=WRITERS.get("openai")(config), out=work / "items.parquet")
    return work, paths, config, result


def test_every_path_ends_as_an_item_or_a_reason(generated):
    work, paths, _, result = generated
    items = pl.read_parquet(result.out) if result.out.exists() else pl.DataFrame({"id": [], "path_id": [], "kind": []})
    failures = pl.read_parquet(result.failures_path)
    ended = sorted([*zip(items["path_id"], items["kind"]), *zip(failures["path_id"], failures["kind"])])
    assert ended == sorted((p, k) for p in paths["path_id"] for k in ("mcq", "open"))  # each exactly once
    assert (failures["reason"].str.len_chars() > 0).all() and (failures["error"].str.len_chars() > 0).all()
    assert failures.filter(pl.col("retryable"))["reason"].to_list() == []  # the local server did not fail
    stats = result.stats["usage"]
    assert stats["modes"] == {"json_schema": stats["stages"]["generate"]["calls"]}  # the server honours the schema
    assert items.height == result.items_new


def test_a_rerun_is_answered_from_the_cache_with_zero_requests(server, snapshot, generated):
    work, paths, config, first = generated
    before = decoded(server)
    again = generate_items(paths, snapshot, writer=WRITERS.get("openai")(config), out=work / "again.parquet")
    assert decoded(server) == before
    usage = again.stats["usage"]["stages"]["generate"]
    assert usage["requests"] == 0 and usage["calls"] == 0 and usage["cache_hits"] > 0
    assert again.items_new == first.items_new and again.rejected == first.rejected
    if first.items_new:
        made = pl.read_parquet(first.out).sort("id")
        remade = pl.read_parquet(again.out).sort("id")
        assert made.select("id", "question", "thinking").equals(remade.select("id", "question", "thinking"))


def test_the_judge_records_a_verdict_for_every_item_it_reads(server, snapshot, generated):
    from kgsynth.verify import verify_items

    work, _, config, result = generated
    if not result.items_new:
        pytest.skip("the model made no item to judge on this run")
    items = pl.read_parquet(result.out)
    verified = verify_items(items, snapshot, llm=config)
    both = pl.concat([verified.accepted.select("id", "verdicts"), verified.rejected.select("id", "verdicts")])
    assert sorted(both["id"]) == sorted(items["id"])
    graph_passed = both.filter(
        pl.col("verdicts").list.eval(
            pl.element().struct.field("passed") | (pl.element().struct.field("check") == "llm_consistency")
        ).list.all()
    )
    judged = both.explode("verdicts").unnest("verdicts").filter(pl.col("check") == "llm_consistency")
    assert sorted(judged["id"]) == sorted(graph_passed["id"])  # every item the graph let through was judged
    assert set(judged["code"].drop_nulls()) <= {"ANSWER_INCONSISTENT", "LLM_UNAVAILABLE"}
    assert (judged.filter(~pl.col("passed"))["detail"].str.len_chars() > 0).all()
    before = decoded(server)
    again = verify_items(items, snapshot, llm=config)
    assert decoded(server) == before  # the judge's replies came from the cache
    assert again.summary["by_reason"] == verified.summary["by_reason"]


def test_a_prompt_longer_than_the_context_is_classified_not_retried(server, tmp_path):
    import asyncio

    from kgsynth.llm import CallFailed, LLMClient
    from kgsynth.llm.writers import WrittenItem

    async def ask():
        async with LLMClient(model_config(server, tmp_path / "cache.sqlite")) as client:
            try:
                await client.complete([{"role": "user", "content": "phenotype " * 3000}], WrittenItem)
            finally:
                usage = client.accountant.summary()["stages"]["generate"]
        return usage

    before = decoded(server)
    with pytest.raises(CallFailed) as caught:
        asyncio.run(ask())
    assert caught.value.reason == "context_length" and caught.value.final and caught.value.attempts == 1
    assert "context" in str(caught.value)
    assert decoded(server) == before  # refused before any decoding
