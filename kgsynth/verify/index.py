"""Lookup structures over the full graph, built once per snapshot and kept in memory.

The engine's CSR lists each node's neighbours in no particular relation order, and
verification asks the same question millions of times: "which neighbours does u
reach by relation r walked forward (or backward)?" Every CSR entry therefore gets
one int64 key, `((u * R + r) * 2 + forward) * N + v`, and the keys are sorted once:
an edge lookup is a binary search, and the neighbours of (u, r, forward) are one
contiguous run of keys, for whole batches of items at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from kgsynth.graph.engine import Engine, open_engine
from kgsynth.graph.snapshot import Snapshot
from kgsynth.verify.lexicon import RelationLexicon, lexicon_of
from kgsynth.verify.text import COMMON_WORDS, EntityLinker, normalize, words

_CACHE: dict[str, GraphIndex] = {}
OFFSET_TABLE_MAX = 1 << 26  # (node, relation, direction) slots; 512 MB of int64 at most


def unique_ints(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values. (numpy 2.4's hash-based np.unique is very slow on many distinct int64.)"""
    values = np.sort(values, kind="stable" if values.dtype == bool else None)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def member(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """values ∈ sorted_unique, elementwise, by binary search."""
    if not len(sorted_unique):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_unique, values), len(sorted_unique) - 1)
    return sorted_unique[at] == values
_LOCK = threading.Lock()


