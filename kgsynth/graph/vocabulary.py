"""The relation and node-type vocabulary, read from RDF (Turtle) with rdflib.

A vocabulary says, for each relation stored in `edges.relation`: its label, the
verb phrase that states it in the stored direction (`forward`, "X <forward> Y")
and in the other direction (`inverse`, "Y <inverse> X"), whether it is symmetric,
its domain and range node types, and optionally the name the source uses for it
read the other way (`inverse_name`: UMLS lists `may_treat` and `may_be_treated_by`;
a snapshot stores only the first). Verbalization, canonical edge direction,
Neo4j type names and verification all read it from here.

For verification's relation lexicon (`kgsynth.verify.lexicon`) a relation may also
list accepted paraphrases (`kg:paraphrase` reads like `forward`,
`kg:inverseParaphrase` like `inverse`), the relation families it belongs to
(`kg:family`: causal, therapeutic, taxonomic, …) and whether it records an absence
(`kg:negative`); and a vocabulary may declare families of its own or add cue
phrases to the bundled ones (`kg:RelationFamily`, see
`ontologies/lexicon/families.ttl`).

Bundled vocabularies live in `ontologies/<name>.ttl`; every snapshot carries the
part it uses as `vocabulary.ttl`, so later stages never guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from kgsynth.errors import InputFormatError, SourceNotFoundError, UnknownRelationError

NS = "https://w3id.org/kgsynth/vocab#"
RELATION_NS = "https://w3id.org/kgsynth/relation/"
TYPE_NS = "https://w3id.org/kgsynth/type/"
FAMILY_NS = "https://w3id.org/kgsynth/family/"

# A name that is safe as a Neo4j relationship type / label and in an IRI.
_SAFE = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True)
class Relation:
    name: str
    label: str
    forward: str
    inverse: str
    symmetric: bool = False
    domain: tuple[str, ...] = ()
    range: tuple[str, ...] = ()
    fallback: bool = False  # made up for a relation the vocabulary did not know
    inverse_name: str | None = None  # the source's name for this relation read backwards
    paraphrases: tuple[str, ...] = ()  # other accepted wordings, read like `forward`
    inverse_paraphrases: tuple[str, ...] = ()  # read like `inverse`
    families: tuple[str, ...] = ()  # relation families (kg:family), e.g. "causal"
    negative: bool = False  # the relation records an absence ("does not present with")

    def __post_init__(self) -> None:
        for name in ("domain", "range", "paraphrases", "inverse_paraphrases", "families"):  # JSON gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def phrase(self, forward: bool) -> str:
        """The verb phrase for a hop walked along (True) or against the stored edge."""
        return self.forward if forward or self.symmetric else self.inverse


@dataclass(frozen=True)
class Family:
    """A kind of relation a sentence can assert, and the phrases that assert it.

    `cues` put the sentence's subject in the family's first role (the cause, the
    drug that treats, the narrower term, the part); `inverse_cues` in its second
    ("is caused by", "has as a subtype"); `undirected_cues` name the family without
    saying which end is which ("causally linked"). A family without inverse cues
    (association, interaction) has no direction at all. `light_cues` are some of
    those phrases that also mean other things ("shows", "involves", "found in"): they
    state the family for a relation that belongs to it and count against no other.
    `weak` families make a claim every relation that records a presence allows
    ("is associated with").
    """

    name: str
    label: str = ""
    cues: tuple[str, ...] = ()
    inverse_cues: tuple[str, ...] = ()
    undirected_cues: tuple[str, ...] = ()
    light_cues: tuple[str, ...] = ()
    weak: bool = False

    def __post_init__(self) -> None:
        for name in ("cues", "inverse_cues", "undirected_cues", "light_cues"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def merged(self, other: Family) -> Family:
        """This family with another declaration's cues added."""
        return Family(
            name=self.name,
            label=other.label or self.label,
            cues=tuple(sorted(set(self.cues) | set(other.cues))),
            inverse_cues=tuple(sorted(set(self.inverse_cues) | set(other.inverse_cues))),
            undirected_cues=tuple(sorted(set(self.undirected_cues) | set(other.undirected_cues))),
            light_cues=tuple(sorted(set(self.light_cues) | set(other.light_cues))),
            weak=self.weak or other.weak,
        )


