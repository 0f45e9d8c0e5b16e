"""`kgsynth shatter` (hub pruning) and `kgsynth sample` (paths)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kgsynth.config import DEFAULT_SHARD_SIZE


def register(app: typer.Typer) -> None:
    app.command("shatter")(shatter)
    app.command("sample")(sample)


def shatter(
    snapshot_dir: Annotated[Path, typer.Argument(help="Snapshot directory to prune.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the pruned snapshot, hubs.json and report.md.")],
    k: Annotated[float, typer.Option("--k", help="No node may carry more than 1/k of the sampled shortest paths.")] = 50.0,
    pairs: Annotated[int, typer.Option(help="Node pairs sampled for shortest paths.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed for the pairs and the path draws.")] = 0,
    budget: Annotated[int, typer.Option(help="Most nodes to remove.")] = 200,
    rule: Annotated[str, typer.Option(help="shortcut (k-Shattering) or degree.")] = "shortcut",
    max_degree: Annotated[Optional[int], typer.Option(help="degree rule: remove nodes of higher degree.")] = None,
    percentile: Annotated[Optional[float], typer.Option(help="degree rule: remove nodes above this degree percentile.")] = None,
    per_type: Annotated[bool, typer.Option("--per-type", help="degree rule: percentiles within each node type.")] = False,
    protect_type: Annotated[Optional[list[str]], typer.Option(help="Node type never removed (repeatable).")] = None,
    protect_id: Annotated[Optional[list[str]], typer.Option(help="Node id never removed (repeatable).")] = None,
) -> None:
    """Prune generic hubs so multi-hop questions cannot shortcut through them.

    Example: kgsynth shatter runs/demo/snapshot --k 50 --out runs/demo/pruned
    """
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.progress import console, new_progress
    from kgsynth.prune import shatter as run_shatter
    from kgsynth.prune import write_shatter

    started = time.perf_counter()
    snapshot = read_snapshot(snapshot_dir)
    rule_params: dict[str, Any] = {}
    if rule == "degree":
        rule_params = {"max_degree": max_degree, "percentile": percentile, "per_type": per_type}
    with new_progress() as progress:
        task = progress.add_task("removing hubs", total=budget if rule == "shortcut" else None)

        def removed(removal) -> None:
            progress.update(task, advance=1, description=f"removing hubs (last load {removal.load:.2%})")

        result = run_shatter(
            snapshot, k=k, pairs=pairs, seed=seed, budget=budget, rule=rule,
            protect_types=protect_type or (), protect_ids=protect_id or (), advance=removed, **rule_params,
        )
    write_shatter(result, out)
    before, after = result.report["before"], result.report["after"]
    console.print(
        f"[bold green]shattered[/] {snapshot.name}: removed {after['nodes_removed']:,} nodes, "
        f"{after['edges_removed']:,} edges → {out} (hash {result.snapshot.hash[:12]}) in {time.perf_counter() - started:.1f}s"
    )
    console.print(
        f"  mean shortest path {before['mean_path_length'] or 0:.2f} → {after['mean_path_length'] or 0:.2f} hops; "
        f"largest load {before['max_load']:.2%} → {after['max_load']:.2%}; "
        f"{before['share_through_removed']:.1%} of sampled paths ran through a removed hub; "
        f"largest component {before['largest_component']:,} → {after['largest_component']:,}"
    )
    for hub in result.hubs[:10]:
        console.print(f"  {hub['round']:>3}. {hub['name']} ({hub['type']}, degree {hub['degree']:,}, load {hub['shortcut_load']:.2%})")
    if len(result.hubs) > 10:
        console.print(f"  … {len(result.hubs) - 10:,} more in {out / 'hubs.json'}")
    console.print(f"  report: {out / 'report.md'}")


def sample(
    snapshot_dir: Annotated[
        Optional[Path], typer.Argument(help="Snapshot to sample from (usually the pruned one); with --store neo4j, optional: the one the graph was loaded from, to prove negatives on.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Paths table to write (parquet).")] = Path("paths.parquet"),
    strategy: Annotated[str, typer.Option(help="walk, pattern, between, rare-chain or convergent.")] = "walk",
    n: Annotated[int, typer.Option("-n", "--n", help="Paths to sample.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed; the same seed, shard size and snapshot give the same file.")] = 0,
    hops: Annotated[Optional[str], typer.Option(help="Hop counts, e.g. 3 or 2-4 (walk, convergent).")] = None,
    full: Annotated[
        Optional[Path], typer.Option(help="The unpruned snapshot, on which hard negatives are proven (default: SNAPSHOT).")
    ] = None,
    negatives: Annotated[int, typer.Option(min=0, help="Hard negatives per path (0: none).")] = 3,
    unique_answer: Annotated[
        bool,
        typer.Option("--unique-answer", help="Keep only paths whose pattern reaches their answer alone (open questions)."),
    ] = False,
    start_type: Annotated[Optional[list[str]], typer.Option(help="Node type walks start from (repeatable).")] = None,
    end_type: Annotated[Optional[list[str]], typer.Option(help="Node type walks end on (repeatable).")] = None,
    relation: Annotated[Optional[list[str]], typer.Option(help="Only these relations (repeatable).")] = None,
    deny_relation: Annotated[Optional[list[str]], typer.Option(help="Never these relations (repeatable).")] = None,
    exclude: Annotated[Optional[Path], typer.Option(help="hubs.json (or its directory) whose nodes walks avoid.")] = None,
    pattern: Annotated[
        Optional[list[str]], typer.Option(help="pattern: template like 'drug -indication-> disease' (repeatable).")
    ] = None,
    pairs: Annotated[Optional[Path], typer.Option(help="between: CSV/TSV/parquet with columns src,dst.")] = None,
    k: Annotated[int, typer.Option("--k", help="between: paths per pair.")] = 3,
    max_hops: Annotated[Optional[int], typer.Option(help="between, rare-chain: hop cap.")] = None,
    max_per_pattern: Annotated[Optional[float], typer.Option(help="Cap per relation pattern (count, or share if < 1).")] = None,
    shard_size: Annotated[
        int, typer.Option(min=1, help="Paths per shard: each shard has its own random stream; memory holds one shard at a time.")
    ] = DEFAULT_SHARD_SIZE,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-P", help="Other sampler option KEY=VALUE (repeatable).")] = None,
    store: Annotated[
        str, typer.Option(help="memory (SNAPSHOT, in memory) or neo4j (walk/pattern in Cypher, database from NEO4J_*).")
    ] = "memory",
) -> None:
    """Sample multi-hop paths into a paths table, with proven hard negatives.

    Example: kgsynth sample runs/demo/pruned --full runs/demo/snapshot --hops 2-4 -n 2000 --out runs/demo/paths.parquet
    """
    if store == "neo4j":  # the graph lives in Neo4j: kgsynth.stores.neo4j_sample walks it with Cypher
        from kgsynth.cli.neo4j import sample_in_neo4j
        from kgsynth.errors import ConfigError

        unsupported = {
            "--unique-answer": unique_answer, "--end-type": end_type, "--deny-relation": deny_relation,
            "--pairs": pairs, "--max-hops": max_hops, "--max-per-pattern": max_per_pattern, "-P": param,
        }
        given = [name for name, value in unsupported.items() if value]
        if given:
            raise ConfigError(f"--store neo4j does not take {', '.join(given)}: sample in memory (--store memory) for those")
        if full is not None and snapshot_dir is None:
            raise ConfigError("--full needs SNAPSHOT (the snapshot the Neo4j graph was loaded from) with --store neo4j")

        return sample_in_neo4j(out=out, strategy=strategy, n=n, seed=seed, hops=hops, start_type=start_type,
                               relation=relation, exclude=exclude, pattern=pattern, snapshot=snapshot_dir, full=full,
                               negatives=negatives)
    if store != "memory" or snapshot_dir is None:
        from kgsynth.errors import ConfigError

        raise ConfigError(f"--store {store}: give SNAPSHOT_DIR with --store memory, or use --store neo4j")
    from kgsynth.graph.engine import open_engine
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.progress import console, new_progress
    from kgsynth.sample import SampleProgress, sample_to_file

    started = time.perf_counter()
    snapshot = read_snapshot(snapshot_dir)
    engine = open_engine(snapshot)
    full_engine = open_engine(read_snapshot(full)) if full is not None else None
    params = _params(strategy, hops, start_type, end_type, relation, deny_relation, exclude, pattern, pairs, k, max_hops, max_per_pattern, param or [])
    total = None if strategy == "between" else n
    with new_progress(rate="paths") as progress:
        sampled = progress.add_task(f"sampling {strategy}", total=total)
        proven = progress.add_task("proving negatives", total=total, visible=bool(negatives))
        written = progress.add_task("writing", total=total)
        stats = sample_to_file(
            engine, out, strategy, n, seed, full=full_engine, negatives=negatives, unique_answer=unique_answer,
            shard_size=shard_size,
            progress=SampleProgress(
                sampled=lambda count: progress.advance(sampled, count),
                proven=lambda count: progress.advance(proven, count),
                written=lambda count: progress.advance(written, count),
            ),
            **params,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    console.print(
        f"[bold green]sampled[/] {stats.produced:,} {strategy} paths (of {stats.requested:,} asked) → {out} "
        f"in {seconds:.1f}s ({stats.produced / max(seconds, 1e-9):,.0f} paths/s; sampling {stats.seconds['sample']:.1f}s, "
        f"negatives {stats.seconds['negatives']:.1f}s, writing {stats.seconds['table']:.1f}s; "
        f"{_shards(stats)})"
    )
    console.print("  by hops: " + ", ".join(f"{h}: {c:,}" for h, c in stats.by_hops.items()))
    for text, count in list(stats.by_pattern.items())[:8]:
        console.print(f"  {count:>9,}  {text}")
    if len(stats.by_pattern) > 8:
        console.print(f"  … {len(stats.by_pattern) - 8:,} more patterns")
    turned_away = {reason: count for reason, count in stats.rejections.items() if count}
    if turned_away:
        console.print("  rejected: " + ", ".join(f"{reason} {count:,}" for reason, count in turned_away.items()))
    if stats.shortfall:
        console.print("  [yellow]short of quota[/]: " + ", ".join(f"{h}: {c:,}" if h == "unique_answer" else f"{h} hops: {c:,}" for h, c in stats.shortfall.items()))
    if negatives:
        console.print(
            f"  hard negatives: {stats.negatives_total:,}; {stats.paths_without_negatives:,} paths with none proven"
            + ("" if full is not None or snapshot.manifest.parent is None else
               " (proven on this pruned graph; pass --full PARENT to prove them on the full graph)")
        )
    if negatives or unique_answer:
        judged = stats.unique_answers + stats.not_unique_answers
        console.print(
            f"  unique answer (open questions): {stats.unique_answers:,} paths, not unique {stats.not_unique_answers:,}, "
            f"unknown {stats.produced - judged:,} ({stats.seconds['unique_answer']:.1f}s)"
        )
    if strategy == "between":
        extra = stats.extra
        console.print(f"  pairs: {extra['pairs']:,}, with paths {extra['with_paths']:,}, without {len(extra['no_path']):,}, unknown ids {len(extra['unknown']):,}")


def _shards(stats: Any) -> str:
    base = stats.shards - stats.refill_shards
    refill = f" + {stats.refill_shards} to replace repeats" if stats.refill_shards else ""
    return f"{base:,} shard{'s' if base != 1 else ''}{refill}"


def _params(strategy, hops, start_type, end_type, relation, deny_relation, exclude, pattern, pairs, k, max_hops, max_per_pattern, extra) -> dict[str, Any]:
    """Sampler keyword arguments from the command-line options that were given."""
    from kgsynth.errors import ConfigError

    given: dict[str, Any] = {
        "hops": hops, "start_types": start_type, "end_types": end_type, "relations": relation,
        "deny_relations": deny_relation, "exclude": exclude, "patterns": pattern,
        "max_per_pattern": max_per_pattern,
    }
    if strategy == "between":
        if pairs is None:
            raise ConfigError("--strategy between needs --pairs FILE (columns src,dst)")
        given.update(pairs=_read_pairs(pairs), k=k, max_hops=max_hops or 3)
    elif max_hops is not None:
        given["max_hops"] = max_hops
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        given[key.replace("-", "_")] = _value(value)
    return {key: value for key, value in given.items() if value not in (None, [])}


def _value(text: str) -> Any:
    if "," in text:
        return [_value(part) for part in text.split(",") if part]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    import polars as pl

    from kgsynth.errors import InputFormatError, SourceNotFoundError

    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such pairs file")
    try:
        table = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, separator="\t" if path.suffix in (".tsv", ".tab") else ",")
    except Exception as exc:  # polars raises several error types for malformed files
        raise InputFormatError(f"cannot read pairs: {exc}", file=path) from None
    missing = [c for c in ("src", "dst") if c not in table.columns]
    if missing:
        raise InputFormatError(f"pairs file lacks column(s) {missing}; it has {table.columns}", file=path, field=missing[0])
    return list(zip(table["src"].cast(pl.String).to_list(), table["dst"].cast(pl.String).to_list(), strict=True))
