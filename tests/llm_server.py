"""A local OpenAI-compatible HTTP server for tests and benchmarks.

It speaks the real wire format of `/v1/chat/completions` (with `response_format`
`json_schema` / `json_object`, usage fields), `/v1/files` and `/v1/batches`, so
the official `openai` client talks to it unchanged. Everything a flaky endpoint
does can be injected: fixed latency, 429 with `Retry-After`, 5xx, hangs past the
client's timeout, dropped connections, truncated and non-JSON bodies, junk
message content.

Use it in-process (`with LLMServer(latency=0.01) as server: server.url`) or as a
subprocess (`python tests/llm_server.py --latency 0.2`, which prints
`READY <url>`), the form the benchmark and kill-and-resume tests use so the
server's CPU is not counted in the client's process. Control endpoints
`GET /_stats`, `POST /_reset` and `POST /_faults` work in both forms.

Replies come from a responder `(request body) -> message content`. The default
fills the requested JSON schema (from `response_format`, or the ```json block a
client puts in its prompt when the server lacks json_schema) with placeholder
values; `echo_responder` copies `key: value` lines that a prompt marks as
`<<key>> value`, which lets tests make a model that writes sensible items.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import itertools
import json
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Responder = Callable[[dict[str, Any]], str]

FAULTS = ("429", "500", "503", "timeout", "drop", "truncated", "nonjson", "junk", "badschema", "401")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


# --- responders ------------------------------------------------------------------------


def fill_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A placeholder instance of a JSON schema (strings, numbers, empty lists)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return fill_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return fill_schema(schema[key][0], defs)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: fill_schema(sub, defs) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if "enum" in schema:
        return schema["enum"][0]
    return "lorem ipsum dolor sit amet"


def _schema_in_prompt(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        found = re.search(r"```json\s*(\{.*?\})\s*```", content, re.S)
        if found:
            try:
                return json.loads(found.group(1))
            except json.JSONDecodeError:
                continue
    return None


def schema_responder(body: dict[str, Any]) -> str:
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    schema = schema or _schema_in_prompt(body.get("messages", []))
    if schema is None:
        return "Hello from the kgsynth test server."
    return json.dumps(fill_schema(schema))


def echo_responder(body: dict[str, Any]) -> str:
    """Copy every `<<key>> value` line of the last user message into a JSON object."""
    text = "\n".join(str(m.get("content") or "") for m in body.get("messages", []) if m.get("role") == "user")
    fields = dict(re.findall(r"^<<(\w+)>>[ \t]*(.*)$", text, re.M))
    return json.dumps(fields) if fields else schema_responder(body)


def _text_tokens(text: str) -> int:
    return len(text) // 4 + 1


# --- the server ------------------------------------------------------------------------


class LLMServer:
    """An OpenAI-compatible endpoint on a free loopback port, served from a thread."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        responder: Responder | None = None,
        json_schema: bool = True,
        json_object: bool = True,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = ("429", "500", "drop"),
        seed: int = 0,
        hang: float = 30.0,
        retry_after: float = 0.05,
        batch_delay: float = 0.0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_bodies: bool = True,
    ) -> None:
        self.latency = latency
        self.responder = responder or schema_responder
        self.json_schema = json_schema
        self.json_object = json_object
        self.fault_rate = fault_rate
        self.fault_kinds = fault_kinds
        self.hang = hang
        self.retry_after = retry_after
        self.batch_delay = batch_delay
        self.api_key = api_key
        self.host = host
        self.port = port
        self.log_bodies = log_bodies
        self.requests: list[dict[str, Any]] = []  # chat bodies, in arrival order
        self.stats: dict[str, float] = {}
        self.reset_stats()
        self._faults: list[str] = []
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def fail_next(self, *faults: str) -> None:
        """Apply these faults, in order, to the next chat requests (e.g. "429", "500")."""
        unknown = [f for f in faults if f.split(":")[0] not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {FAULTS}")
        with self._lock:
            self._faults.extend(faults)

    def reset_stats(self) -> None:
        """Zero the counters; `first_at`/`last_at` bound the time chat requests were being served."""
        self.stats = {"chat": 0, "chat_ok": 0, "faults": 0, "files": 0, "batches": 0, "first_at": 0.0, "last_at": 0.0}

    @property
    def chat_requests(self) -> int:
        return self.stats["chat"]

    def start(self) -> LLMServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="llm-server")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test LLM server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, self.host, self.port, backlog=512))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def serve_forever(self) -> None:
        """Serve on the current event loop (the subprocess form)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        print(f"READY {self.url}", flush=True)
        async with self._server:
            await self._server.serve_forever()

    # --- HTTP ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep = await self._dispatch(method, target.split("?", 1)[0], headers, body, writer)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            try:
                writer.close()
            except RuntimeError:
                pass

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        *,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(payload) if length is None else length)}
        headers.update(extra or {})
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + payload)
        await writer.drain()

    async def _error(self, writer: asyncio.StreamWriter, status: int, message: str, *, extra=None) -> bool:
        payload = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}})
        await self._send(writer, status, payload.encode(), extra=extra)
        return True

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes, writer) -> bool:
        if path == "/_stats":
            return await self._json(writer, self.stats)
        if path == "/_reset" and method == "POST":
            self.reset_stats()
            return await self._json(writer, self.stats)
        if path == "/_faults" and method == "POST":
            self.fail_next(*json.loads(body or b"[]"))
            return await self._json(writer, {"queued": len(self._faults)})
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            # Real servers echo (part of) a bad key; a client must never pass it on.
            return await self._error(writer, 401, f"Incorrect API key provided: {given}.")
        if path == "/v1/chat/completions" and method == "POST":
            return await self._chat(json.loads(body), writer)
        if path == "/v1/files" and method == "POST":
            return await self._upload(headers, body, writer)
        match = re.fullmatch(r"/v1/files/([\w-]+)(/content)?", path)
        if match and method == "GET":
            record = self._files.get(match.group(1))
            if record is None:
                return await self._error(writer, 404, f"no file {match.group(1)}")
            if match.group(2):
                await self._send(writer, 200, record["data"], content_type="application/octet-stream")
                return True
            return await self._json(writer, record["meta"])
        if path == "/v1/batches" and method == "POST":
            return await self._create_batch(json.loads(body), writer)
        match = re.fullmatch(r"/v1/batches/([\w-]+)", path)
        if match and method == "GET":
            batch = self._batches.get(match.group(1))
            if batch is None:
                return await self._error(writer, 404, f"no batch {match.group(1)}")
            return await self._json(writer, batch)
        return await self._error(writer, 404, f"no route {method} {path}")

    async def _json(self, writer, data: Any) -> bool:
        await self._send(writer, 200, json.dumps(data).encode())
        return True

    # --- chat --------------------------------------------------------------------------

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
        if self.fault_rate and self._random.random() < self.fault_rate:
            return self._random.choice(self.fault_kinds)
        return None

    def _completion(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The reply to one chat body: (status, JSON payload). Shared by chat and batches."""
        fmt = (body.get("response_format") or {}).get("type")
        if fmt == "json_schema" and not self.json_schema:
            return 400, {"error": {"message": "response_format type 'json_schema' is not supported by this server",
                                   "type": "invalid_request_error", "param": "response_format", "code": None}}
        if fmt == "json_object" and not self.json_object:
            return 400, {"error": {"message": "response_format type 'json_object' is not supported",
                                   "type": "invalid_request_error", "param": "response_format", "code": None}}
        if not body.get("messages"):
            return 400, {"error": {"message": "'messages' is required", "type": "invalid_request_error"}}
        content = self.responder(body)
        finish = "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if limit and _text_tokens(content) > limit:  # cut the reply as a real server would
            content, finish = content[: 4 * limit], "length"
        prompt_text = "".join(str(m.get("content") or "") for m in body["messages"])
        prompt_tokens, completion_tokens = _text_tokens(prompt_text), _text_tokens(content)
        return 200, {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": None,
        }

    async def _chat(self, body: dict[str, Any], writer) -> bool:
        self.stats["chat"] += 1
        if not self.stats["first_at"]:
            self.stats["first_at"] = time.time()
        if self.log_bodies:
            self.requests.append(body)
        fault = self._next_fault()
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            self.stats["faults"] += 1
            return await self._fault(fault, body, writer)
        status, payload = self._completion(body)
        if status == 200:
            self.stats["chat_ok"] += 1
        await self._send(writer, status, json.dumps(payload).encode())
        self.stats["last_at"] = time.time()
        return True

    async def _fault(self, fault: str, body: dict[str, Any], writer) -> bool:
        kind, _, arg = fault.partition(":")
        if kind == "429":
            wait = arg or f"{self.retry_after:g}"
            return await self._error(writer, 429, "Rate limit reached, slow down", extra={"Retry-After": wait})
        if kind in ("500", "503"):
            return await self._error(writer, int(kind), "The server had an error while processing your request")
        if kind == "401":
            return await self._error(writer, 401, "Incorrect API key provided")
        if kind == "timeout":
            await asyncio.sleep(float(arg or self.hang))
            return False
        if kind == "drop":
            return False
        status, payload = self._completion(body)
        data = json.dumps(payload).encode()
        if kind == "truncated":
            await self._send(writer, 200, data[: len(data) // 2], length=len(data))
            return False
        if kind == "nonjson":
            await self._send(writer, 200, b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
            return True
        if kind in ("junk", "badschema"):
            payload["choices"][0]["message"]["content"] = (
                "Sure! Here is my answer, no JSON today." if kind == "junk" else json.dumps({"unexpected": 1})
            )
            await self._send(writer, 200, json.dumps(payload).encode())
            return True
        raise AssertionError(fault)

    # --- files and batches -------------------------------------------------------------

    async def _upload(self, headers: dict[str, str], body: bytes, writer) -> bool:
        message = email.parser.BytesParser().parsebytes(
            f"Content-Type: {headers.get('content-type', '')}\r\n\r\n".encode() + body
        )
        fields: dict[str, Any] = {}
        filename = "upload.jsonl"
        for part in message.get_payload():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                filename = part.get_filename()
            fields[name] = part.get_payload(decode=True)
        file_id = f"file-{next(self._ids)}"
        meta = self._file_meta(file_id, filename, fields.get("file", b""), (fields.get("purpose") or b"batch").decode())
        self._files[file_id] = {"meta": meta, "data": fields.get("file", b"")}
        self.stats["files"] += 1
        return await self._json(writer, meta)

    @staticmethod
    def _file_meta(file_id: str, filename: str, data: bytes, purpose: str) -> dict[str, Any]:
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}

    async def _create_batch(self, body: dict[str, Any], writer) -> bool:
        source = self._files.get(body.get("input_file_id", ""))
        if source is None:
            return await self._error(writer, 400, f"no input file {body.get('input_file_id')!r}")
        lines = [json.loads(line) for line in source["data"].decode().splitlines() if line.strip()]
        batch_id = f"batch_{next(self._ids)}"
        batch = {
            "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "in_progress_at": None, "completed_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self._batches[batch_id] = batch
        self.stats["batches"] += 1
        asyncio.get_running_loop().create_task(self._run_batch(batch, lines))
        return await self._json(writer, batch)

    async def _run_batch(self, batch: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        batch["status"] = "in_progress"
        batch["in_progress_at"] = int(time.time())
        await asyncio.sleep(self.batch_delay)
        out, errors = [], []
        for n, line in enumerate(lines):
            status, payload = self._completion(line["body"])
            record = {"id": f"batch_req_{n}", "custom_id": line["custom_id"]}
            if status == 200:
                out.append({**record, "response": {"status_code": 200, "request_id": f"req_{n}", "body": payload},
                            "error": None})
            else:
                errors.append({**record, "response": {"status_code": status, "request_id": f"req_{n}",
                                                      "body": payload}, "error": None})
        for kind, records in (("output_file_id", out), ("error_file_id", errors)):
            if records:
                file_id = f"file-{next(self._ids)}"
                data = "".join(json.dumps(r) + "\n" for r in records).encode()
                self._files[file_id] = {"meta": self._file_meta(file_id, f"{kind}.jsonl", data, "batch_output"),
                                        "data": data}
                batch[kind] = file_id
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())


# --- the subprocess form ---------------------------------------------------------------


def start_subprocess(*args: str) -> tuple[subprocess.Popen, str]:
    """Start `python tests/llm_server.py ARGS…`; return the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"test LLM server failed to start: {line!r}")
    return proc, line.split(" ", 1)[1].strip()


def remote_stats(url: str, *, reset: bool = False) -> dict[str, float]:
    """The counters of a server in another process (and zero them when `reset`)."""
    import urllib.request

    request = urllib.request.Request(url.removesuffix("/v1") + ("/_reset" if reset else "/_stats"),
                                     method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--responder", choices=("schema", "echo"), default="schema")
    parser.add_argument("--no-json-schema", action="store_true")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = LLMServer(
        latency=args.latency,
        responder=echo_responder if args.responder == "echo" else schema_responder,
        json_schema=not args.no_json_schema,
        fault_rate=args.fault_rate,
        seed=args.seed,
        port=args.port,
        log_bodies=False,
    )
    try:
        asyncio.run(server.serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
