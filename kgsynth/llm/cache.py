"""The persistent reply cache: a re-run or a resumed run never pays for a call twice.

One sqlite file (WAL journal, so a killed process loses at most the reply being
written). A row is keyed by the hash of four parts, model, messages, parameters
and schema, and stores each part's own hash too: a reply is reused only when every
part is equal. Replies that did not parse are stored too (with `cut` when the
reply stopped at max_tokens): they are the model's answer to that request, and a
re-run reads the same verdict instead of paying for it again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    messages_hash TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    schema_hash TEXT NOT NULL,
    content TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    batch INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    cut INTEGER NOT NULL DEFAULT 0
)
"""


def digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    model: str
    messages_hash: str
    params_hash: str
    schema_hash: str

    @classmethod
    def of(cls, model: str, messages: list[dict[str, Any]], params: dict[str, Any], schema: dict[str, Any] | None) -> CacheKey:
        return cls(model, digest(messages), digest(params), digest(schema or {}))

    @property
    def key(self) -> str:
        return digest(f"{self.model}\n{self.messages_hash}\n{self.params_hash}\n{self.schema_hash}")


@dataclass(frozen=True)
class CachedReply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    batch: bool
    cut: bool = False  # the reply stopped at max_tokens


class ReplyCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(replies)")}
        if "cut" not in columns:  # a cache written before unusable replies were kept
            self._db.execute("ALTER TABLE replies ADD COLUMN cut INTEGER NOT NULL DEFAULT 0")

    def get(self, key: CacheKey) -> CachedReply | None:
        row = self._db.execute(
            "SELECT model, messages_hash, params_hash, schema_hash, content, prompt_tokens, completion_tokens, "
            "cost_usd, batch, cut FROM replies WHERE key = ?",
            (key.key,),
        ).fetchone()
        if row is None or tuple(row[:4]) != (key.model, key.messages_hash, key.params_hash, key.schema_hash):
            return None
        return CachedReply(row[4], row[5], row[6], row[7], bool(row[8]), bool(row[9]))

    def put(self, key: CacheKey, reply: CachedReply) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO replies (key, model, messages_hash, params_hash, schema_hash, content, "
            "prompt_tokens, completion_tokens, cost_usd, batch, created, cut) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key.key, key.model, key.messages_hash, key.params_hash, key.schema_hash, reply.content,
             reply.prompt_tokens, reply.completion_tokens, reply.cost_usd, int(reply.batch), time.time(), int(reply.cut)),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()
