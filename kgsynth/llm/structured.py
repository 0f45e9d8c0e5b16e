"""Structured output: pydantic schemas → `response_format`, and tolerant parsing back.

Three modes, in falling order of help from the server: `json_schema` (the server
constrains decoding to the schema: OpenAI, vLLM, llama.cpp), `json_object` (valid
JSON, any shape) and `text` (no help). In the last two the schema goes into the
prompt. Every reply, whatever the mode, is parsed tolerantly (code fences and
prose around the object are cut away) and validated against the pydantic model;
junk is rejected with a reason code.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

Mode = Literal["json_schema", "json_object", "text"]
FALLBACK: dict[str, Mode | None] = {"json_schema": "json_object", "json_object": "text", "text": None}
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the strict form OpenAI requires (all fields required, no extras)."""

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: fix(v) for k, v in node.items() if k != "default"}
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            return node
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return fix(model.model_json_schema())


def response_format(mode: Mode, model: type[BaseModel], schema: dict[str, Any]) -> dict[str, Any] | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema, "strict": True}}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def with_instructions(messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Put the schema into the prompt for servers that cannot enforce it."""
    note = (
        "Reply with only one JSON object, no prose and no code fences, matching this JSON schema:\n"
        f"```json\n{json.dumps(schema, separators=(',', ':'))}\n```"
    )
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def parse_reply(text: str, model: type[BaseModel]) -> tuple[BaseModel | None, str | None]:
    """(parsed, None), or (None, reason) with reason `not_json: …` or `schema_mismatch: …`."""
    data = _loads(text)
    if data is None:
        shown = text.strip().replace("\n", " ")
        return None, f"not_json: reply is not a JSON object: {shown[:120]!r}"
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        return None, f"schema_mismatch: {where}: {first['msg']} ({exc.error_count()} error(s))"


def _loads(text: str) -> dict[str, Any] | None:
    text = _FENCE.sub("", text.strip())
    for candidate in (text, text[text.find("{") : text.rfind("}") + 1] if "{" in text else ""):
        if not candidate:
            continue
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return None
