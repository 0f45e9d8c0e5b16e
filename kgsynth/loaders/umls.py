"""UMLS Metathesaurus RRF files → snapshot.

- `MRCONSO.RRF` (concept names): a concept with at least one kept atom becomes a
  node `umls:<CUI>`; its name is the preferred atom (TS=P, STT=PF, ISPREF=Y) in
  the first listed language, every other kept string a synonym.
- `MRSTY.RRF` (semantic types): the node type is the concept's semantic type
  with the lowest TUI; the other semantic types are counted in `manifest.dropped`.
- `MRREL.RRF` (relationships): the relation is RELA when present, else REL. A row
  `CUI1|AUI1|STYPE1|REL|CUI2|AUI2|STYPE2|RELA|…` reads "CUI2 <relation> CUI1" and
  is stored as the edge CUI2 → CUI1. Inverse names (`inverse_isa`, `PAR`,
  `may_be_treated_by`, …; see `ontologies/umls.ttl`) are stored as their partner,
  reversed, so each relationship is kept once. The edge source is the row's SAB.

Options: `languages` (default ENG), `sabs` (source vocabularies; default all),
`drop_suppressed` (drop rows whose SUPPRESS is not N; default true), `relations`
(default: every relation of the vocabulary; `all` keeps every relation found).
Rows skipped on purpose are counted by reason in `manifest.dropped`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kgsynth.errors import ConfigError, InputFormatError, SourceNotFoundError, UnknownRelationError
from kgsynth.graph.snapshot import Snapshot, SourceInfo, build_snapshot
from kgsynth.graph.vocabulary import load_vocabulary
from kgsynth.loaders import LOADERS
from kgsynth.loaders.common import check_options, option_bool, option_list, read_delimited, row_line

MRCONSO = (
    "CUI", "LAT", "TS", "LUI", "STT", "SUI", "ISPREF", "AUI", "SAUI", "SCUI", "SDUI", "SAB", "TTY", "CODE", "STR",
    "SRL", "SUPPRESS", "CVF",
)  # fmt: skip
MRREL = (
    "CUI1", "AUI1", "STYPE1", "REL", "CUI2", "AUI2", "STYPE2", "RELA", "RUI", "SRUI", "SAB", "SL", "RG", "DIR",
    "SUPPRESS", "CVF",
)  # fmt: skip
MRSTY = ("CUI", "TUI", "STN", "STY", "ATUI", "CVF")
FILE_NAMES = ("MRCONSO.RRF", "MRREL.RRF", "MRSTY.RRF")
OPTIONS = ("languages", "sabs", "drop_suppressed", "relations")

SOURCE_INFO = SourceInfo(
    name="UMLS Metathesaurus",
    license="https://uts.nlm.nih.gov/uts/assets/LicenseAgreement.pdf",
    attribution=(
        "This dataset uses the UMLS Metathesaurus, a product of the US National Library of Medicine, "
        "under the UMLS Metathesaurus License; some source vocabularies carry further restrictions."
    ),
    url="https://www.nlm.nih.gov/research/umls/",
)


def _classify(sources: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for source in map(Path, sources):
        if source.is_dir():
            found.update({n: source / n for n in FILE_NAMES if (source / n).exists()})
        elif source.name.upper() in FILE_NAMES:
            found[source.name.upper()] = source
        else:
            raise InputFormatError("not a UMLS file; expected MRCONSO.RRF, MRREL.RRF and MRSTY.RRF", file=source)
    missing = [n for n in FILE_NAMES if n not in found]
    if missing:
        given = ", ".join(map(str, sources)) or "no paths"
        raise SourceNotFoundError(f"the UMLS loader needs {', '.join(missing)} (given: {given})")
    return found


def _read_rrf(path: Path, header: tuple[str, ...], wanted: tuple[str, ...], non_empty: tuple[str, ...]) -> pl.DataFrame:
    return read_delimited(
        path,
        separator="|",
        columns={c: pl.String() for c in wanted},
        non_empty=non_empty,
        quoting=False,
        trailing_separator=True,
        has_header=False,
        header=list(header),
    )


def _kept(frame: pl.DataFrame, condition: pl.Expr, reason: str, dropped: dict[str, int]) -> pl.DataFrame:
    """Rows meeting `condition`; the others are counted under `reason`."""
    kept = frame.filter(condition)
    dropped[reason] = dropped.get(reason, 0) + frame.height - kept.height
    return kept


def _concepts(
    path: Path, languages: list[str], sabs: list[str] | None, drop_suppressed: bool, dropped: dict[str, int]
) -> tuple[pl.DataFrame, pl.Series]:
    """(node rows: CUI, name, synonyms; every CUI in the file, kept or not)."""
    atoms = _read_rrf(
        path,
        MRCONSO,
        ("CUI", "LAT", "TS", "STT", "ISPREF", "AUI", "SAB", "STR", "SUPPRESS"),
        ("CUI", "LAT", "AUI", "SAB", "STR"),
    ).with_row_index("_row")
    every_cui = atoms["CUI"].unique()
    atoms = _kept(atoms, pl.col("LAT").is_in(languages), f"MRCONSO.RRF: atoms not in {', '.join(languages)}", dropped)
    if sabs is not None:
        atoms = _kept(atoms, pl.col("SAB").is_in(sabs), "MRCONSO.RRF: atoms from other source vocabularies", dropped)
    if drop_suppressed:
        atoms = _kept(atoms, _not_suppressed(), "MRCONSO.RRF: suppressed atoms (SUPPRESS not N)", dropped)
    # Preferred first: the first language, then UMLS's own preference flags, then file order.
    ranked = atoms.sort(
        pl.col("LAT").replace_strict(languages, list(range(len(languages)))),
        pl.col("TS") != "P",
        pl.col("STT") != "PF",
        pl.col("ISPREF") != "Y",
        "_row",
    )
    concepts = ranked.group_by("CUI", maintain_order=True).agg(
        pl.col("STR").first().alias("name"), pl.col("STR").unique().alias("synonyms")
    )
    concepts = concepts.with_columns(pl.col("synonyms").list.set_difference(pl.concat_list("name")))
    return concepts, every_cui


def _not_suppressed() -> pl.Expr:
    return pl.col("SUPPRESS").is_null() | (pl.col("SUPPRESS") == "N")


def _semantic_types(path: Path, concepts: pl.DataFrame, dropped: dict[str, int]) -> pl.DataFrame:
    """CUI → type (semantic type with the lowest TUI) for the kept concepts."""
    types = _read_rrf(path, MRSTY, ("CUI", "TUI", "STY"), ("CUI", "TUI", "STY"))
    types = types.filter(pl.col("CUI").is_in(concepts["CUI"].implode()))
    first = types.sort("CUI", "TUI").group_by("CUI", maintain_order=True).agg(pl.col("STY").first().alias("type"))
    dropped["MRSTY.RRF: further semantic types of a concept (the lowest TUI is its node type)"] = (
        types.height - first.height
    )
    untyped = concepts.join(first, on="CUI", how="anti")
    if untyped.height:
        raise InputFormatError(
            f"concept {untyped['CUI'][0]} ({untyped['name'][0]!r}) has no semantic type; "
            f"{untyped.height} concept(s) lack one. Every CUI in MRCONSO.RRF needs a row here",
            file=path,
            field="CUI",
        )
    return first


def _relationships(
    path: Path,
    *,
    keep: set[str] | None,
    sabs: list[str] | None,
    drop_suppressed: bool,
    every_cui: pl.Series,
    kept_cui: pl.Series,
    dropped: dict[str, int],
) -> pl.DataFrame:
    """Edge rows src (CUI2), dst (CUI1), relation, source (SAB)."""
    rows = _read_rrf(path, MRREL, ("CUI1", "REL", "CUI2", "RELA", "SAB", "SUPPRESS"), ("CUI1", "REL", "CUI2"))
    rows = rows.with_row_index("_row").with_columns(pl.coalesce("RELA", "REL").alias("relation"))
    for column in ("CUI1", "CUI2"):
        unknown = rows.filter(~pl.col(column).is_in(every_cui.implode()))
        if unknown.height:
            raise InputFormatError(
                f"{column} {unknown[column][0]} is not a concept of MRCONSO.RRF; {unknown.height} row(s) name "
                "concepts that file lacks. Use MRCONSO.RRF and MRREL.RRF from the same release",
                file=path,
                line=row_line(int(unknown["_row"][0]), has_header=False),
                field=column,
            )
    if sabs is not None:
        rows = _kept(rows, pl.col("SAB").is_in(sabs), "MRREL.RRF: rows from other source vocabularies", dropped)
    if drop_suppressed:
        rows = _kept(rows, _not_suppressed(), "MRREL.RRF: suppressed rows (SUPPRESS not N)", dropped)
    if keep is not None:
        rows = _kept(rows, pl.col("relation").is_in(sorted(keep)), "MRREL.RRF: relations not kept", dropped)
    rows = _kept(rows, pl.col("CUI1") != pl.col("CUI2"), "MRREL.RRF: relationships within one concept", dropped)
    rows = _kept(
        rows,
        pl.col("CUI1").is_in(kept_cui.implode()) & pl.col("CUI2").is_in(kept_cui.implode()),
        "MRREL.RRF: rows whose concept has no kept atom (language, source or suppression filters)",
        dropped,
    )
    return rows.select(
        ("umls:" + pl.col("CUI2")).alias("src"),
        ("umls:" + pl.col("CUI1")).alias("dst"),
        pl.col("relation"),
        pl.col("SAB").alias("source"),
    )


def _relations_to_keep(option: object, names: dict[str, tuple[str, bool]], allow_unknown: bool) -> set[str] | None:
    """The REL/RELA values to keep: a relation's inverse name comes with it. None keeps all."""
    if option is None:
        return set(names)
    wanted = option_list("relations", option)
    if wanted == ["all"]:
        return None
    unknown = sorted(set(wanted) - set(names))
    if unknown and not allow_unknown:
        raise UnknownRelationError(
            f"option relations names {', '.join(unknown)}, which the vocabulary does not define; known: "
            f"{', '.join(sorted(names))}. Pass --allow-unknown-relations or a vocabulary that has them"
        )
    stored = {names[w][0] if w in names else w for w in wanted}
    return {n for n, (canonical, _) in names.items() if canonical in stored} | set(unknown)


