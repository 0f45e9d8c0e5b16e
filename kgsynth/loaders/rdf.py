"""RDF / OWL / Turtle → snapshot, parsed with rdflib.

Edges come from these triples between named resources (IRIs):

- `A rdfs:subClassOf B`                                   → (A, subclass_of, B)
- `A rdfs:subClassOf [owl:onProperty P; owl:someValuesFrom B]` → (A, <P>, B), and
  the same restriction under `owl:equivalentClass` (A ≡ ∃P.B)
- an `owl:intersectionOf` list under either (the usual `A ≡ B ⊓ ∃P.C`) → an edge
  per member: (A, subclass_of, B) for a named class, (A, <P>, C) for a restriction
- `A P B` for any other property P whose object is an IRI (object-property
  assertions), except RDF/RDFS/OWL/SKOS/oboInOwl/Dublin Core terms and properties
  the file declares as annotation or datatype properties.

The relation name <P> is the property's rdfs:label in snake case (`has phenotype`
→ `has_phenotype`), else its local name in snake case (`partOf` → `part_of`).
Node ids are the full IRIs. Names: skos:prefLabel, else rdfs:label (in the
`language` option, default `en`, or untagged), else the local name; other labels,
skos:altLabel and the oboInOwl exact/related/broad/narrow synonyms are synonyms.
Node type: `class` for owl:Class / rdfs:Class, the label (or local name) of the
resource's rdf:type class for individuals, else `resource`.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import rdflib
from rdflib import OWL, RDF, RDFS, BNode, Literal, URIRef
from rdflib.collection import Collection

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.graph.snapshot import Snapshot, SourceInfo, build_snapshot
from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.loaders import LOADERS
from kgsynth.loaders.common import check_options, first_bad_utf8_line, option_str, require_file

SUFFIXES = {".ttl": "turtle", ".owl": "xml", ".rdf": "xml", ".xml": "xml", ".nt": "nt", ".n3": "n3",
            ".jsonld": "json-ld", ".trig": "trig", ".nq": "nquads"}  # fmt: skip
OPTIONS = ("language",)
OBO_IN_OWL = "http://www.geneontology.org/formats/oboInOwl#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
RESERVED = (
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "http://www.w3.org/2000/01/rdf-schema#",
    "http://www.w3.org/2002/07/owl#",
    "http://www.w3.org/2001/XMLSchema#",
    SKOS,
    OBO_IN_OWL,
    "http://purl.org/dc/elements/1.1/",
    "http://purl.org/dc/terms/",
)
SYNONYMS = tuple(
    OBO_IN_OWL + s for s in ("hasExactSynonym", "hasRelatedSynonym", "hasBroadSynonym", "hasNarrowSynonym")
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^0-9a-zA-Z]+")


def _files(sources: list[Path]) -> list[Path]:
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            inside = sorted(p for p in source.iterdir() if p.suffix.lower() in SUFFIXES)
            if not inside:
                raise SourceNotFoundError(f"{source}: no RDF files ({', '.join(sorted(SUFFIXES))}) in this directory")
            files += inside
        else:
            files.append(source)
    if not files:
        raise SourceNotFoundError("the RDF loader needs at least one .ttl, .owl, .rdf or .nt file")
    return files


def _parse(path: Path) -> rdflib.Graph:
    require_file(path)
    fmt = SUFFIXES.get(path.suffix.lower(), "turtle")
    graph = rdflib.Graph()
    try:
        graph.parse(path, format=fmt)
    except UnicodeDecodeError:
        bad = first_bad_utf8_line(path)
        line, offset, snippet = bad if bad else (None, 0, b"")
        raise InputFormatError(
            f"not UTF-8 at byte {offset} of the line ({snippet!r}); re-encode the file as UTF-8",
            file=path,
            line=line,
        ) from None
    except Exception as exc:  # rdflib raises many unrelated types on bad syntax
        raise InputFormatError(f"cannot parse as {fmt}: {_first_line(exc)}", file=path, line=_error_line(exc)) from None
    if len(graph) == 0:
        raise InputFormatError(f"no triples found; is this {fmt}?", file=path)
    return graph


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith("at line")]
    return lines[0] if lines else type(exc).__name__


def _error_line(exc: Exception) -> int | None:
    if isinstance(getattr(exc, "lines", None), int):  # notation3 BadSyntax: 0-based
        return exc.lines + 1
    get_line = getattr(exc, "getLineNumber", None)  # XML (SAX)
    return get_line() if callable(get_line) else None


def _snake(text: str) -> str:
    return _NOT_WORD.sub("_", _CAMEL.sub("_", text)).strip("_").lower()


def _local_name(iri: str) -> str:
    return re.split(r"[#/]", iri.rstrip("#/"))[-1] or iri


def _reserved(iri: str) -> bool:
    return iri.startswith(RESERVED)


class _Labels:
    """Literal lookups that prefer the chosen language, then untagged literals."""

    def __init__(self, graph, language: str) -> None:
        self.graph = graph
        self.language = language

    def values(self, subject, predicate) -> list[str]:
        found = [o for o in self.graph.objects(subject, predicate) if isinstance(o, Literal)]
        fitting = [o for o in found if o.language is None or o.language.split("-")[0] == self.language]
        # Tagged in the chosen language first, then untagged; alphabetical within each, for stable names.
        return [str(o) for o in sorted(fitting, key=lambda o: (o.language is None, str(o)))]

    def label(self, subject) -> str | None:
        for predicate in (URIRef(SKOS + "prefLabel"), RDFS.label):
            values = self.values(subject, predicate)
            if values:
                return values[0]
        return None


def _relation_name(labels: _Labels, prop) -> str:
    if prop == RDFS.subClassOf:
        return "subclass_of"
    label = labels.label(prop)
    return _snake(label) if label else _snake(_local_name(str(prop)))


def _superclasses(union: rdflib.Graph, expression) -> tuple[list[tuple[URIRef, URIRef]], int]:
    """What `A ⊑ expression` says of A, as (property, named class) pairs — subClassOf for a named
    class, P for ∃P.C, each member's for an intersection — and how many parts say nothing kept."""
    if isinstance(expression, URIRef):
        return ([], 1) if _reserved(str(expression)) else ([(RDFS.subClassOf, expression)], 0)
    members = union.value(expression, OWL.intersectionOf)
    if members is not None:
        found: list[tuple[URIRef, URIRef]] = []
        skipped = 0
        for member in Collection(union, members):
            pairs, missed = _superclasses(union, member)
            found += pairs
            skipped += missed
        return found, skipped
    prop = union.value(expression, OWL.onProperty)
    target = union.value(expression, OWL.someValuesFrom)
    if isinstance(prop, URIRef) and isinstance(target, URIRef) and not _reserved(str(target)):
        return [(prop, target)], 0
    return [], 1  # other restrictions (allValuesFrom, cardinalities), unions, complements, nested fillers


