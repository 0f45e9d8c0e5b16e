"""Files for `neo4j-admin database import full`: the fast path for millions of relationships.

Bolt pushes run at thousands to tens of thousands of relationships per second;
the offline importer writes a new database at hundreds of thousands or more. For
PrimeKG- or UMLS-size graphs, write these files, stop the database (or use a
new one), run the printed command, start it, then run `after-import.cypher`
(the constraints, which the importer does not create).

Layout, one header file beside each data file so data files stay plain:

- `nodes_<Label>.header.csv` / `nodes_<Label>.csv`: `id:ID(Entity)`, name, type,
  source, source_id, `synonyms:string[]`; imported with labels `Entity:<Label>`;
- `relationships_<TYPE>.header.csv` / `relationships_<TYPE>.csv`:
  `:START_ID(Entity)`, `:END_ID(Entity)`, relation, source;
- `snapshot.header.csv` / `snapshot.csv`: the metadata node, so `kgsynth neo4j
  pull` and Cypher sampling work on the imported graph as on a pushed one.

The result is the graph `kgsynth neo4j push` writes, property for property.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from kgsynth.atomic import replace_directory
from kgsynth.errors import InputFormatError
from kgsynth.graph.snapshot import Snapshot
from kgsynth.stores.neo4j import ENTITY_LABEL, META_LABEL, meta_properties, schema_for
from kgsynth.stores.neo4j_push import SCHEMA_STATEMENTS

ARRAY_DELIMITERS = (";", "|", "\x1f")  # the first one no synonym contains is used
NODE_HEADER = f"id:ID({ENTITY_LABEL}),name,type,source,source_id,synonyms:string[]"
RELATIONSHIP_HEADER = f":START_ID({ENTITY_LABEL}),:END_ID({ENTITY_LABEL}),relation,source"
META_FIELDS = ("name", "vocabulary", "labels", "types", "source_info", "counts", "status", "push_id")
META_HEADER = f"hash:ID({META_LABEL})," + ",".join(META_FIELDS)


@dataclass
class ImportFiles:
    """What was written, and the command that imports it."""

    out: Path
    array_delimiter: str
    multiline: bool  # some value holds a line break: the importer must be told
    nodes: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # label → (header, data)
    relationships: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # type → (header, data)
    meta: tuple[Path, Path] | None = None

    def command(self, database: str = "neo4j") -> str:
        """The exact `neo4j-admin` call, one option per line."""
        delimiter = self.array_delimiter if self.array_delimiter.isprintable() else f"U+{ord(self.array_delimiter):04X}"
        options = ["--id-type=string", f"--array-delimiter={shlex.quote(delimiter)}"]
        if self.multiline:
            options.append("--multiline-fields=true")
        for label, (header, data) in self.nodes.items():
            options.append(f"--nodes={ENTITY_LABEL}:{label}={shlex.quote(str(header))},{shlex.quote(str(data))}")
        if self.meta is not None:
            options.append(f"--nodes={META_LABEL}={shlex.quote(str(self.meta[0]))},{shlex.quote(str(self.meta[1]))}")
        for rel_type, (header, data) in self.relationships.items():
            options.append(f"--relationships={rel_type}={shlex.quote(str(header))},{shlex.quote(str(data))}")
        return " \\\n  ".join(["neo4j-admin database import full", *options, shlex.quote(database)])


def write_import_csv(snapshot: Snapshot, out: str | Path, *, database: str = "neo4j") -> ImportFiles:
    """Write the import files into `out` (atomically) plus `import.sh` and `after-import.cypher`."""
    out = Path(out).absolute()
    schema = schema_for(snapshot.vocabulary, snapshot.nodes["type"].unique(), snapshot.edges["relation"].unique())
    delimiter = _array_delimiter(snapshot.nodes)
    strings = [c for c, t in snapshot.nodes.schema.items() if t == pl.String] + ["synonyms"]
    multiline = _has_line_break(snapshot.nodes, strings) or _has_line_break(snapshot.edges, ["source"])
    files = ImportFiles(out=out, array_delimiter=delimiter, multiline=multiline)
    with replace_directory(out, marker="import.sh", what="Neo4j import folder") as tmp:
        nodes = snapshot.nodes.with_columns(
            pl.when(pl.col("synonyms").list.len() > 0).then(pl.col("synonyms").list.join(delimiter)).alias("synonyms")
        )
        for (node_type,), frame in sorted(nodes.partition_by("type", as_dict=True).items()):
            label = schema.labels[node_type]
            files.nodes[label] = _write(tmp, out, f"nodes_{label}", NODE_HEADER,
                                        frame.select("id", "name", "type", "source", "source_id", "synonyms"))
        for (relation,), frame in sorted(snapshot.edges.partition_by("relation", as_dict=True).items()):
            rel_type = schema.types[relation]
            files.relationships[rel_type] = _write(tmp, out, f"relationships_{rel_type}", RELATIONSHIP_HEADER,
                                                   frame.select("src", "dst", "relation", "source"))
        meta = {**meta_properties(snapshot, schema), "status": "complete", "push_id": "neo4j-admin-import"}
        files.meta = _write(tmp, out, "snapshot", META_HEADER,
                            pl.DataFrame([{"hash": meta["hash"], **{f: meta[f] for f in META_FIELDS}}]))
        (tmp / "import.sh").write_text(f"#!/bin/sh\nset -e\n{files.command(database)}\n", encoding="utf-8")
        (tmp / "import.sh").chmod(0o755)
        (tmp / "after-import.cypher").write_text(";\n".join(SCHEMA_STATEMENTS) + ";\n", encoding="utf-8")
    return files


def _write(tmp: Path, out: Path, stem: str, header: str, frame: pl.DataFrame) -> tuple[Path, Path]:
    (tmp / f"{stem}.header.csv").write_text(header + "\n", encoding="utf-8")
    frame.write_csv(tmp / f"{stem}.csv", include_header=False, quote_style="necessary")
    return out / f"{stem}.header.csv", out / f"{stem}.csv"


def _array_delimiter(nodes: pl.DataFrame) -> str:
    flat = nodes["synonyms"].explode().drop_nulls()
    for candidate in ARRAY_DELIMITERS:
        if not flat.str.contains(candidate, literal=True).any():
            return candidate
    raise InputFormatError(
        "every candidate array delimiter (';', '|', U+001F) occurs in some synonym; the importer could not split "
        "them back apart", field="synonyms"
    )


def _has_line_break(frame: pl.DataFrame, columns: list[str]) -> bool:
    for column in columns:
        values = frame[column].explode() if frame[column].dtype == pl.List(pl.String) else frame[column]
        if values.drop_nulls().str.contains(r"[\r\n]").any():
            return True
    return False
