"""Entity mentions in free text: normalization and longest-match linking to graph nodes.

Text and names are normalized the same way: casefold, every run of punctuation or
underscores becomes one space. A name matches only as whole words, and at each
position the longest name wins, so "Focal epilepsy" links to that node and not to
"Epilepsy". Names made only of common English words or of the vocabulary's own
wording ("All", "WAS", "kind") are not linked: in running text they are words, not
mentions.

Sentences matter for the thinking check: two mentions are asserted as related
when they are adjacent within one sentence. A sentence break inside a matched name
("Recurrent E. coli infections") is not a break.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Generic, NamedTuple, TypeVar

import numpy as np
import polars as pl

K = TypeVar("K", bound=Hashable)

_WORD = re.compile(r"[^\W_]+")
# Words, and candidate sentence ends: punctuation before a space or the end, or a
# blank line. A candidate followed by a lower-case word ends no sentence ("e.g. the",
# "E. coli", a name that ends with a full stop).
_WORD_OR_BREAK = re.compile(r"[^\W_]+|[.!?;:](?=\s|$)|\n\s*\n")
_BREAK_START = ".!?;:\n"
# the same in Rust's regex dialect (no look-ahead: a sentence end keeps its space)
_STREAM = r"[^\W_]+|[.!?;:](?:\s|$)|\n\s*\n"
_ASCII = r"^[\x00-\x7f]*$"

# Function words and the commonest English words that are also gene symbols or
# ontology labels (WAS, SET, MET, REST, MAX, CAT, All, …).
COMMON_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can cannot could did do does doing down during each either else ever few for from
    further had has have having he her here hers herself him himself his how however i if in into is it its
    itself just may me might more most must my myself neither no nor not now of off on once only or other
    ought our ours ourselves out over own same shall she should so some such than that the their theirs them
    themselves then there these they this those through thus to too under until up upon very was we were what
    when where whether which while who whom whose why will with within without would yet you your yours
    yourself yourselves one two three first second last next new old large small big high low long short
    set met rest max cat impact clock was were get got make made via per see use used like well type kind
    form part case cases answer answers option options question step steps therefore hence so
    """.split()
)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a linking loop.

    A snapshot's name trie is millions of dicts; collections triggered by the small
    tuples linking allocates would walk all of them again and again. Linking makes
    no reference cycles, so nothing is left for the collector to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def words(text: str) -> list[str]:
    """Normalized tokens of a text or a name."""
    return _WORD.findall(text.casefold())


def normalize(text: str) -> str:
    """Casefolded, punctuation-free, single-spaced form used for all name comparisons."""
    return " ".join(words(text))


def normalized_texts(texts: pl.Series) -> list[str]:
    """`normalize` of many texts at once (ASCII in bulk, the rest one by one)."""
    texts = texts.fill_null("")
    out = texts.str.to_lowercase().str.extract_all(r"[^\W_]+").list.join(" ").to_list()
    for i in (~texts.str.contains(_ASCII)).arg_true().to_list():
        out[i] = normalize(texts[i])
    return out


def linked_words(texts: pl.Series) -> list[list[str]]:
    """Each text's words as `link` and `link_many` count them: `Mention.start`/`end` index into these."""
    texts = texts.fill_null("")
    out = [t.split() for t in texts.str.to_lowercase().str.extract_all(r"[^\W_]+").list.join(" ").to_list()]
    for i in (~texts.str.contains(_ASCII)).arg_true().to_list():
        out[i] = text_words(texts[i])
    return out


def text_words(text: str) -> list[str]:
    """One text's words as `link` counts them (`linked_words` for a single text)."""
    return [t.casefold() for t in _WORD.findall(text)]


