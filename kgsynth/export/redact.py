"""Keep secrets out of everything export writes.

The card and the report quote run metadata (`generate.json`, `summary.json`,
pruning parameters) that other stages recorded; a stage that recorded, say, an
endpoint URL with a password in it must not have it published. Every text
export writes passes through `redact`: the values of secret-looking environment
variables and the password part of URLs become `[redacted]`; quoted records also
lose the values of secret-looking keys (`api_key`, `token`, …).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

REDACTED = "[redacted]"
_SECRET_WORDS = {
    "key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials",
    "auth", "authorization", "bearer",
}
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<password>[^/\s@]+)(?P<tail>@)", re.IGNORECASE)
_MIN_LENGTH = 6  # shorter values ("1", "true") would redact ordinary words


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like they hold secrets, longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if is_secret_name(k) and len(v) >= _MIN_LENGTH}
    return sorted(values, key=len, reverse=True)


def is_secret_name(name: str) -> bool:
    """`HF_TOKEN`, `OPENAI_API_KEY`, `neo4jPassword`, `api_key` yes; `prompt_tokens`, `keywords` no."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return any(word in _SECRET_WORDS for word in words)


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    for value in (*extra, *secret_values()):
        if value:
            text = text.replace(value, REDACTED)
    return _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED + m["tail"], text)