@dataclass(frozen=True)
class NodeType:
    name: str
    label: str
    neo4j_label: str


@dataclass
class Vocabulary:
    name: str
    relations: dict[str, Relation] = field(default_factory=dict)
    node_types: dict[str, NodeType] = field(default_factory=dict)
    families: dict[str, Family] = field(default_factory=dict)  # declared here (the bundled ones are not copied in)

    def relation(self, name: str) -> Relation:
        try:
            return self.relations[name]
        except KeyError:
            known = ", ".join(sorted(self.relations)) or "(none)"
            raise UnknownRelationError(
                f"unknown relation '{name}' for vocabulary '{self.name}'; known: {known}. "
                "Add it to a vocabulary file (--vocabulary FILE.ttl) or pass "
                "--allow-unknown-relations to use generic wording"
            ) from None

    def node_type(self, name: str) -> NodeType:
        try:
            return self.node_types[name]
        except KeyError:
            known = ", ".join(sorted(self.node_types)) or "(none)"
            raise UnknownRelationError(
                f"unknown node type '{name}' for vocabulary '{self.name}'; known: {known}"
            ) from None

    def canonical_names(self) -> dict[str, tuple[str, bool]]:
        """Every relation name and inverse name → (relation to store, whether to reverse the edge)."""
        names = {r.inverse_name: (r.name, True) for r in self.relations.values() if r.inverse_name}
        names.update((r, (r, False)) for r in self.relations)
        return names

    def check_relations(self, names: list[str], *, allow_unknown: bool, where: str = "") -> Vocabulary:
        """Return self, or a copy with generic entries for unknown names when allowed."""
        unknown = sorted(set(names) - set(self.relations))
        if not unknown:
            return self
        if not allow_unknown:
            known = ", ".join(sorted(self.relations)) or "(none)"
            shown = ", ".join(repr(u) for u in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            prefix = f"{where}: " if where else ""
            raise UnknownRelationError(
                f"{prefix}unknown relation(s) {shown}{more} for vocabulary '{self.name}'; "
                f"known: {known}. Add them to a vocabulary file (--vocabulary FILE.ttl) "
                "or pass --allow-unknown-relations to use generic wording"
            )
        extra = {u: generic_relation(u) for u in unknown}
        return replace(self, relations={**self.relations, **extra})

    def check_node_types(self, names: list[str]) -> Vocabulary:
        """Node types are open: unknown ones get a derived label."""
        unknown = sorted(set(names) - set(self.node_types))
        if not unknown:
            return self
        extra = {u: generic_node_type(u) for u in unknown}
        return replace(self, node_types={**self.node_types, **extra})

    def subset(self, relations: list[str], node_types: list[str]) -> Vocabulary:
        return Vocabulary(
            name=self.name,
            relations={r: self.relations[r] for r in sorted(set(relations))},
            node_types={t: self.node_types[t] for t in sorted(set(node_types)) if t in self.node_types},
            families=dict(self.families),
        )

    def merged(self, other: Vocabulary) -> Vocabulary:
        return Vocabulary(
            name=f"{self.name}+{other.name}",
            relations={**self.relations, **other.relations},
            node_types={**self.node_types, **other.node_types},
            families=merge_families(self.families, other.families),
        )

    # --- RDF -------------------------------------------------------------------------
    def to_turtle(self) -> str:
        graph = _to_graph(self)
        return graph.serialize(format="turtle")

    def write(self, path: Path) -> None:
        path.write_text(self.to_turtle(), encoding="utf-8")


def safe_name(name: str) -> str:
    """An identifier usable as a Neo4j type or label: letters, digits, underscore."""
    cleaned = _SAFE.sub("_", name).strip("_")
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"R_{cleaned}"
    return cleaned


def generic_relation(name: str) -> Relation:
    words = name.replace("_", " ").replace("-", " ").strip() or name
    return Relation(
        name=name,
        label=words,
        forward=f"is related by '{words}' to",
        inverse=f"is the target of '{words}' from",
        fallback=True,
    )


def generic_node_type(name: str) -> NodeType:
    label = name.replace("_", " ").replace("/", " or ")
    neo = "".join(part.capitalize() for part in safe_name(name).split("_")) or "Node"
    return NodeType(name=name, label=label, neo4j_label=neo)


def merge_families(*declared: dict[str, Family]) -> dict[str, Family]:
    """Families by name; a family declared twice has the cues of both."""
    out: dict[str, Family] = {}
    for families in declared:
        for name, family in families.items():
            out[name] = out[name].merged(family) if name in out else family
    return out


def ontology_dir() -> Path:
    """Bundled vocabularies: inside the wheel, or the repository's ontologies/."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_ontologies"
    return packaged if packaged.is_dir() else here.parent / "ontologies"


def bundled_vocabularies() -> list[str]:
    return sorted(p.stem for p in ontology_dir().glob("*.ttl"))


def bundled_families() -> dict[str, Family]:
    """The relation families and their cue phrases shipped in `ontologies/lexicon/families.ttl`."""
    path = ontology_dir() / "lexicon" / "families.ttl"
    return _from_graph(_parse(path), name="families", path=path).families


def load_vocabulary(name_or_path: str | Path) -> Vocabulary:
    """Load a bundled vocabulary by name (`primekg`, `hpo`, `umls`, …) or a .ttl file."""
    path = Path(name_or_path)
    if path.suffix not in {".ttl", ".rdf", ".owl", ".nt", ".n3"}:
        path = ontology_dir() / f"{name_or_path}.ttl"
        if not path.exists():
            known = ", ".join(bundled_vocabularies())
            raise SourceNotFoundError(f"no vocabulary named '{name_or_path}'; bundled: {known}")
    if not path.exists():
        raise SourceNotFoundError(f"{path}: vocabulary file not found")
    return _from_graph(_parse(path), name=path.stem, path=path)


def parse_vocabulary_text(text: str, name: str) -> Vocabulary:
    import rdflib

    graph = rdflib.Graph()
    graph.parse(data=text, format="turtle")
    return _from_graph(graph, name=name, path=None)


def _parse(path: Path):
    import rdflib

    graph = rdflib.Graph()
    try:
        graph.parse(path, format=rdflib.util.guess_format(str(path)) or "turtle")
    except Exception as exc:  # rdflib raises many unrelated types on bad syntax
        raise InputFormatError(f"cannot parse vocabulary: {exc}", file=path) from exc
    return graph


def _from_graph(graph, *, name: str, path: Path | None) -> Vocabulary:
    from rdflib import RDF, RDFS, Literal, Namespace

    kg = Namespace(NS)
    where = path or name

    def every(subject, predicate) -> tuple[str, ...]:
        return tuple(sorted(str(v) for v in graph.objects(subject, predicate)))

    def one(subject, predicate, *, required: bool = True, default=None):
        values = list(graph.objects(subject, predicate))
        if not values:
            if required:
                raise InputFormatError(
                    f"{subject} has no {predicate.n3(graph.namespace_manager)}", file=where
                )
            return default
        value = values[0]
        return value.toPython() if isinstance(value, Literal) else value

    def type_name(node) -> str:
        declared = one(node, kg.name, required=False)
        return str(declared) if declared is not None else str(node).removeprefix(TYPE_NS)

    node_types: dict[str, NodeType] = {}
    for node in graph.subjects(RDF.type, kg.NodeType):
        tname = type_name(node)
        node_types[tname] = NodeType(
            name=tname,
            label=str(one(node, RDFS.label, required=False, default=tname)),
            neo4j_label=str(one(node, kg.neo4jLabel, required=False) or generic_node_type(tname).neo4j_label),
        )
    relations: dict[str, Relation] = {}
    for node in graph.subjects(RDF.type, kg.Relation):
        rname = str(one(node, kg.name))
        relations[rname] = Relation(
            name=rname,
            label=str(one(node, RDFS.label, required=False, default=rname)),
            forward=str(one(node, kg.forward)),
            inverse=str(one(node, kg.inverse)),
            symmetric=bool(one(node, kg.symmetric, required=False, default=False)),
            domain=tuple(sorted(type_name(t) for t in graph.objects(node, RDFS.domain))),
            range=tuple(sorted(type_name(t) for t in graph.objects(node, RDFS.range))),
            fallback=bool(one(node, kg.fallback, required=False, default=False)),
            inverse_name=_optional_str(one(node, kg.inverseName, required=False)),
            paraphrases=every(node, kg.paraphrase),
            inverse_paraphrases=every(node, kg.inverseParaphrase),
            families=every(node, kg.family),
            negative=bool(one(node, kg.negative, required=False, default=False)),
        )
    families: dict[str, Family] = {}
    for node in graph.subjects(RDF.type, kg.RelationFamily):
        fname = str(one(node, kg.name))
        families[fname] = Family(
            name=fname,
            label=str(one(node, RDFS.label, required=False, default=fname)),
            cues=every(node, kg.cue),
            inverse_cues=every(node, kg.inverseCue),
            undirected_cues=every(node, kg.undirectedCue),
            light_cues=every(node, kg.lightCue),
            weak=bool(one(node, kg.weak, required=False, default=False)),
        )
    return Vocabulary(name=name, relations=relations, node_types=node_types, families=families)


def _optional_str(value) -> str | None:
    return None if value is None else str(value)


def _to_graph(vocabulary: Vocabulary):
    from urllib.parse import quote

    import rdflib
    from rdflib import RDF, RDFS, XSD, Literal, Namespace, URIRef

    kg = Namespace(NS)
    graph = rdflib.Graph()
    graph.bind("kg", kg)
    graph.bind("rel", Namespace(RELATION_NS))
    graph.bind("type", Namespace(TYPE_NS))

    def type_ref(name: str) -> URIRef:
        return URIRef(TYPE_NS + quote(name, safe=""))

    for t in vocabulary.node_types.values():
        ref = type_ref(t.name)
        graph.add((ref, RDF.type, kg.NodeType))
        graph.add((ref, kg.name, Literal(t.name)))
        graph.add((ref, RDFS.label, Literal(t.label)))
        graph.add((ref, kg.neo4jLabel, Literal(t.neo4j_label)))
    for r in vocabulary.relations.values():
        ref = URIRef(RELATION_NS + quote(r.name, safe=""))
        graph.add((ref, RDF.type, kg.Relation))
        graph.add((ref, kg.name, Literal(r.name)))
        graph.add((ref, RDFS.label, Literal(r.label)))
        graph.add((ref, kg.forward, Literal(r.forward)))
        graph.add((ref, kg.inverse, Literal(r.inverse)))
        graph.add((ref, kg.symmetric, Literal(r.symmetric, datatype=XSD.boolean)))
        if r.fallback:
            graph.add((ref, kg.fallback, Literal(True, datatype=XSD.boolean)))
        if r.inverse_name:
            graph.add((ref, kg.inverseName, Literal(r.inverse_name)))
        if r.negative:
            graph.add((ref, kg.negative, Literal(True, datatype=XSD.boolean)))
        for predicate, values in ((kg.paraphrase, r.paraphrases), (kg.inverseParaphrase, r.inverse_paraphrases), (kg.family, r.families)):
            for value in values:
                graph.add((ref, predicate, Literal(value)))
        for d in r.domain:
            graph.add((ref, RDFS.domain, type_ref(d)))
        for g in r.range:
            graph.add((ref, RDFS.range, type_ref(g)))
    for f in vocabulary.families.values():
        ref = URIRef(FAMILY_NS + quote(f.name, safe=""))
        graph.add((ref, RDF.type, kg.RelationFamily))
        graph.add((ref, kg.name, Literal(f.name)))
        graph.add((ref, RDFS.label, Literal(f.label or f.name)))
        if f.weak:
            graph.add((ref, kg.weak, Literal(True, datatype=XSD.boolean)))
        for predicate, values in ((kg.cue, f.cues), (kg.inverseCue, f.inverse_cues), (kg.undirectedCue, f.undirected_cues), (kg.lightCue, f.light_cues)):
            for value in values:
                graph.add((ref, predicate, Literal(value)))
    return graph