def sentence_of(text: str, start: int, end: int) -> str:
    """The sentence holding words start..end-1 (offsets as `link` counts them), as the text writes it."""
    begin, finish, word = 0, len(text), 0
    matches = list(_WORD_OR_BREAK.finditer(text))
    for k, match in enumerate(matches):
        if match.group()[0] not in _BREAK_START:
            word += 1
            continue
        following = matches[k + 1].group() if k + 1 < len(matches) else ""
        if following[:1].islower():
            continue
        if word <= start:
            begin = match.end()
        elif word >= end:
            finish = match.end()
            break
    return " ".join(text[begin:finish].split())


def sentence_starts(text: str) -> list[int]:
    """Word offsets at which a sentence starts (0 first)."""
    _, breaks = tokens_with_breaks(text)
    return [0] + [k for k, b in enumerate(breaks) if b]


def _stream(text: str) -> list[str]:
    """Casefolded words, and "." for each sentence end, in reading order."""
    raw = _WORD_OR_BREAK.findall(text)
    out = []
    for k, token in enumerate(raw):
        if token[0] in _BREAK_START:
            following = raw[k + 1] if k + 1 < len(raw) else ""
            if not following[:1].islower():
                out.append(".")
        else:
            out.append(token.casefold())
    return out


def tokens_with_breaks(text: str) -> tuple[list[str], list[bool]]:
    """Tokens, and for each whether a sentence ends right before it."""
    tokens: list[str] = []
    breaks: list[bool] = []
    pending = False
    for token in _stream(text):
        if token == ".":
            pending = True
            continue
        breaks.append(pending and bool(tokens))
        tokens.append(token)
        pending = False
    return tokens, breaks


@dataclass(frozen=True)
class WordIds:
    """A batch of texts' words as the linker's token ids (`_OTHER` for a word it lacks), text after text.

    Text r's word k (as `Mention` offsets count them) is `ids[starts[r] + k]`, when
    `usable[r]` (not for texts `link_many` linked one by one, whose casefolding may differ).
    """

    ids: list[int]
    starts: list[int]
    usable: list[bool]


class Mention(NamedTuple, Generic[K]):
    start: int  # token offsets, end exclusive
    end: int
    sentence: int
    nodes: tuple[K, ...]  # every node with this name or synonym


_END = -1  # trie key of "a name ends here"
_BREAK = -2  # token id of a sentence end
_OTHER = -3  # token id of a word no name uses


