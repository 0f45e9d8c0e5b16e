"""OpenAI Batch API mode: the half-price path for large runs.

The calls a stage is about to make are written as one JSONL file, uploaded and
submitted as a batch; the batch is polled until it ends and every valid reply is
stored in the reply cache at the batch price. The stage then runs as usual and
finds its replies in the cache; whatever the batch did not answer is called live.
The batch id is kept in a state file, so a run killed while waiting picks up the
same batch instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path
from typing import Any

import openai
from pydantic import BaseModel

from kgsynth.atomic import write_text_atomic
from kgsynth.errors import BudgetExceeded, ConfigError, LLMError
from kgsynth.llm.cache import CachedReply
from kgsynth.llm.client import BadResponse, LLMClient, Messages, read_completion
from kgsynth.llm.retry import backoff_delay, is_transient
from kgsynth.llm.structured import parse_reply

_ENDED = {"completed", "failed", "expired", "cancelled"}


async def run_batch(
    client: LLMClient,
    requests: list[tuple[Messages, type[BaseModel]]],
    *,
    stage: str,
    state_path: Path,
) -> int:
    """Answer the uncached requests through one batch; return how many replies were stored."""
    if client.cache is None:
        raise ConfigError("Batch API mode stores its replies in the reply cache: give a cache path")
    params = client.params()
    mode = client.mode
    pending: dict[str, tuple[Any, type[BaseModel], dict[str, Any]]] = {}
    reserved = 0.0
    for messages, schema in requests:
        key = client.cache_key(messages, schema, params)
        if key.key in pending or client.cache.get(key) is not None:
            continue
        try:
            reserved += client.accountant.reserve(sum(len(str(m.get("content") or "")) for m in messages), batch=True)
        except BudgetExceeded:
            break  # submit what fits; the stage stops at the budget as usual
        pending[key.key] = (key, schema, client.body(messages, schema, params, mode))
    try:
        if not pending:
            return 0
        batch = await _submitted(client, pending, stage, state_path)
        batch = await _wait(client, batch)
        stored = await _collect(client, batch, pending, stage)
    finally:
        client.accountant.release(reserved)
    state_path.unlink(missing_ok=True)
    return stored


async def _submitted(client: LLMClient, pending: dict, stage: str, state_path: Path):
    sdk = client.sdk
    if state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        batch = await _retry(client, lambda: sdk.batches.retrieve(state["batch_id"]))
        if batch.status not in {"failed", "expired", "cancelled"}:
            return batch
    lines = "".join(
        json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"
        for custom_id, (_, _, body) in pending.items()
    )
    upload = await _retry(client, lambda: sdk.files.create(file=("kgsynth-batch.jsonl", lines.encode()), purpose="batch"))
    batch = await _retry(
        client,
        lambda: sdk.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window=client.config.batch_completion_window,
            metadata={"kgsynth_stage": stage},
        ),
    )
    write_text_atomic(state_path, json.dumps({"batch_id": batch.id, "input_file_id": upload.id, "requests": len(pending)}))
    return batch


async def _wait(client: LLMClient, batch):
    while batch.status not in _ENDED:
        await asyncio.sleep(client.config.batch_poll_s)
        batch = await _retry(client, partial(client.sdk.batches.retrieve, batch.id))
    if batch.status != "completed" and not batch.output_file_id:
        raise LLMError(f"batch {batch.id} ended '{batch.status}' with no output; re-run to call the requests live")
    return batch


async def _collect(client: LLMClient, batch, pending: dict, stage: str) -> int:
    usage = client.accountant.stage(stage)
    if not batch.output_file_id:
        return 0
    content = await _retry(client, lambda: client.sdk.files.content(batch.output_file_id))
    stored = 0
    for line in content.content.decode().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        entry = pending.get(record.get("custom_id"))
        response = record.get("response") or {}
        if entry is None or response.get("status_code") != 200:
            continue
        key, schema, _ = entry
        try:
            text, prompt_tokens, completion_tokens, _ = read_completion(response.get("body") or {})
        except (BadResponse, LLMError):
            usage.failures += 1
            continue
        cost = client.accountant.cost(prompt_tokens, completion_tokens, batch=True)
        usage.calls += 1
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens
        usage.cost_usd += cost
        if parse_reply(text, schema)[0] is None:
            usage.failures += 1
            continue
        client.cache.put(key, CachedReply(text, prompt_tokens, completion_tokens, cost, True))
        client.prepaid.add(key.key)
        stored += 1
    return stored


async def _retry(client: LLMClient, call):
    attempt = 0
    while True:
        try:
            return await call()
        except openai.APIError as exc:
            if not is_transient(exc) or attempt >= client.config.max_retries:
                raise LLMError(client.scrub(f"Batch API call failed: {exc}")) from None
            await asyncio.sleep(
                backoff_delay(attempt, exc, base=client.config.backoff_base_s, cap=client.config.backoff_max_s,
                              rng=client.rng)
            )
            attempt += 1
