"""`kgsynth export` and `kgsynth report`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("report")(report)


def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory with verified/accepted.parquet.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Export folder (default: RUN_DIR/dataset).")] = None,
    push: Annotated[
        Optional[str], typer.Option("--push", help="Also publish to this Hub dataset repo (USER/NAME); token from HF_TOKEN.")
    ] = None,
    private: Annotated[bool, typer.Option("--private/--public", help="Visibility of a repo --push creates.")] = True,
    ratios: Annotated[str, typer.Option(help="train,validation,test shares.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Seed of the split assignment.")] = 0,
    hop_split: Annotated[
        Optional[str], typer.Option("--hop-split", help="Hop-stratified splits, e.g. 'train=1-3,test=4-5'.")
    ] = None,
    formats: Annotated[
        Optional[list[str]], typer.Option("--format", "-f", help="disk, parquet, jsonl (repeatable; default all).")
    ] = None,
    drop_rejected: Annotated[
        bool, typer.Option("--drop-rejected", help="Leave out items an expert rejected (from `kgsynth review export`).")
    ] = False,
    curriculum: Annotated[
        bool,
        typer.Option("--curriculum", help="Order the train split easy to hard (difficulty score; ties: feature score, id)."),
    ] = False,
    stratify: Annotated[
        str, typer.Option("--stratify", help="none, or difficulty: every split gets each difficulty level in its ratio.")
    ] = "none",
) -> None:
    """Export accepted items as a Hugging Face dataset (card, parquet, save_to_disk, JSONL); optionally push it.

    Example: kgsynth export runs/hpo-demo --push my-org/hpo-reasoning --private
    """
    from rich.table import Table

    from kgsynth.errors import ConfigError
    from kgsynth.export import export_dataset, push_dataset
    from kgsynth.export.splits import parse_hop_split
    from kgsynth.export.writer import FORMATS
    from kgsynth.progress import console, step
    from kgsynth.review.store import reviews_outdated
    from kgsynth.rundir import RunDir

    started = time.perf_counter()
    if reviews_outdated(run_dir):
        console.print(
            f"[yellow]note:[/] {run_dir}/review/reviews.sqlite has decisions that reviews.parquet lacks; "
            f"the card shows the exported ones (run `kgsynth review export {run_dir}` first to include them)"
        )
    try:
        shares = tuple(float(r) for r in ratios.split(","))
    except ValueError:
        raise ConfigError(f"--ratios expects three numbers like 0.8,0.1,0.1, got {ratios!r}") from None
    target = out or RunDir(run_dir).dataset
    with step(f"exporting {run_dir}"):
        result = export_dataset(
            run_dir,
            target,
            formats=tuple(formats or FORMATS),
            ratios=shares,
            seed=seed,
            hop_split=parse_hop_split(hop_split) if hop_split else None,
            repo_id=push,
            drop_rejected=drop_rejected,
            curriculum=curriculum,
            stratify=stratify,
        )
    table = Table(title=f"exported → {result.out}")
    for column in ("config", "train", "validation", "test"):
        table.add_column(column, justify="left" if column == "config" else "right")
    for config, splits in result.configs.items():
        table.add_row(config, *(f"{splits.get(s, 0):,}" for s in ("train", "validation", "test")))
    console.print(table)
    for reason, count in result.left_out.items():
        console.print(f"  left out {count:,}: {reason}")
    if result.difficulty_levels:
        console.print("  difficulty levels: " + "; ".join(
            f"{split} " + ", ".join(f"{n:,} {lvl}" for lvl, n in levels.items()) for split, levels in result.difficulty_levels.items()
        ) + ("; train ordered easy to hard" if curriculum else ""))  # fmt: skip
    console.print(f"formats: {', '.join(result.formats)}; card: {result.card}")
    if push:
        with step(f"pushing to {push}"):
            url = push_dataset(result, push, private=private)
        console.print(f"[bold green]published[/] {url} ({'private' if private else 'public'})")
    console.print(f"done in {time.perf_counter() - started:.1f}s")


def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (default: RUN_DIR/report).")] = None,
) -> None:
    """Write the quality report (report.md and PNG plots) of a run.

    Example: kgsynth report runs/hpo-demo
    """
    from kgsynth.export import write_report
    from kgsynth.progress import console, step

    started = time.perf_counter()
    with step(f"writing the report of {run_dir}"):
        path = write_report(run_dir, out)
    plots = sorted(p.name for p in path.parent.glob("*.png"))
    console.print(f"[bold green]report[/] {path} with {len(plots)} plot(s): {', '.join(plots)}")
    console.print(f"done in {time.perf_counter() - started:.1f}s")
