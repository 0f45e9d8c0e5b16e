"""`kgsynth load` and `kgsynth info`."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer


class SourceFormat(str, Enum):
    primekg = "primekg"
    umls = "umls"
    hpo = "hpo"
    rdf = "rdf"
    edges = "edges"


def register(app: typer.Typer) -> None:
    app.command("load")(load)
    app.command("info")(info)


def load(
    format: Annotated[SourceFormat, typer.Option("--format", "-f", help="Source format.")],
    sources: Annotated[Optional[list[Path]], typer.Argument(help="Source files or directories.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Snapshot directory to write.")] = Path("snapshot"),
    name: Annotated[Optional[str], typer.Option(help="Snapshot name (default: the format).")] = None,
    vocabulary: Annotated[
        Optional[str], typer.Option(help="Vocabulary: a bundled name or a .ttl file (default: the format's).")
    ] = None,
    allow_unknown_relations: Annotated[
        bool, typer.Option(help="Give relations the vocabulary lacks generic wording instead of failing.")
    ] = False,
    option: Annotated[
        Optional[list[str]], typer.Option("--option", "-O", help="Loader option KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    """Load a source graph into a snapshot directory (written atomically).

    Loader options, -O KEY=VALUE (a comma list is a list, true/false a flag):

    umls: languages, sabs, drop_suppressed, relations

    rdf: language

    edges: head_id, head_name, head_type, relation, tail_id, tail_name,
    tail_type, nodes, node_id, node_name, node_type, node_synonyms,
    synonym_separator, namespace, default_type, separator

    primekg, hpo: none

    Example: kgsynth load --format hpo --out runs/demo/snapshot
    """
    from kgsynth.graph.snapshot import write_snapshot
    from kgsynth.loaders import load as run_loader
    from kgsynth.progress import console, step

    started = time.perf_counter()
    options = _parse_options(option or [])
    if vocabulary:
        options["vocabulary"] = vocabulary
    if allow_unknown_relations:
        options["allow_unknown_relations"] = True
    with step(f"loading {format.value}"):
        snapshot = run_loader(format.value, list(sources or []), name=name or format.value, **options)
    with step(f"writing {out}"):
        write_snapshot(snapshot, out)
    counts = snapshot.manifest.counts
    console.print(
        f"[bold green]loaded[/] {format.value}: {counts.nodes:,} nodes, {counts.edges:,} edges, "
        f"{len(counts.node_types)} node types, {len(counts.relations)} relations → {out} "
        f"(hash {snapshot.hash[:12]}) in {time.perf_counter() - started:.1f}s"
    )
    for reason, count in snapshot.manifest.dropped.items():
        console.print(f"  skipped {count:,}: {reason}")


def info(
    snapshot_dir: Annotated[Path, typer.Argument(help="Snapshot directory.")],
    top: Annotated[int, typer.Option(help="How many highest-degree nodes to list.")] = 20,
) -> None:
    """Counts by node type and relation, degree summary, highest-degree nodes.

    Example: kgsynth info runs/demo/snapshot
    """
    from rich.table import Table

    from kgsynth.graph.stats import degree_table
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.progress import console

    snapshot = read_snapshot(snapshot_dir)
    m = snapshot.manifest
    console.print(f"[bold]{m.name}[/] ({m.loader}) hash {m.hash[:16]}  {m.counts.nodes:,} nodes, {m.counts.edges:,} edges")
    if m.source_info:
        console.print(f"source: {m.source_info.name} {m.source_info.version or ''}  licence: {m.source_info.license}")
    for title, counts in (("node type", m.counts.node_types), ("relation", m.counts.relations)):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("count", justify="right")
        for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
            table.add_row(key, f"{value:,}")
        console.print(table)
    summary, hubs = degree_table(snapshot, top=top)
    console.print(
        "degree: " + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in summary.items())
    )
    table = Table(title=f"{top} highest-degree nodes")
    for column in ("id", "name", "type", "degree"):
        table.add_column(column, justify="right" if column == "degree" else "left")
    for row in hubs.iter_rows(named=True):
        table.add_row(row["id"], row["name"], row["type"], f"{row['degree']:,}")
    console.print(table)


def _parse_options(pairs: list[str]) -> dict[str, object]:
    from kgsynth.errors import ConfigError

    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option expects KEY=VALUE, got {pair!r}")
        items = [v for v in value.split(",") if v]
        if "," in value and items:  # a lone "," stays a value (a separator)
            options[key] = items
        elif value.lower() in {"true", "false"}:
            options[key] = value.lower() == "true"
        else:
            options[key] = value
    return options