@LOADERS.register("umls")
def load_umls(
    sources: list[Path],
    *,
    name: str = "umls",
    vocabulary: str | None = None,
    allow_unknown_relations: bool = False,
    **options: object,
) -> Snapshot:
    """Load MRCONSO.RRF, MRREL.RRF and MRSTY.RRF (files or their directory) into a snapshot."""
    check_options("umls", options, OPTIONS)
    languages = list(dict.fromkeys(option_list("languages", options.get("languages", "ENG"))))
    if not languages:
        raise ConfigError("option 'languages' needs at least one language code, e.g. ENG")
    sabs = option_list("sabs", options["sabs"]) if "sabs" in options else None
    drop_suppressed = option_bool("drop_suppressed", options.get("drop_suppressed", True))
    vocab = load_vocabulary(vocabulary or "umls")
    keep = _relations_to_keep(options.get("relations"), vocab.canonical_names(), allow_unknown_relations)
    files = _classify(sources)
    dropped: dict[str, int] = {}

    concepts, every_cui = _concepts(files["MRCONSO.RRF"], languages, sabs, drop_suppressed, dropped)
    types = _semantic_types(files["MRSTY.RRF"], concepts, dropped)
    edges = _relationships(
        files["MRREL.RRF"],
        keep=keep,
        sabs=sabs,
        drop_suppressed=drop_suppressed,
        every_cui=every_cui,
        kept_cui=concepts["CUI"],
        dropped=dropped,
    )
    nodes = concepts.join(types, on="CUI").select(
        ("umls:" + pl.col("CUI")).alias("id"),
        pl.col("name"),
        pl.col("type"),
        pl.lit("UMLS").alias("source"),
        pl.col("CUI").alias("source_id"),
        pl.col("synonyms"),
    )
    return build_snapshot(
        nodes,
        edges,
        vocabulary=vocab,
        name=name,
        loader="umls",
        options={
            "languages": languages,
            "sabs": sabs or "all",
            "drop_suppressed": drop_suppressed,
            "relations": sorted(keep) if keep is not None else "all",
        },
        sources=[files[n] for n in FILE_NAMES],
        source_info=SOURCE_INFO,
        dropped=dropped,
        allow_unknown_relations=allow_unknown_relations,
        where=str(files["MRREL.RRF"]),
        repeats="MRREL.RRF: rows repeating a relationship already kept (UMLS lists most in both directions, "
        "and once per source vocabulary; the first SAB alphabetically is kept)",
    )
