"""What each step sentence says about the relation between its two entities.

A step is two entities named next to each other in one sentence (as the thinking
check and the path reward find them). The graph says how they are related: for two
consecutive entities of the item's path, the hop's relation in its direction; for
other pairs (grounding states several paths), every relation the graph holds between
them. The words between the two names, read with the relation lexicon
(`kgsynth.verify.lexicon`), must state one of those relations, in its direction,
without negating it; words that assert another relation are a misstatement
(`RELATION_MISSTATED`), words the lexicon cannot read are `unsure` (accepted,
or asked of a model: `kgsynth.verify.relation_model`).

The words before the first entity of a sentence count for negation ("It is not true
that A causes B"); the words after the last one count when the words between say
nothing ("A and B are not related").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

import numpy as np

from kgsynth.verify.lexicon import MISSTATED, STATED, UNSURE, Judgement, RelationLexicon
from kgsynth.verify.text import Mention, sentence_of, sentence_starts, text_words

K = TypeVar("K", bound=Hashable)
CODE = "RELATION_MISSTATED"
MODES = ("lexicon", "model", "off")  # verify's relation_check: lexicon only; unsure steps to a model; no check


@dataclass(frozen=True)
class Fact:
    """A relation the graph holds between a step's two entities."""

    relation: str
    reading: bool  # the sentence's first entity is the stored edge's source
    subject: Hashable = None  # the sentence's first and second entity (node keys), for evidence
    object: Hashable = None


@dataclass(frozen=True)
class Step(Generic[K]):
    """One step and the lexicon's verdict on it."""

    index: int  # the second entity's position among the text's mentions
    first: Mention[K]
    second: Mention[K]
    facts: tuple[Fact, ...]
    judgement: Judgement
    hop: int | None = None  # the path hop it states, when it states one


def hop_facts(
    first: Sequence[int], second: Sequence[int], path: Sequence[Hashable], relations: Sequence[str], forward: Sequence[bool]
) -> tuple[tuple[int, tuple[Fact, ...]], ...]:
    """The path hops two mentions (at these path positions) state: (hop, facts) each."""
    out = []
    for a in first:
        for b in second:
            if abs(a - b) == 1:
                k = min(a, b)
                reading = bool(forward[k]) if b > a else not forward[k]
                out.append((k, (Fact(relations[k], reading, path[a], path[b]),)))
    return tuple(out)


