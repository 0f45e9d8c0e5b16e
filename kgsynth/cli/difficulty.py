"""`kgsynth difficulty`: how hard every verified item is (graph features; optionally answering models)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("difficulty")(difficulty)


def difficulty(
    run_dir: Annotated[Path, typer.Argument(help="Run directory with verified/accepted.parquet and snapshot/.")],
    model: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model", "-m",
            help="An answering model, MODEL or MODEL@BASE_URL (repeatable), e.g. llama3.2@http://localhost:11434/v1.",
        ),
    ] = None,
    api_key_env: Annotated[str, typer.Option(help="Environment variable that holds the API key.")] = "OPENAI_API_KEY",
    seed: Annotated[int, typer.Option(min=0, help="Sampling seed sent to the models.")] = 0,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature of the models.")] = 0.0,
    max_tokens: Annotated[int, typer.Option(min=1, help="Reply token limit per answer.")] = 256,
    concurrency: Annotated[int, typer.Option(min=1, help="Calls in flight at once, per model.")] = 16,
    max_retries: Annotated[int, typer.Option(min=0, help="Retries per call on 429, 5xx, timeouts, dropped connections.")] = 6,
    weight: Annotated[
        Optional[list[str]],
        typer.Option(help="Feature-score weight NAME=VALUE (steps, rarity, distractors, shortcut; repeatable); the names not given weigh 0."),
    ] = None,
) -> None:
    """Measure each accepted item's difficulty into RUN_DIR/difficulty/.

    Graph features (hops and steps, entity rarity, distractor hardness, a shortcut
    in the full graph) always; with --model, the share of those models that answer
    each multiple-choice item right from its question alone (replies cached in
    RUN_DIR/llm_cache.sqlite, so a re-run sends nothing). `kgsynth export
    --curriculum / --stratify difficulty` then use it.

    Example: kgsynth difficulty runs/hpo-demo --model llama3.2@http://localhost:11434/v1
    """
    import polars as pl

    from kgsynth.config import DIFFICULTY_WEIGHTS, DifficultyConfig
    from kgsynth.difficulty import difficulty_dir, measure_difficulty, write_difficulty
    from kgsynth.errors import ConfigError, SourceNotFoundError
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.llm.config import LLMConfig
    from kgsynth.progress import console
    from kgsynth.rundir import RunDir

    started = time.perf_counter()
    run = RunDir(run_dir)
    accepted = run.verified / "accepted.parquet"
    if not accepted.exists():
        raise SourceNotFoundError(f"{accepted}: missing; run `kgsynth verify {run_dir}` first")
    # weights given replace the defaults whole: `--weight steps=1` scores by steps alone
    weights = {name: 0.0 for name in DIFFICULTY_WEIGHTS} if weight else dict(DIFFICULTY_WEIGHTS)
    for text in weight or []:
        name, _, value = text.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--weight {text!r}: expected NAME=NUMBER, e.g. steps=0.5") from None
    try:
        weights = DifficultyConfig(weights=weights).weights
    except ValueError as exc:
        raise ConfigError(f"--weight: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None  # type: ignore[attr-defined]
    models = []
    for spec in model or []:
        name, _, base_url = spec.partition("@")
        models.append(LLMConfig(
            model=name, base_url=base_url or None, api_key_env=api_key_env, concurrency=concurrency, seed=seed, max_retries=max_retries,
            temperature=temperature, max_tokens=max_tokens, cache_path=run.llm_cache,
        ))  # fmt: skip
    if len({m.model for m in models}) < len(models):
        raise ConfigError("--model: a model is listed twice; each model answers once (its name labels its answers)")
    result = measure_difficulty(pl.read_parquet(accepted), read_snapshot(run.snapshot), models=models, weights=weights)
    out = write_difficulty(result, difficulty_dir(run.root))
    summary = result.summary
    console.print(
        f"[bold green]difficulty[/] of {summary['items']:,} items → {out}: "
        + ", ".join(f"{n:,} {level}" for level, n in summary["levels"].items())
    )
    for m in summary["models"]:
        total = (summary["usage"].get(m["model"]) or {}).get("total", {})
        console.print(
            f"  {m['model']}: {m['correct']:,} of {m['items']:,} right ({m['accuracy'] if m['accuracy'] is not None else 0:.1%})"
            + (f"; {total.get('cache_hits', 0):,} replies from the cache, {total.get('requests', 0):,} requests" if total else "")
        )
    console.print(f"done in {time.perf_counter() - started:.1f}s")
