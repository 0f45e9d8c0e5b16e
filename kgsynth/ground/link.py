"""Entity linking for existing QA pairs: question text, gold answer and options → graph nodes.

Three methods, tried in order, each recorded on the link with its score:

1. `dictionary`: the snapshot's name + synonym matcher that verification uses
   (`GraphIndex.linker`: whole words, case- and punctuation-insensitive, longest
   match wins). Score 1.0 for a mention in the question or an answer that is a
   name; for an answer that only contains a name, the share of its words covered.
2. `embedding`: word n-grams the dictionary left uncovered (never across a
   sentence break or a common word) are embedded and compared with the embedded
   names of the nodes of the allowed types that share the most character trigrams
   with them (kgsynth.ground.embed: only those names are ever embedded); a cosine
   at or above `accept` links, else the best few nodes are kept as candidates.
3. `llm` (kgsynth.ground.llm): extraction and disambiguation for what is left.

Types: question entities may be restricted to `question_types`; the answer must
have one of `answer_types`, or, when none are given, the type most of the
dictionary-linked options have. Nodes named by the gold answer are never
question entities. Nodes with the same name (OMIM and Orphanet "Marfan syndrome")
stay together as one link's `alternatives`; path finding decides between them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from kgsynth.errors import ConfigError
from kgsynth.graph.snapshot import Snapshot
from kgsynth.ground.qa import QARecord

if TYPE_CHECKING:
    from kgsynth.ground.embed import NameIndex
    from kgsynth.ground.llm import ModelSteps

Role = Literal["question", "answer", "option"]
Method = Literal["dictionary", "embedding", "llm"]
METHODS = ("dictionary", "embedding", "llm")

# Vignette wording that is never an entity mention by itself; embedded spans stop at it.
QUESTION_WORDS = frozenset(
    """
    patient patients year years old month months week weeks day days hour hours man woman men women boy girl
    child children infant baby male female mother father brother sister family presents presented presenting
    history following likely diagnosis shows showed reveals revealed examination exam reports reported
    complains complaint brought physician doctor clinic hospital best describes described explains explained
    cause causes caused finding findings condition which what most least true false except statement statements
    regarding seen noted note found develops developed associated feature features
    """.split()
)


class Candidate(BaseModel):
    node_id: str
    name: str
    type: str
    score: float


class Link(BaseModel):
    """One mention tied (or offered) to graph nodes."""

    role: Role
    mention: str  # the mention's words, normalised
    node_id: str | None  # None: not accepted; see candidates
    name: str | None = None
    type: str | None = None
    method: Method
    score: float
    alternatives: list[str] = Field(default_factory=list)  # other nodes with exactly this name
    candidates: list[Candidate] = Field(default_factory=list)  # best nodes when not accepted
    option: str | None = None  # the option label, for role "option"

    @property
    def accepted(self) -> bool:
        return self.node_id is not None

    @property
    def node_ids(self) -> list[str]:
        return [self.node_id, *self.alternatives] if self.node_id else []


class Linked(BaseModel):
    """Every link of one QA record."""

    question: list[Link] = Field(default_factory=list)
    answer: list[Link] = Field(default_factory=list)  # accepted first; empty when nothing was found
    options: list[Link | None] = Field(default_factory=list)  # per option, None when it names no node
    answer_types: list[str] | None = None  # the types the answer was allowed to have

    @property
    def question_nodes(self) -> list[str]:
        return list(dict.fromkeys(n for link in self.question if link.accepted for n in link.node_ids))

    @property
    def answer_nodes(self) -> list[str]:
        return list(dict.fromkeys(n for link in self.answer if link.accepted for n in link.node_ids))

    def all_links(self) -> list[Link]:
        return [*self.question, *self.answer, *(o for o in self.options if o is not None)]


class LinkConfig(BaseModel):
    methods: list[Method] = Field(default_factory=lambda: ["dictionary", "embedding"])
    question_types: list[str] | None = None  # None: any type
    answer_types: list[str] | None = None  # None: inferred from the options, else any
    accept: float = Field(default=0.9, gt=0, le=1, description="Cosine at which an embedding match links (measured: bench_ground.py --precision).")
    floor: float = Field(default=0.6, ge=0, le=1, description="Cosine below which no candidate is kept.")
    candidates: int = Field(default=3, ge=1, description="Candidates kept for a mention that did not link.")
    max_span_words: int = Field(default=5, ge=1, description="Longest word n-gram embedded.")


@dataclass
class _Query:
    """One text to embed and where its answer goes."""

    record: int
    role: Role
    text: str
    types: set[str] | None
    start: int = 0  # token span, for question n-grams
    end: int = 0
    option: str | None = None


@dataclass
class _Draft:
    linked: Linked = field(default_factory=Linked)
    covered: list[bool] = field(default_factory=list)  # question tokens taken by a link
    tokens: list[str] = field(default_factory=list)
    answer_types: set[str] | None = None


class QALinker:
    """Links QA records against one (full) snapshot; the dictionary and name embeddings are built once."""

    def __init__(self, snapshot: Snapshot, config: LinkConfig | None = None) -> None:
        from kgsynth.verify.index import graph_index

        self.snapshot = snapshot
        self.config = config or LinkConfig()
        known = set(snapshot.manifest.counts.node_types)
        for option, types in (("question", self.config.question_types), ("answer", self.config.answer_types)):
            unknown = sorted(set(types or ()) - known)
            if unknown:
                raise ConfigError(
                    f"--{option}-types names {', '.join(map(repr, unknown))}, not a node type of snapshot "
                    f"'{snapshot.name}'; its types are {', '.join(sorted(known))}"
                )
        self.index = graph_index(snapshot)
        self.engine = self.index.engine
        self.dictionary = self.index.linker
        self.stop = self.index.stop_words | QUESTION_WORDS
        self._names: NameIndex | None = None

    # --- node facts ------------------------------------------------------------------

    def node_type(self, idx: int) -> str:
        return self.engine.type_names[int(self.engine.node_type[idx])]

    def _dictionary_link(self, role: Role, mention: str, nodes: Sequence[int], score: float, option: str | None = None) -> Link:
        first = nodes[0]
        return Link(
            role=role,
            mention=mention,
            node_id=self.engine.node_ids[first],
            name=self.index.names[first],
            type=self.node_type(first),
            method="dictionary",
            score=round(score, 4),
            alternatives=[self.engine.node_ids[n] for n in nodes[1:]],
            option=option,
        )

    def _typed(self, nodes: Sequence[int], types: set[str] | None) -> list[int]:
        return [n for n in nodes if types is None or self.node_type(n) in types]

    # --- the whole pass --------------------------------------------------------------

    def link(self, records: Sequence[QARecord]) -> list[Linked]:
        """Link every record: a dictionary pass, then one embedding batch for what is left."""
        from kgsynth.verify.text import tokens_with_breaks

        drafts = []
        queries: list[_Query] = []
        for r, record in enumerate(records):
            draft = _Draft()
            draft.linked.options = [self._link_text("option", o.text, None, option=o.label) for o in record.options]
            draft.answer_types = self._answer_types(draft.linked.options)
            draft.linked.answer_types = sorted(draft.answer_types) if draft.answer_types else None
            answer = self._link_text("answer", record.answer, draft.answer_types)
            draft.linked.answer = [answer] if answer is not None else []
            if answer is None and self._embedding:
                queries.append(_Query(r, "answer", record.answer, draft.answer_types))
            tokens, breaks = tokens_with_breaks(record.question)
            draft.tokens = tokens
            draft.covered = [False] * len(tokens)
            qtypes = set(self.config.question_types) if self.config.question_types else None
            for mention in self.dictionary.link(record.question):
                draft.covered[mention.start : mention.end] = [True] * (mention.end - mention.start)
                nodes = self._typed(mention.nodes, qtypes)
                if nodes:
                    text = " ".join(tokens[mention.start : mention.end])
                    draft.linked.question.append(self._dictionary_link("question", text, nodes, 1.0))
            if self._embedding:
                queries += [
                    _Query(r, "question", " ".join(tokens[s:e]), qtypes, s, e)
                    for s, e in self._spans(tokens, breaks, draft.covered)
                ]
            drafts.append(draft)
        if queries:
            self._embed_pass(queries, drafts)
        for draft in drafts:  # an answer found by embedding is known only now
            answer = set(draft.linked.answer_nodes)
            draft.linked.question = [q for q in (_without(link, answer) for link in draft.linked.question) if q is not None]
        return [d.linked for d in drafts]

    @property
    def _embedding(self) -> bool:
        return "embedding" in self.config.methods

    def _answer_types(self, options: list[Link | None]) -> set[str] | None:
        if self.config.answer_types:
            return set(self.config.answer_types)
        counts = Counter(o.type for o in options if o is not None and o.accepted and o.method == "dictionary")
        if not counts:
            return None
        top = max(counts.values())
        return {t for t, c in counts.items() if c == top}

    def _link_text(self, role: Role, text: str, types: set[str] | None, option: str | None = None) -> Link | None:
        """A whole short text (answer, option): its exact name, else the longest name inside it.

        The score is the share of the text's words the name covers (1.0: the text is a name).
        """
        from kgsynth.verify.text import words

        key = words(text)
        best: tuple[int, list[int], str] | None = None
        for mention in self.dictionary.link(text):
            nodes = self._typed(mention.nodes, types)
            span = mention.end - mention.start
            if nodes and (best is None or span > best[0]):
                best = (span, nodes, " ".join(key[mention.start : mention.end]))
        if best is None:
            return None
        return self._dictionary_link(role, best[2], best[1], best[0] / len(key), option)

    # --- embeddings --------------------------------------------------------------------

    def _spans(self, tokens: list[str], breaks: list[bool], covered: list[bool]) -> list[tuple[int, int]]:
        """Word n-grams inside runs of uncovered, non-stop tokens, never across a sentence break."""
        spans = []
        run_start = None
        for i in range(len(tokens) + 1):
            usable = i < len(tokens) and not covered[i] and tokens[i] not in self.stop and not tokens[i].isdigit()
            if usable and run_start is not None and breaks[i]:
                spans += self._ngrams(tokens, run_start, i)
                run_start = None
            if usable and run_start is None:
                run_start = i
            elif not usable and run_start is not None:
                spans += self._ngrams(tokens, run_start, i)
                run_start = None
        return spans

    def _ngrams(self, tokens: list[str], start: int, stop: int) -> list[tuple[int, int]]:
        longest = self.config.max_span_words
        return [
            (s, s + n)
            for n in range(1, min(longest, stop - start) + 1)
            for s in range(start, stop - n + 1)
            if n > 1 or len(tokens[s]) >= 4  # short single words are abbreviations the dictionary knows or noise
        ]

    def prepare(self) -> None:
        """Pay the one-off costs of embedding linking now: the name index (trigrams, and the
        vectors cached by earlier runs) and loading the model. Node names themselves are
        embedded during linking, only those some mention reaches."""
        from kgsynth.ground.embed import encode

        if self._embedding:
            self.names()
            encode([])

    def embedding_stats(self) -> dict[str, float | int] | None:
        """Node names this linker embedded and read from the cache (None: no embedding linking)."""
        return self._names.cache.stats.as_dict() if self._names is not None else None

    def names(self) -> NameIndex:
        if self._names is None:
            from kgsynth.ground.embed import name_index

            self._names = name_index(self.snapshot)
        return self._names

    def _embed_pass(self, queries: list[_Query], drafts: list[_Draft]) -> None:
        names = self.names()
        by_types: dict[frozenset[str] | None, list[int]] = {}
        for i, q in enumerate(queries):
            by_types.setdefault(frozenset(q.types) if q.types else None, []).append(i)
        found: list[list[tuple[int, float]]] = [[] for _ in queries]
        for types, members in by_types.items():
            texts = [queries[i].text.casefold() for i in members]
            hits = names.search(texts, types=set(types) if types else None, top=self.config.candidates)
            for i, hit in zip(members, hits, strict=True):
                found[i] = hit
        per_record: dict[int, list[int]] = {}
        for i, q in enumerate(queries):
            if q.role == "answer":
                drafts[q.record].linked.answer = self._embedding_links(q, found[i], names)[:1]
            else:
                per_record.setdefault(q.record, []).append(i)
        for record, members in per_record.items():
            self._pick_spans(drafts[record], [(queries[i], found[i]) for i in members], names)

    def _embedding_links(self, query: _Query, hits: list[tuple[int, float]], names) -> list[Link]:
        hits = [(row, score) for row, score in hits if score >= self.config.floor]
        if not hits:
            return []
        candidates = [
            Candidate(node_id=names.node_ids[row], name=self._name_of(names.node_ids[row]), type=names.type_names[names.row_type[row]], score=round(score, 4))
            for row, score in hits
        ]
        best = candidates[0]
        if best.score >= self.config.accept:
            return [Link(role=query.role, mention=query.text.casefold(), node_id=best.node_id, name=best.name, type=best.type,
                         method="embedding", score=best.score, candidates=candidates[1:], option=query.option)]
        return [Link(role=query.role, mention=query.text.casefold(), node_id=None, method="embedding",
                     score=best.score, candidates=candidates, option=query.option)]

    def _name_of(self, node_id: str) -> str:
        return self.index.names[self.engine.index_of(node_id)]

    def _pick_spans(self, draft: _Draft, scored: list[tuple[_Query, list[tuple[int, float]]]], names) -> None:
        """Greedy: the best-scoring spans that link, without overlaps; then a few unlinked ones as candidates.

        Linking spans outscore the rest, so every accepted span is taken before the
        first candidate is considered.
        """
        ranked = sorted(
            ((q, hits) for q, hits in scored if hits),
            key=lambda qh: (-qh[1][0][1], -(qh[0].end - qh[0].start), qh[0].start),
        )
        taken = draft.covered
        offered = 0
        for query, hits in ranked:
            if any(taken[query.start : query.end]):
                continue
            links = self._embedding_links(query, hits, names)
            if not links or (not links[0].accepted and offered >= self.config.candidates):
                continue
            offered += not links[0].accepted
            taken[query.start : query.end] = [True] * (query.end - query.start)
            draft.linked.question.append(links[0])


def _without(link: Link, nodes: set[str]) -> Link | None:
    """The link minus some nodes (the answer's); None when nothing of it is left."""
    if not link.accepted:
        candidates = [c for c in link.candidates if c.node_id not in nodes]
        return link.model_copy(update={"candidates": candidates}) if candidates else None
    if not nodes.intersection(link.node_ids):
        return link
    left = [n for n in link.node_ids if n not in nodes]
    if not left:
        return None
    if left[0] == link.node_id:
        return link.model_copy(update={"alternatives": left[1:]})
    return None  # the answer was the link's own node: its namesakes are not what the text meant


# --- the model's help, for what the offline methods left open --------------------------


def refine_with_model(linker: QALinker, records: Sequence[QARecord], linked: list[Linked], steps: ModelSteps) -> None:
    """LLM extraction for records without a question entity or an answer, then
    disambiguation of mentions that only have candidates. Links found this way say
    `method="llm"`; their score is the dictionary coverage or the cosine of the node chosen."""
    from kgsynth.ground.llm import EXTRACT, Extraction, messages, options_text
    from kgsynth.llm.client import CallFailed

    needy = [i for i, lk in enumerate(linked) if not lk.question_nodes or not lk.answer_nodes]
    requests = [
        (
            messages(
                EXTRACT,
                question=records[i].question,
                options=options_text([(o.label, o.text) for o in records[i].options]),
                answer=records[i].answer,
            ),
            Extraction,
        )
        for i in needy
    ]
    for i, reply in zip(needy, steps.run(requests, "extract"), strict=True):
        if not isinstance(reply, CallFailed):
            _add_extracted(linker, linked[i], reply.parsed)
    _disambiguate(linker, records, linked, steps)
    for lk in linked:
        answer = set(lk.answer_nodes)
        lk.question = [q for q in (_without(link, answer) for link in lk.question) if q is not None]


def _add_extracted(linker: QALinker, lk: Linked, extraction) -> None:
    qtypes = set(linker.config.question_types) if linker.config.question_types else None
    atypes = set(lk.answer_types) if lk.answer_types else None
    if not lk.answer_nodes:
        found = [link for text in extraction.answer_entities if (link := _model_link(linker, "answer", text, atypes))]
        found.sort(key=lambda link: (not link.accepted, -link.score))
        if found:
            lk.answer = found[:1]
    known = {(q.mention, q.node_id) for q in lk.question}
    for text in extraction.question_entities:
        link = _model_link(linker, "question", text, qtypes)
        if link is not None and (link.mention, link.node_id) not in known:
            known.add((link.mention, link.node_id))
            lk.question.append(link)


def _model_link(linker: QALinker, role: Role, text: str, types: set[str] | None) -> Link | None:
    """A span the model named: the dictionary first, then (if enabled) the embeddings."""
    link = linker._link_text(role, text, types)
    if link is None and linker._embedding and text.strip():
        query = _Query(0, role, text, types)
        hits = linker.names().search([text.casefold()], types=types, top=linker.config.candidates)[0]
        links = linker._embedding_links(query, hits, linker.names())
        link = links[0] if links else None
    return link.model_copy(update={"method": "llm"}) if link is not None else None


def _disambiguate(linker: QALinker, records: Sequence[QARecord], linked: list[Linked], steps: ModelSteps) -> None:
    from kgsynth.ground.llm import DISAMBIGUATE, Disambiguation, messages
    from kgsynth.llm.client import CallFailed

    work = []
    for i, lk in enumerate(linked):
        open_links = [link for link in lk.all_links() if not link.accepted and link.candidates]
        if open_links:
            work.append((i, open_links))
    requests = []
    for i, open_links in work:
        listing = "\n".join(
            f"{m}. \"{link.mention}\" ({link.role})\n"
            + "\n".join(f"   {c}. {cand.name} ({cand.type})" for c, cand in enumerate(link.candidates, start=1))
            for m, link in enumerate(open_links, start=1)
        )
        requests.append((messages(DISAMBIGUATE, question=records[i].question, answer=records[i].answer, mentions=listing), Disambiguation))
    for (i, open_links), reply in zip(work, steps.run(requests, "disambiguate"), strict=True):
        if isinstance(reply, CallFailed):
            continue
        chosen: dict[int, Link] = {}
        for pick in reply.parsed.picks:
            if 1 <= pick.mention <= len(open_links) and 1 <= pick.candidate <= len(open_links[pick.mention - 1].candidates):
                link = open_links[pick.mention - 1]
                cand = link.candidates[pick.candidate - 1]
                chosen[id(link)] = link.model_copy(
                    update={"node_id": cand.node_id, "name": cand.name, "type": cand.type, "method": "llm",
                            "score": cand.score, "candidates": [c for c in link.candidates if c is not cand]}
                )
        lk = linked[i]
        lk.question = [chosen.get(id(link), link) for link in lk.question]
        lk.answer = [chosen.get(id(link), link) for link in lk.answer]
