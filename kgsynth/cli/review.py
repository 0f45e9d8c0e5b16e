"""`kgsynth review RUN_DIR` (the expert review web app) and `kgsynth review export RUN_DIR`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup


class _ServeByDefault(TyperGroup):
    """`kgsynth review RUN_DIR …` means `kgsynth review serve RUN_DIR …`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(
    cls=_ServeByDefault,
    help="Expert review of a run's items in the browser: `kgsynth review RUN_DIR`, then `kgsynth review export RUN_DIR`.\n\n"
    "Example: kgsynth review runs/hpo-demo",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


@review_app.command("serve")
def serve(
    run_dir: Annotated[Path, typer.Argument(help="Run directory with verified/accepted.parquet.")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8765,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but loopback needs $KGSYNTH_REVIEW_TOKEN set.")
    ] = "127.0.0.1",
    reviewer: Annotated[
        Optional[str], typer.Option(help="Your name, stored with each decision (default: asked for in the browser).")
    ] = None,
    sample: Annotated[
        Optional[int], typer.Option(min=1, help="Review a stratified sample of N accepted items (over hops and patterns).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --sample (same N and seed: same items, same order).")] = 0,
) -> None:
    """Start the review web app on a run directory and print its URL (Ctrl-C stops it).

    Example: kgsynth review runs/hpo-demo --sample 200 --seed 1
    """
    from kgsynth.errors import ConfigError
    from kgsynth.progress import console

    try:
        from kgsynth.review.serve import serve as run_server
    except ImportError as exc:
        raise ConfigError(f"kgsynth review needs the web app's packages ({exc.name} is missing): pip install 'kgsynth[review]'") from None

    started = time.perf_counter()
    before: dict = {}

    def ready(served) -> None:
        data = served.data
        before.update(served.store.counts())
        what = f"{data.items.height:,} items"
        if data.sample is not None:
            what += f", sample of {len(data.sample.positions):,} ({data.sample.label})"
        console.print(f"[bold green]review[/] {served.url}  ({what}; loaded in {time.perf_counter() - started:.1f}s)")
        for note in data.notes:
            console.print(f"  note: {note}")
        console.print("  Ctrl-C stops the server; decisions are saved as they are made.")

    console.print(f"loading {run_dir} …")
    served = run_server(run_dir, host=host, port=port, reviewer=reviewer, sample=sample, seed=seed, on_ready=ready)
    after = _counts(run_dir)
    made = {r: {d: n - before.get(r, {}).get(d, 0) for d, n in ds.items()} for r, ds in after.items()}
    lines = [f"{r}: " + ", ".join(f"{n} {d}" for d, n in ds.items() if n) for r, ds in made.items() if any(ds.values())]
    console.print("stopped. " + ("; ".join(lines) if lines else "no new decisions") + f". Reviews: {served.store.path}")
    console.print(f"export them with `kgsynth review export {run_dir}`")


@review_app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory with review/reviews.sqlite.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Parquet file (default: RUN_DIR/review/reviews.parquet).")] = None,
) -> None:
    """Write the current reviews (one row per reviewer and item) to reviews.parquet, for `kgsynth export`.

    Example: kgsynth review export runs/hpo-demo
    """
    import polars as pl
    from rich.table import Table

    from kgsynth.progress import console
    from kgsynth.review.store import export_reviews

    started = time.perf_counter()
    path, frame = export_reviews(run_dir, out)
    table = Table(title=f"reviews → {path}")
    for column in ("reviewer", "accept", "reject", "skip"):
        table.add_column(column, justify="left" if column == "reviewer" else "right")
    counts = frame.group_by("reviewer", "decision").agg(pl.len()).sort("reviewer")
    for reviewer in counts["reviewer"].unique(maintain_order=True).to_list():
        mine = dict(counts.filter(pl.col("reviewer") == reviewer).select("decision", "len").iter_rows())
        table.add_row(reviewer, *(f"{mine.get(d, 0):,}" for d in ("accept", "reject", "skip")))
    console.print(table)
    console.print(f"{frame.height:,} review(s) of {frame['item_id'].n_unique():,} item(s); done in {time.perf_counter() - started:.1f}s")
    console.print(f"`kgsynth export {run_dir}` adds them to the dataset card (`--drop-rejected` leaves out items an expert rejected)")


def _counts(run_dir: Path) -> dict:
    from kgsynth.review.store import ReviewStore

    store = ReviewStore.of_run(run_dir)
    try:
        return store.counts()
    finally:
        store.close()
