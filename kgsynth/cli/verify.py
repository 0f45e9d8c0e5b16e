"""`kgsynth verify`: check items against the full graph; accepted, rejected with reasons, summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    items: Annotated[Path, typer.Argument(help="Items table (items.parquet), or a run directory holding one.")],
    snapshot: Annotated[
        Optional[Path], typer.Option(help="The full, unpruned snapshot (default: snapshot/ beside ITEMS).")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Output directory (default: verified/ beside ITEMS).")
    ] = None,
    hubs: Annotated[
        Optional[Path],
        typer.Option(help="hubs.json of the pruning (default: pruned/hubs.json beside ITEMS, if present)."),
    ] = None,
    check: Annotated[
        Optional[list[str]], typer.Option("--check", "-c", help="Run only these graph checks (repeatable).")
    ] = None,
    dedup: Annotated[bool, typer.Option(help="De-duplicate: exact text, same triples, near-duplicate embeddings.")] = False,
    near: Annotated[bool, typer.Option(help="With --dedup: near-duplicates by sentence embeddings (needs torch).")] = True,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Cosine similarity of near-duplicates.")] = 0.95,
    benchmark: Annotated[
        Optional[list[Path]], typer.Option("--benchmark", "-b", help="Benchmark file to decontaminate against (repeatable).")
    ] = None,
    ngram: Annotated[int, typer.Option(min=1, help="Words per n-gram for decontamination.")] = 8,
    relation_check: Annotated[
        str, typer.Option(help="How each step's relation is read: lexicon, model (needs --llm-model), off.")
    ] = "lexicon",
    llm_model: Annotated[
        Optional[str], typer.Option(help="Model for the answer-consistency check (off unless given).")
    ] = None,
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint for --llm-model.")] = None,
    api_key_env: Annotated[str, typer.Option(help="Environment variable that holds the API key.")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(min=1, help="Model calls in flight at once.")] = 32,
) -> None:
    """Check every item against the full graph; write accepted.parquet, rejected.parquet, summary.json.

    Example: kgsynth verify runs/demo --dedup --benchmark medqa.jsonl
    """
    import polars as pl
    from rich.table import Table

    from kgsynth.errors import InputFormatError, SourceNotFoundError
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.progress import console, step
    from kgsynth.verify import DedupConfig, verify_items, write_verified

    started = time.perf_counter()
    items_path, root = _locate(items)
    snapshot = snapshot or root / "snapshot"
    out = out or root / "verified"
    if hubs is None and (root / "pruned" / "hubs.json").exists():
        hubs = root / "pruned" / "hubs.json"
    if not items_path.exists():
        raise SourceNotFoundError(f"{items_path}: no such items file (make one with `kgsynth generate`)")
    try:
        frame = pl.read_parquet(items_path)
    except Exception as exc:  # polars raises several types for unreadable files
        raise InputFormatError(f"cannot read as parquet: {exc}", file=items_path) from None
    full = read_snapshot(snapshot)
    llm = None
    if llm_model:
        from kgsynth.llm.config import LLMConfig

        llm = LLMConfig(
            model=llm_model,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            cache_path=root / "llm_cache.sqlite",
        )
    with step(f"verifying {frame.height:,} items against {full.name} ({full.manifest.counts.edges:,} edges)"):
        result = verify_items(
            frame,
            full,
            hubs=hubs,
            checks=check or None,
            llm=llm,
            dedup=DedupConfig(threshold=threshold, near=near) if dedup else None,
            benchmarks=list(benchmark or []),
            params={"decontamination_ngram": ngram},
            relation_check=relation_check,
        )
        write_verified(result, out)
    summary = result.summary
    table = Table(title="rejections by reason")
    table.add_column("reason")
    table.add_column("items", justify="right")
    for reason, count in summary["by_reason"].items():
        table.add_row(reason, f"{count:,}")
    if summary["by_reason"]:
        console.print(table)
    stages = ", ".join(f"{stage} {count:,}" for stage, count in summary["by_stage"].items() if count)
    console.print(
        f"[bold green]verified[/] {summary['items']:,} items: {summary['accepted']:,} accepted, "
        f"{summary['rejected']:,} rejected" + (f" ({stages})" if stages else "")
        + f" in {time.perf_counter() - started:.1f}s → {out}"
    )
    console.print(f"  checks: {', '.join(summary['checks'])}")
    if summary["usage"]:
        total = summary["usage"]["total"]
        console.print(
            f"  model: {total['calls']:,} calls ({total['cache_hits']:,} from the cache), "
            f"{total['prompt_tokens'] + total['completion_tokens']:,} tokens, ${total['cost_usd']:.4f}"
            + (" — budget reached" if summary["usage"]["budget_reached"] else "")
        )
    for name, why in summary["skipped"].items():
        console.print(f"  skipped {name}: {why}")
    if summary["snapshot_mismatch"]:
        console.print(
            f"[yellow]note:[/] {summary['snapshot_mismatch']:,} item(s) were made from another full graph than {full.hash[:12]}"
        )


def _locate(items: Path) -> tuple[Path, Path]:
    """(items file, the directory defaults are looked up in)."""
    if items.is_dir():
        return items / "items.parquet", items
    return items, items.parent
