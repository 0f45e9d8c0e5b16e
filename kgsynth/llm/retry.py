"""Which failures are worth another try, and how long to wait before it.

Transient: 408, 409, 429 and 5xx answers, timeouts, dropped connections, and
bodies that are not a chat completion (truncated or non-JSON, as proxies send).
The wait is exponential backoff with full jitter, or the server's `Retry-After`
(`retry-after-ms`) when it gives one, plus a little jitter so waiting clients do
not return in step.
"""

from __future__ import annotations

import email.utils
import random
import time

import openai

_TRANSIENT_STATUS = frozenset({408, 409, 429})


class BadResponse(Exception):
    """A 200 answer whose body is not a chat completion (non-JSON, truncated, no choices)."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APIConnectionError, BadResponse)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _TRANSIENT_STATUS or exc.status_code >= 500
    return False


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait, if it said."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def backoff_delay(attempt: int, exc: BaseException, *, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number `attempt` (0-based)."""
    asked = retry_after(exc)
    if asked is not None:
        return asked * (1 + 0.1 * rng.random())
    return rng.uniform(0, min(cap, base * 2**attempt))
