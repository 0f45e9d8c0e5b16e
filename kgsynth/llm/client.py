"""The one async chat call every room uses: structured output, cache, retries, accounting.

    async with LLMClient(LLMConfig(model="gpt-4o-mini", cache_path=run.llm_cache)) as llm:
        reply = await llm.complete(messages, Answer, stage="verify")
        reply.parsed, reply.usage, reply.cached

A call that cannot be answered after the retries raises `CallFailed` (an
`LLMError`) with a reason code; a call that would pass the budget raises
`BudgetExceeded`. Any OpenAI-compatible endpoint works (OpenAI, vLLM, llama.cpp's
server, Ollama, LM Studio). Requests go through the official client's low-level
`post` with our own body, so the hot path skips the SDK's per-call typed
transforms, and its built-in retries are off: retrying is done here, once.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import openai
from pydantic import BaseModel

from kgsynth.errors import ConfigError, LLMError
from kgsynth.llm.accounting import Accountant
from kgsynth.llm.cache import CachedReply, CacheKey, ReplyCache
from kgsynth.llm.config import LLMConfig
from kgsynth.llm.retry import BadResponse, backoff_delay, is_transient
from kgsynth.llm.structured import FALLBACK, Mode, parse_reply, response_format, strict_schema, with_instructions

try:  # the SDK's HTTP library: httpx2 in recent openai releases, httpx before
    from httpx2 import Response as _HTTPResponse
except ImportError:  # pragma: no cover - depends on the installed openai
    from httpx import Response as _HTTPResponse

Messages = list[dict[str, Any]]
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{3})[A-Za-z0-9_\-*]{5,}")


@dataclass(frozen=True)
class CallUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # what the reply cost when it was paid (also for cache hits)
    cached: bool = False


@dataclass(frozen=True)
class Reply:
    parsed: BaseModel
    text: str
    usage: CallUsage
    cached: bool
    mode: str  # the structured-output mode that produced it


# The model answered, but not with a usable reply: its answer, not the endpoint's fault.
# Such a reply is cached like a good one, so a re-run reads the same verdict for free.
MODEL_REPLY_REASONS = frozenset({"not_json", "schema_mismatch", "max_tokens"})


class CallFailed(LLMError):
    """One call ended without a valid reply. `reason` is a short code for reports."""

    def __init__(self, reason: str, message: str, *, attempts: int = 0, cached: bool = False) -> None:
        self.reason = reason
        self.attempts = attempts
        self.cached = cached  # the unusable reply came from the cache: nothing was sent
        super().__init__(f"{reason}: {message}")

    @property
    def model_reply(self) -> bool:
        """The model's own reply was unusable (junk, wrong shape, cut): asking again the same way won't help."""
        return self.reason in MODEL_REPLY_REASONS

    @property
    def final(self) -> bool:
        """Asking again the same way gets the same answer: an unusable reply, or a prompt the model's
        context cannot hold (the server refuses it before decoding)."""
        return self.model_reply or self.reason == "context_length"


@functools.cache
def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return strict_schema(model)


class LLMClient:
    def __init__(self, config: LLMConfig, *, accountant: Accountant | None = None) -> None:
        self.config = config
        self._key = config.api_key()
        self.sdk = openai.AsyncOpenAI(
            api_key=self._key,
            base_url=config.resolved_base_url(),
            timeout=config.timeout_s,
            max_retries=0,
            http_client=_http_client(config),
        )
        self.cache = ReplyCache(config.cache_path) if config.cache_path else None
        self.accountant = accountant or Accountant.for_config(config)
        self.mode: Mode = "json_schema" if config.structured == "auto" else config.structured
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self.rng = random.Random(0)
        self.prepaid: set[str] = set()  # cache keys a batch paid for in this run

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.sdk.close()
        if self.cache is not None:
            self.cache.close()

    # --- request parts ---------------------------------------------------------------

    def params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        params = {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens, "seed": self.config.seed}
        params.update(overrides or {})
        return {k: v for k, v in params.items() if v is not None}

    def cache_key(self, messages: Messages, schema: type[BaseModel], params: dict[str, Any]) -> CacheKey:
        return CacheKey.of(self.config.model, messages, params, _schema_of(schema))

    def body(self, messages: Messages, schema: type[BaseModel], params: dict[str, Any], mode: Mode) -> dict[str, Any]:
        schema_json = _schema_of(schema)
        fmt = response_format(mode, schema, schema_json)
        sent = messages if mode == "json_schema" else with_instructions(messages, schema_json)
        body = {"model": self.config.model, "messages": sent, **params}
        if fmt is not None:
            body["response_format"] = fmt
        return body

    def scrub(self, text: str) -> str:
        """Error text with the API key (and anything shaped like one) masked."""
        if self._key and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return _KEYLIKE.sub(r"\1***", text)

    # --- the call ----------------------------------------------------------------------

    async def complete(
        self,
        messages: Messages,
        schema: type[BaseModel],
        *,
        stage: str = "generate",
        params: dict[str, Any] | None = None,
    ) -> Reply:
        """One structured chat call: cache, budget, bounded concurrency, retries, validation."""
        params = self.params(params)
        key = self.cache_key(messages, schema, params) if self.cache is not None else None
        usage = self.accountant.stage(stage)
        if key is not None and (hit := self.cache.get(key)) is not None:
            usage.cache_hits += 1
            if key.key not in self.prepaid:
                usage.saved_usd += hit.cost_usd
            parsed, problem = _parse(hit.content, schema, hit.cut, params)
            if parsed is None:  # the model's unusable answer, kept: the same verdict, nothing sent
                usage.failures += 1
                raise CallFailed(*problem, attempts=0, cached=True)
            return Reply(parsed, hit.content, CallUsage(hit.prompt_tokens, hit.completion_tokens, hit.cost_usd, True),
                         True, "cache")
        prompt_tokens = completion_tokens = 0
        cost = 0.0
        for attempt in range(1 + self.config.reply_retries):
            # an unusable reply is asked again with another sampling seed: a small model's
            # next draw often parses, while the same request would give the same junk
            sent = params if attempt == 0 else {**params, "seed": int(params.get("seed") or 0) + attempt}
            (text, tokens_in, tokens_out, cut), mode = await self._paid_call(messages, schema, sent, stage)
            prompt_tokens, completion_tokens = prompt_tokens + tokens_in, completion_tokens + tokens_out
            cost += self.accountant.cost(tokens_in, tokens_out)
            parsed, problem = _parse(text, schema, cut, params)
            if parsed is not None:
                break
            usage.junk_replies += 1
        if key is not None:
            self.cache.put(key, CachedReply(text, prompt_tokens, completion_tokens, cost, False, cut=parsed is None and cut))
        if parsed is None:
            usage.failures += 1
            raise CallFailed(problem[0], self.scrub(problem[1]), attempts=1 + self.config.reply_retries)
        return Reply(parsed, text, CallUsage(prompt_tokens, completion_tokens, cost, False), False, mode)

    async def _paid_call(
        self, messages: Messages, schema: type[BaseModel], params: dict[str, Any], stage: str
    ) -> tuple[Completion, Mode]:
        """One request with its retries, inside the budget and the concurrency bound; tokens booked."""
        usage = self.accountant.stage(stage)
        reserved = self.accountant.reserve(sum(len(str(m.get("content") or "")) for m in messages))
        try:
            async with self._semaphore:
                completion, mode = await self._send(messages, schema, params, stage)
        except CallFailed:
            usage.failures += 1
            raise
        finally:
            self.accountant.release(reserved)
        usage.calls += 1
        usage.prompt_tokens += completion.prompt_tokens
        usage.completion_tokens += completion.completion_tokens
        usage.cost_usd += self.accountant.cost(completion.prompt_tokens, completion.completion_tokens)
        self.accountant.modes[mode] += 1
        return completion, mode

    async def _send(
        self, messages: Messages, schema: type[BaseModel], params: dict[str, Any], stage: str
    ) -> tuple[Completion, Mode]:
        usage = self.accountant.stage(stage)
        attempt = 0
        while True:
            mode = self.mode
            usage.requests += 1
            try:
                response = await self.sdk.post(
                    "/chat/completions", body=self.body(messages, schema, params, mode), cast_to=_HTTPResponse
                )
                return read_completion(response.content), mode
            except (openai.APIError, BadResponse) as exc:
                if self._downgrade(exc, mode):
                    continue
                if not is_transient(exc):
                    raise CallFailed(_reason(exc), self.scrub(_describe(exc)), attempts=attempt + 1) from None
                if attempt >= self.config.max_retries:
                    raise CallFailed(
                        _reason(exc),
                        self.scrub(f"{_describe(exc)} (gave up after {attempt + 1} attempts)"),
                        attempts=attempt + 1,
                    ) from None
                delay = backoff_delay(
                    attempt, exc, base=self.config.backoff_base_s, cap=self.config.backoff_max_s, rng=self.rng
                )
                attempt += 1
                usage.retries += 1
                await asyncio.sleep(delay)

    def _downgrade(self, exc: BaseException, mode: Mode) -> bool:
        """In auto mode, step down json_schema → json_object → text when the server refuses one."""
        if self.config.structured != "auto" or FALLBACK[mode] is None:
            return False
        if not isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
            return False
        said = _describe(exc).lower()
        if "response_format" not in said and "json" not in said and "schema" not in said:
            return False
        if self.mode == mode:  # concurrent calls may have stepped down already
            self.mode = FALLBACK[mode]
        return True

    async def complete_many(
        self, requests: Iterable[tuple[Messages, type[BaseModel]]], *, stage: str
    ) -> list[Reply | CallFailed]:
        """Many calls at the configured concurrency; failures come back in place, not raised."""

        async def one(messages: Messages, schema: type[BaseModel]) -> Reply | CallFailed:
            try:
                return await self.complete(messages, schema, stage=stage)
            except CallFailed as exc:
                return exc

        return list(await asyncio.gather(*(one(m, s) for m, s in requests)))


def _http_client(config: LLMConfig):
    """aiohttp as the SDK's transport when installed: about half the CPU per request of the default."""
    if config.http == "httpx" or importlib.util.find_spec("aiohttp") is None:
        if config.http == "aiohttp":
            raise ConfigError("http: aiohttp needs the aiohttp package (pip install 'openai[aiohttp]')")
        return None
    try:
        return openai.DefaultAioHttpClient(timeout=config.timeout_s)
    except (RuntimeError, ImportError, AttributeError):  # an SDK without the aiohttp transport
        if config.http == "aiohttp":
            raise ConfigError("this openai package has no aiohttp transport; use http: httpx") from None
        return None


