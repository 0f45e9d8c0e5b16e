"""The LLM client against a real local OpenAI-compatible server: retries, cache, fallbacks, budget, secrets."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import openai
import pytest
from llm_server import LLMServer, echo_responder
from pydantic import BaseModel

from kgsynth.errors import BudgetExceeded, ConfigError
from kgsynth.llm import CallFailed, LLMClient, LLMConfig, Price, complete_all, parse_price
from kgsynth.llm.accounting import Accountant
from kgsynth.llm.cache import CacheKey, ReplyCache
from kgsynth.llm.retry import backoff_delay, retry_after
from kgsynth.llm.structured import parse_reply, strict_schema


class Answer(BaseModel):
    answer: str
    confidence: float


MESSAGES = [{"role": "system", "content": "You answer."}, {"role": "user", "content": "<<answer>> Marfan syndrome"}]


def answer_responder(body: dict) -> str:
    return '{"answer": "Marfan syndrome", "confidence": 0.5}'


@pytest.fixture()
def server():
    with LLMServer(responder=answer_responder, retry_after=0.01) as srv:
        yield srv


def make_config(server: LLMServer, tmp_path: Path, **changes) -> LLMConfig:
    values = dict(
        model="test-model",
        base_url=server.url,
        cache_path=tmp_path / "cache.sqlite",
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        timeout_s=5,
        prices={"test-model": Price(input=1.0, output=2.0)},
    )
    values.update(changes)
    return LLMConfig(**values)


def run(coro):
    return asyncio.run(coro)


async def one_call(config: LLMConfig, messages=MESSAGES, schema=Answer, **kw):
    async with LLMClient(config) as client:
        reply = await client.complete(messages, schema, stage="verify", **kw)
        return reply, client.accountant.summary()


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
@pytest.mark.parametrize("fault", ["429", "500", "503", "drop", "truncated", "nonjson", "timeout:2"])
def test_transient_faults_are_retried_until_a_reply(server, tmp_path, fault, http):
    server.fail_next(fault, fault)
    reply, summary = run(one_call(make_config(server, tmp_path, timeout_s=0.5, http=http)))
    assert reply.parsed == Answer(answer="Marfan syndrome", confidence=0.5)
    assert server.chat_requests == 3
    assert summary["stages"]["verify"]["retries"] == 2
    assert summary["stages"]["verify"]["calls"] == 1


def test_giving_up_after_max_retries_raises_call_failed_with_a_reason(server, tmp_path):
    server.fail_next(*["429"] * 4)
    with pytest.raises(CallFailed) as caught:
        run(one_call(make_config(server, tmp_path, max_retries=2)))
    assert caught.value.reason == "rate_limited"
    assert caught.value.attempts == 3
    assert server.chat_requests == 3


def test_client_errors_are_not_retried(server, tmp_path):
    server.fail_next("401")
    with pytest.raises(CallFailed) as caught:
        run(one_call(make_config(server, tmp_path)))
    assert caught.value.reason == "auth"
    assert server.chat_requests == 1


def test_retry_after_header_is_honoured():
    try:  # the openai SDK's HTTP library
        import httpx2 as http
    except ImportError:
        import httpx as http

    def rate_limited(headers):
        response = http.Response(429, headers=headers, request=http.Request("POST", "http://x/v1"))
        return openai.RateLimitError("slow down", response=response, body=None)

    rng = random.Random(1)
    assert retry_after(rate_limited({"retry-after": "2"})) == 2.0
    assert retry_after(rate_limited({"retry-after-ms": "1500"})) == 1.5
    assert retry_after(rate_limited({})) is None
    delay = backoff_delay(0, rate_limited({"retry-after": "2"}), base=0.01, cap=0.02, rng=rng)
    assert 2.0 <= delay <= 2.2  # the server's wish wins over the (smaller) backoff cap
    delays = [backoff_delay(5, rate_limited({}), base=0.5, cap=4.0, rng=rng) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays) and len(set(delays)) > 1  # capped, and jittered


def test_second_run_is_served_from_cache_with_zero_requests(server, tmp_path):
    config = make_config(server, tmp_path)
    first, _ = run(one_call(config))
    assert server.chat_requests == 1 and not first.cached
    second, summary = run(one_call(config))
    assert server.chat_requests == 1
    assert second.cached and second.parsed == first.parsed
    assert second.usage.cost_usd == first.usage.cost_usd > 0
    stage = summary["stages"]["verify"]
    assert (stage["calls"], stage["cache_hits"], stage["cost_usd"]) == (0, 1, 0.0)
    assert stage["saved_usd"] == pytest.approx(first.usage.cost_usd)


@pytest.mark.parametrize(
    "change",
    [
        {"config": {"model": "other-model"}},
        {"config": {"temperature": 0.9}},
        {"messages": [*MESSAGES[:1], {"role": "user", "content": "something else"}]},
        {"schema": "other"},
    ],
)
def test_cache_is_used_only_when_every_key_part_is_equal(server, tmp_path, change):
    class Other(BaseModel):
        answer: str
        confidence: float
        source: str | None = None

    run(one_call(make_config(server, tmp_path)))
    config = make_config(server, tmp_path, **change.get("config", {}))
    reply, _ = run(one_call(config, change.get("messages", MESSAGES), Other if change.get("schema") else Answer))
    assert not reply.cached
    assert server.chat_requests == 2


def test_cache_refuses_a_row_whose_parts_differ_under_the_same_key(tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite")
    key = CacheKey.of("m", MESSAGES, {"temperature": 0}, None)
    from kgsynth.llm.cache import CachedReply

    cache.put(key, CachedReply("{}", 1, 1, 0.0, False))
    forged = CacheKey("m", key.messages_hash, "different-params", key.schema_hash)
    cache._db.execute("UPDATE replies SET key = ? WHERE key = ?", (forged.key, key.key))
    assert cache.get(forged) is None
    assert len(cache) == 1
    cache.close()


def test_auto_mode_falls_back_to_json_object_then_text(tmp_path):
    with LLMServer(responder=answer_responder, json_schema=False, json_object=False) as server:
        reply, _ = run(one_call(make_config(server, tmp_path, cache_path=None)))
        assert reply.mode == "text"
        formats = [(b.get("response_format") or {}).get("type") for b in server.requests]
        assert formats == ["json_schema", "json_object", None]
        assert "```json" in server.requests[-1]["messages"][0]["content"]  # the schema moved into the prompt
    with LLMServer(responder=answer_responder, json_schema=False) as server:
        reply, _ = run(one_call(make_config(server, tmp_path, cache_path=None)))
        assert reply.mode == "json_object"


def test_a_fixed_mode_does_not_fall_back(tmp_path):
    with LLMServer(responder=answer_responder, json_schema=False) as server:
        with pytest.raises(CallFailed) as caught:
            run(one_call(make_config(server, tmp_path, structured="json_schema")))
        assert caught.value.reason == "http_400"
        assert server.chat_requests == 1


def test_schema_in_prompt_is_answered_by_the_default_responder(tmp_path):
    with LLMServer(json_schema=False) as server:
        reply, _ = run(one_call(make_config(server, tmp_path, structured="json_object")))
        assert isinstance(reply.parsed, Answer)


@pytest.mark.parametrize("fault", ["junk", "badschema"])
def test_a_junk_reply_is_asked_again_with_another_seed(server, tmp_path, fault):
    server.fail_next(fault)
    reply, usage = run(one_call(make_config(server, tmp_path, seed=7)))
    assert reply.parsed.answer == "Marfan syndrome" and server.chat_requests == 2
    assert [body["seed"] for body in server.requests] == [7, 8]
    assert usage["stages"]["verify"]["junk_replies"] == 1 and usage["stages"]["verify"]["failures"] == 0
    again, _ = run(one_call(make_config(server, tmp_path, seed=7)))  # cached under the request as asked
    assert again.cached and server.chat_requests == 2


@pytest.mark.parametrize(("fault", "reason"), [("junk", "not_json"), ("badschema", "schema_mismatch")])
def test_a_reply_junk_every_time_is_rejected_and_kept_so_a_rerun_pays_nothing(server, tmp_path, fault, reason):
    config = make_config(server, tmp_path, reply_retries=1)
    server.fail_next(fault, fault)
    with pytest.raises(CallFailed) as caught:
        run(one_call(config))
    assert caught.value.reason == reason and caught.value.model_reply and not caught.value.cached
    assert caught.value.attempts == 2 and server.chat_requests == 2
    with pytest.raises(CallFailed) as again:  # the model's answer is kept: the same verdict, nothing sent
        run(one_call(config))
    assert again.value.reason == reason and again.value.cached and server.chat_requests == 2


def test_reply_retries_zero_asks_once(server, tmp_path):
    server.fail_next("junk")
    with pytest.raises(CallFailed) as caught:
        run(one_call(make_config(server, tmp_path, reply_retries=0)))
    assert caught.value.reason == "not_json" and server.chat_requests == 1


def test_endpoint_failures_are_not_model_replies_and_are_not_kept(server, tmp_path):
    config = make_config(server, tmp_path, max_retries=0)
    server.fail_next("500")
    with pytest.raises(CallFailed) as caught:
        run(one_call(config))
    assert caught.value.reason == "server_error" and not caught.value.model_reply
    reply, _ = run(one_call(config))  # nothing was cached: the next run asks again
    assert not reply.cached and server.chat_requests == 2


def test_a_reply_cut_at_max_tokens_says_so_also_from_the_cache(server, tmp_path):
    config = make_config(server, tmp_path, max_tokens=5)
    with pytest.raises(CallFailed) as caught:
        run(one_call(config))
    assert caught.value.reason == "max_tokens" and "max_tokens=5" in str(caught.value)
    assert server.chat_requests == 2  # asked once more with another seed; cut again
    with pytest.raises(CallFailed) as again:
        run(one_call(config))
    assert again.value.reason == "max_tokens" and again.value.cached and server.chat_requests == 2


def test_a_cache_written_before_cut_replies_were_kept_is_upgraded(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, messages_hash TEXT NOT NULL, "
               "params_hash TEXT NOT NULL, schema_hash TEXT NOT NULL, content TEXT NOT NULL, prompt_tokens INTEGER "
               "NOT NULL, completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, batch INTEGER NOT NULL "
               "DEFAULT 0, created REAL NOT NULL)")
    key = CacheKey.of("m", MESSAGES, {}, None)
    db.execute("INSERT INTO replies VALUES (?, ?, ?, ?, ?, ?, 1, 2, 0.5, 0, 0)",
               (key.key, key.model, key.messages_hash, key.params_hash, key.schema_hash, '{"answer": "x"}'))
    db.commit()
    db.close()
    cache = ReplyCache(path)
    hit = cache.get(key)
    assert hit is not None and hit.content == '{"answer": "x"}' and hit.cut is False
    cache.close()


def test_tolerant_parsing_cuts_fences_and_prose():
    parsed, reason = parse_reply('Here you go:\n```json\n{"answer": "x", "confidence": 1}\n```\nBye', Answer)
    assert reason is None and parsed == Answer(answer="x", confidence=1)
    parsed, reason = parse_reply('{"answer": "x"}', Answer)
    assert parsed is None and reason.startswith("schema_mismatch: confidence")
    schema = strict_schema(Answer)
    assert schema["additionalProperties"] is False and schema["required"] == ["answer", "confidence"]


def test_budget_stops_calls_before_they_would_pass_it(server, tmp_path):
    # each call costs about (prompt + completion tokens) * $1-2 per 1M; a budget for two or three calls
    config = make_config(server, tmp_path, cache_path=None, max_tokens=50, budget_usd=0.0003, concurrency=1)

    async def calls():
        async with LLMClient(config) as client:
            done = 0
            with pytest.raises(BudgetExceeded):
                for i in range(100):
                    await client.complete([{"role": "user", "content": f"question {i}"}], Answer, stage="generate")
                    done += 1
            with pytest.raises(BudgetExceeded):  # once reached, it stays reached
                await client.complete([{"role": "user", "content": "one more"}], Answer)
            return done, client.accountant

    done, accountant = run(calls())
    assert 1 <= done < 100
    assert server.chat_requests == done
    assert accountant.spent_usd <= 0.0003
    assert accountant.summary()["budget_reached"] is True


def test_budget_needs_a_price():
    with pytest.raises(ConfigError, match="--price"):
        Accountant("unknown-model", None, budget_usd=1.0)
    assert LLMConfig(model="gpt-4o-mini-2024-07-18").price() == Price(input=0.15, output=0.60)
    assert parse_price("my-model=0.5,1.5") == ("my-model", Price(input=0.5, output=1.5))
    with pytest.raises(ConfigError):
        parse_price("my-model=cheap")


def test_api_key_never_appears_in_errors(tmp_path, monkeypatch):
    secret = "sk-kgsynth-secret-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with LLMServer(api_key="sk-the-right-one") as server:  # replies 401 quoting the key it got
        with pytest.raises(CallFailed) as caught:
            run(one_call(make_config(server, tmp_path)))
    assert caught.value.reason == "auth"
    assert secret not in str(caught.value) and secret[:12] not in str(caught.value)
    assert "sk-" not in repr(LLMConfig(model="m"))  # the key is never part of the config


def test_missing_key_without_base_url_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        LLMConfig(model="m").api_key()


def test_complete_all_is_a_synchronous_front_door(server, tmp_path):
    requests = [([{"role": "user", "content": f"q{i}"}], Answer) for i in range(5)]
    server.fail_next("junk")
    replies, summary = complete_all(make_config(server, tmp_path, concurrency=2, reply_retries=0), requests,
                                    stage="judge")
    assert sum(isinstance(r, CallFailed) for r in replies) == 1
    assert sum(getattr(r, "parsed", None) is not None for r in replies) == 4
    assert summary["stages"]["judge"]["calls"] == 5


def test_echo_responder_copies_marked_lines():
    body = {"messages": [{"role": "user", "content": "x\n<<answer>> yes\n<<confidence>> 1"}]}
    assert echo_responder(body) == '{"answer": "yes", "confidence": "1"}'


@pytest.mark.parametrize(("body", "reason"), [
    ({"message": "request (3031 tokens) exceeds the available context size (2048 tokens), try increasing it",
      "type": "exceed_context_size_error"}, "context_length"),  # llama.cpp's server
    ({"message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error",
      "code": "context_length_exceeded"}, "context_length"),  # OpenAI
    ({"message": "'messages' is required", "type": "invalid_request_error"}, "http_400"),
])
def test_a_prompt_over_the_context_is_named_and_final(body, reason):
    import httpx

    from kgsynth.llm.client import _reason

    response = httpx.Response(400, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    exc = openai.BadRequestError(body["message"], response=response, body=body)
    assert _reason(exc) == reason
    assert CallFailed(reason, "x").final == (reason == "context_length")