def _triples(
    union: rdflib.Graph, graphs: dict[str, rdflib.Graph], labels: _Labels
) -> tuple[list[tuple[str, str, str, str]], int]:
    """(src, relation, dst, file name) for every edge-making triple, and how many were skipped."""
    skipped_props = set(union.subjects(RDF.type, OWL.AnnotationProperty)) | set(
        union.subjects(RDF.type, OWL.DatatypeProperty)
    )
    names: dict = {}

    def name(prop) -> str:
        if prop not in names:
            names[prop] = _relation_name(labels, prop)
        return names[prop]

    edges: list[tuple[str, str, str, str]] = []
    skipped = 0
    for source, graph in graphs.items():
        for s, p, o in graph:
            if not isinstance(s, URIRef) or _reserved(str(s)):
                continue
            if p in (RDFS.subClassOf, OWL.equivalentClass) and isinstance(o, BNode):
                # A ≡ X entails A ⊑ X, so both read the class expression the same way.
                pairs, missed = _superclasses(union, o)
                edges += [(str(s), name(prop), str(target), source) for prop, target in pairs]
                skipped += missed
            elif isinstance(o, URIRef) and (p == RDFS.subClassOf or not (_reserved(str(p)) or p in skipped_props)):
                if _reserved(str(o)):  # e.g. subClassOf owl:Thing
                    skipped += 1
                else:
                    edges.append((str(s), name(p), str(o), source))
    return edges, skipped