class StepReader(Generic[K]):
    """The steps of one text: the words of each, judged against facts with a lexicon.

    `words` are the text's words as linking counts them (`text_words`), computed when
    first needed; a template step is checked without them when the text's token ids
    (`WordIds` of `link_many`) and the relations' `wording_ids` are given.
    """

    def __init__(
        self,
        lexicon: RelationLexicon,
        text: str,
        mentions: Sequence[Mention[K]],
        *,
        words: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        base: int = 0,
        wording_ids: dict[tuple[str, bool], frozenset[tuple[int, ...]]] | None = None,
    ) -> None:
        self.lexicon, self.text, self.mentions = lexicon, text, mentions
        self._words, self._ids, self._base, self._wording_ids = words, ids, base, wording_ids

    @cached_property
    def words(self) -> Sequence[str]:
        return self._words if self._words is not None else text_words(self.text)

    @cached_property
    def _starts(self) -> list[int]:
        return sentence_starts(self.text)

    def exact(self, relation: str, reading: bool, i: int) -> bool:
        """Are the words of the step of mentions i-1 and i exactly one of the relation's wordings?"""
        first, second = self.mentions[i - 1], self.mentions[i]
        if self._ids is not None and self._wording_ids is not None:
            spelled = tuple(self._ids[self._base + first.end : self._base + second.start])
            return spelled in self._wording_ids.get((relation, reading), ())
        return self.lexicon.is_exact(relation, reading, tuple(self.words[first.end : second.start]))

    def judge(self, i: int, facts: Sequence[Fact]) -> Judgement:
        """The step of mentions i-1 and i against the facts."""
        first, second = self.mentions[i - 1], self.mentions[i]
        between = tuple(self.words[first.end : second.start])
        lead = self.lead(i)
        if not lead and any(self.lexicon.is_exact(f.relation, f.reading, between) for f in facts):
            return Judgement(STATED)
        pairs = [(f.relation, f.reading) for f in facts]
        judged = self.lexicon.judge_any(pairs, between, lead=lead)
        if judged.verdict == UNSURE and self._last_in_sentence(i):
            end = next((s for s in self._starts if s > second.end - 1), len(self.words))
            trail = self.words[second.end : end]
            if trail:
                judged = self.lexicon.judge_any(pairs, between, lead=lead, trail=trail)
        return judged

    def lead(self, i: int) -> Sequence[str]:
        """Words of the sentence before its first entity, when mention i-1 is that entity and they negate."""
        first = self.mentions[i - 1]
        if i >= 2 and self.mentions[i - 2].sentence == first.sentence:
            return ()
        before = self.words[self.mentions[i - 2].end if i >= 2 else 0 : first.start]
        if not before or not self.lexicon.negates(before):  # cheap: most sentences start with the entity
            return ()
        start = max((s for s in self._starts if s <= first.start), default=0)
        lead = self.words[start : first.start]
        return lead if self.lexicon.negates(lead) else ()

    def _last_in_sentence(self, i: int) -> bool:
        return i + 1 >= len(self.mentions) or self.mentions[i + 1].sentence != self.mentions[i].sentence

    def sentence(self, i: int) -> str:
        """The sentence of the step of mentions i-1 and i, as written."""
        return sentence_of(self.text, self.mentions[i - 1].start, self.mentions[i].end)


def path_positions(mentions: Sequence[Mention[K]], path: Sequence[K]) -> list[tuple[int, ...]]:
    """For each mention, the path positions of the nodes it may name (two path entities may share a name)."""
    where: dict[K, int | list[int]] = {}
    for k, node in enumerate(path):
        if node in where:
            held = where[node]
            where[node] = [*held, k] if isinstance(held, list) else [held, k]
        else:
            where[node] = k
    out = []
    for mention in mentions:
        if len(mention.nodes) == 1:
            k = where.get(mention.nodes[0])
            out.append(() if k is None else tuple(k) if isinstance(k, list) else (k,))
        else:
            out.append(tuple(sorted({p for node in mention.nodes for p in _as_list(where.get(node))})))
    return out


def _as_list(value) -> list[int]:
    return [] if value is None else value if isinstance(value, list) else [value]


def path_steps(
    reader: StepReader[K],
    path: Sequence[K],
    relations: Sequence[str],
    forward: Sequence[bool],
    graph_facts: Callable[[tuple[K, ...], tuple[K, ...]], tuple[Fact, ...]] | None = None,
    positions: list[tuple[int, ...]] | None = None,
) -> Iterator[Step[K]]:
    """The steps of the text the lexicon does not find stated (misstated or unsure), in reading order.

    Two consecutive path entities are judged against their hop; other pairs against
    what `graph_facts` finds between them (none given: not judged, as without a
    graph). `positions`: `path_positions(reader.mentions, path)`, when already known.
    """
    mentions = reader.mentions
    positions = positions if positions is not None else path_positions(mentions, path)
    for i in range(1, len(mentions)):
        first, second = mentions[i - 1], mentions[i]
        if first.sentence != second.sentence or first.nodes == second.nodes:
            continue
        a, b = positions[i - 1], positions[i]
        hop = _one_hop(a, b, forward)
        if hop is not None and reader.exact(relations[hop[0]], hop[1], i) and (_opens(mentions, i) or not reader.lead(i)):
            continue  # the common case: one hop in its own wording, one lookup
        hops = hop_facts(a, b, path, relations, forward)
        if hops:
            judged = [(k, facts, reader.judge(i, facts)) for k, facts in hops]  # two readings when names are shared
            k, facts, judgement = min(judged, key=lambda j: _PREFERRED.index(j[2].verdict))
            if judgement.verdict == MISSTATED and graph_facts is not None:
                # a pair the graph also joins by another relation: the sentence may state that one
                other = graph_facts(first.nodes, second.nodes)
                if other and reader.judge(i, other).verdict != MISSTATED:
                    judgement = Judgement(STATED)
            if judgement.verdict != STATED:
                yield Step(i, first, second, facts, judgement, hop=k)
        elif graph_facts is not None:
            facts = graph_facts(first.nodes, second.nodes)
            if facts:
                judgement = reader.judge(i, facts)
                if judgement.verdict != STATED:
                    yield Step(i, first, second, facts, judgement)