@dataclass
class EntityLinker(Generic[K]):
    """A name + synonym dictionary of nodes, matched longest-first on whole words.

    Keys are whatever identifies a node for the caller (engine indices for the
    snapshot linker, node ids for a single item's path). The dictionary is a trie
    over token ids, so linking costs a few dict lookups per name-starting word
    whatever its size; `link_many` finds those words for a whole batch in bulk.
    """

    trie: dict
    vocab: dict[str, int]  # every token some name uses (and the extra words asked for) → its id
    forms: dict[K, tuple[str, ...]] = field(default_factory=dict)  # node → its normalized names

    @classmethod
    def build(
        cls, entries: Iterable[tuple[K, str]], *, stop: frozenset[str] = COMMON_WORDS, extra_words: Iterable[str] = ()
    ) -> EntityLinker[K]:
        """From (node, name-or-synonym) pairs; names of only `stop` words are left out.
        `extra_words` get token ids too (no name): `WordIds` can then spell them."""
        with gc_paused():
            linker = cls._build(entries, stop)
        for word in extra_words:
            linker.vocab.setdefault(word, len(linker.vocab))
        return linker

    @classmethod
    def _build(cls, entries: Iterable[tuple[K, str]], stop: frozenset[str]) -> EntityLinker[K]:
        trie: dict = {}
        vocab: dict[str, int] = {}
        forms: dict[K, list[str]] = {}
        for node, text in entries:
            if not text:
                continue
            key = words(text)
            if not key or all(token in stop for token in key):
                continue
            level = trie
            for token in key:
                level = level.setdefault(vocab.setdefault(token, len(vocab)), {})
            holders = level.setdefault(_END, [])
            if node not in holders:
                holders.append(node)
                forms.setdefault(node, []).append(" ".join(key))
        _freeze(trie)
        return cls(trie=trie, vocab=vocab, forms={node: tuple(dict.fromkeys(fs)) for node, fs in forms.items()})

    @cached_property
    def _roots(self) -> np.ndarray:
        """Per token id: does some name start with it?"""
        roots = np.zeros(max(len(self.vocab), 1), dtype=bool)
        roots[[t for t in self.trie if t >= 0]] = True
        return roots

    def link(self, text: str, extra: Mapping[tuple[str, ...], tuple[K, ...]] | None = None) -> list[Mention[K]]:
        """Leftmost-longest, non-overlapping mentions in reading order.

        `extra` adds names the dictionary left out (a path entity called "WAS"),
        as normalized token tuples. Offsets count the tokens of `tokens_with_breaks(text)`.
        """
        tokens = _stream(text)
        vocab = self.vocab
        ids = [_BREAK if t == "." else vocab.get(t, _OTHER) for t in tokens]
        words_before, sentences = [], []
        count = sentence = 0
        for t in ids:
            words_before.append(count)
            sentences.append(sentence)
            if t == _BREAK:
                sentence += 1 if count else 0  # text before the first word is no sentence
            else:
                count += 1
        roots = self.trie
        firsts = {key[0] for key in extra or () if key}
        starts = [i for i, t in enumerate(ids) if t in roots or tokens[i] in firsts]
        return self._walk(ids, 0, len(ids), starts, words_before, sentences, tokens if extra else None, extra)

    def link_many(self, texts: pl.Series, *, word_ids: bool = False):
        """`link` for a whole column of texts, the same mentions, much faster.

        Tokens are found and looked up in bulk (ASCII texts: lower-casing equals
        casefolding there; other texts go through `link` one by one); Python then
        walks the trie only from words that start some name. With `word_ids`,
        returns (mentions, `WordIds`): every text's words as token ids, found on the way.
        """
        texts = texts.fill_null("")
        n = len(texts)
        token = pl.col("token")
        stream = (
            texts.str.extract_all(_STREAM).alias("token").to_frame()
            .with_row_index("row").explode("token").drop_nulls("token")
            .with_columns(token.str.contains(r"^[.!?;:\n]").alias("end"))
            .filter(~pl.col("end") | ~token.shift(-1).over("row").str.contains(r"^\p{Ll}").fill_null(False))
            .with_columns(token.str.to_lowercase())
        )
        vocab = pl.DataFrame({"token": list(self.vocab), "id": list(self.vocab.values())}, schema={"token": pl.String, "id": pl.Int64})
        stream = stream.join(vocab, on="token", how="left", maintain_order="left")
        ids = np.where(stream["end"].to_numpy(), _BREAK, stream["id"].fill_null(_OTHER).to_numpy())
        rows = stream["row"].to_numpy().astype(np.int64)
        bounds = np.searchsorted(rows, np.arange(n + 1))
        sizes, first = np.diff(bounds), np.minimum(bounds[:-1], max(len(ids) - 1, 0))

        def per_row(counted: np.ndarray) -> np.ndarray:  # how many counted tokens precede each token, in its text
            before = np.cumsum(counted) - counted
            return before - np.repeat(before[first], sizes) if len(before) else before

        words_before = per_row((ids != _BREAK).astype(np.int64))
        sentences = per_row(((ids == _BREAK) & (words_before > 0)).astype(np.int64))  # as `link` counts them
        start_at = np.flatnonzero(self._roots[np.maximum(ids, 0)] & (ids >= 0))
        start_bounds = np.searchsorted(start_at, bounds)
        ids_list, words_list, sentence_list = ids.tolist(), words_before.tolist(), sentences.tolist()
        starts, start_bounds = start_at.tolist(), start_bounds.tolist()
        bounds = bounds.tolist()
        out = [
            self._walk(ids_list, bounds[r], bounds[r + 1], starts[start_bounds[r] : start_bounds[r + 1]], words_list, sentence_list)
            for r in range(n)
        ]
        other = (~texts.str.contains(_ASCII)).arg_true().to_list()
        for r in other:
            out[r] = self.link(texts[r])
        if not word_ids:
            return out
        spoken = ids != _BREAK
        usable = [True] * n
        for r in other:
            usable[r] = False
        starts_of_words = np.searchsorted(rows[spoken], np.arange(n)).tolist()
        return out, WordIds(ids=ids[spoken].tolist(), starts=starts_of_words, usable=usable)

    def _walk(
        self,
        ids: list[int],
        lo: int,
        hi: int,
        starts: list[int],
        words_before: list[int],
        sentences: list[int],
        tokens: list[str] | None = None,
        extra: Mapping[tuple[str, ...], tuple[K, ...]] | None = None,
    ) -> list[Mention[K]]:
        """Leftmost-longest matches in ids[lo:hi], trying only the given start positions."""
        get = self.trie.get
        mentions: list[Mention[K]] = []
        taken = lo  # matches may not start before this position
        inner = 0  # sentence ends inside names matched so far: they end no sentence
        for i in starts:
            if i < taken:
                continue
            level = get(ids[i])
            end, nodes, inside = i + 1, None, 0
            if level is not None:
                nodes = level.get(_END)
                j, skipped = i + 1, 0
                while j < hi:
                    token = ids[j]
                    if token == _BREAK:  # a name may contain one ("E. coli")
                        j += 1
                        skipped += 1
                        continue
                    level = level.get(token)
                    if level is None:
                        break
                    j += 1
                    if _END in level:
                        end, nodes, inside = j, level[_END], skipped
            if extra:
                for key, holders in extra.items():
                    if (nodes is None or i + len(key) > end) and tuple(tokens[i : i + len(key)]) == key:
                        end, nodes, inside = i + len(key), holders, 0
            if nodes is None:
                continue
            last = end - 1  # the match's last word (a break never ends a match)
            mentions.append(Mention(words_before[i], words_before[last] + 1, sentences[i] - inner, nodes))
            inner += inside
            taken = end
        return mentions

    def mentions_any(
        self,
        text: str,
        nodes: Iterable[K],
        *,
        mask: Iterable[K] = (),
        forms: Callable[[K], tuple[str, ...]] | None = None,
        normalized: bool = False,
    ) -> list[tuple[K, str]]:
        """Which of `nodes` a text names (any name or synonym, as whole words): (node, form) each.

        An occurrence that lies inside a longer name of a `mask` node (the anchor a
        question must name) does not count: "Seizure" inside "Focal-onset seizure".
        `forms` gives a node's normalized names (default: the dictionary's);
        `normalized` says the text is already `normalize`d.
        """
        forms = forms or (lambda node: self.forms.get(node, ()))
        padded = f" {text if normalized else normalize(text)} "
        covers = [(at, at + len(form) + 2) for node in mask for form in forms(node) for at in _find_all(padded, f" {form} ")]
        found = []
        for node in nodes:
            for form in forms(node):
                needle = f" {form} "
                if any(
                    not any(a <= at and at + len(needle) <= b and b - a > len(needle) for a, b in covers)
                    for at in _find_all(padded, needle)
                ):
                    found.append((node, form))
                    break
        return found


def _find_all(haystack: str, needle: str) -> list[int]:
    at, out = haystack.find(needle), []
    while at >= 0:
        out.append(at)
        at = haystack.find(needle, at + 1)
    return out


def linker_for_names(named: Mapping[K, Iterable[str]]) -> EntityLinker[K]:
    """A linker over a few nodes' names (for a single item, without the snapshot)."""
    return EntityLinker.build((node, name) for node, names in named.items() for name in names)


def _freeze(level: dict) -> None:
    """Node lists become tuples: mentions share them and must not change them."""
    for key, value in level.items():
        if key == _END:
            level[key] = tuple(value)
        else:
            _freeze(value)