def _nodes(union: rdflib.Graph, graphs: dict[str, rdflib.Graph], labels: _Labels, iris: set[str]) -> list[dict]:
    classes = {str(c) for c in union.subjects(RDF.type, OWL.Class)} | {
        str(c) for c in union.subjects(RDF.type, RDFS.Class)
    }
    declared = classes | {str(i) for i in union.subjects(RDF.type, OWL.NamedIndividual)}
    rows = []
    for iri in sorted({i for i in iris | declared if not _reserved(i)}):
        ref = URIRef(iri)
        if iri in classes:
            node_type = "class"
        else:
            kinds = sorted(str(t) for t in union.objects(ref, RDF.type) if not _reserved(str(t)))
            if kinds:
                node_type = labels.label(URIRef(kinds[0])) or _local_name(kinds[0])
            else:
                node_type = "individual" if iri in declared else "resource"
        name = labels.label(ref)
        synonyms: set[str] = set()
        for predicate in (RDFS.label, URIRef(SKOS + "prefLabel"), URIRef(SKOS + "altLabel"), *map(URIRef, SYNONYMS)):
            synonyms.update(labels.values(ref, predicate))
        described_in = [source for source, graph in graphs.items() if (ref, None, None) in graph]
        rows.append(
            {
                "id": iri,
                "name": name or _local_name(iri),
                "type": node_type,
                "source": described_in[0] if described_in else None,
                "source_id": _curie(union, iri),
                "synonyms": sorted(synonyms - {name}),
            }
        )
    return rows


def _curie(union: rdflib.Graph, iri: str) -> str:
    """`prefix:local` with a prefix the files declare, else the IRI."""
    try:
        curie = union.namespace_manager.curie(iri, generate=False)
    except (KeyError, ValueError):
        return iri
    return iri if curie.startswith(":") else curie


@LOADERS.register("rdf")
def load_rdf(
    sources: list[Path],
    *,
    name: str = "rdf",
    vocabulary: str | None = None,
    allow_unknown_relations: bool = False,
    **options: object,
) -> Snapshot:
    """Load RDF/OWL/Turtle files (or directories of them) into a snapshot."""
    check_options("rdf", options, OPTIONS)
    language = option_str("language", options.get("language", "en"))
    files = _files(sources)
    graphs = {path.name: _parse(path) for path in files}
    union = rdflib.Graph()
    for graph in graphs.values():
        union += graph
        for prefix, namespace in graph.namespaces():
            union.bind(prefix, namespace, override=False)
    labels = _Labels(union, language)
    edge_rows, skipped = _triples(union, graphs, labels)
    iris = {s for s, *_ in edge_rows} | {d for _, _, d, _ in edge_rows}
    nodes = pl.DataFrame(
        _nodes(union, graphs, labels, iris),
        schema={
            "id": pl.String,
            "name": pl.String,
            "type": pl.String,
            "source": pl.String,
            "source_id": pl.String,
            "synonyms": pl.List(pl.String),
        },
        orient="row",
    )
    edges = pl.DataFrame(edge_rows, schema=["src", "relation", "dst", "source"], orient="row")
    dropped = {
        "class expressions under subClassOf or equivalentClass other than someValuesFrom restrictions "
        "and intersections of them, and edges to RDF/RDFS/OWL terms": skipped
    }
    return build_snapshot(
        nodes,
        edges,
        vocabulary=load_vocabulary(vocabulary or "generic"),
        name=name,
        loader="rdf",
        options={"language": language},
        sources=files,
        source_info=SourceInfo(name=", ".join(p.name for p in files)),
        dropped=dropped,
        allow_unknown_relations=allow_unknown_relations,
        where=str(files[0]) if len(files) == 1 else "",
    )