def plainly_stated(
    mentions: Sequence[Mention[K]],
    positions: list[tuple[int, ...]],
    relations: Sequence[str],
    forward: Sequence[bool],
    ids: Sequence[int],
    base: int,
    wording_ids: dict[tuple[str, bool], frozenset[tuple[int, ...]]],
) -> bool:
    """Is every step of the text a path hop said in its relation's own wording, first thing in its
    sentence (the template writer's text)? Then `path_steps` would find nothing; this costs no reader."""
    before = None
    for i, second in enumerate(mentions):  # inlined `_one_hop` and `_opens`: this runs for every item
        first, before = before, second
        if first is None or first.sentence != second.sentence or first.nodes == second.nodes:
            continue
        a, b = positions[i - 1], positions[i]
        if len(a) != 1 or len(b) != 1:
            return False
        a, b = a[0], b[0]
        if b == a + 1:
            k, reading = a, bool(forward[a])
        elif a == b + 1:
            k, reading = b, not forward[b]
        else:
            return False
        if first.start and (i < 2 or mentions[i - 2].end != first.start):
            return False
        if tuple(ids[base + first.end : base + second.start]) not in wording_ids.get((relations[k], reading), ()):
            return False
    return True


def _one_hop(a: tuple[int, ...], b: tuple[int, ...], forward: Sequence[bool]) -> tuple[int, bool] | None:
    """(hop, reading) when two mentions name two consecutive path entities, one reading each."""
    if len(a) == 1 and len(b) == 1 and abs(a[0] - b[0]) == 1:
        k = min(a[0], b[0])
        return k, bool(forward[k]) if b[0] > a[0] else not forward[k]
    return None


def _opens(mentions: Sequence[Mention], i: int) -> bool:
    """No word stands between mention i-1 and the start of the text or the mention before it."""
    first = mentions[i - 1]
    return first.start == 0 or (i >= 2 and mentions[i - 2].end == first.start)


_PREFERRED = (STATED, UNSURE, MISSTATED)  # a step any reading of which states its hop is stated


def engine_facts(index) -> Callable[[tuple[int, ...], tuple[int, ...]], tuple[Fact, ...]]:
    """`graph_facts` over a `GraphIndex`: every relation stored between the nodes, with its direction."""
    engine = index.engine
    names = engine.relation_names

    def between(left: tuple[int, ...], right: tuple[int, ...]) -> tuple[Fact, ...]:
        found = []
        for u in left:
            if u < 0:
                continue
            span = engine.neighbors(u)
            hit = np.isin(np.asarray(engine.indices[span]), np.asarray([v for v in right if v >= 0], dtype=np.int64))
            for rel, forward, v in zip(
                np.asarray(engine.rel[span])[hit].tolist(), np.asarray(engine.forward[span])[hit].tolist(), np.asarray(engine.indices[span])[hit].tolist(), strict=True
            ):
                found.append(Fact(names[rel], bool(forward), u, v))
        return tuple(dict.fromkeys(found))

    return between