def complete_all(
    config: LLMConfig, requests: Sequence[tuple[Messages, type[BaseModel]]], *, stage: str
) -> tuple[list[Reply | CallFailed], dict]:
    """Synchronous front door for rooms that are not async: replies in order and the usage summary."""

    async def run() -> tuple[list[Reply | CallFailed], dict]:
        async with LLMClient(config) as client:
            replies = await client.complete_many(requests, stage=stage)
            return replies, client.accountant.summary()

    return asyncio.run(run())


class Completion(NamedTuple):
    text: str
    prompt_tokens: int
    completion_tokens: int
    cut: bool  # the reply stopped at max_tokens


def read_completion(raw: bytes | dict[str, Any]) -> Completion:
    """The reply text and token counts from a chat-completion body."""
    try:
        data = json.loads(raw) if isinstance(raw, bytes) else raw
        message = data["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BadResponse(f"the body is not a chat completion: {str(raw)[:80]!r}") from None
    content = message.get("content")
    if content is None:
        refusal = message.get("refusal") or "no content"
        raise CallFailed("refused", f"the model returned no content: {str(refusal)[:200]}")
    usage = data.get("usage") or {}
    return Completion(
        content,
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        data["choices"][0].get("finish_reason") == "length",
    )


def _parse(
    text: str, schema: type[BaseModel], cut: bool, params: dict[str, Any]
) -> tuple[BaseModel | None, tuple[str, str]]:
    """The validated reply, or None and (reason code, detail); a reply cut at max_tokens says so."""
    parsed, reason = parse_reply(text, schema)
    if parsed is not None:
        return parsed, ("", "")
    code, _, detail = (reason or "").partition(": ")
    if cut:
        code, detail = "max_tokens", f"the reply was cut at max_tokens={params.get('max_tokens')}: {detail}"
    return None, (code, detail)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BadResponse):
        return "bad_response"
    if isinstance(exc, openai.APITimeoutError):
        # the aiohttp transport reports a refused connection as a connect timeout
        return "connection" if "Connect call failed" in str(exc.__cause__) else "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return "auth"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 400 and _over_context(exc):
            return "context_length"
        return "server_error" if exc.status_code >= 500 else f"http_{exc.status_code}"
    return type(exc).__name__


def _over_context(exc: openai.APIStatusError) -> bool:
    """OpenAI's `context_length_exceeded`, llama.cpp's `exceed_context_size_error`, vLLM's wording."""
    said = f"{getattr(exc, 'code', '')} {getattr(exc, 'type', '')} {_describe(exc)}".lower()
    return "context_length" in said or "exceed_context" in said or "context size" in said or "maximum context" in said


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        return f"HTTP {exc.status_code}: {body.get('message') or exc.message}"
    return str(exc) or type(exc).__name__
