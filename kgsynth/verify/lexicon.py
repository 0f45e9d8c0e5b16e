"""The relation lexicon: which words state a relation, and which state another one.

A step sentence ("Impaired pursuit initiation and maintenance is caused by the gene
DARS2") names two entities and, in the words between them, a relation. The lexicon
says whether those words state the relation the graph holds between the two, in
its direction, or a different, stronger or opposite one. It is built from a
vocabulary (`kgsynth.graph.vocabulary`):

- per relation, its wordings read in the stored direction (`forward` and
  `kg:paraphrase`) and against it (`inverse` and `kg:inverseParaphrase`), the
  relation families it belongs to (`kg:family`, plus every family a cue phrase of
  which occurs in its wordings), the direction ("voice") in which those families
  describe it, and whether it records an absence;
- the family cue table (`ontologies/lexicon/families.ttl`, plus `kg:RelationFamily`
  declarations of the vocabulary): phrases asserting a causal, therapeutic,
  contraindication, taxonomic, part-whole, … relation, in one direction or the
  other; the negation cues; and "neutral" phrases that contain a negation word but
  negate nothing ("not only").

Words are normalized as entity names are (`kgsynth.verify.text.words`) and lightly
stemmed (causes = caused = causing); phrases are found leftmost-longest, so "caused
by" wins over "caused". A step's words are then:

- `stated`: they contain one of the relation's own wordings for the direction the
  sentence reads, or a cue of one of its families in the right direction, or a weak
  cue ("is associated with" says less than "causes", never something else);
- `misstated`: they negate a relation that records a presence (or state as present
  one that records an absence), assert a family the relation does not belong to,
  or use the relation's wording or its family's cue in the wrong direction only;
- `unsure`: none of that ("Marfan syndrome, and with it arachnodactyly"): the
  lexicon cannot tell, and only a model can (`kgsynth.verify.relation_model`).

The template writer's steps are exactly a relation's wording, so they are judged
by one set lookup (`is_exact`) before any of the above.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from kgsynth.errors import InputFormatError
from kgsynth.graph.vocabulary import Family, Relation, Vocabulary, bundled_families, generic_relation, merge_families
from kgsynth.verify.text import words as normalized_words

STATED, MISSTATED, UNSURE = "stated", "misstated", "unsure"
NEGATION, NEUTRAL = "negation", "neutral"  # the two families with a special meaning

_END = ""  # trie key: a phrase ends here
_PARTICIPLE = "ed"  # trie key: a phrase ending here starts with a past participle ("caused by")
_BE = frozenset({"is", "are", "was", "were", "be", "been", "being"})
Tag = tuple  # ("family", name, voice) | ("relation", name, reading)


@dataclass(frozen=True)
class Judgement:
    verdict: str  # STATED, MISSTATED or UNSURE
    reason: str = ""  # for MISSTATED: what the words assert instead, quoting them


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A crude English stem, the same for a cue and for text: enough to equate inflections."""
    for suffix in ("ing", "ed", "es"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    if word.endswith("e") and len(word) > 3:
        return word[:-1]
    return word


def stems(phrase: str) -> tuple[str, ...]:
    return tuple(stem(w) for w in normalized_words(phrase))


@dataclass
class RelationEntry:
    """What the lexicon knows of one relation."""

    name: str
    label: str
    symmetric: bool
    negative: bool  # records an absence
    families: frozenset[str]  # families it belongs to (weak ones are allowed besides)
    voice: dict[str, bool | None]  # family → voice of a sentence read along the stored edge (None: either)
    exact: dict[bool, frozenset[tuple[str, ...]]]  # reading → its normalized wordings, unstemmed
    wording: dict[bool, str]  # reading → the vocabulary's phrase, for evidence


@dataclass
class _Reading:
    """What a step's words were found to say about one relation."""

    stated: str = ""  # the relation's own wording, in the right direction
    agreed: str = ""  # a cue of its families in the right direction, or a weak cue
    negated: str = ""
    conflict: str = ""
    conflict_families: tuple[str, ...] = ()
    backwards: str = ""

    @property
    def says_anything(self) -> bool:
        return bool(self.stated or self.agreed or self.negated or self.conflict or self.backwards)


@dataclass
class RelationLexicon:
    families: dict[str, Family]
    trie: dict = field(repr=False)
    entries: dict[str, RelationEntry] = field(repr=False)

    @classmethod
    def build(cls, relations: Iterable[Relation], families: dict[str, Family]) -> RelationLexicon:
        """From relations (several with one name pool their wordings) and the family table."""
        cue_trie: dict = {}
        for family in families.values():
            directed = bool(family.inverse_cues)
            for phrases, voice in ((family.cues, True if directed else None), (family.inverse_cues, False), (family.undirected_cues, None)):
                for phrase in phrases:
                    key = normalized_words(phrase)
                    _add(cue_trie, tuple(stem(w) for w in key), ("family", family.name, voice), participle=bool(key) and _participle(key[0]))
            listed = {*family.cues, *family.inverse_cues, *family.undirected_cues}
            for phrase in family.light_cues:
                _add(cue_trie, stems(phrase), ("light", family.name, None))
                if phrase not in listed:  # a light cue listed nowhere else names the family without a direction
                    _add(cue_trie, stems(phrase), ("family", family.name, None))
        pooled: dict[str, list[Relation]] = {}
        for relation in relations:
            pooled.setdefault(relation.name, []).append(relation)
        lexicon = cls(families=dict(families), trie=cue_trie, entries={})
        # relation wordings join the trie after every entry is derived from the cues alone
        wordings = []
        for name, same in pooled.items():
            entry, own = lexicon._derive(name, same)
            lexicon.entries[name] = entry
            wordings += own
        trie = _copy(cue_trie)
        for key, tags, participle in wordings:
            for tag in tags:
                _add(trie, key, tag, participle=participle)
        lexicon.trie = trie
        return lexicon

    # --- building ---------------------------------------------------------------------

    def _derive(self, name: str, same: Sequence[Relation]) -> tuple[RelationEntry, list[tuple[tuple[str, ...], set[Tag]]]]:
        symmetric = all(r.symmetric for r in same)
        read = {True: [], False: []}  # reading → wordings
        for r in same:
            read[True] += [r.forward, *r.paraphrases]
            read[False] += [r.inverse, *r.inverse_paraphrases]
        if symmetric:
            read = {True: read[True] + read[False], False: read[True] + read[False]}
        declared = {f for r in same for f in r.families}
        negative = any(r.negative for r in same)
        # Families: the declared ones (kg:family); without a declaration, those a phrase of one family
        # reading the wording names ("is a kind of"), else those a shorter phrase inside names ("cause" in
        # "can cause the side effect"). Voices come from the phrases reading the wordings.
        voices: dict[str, set] = {f: set() for f in declared}
        named: dict[str, set] = {}
        inner: dict[str, set] = {}
        found_in: dict[str, set[Tag]] = {}  # wording → what it asserts where a text uses it
        for reading, phrases in read.items():
            for phrase in phrases:
                tags = found_in.setdefault(phrase, set())
                for _, _, span in self.spans(normalized_words(phrase)):
                    tags.update(t for t in span if t[0] in ("family", "light") and t[1] != NEUTRAL)
                    light = {t[1] for t in span if t[0] == "light"}
                    claims = [(t[1], t[2]) for t in span if t[0] == "family" and t[1] != NEUTRAL and t[1] not in light]
                    if any(f == NEGATION for f, _ in claims):  # "should not be used in" is a longer cue, no negation
                        negative = True
                    claims = [(f, v) for f, v in claims if f != NEGATION]
                    for family, voice in claims:
                        if family in declared:
                            voices[family].add(_along(voice, reading))
                    if len({f for f, _ in claims}) == 1:  # a phrase of several families ("includes") names none
                        named.setdefault(claims[0][0], set()).update(_along(v, reading) for _, v in claims)
                for family, voice in self._all_cues(stems(phrase)):
                    # a shorter phrase inside says what the wording asserts too ("cause" in "can cause the side
                    # effect"), but a weak one ("associated" in "has the associated morphology") says nothing more
                    if not any(t[1] == family for t in tags) and not self.families[family].weak:
                        tags.add(("family", family, voice))
                    inner.setdefault(family, set()).add(_along(voice, reading))
        if not voices:
            voices = named or inner
        if not voices:  # a relation no cue describes: its wordings are a family of their own
            own = f"relation:{name}"
            voices[own] = {None if symmetric else True}  # its forward wording reads along the stored edge
            self.families[own] = Family(name=own, label=same[0].label)
            for reading, phrases in read.items():
                for phrase in phrases:
                    found_in[phrase].add(("family", own, None if symmetric else reading))
        voice = {f: _one(v) for f, v in voices.items()}
        entry = RelationEntry(
            name=name,
            label=same[0].label,
            symmetric=symmetric,
            negative=negative,
            families=frozenset(voices),
            voice=voice,
            exact={reading: frozenset(tuple(normalized_words(p)) for p in phrases) for reading, phrases in read.items()},
            wording={True: same[0].forward, False: same[0].phrase(False)},
        )
        tagged = [
            (stems(phrase), {("relation", name, reading), *found_in[phrase]}, _participle(normalized_words(phrase)[0]))
            for reading, phrases in read.items()
            for phrase in phrases
            if normalized_words(phrase)
        ]
        return entry, tagged

    def _all_cues(self, key: tuple[str, ...]) -> list[tuple[str, bool | None]]:
        """(family, voice) of every cue of one family anywhere in a phrase (not only leftmost-longest);
        negation and neutral phrases are no family a relation belongs to."""
        out = []
        for i in range(len(key)):
            level = self.trie
            for token in key[i:]:
                level = level.get(token)
                if level is None:
                    break
                tags = level.get(_END, ())
                light = {t[1] for t in tags if t[0] == "light"}
                claims = [(t[1], t[2]) for t in tags if t[0] == "family" and t[1] not in (NEGATION, NEUTRAL, *light)]
                if len({f for f, _ in claims}) == 1:
                    out += claims
        return out

    def entry(self, name: str) -> RelationEntry:
        """A relation's entry; a name the vocabulary lacks gets generic wording's."""
        found = self.entries.get(name)
        if found is None:
            found, _ = self._derive(name, [generic_relation(name)])
            self.entries[name] = found
        return found

    # --- judging ----------------------------------------------------------------------

    def is_exact(self, relation: str, reading: bool, words: tuple[str, ...]) -> bool:
        """Are the words exactly one of the relation's wordings for this reading? (the template's steps)"""
        entry = self.entries.get(relation)
        return entry is not None and words in entry.exact[reading]

    def spans(self, words: Sequence[str]) -> list[tuple[int, int, frozenset[Tag]]]:
        """Leftmost-longest phrases among the words: (start, end, tags).

        An active cue read as a passive participle after a form of "be" ("is often
        treated" for "treats") has its voice swapped, unless a cue of that form exists.
        """
        key = [stem(w) for w in words]
        out = []
        i, n = 0, len(key)
        while i < n:
            level, end, tags, participle = self.trie, i, None, False
            for j in range(i, n):
                level = level.get(key[j])
                if level is None:
                    break
                if _END in level:
                    end, tags, participle = j + 1, level[_END], level.get(_PARTICIPLE, False)
            if tags is None:
                i += 1
                continue
            if not participle and _participle(words[i]) and _BE.intersection(words[max(0, i - 3) : i]):
                tags = _flipped(tags)
            out.append((i, end, tags))
            i = end
        return out

    def negates(self, words: Sequence[str]) -> str:
        """The first negation among the words (a neutral phrase is none), or ''."""
        for start, end, tags in self.spans(words):
            if any(t[1] == NEGATION for t in tags if t[0] == "family"):
                return " ".join(words[start:end])
        return ""

    def judge(self, relation: str, reading: bool, words: Sequence[str], *, lead: Sequence[str] = (), trail: Sequence[str] = ()) -> Judgement:
        """What `words` (between subject and object) say about `relation` read along the stored
        edge (`reading`) or against it. `lead` (the sentence before the subject) counts for
        negation only; `trail` (after the object) only when the words between say nothing."""
        entry = self.entry(relation)
        found = self._read(entry, reading, words)
        if not found.says_anything and trail:
            found = self._read(entry, reading, trail)
        if not found.negated and lead:
            found.negated = self.negates(lead)
        return self._decide(entry, reading, found)

    def judge_any(self, facts: Sequence[tuple[str, bool]], words: Sequence[str], **scope) -> Judgement:
        """The best judgement over several facts the graph holds between the two entities."""
        judged = [self.judge(relation, reading, words, **scope) for relation, reading in facts]
        for verdict in (STATED, UNSURE):
            if any(j.verdict == verdict for j in judged):
                return Judgement(verdict)
        return judged[0] if judged else Judgement(UNSURE)

    def _read(self, entry: RelationEntry, reading: bool, words: Sequence[str]) -> _Reading:
        found = _Reading()
        right, wrong = ("relation", entry.name, reading), ("relation", entry.name, not reading)
        for start, end, tags in self.spans(words):
            phrase = " ".join(words[start:end])
            if right in tags:
                found.stated = found.stated or phrase
                continue
            families = [(t[1], t[2]) for t in tags if t[0] == "family"]
            if any(f == NEUTRAL for f, _ in families):
                continue
            if any(f == NEGATION for f, _ in families):
                found.negated = found.negated or phrase
            light = {t[1] for t in tags if t[0] == "light"}
            claims = [(f, v) for f, v in families if f != NEGATION and (f not in light or f in entry.families)]
            if not claims:
                continue
            agreed = reversed_ = False
            for family, voice in claims:
                if family in entry.families:
                    expected = entry.voice.get(family)
                    if entry.symmetric or voice is None or expected is None or (voice == expected) == reading:
                        agreed = True
                    else:
                        reversed_ = True
                elif self.families.get(family, _NO_FAMILY).weak:
                    agreed = True
            if agreed:
                found.agreed = found.agreed or phrase
            elif reversed_ or (wrong in tags and not entry.symmetric):
                found.backwards = found.backwards or phrase
            elif not found.conflict:
                found.conflict = phrase
                found.conflict_families = tuple(dict.fromkeys(f for f, _ in claims))
        return found

    def _decide(self, entry: RelationEntry, reading: bool, found: _Reading) -> Judgement:
        if entry.negative:
            if not (found.negated or found.stated) and (found.agreed or found.conflict or found.backwards):
                said = found.agreed or found.conflict or found.backwards
                return Judgement(MISSTATED, f"states as present ('{said}') what the graph records as absent")
        elif found.negated:
            return Judgement(MISSTATED, f"negates it ('{found.negated}')")
        if found.conflict:
            labels = " / ".join(self._label(f) for f in found.conflict_families)
            return Judgement(MISSTATED, f"asserts {_article(labels)} {labels} relation ('{found.conflict}')")
        if found.backwards and not (found.stated or found.agreed):
            return Judgement(MISSTATED, f"states it the wrong way round ('{found.backwards}')")
        if found.stated or found.agreed or (entry.negative and found.negated):
            return Judgement(STATED)
        return Judgement(UNSURE)

    def _label(self, family: str) -> str:
        return self.families.get(family, _NO_FAMILY).label or family


_NO_FAMILY = Family(name="")


def _add(trie: dict, key: tuple[str, ...], tag: Tag, *, participle: bool = False) -> None:
    if not key:
        return
    level = trie
    for token in key:
        level = level.setdefault(token, {})
    level[_END] = frozenset({*level.get(_END, ()), tag})
    if participle:
        level[_PARTICIPLE] = True


def _copy(trie: dict) -> dict:
    return {k: (_copy(v) if isinstance(v, dict) else v) for k, v in trie.items()}


def _participle(word: str) -> bool:
    return len(word) > 4 and word.endswith(("ed", "en"))


def _flipped(tags: frozenset[Tag]) -> frozenset[Tag]:
    """The tags of an active cue read in the passive ("is treated" for "treats"): voices swap."""
    return frozenset((t[0], t[1], not t[2]) if t[2] is not None else t for t in tags)


def _along(voice: bool | None, reading: bool) -> bool | None:
    """A cue's voice in a wording, as if the wording were read along the stored edge."""
    return voice if voice is None or reading else not voice


def _one(voices: set) -> bool | None:
    """A family's voice for a relation: the one found, or None when none or both were."""
    directed = voices - {None}
    return next(iter(directed)) if len(directed) == 1 else None


def _article(label: str) -> str:
    return "an" if label[:1].lower() in "aeiou" else "a"


def lexicon_of(vocabulary: Vocabulary) -> RelationLexicon:
    """The lexicon of a vocabulary: its relations, the bundled families plus its own.

    A relation without lexicon terms (a snapshot loaded before they existed) takes those of the
    bundled relation with its name and its exact wording, so an older snapshot reads text as a new one.
    """
    relations = [_with_bundled_terms(r) for r in vocabulary.relations.values()]
    families = merge_families(bundled_families(), vocabulary.families)
    for relation in relations:
        unknown = sorted(set(relation.families) - set(families))
        if unknown:
            raise InputFormatError(
                f"vocabulary '{vocabulary.name}': relation '{relation.name}' names relation famil{'ies' if len(unknown) > 1 else 'y'} "
                f"{', '.join(map(repr, unknown))} that no kg:RelationFamily declares; known: {', '.join(sorted(families))}. "
                "Declare it in the vocabulary file or fix the name"
            )
    return RelationLexicon.build(relations, families)


def _with_bundled_terms(relation: Relation) -> Relation:
    if relation.families or relation.paraphrases or relation.inverse_paraphrases or relation.fallback:
        return relation
    same = _bundled_relations().get((relation.name, relation.forward, relation.inverse))
    if same is None:
        return relation
    return replace(
        relation, paraphrases=same.paraphrases, inverse_paraphrases=same.inverse_paraphrases,
        families=same.families, negative=relation.negative or same.negative,
    )


@lru_cache(maxsize=1)
def _bundled_relations() -> dict[tuple[str, str, str], Relation]:
    from kgsynth.graph.vocabulary import bundled_vocabularies, load_vocabulary

    return {
        (r.name, r.forward, r.inverse): r
        for name in bundled_vocabularies()
        for r in load_vocabulary(name).relations.values()
    }


@lru_cache(maxsize=1)
def bundled_lexicon() -> RelationLexicon:
    """Every bundled vocabulary's relations in one lexicon (a name several use pools their wordings),
    for judging text without a snapshot (`kgsynth.reward.path_reward`)."""
    from kgsynth.graph.vocabulary import bundled_vocabularies, load_vocabulary

    vocabularies = [load_vocabulary(name) for name in bundled_vocabularies()]
    relations = [r for v in vocabularies for r in v.relations.values()]
    return RelationLexicon.build(relations, merge_families(bundled_families(), *(v.families for v in vocabularies)))
