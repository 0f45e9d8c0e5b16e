"""`kgsynth run CONFIG`: every stage of the pipeline, skipping the ones already up to date."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    config_file: Annotated[Path, typer.Argument(help="Run configuration (.yaml or .toml), e.g. configs/demo.yaml.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default: the config's run_dir or runs/<name>).")
    ] = None,
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force",
            help="Re-run this stage even if up to date (repeatable): load, neo4j, shatter, sample, generate, "
            "verify, export, publish.",
        ),
    ] = None,
) -> None:
    """Load, prune, sample, generate, verify, measure difficulty, export (and push/publish when configured).

    Example: kgsynth run configs/demo.yaml
    """
    from kgsynth.config import config_hash, load_config
    from kgsynth.pipeline import check_force, get_stage, planned_stages, run_stage
    from kgsynth.progress import console, new_progress
    from kgsynth.rundir import RunDir

    config = load_config(config_file)
    forced = set(force or [])
    check_force(forced)
    run_dir = RunDir(out or config.default_run_dir())
    stages = planned_stages(config)
    console.print(
        f"[bold]kgsynth run[/] {config.name} (config {config_hash(config)[:12]}): {' → '.join(stages)}  "
        f"(run dir {run_dir.root})"
    )
    started = time.perf_counter()
    results = []
    if config.execution.runner == "dask":
        from kgsynth.execution import run_flow

        e = config.execution
        cluster = e.address or f"a local cluster of {e.workers} worker processes"
        console.print(f"  stages run as Prefect tasks on Dask ({cluster})")
        results = run_flow(config_file, config, run_dir, forced)
        for result in results:
            _print_result(result)
    else:
        for name in stages:
            with new_progress() as progress:  # a spinner; a bar over the parts of a stage in parts
                task = progress.add_task(f"{name}: {get_stage(name).description}", total=None)
                result = run_stage(
                    name, config, run_dir, force=name in forced,
                    on_part=lambda done, total, task=task: progress.update(task, completed=done, total=total),
                )  # fmt: skip
            results.append(result)
            _print_result(result)
    ran = sum(not r.skipped for r in results)
    console.print(
        f"[bold green]done[/] in {time.perf_counter() - started:.1f}s: {ran} of {len(results)} stages ran, "
        f"{len(results) - ran} up to date"
    )
    for label, path in _final_outputs(run_dir, results):
        console.print(f"  {label}: {path}")


def _print_result(result) -> None:
    from kgsynth.progress import console

    if result.skipped:
        console.print(f"  [dim]✓ {result.stage}: up to date, skipped[/]")
    else:
        console.print(f"  [green]✓[/] {result.stage} {result.seconds:.1f}s  {_brief(result.summary)}")


def _brief(summary: dict) -> str:
    """The numeric figures of a stage summary, on one line."""
    return ", ".join(
        f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:g}"
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    )


def _final_outputs(run_dir, results) -> list[tuple[str, Path]]:
    done = {r.stage for r in results}
    outputs = [("run directory", run_dir.root)]
    if "export" in done:
        outputs += [("dataset", run_dir.dataset), ("report", run_dir.report / "report.md")]
    return outputs