@dataclass
class GraphIndex:
    snapshot: Snapshot
    engine: Engine
    symmetric: np.ndarray  # bool [R]: the relation is symmetric (stored once, src < dst)
    keys: np.ndarray = field(repr=False)  # int64, sorted: one key per CSR entry (see module doc)

    @property
    def n(self) -> int:
        return self.engine.n_nodes

    @property
    def r(self) -> int:
        return max(len(self.engine.relation_names), 1)

    def base(self, u: np.ndarray, rel: np.ndarray, forward: np.ndarray) -> np.ndarray:
        """The key prefix of (u, rel, forward); its entries are keys in [base*N, (base+1)*N)."""
        return (u.astype(np.int64) * self.r + rel) * 2 + forward.astype(np.int64)

    def has_entries(self, u: np.ndarray, rel: np.ndarray, forward: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Vectorised: is there an entry u → v with that relation, walked that way?

        A binary search inside each (u, rel, forward) run: a few steps over a short
        run instead of ~23 cache-missing steps over all keys.
        """
        shape = np.broadcast(u, rel, forward, v).shape
        lo, hi, base = self.ranges(*(np.broadcast_to(x, shape).ravel() for x in (u, rel, forward)))
        wanted = base + np.broadcast_to(v, shape).ravel()
        lo, hi = lo.copy(), hi.copy()
        keys = self.keys
        while True:
            open_ = lo < hi
            if not open_.any():
                break
            mid = (lo + hi) // 2
            below = open_ & (keys[np.minimum(mid, len(keys) - 1)] < wanted)
            above = open_ & ~below
            lo[below] = mid[below] + 1
            hi[above] = mid[above]
        found = lo < len(keys)
        found[found] = keys[lo[found]] == wanted[found]
        return found.reshape(shape)

    @cached_property
    def offsets(self) -> np.ndarray | None:
        """Where each (u, rel, forward) run of keys starts, when that table is small enough.

        A direct table turns each range lookup into two reads instead of two binary
        searches through all keys (cache misses dominate those). Graphs with very
        many nodes × relations fall back to the binary searches.
        """
        size = self.n * self.r * 2
        if size > OFFSET_TABLE_MAX:
            return None
        counts = np.bincount(self.keys // self.n, minlength=size)
        table = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(counts, out=table[1:])
        return table

    def ranges(self, u: np.ndarray, rel: np.ndarray, forward: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first key position, end position, key base) of the (u, rel, forward) runs."""
        base = self.base(u, rel, forward)
        table = self.offsets
        if table is not None:
            return table[base], table[base + 1], base * self.n
        base = base * self.n
        return np.searchsorted(self.keys, base), np.searchsorted(self.keys, base + self.n), base

    def neighbours(
        self, rows: np.ndarray, u: np.ndarray, rel: np.ndarray, forward: np.ndarray, *, limit: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """All (row, v) with an entry u → v by `rel` walked `forward`, one request per row.

        With `limit`, at most that many per request (the lowest v); callers that
        need exact sets must check `hi - lo` themselves via `degree_of`.
        """
        lo, hi, base = self.ranges(u, rel, forward)
        counts = hi - lo if limit is None else np.minimum(hi - lo, limit)
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(rows)), counts)
        starts = np.cumsum(counts) - counts
        at = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, counts)
        return rows[owner], self.keys[at] - base[owner]

    def degree_of(self, u: np.ndarray, rel: np.ndarray, forward: np.ndarray) -> np.ndarray:
        """How many neighbours (u, rel, forward) has."""
        lo, hi, _ = self.ranges(u, rel, forward)
        return hi - lo

    @cached_property
    def pair_keys(self) -> np.ndarray:
        """Sorted `min(u, v) * N + max(u, v)` of every edge, for "are u and v adjacent at all?"."""
        e = self.engine
        lo = np.minimum(e.edge_src, e.edge_dst).astype(np.int64)
        hi = np.maximum(e.edge_src, e.edge_dst).astype(np.int64)
        return unique_ints(lo * self.n + hi)

    def adjacent(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        wanted = np.minimum(u, v).astype(np.int64) * self.n + np.maximum(u, v)
        keys = self.pair_keys
        if not len(keys):
            return np.zeros(len(wanted), dtype=bool)
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return keys[at] == wanted

    @cached_property
    def node_table(self) -> pl.DataFrame:
        """id → engine index, for joining item tables."""
        return pl.DataFrame(
            {"id": self.engine.node_ids, "idx": np.arange(self.n, dtype=np.int64)},
            schema={"id": pl.String, "idx": pl.Int64},
        )

    @cached_property
    def node_info(self) -> pl.DataFrame:
        """idx, name, synonyms of every node, in engine order."""
        return (
            self.snapshot.nodes.select("id", "name", "synonyms")
            .join(self.node_table, on="id", how="inner")
            .sort("idx")
            .select("idx", "name", "synonyms")
        )

    @cached_property
    def names(self) -> list[str]:
        return self.node_info["name"].to_list()

    def forms_of(self, node: int) -> tuple[str, ...]:
        """A node's normalized names; for a node the dictionary leaves out (its names are
        all common words, like the gene WAS), its own normalized name and synonyms."""
        found = self.linker.forms.get(node)
        if found:
            return found
        row = self.node_info.row(node, named=True)
        return tuple(dict.fromkeys(f for f in (normalize(t) for t in [row["name"], *(row["synonyms"] or [])]) if f))

    @cached_property
    def stop_words(self) -> frozenset[str]:
        """Common English words plus the vocabulary's own wording: never entity mentions."""
        vocab = self.snapshot.vocabulary
        texts = [t.label for t in vocab.node_types.values()] + [t.name for t in vocab.node_types.values()]
        for relation in vocab.relations.values():
            texts += [relation.label, relation.forward, relation.inverse]
        return COMMON_WORDS | {w for text in texts for w in words(text)}

    @cached_property
    def lexicon(self) -> RelationLexicon:
        """The relation lexicon of the snapshot's vocabulary (`kgsynth.verify.lexicon`)."""
        return lexicon_of(self.snapshot.vocabulary)

    @cached_property
    def wording_ids(self) -> dict[tuple[str, bool], frozenset[tuple[int, ...]]]:
        """(relation, reading) → its wordings as the linker's token ids: a template step is then
        checked on the ids linking found, without its words (`kgsynth.verify.relation`)."""
        vocab = self.linker.vocab
        return {
            (name, reading): frozenset(tuple(vocab[w] for w in wording) for wording in wordings if all(w in vocab for w in wording))
            for name, entry in self.lexicon.entries.items()
            for reading, wordings in entry.exact.items()
        }

    @cached_property
    def linker(self) -> EntityLinker[int]:
        """Names and synonyms of every node, keyed by engine index."""
        nodes = self.node_info
        entries: list[tuple[int, str]] = list(zip(nodes["idx"].to_list(), nodes["name"].to_list(), strict=True))
        synonyms = nodes.select("idx", "synonyms").explode("synonyms").drop_nulls()
        entries += zip(synonyms["idx"].to_list(), synonyms["synonyms"].to_list(), strict=True)
        wordings = [p for r in self.snapshot.vocabulary.relations.values() for p in (r.forward, r.inverse, *r.paraphrases, *r.inverse_paraphrases)]
        return EntityLinker.build(entries, stop=self.stop_words, extra_words=sorted({w for p in wordings for w in words(p)}))


def graph_index(snapshot: Snapshot) -> GraphIndex:
    """The index of a snapshot, built on first use and kept for the process."""
    with _LOCK:
        index = _CACHE.get(snapshot.hash)
        if index is None:
            index = _build(snapshot)
            _CACHE.clear()  # one graph at a time: a PrimeKG-sized index is a few hundred MB
            _CACHE[snapshot.hash] = index
        return index


def _build(snapshot: Snapshot) -> GraphIndex:
    engine = open_engine(snapshot)
    n, r = engine.n_nodes, max(len(engine.relation_names), 1)
    src = np.asarray(engine.edge_src, dtype=np.int64)
    dst = np.asarray(engine.edge_dst, dtype=np.int64)
    rel = np.asarray(engine.edge_rel, dtype=np.int64)
    keys = np.concatenate([((src * r + rel) * 2 + 1) * n + dst, ((dst * r + rel) * 2) * n + src])
    keys.sort()
    vocabulary = snapshot.vocabulary
    symmetric = np.array(
        [vocabulary.relations[name].symmetric if name in vocabulary.relations else False for name in engine.relation_names],
        dtype=bool,
    )
    return GraphIndex(snapshot=snapshot, engine=engine, symmetric=symmetric, keys=keys)
