"""`kgsynth neo4j push | pull | export-import-csv | sample`: snapshots into and out of Neo4j.

Connection settings come from NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD and
NEO4J_DATABASE; --uri, --user and --database override them. There is no password
option on purpose: a password on the command line ends up in shell history and
process lists.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

neo4j_app = typer.Typer(
    name="neo4j",
    help="Load snapshots into Neo4j, read graphs back, write bulk-import files, sample with Cypher.\n\n"
    "Example: kgsynth neo4j push runs/demo/snapshot",
    no_args_is_help=True,
)

Uri = Annotated[Optional[str], typer.Option(help="Bolt URI (default: $NEO4J_URI, else bolt://localhost:7687).")]
User = Annotated[Optional[str], typer.Option(help="User (default: $NEO4J_USER, else neo4j).")]
Database = Annotated[Optional[str], typer.Option(help="Database (default: $NEO4J_DATABASE, else the server's).")]


def register(app: typer.Typer) -> None:
    app.add_typer(neo4j_app)


@neo4j_app.command("push")
def push(
    snapshot_dir: Annotated[Path, typer.Argument(help="Snapshot directory to load.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 5000,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted push of this snapshot into this database.")
    ] = True,
    uri: Uri = None,
    user: User = None,
    database: Database = None,
) -> None:
    """Load a snapshot: constraint, nodes, relationships; idempotent, resumable, counts checked.

    Example: kgsynth neo4j push runs/demo/snapshot --batch-size 5000
    """
    from rich.table import Table

    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.progress import console
    from kgsynth.stores.neo4j import Neo4jConfig, relationship_type
    from kgsynth.stores.neo4j_push import push_snapshot

    snapshot = read_snapshot(snapshot_dir)
    config = Neo4jConfig.from_env(uri=uri, user=user, database=database)
    report = push_snapshot(config, snapshot, batch_size=batch_size, resume=resume)
    table = Table(title=f"in {report.target}")
    table.add_column("label / type")
    table.add_column("snapshot", justify="right")
    table.add_column("database", justify="right")
    counts = snapshot.manifest.counts
    for node_type, n in counts.node_types.items():
        label = snapshot.vocabulary.node_types[node_type].neo4j_label
        table.add_row(f":{label}", f"{n:,}", f"{report.labels[label]:,}")
    for relation, n in counts.relations.items():
        rel_type = relationship_type(relation)
        table.add_row(f"[:{rel_type}]", f"{n:,}", f"{report.types[rel_type]:,}")
    console.print(table)
    resumed = f", {report.resumed_batches} resumed from an earlier run" if report.resumed_batches else ""
    retried = f", {report.retries} retried" if report.retries else ""
    console.print(
        f"[bold green]pushed[/] {snapshot.name} ({snapshot.hash[:12]}): {report.nodes:,} nodes, {report.edges:,} "
        f"relationships in {report.batches} batches of ≤{report.batch_size:,}{resumed}{retried}; "
        f"{report.seconds:.1f}s, {report.edges_per_second:,.0f} relationships/s"
    )


@neo4j_app.command("pull")
def pull(
    out: Annotated[Path, typer.Option("--out", "-o", help="Snapshot directory to write.")],
    mapping: Annotated[
        Optional[Path], typer.Option(help="Mapping file (YAML/JSON) for a graph kgsynth did not push.")
    ] = None,
    page_size: Annotated[int, typer.Option(min=1, help="Nodes per page.")] = 5000,
    uri: Uri = None,
    user: User = None,
    database: Database = None,
) -> None:
    """Read a graph from Neo4j into a snapshot (written atomically).

    Example: kgsynth neo4j pull --out runs/x/snapshot --mapping mapping.yaml
    """
    from kgsynth.graph.snapshot import write_snapshot
    from kgsynth.progress import console
    from kgsynth.stores.neo4j import Neo4jConfig
    from kgsynth.stores.neo4j_pull import pull_snapshot, read_mapping

    started = time.perf_counter()
    config = Neo4jConfig.from_env(uri=uri, user=user, database=database)
    snapshot = pull_snapshot(config, mapping=read_mapping(mapping) if mapping else None, page_size=page_size)
    write_snapshot(snapshot, out)
    counts = snapshot.manifest.counts
    console.print(
        f"[bold green]pulled[/] {config.target}: {counts.nodes:,} nodes, {counts.edges:,} edges, "
        f"{len(counts.relations)} relations → {out} (hash {snapshot.hash[:12]}) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    for reason, count in snapshot.manifest.dropped.items():
        console.print(f"  skipped {count:,}: {reason}")


@neo4j_app.command("export-import-csv")
def export_import_csv(
    snapshot_dir: Annotated[Path, typer.Argument(help="Snapshot directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the CSV and header files.")],
    database: Annotated[str, typer.Option(help="Database the command imports into.")] = "neo4j",
) -> None:
    """Write the files `neo4j-admin database import full` reads, and print the command (stdout).

    Example: kgsynth neo4j export-import-csv runs/primekg/snapshot --out import/
    """
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.progress import console
    from kgsynth.stores.neo4j_csv import write_import_csv

    started = time.perf_counter()
    snapshot = read_snapshot(snapshot_dir)
    files = write_import_csv(snapshot, out, database=database)
    counts = snapshot.manifest.counts
    console.print(
        f"[bold green]wrote[/] {len(files.nodes)} node and {len(files.relationships)} relationship files "
        f"({counts.nodes:,} nodes, {counts.edges:,} relationships) → {files.out} in "
        f"{time.perf_counter() - started:.1f}s. With the database stopped, run the command below "
        f"(also in {files.out / 'import.sh'}), start it, then run {files.out / 'after-import.cypher'} "
        "with cypher-shell for the constraints."
    )
    typer.echo(files.command(database))


@neo4j_app.command("sample")
def sample(
    out: Annotated[Path, typer.Option("--out", "-o", help="Paths table to write (parquet).")] = Path("paths.parquet"),
    strategy: Annotated[str, typer.Option(help="walk or pattern.")] = "walk",
    n: Annotated[int, typer.Option("-n", "--n", min=0, help="Paths to sample.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed; the same seed and graph give the same file.")] = 0,
    hops: Annotated[Optional[str], typer.Option(help="walk: hop counts, e.g. 3 or 2-4.")] = None,
    start_type: Annotated[Optional[list[str]], typer.Option(help="walk: node type to start from (repeatable).")] = None,
    relation: Annotated[Optional[list[str]], typer.Option(help="walk: only these relations (repeatable).")] = None,
    exclude: Annotated[
        Optional[Path], typer.Option(help="hubs.json from `kgsynth shatter`: flag these nodes as hubs first.")
    ] = None,
    pattern: Annotated[
        Optional[list[str]],
        typer.Option(help="pattern: template like 'disease -has_phenotype-> phenotype' (repeatable)."),
    ] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="Mapping file for a graph kgsynth did not push.")] = None,
    snapshot: Annotated[
        Optional[Path],
        typer.Option(help="The snapshot the graph was loaded from: hard negatives and unique answers are proven on it."),
    ] = None,
    full: Annotated[
        Optional[Path], typer.Option(help="With a pruned --snapshot: the unpruned one, to prove on (default: --snapshot).")
    ] = None,
    negatives: Annotated[int, typer.Option(min=0, help="Hard negatives per path, with --snapshot (0: none).")] = 3,
    uri: Uri = None,
    user: User = None,
    database: Database = None,
) -> None:
    """Sample paths inside Neo4j with Cypher (same paths.parquet as `kgsynth sample`).

    Example: kgsynth neo4j sample --strategy walk --hops 2-4 -n 1000 --exclude runs/demo/pruned/hubs.json --snapshot runs/demo/snapshot
    """
    sample_in_neo4j(out=out, strategy=strategy, n=n, seed=seed, hops=hops, start_type=start_type, relation=relation,
                    exclude=exclude, pattern=pattern, mapping=mapping, snapshot=snapshot, full=full,
                    negatives=negatives, uri=uri, user=user, database=database)


def sample_in_neo4j(
    *,
    out: Path,
    strategy: str,
    n: int,
    seed: int,
    hops: str | None = None,
    start_type: list[str] | None = None,
    relation: list[str] | None = None,
    exclude: Path | None = None,
    pattern: list[str] | None = None,
    mapping: Path | None = None,
    snapshot: Path | None = None,
    full: Path | None = None,
    negatives: int = 3,
    uri: str | None = None,
    user: str | None = None,
    database: str | None = None,
) -> None:
    """`kgsynth neo4j sample` and `kgsynth sample --store neo4j`: sample, write, summarise.

    With the snapshot the graph was loaded from, the paths get proven hard negatives
    and `unique_answer` as in-memory paths do; without it they have neither.
    """
    from kgsynth.progress import console
    from kgsynth.sample.paths import write_paths
    from kgsynth.stores.neo4j import Neo4jConfig
    from kgsynth.stores.neo4j_pull import read_mapping
    from kgsynth.stores.neo4j_sample import sample_paths_cypher

    started = time.perf_counter()
    config = Neo4jConfig.from_env(uri=uri, user=user, database=database)
    frame = sample_paths_cypher(
        config, strategy, n=n, seed=seed, hops=hops or "2-4", patterns=pattern, hubs=exclude,
        relations=relation, start_types=start_type, mapping=read_mapping(mapping) if mapping else None,
    )
    sampled_s = time.perf_counter() - started
    if snapshot is not None:
        from kgsynth.graph.engine import open_engine
        from kgsynth.graph.snapshot import read_snapshot
        from kgsynth.sample.prove import prove_paths

        engine = open_engine(read_snapshot(snapshot))
        full_engine = open_engine(read_snapshot(full)) if full is not None else None
        frame = prove_paths(frame, engine, full=full_engine, negatives=negatives, seed=seed)
    write_paths(frame, out)
    console.print(
        f"[bold green]sampled[/] {frame.height:,} {strategy} paths (of {n:,} asked) in {config.target} → {out} "
        f"in {time.perf_counter() - started:.1f}s (Cypher {sampled_s:.1f}s, seed {seed})"
    )
    if snapshot is None:
        console.print("  no hard negatives or unique answers: give --snapshot (the graph in memory) to prove them")
    else:
        counts = frame["negatives"].list.len()
        console.print(
            f"  hard negatives: {int(counts.sum()):,}; {int((counts == 0).sum()):,} paths with none proven; "
            f"unique answer (open questions): {int(frame['unique_answer'].sum()):,} paths, "
            f"not unique {int((~frame['unique_answer']).sum()):,}, unknown {frame['unique_answer'].null_count():,}"
        )
    counts = frame["hops"].value_counts().sort("hops")
    console.print("  by hops: " + ", ".join(f"{h}: {c:,}" for h, c in counts.iter_rows()))
    for text, count in frame["pattern"].value_counts(sort=True).head(8).iter_rows():
        console.print(f"  {count:>9,}  {text}")
