"""`kgsynth generate`: paths → items with the template writer or a model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

BUDGET_EXIT_CODE = 3  # the run stopped at its budget; everything made so far is saved


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)


def generate(
    paths: Annotated[Path, typer.Argument(help="Paths table (paths.parquet) from `kgsynth sample`.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Items file (default: items.parquet beside PATHS).")] = None,
    snapshot: Annotated[
        Optional[Path], typer.Option(help="Snapshot the paths were sampled from (default: pruned/ or snapshot/ beside PATHS).")
    ] = None,
    full_snapshot: Annotated[
        Optional[Path], typer.Option(help="The full, unpruned snapshot (default: snapshot/ beside PATHS when it differs).")
    ] = None,
    writer: Annotated[str, typer.Option(help="Writer: template (offline, no key) or openai (any OpenAI-compatible server).")] = "template",
    model: Annotated[Optional[str], typer.Option(help="Model name for --writer openai.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL or OpenAI).")] = None,
    api_key_env: Annotated[str, typer.Option(help="Environment variable that holds the API key.")] = "OPENAI_API_KEY",
    kinds: Annotated[
        str, typer.Option(help="Item kinds, comma-separated: mcq, open, dag (one per convergent group of paths).")
    ] = "mcq,open",
    concurrency: Annotated[int, typer.Option(min=1, help="Model calls in flight at once.")] = 32,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per saved batch.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed for the order of options.")] = 0,
    options: Annotated[int, typer.Option("--options", min=2, max=26, help="Options per multiple-choice item.")] = 4,
    min_options: Annotated[
        Optional[int], typer.Option(min=2, max=26, help="Allow MCQ items with fewer options, down to this (default: --options).")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N paths.")] = None,
    budget_usd: Annotated[Optional[float], typer.Option(min=0, help="Stop cleanly before spending more than this (USD).")] = None,
    price: Annotated[
        Optional[list[str]], typer.Option(help="Price MODEL=IN,OUT in USD per 1M tokens (repeatable).")
    ] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Reply cache (default: llm_cache.sqlite beside --out).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not cache replies (a re-run pays again).")] = False,
    structured: Annotated[str, typer.Option(help="Structured output: auto, json_schema, json_object or text.")] = "auto",
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature.")] = 0.2,
    max_tokens: Annotated[int, typer.Option(min=1, help="Reply token limit per call.")] = 1024,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request before it counts as timed out.")] = 60.0,
    max_retries: Annotated[int, typer.Option(min=0, help="Retries per call on 429, 5xx, timeouts, dropped connections.")] = 6,
    batch_api: Annotated[bool, typer.Option("--batch-api", help="Use the OpenAI Batch API (half price, slow).")] = False,
    batch_poll: Annotated[float, typer.Option(help="Seconds between Batch API status polls.")] = 30.0,
) -> int:
    """Turn paths into items: a thinking path plus a multiple-choice or open question.

    Resumable: a re-run skips items already in --out and, with the reply cache,
    pays for no call twice. Exit code 3 means the budget was reached (all finished
    items are saved; re-run with a larger budget to continue).

    Example: kgsynth generate runs/demo/paths.parquet --writer openai --model gpt-4o-mini --budget-usd 5
    """
    from kgsynth.errors import ConfigError
    from kgsynth.generate import WRITERS, generate_items
    from kgsynth.graph.snapshot import read_snapshot
    from kgsynth.llm.config import LLMConfig, parse_price
    from kgsynth.progress import console
    from kgsynth.sample.paths import read_paths

    started = time.perf_counter()
    table = read_paths(paths)
    if limit is not None:
        table = table.head(limit)
    sampled, full = _snapshots(paths, table, snapshot, full_snapshot)
    out = out or paths.parent / "items.parquet"
    if structured not in ("auto", "json_schema", "json_object", "text"):
        raise ConfigError(f"--structured must be auto, json_schema, json_object or text, not {structured!r}")
    config = None
    if writer != "template":
        if not model:
            raise ConfigError(f"--writer {writer} needs --model (e.g. gpt-4o-mini, or the name your server serves)")
        config = LLMConfig(
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout_s=timeout,
            max_retries=max_retries,
            structured=structured,
            temperature=temperature,
            max_tokens=max_tokens,
            cache_path=None if no_cache else (cache or out.parent / "llm_cache.sqlite"),
            batch=batch_api,
            batch_poll_s=batch_poll,
        )
        config.prices.update(dict(parse_price(p) for p in price or []))
    result = generate_items(
        table,
        read_snapshot(sampled),
        writer=WRITERS.get(writer)(config),
        out=out,
        kinds=[k.strip() for k in kinds.split(",") if k.strip()],
        seed=seed,
        batch_size=batch_size,
        full_snapshot=read_snapshot(full) if full else None,
        budget_usd=budget_usd,
        concurrency=concurrency,
        n_options=options,
        min_options=min_options,
    )
    total = result.usage.get("total", {}) if result.usage else {}
    console.print(
        f"[bold green]generated[/] {result.items_new:,} new item(s) from {table.height:,} paths "
        f"({result.items_existing:,} already there) → {result.out}: {result.items_total:,} items "
        f"in {time.perf_counter() - started:.1f}s"
    )
    if total:
        console.print(
            f"  model {config.model if config else '-'}: {total['calls']:,} calls, {total['cache_hits']:,} from cache, "
            f"{total['retries']:,} retries, {total['prompt_tokens']:,} + {total['completion_tokens']:,} tokens, "
            f"${total['cost_usd']:.4f}"
        )
    for title, counts in (("failed (a re-run tries again)", result.failed), ("rejected", result.rejected)):
        if counts:
            console.print(f"  {title}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    console.print(f"  failures → {result.failures_path}; stats → {result.stats_path}")
    if result.stopped == "budget":
        console.print(
            f"[bold yellow]budget reached[/] (${budget_usd}): {result.remaining:,} item(s) not attempted; "
            "everything finished is saved. Re-run with a larger --budget-usd to continue."
        )
        return BUDGET_EXIT_CODE
    return 0


def _snapshots(paths: Path, table, snapshot: Path | None, full: Path | None) -> tuple[Path, Path | None]:
    """The sampled-from snapshot and the full one, defaulting to the run-directory layout."""
    from kgsynth.errors import SourceNotFoundError
    from kgsynth.graph.snapshot import read_snapshot

    if snapshot is None:
        wanted = set(table["snapshot"].drop_nulls().unique().to_list())
        candidates = [paths.parent / "pruned", paths.parent / "snapshot"]
        present = [c for c in candidates if (c / "manifest.json").exists()]
        matching = [c for c in present if read_snapshot(c).hash in wanted]
        if not (matching or present):
            raise SourceNotFoundError(
                f"no snapshot beside {paths} (looked for pruned/ and snapshot/); pass --snapshot DIR"
            )
        snapshot = (matching or present)[0]
    if full is None:
        default = paths.parent / "snapshot"
        full = default if (default / "manifest.json").exists() and default.resolve() != snapshot.resolve() else None
    return snapshot, full
